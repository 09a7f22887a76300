import { ValidationError } from "../util/errors.ts";

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

/** Bytes one block takes across all layers. */
export function bytesPerBlock(g: Omit<KvCacheGeometry, "numBlocks">): number {
  return g.numLayers * 2 * g.tokensPerBlock * g.numKvHeads * g.headDim * g.elementBytes;
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
    throw new ValidationError(
      `KvCacheConfig: ${blocks} blocks of ${geom.tokensPerBlock} tokens (${blocks * per} bytes) cannot hold one sequence of ${minTokens} tokens; raise maxTokens/maxBytes or lower maxSeqLen`,
      "KvCacheConfig",
      sizing,
    );
  }
  return blocks;
}

/** A CPU KV cache: one float32 array per layer. */
export class CpuKvCache {
  readonly layers: Float32Array[];
  constructor(readonly geometry: KvCacheGeometry) {
    const per = 2 * geometry.tokensPerBlock * geometry.numKvHeads * geometry.headDim;
    this.layers = Array.from({ length: geometry.numLayers }, () => new Float32Array(geometry.numBlocks * per));
  }
  get bytes(): number {
    return this.layers.reduce((a, l) => a + l.byteLength, 0);
  }

  /** Copies the KV of each `src` block into its `dst` block, in every layer (copy-on-write). */
  copyBlocks(copies: readonly (readonly [number, number])[]): void {
    if (copies.length === 0) return;
    const g = this.geometry;
    const per = 2 * g.tokensPerBlock * g.numKvHeads * g.headDim;
    for (const layer of this.layers) {
      for (const [src, dst] of copies) layer.copyWithin(dst * per, src * per, (src + 1) * per);
    }
  }

  /** Nothing native to free (the arrays are garbage collected); here for the KvCache contract. */
  dispose(): void {}
}
