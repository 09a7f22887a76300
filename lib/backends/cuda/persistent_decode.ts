/**
 * The persistent decode kernel's part of a CUDA launch plan (issue 16 item 1, session 9; LaunchEnv.persistentDecode):
 * which ops of a fused batch-1 decode step kernels/decode_persistent.cu runs in one launch — every decoder
 * layer, from the first layer's RMSNorm to the last layer's down projection — and its layer table. Pure: no FFI.
 */
import type { Op } from "../../ir/network.ts";
import { type EnginePlan, opTensors } from "../../ir/plan.ts";
import type { DecodeFusion } from "./decode_fusion.ts";

/** The kernel's entry point. */
export const PERSISTENT_DECODE_KERNEL = "decode_persistent_bf16";
/** Threads per block: 8 consumer warps and the weight-stream (producer) warp. */
export const PERSISTENT_DECODE_THREADS = 288;
/** Dynamic shared memory of a block (DP_SMEM): the weight ring (DP_NSLOT 32 KB slots) + the attention scores of a key chunk (DP_MAXCTX floats). */
export const PERSISTENT_DECODE_SMEM = 5 * 32768 + 4096 * 4;
/** The shapes the kernel is compiled for (kernels/decode_persistent.cu DP_*: llama-3.2-1b). */
export const PERSISTENT_DECODE_SHAPE = { hidden: 2048, intermediate: 8192, numHeads: 32, numKvHeads: 8, headDim: 64 } as const;

/** One decoder layer's weights, in the kernel's DpLayer order. */
export interface PersistentLayer {
  readonly ln1: string;
  readonly qkv: string;
  readonly o: string;
  readonly ln2: string;
  readonly gateUp: string;
  readonly down: string;
}

/** What the persistent launch replaces and reads. */
export interface PersistentDecodePlan {
  /** First and last op index (inclusive) the launch stands for. */
  readonly first: number;
  readonly last: number;
  /** The residual stream (embedding output; every layer's residual adds land here; the lm_head's norm reads it). */
  readonly residual: string;
  readonly eps: number;
  /** Attention scale. */
  readonly scale: number;
  readonly layers: readonly PersistentLayer[];
}

type Linear = Extract<Op, { type: "linear" }>;

/**
 * The decoder layers of a fused one-token decode step (`fuse`: planDecodeFusion's result for 1 row) as the persistent
 * kernel runs them, or undefined when the plan is not exactly that chain: per layer RMSNorm → qkv linear (norm in its
 * prologue) → RoPE + KV write + decode attention (fused) → o_proj (+ residual) → RMSNorm → gate_up (+ SiLU·mul) →
 * down (+ residual), plain bf16 linears without bias or LoRA, no q/k norm, no sliding window, one residual stream,
 * the kernel's shapes (PERSISTENT_DECODE_SHAPE), and nothing but fused-away ops between the layers.
 */
export function planPersistentDecode(plan: EnginePlan, fuse: DecodeFusion): PersistentDecodePlan | undefined {
  const ops = plan.ops;
  const s = PERSISTENT_DECODE_SHAPE;
  const nq = (s.numHeads + 2 * s.numKvHeads) * s.headDim;
  const plain = (op: Op | undefined, n: number, k: number): op is Linear =>
    op?.type === "linear" && !op.weightFormat && !op.lora && !op.bias && op.outFeatures === n && op.inFeatures === k;
  const layers: PersistentLayer[] = [];
  let residual: string | undefined, eps: number | undefined, scale: number | undefined, first = -1, last = -1;
  let i = ops.findIndex((o) => o.type === "embedding");
  if (i < 0) return undefined;
  i++;
  for (;;) {
    // The layer's first RMSNorm: fused into the qkv linear (skipped here).
    const normAt = i;
    while (i < ops.length && fuse.skip.has(i) && ops[i].type !== "rope_kv_write") i++;
    const qkv = ops[i];
    const n1 = fuse.norm.get(i);
    if (!plain(qkv, nq, s.hidden) || !n1 || fuse.epilogue.has(i)) break;
    const rope = ops[i + 1], att = ops[i + 2];
    if (
      rope?.type !== "rope_kv_write" || !fuse.skip.has(i + 1) || rope.qkv !== qkv.out || att?.type !== "paged_attention" ||
      fuse.attnQkv.get(i + 2) !== qkv.out || att.window !== 0 || att.layer !== rope.layer || att.layer !== layers.length ||
      att.numHeads !== s.numHeads || att.numKvHeads !== s.numKvHeads || att.headDim !== s.headDim
    ) return undefined;
    const o = ops[i + 3], eo = fuse.epilogue.get(i + 3);
    if (!plain(o, s.hidden, s.numHeads * s.headDim) || o.x !== att.out || eo?.mode !== 1) return undefined;
    let j = i + 4;
    while (j < ops.length && fuse.skip.has(j)) j++;
    const gu = ops[j], n2 = fuse.norm.get(j), eg = fuse.epilogue.get(j);
    if (!plain(gu, 2 * s.intermediate, s.hidden) || !n2 || eg?.mode !== 2) return undefined;
    let k = j + 1;
    while (k < ops.length && fuse.skip.has(k)) k++;
    const down = ops[k], ed = fuse.epilogue.get(k);
    if (!plain(down, s.hidden, s.intermediate) || down.x !== eg.into || ed?.mode !== 1) return undefined;
    residual ??= n1.x;
    eps ??= n1.eps;
    scale ??= att.scale;
    if (n1.x !== residual || eo.into !== residual || n2.x !== residual || ed.into !== residual || n1.eps !== eps || n2.eps !== eps || att.scale !== scale) {
      return undefined;
    }
    if (first < 0) first = normAt;
    last = k;
    layers.push({ ln1: n1.weight, qkv: qkv.weight, o: o.weight, ln2: n2.weight, gateUp: gu.weight, down: down.weight });
    i = k + 1;
  }
  if (layers.length === 0 || layers.length !== plan.attributes.numLayers || residual === undefined) return undefined;
  // The launch writes the residual stream only (its qkv / attention / SiLU·mul rows go to its own scratch): no op
  // past the last layer may read another activation the layers' ops write.
  const written = new Set<string>();
  for (let q = first; q <= last; q++) for (const w of opTensors(ops[q]).writes) if (w !== residual) written.add(w);
  for (let q = last + 1; q < ops.length; q++) {
    // The last down's residual add (its epilogue; an add_rmsnorm's norm then sits in the lm_head's prologue).
    if (fuse.skip.has(q) && (ops[q].type === "add" || ops[q].type === "add_rmsnorm")) continue;
    if (opTensors(ops[q]).reads.some((r) => written.has(r))) return undefined;
  }
  return { first, last, residual, eps: eps!, scale: scale!, layers };
}

/** The layer table the kernel reads (u64 [numLayers, 6]: ln1, qkv, o, ln2, gate_up, down weight addresses). */
export function persistentLayerTable(p: PersistentDecodePlan, weight: (name: string) => bigint): BigUint64Array {
  const t = new BigUint64Array(p.layers.length * 6);
  p.layers.forEach((l, i) => [l.ln1, l.qkv, l.o, l.ln2, l.gateUp, l.down].forEach((w, j) => (t[i * 6 + j] = weight(w))));
  return t;
}

/** Most attention key splits per q head (DP_MAXS). */
export const PERSISTENT_DECODE_MAX_SPLITS = 4;

/**
 * Byte offsets of the kernel's scratch: qkv, attention out, SiLU·mul out (bf16), attention split partials
 * (f32 [numHeads, PERSISTENT_DECODE_MAX_SPLITS, headDim + 2]); 16-byte aligned pieces.
 */
export function persistentScratchLayout(): {
  readonly qkv: number;
  readonly attn: number;
  readonly act: number;
  readonly part: number;
  readonly bytes: number;
} {
  const s = PERSISTENT_DECODE_SHAPE;
  const nq = (s.numHeads + 2 * s.numKvHeads) * s.headDim;
  const attn = nq * 2, act = attn + s.numHeads * s.headDim * 2, part = act + s.intermediate * 2;
  return { qkv: 0, attn, act, part, bytes: part + s.numHeads * PERSISTENT_DECODE_MAX_SPLITS * (s.headDim + 2) * 4 };
}

/** int32 counters the kernel synchronises its phases with (zero between launches; the kernel leaves them zero). */
export function persistentCounterCount(numLayers: number): number {
  return numLayers * 5 + 1;
}
