/**
 * Output building: accepted tokens → each sequence's text, logprobs and stop decision, and a
 * request's state → the RequestOutput a stream or a final result carries (stream offsets, bestOf
 * ranking, beam hypotheses, prompt logits). Pure host code.
 */
import type { LlmTokenizer } from "../tokenizer/tokenizer.ts";
import type { TokenLogprobs } from "./logprobs.ts";
import type { CompletionOutput, FinishReason, RequestOutput } from "./outputs.ts";
import type { BeamRun, RequestState, SeqOutput } from "./request_state.ts";
import type { Sequence } from "./sequence.ts";
import { StopChecker } from "./stop_checker.ts";

/** One token accepted for a sequence, with what was computed beside it. */
export interface AcceptedToken {
  readonly token: number;
  readonly logprobs: TokenLogprobs | null;
  /** The raw logits row it was chosen from (returnGenerationLogits). */
  readonly raw: Float32Array | null;
}

/**
 * Turns tokens into outputs for one executor.
 *
 * @example
 * ```ts
 * const ob = new OutputBuilder(tokenizer, 512);
 * ob.appendTokens(st, seq, [{ token: 42, logprobs: null, raw: null }]);
 * sink.emit([ob.snapshot(st, seq.group.isFinished)], [], null);
 * ```
 */
export class OutputBuilder {
  /** `modelVocabSize`: the engine's vocabulary (ids past the tokenizer's are padding rows: no text). */
  constructor(readonly tokenizer: LlmTokenizer | null, readonly maxSeqLen: number, readonly modelVocabSize?: number) {}

  /**
   * Appends `tokens` to `seq` in order, stop-checking each; stops at the first that ends the
   * sequence (the rest are dropped). Returns the number appended.
   */
  appendTokens(st: RequestState, seq: Sequence, tokens: readonly AcceptedToken[]): number {
    let n = 0;
    for (const t of tokens) {
      if (seq.isFinished) break;
      this.#appendToken(st, seq, t);
      n++;
    }
    return n;
  }

  #appendToken(st: RequestState, seq: Sequence, { token, logprobs: lp, raw }: AcceptedToken): void {
    const o = this.#outFor(st, seq);
    const n = seq.numOutputTokens + 1;
    seq.tokenIds.push(token);
    const grammarDone = st.guided?.append(seq, token) ?? false; // deferred acceptance: false, seen at the next mask
    if (raw) o.generationLogits?.push(raw);
    if (lp) {
      seq.cumulativeLogprob += lp.logprob;
      o.logprobs?.push(lp);
    }
    // A stop id (end id or stopTokenIds) ends the sequence before its text is added (vLLM).
    const pre = o.checker.check(token, o.text, n);
    if (pre.stop && pre.reason === "stop" && typeof pre.stopReason !== "string" && !st.params.includeStopStrInOutput) {
      finish(seq, o, "stop", pre.stopReason);
      return;
    }
    if (o.detok) o.text += o.detok.push([token]);
    let d = o.checker.check(token, o.text, n);
    if (!d.stop && seq.numTokens >= this.maxSeqLen) d = { stop: true, reason: "length", stopReason: null };
    if (d.stop) {
      if (d.truncateTextTo !== undefined) o.text = o.text.slice(0, Math.max(d.truncateTextTo, o.sentText));
      finish(seq, o, d.reason, d.stopReason, d.truncateTextTo === undefined);
    } else if (grammarDone) {
      finish(seq, o, "stop", null); // the grammar is complete and no stop id ends it
    }
  }

  /**
   * Ends `seq` because its last token completed the grammar (found one step late under deferred
   * acceptance: the in-flight step's token is not appended): "stop", as when it is seen at once.
   */
  endByGrammar(st: RequestState, seq: Sequence): void {
    if (!seq.isFinished) finish(seq, this.#outFor(st, seq), "stop", null);
  }

  #outFor(st: RequestState, seq: Sequence): SeqOutput {
    let o = st.outs.get(seq);
    if (!o) {
      const p = st.params;
      const detok = p.detokenize && this.tokenizer
        ? this.tokenizer.createDetokenizer({
          promptIds: st.promptIds,
          skipSpecialTokens: p.skipSpecialTokens,
          spacesBetweenSpecialTokens: p.spacesBetweenSpecialTokens,
          modelVocabSize: this.modelVocabSize,
        })
        : null;
      o = {
        detok,
        checker: new StopChecker(p, st.eosIds),
        text: "",
        sentText: 0,
        sentTokens: 0,
        logprobs: p.logprobs !== undefined ? [] : null,
        generationLogits: st.wantGenerationLogits ? [] : null,
      };
      st.outs.set(seq, o);
    }
    return o;
  }

  /**
   * The request's output now; advances the stream offsets (diffs are relative to the last
   * snapshot). A final output has at least n completions, also when the request was aborted
   * before its prompt forked.
   */
  snapshot(st: RequestState, final: boolean): RequestOutput {
    const p = st.params;
    if (st.beam) return this.#requestOutput(st, this.#beamOutputs(st, st.beam), final);
    let seqs = [...st.group.seqs].sort((a, b) => a.seqIndex - b.seqIndex);
    const ranked = final && p.bestOf > p.n && seqs.length > 1;
    if (ranked) seqs = seqs.sort((a, b) => b.cumulativeLogprob - a.cumulativeLogprob).slice(0, p.n);
    const outputs: CompletionOutput[] = seqs.map((seq, i) => {
      const o = this.#outFor(st, seq);
      const done = seq.isFinished;
      const upTo = done ? o.text.length : Math.max(o.sentText, o.text.length - o.checker.holdBack(o.text));
      const ids = p.excludeInputFromOutput ? seq.outputIds : [...seq.tokenIds];
      const c: CompletionOutput = {
        index: ranked ? i : seq.seqIndex,
        text: o.text.slice(0, upTo),
        tokenIds: ids,
        finishReason: seq.finishReason,
        stopReason: seq.stopReason,
        textDiff: o.text.slice(o.sentText, upTo),
        tokenIdsDiff: ids.slice(o.sentTokens),
        cumulativeLogprob: st.wantLogprobs ? seq.cumulativeLogprob : null,
        logprobs: o.logprobs ? [...o.logprobs] : null,
        generationLogits: final && o.generationLogits ? [...o.generationLogits] : null,
      };
      const parsed = final && done && st.guided ? st.guided.parsed(seq, o.text) : undefined;
      o.sentText = upTo;
      o.sentTokens = ids.length;
      return parsed === undefined ? c : { ...c, parsed };
    });
    if (final) st.guided?.dispose();
    // Ended before the prompt forked (aborted): the children it would have forked are the root's copies.
    if (final) { for (let i = outputs.length; i < p.n; i++) outputs.push({ ...outputs[0], index: i }); }
    return this.#requestOutput(st, outputs, final);
  }

  /**
   * Outputs of a beam search: its best n hypotheses once done, else (aborted) its live beams —
   * at least n, the empty prompt beam standing in when the search had not branched yet.
   */
  #beamOutputs(st: RequestState, b: BeamRun): CompletionOutput[] {
    const p = st.params;
    const stopIds = new Set(p.stopTokenIds);
    const hyps: { tokens: readonly number[]; logprobs: readonly number[]; sumLogprob: number; finishReason: FinishReason }[] = b.hypotheses ??
      b.state.beams.map((beam) => ({ ...beam, finishReason: "abort" as const }));
    while (hyps.length < p.n && b.hypotheses === null) hyps.push({ ...hyps[0], finishReason: "abort" });
    return hyps.map((h, i) => {
      const last = h.tokens[h.tokens.length - 1];
      const endsOnStopId = h.finishReason === "stop" && !p.includeStopStrInOutput;
      const text = this.#decodeOutput(st, endsOnStopId ? h.tokens.slice(0, -1) : h.tokens);
      return {
        index: i,
        text,
        tokenIds: p.excludeInputFromOutput ? [...h.tokens] : [...st.promptIds, ...h.tokens],
        finishReason: h.finishReason,
        stopReason: h.finishReason === "stop" && stopIds.has(last) ? last : null,
        textDiff: text,
        tokenIdsDiff: p.excludeInputFromOutput ? [...h.tokens] : [...st.promptIds, ...h.tokens],
        cumulativeLogprob: h.sumLogprob,
        logprobs: p.logprobs !== undefined ? h.logprobs.map((logprob) => ({ logprob, top: [] })) : null,
        generationLogits: b.generationLogits ? [...(b.generationLogits.get(h.tokens.join(",")) ?? [])] : null,
      };
    });
  }

  #decodeOutput(st: RequestState, ids: readonly number[]): string {
    const p = st.params;
    if (!p.detokenize || !this.tokenizer) return "";
    const d = this.tokenizer.createDetokenizer({
      promptIds: st.promptIds,
      skipSpecialTokens: p.skipSpecialTokens,
      spacesBetweenSpecialTokens: p.spacesBetweenSpecialTokens,
      modelVocabSize: this.modelVocabSize,
    });
    return d.push(ids) + d.flush();
  }

  /** The request-level output; prompt logprobs and context logits ride on the final one, once complete. */
  #requestOutput(st: RequestState, outputs: CompletionOutput[], final: boolean): RequestOutput {
    const complete = final && st.group.promptLogitsFrom >= st.group.numPromptTokens;
    return {
      requestId: st.id,
      prompt: st.request.prompt ?? null,
      promptTokenIds: st.promptIds,
      outputs,
      finished: final,
      promptLogprobs: complete && st.promptLogprobs ? [...st.promptLogprobs] : null,
      contextLogits: complete && st.contextLogits ? [...st.contextLogits] : null,
    };
  }
}

function finish(seq: Sequence, o: SeqOutput, reason: "stop" | "length", stopReason: number | string | null, flush = true): void {
  seq.finishReason = reason;
  seq.stopReason = stopReason;
  if (flush && o.detok) o.text += o.detok.flush();
}
