/**
 * The launches of an FP8 (e4m3) linear of a bfloat16 engine (issue 14; kernels in kernels/fp8_gemv.cu,
 * the arithmetic the CPU's fp8Linear emulates). Decode-sized steps (≤ GEMV_MAX_ROWS rows) run the
 * tensor-core GEMV that quantizes the activations on the fly; larger steps and the fp32 logits quantize
 * the rows into the FP8 scratch (`LaunchEnv.fp8Scratch`, see {@link fp8ScratchLayout}) and run the
 * cuBLASLt FP8 GEMM. Per-tensor FP8 (one weight scale, a static activation scale) hands both scales to
 * cuBLASLt (`aScale` / `bScale`) and its bias epilogue writes the bf16 output; per-channel weights or
 * per-token activations get the unscaled product from cuBLASLt and `fp8_scale_*` applies the row and
 * column scales (and bias) in place.
 */
import type { LinearStep } from "./step_ctx.ts";
import type { EnginePlan } from "../../ir/plan.ts";
import type { Op } from "../../ir/network.ts";
import { InternalError } from "../../util/errors.ts";
import { readerCounts } from "./op_reads.ts";
import { GEMV_MAX_ROWS, type Launch, type LaunchEnv } from "./launch_types.ts";
import type { QuantFusion } from "./quant_launch.ts";

const cdiv = (a: number, b: number): number => Math.ceil(a / b);
const align256 = (n: number): number => Math.ceil(n / 256) * 256;

/** Resident blocks per SM of fp8_gemv1's persistent grid (kernels/fp8_gemv.cu FG1_MINB: 256 threads, <= 128 registers). */
export const FP8_GEMV1_BLOCKS_PER_SM = 2;

/** Most in-features of fp8_gemv1 (its quantized x in shared memory; FG1_XQ) and of its RMSNorm prologue (FG_XS). */
const FP8_GEMV1_MAX_K = 16384, FP8_GEMV1_MAX_NORM_K = 8192;

/**
 * Whether a one-token fused FP8 linear runs fp8_gemv1 (`fp8Gemv1`): in-features whole 512-byte segments, within
 * the kernel's shared-memory stage.
 */
export function fp8Gemv1Fits(K: number, norm: boolean): boolean {
  return K % 512 === 0 && K <= (norm ? FP8_GEMV1_MAX_NORM_K : FP8_GEMV1_MAX_K);
}

/**
 * Most in-features of an engine's fp8_gemvr launch: a row's whole bytes in flight before the PDL wait (FGR_D · 512; the
 * kernel takes up to FGR_XQ = 8192 through its ring). Longer rows (llama's down_proj) stay on fp8_gemv1.
 */
const FP8_GEMVR_MAX_K = 4096;

/**
 * Whether a one-token fused FP8 linear of `mode` may run fp8_gemvr (`fp8GemvRow` / `fp8GemvRowNorm`): not SiLU·mul
 * (mode 2), in-features whole 512-byte segments up to FP8_GEMVR_MAX_K.
 */
export function fp8GemvRowFits(K: number, mode: number): boolean {
  return mode !== 2 && K % 512 === 0 && K <= FP8_GEMVR_MAX_K;
}

/**
 * fp8_gemv1's grid for `n` out-features: `maxBlocks` (LaunchEnv.fp8Gemv1Blocks; 264 unset), or fewer so that each
 * block's 8 warps have a row (mode 2: a gate / up pair) each.
 */
export function fp8Gemv1Grid(n: number, mode: number, maxBlocks = 264): number {
  const units = mode === 2 ? n / 2 : n;
  return Math.max(1, Math.min(maxBlocks, cdiv(units, 8)));
}

/** Whether a linear stores FP8 weights. */
export const isFp8Linear = (op: Op): op is Extract<Op, { type: "linear" }> => op.type === "linear" && op.weightFormat?.format === "fp8_e4m3";

/** The static activation scale an FP8 linear quantizes its input with, 0 for per-token scales. */
export const fp8ActScale = (op: Extract<Op, { type: "linear" }>): number =>
  op.weightFormat!.activation === "static_per_tensor" ? op.weightFormat!.activationScale! : 0;

/**
 * Whether an FP8 linear takes decode_fusion.ts's RMSNorm prologue and residual / SiLU·mul / fp32-logits
 * epilogues (fp8_gemv_fused*_bf16): in-features whole 64-column chunks, out-features whole 16-row tiles.
 */
export function fp8GemvFusable(op: Op): op is Extract<Op, { type: "linear" }> {
  return isFp8Linear(op) && !op.lora && op.inFeatures % 64 === 0 && op.outFeatures % 16 === 0;
}

/**
 * The FP8 scratch of an engine, or null without FP8 linears: e4m3 rows [rows, maxK] (the quantized
 * activations of a prefill-sized linear) at offset 0, then f32 row scales [rows] at `scalesOffset`.
 */
export function fp8ScratchLayout(plan: EnginePlan): { readonly bytes: number; readonly scalesOffset: number } | null {
  // Memoized per plan: every prefill-sized FP8 linear of every step asks (a scan of the ops each time was ~0.3 ms of host
  // planning per llama-3.1-8b prefill).
  const known = scratchLayouts.get(plan);
  if (known !== undefined) return known;
  const layout = scratchLayoutOf(plan);
  scratchLayouts.set(plan, layout);
  return layout;
}

const scratchLayouts = new WeakMap<EnginePlan, { readonly bytes: number; readonly scalesOffset: number } | null>();

function scratchLayoutOf(plan: EnginePlan): { readonly bytes: number; readonly scalesOffset: number } | null {
  let maxK = 0;
  for (const op of plan.ops) if (isFp8Linear(op)) maxK = Math.max(maxK, op.inFeatures);
  if (maxK === 0) return null;
  const rows = Math.max(plan.maxTokens, plan.maxSeqs);
  const scalesOffset = align256(rows * maxK);
  return { bytes: scalesOffset + align256(rows * 4), scalesOffset };
}

/** Whether an FP8 linear of `rows` rows runs the tensor-core GEMV (else fp8_quantize + the cuBLASLt FP8 GEMM). */
export function fp8GemvStep(op: Extract<Op, { type: "linear" }>, rows: number, env: LaunchEnv, decodeStep: boolean): boolean {
  return rows <= GEMV_MAX_ROWS && op.inFeatures % 64 === 0 && (!env.batchInvariant || decodeStep);
}

/**
 * With `LaunchEnv.fp8FusedQuant`: the rmsnorm / add_rmsnorm / silu_mul ops (and with `fp8AttnQuant` the prefill
 * attentions for which `flashWg` holds, before a static-scale linear; index → the FP8 linear right after it) whose output
 * only that linear reads, when the linear runs the cuBLASLt GEMM (`gemm(i)`) and no LoRA or
 * decode fusion touches either: the producer then writes the linear's e4m3 rows and row scales into the FP8
 * scratch (fp8_rmsnorm_quant_bf16 / fp8_silu_mul_quant_bf16, the bits fp8_quantize_bf16 writes from its bf16
 * output) and the linear skips its quantize launch; the bf16 output is not written at all.
 */
export function fp8QuantProducers(
  plan: EnginePlan,
  env: LaunchEnv,
  gemm: (linear: number) => boolean,
  touched: (op: number) => boolean,
  flashWg: (attention: number) => boolean = () => false,
  decodeQ8: (attention: number) => boolean = () => false,
): Map<number, number> {
  const out = new Map<number, number>();
  if (!env.fp8FusedQuant || env.lora || env.elem !== "bf16") return out;
  const readers = readerCounts(plan.ops);
  if (!readers) return out;
  plan.ops.forEach((op, j) => {
    // fp8AttnQuant: a prefill attention on flash_prefill_wg (`flashWg`) before a static-scale linear; fp8DecodeAttnQuant: a
    // decode attention on decode_attention_batch4 over an e4m3 cache (`decodeQ8`; its RoPE is the decode fusion's).
    const dq8 = op.type === "paged_attention" && decodeQ8(j);
    const attn = op.type === "paged_attention" && (dq8 || (!!env.fp8AttnQuant && flashWg(j)));
    if (op.type !== "rmsnorm" && op.type !== "add_rmsnorm" && op.type !== "silu_mul" && !attn) return;
    const lin = plan.ops[j + 1];
    if (!lin || !isFp8Linear(lin) || lin.x !== op.out || readers.get(op.out) !== 1 || lin.out === plan.attributes.logits) return;
    if (attn && fp8ActScale(lin) === 0) return;
    if (lin.weightFormat!.activation === "dynamic_per_block" || lin.inFeatures % 8 !== 0) return;
    if ((touched(j) && !dq8) || touched(j + 1) || !gemm(j + 1)) return;
    out.set(j, j + 1);
  });
  return out;
}

/** Launches of one FP8 linear (`rows` activation rows; `decodeStep`: every sequence brings one token). */
export function planFp8Linear(
  l: LinearStep,
  out: Launch[],
  fused: QuantFusion & { readonly preQuantized?: boolean } = {},
): void {
  const { op, i, rows, isLogits, env, decodeStep, buf } = l;
  const f = op.weightFormat!;
  if (env.elem !== "bf16") throw new InternalError("launch plan: FP8 linears need a bfloat16 engine");
  const N = op.outFeatures, K = op.inFeatures;
  const isStatic = f.activation === "static_per_tensor";
  const actScale = isStatic ? f.activationScale! : 0;
  if (isStatic && !(actScale > 0)) throw new InternalError(`launch plan: FP8 linear '${op.weight}' has no static activation scale`);
  const W = env.weight(op.weight), scales = env.weight(f.scales), bias = op.bias ? env.weight(op.bias) : 0n;
  const kernel = (kernel: string, grid: readonly [number, number, number], args: (bigint | number)[]): void => {
    out.push({ kind: "kernel", op: i, kernel, grid, block: 256, args });
  };
  const gemvStep = fp8GemvStep(op, rows, env, decodeStep);
  const { norm, epilogue } = fused;
  if (gemvStep && fp8GemvFusable(op) && (norm || epilogue || (isLogits && fused.logits))) {
    // Fused decode (decode_fusion.ts): the same GEMV with the norm prologue / an epilogue (mode 2 too: N / 16 blocks).
    const mode = isLogits ? 3 : epilogue?.mode ?? 0;
    // One token: fp8_gemvr (fp8GemvRow / fp8GemvRowNorm; one row a warp, short-lived blocks, fp8_gemv1's bits), else
    // fp8_gemv1 (fp8Gemv1; a persistent grid, contiguous rows per warp).
    const byRow = rows === 1 && !!(norm ? env.fp8GemvRowNorm : env.fp8GemvRow) && fp8GemvRowFits(K, mode);
    const one = !byRow && !!env.fp8Gemv1 && rows === 1 && fp8Gemv1Fits(K, !!norm);
    const nm = norm ? "_norm" : "";
    const name = byRow ? `fp8_gemvr_fused${nm}_bf16` : one ? `fp8_gemv1_fused${nm}_bf16` : `fp8_gemv_fused${nm}${env.fp8Pdl ? "_pdl" : ""}_bf16`;
    kernel(name, [byRow ? cdiv(N, 8) : one ? fp8Gemv1Grid(N, mode, env.fp8Gemv1Blocks) : N / 16, 1, 1], [
      buf(norm ? norm.x : op.x),
      W,
      scales,
      bias,
      isLogits ? env.logits : buf(epilogue ? epilogue.into : op.out),
      norm ? env.weight(norm.weight) : 0n,
      norm ? norm.eps : 0,
      rows,
      N,
      K,
      actScale,
      mode,
    ]);
    return;
  }
  if (norm || epilogue || fused.logits) throw new InternalError(`launch plan: op ${i} cannot take a fused FP8 GEMV`);
  if (!isLogits && gemvStep) {
    kernel("fp8_gemv_bf16", [cdiv(N, 16), 1, 1], [buf(op.x), W, scales, bias, buf(op.out), rows, N, K, actScale]);
    return;
  }
  const layout = fp8ScratchLayout(env.plan);
  if (!env.fp8Scratch || !layout) throw new InternalError("launch plan: an FP8 linear needs LaunchEnv.fp8Scratch");
  const xq = env.fp8Scratch, rowScales = env.fp8Scratch + BigInt(layout.scalesOffset);
  // Unless the producing norm / silu_mul already wrote them (fp8QuantProducers).
  // fp8FlatQuant (static scales): one 8-element chunk a thread, the same bytes.
  if (!fused.preQuantized && env.fp8FlatQuant && isStatic) {
    kernel("fp8_quantize_flat_bf16", [cdiv(K, 2048), rows, 1], [buf(op.x), xq, rowScales, rows, K, actScale]);
  } else if (!fused.preQuantized) kernel("fp8_quantize_bf16", [rows, 1, 1], [buf(op.x), xq, rowScales, rows, K, actScale]);
  const d = isLogits ? env.logits : buf(op.out);
  // cuBLASLt applies scalar scales only: one weight scale (per_tensor, all rows equal) and a static activation scale.
  const scalar = isStatic && f.weightScale === "per_tensor" && !(isLogits && op.bias);
  out.push({
    kind: "gemm",
    op: i,
    m: rows,
    n: N,
    k: K,
    dtype: "fp8e4m3",
    outDtype: isLogits ? "fp32" : "bf16",
    invariant: !!env.batchInvariant && !(decodeStep && rows > GEMV_MAX_ROWS && !isLogits), // as the bf16 linears
    a: xq,
    b: W,
    d,
    bias: scalar && op.bias ? bias : null,
    ...(scalar ? { aScale: rowScales, bScale: scales } : {}),
    ...(env.fp8FastAccum ? { fastAccum: true } : {}),
  });
  if (!scalar) {
    const V = isLogits ? 4 : 8;
    kernel(isLogits ? "fp8_scale_f32" : "fp8_scale_bf16", [cdiv(N, 256 * V), rows, 1], [d, rowScales, scales, bias, rows, N]);
  }
}
