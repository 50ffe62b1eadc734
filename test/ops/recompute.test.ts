// Gradient checkpointing: the recomputing op gives the gradients worked out by hand, leaves the
// outer gradient tape intact, replays LoRA dropout exactly, and lowers the backward pass's peak
// memory. (Parity of checkpointed gradients with the PyTorch reference is in qwen3_parity.test.ts.)
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as tf from '@tensorflow/tfjs';
import { qwen3Config, type Qwen3Config } from '../../src/model/config.js';
import { addLora } from '../../src/model/lora.js';
import { Qwen3ForCausalLM } from '../../src/model/qwen3.js';
import { checkpoint } from '../../src/ops/recompute.js';
import { maxAbsDiff, useBackend } from '../helpers/backends.js';

test.before(() => useBackend('wasm'));

const small = (layers: number): Qwen3Config => ({
  ...qwen3Config('0.6B'), vocabSize: 96, hiddenSize: 32, intermediateSize: 64, numHiddenLayers: layers,
  numAttentionHeads: 4, numKeyValueHeads: 2, headDim: 16,
});

test('checkpoint(): gradients of sum((x*w*c)^2) with respect to x and w, by hand; the tape around it still works', () => {
  const xs = [0.5, -1, 2], ws = [3, 0.25, -2], cs = [1, 2, -0.5];
  const w = tf.variable(tf.tensor1d(ws));
  const before = tf.memory().numTensors;
  const { value, grads } = tf.tidy(() => {
    const x = tf.tensor1d(xs);
    // c is made inside the recorded function, so tfjs frees it before the backward pass runs:
    // the block must have kept it.
    return tf.variableGrads(() => {
      const c = tf.tensor1d(cs);
      const y = checkpoint((xi, [ci]) => xi.mul(w).mul(ci), x.mul(1), [c], [w]); // x.mul(1): x is recorded
      return y.square().sum().add(w.sum()) as tf.Scalar; // an op after the block, on w as well
    }, [w]);
  });
  const y = xs.map((x, i) => x * ws[i] * cs[i]);
  const wantW = xs.map((x, i) => 2 * y[i] * x * cs[i] + 1);
  assert.ok(Math.abs(value.dataSync()[0] - (y.reduce((s, v) => s + v * v, 0) + ws.reduce((s, v) => s + v, 0))) < 1e-4);
  assert.ok(maxAbsDiff(grads[w.name].dataSync(), wantW) < 1e-4, `dL/dw ${grads[w.name].dataSync()} vs ${wantW}`);
  tf.dispose([value, ...Object.values(grads)]);
  assert.is(tf.memory().numTensors, before, 'no tensor left behind');

  // x's gradient through tf.grads (x is an input, not a variable).
  const gx = tf.grads((x: tf.Tensor) => checkpoint((xi, [ci]) => xi.mul(w).mul(ci), x, [tf.tensor1d(cs)], [w]).square().sum())([tf.tensor1d(xs)]);
  const wantX = xs.map((_, i) => 2 * y[i] * ws[i] * cs[i]);
  assert.ok(maxAbsDiff(gx[0].dataSync(), wantX) < 1e-4, `dL/dx ${gx[0].dataSync()} vs ${wantX}`);
  tf.dispose(gx);
  w.dispose();
});

test('a LoRA model with dropout and left padding: checkpointed gradients equal the stored-activation ones, dropout masks and model state replayed, seed left where the forward pass left it', () => {
  const model = Qwen3ForCausalLM.random(small(3), 3);
  addLora(model, { r: 4, alpha: 8, dropout: 0.5, targetModules: ['q_proj', 'v_proj', 'down_proj'], seed: 2 });
  for (const a of model.adapters.values()) a.B.assign(tf.randomNormal(a.B.shape, 0, 0.2, 'float32', 5)); // B = 0 would hide A's gradient
  model.training = true;
  const ids = tf.tensor2d([[0, 0, 5, 9, 20, 3], [4, 4, 8, 1, 2, 11]], undefined, 'int32');
  const mask = tf.tensor2d([[0, 0, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1]]);
  const vars = model.trainableVariables();
  const step = (checkpointing: boolean) => {
    model.gradientCheckpointing = checkpointing;
    model.dropoutSeed = 11;
    const { value, grads } = tf.variableGrads(() => model.hiddenStates(ids, { attentionMask: mask }).square().mean() as tf.Scalar, vars);
    const out = { loss: value.dataSync()[0], grads: vars.map((v) => grads[v.name].dataSync()), seed: model.dropoutSeed };
    tf.dispose([value, ...Object.values(grads)]);
    return out;
  };
  const kept = step(false);
  const before = tf.memory().numTensors;
  const recomputed = step(true);
  assert.is(tf.memory().numTensors, before, 'tensor count flat across a checkpointed step');
  assert.is(recomputed.seed, kept.seed, 'dropout seed advanced as in the forward pass');
  assert.ok(kept.seed > 11, 'dropout drew masks');
  assert.is(recomputed.loss, kept.loss);
  vars.forEach((v, i) => {
    const scale = Math.max(...Array.from(kept.grads[i], Math.abs));
    assert.ok(scale > 0, `${v.name} has a gradient`);
    assert.ok(maxAbsDiff(recomputed.grads[i], kept.grads[i]) <= 1e-5 * scale, `${v.name}: ${maxAbsDiff(recomputed.grads[i], kept.grads[i])}`);
  });
  // One loss over two forward passes in different states (dropout on, then off): each replay
  // runs in the state its forward pass saw, not the state at backward time.
  const twoStates = (checkpointing: boolean) => {
    model.gradientCheckpointing = checkpointing;
    model.dropoutSeed = 11;
    const { value, grads } = tf.variableGrads(() => {
      model.training = true;
      const a = model.hiddenStates(ids, { attentionMask: mask }).square().mean();
      model.training = false;
      return a.add(model.hiddenStates(ids).mean()) as tf.Scalar;
    }, vars);
    const out = vars.map((v) => grads[v.name].dataSync());
    tf.dispose([value, ...Object.values(grads)]);
    return out;
  };
  const keptTwo = twoStates(false);
  const recomputedTwo = twoStates(true);
  vars.forEach((v, i) => {
    const scale = Math.max(...Array.from(keptTwo[i], Math.abs));
    assert.ok(maxAbsDiff(recomputedTwo[i], keptTwo[i]) <= 1e-5 * scale, `two states, ${v.name}: ${maxAbsDiff(recomputedTwo[i], keptTwo[i])}`);
  });
  model.training = true;
  // Without replaying the masks the gradients would differ: a different seed changes them.
  model.gradientCheckpointing = false;
  model.dropoutSeed = 12;
  const other = tf.variableGrads(() => model.hiddenStates(ids, { attentionMask: mask }).square().mean() as tf.Scalar, vars);
  assert.ok(maxAbsDiff(other.grads[vars[0].name].dataSync(), kept.grads[0]) > 1e-6, 'dropout masks matter to the gradient');
  tf.dispose([other.value, ...Object.values(other.grads), ids, mask]);
  model.dispose();
});

test('checkpointing lowers the peak memory of a training step (tf.profile)', async () => {
  const model = Qwen3ForCausalLM.random({ ...small(6), hiddenSize: 64, intermediateSize: 128 }, 1);
  addLora(model, { r: 4, alpha: 8, seed: 1 });
  const ids = tf.tensor2d([Array.from({ length: 64 }, (_, t) => (t * 7) % 96)], undefined, 'int32');
  const weights = tf.memory().numBytes;
  const peakAbove = async (checkpointing: boolean) => {
    model.gradientCheckpointing = checkpointing;
    const info = await tf.profile(() => {
      const { value, grads } = tf.variableGrads(() => model.forward(ids).square().mean() as tf.Scalar, model.trainableVariables());
      tf.dispose([value, ...Object.values(grads)]);
    });
    return info.peakBytes - weights;
  };
  const kept = await peakAbove(false);
  const recomputed = await peakAbove(true);
  // 6 layers: stored activations scale with depth, the recomputed step holds one layer's at a time.
  assert.ok(recomputed < 0.5 * kept, `peak above the weights: ${recomputed} B checkpointed vs ${kept} B`);
  ids.dispose();
  model.dispose();
});

test.run();
