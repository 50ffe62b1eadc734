// float32 <-> bfloat16 / float16 conversions, bit for bit against PyTorch (bf16) and numpy (f16):
// test/reference/safetensors_reference.py wrote test/fixtures/float_rounding.json.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import { bf16BitsToFloat32, f16BitsToFloat32, float32ToBf16Bits, float32ToF16Bits } from '../../src/model/half.js';

interface Case { label: string; f32_bits: number; bf16_bits: number; bf16_to_f32_bits: number; f16_bits: number; f16_to_f32_bits: number; nan: boolean }
const { cases } = JSON.parse(fs.readFileSync(new URL('../fixtures/float_rounding.json', import.meta.url), 'utf8')) as { cases: Case[] };

const inputs = new Float32Array(new Uint32Array(cases.map((c) => c.f32_bits)).buffer);
const bits32 = (f: Float32Array) => new Uint32Array(f.buffer, f.byteOffset, f.length);

test('fixture covers ties, subnormals, overflow and NaN', () => {
  assert.ok(cases.length > 250);
  assert.ok(cases.some((c) => c.nan));
  assert.ok(cases.some((c) => /tie/i.test(c.label)));
});

test('float32 -> bfloat16 rounds to nearest even exactly as torch', () => {
  const got = float32ToBf16Bits(inputs);
  cases.forEach((c, i) => {
    if (c.nan) assert.ok((got[i] & 0x7f80) === 0x7f80 && (got[i] & 0x7f) !== 0, `${c.label}: NaN stays NaN`);
    else assert.is(got[i], c.bf16_bits, `${c.label}: bf16 bits`);
  });
});

test('float32 -> float16 rounds to nearest even exactly as numpy (subnormals, overflow to inf)', () => {
  const got = float32ToF16Bits(inputs);
  cases.forEach((c, i) => {
    if (c.nan) assert.ok((got[i] & 0x7c00) === 0x7c00 && (got[i] & 0x3ff) !== 0, `${c.label}: NaN stays NaN`);
    else assert.is(got[i], c.f16_bits, `${c.label}: f16 bits`);
  });
});

test('bfloat16 and float16 decode to the exact float32 the references give', () => {
  const bf = bits32(bf16BitsToFloat32(new Uint16Array(cases.map((c) => c.bf16_bits))));
  const hf = f16BitsToFloat32(new Uint16Array(cases.map((c) => c.f16_bits)));
  const hfBits = bits32(hf);
  cases.forEach((c, i) => {
    assert.is(bf[i], c.bf16_to_f32_bits, `${c.label}: bf16 -> f32`);
    if (c.nan) assert.ok(Number.isNaN(hf[i]), `${c.label}: f16 NaN`);
    else assert.is(hfBits[i], c.f16_to_f32_bits, `${c.label}: f16 -> f32`);
  });
});

test.run();
