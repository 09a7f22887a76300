/**
 * Sequence and SequenceGroup: the scheduler's view of a request. Pure host state, no device code.
 *
 * A request is a SequenceGroup. It starts with one sequence (the prompt); when the prompt's last
 * token is computed the group samples `fanout` first tokens from that one logits row and forks
 * into `fanout` sequences that share the prompt's KV blocks (n > 1, bestOf). Under beam search
 * every live sequence is a beam; the executor re-forks beams from their parents each step.
 */
import type { FinishReason } from "./outputs.ts";

/** waiting: queued (new or preempted); running: admitted, holds KV blocks; finished: done. */
export type GroupStatus = "waiting" | "running" | "finished";

/** One token stream of a request: prompt ids followed by generated ids. */
export class Sequence {
  /** Prompt ids then generated ids. */
  readonly tokenIds: number[];
  /** Tokens whose KV is in the cache (prefix hits included). */
  numComputedTokens = 0;
  /** KV block ids in position order; owned by the KvCacheManager. */
  blockTable: number[] = [];
  /** Chained hashes of the full blocks of `tokenIds` (index i covers tokens [0, (i+1)·blockSize)). */
  readonly blockHashes: string[] = [];
  /** Tokens served from the prefix cache at the last admission. */
  numCachedTokens = 0;
  /**
   * Speculative draft tokens at the end of `tokenIds` (0 outside a speculative step): the chunk
   * running them asks for a logits row at each, and the speculator removes the rejected ones.
   */
  numDraftTokens = 0;
  finishReason: FinishReason | null = null;
  stopReason: number | string | null = null;
  /** Sum of the chosen tokens' logprobs (when computed). */
  cumulativeLogprob = 0;

  constructor(
    readonly group: SequenceGroup,
    /** Index within the request (0 … fanout-1, or the beam slot). */
    readonly seqIndex: number,
    tokenIds: readonly number[],
  ) {
    this.tokenIds = [...tokenIds];
  }

  get requestId(): number {
    return this.group.requestId;
  }
  get numTokens(): number {
    return this.tokenIds.length;
  }
  get numPromptTokens(): number {
    return this.group.numPromptTokens;
  }
  get numOutputTokens(): number {
    return this.tokenIds.length - this.group.numPromptTokens;
  }
  get outputIds(): number[] {
    return this.tokenIds.slice(this.group.numPromptTokens);
  }
  get isFinished(): boolean {
    return this.finishReason !== null;
  }
  /** Tokens still to run through the model before the next one can be sampled. */
  get numUncomputedTokens(): number {
    return this.tokenIds.length - this.numComputedTokens;
  }
}

/** Options of a SequenceGroup. */
export interface SequenceGroupOptions {
  /** Sequences forked from the prompt (bestOf, or beamWidth). @default 1 */
  readonly fanout?: number;
  /** Higher runs first; equal priorities run first come, first served. @default 0 */
  readonly priority?: number;
  /**
   * Beam search: every live sequence is a beam giving one logits row per step; the executor
   * re-forks the beams from those rows (`fanout` = beam width, slots reserved from the start).
   * @default false
   */
  readonly isBeamSearch?: boolean;
  /**
   * Prompt logits (context logits / prompt logprobs) are wanted: every prompt position gets a
   * logits row, so none may come from the prefix cache. @default false
   */
  readonly wantsPromptLogits?: boolean;
  /** Arrival order (ties of priority). */
  readonly arrival: number;
}

/**
 * The sequences of one request, scheduled together.
 *
 * @example
 * ```ts
 * const g = new SequenceGroup(7, [1, 403, 407], { fanout: 2, arrival: 0 });
 * g.liveSeqs.length; // 1 until the prompt is computed, then 2
 * ```
 */
export class SequenceGroup {
  readonly seqs: Sequence[];
  readonly numPromptTokens: number;
  readonly fanout: number;
  readonly priority: number;
  readonly arrival: number;
  readonly isBeamSearch: boolean;
  status: GroupStatus = "waiting";
  /** True once the prompt's sequence has been forked into `fanout` sequences (always true for fanout 1). */
  isForked: boolean;
  /**
   * Prefix-cache namespace: block hashes chain from it, so KV computed under a LoRA adapter is only
   * ever reused by requests with the same adapter ("" = the base model).
   */
  cacheSalt = "";
  /** Times this group was preempted (its KV dropped, to be recomputed). */
  numPreemptions = 0;
  /**
   * First prompt position whose logits row is still wanted (numPromptTokens: none). Prompt
   * positions from here must be computed (no prefix-cache hit may cover them); the executor
   * advances it as their rows come back.
   */
  promptLogitsFrom: number;

  constructor(readonly requestId: number, promptIds: readonly number[], options: SequenceGroupOptions) {
    this.numPromptTokens = promptIds.length;
    this.fanout = options.fanout ?? 1;
    this.priority = options.priority ?? 0;
    this.arrival = options.arrival;
    this.isBeamSearch = options.isBeamSearch ?? false;
    this.isForked = this.fanout === 1 || this.isBeamSearch;
    this.promptLogitsFrom = options.wantsPromptLogits ? 0 : this.numPromptTokens;
    this.seqs = [new Sequence(this, 0, promptIds)];
  }

  get promptIds(): number[] {
    return this.seqs[0].tokenIds.slice(0, this.numPromptTokens);
  }
  // Loops, not filter / every with a callback: these run for every group in every step (host garbage a step).
  get liveSeqs(): Sequence[] {
    const live: Sequence[] = [];
    for (const s of this.seqs) if (!s.isFinished) live.push(s);
    return live;
  }
  get isFinished(): boolean {
    for (const s of this.seqs) if (!s.isFinished) return false;
    return true;
  }
  /** Batch slots the group occupies: its live sequences, or `fanout` before the fork. */
  get numSlots(): number {
    return this.isBeamSearch || !this.isForked ? this.fanout : this.liveSeqs.length;
  }
  /** Logits rows a sequence's completed chunk asks for: `fanout` for the prompt before the fork. */
  rowsFor(seq: Sequence): number {
    return this.isForked ? 1 : seq === this.seqs[0] ? this.fanout : 1;
  }
  /**
   * Prompt positions `[from, to)` of the chunk `[start, start + numTokens)` of `seq` that need a
   * logits row of their own. The prompt's last position, when the chunk ends there and samples,
   * is read from its sampling row instead, so it is left out.
   */
  promptRowRange(seq: Sequence, start: number, numTokens: number): [from: number, to: number] {
    const from = Math.max(start, this.promptLogitsFrom);
    return [from, from + this.numPromptRows(seq, start, numTokens)];
  }
  /** Logits rows of the chunk [start, start + numTokens) of `seq`: its sampling rows (scheduler.ts chunkAt) and prompt rows. */
  rowsAt(seq: Sequence, start: number, numTokens: number): number {
    const sampling = start + numTokens === seq.numTokens ? this.rowsFor(seq) + (seq.numDraftTokens < numTokens ? seq.numDraftTokens : 0) : 0;
    return sampling + this.numPromptRows(seq, start, numTokens);
  }
  /** The length of {@link promptRowRange} (without the pair). */
  numPromptRows(seq: Sequence, start: number, numTokens: number): number {
    const L = this.numPromptTokens;
    const from = Math.max(start, this.promptLogitsFrom);
    const end = start + numTokens;
    const to = end === seq.numTokens && end === L ? L - 1 : Math.min(end, L);
    return Math.max(from, to) - from;
  }

  /** Removes a sequence (a pruned beam); its blocks must be freed first. */
  removeSeq(seq: Sequence): void {
    const i = this.seqs.indexOf(seq);
    if (i >= 0) this.seqs.splice(i, 1);
  }

  /** Adds a sequence copying `parent`'s tokens (KV blocks are shared by the KvCacheManager). */
  addChild(parent: Sequence, seqIndex: number): Sequence {
    const child = new Sequence(this, seqIndex, parent.tokenIds);
    child.numComputedTokens = parent.numComputedTokens;
    child.cumulativeLogprob = parent.cumulativeLogprob;
    this.seqs.push(child);
    return child;
  }
}

/** Scheduling order: higher priority first, then earlier arrival. Negative when `a` runs first. */
export function compareGroups(a: SequenceGroup, b: SequenceGroup): number {
  return b.priority - a.priority || a.arrival - b.arrival;
}
