/**
 * The decode-step fusion pass of the CUDA launch plan (lib/backends/cuda/launch_plan.ts): which ops
 * of an engine plan a fused decode step performs inside another op's launch.
 */
import type { Op } from "../../ir/network.ts";
import type { EnginePlan } from "../../ir/plan.ts";
import { quantGemvFusable } from "./quant_launch.ts";
import { fp8GemvFusable } from "./fp8_launch.ts";
import { opReads } from "./op_reads.ts";

/** What a decode step folds together (op indices of the engine plan). */
export interface DecodeFusion {
  /** Ops whose launch another launch performs. */
  readonly skip: Set<number>;
  /** linear → RMSNorm of `x` with `weight` in its prologue. */
  readonly norm: Map<number, { readonly x: string; readonly weight: string; readonly eps: number }>;
  /** linear → epilogue: mode 1 (residual += out, into `into`: an add_rmsnorm's or an add's) or mode 2 (silu·mul, into `into`). */
  readonly epilogue: Map<number, { readonly mode: 1 | 2; readonly into: string; readonly pairOut?: boolean }>;
  /** uint4 linears whose x is a uint4 gate_up's SiLU·mul output marked `pairOut` (quantGemvPairX: in the mma's pair order). */
  readonly xPair: Set<number>;
  /** add_rmsnorm whose add moved into the producing linear: only the norm is left (rmsnorm of the residual). */
  readonly normOnly: Set<number>;
  /** paged_attention → the qkv buffer of the rope_kv_write it absorbs. */
  readonly attnQkv: Map<number, string>;
  /**
   * Quantized linear with a residual epilogue → the add_rmsnorm right after it (skipped): the linear writes `out` =
   * bf16(residual · weight) and the tile sums of squares (quant_gemv_fused_addnorm; `tailNorm` of planDecodeFusion).
   */
  readonly tailNorm: Map<number, { readonly weight: string; readonly eps: number; readonly out: string; readonly u4Pair: boolean }>;
  /**
   * The quantized linear reading such an `out`: its sums scaled by the rms of the sums of squares (quant_gemv_fused_rs).
   * u4Pair (both): producer and consumer are uint4, so `out` may be written in the mma's pair order (quant_gemv_fastx*).
   */
  readonly rowScale: Map<number, { readonly eps: number; readonly u4Pair: boolean }>;
}

/** Most x elements (rows × inFeatures) gemv_fused stages for a prologue RMSNorm. */
const GEMV_FUSED_STAGE = 8192;

/**
 * Which launches of a decode step of `rows` sequences fold together: RMSNorm into the following
 * GEMV's prologue, residual add / SiLU·mul into the producing GEMV's epilogue, RoPE + KV write into
 * decode attention (`decodeAttention`: the step uses the split decode kernels). In a sharded plan the
 * linears an `all_reduce` reads keep their launch (the residual add waits for the sum). A plan
 * holding an op this pass does not know fuses nothing (undefined: the lm_head stays unfused too).
 *
 * The arena (lib/ir/plan.ts planMemory) was laid out for the unfused op order, so a fused launch's
 * output may share memory with what the launch reads (a layer's attention output with its qkv, the
 * SiLU·mul output with the MLP input); every block of these kernels reads inputs other blocks' outputs
 * land on, so such a fusion is left out.
 */
export function planDecodeFusion(
  plan: EnginePlan,
  rows: number,
  decodeAttention: boolean,
  isLogits: (name: string) => boolean,
  gemvMaxRows: number,
  tailNorm = false,
): DecodeFusion | undefined {
  const f: DecodeFusion = {
    skip: new Set(),
    norm: new Map(),
    epilogue: new Map(),
    normOnly: new Set(),
    attnQkv: new Map(),
    tailNorm: new Map(),
    rowScale: new Map(),
    xPair: new Set(),
  };
  const readers = new Map<string, number[]>();
  for (const [i, op] of plan.ops.entries()) {
    const r = opReads(op);
    if (!r) return undefined;
    for (const n of r) readers.set(n, [...(readers.get(n) ?? []), i]);
  }
  // Arena bytes of `width` elements × rows of activation `name`; whether two such ranges overlap.
  const range = (name: string, width: number): [number, number] => {
    const b = plan.buffers[name];
    return [b.offset, b.offset + rows * width * plan.elementBytes];
  };
  const overlap = (a: [number, number], b: [number, number]): boolean => a[0] < b[1] && b[0] < a[1];
  const only = (name: string): number | undefined => {
    const r = readers.get(name);
    return r && r.length === 1 ? r[0] : undefined;
  };
  const gemvOk = (op: Op): op is Extract<Op, { type: "linear" }> =>
    op.type === "linear" && (!op.weightFormat || quantGemvFusable(op) || fp8GemvFusable(op)) && !op.lora && op.inFeatures % 8 === 0 && !isLogits(op.out) &&
    rows <= gemvMaxRows;
  // The lm_head also runs as gemv_fused in fused decode steps (fp32 logits, mode 3).
  const logitsOk = (op: Op): op is Extract<Op, { type: "linear" }> =>
    op.type === "linear" && (!op.weightFormat || quantGemvFusable(op) || fp8GemvFusable(op)) && !op.lora && op.inFeatures % 8 === 0 && isLogits(op.out) &&
    rows <= gemvMaxRows;
  const added = new Set<number>();
  /** add_rmsnorm → the linear whose epilogue took its add. */
  const addedBy = new Map<number, number>();
  plan.ops.forEach((op, i) => {
    if (!gemvOk(op)) return;
    const j = only(op.out);
    if (j === undefined || j <= i) return;
    const c = plan.ops[j];
    // The residual is then updated at op i instead of op j: nothing in between may read it.
    const between = (name: string): boolean => (readers.get(name) ?? []).some((r) => r > i && r < j);
    if (c.type === "add_rmsnorm" && c.x === op.out && c.residual !== op.x && !between(c.residual)) {
      f.epilogue.set(i, { mode: 1, into: c.residual });
      added.add(j);
      addedBy.set(j, i);
    } else if (c.type === "add" && c.x === op.out && c.out !== op.x && !between(c.out)) {
      f.epilogue.set(i, { mode: 1, into: c.out });
      f.skip.add(j);
    } else if (c.type === "silu_mul" && c.gateUp === op.out && op.outFeatures === 2 * c.width) {
      f.epilogue.set(i, { mode: 2, into: c.out });
      f.skip.add(j);
    }
  });
  plan.ops.forEach((op, j) => {
    if (op.type !== "rmsnorm" && !(op.type === "add_rmsnorm" && added.has(j))) return;
    const src = op.type === "rmsnorm" ? op.x : op.residual;
    const c = only(op.out);
    const lin = c !== undefined && c > j ? plan.ops[c] : undefined;
    // tailNorm: the quantized producer right before the norm writes bf16(residual · weight) into the norm's output and
    // the sums of squares, the quantized consumer scales its sums by the rms (no RMSNorm prologue in its every block).
    // Each producer block writes its own rows of `out` while others still read x: `out` may sit on neither.
    const by = addedBy.get(j);
    const prod = by === undefined ? undefined : plan.ops[by];
    if (
      tailNorm && op.type === "add_rmsnorm" && by === j - 1 && prod?.type === "linear" && quantGemvFusable(prod) && lin && c === j + 1 &&
      gemvOk(lin) && quantGemvFusable(lin) && lin.x === op.out && !overlap(range(op.out, lin.inFeatures), range(op.residual, lin.inFeatures)) &&
      !overlap(range(op.out, lin.inFeatures), range(prod.x, prod.inFeatures))
    ) {
      const u4Pair = prod.weightFormat?.format === "uint4" && lin.weightFormat?.format === "uint4";
      f.tailNorm.set(by, { weight: op.weight, eps: op.eps, out: op.out, u4Pair });
      f.rowScale.set(c!, { eps: op.eps, u4Pair });
      f.skip.add(j);
      return;
    }
    if (lin && c === j + 1 && (gemvOk(lin) || logitsOk(lin)) && lin.x === op.out && rows * lin.inFeatures <= GEMV_FUSED_STAGE && op.out !== src) {
      f.norm.set(c!, { x: src, weight: op.weight, eps: op.eps });
      f.skip.add(j);
    } else if (op.type === "add_rmsnorm") {
      f.normOnly.add(j);
    }
  });
  // A GEMV's warps all read the whole x: its output must not overlap x. SiLU·mul epilogue: silu_mul
  // runs again; a residual epilogue (the residual stream is live across the step, so never placed on
  // a GEMV input): nothing fuses.
  for (const [i, e] of [...f.epilogue]) {
    const op = plan.ops[i] as Extract<Op, { type: "linear" }>;
    if (!overlap(range(f.norm.get(i)?.x ?? op.x, op.inFeatures), range(e.into, e.mode === 2 ? op.outFeatures / 2 : op.outFeatures))) continue;
    if (e.mode === 1) return undefined;
    f.epilogue.delete(i);
    f.skip.delete(only(op.out)!);
  }
  // A prologue RMSNorm reads the norm's input instead of its output (mode 0: y is the linear's output).
  for (const [c, n] of [...f.norm]) {
    const op = plan.ops[c] as Extract<Op, { type: "linear" }>;
    if (f.epilogue.has(c) || isLogits(op.out) || !overlap(range(n.x, op.inFeatures), range(op.out, op.outFeatures))) continue;
    f.norm.delete(c);
    f.skip.delete(c - 1);
    if (plan.ops[c - 1].type === "add_rmsnorm") f.normOnly.add(c - 1);
  }
  // A uint4 gate_up's (a rowScale GEMV's) SiLU·mul output read only by a fused uint4 GEMV (down, without a prologue; its tailNorm out, if
  // any, read by a uint4 GEMV too) may be written in the mma's pair order (pairOut) and read so (xPair).
  for (const [i, e] of [...f.epilogue]) {
    const op = plan.ops[i] as Extract<Op, { type: "linear" }>, d = only(e.into);
    const dn = d !== undefined && d > i ? plan.ops[d] : undefined;
    if (e.mode !== 2 || op.weightFormat?.format !== "uint4" || !f.rowScale.has(i) || !dn || !gemvOk(dn) || !quantGemvFusable(dn)) continue;
    if (dn.weightFormat?.format !== "uint4" || dn.x !== e.into || f.norm.has(d!) || f.rowScale.has(d!) || f.tailNorm.get(d!)?.u4Pair === false) continue;
    f.epilogue.set(i, { ...e, pairOut: true });
    f.xPair.add(d!);
  }
  if (decodeAttention) {
    plan.ops.forEach((op, i) => {
      if (op.type !== "rope_kv_write" || (op.headDim !== 64 && op.headDim !== 128)) return;
      const j = only(op.q);
      const a = j !== undefined && j > i ? plan.ops[j] : undefined;
      if (!a || a.type !== "paged_attention" || a.q !== op.q || a.layer !== op.layer || a.headDim !== op.headDim) return;
      // decode_attention's blocks read their token's qkv row and write out: out may sit on qkv only for
      // one token at the same address (out head h is then q head h, read by its kv group's blocks
      // before the last of them writes it; k and v lie past out).
      const qkv = range(op.qkv, (op.numHeads + 2 * op.numKvHeads) * op.headDim), out = range(a.out, op.numHeads * op.headDim);
      if (!overlap(qkv, out) || (rows === 1 && qkv[0] === out[0])) {
        f.attnQkv.set(j!, op.qkv);
        f.skip.add(i);
      }
    });
  }
  return f;
}
