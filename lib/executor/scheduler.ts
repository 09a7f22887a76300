/**
 * In-flight batching: which tokens of which sequences run in the next step. Pure host code.
 */
import type { BlockCopy, KvCacheManager } from "./kv_cache_manager.ts";
import { decodeDeferReserve } from "./decode_defer.ts";
import { compareGroups, type Sequence, type SequenceGroup } from "./sequence.ts";

/** Limits of one step. */
export interface SchedulerConfig {
  /** Most sequences in flight (batch slots). */
  readonly maxBatchSize: number;
  /** Most tokens in one step (prefill chunks + decode tokens). */
  readonly maxNumTokens: number;
  /** Split a prompt over several steps when it does not fit the token budget. @default true */
  readonly enableChunkedPrefill?: boolean;
  /**
   * Most logits rows in one step (the engine's logits capacity): sampling rows plus the prompt
   * rows of requests wanting prompt logits. @default Infinity
   */
  readonly maxNumRows?: number;
  /**
   * Steps that waiting groups may be held back while other groups run, so that prompts arriving
   * over a few steps prefill together: fewer steps mix prefill into the decode batch (such steps run
   * without the decode graphs, and each costs several decode steps on a GPU). Waiting groups are
   * admitted at once when nothing else runs, when they would take every free batch slot, or when
   * the oldest has been held this many steps. @default 0 (admitted at once)
   */
  readonly admissionDelaySteps?: number;
  /**
   * Steps in a row that decoding sequences may sit out so that waiting prompts prefill alone, when they can start now
   * (slots; KV blocks with a spare one per decoding sequence) and bring half the token budget (decode_defer.ts). On
   * a GPU a decode token costs little in a decode graph and much in a large eager step, whose attention runs the
   * prefill kernel over every sequence; and prompts cut to make room spill into one more mixed step. Offline
   * batches run the same decode steps and no mixed one; a running sequence's next token comes a step later. @default 0
   */
  readonly decodeDeferSteps?: number;
}

/**
 * Tokens [start, start + numTokens) of `seq` run this step; `numRows` logits rows come back for its
 * last token, and one more for each prompt position in `promptRows` (prompt logits wanted).
 */
export interface ScheduledChunk {
  readonly seq: Sequence;
  readonly start: number;
  readonly numTokens: number;
  /** 0 (mid-prompt), 1, or the group's fanout when the prompt completes before the fork. */
  readonly numRows: number;
  /** Prompt positions [from, to) that get a logits row of their own (from === to: none). */
  readonly promptRows: readonly [from: number, to: number];
}

/** One step's plan. */
export interface SchedulerOutput {
  readonly chunks: readonly ScheduledChunk[];
  /** Copy-on-write block copies to perform before the forward. */
  readonly blockCopies: readonly BlockCopy[];
  /** Groups sent back to waiting this step (their KV dropped, to be recomputed). */
  readonly preempted: readonly SequenceGroup[];
  /** Groups that can never run (removed, blocks freed), with the reason. */
  readonly failed: readonly { readonly group: SequenceGroup; readonly reason: string }[];
  readonly numPrefillTokens: number;
  readonly numDecodeTokens: number;
}

/**
 * FCFS (by priority, then arrival) continuous batching under a batch-slot and token budget, with
 * chunked prefill and preemption by recompute when KV blocks run out.
 *
 * Each step: running groups that are decoding get their one token per sequence first, then running
 * groups still prefilling get chunks, then waiting groups are admitted in order while slots, tokens
 * and blocks last (never past a waiting group that does not fit, and not in a step that preempted).
 * When a running sequence needs a block and none is free, the lowest-ranked running group not yet
 * scheduled this step is preempted (or the group itself, when it ranks lowest); a group alone in the
 * cache that still does not fit fails.
 *
 * @example
 * ```ts
 * const sched = new Scheduler(kv, { maxBatchSize: 8, maxNumTokens: 256 });
 * sched.add(new SequenceGroup(0, promptIds, { arrival: 0 }));
 * const step = sched.schedule();
 * // run step.chunks, then:
 * sched.markComputed(step);
 * ```
 */
export class Scheduler {
  readonly #waiting: SequenceGroup[] = [];
  readonly #running: SequenceGroup[] = [];
  readonly maxBatchSize: number;
  readonly maxNumTokens: number;
  readonly enableChunkedPrefill: boolean;
  readonly maxNumRows: number;
  readonly admissionDelaySteps: number;
  readonly decodeDeferSteps: number;
  /** Steps the waiting groups have been held back (see SchedulerConfig.admissionDelaySteps). */
  #heldSteps = 0;
  /** Steps in a row whose decoding groups were left out (see SchedulerConfig.decodeDeferSteps). */
  #deferredSteps = 0;

  constructor(readonly kv: KvCacheManager, config: SchedulerConfig) {
    // Every decoding sequence must fit one step's token budget.
    this.maxBatchSize = Math.min(config.maxBatchSize, config.maxNumTokens);
    this.maxNumTokens = config.maxNumTokens;
    this.enableChunkedPrefill = config.enableChunkedPrefill ?? true;
    this.maxNumRows = config.maxNumRows ?? Infinity;
    this.admissionDelaySteps = config.admissionDelaySteps ?? 0;
    this.decodeDeferSteps = config.decodeDeferSteps ?? 0;
  }

  get numWaiting(): number {
    return this.#waiting.length;
  }
  get numRunning(): number {
    return this.#running.length;
  }
  get hasWork(): boolean {
    return this.#waiting.length > 0 || this.#running.length > 0;
  }
  /** Groups in flight, running first. */
  get groups(): readonly SequenceGroup[] {
    return [...this.#running, ...this.#waiting];
  }

  /** Queues a new group. */
  add(group: SequenceGroup): void {
    group.status = "waiting";
    insertSorted(this.#waiting, group);
  }

  /** Removes a group wherever it is and frees its blocks; returns it, or undefined when unknown. */
  remove(requestId: number): SequenceGroup | undefined {
    for (const list of [this.#running, this.#waiting]) {
      const i = list.findIndex((g) => g.requestId === requestId);
      if (i < 0) continue;
      const [g] = list.splice(i, 1);
      for (const s of g.seqs) this.kv.free(s);
      g.status = "finished";
      return g;
    }
    return undefined;
  }

  /**
   * After a step's forward: advances the computed counts of the chunks and publishes full blocks.
   */
  markComputed(step: SchedulerOutput): void {
    for (const c of step.chunks) {
      c.seq.numComputedTokens = c.start + c.numTokens;
      this.kv.commitFullBlocks(c.seq);
    }
  }

  /** Forks the prompt's sequence into `fanout` sequences sharing its blocks; returns them (the root first). */
  fork(group: SequenceGroup): Sequence[] {
    if (group.isForked) return group.liveSeqs;
    const root = group.seqs[0];
    for (let i = 1; i < group.fanout; i++) this.kv.fork(root, group.addChild(root, i));
    group.isForked = true;
    return group.seqs;
  }

  /**
   * Forks `parent` into a new sequence of its group sharing its blocks (a beam that branches);
   * the child's table is copied on write.
   */
  forkSequence(parent: Sequence, seqIndex: number): Sequence {
    const child = parent.group.addChild(parent, seqIndex);
    this.kv.fork(parent, child);
    return child;
  }

  /** Frees a sequence's blocks and removes it from its group (a pruned beam). */
  dropSequence(seq: Sequence): void {
    this.kv.free(seq);
    seq.group.removeSeq(seq);
  }

  /** Frees the blocks of finished sequences; removes and returns the groups that are done. */
  reap(): SequenceGroup[] {
    const done: SequenceGroup[] = [];
    for (let i = this.#running.length - 1; i >= 0; i--) {
      const g = this.#running[i];
      for (const s of g.seqs) if (s.isFinished && s.blockTable.length > 0) this.kv.free(s);
      if (g.isFinished) {
        this.#running.splice(i, 1);
        g.status = "finished";
        done.push(g);
      }
    }
    return done.reverse();
  }

  /** Plans the next step. */
  schedule(): SchedulerOutput {
    const chunks: ScheduledChunk[] = [];
    const copies: BlockCopy[] = [];
    const preempted: SequenceGroup[] = [];
    const failed: { group: SequenceGroup; reason: string }[] = [];
    const scheduled = new Set<SequenceGroup>();
    const left = { tokens: this.maxNumTokens, rows: this.maxNumRows };

    // Decoding groups first, then the rest (one pass: this runs every step over every stream).
    const decoding: SequenceGroup[] = [];
    const rest: SequenceGroup[] = [];
    for (const g of this.#running) (isDecoding(g) ? decoding : rest).push(g);
    // Waiting prompts may take a prefill-only step (SchedulerConfig.decodeDeferSteps): the decoding groups wait.
    const reserve = decoding.length > 0 && this.#deferredSteps < this.decodeDeferSteps && this.#waiting.length > 0
      ? decodeDeferReserve(this.kv, this, decoding, rest, this.#waiting)
      : -1;
    if (reserve < 0) this.#scheduleRunning(decoding, chunks, copies, preempted, failed, scheduled, left);
    this.#scheduleRunning(rest, chunks, copies, preempted, failed, scheduled, left);

    const before = chunks.length;
    if (preempted.length === 0 && this.#admitNow(chunks.length > 0 || reserve >= 0)) {
      this.#admit(chunks, copies, left, scheduled, Math.max(reserve, 0));
      if (this.#waiting.length === 0) this.#heldSteps = 0; // groups left behind (no room) go at the next chance
    }
    if (reserve >= 0 && chunks.length === before) {
      // Nothing was admitted after all (held by admissionDelaySteps): the decoding groups run as usual.
      this.#scheduleRunning(decoding, chunks, copies, preempted, failed, scheduled, left);
      this.#deferredSteps = 0;
    } else {
      this.#deferredSteps = reserve >= 0 ? this.#deferredSteps + 1 : 0;
    }

    if (chunks.length === 0 && failed.length === 0 && this.#running.length === 0 && this.#waiting.length > 0) {
      // Nothing runs and nothing holds blocks: the head can never fit, so fail it instead of spinning.
      const g = this.#waiting[0];
      failed.push({ group: g, reason: this.#tooBigReason(g) });
      this.#drop(g);
    }
    let numPrefillTokens = 0, numDecodeTokens = 0;
    for (const c of chunks) {
      // A decode chunk: the last token, plus the draft tokens it verifies (speculative decoding).
      if (c.numTokens === 1 + c.seq.numDraftTokens && c.start >= c.seq.numPromptTokens) numDecodeTokens += c.numTokens;
      else numPrefillTokens += c.numTokens;
    }
    return { chunks, blockCopies: copies, preempted, failed, numPrefillTokens, numDecodeTokens };
  }

  /** Chunks of running groups `groups` (in order) within the step's budget `left`, preempting for KV blocks. */
  #scheduleRunning(
    groups: readonly SequenceGroup[],
    chunks: ScheduledChunk[],
    copies: BlockCopy[],
    preempted: SequenceGroup[],
    failed: { group: SequenceGroup; reason: string }[],
    scheduled: Set<SequenceGroup>,
    left: { tokens: number; rows: number },
  ): void {
    for (const g of groups) {
      if (g.status !== "running") continue; // preempted as a victim earlier in this loop
      const mine: ScheduledChunk[] = [];
      const myCopies: BlockCopy[] = [];
      let outcome: "ok" | "preempted" | "failed" = "ok";
      for (const seq of g.liveSeqs) {
        if (seq.numUncomputedTokens === 0) continue; // waits for its group (a beam with its row taken)
        const n = this.#chunkSize(seq, left.tokens, left.rows);
        if (n === 0) break;
        let got = this.kv.allocate(seq, n);
        while (got === null) {
          const victim = this.#pickVictim(g, scheduled);
          if (victim === g) {
            if (this.#running.length === 1) {
              failed.push({ group: g, reason: this.#tooBigReason(g) });
              this.#drop(g);
              outcome = "failed";
            } else {
              this.#preempt(g);
              preempted.push(g);
              outcome = "preempted";
            }
            break;
          }
          this.#preempt(victim);
          preempted.push(victim);
          got = this.kv.allocate(seq, n);
        }
        if (got === null) break;
        myCopies.push(...got);
        const c = chunk(seq, n);
        mine.push(c);
        left.tokens -= n;
        left.rows -= rowsOf(c);
      }
      if (outcome !== "ok" || mine.length === 0) continue;
      scheduled.add(g);
      chunks.push(...mine);
      copies.push(...myCopies);
    }
  }

  /** Whether waiting groups may start this step (see SchedulerConfig.admissionDelaySteps); `busy`: other groups run. */
  #admitNow(busy: boolean): boolean {
    if (this.#waiting.length === 0) {
      this.#heldSteps = 0;
      return false;
    }
    if (this.admissionDelaySteps === 0 || !busy || this.#heldSteps >= this.admissionDelaySteps) return true;
    let free = this.maxBatchSize;
    for (const g of this.#running) free -= g.numSlots;
    let want = 0;
    for (const g of this.#waiting) if ((want += g.numSlots) >= free) return true;
    this.#heldSteps++;
    return false;
  }

  /** Admits waiting groups in order while slots, `left` tokens and rows, and KV blocks beyond `reserve` last. */
  #admit(chunks: ScheduledChunk[], copies: BlockCopy[], left: { tokens: number; rows: number }, scheduled: Set<SequenceGroup>, reserve: number): void {
    let slots = this.#running.reduce((a, g) => a + g.numSlots, 0);
    let budget = left.tokens, rowBudget = left.rows;
    while (this.#waiting.length > 0 && budget > 0) {
      const g = this.#waiting[0];
      if (slots + g.numSlots > this.maxBatchSize) break;
      const mine: ScheduledChunk[] = [];
      for (const seq of g.liveSeqs) {
        if (seq.numUncomputedTokens === 0) continue;
        const n = this.#chunkSize(seq, budget, rowBudget);
        if (n === 0) break;
        if (reserve > 0 && this.kv.blocksFor(seq.numComputedTokens + n) - seq.blockTable.length > this.kv.numFreeBlocks - reserve) break;
        const got = this.kv.allocate(seq, n);
        if (got === null) break;
        copies.push(...got);
        const c = chunk(seq, n);
        mine.push(c);
        budget -= n;
        rowBudget -= rowsOf(c);
      }
      if (mine.length === 0) break;
      this.#waiting.shift();
      g.status = "running";
      insertSorted(this.#running, g);
      scheduled.add(g);
      chunks.push(...mine);
      slots += g.numSlots;
    }
    left.tokens = budget;
    left.rows = rowBudget;
  }

  /**
   * Tokens of `seq` to run within `budget` tokens and `rowBudget` logits rows (0 = none fit). On an
   * empty block table the cached prefix is taken first (by the allocate that follows), so the
   * chunk starts after it.
   */
  #chunkSize(seq: Sequence, budget: number, rowBudget: number): number {
    // allocate() sets numComputedTokens to the cached prefix; chunk() reads it after.
    const start = seq.blockTable.length === 0 && seq.numComputedTokens === 0 ? this.kv.numCachedPrefixTokens(seq) : seq.numComputedTokens;
    const need = seq.numTokens - start;
    let n = Math.min(need, budget);
    if (seq.group.rowsAt(seq, start, n) > rowBudget) { // rowsOf(chunkAt(seq, start, n)), without the chunk
      // Short of the end no sampling row comes back: one row per prompt position past `promptLogitsFrom`.
      const noRows = Math.max(start, seq.group.promptLogitsFrom) - start;
      n = Math.min(n === need ? n - 1 : n, noRows + rowBudget);
    }
    return n < need && !this.enableChunkedPrefill ? 0 : Math.max(n, 0);
  }

  /** The lowest-ranked running group not scheduled this step, or `g` itself when it ranks lower. */
  #pickVictim(g: SequenceGroup, scheduled: Set<SequenceGroup>): SequenceGroup {
    let victim = g;
    for (const r of this.#running) {
      if (r !== g && !scheduled.has(r) && compareGroups(r, victim) > 0) victim = r;
    }
    return victim;
  }

  #preempt(g: SequenceGroup): void {
    this.#running.splice(this.#running.indexOf(g), 1);
    for (const s of g.seqs) {
      this.kv.free(s);
      s.numComputedTokens = 0;
    }
    g.numPreemptions++;
    this.add(g);
  }

  #drop(g: SequenceGroup): void {
    for (const list of [this.#running, this.#waiting]) {
      const i = list.indexOf(g);
      if (i >= 0) list.splice(i, 1);
    }
    for (const s of g.seqs) this.kv.free(s);
    g.status = "finished";
  }

  #tooBigReason(g: SequenceGroup): string {
    const tokens = g.liveSeqs.reduce((a, s) => a + s.numTokens, 0);
    const seqs = g.liveSeqs.length;
    return `request ${g.requestId}: ${seqs} sequence(s) of ${tokens} tokens in all need more than the KV cache's ` +
      `${this.kv.numBlocks} blocks of ${this.kv.tokensPerBlock} tokens; raise kvCacheConfig.maxTokens/maxBytes or lower maxTokens`;
  }
}

function chunk(seq: Sequence, n: number): ScheduledChunk {
  return chunkAt(seq, seq.numComputedTokens, n);
}

function chunkAt(seq: Sequence, start: number, n: number): ScheduledChunk {
  // Draft tokens get a row each, after the row of the token before them (only when all of them run).
  const numRows = start + n === seq.numTokens ? seq.group.rowsFor(seq) + (seq.numDraftTokens < n ? seq.numDraftTokens : 0) : 0;
  return { seq, start, numTokens: n, numRows, promptRows: seq.group.promptRowRange(seq, start, n) };
}

/** Logits rows a chunk asks for. */
export function rowsOf(c: ScheduledChunk): number {
  return c.numRows + c.promptRows[1] - c.promptRows[0];
}

function isDecoding(g: SequenceGroup): boolean {
  for (const s of g.seqs) if (!s.isFinished && s.numUncomputedTokens !== 1 + s.numDraftTokens) return false;
  return true;
}

function insertSorted(list: SequenceGroup[], g: SequenceGroup): void {
  let i = list.length;
  while (i > 0 && compareGroups(g, list[i - 1]) < 0) i--;
  list.splice(i, 0, g);
}
