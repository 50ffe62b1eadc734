// Configs (presets against the published parameter counts), config.json validation,
// and the Hugging Face folder layout written by saveQwen3 and read by loadQwen3.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { parameterCount, qwen3Config, qwen3ConfigFromHF, qwen3ConfigToHF } from '../../src/model/config.js';
import { CheckpointError, loadQwen3, saveQwen3 } from '../../src/model/pretrained.js';
import { Qwen3ForCausalLM } from '../../src/model/qwen3.js';
import { readSafetensors, writeSafetensors } from '../../src/model/safetensors.js';
import { float32ToBf16Bits, bf16BitsToFloat32 } from '../../src/model/half.js';
import { maxAbsDiff, useBackend } from '../helpers/backends.js';

const fixture = (name: string) => new URL(`../fixtures/qwen3/${name}`, import.meta.url).pathname;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'promedical-ckpt-'));
test.before(() => useBackend('cpu'));
test.after(() => fs.rmSync(tmp, { recursive: true, force: true }));

test('presets have the published parameter counts of Qwen3 0.6B / 1.7B / 4B / 8B', () => {
  assert.is(parameterCount(qwen3Config('0.6B')), 596_049_920);
  assert.is(parameterCount(qwen3Config('1.7B')), 1_720_574_976);
  assert.is(parameterCount(qwen3Config('4B')), 4_022_468_096);
  assert.is(parameterCount(qwen3Config('8B')), 8_190_735_360);
  assert.is(qwen3Config('8B').tieWordEmbeddings, false);
  const tiny = qwen3Config('tiny');
  assert.is(tiny.vocabSize, 151936);
  assert.is.not(tiny.numAttentionHeads * tiny.headDim, tiny.hiddenSize);
});

test('config.json: round trip, and unsupported settings refused by name', () => {
  const c = qwen3Config('0.6B');
  assert.equal(qwen3ConfigFromHF(qwen3ConfigToHF(c)), c);
  const base = qwen3ConfigToHF(c);
  const bad: [Record<string, unknown>, RegExp][] = [
    [{ rope_scaling: { type: 'yarn', factor: 4 } }, /rope_scaling/],
    [{ use_sliding_window: true }, /use_sliding_window/],
    [{ attention_bias: true }, /attention_bias/],
    [{ hidden_act: 'gelu' }, /hidden_act/],
    [{ model_type: 'qwen3_moe' }, /model_type "qwen3_moe"/],
    [{ num_key_value_heads: 3 }, /multiple of num_key_value_heads/],
    [{ hidden_size: -4 }, /hidden_size/],
  ];
  for (const [patch, message] of bad) assert.throws(() => qwen3ConfigFromHF({ ...base, ...patch }, 'x/config.json'), message);
});

const ids = () => tf.tensor2d([[3, 17, 42, 5, 88, 1, 60]], [1, 7], 'int32');

test('saveQwen3 F32 -> loadQwen3 reproduces the logits exactly; the folder has HF names, [out, in] layout and config', async () => {
  const model = await loadQwen3(fixture('untied-gqa4-bf16'));
  const dir = path.join(tmp, 'f32');
  await saveQwen3(model, dir, { dtype: 'float32' });
  assert.equal(fs.readdirSync(dir).sort(), ['config.json', 'generation_config.json', 'model.safetensors']);
  const config = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'));
  assert.is(config.torch_dtype, 'float32');
  assert.equal(config.architectures, ['Qwen3ForCausalLM']);
  // Same names and same bytes (as float32) as the independent writer's checkpoint.
  const ours = readSafetensors(dir);
  const theirs = readSafetensors(fixture('untied-gqa4-bf16'));
  assert.equal([...ours.names].sort(), [...theirs.names].sort());
  for (const n of theirs.names) {
    assert.equal(ours.info(n).shape, theirs.info(n).shape, n);
    assert.ok(maxAbsDiff(ours.array(n), theirs.array(n)) === 0, n);
  }
  ours.close();
  theirs.close();
  const again = await loadQwen3(dir);
  assert.ok(maxAbsDiff(model.forward(ids()).dataSync(), again.forward(ids()).dataSync()) === 0);
  model.dispose();
  again.dispose();
});

test('saveQwen3 BF16 rounds each weight to nearest even; sharded saves write an index; tied models write no lm_head', async () => {
  const model = await loadQwen3(fixture('tied-gqa2-f32'));
  const dir = path.join(tmp, 'bf16-sharded');
  await saveQwen3(model, dir, { dtype: 'bfloat16', maxShardBytes: 20_000 });
  const index = JSON.parse(fs.readFileSync(path.join(dir, 'model.safetensors.index.json'), 'utf8'));
  const files = new Set(Object.values(index.weight_map));
  assert.ok(files.size > 1, 'several shards');
  assert.ok([...files].every((f) => /^model-\d{5}-of-\d{5}\.safetensors$/.test(String(f))));
  assert.not.ok('lm_head.weight' in index.weight_map);
  const st = readSafetensors(dir);
  const w = model.namedParameters().get('model.layers.0.mlp.up_proj.weight')!;
  const expected = bf16BitsToFloat32(float32ToBf16Bits(w.dataSync() as Float32Array));
  assert.is(st.info('model.layers.0.mlp.up_proj.weight').dtype, 'BF16');
  assert.equal(Array.from(st.array('model.layers.0.mlp.up_proj.weight')), Array.from(expected));
  st.close();
  const again = await loadQwen3(dir);
  assert.ok(maxAbsDiff(model.forward(ids()).dataSync(), again.forward(ids()).dataSync()) < 0.05);
  model.dispose();
  again.dispose();
});

test('saving over a checkpoint keeps unrelated files, and a failing save leaves the old one loadable', async () => {
  const model = await loadQwen3(fixture('tied-gqa2-f32'));
  const dir = path.join(tmp, 'over');
  await saveQwen3(model, dir, { dtype: 'float32' });
  fs.writeFileSync(path.join(dir, 'tokenizer.json'), '{}');
  const before = fs.readFileSync(path.join(dir, 'model.safetensors'));
  const broken = model.namedParameters().get('model.norm.weight')!;
  const saved = broken.clone();
  broken.dispose(); // the save will fail half way through reading the weights
  try {
    await saveQwen3(model, dir);
    assert.unreachable();
  } catch (err) {
    assert.match((err as Error).message, /disposed/);
  }
  assert.ok(before.equals(fs.readFileSync(path.join(dir, 'model.safetensors'))));
  assert.ok(fs.existsSync(path.join(dir, 'tokenizer.json')));
  assert.equal(fs.readdirSync(tmp).filter((f) => f.startsWith('over.')), [], 'no staging folder left behind');
  saved.dispose();
  (await loadQwen3(dir)).dispose();
});

test('saveQwen3 with a tokenizer copies its tokenizer.json and tokenizer_config.json; missing files fail before writing', async () => {
  const model = await loadQwen3(fixture('tied-gqa2-f32'));
  const tokDir = path.join(tmp, 'tok');
  fs.mkdirSync(tokDir);
  fs.writeFileSync(path.join(tokDir, 'tokenizer.json'), '{"model": "t"}');
  fs.writeFileSync(path.join(tokDir, 'tokenizer_config.json'), '{"eos_token": "e"}');
  fs.writeFileSync(path.join(tokDir, 'generation_config.json'), '{"not": "copied"}');
  const dir = path.join(tmp, 'with-tok');
  // Anything with the path of its tokenizer.json as `source` will do, a ChatTokenizer included.
  await saveQwen3(model, dir, { dtype: 'float32', tokenizer: { source: path.join(tokDir, 'tokenizer.json') } });
  assert.equal(fs.readdirSync(dir).sort(), ['config.json', 'generation_config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json']);
  assert.is(fs.readFileSync(path.join(dir, 'tokenizer.json'), 'utf8'), '{"model": "t"}');
  assert.is(fs.readFileSync(path.join(dir, 'tokenizer_config.json'), 'utf8'), '{"eos_token": "e"}');
  assert.is.not(fs.readFileSync(path.join(dir, 'generation_config.json'), 'utf8'), '{"not": "copied"}', 'the model writes its own');

  fs.rmSync(path.join(tokDir, 'tokenizer_config.json'));
  const none = path.join(tmp, 'with-missing-tok');
  try {
    await saveQwen3(model, none, { tokenizer: { source: path.join(tokDir, 'tokenizer.json') } });
    assert.unreachable();
  } catch (err) {
    assert.instance(err, CheckpointError);
    assert.match((err as Error).message, `${path.join(tokDir, 'tokenizer_config.json')}: not found`);
  }
  assert.not.ok(fs.existsSync(none), 'nothing written');
  assert.equal(fs.readdirSync(tmp).filter((f) => f.startsWith('with-missing-tok')), []);
  model.dispose();
});

test('missing, unexpected and mis-shaped tensors are all reported by name', async () => {
  const dir = path.join(tmp, 'broken');
  fs.mkdirSync(dir);
  fs.copyFileSync(path.join(fixture('tied-gqa2-f32'), 'config.json'), path.join(dir, 'config.json'));
  const src = readSafetensors(fixture('tied-gqa2-f32'));
  const tensors = new Map<string, tf.Tensor>();
  for (const n of src.names) if (n !== 'model.norm.weight') tensors.set(n, src.tensor(n));
  tensors.set('model.layers.0.self_attn.q_norm.weight', tf.zeros([15]));
  tensors.set('model.layers.0.self_attn.rotary.inv_freq', tf.zeros([8]));
  await writeSafetensors(path.join(dir, 'model.safetensors'), tensors);
  src.close();
  try {
    await loadQwen3(dir);
    assert.unreachable();
  } catch (err) {
    const msg = (err as Error).message;
    assert.match(msg, /missing tensor model\.norm\.weight/);
    assert.match(msg, /model\.layers\.0\.self_attn\.q_norm\.weight has shape \[15\], config\.json implies \[16\]/);
    assert.match(msg, /unexpected tensor model\.layers\.0\.self_attn\.rotary\.inv_freq/);
  }
});

test('the model constructor refuses weights that do not fit the config', () => {
  const c = { ...qwen3Config('tiny'), vocabSize: 10 };
  assert.throws(() => new Qwen3ForCausalLM(c, new Map()), /missing model\.embed_tokens\.weight/);
});

test.run();
