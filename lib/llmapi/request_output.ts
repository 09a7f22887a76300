/**
 * RequestOutput: what `LLM.generateAsync` returns — the live result of one request. It reads as
 * the request's latest output (the plain `RequestOutput` data of outputs.ts), is async-iterable
 * (one output per step while streaming, each with `textDiff` / `tokenIdsDiff`), awaitable with
 * `result()`, and abortable with `abort()` or an AbortSignal.
 */
import type { GenerationResult } from "../executor/result.ts";
import type { CompletionOutput, RequestOutput as RequestOutputData, TokenLogprobs } from "../executor/outputs.ts";

export type { RequestOutputData };

/**
 * The live result of one request.
 *
 * @example
 * ```ts
 * const ro = llm.generateAsync("Once upon a time", { maxTokens: 64 }, { streaming: true });
 * for await (const out of ro) process.stdout.write(out.outputs[0].textDiff ?? "");
 * const final = await ro.result(); // final.outputs[0].text === all the textDiffs joined
 * ```
 */
export class RequestOutput implements AsyncIterable<RequestOutputData>, RequestOutputData {
  readonly #result: GenerationResult;
  readonly #settled: Promise<RequestOutputData>;

  /** Wraps an executor result; `signal` aborts the request (finishReason "abort"). */
  constructor(result: GenerationResult, signal?: AbortSignal) {
    this.#result = result;
    this.#settled = result.result();
    this.#settled.catch(() => {}); // a failure is reported to whoever awaits or iterates, never as unhandled
    if (signal) {
      const onAbort = (): void => this.abort();
      if (signal.aborted) onAbort();
      else {
        signal.addEventListener("abort", onAbort, { once: true });
        const detach = (): void => signal.removeEventListener("abort", onAbort);
        this.#settled.then(detach, detach);
      }
    }
  }

  get requestId(): number {
    return this.#result.requestId;
  }
  get prompt(): string | null {
    return this.#result.latest.prompt;
  }
  get promptTokenIds(): readonly number[] {
    return this.#result.latest.promptTokenIds;
  }
  /** The latest outputs (empty until the first token). */
  get outputs(): readonly CompletionOutput[] {
    return this.#result.latest.outputs;
  }
  /** True once the request is finished or aborted (a failed request rejects `result()` instead). */
  get finished(): boolean {
    return this.#result.latest.finished;
  }
  /** Prompt logprobs (first entry null), once finished with `promptLogprobs` asked for; else null. */
  get promptLogprobs(): readonly (TokenLogprobs | null)[] | null {
    return this.#result.latest.promptLogprobs ?? null;
  }
  /** Logits rows of the prompt positions, once finished with `returnContextLogits`; else null. */
  get contextLogits(): readonly Float32Array[] | null {
    return this.#result.latest.contextLogits ?? null;
  }
  /** The failure of a failed request, else null. */
  get error(): Error | null {
    return this.#result.error;
  }
  /**
   * True when the request failed at submission, refused before it ran (bad options or parameters the
   * executor's admission found); false while it runs and for a failure while it ran.
   */
  get rejected(): boolean {
    return this.#result.rejected;
  }

  /** The final output; rejects with the reason when the request failed. */
  result(): Promise<RequestOutputData> {
    return this.#settled;
  }

  /** Ends the request now with finishReason "abort" (no-op once it is done). */
  abort(): void {
    this.#result.abort();
  }

  /** True once the request reached a final state (finished, aborted or failed). */
  get done(): boolean {
    return this.#result.done;
  }

  /**
   * Push-based streaming: `listener` runs synchronously whenever an output or the final state
   * arrives (it must not throw); read the merged new outputs with {@link takeNew}. Returns the
   * unsubscribe function. Use it or the async iterator, not both.
   *
   * @example
   * ```ts
   * const ro = llm.generateAsync("Once upon a time", { maxTokens: 64 }, { streaming: true });
   * const off = ro.onUpdate(() => {
   *   const out = ro.takeNew();
   *   if (out) process.stdout.write(out.outputs[0].textDiff ?? "");
   *   if (ro.done) off();
   * });
   * ```
   */
  onUpdate(listener: () => void): () => void {
    return this.#result.onUpdate(listener);
  }

  /** The outputs that arrived since the last read (merged; diffs concatenated), or null; never waits. */
  takeNew(): RequestOutputData | null {
    return this.#result.takeNew();
  }

  /** Outputs as they arrive; the last one has `finished: true`. Throws when the request failed. Leaving the loop early (`break`) aborts the request. */
  [Symbol.asyncIterator](): AsyncIterator<RequestOutputData> {
    return this.#result[Symbol.asyncIterator]();
  }

  /** The latest output as plain data. */
  toJSON(): RequestOutputData {
    return this.#result.latest;
  }
}
