/**
 * Dense float64 kernels of calibration-based quantization, written for the CPU cache and for
 * splitting across threads: the Gram matrix Σ x xᵀ of activation rows (GPTQ's Hessian), a blocked
 * Cholesky factorization and triangular inverse (GPTQ's H⁻¹ factor), and GPTQ's lazy batch update.
 * Each kernel computes a range of rows or columns; every output value is one sum in a fixed order,
 * so results do not depend on how the ranges are split (nor on how many threads run them).
 */

/**
 * dst[i·K + j] += sign · Σ_p src[i·stride + off + p] · src[j·stride + off + p] for i in [i0, i1),
 * j in [j0, i]: the lower-triangle dot products of row segments, four rows by two columns at a time
 * (each value's sum still runs over p in order).
 */
export function lowerDots(
  src: Float64Array,
  stride: number,
  off: number,
  len: number,
  i0: number,
  i1: number,
  j0: number,
  dst: Float64Array,
  K: number,
  sign: number,
): void {
  let i = i0;
  for (; i + 4 <= i1; i += 4) {
    const r0 = i * stride + off, r1 = r0 + stride, r2 = r1 + stride, r3 = r2 + stride;
    const h0 = i * K, h1 = h0 + K, h2 = h1 + K, h3 = h2 + K;
    let j = j0;
    for (; j + 2 <= i; j += 2) { // columns j, j + 1 < i: under the diagonal of all four rows
      const c0 = j * stride + off, c1 = c0 + stride;
      let a00 = 0, a01 = 0, a10 = 0, a11 = 0, a20 = 0, a21 = 0, a30 = 0, a31 = 0;
      for (let p = 0; p < len; p++) {
        const y0 = src[c0 + p], y1 = src[c1 + p];
        const x0 = src[r0 + p], x1 = src[r1 + p], x2 = src[r2 + p], x3 = src[r3 + p];
        a00 += x0 * y0;
        a01 += x0 * y1;
        a10 += x1 * y0;
        a11 += x1 * y1;
        a20 += x2 * y0;
        a21 += x2 * y1;
        a30 += x3 * y0;
        a31 += x3 * y1;
      }
      dst[h0 + j] += sign * a00;
      dst[h0 + j + 1] += sign * a01;
      dst[h1 + j] += sign * a10;
      dst[h1 + j + 1] += sign * a11;
      dst[h2 + j] += sign * a20;
      dst[h2 + j + 1] += sign * a21;
      dst[h3 + j] += sign * a30;
      dst[h3 + j + 1] += sign * a31;
    }
    for (let ii = i; ii < i + 4; ii++) for (let jj = j; jj <= ii; jj++) dst[ii * K + jj] += sign * dot(src, ii * stride + off, jj * stride + off, len);
  }
  for (; i < i1; i++) for (let j = j0; j <= i; j++) dst[i * K + j] += sign * dot(src, i * stride + off, j * stride + off, len);
}

function dot(a: Float64Array, ao: number, bo: number, n: number): number {
  let s = 0;
  for (let p = 0; p < n; p++) s += a[ao + p] * a[bo + p];
  return s;
}

/** xt [K, T] = x [T, K]ᵀ (float32 rows into float64 columns). */
export function transposeRows(x: Float32Array, T: number, K: number, xt: Float64Array): void {
  for (let t = 0; t < T; t++) {
    const o = t * K;
    for (let k = 0; k < K; k++) xt[k * T + t] = x[o + k];
  }
}

/** Columns per block of the blocked Cholesky factorization and triangular inverse. */
export const CHOL_BLOCK = 64;

/**
 * Cholesky, diagonal block [k0, k1) of a lower factorization in place (A row-major [K, K], lower
 * triangle; earlier blocks' trailing updates applied). False when A is not positive definite.
 */
export function cholDiagBlock(A: Float64Array, K: number, k0: number, k1: number): boolean {
  for (let j = k0; j < k1; j++) {
    const rj = j * K;
    let d = A[rj + j];
    for (let p = k0; p < j; p++) d -= A[rj + p] * A[rj + p];
    if (!(d > 0)) return false;
    d = Math.sqrt(d);
    A[rj + j] = d;
    for (let i = j + 1; i < k1; i++) {
      const ri = i * K;
      let s = A[ri + j];
      for (let p = k0; p < j; p++) s -= A[ri + p] * A[rj + p];
      A[ri + j] = s / d;
    }
  }
  return true;
}

/** Cholesky panel: L[i, k0..k1) for rows i in [i0, i1) below the diagonal block [k0, k1). */
export function cholPanelRows(A: Float64Array, K: number, k0: number, k1: number, i0: number, i1: number): void {
  for (let i = i0; i < i1; i++) {
    const ri = i * K;
    for (let j = k0; j < k1; j++) {
      const rj = j * K;
      let s = A[ri + j];
      for (let p = k0; p < j; p++) s -= A[ri + p] * A[rj + p];
      A[ri + j] = s / A[rj + j];
    }
  }
}

/** Cholesky trailing update of rows [i0, i1) (all ≥ k1): A[i, j] −= Σ_{p∈[k0,k1)} L[i, p] L[j, p] for k1 ≤ j ≤ i. */
export function cholTrailingRows(A: Float64Array, K: number, k0: number, k1: number, i0: number, i1: number): void {
  lowerDots(A, K, k0, k1 - k0, i0, i1, k1, A, K, -1);
}

/**
 * Columns [c0, c1) of X = L⁻¹ (L lower, row-major [K, K]; X zero-initialized, written in its lower
 * triangle): forward substitution X[i, j] = (δ_ij − Σ_{j≤p<i} L[i, p] X[p, j]) / L[i, i].
 */
export function lowerInverseCols(L: Float64Array, X: Float64Array, K: number, c0: number, c1: number): void {
  const nb = c1 - c0, acc = new Float64Array(nb), acc2 = new Float64Array(nb);
  let i = c0;
  for (; i < c1; i++) invRow(L, X, K, c0, c1, i, acc);
  // Below the block two rows at a time, sharing the loads of X; row i + 1 takes p = i last (its sum in order of p).
  for (; i + 2 <= K; i += 2) {
    const ri = i * K, rn = ri + K;
    acc.fill(0);
    acc2.fill(0);
    for (let p = c0; p < c1; p++) {
      const a = L[ri + p], b = L[rn + p], xo = p * K + c0;
      for (let jj = 0; jj <= p - c0; jj++) {
        const x = X[xo + jj];
        acc[jj] += a * x;
        acc2[jj] += b * x;
      }
    }
    let p = c1;
    for (; p + 4 <= i; p += 4) {
      const a0 = L[ri + p], a1 = L[ri + p + 1], a2 = L[ri + p + 2], a3 = L[ri + p + 3];
      const b0 = L[rn + p], b1 = L[rn + p + 1], b2 = L[rn + p + 2], b3 = L[rn + p + 3];
      const x0 = p * K + c0, x1 = x0 + K, x2 = x1 + K, x3 = x2 + K;
      for (let jj = 0; jj < nb; jj++) {
        const y0 = X[x0 + jj], y1 = X[x1 + jj], y2 = X[x2 + jj], y3 = X[x3 + jj];
        let v = acc[jj], w = acc2[jj];
        v += a0 * y0;
        w += b0 * y0;
        v += a1 * y1;
        w += b1 * y1;
        v += a2 * y2;
        w += b2 * y2;
        v += a3 * y3;
        w += b3 * y3;
        acc[jj] = v;
        acc2[jj] = w;
      }
    }
    for (; p < i; p++) {
      const a = L[ri + p], b = L[rn + p], xo = p * K + c0;
      for (let jj = 0; jj < nb; jj++) {
        acc[jj] += a * X[xo + jj];
        acc2[jj] += b * X[xo + jj];
      }
    }
    const d = L[ri + i];
    for (let jj = 0; jj < nb; jj++) X[ri + c0 + jj] = -acc[jj] / d;
    const b = L[rn + i], d2 = L[rn + i + 1];
    for (let jj = 0; jj < nb; jj++) X[rn + c0 + jj] = -(acc2[jj] + b * X[ri + c0 + jj]) / d2;
  }
  if (i < K) invRow(L, X, K, c0, c1, i, acc);
}

/** Row i of {@link lowerInverseCols}, columns [c0, c1). */
function invRow(L: Float64Array, X: Float64Array, K: number, c0: number, c1: number, i: number, acc: Float64Array): void {
  const nb = c1 - c0, ri = i * K;
  acc.fill(0);
  const pTri = Math.min(i, c1);
  for (let p = c0; p < pTri; p++) { // rows of the block's own triangle: columns c0 … p
    const a = L[ri + p], xo = p * K + c0;
    for (let jj = 0; jj <= p - c0; jj++) acc[jj] += a * X[xo + jj];
  }
  let p = c1;
  for (; p + 4 <= i; p += 4) { // four rows of X per pass over acc (each sum still in order of p)
    const a0 = L[ri + p], a1 = L[ri + p + 1], a2 = L[ri + p + 2], a3 = L[ri + p + 3];
    const x0 = p * K + c0, x1 = x0 + K, x2 = x1 + K, x3 = x2 + K;
    for (let jj = 0; jj < nb; jj++) {
      let v = acc[jj];
      v += a0 * X[x0 + jj];
      v += a1 * X[x1 + jj];
      v += a2 * X[x2 + jj];
      v += a3 * X[x3 + jj];
      acc[jj] = v;
    }
  }
  for (; p < i; p++) {
    const a = L[ri + p], xo = p * K + c0;
    for (let jj = 0; jj < nb; jj++) acc[jj] += a * X[xo + jj];
  }
  const d = L[ri + i], last = Math.min(i, c1 - 1);
  for (let j = c0; j <= last; j++) X[ri + j] = ((i === j ? 1 : 0) - acc[j - c0]) / d;
}

/**
 * GPTQ's lazy batch update of the columns right of a block: W[n, j] −= Σ_b E[b, n] · U[i0 + b, j]
 * for j ≥ j0, subtracting the block's columns b in increasing order (the same sequence of
 * operations as updating after every column). W [N, K] row-major, E [B, N] (the block's scaled
 * errors, column b at b·N), U [K, K] upper, row-major. Columns are done in chunks that keep the
 * block's rows of U in cache.
 */
export function lazyBatchUpdate(W: Float64Array, N: number, K: number, E: Float64Array, B: number, U: Float64Array, i0: number, j0: number): void {
  const CHUNK = 256;
  for (let c0 = j0; c0 < K; c0 += CHUNK) {
    const c1 = Math.min(K, c0 + CHUNK);
    for (let n = 0; n < N; n++) {
      const w = n * K;
      let b = 0;
      for (; b + 4 <= B; b += 4) {
        const e0 = E[b * N + n], e1 = E[(b + 1) * N + n], e2 = E[(b + 2) * N + n], e3 = E[(b + 3) * N + n];
        const u0 = (i0 + b) * K, u1 = u0 + K, u2 = u1 + K, u3 = u2 + K;
        for (let j = c0; j < c1; j++) {
          let v = W[w + j];
          v -= e0 * U[u0 + j];
          v -= e1 * U[u1 + j];
          v -= e2 * U[u2 + j];
          v -= e3 * U[u3 + j];
          W[w + j] = v;
        }
      }
      for (; b < B; b++) {
        const e = E[b * N + n], u = (i0 + b) * K;
        for (let j = c0; j < c1; j++) W[w + j] -= e * U[u + j];
      }
    }
  }
}
