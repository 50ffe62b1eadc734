// The fused LM head + selective log-softmax against the unfused formulation (x W^T, full
// log-softmax, one-hot pick, tfjs autodiff on the cpu backend): log-probs, entropies and the
// gradients for x and W, with and without temperature, kept or recomputed probabilities, small
// row blocks, a frozen W; on cpu and wasm.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as tf from '@tensorflow/tfjs';
import { lmHeadLogProbs } from '../../src/ops/lm_head.js';
import { maxAbsDiff, randomArray, randomInts, runOn } from '../helpers/backends.js';

const N = 13, H = 8, V = 301;
const xs = randomArray(N * H, 'lm-x', -2, 2);
const ws = randomArray(V * H, 'lm-w', -1, 1);
const ids = randomInts(N, 'lm-ids', 0, V);
const up = randomArray(N, 'lm-up');

function naive(temperature: number): tf.Tensor[] {
  const x = tf.tensor2d(xs, [N, H]);
  const w = tf.tensor2d(ws, [V, H]);
  const logpOf = (xi: tf.Tensor, wi: tf.Tensor) => tf.logSoftmax(tf.matMul(xi, wi, false, true).div(temperature)).mul(tf.oneHot(tf.tensor1d(ids, 'int32'), V)).sum(-1);
  const { grads } = tf.variableGrads(() => logpOf(vx, vw).mul(tf.tensor1d(up)).sum() as tf.Scalar, [vx, vw]);
  const lp = tf.logSoftmax(tf.matMul(x, w, false, true).div(temperature));
  const out = [logpOf(x, w), tf.exp(lp).mul(lp).sum(-1).neg(), grads[vx.name], grads[vw.name]];
  return out;
}
let vx: tf.Variable, vw: tf.Variable;

for (const temperature of [1, 0.7]) {
  for (const recompute of [false, true]) {
    test(`fused LM head equals the unfused one (temperature ${temperature}, ${recompute ? 'recomputed' : 'kept'} probabilities)`, async () => {
      const want = await runOn('cpu', () => {
        vx = tf.variable(tf.tensor2d(xs, [N, H]));
        vw = tf.variable(tf.tensor2d(ws, [V, H]));
        const out = naive(temperature);
        vx.dispose();
        vw.dispose();
        return out;
      });
      for (const backend of ['cpu', 'wasm'] as const) {
        const got = await runOn(backend, () => {
          const x = tf.variable(tf.tensor2d(xs, [N, H]));
          const w = tf.variable(tf.tensor2d(ws, [V, H]));
          const f = () => {
            const r = lmHeadLogProbs(x, w, tf.tensor1d(ids, 'int32'), { temperature, chunkRows: 4, recompute, entropy: true });
            ent = r.entropy!;
            return r.logp;
          };
          let ent: tf.Tensor1D | undefined;
          const { value, grads } = tf.variableGrads(() => f().mul(tf.tensor1d(up)).sum() as tf.Scalar, [x, w]);
          const logp = f();
          const out = [logp, ent!, grads[x.name], grads[w.name], value];
          x.dispose();
          w.dispose();
          return out;
        });
        const names = ['logp', 'entropy', 'dL/dx', 'dL/dW'];
        for (let k = 0; k < 4; k++) assert.ok(maxAbsDiff(got[k], want[k]) < 2e-5, `${backend} ${names[k]}: max |diff| ${maxAbsDiff(got[k], want[k])}`);
      }
    });
  }
}

test('a frozen head gives the same dL/dx and no dL/dW', async () => {
  for (const backend of ['cpu', 'wasm'] as const) {
    const [gx, gTrained] = await runOn(backend, () => {
      const x = tf.variable(tf.tensor2d(xs, [N, H]));
      const w = tf.tensor2d(ws, [V, H]);
      const id = tf.tensor1d(ids, 'int32');
      const frozen = tf.grad((xi: tf.Tensor) => lmHeadLogProbs(xi as tf.Tensor2D, w, id, { trainWeight: false, chunkRows: 5 }).logp.sum())(x);
      const trained = tf.grad((xi: tf.Tensor) => lmHeadLogProbs(xi as tf.Tensor2D, w, id, { chunkRows: 5 }).logp.sum())(x);
      x.dispose();
      return [frozen, trained];
    });
    assert.ok(maxAbsDiff(gx, gTrained) < 1e-6, backend);
  }
});

test('shape errors name the shapes', () => {
  assert.throws(() => lmHeadLogProbs(tf.zeros([2, 4]) as tf.Tensor2D, tf.zeros([10, 5]) as tf.Tensor2D, tf.tensor1d([0, 1], 'int32')), /hidden size 4 but the head weight is \[10,5\]/);
  assert.throws(() => lmHeadLogProbs(tf.zeros([2, 4]) as tf.Tensor2D, tf.zeros([10, 4]) as tf.Tensor2D, tf.tensor1d([0], 'int32')), /1 ids for 2 rows/);
});

test.run();
