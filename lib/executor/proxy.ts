/**
 * GenerationExecutorProxy: runs the executor loop in a Web Worker (Bun and Deno), so the caller's
 * event loop only relays messages. A worker error (an uncaught exception, a message that cannot be
 * read, a fatal report) fails every request in flight with the reason; none is left hanging.
 */
import type { ExecutorLimits, GenerationRequest, IterationStats } from "./config.ts";
import type { RequestOutput } from "./outputs.ts";
import { WorkerError } from "../util/errors.ts";
import { GenerationExecutor } from "./executor.ts";
import { CallerDetokenizer, callerMayDetokenize } from "./caller_detok.ts";
import type { LlmTokenizer } from "../tokenizer/tokenizer.ts";
import { StepTrace, wallMs } from "./step_trace.ts";
import { fromWireError, type FromWorker, toWireRequest, type ToWorker, WireDeltaDecoder, type WorkerInit } from "./wire.ts";

/** How long shutdown waits for the worker to close before terminating it (ms). */
const CLOSE_TIMEOUT_MS = 5000;

/** Options of {@link GenerationExecutorProxy.create}. */
export interface ProxyOptions {
  /** Runs once the worker is gone (after shutdown). */
  readonly cleanup?: () => void;
  /** The worker script. @default lib/executor/worker_main.ts */
  readonly workerUrl?: URL;
  /**
   * The tokenizer the worker loads from `init.tokenizerDir`, already loaded on this thread: the
   * requests whose text the worker's loop never reads (no stop strings, guided decoding, beam
   * search or bestOf > n; see lib/executor/caller_detok.ts) are then detokenized on this thread
   * from the token ids the worker posts, which takes that work off the worker's step loop. Null or
   * unset: the worker detokenizes everything.
   */
  readonly tokenizer?: LlmTokenizer | null;
}

/**
 * Executor in a worker thread.
 *
 * @example
 * ```ts
 * const executor = await GenerationExecutorProxy.create({ engineDir, tokenizerDir, backend: "cpu", config: {} });
 * const out = await executor.submit({ promptTokenIds: [1, 403], samplingParams }).result();
 * await executor.shutdown();
 * ```
 */
export class GenerationExecutorProxy extends GenerationExecutor {
  readonly #worker: Worker;
  readonly #stats: IterationStats[] = [];
  readonly #statsHistory: number;
  readonly #deltas = new WireDeltaDecoder();
  readonly #texts: CallerDetokenizer | null;
  /** Speculative decoding: several tokens per step; stop strings stay in the worker. */
  readonly #speculative: boolean;
  /** LLMRT_STEP_TRACE=FILE: a per-step trace for performance work (lib/executor/step_trace.ts). */
  readonly #trace = StepTrace.fromEnv();
  #dead: Error | null = null;
  #onClosed: (() => void) | null = null;
  readonly #cleanup: (() => void) | undefined;
  readonly limits: ExecutorLimits;

  private constructor(
    worker: Worker,
    limits: ExecutorLimits,
    statsHistory: number,
    cleanup: (() => void) | undefined,
    tokenizer: LlmTokenizer | null,
    speculative: boolean,
  ) {
    super();
    this.#worker = worker;
    this.#texts = tokenizer ? new CallerDetokenizer(tokenizer, limits.vocabSize) : null;
    this.#speculative = speculative;
    this.#cleanup = cleanup;
    this.limits = limits;
    this.#statsHistory = statsHistory;
    worker.onmessage = (e: MessageEvent<FromWorker>) => this.#onMessage(e.data);
    worker.onerror = (e: ErrorEvent) => {
      e.preventDefault();
      this.#die(new WorkerError(`executor worker failed: ${errorEventMessage(e)}`));
    };
    worker.onmessageerror = () => this.#die(new WorkerError("executor worker sent a message that could not be read"));
  }

  /** Starts the worker and waits until it has loaded the engine (rejects with the worker's error). */
  static create(init: WorkerInit, options: ProxyOptions = {}): Promise<GenerationExecutorProxy> {
    const cleanup = options.cleanup;
    const tokenizer = init.tokenizerDir ? options.tokenizer ?? null : null;
    const worker = new Worker(options.workerUrl ?? new URL("./worker_main.ts", import.meta.url), { type: "module" });
    return new Promise<GenerationExecutorProxy>((resolve, reject) => {
      const fail = (err: Error): void => {
        worker.terminate();
        reject(err);
      };
      worker.onmessage = (e: MessageEvent<FromWorker>) => {
        const m = e.data;
        if (m.type === "ready") {
          resolve(new GenerationExecutorProxy(worker, m.limits, init.config.statsHistory ?? 1000, cleanup, tokenizer, init.config.speculativeConfig != null));
        } else if (m.type === "initError" || m.type === "fatal") fail(fromWireError(m.error));
      };
      worker.onerror = (e: ErrorEvent) => {
        e.preventDefault();
        fail(new WorkerError(`executor worker failed to start: ${errorEventMessage(e)}`));
      };
      const msg: ToWorker = { type: "init", init };
      worker.postMessage(msg);
    });
  }

  getStats(): IterationStats[] {
    return [...this.#stats];
  }

  protected enqueue(requestId: number, request: GenerationRequest): void {
    if (this.#dead) throw this.#dead;
    const wire = toWireRequest(request);
    const here = this.#texts !== null && callerMayDetokenize(request.samplingParams, (request.streaming ?? false) && !this.#speculative);
    if (here) {
      wire.samplingParams.detokenize = false; // the worker's loop never reads this request's text
      this.#texts.track(requestId, request.samplingParams);
    }
    const msg: ToWorker = { type: "submit", id: requestId, request: wire };
    this.#trace?.submitted();
    try {
      this.#worker.postMessage(msg);
    } catch (e) {
      if (here) this.#texts.forget(requestId);
      throw e;
    }
  }

  protected cancel(requestId: number): void {
    if (this.#dead) return;
    const msg: ToWorker = { type: "abort", id: requestId };
    this.#worker.postMessage(msg);
  }

  protected async close(): Promise<void> {
    if (!this.#dead) {
      const closed = new Promise<void>((resolve) => {
        this.#onClosed = resolve;
        const timer = setTimeout(resolve, CLOSE_TIMEOUT_MS);
        (timer as { unref?: () => void }).unref?.();
      });
      const msg: ToWorker = { type: "shutdown" };
      this.#worker.postMessage(msg);
      await closed;
    }
    this.#worker.terminate();
    this.#trace?.write();
    this.#cleanup?.();
  }

  #onMessage(m: FromWorker): void {
    switch (m.type) {
      case "step": {
        const recvAt = this.#trace ? wallMs() : 0;
        if (m.stats) {
          this.#stats.push(m.stats);
          if (this.#stats.length > this.#statsHistory) this.#stats.splice(0, this.#stats.length - this.#statsHistory);
        }
        this.deliver(
          this.#texts ? this.#withText(this.#deltas.decode(m.outputs)) : this.#deltas.decode(m.outputs),
          m.failures.map((f) => {
            this.#deltas.forget(f.requestId);
            this.#texts?.forget(f.requestId);
            return { requestId: f.requestId, error: fromWireError(f.error), rejected: f.rejected ?? false };
          }),
        );
        if (this.#trace && m.stats) this.#trace.step(m.sentAt, recvAt, m.stats, m.encodeMs);
        return;
      }
      case "fatal":
        this.#die(fromWireError(m.error));
        return;
      case "closed":
        this.#onClosed?.();
        return;
      default:
        return;
    }
  }

  /** Outputs with the text built on this thread (see lib/executor/caller_detok.ts); a stop string found here aborts its request in the worker. */
  #withText(outputs: RequestOutput[]): RequestOutput[] {
    const texts = this.#texts!;
    const out: RequestOutput[] = [];
    for (const o of outputs) {
      if (texts.drops(o)) continue;
      const t = texts.apply(o, (id) => this.cancel(id));
      if (t) out.push(t);
    }
    return out;
  }

  /** The worker is unusable: fail everything in flight and every later submit. */
  #die(reason: Error): void {
    this.#dead ??= reason;
    this.failAll(reason);
    this.#onClosed?.();
  }
}

/** The thrown error's own message when the runtime passes it, else the event's text. */
function errorEventMessage(e: ErrorEvent): string {
  const inner: unknown = e.error;
  return inner instanceof Error ? inner.message : e.message || "uncaught error";
}
