/**
 * SmoothQuant (Xiao et al. 2023), `W8A8_SQ_PER_CHANNEL` as TensorRT-LLM runs it: activation outliers
 * are migrated into the weights with per-input-channel factors s_j = max|X_j|^α / max|W_j|^(1−α)
 * (X: the calibration inputs of the linears sharing one input, W: their weights stacked), so the
 * linear computes (X / s) · (W · diag(s))ᵀ. X / s is folded into the preceding RMSNorm weight where
 * one precedes (q/k/v, gate/up) or kept as a per-channel pre-quant multiplier 1/s of the input
 * (o_proj, down_proj). Weights are then int8 with one scale per output channel; activations are
 * int8 with a dynamic scale per token (lib/backends/cpu/lowbit_linear.ts).
 */
import { InternalError } from "../util/errors.ts";
import type { QuantizedTensor } from "./packed.ts";

/** Floor of both maxima, as the SmoothQuant reference clamps them (a channel never active gets s ≈ 1). */
const MIN_AMAX = 1e-5;

/**
 * The smoothing factors s [K] of one input: `actAmax` [K] max |x_k| over the calibration tokens,
 * `weights` the [N_i, K] row-major weights of every linear reading that input.
 */
export function smoothFactors(actAmax: ArrayLike<number>, weights: readonly ArrayLike<number>[], K: number, alpha: number): Float64Array {
  if (!(alpha >= 0 && alpha <= 1)) throw new InternalError(`smoothFactors: alpha ${alpha} outside [0, 1]`);
  const wAmax = new Float64Array(K);
  for (const w of weights) {
    if (w.length % K !== 0) throw new InternalError(`smoothFactors: a weight of ${w.length} values is not [N, ${K}]`);
    for (let i = 0; i < w.length; i++) {
      const k = i % K, a = Math.abs(w[i]);
      if (a > wAmax[k]) wAmax[k] = a;
    }
  }
  const s = new Float64Array(K);
  for (let k = 0; k < K; k++) s[k] = Math.max(actAmax[k], MIN_AMAX) ** alpha / Math.max(wAmax[k], MIN_AMAX) ** (1 - alpha);
  return s;
}

/** Round to nearest, ties to even. */
export function roundEven(v: number): number {
  const f = Math.floor(v), d = v - f;
  return d > 0.5 ? f + 1 : d < 0.5 ? f : f % 2 === 0 ? f : f + 1;
}

/**
 * int8 weights with one float32 scale per output channel (amax / 127; 1 for an all-zero row):
 * q = clamp(rne(w / scale), −127, 127) as two's complement bytes. `preQuantScale` [K] (optional)
 * is recorded for the kernel (the weight must already hold W · diag(s)).
 */
export function quantizeInt8PerChannel(W: ArrayLike<number>, N: number, K: number, preQuantScale?: Float32Array): QuantizedTensor {
  const packed = new Uint8Array(N * K);
  const scales = new Float32Array(N);
  for (let n = 0; n < N; n++) {
    let amax = 0;
    for (let k = 0; k < K; k++) amax = Math.max(amax, Math.abs(W[n * K + k]));
    const s = amax > 0 ? Math.fround(amax / 127) : 1;
    scales[n] = s;
    for (let k = 0; k < K; k++) packed[n * K + k] = Math.max(-127, Math.min(127, roundEven(W[n * K + k] / s))) & 255;
  }
  return {
    bits: 8,
    rows: N,
    cols: K,
    groupSize: K,
    packed,
    scales,
    zeros: null,
    format: "int8",
    activationScale: null,
    weightScale: "per_channel",
    ...(preQuantScale ? { preQuantScale } : {}),
  };
}
