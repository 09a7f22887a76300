/**
 * RMSNorm folding of decode steps of more than GEMV_MAX_ROWS sequences (CudaSessionOptions.decodeNormFold): an
 * RMSNorm `y = x · r · w` (r = 1 / rms(x) per row) whose only reader is a plain bf16 linear becomes
 * `linear(y) = r · (x · (W · diag(w))ᵀ)`: the linear reads the norm's input (the residual stream) with the folded weight
 * W' = W · diag(w), and the one kernel that reads the linear's output scales its rows by r, computing r from the
 * residual row itself (silu_mul_rs: silu(r · gate) · (r · up); decode_attention_batch4_rs: q, k, v times r before RoPE).
 * An add_rmsnorm's add moves into the GEMM before it (the launch plan's residual epilogue). Pure: which ops fold, no
 * addresses.
 */
import type { Op } from "../../ir/network.ts";
import type { EnginePlan } from "../../ir/plan.ts";
import { readerCounts } from "./op_reads.ts";

/** One norm the plan can fold: the norm op, the linear after it, the kernel reading that linear's output. */
export interface NormFoldCandidate {
  /** The rmsnorm / add_rmsnorm op (left out). */
  readonly norm: number;
  /** The linear reading the norm's output: it reads `x` with the folded weight instead. */
  readonly linear: number;
  /** The norm's input rows (rmsnorm x, add_rmsnorm residual): the residual stream. */
  readonly x: string;
  /** The norm's weight (folded into the linear's) and epsilon. */
  readonly normWeight: string;
  readonly eps: number;
  /** The op that scales the linear's output rows by 1 / rms(x): a silu_mul, or the paged_attention after the rope_kv_write. */
  readonly consumer: number;
  readonly consumerKind: "silu_mul" | "attention";
}

/** What one step folds (planNormFold). */
export interface NormFold {
  /** Norm ops left out. */
  readonly skip: ReadonlySet<number>;
  /** Folded linear → the activation it reads instead of the norm's output. */
  readonly linear: ReadonlyMap<number, string>;
  /** silu_mul / paged_attention → the row scale's source rows and epsilon. */
  readonly rowScale: ReadonlyMap<number, { readonly x: string; readonly eps: number }>;
}

const plainLinear = (op: Op | undefined, logits: string): op is Extract<Op, { type: "linear" }> =>
  op?.type === "linear" && !op.weightFormat && !op.bias && !op.lora && op.out !== logits;

/** Activations op `op` writes (the fields this pass needs to see: out, an add_rmsnorm's residual, RoPE's q). */
function writes(op: Op): string[] {
  const o = op as { out?: string; residual?: string; q?: string; type: string };
  return [o.out, o.type === "add_rmsnorm" ? o.residual : undefined, o.type === "rope_kv_write" ? o.q : undefined].filter((n): n is string => !!n);
}

/**
 * Every norm of `plan` that folds, by structure: the norm's output read by the next op only, a plain bf16 linear (no
 * bias, no quantized format, no LoRA, not the lm_head) whose output one op reads — a silu_mul, or a rope_kv_write whose q
 * only the paged_attention of its layer reads (head dims 64 / 128); an add_rmsnorm also needs a plain linear right before
 * it whose output only it reads (its GEMM takes the add); the norm's input not written before the consumer.
 */
export function normFoldCandidates(plan: EnginePlan): NormFoldCandidate[] {
  const ops = plan.ops, logits = plan.attributes.logits;
  const readers = readerCounts(ops);
  if (!readers) return [];
  const one = (name: string): boolean => readers.get(name) === 1;
  const out: NormFoldCandidate[] = [];
  ops.forEach((op, j) => {
    if (op.type !== "rmsnorm" && op.type !== "add_rmsnorm") return;
    const x = op.type === "rmsnorm" ? op.x : op.residual;
    if (op.type === "add_rmsnorm") {
      const prev = ops[j - 1];
      if (!plainLinear(prev, logits) || prev.out !== op.x || !one(op.x)) return;
    }
    const lin = ops[j + 1];
    if (!plainLinear(lin, logits) || lin.x !== op.out || !one(op.out) || !one(lin.out)) return;
    let consumer = -1, kind: NormFoldCandidate["consumerKind"] = "silu_mul";
    const c = ops[j + 2];
    if (c?.type === "silu_mul" && c.gateUp === lin.out && lin.outFeatures === 2 * c.width) {
      consumer = j + 2;
    } else if (c?.type === "rope_kv_write" && c.qkv === lin.out && (c.headDim === 64 || c.headDim === 128) && one(c.q)) {
      const a = ops[j + 3];
      if (a?.type === "paged_attention" && a.q === c.q && a.layer === c.layer && a.headDim === c.headDim) {
        consumer = j + 3;
        kind = "attention";
      }
    }
    if (consumer < 0) return;
    for (let i = j + 1; i <= consumer; i++) if (writes(ops[i]).includes(x)) return;
    out.push({ norm: j, linear: j + 1, x, normWeight: op.weight, eps: op.eps, consumer, consumerKind: kind });
  });
  return out;
}

const candidatesOf = new WeakMap<EnginePlan, NormFoldCandidate[]>();

/**
 * The folds of one decode step: the plan's candidates whose attention consumer runs a row-scaling entry point
 * (`attentionOk(op index)`; silu_mul consumers always do).
 */
export function planNormFold(plan: EnginePlan, attentionOk: (op: number) => boolean): NormFold {
  let cands = candidatesOf.get(plan);
  if (!cands) candidatesOf.set(plan, cands = normFoldCandidates(plan));
  const skip = new Set<number>(), linear = new Map<number, string>(), rowScale = new Map<number, { x: string; eps: number }>();
  for (const c of cands) {
    if (c.consumerKind === "attention" && !attentionOk(c.consumer)) continue;
    skip.add(c.norm);
    linear.set(c.linear, c.x);
    rowScale.set(c.consumer, { x: c.x, eps: c.eps });
  }
  return { skip, linear, rowScale };
}
