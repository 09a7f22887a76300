import type { Engine } from "../builder/engine.ts";
import { ValidationError } from "../util/errors.ts";
import { CpuSession } from "./cpu_session.ts";
import type { CpuKvCache } from "./kv_cache_pool.ts";
import type { StepInputs, StepOutputs } from "./step_io.ts";

export type { StepInputs, StepOutputs } from "./step_io.ts";

/** Backends a Session can execute on. */
export type Backend = "cpu" | "cuda";

export interface SessionOptions {
  /** @default "cpu" */
  readonly backend?: Backend;
}

/** A KV cache made by a Session for its engine. */
export type KvCache = CpuKvCache;

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
  readonly #impl: CpuSession;
  #disposed = false;

  private constructor(impl: CpuSession, readonly backend: Backend) {
    this.#impl = impl;
  }

  /** Creates a session for `engine` on the requested backend. */
  static fromSerializedEngine(engine: Engine, options: SessionOptions = {}): Session {
    const backend = options.backend ?? "cpu";
    if (backend === "cpu") return new Session(new CpuSession(engine), "cpu");
    if (backend === "cuda") {
      throw new ValidationError(`Session: backend "cuda" cannot run engines yet (the CUDA session is not implemented); use backend "cpu"`, "backend", backend);
    }
    throw new ValidationError(`Session: backend ${JSON.stringify(backend)} is not one of "cpu", "cuda"`, "backend", backend);
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
    return a.numLayers * 2 * this.tokensPerBlock * a.numKvHeads * a.headDim * 4;
  }

  /** One forward pass over a packed batch. */
  run(inputs: StepInputs, outputs: StepOutputs, kvCache: KvCache): void {
    this.#live();
    this.#impl.run(inputs, outputs, kvCache);
  }

  /** Idempotent; the engine stays owned by the caller. */
  dispose(): void {
    this.#disposed = true;
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  #live(): void {
    if (this.#disposed) throw new Error("Session: used after dispose()");
  }
}
