/**
 * GenerationExecutor: the interface the LLM API talks to. Two implementations: the in-process
 * worker loop (`GenerationExecutorWorker`) and the proxy that runs that loop in a Web Worker
 * (`GenerationExecutorProxy`). Create one with `createExecutor` (lib/executor/create.ts).
 */
import type { RequestOutput } from "./outputs.ts";
import type { ExecutorLimits, GenerationRequest, IterationStats } from "./config.ts";
import { GenerationResult } from "./result.ts";
import { AbortedError, InternalError } from "../util/errors.ts";

/** A request that failed, as the executor reports it. */
export interface RequestFailure {
  readonly requestId: number;
  readonly error: Error;
  /** Refused at submission (admission, before it ran): its result reads `rejected`. */
  readonly rejected?: boolean;
}

/**
 * Submits requests and hands back their results. Every submitted request ends in exactly one final
 * state: finished, aborted (finishReason "abort"), or failed with a reason — also when the worker
 * dies or the executor shuts down.
 *
 * @example
 * ```ts
 * const executor = await createExecutor({ engine, tokenizer, config: {} });
 * const r = executor.submit({ promptTokenIds: [1, 403, 407], samplingParams: new SamplingParams({ temperature: 0 }) });
 * console.log((await r.result()).outputs[0].tokenIds);
 * await executor.shutdown();
 * ```
 */
export abstract class GenerationExecutor {
  readonly #results = new Map<number, GenerationResult>();
  #nextId = 0;
  #closed = false;

  /** Limits requests are checked against. */
  abstract readonly limits: ExecutorLimits;

  /** Recent iteration stats, oldest first. */
  abstract getStats(): IterationStats[];

  /** Requests not yet in a final state. */
  get numInFlight(): number {
    return this.#results.size;
  }

  get isClosed(): boolean {
    return this.#closed;
  }

  /**
   * Queues a request. Never throws for a bad request: the result fails instead (a ValidationError
   * naming the field), so a batch of requests fails one by one.
   */
  submit(request: GenerationRequest): GenerationResult {
    const id = this.#nextId++;
    const initial: RequestOutput = {
      requestId: id,
      prompt: request.prompt ?? null,
      promptTokenIds: [...(request.promptTokenIds ?? [])],
      outputs: [],
      finished: false,
    };
    const result = new GenerationResult(id, initial, (rid) => this.abortRequest(rid));
    this.#results.set(id, result);
    if (this.#closed) {
      this.deliver([], [{ requestId: id, error: new AbortedError("GenerationExecutor: submit() after shutdown()") }]);
      return result;
    }
    try {
      this.enqueue(id, request);
    } catch (e) {
      this.deliver([], [{ requestId: id, error: toError(e), rejected: true }]);
    }
    return result;
  }

  /**
   * Queues a request still being prepared (a long text prompt tokenized in slices): the handle
   * exists at once, `prepare` runs now, and its request is enqueued when it resolves — or the
   * result fails with its error. An abort before then ends the request at once with `numOutputs`
   * empty outputs (finishReason "abort"); `prepare` sees `isCancelled()` turn true and may stop
   * early by resolving null.
   */
  submitWhenReady(
    prepare: (isCancelled: () => boolean) => Promise<GenerationRequest | null>,
    prompt: string | null,
    numOutputs: number,
  ): GenerationResult {
    const id = this.#nextId++;
    let preparing = true;
    let cancelled = false;
    const result = new GenerationResult(id, { requestId: id, prompt, promptTokenIds: [], outputs: [], finished: false }, (rid) => {
      if (!preparing) return this.abortRequest(rid);
      cancelled = true;
      this.deliver([abortedBeforeSubmission(id, prompt, numOutputs)], []);
    });
    this.#results.set(id, result);
    let prepared: Promise<GenerationRequest | null>;
    try {
      prepared = Promise.resolve(prepare(() => cancelled || this.#closed));
    } catch (e) {
      prepared = Promise.reject(e); // a prepare that throws at once fails the request like one that rejects
    }
    prepared.then(
      (request) => {
        preparing = false;
        if (request === null || !this.#results.has(id)) return; // aborted, or failed by a shutdown, meanwhile
        if (this.#closed) return this.deliver([], [{ requestId: id, error: new AbortedError("GenerationExecutor: submit() after shutdown()") }]);
        try {
          this.enqueue(id, request);
        } catch (e) {
          this.deliver([], [{ requestId: id, error: toError(e), rejected: true }]);
        }
      },
      (e) => {
        preparing = false;
        this.deliver([], [{ requestId: id, error: toError(e), rejected: true }]);
      },
    );
    return result;
  }

  /**
   * A result that has already failed with `error` (for a request rejected before submission), so
   * callers get the same handle and the same single final state as for a submitted request.
   */
  failedResult(error: Error, prompt: string | null = null): GenerationResult {
    const id = this.#nextId++;
    const result = new GenerationResult(id, { requestId: id, prompt, promptTokenIds: [], outputs: [], finished: false }, () => {});
    result.fail(error, true);
    return result;
  }

  /** Aborts a request: it ends with finishReason "abort" and its KV blocks are freed at once. Unknown or finished ids are ignored. */
  abortRequest(requestId: number): void {
    if (this.#results.has(requestId) && !this.#closed) this.cancel(requestId);
  }

  /** Stops the executor; requests still in flight fail with "shut down". Idempotent. */
  async shutdown(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    try {
      await this.close();
    } finally {
      this.failAll(new AbortedError("GenerationExecutor: shut down while the request was in flight"));
    }
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.shutdown();
  }

  /** Hands the request to the worker. May throw (the request then fails). */
  protected abstract enqueue(requestId: number, request: GenerationRequest): void;
  /** Asks the worker to abort a request. */
  protected abstract cancel(requestId: number): void;
  /** Releases the worker. */
  protected abstract close(): Promise<void>;

  /** Routes outputs and failures to their results; final ones leave the in-flight set. */
  protected deliver(outputs: readonly RequestOutput[], failures: readonly RequestFailure[]): void {
    for (const out of outputs) {
      const r = this.#results.get(out.requestId);
      if (!r) continue;
      if (out.finished) this.#results.delete(out.requestId);
      r.push(out);
    }
    for (const f of failures) {
      const r = this.#results.get(f.requestId);
      if (!r) continue;
      this.#results.delete(f.requestId);
      r.fail(f.error, f.rejected ?? false);
    }
  }

  /** Fails every request in flight with `error`. */
  protected failAll(error: Error): void {
    this.deliver([], [...this.#results.keys()].map((requestId) => ({ requestId, error })));
  }
}

/** The final output of a request aborted before it was submitted: `n` empty completions. */
function abortedBeforeSubmission(requestId: number, prompt: string | null, n: number): RequestOutput {
  const outputs = Array.from(
    { length: n },
    (_, index) => ({ index, text: "", tokenIds: [], finishReason: "abort" as const, stopReason: null, textDiff: "", tokenIdsDiff: [] }),
  );
  return { requestId, prompt, promptTokenIds: [], outputs, finished: true };
}

/** Any thrown value as an Error. */
export function toError(e: unknown): Error {
  return e instanceof Error ? e : new InternalError(`a non-Error value was thrown: ${String(e)}`);
}
