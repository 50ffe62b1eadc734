// The safetensors format (huggingface/safetensors), read lazily and written atomically.
//
// Layout: u64 little-endian header length N, N bytes of UTF-8 JSON
// {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {str: str}}, then the data;
// offsets are relative to byte 8 + N. Every rule the reference parser enforces is checked before
// any tensor is read, so a malformed file fails fast with a SafetensorsError naming the rule.
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { ensureBackendSync } from '../ops/backend.js';
import {
  bf16BitsToFloat32,
  f16BitsToFloat32,
  f8e4m3BitsToFloat32,
  f8e5m2BitsToFloat32,
  float32ToBf16Bits,
  float32ToF16Bits,
} from './half.js';

export type SafetensorsDtype =
  | 'BOOL' | 'U8' | 'I8' | 'F8_E5M2' | 'F8_E4M3' | 'I16' | 'U16' | 'F16' | 'BF16'
  | 'I32' | 'U32' | 'F32' | 'F64' | 'I64' | 'U64';

/** Bytes per element of each dtype. */
export const DTYPE_SIZE: Readonly<Record<SafetensorsDtype, number>> = {
  BOOL: 1, U8: 1, I8: 1, F8_E5M2: 1, F8_E4M3: 1, I16: 2, U16: 2, F16: 2, BF16: 2,
  I32: 4, U32: 4, F32: 4, F64: 8, I64: 8, U64: 8,
};

/** Header lengths above this are refused (the reference parser's limit). */
export const MAX_HEADER_BYTES = 100_000_000;

export type SafetensorsErrorCode =
  | 'FILE_TOO_SMALL' // fewer than the 8 length bytes
  | 'HEADER_TOO_LARGE' // N > 100,000,000
  | 'HEADER_OUT_OF_BOUNDS' // 8 + N beyond the end of the file
  | 'INVALID_UTF8'
  | 'INVALID_JSON'
  | 'INVALID_HEADER' // valid JSON of the wrong shape (not an object, bad entry, bad metadata)
  | 'UNKNOWN_DTYPE'
  | 'INVALID_SHAPE' // negative, fractional or overflowing dims
  | 'INVALID_OFFSETS' // gaps, overlaps, end < begin, not starting at 0
  | 'SIZE_MISMATCH' // end - begin != prod(shape) * dtype size
  | 'TRUNCATED' // the data section is shorter than the offsets say
  | 'TRAILING_BYTES' // bytes after the last tensor
  | 'DUPLICATE_NAME'
  | 'TENSOR_NOT_FOUND'
  | 'INVALID_INDEX' // model.safetensors.index.json malformed or inconsistent with its shards
  | 'NOT_FOUND' // no such file, or a folder with no safetensors in it
  | 'VALUE_OUT_OF_RANGE' // an integer that does not fit int32 on the device
  | 'INVALID_INPUT' // a writer argument that cannot be written
  | 'IO_ERROR';

export class SafetensorsError extends Error {
  override readonly name = 'SafetensorsError';
  constructor(
    readonly code: SafetensorsErrorCode,
    message: string,
    /** The file (or folder) concerned, when there is one. */
    readonly file?: string,
  ) {
    super(file ? `${file}: ${message}` : message);
  }
}

export interface TensorInfo {
  dtype: SafetensorsDtype;
  shape: number[];
  /** [begin, end) relative to the start of the data section of `file`. */
  dataOffsets: [number, number];
  /** The file that holds the tensor (null when read from bytes). */
  file: string | null;
}

/** An open safetensors file, or a sharded folder seen as one. Tensors are read on demand. */
export interface SafetensorsFile {
  /** The file or folder read, or null for in-memory bytes. */
  readonly path: string | null;
  /** `__metadata__` of the file (for a sharded folder: the index's metadata, stringified). */
  readonly metadata: Record<string, string>;
  /** Tensor names, in data order (for shards: shard by shard). */
  readonly names: string[];
  has(name: string): boolean;
  info(name: string): TensorInfo;
  /** The tensor's raw little-endian bytes. */
  bytes(name: string): Uint8Array;
  /** Host values: float32 for float dtypes (BF16/F16/F8 upcast exactly, F64 rounded), int32 for
   * integer and BOOL dtypes (values outside int32 throw VALUE_OUT_OF_RANGE). */
  array(name: string): Float32Array | Int32Array;
  /** The tensor on the active tfjs backend, float32 or int32 as `array`. */
  tensor(name: string): tf.Tensor;
  /** Closes the file descriptors; further reads throw. */
  close(): void;
}

/** Where the bytes come from: an open file (read per tensor) or a buffer in memory. */
interface ByteSource {
  readonly label: string | null;
  readonly size: number;
  read(position: number, length: number): Uint8Array;
  close(): void;
}

const INDEX_FILE = 'model.safetensors.index.json';
const SINGLE_FILE = 'model.safetensors';

/**
 * Opens a `.safetensors` file, a folder (sharded through model.safetensors.index.json, or holding
 * model.safetensors), or bytes already in memory. Only the header is read here.
 */
export function readSafetensors(source: string | Uint8Array): SafetensorsFile {
  if (typeof source !== 'string') return openSingle(memorySource(source));
  let stat: fs.Stats;
  try {
    stat = fs.statSync(source);
  } catch {
    throw new SafetensorsError('NOT_FOUND', 'no such file or folder', source);
  }
  if (!stat.isDirectory()) return openSingle(fileSource(source));
  if (fs.existsSync(path.join(source, INDEX_FILE))) return openSharded(source);
  if (fs.existsSync(path.join(source, SINGLE_FILE))) return openSingle(fileSource(path.join(source, SINGLE_FILE)));
  throw new SafetensorsError('NOT_FOUND', `neither ${INDEX_FILE} nor ${SINGLE_FILE} is in this folder`, source);
}

function memorySource(bytes: Uint8Array): ByteSource {
  return {
    label: null,
    size: bytes.length,
    read: (position, length) => bytes.slice(position, position + length),
    close: () => {},
  };
}

function fileSource(file: string): ByteSource {
  let fd: number | null;
  let size: number;
  try {
    fd = fs.openSync(file, 'r');
    size = fs.fstatSync(fd).size;
  } catch (err) {
    throw new SafetensorsError('IO_ERROR', `cannot open: ${(err as Error).message}`, file);
  }
  return {
    label: file,
    size,
    read(position, length) {
      if (fd === null) throw new SafetensorsError('IO_ERROR', 'read after close()', file);
      const out = new Uint8Array(length);
      // readSync moves at most 2 GiB per call: loop in chunks for large embeddings.
      const CHUNK = 1 << 30;
      for (let done = 0; done < length; ) {
        const n = fs.readSync(fd, out, done, Math.min(CHUNK, length - done), position + done);
        if (n === 0) throw new SafetensorsError('TRUNCATED', `unexpected end of file at byte ${position + done}`, file);
        done += n;
      }
      return out;
    },
    close() {
      if (fd !== null) fs.closeSync(fd);
      fd = null;
    },
  };
}

interface ParsedHeader {
  dataStart: number;
  metadata: Record<string, string>;
  entries: Map<string, TensorInfo>; // in data order
}

function openSingle(src: ByteSource): SafetensorsFile {
  let header: ParsedHeader;
  try {
    header = parseHeader(src);
  } catch (err) {
    src.close();
    throw err;
  }
  const where = (name: string) => ({ src, dataStart: header.dataStart, info: lookup(header.entries, name, src.label) });
  return makeFile(src.label, header.metadata, [...header.entries.keys()], where, () => src.close());
}

function openSharded(dir: string): SafetensorsFile {
  const indexPath = path.join(dir, INDEX_FILE);
  let index: unknown;
  try {
    index = JSON.parse(fs.readFileSync(indexPath, 'utf8'));
  } catch (err) {
    throw new SafetensorsError('INVALID_INDEX', `not valid JSON: ${(err as Error).message}`, indexPath);
  }
  const weightMap = (index as { weight_map?: unknown })?.weight_map;
  if (!isPlainObject(weightMap)) throw new SafetensorsError('INVALID_INDEX', 'missing object "weight_map"', indexPath);
  const shardNames = new Set<string>();
  for (const [name, file] of Object.entries(weightMap)) {
    if (typeof file !== 'string' || file.includes('/') || file.includes('\\')) {
      throw new SafetensorsError('INVALID_INDEX', `weight_map["${name}"] must be a file name in the folder`, indexPath);
    }
    shardNames.add(file);
  }
  const shards = new Map<string, { src: ByteSource; header: ParsedHeader }>();
  const closeAll = () => shards.forEach((s) => s.src.close());
  try {
    for (const file of shardNames) {
      const full = path.join(dir, file);
      if (!fs.existsSync(full)) throw new SafetensorsError('INVALID_INDEX', `shard ${file} is listed but missing`, indexPath);
      const src = fileSource(full);
      shards.set(file, { src, header: parseHeaderClosingOnError(src) });
    }
    for (const [file, { header }] of shards) {
      for (const name of header.entries.keys()) {
        if (weightMap[name] !== file) {
          throw new SafetensorsError('INVALID_INDEX', `tensor "${name}" is in shard ${file} but the weight_map says ${String(weightMap[name] ?? 'nothing')}`, indexPath);
        }
      }
    }
    for (const [name, file] of Object.entries(weightMap)) {
      if (!shards.get(file as string)!.header.entries.has(name)) {
        throw new SafetensorsError('INVALID_INDEX', `weight_map lists "${name}" in ${String(file)}, which does not hold it`, indexPath);
      }
    }
  } catch (err) {
    closeAll();
    throw err;
  }
  const metaRaw = (index as { metadata?: unknown }).metadata;
  const metadata: Record<string, string> = {};
  if (isPlainObject(metaRaw)) for (const [k, v] of Object.entries(metaRaw)) metadata[k] = String(v);
  const names = [...shards.values()].flatMap((s) => [...s.header.entries.keys()]);
  const where = (name: string) => {
    const file = weightMap[name];
    if (typeof file !== 'string') throw new SafetensorsError('TENSOR_NOT_FOUND', `no tensor named "${name}"`, dir);
    const shard = shards.get(file)!;
    return { src: shard.src, dataStart: shard.header.dataStart, info: shard.header.entries.get(name)! };
  };
  return makeFile(dir, metadata, names, where, closeAll);
}

function parseHeaderClosingOnError(src: ByteSource): ParsedHeader {
  try {
    return parseHeader(src);
  } catch (err) {
    src.close();
    throw err;
  }
}

function makeFile(
  label: string | null,
  metadata: Record<string, string>,
  names: string[],
  where: (name: string) => { src: ByteSource; dataStart: number; info: TensorInfo },
  close: () => void,
): SafetensorsFile {
  const known = new Set(names);
  const bytes = (name: string) => {
    const { src, dataStart, info } = where(name);
    const [begin, end] = info.dataOffsets;
    return src.read(dataStart + begin, end - begin);
  };
  const array = (name: string) => decode(where(name).info, bytes(name), name);
  return {
    path: label,
    metadata,
    names,
    has: (name) => known.has(name),
    info: (name) => ({ ...where(name).info }),
    bytes,
    array,
    tensor(name) {
      const info = where(name).info;
      const values = array(name);
      ensureBackendSync();
      return tf.tensor(values, info.shape, values instanceof Int32Array ? 'int32' : 'float32');
    },
    close,
  };
}

function lookup(entries: Map<string, TensorInfo>, name: string, file: string | null): TensorInfo {
  const info = entries.get(name);
  if (!info) throw new SafetensorsError('TENSOR_NOT_FOUND', `no tensor named "${name}"`, file ?? undefined);
  return info;
}

function parseHeader(src: ByteSource): ParsedHeader {
  const file = src.label ?? undefined;
  const fail = (code: SafetensorsErrorCode, message: string): never => {
    throw new SafetensorsError(code, message, file);
  };
  if (src.size < 8) fail('FILE_TOO_SMALL', `${src.size} bytes; a safetensors file starts with an 8-byte header length`);
  const lenBytes = src.read(0, 8);
  const n = new DataView(lenBytes.buffer, lenBytes.byteOffset, 8).getBigUint64(0, true);
  if (n > BigInt(MAX_HEADER_BYTES)) fail('HEADER_TOO_LARGE', `header length ${n} exceeds ${MAX_HEADER_BYTES}`);
  const headerLen = Number(n);
  if (8 + headerLen > src.size) fail('HEADER_OUT_OF_BOUNDS', `header length ${headerLen} runs past the end of the ${src.size}-byte file`);

  let text = '';
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(src.read(8, headerLen));
  } catch {
    fail('INVALID_UTF8', 'the header is not valid UTF-8');
  }
  if (!text.startsWith('{')) fail('INVALID_HEADER', 'the header must be a JSON object starting with "{"');
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    fail('INVALID_JSON', `the header is not valid JSON: ${(err as Error).message}`);
  }
  if (!isPlainObject(json)) fail('INVALID_HEADER', 'the header must be a JSON object');
  const header = json as Record<string, unknown>;
  const keys = topLevelKeys(text);
  const seen = new Set<string>();
  for (const k of keys) {
    if (seen.has(k)) fail('DUPLICATE_NAME', `"${k}" appears twice in the header`);
    seen.add(k);
  }

  const metadata: Record<string, string> = {};
  const rawMeta = header.__metadata__;
  if (rawMeta !== undefined && rawMeta !== null) {
    if (!isPlainObject(rawMeta)) fail('INVALID_HEADER', '"__metadata__" must be an object of strings');
    for (const [k, v] of Object.entries(rawMeta as object)) {
      if (typeof v !== 'string') fail('INVALID_HEADER', `__metadata__["${k}"] must be a string`);
      metadata[k] = v as string;
    }
  }

  const list: [string, TensorInfo][] = [];
  for (const [name, raw] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    list.push([name, parseEntry(name, raw, fail, src.label)]);
  }
  // Sorted by offsets, tensors must tile the data section exactly: start at 0, no gaps or overlaps.
  list.sort(([, a], [, b]) => a.dataOffsets[0] - b.dataOffsets[0] || a.dataOffsets[1] - b.dataOffsets[1]);
  let cursor = 0;
  for (const [name, info] of list) {
    const [begin, end] = info.dataOffsets;
    if (begin !== cursor || end < begin) {
      fail('INVALID_OFFSETS', `tensor "${name}" has data_offsets [${begin}, ${end}] but the previous tensor ends at ${cursor}`);
    }
    const expected = info.shape.reduce((a, d) => a * d, 1) * DTYPE_SIZE[info.dtype];
    if (end - begin !== expected) {
      fail('SIZE_MISMATCH', `tensor "${name}" holds ${end - begin} bytes; ${info.dtype} ${JSON.stringify(info.shape)} needs ${expected}`);
    }
    cursor = end;
  }
  const dataStart = 8 + headerLen;
  const dataLen = src.size - dataStart;
  if (cursor > dataLen) fail('TRUNCATED', `the tensors need ${cursor} data bytes but the file has ${dataLen}`);
  if (cursor < dataLen) fail('TRAILING_BYTES', `${dataLen - cursor} bytes follow the last tensor`);
  return { dataStart, metadata, entries: new Map(list) };
}

function parseEntry(
  name: string,
  raw: unknown,
  fail: (code: SafetensorsErrorCode, message: string) => never,
  file: string | null,
): TensorInfo {
  if (!isPlainObject(raw)) return fail('INVALID_HEADER', `entry "${name}" must be an object`);
  const { dtype, shape, data_offsets: offsets } = raw as Record<string, unknown>;
  if (typeof dtype !== 'string') return fail('INVALID_HEADER', `entry "${name}" has no string "dtype"`);
  if (!(dtype in DTYPE_SIZE)) return fail('UNKNOWN_DTYPE', `tensor "${name}" has unknown dtype "${dtype}"`);
  if (!Array.isArray(shape)) return fail('INVALID_HEADER', `entry "${name}" has no array "shape"`);
  let count = 1;
  for (const d of shape) {
    if (typeof d !== 'number' || !Number.isSafeInteger(d) || d < 0) {
      return fail('INVALID_SHAPE', `tensor "${name}" has shape ${JSON.stringify(shape)}: dims must be integers >= 0`);
    }
    count *= d;
    if (!Number.isSafeInteger(count * DTYPE_SIZE[dtype as SafetensorsDtype])) {
      return fail('INVALID_SHAPE', `tensor "${name}" has shape ${JSON.stringify(shape)}: its byte size overflows`);
    }
  }
  if (
    !Array.isArray(offsets) || offsets.length !== 2 ||
    !offsets.every((o) => typeof o === 'number' && Number.isSafeInteger(o) && o >= 0)
  ) {
    return fail('INVALID_OFFSETS', `tensor "${name}" needs "data_offsets": [begin, end] with integers >= 0`);
  }
  return { dtype: dtype as SafetensorsDtype, shape: shape as number[], dataOffsets: [offsets[0], offsets[1]], file };
}

/** The keys of the outermost object of a JSON text that JSON.parse accepted (to catch duplicates,
 * which JSON.parse silently resolves to the last one). */
function topLevelKeys(text: string): string[] {
  const keys: string[] = [];
  let depth = 0;
  let expectKey = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '"') {
      let j = i + 1;
      while (text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      if (depth === 1 && expectKey) keys.push(JSON.parse(text.slice(i, j + 1)) as string);
      expectKey = false;
      i = j;
    } else if (c === '{' || c === '[') {
      depth++;
      expectKey = c === '{' && depth === 1;
    } else if (c === '}' || c === ']') {
      depth--;
    } else if (c === ',' && depth === 1) {
      expectKey = true;
    }
  }
  return keys;
}

function decode(info: TensorInfo, bytes: Uint8Array, name: string): Float32Array | Int32Array {
  const n = info.shape.reduce((a, d) => a * d, 1);
  // `bytes` is a fresh, 0-offset buffer (see ByteSource.read), so typed views are aligned.
  const buf = bytes.buffer;
  const off = bytes.byteOffset;
  switch (info.dtype) {
    case 'F32': return new Float32Array(buf, off, n);
    case 'F64': return Float32Array.from(new Float64Array(buf, off, n));
    case 'BF16': return bf16BitsToFloat32(new Uint16Array(buf, off, n));
    case 'F16': return f16BitsToFloat32(new Uint16Array(buf, off, n));
    case 'F8_E4M3': return f8e4m3BitsToFloat32(bytes);
    case 'F8_E5M2': return f8e5m2BitsToFloat32(bytes);
    case 'I32': return new Int32Array(buf, off, n);
    case 'I16': return Int32Array.from(new Int16Array(buf, off, n));
    case 'U16': return Int32Array.from(new Uint16Array(buf, off, n));
    case 'I8': return Int32Array.from(new Int8Array(buf, off, n));
    case 'U8': return Int32Array.from(bytes);
    case 'BOOL': return Int32Array.from(bytes, (b) => (b !== 0 ? 1 : 0));
    case 'U32': return toInt32(new Uint32Array(buf, off, n), info, name);
    case 'I64': return toInt32(new BigInt64Array(buf, off, n), info, name);
    case 'U64': return toInt32(new BigUint64Array(buf, off, n), info, name);
  }
}

function toInt32(values: ArrayLike<number | bigint>, info: TensorInfo, name: string): Int32Array {
  const out = new Int32Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const v = Number(values[i]);
    if (v > 2147483647 || v < -2147483648) {
      throw new SafetensorsError('VALUE_OUT_OF_RANGE', `tensor "${name}" (${info.dtype}) holds ${values[i]} at element ${i}, outside int32`, info.file ?? undefined);
    }
    out[i] = v;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Writing

/** A tensor given as host bytes in a safetensors dtype, written exactly as is. */
export interface RawTensor {
  dtype: SafetensorsDtype;
  shape: number[];
  data: ArrayBufferView;
}

export interface WriteOptions {
  /** On-disk dtype of float32 tensors (default F32). int32 tensors are written as I32, bool as BOOL. */
  dtype?: 'F32' | 'BF16' | 'F16';
  /** String pairs stored under "__metadata__" (e.g. { format: 'pt' } as transformers writes). */
  metadata?: Record<string, string>;
}

type Writable = tf.Tensor | RawTensor;

/**
 * Writes tensors to `file` atomically: into a temporary file beside it, fsynced, then renamed over
 * the target, so a crash mid-write leaves any previous file untouched. Tensors are converted and
 * written one at a time (peak extra memory: one tensor).
 */
export async function writeSafetensors(
  file: string,
  tensors: Record<string, Writable> | Map<string, Writable>,
  opts: WriteOptions = {},
): Promise<void> {
  const floatDtype = opts.dtype ?? 'F32';
  if (!['F32', 'BF16', 'F16'].includes(floatDtype)) {
    throw new SafetensorsError('INVALID_INPUT', `dtype must be F32, BF16 or F16, not ${floatDtype}`, file);
  }
  const entries = [...(tensors instanceof Map ? tensors.entries() : Object.entries(tensors))];
  const header: Record<string, unknown> = {};
  if (opts.metadata && Object.keys(opts.metadata).length > 0) {
    for (const [k, v] of Object.entries(opts.metadata)) {
      if (typeof v !== 'string') throw new SafetensorsError('INVALID_INPUT', `metadata["${k}"] must be a string`, file);
    }
    header.__metadata__ = opts.metadata;
  }
  const plan: { name: string; t: Writable; dtype: SafetensorsDtype; size: number }[] = [];
  for (const [name, t] of entries) {
    if (name === '__metadata__') throw new SafetensorsError('INVALID_INPUT', '"__metadata__" is not a tensor name', file);
    const dtype = t instanceof tf.Tensor ? diskDtype(t, floatDtype, name, file) : t.dtype;
    if (!(dtype in DTYPE_SIZE)) throw new SafetensorsError('UNKNOWN_DTYPE', `tensor "${name}" has unknown dtype "${dtype}"`, file);
    const size = t.shape.reduce((a, d) => a * d, 1) * DTYPE_SIZE[dtype];
    if (!(t instanceof tf.Tensor) && t.data.byteLength !== size) {
      throw new SafetensorsError('SIZE_MISMATCH', `tensor "${name}" has ${t.data.byteLength} bytes; ${dtype} ${JSON.stringify(t.shape)} needs ${size}`, file);
    }
    plan.push({ name, t, dtype, size });
  }
  // Widest dtypes first, then by name (as the reference writer does): with the data section
  // starting at a multiple of 8, every tensor is then aligned to its element size.
  plan.sort((a, b) => DTYPE_SIZE[b.dtype] - DTYPE_SIZE[a.dtype] || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  let offset = 0;
  for (const { name, t, dtype, size } of plan) {
    header[name] = { dtype, shape: t.shape, data_offsets: [offset, offset + size] };
    offset += size;
  }
  let headerText = JSON.stringify(header);
  headerText += ' '.repeat((8 - (Buffer.byteLength(headerText) % 8)) % 8);
  const headerBytes = Buffer.from(headerText, 'utf8');
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(headerBytes.length));

  await atomicWrite(file, async (fh) => {
    await fh.write(prefix);
    await fh.write(headerBytes);
    for (const { t, dtype } of plan) {
      const data = t instanceof tf.Tensor ? await encodeTensor(t, dtype) : t.data;
      await fh.write(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    }
  });
}

function diskDtype(t: tf.Tensor, floatDtype: 'F32' | 'BF16' | 'F16', name: string, file: string): SafetensorsDtype {
  if (t.dtype === 'float32') return floatDtype;
  if (t.dtype === 'int32') return 'I32';
  if (t.dtype === 'bool') return 'BOOL';
  throw new SafetensorsError('INVALID_INPUT', `tensor "${name}" has dtype ${t.dtype}, which safetensors cannot hold`, file);
}

async function encodeTensor(t: tf.Tensor, dtype: SafetensorsDtype): Promise<ArrayBufferView> {
  const values = await t.data();
  switch (dtype) {
    case 'F32': return values as Float32Array;
    case 'BF16': return float32ToBf16Bits(values as Float32Array);
    case 'F16': return float32ToF16Bits(values as Float32Array);
    case 'I32': return values as Int32Array;
    case 'BOOL': return Uint8Array.from(values as Uint8Array, (v) => (v ? 1 : 0));
    default: throw new Error(`unreachable: ${dtype}`);
  }
}

/**
 * Runs `write` against a temporary file next to `target`, fsyncs it, renames it over `target` and
 * fsyncs the folder. On any error the temporary file is removed and `target` is left as it was.
 */
export async function atomicWrite(
  target: string,
  write: (fh: fs.promises.FileHandle) => Promise<void>,
): Promise<void> {
  const dir = path.dirname(path.resolve(target));
  const tmp = path.join(dir, `.${path.basename(target)}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`);
  let fh: fs.promises.FileHandle | undefined;
  try {
    await fs.promises.mkdir(dir, { recursive: true });
    fh = await fs.promises.open(tmp, 'wx');
    await write(fh);
    await fh.sync();
    await fh.close();
    fh = undefined;
    await fs.promises.rename(tmp, target);
  } catch (err) {
    await fh?.close().catch(() => {});
    await fs.promises.rm(tmp, { force: true }).catch(() => {});
    if (err instanceof SafetensorsError) throw err;
    throw new SafetensorsError('IO_ERROR', `write failed: ${(err as Error).message}`, target);
  }
  await fsyncDir(dir);
}

async function fsyncDir(dir: string): Promise<void> {
  // Makes the rename durable; some platforms cannot open folders for syncing, which is harmless.
  try {
    const dh = await fs.promises.open(dir, 'r');
    try {
      await dh.sync();
    } finally {
      await dh.close();
    }
  } catch {
    /* best effort */
  }
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
