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
  /** Bytes of one element (4 for the CPU's float32 cache). */
  readonly elementBytes: number;
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
