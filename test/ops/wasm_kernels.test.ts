// The kernels we add to the wasm backend, against the cpu backend's own kernels (tfjs's reference
// implementation) and a hand computation, values and gradients.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as tf from '@tensorflow/tfjs';
import { guardWasmHeap, reducePermutation, WASM_EXTRA_KERNELS, type WasmHeapModule } from '../../src/ops/wasm_kernels.js';
import { maxAbsDiff, randomArray, randomInts, runOn, useBackend } from '../helpers/backends.js';

test('our kernels are the ones registered on wasm', async () => {
  await useBackend('wasm');
  const names = new Set(tf.getKernelsForBackend('wasm').map((k) => k.kernelName));
  for (const k of WASM_EXTRA_KERNELS) assert.ok(names.has(k), `${k} registered`);
});

test('UnsortedSegmentSum: hand-computed case, ids out of range dropped', async () => {
  const [out] = await runOn('wasm', () => [
    tf.unsortedSegmentSum(tf.tensor2d([[1, 2], [3, 4], [5, 6], [7, 8]]), tf.tensor1d([2, 0, 2, 3], 'int32'), 3),
  ]);
  // row 0 <- x[1]; row 1 <- nothing; row 2 <- x[0] + x[2]; id 3 >= numSegments contributes nothing
  assert.equal(out, [3, 4, 0, 0, 6, 8]);
});

test('UnsortedSegmentSum matches cpu on random float and int inputs of rank 2 and 4', async () => {
  const cases = [
    { xShape: [64, 17], segments: 40, dtype: 'float32' as const },
    { xShape: [7, 5, 3, 4], segments: 9, dtype: 'float32' as const },
    { xShape: [50, 8], segments: 12, dtype: 'int32' as const },
  ];
  for (const [i, c] of cases.entries()) {
    const n = c.xShape.reduce((a, b) => a * b, 1);
    const m = c.xShape[0];
    const xs = c.dtype === 'int32' ? randomInts(n, `x${i}`, -50, 50) : randomArray(n, `x${i}`);
    const ids = randomInts(m, `ids${i}`, 0, c.segments);
    const fn = () => [tf.unsortedSegmentSum(tf.tensor(xs, c.xShape, c.dtype), tf.tensor1d(ids, 'int32'), c.segments)];
    const [w] = await runOn('wasm', fn);
    const [cpu] = await runOn('cpu', fn);
    assert.ok(maxAbsDiff(w, cpu) < 1e-5, `case ${i}: max diff ${maxAbsDiff(w, cpu)}`);
  }
});

test('gather gradient (embedding lookup with repeated ids, axis 1, batch dims) matches cpu', async () => {
  const table = randomArray(30 * 8, 'table');
  const ids = randomInts(4 * 12, 'tok', 0, 30);
  const upstream = randomArray(4 * 12 * 8, 'dy');
  const heads = randomArray(2 * 4 * 5 * 3, 'heads');
  const fn = () => {
    const w = tf.tensor2d(table, [30, 8]);
    const g = tf.grad((t: tf.Tensor) => tf.gather(t, tf.tensor2d(ids, [4, 12], 'int32')).mul(tf.tensor3d(upstream, [4, 12, 8])).sum())(w);
    // GQA-style expansion: gather on the head axis, then a gradient back to the kv heads.
    const kv = tf.tensor4d(heads, [2, 4, 5, 3]);
    const idx = tf.tensor1d([0, 0, 1, 1, 2, 2, 3, 3], 'int32');
    const gh = tf.grad((t: tf.Tensor) => tf.gather(t, idx, 1).square().sum())(kv);
    return [g, gh];
  };
  const wasm = await runOn('wasm', fn);
  const cpu = await runOn('cpu', fn);
  for (let i = 0; i < wasm.length; i++) assert.ok(maxAbsDiff(wasm[i], cpu[i]) < 1e-5, `output ${i}: ${maxAbsDiff(wasm[i], cpu[i])}`);
});

test('a decoder-shaped training step (embed, rmsnorm, attention softmax, swiglu, cross-entropy) has the same loss and gradients on wasm and cpu', async () => {
  const V = 23, H = 8, T = 6, B = 2, I = 12;
  const emb = randomArray(V * H, 'emb');
  const wq = randomArray(H * H, 'wq');
  const wk = randomArray(H * H, 'wk');
  const wg = randomArray(H * I, 'wg');
  const wu = randomArray(H * I, 'wu');
  const wd = randomArray(I * H, 'wd');
  const ids = randomInts(B * T, 'ids', 0, V);
  const targets = randomInts(B * T, 'tgt', 0, V);
  const fn = () => {
    const params = [tf.tensor2d(emb, [V, H]), tf.tensor2d(wq, [H, H]), tf.tensor2d(wk, [H, H]), tf.tensor2d(wg, [H, I]), tf.tensor2d(wu, [H, I]), tf.tensor2d(wd, [I, H])];
    const loss = (e: tf.Tensor, q: tf.Tensor, k: tf.Tensor, g: tf.Tensor, u: tf.Tensor, d: tf.Tensor) => {
      let x = tf.gather(e, tf.tensor1d(ids, 'int32')).reshape([B, T, H]) as tf.Tensor3D;
      const norm = x.mul(tf.rsqrt(x.square().mean(-1, true).add(1e-6)));
      const qs = tf.matMul(norm.reshape([B * T, H]), q).reshape([B, T, H]);
      const ks = tf.matMul(norm.reshape([B * T, H]), k).reshape([B, T, H]);
      const causal = tf.linalg.bandPart(tf.ones([T, T]), -1, 0);
      const scores = tf.matMul(qs, ks, false, true).div(Math.sqrt(H)).add(tf.sub(1, causal).mul(-1e9));
      x = x.add(tf.matMul(tf.softmax(scores), norm));
      const flat = x.reshape([B * T, H]);
      const hidden = tf.matMul(tf.mul(tf.matMul(flat, g).mul(tf.sigmoid(tf.matMul(flat, g))), tf.matMul(flat, u)), d);
      const logits = tf.matMul(flat.add(hidden), e, false, true);
      const logp = tf.logSoftmax(logits);
      return tf.neg(tf.mean(tf.sum(logp.mul(tf.oneHot(tf.tensor1d(targets, 'int32'), V)), -1))) as tf.Scalar;
    };
    const { value, grads } = tf.valueAndGrads(loss as (...a: tf.Tensor[]) => tf.Scalar)(params);
    return [value, ...grads];
  };
  const wasm = await runOn('wasm', fn);
  const cpu = await runOn('cpu', fn);
  assert.ok(Number.isFinite(wasm[0][0]));
  for (let i = 0; i < wasm.length; i++) {
    const scale = Math.max(1, ...cpu[i].map(Math.abs));
    assert.ok(maxAbsDiff(wasm[i], cpu[i]) / scale < 1e-4, `output ${i}: ${maxAbsDiff(wasm[i], cpu[i])}`);
  }
});

test('Slice through heap views equals the cpu backend on every rank, partial and whole axes', async () => {
  const cases: [number[], number[], number[]][] = [
    [[10], [3], [5]],
    [[6, 7], [2, 0], [3, 7]], // whole rows: one contiguous run
    [[6, 7], [1, 2], [4, 3]], // a window
    [[4, 5, 6], [1, 0, 0], [2, 5, 6]],
    [[4, 5, 6], [0, 2, 1], [4, 2, 4]],
    [[3, 4, 5, 6], [1, 1, 0, 2], [2, 3, 5, 3]],
    [[2, 3, 4, 5, 6], [1, 0, 2, 1, 0], [1, 3, 2, 3, 6]],
    [[5, 4], [2, 0], [0, 4]], // empty
  ];
  for (const [shape, begin, size] of cases) {
    const n = shape.reduce((a, b) => a * b, 1);
    const values = randomArray(n, `slice${shape}`);
    const fn = () => [tf.slice(tf.tensor(values, shape), begin, size), tf.slice(tf.tensor(Int32Array.from(values, (v) => Math.round(v * 100)), shape, 'int32'), begin, size)];
    const w = await runOn('wasm', fn);
    const c = await runOn('cpu', fn);
    assert.equal(w, c, `slice ${shape} at ${begin} size ${size}`);
  }
});

test('SplitV (tf.split) equals the cpu backend on each axis, even and uneven sizes, without reading the input to the host', async () => {
  const shape = [2, 3, 4, 6];
  const values = randomArray(2 * 3 * 4 * 6, 'split');
  for (const [axis, splits] of [[3, [3, 3]], [3, [1, 5]], [1, 3], [0, [1, 1]], [2, [2, 1, 1]]] as [number, number | number[]][]) {
    const fn = () => tf.split(tf.tensor(values, shape), splits, axis);
    assert.equal(await runOn('wasm', fn), await runOn('cpu', fn), `split ${JSON.stringify(splits)} on axis ${axis}`);
  }
  await useBackend('wasm');
  const backend = tf.backend() as unknown as { readSync: (...a: unknown[]) => unknown };
  const x = tf.tensor(values, shape);
  const readSync = backend.readSync;
  let reads = 0;
  backend.readSync = (...a: unknown[]) => (reads++, readSync.apply(backend, a));
  try {
    tf.dispose(tf.split(x, [3, 3], 3));
  } finally {
    backend.readSync = readSync;
    x.dispose();
  }
  assert.is(reads, 0, 'no host read of the input');
});

test('Identity shares data: a clone outlives its source with the same values', async () => {
  await useBackend('wasm');
  const a = tf.tensor1d([1, 2, 3]);
  const b = a.clone();
  a.dispose();
  assert.equal(Array.from(b.dataSync()), [1, 2, 3]);
  const v = tf.variable(tf.tensor1d([4, 5]));
  const saved = v.clone();
  v.assign(tf.tensor1d([6, 7])); // assign swaps the variable's data; the clone keeps the old values
  assert.equal(Array.from(saved.dataSync()), [4, 5]);
  assert.equal(Array.from(v.dataSync()), [6, 7]);
  tf.dispose([b, v, saved]);
});

test('reducePermutation: size-1 axes dropped, neighbouring axes merged', () => {
  assert.equal(reducePermutation([1, 512, 16, 128], [0, 2, 1, 3]), { shape: [512, 16, 128], perm: [1, 0, 2] });
  assert.equal(reducePermutation([2, 3, 4, 5], [0, 2, 1, 3]), { shape: [2, 3, 4, 5], perm: [0, 2, 1, 3] });
  assert.equal(reducePermutation([2, 3, 4], [2, 0, 1]), { shape: [6, 4], perm: [1, 0] });
  assert.equal(reducePermutation([3, 4], [0, 1]), { shape: [12], perm: [0] });
  assert.equal(reducePermutation([5, 1], [1, 0]), { shape: [5], perm: [0] });
});

test('Transpose equals the cpu backend: tiled matrices (edges off the tile), batched, and shapes left to tfjs (head swaps, other permutations, bool)', async () => {
  const cases: { shape: number[]; perm: number[]; dtype?: 'int32' | 'bool' }[] = [
    { shape: [130, 203], perm: [1, 0] }, // tiled; 130 and 203 are not multiples of 16
    { shape: [2, 144, 160], perm: [0, 2, 1] }, // tiled, batched
    { shape: [1, 144, 1, 130], perm: [3, 1, 2, 0] }, // reduces to a tiled [144, 130] transpose
    { shape: [129, 128], perm: [1, 0], dtype: 'int32' }, // tiled, int bits copied exactly
    { shape: [37, 21], perm: [1, 0] }, // below the tiled size: tfjs
    { shape: [2, 7, 3, 5], perm: [0, 2, 1, 3] },
    { shape: [2, 3, 4, 5], perm: [3, 1, 0, 2] },
    { shape: [5, 3, 2], perm: [0, 2, 1], dtype: 'bool' },
  ];
  for (const [i, c] of cases.entries()) {
    const n = c.shape.reduce((a, b) => a * b, 1);
    const values = c.dtype ? randomInts(n, `t${i}`, c.dtype === 'bool' ? 0 : -(2 ** 30), c.dtype === 'bool' ? 2 : 2 ** 30) : randomArray(n, `t${i}`);
    const fn = () => [tf.transpose(tf.tensor(values, c.shape, c.dtype ?? 'float32'), c.perm)];
    const [w] = await runOn('wasm', fn);
    const [cpu] = await runOn('cpu', fn);
    assert.equal(w, cpu, `case ${i}: [${c.shape}] by [${c.perm}]`);
  }
});

test('guardWasmHeap: a malloc that returns 0 becomes an error naming the size; other allocations pass; the real module keeps working', async () => {
  const calls: number[] = [];
  const fake: WasmHeapModule = {
    asm: { malloc: (bytes: number) => (calls.push(bytes), bytes > 2 ** 20 ? 0 : 4096) },
    _malloc: () => -1, // emscripten's stub: replaced, never called
    HEAPU8: new Uint8Array(2 ** 20),
  };
  guardWasmHeap(fake);
  guardWasmHeap(fake); // twice: still one wrapper
  assert.is(fake._malloc(64), 4096);
  assert.throws(() => fake._malloc(3 * 2 ** 20), /wasm heap exhausted: could not allocate 3\.0 MB \(heap 1 MB, 4096 MB at most\)/);
  assert.equal(calls, [64, 3 * 2 ** 20]);

  await useBackend('wasm');
  const mod = (tf.backend() as unknown as { wasm: WasmHeapModule }).wasm;
  guardWasmHeap(mod);
  assert.ok((mod._malloc as { guarded?: boolean }).guarded, 'the backend allocates through the guard');
  const [sum] = await runOn('wasm', () => [tf.add(tf.tensor1d([1, 2]), tf.tensor1d([3, 4]))]);
  assert.equal(sum, [4, 6]);
});

test.run();
