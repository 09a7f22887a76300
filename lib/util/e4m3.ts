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
