/**
 * Copy-on-write block copies on a KV cache, whatever its kind: the CPU cache copies within its
 * per-layer arrays; the CUDA cache enqueues device-to-device copies on its session's stream (ordered
 * before the step that reads them).
 */
import type { KvCache } from "../runtime/session.ts";
import type { BlockCopy } from "./kv_cache_manager.ts";

/** Copies the KV of each `src` block into its `dst` block, in every layer. */
export function copyKvBlocks(kv: KvCache, copies: readonly BlockCopy[]): void {
  if (copies.length === 0) return;
  kv.copyBlocks(copies);
}
