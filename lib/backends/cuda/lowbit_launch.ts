/**
 * The launches of a linear whose weights and activations are quantized below FP8 (issue 14 item 3):
 * "int8" (W8A8_SQ_PER_CHANNEL), "int4" (W4A8_AWQ), "nvfp4" (NVFP4); kernels in kernels/lowbit.cu, the
 * arithmetic the CPU's lowbitLinear (lib/backends/cpu/lowbit_linear.ts) emulates bit-exactly. Every step
 * first quantizes the activation rows as the CPU does into the lowbit scratch (the quantized values as
 * bf16, exact; SmoothQuant's per-token scales after them, see {@link lowbitScratchLayout}), then:
 * - decode-sized steps (≤ GEMV_MAX_ROWS rows, not the fp32 logits): lowbit_gemv_* (weights decoded in registers);
 * - else: lowbit_dequant_* writes the weights into the bf16 quant scratch (int8 q and NVFP4 e2m1·e4m3 exactly,
 *   W4A8's q·s rounded to bf16) and cuBLASLt multiplies, with alpha = the static scales (W4A8 a, NVFP4 a·g)
 *   and its bias epilogue; SmoothQuant's unscaled integer sums then get fp8_gemv.cu's fp8_scale_* (per-token
 *   and per-channel scales, bias) in place.
 * The H200 has no FP4 tensor cores: NVFP4 is a storage format here. With `LaunchEnv.nvfp4Mma` (CudaFlags.nvfp4Mma)
 * NVFP4 linears whose shape fits the tiles (nvfp4_tiles.ts; the session uploads their weights tiled) take
 * kernels/nvfp4_mma.cu instead: nvfp4_act_mma (int8 doubled codes and f32 block scales) + nvfp4_gemv_mma (the int8
 * tensor cores) at decode, nvfp4_dequant_mma of the tiled layout before cuBLASLt.
 */
import type { LinearStep } from "./step_ctx.ts";
import type { EnginePlan } from "../../ir/plan.ts";
import type { Op } from "../../ir/network.ts";
import { InternalError } from "../../util/errors.ts";
import { GEMV_MAX_ROWS, type Launch, type LaunchEnv } from "./launch_types.ts";
import { readerCounts } from "./op_reads.ts";
import { nvfp4TilesFit } from "./nvfp4_tiles.ts";

const cdiv = (a: number, b: number): number => Math.ceil(a / b);
const align256 = (n: number): number => Math.ceil(n / 256) * 256;

/** Whether a linear stores int8 (SmoothQuant), int4 (W4A8_AWQ) or NVFP4 weights. */
export const isLowbitLinear = (op: Op): boolean =>
  op.type === "linear" && (op.weightFormat?.format === "int8" || op.weightFormat?.format === "int4" || op.weightFormat?.format === "nvfp4");

/**
 * The lowbit scratch of an engine, or null without such linears: bf16 quantized activation rows
 * [rows, maxK] at offset 0 (nvfp4_act_mma: int8 codes and their negations, the same bytes), then from `scalesOffset`
 * f32 per-token scales [rows] (SmoothQuant) or nvfp4_act_mma's block scales [rows, maxK / 16] (GEMV steps: rows <= 8).
 */
export function lowbitScratchLayout(plan: EnginePlan): { readonly bytes: number; readonly scalesOffset: number } | null {
  let maxK = 0;
  for (const op of plan.ops) if (op.type === "linear" && isLowbitLinear(op)) maxK = Math.max(maxK, op.inFeatures);
  if (maxK === 0) return null;
  const rows = Math.max(plan.maxTokens, plan.maxSeqs);
  const scalesOffset = align256(rows * maxK * 2);
  return { bytes: scalesOffset + align256(Math.max(rows, GEMV_MAX_ROWS * Math.ceil(maxK / 16)) * 4), scalesOffset };
}

/** Whether lowbit_gemv_* takes this linear: whole 16-byte weight chunks per lane (and whole int4 groups per chunk). */
export function lowbitGemvShapeOk(op: Extract<Op, { type: "linear" }>): boolean {
  const f = op.weightFormat!, K = op.inFeatures;
  if (f.format === "int8") return K % 16 === 0;
  if (f.format === "int4") return K % 32 === 0 && f.groupSize % 32 === 0;
  return K % 32 === 0;
}

/** kernels/nvfp4_mma.cu's NV_U: k tiles a lane of nvfp4_gemv_mma keeps in flight. */
export const NVFP4_MMA_U = 4;
/** Widest row nvfp4_rmsnorm_act_fast_bf16 takes (kernels/nvfp4_mma.cu NV_FAST_H: its shared-memory copy of the row). */
export const NVFP4_NORM_FAST_MAX = 8192;
/** Resident blocks per SM of nvfp4_gemv_mma's persistent grid (256 threads, <= 128 registers). */
export const NVFP4_GEMV_BLOCKS_PER_SM = 2;
/**
 * nvfp4_gemv_k32x's (kernels/nvfp4_mma.cu NV_K32_MINB 4: <= 64 registers, 4 blocks of 256 threads an SM; its
 * cp.async ring NV_K32X_RING 6, 37 KB of static shared memory a block).
 * H200 session 11 r4, llama-3.1-8b decoder linears a token: 2.008 ms (46.1% of copy) vs nvfp4_gemv_mma's 2.149 (qkv 7.9
 * vs 11.0 µs, gate_up 28.8 vs 32.1, o 6.8 vs 6.9, down 19.3 vs 17.2); r3: 2.148 at NV_U 4 / 3 per SM, 2.431 at 2 per SM.
 */
export const NVFP4_K32_BLOCKS_PER_SM = 4;

/**
 * nvfp4_gemv_mma's grid for [n, k]: one block per 16-row tile, or at most `maxBlocks` (LaunchEnv.nvfp4GemvBlocks) that
 * loop over the row tiles (a persistent grid: each warp's weight loads run on into its next row tile) where every
 * warp has whole rounds of NV_U k tiles, (k / 64) % (8 · NV_U) == 0. The same bits either way.
 */
export function nvfp4GemvGrid(n: number, k: number, maxBlocks?: number): number {
  return maxBlocks && (k / 64) % (8 * NVFP4_MMA_U) === 0 ? Math.max(1, Math.min(n / 16, maxBlocks)) : n / 16;
}

/**
 * nvfp4_gemv_k32x's grid for `tiles` 16-row tiles: at most `maxBlocks`, a grid smaller than `tiles` only where
 * nvfp4GemvGrid allows one. The same bits for any grid. (Fewer blocks, each the same number of tiles, measured slower:
 * H200 session 12 r2, llama-3.1-8b gate_up 1792 tiles on 448 blocks of 4 instead of 528 of 3 or 4: 33.4 vs 29.2 µs a
 * GEMV — resident warps count more than the tail.)
 */
export function nvfp4K32Grid(tiles: number, k: number, maxBlocks?: number): number {
  if (!maxBlocks || (k / 64) % (8 * NVFP4_MMA_U) !== 0) return tiles;
  return Math.max(1, Math.min(tiles, maxBlocks));
}

/** Whether a lowbit linear of `rows` rows runs the decode GEMV (else: dequantize + cuBLASLt). */
function lowbitGemvStep(op: Extract<Op, { type: "linear" }>, rows: number, env: LaunchEnv, decodeStep: boolean, isLogits: boolean): boolean {
  return !isLogits && rows <= GEMV_MAX_ROWS && lowbitGemvShapeOk(op) && (!env.batchInvariant || decodeStep);
}

/** Whether an NVFP4 linear runs kernels/nvfp4_mma.cu (its weights uploaded tiled: CudaFlags.nvfp4Mma). */
export const nvfp4MmaLinear = (op: Op, env: LaunchEnv): op is Extract<Op, { type: "linear" }> =>
  op.type === "linear" && op.weightFormat?.format === "nvfp4" && !!env.nvfp4Mma && nvfp4TilesFit(op.outFeatures, op.inFeatures);

/**
 * With `LaunchEnv.nvfp4Mma`: the rmsnorm / add_rmsnorm / silu_mul ops (index → the NVFP4 linear right after it) whose
 * output only that linear reads, when the linear runs nvfp4_gemv_mma and no decode fusion touches either: the producer
 * (nvfp4_rmsnorm_act_bf16 / nvfp4_silu_mul_act_bf16) writes the linear's int8 codes and block scales into the lowbit
 * scratch, the bits nvfp4_act_mma_bf16 writes from its bf16 output, and the linear skips that launch; the bf16
 * output is not written at all.
 */
export function nvfp4ActProducers(
  plan: EnginePlan,
  env: LaunchEnv,
  rowsOf: (name: string) => number,
  decodeStep: boolean,
  touched: (op: number) => boolean,
): Map<number, number> {
  const out = new Map<number, number>();
  if (!env.nvfp4Mma || env.lora || env.elem !== "bf16") return out;
  const readers = readerCounts(plan.ops);
  if (!readers) return out;
  plan.ops.forEach((op, j) => {
    if (op.type !== "rmsnorm" && op.type !== "add_rmsnorm" && op.type !== "silu_mul") return;
    const lin = plan.ops[j + 1];
    if (!lin || !nvfp4MmaLinear(lin, env) || lin.lora || lin.x !== op.out || readers.get(op.out) !== 1) return;
    const rows = rowsOf(lin.x);
    if (!(rows > 0) || !lowbitGemvStep(lin, rows, env, decodeStep, lin.out === plan.attributes.logits)) return;
    if (touched(j) || touched(j + 1)) return;
    out.set(j, j + 1);
  });
  return out;
}

/** The lowbit scratch's int8 codes and block scales, and the static activation scale, of NVFP4 linear `op` (nvfp4ActProducers). */
export function nvfp4ActArgs(op: Extract<Op, { type: "linear" }>, env: LaunchEnv): [bigint, bigint, number] {
  const layout = lowbitScratchLayout(env.plan);
  const a = op.weightFormat?.activationScale;
  if (!env.lowbitScratch || !layout || !(a !== undefined && a > 0)) {
    throw new InternalError(`launch plan: NVFP4 linear '${op.weight}' has no lowbit scratch / activation scale`);
  }
  return [env.lowbitScratch, env.lowbitScratch + BigInt(layout.scalesOffset), a];
}

/**
 * Launches of one lowbit linear (`rows` activation rows; `decodeStep`: every sequence brings one token). `preQuantized`:
 * the producer wrote the activation codes already (nvfp4ActProducers).
 */
export function planLowbitLinear(
  l: LinearStep,
  out: Launch[],
  preQuantized = false,
): void {
  const { op, i, rows, isLogits, env, decodeStep, buf } = l;
  const f = op.weightFormat!;
  if (env.elem !== "bf16") throw new InternalError(`launch plan: ${f.format} linears need a bfloat16 engine`);
  const layout = lowbitScratchLayout(env.plan);
  if (!env.lowbitScratch || !layout) throw new InternalError(`launch plan: a ${f.format} linear needs LaunchEnv.lowbitScratch`);
  const N = op.outFeatures, K = op.inFeatures, fmt = f.format as "int8" | "int4" | "nvfp4";
  const xq = env.lowbitScratch, rowScale = env.lowbitScratch + BigInt(layout.scalesOffset);
  const W = env.weight(op.weight), scales = env.weight(f.scales), bias = op.bias ? env.weight(op.bias) : 0n;
  const kernel = (name: string, grid: readonly [number, number, number], args: (bigint | number)[]): void => {
    out.push({ kind: "kernel", op: i, kernel: name, grid, block: 256, args });
  };
  const staticScale = (what: string, v: number | undefined): number => {
    if (!(v !== undefined && v > 0 && Number.isFinite(v))) throw new InternalError(`launch plan: ${fmt} linear '${op.weight}' has no ${what}`);
    return v;
  };
  const group = fmt === "int4" ? f.groupSize : fmt === "nvfp4" ? 16 : K;
  let alpha = 1;
  const gemvStep = lowbitGemvStep(op, rows, env, decodeStep, isLogits);
  const mma = nvfp4MmaLinear(op, env); // weights in the tiled layout (uploaded so)
  if (preQuantized && !(mma && gemvStep)) throw new InternalError(`launch plan: '${op.weight}' has pre-quantized rows but no nvfp4_gemv_mma step`);
  // One row: two blocks an mma (nvfp4GemvK32; the bits of nvfp4_gemv_mma, so batch-invariant with the m8 kernel), an
  // NVFP4 lm_head's fp32 logits included (nvfp4_gemv_k32x_logits; without the flag the logits take the GEMM path). Not the
  // logits of a batch-invariant session: 2..8 logits rows take the GEMM path (no m8 logits GEMV), whose sums round otherwise.
  const k32 = mma && !!env.nvfp4GemvK32 && rows === 1 && lowbitGemvShapeOk(op);
  if (mma && (gemvStep || (k32 && isLogits && !env.batchInvariant))) {
    const a = staticScale("activation scale", f.activationScale);
    alpha = Math.fround(a * staticScale("global scale", f.globalScale));
    // Row tiles for at most one block per SM: 16 warps a block (more loads in flight on each SM).
    const w16 = !!env.nvfp4GemvBlocks && N / 16 <= env.nvfp4GemvBlocks / NVFP4_GEMV_BLOCKS_PER_SM && !isLogits;
    const y = isLogits ? env.logits : buf(op.out);
    // k32: nvfp4_gemv_k32x* (session 14's lean loop of the k32 GEMV) on a persistent grid of NVFP4_K32_BLOCKS_PER_SM
    // blocks an SM (fewer registers than nvfp4_gemv_mma; the persistence test is NVFP4_MMA_U's, (k / 64) % 32 == 0).
    const k32Blocks = env.nvfp4GemvBlocks ? (env.nvfp4GemvBlocks / NVFP4_GEMV_BLOCKS_PER_SM) * NVFP4_K32_BLOCKS_PER_SM : undefined;
    // nvfp4ActLaunch: such a row quantized once by nvfp4_act_mma (below), not by every block of the GEMV; the same bits.
    if (k32 && !preQuantized && !env.nvfp4ActLaunch) {
      // nvfp4_gemv_k32x_act: each block quantizes the row itself (shared memory), no nvfp4_act_mma launch; the same bits.
      out.push({
        kind: "kernel",
        op: i,
        kernel: `nvfp4_gemv_k32x_act${isLogits ? "_logits" : w16 ? "_w16" : ""}_bf16_m1`,
        grid: [w16 ? N / 16 : nvfp4K32Grid(N / 16, K, k32Blocks), 1, 1],
        block: w16 ? 512 : 256,
        args: [buf(op.x), W, scales, bias, y, N, K, a, alpha],
        sharedBytes: 2 * K + K / 4,
      });
      return;
    }
    if (!preQuantized) kernel("nvfp4_act_mma_bf16", [cdiv(K, 1024), rows, 1], [buf(op.x), xq, rowScale, rows, K, a]);
    out.push({
      kind: "kernel",
      op: i,
      kernel: isLogits ? "nvfp4_gemv_k32x_logits_bf16_m1" : `nvfp4_gemv_${k32 ? "k32x" : "mma"}${w16 ? "_w16" : ""}_bf16_m${rows <= 1 ? 1 : 8}`,
      grid: [
        w16 ? N / 16 : k32 ? nvfp4K32Grid(N / 16, K, k32Blocks) : nvfp4GemvGrid(N, K, env.nvfp4GemvBlocks),
        1,
        1,
      ],
      block: w16 ? 512 : 256,
      args: [
        xq,
        W,
        scales,
        rowScale,
        bias,
        y,
        rows,
        N,
        K,
        0,
        alpha,
      ],
    });
    return;
  }
  // 1. The activation rows, quantized as the CPU does (for the GEMV in its segment order, swz 1).
  const swz = gemvStep ? 1 : 0;
  if (fmt === "int8") {
    kernel("lowbit_act_int8_bf16", [rows, 1, 1], [buf(op.x), f.preQuantScale ? env.weight(f.preQuantScale) : 0n, xq, rowScale, rows, K, swz]);
  } else if (fmt === "int4") {
    alpha = staticScale("activation scale", f.activationScale);
    kernel("lowbit_act_e4m3_bf16", [rows, 1, 1], [buf(op.x), xq, rows, K, alpha, swz]);
  } else {
    const a = staticScale("activation scale", f.activationScale);
    alpha = Math.fround(a * staticScale("global scale", f.globalScale));
    kernel("lowbit_act_nvfp4_bf16", [rows, 1, 1], [buf(op.x), xq, rows, K, a, swz]);
  }
  // 2a. Decode-sized steps: the GEMV.
  if (gemvStep) {
    const M = rows <= 1 ? 1 : rows <= 2 ? 2 : rows <= 4 ? 4 : 8;
    kernel(`lowbit_gemv_${fmt}_bf16_m${M}`, [cdiv(N, 8), 1, 1], [xq, W, scales, rowScale, bias, buf(op.out), rows, N, K, group, alpha]);
    return;
  }
  // 2b. Weights dequantized into the bf16 scratch, then cuBLASLt.
  if (!env.quantScratch) throw new InternalError("launch plan: a quantized linear needs LaunchEnv.quantScratch");
  kernel(mma ? "nvfp4_dequant_mma_bf16" : `lowbit_dequant_${fmt}_bf16`, [cdiv((N * K) / 8, 256), 1, 1], [W, scales, env.quantScratch, N, K, group]);
  const d = isLogits ? env.logits : buf(op.out);
  out.push({
    kind: "gemm",
    op: i,
    m: rows,
    n: N,
    k: K,
    dtype: "bf16",
    outDtype: isLogits ? "fp32" : "bf16",
    invariant: !!env.batchInvariant && !(decodeStep && rows > GEMV_MAX_ROWS && !isLogits), // as the bf16 linears
    a: xq,
    b: env.quantScratch,
    d,
    bias: fmt !== "int8" && op.bias ? bias : null,
    ...(alpha !== 1 ? { alpha } : {}),
  });
  if (fmt === "int8") {
    const V = isLogits ? 4 : 8;
    kernel(isLogits ? "fp8_scale_f32" : "fp8_scale_bf16", [cdiv(N, 256 * V), rows, 1], [d, rowScale, scales, bias, rows, N]);
  }
}
