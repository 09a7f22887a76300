/**
 * What an ExecutorLoop is sized to: its limits checked against the engine's profile, the KV cache
 * sized (kv_sizing.ts) and created, the block manager and the scheduler over it.
 */
import { defaultMaxInputLen } from "../runtime/prompt.ts";
import type { KvCache, Session } from "../runtime/session.ts";
import { ValidationError } from "../util/errors.ts";
import type { ExecutorConfig, ExecutorLimits } from "./config.ts";
import { KvCacheManager } from "./kv_cache_manager.ts";
import { sizeKvCache } from "./kv_sizing.ts";
import { Scheduler } from "./scheduler.ts";

/** The sized parts of a loop. */
export interface LoopSetup {
  readonly limits: ExecutorLimits;
  readonly maxBatchSize: number;
  readonly maxNumTokens: number;
  readonly maxBlocksPerSeq: number;
  readonly kvCache: KvCache;
  readonly kv: KvCacheManager;
  readonly scheduler: Scheduler;
}

/**
 * Checks `config` against the session's engine and builds the KV cache, block manager and
 * scheduler. Throws a ValidationError (a limit above the engine's) or a ResourceError (KV sizing).
 *
 * @example
 * ```ts
 * const { limits, kv, scheduler } = setUpLoop(session, parseWith(ExecutorConfigSchema, {}, "ExecutorConfig"));
 * ```
 */
export function setUpLoop(session: Session, config: ExecutorConfig): LoopSetup {
  const build = session.engine.config.build;
  const plan = session.engine.plan;
  const maxSeqLen = session.maxSeqLen;
  const maxBatchSize = config.maxBatchSize ?? Math.min(build.maxBatchSize, plan.maxSeqs);
  const maxNumTokens = config.maxNumTokens ?? plan.maxTokens;
  if (maxBatchSize > plan.maxSeqs) {
    throw new ValidationError(
      `ExecutorConfig.maxBatchSize: ${maxBatchSize} exceeds the engine's ${plan.maxSeqs} sequences per step`,
      "maxBatchSize",
      maxBatchSize,
    );
  }
  if (maxNumTokens > plan.maxTokens) {
    throw new ValidationError(`ExecutorConfig.maxNumTokens: ${maxNumTokens} exceeds the engine's maxNumTokens ${plan.maxTokens}`, "maxNumTokens", maxNumTokens);
  }
  const bs = session.tokensPerBlock;
  const sizing = sizeKvCache({
    config: config.kvCacheConfig,
    geometry: session.kvGeometry(),
    bytesPerBlock: session.kvBytesPerBlock(),
    maxSeqLen,
    // A step runs at most maxNumTokens sequences (the scheduler's batch is capped by it): a "full batch" is no more.
    maxBatchSize: Math.min(maxBatchSize, maxNumTokens),
    freeMemoryBytes: session.freeMemoryBytes(),
  });
  const numBlocks = sizing.numBlocks;
  const kvCache = session.createKvCache(numBlocks);
  const kv = new KvCacheManager({ numBlocks, tokensPerBlock: bs, enableBlockReuse: config.kvCacheConfig.enableBlockReuse });
  // Logits rows per step: sampling rows, plus prompt rows (up to maxNumTokens with gatherContextLogits).
  const scheduler = new Scheduler(kv, {
    maxBatchSize,
    maxNumTokens,
    enableChunkedPrefill: config.enableChunkedPrefill,
    maxNumRows: plan.maxSeqs,
    admissionDelaySteps: config.admissionDelaySteps,
    decodeDeferSteps: config.decodeDeferSteps,
  });
  const limits: ExecutorLimits = {
    maxInputLen: build.maxInputLen ?? defaultMaxInputLen(maxSeqLen),
    maxSeqLen,
    maxBatchSize: scheduler.maxBatchSize,
    maxNumTokens,
    vocabSize: plan.attributes.vocabSize,
    numKvBlocks: numBlocks,
    tokensPerBlock: bs,
    kvCacheBytes: sizing.bytes,
    kvCacheSizing: sizing.description,
    ...(session.cuda?.weightUpload ? { weightUpload: { ...session.cuda.weightUpload } } : {}),
    ...(session.cuda?.kernelCompile
      ? {
        kernelCompile: {
          units: session.cuda.kernelCompile.units,
          cacheHits: session.cuda.kernelCompile.cacheHits,
          workers: session.cuda.kernelCompile.workers,
          ms: session.cuda.kernelCompile.wallMs,
        },
      }
      : {}),
  };
  return { limits, maxBatchSize, maxNumTokens, maxBlocksPerSeq: Math.ceil(maxSeqLen / bs), kvCache, kv, scheduler };
}
