/**
 * FP4 E2M1 (the element type of NVFP4 / MXFP4): 1 sign, 2 exponent (bias 1), 1 mantissa bit; the
 * 16 codes are S·{0, 0.5, 1, 1.5, 2, 3, 4, 6} (code & 7 indexes the magnitude, bit 3 is the sign);
 * no infinities or NaN. Encoding rounds to nearest, ties to even (even = mantissa bit 0), and
 * saturates to ±6, as PTX `cvt.rn.satfinite.e2m1x2.f32` and ModelOpt's reference cast do; NaN
 * becomes +6 (code 0x7), as ModelOpt's cast gives it.
 *
 * NVFP4 (the layout ModelOpt exports and TensorRT-LLM reads, `modelopt/torch/quantization/qtensor/nvfp4_tensor.py`):
 * blocks of 16 consecutive values along the input dim share one e4m3 scale, the whole tensor one
 * float32 global scale g = amax / (6·448); block scale s = e4m3(blockAmax / (6·g)) (1.0 for an
 * all-zero block), value codes e2m1(x / (s·g)); two codes per byte, element 2j in the low nibble.
 * Here (below the CPU kernels) so the kernels and lib/quantization share one block quantizer.
 */
import { E4M3_DECODE, E4M3_MAX, e4m3Encode } from "./e4m3.ts";

/** The largest e2m1 magnitude. */
export const E2M1_MAX = 6;
/** Values per NVFP4 block (one e4m3 scale each). */
export const NVFP4_BLOCK = 16;

/** The value of every e2m1 code (index = code 0..15). */
export const E2M1_DECODE: Float32Array = Float32Array.from([0, 0.5, 1, 1.5, 2, 3, 4, 6, -0, -0.5, -1, -1.5, -2, -3, -4, -6]);

/** Midpoints between neighbouring e2m1 magnitudes (beyond the last one, 5, values saturate to 6). */
const MIDPOINTS = [0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5];

/**
 * The e2m1 code (0..15) nearest to `x`: round to nearest, ties to even, saturating to ±6; NaN → +6.
 *
 * @example
 * ```ts
 * e2m1Encode(2.5); // 4 (2.0: the tie goes to the even code)
 * e2m1Encode(-7); // 15 (−6, saturated)
 * ```
 */
export function e2m1Encode(x: number): number {
  if (Number.isNaN(x)) return 0x7;
  const sign = x < 0 || Object.is(x, -0) ? 8 : 0;
  const a = Math.abs(x);
  // m = how many midpoints a lies above; on a midpoint the neighbour with mantissa bit 0 (even) wins,
  // which is the upper one exactly at the odd-indexed midpoints 0.75, 1.75 and 3.5.
  let m = 0;
  while (m < 7 && a > MIDPOINTS[m]) m++;
  if (m < 7 && a === MIDPOINTS[m] && (m & 1) === 1) m++;
  return sign | m;
}

/**
 * The value of an e2m1 code (low 4 bits of `c`).
 *
 * @example
 * ```ts
 * e2m1Decode(0x5); // 3
 * e2m1Decode(0xb); // -1.5
 * ```
 */
export function e2m1Decode(c: number): number {
  return E2M1_DECODE[c & 15];
}

/** float32(amax / (6·448)), the NVFP4 global scale; 1 when amax is 0 (or not finite). */
export function nvfp4GlobalScale(amax: number): number {
  return amax > 0 && Number.isFinite(amax) ? Math.fround(amax / (E2M1_MAX * E4M3_MAX)) : 1;
}

/**
 * NVFP4-quantizes `len` values of `src` from `off` (len a multiple of 16) under global scale `g`:
 * writes the e2m1 codes (one per element, unpacked) to `codes` from `codeOff` and the e4m3 block
 * scale bytes to `scaleBytes` from `scaleOff`. Arithmetic as ModelOpt's reference in float32:
 * s = e4m3(f32(amax / f32(6·g))) (saturating), code = e2m1(f32(x / f32(s·g))).
 */
export function nvfp4QuantizeBlocks(
  src: ArrayLike<number>,
  off: number,
  len: number,
  g: number,
  codes: Uint8Array,
  codeOff: number,
  scaleBytes: Uint8Array,
  scaleOff: number,
): void {
  const six = Math.fround(E2M1_MAX * g);
  for (let b = 0; b < len / NVFP4_BLOCK; b++) {
    const o = off + b * NVFP4_BLOCK;
    let amax = 0;
    for (let i = 0; i < NVFP4_BLOCK; i++) amax = Math.max(amax, Math.abs(src[o + i]));
    const sb = amax > 0 ? e4m3Encode(Math.fround(amax / six)) : 0x38; // all-zero block: scale 1.0
    scaleBytes[scaleOff + b] = sb;
    const div = Math.fround(E4M3_DECODE[sb] * g);
    const co = codeOff + b * NVFP4_BLOCK;
    // A block whose scale underflowed to 0 keeps codes of 0 (x / 0 is not a value; its elements dequantize to 0 either way).
    for (let i = 0; i < NVFP4_BLOCK; i++) codes[co + i] = div > 0 ? e2m1Encode(Math.fround(src[o + i] / div)) : 0;
  }
}
