/**
 * GenerationResult: the handle of one submitted request — awaitable (`result()`) and
 * async-iterable (one output per step while streaming). It ends in exactly one final state:
 * finished (finishReason stop/length), aborted (finishReason "abort"), or failed (an error).
 */
import type { CompletionOutput, RequestOutput } from "./outputs.ts";
import { RequestFailedError } from "../util/errors.ts";

/**
 * The handle of a submitted request. Outputs the consumer has not read yet are merged (their
 * diffs concatenated), so a slow reader sees fewer, larger deltas but never loses text. Meant for
 * one reader: concurrent iterators share (split) the outputs, and one that leaves its loop early aborts the request.
 *
 * @example
 * ```ts
 * const r = executor.submit({ promptTokenIds: [1, 403], samplingParams, streaming: true });
 * for await (const out of r) process.stdout.write(out.outputs[0].textDiff ?? "");
 * const final = await r.result();
 * ```
 */
export class GenerationResult implements AsyncIterable<RequestOutput> {
  #latest: RequestOutput;
  /** Diffs not yet read by the iterator, per output index. */
  #pending: Map<number, { text: string; ids: number[] }> | null = null;
  #error: Error | null = null;
  #rejected = false;
  #done = false;
  readonly #wake: (() => void)[] = [];
  #settled: Promise<RequestOutput> | null = null;
  readonly #doneWaiters: (() => void)[] = [];
  readonly #abort: (requestId: number) => void;
  readonly #listeners = new Set<() => void>();

  constructor(readonly requestId: number, initial: RequestOutput, abort: (requestId: number) => void) {
    this.#latest = initial;
    this.#abort = abort;
  }

  /** The latest output (its diffs relative to the output before it). */
  get latest(): RequestOutput {
    return this.#latest;
  }
  /** True once the request reached a final state. */
  get done(): boolean {
    return this.#done;
  }
  /** The failure, once failed. */
  get error(): Error | null {
    return this.#error;
  }
  /** True when it failed at submission: refused before it ran (a bad request, found by the executor's admission). */
  get rejected(): boolean {
    return this.#rejected;
  }

  /** Resolves with the final output (also for an aborted request); rejects when the request failed. */
  result(): Promise<RequestOutput> {
    this.#settled ??= this.#waitDone().then(() => {
      if (this.#error) throw this.#error;
      return this.#latest;
    });
    return this.#settled;
  }

  /** Asks the executor to abort the request; it then ends with finishReason "abort". */
  abort(): void {
    if (!this.#done) this.#abort(this.requestId);
  }

  /**
   * Push-based reading (a server writing a stream per request): `listener` is called synchronously,
   * on the executor's turn, whenever an output or the final state arrives (it must not throw: one that
   * does is unsubscribed, and a request still running fails with its error and is aborted); read
   * with {@link takeNew}. Returns the unsubscribe function. Shares the unread outputs with the iterator.
   */
  onUpdate(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** The outputs not read yet, merged into one (diffs concatenated), or null when none came; never waits. */
  takeNew(): RequestOutput | null {
    return this.#pending ? this.#takePending() : null;
  }

  /**
   * Yields outputs as they arrive (merged when not read in time); the last has `finished: true`. Throws on failure.
   * Leaving the loop early (`break`, `return` or a throw in its body) aborts the request: nobody reads the rest,
   * so its KV blocks are freed at once instead of after `maxTokens` more steps.
   */
  async *[Symbol.asyncIterator](): AsyncIterator<RequestOutput> {
    try {
      while (true) {
        if (this.#pending) {
          yield this.#takePending();
          continue;
        }
        if (this.#error) throw this.#error;
        if (this.#done) return;
        await new Promise<void>((resolve) => this.#wake.push(resolve));
      }
    } finally {
      this.abort(); // a no-op once done
    }
  }

  /** @internal Executor side: a new output. */
  push(out: RequestOutput): void {
    if (this.#done) return;
    this.#latest = out;
    this.#pending ??= new Map();
    for (const o of out.outputs) {
      const p = this.#pending.get(o.index);
      if (p) {
        p.text += o.textDiff ?? "";
        p.ids.push(...(o.tokenIdsDiff ?? []));
      } else {
        this.#pending.set(o.index, { text: o.textDiff ?? "", ids: [...(o.tokenIdsDiff ?? [])] });
      }
    }
    if (out.finished) this.#done = true;
    this.#notify();
  }

  /** @internal Executor side: the request failed (`rejected`: at submission, before it ran). */
  fail(error: Error, rejected = false): void {
    if (this.#done) return;
    this.#error = error;
    this.#rejected = rejected;
    this.#done = true;
    this.#notify();
  }

  #takePending(): RequestOutput {
    const pending = this.#pending!;
    this.#pending = null;
    const outputs: CompletionOutput[] = this.#latest.outputs.map((o) => {
      const p = pending.get(o.index);
      return { ...o, textDiff: p?.text ?? "", tokenIdsDiff: p?.ids ?? [] };
    });
    return { ...this.#latest, outputs };
  }

  #notify(): void {
    // Runs per output of every stream: no array copies when nobody waits (a server listens instead).
    if (this.#wake.length > 0) { for (const w of this.#wake.splice(0)) w(); }
    let broken: unknown = undefined, threw = false;
    for (const l of this.#listeners) {
      try {
        l();
      } catch (e) {
        // A listener must not throw: it would break the executor's delivery to every other request.
        this.#listeners.delete(l);
        if (!threw) [broken, threw] = [e, true];
      }
    }
    if (this.#done && this.#doneWaiters.length > 0) { for (const f of this.#doneWaiters.splice(0)) f(); }
    if (threw && !this.#done) {
      // Nobody reads the request properly any more: it fails with the listener's error and stops running.
      const why = broken instanceof Error ? broken.message : String(broken);
      this.fail(new RequestFailedError(`GenerationResult.onUpdate: a listener threw: ${why}`, { cause: broken }));
      this.#abort(this.requestId);
    }
  }

  #waitDone(): Promise<void> {
    if (this.#done) return Promise.resolve();
    return new Promise<void>((resolve) => this.#doneWaiters.push(resolve));
  }
}
