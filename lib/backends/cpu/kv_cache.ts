import { bytesPerBlock, type KvCache, type KvCacheGeometry } from "../../ir/kv_cache.ts";

/** A CPU KV cache: one float32 array per layer. */
export class CpuKvCache implements KvCache {
  readonly layers: Float32Array[];
  readonly bytesPerBlock: number;
  constructor(readonly geometry: KvCacheGeometry) {
    this.bytesPerBlock = bytesPerBlock(geometry);
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

  [Symbol.dispose](): void {
    this.dispose();
  }
}
