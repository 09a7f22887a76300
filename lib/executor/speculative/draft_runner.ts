/**
 * The draft model of DraftTarget speculative decoding: its own Session and paged KV cache, one
 * draft state per target sequence (block table and how many of its tokens have KV in the draft
 * cache). Each step runs k rounds (all sequences batched per round) proposing one draft token each —
 * the argmax (on the device: only the ids come back), or a draw from the draft's distribution q under
 * the request's own sampling settings (kept for rejection sampling). The first round also runs the
 * tokens the target accepted since (the last draft of a fully accepted step), every token as a
 * one-token sequence over the sequence's block table, so each round is a decode step (a CUDA graph);
 * a long catch-up (the prompt) runs as a prefill step first. Rejected drafts' KV is simply overwritten later.
 */
import type { Engine } from "../../builder/engine.ts";
import type { SamplingInputs } from "../../ir/sampling.ts";
import { type PackChunk, packStep } from "../../runtime/step_packer.ts";
import { type Backend, type KvCache, Session } from "../../runtime/session.ts";
import { InternalError } from "../../util/errors.ts";
import { draftUniform, drawFrom, samplingDistribution } from "./rejection.ts";

/** What one sequence asks of the draft model this step. */
export interface DraftItem {
  /** Identifies the sequence across steps (the target's Sequence object). */
  readonly key: object;
  /** The sequence's tokens (prompt + accepted output); the last one has no KV in the target yet. */
  readonly tokens: readonly number[];
  /** Draft tokens wanted (≥ 1). */
  readonly numDraft: number;
  /** The request's sampling settings as one row (row 0): temperature 0 → greedy drafts. */
  readonly sampling: SamplingInputs;
  /** Seed words of the sequence (draft draws use their own stream). */
  readonly seed: readonly [number, number];
  /** Output index of the first draft token (tokens.length − prompt length). */
  readonly firstOutputIndex: number;
}

/** Draft tokens of one sequence and, when sampled, the distribution each was drawn from (null: one-hot). */
export interface DraftProposal {
  readonly tokens: number[];
  readonly q: (Float64Array | null)[];
}

interface DraftState {
  blockTable: number[];
  /** Leading tokens of the sequence whose KV is in the draft cache. */
  numComputed: number;
}

/** Options of a {@link DraftModelRunner}. */
export interface DraftModelRunnerOptions {
  readonly backend: Backend;
  /** Sequences drafted for at once (the target's batch size). */
  readonly maxBatchSize: number;
}

/**
 * Runs a draft engine for the speculative decoder.
 *
 * @example
 * ```ts
 * using draft = new DraftModelRunner(draftEngine, { backend: "cpu", maxBatchSize: 8 });
 * const [p] = draft.propose([{ key: seq, tokens, numDraft: 4, sampling, seed, firstOutputIndex }]);
 * draft.rollback(seq, tokens.length + numAccepted);
 * ```
 */
export class DraftModelRunner {
  readonly session: Session;
  readonly vocabSize: number;
  readonly maxSeqLen: number;
  readonly numBlocks: number;
  readonly #kvCache: KvCache;
  readonly #free: number[] = [];
  readonly #states = new Map<object, DraftState>();
  readonly #maxBlocksPerSeq: number;
  readonly #maxTokens: number;
  readonly #maxRows: number;
  #disposed = false;

  constructor(engine: Engine, options: DraftModelRunnerOptions) {
    this.session = Session.fromSerializedEngine(engine, { backend: options.backend });
    try {
      const plan = engine.plan;
      this.vocabSize = plan.attributes.vocabSize;
      this.maxSeqLen = this.session.maxSeqLen;
      this.#maxBlocksPerSeq = Math.ceil(this.maxSeqLen / this.session.tokensPerBlock);
      this.#maxTokens = plan.maxTokens;
      this.#maxRows = plan.maxSeqs;
      // Every sequence at full length, plus one spare sequence's worth.
      this.numBlocks = this.#maxBlocksPerSeq * (options.maxBatchSize + 1);
      this.#kvCache = this.session.createKvCache(this.numBlocks);
      for (let b = this.numBlocks - 1; b >= 0; b--) this.#free.push(b);
    } catch (e) {
      this.session.dispose();
      throw e;
    }
  }

  /** Draft KV blocks held now. */
  get numUsedBlocks(): number {
    return this.numBlocks - this.#free.length;
  }

  /** Sequences holding draft state. */
  get numSequences(): number {
    return this.#states.size;
  }

  /** The most draft tokens a sequence of `numTokens` tokens can get (the draft's own length limit). */
  maxDraftFor(numTokens: number): number {
    return Math.max(0, this.maxSeqLen - numTokens);
  }

  /**
   * Proposes drafts for `items` (each gets exactly `numDraft` tokens, or none when the draft cache
   * has no room for it: an empty proposal).
   */
  propose(items: readonly DraftItem[]): DraftProposal[] {
    this.#live();
    const bs = this.session.tokensPerBlock;
    const results: DraftProposal[] = items.map(() => ({ tokens: [], q: [] }));
    const active: { item: DraftItem; st: DraftState; out: DraftProposal; ids: number[] }[] = [];
    items.forEach((item, i) => {
      if (item.numDraft < 1 || item.tokens.length + item.numDraft - 1 > this.maxSeqLen) return;
      let st = this.#states.get(item.key);
      if (!st) {
        st = { blockTable: [], numComputed: 0 };
        this.#states.set(item.key, st);
      }
      st.numComputed = Math.min(st.numComputed, item.tokens.length - 1);
      const need = Math.ceil((item.tokens.length + item.numDraft - 1) / bs) - st.blockTable.length;
      if (need > this.#free.length) return;
      for (let b = 0; b < need; b++) st.blockTable.push(this.#free.pop()!);
      active.push({ item, st, out: results[i], ids: [...item.tokens] });
    });
    if (active.length === 0) return results;
    // Round 0 runs each sequence's tokens without draft KV (the last one, and the last draft of a fully
    // accepted step) as one-token sequences of a decode step; a long catch-up (the prompt) runs first.
    const chainMax = Math.min(CHAIN_MAX, this.#maxRows, this.#maxTokens);
    if (active.some((a) => a.ids.length - a.st.numComputed > chainMax)) this.#catchUp(active);
    // Rounds: each active sequence runs its uncomputed tokens and takes the next draft token from the last.
    const maxDraft = Math.max(...active.map((a) => a.item.numDraft));
    const V = this.vocabSize;
    for (let j = 0; j < maxDraft; j++) {
      const round = active.filter((a) => a.out.tokens.length < a.item.numDraft);
      for (let from = 0; from < round.length;) {
        const batch: typeof round = [];
        const chunks: PackChunk[] = [];
        const lastRow: number[] = [];
        for (; from < round.length; from++) {
          const a = round[from], n = a.ids.length - a.st.numComputed;
          if (batch.length > 0 && (chunks.length + n > this.#maxRows || chunks.length + n > this.#maxTokens)) break;
          for (let p = a.st.numComputed; p < a.ids.length; p++) {
            chunks.push({ tokenIds: a.ids, start: p, numTokens: 1, blockTable: a.st.blockTable, logitPositions: [p] });
          }
          batch.push(a);
          lastRow.push(chunks.length - 1);
        }
        const sampled = batch.some((a) => a.item.sampling.temperature[0] > 0 && a.item.sampling.topK[0] !== 1);
        const inputs = packStep(chunks, this.#maxBlocksPerSeq);
        const R = chunks.length;
        // Greedy drafts: the device's argmax, a few ids back; sampled ones need the distribution q on the host.
        const out = sampled ? { logits: new Float32Array(R * V) } : { sampledIds: new Int32Array(R) };
        this.session.run({ ...inputs, readsStepKv: R > batch.length, sampling: greedyRows(R) }, out, this.#kvCache);
        batch.forEach((a, i) => {
          const r = lastRow[i];
          a.st.numComputed = a.ids.length;
          const it = a.item;
          const greedy = !(it.sampling.temperature[0] > 0) || it.sampling.topK[0] === 1;
          let q: Float64Array | null = null, tok: number;
          if (out.logits) {
            q = samplingDistribution(out.logits, r * V, V, it.sampling, 0);
            tok = greedy ? q.indexOf(1) : drawFrom(q, draftUniform(it.seed, it.firstOutputIndex + a.out.tokens.length));
          } else tok = out.sampledIds![r];
          if (!(tok >= 0 && tok < V)) throw new InternalError("DraftModelRunner: the draft model's row has no finite maximum");
          a.out.tokens.push(tok);
          a.out.q.push(greedy ? null : q);
          a.ids.push(tok);
        });
      }
    }
    return results;
  }

  /** The target kept only the first `numValidTokens` tokens: later draft KV is stale. */
  rollback(key: object, numValidTokens: number): void {
    const st = this.#states.get(key);
    if (st) st.numComputed = Math.min(st.numComputed, numValidTokens);
  }

  /** Frees a sequence's draft state (finished, aborted, or no longer speculating). */
  release(key: object): void {
    const st = this.#states.get(key);
    if (!st) return;
    for (let i = st.blockTable.length - 1; i >= 0; i--) this.#free.push(st.blockTable[i]);
    this.#states.delete(key);
  }

  /** Keys holding draft state (to release those no longer in flight). */
  keys(): object[] {
    return [...this.#states.keys()];
  }

  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    this.#states.clear();
    this.#kvCache.dispose();
    this.session.dispose();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  /** Runs every active sequence's tokens [numComputed, length − 1) (no logits), in steps within the engine's limits. */
  #catchUp(active: { item: DraftItem; st: DraftState; ids: number[] }[]): void {
    for (;;) {
      const chunks: PackChunk[] = [];
      const advanced: { st: DraftState; to: number }[] = [];
      let budget = this.#maxTokens;
      for (const a of active) {
        const end = a.ids.length - 1;
        const n = Math.min(end - a.st.numComputed, budget);
        if (n <= 0 || chunks.length >= this.#maxRows) continue;
        const start = a.st.numComputed;
        chunks.push({ tokenIds: a.ids, start, numTokens: n, blockTable: a.st.blockTable, logitPositions: [start + n - 1] });
        advanced.push({ st: a.st, to: start + n });
        budget -= n;
        if (budget === 0) break;
      }
      if (chunks.length === 0) return;
      this.session.run(packStep(chunks, this.#maxBlocksPerSeq), { logits: new Float32Array(chunks.length * this.vocabSize) }, this.#kvCache);
      for (const a of advanced) a.st.numComputed = a.to;
    }
  }

  #live(): void {
    if (this.#disposed) throw new InternalError("DraftModelRunner: used after dispose()");
  }
}

/** Most tokens a sequence runs in a draft round as one-token sequences (more: a prefill step first). */
const CHAIN_MAX = 8;

/** Sampling inputs of `R` greedy rows (the draft's argmax on the device). */
function greedyRows(R: number): SamplingInputs {
  return {
    temperature: new Float32Array(R),
    topK: new Int32Array(R),
    topP: new Float32Array(R).fill(1),
    minP: new Float32Array(R),
    seed: new Uint32Array(2 * R),
    step: new Int32Array(R),
  };
}
