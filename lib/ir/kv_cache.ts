/**
 * The KV cache contract every backend implements (geometry, one bytes-per-block rule, block copy for
 * copy-on-write, dispose), and the sizing rules shared by all of them.
 */
import { ResourceError } from "../util/errors.ts";

/** Shape of a paged KV cache: per layer [numBlocks, 2 (k, v), tokensPerBlock, numKvHeads, headDim]. */
export interface KvCacheGeometry {
  readonly numLayers: number;
  readonly numBlocks: number;
  readonly tokensPerBlock: number;
  readonly numKvHeads: number;
  readonly headDim: number;
  /** Bytes of one element (4 for the CPU's float32 cache, 1 for a quantized cache). */
  readonly elementBytes: number;
  /** KV-cache quantization of the elements, when they are not in the activation dtype. */
  readonly quantAlgo?: KvQuantAlgo;
}

/** KV-cache quantization algorithms (`QuantConfig.kvCacheQuantAlgo`): e4m3 or symmetric int8, one byte per element. */
export type KvQuantAlgo = "FP8" | "INT8";

/** The largest magnitude of a quantized KV element: e4m3's 448, int8's 127 (symmetric, −128 unused). */
export const KV_QUANT_MAX: Readonly<Record<KvQuantAlgo, number>> = Object.freeze({ FP8: 448, INT8: 127 });

/**
 * A quantized KV cache as an engine plan records it (`plan.attributes.kvCache`): element x is stored
 * as q = encode(x / s) and read as decode(q) · s, with one float32 scale s per (layer, k | v, kv head):
 * `scales` [numLayers, 2, numKvHeads] (K scales of a layer first, then V scales).
 */
export interface KvCacheQuant {
  readonly quantAlgo: KvQuantAlgo;
  readonly scales: readonly number[];
}

/** Bytes one block takes across all layers: the one rule every backend and the executor use. */
export function bytesPerBlock(g: Omit<KvCacheGeometry, "numBlocks">): number {
  return g.numLayers * 2 * g.tokensPerBlock * g.numKvHeads * g.headDim * g.elementBytes;
}

/**
 * A paged KV cache made by a backend for its engine: per layer [numBlocks, 2 (k, v),
 * tokensPerBlock, numKvHeads, headDim] elements of `geometry.elementBytes` bytes.
 */
export interface KvCache {
  readonly geometry: KvCacheGeometry;
  /** Bytes of one block across all layers (`bytesPerBlock(geometry)`). */
  readonly bytesPerBlock: number;
  /** Bytes the whole cache holds. */
  readonly bytes: number;
  /** Copies the KV of each `src` block into its `dst` block in every layer (copy-on-write). */
  copyBlocks(copies: readonly (readonly [number, number])[]): void;
  /** Frees the cache's memory. Idempotent. */
  dispose(): void;
  [Symbol.dispose](): void;
}

/** How to size the KV cache, in bytes or tokens (TensorRT-LLM's KvCacheConfig). */
export interface KvCacheSizing {
  /** Cap on cached tokens. */
  readonly maxTokens?: number;
  /** Cap on bytes. */
  readonly maxBytes?: number;
  /** Fraction of free device memory (CUDA) or of the default budget (CPU). */
  readonly freeGpuMemoryFraction?: number;
}

/**
 * Number of blocks for a sizing: the smallest of the explicit caps, else `fraction × available`.
 * Always at least one full sequence of `minTokens`; an explicit cap below that is an error.
 */
export function numBlocksFor(
  sizing: KvCacheSizing,
  geom: Omit<KvCacheGeometry, "numBlocks">,
  availableBytes: number,
  minTokens: number,
): number {
  const per = bytesPerBlock(geom);
  const caps: number[] = [];
  if (sizing.maxTokens !== undefined) caps.push(Math.ceil(sizing.maxTokens / geom.tokensPerBlock));
  if (sizing.maxBytes !== undefined) caps.push(Math.floor(sizing.maxBytes / per));
  const fraction = sizing.freeGpuMemoryFraction ?? 0.9;
  caps.push(Math.floor((availableBytes * fraction) / per));
  const blocks = Math.min(...caps);
  const need = Math.ceil(minTokens / geom.tokensPerBlock);
  if (blocks < need) {
    throw new ResourceError(
      `KvCacheConfig: ${blocks} blocks of ${geom.tokensPerBlock} tokens (${
        blocks * per
      } bytes) cannot hold one sequence of ${minTokens} tokens; raise maxTokens/maxBytes or lower maxSeqLen`,
      "KvCacheConfig",
      sizing,
    );
  }
  return blocks;
}
