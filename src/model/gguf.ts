// GGUF (the llama.cpp / ggml file format): Qwen3 models and their LoRA adapters written so that
// llama.cpp loads them, and a reader that parses any GGUF v2/v3 file back for checks.
//
// Layout (little-endian): "GGUF", u32 version (3), u64 tensor count, u64 key/value count, the
// key/values (string key, u32 value type, value), the tensor infos (string name, u32 n_dims, u64
// dims innermost first, u32 ggml type, u64 offset into the data section), zero padding to the
// alignment (general.alignment, default 32), then the data section, each tensor at an aligned
// offset. Strings are a u64 byte length and UTF-8 bytes; arrays a u32 item type, a u64 count and
// the items.
//
// An HF linear weight [out, in] (row-major) is the ggml tensor with dims [in, out]: the same bytes,
// nothing transposed. llama.cpp's qwen3 applies RoPE in the rotate-half (NEOX) form of the HF
// model, so Q and K need no permutation either.
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { bf16BitsToFloat32, f16BitsToFloat32, float32ToBf16Bits, float32ToF16Bits } from './half.js';
import type { Qwen3Config } from './config.js';
import { qwen3TensorShapes, type LoraModule, type Qwen3ForCausalLM } from './qwen3.js';
import { atomicWrite, SafetensorsError } from './safetensors.js';

export class GgufError extends Error {
  override readonly name = 'GgufError';
  constructor(
    message: string,
    /** The file concerned, when there is one. */
    readonly file?: string,
  ) {
    super(file ? `${file}: ${message}` : message);
  }
}

// ---------------------------------------------------------------------------------------------
// Values and types

/** GGUF metadata value types, by their ids in the file (the index in this list). */
export const GGUF_VALUE_TYPES = ['UINT8', 'INT8', 'UINT16', 'INT16', 'UINT32', 'INT32', 'FLOAT32', 'BOOL', 'STRING', 'ARRAY', 'UINT64', 'INT64', 'FLOAT64'] as const;
export type GgufValueType = (typeof GGUF_VALUE_TYPES)[number];
export type GgufScalarType = Exclude<GgufValueType, 'ARRAY'>;
type NumberType = 'UINT8' | 'INT8' | 'UINT16' | 'INT16' | 'UINT32' | 'INT32' | 'FLOAT32' | 'FLOAT64';
export type GgufScalar = number | bigint | boolean | string;

/** A metadata value with its type (64-bit integers are bigints). */
export type GgufValue =
  | { type: NumberType; value: number }
  | { type: 'UINT64' | 'INT64'; value: bigint }
  | { type: 'BOOL'; value: boolean }
  | { type: 'STRING'; value: string }
  | { type: 'ARRAY'; itemType: GgufScalarType; value: GgufScalar[] };

/** Integer ranges of the fixed-size integer types. */
const INT_RANGE: Partial<Record<GgufScalarType, [number, number]>> = {
  UINT8: [0, 0xff], INT8: [-0x80, 0x7f], UINT16: [0, 0xffff], INT16: [-0x8000, 0x7fff],
  UINT32: [0, 0xffffffff], INT32: [-0x80000000, 0x7fffffff],
};

/** ggml tensor types this module knows: id, elements per block, bytes per block. */
const GGML_TYPES: Record<string, { id: number; block: number; bytes: number }> = {
  F32: { id: 0, block: 1, bytes: 4 }, F16: { id: 1, block: 1, bytes: 2 },
  Q4_0: { id: 2, block: 32, bytes: 18 }, Q4_1: { id: 3, block: 32, bytes: 20 },
  Q5_0: { id: 6, block: 32, bytes: 22 }, Q5_1: { id: 7, block: 32, bytes: 24 },
  Q8_0: { id: 8, block: 32, bytes: 34 }, Q8_1: { id: 9, block: 32, bytes: 36 },
  Q2_K: { id: 10, block: 256, bytes: 84 }, Q3_K: { id: 11, block: 256, bytes: 110 },
  Q4_K: { id: 12, block: 256, bytes: 144 }, Q5_K: { id: 13, block: 256, bytes: 176 },
  Q6_K: { id: 14, block: 256, bytes: 210 }, Q8_K: { id: 15, block: 256, bytes: 292 },
  I8: { id: 24, block: 1, bytes: 1 }, I16: { id: 25, block: 1, bytes: 2 },
  I32: { id: 26, block: 1, bytes: 4 }, I64: { id: 27, block: 1, bytes: 8 },
  F64: { id: 28, block: 1, bytes: 8 }, BF16: { id: 30, block: 1, bytes: 2 },
};
const GGML_TYPE_BY_ID = new Map(Object.entries(GGML_TYPES).map(([name, t]) => [t.id, name]));

/** The on-disk dtypes saveGguf writes matrices in (1-D tensors are always F32). Q8_0 is
 * llama.cpp's 8-bit block format: per 32 consecutive values of a row one F16 scale d = max|x| / 127
 * and 32 int8 q = round(x / d). */
export type GgufDtype = 'F32' | 'F16' | 'BF16' | 'Q8_0';
const DTYPES: readonly GgufDtype[] = ['F32', 'F16', 'BF16', 'Q8_0'];
/** general.file_type for each dtype (llama.cpp's LLAMA_FTYPE_ALL_F32, MOSTLY_F16, MOSTLY_BF16,
 * MOSTLY_Q8_0). */
export const GGUF_FILE_TYPE: Readonly<Record<GgufDtype, number>> = { F32: 0, F16: 1, BF16: 32, Q8_0: 7 };
/** Values per Q8_0 block, and bytes per block (an F16 scale and 32 int8). */
const Q8_0_BLOCK = 32;
const Q8_0_BYTES = 34;

/** llama.cpp's token types (tokenizer.ggml.token_type). */
export const GGUF_TOKEN_TYPE = { NORMAL: 1, UNKNOWN: 2, CONTROL: 3, USER_DEFINED: 4, UNUSED: 5, BYTE: 6 } as const;

export const GGUF_DEFAULT_ALIGNMENT = 32;
const MAGIC = 0x46554747; // "GGUF" read as a little-endian u32

// ---------------------------------------------------------------------------------------------
// Writing

/** One tensor to write: its ggml dims (innermost first), type, and a producer of its bytes. */
export interface GgufTensorSource {
  name: string;
  /** ggml dims, innermost (contiguous) first: an HF [out, in] weight is [in, out]. */
  dims: number[];
  type: GgufDtype;
  /** Calls `put` with the tensor's bytes in order, in as many chunks as it likes (the total must
   * be the tensor's size). Called once, while the file is written. */
  write(put: (chunk: Uint8Array) => Promise<void>): Promise<void>;
}

/** What a write produced. */
export interface GgufWriteResult {
  file: string;
  bytes: number;
  tensors: number;
  metadataKeys: number;
}

const alignUp = (n: number, a: number) => Math.ceil(n / a) * a;

function byteSize(type: string, dims: number[]): number {
  const t = GGML_TYPES[type];
  const n = dims.reduce((a, d) => a * d, 1);
  return (n / t.block) * t.bytes;
}

/** Grows a buffer for the header (a few MB for a 151,936-token vocabulary). */
class ByteWriter {
  private buf = Buffer.alloc(1 << 20);
  length = 0;
  private room(n: number): void {
    if (this.length + n <= this.buf.length) return;
    const next = Buffer.alloc(Math.max(this.buf.length * 2, this.length + n));
    this.buf.copy(next, 0, 0, this.length);
    this.buf = next;
  }
  u32(v: number): void {
    this.room(4);
    this.buf.writeUInt32LE(v, this.length);
    this.length += 4;
  }
  u64(v: number | bigint): void {
    this.room(8);
    this.buf.writeBigUInt64LE(BigInt(v), this.length);
    this.length += 8;
  }
  string(s: string): void {
    const bytes = Buffer.from(s, 'utf8');
    this.u64(bytes.length);
    this.room(bytes.length);
    bytes.copy(this.buf, this.length);
    this.length += bytes.length;
  }
  scalar(type: GgufScalarType, v: GgufScalar, key: string): void {
    const bad = (): never => {
      throw new GgufError(`metadata "${key}": ${typeof v === 'string' ? JSON.stringify(v.slice(0, 40)) : String(v)} is not a ${type}`);
    };
    if (type === 'STRING') return typeof v === 'string' ? this.string(v) : bad();
    if (type === 'BOOL') {
      if (typeof v !== 'boolean') bad();
      this.room(1);
      this.buf.writeUInt8(v ? 1 : 0, this.length++);
      return;
    }
    if (type === 'UINT64' || type === 'INT64') {
      if (typeof v !== 'bigint' && !(typeof v === 'number' && Number.isSafeInteger(v))) bad();
      const b = BigInt(v as number | bigint);
      if (type === 'UINT64' ? b < 0n || b >= 1n << 64n : b < -(1n << 63n) || b >= 1n << 63n) bad();
      this.room(8);
      if (type === 'UINT64') this.buf.writeBigUInt64LE(b, this.length);
      else this.buf.writeBigInt64LE(b, this.length);
      this.length += 8;
      return;
    }
    if (typeof v !== 'number') return bad();
    const range = INT_RANGE[type];
    if (range && !(Number.isInteger(v) && v >= range[0] && v <= range[1])) bad();
    const size = { UINT8: 1, INT8: 1, UINT16: 2, INT16: 2, UINT32: 4, INT32: 4, FLOAT32: 4, FLOAT64: 8 }[type];
    this.room(size);
    const o = this.length;
    switch (type) {
      case 'UINT8': this.buf.writeUInt8(v, o); break;
      case 'INT8': this.buf.writeInt8(v, o); break;
      case 'UINT16': this.buf.writeUInt16LE(v, o); break;
      case 'INT16': this.buf.writeInt16LE(v, o); break;
      case 'UINT32': this.buf.writeUInt32LE(v, o); break;
      case 'INT32': this.buf.writeInt32LE(v, o); break;
      case 'FLOAT32': this.buf.writeFloatLE(v, o); break;
      case 'FLOAT64': this.buf.writeDoubleLE(v, o); break;
    }
    this.length += size;
  }
  value(key: string, v: GgufValue): void {
    const typeId = GGUF_VALUE_TYPES.indexOf(v.type);
    if (typeId < 0) throw new GgufError(`metadata "${key}": unknown value type ${String(v.type)}`);
    this.u32(typeId);
    if (v.type !== 'ARRAY') return this.scalar(v.type, v.value, key);
    const itemId = GGUF_VALUE_TYPES.indexOf(v.itemType);
    if (itemId < 0 || v.itemType === ('ARRAY' as string)) throw new GgufError(`metadata "${key}": arrays of ${String(v.itemType)} are not supported`);
    if (!Array.isArray(v.value)) throw new GgufError(`metadata "${key}": an ARRAY value must be an array`);
    this.u32(itemId);
    this.u64(v.value.length);
    for (const item of v.value) this.scalar(v.itemType, item, key);
  }
  bytes(): Buffer {
    return this.buf.subarray(0, this.length);
  }
}

/**
 * Writes a GGUF v3 file: `metadata` in the order given, then the tensors, each streamed from its
 * source (so no tensor, let alone the file, is ever held whole). Atomic: the file is written
 * beside `file` under a temporary name, fsynced and renamed over it, so a failure or a crash
 * mid-write leaves any previous `file` as it was. Everything that can be checked is checked
 * before the temporary file is created.
 */
export async function writeGguf(file: string, metadata: Iterable<[string, GgufValue]>, tensors: GgufTensorSource[], opts: { alignment?: number } = {}): Promise<GgufWriteResult> {
  try {
    return await writeFile(file, metadata, tensors, opts);
  } catch (err) {
    throw withFile(err, file);
  }
}

async function writeFile(file: string, metadata: Iterable<[string, GgufValue]>, tensors: GgufTensorSource[], opts: { alignment?: number }): Promise<GgufWriteResult> {
  const alignment = opts.alignment ?? GGUF_DEFAULT_ALIGNMENT;
  if (!(Number.isInteger(alignment) && alignment > 0 && (alignment & (alignment - 1)) === 0)) throw new GgufError(`alignment must be a power of two, got ${alignment}`, file);
  checkTarget(file);
  const kvs = [...metadata];
  const header = new ByteWriter();
  header.u32(MAGIC);
  header.u32(3);
  header.u64(tensors.length);
  header.u64(kvs.length + (alignment === GGUF_DEFAULT_ALIGNMENT ? 0 : 1));
  const keys = new Set<string>();
  for (const [key, v] of kvs) {
    if (keys.has(key)) throw new GgufError(`metadata key "${key}" is given twice`, file);
    keys.add(key);
    header.string(key);
    header.value(key, v);
  }
  if (keys.has('general.alignment')) throw new GgufError('general.alignment is set through opts.alignment', file);
  if (alignment !== GGUF_DEFAULT_ALIGNMENT) {
    header.string('general.alignment');
    header.value('general.alignment', { type: 'UINT32', value: alignment });
  }
  const names = new Set<string>();
  let offset = 0;
  const plan: { t: GgufTensorSource; size: number; offset: number }[] = [];
  for (const t of tensors) {
    if (names.has(t.name)) throw new GgufError(`tensor "${t.name}" is given twice`, file);
    names.add(t.name);
    if (!DTYPES.includes(t.type)) throw new GgufError(`tensor "${t.name}": type ${String(t.type)} is not one of ${DTYPES.join(', ')}`, file);
    if (!(t.dims.length >= 1 && t.dims.length <= 4 && t.dims.every((d) => Number.isSafeInteger(d) && d > 0))) {
      throw new GgufError(`tensor "${t.name}": dims [${t.dims}] must be 1 to 4 positive integers`, file);
    }
    header.string(t.name);
    header.u32(t.dims.length);
    for (const d of t.dims) header.u64(d);
    header.u32(GGML_TYPES[t.type].id);
    header.u64(offset);
    const size = byteSize(t.type, t.dims);
    plan.push({ t, size, offset });
    offset = alignUp(offset + size, alignment);
  }
  const headerBytes = header.bytes();
  const dataStart = alignUp(headerBytes.length, alignment);
  const total = dataStart + (plan.length ? plan.at(-1)!.offset + plan.at(-1)!.size : 0);
  try {
    await atomicWrite(file, async (fh) => {
      await fh.write(headerBytes);
      let pos = headerBytes.length;
      const pad = async (to: number) => {
        if (to > pos) await fh.write(Buffer.alloc(to - pos));
        pos = to;
      };
      for (const { t, size, offset: at } of plan) {
        await pad(dataStart + at);
        let written = 0;
        await t.write(async (chunk) => {
          if (written + chunk.byteLength > size) throw new GgufError(`tensor "${t.name}": its source gave more than its ${size} bytes`, file);
          // write() moves at most 2 GiB per call; chunks are kept far below that by the sources.
          await fh.write(chunk);
          written += chunk.byteLength;
        });
        if (written !== size) throw new GgufError(`tensor "${t.name}": its source gave ${written} bytes, ${t.type} [${t.dims}] needs ${size}`, file);
        pos += size;
      }
    });
  } catch (err) {
    // atomicWrite reports its failures as SafetensorsError; here they are GGUF write failures.
    if (err instanceof SafetensorsError) throw new GgufError(err.message.startsWith(`${file}: `) ? err.message.slice(file.length + 2) : err.message, file);
    throw err;
  }
  return { file, bytes: total, tensors: plan.length, metadataKeys: kvs.length };
}

/** `err` with `file` in its message when it is a GgufError that names no file. */
const withFile = (err: unknown, file: string) => (err instanceof GgufError && !err.file ? new GgufError(err.message, file) : err);

/** The target must be a file path whose folder can hold it (checked before any work). */
function checkTarget(file: string): void {
  if (typeof file !== 'string' || file === '') throw new GgufError('the output path must be a non-empty string');
  let stat: fs.Stats | undefined;
  try {
    stat = fs.statSync(file);
  } catch {
    /* a new file */
  }
  if (stat?.isDirectory()) throw new GgufError('is a folder; give the path of the .gguf file to write', file);
  // The nearest existing ancestor must be a folder (atomicWrite creates the missing ones).
  let dir = path.dirname(path.resolve(file));
  while (!fs.existsSync(dir) && path.dirname(dir) !== dir) dir = path.dirname(dir);
  if (!fs.statSync(dir).isDirectory()) throw new GgufError(`cannot be written: ${dir} is not a folder`, file);
}

// ---------------------------------------------------------------------------------------------
// Qwen3

/** The llama.cpp name of an HF Qwen3 tensor (model.layers.3.mlp.up_proj.weight -> blk.3.ffn_up.weight). */
export function ggufTensorName(hfName: string): string {
  const fixed: Record<string, string> = {
    'model.embed_tokens.weight': 'token_embd.weight',
    'model.norm.weight': 'output_norm.weight',
    'lm_head.weight': 'output.weight',
  };
  if (fixed[hfName]) return fixed[hfName];
  const m = /^model\.layers\.(\d+)\.(.+)\.weight$/.exec(hfName);
  const layer: Record<string, string> = {
    input_layernorm: 'attn_norm', post_attention_layernorm: 'ffn_norm',
    'self_attn.q_proj': 'attn_q', 'self_attn.k_proj': 'attn_k', 'self_attn.v_proj': 'attn_v', 'self_attn.o_proj': 'attn_output',
    'self_attn.q_norm': 'attn_q_norm', 'self_attn.k_norm': 'attn_k_norm',
    'mlp.gate_proj': 'ffn_gate', 'mlp.up_proj': 'ffn_up', 'mlp.down_proj': 'ffn_down',
  };
  if (!m || !layer[m[2]]) throw new GgufError(`${hfName} is not a Qwen3 tensor name`);
  return `blk.${m[1]}.${layer[m[2]]}.weight`;
}

/**
 * What saveGguf reads the vocabulary from: a ChatTokenizer (loadTokenizer), or anything whose
 * `source` is the path of a Hugging Face tokenizer.json. (A structural type: the model layer does
 * not import the data layer.)
 */
export interface GgufTokenizer {
  readonly source: string;
  /** Written as tokenizer.chat_template when a string. */
  readonly chatTemplate?: string | null;
  /** tokenizer.ggml.eos_token_id (default: the model config's eosTokenId). */
  readonly eosTokenId?: number;
  /** tokenizer.ggml.padding_token_id (default: the model config's bosTokenId). */
  readonly padTokenId?: number;
}

export interface SaveGgufOptions {
  /** dtype of the matrices (default F32); 1-D tensors (the norms) are F32 whatever it is. */
  dtype?: GgufDtype;
  /** The tokenizer whose vocabulary, merges and chat template go into the file (required:
   * llama.cpp cannot load a model without one). */
  tokenizer: GgufTokenizer;
  /** general.name (default none). */
  name?: string;
  /**
   * What to do with LoRA adapters attached to the model: 'merge' writes W + scale * B A (the model
   * itself is not changed), 'base' writes the base weights alone (export the adapters with
   * saveLoraGguf). Required when the model has adapters, so they are never dropped silently.
   */
  lora?: 'merge' | 'base';
}

/** Elements per chunk when a tensor is streamed (64 MB of float32). */
const CHUNK_ELEMENTS = 1 << 24;

/** A tfjs 2-D or 1-D tensor streamed row block by row block, in `type`, optionally plus a LoRA update. */
function tensorSource(name: string, t: tf.Tensor, type: GgufDtype, lora?: LoraModule): GgufTensorSource {
  const dims = [...t.shape].reverse();
  if (type === 'Q8_0' && dims[0] % Q8_0_BLOCK !== 0) {
    throw new GgufError(`tensor ${name} has rows of ${dims[0]} values; Q8_0 needs a multiple of ${Q8_0_BLOCK}: write F32, F16 or BF16`);
  }
  return {
    name,
    dims,
    type,
    async write(put) {
      const rows = t.shape.length === 1 ? 1 : t.shape[0];
      const cols = t.shape.length === 1 ? t.shape[0] : t.size / rows;
      const step = Math.max(1, Math.floor(CHUNK_ELEMENTS / cols));
      for (let r0 = 0; r0 < rows; r0 += step) {
        const n = Math.min(step, rows - r0);
        const part = tf.tidy(() => {
          if (t.shape.length === 1) return t.clone();
          let p = t.slice([r0, 0], [n, cols]);
          if (lora) p = p.add(tf.matMul(lora.B.slice([r0, 0], [n, -1]), lora.A).mul(lora.scale));
          return p;
        });
        let values: Float32Array;
        try {
          values = (await part.data()) as Float32Array;
        } finally {
          part.dispose();
        }
        await put(encode(values, type, name));
      }
    },
  };
}

function encode(values: Float32Array, type: GgufDtype, name: string): Uint8Array {
  if (type === 'F32') return new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
  if (type === 'Q8_0') return quantizeQ8_0(values, name);
  const bits = type === 'F16' ? float32ToF16Bits(values) : float32ToBf16Bits(values);
  if (type === 'F16') {
    for (let i = 0; i < bits.length; i++) {
      if ((bits[i] & 0x7c00) === 0x7c00 && Number.isFinite(values[i])) {
        throw new GgufError(`tensor ${name} holds ${values[i]}, beyond F16's range (65504); write F32 or BF16`);
      }
    }
  }
  return new Uint8Array(bits.buffer, bits.byteOffset, bits.byteLength);
}

/**
 * Q8_0 blocks of `values` (a whole number of blocks: chunks are whole rows), as llama.cpp's
 * reference quantizer makes them: d = max|x| / 127 stored as F16, q = round(x / d) (half away
 * from zero), all zeros for an all-zero block.
 */
export function quantizeQ8_0(values: Float32Array, name = 'tensor'): Uint8Array {
  const blocks = values.length / Q8_0_BLOCK;
  const amax = new Float32Array(blocks);
  for (let b = 0; b < blocks; b++) {
    for (let i = b * Q8_0_BLOCK; i < (b + 1) * Q8_0_BLOCK; i++) {
      if (!Number.isFinite(values[i])) throw new GgufError(`tensor ${name} holds ${values[i]} at element ${i}; Q8_0 cannot hold it`);
      amax[b] = Math.max(amax[b], Math.abs(values[i]));
    }
  }
  const scaleBits = float32ToF16Bits(amax.map((a) => a / 127));
  const out = new Uint8Array(blocks * Q8_0_BYTES);
  const view = new DataView(out.buffer);
  for (let b = 0; b < blocks; b++) {
    if ((scaleBits[b] & 0x7c00) === 0x7c00) throw new GgufError(`tensor ${name} holds ${amax[b]}: its Q8_0 scale is beyond F16's range; write F32 or BF16`);
    const o = b * Q8_0_BYTES;
    view.setUint16(o, scaleBits[b], true);
    const inv = amax[b] > 0 ? 127 / amax[b] : 0;
    for (let i = 0; i < Q8_0_BLOCK; i++) {
      const v = values[b * Q8_0_BLOCK + i];
      view.setInt8(o + 2 + i, Math.sign(v) * Math.round(Math.abs(v) * inv));
    }
  }
  return out;
}

/** Values of Q8_0 blocks: q * d per element. */
function dequantizeQ8_0(bytes: Uint8Array): Float32Array {
  const blocks = bytes.byteLength / Q8_0_BYTES;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const scales = f16BitsToFloat32(Uint16Array.from({ length: blocks }, (_, b) => view.getUint16(b * Q8_0_BYTES, true)));
  const out = new Float32Array(blocks * Q8_0_BLOCK);
  for (let b = 0; b < blocks; b++) {
    for (let i = 0; i < Q8_0_BLOCK; i++) out[b * Q8_0_BLOCK + i] = view.getInt8(b * Q8_0_BYTES + 2 + i) * scales[b];
  }
  return out;
}

/** general.* and qwen3.* keys of a Qwen3 config. */
function qwen3Metadata(c: Qwen3Config, fileType: number, type: 'model' | 'adapter', name?: string): [string, GgufValue][] {
  const u32 = (value: number): GgufValue => ({ type: 'UINT32', value });
  const kv: [string, GgufValue][] = [
    ['general.architecture', { type: 'STRING', value: 'qwen3' }],
    ['general.type', { type: 'STRING', value: type }],
  ];
  if (name !== undefined) kv.push(['general.name', { type: 'STRING', value: name }]);
  kv.push(['general.file_type', u32(fileType)], ['general.quantization_version', u32(2)]);
  if (type === 'adapter') return kv;
  for (const [k, v] of [['eps', c.rmsNormEps], ['theta', c.ropeTheta]] as const) {
    if (!(Number.isFinite(v) && v > 0)) throw new GgufError(`config ${k === 'eps' ? 'rmsNormEps' : 'ropeTheta'} ${v} must be a positive number`);
  }
  kv.push(
    ['qwen3.block_count', u32(c.numHiddenLayers)],
    ['qwen3.context_length', u32(c.maxPositionEmbeddings)],
    ['qwen3.embedding_length', u32(c.hiddenSize)],
    ['qwen3.feed_forward_length', u32(c.intermediateSize)],
    ['qwen3.attention.head_count', u32(c.numAttentionHeads)],
    ['qwen3.attention.head_count_kv', u32(c.numKeyValueHeads)],
    // llama.cpp reads these two as FLOAT32 and refuses any other type.
    ['qwen3.rope.freq_base', { type: 'FLOAT32', value: c.ropeTheta }],
    ['qwen3.attention.layer_norm_rms_epsilon', { type: 'FLOAT32', value: c.rmsNormEps }],
    // head_dim is not hidden / heads in Qwen3 (0.6B: 128 vs 64): without these llama.cpp assumes it is.
    ['qwen3.attention.key_length', u32(c.headDim)],
    ['qwen3.attention.value_length', u32(c.headDim)],
  );
  return kv;
}

/** Added tokens llama.cpp parses in any text (USER_DEFINED) rather than as control tokens. */
const CONTROL_LOOK = /^<\|.*\|>$/s;

/**
 * tokenizer.* keys from a Hugging Face byte-level BPE tokenizer.json (Qwen2/2.5/3's), padded to
 * the model's embedding rows: ids the tokenizer does not use become "[PAD<id>]" tokens of type
 * UNUSED, as llama.cpp's converter writes them.
 */
function tokenizerMetadata(tok: GgufTokenizer, c: Qwen3Config): [string, GgufValue][] {
  if (!tok || typeof tok.source !== 'string') throw new GgufError('saveGguf needs opts.tokenizer (a ChatTokenizer from loadTokenizer, or { source: "<path>/tokenizer.json" }): llama.cpp cannot load a model without its vocabulary');
  let json: { model?: { type?: string; vocab?: Record<string, number>; merges?: (string | [string, string])[] }; added_tokens?: { id: number; content: string; special?: boolean }[]; pre_tokenizer?: unknown };
  try {
    json = JSON.parse(fs.readFileSync(tok.source, 'utf8'));
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new GgufError(e.code === 'ENOENT' ? 'tokenizer.json not found' : `cannot read the tokenizer: ${e.message}`, tok.source);
  }
  const model = json.model;
  if (model?.type !== 'BPE' || !model.vocab || !Array.isArray(model.merges)) throw new GgufError(`only byte-level BPE tokenizers (Qwen's) can be written as tokenizer.ggml.model "gpt2"; this one is ${String(model?.type)}`, tok.source);
  if (!JSON.stringify(json.pre_tokenizer ?? null).includes('"ByteLevel"')) throw new GgufError('the pre-tokenizer is not byte-level; only byte-level BPE tokenizers (Qwen\'s) can be written', tok.source);
  const V = c.vocabSize;
  const tokens: string[] = new Array<string>(V);
  const types: number[] = new Array<number>(V).fill(GGUF_TOKEN_TYPE.UNUSED);
  const place = (id: number, text: string, type: number) => {
    if (!(Number.isInteger(id) && id >= 0)) throw new GgufError(`token ${JSON.stringify(text)} has id ${id}`, tok.source);
    if (id >= V) throw new GgufError(`token ${JSON.stringify(text)} has id ${id}, but the model's embedding has only ${V} rows`, tok.source);
    tokens[id] = text;
    types[id] = type;
  };
  for (const [text, id] of Object.entries(model.vocab)) place(id, text, GGUF_TOKEN_TYPE.NORMAL);
  for (const a of json.added_tokens ?? []) {
    place(a.id, a.content, a.special || CONTROL_LOOK.test(a.content) ? GGUF_TOKEN_TYPE.CONTROL : GGUF_TOKEN_TYPE.USER_DEFINED);
  }
  for (let i = 0; i < V; i++) if (tokens[i] === undefined) tokens[i] = `[PAD${i}]`;
  const merges = model.merges.map((m, i) => {
    const pair = typeof m === 'string' ? m.split(' ') : m;
    if (!Array.isArray(pair) || pair.length !== 2 || pair.some((p) => typeof p !== 'string' || p.includes(' '))) {
      throw new GgufError(`merge ${i} (${JSON.stringify(m)}) is not a pair of tokens without spaces`, tok.source);
    }
    return `${pair[0]} ${pair[1]}`;
  });
  const id = (what: string, v: number | undefined): GgufValue => {
    if (!(Number.isInteger(v) && v! >= 0 && v! < V)) throw new GgufError(`${what} ${v} is not a token id below ${V}`, tok.source);
    return { type: 'UINT32', value: v! };
  };
  const kv: [string, GgufValue][] = [
    ['tokenizer.ggml.model', { type: 'STRING', value: 'gpt2' }],
    ['tokenizer.ggml.pre', { type: 'STRING', value: 'qwen2' }],
    ['tokenizer.ggml.tokens', { type: 'ARRAY', itemType: 'STRING', value: tokens }],
    ['tokenizer.ggml.token_type', { type: 'ARRAY', itemType: 'INT32', value: types }],
    ['tokenizer.ggml.merges', { type: 'ARRAY', itemType: 'STRING', value: merges }],
    ['tokenizer.ggml.eos_token_id', id('eos id', tok.eosTokenId ?? c.eosTokenId)],
    ['tokenizer.ggml.padding_token_id', id('pad id', tok.padTokenId ?? c.bosTokenId)],
    ['tokenizer.ggml.bos_token_id', id('bos id', c.bosTokenId)],
    ['tokenizer.ggml.add_bos_token', { type: 'BOOL', value: false }],
  ];
  if (typeof tok.chatTemplate === 'string') kv.push(['tokenizer.chat_template', { type: 'STRING', value: tok.chatTemplate }]);
  return kv;
}

function checkDtype(dtype: unknown, what: string, allowed: readonly GgufDtype[] = DTYPES): GgufDtype {
  if (!allowed.includes(dtype as GgufDtype)) throw new GgufError(`${what}: dtype ${JSON.stringify(dtype)} is not one of ${allowed.join(', ')}`);
  return dtype as GgufDtype;
}

/** The model's parameters in the HF layout, checked against its config. */
function hfParameters(model: Qwen3ForCausalLM): Map<string, tf.Tensor> {
  const params = model.namedParameters();
  const out = new Map<string, tf.Tensor>();
  for (const [name, shape] of qwen3TensorShapes(model.config)) {
    const p = params.get(name);
    if (!p || p.isDisposed) throw new GgufError(`the model has no live parameter ${name} (was it disposed?)`);
    if (!tf.util.arraysEqual(p.shape, shape)) throw new GgufError(`parameter ${name} has shape [${p.shape}], the HF layout is [${shape}]`);
    out.set(name, p);
  }
  return out;
}

/**
 * Writes `model` as a GGUF file that llama.cpp (and node-llama-cpp) load as architecture qwen3:
 * the weights under llama.cpp's names (token_embd, blk.N.attn_q, ..., output_norm, and output
 * unless the head is tied), matrices in `dtype` and norms in F32, the config as qwen3.* keys and
 * the tokenizer (vocabulary padded to the embedding's rows, merges, special ids, chat template).
 * Streamed tensor by tensor and atomic (see writeGguf); bad options fail before anything is written.
 */
export async function saveGguf(model: Qwen3ForCausalLM, file: string, opts: SaveGgufOptions): Promise<GgufWriteResult> {
  if (!opts || typeof opts !== 'object') throw new GgufError('saveGguf needs options: { tokenizer, dtype? }', file);
  const dtype = checkDtype(opts.dtype ?? 'F32', 'saveGguf');
  if (opts.lora !== undefined && opts.lora !== 'merge' && opts.lora !== 'base') throw new GgufError(`saveGguf: lora ${JSON.stringify(opts.lora)} is not 'merge' or 'base'`, file);
  const adapters = model.adapters.size > 0 && model.adaptersEnabled ? model.adapters : new Map<string, LoraModule>();
  if (adapters.size > 0 && !opts.lora) {
    throw new GgufError(`the model has ${adapters.size} LoRA adapters: pass lora: 'merge' to fold them into the weights, or lora: 'base' to write the base weights (and saveLoraGguf for the adapters)`, file);
  }
  checkTarget(file);
  let params: Map<string, tf.Tensor>;
  let metadata: [string, GgufValue][];
  try {
    params = hfParameters(model);
    metadata = [...qwen3Metadata(model.config, GGUF_FILE_TYPE[dtype], 'model', opts.name), ...tokenizerMetadata(opts.tokenizer, model.config)];
  } catch (err) {
    throw withFile(err, file);
  }
  const tensors = [...params].map(([name, t]) => {
    const lora = opts.lora === 'merge' ? adapters.get(name.replace(/\.weight$/, '')) : undefined;
    return tensorSource(ggufTensorName(name), t, t.shape.length === 1 ? 'F32' : dtype, lora);
  });
  return writeGguf(file, metadata, tensors);
}

/**
 * Writes the model's LoRA adapters as a llama.cpp LoRA adapter GGUF (general.type "adapter",
 * adapter.type "lora", adapter.lora.alpha): for each adapted projection, <base name>.lora_a with
 * dims [in, r] (PEFT's lora_A [r, in]) and .lora_b with dims [r, out] (lora_B [out, r]). llama.cpp
 * scales each update by alpha / r, so every adapter must have the same alpha = scale * r.
 * Load it beside the base model's GGUF (saveGguf with lora: 'base', or the base checkpoint's).
 */
export async function saveLoraGguf(model: Qwen3ForCausalLM, file: string, opts: { dtype?: Exclude<GgufDtype, 'Q8_0'>; name?: string } = {}): Promise<GgufWriteResult> {
  // Not Q8_0: lora_b's rows are r values long (8, 16: no whole blocks), and adapters are small.
  const dtype = checkDtype(opts.dtype ?? 'F32', 'saveLoraGguf', ['F32', 'F16', 'BF16']);
  if (model.adapters.size === 0) throw new GgufError('the model has no LoRA adapters to write', file);
  checkTarget(file);
  const shapes = qwen3TensorShapes(model.config);
  let alpha: number | undefined;
  let first = '';
  const tensors: GgufTensorSource[] = [];
  for (const [module, a] of model.adapters) {
    if (a.A.isDisposed || a.B.isDisposed) throw new GgufError(`the adapter of ${module} was disposed`, file);
    const [r, inDim] = a.A.shape as [number, number];
    const [outDim, rB] = a.B.shape as [number, number];
    const base = shapes.get(`${module}.weight`);
    if (!base || r !== rB || base[0] !== outDim || base[1] !== inDim) {
      throw new GgufError(`the adapter of ${module} has A [${a.A.shape}] and B [${a.B.shape}], which do not fit the base weight [${base ?? 'none'}]`, file);
    }
    const mine = a.scale * r;
    if (alpha === undefined) [alpha, first] = [mine, module];
    else if (Math.abs(mine - alpha) > 1e-6 * Math.abs(alpha)) {
      throw new GgufError(`adapters have different alpha (scale * r): ${first} ${alpha}, ${module} ${mine}; a llama.cpp adapter file holds one alpha`, file);
    }
    const name = ggufTensorName(`${module}.weight`);
    tensors.push(tensorSource(`${name}.lora_a`, a.A, dtype), tensorSource(`${name}.lora_b`, a.B, dtype));
  }
  const metadata: [string, GgufValue][] = [
    ...qwen3Metadata(model.config, GGUF_FILE_TYPE[dtype], 'adapter', opts.name),
    ['adapter.type', { type: 'STRING', value: 'lora' }],
    // llama.cpp reads alpha as FLOAT32 only.
    ['adapter.lora.alpha', { type: 'FLOAT32', value: alpha! }],
  ];
  return writeGguf(file, metadata, tensors);
}

// ---------------------------------------------------------------------------------------------
// Reading

export interface GgufTensorInfo {
  name: string;
  /** ggml dims, innermost first. */
  dims: number[];
  /** ggml type name (F32, F16, BF16, Q8_0, ...). */
  type: string;
  /** Absolute byte offset of the data in the file. */
  offset: number;
  byteLength: number;
}

/** An open GGUF file: header parsed, tensor data read on demand. */
export interface GgufFile {
  readonly path: string;
  readonly version: number;
  readonly alignment: number;
  /** Absolute offset of the data section. */
  readonly dataOffset: number;
  /** Metadata in file order, with types. */
  readonly metadata: Map<string, GgufValue>;
  /** Tensor infos in file order. */
  readonly tensors: GgufTensorInfo[];
  /** A metadata value without its type (undefined when the key is absent). */
  get(key: string): GgufValue['value'] | undefined;
  tensor(name: string): GgufTensorInfo;
  /** Raw bytes of a tensor, or of [start, end) within it. */
  bytes(name: string, start?: number, end?: number): Uint8Array;
  /** Values of an F32 / F16 / BF16 / F64 / Q8_0 tensor as float32 (F16 and BF16 upcast exactly,
   * Q8_0 dequantized as q * d). */
  floats(name: string): Float32Array;
  close(): void;
}

/** Buffered sequential reads from a file descriptor (the header can be megabytes of strings). */
class Cursor {
  private buf = Buffer.alloc(0);
  private start = 0; // file position of buf[0]
  pos = 0;
  constructor(
    private readonly fd: number,
    readonly size: number,
    private readonly file: string,
  ) {}
  private need(n: number): void {
    if (this.pos + n > this.size) throw new GgufError(`truncated header: ${n} bytes needed at byte ${this.pos}, the file has ${this.size}`, this.file);
    if (this.pos >= this.start && this.pos + n <= this.start + this.buf.length) return;
    const len = Math.min(Math.max(n, 1 << 20), this.size - this.pos);
    this.buf = Buffer.alloc(len);
    for (let done = 0; done < len; ) {
      const got = fs.readSync(this.fd, this.buf, done, len - done, this.pos + done);
      if (got === 0) throw new GgufError(`unexpected end of file at byte ${this.pos + done}`, this.file);
      done += got;
    }
    this.start = this.pos;
  }
  private at(n: number): number {
    this.need(n);
    const o = this.pos - this.start;
    this.pos += n;
    return o;
  }
  // at() may refill the buffer, so the offset is taken before the buffer is read.
  private read<T>(n: number, f: (b: Buffer, o: number) => T): T {
    const o = this.at(n);
    return f(this.buf, o);
  }
  u8 = () => this.read(1, (b, o) => b.readUInt8(o));
  i8 = () => this.read(1, (b, o) => b.readInt8(o));
  u16 = () => this.read(2, (b, o) => b.readUInt16LE(o));
  i16 = () => this.read(2, (b, o) => b.readInt16LE(o));
  u32 = () => this.read(4, (b, o) => b.readUInt32LE(o));
  i32 = () => this.read(4, (b, o) => b.readInt32LE(o));
  f32 = () => this.read(4, (b, o) => b.readFloatLE(o));
  f64 = () => this.read(8, (b, o) => b.readDoubleLE(o));
  u64 = () => this.read(8, (b, o) => b.readBigUInt64LE(o));
  i64 = () => this.read(8, (b, o) => b.readBigInt64LE(o));
  /** A u64 that must be a safe integer (counts, lengths, dims, offsets). */
  count(what: string): number {
    const v = this.u64();
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new GgufError(`${what} ${v} is too large`, this.file);
    return Number(v);
  }
  string(what: string): string {
    const n = this.count(`${what} length`);
    if (this.pos + n > this.size) throw new GgufError(`${what} of ${n} bytes runs past the end of the file`, this.file);
    return this.read(n, (b, o) => b.toString('utf8', o, o + n));
  }
}

function readScalar(c: Cursor, type: GgufScalarType, what: string): GgufScalar {
  switch (type) {
    case 'UINT8': return c.u8();
    case 'INT8': return c.i8();
    case 'UINT16': return c.u16();
    case 'INT16': return c.i16();
    case 'UINT32': return c.u32();
    case 'INT32': return c.i32();
    case 'FLOAT32': return c.f32();
    case 'FLOAT64': return c.f64();
    case 'UINT64': return c.u64();
    case 'INT64': return c.i64();
    case 'BOOL': return c.u8() !== 0;
    case 'STRING': return c.string(what);
  }
}

function valueType(id: number, what: string, file: string): GgufValueType {
  const t = GGUF_VALUE_TYPES[id];
  if (t === undefined) throw new GgufError(`${what} has unknown value type ${id}`, file);
  return t;
}

/**
 * Opens a GGUF file (v2 or v3) and parses its header: metadata with types, tensor infos. Checks
 * the magic, the version, every type id, that names and keys are unique, and that each tensor's
 * data is aligned, inside the file and overlaps no other; tensor data is read only on demand.
 */
export function readGguf(file: string): GgufFile {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new GgufError(e.code === 'ENOENT' ? 'no such file' : `cannot open: ${e.message}`, file);
  }
  try {
    return parse(fd, file);
  } catch (err) {
    fs.closeSync(fd);
    throw err;
  }
}

function parse(fd: number, file: string): GgufFile {
  const size = fs.fstatSync(fd).size;
  const c = new Cursor(fd, size, file);
  if (size < 4 || c.u32() !== MAGIC) throw new GgufError('not a GGUF file (the first 4 bytes are not "GGUF")', file);
  const version = c.u32();
  if (version !== 2 && version !== 3) throw new GgufError(`GGUF version ${version} is not supported (only 2 and 3)`, file);
  const nTensors = c.count('tensor count');
  const nKv = c.count('metadata count');
  // Each entry takes at least 8 bytes of the file: a count beyond that is corruption, not a file.
  if (nTensors > size / 8 || nKv > size / 8) throw new GgufError(`${nTensors} tensors and ${nKv} metadata entries cannot fit in ${size} bytes`, file);
  const metadata = new Map<string, GgufValue>();
  for (let i = 0; i < nKv; i++) {
    const key = c.string(`metadata key ${i}`);
    if (metadata.has(key)) throw new GgufError(`metadata key "${key}" appears twice`, file);
    const type = valueType(c.u32(), `metadata "${key}"`, file);
    if (type === 'ARRAY') {
      const itemType = valueType(c.u32(), `metadata "${key}" items`, file);
      if (itemType === 'ARRAY') throw new GgufError(`metadata "${key}": nested arrays are not supported`, file);
      const n = c.count(`metadata "${key}" length`);
      if (n > size - c.pos) throw new GgufError(`metadata "${key}": ${n} items cannot fit in the file`, file);
      const value: GgufScalar[] = new Array(n);
      for (let j = 0; j < n; j++) value[j] = readScalar(c, itemType, `metadata "${key}"[${j}]`);
      metadata.set(key, { type, itemType, value });
    } else {
      metadata.set(key, { type, value: readScalar(c, type, `metadata "${key}"`) } as GgufValue);
    }
  }
  const alignKv = metadata.get('general.alignment');
  let alignment = GGUF_DEFAULT_ALIGNMENT;
  if (alignKv) {
    if (alignKv.type !== 'UINT32' || !(alignKv.value > 0 && (alignKv.value & (alignKv.value - 1)) === 0)) throw new GgufError(`general.alignment must be a UINT32 power of two, got ${alignKv.type} ${String(alignKv.value)}`, file);
    alignment = alignKv.value;
  }
  const raw: { name: string; dims: number[]; type: string; rel: number; byteLength: number }[] = [];
  const names = new Set<string>();
  for (let i = 0; i < nTensors; i++) {
    const name = c.string(`tensor ${i} name`);
    if (names.has(name)) throw new GgufError(`tensor "${name}" appears twice`, file);
    names.add(name);
    const nDims = c.u32();
    if (nDims < 1 || nDims > 4) throw new GgufError(`tensor "${name}" has ${nDims} dims (1 to 4 allowed)`, file);
    const dims: number[] = [];
    for (let d = 0; d < nDims; d++) dims.push(c.count(`tensor "${name}" dim`));
    const typeId = c.u32();
    const type = GGML_TYPE_BY_ID.get(typeId);
    if (!type) throw new GgufError(`tensor "${name}" has ggml type ${typeId}, which this reader does not know`, file);
    const rel = c.count(`tensor "${name}" offset`);
    const elements = dims.reduce((a, d) => a * d, 1);
    if (!Number.isSafeInteger(elements) || dims[0] % GGML_TYPES[type].block !== 0) throw new GgufError(`tensor "${name}" has dims [${dims}], impossible for ${type}`, file);
    raw.push({ name, dims, type, rel, byteLength: byteSize(type, dims) });
  }
  const dataOffset = alignUp(c.pos, alignment);
  const sorted = [...raw].sort((a, b) => a.rel - b.rel);
  let end = 0;
  for (const t of sorted) {
    if (t.rel % alignment !== 0) throw new GgufError(`tensor "${t.name}" starts at data offset ${t.rel}, not a multiple of the alignment ${alignment}`, file);
    if (t.rel < end) throw new GgufError(`tensor "${t.name}" (data offset ${t.rel}) overlaps the tensor before it`, file);
    end = t.rel + t.byteLength;
    if (dataOffset + end > size) throw new GgufError(`tensor "${t.name}" ends at byte ${dataOffset + end}, past the end of the file (${size} bytes)`, file);
  }
  const tensors: GgufTensorInfo[] = raw.map((t) => ({ name: t.name, dims: t.dims, type: t.type, offset: dataOffset + t.rel, byteLength: t.byteLength }));
  const byName = new Map(tensors.map((t) => [t.name, t]));
  let open = true;
  const info = (name: string): GgufTensorInfo => {
    const t = byName.get(name);
    if (!t) throw new GgufError(`no tensor "${name}"`, file);
    return t;
  };
  const bytes = (name: string, start = 0, stop?: number): Uint8Array => {
    if (!open) throw new GgufError('read after close()', file);
    const t = info(name);
    const e = stop ?? t.byteLength;
    if (!(Number.isSafeInteger(start) && Number.isSafeInteger(e) && start >= 0 && start <= e && e <= t.byteLength)) {
      throw new GgufError(`tensor "${name}": byte range [${start}, ${e}) is outside its ${t.byteLength} bytes`, file);
    }
    const out = new Uint8Array(e - start);
    const CHUNK = 1 << 30; // readSync moves at most 2 GiB per call
    for (let done = 0; done < out.length; ) {
      const got = fs.readSync(fd, out, done, Math.min(CHUNK, out.length - done), t.offset + start + done);
      if (got === 0) throw new GgufError(`unexpected end of file reading "${name}"`, file);
      done += got;
    }
    return out;
  };
  return {
    path: file,
    version,
    alignment,
    dataOffset,
    metadata,
    tensors,
    get: (key) => metadata.get(key)?.value,
    tensor: info,
    bytes,
    floats(name) {
      const t = info(name);
      const b = bytes(name);
      const n = b.byteLength / GGML_TYPES[t.type].bytes;
      switch (t.type) {
        case 'F32': return new Float32Array(b.buffer, 0, n);
        case 'F16': return f16BitsToFloat32(new Uint16Array(b.buffer, 0, n));
        case 'BF16': return bf16BitsToFloat32(new Uint16Array(b.buffer, 0, n));
        case 'F64': return Float32Array.from(new Float64Array(b.buffer, 0, n));
        case 'Q8_0': return dequantizeQ8_0(b);
        default: throw new GgufError(`tensor "${name}" is ${t.type}; floats() reads F32, F16, BF16, F64 and Q8_0`, file);
      }
    },
    close() {
      if (open) fs.closeSync(fd);
      open = false;
    },
  };
}

// ---------------------------------------------------------------------------------------------
// node-llama-cpp (optional)

export interface LlamaCppOptions {
  /** Which prebuilt llama.cpp binary to use (default false: the CPU one). */
  gpu?: 'auto' | 'cuda' | 'vulkan' | false;
  /** llama.cpp's log level (default 'error'). */
  logLevel?: 'disabled' | 'fatal' | 'error' | 'warn' | 'info' | 'log' | 'debug';
  /** Most CPU threads llama.cpp may use (default: node-llama-cpp's). */
  maxThreads?: number;
}

/**
 * Loads llama.cpp through node-llama-cpp, an optional peer dependency (`npm install
 * node-llama-cpp@3.21.1`), from its prebuilt binaries only: it never downloads or compiles
 * anything (build: 'never'). Throws a GgufError saying how to install it when it is missing.
 */
export async function loadLlamaCpp(opts: LlamaCppOptions = {}): Promise<import('node-llama-cpp').Llama> {
  let mod: typeof import('node-llama-cpp');
  try {
    mod = await import('node-llama-cpp');
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if ((e.code === 'ERR_MODULE_NOT_FOUND' || e.code === 'MODULE_NOT_FOUND') && /['"]node-llama-cpp['"]/.test(e.message)) {
      throw new GgufError('node-llama-cpp is not installed; it is an optional peer dependency of promedical: npm install node-llama-cpp@3.21.1');
    }
    throw err;
  }
  const gpu = opts.gpu ?? false;
  if (![false, 'auto', 'cuda', 'vulkan'].includes(gpu)) throw new GgufError(`gpu ${JSON.stringify(gpu)} is not one of false, 'auto', 'cuda', 'vulkan'`);
  try {
    const logLevel = mod.LlamaLogLevel[opts.logLevel ?? 'error'];
    return await mod.getLlama({ gpu, build: 'never', logLevel, ...(opts.maxThreads ? { maxThreads: opts.maxThreads } : {}) });
  } catch (err) {
    throw new GgufError(`node-llama-cpp found no usable prebuilt llama.cpp binary for gpu ${JSON.stringify(gpu)} (it is never built here): ${(err as Error).message}`);
  }
}
