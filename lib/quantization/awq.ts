/**
 * AWQ's activation-aware scale search (Lin et al. 2023) on the CPU: one task per weight group,
 * candidate exponent and chunk of scored weight rows.
 */
import type { InputSample, IntGrid } from "./algorithms.ts";
import type { AwqJob } from "./calib_kernels.ts";
import { f64, serialRunner, sharedCopy, type TaskRunner } from "./tasks.ts";

/** AWQ's candidate scales: s_k = mean|x_k|^α for α = i/numGrid, normalized by √(max·min); [numGrid, K]. */
function awqCandidates(absMean: Float64Array, numGrid: number, out: Float64Array): void {
  const K = absMean.length;
  for (let i = 0; i < numGrid; i++) {
    const alpha = i / numGrid, s = out.subarray(i * K, (i + 1) * K);
    let mx = 0, mn = Infinity;
    for (let k = 0; k < K; k++) {
      s[k] = Math.max(absMean[k], 1e-4) ** alpha;
      mx = Math.max(mx, s[k]);
      mn = Math.min(mn, s[k]);
    }
    const norm = Math.sqrt(mx * mn);
    for (let k = 0; k < K; k++) s[k] /= norm;
  }
}

/** Weight rows per task of the search; each candidate's error is the sum of its chunks' in order. */
export const AWQ_CHUNK_ROWS = 512;

/** One scale search: W [N, K] (in shared memory for a multi-thread runner) and its input's statistics. */
export interface AwqSearch {
  readonly W: Float64Array;
  readonly N: number;
  readonly K: number;
  readonly grid: IntGrid;
  readonly x: InputSample;
}

/**
 * AWQ's scale search for several weight groups at once (tasks: group × candidate α × chunk of
 * {@link AWQ_CHUNK_ROWS} scored rows, whatever the thread count):
 * s_k = mean|x_k|^α (normalized), α = 0, 1/numGrid, …; picks per group the α whose fake-quantized
 * W·diag(s) / s has the least output error Σ_t Σ_n (Σ_k x[t,k] Δ[n,k])² on the sample rows (the
 * first on ties). α = 0 (s = 1) is in the grid, so the result is never worse than RTN on the
 * calibration sample. The error is scored on at most `maxScoredRows` output rows (evenly spaced).
 * Returns each group's s [K] (fold 1/s into whatever produces the input).
 */
export function awqSearchScales(searches: readonly AwqSearch[], numGrid = 20, maxScoredRows = Infinity, runner: TaskRunner = serialRunner): Float64Array[] {
  const jobs: AwqJob[] = searches.map(({ W, N, K, grid, x }) => {
    const stride = Math.max(1, Math.ceil(N / maxScoredRows));
    const cands = f64(numGrid * K, runner);
    awqCandidates(x.absMean, numGrid, cands);
    const X = runner.threads > 1 && !(x.rows.buffer instanceof SharedArrayBuffer) ? sharedCopy(x.rows) : x.rows;
    return { W, N, K, grid, X, T: x.numRows, stride, R: Math.ceil(N / stride), cands };
  });
  // Task layout: job j's tasks start at starts[j]; task starts[j] + c·chunks + h scores candidate c on chunk h.
  const chunks = jobs.map((job) => Math.ceil(job.R / AWQ_CHUNK_ROWS)), starts: number[] = [];
  let total = 0;
  for (const n of chunks) {
    starts.push(total);
    total += numGrid * n;
  }
  const errs = f64(total, runner);
  runner.run({ kind: "awq", jobs, numGrid, chunkRows: AWQ_CHUNK_ROWS, starts, errs }, total);
  return jobs.map((job, j) => {
    let best = 0, bestErr = Infinity;
    for (let c = 0; c < numGrid; c++) {
      let err = 0;
      for (let h = 0; h < chunks[j]; h++) err += errs[starts[j] + c * chunks[j] + h];
      if (err < bestErr) [best, bestErr] = [c, err];
    }
    return job.cands.slice(best * job.K, (best + 1) * job.K);
  });
}

/** {@link awqSearchScales} for one weight matrix. */
export function awqSearchScale(W: Float64Array, N: number, K: number, grid: IntGrid, x: InputSample, numGrid = 20, maxScoredRows = Infinity): Float64Array {
  return awqSearchScales([{ W, N, K, grid, x }], numGrid, maxScoredRows)[0];
}
