/**
 * The CPU reference of a block-scaled FP8 GEMM (FP8_BLOCK_SCALES; DeepSeek-V3 / Qwen3-FP8
 * checkpoints): weights e4m3 with one scale per output row and group of G input channels (the
 * checkpoint's bn × bk block scales repeated on each block's rows), activations quantized per token
 * and per group of G channels at run time.
 */
import { E4M3_DECODE, E4M3_MAX, e4m3Encode } from "../../util/e4m3.ts";

/** A block-scaled FP8 weight: e4m3 bytes [N, K], float32 scales [N, ⌈K/G⌉], w[n, k] = e4m3(bytes[n, k]) · scales[n, k/G]. */
export interface CpuFp8BlockWeight {
  readonly bytes: Uint8Array;
  readonly scales: Float32Array;
  readonly groupSize: number;
}

/**
 * out = x · wᵀ (+ bias): for token m and group g, a = float32(max |x[m, g·G..]| / 448) (1 for an
 * all-zero group), each x quantized as e4m3(float32(x / a)) (round to nearest even, saturating),
 * the e4m3 products of a group summed exactly (float64), then scaled:
 * out[m, n] = Σ_g acc_g · a_g · scales[n, g] (+ bias[n]).
 */
export function fp8BlockLinear(
  x: Float32Array,
  w: CpuFp8BlockWeight,
  bias: Float32Array | null,
  M: number,
  N: number,
  K: number,
  out: Float32Array,
): void {
  const G = w.groupSize, ng = Math.ceil(K / G), dec = E4M3_DECODE, bytes = w.bytes;
  const xq = new Float64Array(K), a = new Float64Array(ng);
  for (let m = 0; m < M; m++) {
    const xo = m * K, oo = m * N;
    for (let g = 0; g < ng; g++) {
      const k1 = Math.min(K, (g + 1) * G);
      let amax = 0;
      for (let k = g * G; k < k1; k++) amax = Math.max(amax, Math.abs(x[xo + k]));
      const s = amax > 0 ? Math.fround(amax / E4M3_MAX) : 1;
      a[g] = s;
      for (let k = g * G; k < k1; k++) xq[k] = dec[e4m3Encode(Math.fround(x[xo + k] / s))];
    }
    for (let n = 0; n < N; n++) {
      const wo = n * K, so = n * ng;
      let v = 0;
      for (let g = 0; g < ng; g++) {
        const k1 = Math.min(K, (g + 1) * G);
        let acc = 0;
        for (let k = g * G; k < k1; k++) acc += xq[k] * dec[bytes[wo + k]];
        v += acc * a[g] * w.scales[so + g];
      }
      out[oo + n] = bias ? v + bias[n] : v;
    }
  }
}
