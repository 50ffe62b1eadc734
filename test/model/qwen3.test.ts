// Qwen3ForCausalLM.targetLogProbs, the one causal-LM log-prob path (SFT, GRPO, bench), against
// the naive one: full [B, T, V] logits from model.forward, log-softmax, pick (test/helpers/lm.ts),
// on a small random Qwen3 with left padding, tied and untied heads, full and LoRA training,
// temperature 1 and 0.7: values, entropies and gradients. The values are also checked against a
// float64 log-softmax of the logits computed here.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as tf from '@tensorflow/tfjs';
import { qwen3Config, type Qwen3Config } from '../../src/model/config.js';
import { addLora } from '../../src/model/lora.js';
import { Qwen3ForCausalLM, qwen3TensorShapes } from '../../src/model/qwen3.js';
import { maxAbsDiff, randomArray, useBackend } from '../helpers/backends.js';
import { pickedLogProbs } from '../helpers/lm.js';

const config = (tied: boolean): Qwen3Config => ({
  ...qwen3Config('0.6B'), vocabSize: 53, hiddenSize: 32, intermediateSize: 48, numHiddenLayers: 2,
  numAttentionHeads: 4, numKeyValueHeads: 2, headDim: 8, tieWordEmbeddings: tied,
});

/** Weights of std 0.3 (not transformers' 0.02): logits spread over several nats, so a wrong pick,
 * shift or temperature shows in the values. */
function model(tied: boolean): Qwen3ForCausalLM {
  const weights = new Map<string, tf.Tensor>();
  let seed = 1;
  for (const [name, shape] of qwen3TensorShapes(config(tied))) {
    weights.set(name, shape.length === 1 ? tf.ones(shape) : tf.randomNormal(shape, 0, 0.3, 'float32', seed++));
  }
  const m = new Qwen3ForCausalLM(config(tied), weights);
  tf.dispose([...weights.values()]);
  return m;
}

// Three rows of 7 tokens, left padded by 0, 2 and 4 (pad id 0).
const B = 3, T = 7, PAD = [0, 2, 4];
const IDS = [[5, 17, 3, 44, 9, 30, 12], [0, 0, 8, 21, 52, 7, 19], [0, 0, 0, 0, 33, 2, 40]];
const MASK = IDS.map((_, b) => Array.from({ length: T }, (_, t) => (t >= PAD[b] ? 1 : 0)));
const L = 3; // completion length: columns 4..6 of every row
const LAST_ROWS = IDS.flatMap((_, b) => Array.from({ length: L }, (_, j) => b * T + T - L - 1 + j));
const LAST_IDS = IDS.flatMap((row) => row.slice(T - L));
// Arbitrary positions (out of order, across rows) whose next token is real, and those tokens.
const PICK: [number, number][] = [[1, 4], [0, 0], [2, 5], [0, 3], [1, 2], [0, 5], [2, 4], [1, 5]];
const ROWS = PICK.map(([b, t]) => b * T + t);
const ROW_IDS = PICK.map(([b, t]) => IDS[b][t + 1]);

const inputs = () => ({ ids: tf.tensor2d(IDS, [B, T], 'int32'), mask: tf.tensor2d(MASK, [B, T], 'int32') });

/** log softmax(z / temperature)[y] in float64 from host logits, at flattened row r. */
function hostLogProb(logits: Float32Array, V: number, r: number, y: number, temperature: number): number {
  const z = Array.from(logits.subarray(r * V, (r + 1) * V), (v) => v / temperature);
  const m = Math.max(...z);
  return z[y] - m - Math.log(z.reduce((a, v) => a + Math.exp(v - m), 0));
}

for (const tied of [true, false]) {
  for (const temperature of [1, 0.7]) {
    test(`${tied ? 'tied' : 'untied'} head, temperature ${temperature}: lastTokens [B, L] and rows [N] equal the naive log-probs and entropies`, async () => {
      await useBackend('wasm');
      const m = model(tied);
      const V = m.config.vocabSize;
      const { ids, mask } = inputs();
      const logits = m.forward(ids, { attentionMask: mask });
      const host = logits.dataSync() as Float32Array;

      const last = m.targetLogProbs(ids, { attentionMask: mask, targets: { lastTokens: L }, temperature, entropy: true });
      assert.equal(last.logp.shape, [B, L]);
      assert.equal(last.entropy!.shape, [B, L]);
      const wantLast = pickedLogProbs(logits, LAST_ROWS, LAST_IDS, temperature);
      assert.ok(maxAbsDiff(last.logp.dataSync(), wantLast.logp.dataSync()) < 1e-5, `lastTokens logp ${maxAbsDiff(last.logp.dataSync(), wantLast.logp.dataSync())}`);
      assert.ok(maxAbsDiff(last.entropy!.dataSync(), wantLast.entropy.dataSync()) < 1e-5, 'lastTokens entropy');
      const hostLast = LAST_ROWS.map((r, n) => hostLogProb(host, V, r, LAST_IDS[n], temperature));
      assert.ok(maxAbsDiff(last.logp.dataSync(), hostLast) < 1e-4, 'lastTokens logp against float64');

      const at = { rows: tf.tensor1d(ROWS, 'int32'), ids: tf.tensor1d(ROW_IDS, 'int32') };
      const picked = m.targetLogProbs(ids, { attentionMask: mask, targets: at, temperature, entropy: true });
      assert.equal(picked.logp.shape, [ROWS.length]);
      const wantRows = pickedLogProbs(logits, ROWS, ROW_IDS, temperature);
      assert.ok(maxAbsDiff(picked.logp.dataSync(), wantRows.logp.dataSync()) < 1e-5, `rows logp ${maxAbsDiff(picked.logp.dataSync(), wantRows.logp.dataSync())}`);
      assert.ok(maxAbsDiff(picked.entropy!.dataSync(), wantRows.entropy.dataSync()) < 1e-5, 'rows entropy');
      const hostRows = ROWS.map((r, n) => hostLogProb(host, V, r, ROW_IDS[n], temperature));
      assert.ok(maxAbsDiff(picked.logp.dataSync(), hostRows) < 1e-4, 'rows logp against float64');
      // Without entropy none is returned; the values do not change.
      const plain = m.targetLogProbs(ids, { attentionMask: mask, targets: at, temperature });
      assert.is(plain.entropy, undefined);
      assert.ok(maxAbsDiff(plain.logp.dataSync(), picked.logp.dataSync()) < 1e-6);

      tf.dispose([ids, mask, logits, at.rows, at.ids, last.logp, last.entropy!, picked.logp, picked.entropy!, plain.logp, wantLast.logp, wantLast.entropy, wantRows.logp, wantRows.entropy]);
      m.dispose();
    });
  }
}

/** Relative norm of a - b per variable: fused against naive gradients. */
function relativeDiffs(a: tf.NamedTensorMap, b: tf.NamedTensorMap, vars: tf.Variable[]): { name: string; rel: number; norm: number }[] {
  return vars.map((v) => tf.tidy(() => {
    const norm = b[v.name].norm().dataSync()[0];
    return { name: v.name, rel: a[v.name].sub(b[v.name]).norm().dataSync()[0] / Math.max(norm, 1e-12), norm };
  }));
}

for (const lora of [false, true]) {
  test(`gradients of both target forms equal the naive ones (${lora ? 'LoRA: frozen head' : 'full training: the head trains'}, untied and tied, temperature 0.7); the tensor count stays flat`, async () => {
    await useBackend('wasm');
    for (const tied of [false, true]) {
      const m = model(tied);
      if (lora) {
        addLora(m, { r: 4, alpha: 8, targetModules: ['q_proj', 'v_proj', 'down_proj'], seed: 2 });
        for (const a of m.adapters.values()) a.B.assign(tf.randomNormal(a.B.shape, 0, 0.2, 'float32', 5)); // B = 0 would hide A's gradient
      }
      const vars = m.trainableVariables();
      const { ids, mask } = inputs();
      const at = { rows: tf.tensor1d(ROWS, 'int32'), ids: tf.tensor1d(ROW_IDS, 'int32') };
      const temperature = 0.7;
      // Upstream weights per target, so every target's gradient counts differently.
      const upLast = tf.tensor2d(randomArray(B * L, 'up-last'), [B, L]);
      const upRows = tf.tensor1d(randomArray(ROWS.length, 'up-rows'));
      const fused = () =>
        m.targetLogProbs(ids, { attentionMask: mask, targets: { lastTokens: L }, temperature }).logp.mul(upLast).sum()
          .add(m.targetLogProbs(ids, { attentionMask: mask, targets: at, temperature }).logp.mul(upRows).sum()) as tf.Scalar;
      const naive = () => {
        const logits = m.forward(ids, { attentionMask: mask });
        return pickedLogProbs(logits, LAST_ROWS, LAST_IDS, temperature).logp.mul(upLast.reshape([-1])).sum()
          .add(pickedLogProbs(logits, ROWS, ROW_IDS, temperature).logp.mul(upRows).sum()) as tf.Scalar;
      };
      const ours = tf.variableGrads(fused, vars);
      const want = tf.variableGrads(naive, vars);
      assert.ok(Math.abs(ours.value.dataSync()[0] - want.value.dataSync()[0]) < 1e-4, `value ${ours.value.dataSync()[0]} vs ${want.value.dataSync()[0]}`);
      const head = tied ? 'model.embed_tokens.weight' : 'lm_head.weight';
      const names = new Map([...m.trainableParameters()].map(([n, v]) => [v.name, n]));
      for (const d of relativeDiffs(ours.grads, want.grads, vars)) {
        assert.ok(d.norm > 0, `${names.get(d.name)}: the naive gradient is zero`);
        assert.ok(d.rel < 1e-4, `${names.get(d.name)}: relative gradient difference ${d.rel}`);
      }
      assert.is(vars.some((v) => names.get(v.name) === head), !lora, 'the head trains exactly when no adapters are attached');
      tf.dispose([ours.value, want.value, ...Object.values(ours.grads), ...Object.values(want.grads)]);

      // Repeated calls, forward and backward, leave no tensor behind.
      const before = tf.memory().numTensors;
      for (let i = 0; i < 3; i++) {
        const r = m.targetLogProbs(ids, { attentionMask: mask, targets: { lastTokens: L }, temperature, entropy: true });
        tf.dispose([r.logp, r.entropy!]);
        const g = tf.variableGrads(fused, vars);
        tf.dispose([g.value, ...Object.values(g.grads)]);
        assert.is(tf.memory().numTensors, before, `call ${i + 1}: ${tf.memory().numTensors - before} tensors more`);
      }
      tf.dispose([ids, mask, at.rows, at.ids, upLast, upRows]);
      m.dispose();
    }
  });
}

test('lastTokens outside [1, T - 1] is refused', async () => {
  await useBackend('cpu');
  const m = model(true);
  const { ids, mask } = inputs();
  assert.throws(() => m.targetLogProbs(ids, { attentionMask: mask, targets: { lastTokens: T } }), /lastTokens must be an integer in \[1, 6\] for 7 tokens, got 7/);
  assert.throws(() => m.targetLogProbs(ids, { targets: { lastTokens: 0 } }), /got 0/);
  tf.dispose([ids, mask]);
  m.dispose();
});

test('a no-grad pass holds one layer of intermediates at a time, not all of them', async () => {
  await useBackend('cpu');
  // Working memory of decode() beyond the weights and what it returns (hidden states and cache):
  // with intermediates freed per layer it does not grow with depth; kept to the end of the pass,
  // it grows with every layer (4x from 2 to 8 layers).
  const working = async (layers: number): Promise<number> => {
    const c = { ...config(false), numHiddenLayers: layers };
    const m = new Qwen3ForCausalLM(c, new Map([...qwen3TensorShapes(c)].map(([n, s]) => [n, tf.ones(s)])));
    const ids = tf.tensor2d(IDS, [B, T], 'int32');
    const before = tf.memory().numBytes;
    let returned = 0;
    const info = await tf.profile(() => {
      const out = m.decode(ids);
      returned = [out.hidden, ...out.cache.flatMap((kv) => [kv.k, kv.v])].reduce((n, t) => n + t.size * 4, 0);
      tf.dispose([out.hidden, ...out.cache.flatMap((kv) => [kv.k, kv.v])]);
    });
    ids.dispose();
    m.dispose();
    return info.peakBytes - before - returned;
  };
  const [shallow, deep] = [await working(2), await working(8)];
  assert.ok(shallow > 0, `working memory measured: ${shallow} bytes`);
  assert.ok(deep < 1.5 * shallow, `8 layers use ${deep} bytes of working memory, 2 layers ${shallow}`);
});

test.run();
