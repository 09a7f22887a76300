/**
 * The skinny tensor-core GEMM (kernels/skinny_gemm.cu) for decode steps of 9–64 sequences (issue 16 item 3):
 * which linears it takes, its split-K geometry, its launch and the scratch the session allocates for it.
 * Pure data and arithmetic (no FFI), like the rest of the launch plan.
 */
import type { Op } from "../../ir/network.ts";
import type { EnginePlan } from "../../ir/plan.ts";
import type { KernelLaunch } from "./launch_types.ts";

/** Most rows the skinny GEMM takes (its instantiations: 16, 32, 64 rows). */
export const SKINNY_GEMM_MAX_ROWS = 64;

type Linear = Extract<Op, { type: "linear" }>;

/** Whether a linear can run on the skinny GEMM: a bf16 weight (no packed format), no LoRA, inFeatures % 64 == 0. */
export function skinnyGemmFits(op: Linear): boolean {
  return !op.weightFormat && !op.lora && op.inFeatures % 64 === 0;
}

/**
 * Split-K of an n × k linear (mode 2: gate_up, 32 gate columns a block): none when the column tiles fill the
 * SMs, else enough splits for ~2 blocks per SM, each at least 256 of k (a multiple of 64).
 */
export function skinnyGemmSplit(n: number, k: number, mode: number, smCount: number): { splits: number; kSplit: number } {
  const tiles = mode === 2 ? Math.ceil(n / 2 / 32) : Math.ceil(n / 64);
  if (tiles >= smCount) return { splits: 1, kSplit: k };
  const s = Math.min(Math.ceil((2 * smCount) / tiles), Math.max(1, Math.floor(k / 256)));
  const kSplit = Math.ceil(Math.ceil(k / s) / 64) * 64;
  return { splits: Math.ceil(k / kSplit), kSplit };
}

/** Where the skinny GEMM's split-K partials and tile counters live (LaunchEnv.skinnyGemm). */
export interface SkinnyGemmEnv {
  /** f32 scratch of skinnyGemmScratch().wsBytes. */
  readonly ws: bigint;
  /** int32 [skinnyGemmScratch().counters], zero (each launch leaves them zero). */
  readonly counters: bigint;
  readonly smCount: number;
}

/** Scratch the skinny GEMM needs for a plan's linears at up to SKINNY_GEMM_MAX_ROWS rows (any mode). */
export function skinnyGemmScratch(plan: EnginePlan, smCount: number): { wsBytes: number; counters: number } {
  let wsBytes = 0, counters = 0;
  for (const op of plan.ops) {
    if (op.type !== "linear" || !skinnyGemmFits(op)) continue;
    for (const mode of [0, 2]) {
      const { splits } = skinnyGemmSplit(op.outFeatures, op.inFeatures, mode, smCount);
      if (splits > 1) wsBytes = Math.max(wsBytes, splits * SKINNY_GEMM_MAX_ROWS * op.outFeatures * 4);
    }
    counters = Math.max(counters, Math.ceil(op.outFeatures / 64));
  }
  return { wsBytes, counters };
}

/**
 * The launch of `rows` (9–64) rows of `op`: y = epilogue(x Wᵀ + b) with gemv_fused's modes (0 bf16, 1 residual
 * add into y, 2 SiLU·mul of the gate_up halves, 3 f32 logits).
 */
export function skinnyGemmLaunch(
  opIndex: number,
  op: Linear,
  rows: number,
  mode: number,
  a: { readonly x: bigint; readonly w: bigint; readonly bias: bigint; readonly y: bigint },
  env: SkinnyGemmEnv,
): KernelLaunch {
  const M = rows <= 16 ? 16 : rows <= 32 ? 32 : 64;
  const n = op.outFeatures, k = op.inFeatures;
  const { splits, kSplit } = skinnyGemmSplit(n, k, mode, env.smCount);
  return {
    kind: "kernel",
    op: opIndex,
    kernel: `skinny_gemm_bf16_m${M}`,
    grid: [mode === 2 ? Math.ceil(n / 2 / 32) : Math.ceil(n / 64), splits, 1],
    block: 128,
    args: [a.x, a.w, a.bias, a.y, rows, n, k, mode, env.ws, env.counters, kSplit],
  };
}
