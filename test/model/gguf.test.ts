// GGUF export: the file parses back to what was written (metadata with types, tensors bit for bit
// or within the dtype's rounding), llama.cpp (node-llama-cpp's prebuilt CPU binary, never built)
// loads it and decodes greedily to our ids, with log-probs within 1e-3 of ours and the same
// tokenization; LoRA adapters as llama.cpp adapter files; bad inputs fail clearly and leave a
// previous file as it was.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { loadTokenizer, type ChatTokenizer } from '../../src/data/tokenizer.js';
import { qwen3Config, type Qwen3Config } from '../../src/model/config.js';
import { generate } from '../../src/model/generate.js';
import {
  GGUF_FILE_TYPE, GGUF_TOKEN_TYPE, GgufError, ggufTensorName, loadLlamaCpp, quantizeQ8_0, readGguf, saveGguf, saveLoraGguf, writeGguf, type GgufDtype,
} from '../../src/model/gguf.js';
import { f16BitsToFloat32, float32ToBf16Bits, float32ToF16Bits } from '../../src/model/half.js';
import { addLora } from '../../src/model/lora.js';
import { loadQwen3 } from '../../src/model/pretrained.js';
import { Qwen3ForCausalLM } from '../../src/model/qwen3.js';
import { ensureTinyQwen3 } from '../../src/model/tiny.js';
import { useBackend } from '../helpers/backends.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'promedical-gguf-'));
const file = (name: string) => path.join(tmp, name);
let tokenizer: ChatTokenizer;
test.before(async () => {
  await useBackend('wasm');
  tokenizer = loadTokenizer();
});
test.after(async () => {
  await llamaCpp?.dispose();
  fs.rmSync(tmp, { recursive: true, force: true });
});

/** An untied Qwen3 (heads * headDim != hidden) with weights scaled up: peaked next-token
 * distributions (greedy is robust to float noise) and distinct tokens in a greedy run. */
const PEAKY: Qwen3Config = { ...qwen3Config('tiny'), hiddenSize: 48, intermediateSize: 96, numAttentionHeads: 4, numKeyValueHeads: 2, headDim: 16, tieWordEmbeddings: false, torchDtype: 'float32' };
function peakyModel(seed = 4): Qwen3ForCausalLM {
  const model = Qwen3ForCausalLM.random(PEAKY, seed);
  for (const [name, v] of model.namedParameters()) {
    if (v.shape.length === 2 && name !== 'model.embed_tokens.weight') v.assign(tf.tidy(() => v.mul(name === 'lm_head.weight' ? 50 : 20)));
  }
  return model;
}

/** Small and untied, for the round trips (F32 random weights: F16 and BF16 round them). */
const SMALL: Qwen3Config = { ...PEAKY, hiddenSize: 16, intermediateSize: 40, numAttentionHeads: 2, numKeyValueHeads: 1, headDim: 12 };

/** `p` fails with a GgufError whose message matches `re`. */
async function fails(p: Promise<unknown>, re: RegExp): Promise<void> {
  try {
    await p;
  } catch (err) {
    assert.instance(err, GgufError);
    assert.match((err as Error).message, re);
    return;
  }
  assert.unreachable(`expected ${re}`);
}

const tinyModel = async () => loadQwen3(await ensureTinyQwen3(undefined, { log: () => {} }));

test('round trip: metadata with its types, and the tensors bit for bit (F32) or as rounded (F16, BF16)', async () => {
  const model = Qwen3ForCausalLM.random(SMALL, 4);
  const params = model.namedParameters();
  for (const dtype of ['F32', 'F16', 'BF16'] as GgufDtype[]) {
    const out = file(`small-${dtype}.gguf`);
    const r = await saveGguf(model, out, { dtype, tokenizer, name: 'small' });
    assert.is(r.bytes, fs.statSync(out).size);
    const g = readGguf(out);
    try {
      assert.is(g.version, 3);
      const kv = (k: string) => g.metadata.get(k);
      assert.equal(kv('general.architecture'), { type: 'STRING', value: 'qwen3' });
      assert.equal(kv('general.name'), { type: 'STRING', value: 'small' });
      assert.equal(kv('general.file_type'), { type: 'UINT32', value: ({ F32: 0, F16: 1, BF16: 32 } as Record<string, number>)[dtype] });
      for (const [k, v] of [['block_count', 2], ['context_length', 40960], ['embedding_length', 16], ['feed_forward_length', 40], ['attention.head_count', 2], ['attention.head_count_kv', 1], ['attention.key_length', 12], ['attention.value_length', 12]] as const) {
        assert.equal(kv(`qwen3.${k}`), { type: 'UINT32', value: v }, k);
      }
      assert.equal(kv('qwen3.rope.freq_base'), { type: 'FLOAT32', value: 1e6 });
      assert.equal(kv('qwen3.attention.layer_norm_rms_epsilon'), { type: 'FLOAT32', value: Math.fround(1e-6) });
      assert.is(g.get('tokenizer.ggml.model'), 'gpt2');
      assert.is(g.get('tokenizer.ggml.pre'), 'qwen2');
      assert.equal([g.get('tokenizer.ggml.bos_token_id'), g.get('tokenizer.ggml.eos_token_id'), g.get('tokenizer.ggml.padding_token_id')], [151643, 151645, 151643]);
      assert.equal(kv('tokenizer.ggml.add_bos_token'), { type: 'BOOL', value: false });
      assert.is(g.get('tokenizer.chat_template'), tokenizer.chatTemplate);
      const tokens = kv('tokenizer.ggml.tokens')!;
      const types = kv('tokenizer.ggml.token_type')!;
      assert.ok(tokens.type === 'ARRAY' && tokens.itemType === 'STRING' && types.type === 'ARRAY' && types.itemType === 'INT32');
      assert.is(tokens.value.length, 151936, 'one token per embedding row');
      const T = GGUF_TOKEN_TYPE;
      for (const [id, text, type] of [
        [0, '!', T.NORMAL], [9707, 'Hello', T.NORMAL], [151643, '<|endoftext|>', T.CONTROL], [151645, '<|im_end|>', T.CONTROL],
        [151659, '<|fim_prefix|>', T.CONTROL], [151657, '<tool_call>', T.USER_DEFINED], [151666, '</tool_response>', T.USER_DEFINED],
        [151667, '<think>', T.USER_DEFINED], [151668, '</think>', T.USER_DEFINED], [151669, '[PAD151669]', T.UNUSED], [151935, '[PAD151935]', T.UNUSED],
      ] as const) {
        assert.is(tokens.value[id], text, `token ${id}`);
        assert.is(types.value[id], type, `type of ${text}`);
      }
      const merges = g.get('tokenizer.ggml.merges') as string[];
      assert.is(merges.length, 151387);
      assert.is(merges[0], 'Ġ Ġ');

      const names = [...params.keys()];
      assert.equal(g.tensors.map((t) => t.name), names.map(ggufTensorName));
      assert.ok(g.tensors.some((t) => t.name === 'output.weight'), 'untied: output.weight is written');
      assert.is(g.dataOffset % 32, 0);
      for (const [name, p] of params) {
        const t = g.tensor(ggufTensorName(name));
        assert.equal(t.dims, [...p.shape].reverse(), `${name}: dims innermost first`);
        assert.is(t.offset % 32, 0, `${name} aligned`);
        const want = p.dataSync() as Float32Array;
        const type = p.shape.length === 1 ? 'F32' : dtype;
        assert.is(t.type, type, `${name} type`);
        const bytes = g.bytes(t.name);
        const expected = type === 'F32' ? want : type === 'F16' ? float32ToF16Bits(want) : float32ToBf16Bits(want);
        assert.ok(Buffer.from(bytes).equals(Buffer.from(expected.buffer, expected.byteOffset, expected.byteLength)), `${name} ${type} bytes`);
        const back = g.floats(t.name);
        const tol = ({ F32: 0, F16: 2 ** -11, BF16: 2 ** -8 } as Record<string, number>)[type];
        let worst = 0;
        for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(back[i] - want[i]) - tol * Math.abs(want[i]));
        assert.ok(worst <= 1e-7, `${name}: ${type} values within rounding (excess ${worst})`);
      }
    } finally {
      g.close();
    }
  }
  model.dispose();
});

/** Largest excess of |x - x^| over half a Q8_0 step (d / 2, plus the F16 rounding of d times
 * |q| <= 127), block by block; <= 0 when every value is within its block's rounding. */
function q8Excess(x: Float32Array, back: Float32Array): number {
  let worst = -Infinity;
  for (let b = 0; b < x.length / 32; b++) {
    const block = x.subarray(32 * b, 32 * b + 32);
    const d = Math.max(...Array.from(block, Math.abs)) / 127;
    const dHalf = f16BitsToFloat32(float32ToF16Bits(Float32Array.of(d)))[0];
    for (let i = 0; i < 32; i++) worst = Math.max(worst, Math.abs(back[32 * b + i] - block[i]) - (d / 2 + 127 * Math.abs(d - dHalf) + 1e-9));
  }
  return worst;
}

test('Q8_0: llama.cpp\'s block layout (F16 scale, 32 int8), values within half a step, and what it cannot hold', async () => {
  // A block on the grid k / 127 (amax 1: d = 1/127, q = k exactly), and an all-zero block.
  const k = Array.from({ length: 32 }, (_, i) => (i === 0 ? -127 : i === 1 ? 127 : ((i * 37) % 255) - 127));
  const bytes = quantizeQ8_0(Float32Array.from([...k.map((v) => v / 127), ...new Array(32).fill(0)]));
  assert.is(bytes.length, 2 * 34);
  const view = new DataView(bytes.buffer);
  assert.is(view.getUint16(0, true), float32ToF16Bits(Float32Array.of(1 / 127))[0], 'scale d = max|x| / 127 as F16');
  assert.equal(Array.from({ length: 32 }, (_, i) => view.getInt8(2 + i)), k);
  assert.equal([...bytes.subarray(34)], new Array(34).fill(0), 'zero block: d = 0, q = 0');

  // A model whose rows are whole blocks: 2-D tensors Q8_0 within rounding, norms F32 exactly.
  const c: Qwen3Config = { ...PEAKY, hiddenSize: 64, intermediateSize: 96, headDim: 16 };
  const model = Qwen3ForCausalLM.random(c, 6);
  await saveGguf(model, file('q8.gguf'), { tokenizer, dtype: 'Q8_0' });
  const g = readGguf(file('q8.gguf'));
  try {
    assert.is(g.get('general.file_type'), GGUF_FILE_TYPE.Q8_0);
    assert.is(GGUF_FILE_TYPE.Q8_0, 7, "llama.cpp's LLAMA_FTYPE_MOSTLY_Q8_0");
    for (const [name, p] of model.namedParameters()) {
      const t = g.tensor(ggufTensorName(name));
      const want = p.dataSync() as Float32Array;
      assert.is(t.type, p.shape.length === 1 ? 'F32' : 'Q8_0', name);
      const back = g.floats(t.name);
      if (t.type === 'F32') assert.equal(back, want, name);
      else assert.ok(q8Excess(want, back) <= 0, `${name}: excess ${q8Excess(want, back)}`);
    }
  } finally {
    g.close();
  }
  model.dispose();

  // Rows of 16 values are not whole blocks; LoRA adapters (rows of r) are never Q8_0.
  const small = Qwen3ForCausalLM.random(SMALL, 4);
  await fails(saveGguf(small, file('small-q8.gguf'), { tokenizer, dtype: 'Q8_0' }), /rows of 16 values; Q8_0 needs a multiple of 32/);
  assert.not.ok(fs.existsSync(file('small-q8.gguf')), 'nothing written');
  addLora(small, { r: 4, alpha: 8, targetModules: ['q_proj'], seed: 1 });
  await fails(saveLoraGguf(small, file('small-lora-q8.gguf'), { dtype: 'Q8_0' as 'F32' }), /dtype "Q8_0" is not one of F32, F16, BF16/);
  small.dispose();
});

test('tied heads omit output.weight; the LoRA adapter file has llama.cpp\'s keys, names and shapes', async () => {
  const model = await tinyModel();
  addLora(model, { r: 4, alpha: 8, targetModules: ['q_proj', 'down_proj'], seed: 1 });
  await saveGguf(model, file('tied.gguf'), { tokenizer, dtype: 'BF16', lora: 'base' });
  const g = readGguf(file('tied.gguf'));
  assert.not.ok(g.tensors.some((t) => t.name === 'output.weight'));
  assert.is(g.tensors.length, 2 * 11 + 2);
  g.close();
  await saveLoraGguf(model, file('tied-lora.gguf'));
  const l = readGguf(file('tied-lora.gguf'));
  assert.equal([...l.metadata.keys()], ['general.architecture', 'general.type', 'general.file_type', 'general.quantization_version', 'adapter.type', 'adapter.lora.alpha']);
  assert.is(l.get('general.type'), 'adapter');
  assert.is(l.get('adapter.type'), 'lora');
  assert.equal(l.metadata.get('adapter.lora.alpha'), { type: 'FLOAT32', value: 8 });
  assert.equal(l.tensor('blk.1.attn_q.weight.lora_a').dims, [64, 4], 'lora_a: [in, r]');
  assert.equal(l.tensor('blk.1.attn_q.weight.lora_b').dims, [4, 128], 'lora_b: [r, out]');
  assert.equal(l.tensor('blk.0.ffn_down.weight.lora_a').dims, [192, 4]);
  const B = model.adapters.get('model.layers.1.mlp.down_proj')!.B;
  assert.equal(Array.from(l.floats('blk.1.ffn_down.weight.lora_b')), Array.from(B.dataSync()));
  assert.is(l.tensors.length, 2 * 2 * 2);
  l.close();
  model.dispose();
});

test('bad inputs fail with clear errors before anything is written; a failed write leaves the previous file intact', async () => {
  const model = Qwen3ForCausalLM.random(SMALL, 2);
  const out = file('keep.gguf');
  await saveGguf(model, out, { tokenizer, dtype: 'BF16' });
  const before = fs.readFileSync(out);
  await fails(saveGguf(model, out, {} as never), /needs opts\.tokenizer .*llama\.cpp cannot load a model without its vocabulary/);
  await fails(saveGguf(model, out, { tokenizer: { source: file('nowhere/tokenizer.json') } }), /nowhere\/tokenizer\.json: tokenizer\.json not found/);
  await fails(saveGguf(model, out, { tokenizer, dtype: 'Q4_0' as never }), /dtype "Q4_0" is not one of F32, F16, BF16/);
  await fails(saveGguf(model, tmp, { tokenizer }), /is a folder; give the path of the \.gguf file to write/);
  fs.writeFileSync(file('a-file'), 'x');
  await fails(saveGguf(model, file('a-file/out.gguf'), { tokenizer }), /cannot be written: .*a-file is not a folder/);
  await fails(saveLoraGguf(model, out), /no LoRA adapters to write/);
  addLora(model, { r: 2, alpha: 4, seed: 1 });
  await fails(saveGguf(model, out, { tokenizer }), /has 4 LoRA adapters: pass lora: 'merge' .* or lora: 'base'/);
  model.adapters.get('model.layers.0.self_attn.q_proj')!.scale = 5;
  await fails(saveLoraGguf(model, out), /adapters have different alpha \(scale \* r\)/);
  // A source that fails halfway through the data: the temporary file goes, the old file stays.
  const metadata: [string, { type: 'STRING'; value: string }][] = [['general.architecture', { type: 'STRING', value: 'qwen3' }]];
  const broken = { name: 'x', dims: [4], type: 'F32' as const, write: async (put: (c: Uint8Array) => Promise<void>) => {
    await put(new Uint8Array(8));
    throw new Error('disk on fire');
  } };
  try {
    await writeGguf(out, metadata, [broken]);
    assert.unreachable('the write fails');
  } catch (err) {
    assert.match((err as Error).message, /disk on fire/);
  }
  await fails(writeGguf(out, metadata, [{ ...broken, write: async (put) => put(new Uint8Array(12)) }]), /tensor "x": its source gave 12 bytes, F32 \[4\] needs 16/);
  assert.ok(fs.readFileSync(out).equals(before), 'the previous file is byte for byte intact');
  assert.equal(fs.readdirSync(tmp).filter((f) => f.includes('.tmp-')), [], 'no temporary file left behind');
  // The reader refuses what is not a complete GGUF file.
  await fails(Promise.resolve().then(() => readGguf(file('a-file'))), /a-file: not a GGUF file/);
  fs.writeFileSync(file('cut.gguf'), before.subarray(0, before.length - 100));
  await fails(Promise.resolve().then(() => readGguf(file('cut.gguf'))), /cut\.gguf: tensor "output\.weight" ends at byte \d+, past the end of the file/);
  fs.writeFileSync(file('cut-header.gguf'), before.subarray(0, 5000));
  await fails(Promise.resolve().then(() => readGguf(file('cut-header.gguf'))), /cut-header\.gguf: metadata "tokenizer\.ggml\.tokens": 151936 items cannot fit in the file/);
  model.dispose();
});

// ---------------------------------------------------------------------------------------------
// llama.cpp through node-llama-cpp (a devDependency; skipped with a message where it is missing)

type Llama = Awaited<ReturnType<typeof loadLlamaCpp>>;
type LlamaModel = Awaited<ReturnType<Llama['loadModel']>>;
let llamaCpp: Llama | null | undefined;
async function llama(): Promise<Llama | null> {
  if (llamaCpp !== undefined) return llamaCpp;
  try {
    await import('node-llama-cpp');
  } catch {
    console.log('  skipped: node-llama-cpp is not installed (npm install node-llama-cpp@3.21.1 runs these checks)');
    return (llamaCpp = null);
  }
  return (llamaCpp = await loadLlamaCpp({ gpu: false, maxThreads: 2 }));
}

/** Positions whose log-probs are compared: the last SCORED of a sequence (llama.cpp returns
 * each position's probabilities as a 151,936-entry Map, about 0.1 s apiece here). */
const SCORED = 10;

/** llama.cpp's greedy continuation of `prompt` and its teacher-forced log-probs of the last
 * SCORED tokens of `seq`: F32 KV cache, no flash attention, greedy sampling set explicitly. */
async function llamaCppRun(lm: LlamaModel, prompt: number[], n: number, seq: number[], lora?: string): Promise<{ greedy: number[]; logp: number[] }> {
  const ctx = await lm.createContext({
    contextSize: 128, threads: 2, flashAttention: false,
    experimentalKvCacheKeyType: 'F32', experimentalKvCacheValueType: 'F32',
    ...(lora ? { lora: { adapters: [{ filePath: lora }] } } : {}),
  });
  try {
    const s = ctx.getSequence();
    const greedy: number[] = [];
    for await (const t of s.evaluate(prompt as never[], { temperature: 0, topK: 1, topP: 1, yieldEogToken: true })) {
      greedy.push(t as number);
      if (greedy.length >= n) break;
    }
    await s.clearHistory();
    // temperature 0 runs the greedy sampler alone: the probabilities are the softmax of the raw logits.
    const from = seq.length - 1 - SCORED;
    const items = seq.slice(0, -1).map((t, i) => (i >= from ? [t, { generateNext: { probabilities: true, options: { temperature: 0 } } }] : t));
    const out = await s.controlledEvaluate(items as never);
    const logp = seq.slice(from + 1).map((t, i) => Math.log(out[from + i]!.next.probabilities!.get(t as never) ?? 0));
    return { greedy, logp };
  } finally {
    await ctx.dispose();
  }
}

async function loadGguf(gguf: string): Promise<LlamaModel> {
  return (await llama())!.loadModel({ modelPath: gguf });
}

/** Our greedy continuation and teacher-forced log-probs of seq[1..]. */
async function ours(model: Qwen3ForCausalLM, prompt: number[], n: number): Promise<{ greedy: number[]; seq: number[]; logp: number[] }> {
  const [greedy] = await generate(model, [prompt], { maxNewTokens: n, temperature: 0 });
  const seq = [...prompt, ...greedy];
  const logp = tf.tidy(() => model.targetLogProbs(tf.tensor2d([seq], [1, seq.length], 'int32'), { targets: { lastTokens: seq.length - 1 } }).logp.dataSync());
  return { greedy, seq, logp: Array.from(logp).slice(-SCORED) };
}

const maxDiff = (a: number[], b: number[]) => Math.max(...a.map((x, i) => Math.abs(x - b[i])));
const PROMPT = () => tokenizer.encode('<think>\nChest pain 胸痛, боль 🙂</think>');

test('llama.cpp: the tied tiny model greedy-decodes to our ids, log-probs within 1e-3 (F32 weights and KV cache)', async () => {
  if (!(await llama())) return;
  const model = await tinyModel();
  await saveGguf(model, file('tiny-f32.gguf'), { tokenizer, dtype: 'F32' });
  const prompt = PROMPT();
  const mine = await ours(model, prompt, 6);
  const lm = await loadGguf(file('tiny-f32.gguf'));
  const theirs = await llamaCppRun(lm, prompt, 6, mine.seq);
  await lm.dispose();
  assert.equal(theirs.greedy, mine.greedy);
  const d = maxDiff(theirs.logp, mine.logp);
  assert.ok(d < 1e-3, `max |log p diff| ${d}`);
  model.dispose();
});

test('llama.cpp: an untied peaky model (distinct tokens) and the same model with LoRA adapters (adapter GGUF) decode to our ids', async () => {
  if (!(await llama())) return;
  const model = peakyModel();
  const prompt = PROMPT();
  await saveGguf(model, file('peaky.gguf'), { tokenizer });
  const base = await ours(model, prompt, 8);
  assert.ok(new Set(base.greedy).size >= 6, `distinct tokens: ${base.greedy}`);
  const lm = await loadGguf(file('peaky.gguf'));
  const theirs = await llamaCppRun(lm, prompt, 8, base.seq);
  assert.equal(theirs.greedy, base.greedy);
  const d = maxDiff(theirs.logp, base.logp);
  assert.ok(d < 1e-3, `peaky: max |log p diff| ${d}`);

  addLora(model, { r: 4, alpha: 8, targetModules: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'], seed: 3 });
  let seed = 10;
  for (const a of model.adapters.values()) a.B.assign(tf.randomNormal(a.B.shape, 0, 0.5, 'float32', ++seed));
  await saveLoraGguf(model, file('peaky-lora.gguf'));
  const adapted = await ours(model, prompt, 8);
  assert.not.equal(adapted.greedy, base.greedy, 'the adapters change the output');
  const withLora = await llamaCppRun(lm, prompt, 8, adapted.seq, file('peaky-lora.gguf'));
  await lm.dispose();
  assert.equal(withLora.greedy, adapted.greedy);
  const dl = maxDiff(withLora.logp, adapted.logp);
  assert.ok(dl < 1e-3, `LoRA: max |log p diff| ${dl}`);
  model.dispose();
});

test('llama.cpp loads a Q8_0 file: teacher-forced log-probs near ours, the first greedy tokens ours', async () => {
  if (!(await llama())) return;
  const c: Qwen3Config = { ...PEAKY, hiddenSize: 64, intermediateSize: 96, headDim: 16 };
  // Milder than peakyModel: a spread of several nats per logit, without amplifying 8-bit rounding.
  const model = Qwen3ForCausalLM.random(c, 4);
  for (const [name, v] of model.namedParameters()) {
    if (v.shape.length === 2 && name !== 'model.embed_tokens.weight') v.assign(tf.tidy(() => v.mul(name === 'lm_head.weight' ? 10 : 4)));
  }
  const prompt = PROMPT();
  await saveGguf(model, file('peaky-q8.gguf'), { tokenizer, dtype: 'Q8_0' });
  const mine = await ours(model, prompt, 8);
  const lm = await loadGguf(file('peaky-q8.gguf'));
  const theirs = await llamaCppRun(lm, prompt, 8, mine.seq);
  await lm.dispose();
  // llama.cpp also rounds the activations to 8 bits: near-ties further on may flip (measured: the
  // third token of this run is one), so greedy ids are compared where the margins are wide.
  assert.equal(theirs.greedy.slice(0, 2), mine.greedy.slice(0, 2));
  const d = maxDiff(theirs.logp, mine.logp);
  // Measured 0.05; a wrong block layout gives several nats, float32 weights 1e-5.
  assert.ok(d < 0.15 && d > 1e-4, `max |log p diff| ${d}: 8-bit rounding, neither float noise nor a wrong layout`);
  model.dispose();
});

test("llama.cpp's tokenizer gives our ids: a chat-template string, <think>, emoji, CJK, Cyrillic", async () => {
  if (!(await llama())) return;
  if (!fs.existsSync(file('tiny-f32.gguf'))) {
    const model = await tinyModel();
    await saveGguf(model, file('tiny-f32.gguf'), { tokenizer });
    model.dispose();
  }
  const lm = await (await llama())!.loadModel({ modelPath: file('tiny-f32.gguf'), vocabOnly: true });
  const chat = tokenizer.applyChatTemplate(
    [{ role: 'system', content: 'Be careful.' }, { role: 'user', content: 'Was tun bei Brustschmerz? 胸が痛い' }, { role: 'assistant', content: 'Call 112.', reasoning_content: 'Emergency.' }, { role: 'user', content: 'Спасибо 🙏🏽' }],
    { addGenerationPrompt: true },
  );
  for (const text of [chat, '<think>\nhmm\n</think>\n\n', '🙂👩‍⚕️🫀 emoji', '急性心肌梗死的症状', 'Острый инфаркт миокарда', "  leading spaces, tabs\tand\r\nnewlines 123456 don't"]) {
    const want = tokenizer.encode(text);
    assert.equal(Array.from(lm.tokenize(text, true)), want, JSON.stringify(text.slice(0, 40)));
    assert.is(lm.detokenize(want as never[], true), tokenizer.decode(want), `detokenize ${JSON.stringify(text.slice(0, 40))}`);
  }
  assert.equal([lm.tokens.bos, lm.tokens.eos], [151643, 151645]);
  await lm.dispose();
});

test('without node-llama-cpp, loadLlamaCpp says how to install it', () => {
  // A resolve hook hides the package from a child process, as on a machine without it.
  const hooks = file('hide-hooks.mjs');
  fs.writeFileSync(hooks, `export async function resolve(s, c, next) { if (s === 'node-llama-cpp') { const e = new Error("Cannot find package 'node-llama-cpp' imported from " + c.parentURL); e.code = 'ERR_MODULE_NOT_FOUND'; throw e; } return next(s, c); }\n`);
  fs.writeFileSync(file('hide.mjs'), `import { register } from 'node:module'; register(${JSON.stringify(new URL(`file://${hooks}`).href)});\n`);
  const src = new URL('../../src/model/gguf.ts', import.meta.url).href;
  const code = `import { loadLlamaCpp } from ${JSON.stringify(src)}; try { await loadLlamaCpp(); console.log('loaded'); } catch (e) { console.log(e.name + ': ' + e.message); }`;
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--import', file('hide.mjs'), '--input-type=module', '-e', code], { encoding: 'utf8', cwd: path.dirname(new URL(import.meta.url).pathname) });
  assert.is(r.stdout.trim(), 'GgufError: node-llama-cpp is not installed; it is an optional peer dependency of promedical: npm install node-llama-cpp@3.21.1', r.stderr);
});

test.run();
