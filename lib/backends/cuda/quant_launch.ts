/** The launches of a weight-only quantized linear (issue 12), split out of launch_plan.ts. */
import type { LinearStep } from "./step_ctx.ts";
import type { Op } from "../../ir/network.ts";
import { InternalError } from "../../util/errors.ts";
import type { Launch } from "./launch_plan.ts";
import { planQuantGemm } from "./quant_gemm_plan.ts";

const cdiv = (a: number, b: number): number => Math.ceil(a / b);

/** Weights per row of one quant_gemv_fused superchunk (its k granularity): u4 128, u8 64. */
const SUPERCHUNK = { uint4: 128, uint8: 64 } as const;

/**
 * Whether a linear runs the tensor-core quantized GEMV (quant_gemv_fused_u4/u8, quant_gemv.cu) for
 * decode-sized steps: a uint4/uint8 weight whose in-features and group are whole superchunks and whose
 * out-features are whole 16-row tiles. Such linears also take decode_fusion.ts's RMSNorm prologue and
 * residual / SiLU·mul / fp32 epilogues; other quantized linears keep the per-warp quant_gemv_* kernels.
 */
export function quantGemvFusable(op: Op): op is Extract<Op, { type: "linear" }> {
  if (op.type !== "linear" || !op.weightFormat || op.lora) return false;
  const f = op.weightFormat;
  if (f.format !== "uint4" && f.format !== "uint8") return false;
  const sc = SUPERCHUNK[f.format], group = f.groupSize || op.inFeatures;
  return op.inFeatures % sc === 0 && group % sc === 0 && op.outFeatures % 16 === 0;
}

/** Blocks of a quant_gemv_fused launch for `outFeatures` rows: one 16-row tile each. */
export function quantGemvGrid(outFeatures: number): number {
  return outFeatures / 16;
}

/** What a fused decode step folds into a quantized linear (decode_fusion.ts). */
export interface QuantFusion {
  /** RMSNorm of `x` with `weight` in the prologue. */
  readonly norm?: { readonly x: string; readonly weight: string; readonly eps: number };
  /** Epilogue: 1 residual += out into `into`, 2 silu·mul into `into` (pairOut: in the mma's pair order, for an xPair GEMV). */
  readonly epilogue?: { readonly mode: 1 | 2; readonly into: string; readonly pairOut?: boolean };
  /** x is a pairOut epilogue's output (decode_fusion.ts xPair). */
  readonly xPair?: boolean;
  /** The lm_head of a fused step: fp32 logits straight from the GEMV (mode 3). */
  readonly logits?: boolean;
  /**
   * With the residual epilogue: also `out` = bf16(residual · weight) and the tile sums of squares into
   * LaunchEnv.quantNormScratch (quant_gemv_fused_addnorm), for the `rowScale` linear after it.
   */
  readonly tailNorm?: { readonly weight: string; readonly eps: number; readonly out: string; readonly u4Pair?: boolean };
  /** x is a tailNorm `out`: the sums are scaled by rsqrt(mean square + eps) of quantNormScratch (quant_gemv_fused_rs). */
  readonly rowScale?: { readonly eps: number; readonly u4Pair?: boolean };
}

/**
 * A weight-only quantized linear (issue 12; llmrt's packed uint4/uint8 layout, see quant_gemv.cu):
 * decode-sized row counts run the GEMV that dequantizes in registers; larger steps (and the fp32
 * logits) dequantize into the bf16 scratch and run the ordinary cuBLASLt GEMM on it (a first step:
 * no tensor-core kernel reading packed tiles yet).
 */
export function planQuantLinear(
  l: LinearStep,
  k: (op: number, kernel: string, grid: readonly [number, number, number], block: number, args: (bigint | number)[]) => void,
  out: Launch[],
  gemmType: "bf16" | "fp32",
  maxGemvRows: number,
  fused: QuantFusion = {},
): void {
  const { op, i, rows, isLogits, env, decodeStep, buf } = l;
  const f = op.weightFormat!;
  if (env.elem !== "bf16") throw new InternalError("launch plan: quantized linears need a bfloat16 engine");
  if (f.format !== "uint4" && f.format !== "uint8") throw new InternalError(`launch plan: weight format ${f.format} has no CUDA kernel`);
  const u = f.format === "uint4" ? "u4" : "u8";
  const N = op.outFeatures, K = op.inFeatures, group = f.groupSize || K, vec = u === "u4" ? 32 : 16;
  const zeros = f.zeros ? env.weight(f.zeros) : 0n, bias = op.bias ? env.weight(op.bias) : 0n;
  const gemvStep = rows <= maxGemvRows && (!env.batchInvariant || decodeStep);
  if (gemvStep && quantGemvFusable(op) && (!isLogits || fused.logits)) {
    // Tensor-core GEMV: 16-row tiles (mode 2: 8 gate rows + their 8 up rows, so N / 16 tiles too).
    const { norm, epilogue, tailNorm, rowScale } = fused;
    const mode = fused.logits ? 3 : epilogue?.mode ?? 0;
    // quantNormScratch holds [GEMV_MAX_ROWS, hiddenSize / 16] sums: the residual's width.
    const width = env.plan.attributes.hiddenSize;
    if (
      (tailNorm || rowScale) &&
      (norm || (tailNorm && (mode !== 1 || N !== width)) || (rowScale && K !== width) || rows > maxGemvRows || env.quantNormScratch === undefined)
    ) {
      throw new InternalError(
        `launch plan: op ${i}'s split RMSNorm needs no prologue, a residual epilogue of the hidden width (tailNorm) and LaunchEnv.quantNormScratch`,
      );
    }
    const tail = tailNorm ? [buf(tailNorm.out), env.quantNormScratch!] : [];
    const form = norm ? "_norm" : tailNorm ? "_addnorm" : rowScale ? "_rs" : "";
    // quantGemvFast: the same launch, another variant; quantGemvPairX: a tailNorm pair of two uint4 linears as
    // quant_gemv_fastx_{addnorm,rs}_u4 (the norm's `out` in the mma's pair order: _addnorm writes it so, _rs reads it so);
    // a pairOut gate_up (_rs, mode 2) and its xPair down (_addnorm or plain) as quant_gemv_fastxx* (SiLU·mul out in pair order).
    const px = env.quantGemvFast && env.quantGemvPairX && u === "u4";
    const xx = px && !!env.quantGemvPairDown && (rowScale ? mode === 2 && !!epilogue?.pairOut : !!fused.xPair && !norm);
    const pair = xx || (px && !!(tailNorm?.u4Pair || rowScale?.u4Pair));
    const family = xx ? "quant_gemv_fastxx" : pair ? "quant_gemv_fastx" : env.quantGemvFast ? "quant_gemv_fast" : "quant_gemv_fused";
    k(i, `${family}${form}_${u}`, [quantGemvGrid(N), 1, 1], 256, [
      buf(norm ? norm.x : op.x),
      env.weight(op.weight),
      env.weight(f.scales),
      zeros,
      bias,
      fused.logits ? env.logits : buf(epilogue ? epilogue.into : op.out),
      norm ? env.weight(norm.weight) : tailNorm ? env.weight(tailNorm.weight) : rowScale ? env.quantNormScratch! : 0n,
      norm ? norm.eps : tailNorm ? tailNorm.eps : rowScale ? rowScale.eps : 0,
      rows,
      N,
      K,
      group,
      mode,
      ...tail,
    ]);
    return;
  }
  if (fused.norm || fused.epilogue || fused.logits || fused.tailNorm || fused.rowScale) {
    throw new InternalError(`launch plan: op ${i} cannot take a fused quantized GEMV`);
  }
  if (!isLogits && gemvStep && K % vec === 0 && group % vec === 0) {
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
  if (planQuantGemm(l, k, maxGemvRows)) return; // quant_gemm_plan.ts
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
