/**
 * SchedulerConfig.decodeDeferSteps: whether the decoding groups may sit a step out so that waiting prompts prefill
 * in a step of their own, and the KV blocks to keep free for them. Pure host code (the Scheduler's helper).
 */
import type { KvCacheManager } from "./kv_cache_manager.ts";
import type { SequenceGroup } from "./sequence.ts";

/**
 * The KV blocks to keep free for the `decoding` groups when they sit this step out for a prefill-only step (the
 * `prefilling` groups' next chunks, then `waiting` prompts in order), or -1 when they run as usual: too few KV blocks
 * for those chunks beside a spare block per decoding sequence (so nothing is preempted), or less than half the
 * token budget of prompt tokens that can run now (batch slots, blocks).
 *
 * @example
 * ```ts
 * const reserve = decodeDeferReserve(kv, { maxBatchSize: 512, maxNumTokens: 32768 }, decoding, [], waiting);
 * if (reserve >= 0) { // a prefill-only step: admit while kv.numFreeBlocks - reserve lasts }
 * ```
 */
export function decodeDeferReserve(
  kv: KvCacheManager,
  limits: { readonly maxBatchSize: number; readonly maxNumTokens: number },
  decoding: readonly SequenceGroup[],
  prefilling: readonly SequenceGroup[],
  waiting: readonly SequenceGroup[],
): number {
  let reserve = 0, slots = 0;
  for (const g of decoding) {
    reserve += g.liveSeqs.length; // a next token may open a block per sequence
    slots += g.numSlots;
  }
  for (const g of prefilling) slots += g.numSlots;
  let tokens = 0, blocks = reserve;
  for (const g of prefilling) {
    for (const seq of g.liveSeqs) {
      const n = Math.min(seq.numUncomputedTokens, limits.maxNumTokens - tokens);
      if (n <= 0) continue;
      blocks += Math.max(0, kv.blocksFor(seq.numComputedTokens + n) - seq.blockTable.length);
      tokens += n;
    }
  }
  if (blocks > kv.numFreeBlocks || tokens >= limits.maxNumTokens) return -1;
  for (const g of waiting) {
    if (slots + g.numSlots > limits.maxBatchSize) break;
    const seq = g.liveSeqs[0];
    if (!seq) break;
    const n = Math.min(seq.numUncomputedTokens, limits.maxNumTokens - tokens);
    blocks += g.liveSeqs.length * kv.blocksFor(seq.numComputedTokens + n);
    if (blocks > kv.numFreeBlocks) break;
    slots += g.numSlots;
    tokens += n;
    if (2 * tokens >= limits.maxNumTokens) return reserve;
  }
  return -1;
}
