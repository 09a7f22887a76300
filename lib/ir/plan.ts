import { InternalError } from "../util/errors.ts";
import type { ActivationDecl, Network, NetworkAttributes, Op } from "./network.ts";

/** An activation placed in the step arena. */
export interface PlannedBuffer extends ActivationDecl {
  /** Byte offset in the activation arena. */
  readonly offset: number;
  /** Bytes reserved: width × row capacity × element size, 256-aligned. */
  readonly bytes: number;
}

/**
 * The static plan an engine runs: ops in order, every activation at a fixed arena offset sized for
 * the optimization profile. Backends turn it into kernel launches (CUDA) or loops (CPU).
 */
export interface EnginePlan {
  readonly ops: readonly Op[];
  readonly buffers: Readonly<Record<string, PlannedBuffer>>;
  /** Arena size in bytes. */
  readonly arenaBytes: number;
  /** Rows of a "tokens" activation: the profile's maxNumTokens. */
  readonly maxTokens: number;
  /** Rows of a "seqs" activation (logit rows per step). */
  readonly maxSeqs: number;
  /** Bytes of one activation element. */
  readonly elementBytes: number;
  readonly attributes: NetworkAttributes;
}

const ALIGN = 256;
const alignUp = (n: number, a = ALIGN): number => Math.ceil(n / a) * a;

/** Names of the activations an op reads and writes. */
export function opTensors(op: Op): { reads: string[]; writes: string[] } {
  switch (op.type) {
    case "embedding": return { reads: [], writes: [op.out] };
    case "rmsnorm": return { reads: [op.x], writes: [op.out] };
    case "add_rmsnorm": return { reads: [op.x, op.residual], writes: [op.residual, op.out] };
    case "linear": return { reads: [op.x], writes: [op.out] };
    case "qk_norm": return { reads: [op.qkv], writes: [op.qkv] };
    case "rope_kv_write": return { reads: [op.qkv], writes: [op.q] };
    case "paged_attention": return { reads: [op.q], writes: [op.out] };
    case "silu_mul": return { reads: [op.gateUp], writes: [op.out] };
    case "add": return { reads: [op.x, op.out], writes: [op.out] };
    case "gather_rows": return { reads: [op.x], writes: [op.out] };
    case "sample": return { reads: [op.logits], writes: [] };
  }
}

/**
 * Fusion pass: `add(x → h)` followed by `rmsnorm(h) → y` becomes one `add_rmsnorm`
 * (one read of the residual stream instead of two).
 */
export function fuseAddRmsnorm(ops: readonly Op[]): Op[] {
  const out: Op[] = [];
  for (let i = 0; i < ops.length; i++) {
    const a = ops[i], b = ops[i + 1];
    if (a.type === "add" && b?.type === "rmsnorm" && b.x === a.out) {
      out.push({ type: "add_rmsnorm", x: a.x, residual: a.out, weight: b.weight, eps: b.eps, out: b.out });
      i++;
    } else {
      out.push(a);
    }
  }
  return out;
}

/**
 * Places activations in one arena, reusing space between tensors whose lifetimes (first write to
 * last read, in op order) do not overlap. Greedy: largest first, lowest offset that fits.
 */
export function planMemory(
  net: Network,
  ops: readonly Op[],
  profile: { maxTokens: number; maxSeqs: number; elementBytes: number },
): { buffers: Record<string, PlannedBuffer>; arenaBytes: number } {
  const first = new Map<string, number>(), last = new Map<string, number>();
  ops.forEach((op, i) => {
    const { reads, writes } = opTensors(op);
    for (const t of [...reads, ...writes]) {
      if (!net.activations.has(t)) throw new InternalError(`plan: op ${op.type} uses undeclared activation '${t}'`);
      if (!first.has(t)) first.set(t, i);
      last.set(t, i);
    }
  });
  // The logits are read by the runtime after the last op.
  const logits = net.attributes?.logits;
  if (logits) last.set(logits, ops.length);
  const items = [...first.keys()].map((name) => {
    const a = net.activations.get(name)!;
    const rows = a.rows === "tokens" ? profile.maxTokens : profile.maxSeqs;
    return { a, bytes: alignUp(a.width * rows * profile.elementBytes), start: first.get(name)!, end: last.get(name)! };
  }).sort((x, y) => y.bytes - x.bytes || x.start - y.start);
  const placed: { offset: number; bytes: number; start: number; end: number }[] = [];
  const buffers: Record<string, PlannedBuffer> = {};
  let arenaBytes = 0;
  for (const it of items) {
    const clashes = placed.filter((p) => p.start <= it.end && it.start <= p.end).sort((x, y) => x.offset - y.offset);
    let offset = 0;
    for (const p of clashes) {
      if (offset + it.bytes <= p.offset) break;
      offset = Math.max(offset, p.offset + p.bytes);
    }
    placed.push({ offset, bytes: it.bytes, start: it.start, end: it.end });
    buffers[it.a.name] = { ...it.a, offset, bytes: it.bytes };
    arenaBytes = Math.max(arenaBytes, offset + it.bytes);
  }
  return { buffers, arenaBytes };
}
