// Rollouts: completion masks up to and including the first stop token, truncation, G per prompt.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { loadQwen3 } from '../../src/model/pretrained.js';
import { completionMasks, rollout } from '../../src/grpo/rollouts.js';
import { useBackend } from '../helpers/backends.js';

test('masks by hand: up to and including the first stop; truncated rows flagged, optionally masked out', () => {
  const raw = [[5, 6, 95, 9], [7, 8], [94]];
  const r = completionMasks(raw, [95, 94], 0);
  assert.equal(r.completions, [[5, 6, 95, 9], [7, 8, 0, 0], [94, 0, 0, 0]]);
  assert.equal(r.mask, [[1, 1, 1, 0], [1, 1, 0, 0], [1, 0, 0, 0]]);
  assert.equal(r.truncated, [false, true, false]);
  assert.equal(r.lengths, [3, 2, 1]);
  assert.equal(completionMasks(raw, [95, 94], 0, true).mask[1], [0, 0, 0, 0]);
});

test('G completions per prompt, grouped; seeded sampling reproduces; groups differ', async () => {
  await useBackend('wasm');
  const model = await loadQwen3(new URL('../fixtures/qwen3/untied-gqa4-bf16', import.meta.url).pathname);
  const prompts = [[5, 17, 60], [71, 4]];
  const opts = { numGenerations: 3, maxNewTokens: 6, temperature: 1.2, seed: 4, stopTokenIds: [95] };
  const a = await rollout(model, prompts, opts);
  const b = await rollout(model, prompts, opts);
  assert.equal(a, b);
  assert.equal(a.promptIndex, [0, 0, 0, 1, 1, 1]);
  assert.is(a.completions.length, 6);
  assert.ok(new Set(a.completions.slice(0, 3).map((c) => c.join())).size > 1, 'samples within a group differ');
  a.mask.forEach((m, i) => assert.is(m.reduce((x, y) => x + y, 0), a.lengths[i]));
  model.dispose();
});

test.run();
