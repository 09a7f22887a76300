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
 * f32 per-token scales [rows] (SmoothQuant) or nvfp4_act_mma's block scales [rows, maxK / 16] (GEMV steps: rows <= 8);
 * then one row's codes [2 maxK] at `siluOffset` and its block scales [maxK / 16] at `siluScalesOffset`: what
 * nvfp4_gemv_k32_silu writes for the next linear while its own blocks still read the first region (nvfp4K32Silu).
 */
export function lowbitScratchLayout(
  plan: EnginePlan,
): { readonly bytes: number; readonly scalesOffset: number; readonly siluOffset: number; readonly siluScalesOffset: number } | null {
  let maxK = 0;
  for (const op of plan.ops) if (op.type === "linear" && isLowbitLinear(op)) maxK = Math.max(maxK, op.inFeatures);
  if (maxK === 0) return null;
  const rows = Math.max(plan.maxTokens, plan.maxSeqs);
  const scalesOffset = align256(rows * maxK * 2);
  const siluOffset = scalesOffset + align256(Math.max(rows, GEMV_MAX_ROWS * Math.ceil(maxK / 16)) * 4);
  const siluScalesOffset = siluOffset + align256(2 * maxK);
  return { bytes: siluScalesOffset + align256(Math.ceil(maxK / 16) * 4), scalesOffset, siluOffset, siluScalesOffset };
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
/** kernels/nvfp4_mma.cu NV_K32_DEEP: ring slots a warp of nvfp4_gemv_k32[_act]_deep* (768 bytes each, 8 warps). */
export const NVFP4_K32_DEEP = 12;
/** Dynamic shared memory of nvfp4_gemv_k32[_act]_deep*: (the act codes of a row of k, rounded up to 128 bytes,) then the ring. */
export function nvfp4K32DeepSmem(k: number, act: boolean): number {
  return (act ? Math.ceil((2 * k + k / 4) / 128) * 128 : 0) + NVFP4_K32_DEEP * 8 * 768;
}
/** Widest row nvfp4_rmsnorm_act_fast_bf16 takes (kernels/nvfp4_mma.cu NV_FAST_H: its shared-memory copy of the row). */
export const NVFP4_NORM_FAST_MAX = 8192;
/** Resident blocks per SM of nvfp4_gemv_mma's persistent grid (256 threads, <= 128 registers). */
export const NVFP4_GEMV_BLOCKS_PER_SM = 2;
/**
 * nvfp4_gemv_k32's (kernels/nvfp4_mma.cu NV_K32_MINB 4: <= 64 registers, 4 blocks of 256 threads an SM; with the
 * session-12 ring NV_K32_RING 6, 37 KB of static shared memory a block).
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
 * nvfp4_gemv_k32's grid for `tiles` units of work (16-row tiles; silu·mul: gate / up pairs): at most `maxBlocks` (with
 * `persistentK`, a grid smaller than `tiles` only where nvfp4GemvGrid allows one). The same bits for any grid. (Fewer
 * blocks, each the same number of units, measured slower: H200 session 12 r2, llama-3.1-8b gate_up 1792 tiles on 448
 * blocks of 4 instead of 528 of 3 or 4: 33.4 vs 29.2 µs a GEMV — resident warps count more than the tail.)
 */
export function nvfp4K32Grid(tiles: number, k: number, maxBlocks?: number, persistentK = true): number {
  if (!maxBlocks || (persistentK && (k / 64) % (8 * NVFP4_MMA_U) !== 0)) return tiles;
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

/** What an NVFP4 linear's k32 GEMV does besides the GEMV (nvfp4K32Fusion; addresses of this step). */
export interface Nvfp4K32Fuse {
  /** RMSNorm prologue: the row to normalize (the norm op's input, or its residual when the add was done before), its weight and eps. */
  readonly norm?: { readonly x: bigint; readonly weight: bigint; readonly eps: number };
  /** Residual-add epilogue: the residual stream the output is added into (the output itself is not stored). */
  readonly residual?: bigint;
  /** silu·mul epilogue (gate_up): the next linear's codes / block scales it writes and that linear's activation scale. */
  readonly silu?: { readonly xq: bigint; readonly sx: bigint; readonly a: number };
  /** The row's codes / block scales are at these addresses (written by the gate_up GEMV's silu·mul epilogue). */
  readonly input?: { readonly xq: bigint; readonly sx: bigint };
}

/**
 * With `LaunchEnv.nvfp4GemvK32` and `nvfp4K32Norm`, one-row steps: the norms that run inside the next NVFP4 GEMV's prologue
 * (nvfp4_gemv_k32_norm: norm op → that linear) and the linears whose GEMV adds their output into the residual of the
 * add_rmsnorm after them (linear → that norm), so the norm has no add left: an add_rmsnorm is taken when the linear
 * before it (its only reader of x) and the linear after it (the only reader of its output) both run the k32 GEMV; a
 * plain rmsnorm when the linear after it does. The same sums and roundings as the producers (nvfp4_rmsnorm_act_bf16).
 */
export function nvfp4K32Fusion(
  plan: EnginePlan,
  env: LaunchEnv,
  rowsOf: (name: string) => number,
  touched: (op: number) => boolean,
): { readonly normInto: Map<number, number>; readonly addInto: Map<number, number>; readonly siluInto: Map<number, number> } {
  const normInto = new Map<number, number>(), addInto = new Map<number, number>(), siluInto = new Map<number, number>();
  const none = { normInto, addInto, siluInto };
  if (!env.nvfp4Mma || !env.nvfp4GemvK32 || env.lora || env.elem !== "bf16") return none;
  const readers = readerCounts(plan.ops);
  if (!readers) return none;
  const k32 = (j: number, x: string): boolean => {
    const lin = plan.ops[j];
    return !!lin && nvfp4MmaLinear(lin, env) && !lin.lora && lin.x === x && rowsOf(x) === 1 && lowbitGemvShapeOk(lin) && !touched(j);
  };
  // nvfp4K32Silu: gate_up (j - 1, its only reader silu_mul j) → silu_mul j → the NVFP4 linear j + 1, the
  // only reader of its output. The gate_up GEMV's grid pairs gate and up row tiles: out features a multiple of 32.
  if (env.nvfp4K32Silu) {
    plan.ops.forEach((op, j) => {
      if (op.type !== "silu_mul" || touched(j) || readers.get(op.out) !== 1 || !k32(j + 1, op.out)) return;
      const gu = plan.ops[j - 1];
      if (gu?.type !== "linear" || gu.out !== op.gateUp || readers.get(gu.out) !== 1 || !k32(j - 1, gu.x)) return;
      if (gu.outFeatures !== 2 * op.width || op.width % 64 !== 0) return;
      siluInto.set(j, j - 1);
    });
  }
  if (!env.nvfp4K32Norm) return none;
  plan.ops.forEach((op, j) => {
    if ((op.type !== "rmsnorm" && op.type !== "add_rmsnorm") || touched(j) || readers.get(op.out) !== 1 || !k32(j + 1, op.out)) return;
    if (op.type === "add_rmsnorm") {
      const prev = plan.ops[j - 1];
      // (A linear with a norm prologue has no add epilogue: no kernel does both.)
      if (prev?.type !== "linear" || prev.out !== op.x || readers.get(op.x) !== 1 || !k32(j - 1, prev.x) || normInto.get(j - 2) === j - 1) return;
      addInto.set(j - 1, j);
    }
    normInto.set(j, j + 1);
  });
  return none;
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
  k32Fuse: Nvfp4K32Fuse = {},
): void {
  const { op, i, rows, isLogits, env, decodeStep, buf } = l;
  const f = op.weightFormat!;
  if (env.elem !== "bf16") throw new InternalError(`launch plan: ${f.format} linears need a bfloat16 engine`);
  const layout = lowbitScratchLayout(env.plan);
  if (!env.lowbitScratch || !layout) throw new InternalError(`launch plan: a ${f.format} linear needs LaunchEnv.lowbitScratch`);
  const N = op.outFeatures, K = op.inFeatures, fmt = f.format as "int8" | "int4" | "nvfp4";
  // (nvfp4K32Silu: the row's codes where the gate_up GEMV before wrote them.)
  const xq = k32Fuse.input?.xq ?? env.lowbitScratch, rowScale = k32Fuse.input?.sx ?? env.lowbitScratch + BigInt(layout.scalesOffset);
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
  // NVFP4 lm_head's fp32 logits included (nvfp4_gemv_k32_logits; without the flag the logits take the GEMM path).
  const k32 = mma && !!env.nvfp4GemvK32 && rows === 1 && lowbitGemvShapeOk(op);
  if (mma && (gemvStep || (k32 && isLogits))) {
    const a = staticScale("activation scale", f.activationScale);
    alpha = Math.fround(a * staticScale("global scale", f.globalScale));
    // Row tiles for at most one block per SM: 16 warps a block (more loads in flight on each SM).
    const w16 = !!env.nvfp4GemvBlocks && N / 16 <= env.nvfp4GemvBlocks / NVFP4_GEMV_BLOCKS_PER_SM && !isLogits;
    if (
      (k32Fuse.norm || k32Fuse.residual || k32Fuse.silu || k32Fuse.input) &&
      (!k32 || (k32Fuse.norm && (k32Fuse.residual || preQuantized)) || ((k32Fuse.residual || k32Fuse.silu) && isLogits) ||
        (k32Fuse.silu && (k32Fuse.residual || N % 32 !== 0)) || (k32Fuse.input && !preQuantized))
    ) {
      throw new InternalError(`launch plan: '${op.weight}' has a k32 norm prologue / residual or silu epilogue / input it cannot take`);
    }
    const y = isLogits ? env.logits : k32Fuse.residual ?? buf(op.out);
    // k32: a persistent grid of NVFP4_K32_BLOCKS_PER_SM blocks an SM (fewer registers than nvfp4_gemv_mma; the
    // persistence test is NVFP4_MMA_U's, (k / 64) % 32 == 0, stricter than its NV_K32_U 2 needs).
    const k32Blocks = env.nvfp4GemvBlocks ? (env.nvfp4GemvBlocks / NVFP4_GEMV_BLOCKS_PER_SM) * NVFP4_K32_BLOCKS_PER_SM : undefined;
    if (k32Fuse.silu) {
      // nvfp4_gemv_k32[_act|_norm]_silu: 8 warps, a block per gate / up pair of row tiles (at most N / 32 blocks); y is the
      // next linear's codes, then its block scales and activation scale.
      const s = k32Fuse.silu, nrm = k32Fuse.norm;
      const grid: [number, number, number] = [nvfp4K32Grid(N / 32, K, k32Blocks, false), 1, 1];
      const kind = nrm ? "_norm" : preQuantized ? "" : "_act";
      out.push({
        kind: "kernel",
        op: i,
        kernel: `nvfp4_gemv_k32${kind}_silu_bf16_m1`,
        grid,
        block: 256,
        args: nrm
          ? [nrm.x, nrm.weight, W, scales, bias, s.xq, N, K, nrm.eps, a, alpha, s.sx, s.a]
          : preQuantized
          ? [xq, W, scales, rowScale, bias, s.xq, rows, N, K, 0, alpha, s.sx, s.a]
          : [buf(op.x), W, scales, bias, s.xq, N, K, a, alpha, s.sx, s.a],
        ...(preQuantized ? {} : { sharedBytes: 2 * K + K / 4 }),
      });
      return;
    }
    if (k32Fuse.norm) {
      // nvfp4_gemv_k32_norm: the RMSNorm before this linear (its launch dropped) in the GEMV's prologue; 8 warps.
      const nrm = k32Fuse.norm;
      out.push({
        kind: "kernel",
        op: i,
        kernel: `nvfp4_gemv_k32_norm${isLogits ? "_logits" : ""}_bf16_m1`,
        grid: [nvfp4K32Grid(N / 16, K, k32Blocks), 1, 1],
        block: 256,
        args: [nrm.x, nrm.weight, W, scales, bias, y, N, K, nrm.eps, a, alpha],
        sharedBytes: 2 * K + K / 4,
      });
      return;
    }
    const add = k32Fuse.residual ? "_add" : "";
    // nvfp4K32Deep: few row tiles (at most 2 blocks an SM) take the deep ring (dynamic shared memory).
    const sms = env.nvfp4GemvBlocks ? env.nvfp4GemvBlocks / NVFP4_GEMV_BLOCKS_PER_SM : 0;
    const deep = k32 && !!env.nvfp4K32Deep && !w16 && !isLogits && sms > 0 && N / 16 <= 2 * sms;
    if (k32 && !preQuantized) {
      // nvfp4_gemv_k32_act: each block quantizes the row itself (shared memory), no nvfp4_act_mma launch; the same bits.
      out.push({
        kind: "kernel",
        op: i,
        kernel: deep ? `nvfp4_gemv_k32_act_deep${add}_bf16_m1` : `nvfp4_gemv_k32_act${add}${isLogits ? "_logits" : w16 ? "_w16" : ""}_bf16_m1`,
        grid: [w16 || deep ? N / 16 : nvfp4K32Grid(N / 16, K, k32Blocks), 1, 1],
        block: w16 ? 512 : 256,
        args: [buf(op.x), W, scales, bias, y, N, K, a, alpha],
        sharedBytes: deep ? nvfp4K32DeepSmem(K, true) : 2 * K + K / 4,
      });
      return;
    }
    if (deep) {
      out.push({
        kind: "kernel",
        op: i,
        kernel: `nvfp4_gemv_k32_deep${add}_bf16_m1`,
        grid: [N / 16, 1, 1],
        block: 256,
        args: [xq, W, scales, rowScale, bias, y, rows, N, K, 0, alpha],
        sharedBytes: nvfp4K32DeepSmem(K, false),
      });
      return;
    }
    if (!preQuantized) kernel("nvfp4_act_mma_bf16", [cdiv(K, 1024), rows, 1], [buf(op.x), xq, rowScale, rows, K, a]);
    out.push({
      kind: "kernel",
      op: i,
      kernel: isLogits ? "nvfp4_gemv_k32_logits_bf16_m1" : `nvfp4_gemv_${k32 ? `k32${add}` : "mma"}${w16 ? "_w16" : ""}_bf16_m${rows <= 1 ? 1 : 8}`,
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
