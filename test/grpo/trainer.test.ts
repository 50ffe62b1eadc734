// The GRPO trainer end to end on the tiny Qwen3: TRL's metrics, KL zero before the first update
// and positive after, the reference policy required when beta != 0, and a flat tensor count.
// (Whether GRPO raises a real reward is measured by npm run train-grpo, not here.)
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { loadTokenizer } from '../../src/data/tokenizer.js';
import { loadQwen3 } from '../../src/model/checkpoint.js';
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
    policy, tokenizer: loadTokenizer(dir), rewards: [lowIds], runDir: path.join(tmp, 'grpo'), steps: 4, lr: 2e-3, seed: 0, quiet: true,
    prompts, promptsPerStep: 2, numGenerations: 4, maxNewTokens: 5, beta: 0.04, reference,
  });
  const rows = run.metrics.rows().filter((r) => typeof r.reward === 'number');
  assert.is(rows.length, 4);
  for (const k of ['reward', 'reward_std', 'frac_reward_zero_std', 'kl', 'clip_ratio/low_mean', 'clip_ratio/high_mean', 'clip_ratio/region_mean', 'completions/mean_length', 'completions/clipped_ratio', 'rewards/low_ids/mean']) {
    assert.type(rows[0][k], 'number', k);
  }
  assert.ok(Math.abs(rows[0].kl as number) < 1e-6, `KL before any update: ${rows[0].kl}`);
  assert.ok((rows[3].kl as number) > 1e-4, 'the policy has moved away from the reference');
  assert.is(rows[0]['completions/clipped_ratio'], 1, 'no stop token in 5 tokens: every completion truncated');
  assert.equal(new Set(counts.slice(2)).size, 1, `numTensors at each step: ${counts}`);
  run.dispose();
  policy.dispose();
  reference.dispose();
});

test('beta != 0 without a reference policy is refused', async () => {
  const dir = await ensureTinyQwen3(undefined, { log: () => {} });
  const policy = await loadQwen3(dir);
  try {
    await trainGrpo({ policy, tokenizer: loadTokenizer(dir), rewards: [], runDir: path.join(tmp, 'x'), steps: 1, lr: 1e-3, seed: 0, prompts, beta: 0.04 });
    assert.unreachable();
  } catch (err) {
    assert.match((err as Error).message, /beta != 0 needs a reference policy/);
  }
  policy.dispose();
});

test.run();
