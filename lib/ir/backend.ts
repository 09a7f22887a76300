/**
 * The contracts between the backend-neutral runtime and a backend (CPU, CUDA; a TensorRT- or
 * tensor-parallel backend would implement the same): what a backend sees of an engine
 * (`EngineView`) and what it must offer (`SessionBackend`). The runtime's `Session` delegates to a
 * `SessionBackend` without knowing its class.
 */
import { z } from "zod";
import type { KvCache, KvCacheGeometry } from "./kv_cache.ts";
import type { EnginePlan } from "./plan.ts";
import type { PendingStep, StepInputs, StepOutputs } from "./step_io.ts";

/** Weight/activation dtypes an engine can be built with. */
export const EngineDTypeSchema = z.enum(["float32", "float16", "bfloat16"]);
export type EngineDType = z.infer<typeof EngineDTypeSchema>;

/** Backends a Session can execute on. */
export type Backend = "cpu" | "cuda";

/** One weight tensor of an engine: its stored dtype (safetensors names: F32, BF16, I8, U8, ...) and shape. */
export interface EngineTensorInfo {
  readonly name: string;
  readonly dtype: string;
  readonly shape: readonly number[];
}

/**
 * What a backend reads of an engine: the plan, the facts of its config a backend needs, and the
 * weights (raw bytes in their stored dtype, or widened to float32). `Engine` (lib/builder)
 * implements it.
 */
export interface EngineView {
  readonly plan: EnginePlan;
  readonly config: {
    readonly dtype: EngineDType;
    readonly model: { readonly maxPositionEmbeddings: number };
    readonly build: {
      readonly backend: Backend;
      readonly maxSeqLen?: number;
      readonly tokensPerBlock: number;
      readonly maxBatchSize: number;
      readonly maxBeamWidth: number;
    };
  };
  tensorNames(): string[];
  tensorInfo(name: string): EngineTensorInfo;
  readTensor(name: string): Uint8Array;
  readFloat32(name: string): Float32Array;
  /**
   * Streams a tensor's raw bytes into buffers the caller provides (e.g. pinned staging): `next(max)`
   * returns where the next at most `max` (> 0) bytes go, and is filled whole before the next call.
   * A file-backed engine reads straight into them and checks the tensor's checksum after the last
   * piece (a FormatError then: the bytes already handed over must not be used). Optional: without
   * it a backend uses `readTensor`.
   */
  readTensorInto?(name: string, next: (maxBytes: number) => Uint8Array): void;
}

/** Longest sequence an engine serves: its build's maxSeqLen, else the model's context. */
export function engineMaxSeqLen(engine: EngineView): number {
  return engine.config.build.maxSeqLen ?? engine.config.model.maxPositionEmbeddings;
}

/**
 * One engine loaded on one backend: runs a forward over a packed batch with explicit inputs and
 * outputs, and makes the KV caches it reads.
 */
export interface SessionBackend {
  readonly backend: Backend;
  readonly plan: EnginePlan;
  readonly maxSeqLen: number;
  readonly tokensPerBlock: number;
  /** Allocates a paged KV cache of `numBlocks` blocks. */
  createKvCache(numBlocks: number): KvCache;
  /** The KV geometry of this engine on this backend (element size included), without the block count. */
  kvGeometry(): Omit<KvCacheGeometry, "numBlocks">;
  /** Bytes one KV block takes on this backend (all layers, k and v): `bytesPerBlock(kvGeometry())`. */
  kvBytesPerBlock(): number;
  /** Memory free for a KV cache (bytes) on a device; null where the budget comes from the batch (CPU). */
  freeMemoryBytes(): number | null;
  /** One forward; throws a ValidationError when `kvCache` was not made by this backend. */
  run(inputs: StepInputs, outputs: StepOutputs, kvCache: KvCache): void;
  /**
   * Enqueues a step without waiting for it (sampled ids only: no logits, no token masks) and returns
   * it; `StepInputs.forwardedTokens` may take token ids from the step launched just before. Absent:
   * `Session.launch` runs the step at once (run) and resolves forwarded tokens on the host.
   */
  launch?(inputs: StepInputs, outputs: StepOutputs, kvCache: KvCache): PendingStep;
  /**
   * Most tokens a step of one-token sequences (speculative verification, StepInputs.readsStepKv) may
   * hold and still round every row as a one-token decode step does (a CUDA session: the decode buckets
   * whose kernels are bucket 1's). Absent: no limit.
   */
  readonly maxVerifyTokens?: number;
  /** Frees native resources. Idempotent. */
  dispose(): void;
}
