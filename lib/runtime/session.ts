import type { Engine } from "../builder/engine.ts";
import { ValidationError } from "../util/errors.ts";
import { CpuSession } from "./cpu_session.ts";
import { CudaKvCache, CudaSession } from "./cuda_session.ts";
import { CpuKvCache } from "./kv_cache_pool.ts";
import type { StepInputs, StepOutputs } from "./step_io.ts";

export type { StepInputs, StepOutputs } from "./step_io.ts";

/** Backends a Session can execute on. */
export type Backend = "cpu" | "cuda";

export interface SessionOptions {
  /** @default "cpu" */
  readonly backend?: Backend;
  /** CUDA: device ordinal. @default 0 */
  readonly device?: number;
  /** CUDA: replay decode steps as captured graphs. @default true (LLMRT_CUDA_GRAPHS=0 turns them off) */
  readonly cudaGraphs?: boolean;
  /** CUDA: decode-sized bf16 linears on the skinny-GEMM kernel. @default true (LLMRT_GEMV=0 turns it off) */
  readonly gemv?: boolean;
  /** CUDA: batch == single, bitwise (see CudaSessionOptions.batchInvariant). @default true (LLMRT_BATCH_INVARIANT=0 turns it off) */
  readonly batchInvariant?: boolean;
}

/** A KV cache made by a Session for its engine (host arrays on the CPU, one device allocation on CUDA). */
export type KvCache = CpuKvCache | CudaKvCache;

/**
 * Runs one engine forward at a time with explicit inputs and outputs (TensorRT's role).
 *
 * @example
 * ```ts
 * const session = Session.fromSerializedEngine(engine, { backend: "cpu" });
 * const kv = session.createKvCache(64);
 * const out = { logits: new Float32Array(vocab) };
 * session.run({ tokenIds, positions, seqStarts, blockTables, maxBlocksPerSeq, logitRows }, out, kv);
 * ```
 */
export class Session {
  readonly #impl: CpuSession | CudaSession;
  #disposed = false;

  private constructor(impl: CpuSession | CudaSession, readonly backend: Backend) {
    this.#impl = impl;
  }

  /** Creates a session for `engine` on the requested backend. */
  static fromSerializedEngine(engine: Engine, options: SessionOptions = {}): Session {
    const backend = options.backend ?? "cpu";
    if (backend === "cpu") return new Session(new CpuSession(engine), "cpu");
    if (backend === "cuda") return new Session(new CudaSession(engine, { device: options.device, cudaGraphs: options.cudaGraphs, gemv: options.gemv, batchInvariant: options.batchInvariant }), "cuda");
    throw new ValidationError(`Session: backend ${JSON.stringify(backend)} is not one of "cpu", "cuda"`, "backend", backend);
  }

  /** The CUDA session behind this one (null on the CPU): graphs, device, launch plan. */
  get cuda(): CudaSession | null {
    return this.#impl instanceof CudaSession ? this.#impl : null;
  }

  get engine(): Engine {
    return this.#impl.engine;
  }

  /** Tokens per KV block the engine was built for. */
  get tokensPerBlock(): number {
    return this.#impl.tokensPerBlock;
  }

  /** Longest sequence the engine accepts. */
  get maxSeqLen(): number {
    return this.#impl.maxSeqLen;
  }

  /** Allocates a paged KV cache of `numBlocks` blocks. */
  createKvCache(numBlocks: number): KvCache {
    this.#live();
    return this.#impl.createKvCache(numBlocks);
  }

  /** Bytes one KV block takes on this session's backend. */
  kvBytesPerBlock(): number {
    const a = this.engine.plan.attributes;
    return a.numLayers * 2 * this.tokensPerBlock * a.numKvHeads * a.headDim * (this.#impl instanceof CudaSession ? this.#impl.plan.elementBytes : 4);
  }

  /** Device memory free for a KV cache (bytes) on CUDA; null on the CPU (which budgets from the batch). */
  freeMemoryBytes(): number | null {
    this.#live();
    return this.#impl instanceof CudaSession ? this.#impl.freeMemoryBytes() : null;
  }

  /** One forward pass over a packed batch. */
  run(inputs: StepInputs, outputs: StepOutputs, kvCache: KvCache): void {
    this.#live();
    const impl = this.#impl;
    if (impl instanceof CudaSession) {
      if (!(kvCache instanceof CudaKvCache)) throw new ValidationError("Session.run: a CUDA session needs a KV cache from its createKvCache()", "kvCache");
      impl.run(inputs, outputs, kvCache);
    } else {
      if (!(kvCache instanceof CpuKvCache)) throw new ValidationError("Session.run: a CPU session needs a KV cache from its createKvCache()", "kvCache");
      impl.run(inputs, outputs, kvCache);
    }
  }

  /** Idempotent; frees the backend's native resources (CUDA: device memory, graphs). The engine stays owned by the caller. */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    if (this.#impl instanceof CudaSession) this.#impl.dispose();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  #live(): void {
    if (this.#disposed) throw new Error("Session: used after dispose()");
  }
}
