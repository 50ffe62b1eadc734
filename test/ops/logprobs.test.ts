// selectiveLogSoftmax against the naive formulation (log-softmax, then pick), values and
// gradients, on cpu and wasm; and the full Qwen3 vocabulary at 2,048 tokens on wasm.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as tf from '@tensorflow/tfjs';
import { selectiveLogSoftmax } from '../../src/ops/logprobs.js';
import { maxAbsDiff, randomArray, randomInts, runOn, useBackend } from '../helpers/backends.js';

const B = 3, T = 5, V = 37;
const logits = randomArray(B * T * V, 'logits', -4, 4);
const ids = randomInts(B * T, 'ids', 0, V);
const up = randomArray(B * T, 'up');

/** The naive way: full log-softmax, one-hot pick (tfjs ops and autodiff on the cpu backend). */
function naive(temperature: number): tf.Tensor[] {
  const z = tf.tensor3d(logits, [B, T, V]);
  const f = (x: tf.Tensor) => tf.logSoftmax(x.div(temperature)).mul(tf.oneHot(tf.tensor2d(ids, [B, T], 'int32'), V)).sum(-1);
  const g = tf.grad((x: tf.Tensor) => f(x).mul(tf.tensor2d(up, [B, T])).sum())(z);
  return [f(z), g];
}

for (const temperature of [1, 0.7]) {
  test(`selectiveLogSoftmax equals the naive formulation (temperature ${temperature})`, async () => {
    const [want, wantGrad] = await runOn('cpu', () => naive(temperature));
    for (const backend of ['cpu', 'wasm'] as const) {
      const [got, grad] = await runOn(backend, () => {
        const z = tf.tensor3d(logits, [B, T, V]);
        const y = tf.tensor2d(ids, [B, T], 'int32');
        const f = (x: tf.Tensor) => selectiveLogSoftmax(x, y, { temperature });
        const g = tf.grad((x: tf.Tensor) => f(x).mul(tf.tensor2d(up, [B, T])).sum())(z);
        return [f(z), g];
      });
      assert.ok(maxAbsDiff(got, want) < 1e-5, `${backend} values ${maxAbsDiff(got, want)}`);
      assert.ok(maxAbsDiff(grad, wantGrad) < 1e-5, `${backend} gradient ${maxAbsDiff(grad, wantGrad)}`);
    }
  });
}

test('chunked rows (7 per chunk, a ragged last chunk) give the same values and gradients on both backends', async () => {
  const [want, wantGrad] = await runOn('cpu', () => naive(1));
  for (const backend of ['cpu', 'wasm'] as const) {
    const [got, grad] = await runOn(backend, () => {
      const z = tf.tensor3d(logits, [B, T, V]);
      const y = tf.tensor2d(ids, [B, T], 'int32');
      const g = tf.grad((x: tf.Tensor) => selectiveLogSoftmax(x, y, { chunkRows: 7 }).mul(tf.tensor2d(up, [B, T])).sum())(z);
      return [selectiveLogSoftmax(z, y, { chunkRows: 7 }), g];
    });
    assert.ok(maxAbsDiff(got, want) < 1e-5, `${backend} values`);
    assert.ok(maxAbsDiff(grad, wantGrad) < 1e-5, `${backend} gradient`);
  }
});

test("Qwen3's full vocabulary at B*T = 2048 runs on wasm within its 4 GB, value and gradient", async () => {
  await useBackend('wasm');
  const N = 2048, VV = 151936;
  // Rows differ by a per-row offset and tilt; one broadcast add makes the 1.2 GB of logits.
  const z = tf.tidy(() => tf.sin(tf.range(0, VV).mul(0.001)).mul(4).expandDims(0).add(tf.range(0, N).mul(0.01).expandDims(1))) as tf.Tensor2D;
  const y = tf.tensor1d(randomInts(N, 'big', 0, VV), 'int32');
  const { value, grads } = tf.valueAndGrads((x: tf.Tensor) => selectiveLogSoftmax(x, y).sum() as tf.Scalar)([z]);
  const g = grads[0];
  // Rows are shifts of one another, so every row has the same distribution: check two rows in
  // float64 against softmax computed here, from the formula.
  const base = Array.from(tf.tidy(() => tf.sin(tf.range(0, VV).mul(0.001)).mul(4)).dataSync());
  const max = base.reduce((a, v) => Math.max(a, v), -Infinity);
  const lse = max + Math.log(base.reduce((a, v) => a + Math.exp(v - max), 0));
  const ids = y.dataSync();
  for (const row of [0, N - 1]) {
    const gr = g.slice([row, 0], [1, VV]).dataSync();
    let sum = 0;
    for (let j = 0; j < VV; j++) sum += gr[j];
    assert.ok(Math.abs(sum) < 1e-3, `row ${row} sums to ${sum}`);
    const id = ids[row];
    assert.ok(Math.abs(gr[id] - (1 - Math.exp(base[id] - lse))) < 1e-6, 'picked entry is 1 - p');
    assert.ok(Math.abs(gr[(id + 1) % VV] + Math.exp(base[(id + 1) % VV] - lse)) < 1e-6, 'others are -p');
  }
  const expected = Array.from(ids).reduce((a, id) => a + base[id] - lse, 0);
  assert.ok(Math.abs(value.dataSync()[0] - expected) / Math.abs(expected) < 1e-4, 'sum of log-probs');
  tf.dispose([z, y, value, g]);
});

test('ids that do not match the logits are refused', async () => {
  await useBackend('cpu');
  assert.throws(() => selectiveLogSoftmax(tf.zeros([2, 3, 4]), tf.zeros([2, 2], 'int32')), /ids have shape \[2,2\], logits \[2,3,4\]/);
});

test.run();
