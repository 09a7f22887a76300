/**
 * Size checks made before anything is allocated: an engine whose weights, activation arena or one
 * full-length sequence of KV cache cannot fit is a `ResourceError` naming the field that asked for
 * the bytes, how many, and the limit — at build time and again when an engine is loaded.
 */
import * as os from "node:os";
import type { EnginePlan } from "../ir/plan.ts";
import { ResourceError } from "../util/errors.ts";

/** No device or host we run on has more than this (a sanity cap where the real limit is unknown). */
export const ABSOLUTE_LIMIT_BYTES = 2 ** 40; // 1 TiB

/** Human-readable bytes: "1.5 GiB". */
export function formatBytes(n: number): string {
  const units = ["bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
  let v = n, u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${n} bytes` : `${v.toFixed(1)} ${units[u]}`;
}

/**
 * The memory an engine may use on `backend`: host memory for the CPU backend (its weights, arena
 * and KV cache all live there); for CUDA, the absolute cap (device memory is checked when the
 * session allocates).
 */
export function memoryLimit(backend: "cpu" | "cuda"): { bytes: number; what: string } {
  if (backend === "cpu") {
    const total = os.totalmem();
    if (Number.isFinite(total) && total > 0) return { bytes: Math.min(total, ABSOLUTE_LIMIT_BYTES), what: "this machine's memory" };
  }
  return { bytes: ABSOLUTE_LIMIT_BYTES, what: "llmrt's 1 TiB cap" };
}

/**
 * The largest single buffer (the arena, one weight) of the CPU backend: 4 GiB, where Bun's
 * (JavaScriptCore's) ArrayBuffer stops. Deno's V8 goes further, but the same limit applies there so
 * an engine loads on both runtimes or on neither.
 */
export function maxCpuBufferBytes(): { bytes: number; what: string } {
  return { bytes: 2 ** 32, what: "the CPU backend's largest buffer, Bun's ArrayBuffer limit" };
}

/** What an engine's sizes come from, for naming the field at fault. */
export interface SizeFacts {
  readonly backend: "cpu" | "cuda";
  /** Every weight's shape and bytes, by name. */
  readonly weights: ReadonlyMap<string, { readonly shape: readonly number[]; readonly bytes: number }>;
  readonly plan: Pick<EnginePlan, "buffers" | "arenaBytes" | "maxTokens" | "maxSeqs" | "elementBytes">;
  /** KV bytes of one token over all layers (K and V). */
  readonly kvBytesPerToken: number;
  readonly maxSeqLen: number;
  /** Which setting fixed maxSeqLen: "BuildConfig.maxSeqLen" or "config.max_position_embeddings". */
  readonly maxSeqLenField: string;
  /** Which setting the seqs rows came from: maxBatchSize (× maxBeamWidth) or maxNumTokens with gatherContextLogits. */
  readonly maxSeqsField: string;
  /** Where the check runs, for the message ("build", "engine /path"). */
  readonly where: string;
}

/**
 * Throws a ResourceError when one weight, the arena, one maxSeqLen-long sequence of KV cache, or
 * their sum exceeds the memory limit. Pure arithmetic: allocates nothing.
 */
export function checkEngineSizes(f: SizeFacts): void {
  const limit = memoryLimit(f.backend);
  const fail = (field: string, value: unknown, what: string, bytes: number): never => {
    throw new ResourceError(
      `${f.where}: ${field} = ${value} asks for ${formatBytes(bytes)} (${bytes} bytes) for ${what}; the limit is ${formatBytes(limit.bytes)} (${limit.what})`,
      field,
      value,
      { bytes, limitBytes: limit.bytes },
    );
  };
  let weightBytes = 0;
  let largest = { name: "", bytes: 0, shape: [] as readonly number[] };
  for (const [name, w] of f.weights) {
    weightBytes += w.bytes;
    if (w.bytes > largest.bytes) largest = { name, ...w };
  }
  const weightValue = Math.max(0, ...largest.shape);
  if (largest.bytes > limit.bytes) fail(weightField(largest.name), weightValue, `weight '${largest.name}' [${largest.shape.join(", ")}]`, largest.bytes);
  const p = f.plan;
  // The CPU backend holds the arena and each weight in one ArrayBuffer each.
  const single = f.backend === "cpu" ? maxCpuBufferBytes() : limit;
  const arenaLimit = Math.min(limit.bytes, single.bytes);
  if (largest.bytes > single.bytes) {
    throw new ResourceError(
      `${f.where}: ${weightField(largest.name)} = ${weightValue} makes weight '${largest.name}' [${largest.shape.join(", ")}] ${
        formatBytes(largest.bytes)
      } (${largest.bytes} bytes); the limit is ${formatBytes(single.bytes)} (${single.what})`,
      weightField(largest.name),
      weightValue,
      { bytes: largest.bytes, limitBytes: single.bytes },
    );
  }
  if (p.arenaBytes > arenaLimit) {
    // Name the profile field behind the biggest activation.
    const big = Object.values(p.buffers).sort((a, b) => b.bytes - a.bytes)[0];
    const byTokens = big?.rows === "tokens";
    const field = byTokens ? "BuildConfig.maxNumTokens" : f.maxSeqsField;
    const value = byTokens ? p.maxTokens : p.maxSeqs;
    const lim = arenaLimit < limit.bytes ? single : limit;
    throw new ResourceError(
      `${f.where}: ${field} = ${value} asks for ${
        formatBytes(p.arenaBytes)
      } (${p.arenaBytes} bytes) for the activation arena (largest: '${big?.name}', ${value} rows × ${big?.width} × ${p.elementBytes} bytes); the limit is ${
        formatBytes(lim.bytes)
      } (${lim.what})`,
      field,
      value,
      { bytes: p.arenaBytes, limitBytes: lim.bytes },
    );
  }
  const kvBytes = f.kvBytesPerToken * f.maxSeqLen;
  if (kvBytes > limit.bytes) fail(f.maxSeqLenField, f.maxSeqLen, `the KV cache of one sequence at that length (${f.kvBytesPerToken} bytes per token)`, kvBytes);
  const total = weightBytes + p.arenaBytes + kvBytes;
  if (total > limit.bytes) {
    const parts = [
      { field: weightField(largest.name), value: weightValue, bytes: weightBytes },
      { field: "BuildConfig.maxNumTokens", value: p.maxTokens, bytes: p.arenaBytes },
      { field: f.maxSeqLenField, value: f.maxSeqLen, bytes: kvBytes },
    ].sort((a, b) => b.bytes - a.bytes);
    fail(
      parts[0].field,
      parts[0].value,
      `weights ${formatBytes(weightBytes)} + activation arena ${formatBytes(p.arenaBytes)} + one sequence of KV cache ${formatBytes(kvBytes)}`,
      total,
    );
  }
}

/** The config field that sizes a weight (the one a user would have edited). */
function weightField(name: string): string {
  if (name === "embed_tokens" || name === "lm_head") return "config.vocab_size";
  if (/gate_up|down/.test(name)) return "config.intermediate_size";
  return "config.hidden_size";
}

/** The model and profile numbers {@link checkModelSizes} needs (from the HF config and BuildConfig). */
export interface ModelSizeFacts {
  readonly backend: "cpu" | "cuda";
  readonly vocabSize: number;
  readonly hiddenSize: number;
  readonly intermediateSize: number;
  readonly numLayers: number;
  readonly numHeads: number;
  readonly numKvHeads: number;
  readonly headDim: number;
  readonly tied: boolean;
  readonly weightBytes: number;
  readonly activationBytes: number;
  readonly kvBytes: number;
  readonly maxNumTokens: number;
  readonly maxSeqs: number;
  readonly maxSeqsField: string;
  readonly maxSeqLen: number;
  readonly maxSeqLenField: string;
}

/**
 * The same limits as {@link checkEngineSizes}, computed from the config alone in O(1) — before the
 * network is even made, so `num_hidden_layers: 1e9` is an error naming it, not a hang. The biggest
 * weight, the biggest activation, one sequence of KV and the sum must each fit.
 */
export function checkModelSizes(f: ModelSizeFacts): void {
  const limit = memoryLimit(f.backend);
  const single = f.backend === "cpu" ? maxCpuBufferBytes() : limit;
  const fail = (field: string, value: number, what: string, bytes: number, lim: { bytes: number; what: string }): never => {
    throw new ResourceError(
      `build: ${field} = ${value} asks for ${formatBytes(bytes)} (${bytes} bytes) for ${what}; the limit is ${formatBytes(lim.bytes)} (${lim.what})`,
      field,
      value,
      { bytes, limitBytes: lim.bytes },
    );
  };
  const { vocabSize: V, hiddenSize: H, intermediateSize: I, numLayers: L, headDim: hd } = f;
  const qkvWidth = (f.numHeads + 2 * f.numKvHeads) * hd;
  const wb = f.weightBytes, ab = f.activationBytes;
  // Largest single weight: the embedding table, gate/up, or the fused QKV.
  const weights: [string, number, number, string][] = [
    [V >= H ? "config.vocab_size" : "config.hidden_size", Math.max(V, H), V * H * wb, "the embedding table"],
    [I >= H ? "config.intermediate_size" : "config.hidden_size", Math.max(I, H), 2 * I * H * wb, "one layer's gate/up projection"],
    [
      qkvWidth < H ? "config.hidden_size" : hd >= f.numHeads ? "config.head_dim" : "config.num_attention_heads",
      qkvWidth < H ? H : Math.max(hd, f.numHeads),
      qkvWidth * H * wb,
      "one layer's QKV projection",
    ],
  ];
  for (const [field, value, bytes, what] of weights) {
    if (bytes > Math.min(limit.bytes, single.bytes)) fail(field, value, what, bytes, bytes > single.bytes ? single : limit);
  }
  const perLayer = (qkvWidth * H + H * f.numHeads * hd + 3 * I * H + 2 * H) * wb;
  const embed = V * H * wb * (f.tied ? 1 : 2);
  const totalWeights = embed + L * perLayer + H * wb;
  if (L * perLayer > limit.bytes) fail("config.num_hidden_layers", L, `${L} layers of ${formatBytes(perLayer)}`, L * perLayer, limit);
  // Largest activations: one row per packed token, one logits row per sequence.
  const tokensBuf = f.maxNumTokens * Math.max(H, qkvWidth, 2 * I) * ab;
  const seqsBuf = f.maxSeqs * V * ab;
  const arenaLimit = Math.min(limit.bytes, single.bytes);
  const arenaWhat = arenaLimit < limit.bytes ? single : limit;
  if (tokensBuf > arenaLimit) {
    fail("BuildConfig.maxNumTokens", f.maxNumTokens, `activations of that many tokens (widest ${Math.max(H, qkvWidth, 2 * I)})`, tokensBuf, arenaWhat);
  }
  if (seqsBuf > arenaLimit) fail(f.maxSeqsField, f.maxSeqs, `logits of that many sequences (vocabulary ${V})`, seqsBuf, arenaWhat);
  const kv = 2 * L * f.numKvHeads * hd * f.kvBytes * f.maxSeqLen;
  if (kv > limit.bytes) fail(f.maxSeqLenField, f.maxSeqLen, "the KV cache of one sequence at that length", kv, limit);
  const total = totalWeights + Math.max(tokensBuf, seqsBuf) + kv;
  if (total > limit.bytes) {
    const parts: [string, number, number][] = [
      [embed >= L * perLayer ? "config.vocab_size" : "config.num_hidden_layers", embed >= L * perLayer ? V : L, totalWeights],
      [tokensBuf >= seqsBuf ? "BuildConfig.maxNumTokens" : f.maxSeqsField, tokensBuf >= seqsBuf ? f.maxNumTokens : f.maxSeqs, Math.max(tokensBuf, seqsBuf)],
      [f.maxSeqLenField, f.maxSeqLen, kv],
    ];
    parts.sort((a, b) => b[2] - a[2]);
    fail(
      parts[0][0],
      parts[0][1],
      `weights ${formatBytes(totalWeights)} + activations ${formatBytes(Math.max(tokensBuf, seqsBuf))} + one sequence of KV cache ${formatBytes(kv)}`,
      total,
      limit,
    );
  }
}
