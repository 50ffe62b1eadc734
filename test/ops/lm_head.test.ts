// The fused LM head + selective log-softmax against the unfused formulation (x W^T, full
// log-softmax, one-hot pick, tfjs autodiff on the cpu backend): log-probs, entropies and the
// gradients for x and W, with and without temperature, kept or recomputed probabilities, both ways
// of reading log p, small row blocks, W whole or in row blocks, a frozen W, the underflow bound;
// on cpu and wasm.
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
  const [dx, dw] = tf.grads((xi: tf.Tensor, wi: tf.Tensor) => logpOf(xi, wi).mul(tf.tensor1d(up)).sum())([x, w]);
  const lp = tf.logSoftmax(tf.matMul(x, w, false, true).div(temperature));
  return [logpOf(x, w), tf.exp(lp).mul(lp).sum(-1).neg(), dx, dw];
}

// wBlockRows 64 < V takes the large-head path: logits with W first, P W in W blocks (for kept
// probabilities every W block is used by all row blocks before the next one).
for (const temperature of [1, 0.7]) {
  for (const recompute of [false, true]) {
    for (const [withEntropy, wBlockRows] of [[true, undefined], [false, undefined], [false, 64]] as const) {
    test(`fused LM head equals the unfused one (temperature ${temperature}, ${recompute ? 'recomputed' : 'kept'} probabilities, log p ${withEntropy ? 'from the log-sum-exp' : 'read off the softmax'}, W ${wBlockRows ? `in ${wBlockRows}-row blocks` : 'whole'})`, async () => {
      const want = await runOn('cpu', () => naive(temperature));
      for (const backend of ['cpu', 'wasm'] as const) {
        const got = await runOn(backend, () => {
          const x = tf.variable(tf.tensor2d(xs, [N, H]));
          const w = tf.variable(tf.tensor2d(ws, [V, H]));
          const f = () => {
            const r = lmHeadLogProbs(x, w, tf.tensor1d(ids, 'int32'), { temperature, chunkRows: 4, recompute, entropy: withEntropy, wBlockRows });
            ent = r.entropy ?? tf.zeros([N]);
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
        for (let k = 0; k < 4; k++) {
          if (k === 1 && !withEntropy) continue;
          assert.ok(maxAbsDiff(got[k], want[k]) < 2e-5, `${backend} ${names[k]}: max |diff| ${maxAbsDiff(got[k], want[k])}`);
        }
      }
    });
    }
  }
}

const upEnt = randomArray(N, 'lm-up-entropy');

// The loss sum(up * logp + upEnt * H): an entropy bonus beside the policy term.
function naiveWithEntropy(temperature: number, trainWeight: boolean): tf.Tensor[] {
  const x = tf.tensor2d(xs, [N, H]);
  const w = tf.tensor2d(ws, [V, H]);
  const loss = (xi: tf.Tensor, wi: tf.Tensor) => {
    const lp = tf.logSoftmax(tf.matMul(xi, wi, false, true).div(temperature));
    const picked = lp.mul(tf.oneHot(tf.tensor1d(ids, 'int32'), V)).sum(-1);
    const ent = tf.exp(lp).mul(lp).sum(-1).neg();
    return picked.mul(tf.tensor1d(up)).add(ent.mul(tf.tensor1d(upEnt))).sum();
  };
  if (!trainWeight) return [tf.grad((xi: tf.Tensor) => loss(xi, w))(x)];
  return tf.grads(loss)([x, w]);
}

for (const temperature of [1, 0.7]) {
  for (const recompute of [false, true]) {
    for (const [wBlockRows, trainWeight] of [[undefined, true], [64, true], [undefined, false]] as const) {
      test(`a differentiable entropy: its gradient joins log p's (temperature ${temperature}, ${recompute ? 'recomputed' : 'kept'} probabilities, W ${wBlockRows ? `in ${wBlockRows}-row blocks` : 'whole'}${trainWeight ? '' : ', frozen'})`, async () => {
        const want = await runOn('cpu', () => naiveWithEntropy(temperature, trainWeight));
        for (const backend of ['cpu', 'wasm'] as const) {
          const got = await runOn(backend, () => {
            const x = tf.variable(tf.tensor2d(xs, [N, H]));
            const w = tf.variable(tf.tensor2d(ws, [V, H]), trainWeight);
            const vars = trainWeight ? [x, w] : [x];
            const { grads } = tf.variableGrads(() => {
              const r = lmHeadLogProbs(x, w, tf.tensor1d(ids, 'int32'), { temperature, chunkRows: 4, recompute, entropy: 'differentiable', wBlockRows, trainWeight });
              return r.logp.mul(tf.tensor1d(up)).add(r.entropy!.mul(tf.tensor1d(upEnt))).sum() as tf.Scalar;
            }, vars);
            const out = vars.map((v) => grads[v.name]);
            x.dispose();
            w.dispose();
            return out;
          });
          for (let k = 0; k < want.length; k++) {
            assert.ok(maxAbsDiff(got[k], want[k]) < 2e-5, `${backend} ${['dL/dx', 'dL/dW'][k]}: max |diff| ${maxAbsDiff(got[k], want[k])}`);
          }
        }
      });
    }
  }
}

test('a differentiable entropy equals the constant one in value and leaks no tensors', () => {
  const x = tf.tensor2d(xs, [N, H]), w = tf.tensor2d(ws, [V, H]), id = tf.tensor1d(ids, 'int32');
  const a = lmHeadLogProbs(x, w, id, { entropy: true, chunkRows: 4 });
  const before = tf.memory().numTensors;
  for (let i = 0; i < 3; i++) {
    const b = lmHeadLogProbs(x, w, id, { entropy: 'differentiable', chunkRows: 4 });
    assert.ok(maxAbsDiff(a.logp.dataSync(), b.logp.dataSync()) < 1e-6 && maxAbsDiff(a.entropy!.dataSync(), b.entropy!.dataSync()) < 1e-6);
    tf.dispose([b.logp, b.entropy!]);
    tf.dispose(tf.grad((xi: tf.Tensor) => {
      const r = lmHeadLogProbs(xi as tf.Tensor2D, w, id, { entropy: 'differentiable', chunkRows: 4 });
      return r.logp.sum().add(r.entropy!.sum());
    })(x));
  }
  assert.is(tf.memory().numTensors, before);
});

test('a token the model gives less than 1e-38 reads log(FLT_MIN) = -87.34 without entropy, exactly with it; gradients stay exact', async () => {
  // One row, V = 3: logits (200, 0, 0) via x = (200) and W = (1, 0, 0): p[1] = exp(-200) underflows.
  for (const backend of ['cpu', 'wasm'] as const) {
    const [fast, exact, g] = await runOn(backend, () => {
      const x = tf.tensor2d([[200]]), w = tf.tensor2d([[1], [0], [0]]), id = tf.tensor1d([1], 'int32');
      const grad = tf.grad((xi: tf.Tensor) => lmHeadLogProbs(xi as tf.Tensor2D, w, id).logp.sum())(x);
      return [lmHeadLogProbs(x, w, id).logp, lmHeadLogProbs(x, w, id, { entropy: true }).logp, grad];
    });
    assert.ok(Math.abs(fast[0] - Math.log(1.1754943508222875e-38)) < 1e-3, `${backend}: ${fast[0]}`);
    assert.ok(Math.abs(exact[0] + 200) < 1e-3, `${backend}: ${exact[0]}`);
    // d/dx log p[1] = W[1] - sum p W = 0 - 1 (p is one-hot on token 0).
    assert.ok(Math.abs(g[0] + 1) < 1e-6, `${backend}: gradient ${g[0]}`);
  }
});

test('a frozen head gives the same dL/dx and no dL/dW', async () => {
  for (const backend of ['cpu', 'wasm'] as const) {
    const [gx, gTrained, gBlocked] = await runOn(backend, () => {
      const x = tf.variable(tf.tensor2d(xs, [N, H]));
      const w = tf.tensor2d(ws, [V, H]);
      const id = tf.tensor1d(ids, 'int32');
      const frozen = tf.grad((xi: tf.Tensor) => lmHeadLogProbs(xi as tf.Tensor2D, w, id, { trainWeight: false, chunkRows: 5 }).logp.sum())(x);
      const frozenBlocked = tf.grad((xi: tf.Tensor) => lmHeadLogProbs(xi as tf.Tensor2D, w, id, { trainWeight: false, chunkRows: 5, wBlockRows: 100 }).logp.sum())(x);
      const trained = tf.grad((xi: tf.Tensor) => lmHeadLogProbs(xi as tf.Tensor2D, w, id, { chunkRows: 5 }).logp.sum())(x);
      x.dispose();
      return [frozen, trained, frozenBlocked];
    });
    assert.ok(maxAbsDiff(gx, gTrained) < 1e-6, backend);
    assert.ok(maxAbsDiff(gx, gBlocked) < 1e-5, `${backend}, W in blocks: ${maxAbsDiff(gx, gBlocked)}`);
  }
});

test('shape errors name the shapes', () => {
  assert.throws(() => lmHeadLogProbs(tf.zeros([2, 4]) as tf.Tensor2D, tf.zeros([10, 5]) as tf.Tensor2D, tf.tensor1d([0, 1], 'int32')), /hidden size 4 but the head weight is \[10,5\]/);
  assert.throws(() => lmHeadLogProbs(tf.zeros([2, 4]) as tf.Tensor2D, tf.zeros([10, 4]) as tf.Tensor2D, tf.tensor1d([0], 'int32')), /1 ids for 2 rows/);
});

test.run();
