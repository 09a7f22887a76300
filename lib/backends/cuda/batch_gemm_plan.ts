/**
 * The bf16 GEMM of batched decode steps (issue 16 item 3; kernels/batch_gemm.cu, session option batchGemm): which
 * linears and row counts take it, its grid and cluster split-K count (from the weight's shape only, so a row's
 * outputs are the same bits in steps of any row count it serves), and its dynamic shared memory. Shared with
 * tools/cuda-kernel-check/batch_gemm.py (splits, smem there).
 */
import type { Op } from "../../ir/network.ts";
import { type Launch, type LaunchEnv, NCCL_ALL_REDUCE } from "./launch_types.ts";
import type { LinearStep } from "./step_ctx.ts";

/** Fewest rows the GEMM takes (smaller steps run the GEMV kernels, GEMV_MAX_ROWS). */
export const BATCH_GEMM_MIN_ROWS = 9;
/** Most rows the GEMM takes (one 64-row tile). */
export const BATCH_GEMM_MAX_ROWS = 64;
/** Weight rows per block (batch_gemm.cu BG_BN: 8 warps × 16 rows). */
const BATCH_GEMM_BN = 128;
/** k columns per pipeline stage (BG_KC) and stages (BG_NS). */
const BATCH_GEMM_KC = 64;
const BATCH_GEMM_STAGES = 4;
/** Blocks a launch aims at (an H200's SM count; one block per SM). */
const BATCH_GEMM_TARGET_BLOCKS = 132;
/** Largest cluster (the portable limit): most k splits. */
const BATCH_GEMM_MAX_SPLITS = 8;

const cdiv = (a: number, b: number): number => Math.ceil(a / b);

/** Launch geometry of one batch GEMM. */
export interface BatchGemmGeometry {
  /** batch_gemm_s{splits}_m{16|32|64}. */
  readonly kernel: string;
  /** (ceil(n / 128), splits, 1); clusters (1, splits, 1) are compiled into the kernel. */
  readonly grid: readonly [number, number, number];
  readonly splits: number;
  readonly sharedBytes: number;
}

/**
 * k splits of an [n, k] weight: blocks up to the SM count, at most 8 (a cluster), at least 2 chunks of 64 columns
 * a split. Depends on the weight's shape only (batch invariance).
 *
 * @example
 * ```ts
 * batchGemmSplits(2048, 8192); // 8 (llama-3.2-1b down_proj: 16 column blocks)
 * batchGemmSplits(16384, 2048); // 1 (gate_up: 128 column blocks)
 * ```
 */
export function batchGemmSplits(n: number, k: number): number {
  const blocks = cdiv(n, BATCH_GEMM_BN);
  return Math.max(1, Math.min(BATCH_GEMM_MAX_SPLITS, Math.floor(BATCH_GEMM_TARGET_BLOCKS / blocks), Math.floor(k / BATCH_GEMM_KC / 2)));
}

/**
 * Dynamic shared memory of a row tile of `mt`: the cp.async ring (or the fp32 tile the epilogue parks there) and 1024
 * bytes to start it on a 1024-byte boundary (the wgmma 128-byte swizzle's atom).
 */
export const batchGemmSmem = (mt: number): number =>
  Math.max(BATCH_GEMM_STAGES * (BATCH_GEMM_BN + mt) * BATCH_GEMM_KC * 2, mt * (BATCH_GEMM_BN + 4) * 4) + 1024;

/**
 * The GEMM's geometry for `rows` rows of x against an [n, k] bf16 weight, or null where it does not take them;
 * `silu`: the SiLU·mul epilogue (mode 2: each block BN / 2 gate rows and their up rows, so ceil(n / 2 / 64) blocks).
 */
export function batchGemmGeometry(rows: number, n: number, k: number, silu = false): BatchGemmGeometry | null {
  if (rows < BATCH_GEMM_MIN_ROWS || rows > BATCH_GEMM_MAX_ROWS || k % BATCH_GEMM_KC !== 0 || n < 1 || (silu && n % 2 !== 0)) return null;
  const mt = rows <= 16 ? 16 : rows <= 32 ? 32 : 64;
  const splits = batchGemmSplits(n, k);
  const blocks = silu ? cdiv(n / 2, BATCH_GEMM_BN / 2) : cdiv(n, BATCH_GEMM_BN);
  return { kernel: `batch_gemm_s${splits}_m${mt}`, grid: [blocks, splits, 1], splits, sharedBytes: batchGemmSmem(mt) };
}

/**
 * Whether linear `op` of a step runs on batch_gemm_*: LaunchEnv.batchGemm, a bf16 engine, an unquantized weight
 * without LoRA, 9..64 rows and k a multiple of 64, in a decode step (any step where the session is not batch invariant).
 */
export function batchGemmTakes(env: LaunchEnv, op: Extract<Op, { type: "linear" }>, rows: number, decodeStep: boolean): boolean {
  if (!env.batchGemm || env.elem !== "bf16" || op.weightFormat || op.lora || (env.batchInvariant && !decodeStep)) return false;
  return batchGemmGeometry(rows, op.outFeatures, op.inFeatures) !== null;
}

/**
 * Plans a bf16 linear on batch_gemm_* and returns true where batchGemmTakes, else returns false (cuBLASLt); the
 * lm_head writes the fp32 logits; `silu` (a decode-fusion epilogue of mode 2): silu(gate)·up into its `into`
 * (the silu_mul op is skipped). With LaunchEnv.batchGemmPdl the launch takes programmatic dependent
 * launch after any kernel launch (not after a cuBLASLt GEMM or an NCCL all-reduce, nor first in the step).
 */
export function planBatchGemm(
  l: LinearStep,
  k: (op: number, kernel: string, grid: readonly [number, number, number], block: number, args: (bigint | number)[], sharedBytes?: number) => void,
  out: Launch[],
  epilogue?: { readonly mode: 1 | 2; readonly into: string },
): boolean {
  const { op, i, rows, isLogits, env, decodeStep, buf } = l;
  if (!batchGemmTakes(env, op, rows, decodeStep) || (epilogue && epilogue.mode !== 2)) return false;
  const geo = batchGemmGeometry(rows, op.outFeatures, op.inFeatures, !!epilogue);
  if (!geo) return false;
  k(i, geo.kernel, geo.grid, 256, [
    buf(op.x),
    env.weight(op.weight),
    op.bias ? env.weight(op.bias) : 0n,
    isLogits ? env.logits : buf(epilogue ? epilogue.into : op.out),
    rows,
    op.outFeatures,
    op.inFeatures,
    epilogue ? 2 : isLogits ? 1 : 0,
  ], geo.sharedBytes);
  const prev = out[out.length - 2], me = out[out.length - 1];
  if (env.batchGemmPdl && me?.kind === "kernel" && prev?.kind === "kernel" && prev.kernel !== NCCL_ALL_REDUCE) out[out.length - 1] = { ...me, pdl: true };
  return true;
}
