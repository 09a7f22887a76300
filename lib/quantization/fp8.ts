/**
 * FP8 (OCP e4m3) weight quantization: `FP8` (one weight scale per tensor, amax / 448, and a static
 * per-tensor activation scale from the calibration amax) and `FP8_PER_CHANNEL_PER_TOKEN` (one weight
 * scale per output channel; activations get a dynamic scale per token at run time). The codec lives
 * in lib/util/e4m3.ts (below the CPU kernels that also use it) and is re-exported here.
 */
import { E4M3_MAX, e4m3EncodeDiv } from "../util/e4m3.ts";
import { InternalError } from "../util/errors.ts";
import type { QuantizedTensor } from "./packed.ts";

export { E4M3_DECODE, E4M3_MAX, e4m3Decode, e4m3Encode } from "../util/e4m3.ts";

/** float32(amax / 448), or 1 when amax is 0 (an all-zero tensor quantizes to zeros with any scale). */
export const fp8Scale = (amax: number): number => (amax > 0 ? Math.fround(amax / E4M3_MAX) : 1);

/** max |w[off .. off + n)| (0 for none; NaN if any is NaN, as Math.max would give). */
export function absMax(w: ArrayLike<number>, off: number, n: number): number {
  let m = 0;
  for (let i = off; i < off + n; i++) {
    const v = w[i], a = v < 0 ? -v : v;
    if (a > m) m = a;
    else if (a !== a) return NaN;
  }
  return m;
}

/**
 * Quantizes W [N, K] to e4m3 bytes with per-tensor (`FP8`) or per-output-channel
 * (`FP8_PER_CHANNEL_PER_TOKEN`) float32 scales; `inputAmax` (required for `FP8`) is the largest
 * |x| of this linear's input over the calibration set and sets the static activation scale.
 * `weightAmax` (`FP8` only) overrides the tensor's own amax: linears fused into one engine weight
 * pass the amax of all parts, so they share one weight scale.
 */
export function quantizeFp8(
  W: ArrayLike<number>,
  N: number,
  K: number,
  algo: "FP8" | "FP8_PER_CHANNEL_PER_TOKEN",
  inputAmax?: number,
  weightAmax?: number,
): QuantizedTensor {
  const perTensor = algo === "FP8";
  if (perTensor && !(inputAmax !== undefined && Number.isFinite(inputAmax))) {
    throw new InternalError(`quantizeFp8: FP8 needs the calibration amax of the input (got ${inputAmax})`);
  }
  const rowAmax = new Float64Array(N);
  for (let n = 0; n < N; n++) rowAmax[n] = absMax(W, n * K, K);
  const scales = new Float32Array(N);
  if (perTensor) scales.fill(fp8Scale(Math.max(weightAmax ?? 0, rowAmax.reduce((a, b) => Math.max(a, b), 0))));
  else for (let n = 0; n < N; n++) scales[n] = fp8Scale(rowAmax[n]);
  const packed = new Uint8Array(N * K);
  for (let n = 0; n < N; n++) e4m3EncodeDiv(W, n * K, K, scales[n], packed, n * K);
  return {
    bits: 8,
    rows: N,
    cols: K,
    groupSize: K,
    packed,
    scales,
    zeros: null,
    format: "fp8_e4m3",
    activationScale: perTensor ? fp8Scale(inputAmax!) : null,
    weightScale: perTensor ? "per_tensor" : "per_channel",
  };
}
