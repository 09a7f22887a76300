/**
 * Which activations each op of a plan reads (shared by the decode-fusion pass and the FP8 launch planning,
 * which must not import each other).
 */
import type { Op } from "../../ir/network.ts";

/** The activations an op reads (undefined: an op this pass does not know). */
export function opReads(op: Op): readonly string[] | undefined {
  switch (op.type) {
    case "embedding":
      return [];
    case "rmsnorm":
      return [op.x];
    case "add_rmsnorm":
      return [op.x, op.residual];
    case "linear":
      return [op.x];
    case "qk_norm":
      return [op.qkv];
    case "rope_kv_write":
      return [op.qkv];
    case "paged_attention":
      return [op.q];
    case "silu_mul":
      return [op.gateUp];
    case "add":
      return [op.x, op.out];
    case "gather_rows":
      return [op.x];
    case "sample":
      return [op.logits];
    case "all_reduce":
      // Tensor parallelism: it sums the linear's output in place, so that linear has two readers
      // (this and the residual add) and keeps its own launch; the rest of the layer still fuses.
      return [op.x];
    default:
      return undefined;
  }
}

const readerCountsOf = new WeakMap<readonly Op[], ReadonlyMap<string, number> | null>();

/**
 * How many reads of each activation an op list makes (an op reading a name twice counts twice), or null when an op
 * `opReads` does not know is among them (then any activation may have more readers). Computed once per op list.
 *
 * @example
 * ```ts
 * const readers = readerCounts(plan.ops);
 * const onlyOne = readers !== null && readers.get(norm.out) === 1;
 * ```
 */
export function readerCounts(ops: readonly Op[]): ReadonlyMap<string, number> | null {
  if (readerCountsOf.has(ops)) return readerCountsOf.get(ops)!;
  let counts: Map<string, number> | null = new Map();
  for (const op of ops) {
    const r = opReads(op);
    if (!r) {
      counts = null;
      break;
    }
    for (const n of r) counts.set(n, (counts.get(n) ?? 0) + 1);
  }
  readerCountsOf.set(ops, counts);
  return counts;
}
