/**
 * FP8 (OCP e4m3) weight quantization: `FP8` (one weight scale per tensor, amax / 448, and a static
 * per-tensor activation scale from the calibration amax) and `FP8_PER_CHANNEL_PER_TOKEN` (one weight
 * scale per output channel; activations get a dynamic scale per token at run time). The codec lives
 * in lib/util/e4m3.ts (below the CPU kernels that also use it) and is re-exported here.
 */
import { E4M3_MAX, e4m3EncodeDiv } from "../util/e4m3.ts";
import { InternalError } from "../util/errors.ts";
import type { QuantizedTensor } from "./packed.ts";
import type { TaskRunner } from "./tasks.ts";

export { E4M3_DECODE, E4M3_MAX, e4m3Decode, e4m3Encode } from "../util/e4m3.ts";

/** float32(amax / 448), or 1 when amax is 0 (an all-zero tensor quantizes to zeros with any scale). */
export const fp8Scale = (amax: number): number => (amax > 0 ? Math.fround(amax / E4M3_MAX) : 1);

/** max |w[off .. off + n)| (0 for none; NaN if any is NaN, as Math.max would give). */
export function absMax(w: ArrayLike<number>, off: number, n: number): number {
  let m = 0, sum = 0; // the sum of |w| (never NaN for non-NaN terms) detects NaN without a branch per value
  for (let i = off, end = off + n; i < end; i++) {
    const a = Math.abs(w[i]);
    m = a > m ? a : m;
    sum += a;
  }
  return sum !== sum ? NaN : m;
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
  runner?: TaskRunner,
): QuantizedTensor {
  const perTensor = algo === "FP8";
  if (perTensor && !(inputAmax !== undefined && Number.isFinite(inputAmax))) {
    throw new InternalError(`quantizeFp8: FP8 needs the calibration amax of the input (got ${inputAmax})`);
  }
  // Over a pool only when W is in shared memory (the workers read it); results are the same bytes either way.
  const pool = runner && runner.threads > 1 && isShared(W) ? runner : null;
  const alloc = <T>(make: (b: ArrayBuffer | SharedArrayBuffer) => T, bytes: number): T => make(pool ? new SharedArrayBuffer(bytes) : new ArrayBuffer(bytes));
  const scales = alloc((b) => new Float32Array(b), 4 * N), packed = alloc((b) => new Uint8Array(b), N * K);
  const rows = fp8TaskRows(K), numTasks = Math.ceil(N / rows);
  if (perTensor) scales.fill(fp8Scale(Math.max(weightAmax ?? 0, tensorAbsMax(W, N, K, pool ?? undefined))));
  if (pool) pool.run({ kind: "fp8Encode", W: W as SharedRows, K, N, rows, perChannel: !perTensor, scales, packed }, numTasks);
  else fp8EncodeRows(W, K, 0, N, !perTensor, scales, packed);
  return {
    bits: 8,
    rows: N,
    cols: K,
    groupSize: K,
    packed: pool ? packed.slice() : packed,
    scales: pool ? scales.slice() : scales,
    zeros: null,
    format: "fp8_e4m3",
    activationScale: perTensor ? fp8Scale(inputAmax!) : null,
    weightScale: perTensor ? "per_tensor" : "per_channel",
  };
}

/** Weights that pool workers can read: a float array in shared memory. */
export type SharedRows = Float64Array | Float32Array;

/** Whether W is a float array in shared memory (what a pool's workers can read). */
export const isShared = (W: ArrayLike<number>): W is SharedRows =>
  (W instanceof Float64Array || W instanceof Float32Array) && W.buffer instanceof SharedArrayBuffer;

/** max |W| of W [N, K] (NaN if any is NaN), over `runner`'s threads when W is in shared memory. */
export function tensorAbsMax(W: ArrayLike<number>, N: number, K: number, runner?: TaskRunner): number {
  const rowAmax = new Float64Array(runner && runner.threads > 1 && isShared(W) ? new SharedArrayBuffer(8 * N) : new ArrayBuffer(8 * N));
  const rows = fp8TaskRows(K);
  if (rowAmax.buffer instanceof SharedArrayBuffer) runner!.run({ kind: "fp8Amax", W: W as SharedRows, K, N, rows, amax: rowAmax }, Math.ceil(N / rows));
  else fp8AmaxRows(W, K, 0, N, rowAmax);
  return rowAmax.reduce((a, b) => Math.max(a, b), 0);
}

/** Rows per pool task: about 64K weights each. */
export const fp8TaskRows = (K: number): number => Math.max(1, Math.ceil(2 ** 16 / K));

/** amax[n] = max |W[n, :]| for rows n0 ≤ n < n1. */
export function fp8AmaxRows(W: ArrayLike<number>, K: number, n0: number, n1: number, amax: Float64Array): void {
  for (let n = n0; n < n1; n++) amax[n] = absMax(W, n * K, K);
}

/**
 * Rows n0 ≤ n < n1 of W in e4m3: packed[n, k] = e4m3(W[n, k] / scales[n]); `perChannel`: scales[n]
 * is first set from the row's own amax (while the row is in cache).
 */
export function fp8EncodeRows(W: ArrayLike<number>, K: number, n0: number, n1: number, perChannel: boolean, scales: Float32Array, packed: Uint8Array): void {
  for (let n = n0; n < n1; n++) {
    if (perChannel) scales[n] = fp8Scale(absMax(W, n * K, K));
    e4m3EncodeDiv(W, n * K, K, scales[n], packed, n * K);
  }
}
