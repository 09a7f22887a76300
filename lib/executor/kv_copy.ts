/**
 * Copy-on-write block copies on a KV cache. The CPU cache is one float32 array per layer,
 * [numBlocks, 2 (k, v), tokensPerBlock, numKvHeads, headDim], so a block is one contiguous run per
 * layer. A device cache needs a device-side copy here (one cudaMemcpyAsync batch per step).
 */
import type { KvCache } from "../runtime/session.ts";
import type { BlockCopy } from "./kv_cache_manager.ts";

/** Copies the KV of each `src` block into its `dst` block, in every layer. */
export function copyKvBlocks(kv: KvCache, copies: readonly BlockCopy[]): void {
  if (copies.length === 0) return;
  const g = kv.geometry;
  const per = 2 * g.tokensPerBlock * g.numKvHeads * g.headDim;
  for (const layer of kv.layers) {
    for (const [src, dst] of copies) layer.copyWithin(dst * per, src * per, (src + 1) * per);
  }
}
