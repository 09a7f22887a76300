/**
 * Network: the small op graph a model definition emits and the Builder optimizes into an engine
 * plan. Tensors are named; activations have a row dimension that is either the packed token count
 * of a step (`"tokens"`) or the number of sequences (`"seqs"`), and a fixed row width.
 *
 * @example
 * ```ts
 * const net = new Network();
 * const ids = net.input("tokenIds");
 * const x = net.embedding(ids, net.weight("embed", [vocab, hidden]), hidden);
 * ```
 */
import { InternalError } from "../util/errors.ts";
import type { KvCacheQuant } from "./kv_cache.ts";

/** A weight the network reads: its engine name, shape and where its values come from. */
export interface WeightDecl {
  readonly name: string;
  readonly shape: readonly number[];
  /** Checkpoint tensors concatenated along dim 0 (fused QKV, gate/up); one name = a plain copy. */
  readonly source: readonly string[];
}

/**
 * How a linear's weight is stored when it is not in the engine's dtype (quantization): the
 * element format, the group size along the input dim (0 = one scale per output channel) and the
 * engine tensors holding the scales (and zero points). Backends dispatch on `format`.
 */
export interface WeightFormat {
  /**
   * Stored element format: "uint4" / "uint8" (weight-only integers, float activations), "fp8_e4m3"
   * (FP8 / FP8_PER_CHANNEL_PER_TOKEN), "int8" (signed, W8A8_SQ_PER_CHANNEL: int8 activations per
   * token), "int4" (signed nibbles, W4A8_AWQ: e4m3 activations, static scale), "nvfp4" (e2m1 codes
   * with e4m3 block scales per 16 — `scales` is then a uint8 tensor [out, in/16] — and `globalScale`;
   * activations NVFP4 too: dynamic block scales under the static `activationScale`).
   */
  readonly format: string;
  /** Input elements sharing one scale; 0 = per output channel. */
  readonly groupSize: number;
  /** Engine tensor of scales: [outFeatures, numGroups] (float32 unless stated by the backend). */
  readonly scales: string;
  /** Engine tensor of zero points, same shape as `scales`, when asymmetric. */
  readonly zeros?: string;
  /** Engine tensor of per-input-channel pre-scales (AWQ / SmoothQuant), [inFeatures]. */
  readonly preQuantScale?: string;
  /**
   * FP8 ("fp8_e4m3"): how activations get their scale — one static per-tensor scale from
   * calibration (`activationScale`), or a dynamic scale per token computed at run time.
   */
  readonly activation?: "static_per_tensor" | "dynamic_per_token" | "dynamic_per_block";
  /** Static activation scale (FP8, int4: x ≈ e4m3 · activationScale; nvfp4: the activations' global scale). */
  readonly activationScale?: number;
  /** nvfp4: the weight's float32 global scale (w = e2m1 · blockScale · globalScale). */
  readonly globalScale?: number;
  /**
   * FP8: whether `scales` holds one scale per tensor (repeated per row), per output channel, or per
   * output row and group of `groupSize` inputs ("per_block": FP8_BLOCK_SCALES, [out, ⌈in/groupSize⌉],
   * with activations "dynamic_per_block": a scale per token and group of `groupSize` inputs).
   */
  readonly weightScale?: "per_tensor" | "per_channel" | "per_block";
}

/** An activation tensor: `rows` of `width` elements each. */
export interface ActivationDecl {
  readonly name: string;
  readonly rows: "tokens" | "seqs";
  readonly width: number;
}

/** Step inputs provided by the runtime for every forward pass. */
export type StepInputName = "tokenIds" | "positions" | "seqStarts" | "contextLens" | "blockTables" | "lastTokenIdx";

export type Op =
  | { readonly type: "embedding"; readonly ids: StepInputName; readonly table: string; readonly out: string }
  | { readonly type: "rmsnorm"; readonly x: string; readonly weight: string; readonly eps: number; readonly out: string }
  /** residual += x; out = rmsnorm(residual) (produced by the fusion pass). */
  | { readonly type: "add_rmsnorm"; readonly x: string; readonly residual: string; readonly weight: string; readonly eps: number; readonly out: string }
  /**
   * out = x · weightᵀ (+ bias). `weightFormat` is set for a quantized weight; `lora` names the
   * adapter slot of this linear (a step's per-sequence adapter index selects the adapter).
   */
  | {
    readonly type: "linear";
    readonly x: string;
    readonly weight: string;
    readonly bias?: string;
    readonly out: string;
    readonly outFeatures: number;
    readonly inFeatures: number;
    readonly weightFormat?: WeightFormat;
    readonly lora?: string;
  }
  /** RMSNorm over each head of q and k inside a packed qkv row (Qwen3). In place. */
  | {
    readonly type: "qk_norm";
    readonly qkv: string;
    readonly qWeight: string;
    readonly kWeight: string;
    readonly eps: number;
    readonly numHeads: number;
    readonly numKvHeads: number;
    readonly headDim: number;
  }
  /** Rotates q and k of a packed qkv row by position, writes k and v into the paged cache of `layer`, and copies rotated q to `q`. */
  | {
    readonly type: "rope_kv_write";
    readonly qkv: string;
    readonly q: string;
    readonly layer: number;
    readonly numHeads: number;
    readonly numKvHeads: number;
    readonly headDim: number;
  }
  /** Causal attention of each packed token's query over its sequence's cached keys/values (GQA). */
  | {
    readonly type: "paged_attention";
    readonly q: string;
    readonly out: string;
    readonly layer: number;
    readonly numHeads: number;
    readonly numKvHeads: number;
    readonly headDim: number;
    readonly scale: number; /** Attend to at most this many latest positions; 0 = unlimited. */
    readonly window: number;
  }
  | { readonly type: "silu_mul"; readonly gateUp: string; readonly out: string; readonly width: number }
  /** out += x (in place on `out`). */
  | { readonly type: "add"; readonly x: string; readonly out: string }
  /** Copies the rows named by `lastTokenIdx` (one per sequence) from a token tensor to a seq tensor. */
  | { readonly type: "gather_rows"; readonly x: string; readonly out: string }
  /** Samples one id per sequence from `logits` with the step's per-sequence sampling parameters. */
  | { readonly type: "sample"; readonly logits: string }
  /** Tensor parallelism: sums `x` over the ranks, in place (after a row-parallel linear). */
  | { readonly type: "all_reduce"; readonly x: string }
  /**
   * Tensor parallelism: every rank's [rows, width] shard of `x` into `out` [rows, outWidth], rank r's
   * columns at r·width; columns past outWidth (padding of the last shard) are dropped.
   */
  | { readonly type: "all_gather"; readonly x: string; readonly out: string; readonly width: number; readonly outWidth: number };

export type OpType = Op["type"];

/** Network-wide facts the kernels need (RoPE, KV cache geometry). */
export interface NetworkAttributes {
  readonly numLayers: number;
  readonly numKvHeads: number;
  readonly headDim: number;
  readonly vocabSize: number;
  readonly hiddenSize: number;
  /** RoPE inverse frequencies [headDim/2] and the attention scaling applied to cos/sin. */
  readonly rope: { readonly invFreq: readonly number[]; readonly attentionScaling: number };
  /** Output tensor holding logits [seqs, vocab]. */
  readonly logits: string;
  /** KV-cache quantization (absent: the cache holds activation-dtype elements). */
  readonly kvCache?: KvCacheQuant;
}

/** A model's op graph: weights, activations and ops in execution order. */
export class Network {
  readonly weights: Map<string, WeightDecl> = new Map();
  readonly activations: Map<string, ActivationDecl> = new Map();
  readonly ops: Op[] = [];
  attributes?: NetworkAttributes;

  /** Declares a weight (idempotent for the same name and shape: tied weights share one). */
  weight(name: string, shape: readonly number[], source: readonly string[] = [name]): string {
    const prev = this.weights.get(name);
    if (prev && prev.shape.join() !== shape.join()) {
      throw new InternalError(`Network: weight '${name}' declared twice with shapes [${prev.shape}] and [${shape}]`);
    }
    if (!prev) this.weights.set(name, { name, shape: [...shape], source: [...source] });
    return name;
  }

  /** Declares an activation tensor and returns its name. */
  activation(name: string, width: number, rows: "tokens" | "seqs" = "tokens"): string {
    if (this.activations.has(name)) throw new InternalError(`Network: activation '${name}' declared twice`);
    this.activations.set(name, { name, width, rows });
    return name;
  }

  /** Appends an op. */
  add(op: Op): void {
    this.ops.push(op);
  }
}
