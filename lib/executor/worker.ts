/**
 * GenerationExecutorWorker: the executor loop in the caller's thread (steps interleave with the
 * caller's tasks; each step yields a macrotask).
 */
import type { Engine } from "../builder/engine.ts";
import type { LlmTokenizer } from "../tokenizer/tokenizer.ts";
import { type Backend, Session } from "../runtime/session.ts";
import { parseWith } from "../util/validate.ts";
import { type ExecutorConfigInput, ExecutorConfigSchema, type ExecutorLimits, type GenerationRequest, type IterationStats } from "./config.ts";
import { GenerationExecutor } from "./executor.ts";
import { ExecutorLoop } from "./executor_loop.ts";
import type { KvCacheStats } from "./kv_cache_manager.ts";

/** Options of {@link GenerationExecutorWorker.create}. */
export interface ExecutorWorkerOptions {
  /** The engine (owned by the caller; it must outlive the executor). */
  readonly engine: Engine;
  /** Detokenizes outputs and encodes bad words; null = ids only. */
  readonly tokenizer: LlmTokenizer | null;
  /** @default "cpu" */
  readonly backend?: Backend;
  readonly config?: ExecutorConfigInput;
  /** The draft model's engine (speculativeConfig DraftTarget; owned by the caller). */
  readonly draftEngine?: Engine | null;
  /** Tensor parallelism over processes: rank 0's `--tp-master` address and how long ranks may take to join. */
  readonly tp?: { readonly tpMaster?: string; readonly rendezvousTimeoutMs?: number };
}

/**
 * In-process executor: a Session, a paged KV cache and the scheduling loop.
 *
 * @example
 * ```ts
 * await using executor = GenerationExecutorWorker.create({ engine, tokenizer: null });
 * const r = executor.submit({ promptTokenIds: [1, 403, 407], samplingParams: new SamplingParams({ temperature: 0 }) });
 * for await (const out of r) console.log(out.outputs[0].tokenIdsDiff);
 * ```
 */
export class GenerationExecutorWorker extends GenerationExecutor {
  readonly #loop: ExecutorLoop;
  readonly #session: Session;
  readonly limits: ExecutorLimits;

  private constructor(session: Session, tokenizer: LlmTokenizer | null, config: ExecutorConfigInput, draftEngine: Engine | null) {
    super();
    this.#session = session;
    const cfg = parseWith(ExecutorConfigSchema, config, "ExecutorConfig");
    this.#loop = new ExecutorLoop(session, tokenizer, cfg, { emit: (outputs, failures) => this.deliver(outputs, failures) }, { draftEngine });
    this.limits = this.#loop.limits;
  }

  /** Creates a session on `options.engine` and sizes the KV cache. */
  static create(options: ExecutorWorkerOptions): GenerationExecutorWorker {
    const session = Session.fromSerializedEngine(options.engine, { backend: options.backend ?? "cpu", ...options.tp });
    try {
      return new GenerationExecutorWorker(session, options.tokenizer, options.config ?? {}, options.draftEngine ?? null);
    } catch (e) {
      session.dispose();
      throw e;
    }
  }

  getStats(): IterationStats[] {
    return this.#loop.getStats();
  }

  /** KV blocks the speculative draft model holds now (DraftTarget; else 0). */
  get numDraftKvBlocksUsed(): number {
    return this.#loop.numDraftKvBlocksUsed;
  }

  /** Block counts of the KV cache now. */
  get kvCacheStats(): KvCacheStats {
    return this.#loop.kv.stats;
  }

  protected enqueue(requestId: number, request: GenerationRequest): void {
    this.#loop.submit(requestId, request);
  }

  protected cancel(requestId: number): void {
    this.#loop.abort(requestId);
  }

  protected close(): Promise<void> {
    this.#loop.shutdown();
    this.#session.dispose();
    return Promise.resolve();
  }
}
