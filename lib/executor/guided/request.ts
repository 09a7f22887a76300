/**
 * Guided decoding as the executor loop uses it: one GuidedRuntime per loop (the compiler over its
 * tokenizer, built on first use), one GuidedRequest per request (a matcher per generated sequence,
 * the mask of each sampling row, the token accepted after sampling, `parsed` at the end).
 */
import { InternalError, UnsupportedError, ValidationError } from "../../util/errors.ts";
import type { GenerationRequest } from "../config.ts";
import type { RequestOutput } from "../outputs.ts";
import { type CompiledGuidedGrammar, GuidedCompiler, type GuidedMatcher, guidedVocabulary, type VocabularySource } from "./grammar.ts";
import { type GuidedDecoding, normalizeGuidedDecoding, parseGuidedOutput } from "./params.ts";
import { loadedXGrammar, loadXGrammar } from "./xgrammar.ts";

/** The sampling-parameter fields guided decoding reads. */
export interface GuidedParamsView {
  readonly guidedDecoding?: GuidedDecoding | undefined;
  readonly useBeamSearch: boolean;
  readonly stopTokenIds: readonly number[];
}

/** The sampling-parameter fields that decide where a guided request's mask is applied. */
export interface GuidedRowsView {
  readonly logprobs?: number | undefined;
  readonly bestOf: number;
  readonly n: number;
  readonly returnGenerationLogits: boolean;
  readonly returnContextLogits: boolean;
  readonly promptLogprobs?: number | undefined;
}

/**
 * True when `p` asks for guided decoding and xgrammar is not loaded yet: the loop then waits for
 * `loadXGrammar()` (once per process, ~40 ms) before it takes the request.
 */
export function needsGuidedLoad(p: { readonly guidedDecoding?: unknown } | null | undefined): boolean {
  return p?.guidedDecoding != null && loadedXGrammar() === null;
}

export { loadXGrammar };

/** The final output of a request aborted while it waited for the grammar engine: n empty completions. */
export function notStartedAbortOutput(requestId: number, request: GenerationRequest): RequestOutput {
  const n = request.samplingParams?.n ?? 1;
  return {
    requestId,
    prompt: request.prompt ?? null,
    promptTokenIds: [...(request.promptTokenIds ?? [])],
    outputs: Array.from(
      { length: n },
      (_, index) => ({ index, text: "", tokenIds: [], finishReason: "abort" as const, stopReason: null, textDiff: "", tokenIdsDiff: [] }),
    ),
    finished: true,
  };
}

/** The guided decoding machinery of one executor loop: its tokenizer's vocabulary compiled lazily. */
export class GuidedRuntime {
  readonly #tokenizer: VocabularySource | null;
  readonly #vocabSize: number;
  readonly #masksInSampler: boolean;
  #compiler: GuidedCompiler | null = null;

  /**
   * `vocabSize`: the engine's (rows of logits); the tokenizer's may be smaller. `masksInSampler`:
   * masks go to the sampler with the step (`SamplingInputs.tokenMasks`, applied on the device) where
   * a request's logits are not needed on the host; false: every guided row is masked on the host.
   */
  constructor(tokenizer: VocabularySource | null, vocabSize: number, masksInSampler = true) {
    this.#tokenizer = tokenizer;
    this.#vocabSize = vocabSize;
    this.#masksInSampler = masksInSampler;
  }

  /**
   * Whether a guided request's rows are masked on the host: when its logits rows come to the host
   * anyway (logprobs, best-of ranking, returned logits) or masks do not go to the sampler. Else the
   * sampler applies its mask (the rows' logits never leave the device).
   */
  masksOnHost(p: GuidedRowsView): boolean {
    return !this.#masksInSampler || p.logprobs !== undefined || p.bestOf > p.n || p.returnGenerationLogits || p.returnContextLogits ||
      p.promptLogprobs !== undefined;
  }

  /**
   * The guided state of a new request, or null when it asks for none. Throws at submission for a
   * constraint that cannot run: no tokenizer, beam search, a grammar xgrammar rejects (a
   * ValidationError or UnsupportedError naming `guidedDecoding.<kind>`).
   * `stopIds`: the request's end ids and stop ids (allowed only where the grammar accepts).
   */
  prepare(p: GuidedParamsView, stopIds: readonly number[]): GuidedRequest | null {
    if (p.guidedDecoding == null) return null;
    const g = normalizeGuidedDecoding(p.guidedDecoding);
    if (p.useBeamSearch) throw new UnsupportedError("SamplingParams.guidedDecoding: not supported with useBeamSearch", "guidedDecoding", g.kind);
    if (!this.#tokenizer) throw new ValidationError("SamplingParams.guidedDecoding: needs a tokenizer (skipTokenizerInit is set)", "guidedDecoding", g.kind);
    const xg = loadedXGrammar();
    if (!xg) throw new InternalError("guided decoding: xgrammar is not loaded (the executor loads it before taking the request; a bug)");
    this.#compiler ??= new GuidedCompiler(xg, guidedVocabulary(this.#tokenizer), this.#vocabSize);
    return new GuidedRequest(g, this.#compiler.compile(g), [...stopIds, ...p.stopTokenIds]);
  }

  dispose(): void {
    this.#compiler?.dispose();
    this.#compiler = null;
  }
}

/**
 * Guided decoding of one request. Sequences are keyed by identity (the loop's Sequence objects);
 * a sequence's matcher is made at its first row, so the n sequences forked from a prompt each
 * start at the grammar's start.
 */
export class GuidedRequest {
  readonly params: GuidedDecoding;
  readonly #compiled: CompiledGuidedGrammar;
  readonly #stopIds: readonly number[];
  readonly #matchers = new Map<object, GuidedMatcher>();

  constructor(params: GuidedDecoding, compiled: CompiledGuidedGrammar, stopIds: readonly number[]) {
    this.params = params;
    this.#compiled = compiled;
    this.#stopIds = stopIds;
  }

  #matcher(seq: object): GuidedMatcher {
    let m = this.#matchers.get(seq);
    if (!m) {
      m = this.#compiled.matcher(this.#stopIds);
      this.#matchers.set(seq, m);
    }
    return m;
  }

  /**
   * Bans (→ -inf) every id of `row[V]` the grammar does not allow next for `seq`. Throws when no id
   * is left (an edit before it, such as minTokens banning the end id, removed the only ones the
   * grammar allows).
   */
  maskRow(seq: object, row: Float32Array): void {
    if (this.#matcher(seq).applyMask(row) === 0) {
      throw new ValidationError(
        `SamplingParams.guidedDecoding: no token is allowed at this step (the grammar allows only ids that minTokens, badWords, bans or allowedTokenIds removed)`,
        "guidedDecoding",
        this.params.kind,
      );
    }
  }

  /**
   * Writes the mask of the ids the grammar allows next for `seq` at `into[offset, offset +
   * ceil(vocab / 32))`; false when it allows none.
   */
  writeMask(seq: object, into: Int32Array, offset: number): boolean {
    const m = this.#matcher(seq);
    m.writeNextTokenBitmask(into, offset);
    const end = offset + Math.ceil(m.vocabSize / 32);
    for (let w = offset; w < end; w++) if (into[w] !== 0) return true;
    return false;
  }

  /**
   * Advances `seq`'s matcher by its sampled token. Returns true when the grammar is now complete
   * and nothing may follow: a stop id was accepted, or there are no stop ids and the match ended.
   */
  accept(seq: object, token: number): boolean {
    const m = this.#matcher(seq);
    if (!m.accept(token)) throw new InternalError(`guided decoding: token ${token} was sampled from a row whose mask bans it (a bug)`);
    return m.isTerminated;
  }

  /**
   * The validated object of a finished json / jsonObject output (undefined for other kinds, for an
   * output that did not complete the grammar, or one that fails validation).
   */
  parsed(seq: object, text: string): unknown {
    const m = this.#matchers.get(seq);
    if (!m || !m.isTerminated) return undefined;
    const r = parseGuidedOutput(this.params, text);
    return r.ok ? r.value : undefined;
  }

  /** Frees the matchers (their WASM memory). Idempotent. */
  dispose(): void {
    for (const m of this.#matchers.values()) m.dispose();
    this.#matchers.clear();
  }
}
