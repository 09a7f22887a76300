/**
 * The executor's worker loop: while requests are waiting or running, schedule a step, pack it,
 * run one forward on the Session, sample, update the sequences, stop-check, detokenize, and emit
 * outputs — yielding a macrotask between steps so the event loop stays responsive.
 * It reports through an ExecutorSink, so the same loop serves in-process and in a Web Worker.
 */
import { sampleRow } from "../ir/sampling.ts";
import type { IncrementalDetokenizer } from "../tokenizer/detokenizer.ts";
import type { CompletionOutput, FinishReason, RequestOutput } from "./outputs.ts";
import type { SamplingParams } from "./sampling_params.ts";
import type { LlmTokenizer } from "../tokenizer/tokenizer.ts";
import { type KvCacheGeometry, numBlocksFor } from "../ir/kv_cache.ts";
import type { KvCache, Session } from "../runtime/session.ts";
import { ValidationError } from "../util/errors.ts";
import type { ExecutorConfig, ExecutorLimits, GenerationRequest, IterationStats } from "./config.ts";
import type { RequestFailure } from "./executor.ts";
import { toError } from "./executor.ts";
import { type BeamHypothesis, type BeamSearchOptions, type BeamSearchState, beamSearchStep, finalizeBeamSearch, initialBeamState } from "./beam_search.ts";
import { KvCacheManager } from "./kv_cache_manager.ts";
import { copyKvBlocks } from "./kv_copy.ts";
import { needsHostProcessing, processLogits, resolveBadWords } from "./logits_processor.ts";
import { type TokenLogprobs, tokenLogprobs } from "./logprobs.ts";
import { Scheduler, type SchedulerOutput } from "./scheduler.ts";
import { type Sequence, SequenceGroup } from "./sequence.ts";
import { prepareSamplingInputs, prepareStepInputs, type PromptRow, type StepRow } from "./step_inputs.ts";
import { StopChecker } from "./stop_checker.ts";

/** Where the loop reports: once per step (and once per out-of-step abort or failure). */
export interface ExecutorSink {
  emit(outputs: RequestOutput[], failures: RequestFailure[], stats: IterationStats | null): void;
}

/** Output state of one sequence. */
interface SeqOutput {
  readonly detok: IncrementalDetokenizer | null;
  readonly checker: StopChecker;
  text: string;
  /** Characters / output tokens already sent in a stream. */
  sentText: number;
  sentTokens: number;
  readonly logprobs: TokenLogprobs[] | null;
  /** Raw logits row of each generated token (returnGenerationLogits). */
  readonly generationLogits: Float32Array[] | null;
}

/** Beam search of one request: the search state, the sequences holding its beams, rows waiting for the rest. */
interface BeamRun {
  state: BeamSearchState;
  /** seqs[i] holds state.beams[i]. */
  seqs: Sequence[];
  /** Processed logits rows of beams whose step ran, until every beam has one. */
  readonly pending: Map<Sequence, Float32Array>;
  /** Their raw rows (returnGenerationLogits). */
  readonly pendingRaw: Map<Sequence, Float32Array>;
  /**
   * returnGenerationLogits: the raw rows behind each live beam and kept hypothesis, keyed by its
   * tokens (distinct within a search); else null.
   */
  generationLogits: Map<string, Float32Array[]> | null;
  readonly options: BeamSearchOptions;
  nextIndex: number;
  /** The best n hypotheses once the search is done. */
  hypotheses: BeamHypothesis[] | null;
}

interface RequestState {
  readonly id: number;
  readonly request: GenerationRequest;
  readonly params: SamplingParams;
  readonly promptIds: readonly number[];
  readonly group: SequenceGroup;
  readonly streaming: boolean;
  readonly eosIds: readonly number[];
  readonly badWordIds: number[][];
  /** Rows need the host path (penalties, biases, callbacks…). */
  readonly host: boolean;
  /** Logprobs are computed (asked for, or needed to rank bestOf > n). */
  readonly wantLogprobs: boolean;
  /** returnGenerationLogits: each sampling row's raw logits are kept. */
  readonly wantGenerationLogits: boolean;
  /** promptLogprobs: per prompt position (the first null), filled as their rows come back. */
  readonly promptLogprobs: (TokenLogprobs | null)[] | null;
  /** returnContextLogits: the raw logits row of each prompt position, filled as they come back. */
  readonly contextLogits: Float32Array[] | null;
  readonly outs: Map<Sequence, SeqOutput>;
  readonly beam: BeamRun | null;
}

/** CPU KV budget when nothing caps it: a full batch at maxSeqLen (plus one sequence), at most 1 GiB. */
const CPU_KV_BUDGET_CAP = 1 << 30;

/** A macrotask turn without timer clamping (setImmediate exists in Bun and Deno). */
function yieldToEventLoop(): Promise<void> {
  const si = (globalThis as { setImmediate?: (cb: () => void) => unknown }).setImmediate;
  return new Promise<void>((resolve) => (si ? si(resolve) : setTimeout(resolve, 0)));
}

/**
 * Continuous-batching generation over one Session and its paged KV cache.
 *
 * @example
 * ```ts
 * const loop = new ExecutorLoop(session, tokenizer, parseWith(ExecutorConfigSchema, {}, "config"), {
 *   emit: (outputs, failures) => console.log(outputs, failures),
 * });
 * loop.submit(0, { promptTokenIds: [1, 403], samplingParams: new SamplingParams({ temperature: 0 }) });
 * ```
 */
export class ExecutorLoop {
  readonly limits: ExecutorLimits;
  readonly kv: KvCacheManager;
  readonly #session: Session;
  readonly #kvCache: KvCache;
  readonly #scheduler: Scheduler;
  readonly #tokenizer: LlmTokenizer | null;
  readonly #sink: ExecutorSink;
  readonly #config: ExecutorConfig;
  readonly #defaultEosIds: readonly number[];
  readonly #maxBlocksPerSeq: number;
  readonly #states = new Map<number, RequestState>();
  readonly #stats: IterationStats[] = [];
  #iter = 0;
  #arrival = 0;
  #looping = false;
  #closed = false;

  constructor(session: Session, tokenizer: LlmTokenizer | null, config: ExecutorConfig, sink: ExecutorSink) {
    this.#session = session;
    this.#tokenizer = tokenizer;
    this.#sink = sink;
    this.#config = config;
    const engine = session.engine;
    const build = engine.config.build;
    const plan = engine.plan;
    const maxSeqLen = session.maxSeqLen;
    const maxBatchSize = config.maxBatchSize ?? Math.min(build.maxBatchSize, plan.maxSeqs);
    const maxNumTokens = config.maxNumTokens ?? plan.maxTokens;
    if (maxBatchSize > plan.maxSeqs) {
      throw new ValidationError(`ExecutorConfig.maxBatchSize: ${maxBatchSize} exceeds the engine's ${plan.maxSeqs} sequences per step`, "maxBatchSize", maxBatchSize);
    }
    if (maxNumTokens > plan.maxTokens) {
      throw new ValidationError(`ExecutorConfig.maxNumTokens: ${maxNumTokens} exceeds the engine's maxNumTokens ${plan.maxTokens}`, "maxNumTokens", maxNumTokens);
    }
    const a = plan.attributes;
    const bs = session.tokensPerBlock;
    const geom: Omit<KvCacheGeometry, "numBlocks"> = session.kvGeometry();
    const bytesPerToken = session.kvBytesPerBlock() / bs;
    // CUDA: a fraction of the device memory free now; CPU: a full batch at maxSeqLen, capped.
    const available = session.freeMemoryBytes() ??
      Math.max(Math.min((maxBatchSize + 1) * maxSeqLen * bytesPerToken, CPU_KV_BUDGET_CAP), 2 * maxSeqLen * bytesPerToken);
    const numBlocks = numBlocksFor(config.kvCacheConfig, geom, available, maxSeqLen);
    this.#kvCache = session.createKvCache(numBlocks);
    this.kv = new KvCacheManager({ numBlocks, tokensPerBlock: bs, enableBlockReuse: config.kvCacheConfig.enableBlockReuse });
    // Logits rows per step: sampling rows, plus prompt rows (up to maxNumTokens with gatherContextLogits).
    this.#scheduler = new Scheduler(this.kv, { maxBatchSize, maxNumTokens, enableChunkedPrefill: config.enableChunkedPrefill, maxNumRows: plan.maxSeqs });
    this.#maxBlocksPerSeq = Math.ceil(maxSeqLen / bs);
    this.limits = {
      maxInputLen: build.maxInputLen ?? Math.min(1024, maxSeqLen),
      maxSeqLen,
      maxBatchSize: this.#scheduler.maxBatchSize,
      maxNumTokens,
      vocabSize: a.vocabSize,
      numKvBlocks: numBlocks,
      tokensPerBlock: bs,
    };
    const eos = [...(tokenizer?.stopTokenIds ?? []), ...engine.config.model.eosTokenIds];
    this.#defaultEosIds = [...new Set(eos.filter((id) => id >= 0))];
  }

  /** Requests not yet in a final state. */
  get numInFlight(): number {
    return this.#states.size;
  }

  /** Recent iteration stats, oldest first. */
  getStats(): IterationStats[] {
    return [...this.#stats];
  }

  /** Queues a request; a bad one is reported failed through the sink (never thrown). */
  submit(requestId: number, request: GenerationRequest): void {
    let st: RequestState;
    try {
      if (this.#closed) throw new Error("GenerationExecutor: submit() after shutdown()");
      if (this.#states.has(requestId)) throw new ValidationError(`GenerationExecutor: request id ${requestId} is already in flight`, "requestId", requestId);
      st = this.#newState(requestId, request);
    } catch (e) {
      this.#sink.emit([], [{ requestId, error: toError(e) }], null);
      return;
    }
    this.#states.set(requestId, st);
    this.#scheduler.add(st.group);
    this.#kick();
  }

  /** Aborts a request at once (blocks freed, final output with finishReason "abort"); false when not in flight. */
  abort(requestId: number): boolean {
    const st = this.#states.get(requestId);
    if (!st) return false;
    this.#scheduler.remove(requestId);
    for (const s of st.group.seqs) {
      if (!s.isFinished) {
        s.finishReason = "abort";
        s.stopReason = null;
      }
    }
    this.#states.delete(requestId);
    this.#sink.emit([this.#snapshot(st, true)], [], null);
    return true;
  }

  /** Fails every request in flight with `reason` and stops. Idempotent. */
  shutdown(reason = "GenerationExecutor: shut down while the request was in flight"): void {
    if (this.#closed) return;
    this.#closed = true;
    const failures = [...this.#states.keys()].map((requestId) => ({ requestId, error: new Error(reason) }));
    for (const id of this.#states.keys()) this.#scheduler.remove(id);
    this.#states.clear();
    if (failures.length > 0) this.#sink.emit([], failures, null);
  }

  #newState(id: number, request: GenerationRequest): RequestState {
    const p = request.samplingParams;
    if (p === null || typeof p !== "object" || typeof p.seedWords !== "function") {
      throw new ValidationError("GenerationRequest.samplingParams: expected a SamplingParams", "samplingParams", p);
    }
    let ids = request.promptTokenIds;
    const V = this.limits.vocabSize;
    if (!Array.isArray(ids) || ids.length === 0) throw new ValidationError("GenerationRequest.promptTokenIds: expected a non-empty array of token ids", "promptTokenIds", ids);
    ids.forEach((t, j) => {
      if (!Number.isInteger(t) || t < 0 || t >= V) throw new ValidationError(`GenerationRequest.promptTokenIds[${j}]: token id ${t} is outside [0, ${V})`, `promptTokenIds[${j}]`, t);
    });
    if (p.truncatePromptTokens !== undefined && ids.length > p.truncatePromptTokens) ids = ids.slice(ids.length - p.truncatePromptTokens);
    const { maxInputLen, maxSeqLen, maxBatchSize, maxNumTokens, numKvBlocks, tokensPerBlock } = this.limits;
    const len = ids.length;
    if (len > maxInputLen) {
      throw new ValidationError(`GenerationRequest.promptTokenIds: prompt of ${len} tokens exceeds maxInputLen ${maxInputLen}`, "promptTokenIds", len);
    }
    if (len >= maxSeqLen) {
      throw new ValidationError(`GenerationRequest.promptTokenIds: prompt of ${len} tokens leaves no room below maxSeqLen ${maxSeqLen}`, "promptTokenIds", len);
    }
    if (!this.#config.enableChunkedPrefill && len > maxNumTokens) {
      throw new ValidationError(`GenerationRequest.promptTokenIds: prompt of ${len} tokens exceeds maxNumTokens ${maxNumTokens} and chunked prefill is off`, "promptTokenIds", len);
    }
    if (Math.ceil((len + 1) / tokensPerBlock) > numKvBlocks) {
      throw new ValidationError(`GenerationRequest.promptTokenIds: prompt of ${len} tokens needs more than the KV cache's ${numKvBlocks} blocks of ${tokensPerBlock} tokens`, "promptTokenIds", len);
    }
    const promptLogitsField = p.promptLogprobs !== undefined ? "promptLogprobs" : p.returnContextLogits ? "returnContextLogits" : null;
    if (promptLogitsField && !this.#session.engine.config.build.gatherContextLogits) {
      throw new ValidationError(
        `SamplingParams.${promptLogitsField}: needs logits of every prompt position, but the engine was built without gatherContextLogits; ` +
          "build it with BuildConfig.gatherContextLogits: true (LLM.create({ gatherContextLogits: true }))",
        promptLogitsField,
        p[promptLogitsField],
      );
    }
    const fanout = p.useBeamSearch ? p.beamWidth : p.bestOf;
    const fanoutField = p.useBeamSearch ? "beamWidth" : "bestOf";
    if (fanout > maxBatchSize) throw new ValidationError(`SamplingParams.${fanoutField}: ${fanout} sequences exceed maxBatchSize ${maxBatchSize}`, fanoutField, fanout);
    const tok = this.#tokenizer;
    if (p.badWords.length > 0 && !tok) throw new ValidationError("SamplingParams.badWords: needs a tokenizer (skipTokenizerInit is set)", "badWords", p.badWords);
    const badWordIds = tok ? resolveBadWords(p.badWords, (s) => tok.encode(s, { addSpecialTokens: false })) : [];
    const eosIds = p.endId !== undefined ? (p.endId >= 0 ? [p.endId] : []) : this.#defaultEosIds;
    const priority = request.priority ?? 0;
    if (!Number.isFinite(priority)) throw new ValidationError(`GenerationRequest.priority: expected a finite number, got ${priority}`, "priority", priority);
    const group = new SequenceGroup(id, ids, { fanout, priority, arrival: this.#arrival++, isBeamSearch: p.useBeamSearch, wantsPromptLogits: promptLogitsField !== null });
    if (promptLogitsField && !this.#config.enableChunkedPrefill) {
      const [from, to] = group.promptRowRange(group.seqs[0], 0, len);
      const rows = to - from + group.rowsFor(group.seqs[0]);
      if (rows > this.#scheduler.maxNumRows) {
        throw new ValidationError(
          `SamplingParams.${promptLogitsField}: a prompt of ${len} tokens needs ${rows} logits rows in one step, above the engine's ${this.#scheduler.maxNumRows}, and chunked prefill is off`,
          promptLogitsField,
          len,
        );
      }
    }
    const beam: BeamRun | null = p.useBeamSearch
      ? {
        state: initialBeamState(),
        seqs: [group.seqs[0]],
        pending: new Map(),
        pendingRaw: new Map(),
        generationLogits: p.returnGenerationLogits ? new Map<string, Float32Array[]>([["", []]]) : null,
        options: {
          beamWidth: p.beamWidth,
          maxTokens: Math.min(p.maxTokens, maxSeqLen - len),
          lengthPenalty: p.lengthPenalty,
          earlyStopping: p.earlyStopping,
          eosIds: [...(p.ignoreEos ? [] : eosIds), ...p.stopTokenIds],
        },
        nextIndex: 1,
        hypotheses: null,
      }
      : null;
    return {
      id,
      request,
      params: p,
      promptIds: [...ids],
      group,
      streaming: request.streaming ?? false,
      eosIds,
      badWordIds,
      host: needsHostProcessing(p),
      wantLogprobs: p.logprobs !== undefined || p.bestOf > p.n,
      wantGenerationLogits: p.returnGenerationLogits,
      promptLogprobs: p.promptLogprobs !== undefined ? [null] : null,
      contextLogits: p.returnContextLogits ? [] : null,
      outs: new Map(),
      beam,
    };
  }

  #outFor(st: RequestState, seq: Sequence): SeqOutput {
    let o = st.outs.get(seq);
    if (!o) {
      const p = st.params;
      const detok = p.detokenize && this.#tokenizer
        ? this.#tokenizer.createDetokenizer({ promptIds: st.promptIds, skipSpecialTokens: p.skipSpecialTokens, spacesBetweenSpecialTokens: p.spacesBetweenSpecialTokens })
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

  #kick(): void {
    if (this.#looping || this.#closed) return;
    this.#looping = true;
    void this.#run();
  }

  async #run(): Promise<void> {
    try {
      // Start on a later turn, so requests submitted together share the first step.
      await yieldToEventLoop();
      while (!this.#closed && this.#scheduler.hasWork) {
        try {
          this.#step();
        } catch (e) {
          this.#failEverything(toError(e));
        }
        await yieldToEventLoop();
      }
    } finally {
      this.#looping = false;
    }
  }

  /** Last resort when a step broke outside its own handling: no request is left hanging. */
  #failEverything(e: Error): void {
    const err = new Error(`GenerationExecutor: worker loop failed: ${e.message}`, { cause: e });
    const failures: RequestFailure[] = [];
    for (const id of [...this.#states.keys()]) this.#failInto(failures, id, err);
    try {
      this.#sink.emit([], failures, null);
    } catch {
      // The sink itself is broken; the proxy side notices the worker's error event.
    }
  }

  /** One iteration; a failure fails the requests of that step only (or all, when scheduling itself broke). */
  #step(): void {
    const t0 = performance.now();
    const outputs: RequestOutput[] = [];
    const failures: RequestFailure[] = [];
    let plan: SchedulerOutput;
    try {
      plan = this.#scheduler.schedule();
    } catch (e) {
      const err = new Error(`GenerationExecutor: scheduling failed: ${toError(e).message}`);
      for (const id of [...this.#states.keys()]) this.#failInto(failures, id, err);
      this.#sink.emit(outputs, failures, null);
      return;
    }
    for (const f of plan.failed) this.#failInto(failures, f.group.requestId, new ValidationError(f.reason, "kvCacheConfig"));
    // A preempted beam search recomputes every beam, each giving its row again.
    for (const g of plan.preempted) {
      const b = this.#states.get(g.requestId)?.beam;
      b?.pending.clear();
      b?.pendingRaw.clear();
    }
    if (plan.chunks.length > 0) {
      try {
        this.#runPlan(plan, outputs, failures);
      } catch (e) {
        const err = toError(e);
        const reason = new Error(`GenerationExecutor: step ${this.#iter} failed: ${err.message}`, { cause: err });
        for (const id of new Set(plan.chunks.map((c) => c.seq.requestId))) this.#failInto(failures, id, reason);
      }
    }
    const kv = this.kv.stats;
    const stats: IterationStats = {
      iter: this.#iter++,
      numScheduled: plan.chunks.length,
      numPrefillTokens: plan.numPrefillTokens,
      numDecodeTokens: plan.numDecodeTokens,
      numPreempted: plan.preempted.length,
      numRunning: this.#scheduler.numRunning,
      numWaiting: this.#scheduler.numWaiting,
      stepMs: performance.now() - t0,
      kvBlocksUsed: kv.usedBlocks,
      kvBlocksFree: kv.freeBlocks,
      kvBlocksReused: kv.reusedBlocks,
      kvBlocksCached: kv.cachedBlocks,
    };
    this.#stats.push(stats);
    if (this.#stats.length > this.#config.statsHistory) this.#stats.splice(0, this.#stats.length - this.#config.statsHistory);
    this.#sink.emit(outputs, failures, stats);
  }

  #runPlan(plan: SchedulerOutput, outputs: RequestOutput[], failures: RequestFailure[]): void {
    const V = this.limits.vocabSize;
    const { inputs, rows, promptRows } = prepareStepInputs(plan.chunks, this.#maxBlocksPerSeq);
    const stateOf = (seq: Sequence): RequestState => this.#states.get(seq.requestId)!;
    // Prompt rows come after the sampling rows and are sampled greedily, their draws ignored.
    const sampling = prepareSamplingInputs(rows, (seq) => stateOf(seq).params, promptRows.length);
    const R = rows.length;
    const numRows = R + promptRows.length;
    const wantLogits = promptRows.length > 0 || rows.some((r) => {
      const st = stateOf(r.seq);
      return st.host || st.wantLogprobs || st.beam !== null || st.wantGenerationLogits || isPromptLastRow(r.seq);
    });
    const out = { sampledIds: new Int32Array(numRows), logits: wantLogits ? new Float32Array(numRows * V) : undefined };
    copyKvBlocks(this.#kvCache, plan.blockCopies);
    this.#session.run({ ...inputs, sampling }, out, this.#kvCache);
    this.#scheduler.markComputed(plan);
    // Prompt logits first: the sampling rows are processed in place below.
    if (out.logits) this.#takePromptRows(rows, promptRows, out.logits, failures);

    // Rows of one sequence group are adjacent; handle them group by group so one failure stays local.
    const touched: RequestState[] = [];
    for (let r = 0; r < R;) {
      const st = this.#states.get(rows[r].seq.requestId);
      let end = r + 1;
      while (end < R && rows[end].seq.group === rows[r].seq.group) end++;
      if (!st) { // failed above
        r = end;
        continue;
      }
      try {
        this.#applyRows(st, rows, r, end, out.sampledIds, out.logits, sampling);
        touched.push(st);
      } catch (e) {
        this.#failInto(failures, st.id, toError(e));
      }
      r = end;
    }
    const done = new Set(this.#scheduler.reap());
    for (const st of touched) {
      if (!this.#states.has(st.id)) continue;
      if (done.has(st.group)) {
        this.#states.delete(st.id);
        outputs.push(this.#snapshot(st, true));
      } else if (st.streaming && st.params.bestOf === st.params.n && !st.beam) {
        outputs.push(this.#snapshot(st, false));
      }
    }
  }

  /**
   * Keeps the raw logits of prompt positions: the prompt rows (logits row R + i for promptRows[i])
   * and, for the prompt's last position, the first sampling row of the prompt's sequence.
   */
  #takePromptRows(rows: readonly StepRow[], promptRows: readonly PromptRow[], logits: Float32Array, failures: RequestFailure[]): void {
    const V = this.limits.vocabSize;
    const take = (seq: Sequence, position: number, row: number): void => {
      const st = this.#states.get(seq.requestId);
      if (!st) return;
      try {
        this.#takePromptRow(st, position, logits.subarray(row * V, (row + 1) * V));
      } catch (e) {
        this.#failInto(failures, st.id, toError(e));
      }
    };
    promptRows.forEach((pr, i) => take(pr.seq, pr.position, rows.length + i));
    rows.forEach((r, i) => {
      if (isPromptLastRow(r.seq)) take(r.seq, r.seq.numPromptTokens - 1, i);
    });
  }

  #takePromptRow(st: RequestState, position: number, row: Float32Array): void {
    const g = st.group;
    if (position !== g.promptLogitsFrom) throw new Error(`prompt logits of position ${position} came back while ${g.promptLogitsFrom} was expected (a bug)`);
    if (st.contextLogits) st.contextLogits[position] = row.slice();
    const k = st.params.promptLogprobs;
    if (st.promptLogprobs && k !== undefined && position + 1 < g.numPromptTokens) {
      st.promptLogprobs[position + 1] = tokenLogprobs(row, st.promptIds[position + 1], k);
    }
    g.promptLogitsFrom = position + 1;
  }

  #applyRows(
    st: RequestState, rows: readonly StepRow[], from: number, to: number,
    sampledIds: Int32Array, logits: Float32Array | undefined, sampling: ReturnType<typeof prepareSamplingInputs>,
  ): void {
    if (st.beam) {
      this.#applyBeamRows(st, st.beam, rows, from, to, logits!);
      return;
    }
    const V = this.limits.vocabSize;
    const p = st.params;
    const tokens: number[] = [];
    const lps: (TokenLogprobs | null)[] = [];
    const raws: (Float32Array | null)[] = [];
    for (let r = from; r < to; r++) {
      let token = sampledIds[r];
      let lp: TokenLogprobs | null = null;
      raws.push(logits && st.wantGenerationLogits ? logits.slice(r * V, (r + 1) * V) : null);
      if (logits && (st.host || st.wantLogprobs)) {
        const row = logits.subarray(r * V, (r + 1) * V);
        if (st.host) {
          const seq = rows[r].seq;
          processLogits(row, p, { promptIds: st.promptIds, outputIds: seq.outputIds, requestId: st.id, seqIndex: rows[r].seqIndex }, st.eosIds, st.badWordIds);
          token = sampleRow(row, 0, V, sampling, r);
        }
        if (st.wantLogprobs) lp = tokenLogprobs(row, token, p.logprobs ?? 0);
      }
      tokens.push(token);
      lps.push(lp);
    }
    const first = rows[from].seq;
    const targets = first.group.isForked ? rows.slice(from, to).map((r) => r.seq) : this.#scheduler.fork(first.group);
    targets.forEach((seq, i) => this.#appendToken(st, seq, tokens[i], lps[i], raws[i]));
  }

  /**
   * Beam search: keeps each beam's processed row until every beam has one, then steps the search
   * and re-forms the beams — a beam continued once keeps its sequence, each further continuation
   * forks it (blocks shared, copied on write), a beam not continued is dropped (blocks freed).
   */
  #applyBeamRows(st: RequestState, b: BeamRun, rows: readonly StepRow[], from: number, to: number, logits: Float32Array): void {
    const V = this.limits.vocabSize;
    const p = st.params;
    for (let r = from; r < to; r++) {
      const seq = rows[r].seq;
      const row = logits.slice(r * V, (r + 1) * V);
      if (b.generationLogits) b.pendingRaw.set(seq, row.slice());
      if (st.host) {
        processLogits(row, p, { promptIds: st.promptIds, outputIds: seq.outputIds, requestId: st.id, seqIndex: b.seqs.indexOf(seq) }, st.eosIds, st.badWordIds);
      }
      b.pending.set(seq, row);
    }
    if (b.seqs.some((s) => !b.pending.has(s))) return;
    const next = beamSearchStep(b.state, b.seqs.map((s) => b.pending.get(s)!), b.options);
    if (b.generationLogits) b.generationLogits = nextBeamLogits(b.generationLogits, b.state, next, b.seqs.map((s) => b.pendingRaw.get(s)!));
    b.pending.clear();
    b.pendingRaw.clear();
    // Fork first (a child copies its parent's tokens before any is appended), then append.
    const continued = new Set<number>();
    const targets = next.beams.map((beam) => {
      if (!continued.has(beam.parent)) {
        continued.add(beam.parent);
        return b.seqs[beam.parent];
      }
      return this.#scheduler.forkSequence(b.seqs[beam.parent], b.nextIndex++);
    });
    b.seqs.forEach((s, i) => {
      if (!continued.has(i)) this.#scheduler.dropSequence(s);
    });
    next.beams.forEach((beam, j) => {
      targets[j].tokenIds.push(beam.tokens[beam.tokens.length - 1]);
      targets[j].cumulativeLogprob = beam.sumLogprob;
    });
    b.seqs = targets;
    b.state = next;
    if (next.done) b.hypotheses = finalizeBeamSearch(next, p.n); // every beam was dropped: the group is done
  }

  /** Outputs of a beam search: its best n hypotheses once done, else (aborted) its live beams. */
  #beamOutputs(st: RequestState, b: BeamRun): CompletionOutput[] {
    const p = st.params;
    const stopIds = new Set(p.stopTokenIds);
    const hyps: { tokens: readonly number[]; logprobs: readonly number[]; sumLogprob: number; finishReason: FinishReason }[] = b.hypotheses ??
      b.state.beams.map((beam) => ({ ...beam, finishReason: "abort" as const }));
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
    if (!p.detokenize || !this.#tokenizer) return "";
    const d = this.#tokenizer.createDetokenizer({ promptIds: st.promptIds, skipSpecialTokens: p.skipSpecialTokens, spacesBetweenSpecialTokens: p.spacesBetweenSpecialTokens });
    return d.push(ids) + d.flush();
  }

  #appendToken(st: RequestState, seq: Sequence, token: number, lp: TokenLogprobs | null, raw: Float32Array | null): void {
    const o = this.#outFor(st, seq);
    const n = seq.numOutputTokens + 1;
    seq.tokenIds.push(token);
    if (raw) o.generationLogits?.push(raw);
    if (lp) {
      seq.cumulativeLogprob += lp.logprob;
      o.logprobs?.push(lp);
    }
    // A stop id (end id or stopTokenIds) ends the sequence before its text is added (vLLM).
    const pre = o.checker.check(token, o.text, n);
    if (pre.stop && pre.reason === "stop" && typeof pre.stopReason !== "string" && !st.params.includeStopStrInOutput) {
      this.#finish(seq, o, "stop", pre.stopReason);
      return;
    }
    if (o.detok) o.text += o.detok.push([token]);
    let d = o.checker.check(token, o.text, n);
    if (!d.stop && seq.numTokens >= this.limits.maxSeqLen) d = { stop: true, reason: "length", stopReason: null };
    if (d.stop) {
      if (d.truncateTextTo !== undefined) o.text = o.text.slice(0, Math.max(d.truncateTextTo, o.sentText));
      this.#finish(seq, o, d.reason, d.stopReason, d.truncateTextTo === undefined);
    }
  }

  #finish(seq: Sequence, o: SeqOutput, reason: "stop" | "length", stopReason: number | string | null, flush = true): void {
    seq.finishReason = reason;
    seq.stopReason = stopReason;
    if (flush && o.detok) o.text += o.detok.flush();
  }

  #failInto(failures: RequestFailure[], requestId: number, error: Error): void {
    if (!this.#states.has(requestId)) return;
    this.#states.delete(requestId);
    this.#scheduler.remove(requestId);
    failures.push({ requestId, error });
  }

  /** The request's output now; advances the stream offsets (diffs are relative to the last snapshot). */
  #snapshot(st: RequestState, final: boolean): RequestOutput {
    const p = st.params;
    if (st.beam) return this.#requestOutput(st, this.#beamOutputs(st, st.beam), final);
    let seqs = [...st.group.seqs].sort((a, b) => a.seqIndex - b.seqIndex);
    if (final && p.bestOf > p.n) seqs = seqs.sort((a, b) => b.cumulativeLogprob - a.cumulativeLogprob).slice(0, p.n);
    const outputs: CompletionOutput[] = seqs.map((seq, i) => {
      const o = this.#outFor(st, seq);
      const done = seq.isFinished;
      const upTo = done ? o.text.length : Math.max(o.sentText, o.text.length - o.checker.holdBack(o.text));
      const ids = p.excludeInputFromOutput ? seq.outputIds : [...seq.tokenIds];
      const c: CompletionOutput = {
        index: final && p.bestOf > p.n ? i : seq.seqIndex,
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
      o.sentText = upTo;
      o.sentTokens = ids.length;
      return c;
    });
    return this.#requestOutput(st, outputs, final);
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

/** A sampling row of the prompt's sequence that still owes the prompt's last position its logits. */
function isPromptLastRow(seq: Sequence): boolean {
  return seq.numOutputTokens === 0 && seq.group.promptLogitsFrom === seq.numPromptTokens - 1;
}

/**
 * Raw logits rows behind each beam and hypothesis of `next`: a new one extends its parent beam
 * (its tokens minus the last) of `prev` by that parent's row of this step; a hypothesis kept from
 * before keeps its rows.
 */
function nextBeamLogits(
  rowsOf: ReadonlyMap<string, Float32Array[]>, prev: BeamSearchState, next: BeamSearchState, stepRows: readonly Float32Array[],
): Map<string, Float32Array[]> {
  const parentIndex = new Map(prev.beams.map((b, i) => [b.tokens.join(","), i]));
  const out = new Map<string, Float32Array[]>();
  for (const { tokens } of [...next.beams, ...next.finished]) {
    const key = tokens.join(",");
    if (out.has(key)) continue;
    const kept = rowsOf.get(key); // a hypothesis finished at an earlier step (live beams never end on an end id)
    if (kept) {
      out.set(key, kept);
      continue;
    }
    const parentKey = tokens.slice(0, -1).join(",");
    const i = parentIndex.get(parentKey);
    if (i === undefined) throw new Error(`beam search: no parent beam for hypothesis [${key}] (a bug)`);
    out.set(key, [...(rowsOf.get(parentKey) ?? []), stepRows[i]]);
  }
  return out;
}
