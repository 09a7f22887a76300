/**
 * Launches of one linear op (launch_plan.ts planLaunches): FP8, lowbit and weight-only quantized formats through their
 * planners, fused decode GEMVs (RMSNorm prologue, epilogues, the lm_head), the skinny GEMV for decode-sized bf16
 * rows, else a cuBLASLt GEMM (pinned algorithms in batch-invariant sessions).
 */
import type { Op } from "../../ir/network.ts";
import { planQuantLinear, quantGemvFusable } from "./quant_launch.ts";
import { isLowbitLinear, planLowbitLinear } from "./lowbit_launch.ts";
import { fp8GemvFusable, planFp8Linear } from "./fp8_launch.ts";
import { isPdlKernel } from "./kernel_signatures.ts";
import { GEMV_MAX_ROWS, gemvSplitRows } from "./launch_types.ts";
import type { LinearStep, StepCtx } from "./step_ctx.ts";

const cdiv = (a: number, b: number): number => Math.ceil(a / b);

/** Plans linear op `i` of the step into `c.out`. */
export function planLinear(c: StepCtx, op: Extract<Op, { type: "linear" }>, i: number): void {
  const { env, T, S, buf, rowsOf, fuse, out, pdl, preQuantized, k, gemmType } = c;
  const a = env.plan.attributes, elem = env.elem;
  const rows = rowsOf(op.x);
  const isLogits = op.out === a.logits;
  const lin: LinearStep = { op, i, rows, isLogits, env, decodeStep: T === S, buf };
  const nrm = fuse?.norm.get(i), epi = fuse?.epilogue.get(i);
  // Fused decode: launches a format planner pushed from `first` on take programmatic dependent launch where they and
  // their predecessor both wait for it in code.
  const pdlFrom = (first: number): void => {
    for (let j = first; j < out.length; j++) {
      const l = out[j], prev = out[j - 1];
      if (pdl && l.kind === "kernel" && isPdlKernel(l.kernel) && prev?.kind === "kernel" && isPdlKernel(prev.kernel)) out[j] = { ...l, pdl };
    }
  };
  // Fused decode: the lm_head also streams through gemv_fused (fp32 logits, mode 3): ~95% of the copy
  // bandwidth on llama-3.2-1b, where the pinned batch-invariant cuBLASLt algorithm took 2x longer.
  const logitsGemv = !!fuse && isLogits && !op.weightFormat && !op.lora && op.inFeatures % 8 === 0 && rows <= GEMV_MAX_ROWS;
  if (op.weightFormat?.format === "fp8_e4m3") {
    const first = out.length;
    planFp8Linear(lin, out, {
      norm: nrm,
      epilogue: epi,
      logits: !!fuse && isLogits && fp8GemvFusable(op) && rows <= GEMV_MAX_ROWS,
      preQuantized: preQuantized.has(i),
    });
    pdlFrom(first); // the FP8 GEMVs wait for their predecessor in code too (pdlWait after the first weight loads)
    return;
  }
  if (isLowbitLinear(op)) {
    const first = out.length;
    planLowbitLinear(lin, out, preQuantized.has(i));
    pdlFrom(first); // the activation quantizer and the GEMV wait for their predecessor in code too
    return;
  }
  if (op.weightFormat) {
    planQuantLinear(lin, k, out, gemmType, GEMV_MAX_ROWS, {
      norm: nrm,
      epilogue: epi,
      logits: !!fuse && isLogits && quantGemvFusable(op) && rows <= GEMV_MAX_ROWS,
      tailNorm: fuse?.tailNorm.get(i),
      rowScale: fuse?.rowScale.get(i),
      xPair: fuse?.xPair.has(i),
    });
    return;
  }
  if (nrm || epi || logitsGemv) {
    const M = rows <= 1 ? 1 : rows <= 2 ? 2 : rows <= 4 ? 4 : 8;
    const mode = logitsGemv ? 3 : epi?.mode ?? 0;
    // gemvSplitK: skinny layers stream each row with ks warps (gemv_fused_ks; mode's bits 4+ carry ks).
    const ks = env.gemvSplitK ? gemvSplitRows(op.outFeatures, op.inFeatures) : 1;
    // One output row per ks warps, 8 warps per block (mode 2: 4 / ks gate rows + their up rows per block).
    const blocks = mode === 2 ? cdiv(op.outFeatures / 2, 4 / ks) : cdiv(op.outFeatures, 8 / ks);
    // gemvXPre: ≤ 2 rows on the entry points that load x with the weights (the same sums).
    const xpre = env.gemvXPre && M <= 2 ? "_xpre" : "";
    const name = `${nrm ? "gemv_fused_norm" : "gemv_fused"}${ks > 1 ? "_ks" : ""}${xpre}_bf16_m${M}`;
    k(i, name, [blocks, 1, 1], 256, [
      buf(nrm ? nrm.x : op.x),
      env.weight(op.weight),
      op.bias ? env.weight(op.bias) : 0n,
      logitsGemv ? env.logits : buf(epi ? epi.into : op.out),
      nrm ? env.weight(nrm.weight) : 0n,
      nrm ? nrm.eps : 0,
      rows,
      op.outFeatures,
      op.inFeatures,
      mode | (ks > 1 ? ks << 4 : 0),
      0n,
      0n,
    ]);
    return;
  }
  // Decode-sized bf16 linears: one warp per output column streams the weight row once (the lm_head,
  // fp32 out, stays on cuBLASLt, which reaches the copy bandwidth on it).
  if (env.gemv && elem === "bf16" && !isLogits && rows <= GEMV_MAX_ROWS && op.inFeatures % 8 === 0 && (!env.batchInvariant || T === S)) {
    const M = rows <= 1 ? 1 : rows <= 2 ? 2 : rows <= 4 ? 4 : 8;
    k(i, `gemv_bf16_m${M}`, [cdiv(op.outFeatures, 8), 1, 1], 256, [
      buf(op.x),
      env.weight(op.weight),
      op.bias ? env.weight(op.bias) : 0n,
      buf(op.out),
      rows,
      op.outFeatures,
      op.inFeatures,
    ]);
    return;
  }
  // Batch-invariant: pinned non-split-K cuBLASLt algorithms, except decode steps too big for the
  // skinny-GEMM kernel (> 8 sequences), which keep the per-M heuristic (split-K) for throughput (their lm_head too
  // with decodeLogitsTuned).
  const invariant = !!env.batchInvariant && !(T === S && T > GEMV_MAX_ROWS && (!isLogits || !!env.decodeLogitsTuned));
  out.push({
    kind: "gemm",
    op: i,
    m: rows,
    n: op.outFeatures,
    k: op.inFeatures,
    dtype: gemmType,
    outDtype: isLogits ? "fp32" : gemmType,
    invariant,
    a: buf(op.x),
    b: env.weight(op.weight),
    d: isLogits ? env.logits : buf(op.out),
    bias: op.bias ? env.weight(op.bias) : null,
  });
}
