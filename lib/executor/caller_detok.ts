/**
 * Detokenization on the caller's thread for requests run by the executor's worker
 * (GenerationExecutorProxy): the worker's step loop then only schedules, steps and stop-checks ids,
 * and the text of each stream is built here from the token ids it posts, exactly as the worker's
 * OutputBuilder would have built it.
 *
 * Only requests whose text the worker's loop never reads qualify: no guided decoding (its final
 * `parsed` and grammar end read the text), no beam search and no bestOf > n (their outputs are
 * decoded or re-indexed at the end), output ids without the prompt. Stop strings are matched here
 * too when the request streams (its outputs come every step), has one sequence and no prompt
 * logprobs or logits, and the executor does not speculate (one token per step): its final output
 * is then built here, the match ends the request's output at once, and the worker, which may have
 * run further steps meanwhile, is told to abort it (its later outputs are dropped). Every other
 * request is detokenized and stop-checked in the worker as before.
 */
import type { IncrementalDetokenizer } from "../tokenizer/detokenizer.ts";
import type { LlmTokenizer } from "../tokenizer/tokenizer.ts";
import type { CompletionOutput, RequestOutput } from "./outputs.ts";
import type { SamplingParams } from "./sampling_params.ts";
import { numHeldBackChars, StopChecker } from "./stop_checker.ts";

/** The text state of one sequence (OutputBuilder's SeqOutput, text part). */
interface SeqText {
  detok: IncrementalDetokenizer | null;
  text: string;
  sentText: number;
  /** Output ids pushed into `detok` (or skipped as the stop id). */
  consumed: number;
  flushed: boolean;
  /** Token ids of the last output passed on. */
  sentTokens: number;
  /** Matches the stop strings (only they: the worker decides on ids and lengths). */
  readonly strings: StopChecker | null;
}

interface RequestText {
  readonly params: SamplingParams;
  readonly seqs: Map<number, SeqText>;
}

/** A StopChecker's fields that leave it only the stop strings (and minTokens) to check. */
const stringsOnly = { ignoreEos: true, stopTokenIds: [] as number[], maxTokens: Number.POSITIVE_INFINITY };

/**
 * Whether the caller may detokenize a request of these sampling params (see the module comment).
 *
 * @example
 * ```ts
 * callerMayDetokenize(new SamplingParams({ maxTokens: 8 }), false); // true
 * callerMayDetokenize(new SamplingParams({ stop: ["\n"] }), true); // true: matched on the caller's thread
 * callerMayDetokenize(new SamplingParams({ stop: ["\n"] }), false); // false: only the final output would come
 * ```
 */
export function callerMayDetokenize(p: SamplingParams | undefined, streaming: boolean): p is SamplingParams {
  return p !== undefined && p.detokenize === true && p.guidedDecoding === undefined && !p.useBeamSearch &&
    (p.bestOf === undefined || p.bestOf === p.n) && p.excludeInputFromOutput === true &&
    (p.stop.length === 0 ||
      (streaming && p.n === 1 && p.promptLogprobs === undefined && !p.returnContextLogits && !p.returnGenerationLogits));
}

/**
 * Builds the text of the outputs of requests the worker runs with `detokenize: false`.
 *
 * @example
 * ```ts
 * const texts = new CallerDetokenizer(tokenizer);
 * texts.track(requestId, params); // before submitting with detokenize: false
 * const full = texts.drops(outputFromWorker) ? null : texts.apply(outputFromWorker, (id) => abortInWorker(id));
 * ```
 */
export class CallerDetokenizer {
  readonly #requests = new Map<number, RequestText>();

  /** `modelVocabSize`: the engine's vocabulary (ids past the tokenizer's are padding rows: no text). */
  constructor(readonly tokenizer: LlmTokenizer, readonly modelVocabSize?: number) {}

  /** Detokenize request `requestId` here; its worker runs it with `detokenize: false`. */
  track(requestId: number, params: SamplingParams): void {
    this.#requests.set(requestId, { params, seqs: new Map() });
  }

  /** The request ended without a final output (failed), or will not be tracked after all. */
  forget(requestId: number): void {
    this.#requests.delete(requestId);
    this.#dropped.delete(requestId);
  }

  /**
   * `out` with its text filled in when the request is tracked (else `out` itself), or null when
   * it is to be dropped (its request already ended here on a stop string). `onStop` runs when a stop
   * string ends the request with this output (made final here): abort it in the worker.
   */
  apply(out: RequestOutput, onStop: (requestId: number) => void): RequestOutput | null {
    const r = this.#requests.get(out.requestId);
    if (!r) return out;
    let stopped = false;
    const outputs = out.outputs.map((c) => {
      const done = this.#completion(r, out, c);
      stopped ||= done.finishReason === "stop" && typeof done.stopReason === "string" && c.finishReason !== done.finishReason;
      return done;
    });
    if (stopped && !out.finished) {
      // The worker's request runs on: abort it and drop what it still sends.
      this.#requests.delete(out.requestId);
      this.#dropped.add(out.requestId);
      onStop(out.requestId);
      return { ...out, outputs, finished: true };
    }
    if (out.finished) this.#requests.delete(out.requestId);
    return { ...out, outputs };
  }

  /** Requests ended here on a stop string whose worker outputs may still come (until its final one). */
  readonly #dropped = new Set<number>();

  /** Whether `out` belongs to a request that already ended here (it is dropped; see `apply`). */
  drops(out: RequestOutput): boolean {
    if (!this.#dropped.has(out.requestId)) return false;
    if (out.finished) this.#dropped.delete(out.requestId);
    return true;
  }

  #completion(r: RequestText, out: RequestOutput, c: CompletionOutput): CompletionOutput {
    const p = r.params;
    let s = r.seqs.get(c.index);
    if (!s) {
      const detok = this.tokenizer.createDetokenizer({
        promptIds: out.promptTokenIds,
        skipSpecialTokens: p.skipSpecialTokens,
        spacesBetweenSpecialTokens: p.spacesBetweenSpecialTokens,
        modelVocabSize: this.modelVocabSize,
      });
      const strings = p.stop.length > 0
        ? new StopChecker({ ...stringsOnly, stop: p.stop, minTokens: p.minTokens, includeStopStrInOutput: p.includeStopStrInOutput }, [])
        : null;
      s = { detok, text: "", sentText: 0, consumed: 0, flushed: false, sentTokens: 0, strings };
      r.seqs.set(c.index, s);
    }
    const ids = c.tokenIds;
    // OutputBuilder: a stop id (end id or stopTokenIds) ends the sequence before its text is added,
    // and is checked before the stop strings.
    const stopIdLast = c.finishReason === "stop" && typeof c.stopReason !== "string";
    const pushTo = stopIdLast && !p.includeStopStrInOutput ? ids.length - 1 : ids.length;
    for (; s.consumed < pushTo; s.consumed++) {
      s.text += s.detok!.push([ids[s.consumed]]);
      if (!s.strings || (stopIdLast && s.consumed === ids.length - 1)) continue;
      const d = s.strings.check(ids[s.consumed], s.text, s.consumed + 1);
      if (d.stop && typeof d.stopReason === "string") return this.#stopString(s, c, d.stopReason, d.truncateTextTo, s.consumed + 1);
    }
    if (stopIdLast) s.consumed = ids.length;
    const ended = c.finishReason === "stop" || c.finishReason === "length";
    // An ended sequence ("stop" or "length"; not "abort") gives up its held-back bytes.
    if (ended && !s.flushed) {
      s.flushed = true;
      s.text += s.detok!.flush();
    }
    const held = c.finishReason !== null ? 0 : numHeldBackChars(s.text, p.stop, p.includeStopStrInOutput);
    const upTo = Math.max(s.sentText, s.text.length - held);
    const text = s.text.slice(0, upTo), textDiff = s.text.slice(s.sentText, upTo);
    s.sentText = upTo;
    s.sentTokens = ids.length;
    return { ...c, text, textDiff };
  }

  /** The final completion of a sequence a stop string ended at its `n`-th output token (OutputBuilder's). */
  #stopString(s: SeqText, c: CompletionOutput, stop: string, truncateTextTo: number | undefined, n: number): CompletionOutput {
    if (truncateTextTo !== undefined) s.text = s.text.slice(0, Math.max(truncateTextTo, s.sentText));
    else s.text += s.detok!.flush();
    const tokenIds = c.tokenIds.slice(0, n);
    const logprobs = c.logprobs ? c.logprobs.slice(0, n) : null;
    let cumulativeLogprob = c.cumulativeLogprob ?? null;
    if (cumulativeLogprob !== null && logprobs) {
      cumulativeLogprob = 0;
      for (const lp of logprobs) cumulativeLogprob += lp.logprob;
    }
    const done: CompletionOutput = {
      ...c,
      text: s.text,
      tokenIds,
      finishReason: "stop",
      stopReason: stop,
      textDiff: s.text.slice(s.sentText),
      tokenIdsDiff: tokenIds.slice(s.sentTokens),
      cumulativeLogprob,
      logprobs,
    };
    s.sentText = s.text.length;
    s.sentTokens = n;
    return done;
  }
}
