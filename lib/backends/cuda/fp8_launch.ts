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
import type { EnginePlan } from "../../ir/plan.ts";
import type { Op } from "../../ir/network.ts";
import { InternalError } from "../../util/errors.ts";
import { GEMV_MAX_ROWS, type Launch, type LaunchEnv } from "./launch_types.ts";

const cdiv = (a: number, b: number): number => Math.ceil(a / b);
const align256 = (n: number): number => Math.ceil(n / 256) * 256;

/** Whether a linear stores FP8 weights. */
export const isFp8Linear = (op: Op): op is Extract<Op, { type: "linear" }> => op.type === "linear" && op.weightFormat?.format === "fp8_e4m3";

/**
 * The FP8 scratch of an engine, or null without FP8 linears: e4m3 rows [rows, maxK] (the quantized
 * activations of a prefill-sized linear) at offset 0, then f32 row scales [rows] at `scalesOffset`.
 */
export function fp8ScratchLayout(plan: EnginePlan): { readonly bytes: number; readonly scalesOffset: number } | null {
  let maxK = 0;
  for (const op of plan.ops) if (isFp8Linear(op)) maxK = Math.max(maxK, op.inFeatures);
  if (maxK === 0) return null;
  const rows = Math.max(plan.maxTokens, plan.maxSeqs);
  const scalesOffset = align256(rows * maxK);
  return { bytes: scalesOffset + align256(rows * 4), scalesOffset };
}

/** Launches of one FP8 linear (`rows` activation rows; `decodeStep`: every sequence brings one token). */
export function planFp8Linear(
  op: Extract<Op, { type: "linear" }>,
  i: number,
  rows: number,
  isLogits: boolean,
  env: LaunchEnv,
  decodeStep: boolean,
  buf: (name: string) => bigint,
  out: Launch[],
): void {
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
  if (!isLogits && rows <= GEMV_MAX_ROWS && K % 64 === 0 && (!env.batchInvariant || decodeStep)) {
    kernel("fp8_gemv_bf16", [cdiv(N, 16), 1, 1], [buf(op.x), W, scales, bias, buf(op.out), rows, N, K, actScale]);
    return;
  }
  const layout = fp8ScratchLayout(env.plan);
  if (!env.fp8Scratch || !layout) throw new InternalError("launch plan: an FP8 linear needs LaunchEnv.fp8Scratch");
  const xq = env.fp8Scratch, rowScales = env.fp8Scratch + BigInt(layout.scalesOffset);
  kernel("fp8_quantize_bf16", [rows, 1, 1], [buf(op.x), xq, rowScales, rows, K, actScale]);
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
  });
  if (!scalar) {
    const V = isLogits ? 4 : 8;
    kernel(isLogits ? "fp8_scale_f32" : "fp8_scale_bf16", [cdiv(N, 256 * V), rows, 1], [d, rowScales, scales, bias, rows, N]);
  }
}
