/**
 * Detokenization on the caller's thread for requests run by the executor's worker
 * (GenerationExecutorProxy): the worker's step loop then only schedules, steps and stop-checks ids,
 * and the text of each stream is built here from the token ids it posts, exactly as the worker's
 * OutputBuilder would have built it.
 *
 * Only requests whose text the worker's loop never reads qualify: no stop strings (matched in the
 * text), no guided decoding (its final `parsed` and grammar end read the text), no beam search and
 * no bestOf > n (their outputs are decoded or re-indexed at the end), output ids without the prompt.
 * Every other request is detokenized in the worker as before.
 */
import type { IncrementalDetokenizer } from "../tokenizer/detokenizer.ts";
import type { LlmTokenizer } from "../tokenizer/tokenizer.ts";
import type { CompletionOutput, RequestOutput } from "./outputs.ts";
import type { SamplingParams } from "./sampling_params.ts";

/** The text state of one sequence (OutputBuilder's SeqOutput, text part). */
interface SeqText {
  detok: IncrementalDetokenizer | null;
  text: string;
  sentText: number;
  /** Output ids pushed into `detok` (or skipped as the stop id). */
  consumed: number;
  flushed: boolean;
}

interface RequestText {
  readonly params: SamplingParams;
  readonly seqs: Map<number, SeqText>;
}

/**
 * Whether the caller may detokenize a request of these sampling params (see the module comment).
 *
 * @example
 * ```ts
 * callerMayDetokenize(new SamplingParams({ maxTokens: 8 })); // true
 * callerMayDetokenize(new SamplingParams({ stop: ["\n"] })); // false: the worker matches stop strings in its text
 * ```
 */
export function callerMayDetokenize(p: SamplingParams | undefined): p is SamplingParams {
  return p !== undefined && p.detokenize === true && p.stop.length === 0 && p.guidedDecoding === undefined && !p.useBeamSearch &&
    (p.bestOf === undefined || p.bestOf === p.n) && p.excludeInputFromOutput === true;
}

/**
 * Builds the text of the outputs of requests the worker runs with `detokenize: false`.
 *
 * @example
 * ```ts
 * const texts = new CallerDetokenizer(tokenizer);
 * texts.track(requestId, params); // before submitting with detokenize: false
 * const full = texts.apply(outputFromWorker); // text and textDiff filled in
 * ```
 */
export class CallerDetokenizer {
  readonly #requests = new Map<number, RequestText>();

  constructor(readonly tokenizer: LlmTokenizer) {}

  /** Detokenize request `requestId` here; its worker runs it with `detokenize: false`. */
  track(requestId: number, params: SamplingParams): void {
    this.#requests.set(requestId, { params, seqs: new Map() });
  }

  /** The request ended without a final output (failed), or will not be tracked after all. */
  forget(requestId: number): void {
    this.#requests.delete(requestId);
  }

  /** `out` with its text filled in when the request is tracked (else `out` itself). */
  apply(out: RequestOutput): RequestOutput {
    const r = this.#requests.get(out.requestId);
    if (!r) return out;
    if (out.finished) this.#requests.delete(out.requestId);
    return { ...out, outputs: out.outputs.map((c) => this.#completion(r, out, c)) };
  }

  #completion(r: RequestText, out: RequestOutput, c: CompletionOutput): CompletionOutput {
    const p = r.params;
    let s = r.seqs.get(c.index);
    if (!s) {
      const detok = this.tokenizer.createDetokenizer({
        promptIds: out.promptTokenIds,
        skipSpecialTokens: p.skipSpecialTokens,
        spacesBetweenSpecialTokens: p.spacesBetweenSpecialTokens,
      });
      s = { detok, text: "", sentText: 0, consumed: 0, flushed: false };
      r.seqs.set(c.index, s);
    }
    const ids = c.tokenIds;
    // OutputBuilder: a stop id (end id or stopTokenIds) ends the sequence before its text is added.
    const stopIdLast = c.finishReason === "stop" && typeof c.stopReason !== "string" && !p.includeStopStrInOutput;
    const pushTo = stopIdLast ? ids.length - 1 : ids.length;
    for (; s.consumed < pushTo; s.consumed++) s.text += s.detok!.push([ids[s.consumed]]);
    if (stopIdLast) s.consumed = ids.length;
    // An ended sequence ("stop" or "length"; not "abort") gives up its held-back bytes.
    if ((c.finishReason === "stop" || c.finishReason === "length") && !s.flushed) {
      s.flushed = true;
      s.text += s.detok!.flush();
    }
    const textDiff = s.text.slice(s.sentText);
    s.sentText = s.text.length;
    return { ...c, text: s.text, textDiff };
  }
}
