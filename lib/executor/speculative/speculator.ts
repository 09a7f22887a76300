/**
 * The executor's speculative decoder. Before a step is scheduled it proposes draft tokens for the
 * sequences that are decoding (prompt lookup, or the draft model) and appends them to the
 * sequences as `numDraftTokens` trailing tokens, so the scheduler runs the last accepted token and
 * the drafts as one chunk with a logits row at each position (block allocation included). After
 * the forward it verifies each draft against the target's rows, keeps the accepted prefix plus one
 * token, and rolls the rest back: the tokens are removed, the computed count drops to the accepted
 * length, and the KV block manager frees blocks past it (their slots are simply overwritten later).
 *
 * The step builder packs such a chunk as one-token sequences over the sequence's block table, so the
 * backend runs it as a decode step (a CUDA graph, with the rounding of decoding the tokens one by one).
 * Greedy and deterministic drafts (q one-hot) are verified against the target's own sampled tokens —
 * the device's draws, a few ids back, no logits — so the output is token-for-token what decoding
 * without speculation gives, sampled output included (the same per-position draws). Sampled drafts
 * from the draft model are verified on the host by rejection sampling (rejection.ts) over the rows'
 * logits. Requests that need host logits processing, logprobs, beams or
 * several sequences decode without speculation in the same batch.
 */
import type { SamplingInputs } from "../../ir/sampling.ts";
import { RequestFailedError } from "../../util/errors.ts";
import type { KvCacheManager } from "../kv_cache_manager.ts";
import type { AcceptedToken, OutputBuilder } from "../output_builder.ts";
import type { RequestState } from "../request_state.ts";
import type { Sequence, SequenceGroup } from "../sequence.ts";
import type { StepRow } from "../step_builder.ts";
import type { SpeculativeConfig } from "./config.ts";
import type { DraftItem, DraftModelRunner } from "./draft_runner.ts";
import { DraftBackoff } from "./backoff.ts";
import { proposeNgram } from "./ngram.ts";
import { samplingDistribution, seededUniforms, verifyDraft } from "./rejection.ts";

/** Step limits the drafts must fit in (with every decoding sequence's own token and row). */
export interface SpeculatorLimits {
  readonly maxNumTokens: number;
  readonly maxNumRows: number;
  readonly maxSeqLen: number;
  /** Most tokens of a verify step whose rows round as decode steps do (the backend's maxVerifyTokens). @default Infinity */
  readonly maxVerifyTokens?: number;
}

/** Draft and acceptance counts of one step. */
export interface SpeculativeStepStats {
  readonly numDraftTokens: number;
  readonly numAcceptedDraftTokens: number;
}

interface Pending {
  readonly draft: readonly number[];
  /** The draft's distribution per token (null: deterministic, one-hot). */
  readonly q: readonly (Float64Array | null)[];
  /** seq.numTokens before the drafts were appended. */
  readonly base: number;
}

/** Draft + verify around one executor's steps. */
export class Speculator {
  readonly #pending = new Map<Sequence, Pending>();
  #drafted = 0;
  #accepted = 0;
  readonly #backoff: DraftBackoff | null;

  constructor(readonly config: SpeculativeConfig, readonly draft: DraftModelRunner | null, readonly limits: SpeculatorLimits) {
    this.#backoff = config.adaptiveDrafting ? new DraftBackoff() : null;
  }

  /**
   * Appends drafts to the decoding sequences of `groups` (running ones first, as the scheduler
   * orders them) while the step's token, row and free-block budgets allow.
   */
  propose(groups: readonly SequenceGroup[], stateOf: (requestId: number) => RequestState | undefined, kv: KvCacheManager): void {
    this.#drafted = this.#accepted = 0;
    this.collect(groups);
    let tokens = 0, rows = 0, decoding = 0;
    for (const g of groups) {
      if (g.status !== "running") continue;
      for (const s of g.liveSeqs) {
        if (s.numUncomputedTokens !== 1) continue;
        tokens++;
        rows += g.rowsFor(s);
        decoding++;
      }
    }
    // Every decoding sequence may need one fresh block for its own token.
    let freeBlocks = kv.numFreeBlocks - decoding;
    const chosen: { seq: Sequence; st: RequestState; k: number }[] = [];
    for (const g of groups) {
      if (g.status !== "running" || g.isBeamSearch || !g.isForked || g.fanout !== 1 || g.liveSeqs.length !== 1) continue;
      const seq = g.liveSeqs[0];
      const st = stateOf(g.requestId);
      if (!st || st.host || st.wantLogprobs || st.wantGenerationLogits || st.beam || seq.numUncomputedTokens !== 1 || seq.numComputedTokens === 0) continue;
      if (this.#backoff && !this.#backoff.shouldDraft(seq)) continue;
      let k = Math.min(
        this.config.maxDraftLen,
        st.params.maxTokens - seq.numOutputTokens - 1,
        this.limits.maxSeqLen - seq.numTokens,
        this.limits.maxNumTokens - tokens,
        (this.limits.maxVerifyTokens ?? Infinity) - tokens,
        this.limits.maxNumRows - rows,
      );
      if (this.draft) k = Math.min(k, this.draft.maxDraftFor(seq.numTokens));
      if (k < 1) continue;
      const extraBlocks = Math.max(0, kv.blocksFor(seq.numTokens + k) - Math.max(seq.blockTable.length, kv.blocksFor(seq.numTokens)));
      if (extraBlocks > freeBlocks) continue;
      chosen.push({ seq, st, k });
      tokens += k;
      rows += k;
      freeBlocks -= extraBlocks;
    }
    if (chosen.length === 0) return;
    if (this.config.decodingType === "NGram") {
      for (const c of chosen) {
        const draft = proposeNgram(c.seq.tokenIds, this.config.maxMatchingNgramSize, c.k);
        if (draft.length > 0) this.#append(c.seq, draft, draft.map(() => null));
      }
      return;
    }
    const items: DraftItem[] = chosen.map(({ seq, st, k }) => ({
      key: seq,
      tokens: seq.tokenIds,
      numDraft: k,
      sampling: rowSampling(st, seq),
      seed: st.params.seedWords(seq.seqIndex),
      firstOutputIndex: seq.numOutputTokens,
    }));
    const proposals = this.draft!.propose(items);
    chosen.forEach((c, i) => {
      const p = proposals[i];
      if (p.tokens.length > 0) this.#append(c.seq, p.tokens, p.q);
    });
  }

  /** True when `seq` runs drafts this step (its rows are verified by {@link verify}). */
  isVerifying(seq: Sequence): boolean {
    return this.#pending.has(seq);
  }

  /** True when verifying `seq` needs the target's logits on the host (sampled drafts). */
  needsLogits(seq: Sequence): boolean {
    const p = this.#pending.get(seq);
    return p !== undefined && p.q.some((q) => q !== null);
  }

  /**
   * Verifies the drafts of the sequence whose rows are [from, to) (one row per verified position),
   * rolls back what was rejected and appends the accepted tokens plus one.
   */
  verify(
    st: RequestState,
    rows: readonly StepRow[],
    from: number,
    to: number,
    sampledIds: Int32Array,
    logits: Float32Array | undefined,
    sampling: SamplingInputs,
    V: number,
    kv: KvCacheManager,
    outputs: OutputBuilder,
  ): void {
    const seq = rows[from].seq;
    const pend = this.#pending.get(seq)!;
    const k = pend.draft.length;
    if (to - from !== k + 1) throw new RequestFailedError(`speculative decoding: ${to - from} rows for ${k} draft tokens of request ${st.id}`);
    const tokenAt = (i: number): number => {
      const t = sampledIds[from + i];
      if (!(t >= 0 && t < V)) {
        throw new RequestFailedError(
          `request ${st.id}: the target's logits row for output ${pend.base + i - seq.numPromptTokens} has no finite maximum (NaN or infinite logits)`,
        );
      }
      return t;
    };
    let tokens: number[];
    let numAccepted: number;
    if (!pend.q.some((q) => q !== null)) {
      // Deterministic draft: accept while the target's own draw equals it (the draw it makes without speculation).
      tokens = [];
      numAccepted = 0;
      while (numAccepted < k) {
        const t = tokenAt(numAccepted);
        tokens.push(t);
        if (t !== pend.draft[numAccepted]) break;
        numAccepted++;
      }
      if (numAccepted === k) tokens.push(tokenAt(k));
    } else {
      if (!logits) throw new RequestFailedError(`speculative decoding: request ${st.id} needs the target's logits to verify sampled drafts`);
      const res = verifyDraft(
        pend.draft,
        (i) => samplingDistribution(logits, (from + i) * V, V, sampling, from + i),
        (i) => pend.q[i],
        seededUniforms(st.params.seedWords(seq.seqIndex), pend.base - seq.numPromptTokens),
        () => tokenAt(k),
      );
      tokens = res.tokens;
      numAccepted = res.numAccepted;
    }
    this.#drafted += k;
    this.#accepted += numAccepted;
    this.#backoff?.record(seq, k, numAccepted);
    this.#rollback(seq, pend, pend.base + numAccepted, kv);
    outputs.appendTokens(st, seq, tokens.map((token): AcceptedToken => ({ token, logprobs: null, raw: null })));
    seq.numComputedTokens = Math.min(seq.numComputedTokens, seq.numTokens);
  }

  /**
   * Ends the step: drafts not verified (their sequence was not scheduled, only partly, or failed)
   * are removed and their KV rolled back. Returns the step's counts.
   */
  endStep(kv: KvCacheManager): SpeculativeStepStats {
    for (const [seq, pend] of [...this.#pending]) this.#rollback(seq, pend, pend.base - 1, kv);
    const stats = { numDraftTokens: this.#drafted, numAcceptedDraftTokens: this.#accepted };
    this.#drafted = this.#accepted = 0;
    return stats;
  }

  /** Frees the draft state of a request's sequences (aborted or done). */
  release(group: SequenceGroup): void {
    if (this.draft) { for (const s of group.seqs) this.draft.release(s); }
  }

  dispose(): void {
    this.#pending.clear();
    this.draft?.dispose();
  }

  #append(seq: Sequence, draft: readonly number[], q: readonly (Float64Array | null)[]): void {
    this.#pending.set(seq, { draft, q, base: seq.numTokens });
    seq.tokenIds.push(...draft);
    seq.numDraftTokens = draft.length;
  }

  /** Keeps the first `numValid` tokens' KV: removes the drafts, lowers the computed count, frees later blocks. */
  #rollback(seq: Sequence, pend: Pending, numValid: number, kv: KvCacheManager): void {
    this.#pending.delete(seq);
    seq.tokenIds.length = pend.base;
    seq.numDraftTokens = 0;
    seq.numComputedTokens = Math.min(seq.numComputedTokens, numValid);
    if (seq.blockTable.length > 0) kv.rollback(seq, seq.numComputedTokens);
    this.draft?.rollback(seq, numValid);
  }

  /** Releases the draft state of sequences not live in `groups` (the requests in flight). */
  collect(groups: readonly SequenceGroup[]): void {
    if (!this.draft) return;
    const live = new Set<object>();
    for (const g of groups) for (const s of g.liveSeqs) live.add(s);
    for (const key of this.draft!.keys()) if (!live.has(key)) this.draft!.release(key);
  }
}

/** One sampling row with the request's settings (what the target's row for this sequence uses). */
function rowSampling(st: RequestState, seq: Sequence): SamplingInputs {
  const p = st.params;
  const [lo, hi] = p.seedWords(seq.seqIndex);
  return {
    temperature: Float32Array.of(p.temperature),
    topK: Int32Array.of(p.topK),
    topP: Float32Array.of(p.topP),
    minP: Float32Array.of(p.minP),
    seed: Uint32Array.of(lo, hi),
    step: Int32Array.of(seq.numOutputTokens),
  };
}
