// promedical train-grpo: GRPO guided by the criteria-injected reward model (ProMedical's alignment
// stage), with held-out greedy answers judged by the RM before and after.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { loadRecords } from '../data/records.js';
import { ConfigError, type GrpoConfig } from '../train/config.js';
import type { ChatTokenizer } from '../data/tokenizer.js';
import { createRolloutEngine, type RolloutEngine } from '../rollout/engine.js';
import { comparePolicies, evaluatePolicyResponses, policyResponses } from '../eval/policy.js';
import { overlongPenalty, rubricReward, rubricRewardTerms } from '../grpo/rewards.js';
import { trainGrpo, type RewardFunction } from '../grpo/trainer.js';
import { addLora } from '../model/lora.js';
import { saveQwen3 } from '../model/pretrained.js';
import type { Qwen3ForCausalLM } from '../model/qwen3.js';
import { ensureTinyQwen3 } from '../model/tiny.js';
import { initBackend } from '../ops/backend.js';
import { CriteriaRewardModel } from '../reward/model.js';
import { trainRewardModel } from '../reward/trainer.js';
import { resumableFields, storedConfig } from '../train/config.js';
import { curveSummary } from '../train/metrics.js';
import { loadPretrained } from '../train/pretrained.js';
import { openRunDir } from '../train/run_state.js';
import { trainSft } from '../train/sft.js';
import type { RubricRecord } from '../data/schema.js';
import { checkRun, requireFile, requireModelDir, requireRewardModelDir, say, trainerInput } from './inputs.js';

const ABOUT = `GRPO (DeepSeekMath, with TRL GRPOTrainer's options) guided by the criteria-injected reward
model: G completions per prompt, the RM's ProMedical reward per completion, group-relative
advantages, the clipped policy loss with a KL penalty to the starting policy. Without --policy or
--rm, quick starting points are trained first into <out>/start/ (a 40-step SFT policy, a 60-step
RM; npm run train-sft / train-rm train the full ones). Writes <out>/config.json, metrics.jsonl,
chart.svg, checkpoints/ and policy/, then prints one JSON line: { run_dir, steps, reward_first,
reward_last, kl_last, curves, heldout, policy, chart } (first/last: mean over the first/last fifth
of the steps; heldout: RM-judged greedy answers to --eval-data before and after, with the paired
bootstrap interval of each change).`;

const NOTES = [
  "Defaults: this command follows the ProMedical paper (G 8, KL coefficient 0.04, hence DeepSeekMath's grpo loss) and",
  'measurement on the tiny model (lr 2e-4 where the paper used 1e-6 on 8B, 2 prompts per step, 48 new tokens, top-k 50);',
  "where that departs from the library (trainGrpo, whose defaults are TRL 1.10's GRPOConfig), both are shown.",
];

export async function trainGrpoCommand(argv: string[]): Promise<void> {
  const { config: c, help } = trainerInput('grpo', 'train-grpo', ABOUT, argv, NOTES);
  if (help) return void console.log(help);
  const log = say('train-grpo');
  requireFile('--data', c.data);
  if (c.eval_data) requireFile('--eval-data', c.eval_data);
  if (c.eval_every > 0 && !c.eval_data) throw new ConfigError('--eval-every needs --eval-data: the held-out prompts it samples');
  if (c.engine === 'openai' && c.lora_rank === null) {
    throw new ConfigError('--engine openai syncs the policy as LoRA adapters (vLLM\'s load_lora_adapter): add --lora-rank R, or push full weights from code with createOpenAIEngine({ syncWeights })');
  }
  if (c.policy) requireModelDir('--policy', c.policy);
  if (c.rm) requireRewardModelDir('--rm', c.rm);
  // Stand-ins only when no path is given; they live in the run folder, so a resume reuses them.
  const quickPolicy = c.policy === null, quickRm = c.rm === null;
  c.policy ??= path.join(c.out, 'start', 'policy');
  c.rm ??= path.join(c.out, 'start', 'reward-model');
  checkRun('grpo', c);

  await initBackend(c.backend);
  const records = await loadRecords(c.data);
  const heldout = c.eval_data ? await loadRecords(c.eval_data) : [];
  openRunDir(c.out, { config: storedConfig(c) as unknown as Record<string, unknown>, resume: c.resume, overwrite: c.overwrite, resumable: resumableFields('grpo') });
  if (quickRm && !fs.existsSync(path.join(c.rm, 'reward_config.json'))) await quickRewardModel(c.rm, records, c.seed, c.backend, log);
  if (quickPolicy && !fs.existsSync(path.join(c.policy, 'config.json'))) await quickSftPolicy(c.policy, records, c.seed, c.backend, log);

  const rm = await CriteriaRewardModel.load(c.rm);
  const { model: policy, tokenizer } = await loadPretrained(c.policy);
  policy.gradientCheckpointing = c.gradient_checkpointing;
  let reference: 'adapters' | Qwen3ForCausalLM | undefined;
  if (c.lora_rank !== null) {
    addLora(policy, { r: c.lora_rank, alpha: 2 * c.lora_rank, targetModules: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'], seed: c.seed });
    reference = 'adapters';
  } else if (c.beta !== 0) {
    reference = (await loadPretrained(c.policy)).model; // a frozen copy of the start
  }
  const rewards: RewardFunction[] = c.reward_terms ? rubricRewardTerms(rm) : [rubricReward(rm)];
  if (c.overlong_cache !== null) rewards.push(overlongPenalty(c.max_new_tokens, c.overlong_cache));
  const judge = async () => evaluatePolicyResponses(rm, heldout, await policyResponses(policy, tokenizer, heldout, { maxNewTokens: c.max_new_tokens }), c.seed);
  const before = heldout.length ? await judge() : null;
  const asPrompts = (rs: RubricRecord[]) => rs.map((r) => ({ id: r.id, messages: r.prompt, context: r }));
  const engine = await rolloutEngine(c, policy, tokenizer, log);
  const run = await trainGrpo({
    policy, tokenizer, rewards, reference, config: c, prepared: true, prompts: asPrompts(records), engine,
    evalPrompts: c.eval_every > 0 ? asPrompts(heldout.filter((r) => r.criteria.length > 0)) : undefined,
  }).finally(() => engine.close());
  const { chart } = await run.finish({ title: 'GRPO guided by the criteria-injected reward model', metrics: ['reward', 'reward_std', 'kl', 'entropy', 'completions/mean_length', 'clip_ratio/region_mean', 'loss'] });
  const out = path.join(c.out, 'policy');
  await saveQwen3(policy, out, { dtype: 'float32', tokenizer });
  const after = heldout.length ? await judge() : null;
  let heldoutSummary: Record<string, unknown> | null = null;
  if (before && after) {
    const cmp = comparePolicies(after, before, c.seed);
    heldoutSummary = Object.fromEntries(
      (['reward', 'overall_accuracy', 'safety_compliance'] as const).flatMap((m) => [[`${m}_before`, cmp[m].b], [`${m}_after`, cmp[m].a], [`${m}_change`, cmp[m].difference]]),
    );
  }
  const rows = run.metrics.rows().filter((r) => typeof r.reward === 'number');
  const curves = curveSummary(rows, ['reward', 'kl', 'entropy', 'completions/mean_length']);
  console.log(JSON.stringify({
    run_dir: c.out, steps: run.step, reward_first: curves.reward?.first ?? null, reward_last: curves.reward?.last ?? null,
    kl_last: rows.at(-1)?.kl ?? null, curves, heldout: heldoutSummary, policy: out, chart,
  }));
  run.dispose();
  rm.dispose();
  policy.dispose();
  if (reference && reference !== 'adapters') reference.dispose();
}

/** The engine --engine names, started before training: one that cannot start is an error (never
 * a silent fallback to tfjs). */
async function rolloutEngine(c: GrpoConfig, policy: Qwen3ForCausalLM, tokenizer: ChatTokenizer, log: (l: string) => void): Promise<RolloutEngine> {
  if (c.engine === 'tfjs') return createRolloutEngine('tfjs', { policy });
  log(`starting the ${c.engine} rollout engine${c.engine_url ? ` at ${c.engine_url}` : ''}`);
  if (c.engine === 'llama.cpp') {
    return createRolloutEngine('llama.cpp', { policy, tokenizer, dir: path.join(c.out, 'engine'), gpu: c.engine_gpu === 'off' ? false : c.engine_gpu, dtype: c.engine_dtype });
  }
  return createRolloutEngine('openai', { url: c.engine_url!, model: c.engine_model!, lora: c.lora_rank !== null ? { dir: path.join(path.resolve(c.out), 'engine-lora') } : undefined });
}

/** A 60-step RM on the tiny Qwen3 (npm run train-rm trains the full one). */
async function quickRewardModel(dir: string, records: RubricRecord[], seed: number, backend: 'auto' | 'tensorflow' | 'wasm' | 'cpu', log: (l: string) => void): Promise<void> {
  log(`no --rm given: training a quick reward model into ${dir} (60 steps)`);
  const { model, tokenizer } = await loadPretrained(await ensureTinyQwen3());
  const rm = new CriteriaRewardModel(model, tokenizer, { maxLength: 384, seed });
  const { run } = await trainRewardModel({ rm, train: records, config: { out: path.join(path.dirname(dir), 'rm-run'), steps: 60, lr: 2e-3, seed, backend, eval_every: 0, save_every: 0, overwrite: true } });
  await run.finish();
  run.dispose();
  await rm.save(dir);
  rm.dispose();
}

/** A 40-step SFT policy on the tiny Qwen3 (npm run train-sft trains the full one). */
async function quickSftPolicy(dir: string, records: RubricRecord[], seed: number, backend: 'auto' | 'tensorflow' | 'wasm' | 'cpu', log: (l: string) => void): Promise<void> {
  log(`no --policy given: training a quick SFT policy into ${dir} (40 steps)`);
  const { model, tokenizer } = await loadPretrained(await ensureTinyQwen3());
  const run = await trainSft({ model, tokenizer, records, config: { out: path.join(path.dirname(dir), 'sft-run'), steps: 40, lr: 3e-3, seed, backend, save_every: 0, overwrite: true } });
  await run.finish();
  run.dispose();
  await saveQwen3(model, dir, { dtype: 'float32', tokenizer });
  model.dispose();
}
