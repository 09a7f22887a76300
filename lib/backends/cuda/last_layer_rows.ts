/**
 * Last-layer row pruning of the CUDA launch plan (issue 16 item 2): in a prefill or mixed step only the
 * logits rows (one per sequence, usually) need the last layer past its KV write. Every token's K and V
 * still enter the cache (rope_kv_write runs over all rows), but the last layer's attention, o_proj, MLP and
 * the final norm run over the logits rows alone: the rows the rest of the layer reads (the attention's
 * queries, the residual stream) are gathered into a scratch first, and the attention takes each logits
 * row as a one-token chunk past its cached prefix (its position and its sequence from the staged
 * `logitPositions` / `logitSeqStarts`). Pure data: no FFI.
 *
 * Each gathered row is computed by the same kernels as in the full step — a flash-attention query row's
 * key tiles start at 0 either way (no window) and tiles past its position add exact zeros; the linears are
 * batch-invariant cuBLASLt (a row's bits do not depend on M) — so the logits are the same bits with or
 * without pruning in batch-invariant sessions (checked on the device by bench/prefill_ttft.ts).
 */
import type { Op } from "../../ir/network.ts";
import type { EnginePlan } from "../../ir/plan.ts";
import { opReads } from "./op_reads.ts";

/** Where the pruned part of a plan starts and what it gathers. */
export interface LastLayerRows {
  /** Index of the last paged_attention op: it and every later op run over the logits rows only. */
  readonly cut: number;
  /**
   * Token-row activations written before the cut and read from it on (the attention's queries, the
   * residual stream): each is gathered into the scratch at `offset` bytes (per logits row: `width` elements).
   */
  readonly gathers: readonly { readonly name: string; readonly width: number; readonly offset: number }[];
  /** gather_rows ops past the cut: their input already holds the logits rows, so their output aliases it. */
  readonly aliases: ReadonlyMap<number, string>;
  /** Scratch bytes for `capRows` logits rows. */
  readonly scratchBytes: number;
}

/** Ops that may follow the cut (plain linears: no packed weights, no LoRA in the step; no collectives). */
const PRUNABLE = new Set<Op["type"]>(["paged_attention", "linear", "add_rmsnorm", "rmsnorm", "add", "silu_mul", "gather_rows", "sample"]);

/**
 * The last-layer pruning of `plan` for steps of up to `capRows` logits rows (undefined: the plan has an
 * op past its last attention this pass does not handle — a quantized linear, an FP8 one unless `fp8`
 * (CudaSessionOptions.fp8PruneLastLayer), an all-reduce — or no attention at all; such plans always run every row).
 */
export function planLastLayerRows(plan: EnginePlan, capRows: number, fp8 = false): LastLayerRows | undefined {
  let cut = -1;
  plan.ops.forEach((op, i) => {
    if (op.type === "paged_attention") cut = i;
  });
  if (cut < 0) return undefined;
  const written = new Set<string>();
  const gathered: { name: string; width: number; offset: number }[] = [];
  const aliases = new Map<number, string>();
  let bytes = 0;
  for (let i = cut; i < plan.ops.length; i++) {
    const op = plan.ops[i];
    if (!PRUNABLE.has(op.type) || (op.type === "linear" && op.weightFormat && !(fp8 && op.weightFormat.format === "fp8_e4m3"))) return undefined;
    const reads = opReads(op);
    if (!reads) return undefined;
    for (const n of reads) {
      const b = plan.buffers[n];
      if (!b || b.rows !== "tokens" || written.has(n) || gathered.some((g) => g.name === n)) continue;
      gathered.push({ name: n, width: b.width, offset: bytes });
      bytes += Math.ceil((capRows * b.width * plan.elementBytes) / 256) * 256;
    }
    if (op.type === "gather_rows") aliases.set(i, op.x);
    for (const n of opWrites(op)) written.add(n);
  }
  return { cut, gathers: gathered, aliases, scratchBytes: Math.max(bytes, 256) };
}

/** The activations an op writes (of the ops PRUNABLE allows). */
function opWrites(op: Op): string[] {
  switch (op.type) {
    case "add_rmsnorm":
      return [op.residual, op.out];
    case "paged_attention":
    case "linear":
    case "rmsnorm":
    case "add":
    case "silu_mul":
    case "gather_rows":
      return [op.out];
    default:
      return [];
  }
}
