/**
 * Executor configuration (TensorRT-LLM's KvCacheConfig / scheduler options, camelCase), and the
 * request and statistics shapes shared by the in-process executor, the proxy and its worker.
 */
import { z } from "zod";
import type { SamplingParams } from "./sampling_params.ts";
import { SpeculativeConfigSchema } from "./speculative/config.ts";
import type { LoraRequest } from "../models/lora.ts";

const posInt = z.number().int().positive();

/** How big the paged KV cache is and whether it reuses prefixes. */
export const KvCacheConfigSchema = z.strictObject({
  /** Cap on cached tokens. */
  maxTokens: posInt.optional(),
  /** Cap on bytes. */
  maxBytes: posInt.optional(),
  /**
   * Fraction of free device memory the cache may take. Unset, the cache holds what a full batch
   * needs (maxBatchSize × maxSeqLen tokens), at most 0.9 of the free memory (1 GiB on the CPU); set,
   * it takes that fraction of the free memory (the large serving default; on the CPU, of 1 GiB).
   */
  freeGpuMemoryFraction: z.number().gt(0).lte(1).optional(),
  /** Reuse KV blocks of a shared prompt prefix across requests. @default true */
  enableBlockReuse: z.boolean().default(true),
});
export type KvCacheConfigInput = z.input<typeof KvCacheConfigSchema>;
export type KvCacheConfig = z.output<typeof KvCacheConfigSchema>;

/** Options of the executor (all limits default to the engine's). */
export const ExecutorConfigSchema = z.strictObject({
  /** Most sequences in flight; at most the engine's maxBatchSize × maxBeamWidth. @default the engine's maxBatchSize */
  maxBatchSize: posInt.optional(),
  /** Most tokens in one step; at most the engine's. @default the engine's maxNumTokens */
  maxNumTokens: posInt.optional(),
  /** Split prompts longer than the step's token budget over several steps. @default true */
  enableChunkedPrefill: z.boolean().default(true),
  /**
   * Steps new requests may wait while others run, so that prompts arriving over a few steps prefill
   * together (fewer mixed prefill + decode steps; see SchedulerConfig.admissionDelaySteps). They
   * start at once when nothing else runs or when they would fill the batch. @default 0
   */
  admissionDelaySteps: z.number().int().min(0).max(1024).default(0),
  /**
   * Steps in a row that decoding sequences may sit out so that waiting prompts bringing at least half the step's
   * token budget prefill in a step of their own (no decode tokens in large eager prefill steps; see
   * SchedulerConfig.decodeDeferSteps). Offline batches gain; a running sequence's next token comes one step later.
   * @default 0
   */
  decodeDeferSteps: z.number().int().min(0).max(1024).default(0),
  /** @default {} */
  kvCacheConfig: KvCacheConfigSchema.prefault({}),
  /** LoRA adapters per request (CPU backend): `maxLoras` resident at once, ranks up to `maxLoraRank`; off when absent. */
  lora: z.strictObject({ maxLoras: posInt.max(64), maxLoraRank: posInt.max(1024) }).optional(),
  /** Speculative decoding (prompt lookup or a draft model); off when absent. */
  speculativeConfig: SpeculativeConfigSchema.optional(),
  /**
   * When a guided request's matcher accepts a sampled token (requests whose masks go to the
   * sampler): "deferred" inside the next step's mask computation, which on CUDA overlaps the
   * forward pass; "immediate" as the sampled ids arrive (the reference for measurements; the
   * outputs are the same). @default "deferred"
   */
  guidedAccept: z.enum(["deferred", "immediate"]).default("deferred"),
  /**
   * Overlapped decode steps: in the steady state of decoding (one token per sequence, nothing the host
   * computes from logits), step N + 1 is enqueued before step N's sampled ids are read back, its token
   * ids copied on the device, so scheduling, packing, stop checks, detokenizing and outputs run while the
   * device computes (lib/executor/overlap.ts). Same tokens as without it. Off with speculative decoding
   * and LoRA. @default true on a backend that enqueues steps (a single-GPU CUDA session), else false
   */
  overlapSteps: z.boolean().optional(),
  /** Iteration stats kept for `getStats()`. @default 1000 */
  statsHistory: posInt.default(1000),
});
export type ExecutorConfigInput = z.input<typeof ExecutorConfigSchema>;
export type ExecutorConfig = z.output<typeof ExecutorConfigSchema>;

/** One request to an executor. */
export interface GenerationRequest {
  readonly promptTokenIds: readonly number[];
  readonly samplingParams: SamplingParams;
  /** The prompt text, echoed in outputs. @default null */
  readonly prompt?: string | null;
  /** Emit an output after every step (else only the final one). @default false */
  readonly streaming?: boolean;
  /** Higher is scheduled first; equal priorities are first come, first served. @default 0 */
  readonly priority?: number;
  /** A LoRA adapter (PEFT directory) this request runs with; the executor must have `lora` enabled. */
  readonly loraRequest?: LoraRequest;
}

/** One executor iteration (step). */
export interface IterationStats {
  /** Step number since the executor started. */
  readonly iter: number;
  /** Sequences in the step's batch. */
  readonly numScheduled: number;
  readonly numPrefillTokens: number;
  readonly numDecodeTokens: number;
  /** Groups preempted (KV dropped for recompute) in this step. */
  readonly numPreempted: number;
  /** Requests in flight after the step: admitted / queued. */
  readonly numRunning: number;
  readonly numWaiting: number;
  /** Wall time of the step: schedule, forward, sampling, outputs (ms). */
  readonly stepMs: number;
  /** Of `stepMs`, the model's forward pass and sampling (`Session.run`: host launches and the device's work; ms). */
  readonly forwardMs?: number;
  /** Time between the end of the previous step and the start of this one (event-loop turns: new requests, aborts; ms). */
  readonly idleMs?: number;
  readonly kvBlocksUsed: number;
  readonly kvBlocksFree: number;
  /** Blocks served from the prefix cache since the executor started (cumulative). */
  readonly kvBlocksReused: number;
  /** Free blocks still holding a reusable prefix. */
  readonly kvBlocksCached: number;
  /** Speculative decoding: draft tokens verified in this step (0 without speculation). */
  readonly numDraftTokens?: number;
  /** Speculative decoding: of those, accepted by the target. */
  readonly numAcceptedDraftTokens?: number;
  /**
   * Guided decoding: host time spent computing the grammar masks the sampler applied this step,
   * with the previous step's tokens their matchers accepted first (ms; on CUDA while the GPU ran
   * the forward pass). Rows masked on the host path are not counted.
   */
  readonly guidedMaskMs?: number;
  /**
   * Guided decoding: host time of grammar work outside that overlap (ms): host-path masks, tokens
   * accepted as they arrive, pending tokens settled when a request ends.
   */
  readonly guidedHostMs?: number;
}

/** The executor's fixed limits (from the engine and the KV cache it sized). */
export interface ExecutorLimits {
  readonly maxInputLen: number;
  readonly maxSeqLen: number;
  readonly maxBatchSize: number;
  readonly maxNumTokens: number;
  readonly vocabSize: number;
  readonly numKvBlocks: number;
  readonly tokensPerBlock: number;
  /** Bytes the KV cache holds. */
  readonly kvCacheBytes: number;
  /** How the KV cache was sized, one line (what `LLM.create` logs). */
  readonly kvCacheSizing: string;
  /** How the weights went to the device (CUDA, one rank): bytes, milliseconds, pinned staging or not. */
  readonly weightUpload?: { readonly bytes: number; readonly ms: number; readonly staged: boolean };
  /**
   * The session's up-front kernel load (CUDA, one rank): units, how many came from the disk cache,
   * and its wall time (ms), which overlaps the weight upload.
   */
  readonly kernelCompile?: { readonly units: number; readonly cacheHits: number; readonly workers: number; readonly ms: number };
}
