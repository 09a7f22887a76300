/**
 * `Session`: one engine loaded on one backend (TensorRT's role). Backend-neutral: it delegates to a
 * `SessionBackend` made by the backend registry (lib/runtime/backends.ts) and knows no backend class.
 */
import type { CudaSession } from "../backends/cuda/session.ts";
import type { Engine } from "../builder/engine.ts";
import type { Backend, SessionBackend } from "../ir/backend.ts";
import type { KvCache } from "../ir/kv_cache.ts";
import type { PendingStep, StepInputs, StepOutputs } from "../ir/step_io.ts";
import { DisposedError, ValidationError } from "../util/errors.ts";
import { createSessionBackend } from "./backends.ts";
import { parseSessionOptions, type SessionOptions } from "./session_options.ts";
import type { TpSessionOptions } from "./tp_session.ts";

export type { ForwardedTokens, PendingStep, StepInputs, StepOutputs } from "../ir/step_io.ts";
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
  /** The last step and its sampled ids, for forwarded tokens on a backend without `launch`. */
  #last: { readonly step: PendingStep; readonly ids: Int32Array } | null = null;

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
    if (inputs.forwardedTokens) throw new ValidationError("Session.run: inputs.forwardedTokens needs Session.launch", "forwardedTokens");
    this.#last = null;
    this.#impl.run(inputs, outputs, kvCache);
  }

  /**
   * Enqueues a step and returns before it is done (CUDA: the host goes on while the device runs it;
   * `wait()` fills `outputs.sampledIds`). Its token ids may come from the step launched just before
   * (`inputs.forwardedTokens`), so a decode step can be enqueued before the previous one's ids are read
   * back. Sampled ids only (no logits). A backend without native launch runs the step at once.
   *
   * @example
   * ```ts
   * const a = session.launch(step1, out1, kv); // out1.sampledIds: Int32Array(numRows)
   * const b = session.launch({ ...step2, forwardedTokens: { from: a, rows: Int32Array.from([0, 1]) } }, out2, kv);
   * a.wait(); // out1 filled while step2 runs
   * b.wait();
   * ```
   */
  launch(inputs: StepInputs, outputs: StepOutputs, kvCache: KvCache): PendingStep {
    this.#live();
    if (!outputs.sampledIds || outputs.logits) {
      throw new ValidationError("Session.launch: outputs must hold sampledIds and no logits (use run for logits)", "outputs");
    }
    const f = inputs.forwardedTokens;
    if (this.#impl.launch) {
      this.#last = null;
      return this.#impl.launch(inputs, outputs, kvCache);
    }
    let inp = inputs;
    if (f) {
      if (!this.#last || f.from !== this.#last.step) {
        throw new ValidationError("Session.launch: inputs.forwardedTokens.from is not the step launched last on this session", "forwardedTokens.from");
      }
      const ids = Int32Array.from(inputs.tokenIds), prev = this.#last.ids;
      for (let t = 0; t < ids.length; t++) {
        const r = f.rows[t];
        if (r >= prev.length) {
          throw new ValidationError(`Session.launch: inputs.forwardedTokens.rows[${t}] is ${r}; that step had ${prev.length} rows`, "forwardedTokens.rows", r);
        }
        if (r >= 0) ids[t] = prev[r];
      }
      inp = { ...inputs, tokenIds: ids, forwardedTokens: undefined };
    }
    this.#impl.run(inp, outputs, kvCache);
    const step: PendingStep = { wait: () => {} };
    this.#last = { step, ids: outputs.sampledIds.slice() };
    return step;
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
