// The wasm backend's matrix products on the machine's BLAS (src/ops/native_gemm.ts) against the
// pure-JS cpu backend: values and gradients of tf.matMul on random shapes (transposes, batches,
// broadcast batches, edges: 1-wide, empty, K = 0), and the layers that change their products when
// the native GEMM runs (linear, the fused LM head, grouped attention), values and gradients.
// Skipped, saying so, where no BLAS loads (apt-get install libopenblas0-pthread).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as os from 'node:os';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../src/ops/backend.js';
import { groupedMatMul } from '../../src/ops/attention.js';
import { linear } from '../../src/ops/layers.js';
import { lmHeadLogProbs } from '../../src/ops/lm_head.js';
import { loadNativeBlas, nativeGemm, useNativeGemm, type NativeBlas } from '../../src/ops/native_gemm.js';
import { maxAbsDiff, randomArray, randomInts, runOn, useBackend } from '../helpers/backends.js';

await useBackend('wasm');
const loaded = loadNativeBlas(Math.min(2, os.availableParallelism()));
const blas: NativeBlas | null = 'reason' in loaded ? null : loaded;
if (!blas) console.log(`native_gemm.test.ts: skipped: ${'reason' in loaded ? loaded.reason : ''}`);

/** Runs `fn` on wasm with every product (minMacs 0) on the native BLAS. */
async function onNative(fn: () => tf.Tensor[]): Promise<number[][]> {
  await useBackend('wasm');
  useNativeGemm(blas, { minMacs: 0 });
  try {
    assert.ok(nativeGemm(), 'the native GEMM is active');
    return await runOn('wasm', fn);
  } finally {
    useNativeGemm(null);
  }
}

/** Relative max error: max |a - b| / max(1, max |b|). */
function relErr(a: number[], b: number[]): number {
  return maxAbsDiff(a, b) / Math.max(1, ...b.map(Math.abs));
}

/** broadcast: values only (tfjs's own BatchMatMul gradient does not sum over a broadcast batch). */
interface Shape { a: number[]; b: number[]; ta: boolean; tb: boolean; broadcast?: boolean }
const SHAPES: Shape[] = [
  { a: [7, 5], b: [5, 3], ta: false, tb: false },
  { a: [5, 7], b: [5, 3], ta: true, tb: false },
  { a: [7, 5], b: [3, 5], ta: false, tb: true },
  { a: [5, 7], b: [3, 5], ta: true, tb: true },
  { a: [4, 33, 17], b: [4, 17, 9], ta: false, tb: false }, // batch
  { a: [2, 3, 17, 33], b: [2, 3, 9, 17], ta: true, tb: true }, // two batch dims, both transposed
  { a: [4, 12, 8], b: [8, 10], ta: false, tb: false, broadcast: true }, // b broadcast over a's batch
  { a: [16, 8], b: [3, 10, 8], ta: false, tb: true, broadcast: true }, // a broadcast
  { a: [1, 64], b: [64, 1], ta: false, tb: false }, // 1 x 1 result
  { a: [64, 1], b: [1, 64], ta: false, tb: false }, // K = 1
  { a: [3, 0], b: [0, 4], ta: false, tb: false }, // K = 0: zeros
  { a: [0, 5], b: [5, 4], ta: false, tb: false }, // empty result
  { a: [96, 160], b: [160, 200], ta: false, tb: false }, // above the default threshold
];

for (const s of SHAPES) {
  test(`matMul ${JSON.stringify(s.a)}${s.ta ? '^T' : ''} x ${JSON.stringify(s.b)}${s.tb ? '^T' : ''}: values${s.broadcast ? '' : ' and gradients'} equal the cpu backend's`, async () => {
    if (!blas) return;
    const size = (shape: number[]) => shape.reduce((x, y) => x * y, 1);
    const av = randomArray(size(s.a), `a${s.a}`), bv = randomArray(size(s.b), `b${s.b}`);
    const fn = () => {
      const a = tf.tensor(av, s.a), b = tf.tensor(bv, s.b);
      const c = tf.matMul(a, b, s.ta, s.tb);
      if (s.broadcast) return [c];
      const up = tf.tensor(randomArray(c.size, 'up'), c.shape);
      const [da, db] = tf.grads((x: tf.Tensor, y: tf.Tensor) => tf.matMul(x, y, s.ta, s.tb).mul(up).sum())([a, b]);
      return [c, da, db];
    };
    const want = await runOn('cpu', fn);
    const got = await onNative(fn);
    ['value', 'dA', 'dB'].slice(0, want.length).forEach((name, i) => {
      assert.is(got[i].length, want[i].length, `${name} size`);
      assert.ok(relErr(got[i], want[i]) < 1e-5, `${name}: ${relErr(got[i], want[i])}`);
    });
  });
}

test('linear (x w^T, trained and frozen weight): values and gradients equal the cpu backend\'s', async () => {
  if (!blas) return;
  const xv = randomArray(2 * 9 * 24, 'lin-x'), wv = randomArray(40 * 24, 'lin-w');
  for (const trainWeight of [true, false]) {
    const fn = () => {
      const x = tf.tensor3d(xv, [2, 9, 24]), w = tf.tensor2d(wv, [40, 24]);
      const up = tf.tensor3d(randomArray(2 * 9 * 40, 'lin-up'), [2, 9, 40]);
      const f = (xi: tf.Tensor, wi: tf.Tensor) => linear(xi, wi, trainWeight).mul(up).sum();
      const grads = trainWeight ? tf.grads(f)([x, w]) : tf.grads((xi: tf.Tensor) => f(xi, w))([x]);
      return [linear(x, w, trainWeight), ...grads];
    };
    const want = await runOn('cpu', fn);
    const got = await onNative(fn);
    want.forEach((wv2, i) => assert.ok(relErr(got[i], wv2) < 1e-5, `output ${i} (trainWeight ${trainWeight}): ${relErr(got[i], wv2)}`));
  }
});

test('fused LM head (W whole, no transposes): log-probs, entropy and gradients equal the cpu backend\'s', async () => {
  if (!blas) return;
  const N = 13, H = 8, V = 301;
  const xv = randomArray(N * H, 'lm-x', -2, 2), wv = randomArray(V * H, 'lm-w');
  const ids = randomInts(N, 'lm-ids', 0, V), up = randomArray(N, 'lm-up');
  for (const recompute of [false, true]) {
    const fn = () => {
      const x = tf.tensor2d(xv, [N, H]), w = tf.tensor2d(wv, [V, H]);
      const f = (xi: tf.Tensor2D, wi: tf.Tensor2D) => {
        const r = lmHeadLogProbs(xi, wi, tf.tensor1d(ids, 'int32'), { temperature: 0.7, chunkRows: 4, recompute, entropy: 'differentiable' });
        return r.logp.mul(tf.tensor1d(up)).sum().add(r.entropy!.sum());
      };
      const r = lmHeadLogProbs(x, w, tf.tensor1d(ids, 'int32'), { temperature: 0.7, chunkRows: 4, recompute, entropy: true });
      return [r.logp, r.entropy!, ...tf.grads(f as (a: tf.Tensor, b: tf.Tensor) => tf.Tensor)([x, w])];
    };
    const want = await runOn('cpu', fn);
    const got = await onNative(fn);
    ['logp', 'entropy', 'dx', 'dW'].forEach((name, i) => assert.ok(relErr(got[i], want[i]) < 1e-4, `${name} (recompute ${recompute}): ${relErr(got[i], want[i])}`));
  }
});

test('grouped attention products (q k^T and p v, batched): values and gradients equal the cpu backend\'s', async () => {
  if (!blas) return;
  const G = 6, M = 10, K = 16, S = 12;
  const qv = randomArray(G * M * K, 'att-q'), kv = randomArray(G * S * K, 'att-k');
  const fn = () => {
    const q = tf.tensor3d(qv, [G, M, K]), k = tf.tensor3d(kv, [G, S, K]);
    const up = tf.tensor3d(randomArray(G * M * S, 'att-up'), [G, M, S]);
    const [dq, dk] = tf.grads((a: tf.Tensor, b: tf.Tensor) => groupedMatMul(a as tf.Tensor3D, b as tf.Tensor3D, true).mul(up).sum())([q, k]);
    return [groupedMatMul(q, k, true), dq, dk];
  };
  const want = await runOn('cpu', fn);
  const got = await onNative(fn);
  ['scores', 'dq', 'dk'].forEach((name, i) => assert.ok(relErr(got[i], want[i]) < 1e-5, `${name}: ${relErr(got[i], want[i])}`));
});

test('initBackend: reports the GEMM it chose; xnnpack turns the native one off; a missing library falls back with a note, or fails when native is required', async () => {
  const notes: string[] = [];
  const info = await initBackend('wasm', { log: (l) => notes.push(l), gemm: 'auto' });
  if (blas) {
    assert.is(info.gemm, blas.name);
    assert.match(info.device, /GEMM on /);
    assert.ok(nativeGemm());
  } else {
    assert.is(info.gemm, 'xnnpack');
  }
  const off = await initBackend('wasm', { log: () => {}, gemm: 'xnnpack' });
  assert.is(off.gemm, 'xnnpack');
  assert.is(nativeGemm(), null, 'xnnpack: no native products');
  const saved = process.env.PROMEDICAL_BLAS;
  process.env.PROMEDICAL_BLAS = '/nonexistent/libopenblas.so.0';
  try {
    const lines: string[] = [];
    const fallback = await initBackend('wasm', { log: (l) => lines.push(l), gemm: 'auto' });
    assert.is(fallback.gemm, 'xnnpack');
    assert.ok(lines.some((l) => /matrix products on XNNPACK: .*\/nonexistent\/libopenblas\.so\.0/.test(l)), lines.join('\n'));
    try {
      await initBackend('wasm', { log: () => {}, gemm: 'native' });
      assert.unreachable('native without a BLAS must fail');
    } catch (err) {
      assert.match((err as Error).message, /gemm 'native': .*nonexistent/);
    }
  } finally {
    if (saved === undefined) delete process.env.PROMEDICAL_BLAS;
    else process.env.PROMEDICAL_BLAS = saved;
    useNativeGemm(null);
    await useBackend('wasm');
  }
});

test.run();
