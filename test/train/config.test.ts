// Trainer configs: defaults for every field, one validator that names field, value and what is
// allowed, and the stored form of a run folder (paths relative to it).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as path from 'node:path';
import { ConfigError } from '../../src/model/config.js';
import {
  CONFIG_DEFAULTS, CONFIG_FIELDS, GRPO_CLI_DEFAULTS, GRPO_CONFIG_DEFAULTS, GRPO_CONFIG_FIELDS, stepsPerGeneration, REWARD_CONFIG_DEFAULTS, resumableFields, SFT_CONFIG_DEFAULTS, storedConfig, validateConfig, type ConfigKind,
} from '../../src/train/config.js';

const kinds: ConfigKind[] = ['reward', 'sft', 'grpo'];

test('every field has a default, a doc sentence, and the defaults pass their own validation', () => {
  for (const k of kinds) {
    assert.equal(Object.keys(CONFIG_DEFAULTS[k]).sort(), Object.keys(CONFIG_FIELDS[k]).sort(), k);
    for (const [name, f] of Object.entries(CONFIG_FIELDS[k])) assert.ok(f.doc.length > 10, `${k}.${name} is documented`);
    assert.equal(validateConfig(k, {}), CONFIG_DEFAULTS[k]);
  }
  // The values the measured runs used (the CLI's defaults before configs existed).
  assert.equal([REWARD_CONFIG_DEFAULTS.steps, REWARD_CONFIG_DEFAULTS.lr, REWARD_CONFIG_DEFAULTS.batch_size, REWARD_CONFIG_DEFAULTS.max_length], [120, 2e-3, 16, 384]);
  assert.equal([SFT_CONFIG_DEFAULTS.steps, SFT_CONFIG_DEFAULTS.lr, SFT_CONFIG_DEFAULTS.batch_size], [80, 1e-2, 8]);
  // The library's GRPO defaults are TRL 1.10's GRPOConfig; the CLI's the paper's (G 8, KL 0.04).
  assert.equal([GRPO_CONFIG_DEFAULTS.num_generations, GRPO_CONFIG_DEFAULTS.beta, GRPO_CONFIG_DEFAULTS.loss_type, GRPO_CONFIG_DEFAULTS.lr, GRPO_CONFIG_DEFAULTS.epsilon, GRPO_CONFIG_DEFAULTS.max_new_tokens], [8, 0, 'dapo', 1e-6, 0.2, 512]);
  assert.equal([GRPO_CLI_DEFAULTS.beta, GRPO_CLI_DEFAULTS.loss_type, GRPO_CLI_DEFAULTS.num_generations ?? GRPO_CONFIG_DEFAULTS.num_generations], [0.04, 'grpo', 8]);
  for (const k of Object.keys(GRPO_CLI_DEFAULTS)) assert.ok(k in GRPO_CONFIG_FIELDS, k);
});

test('GRPO cross-field rules: TRL\'s (generation batch, luspo) and ours (cispo cap, entropy bounds, TR-DPO)', () => {
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ steps_per_generation: 2, generation_batch_size: 16 }, /^steps_per_generation and generation_batch_size exclude each other/],
    [{ prompts_per_step: 2, num_generations: 4, generation_batch_size: 12 }, /^generation_batch_size = 12 is not a multiple of prompts_per_step x num_generations = 8$/],
    [{ loss_type: 'luspo' }, /^loss_type = "luspo" needs importance_sampling = "sequence"/],
    [{ loss_type: 'cispo' }, /^loss_type = "cispo" needs epsilon_high/],
    [{ entropy_coef_min: 0.5, entropy_coef_max: 0.1 }, /^entropy_coef_min = 0\.5 is above entropy_coef_max = 0\.1$/],
    [{ sync_ref_model: true }, /^sync_ref_model needs beta > 0/],
    [{ sync_ref_model: true, beta: 0.04, lora_rank: 8 }, /^sync_ref_model needs a reference model of its own/],
    [{ loss_type: 'gspo' }, /^loss_type = "gspo": not an allowed value; expected one of grpo, bnpo, dr_grpo, dapo, cispo, sapo, luspo, vespo$/],
    [{ top_entropy_quantile: 0 }, /^top_entropy_quantile = 0: out of range/],
  ];
  for (const [cfg, re] of cases) assert.throws(() => validateConfig('grpo', cfg), (e: unknown) => e instanceof ConfigError && re.test((e as Error).message), JSON.stringify(cfg));
  assert.is(stepsPerGeneration(validateConfig('grpo', { prompts_per_step: 2, num_generations: 4, generation_batch_size: 24 })), 3);
  assert.is(stepsPerGeneration(validateConfig('grpo', { steps_per_generation: 2 })), 2);
  assert.is(stepsPerGeneration(validateConfig('grpo', {})), 1);
  validateConfig('grpo', { loss_type: 'luspo', importance_sampling: 'sequence' });
  validateConfig('grpo', { loss_type: 'cispo', epsilon_high: 5 });
});

test('wrong types, non-integers, out-of-range values, unknown enum values and unknown keys are ConfigErrors naming field, value and what is allowed', () => {
  const cases: [ConfigKind, Record<string, unknown>, RegExp][] = [
    ['sft', { lr: 'abc' }, /^lr = "abc": not a finite number; expected a finite number > 0$/],
    ['sft', { lr: NaN }, /^lr = NaN: not a finite number/],
    ['grpo', { steps: 1.5 }, /^steps = 1\.5: not a whole number; expected a whole number >= 1$/],
    ['grpo', { steps: 0 }, /^steps = 0: out of range; expected a whole number >= 1$/],
    ['reward', { warmup_ratio: 1 }, /^warmup_ratio = 1: out of range; expected a finite number >= 0 and < 1$/],
    ['grpo', { loss_type: 'dr-grpo' }, /^loss_type = "dr-grpo": not an allowed value; expected one of grpo, bnpo, dr_grpo, dapo, cispo, sapo, luspo, vespo$/],
    ['reward', { backend: 'gpu' }, /^backend = "gpu": not an allowed value; expected one of auto, tensorflow, wasm, cpu$/],
    ['reward', { shared_head: 'yes' }, /^shared_head = "yes": not a boolean; expected true or false$/],
    ['reward', { data: null }, /^data = null: null is not allowed; expected a string$/],
    ['sft', { learningRate: 1 }, /^unknown field "learningRate"$/],
    ['sft', { batchsize: 4 }, /^unknown field "batchsize" \(did you mean "batch_size"\?\)$/],
    ['sft', { batch_size: 2, micro_batch_size: 4 }, /^micro_batch_size = 4 is larger than batch_size = 2$/],
    ['grpo', { resume: true, overwrite: true }, /resume and overwrite exclude each other/],
  ];
  for (const [k, cfg, message] of cases) {
    try {
      validateConfig(k, cfg);
      assert.unreachable(JSON.stringify(cfg));
    } catch (err) {
      assert.instance(err, ConfigError, JSON.stringify(cfg));
      assert.match((err as Error).message, message);
    }
  }
  assert.throws(() => validateConfig('sft', { steps: -1 }, 'my.json'), /^my\.json: steps = -1: out of range/);
  assert.is(validateConfig('grpo', { lora_rank: null, epsilon_high: 0.28 }).epsilon_high, 0.28);
  // undefined is "not given"; the default micro-batch (2 for SFT) shrinks to a smaller batch, a given one does not.
  assert.is(validateConfig('sft', { lr: undefined }).lr, SFT_CONFIG_DEFAULTS.lr);
  assert.is(validateConfig('sft', { batch_size: 1 }).micro_batch_size, 1);
  assert.is(validateConfig('sft', { batch_size: 6 }).micro_batch_size, SFT_CONFIG_DEFAULTS.micro_batch_size);
});

test('stored configs keep paths relative to the run folder; resume may change only the step total and cadences', () => {
  const c = validateConfig('reward', { out: '/runs/a', data: '/data/train.jsonl', model: '/runs/a/base', eval_data: null });
  const s = storedConfig(c);
  assert.is(s.out, '.');
  assert.is(s.data, path.relative('/runs/a', '/data/train.jsonl'));
  assert.is(s.model, 'base');
  assert.is(s.eval_data, null);
  assert.is(s.lr, c.lr);
  const free = resumableFields('reward');
  for (const k of ['steps', 'eval_every', 'save_every', 'logging_steps', 'keep_last']) assert.ok(free.has(k), k);
  for (const k of ['lr', 'batch_size', 'seed', 'max_length', 'lr_scheduler', 'model', 'data']) assert.not.ok(free.has(k), k);
});

test.run();
