/**
 * Weight-only quantization of one weight matrix W [N out, K in] (row-major, float64 working copy):
 * round-to-nearest (RTN), AWQ's activation-aware scale search, and GPTQ's Hessian-based
 * rounding with error feedback. Every result is in llmrt's packed layout (packed.ts) with scales
 * rounded to float16 (what every public checkpoint format stores).
 */
import { f16ToF32, f32ToF16 } from "../util/dtype.ts";
import { ValidationError } from "../util/errors.ts";
import { packInts, type QuantizedTensor } from "./packed.ts";

/** Integer grid of one layer: width, group size and symmetric / asymmetric. */
export interface IntGrid {
  readonly bits: 4 | 8;
  readonly groupSize: number;
  readonly hasZeroPoint: boolean;
}

const f32Box = new Float32Array(1), f16Box = new Uint16Array(1), backBox = new Float32Array(1);
/** x rounded to the nearest float16 value (as a float). */
export function roundF16(x: number): number {
  f32Box[0] = x;
  f32ToF16(f32Box, f16Box);
  f16ToF32(f16Box, backBox);
  return backBox[0];
}

/** Smallest scale kept (a float16 subnormal keeps ~3 bits here; weights this small quantize to 0 anyway). */
const MIN_SCALE = 2 ** -20;

/** Scale and zero point of one group of values w[off .. off+len) (optionally clipped by `ratio`). */
export function groupParams(w: ArrayLike<number>, off: number, len: number, grid: IntGrid, ratio = 1): { scale: number; zero: number } {
  const maxq = (1 << grid.bits) - 1;
  let lo = 0, hi = 0;
  for (let i = off; i < off + len; i++) {
    const v = w[i];
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  lo *= ratio;
  hi *= ratio;
  if (!grid.hasZeroPoint) {
    const amax = Math.max(-lo, hi);
    const scale = Math.max(roundF16(amax / ((1 << (grid.bits - 1)) - 1)), MIN_SCALE);
    return { scale, zero: 1 << (grid.bits - 1) };
  }
  const scale = Math.max(roundF16((hi - lo) / maxq), MIN_SCALE);
  const zero = Math.min(maxq, Math.max(0, Math.round(-lo / scale)));
  return { scale, zero };
}

/** The integer a value rounds to on (scale, zero). */
export function quantValue(v: number, scale: number, zero: number, maxq: number): number {
  const q = Math.round(v / scale) + zero;
  return q < 0 ? 0 : q > maxq ? maxq : q;
}

/** Mutable builder of a QuantizedTensor. */
class Accumulator {
  readonly q: Uint8Array;
  readonly scales: Float32Array;
  readonly zeros: Uint8Array;
  constructor(readonly N: number, readonly K: number, readonly grid: IntGrid) {
    this.q = new Uint8Array(N * K);
    this.scales = new Float32Array((N * K) / grid.groupSize);
    this.zeros = new Uint8Array((N * K) / grid.groupSize);
  }
  finish(): QuantizedTensor {
    const { N, K, grid } = this;
    return {
      bits: grid.bits,
      rows: N,
      cols: K,
      groupSize: grid.groupSize,
      packed: packInts(this.q, N, K, grid.bits),
      scales: this.scales,
      zeros: grid.hasZeroPoint ? this.zeros : null,
    };
  }
}

/**
 * Round-to-nearest. `clip[n·(K/G) + g]` (optional) shrinks each group's range before rounding;
 * `colScale[k]` (optional, AWQ) multiplies column k before quantizing.
 */
export function quantizeRtn(W: ArrayLike<number>, N: number, K: number, grid: IntGrid, clip?: Float64Array): QuantizedTensor {
  const G = grid.groupSize, ng = K / G, maxq = (1 << grid.bits) - 1;
  const acc = new Accumulator(N, K, grid);
  for (let n = 0; n < N; n++) {
    for (let g = 0; g < ng; g++) {
      const off = n * K + g * G;
      const { scale, zero } = groupParams(W, off, G, grid, clip ? clip[n * ng + g] : 1);
      acc.scales[n * ng + g] = scale;
      acc.zeros[n * ng + g] = zero;
      for (let i = 0; i < G; i++) acc.q[off + i] = quantValue(W[off + i], scale, zero, maxq);
    }
  }
  return acc.finish();
}

/** The float64 values RTN would reproduce (fake quantization) of W, into `out`. */
function fakeQuant(W: Float64Array, N: number, K: number, grid: IntGrid, out: Float64Array, ratio = 1): void {
  const G = grid.groupSize, maxq = (1 << grid.bits) - 1;
  for (let off = 0; off < N * K; off += G) {
    const { scale, zero } = groupParams(W, off, G, grid, ratio);
    for (let i = off; i < off + G; i++) out[i] = (quantValue(W[i], scale, zero, maxq) - zero) * scale;
  }
}

/** Activation statistics of one linear input: mean |x| per channel and a sample of rows. */
export interface InputSample {
  /** [K] mean |x_k| over the calibration tokens. */
  readonly absMean: Float64Array;
  /** [K] mean x_k² over the calibration tokens. */
  readonly sqMean: Float64Array;
  /** [T, K] a subset of calibration rows. */
  readonly rows: Float64Array;
  readonly numRows: number;
}

/** Σ_t Σ_n (Σ_k x[t,k] Δ[n,k])²: squared output error of a weight change Δ [N, K] on sample rows. */
function outputError(delta: Float64Array, N: number, K: number, x: InputSample): number {
  let err = 0;
  const X = x.rows;
  for (let n = 0; n < N; n++) {
    const d = n * K;
    for (let t = 0; t < x.numRows; t++) {
      const xo = t * K;
      let s = 0;
      for (let k = 0; k < K; k++) s += X[xo + k] * delta[d + k];
      err += s * s;
    }
  }
  return err;
}

/**
 * AWQ's scale search: s_k = mean|x_k|^α (normalized), α on a grid in [0, 1); picks the α whose
 * fake-quantized W·diag(s) / s has the least output error on the sample rows. α = 0 (s = 1) is in
 * the grid, so the result is never worse than RTN on the calibration sample. The error is scored
 * on at most `maxScoredRows` output rows (evenly spaced) to keep the search cheap.
 * Returns s [K] (fold 1/s into whatever produces the input).
 */
export function awqSearchScale(W: Float64Array, N: number, K: number, grid: IntGrid, x: InputSample, numGrid = 20, maxScoredRows = Infinity): Float64Array {
  const stride = Math.max(1, Math.ceil(N / maxScoredRows));
  const R = Math.ceil(N / stride);
  const Wr = new Float64Array(R * K);
  for (let r = 0; r < R; r++) Wr.set(W.subarray(r * stride * K, r * stride * K + K), r * K);
  let best = new Float64Array(K).fill(1), bestErr = Infinity;
  const scaled = new Float64Array(R * K), fq = new Float64Array(R * K), delta = new Float64Array(R * K);
  for (let i = 0; i < numGrid; i++) {
    const alpha = i / numGrid;
    const s = new Float64Array(K);
    let mx = 0, mn = Infinity;
    for (let k = 0; k < K; k++) {
      s[k] = Math.max(x.absMean[k], 1e-4) ** alpha;
      mx = Math.max(mx, s[k]);
      mn = Math.min(mn, s[k]);
    }
    const norm = Math.sqrt(mx * mn);
    for (let k = 0; k < K; k++) s[k] /= norm;
    for (let r = 0; r < R; r++) for (let k = 0; k < K; k++) scaled[r * K + k] = Wr[r * K + k] * s[k];
    fakeQuant(scaled, R, K, grid, fq);
    for (let r = 0; r < R; r++) for (let k = 0; k < K; k++) delta[r * K + k] = fq[r * K + k] / s[k] - Wr[r * K + k];
    const err = outputError(delta, R, K, x);
    if (err < bestErr) {
      bestErr = err;
      best = s;
    }
  }
  return best;
}

/** In-place lower Cholesky factor of a symmetric positive definite A [K, K]; false if not SPD. */
function cholesky(A: Float64Array, K: number): boolean {
  for (let j = 0; j < K; j++) {
    let d = A[j * K + j];
    for (let p = 0; p < j; p++) d -= A[j * K + p] ** 2;
    if (!(d > 0)) return false;
    d = Math.sqrt(d);
    A[j * K + j] = d;
    for (let i = j + 1; i < K; i++) {
      let s = A[i * K + j];
      for (let p = 0; p < j; p++) s -= A[i * K + p] * A[j * K + p];
      A[i * K + j] = s / d;
    }
    for (let p = j + 1; p < K; p++) A[j * K + p] = 0;
  }
  return true;
}

/** H⁻¹ from a lower Cholesky factor L (H = L Lᵀ). */
function choleskyInverse(L: Float64Array, K: number): Float64Array {
  // Linv = L⁻¹ (lower), then H⁻¹ = Linvᵀ Linv.
  const Li = new Float64Array(K * K);
  for (let j = 0; j < K; j++) {
    Li[j * K + j] = 1 / L[j * K + j];
    for (let i = j + 1; i < K; i++) {
      let s = 0;
      for (let p = j; p < i; p++) s += L[i * K + p] * Li[p * K + j];
      Li[i * K + j] = -s / L[i * K + i];
    }
  }
  const inv = new Float64Array(K * K);
  for (let i = 0; i < K; i++) {
    for (let j = 0; j <= i; j++) {
      let s = 0;
      for (let p = i; p < K; p++) s += Li[p * K + i] * Li[p * K + j];
      inv[i * K + j] = s;
      inv[j * K + i] = s;
    }
  }
  return inv;
}

/**
 * GPTQ (Frantar et al. 2022): quantizes columns left to right; each column's rounding error,
 * scaled by the upper Cholesky factor of H⁻¹ (H = Σ x xᵀ + damping), is pushed onto the columns not
 * yet quantized. Group scales are fixed when a group's first column is reached (desc_act false,
 * static groups off), from the error-updated weights. W is consumed (updated in place).
 */
export function quantizeGptq(W: Float64Array, N: number, K: number, grid: IntGrid, hessian: Float64Array, dampPercent = 0.01): QuantizedTensor {
  const G = grid.groupSize, ng = K / G, maxq = (1 << grid.bits) - 1;
  const H = hessian.slice();
  let meanDiag = 0;
  for (let k = 0; k < K; k++) {
    if (H[k * K + k] === 0) { // a channel never active: its weights cannot matter
      H[k * K + k] = 1;
      for (let n = 0; n < N; n++) W[n * K + k] = 0;
    }
    meanDiag += H[k * K + k] / K;
  }
  let damp = dampPercent * meanDiag;
  let Hinv: Float64Array | null = null;
  for (let attempt = 0; attempt < 6 && !Hinv; attempt++, damp *= 10) {
    const A = H.slice();
    for (let k = 0; k < K; k++) A[k * K + k] += damp;
    if (!cholesky(A, K)) continue;
    const inv = choleskyInverse(A, K);
    if (cholesky(inv, K)) Hinv = inv; // lower L2 with H⁻¹ = L2 L2ᵀ; U = L2ᵀ: U[i, j] = L2[j, i]
  }
  if (!Hinv) {
    throw new ValidationError(
      "quantizeGptq: the Hessian is not positive definite even with damping (more or more varied calibration data, or W4A16 / W4A16_AWQ)",
      "calibration",
    );
  }
  const L2 = Hinv;
  const acc = new Accumulator(N, K, grid);
  const err = new Float64Array(N);
  for (let i = 0; i < K; i++) {
    const g = (i / G) | 0;
    if (i % G === 0) {
      for (let n = 0; n < N; n++) {
        const { scale, zero } = groupParams(W, n * K + i, G, grid);
        acc.scales[n * ng + g] = scale;
        acc.zeros[n * ng + g] = zero;
      }
    }
    const d = L2[i * K + i];
    for (let n = 0; n < N; n++) {
      const w = W[n * K + i], s = acc.scales[n * ng + g], z = acc.zeros[n * ng + g];
      const q = quantValue(w, s, z, maxq);
      acc.q[n * K + i] = q;
      err[n] = (w - (q - z) * s) / d;
    }
    for (let j = i + 1; j < K; j++) {
      const u = L2[j * K + i];
      if (u === 0) continue;
      for (let n = 0; n < N; n++) W[n * K + j] -= err[n] * u;
    }
  }
  return acc.finish();
}
