// Parity with an independent float64 PyTorch Qwen3 (test/reference/qwen3_reference.py, written
// from modeling_qwen3.py): logits, hidden states, loss, every parameter gradient, left padding and
// greedy decoding, on tied / untied heads, GQA ratios 2 and 4, heads*head_dim != hidden, BF16 and
// F32 on disk, and a sharded folder. Run on the cpu and the wasm backends.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as tf from '@tensorflow/tfjs';
import { loadQwen3 } from '../../src/model/pretrained.js';
import { generate } from '../../src/model/generate.js';
import { readSafetensors, type SafetensorsFile } from '../../src/model/safetensors.js';
import { maxAbsDiff, useBackend } from '../helpers/backends.js';
import { nextTokenLoss } from '../helpers/lm.js';

const CHECKPOINTS = ['tied-gqa2-f32', 'untied-gqa4-bf16', 'sharded-gqa2-f32'];
const dirOf = (name: string) => new URL(`../fixtures/qwen3/${name}`, import.meta.url).pathname;

function relL2(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let num = 0, den = 0;
  for (let i = 0; i < a.length; i++) {
    num += (a[i] - b[i]) ** 2;
    den += b[i] ** 2;
  }
  return Math.sqrt(num) / Math.max(Math.sqrt(den), 1e-30);
}

function argmaxRows(values: ArrayLike<number>, V: number): number[] {
  const out: number[] = [];
  for (let r = 0; r < values.length / V; r++) {
    let best = 0;
    for (let j = 1; j < V; j++) if (values[r * V + j] > values[r * V + best]) best = j;
    out.push(best);
  }
  return out;
}

const ints = (ref: SafetensorsFile, name: string) => tf.tensor2d(ref.array(name), ref.info(name).shape as [number, number], 'int32');

for (const backend of ['cpu', 'wasm'] as const) {
  for (const name of CHECKPOINTS) {
    test(`${backend} ${name}: logits, hidden states, loss and every gradient (with and without gradient checkpointing) match the float64 reference`, async () => {
      await useBackend(backend);
      const model = await loadQwen3(dirOf(name));
      const ref = readSafetensors(`${dirOf(name)}/reference.safetensors`);
      const V = model.config.vocabSize;
      const ids = ints(ref, 'input_ids');
      const logits = model.forward(ids);
      const hidden = model.hiddenStates(ids);
      const got = logits.dataSync();
      const want = ref.array('logits');
      assert.ok(maxAbsDiff(got, want) <= 1e-4, `logits max |diff| ${maxAbsDiff(got, want)}`);
      assert.equal(argmaxRows(got, V), argmaxRows(want, V), 'same argmax everywhere');
      assert.ok(maxAbsDiff(hidden.dataSync(), ref.array('hidden')) <= 1e-4, `hidden max |diff| ${maxAbsDiff(hidden.dataSync(), ref.array('hidden'))}`);

      const params = model.namedParameters();
      const names = [...params.keys()];
      // Both ways of taking the gradient: activations kept, and layers recomputed in backprop.
      for (const checkpointing of [false, true]) {
        model.gradientCheckpointing = checkpointing;
        const { value, grads } = tf.variableGrads(() => nextTokenLoss(model.forward(ids), ids), names.map((n) => params.get(n)!));
        const loss = value.dataSync()[0];
        const refLoss = ref.array('loss')[0];
        assert.ok(Math.abs(loss - refLoss) / Math.abs(refLoss) <= 1e-5, `loss ${loss} vs ${refLoss} (checkpointing ${checkpointing})`);
        for (const n of names) {
          const d = relL2(grads[params.get(n)!.name].dataSync(), ref.array(`grad.${n}`));
          assert.ok(d <= 1e-3, `grad ${n}: relative L2 diff ${d} (checkpointing ${checkpointing})`);
        }
        tf.dispose([value, ...Object.values(grads)]);
      }
      tf.dispose([ids, logits, hidden]);
      ref.close();
      model.dispose();
    });

    test(`${backend} ${name}: left padding matches the reference and the unpadded run; greedy ids match`, async () => {
      await useBackend(backend);
      const model = await loadQwen3(dirOf(name));
      const ref = readSafetensors(`${dirOf(name)}/reference.safetensors`);
      const V = model.config.vocabSize;
      const T = 7;
      const ids = ints(ref, 'padded_input_ids');
      const mask = ints(ref, 'padded_mask');
      const logits = model.forward(ids, { attentionMask: mask });
      const got = logits.dataSync();
      const want = ref.array('padded_logits');
      const m = mask.dataSync();
      for (let b = 0; b < 2; b++) {
        for (let t = 0; t < T; t++) {
          if (!m[b * T + t]) continue; // pad queries attend to nothing real: not compared
          const row = (x: ArrayLike<number>) => Array.from(x).slice((b * T + t) * V, (b * T + t + 1) * V);
          assert.ok(maxAbsDiff(row(got), row(want)) <= 1e-4, `padded logits row ${b} t ${t}`);
        }
      }
      // Row 1 is 3 pads then the first 4 ids of input_ids row 1: equal to running those 4 alone.
      const fullIds = ref.array('input_ids');
      const alone = model.forward(tf.tensor2d(Array.from(fullIds.slice(T, T + 4)), [1, 4], 'int32'));
      const padded = Array.from(got).slice((T + 3) * V, 2 * T * V);
      assert.ok(maxAbsDiff(padded, alone.dataSync()) <= 1e-5, `padded vs alone ${maxAbsDiff(padded, alone.dataSync())}`);

      const prompts = [Array.from(ref.array('prompt_a')), Array.from(ref.array('prompt_b'))];
      const greedy = await generate(model, prompts, { maxNewTokens: 8 });
      assert.equal(greedy, [Array.from(ref.array('greedy_a')), Array.from(ref.array('greedy_b'))]);
      tf.dispose([ids, mask, logits, alone]);
      ref.close();
      model.dispose();
    });
  }
}

test.run();
