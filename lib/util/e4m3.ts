/**
 * OCP FP8 E4M3 ("E4M3FN"): 1 sign, 4 exponent (bias 7), 3 mantissa bits; no infinities, NaN is
 * S.1111.111, subnormals (exponent 0) are m·2⁻⁹, the largest finite value is 448.
 * Encoding rounds to nearest, ties to even, and saturates to ±448 (CUDA's `__NV_SATFINITE`):
 * values beyond ±448 (infinities included) become ±448; NaN becomes 0x7F / 0xFF.
 * Here (below every layer that uses it) so the CPU kernels and lib/quantization share one codec.
 */

/** The largest finite e4m3 value. */
export const E4M3_MAX = 448;

/** Round to nearest integer, ties to even (v ≥ 0). */
function rne(v: number): number {
  const f = Math.floor(v), d = v - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

const f64 = new Float64Array(1);
const hi32 = new Uint32Array(f64.buffer, 4, 1); // the sign and exponent word of f64[0] (little-endian)
/** 2^(3 − e) for the normal exponents e = −6 … 8: scales [2^e, 2^(e+1)) onto the mantissa steps [8, 16). */
const STEP = Float64Array.from({ length: 15 }, (_, i) => 2 ** (3 - (i - 6)));

/** The e4m3 byte nearest to `x` (round to nearest even, saturating to ±448). */
export function e4m3Encode(x: number): number {
  if (Number.isNaN(x)) return 0x7f;
  f64[0] = x;
  const sign = hi32[0] >>> 31 ? 0x80 : 0; // −0 included
  const a = Math.abs(x);
  if (a >= E4M3_MAX) return sign | 0x7e;
  if (a < 2 ** -6) return sign | rne(a * 512); // subnormal: steps of 2^-9; 8 carries into 0x08 = 2^-6
  // a in [2^e, 2^(e+1)) with e the double's exponent (−6 … 8): 8 mantissa steps of 2^(e-3); q in [8, 16],
  // 16 carries into the next exponent.
  const e = ((hi32[0] >>> 20) & 0x7ff) - 1023;
  const q = rne(a * STEP[e + 6]);
  return sign | (((e + 7) << 3) + q - 8);
}

// Row encoders: the same bytes as e4m3Encode, from the IEEE bits of the value (normal range: keep
// the exponent and 3 mantissa bits, round to nearest even by adding half − 1 plus the kept LSB, the
// carry moving into the exponent), the rare subnormals, saturations and NaNs by e4m3Encode itself.
const CHUNK = 1024;
const q64 = new Float64Array(CHUNK), q64w = new Int32Array(q64.buffer); // word 2j: low mantissa, 2j + 1: sign/exponent/high mantissa
const q32 = new Float32Array(CHUNK), q32w = new Int32Array(q32.buffer);
/** |x| words (float64 high word / float32 bits) of 2^-6 and 448; the exponent rebias of the kept bits. */
const D_MIN = 0x3f900000, D_MAX = 0x407c0000, D_BIAS = (1023 - 7) << 3;
const F_MIN = 0x3c800000, F_MAX = 0x43e00000, F_BIAS = (127 - 7) << 3;

/**
 * `dst[d0 + i] = e4m3Encode(src[s0 + i] / divisor)` for i < n (the quotient in float64, as JS
 * divides), several times faster than calling e4m3Encode per value.
 */
export function e4m3EncodeDiv(src: ArrayLike<number>, s0: number, n: number, divisor: number, dst: Uint8Array, d0: number): void {
  for (let c = 0; c < n; c += CHUNK) {
    const m = Math.min(CHUNK, n - c), sb = s0 + c, db = d0 + c;
    for (let j = 0; j < m; j++) q64[j] = src[sb + j] / divisor;
    for (let j = 0; j < m; j++) {
      const hi = q64w[2 * j + 1], a = hi & 0x7fffffff;
      if (a >= D_MIN && a < D_MAX) {
        const t = a | (q64w[2 * j] !== 0 ? 1 : 0); // the low word only matters as a sticky bit
        dst[db + j] = ((hi >>> 24) & 0x80) | (((t + 0xffff + ((t >> 17) & 1)) >> 17) - D_BIAS);
      } else dst[db + j] = e4m3Encode(q64[j]);
    }
  }
}

/**
 * `dst[d0 + i] = e4m3Encode(Math.fround(src[s0 + i] * factor))` for i < n (the product rounded to
 * float32), several times faster than calling e4m3Encode per value.
 */
export function e4m3EncodeMulF32(src: ArrayLike<number>, s0: number, n: number, factor: number, dst: Uint8Array, d0: number): void {
  for (let c = 0; c < n; c += CHUNK) {
    const m = Math.min(CHUNK, n - c), sb = s0 + c, db = d0 + c;
    for (let j = 0; j < m; j++) q32[j] = src[sb + j] * factor;
    for (let j = 0; j < m; j++) {
      const b = q32w[j], a = b & 0x7fffffff;
      if (a >= F_MIN && a < F_MAX) dst[db + j] = ((b >>> 24) & 0x80) | (((a + 0x7ffff + ((a >> 20) & 1)) >> 20) - F_BIAS);
      else dst[db + j] = e4m3Encode(q32[j]);
    }
  }
}

/** The value of every e4m3 byte (index = byte). */
export const E4M3_DECODE: Float32Array = (() => {
  const t = new Float32Array(256);
  for (let b = 0; b < 256; b++) {
    const e = (b >> 3) & 15, m = b & 7;
    const v = e === 15 && m === 7 ? NaN : e === 0 ? m * 2 ** -9 : (1 + m / 8) * 2 ** (e - 7);
    t[b] = b & 0x80 ? -v : v;
  }
  return t;
})();

/** The value of an e4m3 byte. */
export function e4m3Decode(b: number): number {
  return E4M3_DECODE[b & 255];
}
