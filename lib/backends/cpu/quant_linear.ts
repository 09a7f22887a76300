/**
 * CPU reference kernel of the weight-only linear: packed int4/int8 weights with per-group scales
 * (and optional zero points) are dequantized inside the dot product — no float copy of the weight
 * matrix ever exists. Layout (llmrt's packed format, lib/quantization/packed.ts):
 *   packed [N, K·bits/8] uint8 (int4: element 2j low nibble, 2j+1 high nibble of byte j)
 *   scales [N, K/G] float32, zeros [N, K/G] uint8 or null (symmetric: 2^(bits−1))
 *   w[n, k] = (q[n, k] − z[n, k/G]) · s[n, k/G]
 *
 * FP8 (e4m3, lib/util/e4m3.ts): see {@link fp8Linear}.
 */
import { E4M3_DECODE, E4M3_MAX, e4m3Encode } from "../../util/e4m3.ts";

/** A quantized weight as the CPU backend holds it. */
export interface CpuQuantWeight {
  readonly bits: 4 | 8;
  readonly groupSize: number;
  readonly packed: Uint8Array;
  readonly scales: Float32Array;
  readonly zeros: Uint8Array | null;
}

/** out[m, n] = Σ_k x[m, k] · w[n, k] + bias[n]  — x [M, K], w quantized [N, K], out [M, N]. */
export function quantLinear(x: Float32Array, w: CpuQuantWeight, bias: Float32Array | null, M: number, N: number, K: number, out: Float32Array): void {
  const G = w.groupSize, ng = K / G, bits = w.bits;
  const rowBytes = (K * bits) / 8, groupBytes = (G * bits) / 8;
  const defaultZero = 1 << (bits - 1);
  const groupSum = new Float64Array(ng); // Σ_k∈g x[m, k]: the zero-point term per group
  for (let m = 0; m < M; m++) {
    const xo = m * K, oo = m * N;
    for (let g = 0; g < ng; g++) {
      let s = 0;
      for (let k = g * G; k < (g + 1) * G; k++) s += x[xo + k];
      groupSum[g] = s;
    }
    for (let n = 0; n < N; n++) {
      let acc = 0;
      for (let g = 0; g < ng; g++) {
        const pb = n * rowBytes + g * groupBytes, xk = xo + g * G;
        let dot = 0;
        if (bits === 4) {
          for (let j = 0; j < groupBytes; j++) {
            const b = w.packed[pb + j];
            dot += x[xk + 2 * j] * (b & 15) + x[xk + 2 * j + 1] * (b >> 4);
          }
        } else {
          for (let j = 0; j < groupBytes; j++) dot += x[xk + j] * w.packed[pb + j];
        }
        const z = w.zeros ? w.zeros[n * ng + g] : defaultZero;
        acc += w.scales[n * ng + g] * (dot - z * groupSum[g]);
      }
      out[oo + n] = bias ? acc + bias[n] : acc;
    }
  }
}

/**
 * An FP8 weight as the CPU backend holds it: e4m3 bytes [N, K] and one float32 scale per output row
 * (per-tensor FP8 repeats its tensor's scale on every row), w[n, k] = e4m3(bytes[n, k]) · scales[n].
 */
export interface CpuFp8Weight {
  readonly bytes: Uint8Array;
  readonly scales: Float32Array;
  /** Static per-tensor activation scale (FP8), or null for a dynamic per-token scale (FP8_PER_CHANNEL_PER_TOKEN). */
  readonly activationScale: number | null;
}

/** The dynamic per-token activation scale of one row: float32(max |x| / 448), 1 for an all-zero row. */
export function fp8TokenScale(x: Float32Array, offset: number, K: number): number {
  let amax = 0;
  for (let k = 0; k < K; k++) amax = Math.max(amax, Math.abs(x[offset + k]));
  return amax > 0 ? Math.fround(amax / E4M3_MAX) : 1;
}

/**
 * The CPU reference of an FP8 GEMM, out = x · wᵀ (+ bias) — what a tensor-core FP8 GEMM computes:
 * each activation row is quantized to e4m3 as e4m3(float32(x / a)) (round to nearest even,
 * saturating to ±448) with its scale a (static, or per token), the e4m3 products are accumulated
 * exactly (float64; e4m3·e4m3 products are exact), and the scales are applied after:
 * out[m, n] = acc · a · w.scales[n] (+ bias[n]). The weight is never expanded to floats.
 */
export function fp8Linear(x: Float32Array, w: CpuFp8Weight, bias: Float32Array | null, M: number, N: number, K: number, out: Float32Array): void {
  const xq = new Float64Array(K);
  const dec = E4M3_DECODE, bytes = w.bytes;
  for (let m = 0; m < M; m++) {
    const xo = m * K, oo = m * N;
    const a = w.activationScale ?? fp8TokenScale(x, xo, K);
    for (let k = 0; k < K; k++) xq[k] = dec[e4m3Encode(Math.fround(x[xo + k] / a))];
    for (let n = 0; n < N; n++) {
      const wo = n * K;
      let acc = 0;
      for (let k = 0; k < K; k++) acc += xq[k] * dec[bytes[wo + k]];
      const v = acc * a * w.scales[n];
      out[oo + n] = bias ? v + bias[n] : v;
    }
  }
}
