// float16 and bfloat16 <-> float32 bit conversions (tfjs has neither dtype: checkpoints are
// upcast on load and rounded on save). Rounding is to nearest, ties to even, as in PyTorch/numpy.

/** float32 -> bfloat16 bits. NaN stays NaN (quiet, sign kept); overflow rounds to infinity. */
export function float32ToBf16Bits(values: Float32Array): Uint16Array {
  const bits = new Uint32Array(values.buffer, values.byteOffset, values.length);
  const out = new Uint16Array(values.length);
  for (let i = 0; i < bits.length; i++) {
    const b = bits[i];
    if ((b & 0x7fffffff) > 0x7f800000) {
      out[i] = (b >>> 16) | 0x0040;
    } else {
      // Adding 0x7fff plus the lowest kept bit rounds the dropped half to nearest even.
      out[i] = (b + 0x7fff + ((b >>> 16) & 1)) >>> 16;
    }
  }
  return out;
}

/** bfloat16 bits -> float32 (exact: the bits are the top half of a float32). */
export function bf16BitsToFloat32(bits: Uint16Array): Float32Array {
  const out = new Uint32Array(bits.length);
  for (let i = 0; i < bits.length; i++) out[i] = bits[i] << 16;
  return new Float32Array(out.buffer);
}

/** float32 -> IEEE half bits, round to nearest even, with subnormals, overflow to infinity. */
export function float32ToF16Bits(values: Float32Array): Uint16Array {
  const bits = new Uint32Array(values.buffer, values.byteOffset, values.length);
  const out = new Uint16Array(values.length);
  for (let i = 0; i < bits.length; i++) out[i] = f32BitsToF16(bits[i]);
  return out;
}

function f32BitsToF16(b: number): number {
  const sign = (b >>> 16) & 0x8000;
  const exp = (b >>> 23) & 0xff;
  const mant = b & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant !== 0 ? 0x200 | (mant >>> 13) : 0);
  const e = exp - 127 + 15; // rebias
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    // Subnormal half (or zero): value = m16 * 2^-24, so shift the full significand right.
    if (e < -10) return sign;
    const m = mant | 0x800000;
    const shift = 14 - e;
    let half = m >>> shift;
    const rem = m & ((1 << shift) - 1);
    const halfway = 1 << (shift - 1);
    if (rem > halfway || (rem === halfway && (half & 1) !== 0)) half++;
    return sign | half;
  }
  let half = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  // A carry out of the mantissa bumps the exponent, which is the correct rounding (up to inf).
  if (rem > 0x1000 || (rem === 0x1000 && (half & 1) !== 0)) half++;
  return sign | half;
}

let f16Table: Float32Array | undefined;

/** IEEE half bits -> float32 (exact), through a 64K-entry table built on first use. */
export function f16BitsToFloat32(bits: Uint16Array): Float32Array {
  const table = (f16Table ??= buildF16Table());
  const out = new Float32Array(bits.length);
  for (let i = 0; i < bits.length; i++) out[i] = table[bits[i]];
  return out;
}

function buildF16Table(): Float32Array {
  const table = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = h & 0x8000 ? -1 : 1;
    const e = (h >>> 10) & 0x1f;
    const m = h & 0x3ff;
    if (e === 0) table[h] = sign * m * 2 ** -24;
    else if (e === 31) table[h] = m !== 0 ? NaN : sign * Infinity;
    else table[h] = sign * (1 + m / 1024) * 2 ** (e - 15);
  }
  return table;
}

/** float8 e4m3fn (no infinities; S.1111.111 is NaN) -> float32. */
export function f8e4m3BitsToFloat32(bits: Uint8Array): Float32Array {
  const out = new Float32Array(bits.length);
  for (let i = 0; i < bits.length; i++) {
    const b = bits[i];
    const sign = b & 0x80 ? -1 : 1;
    const e = (b >>> 3) & 0xf;
    const m = b & 0x7;
    if (e === 0xf && m === 0x7) out[i] = NaN;
    else if (e === 0) out[i] = sign * (m / 8) * 2 ** -6;
    else out[i] = sign * (1 + m / 8) * 2 ** (e - 7);
  }
  return out;
}

/** float8 e5m2 is the top byte of an IEEE half. */
export function f8e5m2BitsToFloat32(bits: Uint8Array): Float32Array {
  const half = new Uint16Array(bits.length);
  for (let i = 0; i < bits.length; i++) half[i] = bits[i] << 8;
  return f16BitsToFloat32(half);
}
