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
