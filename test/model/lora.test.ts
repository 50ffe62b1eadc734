// LoRA: a PEFT adapter written by the independent PyTorch reference loads and reproduces its
// logits; merging, disabling, saving and training behave as PEFT's do.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { loadQwen3 } from '../../src/model/pretrained.js';
import { addLora, loadLora, mergeLora, saveLora, withAdaptersDisabled } from '../../src/model/lora.js';
import { readSafetensors } from '../../src/model/safetensors.js';
import { maxAbsDiff, useBackend } from '../helpers/backends.js';
import { nextTokenLoss } from '../helpers/lm.js';

const fixture = (name: string) => new URL(`../fixtures/qwen3/${name}`, import.meta.url).pathname;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'promedical-lora-'));
test.before(() => useBackend('wasm'));
test.after(() => fs.rmSync(tmp, { recursive: true, force: true }));

const refIds = () => {
  const ref = readSafetensors(path.join(fixture('tied-gqa2-f32-lora'), 'reference.safetensors'));
  const ids = tf.tensor2d(ref.array('input_ids'), ref.info('input_ids').shape as [number, number], 'int32');
  const logits = ref.array('logits');
  ref.close();
  return { ids, logits };
};

test('a PEFT adapter loads and reproduces the reference logits; disabled it is the base model exactly; merged it is the same model', async () => {
  const model = await loadQwen3(fixture('tied-gqa2-f32'));
  const { ids, logits: want } = refIds();
  const base = model.forward(ids).dataSync();
  loadLora(model, fixture('tied-gqa2-f32-lora'));
  assert.is(model.adapters.size, 2 * 3, 'q_proj, v_proj, down_proj in 2 layers');
  const adapted = model.forward(ids).dataSync();
  assert.ok(maxAbsDiff(adapted, want) <= 1e-4, `adapter logits ${maxAbsDiff(adapted, want)}`);
  assert.ok(maxAbsDiff(adapted, base) > 0.1, 'the adapter changes the output');
  const disabled = withAdaptersDisabled(model, () => model.forward(ids).dataSync());
  assert.is(maxAbsDiff(disabled, base), 0, 'disabled adapters give the base model bit for bit');
  assert.ok(model.adaptersEnabled, 'restored after the call');
  mergeLora(model);
  assert.is(model.adapters.size, 0);
  assert.ok(maxAbsDiff(model.forward(ids).dataSync(), want) <= 1e-4, 'merged weights');
  model.dispose();
});

test('fresh adapters start as the identity, only they train, and they save in the PEFT layout and load back', async () => {
  const model = await loadQwen3(fixture('untied-gqa4-bf16'));
  const ids = tf.tensor2d([[1, 8, 30, 2, 77, 41]], [1, 6], 'int32');
  const base = model.forward(ids).dataSync();
  const frozen = new Map([...model.namedParameters()].map(([n, v]) => [n, v.dataSync().slice()]));
  addLora(model, { r: 4, alpha: 16, targetModules: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'], seed: 5 });
  assert.is(maxAbsDiff(model.forward(ids).dataSync(), base), 0, 'B = 0: output unchanged');
  const trainable = model.trainableVariables();
  assert.is(trainable.length, 2 * 7 * 2);
  const opt = tf.train.adam(0.01);
  for (let i = 0; i < 3; i++) opt.minimize(() => nextTokenLoss(model.forward(ids), ids), false, trainable);
  for (const [n, v] of model.namedParameters()) assert.equal(v.dataSync(), frozen.get(n), `${n} stayed frozen`);
  const tuned = model.forward(ids).dataSync();
  assert.ok(maxAbsDiff(tuned, base) > 1e-3, 'the adapters moved');

  const dir = path.join(tmp, 'adapter');
  await saveLora(model, dir, { baseModelNameOrPath: 'untied-gqa4-bf16' });
  const cfg = JSON.parse(fs.readFileSync(path.join(dir, 'adapter_config.json'), 'utf8'));
  assert.equal([cfg.peft_type, cfg.task_type, cfg.r, cfg.lora_alpha, cfg.bias], ['LORA', 'CAUSAL_LM', 4, 16, 'none']);
  const st = readSafetensors(path.join(dir, 'adapter_model.safetensors'));
  assert.equal(st.info('base_model.model.model.layers.1.mlp.down_proj.lora_A.weight').shape, [4, 80]);
  assert.equal(st.info('base_model.model.model.layers.1.mlp.down_proj.lora_B.weight').shape, [48, 4]);
  st.close();

  const fresh = await loadQwen3(fixture('untied-gqa4-bf16'));
  loadLora(fresh, dir);
  assert.ok(maxAbsDiff(fresh.forward(ids).dataSync(), tuned) < 1e-6, 'reloaded adapters give the same output');
  model.dispose();
  fresh.dispose();
  opt.dispose();
});

test('an adapter that does not fit the model is refused by module name', async () => {
  const model = await loadQwen3(fixture('untied-gqa4-bf16'));
  try {
    loadLora(model, fixture('tied-gqa2-f32-lora'));
    assert.unreachable();
  } catch (err) {
    assert.match((err as Error).message, /adapter_model\.safetensors: model\.layers\.\d\.\S+ has lora_A \[4,\d+\] and lora_B \[\d+,4\], expected/);
  }
  assert.is(model.adapters.size, 0, 'nothing half-attached');
  model.dispose();
});

test('tensor count stays flat across 10 forward+backward steps (full fine-tuning and LoRA)', async () => {
  const model = await loadQwen3(fixture('tied-gqa2-f32'));
  const ids = tf.tensor2d([[1, 8, 30, 2, 77, 41, 5, 9]], [1, 8], 'int32');
  for (const lora of [false, true]) {
    if (lora) addLora(model, { r: 2, alpha: 4, dropout: 0.1, seed: 1 });
    model.training = true;
    const opt = tf.train.sgd(0.01);
    const counts: number[] = [];
    for (let i = 0; i < 10; i++) {
      const loss = opt.minimize(() => nextTokenLoss(model.forward(ids), ids), true, model.trainableVariables())!;
      assert.ok(Number.isFinite(loss.dataSync()[0]));
      loss.dispose();
      counts.push(tf.memory().numTensors);
    }
    assert.equal(new Set(counts).size, 1, `numTensors per step: ${counts.join(',')}`);
    opt.dispose();
  }
  model.dispose();
});

test.run();
