/**
 * How many KV blocks the executor allocates. Predictable, in bytes, never "whatever is left":
 * - explicit `maxTokens` / `maxBytes`: the smallest of them (on a GPU also at most the free-memory
 *   fraction);
 * - an explicit `freeGpuMemoryFraction` on a GPU: that fraction of the free memory (the large
 *   serving default `llmrt serve` asks for);
 * - otherwise what a full batch needs (maxBatchSize × maxSeqLen tokens), capped by 0.9 of the free
 *   device memory, or on the CPU by {@link CPU_KV_BUDGET_BYTES} (× the fraction when given).
 * The cache must hold one sequence of maxSeqLen tokens; when it cannot, a ResourceError names the
 * field to raise.
 */
import { formatBytes, maxCpuBufferBytes, memoryLimit } from "../builder/limits.ts";
import { type KvCacheGeometry, numBlocksFor } from "../ir/kv_cache.ts";
import { ResourceError } from "../util/errors.ts";
import type { KvCacheConfig } from "./config.ts";

/** The CPU cache's default budget when no cap is given. */
export const CPU_KV_BUDGET_BYTES = 1 << 30;

/** Default fraction of free device memory (TensorRT-LLM's). */
const DEFAULT_FRACTION = 0.9;

/** What the sizing depends on. */
export interface KvSizingInput {
  readonly config: KvCacheConfig;
  readonly geometry: Omit<KvCacheGeometry, "numBlocks">;
  readonly bytesPerBlock: number;
  readonly maxSeqLen: number;
  readonly maxBatchSize: number;
  /** Free device memory now; null on the CPU. */
  readonly freeMemoryBytes: number | null;
}

/** The size chosen and why (one line, for a log). */
export interface KvSizing {
  readonly numBlocks: number;
  readonly bytes: number;
  readonly description: string;
}

/**
 * Sizes the KV cache.
 *
 * @example
 * ```ts
 * const { numBlocks, description } = sizeKvCache({ config, geometry, bytesPerBlock, maxSeqLen: 512, maxBatchSize: 8, freeMemoryBytes: null });
 * ```
 */
export function sizeKvCache(inp: KvSizingInput): KvSizing {
  const { config: c, geometry: g, bytesPerBlock: per, maxSeqLen, maxBatchSize } = inp;
  const bs = g.tokensPerBlock;
  const seqBlocks = Math.ceil(maxSeqLen / bs);
  const done = (numBlocks: number, why: string): KvSizing => {
    const bytes = numBlocks * per;
    const q = g.quantAlgo
      ? `; K/V stored as ${g.quantAlgo === "FP8" ? "FP8 (e4m3)" : "INT8"}, ${g.elementBytes} byte per element: the same bytes hold ${
        2 / g.elementBytes
      }× the tokens of bfloat16, ${4 / g.elementBytes}× of float32`
      : "";
    return { numBlocks, bytes, description: `KV cache: ${numBlocks} blocks of ${bs} tokens = ${numBlocks * bs} tokens, ${mib(bytes)} (${why})${q}` };
  };
  const free = inp.freeMemoryBytes;
  if (c.maxTokens !== undefined || c.maxBytes !== undefined) {
    // Explicit caps; on a device the free-memory fraction still bounds them.
    const blocks = numBlocksFor(c, g, free ?? Number.MAX_SAFE_INTEGER, maxSeqLen);
    if (free === null) checkCpuCache(c, g, blocks, per);
    return done(blocks, "kvCacheConfig.maxTokens / maxBytes");
  }
  if (free !== null && c.freeGpuMemoryFraction !== undefined) {
    return done(numBlocksFor(c, g, free, maxSeqLen), `kvCacheConfig.freeGpuMemoryFraction ${c.freeGpuMemoryFraction} of ${mib(free)} free`);
  }
  const needBlocks = maxBatchSize * seqBlocks;
  const budget = free !== null ? free * DEFAULT_FRACTION : CPU_KV_BUDGET_BYTES * (c.freeGpuMemoryFraction ?? 1);
  const budgetBlocks = Math.floor(budget / per);
  const where = free !== null ? `${DEFAULT_FRACTION} of the ${mib(free)} free device memory` : `the CPU default budget of ${mib(budget)}`;
  if (budgetBlocks < seqBlocks) {
    const field = free !== null ? "kvCacheConfig.freeGpuMemoryFraction" : "kvCacheConfig.maxBytes";
    throw new ResourceError(
      `KV cache: one sequence of maxSeqLen ${maxSeqLen} tokens needs ${mib(seqBlocks * per)}, more than ${where} (${mib(budgetBlocks * per)}); ` +
        `set ${field === "kvCacheConfig.maxBytes" ? "kvCacheConfig.maxBytes (or maxTokens)" : field} to allow at least ${
          seqBlocks * per
        } bytes, or build with a smaller maxSeqLen (BuildConfig.maxSeqLen)`,
      field,
      budgetBlocks * per,
      { neededBytes: seqBlocks * per, budgetBytes: budgetBlocks * per, maxSeqLen },
    );
  }
  if (budgetBlocks < needBlocks) {
    return done(budgetBlocks, `${where}; a full batch of ${maxBatchSize} × ${maxSeqLen} tokens would need ${mib(needBlocks * per)}`);
  }
  return done(needBlocks, `a full batch: ${maxBatchSize} sequences × maxSeqLen ${maxSeqLen}`);
}

/** An explicit CPU cache (no free-memory bound) must fit the host and, per layer, one CPU buffer: a ResourceError naming the field otherwise. */
function checkCpuCache(c: KvCacheConfig, g: Omit<KvCacheGeometry, "numBlocks">, blocks: number, per: number): void {
  const host = memoryLimit("cpu"), buffer = maxCpuBufferBytes();
  const bytes = blocks * per;
  const limit = bytes > host.bytes
    ? host
    : bytes / g.numLayers > buffer.bytes
    ? { bytes: buffer.bytes * g.numLayers, what: `${buffer.what}, per layer` }
    : null;
  if (!limit) return;
  const byTokens = c.maxTokens !== undefined && Math.ceil(c.maxTokens / g.tokensPerBlock) === blocks;
  const field = byTokens ? "kvCacheConfig.maxTokens" : "kvCacheConfig.maxBytes";
  const value = byTokens ? c.maxTokens : c.maxBytes;
  throw new ResourceError(
    `${field} = ${value} asks for a KV cache of ${formatBytes(bytes)} (${bytes} bytes) on the CPU; the limit is ${formatBytes(limit.bytes)} (${limit.what})`,
    field,
    value,
    { neededBytes: bytes, limitBytes: limit.bytes },
  );
}

function mib(bytes: number): string {
  return bytes >= 1 << 30 ? `${(bytes / (1 << 30)).toFixed(2)} GiB` : `${(bytes / (1 << 20)).toFixed(1)} MiB`;
}
