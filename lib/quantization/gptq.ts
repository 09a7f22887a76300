/**
 * GPTQ (Frantar et al. 2022) on the CPU: the damped Hessian's inverse factor (blocked, its row and
 * column blocks as tasks) and the quantization of weight row ranges as tasks.
 */
import { Accumulator, type IntGrid } from "./algorithms.ts";
import { CHOL_BLOCK, cholDiagBlock } from "./linalg.ts";
import type { QuantizedTensor } from "./packed.ts";
import { f64, serialRunner, sharedCopy, type TaskRunner } from "./tasks.ts";
import { ValidationError } from "../util/errors.ts";

export interface GptqFactor {
  readonly K: number;
  /** [K, K] upper (row-major) U with (H + damping)⁻¹ = Uᵀ U. */
  readonly U: Float64Array;
  /** Channels never active (H[k, k] = 0): their weights are zeroed. */
  readonly dead: readonly number[];
}

/** Rows per task of the blocked factorization's row-parallel steps. */
const CHOL_ROWS = 32;

/**
 * The damped Hessian's inverse factor U (upper, (H + damping)⁻¹ = Uᵀ U), damping = `dampPercent`
 * × mean diagonal, ×10 per retry while H + damping is not numerically positive definite (up to 6
 * tries). With P the index reversal, P H P = L Lᵀ (blocked Cholesky, lower) gives H = R Rᵀ with R =
 * P L P upper, and U = R⁻¹ = P L⁻¹ P: one factorization and one triangular inverse (K³/3
 * multiply-adds; the row and column blocks run as tasks of `runner`).
 */
export function gptqFactor(hessian: Float64Array, K: number, dampPercent = 0.01, runner: TaskRunner = serialRunner): GptqFactor {
  const dead: number[] = [];
  let meanDiag = 0;
  for (let k = 0; k < K; k++) {
    const d = hessian[k * K + k];
    if (d === 0) dead.push(k); // a channel never active: its weights cannot matter
    meanDiag += (d === 0 ? 1 : d) / K;
  }
  let damp = dampPercent * meanDiag;
  const A = f64(K * K, runner), KK = K * K;
  for (let attempt = 0; attempt < 6; attempt++, damp *= 10) {
    for (let x = 0; x < KK; x++) A[x] = hessian[KK - 1 - x]; // P H P: the flat array reversed
    for (const k of dead) A[(K - 1 - k) * (K + 1)] = 1;
    for (let k = 0; k < K; k++) A[k * K + k] += damp;
    if (!lowerCholesky(A, K, runner)) continue;
    const X = f64(KK, runner);
    runner.run({ kind: "lowerInv", L: A, X, K }, Math.ceil(K / CHOL_BLOCK));
    X.reverse();
    return { K, U: X, dead };
  }
  throw new ValidationError(
    "quantizeGptq: the Hessian is not positive definite even with damping (more or more varied calibration data, or W4A16 / W4A16_AWQ)",
    "calibration",
  );
}

/** Blocked right-looking Cholesky in place (lower triangle of A); false if A is not positive definite. */
function lowerCholesky(A: Float64Array, K: number, runner: TaskRunner): boolean {
  for (let k0 = 0; k0 < K; k0 += CHOL_BLOCK) {
    const k1 = Math.min(K, k0 + CHOL_BLOCK);
    if (!cholDiagBlock(A, K, k0, k1)) return false;
    if (k1 === K) break;
    const n = Math.ceil((K - k1) / CHOL_ROWS);
    runner.run({ kind: "cholPanel", A, K, k0, k1, rows: CHOL_ROWS }, n);
    runner.run({ kind: "cholTrail", A, K, k0, k1, rows: CHOL_ROWS }, n);
  }
  return true;
}

/** GPTQ's block of columns updated eagerly (the paper's lazy batch size), a whole number of groups. */
/**
 * GPTQ (Frantar et al. 2022): quantizes columns left to right; each column's rounding error,
 * scaled by the upper Cholesky factor U of H⁻¹ (H = Σ x xᵀ + damping), is pushed onto the columns
 * not yet quantized. Group scales are fixed when a group's first column is reached (desc_act false,
 * static groups off), from the error-updated weights. Columns go in blocks of 128 (lazy batch
 * updates: inside a block eagerly, on the columns right of it once per block — the same
 * operations in the same order, so the same result); row ranges run as tasks of `runner`.
 * `hessian` is H [K, K] or its {@link gptqFactor} (shared by linears with one input). W is consumed.
 */
export function quantizeGptq(
  W: Float64Array,
  N: number,
  K: number,
  grid: IntGrid,
  hessian: Float64Array | GptqFactor,
  dampPercent = 0.01,
  runner: TaskRunner = serialRunner,
): QuantizedTensor {
  const f = hessian instanceof Float64Array ? gptqFactor(hessian, K, dampPercent, runner) : hessian;
  const shared = runner.threads > 1, dead = f.dead;
  const U = shared && !(f.U.buffer instanceof SharedArrayBuffer) ? sharedCopy(f.U) : f.U;
  const w = shared && !(W.buffer instanceof SharedArrayBuffer) ? sharedCopy(W) : W;
  for (const k of dead) for (let n = 0; n < N; n++) w[n * K + k] = 0;
  const acc = new Accumulator(N, K, grid, shared);
  const rows = Math.max(16, Math.ceil(N / (4 * runner.threads)));
  runner.run({ kind: "gptq", W: w, N, K, grid, U, q: acc.q, scales: acc.scales, zeros: acc.zeros, rows }, Math.ceil(N / rows));
  return acc.finish();
}
