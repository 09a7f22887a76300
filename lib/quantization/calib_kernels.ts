/**
 * The per-task kernels of AWQ and GPTQ (what one thread computes): AWQ's output error of one
 * candidate scaling, GPTQ on a range of weight rows with lazy batch updates.
 */
import { groupParams, type IntGrid, quantValue } from "./algorithms.ts";
import { lazyBatchUpdate } from "./linalg.ts";

/** One AWQ search: weights [N, K], sample rows X [T, K], candidate scales [numGrid, K]; rows n·stride (n < R) are scored. */
export interface AwqJob {
  readonly W: Float64Array;
  readonly N: number;
  readonly K: number;
  readonly grid: IntGrid;
  readonly X: Float64Array;
  readonly T: number;
  readonly stride: number;
  readonly R: number;
  readonly cands: Float64Array;
}

const AWQ_ROW_BLOCK = 8;

/**
 * Σ_t Σ_n (Σ_k x[t,k] Δ[n,k])² for Δ = fakequant(W·diag(s))/s − W on scored rows n ∈ [rowBegin,
 * rowEnd): weight rows are fake-quantized a few at a time and scored against every sample row while
 * in cache.
 */
export function awqCandidateError(job: AwqJob, s: Float64Array, rowBegin: number, rowEnd: number): number {
  const { W, K, grid, X, T, stride } = job;
  const G = grid.groupSize, maxq = (1 << grid.bits) - 1;
  const delta = new Float64Array(AWQ_ROW_BLOCK * K), scaled = new Float64Array(K), dots = new Float64Array(AWQ_ROW_BLOCK * T);
  let err = 0;
  for (let r0 = rowBegin; r0 < rowEnd; r0 += AWQ_ROW_BLOCK) {
    const nb = Math.min(AWQ_ROW_BLOCK, rowEnd - r0);
    for (let b = 0; b < nb; b++) {
      const w = (r0 + b) * stride * K, d = b * K;
      for (let k = 0; k < K; k++) scaled[k] = W[w + k] * s[k];
      for (let g = 0; g < K; g += G) {
        const { scale, zero } = groupParams(scaled, g, G, grid);
        for (let k = g; k < g + G; k++) delta[d + k] = ((quantValue(scaled[k], scale, zero, maxq) - zero) * scale) / s[k] - W[w + k];
      }
    }
    rowDots(delta, nb, X, T, K, dots);
    for (let b = 0; b < nb; b++) for (let t = 0; t < T; t++) err += dots[b * T + t] * dots[b * T + t];
  }
  return err;
}

/** An AWQ search's inputs: W [N, K] (f64 in shared memory for a multi-thread runner) and its input's statistics. */
/** dots[b·T + t] = Σ_k X[t, k] D[b, k] (k in order), two D rows by four X rows at a time. */
function rowDots(D: Float64Array, B: number, X: Float64Array, T: number, K: number, dots: Float64Array): void {
  let b = 0;
  for (; b + 2 <= B; b += 2) {
    const d0 = b * K, d1 = d0 + K;
    let t = 0;
    for (; t + 4 <= T; t += 4) {
      const x0 = t * K, x1 = x0 + K, x2 = x1 + K, x3 = x2 + K;
      let a00 = 0, a01 = 0, a02 = 0, a03 = 0, a10 = 0, a11 = 0, a12 = 0, a13 = 0;
      for (let k = 0; k < K; k++) {
        const u = D[d0 + k], v = D[d1 + k];
        const y0 = X[x0 + k], y1 = X[x1 + k], y2 = X[x2 + k], y3 = X[x3 + k];
        a00 += y0 * u;
        a01 += y1 * u;
        a02 += y2 * u;
        a03 += y3 * u;
        a10 += y0 * v;
        a11 += y1 * v;
        a12 += y2 * v;
        a13 += y3 * v;
      }
      dots[b * T + t] = a00;
      dots[b * T + t + 1] = a01;
      dots[b * T + t + 2] = a02;
      dots[b * T + t + 3] = a03;
      dots[(b + 1) * T + t] = a10;
      dots[(b + 1) * T + t + 1] = a11;
      dots[(b + 1) * T + t + 2] = a12;
      dots[(b + 1) * T + t + 3] = a13;
    }
    for (; t < T; t++) {
      dots[b * T + t] = rowDot(X, t * K, D, d0, K);
      dots[(b + 1) * T + t] = rowDot(X, t * K, D, d1, K);
    }
  }
  for (; b < B; b++) for (let t = 0; t < T; t++) dots[b * T + t] = rowDot(X, t * K, D, b * K, K);
}

function rowDot(X: Float64Array, xo: number, D: Float64Array, d: number, K: number): number {
  let s = 0;
  for (let k = 0; k < K; k++) s += X[xo + k] * D[d + k];
  return s;
}

/** What GPTQ needs from a Hessian, computed once per linear input and shared by the linears reading it. */
function gptqBlock(G: number, K: number): number {
  return Math.min(K, G >= 128 ? G : G * Math.floor(128 / G));
}

/**
 * GPTQ on rows W [N, K] (updated in place) with the factor U: quantized values into q [N, K],
 * group scales / zero points into scales / zeros [N, K/G]. Rows are independent (the same result
 * in any row split).
 */
export function gptqRows(W: Float64Array, N: number, K: number, grid: IntGrid, U: Float64Array, q: Uint8Array, scales: Float32Array, zeros: Uint8Array): void {
  const G = grid.groupSize, ng = K / G, maxq = (1 << grid.bits) - 1;
  const B = gptqBlock(G, K);
  const Wt = new Float64Array(B * N), E = new Float64Array(B * N), grp = new Float64Array(G);
  for (let i0 = 0; i0 < K; i0 += B) {
    const nb = Math.min(B, K - i0);
    for (let n = 0; n < N; n++) for (let b = 0; b < nb; b++) Wt[b * N + n] = W[n * K + i0 + b];
    for (let b = 0; b < nb; b++) {
      const i = i0 + b, g = (i / G) | 0, col = b * N;
      if (i % G === 0) {
        for (let n = 0; n < N; n++) {
          for (let c = 0; c < G; c++) grp[c] = Wt[(b + c) * N + n];
          const { scale, zero } = groupParams(grp, 0, G, grid);
          scales[n * ng + g] = scale;
          zeros[n * ng + g] = zero;
        }
      }
      const d = U[i * K + i];
      for (let n = 0; n < N; n++) {
        const w = Wt[col + n], s = scales[n * ng + g], z = zeros[n * ng + g];
        const v = quantValue(w, s, z, maxq);
        q[n * K + i] = v;
        E[col + n] = (w - (v - z) * s) / d;
      }
      for (let b2 = b + 1; b2 < nb; b2++) {
        const u = U[i * K + i0 + b2];
        if (u === 0) continue;
        const c2 = b2 * N;
        for (let n = 0; n < N; n++) Wt[c2 + n] -= E[col + n] * u;
      }
    }
    if (i0 + nb < K) lazyBatchUpdate(W, N, K, E, nb, U, i0, i0 + nb);
  }
}
