/**
 * `Session`: one engine loaded on one backend (TensorRT's role). Backend-neutral: it delegates to a
 * `SessionBackend` made by the backend registry (lib/runtime/backends.ts) and knows no backend class.
 */
import type { CudaSession } from "../backends/cuda/session.ts";
import type { Engine } from "../builder/engine.ts";
import type { Backend, SessionBackend } from "../ir/backend.ts";
import type { KvCache } from "../ir/kv_cache.ts";
import type { StepInputs, StepOutputs } from "../ir/step_io.ts";
import { DisposedError } from "../util/errors.ts";
import { createSessionBackend } from "./backends.ts";
import { parseSessionOptions, type SessionOptions } from "./session_options.ts";
import type { TpSessionOptions } from "./tp_session.ts";

export type { StepInputs, StepOutputs } from "../ir/step_io.ts";
export type { Backend, SessionBackend } from "../ir/backend.ts";
export type { KvCache, KvCacheGeometry } from "../ir/kv_cache.ts";
export type { SessionOptions } from "./session_options.ts";
export type { CommDType, Communicator } from "../ir/communicator.ts";
export type { TpSessionOptions } from "./tp_session.ts";

/**
 * Runs one engine forward at a time with explicit inputs and outputs.
 *
 * @example
 * ```ts
 * using session = Session.fromSerializedEngine(engine, { backend: "cpu" });
 * const kv = session.createKvCache(64);
 * const out = { logits: new Float32Array(vocab) };
 * session.run({ tokenIds, positions, seqStarts, blockTables, maxBlocksPerSeq, logitRows }, out, kv);
 * ```
 */
export class Session {
  readonly #impl: SessionBackend;
  #disposed = false;

  private constructor(impl: SessionBackend, readonly engine: Engine) {
    this.#impl = impl;
  }

  /**
   * Creates a session for `engine` on the requested backend (options validated; see SessionOptions).
   * A tensor-parallel engine runs one worker per rank; `rankWorkers: true` takes that path for a
   * one-rank engine too (TpSession, lib/runtime/tp_session.ts).
   */
  static fromSerializedEngine(engine: Engine, options: SessionOptions & TpSessionOptions & { readonly rankWorkers?: boolean } = {}): Session {
    const { rankWorkers, startupTimeoutMs, stepTimeoutMs, ncclUniqueId, tpMaster, rendezvousTimeoutMs, ...rest } = options;
    const o = parseSessionOptions(rest);
    const tp = { rankWorkers, startupTimeoutMs, stepTimeoutMs, ncclUniqueId, tpMaster, rendezvousTimeoutMs };
    return new Session(createSessionBackend(engine, o, tp), engine);
  }

  /** The backend this session runs on. */
  get backend(): Backend {
    return this.#impl.backend;
  }

  /** The backend implementation (for backend-specific tools: profiling, graph counts). */
  get impl(): SessionBackend {
    return this.#impl;
  }

  /** The CUDA session behind this one (null on another backend): graphs, device, launch plan. */
  get cuda(): CudaSession | null {
    return this.#impl.backend === "cuda" ? this.#impl as CudaSession : null;
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

  /** KV geometry on this backend (without the block count). */
  kvGeometry(): ReturnType<SessionBackend["kvGeometry"]> {
    return this.#impl.kvGeometry();
  }

  /** Bytes one KV block takes on this session's backend. */
  kvBytesPerBlock(): number {
    return this.#impl.kvBytesPerBlock();
  }

  /** Device memory free for a KV cache (bytes) on a GPU; null on the CPU (which budgets from the batch). */
  freeMemoryBytes(): number | null {
    this.#live();
    return this.#impl.freeMemoryBytes();
  }

  /** One forward pass over a packed batch. */
  run(inputs: StepInputs, outputs: StepOutputs, kvCache: KvCache): void {
    this.#live();
    this.#impl.run(inputs, outputs, kvCache);
  }

  /** Idempotent; frees the backend's native resources (CUDA: device memory, graphs). The engine stays owned by the caller. */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    this.#impl.dispose();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  #live(): void {
    if (this.#disposed) throw new DisposedError("Session");
  }
}
