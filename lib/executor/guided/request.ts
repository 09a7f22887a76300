/**
 * Guided decoding as the executor loop uses it: one GuidedRuntime per loop (the compiler over its
 * tokenizer, built on first use), one GuidedRequest per request (a matcher per generated sequence,
 * the mask of each sampling row, the sampled token accepted — at once, or deferred to the sequence's
 * next mask so it overlaps the device's forward pass — and `parsed` at the end).
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
  readonly #deferAccept: boolean;
  readonly #clock: GuidedClock = { hostMs: 0 };
  #compiler: GuidedCompiler | null = null;

  /**
   * `vocabSize`: the engine's (rows of logits); the tokenizer's may be smaller. `masksInSampler`:
   * masks go to the sampler with the step (`SamplingInputs.tokenMasks`, applied on the device) where
   * a request's logits are not needed on the host; false: every guided row is masked on the host.
   * `deferAccept`: a sampler-path sequence's token is accepted by its matcher when its next mask is
   * computed (inside the next step, while the device runs its forward pass) instead of when the
   * token arrives; false: at once (the A/B reference; host-path sequences always accept at once).
   */
  constructor(tokenizer: VocabularySource | null, vocabSize: number, masksInSampler = true, deferAccept = true) {
    this.#tokenizer = tokenizer;
    this.#vocabSize = vocabSize;
    this.#masksInSampler = masksInSampler;
    this.#deferAccept = deferAccept;
  }

  /**
   * Host ms spent on grammar work outside the sampler's mask callback since the last call (host-path
   * masks, tokens accepted as they arrive, deferred tokens settled at a request's end): the part on
   * the critical path between a step's sampled ids and the next step's launch. Resets the count.
   */
  takeHostMs(): number {
    const ms = this.#clock.hostMs;
    this.#clock.hostMs = 0;
    return ms;
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
   * `onHost`: the request's rows are masked on the host (its tokens are then accepted at once).
   */
  prepare(p: GuidedParamsView, stopIds: readonly number[], onHost = false): GuidedRequest | null {
    if (p.guidedDecoding == null) return null;
    const g = normalizeGuidedDecoding(p.guidedDecoding);
    if (p.useBeamSearch) throw new UnsupportedError("SamplingParams.guidedDecoding: not supported with useBeamSearch", "guidedDecoding", g.kind);
    if (!this.#tokenizer) throw new ValidationError("SamplingParams.guidedDecoding: needs a tokenizer (skipTokenizerInit is set)", "guidedDecoding", g.kind);
    const xg = loadedXGrammar();
    if (!xg) throw new InternalError("guided decoding: xgrammar is not loaded (the executor loads it before taking the request; a bug)");
    this.#compiler ??= new GuidedCompiler(xg, guidedVocabulary(this.#tokenizer), this.#vocabSize);
    return new GuidedRequest(g, this.#compiler.compile(g), [...stopIds, ...p.stopTokenIds], this.#deferAccept && !onHost, this.#clock);
  }

  dispose(): void {
    this.#compiler?.dispose();
    this.#compiler = null;
  }
}

/** Grammar host time outside the sampler's mask callback, shared by a runtime's requests. */
interface GuidedClock {
  hostMs: number;
}

/** What writing a sequence's mask found: a mask with allowed ids, none allowed, or the grammar already complete. */
export type GuidedMaskResult = "ok" | "none" | "terminated";

/**
 * Guided decoding of one request. Sequences are keyed by identity (the loop's Sequence objects);
 * a sequence's matcher is made at its first row, so the n sequences forked from a prompt each
 * start at the grammar's start.
 *
 * Deferred acceptance (`deferred`, sampler-path requests): `append` only records the token; the
 * matcher accepts it in `writeMask` of the sequence's next row (called by the backend after it has
 * enqueued that step's forward pass), so no grammar work sits between a step's sampled ids and the
 * next launch. A token that completes the grammar is then seen one step late: `writeMask` answers
 * "terminated" and the loop ends the sequence, dropping the in-flight row's token. `parsed` settles
 * a token still pending at the end.
 */
export class GuidedRequest {
  readonly params: GuidedDecoding;
  readonly #compiled: CompiledGuidedGrammar;
  readonly #stopIds: readonly number[];
  readonly #matchers = new Map<object, GuidedMatcher>();
  readonly #deferred: boolean;
  /** Tokens appended but not yet accepted by their sequence's matcher (deferred mode). */
  readonly #pending = new Map<object, number>();
  readonly #clock: GuidedClock;

  constructor(params: GuidedDecoding, compiled: CompiledGuidedGrammar, stopIds: readonly number[], deferred = false, clock: GuidedClock = { hostMs: 0 }) {
    this.params = params;
    this.#compiled = compiled;
    this.#stopIds = stopIds;
    this.#deferred = deferred;
    this.#clock = clock;
  }

  /** Whether appended tokens wait for the sequence's next mask to be accepted. */
  get deferred(): boolean {
    return this.#deferred;
  }

  #matcher(seq: object): GuidedMatcher {
    let m = this.#matchers.get(seq);
    if (!m) {
      m = this.#compiled.matcher(this.#stopIds);
      this.#matchers.set(seq, m);
    }
    return m;
  }

  #acceptNow(seq: object, token: number): void {
    if (!this.#matcher(seq).accept(token)) throw new InternalError(`guided decoding: token ${token} was sampled from a row whose mask bans it (a bug)`);
  }

  /** Accepts `seq`'s pending token, if any. */
  #settle(seq: object): void {
    const token = this.#pending.get(seq);
    if (token === undefined) return;
    this.#pending.delete(seq);
    this.#acceptNow(seq, token);
  }

  /**
   * Bans (→ -inf) every id of `row[V]` the grammar does not allow next for `seq`. Throws when no id
   * is left (an edit before it, such as minTokens banning the end id, removed the only ones the
   * grammar allows).
   */
  maskRow(seq: object, row: Float32Array): void {
    const t0 = performance.now();
    try {
      this.#settle(seq);
      if (this.#matcher(seq).applyMask(row) === 0) {
        throw new ValidationError(
          `SamplingParams.guidedDecoding: no token is allowed at this step (the grammar allows only ids that minTokens, badWords, bans or allowedTokenIds removed)`,
          "guidedDecoding",
          this.params.kind,
        );
      }
    } finally {
      this.#clock.hostMs += performance.now() - t0;
    }
  }

  /**
   * Writes the mask of the ids the grammar allows next for `seq` at `into[offset, offset +
   * ceil(vocab / 32))`, after accepting its pending token: "none" when it allows no id,
   * "terminated" when the pending token completed the grammar (the mask then allows every id: the
   * row's token is dropped with the sequence's end). Throws when the pending token is rejected.
   */
  writeMask(seq: object, into: Int32Array, offset: number): GuidedMaskResult {
    this.#settle(seq);
    const m = this.#matcher(seq);
    const end = offset + Math.ceil(m.vocabSize / 32);
    if (m.isTerminated) {
      into.fill(-1, offset, end);
      return "terminated";
    }
    m.writeNextTokenBitmask(into, offset);
    for (let w = offset; w < end; w++) if (into[w] !== 0) return "ok";
    return "none";
  }

  /**
   * Hands `seq`'s sampled token to its matcher: at once, returning true when the grammar is now
   * complete and nothing may follow (a stop id was accepted, or there are no stop ids and the
   * match ended); or, deferred, kept for the next `writeMask` (returns false).
   */
  append(seq: object, token: number): boolean {
    if (this.#deferred) {
      if (this.#pending.has(seq)) this.#settle(seq); // two tokens without a mask between (not a path the loop takes)
      this.#pending.set(seq, token);
      return false;
    }
    const t0 = performance.now();
    try {
      this.#settle(seq);
      this.#acceptNow(seq, token);
      return this.#matcher(seq).isTerminated;
    } finally {
      this.#clock.hostMs += performance.now() - t0;
    }
  }

  /**
   * The validated object of a finished json / jsonObject output (undefined for other kinds, for an
   * output that did not complete the grammar, or one that fails validation). Settles a pending token.
   */
  parsed(seq: object, text: string): unknown {
    const t0 = performance.now();
    try {
      if (!this.#matchers.has(seq) && !this.#pending.has(seq)) return undefined;
      try {
        this.#settle(seq);
      } catch {
        return undefined; // a token the grammar rejects: the output did not complete it
      }
      if (!this.#matcher(seq).isTerminated) return undefined;
    } finally {
      this.#clock.hostMs += performance.now() - t0;
    }
    const r = parseGuidedOutput(this.params, text);
    return r.ok ? r.value : undefined;
  }

  /** Frees the matchers (their WASM memory). Idempotent. */
  dispose(): void {
    for (const m of this.#matchers.values()) m.dispose();
    this.#matchers.clear();
    this.#pending.clear();
  }
}
