// Generation: KV-cached decoding equals full recomputation token for token; sampling filters
// behave as transformers' warpers (by hand on small distributions, and in distribution: seeded
// chi-square tests against the filtered softmax, failing below p = 0.001); seeds reproduce; the
// repetition penalty matches transformers' processor computed by hand from full forwards.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as tf from '@tensorflow/tfjs';
import seedrandom from 'seedrandom';
import { loadQwen3 } from '../../src/model/pretrained.js';
import { ensureTinyQwen3 } from '../../src/model/tiny.js';
import { generate, sampleSorted, sampleTokens, type SamplingOptions } from '../../src/model/generate.js';
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

/** transformers' warpers by the book, in float64: temperature, top-k, top-p, min-p (equal logits rank by lower id). */
function filteredSoftmax(logits: ArrayLike<number>, o: SamplingOptions): number[] {
  const T = o.temperature ?? 1;
  const order = Array.from({ length: logits.length }, (_, i) => i).sort((a, b) => logits[b] - logits[a] || a - b);
  const w = order.map((i) => Math.exp((logits[i] - logits[order[0]]) / T));
  let keep = o.topK ? Math.min(o.topK, w.length) : w.length;
  const z = w.slice(0, keep).reduce((a, b) => a + b, 0);
  let above = 0;
  for (let r = 1; r < keep && (o.topP ?? 1) < 1; r++) {
    above += w[r - 1] / z;
    if (above >= o.topP!) keep = r;
  }
  let r = 1;
  while (r < keep && w[r] >= (o.minP ?? 0) * w[0]) r++;
  keep = r;
  const kept = w.slice(0, keep).reduce((a, b) => a + b, 0);
  const probs = new Array<number>(logits.length).fill(0);
  for (let j = 0; j < keep; j++) probs[order[j]] = w[j] / kept;
  return probs;
}

/** transformers' RepetitionPenaltyLogitsProcessor on one row, in float32 as the device computes it. */
function penalise(logits: ArrayLike<number>, held: Iterable<number>, penalty: number): Float32Array {
  const out = Float32Array.from(logits);
  const p = Math.fround(penalty);
  for (const id of new Set(held)) out[id] = out[id] < 0 ? out[id] * p : out[id] / p;
  return out;
}

/** Upper regularized incomplete gamma Q(a, x) (series below a + 1, Lentz's continued fraction above). */
function gammaQ(a: number, x: number): number {
  if (x <= 0) return 1;
  // Lanczos log-gamma (g = 7, n = 9).
  const c = [0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059, 12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7];
  let s = c[0];
  for (let i = 1; i < 9; i++) s += c[i] / (a - 1 + i);
  const t = a - 1 + 7.5;
  const front = Math.exp(-x + a * Math.log(x) - (0.5 * Math.log(2 * Math.PI) + (a - 0.5) * Math.log(t) - t + Math.log(s)));
  if (x < a + 1) {
    let term = 1 / a, sum = term;
    for (let n = 1; n < 1000 && term > sum * 1e-16; n++) sum += (term *= x / (a + n));
    return 1 - front * sum;
  }
  let b = x + 1 - a, cc = 1e300, d = 1 / b, h = d;
  for (let i = 1; i < 1000; i++) {
    const an = -i * (i - a);
    b += 2;
    d = an * d + b;
    cc = b + an / cc;
    d = 1 / d;
    h *= d * cc;
    if (Math.abs(d * cc - 1) < 1e-16) break;
  }
  return front * h;
}

/**
 * Pearson's chi-square p-value of observed counts against probabilities; categories expected
 * fewer than 5 times are pooled. Every test below fails when p <= 0.001 (seeded, so reproducible).
 */
function chiSquareP(counts: number[], probs: number[]): number {
  const n = counts.reduce((a, b) => a + b, 0);
  let stat = 0, df = -1, poolE = 0, poolO = 0;
  probs.forEach((p, i) => {
    const e = n * p;
    if (e >= 5) {
      stat += (counts[i] - e) ** 2 / e;
      df++;
    } else {
      poolE += e;
      poolO += counts[i];
    }
  });
  if (poolE > 0) {
    stat += (poolO - poolE) ** 2 / poolE;
    df++;
  }
  return gammaQ(df / 2, stat / 2);
}

const histogram = (ids: number[], V: number) => ids.reduce((h, id) => (h[id]++, h), new Array<number>(V).fill(0));
/** One row of logits repeated n times. */
const rows = (logits: ArrayLike<number>, n: number) => tf.tensor2d(Float32Array.from({ length: n * logits.length }, (_, i) => logits[i % logits.length]), [n, logits.length]);
/** Draws that come from a list, in order. */
const draws = (us: number[]) => {
  let i = 0;
  return () => us[i++];
};

test('chi-square p-values (the tests threshold): known quantiles', () => {
  assert.ok(Math.abs(gammaQ(0.5, 10.828 / 2) - 0.001) < 2e-6);
  assert.ok(Math.abs(gammaQ(5, 29.588 / 2) - 0.001) < 2e-6);
  assert.ok(Math.abs(gammaQ(1, 5.991 / 2) - 0.05) < 2e-5);
  assert.ok(Math.abs(chiSquareP([50, 50], [0.5, 0.5]) - 1) < 1e-12);
});

// Ids 2 and 5 tie (ranks 3 and 4): top-k 4 and top-p 0.74 keep id 2 alone. No kept-set boundary
// lies within 1e-3 of its threshold, far beyond float32 rounding.
const LOGITS = [2.1, -0.3, 1.4, 0.9, -1.7, 1.4, 0.2, 3.0, -0.8, 0.6, 1.9, -2.5];
const FILTERS: SamplingOptions[] = [
  { temperature: 1 },
  { temperature: 0.7, topK: 5 },
  { temperature: 1, topK: 4 },
  { temperature: 1, topP: 0.8 },
  { temperature: 1, topP: 0.74 },
  { temperature: 1.3, minP: 0.15 },
  { temperature: 0.8, topK: 6, topP: 0.75 },
  { temperature: 1.5, topP: 0.9, minP: 0.2 },
  { temperature: 1.2, topK: 8, topP: 0.85, minP: 0.05 },
];

test('sampleTokens: token frequencies follow the filtered softmax for every filter combination (chi-square, p > 0.001)', async () => {
  const N = 20000;
  const logits = rows(LOGITS, N);
  const before = tf.memory().numTensors;
  for (const o of FILTERS) {
    const probs = filteredSoftmax(LOGITS, o);
    const counts = histogram(await sampleTokens(logits, o, seedrandom(`chi2 ${JSON.stringify(o)}`)), LOGITS.length);
    probs.forEach((p, i) => p === 0 && assert.is(counts[i], 0, `${JSON.stringify(o)}: id ${i} is filtered out`));
    const p = chiSquareP(counts, probs);
    assert.ok(p > 0.001, `${JSON.stringify(o)}: chi-square p ${p}, counts ${counts}`);
  }
  assert.is(tf.memory().numTensors, before);
  logits.dispose();
});

test('sampleTokens: an even grid of draws lands on every token in proportion to its filtered probability (within one draw)', async () => {
  // 1,500 ids (three of the host pass's blocks), some logits repeated so that ties meet the cuts.
  const V = 1500, N = 2000;
  const rng = seedrandom('grid');
  const row = Float32Array.from({ length: V }, () => 8 * rng() - 4);
  for (let i = 0; i < 300; i++) row[Math.floor(rng() * V)] = row[Math.floor(rng() * V)];
  const logits = rows(row, N);
  const grid = Array.from({ length: N }, (_, j) => (j + 0.5) / N);
  for (const o of [{ temperature: 1 }, { temperature: 0.5, topP: 0.7 }, { temperature: 0.5, minP: 0.05 }, { temperature: 0.3, topP: 0.9, minP: 0.01 }, { temperature: 0.5, topK: 300, topP: 0.8 }]) {
    const probs = filteredSoftmax(row, o);
    const counts = histogram(await sampleTokens(logits, o, draws(grid)), V);
    const worst = Math.max(...counts.map((c, i) => Math.abs(c - N * probs[i])));
    assert.ok(worst < 1.01, `${JSON.stringify(o)}: a token is ${worst} draws off its share`);
  }
  logits.dispose();
});

test('sampleTokens: top-p and min-p at ties and edges, by hand; greedy is the argmax; bad filters are refused', async () => {
  // Each token's share of an even grid of 1,000 draws (exact to 1/1000).
  const shares = async (logits: number[], o: SamplingOptions) => {
    const n = 1000;
    const t = rows(logits, n);
    const counts = histogram(await sampleTokens(t, o, draws(Array.from({ length: n }, (_, j) => (j + 0.5) / n))), logits.length);
    t.dispose();
    return counts.map((c) => c / n);
  };
  const near = (got: number[], want: number[], what: string) => assert.ok(got.every((g, i) => Math.abs(g - want[i]) <= 1e-3 + 1e-9), `${what}: ${got} vs ${want}`);
  // Four equal tokens, top-p 0.5: ids 0 and 1 rank first and hold 0.5 together.
  near(await shares([0, 0, 0, 0], { temperature: 1, topP: 0.5 }), [0.5, 0.5, 0, 0], 'tie at the top-p edge');
  // Probabilities 0.05, 0.5, 0.15, 0.3: top-p 0.7 -> {1, 3} renormalised (0.5 < 0.7 keeps the second, 0.8 >= 0.7 stops).
  const log = [0.05, 0.5, 0.15, 0.3].map(Math.log);
  near(await shares(log, { temperature: 1 }), [0.05, 0.5, 0.15, 0.3], 'no filter');
  near(await shares(log, { temperature: 1, topP: 0.7 }), [0, 0.625, 0, 0.375], 'top-p 0.7');
  // min-p 0.5 keeps p >= 0.25 -> {1, 3}; min-p 0.2 keeps p >= 0.1 -> {1, 2, 3}; with top-p 0.7 the shorter cut wins.
  near(await shares(log, { temperature: 1, minP: 0.5 }), [0, 0.625, 0, 0.375], 'min-p 0.5');
  near(await shares(log, { temperature: 1, minP: 0.2 }), [0, 0.5 / 0.95, 0.15 / 0.95, 0.3 / 0.95], 'min-p 0.2');
  near(await shares(log, { temperature: 1, minP: 0.2, topP: 0.7 }), [0, 0.625, 0, 0.375], 'min-p 0.2 and top-p 0.7');
  near(await shares(log, { temperature: 1, minP: 0.5, topP: 0.9 }), [0, 0.625, 0, 0.375], 'min-p 0.5 and top-p 0.9');
  // top-p 0 keeps the most likely token alone (the lower id of a tie); min-p 1 keeps every token tied at the top.
  near(await shares([1, 3, 3, 0], { temperature: 1, topP: 0 }), [0, 1, 0, 0], 'top-p 0');
  near(await shares([1, 3, 3, 0], { temperature: 1, minP: 1 }), [0, 0.5, 0.5, 0], 'min-p 1');
  // A row without finite mass is refused, and leaves nothing behind for the next call.
  for (const o of [{ temperature: 1 }, { temperature: 1, topP: 0.9 }, { temperature: 1, minP: 0.1 }]) {
    const nan = tf.tensor2d([[0, NaN, 1]]);
    try {
      await sampleTokens(nan, o, Math.random);
      assert.unreachable();
    } catch (err) {
      assert.match((err as Error).message, /sampleTokens: a row has no finite probability mass/);
    }
    nan.dispose();
  }
  near(await shares(log, { temperature: 1, topP: 0.7 }), [0, 0.625, 0, 0.375], 'top-p 0.7 after a refused row');
  // Greedy: the argmax, no draw taken.
  const logits = tf.tensor2d([LOGITS, [...LOGITS].reverse()]);
  assert.equal(await sampleTokens(logits, {}, () => assert.unreachable('greedy draws nothing') as never), [7, 4]);
  for (const [o, message] of [
    [{ temperature: NaN }, /temperature must be a finite number >= 0/],
    [{ temperature: 1, topK: 2.5 }, /topK must be a whole number >= 0/],
    [{ temperature: 1, topP: 1.5 }, /topP must be in \[0, 1\]/],
    [{ temperature: 1, minP: -0.1 }, /minP must be in \[0, 1\]/],
  ] as [SamplingOptions, RegExp][]) {
    try {
      await sampleTokens(logits, o, Math.random);
      assert.unreachable();
    } catch (err) {
      assert.match((err as Error).message, message);
    }
  }
  logits.dispose();
});

test('generate on the tiny Qwen3 (151,936 ids) samples the top-p softmax of its logits (chi-square over 8 equal-mass bins, p > 0.001)', async () => {
  const tiny = await loadQwen3(await ensureTinyQwen3());
  try {
    const prompt = [9707, 11, 1879, 0, 358];
    const o = { temperature: 0.9, topP: 0.9 };
    const logits = tf.tidy(() => tiny.forward(tf.tensor2d([prompt], [1, prompt.length], 'int32')).slice([0, prompt.length - 1, 0], [1, 1, -1]).dataSync());
    const probs = filteredSoftmax(logits, o);
    // Rank order, nucleus size, and each kept id's bin by the mass ranked above it.
    const order = Array.from(probs.keys()).sort((a, b) => probs[b] - probs[a] || a - b);
    const kept = probs.filter((p) => p > 0).length;
    const rank = new Int32Array(probs.length);
    const bin = new Int32Array(probs.length).fill(7);
    let above = 0;
    order.forEach((id, r) => {
      rank[id] = r;
      if (probs[id] > 0) bin[id] = Math.min(7, Math.floor(8 * above));
      above += probs[id];
    });
    const binMass = new Array<number>(8).fill(0);
    for (const id of order.slice(0, kept)) binMass[bin[id]] += probs[id];
    const samples: number[] = [];
    for (let seed = 0; seed < 6; seed++) samples.push(...(await generate(tiny, Array.from({ length: 40 }, () => prompt), { ...o, maxNewTokens: 1, seed })).map((r) => r[0]));
    // Float32 probabilities may move the nucleus edge by a token or two.
    assert.ok(samples.every((id) => rank[id] < kept + 2), `every sample in the nucleus of ${kept}`);
    const p = chiSquareP(histogram(samples.map((id) => bin[id]), 8), binMass);
    assert.ok(p > 0.001, `chi-square p ${p}`);
  } finally {
    tiny.dispose();
  }
});

/** Greedy with the repetition penalty, recomputing the whole sequence every step (no cache, no batch). */
function greedyPenalisedFull(m: Qwen3ForCausalLM, prompt: number[], n: number, penalty: number): number[] {
  const seq = [...prompt];
  for (let i = 0; i < n; i++) {
    const logits = tf.tidy(() => m.forward(tf.tensor2d([seq], [1, seq.length], 'int32')).slice([0, seq.length - 1, 0], [1, 1, -1]).dataSync());
    const pen = penalise(logits, seq, penalty);
    seq.push(pen.indexOf(Math.max(...pen)));
  }
  return seq.slice(prompt.length);
}

test('repetition penalty, greedy: batched cached decoding equals the penalty applied by hand to full forwards at every step', async () => {
  const plain = await generate(model, prompts, { maxNewTokens: 10 });
  for (const penalty of [1.8, 0.5]) {
    const got = await generate(model, prompts, { maxNewTokens: 10, repetitionPenalty: penalty });
    assert.equal(got, prompts.map((p) => greedyPenalisedFull(model, p, 10, penalty)), `penalty ${penalty}`);
    assert.not.equal(got, plain, `penalty ${penalty} changes the greedy tokens`);
  }
});

test('repetition penalty, sampled: first tokens follow the filtered softmax of the penalised logits (chi-square, p > 0.001)', async () => {
  const prompt = [5, 17, 5, 60, 17, 5, 2, 78, 2, 78]; // ends in a greedy loop: the penalty matters
  const o = { temperature: 0.8, topP: 0.95, repetitionPenalty: 1.5 };
  const logits = tf.tidy(() => model.forward(tf.tensor2d([prompt], [1, prompt.length], 'int32')).slice([0, prompt.length - 1, 0], [1, 1, -1]).dataSync());
  const probs = filteredSoftmax(penalise(logits, prompt, o.repetitionPenalty), o);
  const unpenalised = filteredSoftmax(logits, o);
  const moved = probs.reduce((s, p, i) => s + Math.abs(p - unpenalised[i]), 0) / 2;
  assert.ok(moved > 0.2, `the penalty moves ${moved} of the mass`);
  const N = 1500;
  const ids = (await generate(model, Array.from({ length: N }, () => prompt), { ...o, maxNewTokens: 1, seed: 5 })).map((r) => r[0]);
  const counts = histogram(ids, model.config.vocabSize);
  probs.forEach((p, i) => p === 0 && assert.is(counts[i], 0, `id ${i} is filtered out`));
  const p = chiSquareP(counts, probs);
  assert.ok(p > 0.001, `chi-square p ${p}`);
});

test('repetition penalty: seeds reproduce, no tensor leaks (greedy or sampled), bad values refused', async () => {
  const sampled = { maxNewTokens: 6, temperature: 1, topP: 0.9, repetitionPenalty: 1.3, seed: 2 };
  const before = tf.memory().numTensors;
  const a = await generate(model, prompts, sampled);
  assert.is(tf.memory().numTensors, before);
  assert.equal(await generate(model, prompts, sampled), a);
  await generate(model, prompts, { maxNewTokens: 6, repetitionPenalty: 1.3 });
  assert.is(tf.memory().numTensors, before);
  for (const bad of [0, -1.2, NaN, Infinity, '1.2']) {
    try {
      await generate(model, prompts, { maxNewTokens: 2, repetitionPenalty: bad as number });
      assert.unreachable();
    } catch (err) {
      assert.match((err as Error).message, /generate: repetitionPenalty must be a finite number > 0 \(1: off\), got /);
    }
  }
  try {
    await generate(model, prompts, { maxNewTokens: 2, temperature: 1, topP: 1.5 });
    assert.unreachable();
  } catch (err) {
    assert.match((err as Error).message, /generate: topP must be in \[0, 1\]/);
  }
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
