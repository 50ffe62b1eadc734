// linear (weight-first products, chunked input gradient, frozen variant) and groupedMatMul against
// tfjs's own matMul and autodiff on the cpu backend.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as tf from '@tensorflow/tfjs';
import { linear } from '../../src/ops/layers.js';
import { groupedMatMul } from '../../src/ops/attention.js';
import { maxAbsDiff, randomArray, runOn } from '../helpers/backends.js';

const IN = 4096, OUT = 1500; // 1500 rows of 4096 span two 16 MB transpose chunks (1024 + 476)
const xs = randomArray(2 * 3 * IN, 'x'), ws = randomArray(OUT * IN, 'w'), ups = randomArray(2 * 3 * OUT, 'up');

function reference(): tf.Tensor[] {
  const x = tf.tensor3d(xs, [2, 3, IN]), w = tf.tensor2d(ws, [OUT, IN]), up = tf.tensor3d(ups, [2, 3, OUT]);
  const f = (a: tf.Tensor, b: tf.Tensor) => tf.matMul(a.reshape([6, IN]), b, false, true).reshape([2, 3, OUT]).mul(up).sum() as tf.Scalar;
  const { value, grads } = tf.valueAndGrads(f)([x, w]);
  return [tf.matMul(x.reshape([6, IN]), w, false, true), value, ...grads];
}

test('linear: values and both gradients (chunked) equal tfjs matMul + autodiff', async () => {
  const [refY, , refDx, refDw] = await runOn('cpu', reference);
  for (const backend of ['cpu', 'wasm'] as const) {
    const [y, , dx, dw] = await runOn(backend, () => {
      const x = tf.tensor3d(xs, [2, 3, IN]), w = tf.tensor2d(ws, [OUT, IN]), up = tf.tensor3d(ups, [2, 3, OUT]);
      const { value, grads } = tf.valueAndGrads((a: tf.Tensor, b: tf.Tensor) => linear(a, b).mul(up).sum() as tf.Scalar)([x, w]);
      return [linear(x, w).reshape([6, OUT]), value, ...grads];
    });
    assert.ok(maxAbsDiff(y, refY) < 1e-3, `${backend} y ${maxAbsDiff(y, refY)}`);
    assert.ok(maxAbsDiff(dx, refDx) < 1e-3, `${backend} dx ${maxAbsDiff(dx, refDx)}`);
    assert.ok(maxAbsDiff(dw, refDw) < 1e-4, `${backend} dw ${maxAbsDiff(dw, refDw)}`);
  }
});

test('linear with a frozen weight: same value and input gradient, and no gradient reaches the weight', async () => {
  const [refDx] = await runOn('cpu', () => [reference()[2]]);
  const [dx] = await runOn('wasm', () => {
    const x = tf.tensor3d(xs, [2, 3, IN]), w = tf.variable(tf.tensor2d(ws, [OUT, IN])), up = tf.tensor3d(ups, [2, 3, OUT]);
    const g = tf.grad((a: tf.Tensor) => linear(a, w, false).mul(up).sum() as tf.Scalar)(x);
    assert.throws(() => tf.variableGrads(() => linear(x, w, false).mul(up).sum() as tf.Scalar, [w]), /Cannot find a connection between any variable and the result/);
    w.dispose();
    return [g];
  });
  assert.ok(maxAbsDiff(dx, refDx) < 1e-3);
});


// Two shapes: the gradient for B is written through A^T (first) or through dC^T (second).
for (const [G, M, K, N] of [[3, 5, 4, 6], [2, 5, 8, 2]]) {
  test(`groupedMatMul [${G},${M},${K}] x [${K},${N}] (plain 2D products per group on wasm): values and gradients equal tf.matMul + autodiff`, async () => {
    const as = randomArray(G * M * K, 'ga'), bs = randomArray(G * K * N, 'gb'), up = randomArray(G * M * N, 'gup');
    for (const transposeB of [false, true]) {
      const bShape: [number, number, number] = transposeB ? [G, N, K] : [G, K, N];
      const run = (f: (a: tf.Tensor3D, b: tf.Tensor3D) => tf.Tensor) => () => {
        const a = tf.tensor3d(as, [G, M, K]), b = tf.tensor3d(bs, bShape), u = tf.tensor3d(up, [G, M, N]);
        const { grads } = tf.valueAndGrads((x: tf.Tensor, y: tf.Tensor) => f(x as tf.Tensor3D, y as tf.Tensor3D).mul(u).sum() as tf.Scalar)([a, b]);
        return [f(a, b), ...grads];
      };
      const want = await runOn('cpu', run((a, b) => tf.matMul(a, b, false, transposeB)));
      const got = await runOn('wasm', run((a, b) => groupedMatMul(a, b, transposeB)));
      ['value', 'dA', 'dB'].forEach((name, k) => assert.ok(maxAbsDiff(got[k], want[k]) < 1e-5, `transposeB ${transposeB} ${name}: ${maxAbsDiff(got[k], want[k])}`));
    }
  });
}

test.run();
