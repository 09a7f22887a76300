/**
 * Weight-only quantization of one weight matrix W [N out, K in] (row-major, float64 working copy):
 * the integer grid, group parameters and round-to-nearest (RTN); AWQ's scale search is in awq.ts,
 * GPTQ's Hessian-based rounding in gptq.ts. Every result is in llmrt's packed layout (packed.ts)
 * with scales rounded to float16 (what every public checkpoint format stores).
 */
import { f16ToF32, f32ToF16 } from "../util/dtype.ts";
import { packInts, type QuantizedTensor } from "./packed.ts";
import type { TaskRunner } from "./tasks.ts";

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

/**
 * Math.round(x) (the same value for every x, but +0 for −0.5 ≤ x ≤ −0) several times faster under
 * Bun: floor(x + 0.5), less 1 in the rare case the sum rounded up to the next integer (x < r − 0.5,
 * an exact comparison).
 */
export function roundHalfUp(x: number): number {
  const r = Math.floor(x + 0.5);
  return r - 0.5 > x ? r - 1 : r;
}

/** Mutable builder of a QuantizedTensor. */
export class Accumulator {
  readonly q: Uint8Array;
  readonly scales: Float32Array;
  readonly zeros: Uint8Array;
  /** `shared`: in shared memory (written by worker threads). */
  constructor(readonly N: number, readonly K: number, readonly grid: IntGrid, shared = false) {
    const ng = (N * K) / grid.groupSize;
    this.q = shared ? new Uint8Array(new SharedArrayBuffer(N * K)) : new Uint8Array(N * K);
    this.scales = shared ? new Float32Array(new SharedArrayBuffer(4 * ng)) : new Float32Array(ng);
    this.zeros = shared ? new Uint8Array(new SharedArrayBuffer(ng)) : new Uint8Array(ng);
  }
  finish(): QuantizedTensor {
    const { N, K, grid } = this;
    const own = this.scales.buffer instanceof SharedArrayBuffer; // results live in ordinary memory
    return {
      bits: grid.bits,
      rows: N,
      cols: K,
      groupSize: grid.groupSize,
      packed: packInts(this.q, N, K, grid.bits),
      scales: own ? this.scales.slice() : this.scales,
      zeros: grid.hasZeroPoint ? (own ? this.zeros.slice() : this.zeros) : null,
    };
  }
}

/**
 * Round-to-nearest. `clip[n·(K/G) + g]` (optional) shrinks each group's range before rounding;
 * `colScale[k]` (optional, AWQ) multiplies column k before quantizing. With a multi-thread `runner`
 * and W in shared memory, row blocks run on its threads (the same bytes).
 */
export function quantizeRtn(W: ArrayLike<number>, N: number, K: number, grid: IntGrid, clip?: Float64Array, runner?: TaskRunner): QuantizedTensor {
  if (runner && runner.threads > 1 && !clip && (W instanceof Float64Array || W instanceof Float32Array) && W.buffer instanceof SharedArrayBuffer) {
    const acc = new Accumulator(N, K, grid, true), rows = Math.max(1, Math.ceil(2 ** 16 / K));
    runner.run({ kind: "rtn", W, N, K, grid, q: acc.q, scales: acc.scales, zeros: acc.zeros, rows }, Math.ceil(N / rows));
    return acc.finish();
  }
  const acc = new Accumulator(N, K, grid);
  rtnRows(W, K, grid, 0, N, acc.q, acc.scales, acc.zeros, clip);
  return acc.finish();
}

/** Rows n0 ≤ n < n1 of {@link quantizeRtn}: their integers q [N, K], scales and zeros [N, K/G]. */
export function rtnRows(
  W: ArrayLike<number>,
  K: number,
  grid: IntGrid,
  n0: number,
  n1: number,
  q: Uint8Array,
  scales: Float32Array,
  zeros: Uint8Array,
  clip?: Float64Array,
): void {
  const G = grid.groupSize, ng = K / G, maxq = (1 << grid.bits) - 1;
  for (let n = n0; n < n1; n++) {
    for (let g = 0; g < ng; g++) {
      const off = n * K + g * G;
      const { scale, zero } = groupParams(W, off, G, grid, clip ? clip[n * ng + g] : 1);
      scales[n * ng + g] = scale;
      zeros[n * ng + g] = zero;
      for (let i = 0; i < G; i++) { // quantValue, with roundHalfUp for Math.round
        const v = roundHalfUp(W[off + i] / scale) + zero;
        q[off + i] = v < 0 ? 0 : v > maxq ? maxq : v;
      }
    }
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
