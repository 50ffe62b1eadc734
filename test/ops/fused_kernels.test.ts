// RMSNorm, SwiGLU and RoPE (src/ops/layers.ts): values and gradients of our ops, on wasm (the
// fused kernels of RMSNorm and RoPE) and on cpu (the hand-written gradients as tfjs ops), against
// each formula written here as plain tfjs ops, differentiated by tfjs's autodiff on the cpu backend.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as tf from '@tensorflow/tfjs';
import { FUSED_KERNELS } from '../../src/ops/fused_kernels.js';
import { applyRope, rmsNorm, swiglu } from '../../src/ops/layers.js';
import { maxAbsDiff, randomArray, runOn, useBackend } from '../helpers/backends.js';

const EPS = 1e-6;
const size = (shape: number[]) => shape.reduce((a, b) => a * b, 1);

const refRmsNorm = (x: tf.Tensor, w: tf.Tensor) => x.mul(tf.rsqrt(x.square().mean(-1, true).add(EPS))).mul(w);
const refSwiglu = (gate: tf.Tensor, up: tf.Tensor) => gate.mul(tf.sigmoid(gate)).mul(up);
function refRope(x: tf.Tensor, cos: tf.Tensor, sin: tf.Tensor): tf.Tensor {
  const [x1, x2] = tf.split(x, 2, 3);
  return x.mul(cos).add(tf.concat([x2.neg(), x1], 3).mul(sin));
}

/**
 * The value of f at `inputs` and the gradients of sum(f * upstream) with respect to the first
 * `differentiated` inputs (the rest are passed through as constants).
 */
function valueAndGrads(f: (...t: tf.Tensor[]) => tf.Tensor, inputs: tf.Tensor[], upstream: Float32Array, differentiated = inputs.length): tf.Tensor[] {
  const constants = inputs.slice(differentiated);
  const value = f(...inputs);
  const grads = tf.grads((...xs: tf.Tensor[]) => f(...xs, ...constants).mul(tf.tensor(upstream, value.shape)).sum())(inputs.slice(0, differentiated));
  return [value, ...grads];
}

/** Each output of ours (on wasm and on cpu) against the reference on cpu, relative to the reference's largest value. */
async function assertMatches(label: string, ours: () => tf.Tensor[], reference: () => tf.Tensor[], tol = 1e-6): Promise<void> {
  const ref = await runOn('cpu', reference);
  for (const backend of ['wasm', 'cpu'] as const) {
    const got = await runOn(backend, ours);
    assert.is(got.length, ref.length);
    for (let i = 0; i < ref.length; i++) {
      const scale = Math.max(1e-30, ...ref[i].map(Math.abs));
      const err = maxAbsDiff(got[i], ref[i]) / scale;
      assert.ok(err < tol, `${label} on ${backend}, output ${i}: relative error ${err}`);
    }
  }
}

test('the fused kernels are registered on wasm and absent on cpu', async () => {
  await useBackend('wasm');
  for (const k of FUSED_KERNELS) {
    assert.ok(tf.getKernel(k, 'wasm'), `${k} on wasm`);
    assert.not.ok(tf.getKernel(k, 'cpu'), `${k} not on cpu`);
  }
});

test('rmsNorm: value, dx and dw match autodiff of the formula (odd D, batch > 1, the q/k-norm shape [B, T, n, D])', async () => {
  const shapes = [[3, 7], [2, 5, 16], [2, 6, 4, 8], [1, 33, 64], [4, 3, 2, 5], [1, 1, 128], [2, 3, 300]]; // D > 256: tfjs ops
  for (const shape of shapes) {
    const D = shape[shape.length - 1];
    const xs = randomArray(size(shape), `x${shape}`, -3, 3);
    const ws = randomArray(D, `w${shape}`, 0.5, 1.5);
    const dy = randomArray(size(shape), `dy${shape}`);
    const inputs = () => [tf.tensor(xs, shape), tf.tensor1d(ws)];
    await assertMatches(
      `rmsNorm [${shape}]`,
      () => valueAndGrads((x, w) => rmsNorm(x, w, EPS), inputs(), dy),
      () => valueAndGrads(refRmsNorm, inputs(), dy),
    );
  }
});

test('rmsNorm inside variableGrads: the weight, a variable, gets its gradient', async () => {
  const shape = [2, 9, 12];
  const xs = randomArray(size(shape), 'vx');
  const ws = randomArray(12, 'vw', 0.5, 1.5);
  const run = (norm: (x: tf.Tensor, w: tf.Tensor) => tf.Tensor) => () => {
    const w = tf.variable(tf.tensor1d(ws), true, 'rmsnorm-weight');
    const { value, grads } = tf.variableGrads(() => norm(tf.tensor(xs, shape), w).square().sum() as tf.Scalar, [w]);
    const out = [value, grads[w.name]];
    w.dispose();
    return out;
  };
  await assertMatches('variableGrads', run((x, w) => rmsNorm(x, w, EPS)), run(refRmsNorm));
});

test('swiglu: value and both gradients match autodiff of the formula', async () => {
  for (const shape of [[13], [2, 5, 24], [3, 7, 11], [1, 4, 96]]) {
    const gs = randomArray(size(shape), `g${shape}`, -6, 6);
    const us = randomArray(size(shape), `u${shape}`, -2, 2);
    const dy = randomArray(size(shape), `dy${shape}`);
    const inputs = () => [tf.tensor(gs, shape), tf.tensor(us, shape)];
    await assertMatches(`swiglu [${shape}]`, () => valueAndGrads(swiglu, inputs(), dy), () => valueAndGrads(refSwiglu, inputs(), dy));
  }
});

test('applyRope: value and dx match autodiff of the formula, for general tables, B > 1 and tables shared over the batch', async () => {
  const cases = [
    { x: [2, 3, 5, 8], table: [2, 1, 5, 8] },
    { x: [1, 4, 7, 16], table: [1, 1, 7, 16] },
    { x: [3, 2, 6, 4], table: [1, 1, 6, 4] }, // one table for every batch row
    { x: [2, 1, 1, 2], table: [2, 1, 1, 2] },
    { x: [2, 5, 9, 64], table: [2, 1, 9, 64] },
  ];
  for (const c of cases) {
    const label = `x [${c.x}], tables [${c.table}]`;
    // Tables of random values, not cos/sin of angles: the halves differ, so a gradient that
    // assumed cat(f, f) tables would fail.
    const xs = randomArray(size(c.x), `x${label}`, -2, 2);
    const cs = randomArray(size(c.table), `cos${label}`);
    const ss = randomArray(size(c.table), `sin${label}`);
    const dy = randomArray(size(c.x), `dy${label}`);
    const inputs = () => [tf.tensor(xs, c.x), tf.tensor(cs, c.table), tf.tensor(ss, c.table)];
    const ours = (x: tf.Tensor, cos: tf.Tensor, sin: tf.Tensor) => applyRope(x as tf.Tensor4D, cos as tf.Tensor4D, sin as tf.Tensor4D);
    await assertMatches(`applyRope ${label}`, () => valueAndGrads(ours, inputs(), dy, 1), () => valueAndGrads(refRope, inputs(), dy, 1));
  }
});

/** The names of the backend kernels (not customGrad scopes) that `f` runs on wasm. */
async function wasmKernelsOf(f: () => tf.Tensor | tf.Tensor[]): Promise<string[]> {
  const info = await tf.profile(() => f());
  return info.kernels.map((k) => k.name).filter((name) => tf.getKernel(name, 'wasm') != null);
}

test('on wasm RoPE is one kernel each way and RMSNorm\'s backward one kernel (rows up to 256)', async () => {
  await useBackend('wasm');
  const x = tf.tensor(randomArray(2 * 4 * 3 * 8, 'px'), [2, 4, 3, 8]);
  const w = tf.tensor1d(randomArray(8, 'pw'));
  const table = tf.tensor(randomArray(2 * 3 * 8, 'pt'), [2, 1, 3, 8]);
  const dy = tf.tensor(randomArray(2 * 4 * 3 * 8, 'pdy'), [2, 4, 3, 8]);
  assert.equal(await wasmKernelsOf(() => applyRope(x as tf.Tensor4D, table as tf.Tensor4D, table as tf.Tensor4D)), ['PromedicalRope']);
  // With the tape on: the forward kernel, the clones kept for the backward pass (Identity shares
  // data on wasm) and the gradient kernel.
  const compute = (names: string[]) => names.filter((n) => n !== 'Identity');
  const normKernels = async (t: tf.Tensor, v: tf.Tensor, g: tf.Tensor) => compute(await wasmKernelsOf(() => tf.grads((a: tf.Tensor, b: tf.Tensor) => rmsNorm(a, b, EPS))([t, v], g)));
  assert.equal((await normKernels(x, w, dy)).filter((n) => n.startsWith('Promedical')), ['PromedicalRmsNormGrad']);
  // Longer rows: the tfjs ops both ways (faster there).
  const [xl, wl, dyl] = [tf.randomNormal([3, 512]), tf.randomNormal([512]), tf.randomNormal([3, 512])];
  assert.not.ok((await normKernels(xl, wl, dyl)).some((n) => n.startsWith('Promedical')));
  tf.dispose([xl, wl, dyl]);
  assert.equal(compute(await wasmKernelsOf(() => tf.grad((a: tf.Tensor) => applyRope(a as tf.Tensor4D, table as tf.Tensor4D, table as tf.Tensor4D))(x, dy))), ['PromedicalRope', 'PromedicalRope']);
  tf.dispose([x, w, table, dy]);
});

test('a forward and backward pass leaves no tensors behind, on wasm and cpu', async () => {
  for (const backend of ['wasm', 'cpu'] as const) {
    await useBackend(backend);
    const x = tf.tensor(randomArray(2 * 4 * 3 * 8, 'lx'), [2, 4, 3, 8]) as tf.Tensor4D;
    const w = tf.tensor1d(randomArray(8, 'lw'));
    const table = tf.tensor(randomArray(2 * 3 * 8, 'lt'), [2, 1, 3, 8]) as tf.Tensor4D;
    const before = tf.memory().numTensors;
    const outs = tf.grads((a: tf.Tensor, b: tf.Tensor) => swiglu(applyRope(rmsNorm(a, b, EPS) as tf.Tensor4D, table, table), a).sum())([x, w]);
    const values = [rmsNorm(x, w, EPS), swiglu(x, x), applyRope(x, table, table)];
    tf.dispose([...outs, ...values]);
    assert.is(tf.memory().numTensors, before, `tensors on ${backend}`);
    tf.dispose([x, w, table]);
  }
});

test('rmsNorm wants a weight [D], swiglu operands of one shape', async () => {
  await useBackend('cpu');
  const x = tf.zeros([2, 3, 4]);
  assert.throws(() => rmsNorm(x, tf.ones([3]), EPS), /rmsNorm: weight has shape \[3\], expected \[4\]/);
  assert.throws(() => swiglu(x, tf.zeros([3, 4])), /swiglu: gate \[2,3,4\] and up \[3,4\] must have the same shape/);
  x.dispose();
});

test.run();
