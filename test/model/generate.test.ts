// Generation: KV-cached decoding equals full recomputation token for token; sampling filters
// behave as transformers' warpers (checked by hand on small distributions); seeds reproduce.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as tf from '@tensorflow/tfjs';
import { loadQwen3 } from '../../src/model/pretrained.js';
import { generate, sampleSorted } from '../../src/model/generate.js';
import type { Qwen3ForCausalLM } from '../../src/model/qwen3.js';
import { maxAbsDiff, useBackend } from '../helpers/backends.js';

const fixture = (name: string) => new URL(`../fixtures/qwen3/${name}`, import.meta.url).pathname;
let model: Qwen3ForCausalLM;
test.before(async () => {
  await useBackend('wasm');
  model = await loadQwen3(fixture('untied-gqa4-bf16'));
});
test.after(() => model.dispose());

/** Greedy continuation by recomputing the whole sequence every step (no cache, no batch). */
function greedyFull(m: Qwen3ForCausalLM, prompt: number[], n: number): number[] {
  const seq = [...prompt];
  for (let i = 0; i < n; i++) {
    const next = tf.tidy(() => m.forward(tf.tensor2d([seq], [1, seq.length], 'int32')).slice([0, seq.length - 1, 0], [1, 1, -1]).argMax(-1).dataSync()[0]);
    seq.push(next);
  }
  return seq.slice(prompt.length);
}

const prompts = [[5, 17, 60, 2, 33, 90], [71, 4], [12, 12, 40, 8]];

test('cached, batched, left-padded greedy decoding equals full recomputation token for token', async () => {
  const got = await generate(model, prompts, { maxNewTokens: 10 });
  assert.equal(got, prompts.map((p) => greedyFull(model, p, 10)));
});

test('cached logits equal full-sequence logits at every step', () => {
  const ids = [3, 50, 7, 21, 64, 9];
  const full = tf.tidy(() => model.forward(tf.tensor2d([ids], [1, 6], 'int32')).dataSync());
  const V = model.config.vocabSize;
  let cache = tf.tidy(() => model.decode(tf.tensor2d([ids.slice(0, 2)], [1, 2], 'int32')).cache);
  for (let t = 2; t < 6; t++) {
    const step = tf.tidy(() => {
      const r = model.decode(tf.tensor2d([[ids[t]]], [1, 1], 'int32'), { cache });
      return { cache: r.cache, logits: model.logits(r.hidden) };
    });
    assert.ok(maxAbsDiff(step.logits.dataSync(), full.slice(t * V, (t + 1) * V)) < 1e-5, `step ${t}`);
    tf.dispose([step.logits, ...cache.flatMap((c) => [c.k, c.v])]);
    cache = step.cache;
  }
  tf.dispose(cache.flatMap((c) => [c.k, c.v]));
});

test('each row stops at its own stop id (included) while the others go on; no tensor leaks', async () => {
  const free = await generate(model, prompts, { maxNewTokens: 8 });
  const stop = free[0][2]; // row 0's third token
  const before = tf.memory().numTensors;
  const got = await generate(model, prompts, { maxNewTokens: 8, stopTokenIds: [stop] });
  assert.is(tf.memory().numTensors, before);
  for (let b = 0; b < prompts.length; b++) {
    const cut = free[b].indexOf(stop);
    assert.equal(got[b], cut >= 0 ? free[b].slice(0, cut + 1) : free[b], `row ${b}`);
  }
  assert.is(got[0].length, free[0].indexOf(stop) + 1);
});

test('sampling: same seed same tokens, another seed other tokens, top-k 1 is greedy', async () => {
  const opts = { maxNewTokens: 12, temperature: 1.5, topP: 0.95, seed: 11 };
  const a = await generate(model, prompts, opts);
  const b = await generate(model, prompts, opts);
  const c = await generate(model, prompts, { ...opts, seed: 12 });
  assert.equal(a, b);
  assert.not.equal(a, c);
  assert.equal(await generate(model, prompts, { maxNewTokens: 6, temperature: 1, topK: 1, seed: 3 }), await generate(model, prompts, { maxNewTokens: 6 }));
});

test('sampleSorted: nucleus and min-p filters by hand', () => {
  const logits = Float32Array.from([Math.log(0.5), Math.log(0.3), Math.log(0.15), Math.log(0.05)]);
  // top-p 0.7: 0.5 < 0.7 so the second token stays; 0.8 >= 0.7 drops the rest -> {0, 1} renormalised 5/8, 3/8.
  assert.is(sampleSorted(logits, 0.7, 0, 0.62), 0);
  assert.is(sampleSorted(logits, 0.7, 0, 0.63), 1);
  assert.is(sampleSorted(logits, 0.7, 0, 0.999), 1);
  // top-p 0.5: only the first (its predecessors hold 0 < 0.5, then 0.5 >= 0.5 stops).
  assert.is(sampleSorted(logits, 0.5, 0, 0.99), 0);
  // min-p 0.5: keep p >= 0.25 -> {0.5, 0.3}; min-p 0.2: keep p >= 0.1 -> {0.5, 0.3, 0.15}.
  assert.is(sampleSorted(logits, 1, 0.5, 0.99), 1);
  assert.is(sampleSorted(logits, 1, 0.2, 0.99), 2);
  // no filter: the cumulative thresholds 0.5, 0.8, 0.95, 1.
  assert.equal([0.49, 0.51, 0.81, 0.96].map((u) => sampleSorted(logits, 1, 0, u)), [0, 1, 2, 3]);
});

test('bad prompts are refused clearly', async () => {
  const cases: [number[][], RegExp][] = [
    [[[]], /prompt 0 is empty/],
    [[[4], [1, 999]], /prompt 1 holds id 999, outside \[0, 96\)/],
  ];
  for (const [bad, message] of cases) {
    try {
      await generate(model, bad, { maxNewTokens: 2 });
      assert.unreachable();
    } catch (err) {
      assert.match((err as Error).message, message);
    }
  }
});

test.run();
