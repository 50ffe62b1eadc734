// The GRPO trainer end to end on the tiny Qwen3: TRL's metrics, KL zero before the first update
// and positive after, the reference policy required when beta != 0, a flat tensor count, a simple
// learnable rule reward that rises, and resume equal to an uninterrupted run.
// (Whether GRPO raises the reward model's reward is measured by npm run train-grpo.)
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { loadTokenizer } from '../../src/data/tokenizer.js';
import { loadQwen3, saveQwen3 } from '../../src/model/pretrained.js';
import { trainSft } from '../../src/train/sft.js';
import { ensureTinyQwen3 } from '../../src/model/tiny.js';
import { trainGrpo, type RewardFunction } from '../../src/grpo/trainer.js';
import { useBackend } from '../helpers/backends.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'promedical-grpo-'));
test.before(() => useBackend('wasm'));
test.after(() => fs.rmSync(tmp, { recursive: true, force: true }));
const prompts = [{ id: 'a', messages: [{ role: 'user', content: 'Name a vitamin.' }] }, { id: 'b', messages: [{ role: 'user', content: 'What helps a cough?' }] }];

test('metrics with TRL names; KL is 0 before the first update and positive after; flat tensor count', async () => {
  const dir = await ensureTinyQwen3(undefined, { log: () => {} });
  const policy = await loadQwen3(dir);
  const reference = await loadQwen3(dir);
  const counts: number[] = [];
  const lowIds: RewardFunction = {
    name: 'low_ids',
    score: async (_p, _t, ids) => {
      counts.push(tf.memory().numTensors); // same point of every step
      return ids.map((c) => c.filter((id) => id < 20000).length / Math.max(1, c.length));
    },
  };
  const run = await trainGrpo({
    policy, tokenizer: loadTokenizer(dir), rewards: [lowIds], quiet: true, prompts, reference,
    config: { out: path.join(tmp, 'grpo'), steps: 4, lr: 2e-3, seed: 0, prompts_per_step: 2, num_generations: 4, max_new_tokens: 5, beta: 0.04, top_k: 0 },
  });
  const rows = run.metrics.rows().filter((r) => typeof r.reward === 'number');
  assert.is(rows.length, 4);
  for (const k of ['reward', 'reward_std', 'frac_reward_zero_std', 'kl', 'clip_ratio/low_mean', 'clip_ratio/high_mean', 'clip_ratio/region_mean', 'completions/mean_length', 'completions/clipped_ratio', 'rewards/low_ids/mean', 'entropy']) {
    assert.type(rows[0][k], 'number', k);
  }
  // Per-token entropy of a softmax over V ids lies in (0, log V]; a random-init model is near log V.
  const logV = Math.log(policy.config.vocabSize);
  assert.ok((rows[0].entropy as number) > 0.5 * logV && (rows[0].entropy as number) <= logV + 1e-3, `entropy ${rows[0].entropy}, log V ${logV}`);
  assert.ok(Math.abs(rows[0].kl as number) < 1e-6, `KL before any update: ${rows[0].kl}`);
  assert.ok((rows[3].kl as number) > 1e-4, 'the policy has moved away from the reference');
  assert.is(rows[0]['completions/clipped_ratio'], 1, 'no stop token in 5 tokens: every completion truncated');
  assert.equal(new Set(counts.slice(2)).size, 1, `numTensors at each step: ${counts}`);
  run.dispose();
  policy.dispose();
  reference.dispose();
});

// A rule the policy can learn: answer "Yes". A random-init policy is near uniform over 151,936 ids
// and would never sample it, so a short SFT first teaches it to answer "Yes." or "No." (as a real
// run starts from an instruction-tuned model); GRPO must then prefer "Yes".
const questions = ['Is water wet?', 'Should I rest?', 'Is it serious?', 'Can I eat now?'];
const yesNo = questions.map((q, i) => ({
  id: `q${i}`, prompt: [{ role: 'user' as const, content: q }], criteria: [], responses: [{ id: 'y', text: 'Yes.' }, { id: 'n', text: 'No.' }],
}));
const saysYes: RewardFunction = { name: 'yes', score: async (_p, texts) => texts.map((t) => (t.trim().startsWith('Yes') ? 1 : 0)) };

test('a learnable rule reward rises: last fifth of steps above the first fifth, KL reported', async () => {
  const dir = await ensureTinyQwen3(undefined, { log: () => {} });
  const tokenizer = loadTokenizer(dir);
  const policy = await loadQwen3(dir);
  const sft = await trainSft({ model: policy, tokenizer, records: yesNo, quiet: true, config: { out: path.join(tmp, 'yes-sft'), steps: 12, lr: 5e-2, seed: 1, batch_size: 8, micro_batch_size: 8 } });
  sft.dispose();
  await saveQwen3(policy, path.join(tmp, 'yes-sft', 'policy'), { dtype: 'float32' });
  const reference = await loadQwen3(path.join(tmp, 'yes-sft', 'policy')); // the frozen starting point
  const run = await trainGrpo({
    policy, tokenizer, rewards: [saysYes], quiet: true, prompts: yesNo.map((r) => ({ id: r.id, messages: r.prompt })), reference,
    config: { out: path.join(tmp, 'yes-grpo'), steps: 10, lr: 1e-2, seed: 1, prompts_per_step: 2, num_generations: 4, max_new_tokens: 4, beta: 0.04, top_k: 0 },
  });
  const rows = run.metrics.rows().filter((r) => typeof r.reward === 'number');
  const mean = (xs: typeof rows, k: string) => xs.reduce((a, r) => a + (r[k] as number), 0) / xs.length;
  const first = mean(rows.slice(0, 2), 'reward');
  const last = mean(rows.slice(-2), 'reward');
  assert.ok(last > first + 0.4, `reward first fifth ${first.toFixed(3)}, last fifth ${last.toFixed(3)}`);
  assert.ok(rows.every((r) => Number.isFinite(r.kl)), 'KL on every row');
  assert.ok((rows.at(-1)!.kl as number) > 1e-3, 'the policy moved away from the reference');
  run.dispose();
  policy.dispose();
  reference.dispose();
});

const evenIds: RewardFunction = { name: 'even', score: async (_p, _t, ids) => ids.map((c) => c.filter((id) => id % 2 === 0).length / Math.max(1, c.length)) };

test('a resumed run continues exactly as an uninterrupted one (rollouts, rewards, losses)', async () => {
  const dir = await ensureTinyQwen3(undefined, { log: () => {} });
  const tokenizer = loadTokenizer(dir);
  const go = async (runDir: string, steps: number, resume: boolean) => {
    const policy = await loadQwen3(dir);
    const reference = await loadQwen3(dir);
    const run = await trainGrpo({
      policy, tokenizer, rewards: [evenIds], quiet: true, prompts, reference,
      config: { out: runDir, steps, lr: 1e-2, seed: 3, save_every: 2, resume, prompts_per_step: 1, num_generations: 3, max_new_tokens: 4, beta: 0.01, top_k: 0 },
    });
    // Every logged value but the timings.
    const rows = run.metrics.rows().map(({ seconds: _s, tokens_per_s: _t, ...rest }) => rest);
    run.dispose();
    policy.dispose();
    reference.dispose();
    return rows;
  };
  const whole = await go(path.join(tmp, 'whole'), 4, false);
  await go(path.join(tmp, 'split'), 2, false); // "killed" after the step-2 checkpoint
  const resumed = await go(path.join(tmp, 'split'), 4, true);
  assert.is(resumed.filter((r) => 'reward' in r).length, 4, 'reward rows of steps 1-4');
  assert.ok(resumed.some((r) => r.step === 4 && 'loss' in r && 'kl' in whole.find((w) => w.step === 4 && 'kl' in w)!));
  assert.equal(resumed, whole);
});

test('beta != 0 without a reference policy is refused', async () => {
  const dir = await ensureTinyQwen3(undefined, { log: () => {} });
  const policy = await loadQwen3(dir);
  try {
    await trainGrpo({ policy, tokenizer: loadTokenizer(dir), rewards: [], prompts, config: { out: path.join(tmp, 'x'), steps: 1, lr: 1e-3, beta: 0.04 } });
    assert.unreachable();
  } catch (err) {
    assert.match((err as Error).message, /beta != 0 needs a reference policy/);
  }
  policy.dispose();
});

test.run();
