// safetensors reading and writing. Expected values come from an independent numpy writer and
// parser (test/reference/safetensors_reference.py) and from the format's rules, crafted by hand.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { readSafetensors, writeSafetensors, SafetensorsError, type SafetensorsErrorCode } from '../../src/model/safetensors.js';
import { useBackend } from '../helpers/backends.js';

const fixture = (name: string) => new URL(`../fixtures/${name}`, import.meta.url).pathname;
const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'promedical-st-'));
let tmpCount = 0;
const tmpPath = (name = 'x.safetensors') => path.join(tmpRoot, `${tmpCount++}-${name}`);

test.before(() => useBackend('cpu'));
test.after(() => fs.rmSync(tmpRoot, { recursive: true, force: true }));

/** A file from a header (object or raw text/bytes) and data bytes; `headerLen` overrides N. */
function craft(header: unknown, data: Uint8Array | number = 0, headerLen?: bigint): Uint8Array {
  const h = header instanceof Uint8Array ? header : Buffer.from(typeof header === 'string' ? header : JSON.stringify(header), 'utf8');
  const body = typeof data === 'number' ? new Uint8Array(data) : data;
  const out = new Uint8Array(8 + h.length + body.length);
  new DataView(out.buffer).setBigUint64(0, headerLen ?? BigInt(h.length), true);
  out.set(h, 8);
  out.set(body, 8 + h.length);
  return out;
}

const f32 = (shape: number[], begin: number, end: number) => ({ dtype: 'F32', shape, data_offsets: [begin, end] });

const malformed: [string, Uint8Array, SafetensorsErrorCode][] = [
  ['empty file', new Uint8Array(0), 'FILE_TOO_SMALL'],
  ['truncated length prefix', new Uint8Array(5), 'FILE_TOO_SMALL'],
  ['N > 1e8', craft({}, 0, 100_000_001n), 'HEADER_TOO_LARGE'],
  ['N = 2^64 - 1', craft({}, 0, 0xffffffffffffffffn), 'HEADER_TOO_LARGE'],
  ['N beyond the file', craft({}, 0, 1000n), 'HEADER_OUT_OF_BOUNDS'],
  ['bad UTF-8', craft(new Uint8Array([0x7b, 0xff, 0xfe, 0x7d])), 'INVALID_UTF8'],
  ['bad JSON', craft('{"a": {"dtype": "F32",'), 'INVALID_JSON'],
  ['header not an object', craft('[1, 2]'), 'INVALID_HEADER'],
  ['entry not an object', craft({ a: 3 }), 'INVALID_HEADER'],
  ['non-string metadata', craft({ __metadata__: { a: 1 } }), 'INVALID_HEADER'],
  ['unknown dtype', craft({ a: { dtype: 'F128', shape: [1], data_offsets: [0, 16] } }, 16), 'UNKNOWN_DTYPE'],
  ['negative dim', craft({ a: f32([-1, 4], 0, 0) }), 'INVALID_SHAPE'],
  ['fractional dim', craft({ a: f32([1.5], 0, 6) }, 6), 'INVALID_SHAPE'],
  ['huge dims that overflow', craft({ a: f32([1e10, 1e10], 0, 8) }, 8), 'INVALID_SHAPE'],
  ['missing data_offsets', craft({ a: { dtype: 'F32', shape: [1] } }, 4), 'INVALID_OFFSETS'],
  ['offsets not starting at 0', craft({ a: f32([2], 4, 12) }, 12), 'INVALID_OFFSETS'],
  ['overlapping offsets', craft({ a: f32([2], 0, 8), b: f32([2], 4, 12) }, 12), 'INVALID_OFFSETS'],
  ['gapped offsets', craft({ a: f32([2], 0, 8), b: f32([2], 12, 20) }, 20), 'INVALID_OFFSETS'],
  ['end before begin', craft({ a: f32([0], 0, 0), b: f32([0], 8, 4) }, 8), 'INVALID_OFFSETS'],
  ['size not matching shape', craft({ a: f32([3], 0, 8) }, 8), 'SIZE_MISMATCH'],
  ['offsets beyond the file (truncated data)', craft({ a: f32([4], 0, 16) }, 8), 'TRUNCATED'],
  ['a 4 GB tensor claimed in a tiny file', craft({ a: f32([1_000_000_000], 0, 4_000_000_000) }, 8), 'TRUNCATED'],
  ['trailing bytes', craft({ a: f32([2], 0, 8) }, 12), 'TRAILING_BYTES'],
  ['duplicate names', craft('{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, "a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}', 4), 'DUPLICATE_NAME'],
];

test('every malformed input ends in the right SafetensorsError code, fast, from bytes and from a file', () => {
  for (const [label, bytes, code] of malformed) {
    const file = tmpPath();
    fs.writeFileSync(file, bytes);
    for (const source of [bytes, file]) {
      const start = performance.now();
      try {
        readSafetensors(source).close();
        assert.unreachable(`${label}: no error`);
      } catch (err) {
        assert.instance(err, SafetensorsError, `${label}: ${(err as Error).message}`);
        assert.is((err as SafetensorsError).code, code, `${label}: ${(err as Error).message}`);
        if (typeof source === 'string') assert.ok((err as Error).message.startsWith(file), 'message names the file');
      }
      assert.ok(performance.now() - start < 1000, `${label} took ${performance.now() - start} ms`);
    }
  }
});

test('a missing file and a folder without safetensors are NOT_FOUND', () => {
  for (const p of [path.join(tmpRoot, 'nope.safetensors'), tmpRoot]) {
    try {
      readSafetensors(p);
      assert.unreachable();
    } catch (err) {
      assert.is((err as SafetensorsError).code, 'NOT_FOUND');
    }
  }
});

interface NumpyFixture {
  header_length: number;
  metadata: Record<string, string>;
  data_order: string[];
  tensors: Record<string, { dtype: string; shape: number[]; values: number[] }>;
}
const numpy = JSON.parse(fs.readFileSync(fixture('safetensors_numpy.json'), 'utf8')) as NumpyFixture;

test('a file written by an independent numpy writer (misaligned offsets, every integer dtype) reads back exactly', () => {
  const st = readSafetensors(fixture('safetensors_numpy.safetensors'));
  try {
    assert.equal(st.metadata, numpy.metadata);
    assert.equal(st.names, numpy.data_order);
    for (const [name, want] of Object.entries(numpy.tensors)) {
      const info = st.info(name);
      assert.is(info.dtype, want.dtype, name);
      assert.equal(info.shape, want.shape, name);
      const got = Array.from(st.array(name));
      // F64 is rounded to float32 on the device; everything else is exact in float32/int32.
      const expected = want.values.map((v) => (want.dtype === 'F64' ? Math.fround(v) : v));
      assert.equal(got, expected, name);
      const t = st.tensor(name);
      assert.equal(t.shape, want.shape, `${name} tensor shape`);
      assert.is(t.dtype, /^F|^BF/.test(want.dtype) ? 'float32' : 'int32', `${name} tensor dtype`);
      t.dispose();
    }
  } finally {
    st.close();
  }
});

test('unknown names are TENSOR_NOT_FOUND; reads after close fail', () => {
  const st = readSafetensors(fixture('safetensors_numpy.safetensors'));
  try {
    st.array('nope');
    assert.unreachable();
  } catch (err) {
    assert.is((err as SafetensorsError).code, 'TENSOR_NOT_FOUND');
  }
  st.close();
  assert.throws(() => st.array('u8'), /read after close/);
});

test('I64 values outside int32 are refused by name', () => {
  const data = new Uint8Array(new BigInt64Array([1n, 1n << 40n]).buffer);
  const st = readSafetensors(craft({ big: { dtype: 'I64', shape: [2], data_offsets: [0, 16] } }, data));
  assert.throws(() => st.array('big'), (e: unknown) => (e as SafetensorsError).code === 'VALUE_OUT_OF_RANGE' && /"big"/.test((e as Error).message));
});

test('writer: F32 / BF16 / F16 bytes match torch and numpy conversions; header padded to 8; metadata kept', async () => {
  const { cases } = JSON.parse(fs.readFileSync(fixture('float_rounding.json'), 'utf8')) as {
    cases: { f32_bits: number; bf16_bits: number; f16_bits: number; nan: boolean }[];
  };
  const finite = cases.filter((c) => !c.nan);
  const values = new Float32Array(new Uint32Array(finite.map((c) => c.f32_bits)).buffer);
  for (const dtype of ['F32', 'BF16', 'F16'] as const) {
    const file = tmpPath(`${dtype}.safetensors`);
    const t = tf.tensor1d(values);
    await writeSafetensors(file, { w: t, ids: tf.tensor1d([3, -7], 'int32') }, { dtype, metadata: { format: 'pt' } });
    t.dispose();
    const raw = fs.readFileSync(file);
    const n = Number(raw.readBigUInt64LE(0));
    assert.is(n % 8, 0, 'header padded to a multiple of 8');
    const st = readSafetensors(file);
    assert.equal(st.metadata, { format: 'pt' });
    assert.is(st.info('w').dtype, dtype);
    assert.is(st.info('ids').dtype, 'I32');
    assert.equal(Array.from(st.array('ids')), [3, -7]);
    const bytes = st.bytes('w');
    if (dtype === 'F32') {
      assert.equal(Array.from(new Uint32Array(bytes.buffer, bytes.byteOffset, finite.length)), finite.map((c) => c.f32_bits));
    } else {
      const want = finite.map((c) => (dtype === 'BF16' ? c.bf16_bits : c.f16_bits));
      assert.equal(Array.from(new Uint16Array(bytes.buffer, bytes.byteOffset, finite.length)), want);
    }
    st.close();
  }
});

test('writer round trip: scalar, empty and bool tensors; raw tensors written as given', async () => {
  const file = tmpPath();
  await writeSafetensors(file, new Map<string, tf.Tensor | { dtype: 'I64'; shape: number[]; data: ArrayBufferView }>([
    ['scalar', tf.scalar(2.5)],
    ['empty', tf.zeros([0, 3])],
    ['mask', tf.tensor1d([true, false, true], 'bool')],
    ['i64', { dtype: 'I64', shape: [2], data: new BigInt64Array([5n, -6n]) }],
  ]));
  const st = readSafetensors(file);
  assert.equal(st.names, ['i64', 'empty', 'scalar', 'mask'], 'widest dtype first, then by name (aligned)');
  assert.equal(st.info('scalar').shape, []);
  assert.equal(Array.from(st.array('scalar')), [2.5]);
  assert.equal(st.info('empty').shape, [0, 3]);
  assert.is(st.array('empty').length, 0);
  assert.is(st.info('mask').dtype, 'BOOL');
  assert.equal(Array.from(st.array('mask')), [1, 0, 1]);
  assert.equal(Array.from(st.array('i64')), [5, -6]);
  st.close();
});

test('writer refuses a raw tensor whose bytes do not match its shape', async () => {
  try {
    await writeSafetensors(tmpPath(), { a: { dtype: 'F32', shape: [3], data: new Float32Array(2) } });
    assert.unreachable();
  } catch (err) {
    assert.is((err as SafetensorsError).code, 'SIZE_MISMATCH');
  }
});

test('a failure mid-write leaves the previous file intact and no temporary file behind', async () => {
  const dir = fs.mkdtempSync(path.join(tmpRoot, 'atomic-'));
  const file = path.join(dir, 'model.safetensors');
  await writeSafetensors(file, { a: tf.tensor1d([1, 2, 3]) });
  const before = fs.readFileSync(file);
  const doomed = tf.tensor1d([4, 5, 6]);
  doomed.dispose(); // reading its data throws while the writer is half way through
  try {
    await writeSafetensors(file, { a: tf.tensor1d([7, 8, 9]), b: doomed });
    assert.unreachable('write should fail');
  } catch (err) {
    assert.match((err as Error).message, /disposed/);
  }
  assert.ok(before.equals(fs.readFileSync(file)), 'old file unchanged');
  assert.equal(fs.readdirSync(dir), ['model.safetensors']);
  assert.equal(Array.from(readSafetensors(file).array('a')), [1, 2, 3]);
});

/** Two shards and an index, as transformers writes them. */
async function writeSharded(dir: string, index?: unknown): Promise<void> {
  fs.mkdirSync(dir, { recursive: true });
  await writeSafetensors(path.join(dir, 'model-00001-of-00002.safetensors'), { 'a.weight': tf.tensor2d([[1, 2], [3, 4]]) }, { dtype: 'BF16' });
  await writeSafetensors(path.join(dir, 'model-00002-of-00002.safetensors'), { 'b.weight': tf.tensor1d([5, 6, 7]) });
  fs.writeFileSync(path.join(dir, 'model.safetensors.index.json'), JSON.stringify(index ?? {
    metadata: { total_size: 20 },
    weight_map: { 'a.weight': 'model-00001-of-00002.safetensors', 'b.weight': 'model-00002-of-00002.safetensors' },
  }));
}

test('a sharded folder reads as one file through model.safetensors.index.json', async () => {
  const dir = path.join(tmpRoot, 'sharded');
  await writeSharded(dir);
  const st = readSafetensors(dir);
  assert.equal([...st.names].sort(), ['a.weight', 'b.weight']);
  assert.equal(st.metadata, { total_size: '20' });
  assert.is(st.info('a.weight').file, path.join(dir, 'model-00001-of-00002.safetensors'));
  assert.equal(Array.from(st.array('a.weight')), [1, 2, 3, 4]);
  assert.equal(Array.from(st.array('b.weight')), [5, 6, 7]);
  st.close();
});

test('an index that disagrees with its shards is INVALID_INDEX, naming the tensor or shard', async () => {
  const bad: [unknown, RegExp][] = [
    [{ weight_map: { 'a.weight': 'model-00001-of-00002.safetensors', 'b.weight': 'missing.safetensors' } }, /missing\.safetensors is listed but missing/],
    [{ weight_map: { 'a.weight': 'model-00001-of-00002.safetensors', 'b.weight': 'model-00001-of-00002.safetensors' } }, /"b.weight"/],
    [{ nothing: 1 }, /weight_map/],
  ];
  for (const [i, [index, message]] of bad.entries()) {
    const dir = path.join(tmpRoot, `bad-index-${i}`);
    await writeSharded(dir, index);
    try {
      readSafetensors(dir);
      assert.unreachable();
    } catch (err) {
      assert.is((err as SafetensorsError).code, 'INVALID_INDEX', (err as Error).message);
      assert.match((err as Error).message, message);
    }
  }
});

test.run();
