/**
 * The tensor-core quantized GEMM of batched decode steps (issue 12 deliverable 4; kernels/quant_gemm.cu):
 * which linears and row counts take it, its grid (fixed per row bucket, so CUDA graphs replay it) and its
 * split-K count, shared with tools/cuda-kernel-check/quant_gemm.py (quantGemmSplits there).
 */
import type { LinearStep } from "./step_ctx.ts";

/** Weight rows per block of a row tile of `mt` (quant_gemm.cu defaults: 8 warps along n × 1 tile of 16, m64 × 2 tiles: 256). */
export const quantGemmBN = (mt: number): number => (mt === 64 ? 256 : 128);
/** Warps of a block along k (quant_gemm.cu QM_NWK). */
const QUANT_GEMM_NWK = 1;
/** Blocks a launch aims at (an H200's SM count; each block holds one SM at launch bounds (256, 1)). */
const QUANT_GEMM_TARGET_BLOCKS = 132;
/**
 * Largest step (rows) the GEMM takes for `bits`-bit weights; larger ones dequantize and run cuBLASLt. H200 (session 8,
 * per layer vs the dequantize path): uint4 3.0× / 1.7× / 1.12× / 0.65× at 16 / 32 / 64 / 128 rows, uint8 2.0× / 1.14× /
 * 0.98× / 0.57×.
 */
export const quantGemmMaxRows = (bits: 4 | 8): number => (bits === 4 ? 64 : 32);

/** Launch geometry of one quantized GEMM. */
export interface QuantGemmGeometry {
  /** quant_gemm_u{4|8}_m{16|32|64}. */
  readonly kernel: string;
  readonly grid: readonly [number, number, number];
  /** grid.z: k splits (> 1: partials in the workspace, then quant_gemm_reduce). */
  readonly splits: number;
}

const cdiv = (a: number, b: number): number => Math.ceil(a / b);

/**
 * The GEMM's geometry for `rows` x rows of a [n, k] uint4/uint8 weight with `group` columns per scale, or null
 * where the kernel does not take the shape (k a whole number of 64-byte superchunks, the group a whole number of a
 * lane's columns, n a multiple of 16) or the row count (up to quantGemmMaxRows).
 */
export function quantGemmGeometry(bits: 4 | 8, rows: number, n: number, k: number, group: number): QuantGemmGeometry | null {
  const E = bits === 4 ? 128 : 64, lane = bits === 4 ? 32 : 16;
  if (rows < 1 || rows > quantGemmMaxRows(bits) || k % E !== 0 || k % group !== 0 || group % lane !== 0 || n % 16 !== 0) return null;
  const mt = rows <= 16 ? 16 : rows <= 32 ? 32 : 64;
  const mTiles = cdiv(rows, mt), nTiles = cdiv(n, quantGemmBN(mt));
  return { kernel: `quant_gemm_u${bits}_m${mt}`, grid: [mTiles, nTiles, quantGemmSplits(rows, n, k, bits)], splits: quantGemmSplits(rows, n, k, bits) };
}

/**
 * k splits: enough blocks for the SMs, at most one per k-warp superchunk, and a workspace [splits, rows, n] f32
 * within the linear's own bf16 [n, k] (so the session's quantScratch, sized for the largest, holds it).
 */
export function quantGemmSplits(rows: number, n: number, k: number, bits: 4 | 8): number {
  const mt = rows <= 16 ? 16 : rows <= 32 ? 32 : 64;
  const blocks = cdiv(rows, mt) * cdiv(n, quantGemmBN(mt));
  const superchunks = k / (bits === 4 ? 128 : 64);
  const s = Math.max(1, cdiv(QUANT_GEMM_TARGET_BLOCKS, blocks));
  return Math.min(s, Math.max(1, Math.floor(superchunks / QUANT_GEMM_NWK)), Math.max(1, Math.floor(k / (2 * rows))));
}

/**
 * Plans a quantized linear on quant_gemm_* (then quant_gemm_reduce when split) and returns true, or returns false
 * (the caller dequantizes and runs cuBLASLt): taken for steps of more than `maxGemvRows` rows up to
 * quantGemmMaxRows with LaunchEnv.quantGemm, in decode steps (or any step of a session that is not batch
 * invariant: the kernel's sums do not follow cuBLASLt's invariant algorithm), never for the fp32 logits.
 */
export function planQuantGemm(
  l: LinearStep,
  k: (op: number, kernel: string, grid: readonly [number, number, number], block: number, args: (bigint | number)[]) => void,
  maxGemvRows: number,
): boolean {
  const { op, i, rows, isLogits, env, decodeStep, buf } = l;
  const f = op.weightFormat;
  if (!env.quantGemm || isLogits || !f || op.lora || rows <= maxGemvRows || (env.batchInvariant && !decodeStep)) return false;
  if (f.format !== "uint4" && f.format !== "uint8") return false;
  const N = op.outFeatures, K = op.inFeatures, group = f.groupSize || K;
  const geo = quantGemmGeometry(f.format === "uint4" ? 4 : 8, rows, N, K, group);
  if (!geo || (geo.splits > 1 && !env.quantScratch)) return false;
  const bias = op.bias ? env.weight(op.bias) : 0n, out = buf(op.out);
  k(i, geo.kernel, geo.grid, 256, [
    buf(op.x),
    env.weight(op.weight),
    env.weight(f.scales),
    f.zeros ? env.weight(f.zeros) : 0n,
    bias,
    out,
    geo.splits > 1 ? env.quantScratch! : 0n,
    rows,
    N,
    K,
    group,
  ]);
  if (geo.splits > 1) k(i, "quant_gemm_reduce", [cdiv((rows * N) / 4, 256), 1, 1], 256, [env.quantScratch!, bias, out, rows, N, geo.splits]);
  return true;
}
