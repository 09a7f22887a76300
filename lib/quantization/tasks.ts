/**
 * Tasks of calibration-based quantization: numbered pieces of one batch of work that any thread can
 * run (the serial runner here, or the worker pool of pool.ts).
 */
import * as CPU from "../backends/cpu/kernels.ts";
import { InternalError } from "../util/errors.ts";
import { type IntGrid, rtnRows } from "./algorithms.ts";
import { awqCandidateError, type AwqJob, gptqRows } from "./calib_kernels.ts";
import { fp8AmaxRows, fp8EncodeRows } from "./fp8.ts";
import { fp8BlockRows } from "./fp8_block.ts";
import { CHOL_BLOCK, cholPanelRows, cholTrailingRows, lowerDots, lowerInverseCols } from "./linalg.ts";

/**
 * Runs numbered tasks of one batch (plain data: numbers and typed arrays, in shared memory where
 * tasks write). {@link serialRunner} runs them in order on this thread; a worker pool (pool.ts)
 * spreads them over threads. Tasks of one batch write disjoint outputs and each output is computed
 * the same way whoever runs it, so results do not depend on the runner.
 */
export interface TaskRunner {
  /** Threads that run tasks (1: this one). */
  readonly threads: number;
  run(batch: AlgoBatch, numTasks: number): void;
}

/** The batches of this module's kernels (see {@link runAlgoTask}). */
export type AlgoBatch =
  | { kind: "gram"; H: Float64Array; xt: Float64Array; T: number; K: number; rows: number }
  | { kind: "cholPanel" | "cholTrail"; A: Float64Array; K: number; k0: number; k1: number; rows: number }
  | { kind: "lowerInv"; L: Float64Array; X: Float64Array; K: number }
  | {
    kind: "gptq";
    W: Float64Array;
    N: number;
    K: number;
    grid: IntGrid;
    U: Float64Array;
    q: Uint8Array;
    scales: Float32Array;
    zeros: Uint8Array;
    rows: number;
  }
  | { kind: "awq"; jobs: readonly AwqJob[]; numGrid: number; chunkRows: number; starts: readonly number[]; errs: Float64Array }
  | { kind: "rtn"; W: Float64Array | Float32Array; N: number; K: number; grid: IntGrid; q: Uint8Array; scales: Float32Array; zeros: Uint8Array; rows: number }
  | { kind: "fp8Amax"; W: Float64Array | Float32Array; K: number; N: number; rows: number; amax: Float64Array }
  | { kind: "fp8Encode"; W: Float64Array | Float32Array; K: number; N: number; rows: number; perChannel: boolean; scales: Float32Array; packed: Uint8Array }
  | { kind: "fp8Block"; W: Float64Array | Float32Array; N: number; K: number; bn: number; bk: number; blockScales: Float32Array; packed: Uint8Array }
  | { kind: "linear"; x: Float32Array; w: Float32Array; bias: Float32Array | null; M: number; N: number; K: number; out: Float32Array; rows: number };

/** Row range [i0, i1) of task t: `rows` rows each over [lo, hi); `fromEnd`: the last range first (the longest rows of a triangle). */
function rowRange(t: number, numTasks: number, lo: number, hi: number, rows: number, fromEnd: boolean): [number, number] {
  const r = fromEnd ? numTasks - 1 - t : t;
  return [lo + r * rows, Math.min(hi, lo + (r + 1) * rows)];
}

const tasks = (n: number, rows: number): number => Math.ceil(n / rows);

/** Runs task `t` of a batch. */
export function runAlgoTask(b: AlgoBatch, t: number): void {
  switch (b.kind) {
    case "gram": {
      const [i0, i1] = rowRange(t, tasks(b.K, b.rows), 0, b.K, b.rows, true);
      lowerDots(b.xt, b.T, 0, b.T, i0, i1, 0, b.H, b.K, 1);
      return;
    }
    case "cholPanel":
    case "cholTrail": {
      const [i0, i1] = rowRange(t, tasks(b.K - b.k1, b.rows), b.k1, b.K, b.rows, b.kind === "cholTrail");
      if (b.kind === "cholPanel") cholPanelRows(b.A, b.K, b.k0, b.k1, i0, i1);
      else cholTrailingRows(b.A, b.K, b.k0, b.k1, i0, i1);
      return;
    }
    case "lowerInv":
      lowerInverseCols(b.L, b.X, b.K, t * CHOL_BLOCK, Math.min(b.K, (t + 1) * CHOL_BLOCK));
      return;
    case "gptq": {
      const [n0, n1] = rowRange(t, tasks(b.N, b.rows), 0, b.N, b.rows, false);
      const ng = b.K / b.grid.groupSize;
      gptqRows(
        b.W.subarray(n0 * b.K, n1 * b.K),
        n1 - n0,
        b.K,
        b.grid,
        b.U,
        b.q.subarray(n0 * b.K, n1 * b.K),
        b.scales.subarray(n0 * ng, n1 * ng),
        b.zeros.subarray(n0 * ng, n1 * ng),
      );
      return;
    }
    case "awq": { // job j, candidate c, scored rows [h·chunkRows, (h + 1)·chunkRows)
      let j = b.jobs.length - 1;
      while (b.starts[j] > t) j--;
      const job = b.jobs[j], chunks = Math.ceil(job.R / b.chunkRows), local = t - b.starts[j];
      const c = Math.floor(local / chunks), h = local % chunks;
      const s = job.cands.subarray(c * job.K, (c + 1) * job.K);
      b.errs[t] = awqCandidateError(job, s, h * b.chunkRows, Math.min(job.R, (h + 1) * b.chunkRows));
      return;
    }
    case "rtn": {
      const [n0, n1] = rowRange(t, tasks(b.N, b.rows), 0, b.N, b.rows, false);
      rtnRows(b.W, b.K, b.grid, n0, n1, b.q, b.scales, b.zeros);
      return;
    }
    case "fp8Amax":
    case "fp8Encode": {
      const [n0, n1] = rowRange(t, tasks(b.N, b.rows), 0, b.N, b.rows, false);
      if (b.kind === "fp8Amax") fp8AmaxRows(b.W, b.K, n0, n1, b.amax);
      else fp8EncodeRows(b.W, b.K, n0, n1, b.perChannel, b.scales, b.packed);
      return;
    }
    case "fp8Block": // block row t
      fp8BlockRows(b.W, b.N, b.K, [b.bn, b.bk], t, b.blockScales, b.packed);
      return;
    case "linear": { // output columns [n0, n1) of x [M, K] · w [N, K]ᵀ (+ bias), each sum as the CPU backend's linear runs it
      const [n0, n1] = rowRange(t, tasks(b.N, b.rows), 0, b.N, b.rows, false), n = n1 - n0;
      const tmp = new Float32Array(b.M * n);
      CPU.linear(b.x, b.w.subarray(n0 * b.K, n1 * b.K), b.bias ? b.bias.subarray(n0, n1) : null, b.M, n, b.K, tmp);
      for (let m = 0; m < b.M; m++) b.out.set(tmp.subarray(m * n, (m + 1) * n), m * b.N + n0);
      return;
    }
    default:
      throw new InternalError(`quantization task kind '${(b as { kind: unknown }).kind}' is unknown`);
  }
}

/** Runs every task here, in order. */
export const serialRunner: TaskRunner = {
  threads: 1,
  run(batch: AlgoBatch, numTasks: number): void {
    for (let t = 0; t < numTasks; t++) runAlgoTask(batch, t);
  },
};

/** Float64Array in shared memory when other threads will write or read it, else ordinary. */
export function f64(n: number, runner: TaskRunner): Float64Array {
  return runner.threads > 1 ? new Float64Array(new SharedArrayBuffer(8 * n)) : new Float64Array(n);
}

/** Weight rows fake-quantized together while AWQ scores a candidate (kept in cache with the sample rows). */
export function sharedCopy(a: Float64Array): Float64Array {
  const c = new Float64Array(new SharedArrayBuffer(8 * a.length));
  c.set(a);
  return c;
}

/**
 * Float32 arrays carved from one shared buffer that is reused (layer after layer): a fresh
 * SharedArrayBuffer costs a page fault and zeroing per page, several times a plain copy.
 */
export class SharedArena {
  #buf = new SharedArrayBuffer(0);
  #used = 0;
  /** Frees every array handed out so far (their memory is reused) and makes room for `floats` more. */
  reset(floats: number): void {
    this.#used = 0;
    if (4 * floats > this.#buf.byteLength) this.#buf = new SharedArrayBuffer(4 * floats);
  }
  /** n float32s, valid until the next reset (a new buffer if the reserved room is used up). */
  f32(n: number): Float32Array {
    if (this.#used + 4 * n > this.#buf.byteLength) {
      this.#buf = new SharedArrayBuffer(4 * n);
      this.#used = 0;
    }
    const a = new Float32Array(this.#buf, this.#used, n);
    this.#used += 4 * n;
    return a;
  }
}
