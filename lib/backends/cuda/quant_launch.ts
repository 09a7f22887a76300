/** The launches of a weight-only quantized linear (issue 12), split out of launch_plan.ts. */
import type { Op } from "../../ir/network.ts";
import { InternalError } from "../../util/errors.ts";
import type { Launch, LaunchEnv } from "./launch_plan.ts";

const cdiv = (a: number, b: number): number => Math.ceil(a / b);

/**
 * A weight-only quantized linear (issue 12; llmrt's packed uint4/uint8 layout, see quant_gemv.cu):
 * decode-sized row counts run the GEMV that dequantizes in registers; larger steps (and the fp32
 * logits) dequantize into the bf16 scratch and run the ordinary cuBLASLt GEMM on it (a first step:
 * no tensor-core kernel reading packed tiles yet).
 */
export function planQuantLinear(
  op: Extract<Op, { type: "linear" }>,
  i: number,
  rows: number,
  isLogits: boolean,
  env: LaunchEnv,
  decodeStep: boolean,
  buf: (name: string) => bigint,
  k: (op: number, kernel: string, grid: readonly [number, number, number], block: number, args: (bigint | number)[]) => void,
  out: Launch[],
  gemmType: "bf16" | "fp32",
  maxGemvRows: number,
): void {
  const f = op.weightFormat!;
  if (env.elem !== "bf16") throw new InternalError("launch plan: quantized linears need a bfloat16 engine");
  if (f.format !== "uint4" && f.format !== "uint8") throw new InternalError(`launch plan: weight format ${f.format} has no CUDA kernel`);
  const u = f.format === "uint4" ? "u4" : "u8";
  const N = op.outFeatures, K = op.inFeatures, group = f.groupSize || K, vec = u === "u4" ? 32 : 16;
  const zeros = f.zeros ? env.weight(f.zeros) : 0n, bias = op.bias ? env.weight(op.bias) : 0n;
  if (!isLogits && rows <= maxGemvRows && K % vec === 0 && group % vec === 0 && (!env.batchInvariant || decodeStep)) {
    const M = rows <= 1 ? 1 : rows <= 2 ? 2 : rows <= 4 ? 4 : 8;
    k(i, `quant_gemv_${u}_m${M}`, [cdiv(N, 8), 1, 1], 256, [
      buf(op.x),
      env.weight(op.weight),
      env.weight(f.scales),
      zeros,
      bias,
      buf(op.out),
      rows,
      N,
      K,
      group,
    ]);
    return;
  }
  if (!env.quantScratch) throw new InternalError("launch plan: a quantized linear needs LaunchEnv.quantScratch");
  k(i, `quant_dequant_${u}_bf16`, [cdiv((N * K) / 8, 256), 1, 1], 256, [env.weight(op.weight), env.weight(f.scales), zeros, env.quantScratch, N, K, group]);
  out.push({
    kind: "gemm",
    op: i,
    m: rows,
    n: N,
    k: K,
    dtype: gemmType,
    outDtype: isLogits ? "fp32" : gemmType,
    invariant: !!env.batchInvariant && !(decodeStep && rows > maxGemvRows && !isLogits), // as the bf16 linears
    a: buf(op.x),
    b: env.quantScratch,
    d: isLogits ? env.logits : buf(op.out),
    bias: op.bias ? env.weight(op.bias) : null,
  });
}
