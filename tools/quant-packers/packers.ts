/**
 * Reference packers for the public pre-quantized checkpoint layouts, written from the formats'
 * descriptions (AutoAWQ `WQLinear_GEMM.from_linear`, AutoGPTQ `QuantLinear.pack` of the cuda-old /
 * exllama layout) as plain loops, independently of llmrt's loader. Tests pack known integers with
 * these and check that llmrt's dequantization gives back exactly (q − z) · s.
 *
 * Inputs are in the PyTorch `nn.Linear` orientation: q [N out][K in] integers, z [N][K/G] zero
 * points, s [N][K/G] scales (float16-representable).
 */

/** AutoAWQ's interleave: the i-th nibble of a word holds output column 8c + AWQ_PACK_ORDER[i]. */
export const AWQ_PACK_ORDER = [0, 2, 4, 6, 1, 3, 5, 7];

/** A matrix as rows of numbers. */
export type Mat = number[][];

const transpose = (m: Mat): Mat => m[0].map((_, j) => m.map((row) => row[j]));

/** Packs int32 words of a matrix [R][C] (each value < 2^bits) along its columns: word (r, c) holds columns c·per + i (i-th slot via `order`). */
function packColumns(m: Mat, bits: number, order: readonly number[]): Int32Array {
  const per = 32 / bits, R = m.length, C = m[0].length / per;
  const out = new Int32Array(R * C);
  for (let r = 0; r < R; r++) {
    for (let c = 0; c < C; c++) {
      let word = 0;
      for (let i = 0; i < per; i++) word |= m[r][c * per + order[i]] << (bits * i);
      out[r * C + c] = word;
    }
  }
  return out;
}

/**
 * AutoAWQ GEMM (4-bit): intweight = qᵀ [K][N]; qweight[k][c] = Σ_i intweight[k][8c + ORDER[i]] << 4i;
 * zeros zᵀ [K/G][N] packed the same way into qzeros; scales sᵀ [K/G][N] as float16.
 */
export function packAwqGemm(q: Mat, z: Mat, s: Mat): { qweight: Int32Array; qzeros: Int32Array; scales: Float32Array; shapes: Record<string, number[]> } {
  const N = q.length, K = q[0].length, ng = z[0].length;
  return {
    qweight: packColumns(transpose(q), 4, AWQ_PACK_ORDER),
    qzeros: packColumns(transpose(z), 4, AWQ_PACK_ORDER),
    scales: Float32Array.from(transpose(s).flat()),
    shapes: { qweight: [K, N / 8], qzeros: [ng, N / 8], scales: [ng, N] },
  };
}

/**
 * AutoGPTQ (v1, desc_act false): intweight = qᵀ [K][N]; qweight row r = Σ_j intweight[r·per + j] << bits·j
 * (packed along K); qzeros [K/G][N/per] = (zᵀ − 1) packed along N (the v1 off-by-one); scales sᵀ;
 * g_idx[k] = k / G.
 */
export function packGptq(
  q: Mat,
  z: Mat,
  s: Mat,
  bits: 4 | 8,
): { qweight: Int32Array; qzeros: Int32Array; scales: Float32Array; gIdx: Int32Array; shapes: Record<string, number[]> } {
  const N = q.length, K = q[0].length, ng = z[0].length, per = 32 / bits, G = K / ng;
  const intweight = transpose(q);
  const qweight = new Int32Array((K / per) * N);
  for (let row = 0, i = 0; row < K / per; row++, i += per) {
    for (let n = 0; n < N; n++) {
      let word = 0;
      for (let j = i; j < i + per; j++) word |= intweight[j][n] << (bits * (j - i));
      qweight[row * N + n] = word;
    }
  }
  const zerosMinusOne = transpose(z).map((r) => r.map((v) => (v - 1) & ((1 << bits) - 1)));
  const identity = Array.from({ length: per }, (_, i) => i);
  return {
    qweight,
    qzeros: packColumns(zerosMinusOne, bits, identity),
    scales: Float32Array.from(transpose(s).flat()),
    gIdx: Int32Array.from({ length: K }, (_, k) => Math.floor(k / G)),
    shapes: { qweight: [K / per, N], qzeros: [ng, N / per], scales: [ng, N], g_idx: [K] },
  };
}

/** Round-to-nearest of one float matrix W [N][K] (plain loops): the integers, zero points and float16 scales a packer stores. */
export function roundToNearest(W: Mat, bits: 4 | 8, groupSize: number, sym: boolean, toF16: (x: number) => number): { q: Mat; z: Mat; s: Mat } {
  const maxq = 2 ** bits - 1, N = W.length, K = W[0].length, ng = K / groupSize;
  const q: Mat = [], z: Mat = [], s: Mat = [];
  for (let n = 0; n < N; n++) {
    q.push([]);
    z.push([]);
    s.push([]);
    for (let g = 0; g < ng; g++) {
      const part = W[n].slice(g * groupSize, (g + 1) * groupSize);
      const lo = Math.min(0, ...part), hi = Math.max(0, ...part);
      let scale: number, zero: number;
      if (sym) {
        scale = Math.max(toF16(Math.max(-lo, hi) / (2 ** (bits - 1) - 1)), 2 ** -20);
        zero = 2 ** (bits - 1);
      } else {
        scale = Math.max(toF16((hi - lo) / maxq), 2 ** -20);
        zero = Math.min(maxq, Math.max(1, Math.round(-lo / scale))); // ≥ 1: GPTQ v1 cannot store 0
      }
      s[n].push(scale);
      z[n].push(zero);
      for (const w of part) q[n].push(Math.min(maxq, Math.max(0, Math.round(w / scale) + zero)));
    }
  }
  return { q, z, s };
}
