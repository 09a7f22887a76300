/**
 * The executor's worker loop: while requests are waiting or running, schedule a step, build it,
 * run one forward on the Session, turn the rows into tokens, and emit outputs — yielding a
 * macrotask between steps so the event loop stays responsive. The parts live beside it:
 * admission.ts (checks → RequestState), loop_setup.ts + kv_sizing.ts (limits, KV cache, scheduler),
 * step_builder.ts (plan → packed step),
 * step_results.ts (rows → tokens), beam_runner.ts, output_builder.ts (tokens → outputs).
 * It reports through an ExecutorSink, so the same loop serves in-process and in a Web Worker.
 */
import type { RequestOutput } from "./outputs.ts";
import type { LlmTokenizer } from "../tokenizer/tokenizer.ts";
import type { KvCache, Session } from "../runtime/session.ts";
import { AbortedError, InternalError, LlmrtError, RequestFailedError, UnsupportedError, ValidationError } from "../util/errors.ts";
import { type AdmissionContext, admitRequest } from "./admission.ts";
import { applyBeamRows, resetBeamRows } from "./beam_runner.ts";
import type { ExecutorConfig, ExecutorLimits, GenerationRequest, IterationStats } from "./config.ts";
import type { RequestFailure } from "./executor.ts";
import { toError } from "./executor.ts";
import type { KvCacheManager } from "./kv_cache_manager.ts";
import { copyKvBlocks } from "./kv_copy.ts";
import { setUpLoop } from "./loop_setup.ts";
import { OutputBuilder } from "./output_builder.ts";
import { GuidedRuntime, loadXGrammar, needsGuidedLoad, notStartedAbortOutput } from "./guided/request.ts";
import { guidedStepMasks } from "./guided/step_masks.ts";
import type { RequestState } from "./request_state.ts";
import type { Scheduler, SchedulerOutput } from "./scheduler.ts";
import { prepareSamplingInputs, prepareStepInputs, type StepRow } from "./step_builder.ts";
import { endsByLength, type InFlightStep, isOverlapStep, PLACEHOLDER_TOKEN } from "./overlap.ts";
import type { SamplingInputs } from "../ir/sampling.ts";
import type { ForwardedTokens } from "../ir/step_io.ts";
import type { Sequence } from "./sequence.ts";
import { acceptTokens, chooseTokens, isPromptLastRow, takePromptRows } from "./step_results.ts";
import type { Engine } from "../builder/engine.ts";
import { DraftModelRunner } from "./speculative/draft_runner.ts";
import { Speculator } from "./speculative/speculator.ts";
import { type LoraAdapter, LoraSlots } from "../models/lora.ts";

/** Where the loop reports: once per step (and once per out-of-step abort or failure). */
export interface ExecutorSink {
  emit(outputs: RequestOutput[], failures: RequestFailure[], stats: IterationStats | null): void;
}

/** What an ExecutorLoop needs beyond its config. */
export interface ExecutorLoopOptions {
  /** The draft model's engine for `speculativeConfig.decodingType: "DraftTarget"` (owned by the caller). */
  readonly draftEngine?: Engine | null;
}

/**
 * Deno runs setImmediate callbacks ahead of network I/O (its runtime polls sockets only every few
 * dozen tasks), so a loop that only yields with setImmediate starves a server on the same thread
 * (a local request waited ~250 ms behind a loop of 2 ms steps). There one turn in IO_TURN_MS is a
 * timer, which lets the runtime poll I/O; a timer turn idles ~2 ms, so this costs a busy loop ~4%.
 * Bun polls I/O every turn. (An executor in a worker, executorMode "proxy", leaves the server's
 * thread free either way.)
 */
const IO_TURN_MS = 50;
const starvesIo = "Deno" in globalThis;
let lastIoTurn = 0;

/** A macrotask turn without timer clamping (setImmediate exists in Bun and Deno); under Deno a timer turn now and then. */
function yieldToEventLoop(): Promise<void> {
  const si = (globalThis as { setImmediate?: (cb: () => void) => unknown }).setImmediate;
  if (si && starvesIo) {
    const now = performance.now();
    if (now - lastIoTurn >= IO_TURN_MS) {
      lastIoTurn = now;
      return new Promise<void>((resolve) => setTimeout(resolve, 0));
    }
  }
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
  readonly #sink: ExecutorSink;
  readonly #config: ExecutorConfig;
  readonly #admission: AdmissionContext;
  readonly #outputs: OutputBuilder;
  readonly #maxBlocksPerSeq: number;
  readonly #states = new Map<number, RequestState>();
  /** Requests waiting for the grammar engine to load (guidedDecoding before its first use in this process). */
  readonly #awaitingGrammar = new Map<number, GenerationRequest>();
  readonly #stats: IterationStats[] = [];
  /** Speculative decoding (config.speculativeConfig), else null. */
  readonly #spec: Speculator | null = null;
  /** LoRA adapters resident (config.lora), else null; and the slot each request in flight holds. */
  readonly #lora: LoraSlots | null = null;
  readonly #loraSlotOf = new Map<number, number>();
  /** Requests (in #states, not yet scheduled) waiting for a LoRA slot, first come first served, with their loaded adapter. */
  readonly #loraWaiting = new Map<number, LoraAdapter>();
  #iter = 0;
  /** ExecutorConfig.overlapSteps (off with speculative decoding or LoRA), and the decode step enqueued ahead. */
  readonly #overlap: boolean;
  #inflight: InFlightStep | null = null;
  /** Host ms the last step spent computing guided masks. */
  #maskMs = 0;
  /** Stats: the forward pass's share of the current step, and when the previous step ended (ms). */
  #forwardMs = 0;
  #lastStepEnd = 0;
  #arrival = 0;
  #looping = false;
  #closed = false;

  constructor(session: Session, tokenizer: LlmTokenizer | null, config: ExecutorConfig, sink: ExecutorSink, options: ExecutorLoopOptions = {}) {
    this.#session = session;
    this.#sink = sink;
    this.#config = config;
    const engine = session.engine;
    const build = engine.config.build;
    const plan = engine.plan;
    const maxSeqLen = session.maxSeqLen;
    const setup = setUpLoop(session, config); // limits checked, KV cache sized, scheduler
    const { maxBatchSize, maxNumTokens } = setup;
    this.limits = setup.limits;
    this.#kvCache = setup.kvCache;
    this.kv = setup.kv;
    this.#scheduler = setup.scheduler;
    this.#maxBlocksPerSeq = setup.maxBlocksPerSeq;
    const eos = [...(tokenizer?.stopTokenIds ?? []), ...engine.config.model.eosTokenIds];
    this.#admission = {
      limits: this.limits,
      tokenizer,
      enableChunkedPrefill: config.enableChunkedPrefill,
      gatherContextLogits: build.gatherContextLogits,
      maxNumRows: this.#scheduler.maxNumRows,
      defaultEosIds: [...new Set(eos.filter((id) => id >= 0))],
      // Speculative steps verify several rows of a sequence at once: their guided rows stay on the host path.
      guided: new GuidedRuntime(tokenizer, plan.attributes.vocabSize, !config.speculativeConfig, config.guidedAccept !== "immediate"),
    };
    this.#outputs = new OutputBuilder(tokenizer, maxSeqLen, plan.attributes.vocabSize);
    this.#overlap = (config.overlapSteps ?? session.impl.launch !== undefined) && !config.speculativeConfig && !config.lora;
    if (config.lora) {
      // The adapters' A / B are not sharded: on a tensor-parallel rank they would add to the wrong columns.
      if (((session.impl as { worldSize?: number }).worldSize ?? 1) > 1) {
        throw new UnsupportedError(
          `ExecutorConfig.lora: LoRA adapters run on one CPU or GPU rank (not on a tensor-parallel ${session.backend} session)`,
          "enableLora",
          true,
        );
      }
      this.#lora = new LoraSlots(engine.config.model, config.lora);
    }
    const sc = config.speculativeConfig;
    if (sc) {
      let draft: DraftModelRunner | null = null;
      if (sc.decodingType === "DraftTarget") {
        if (!options.draftEngine) {
          throw new ValidationError(
            "ExecutorConfig.speculativeConfig: DraftTarget needs the draft model's engine (options.draftEngine)",
            "speculativeConfig.speculativeModel",
            sc.speculativeModel,
          );
        }
        const dv = options.draftEngine.plan.attributes.vocabSize;
        if (dv !== this.limits.vocabSize) {
          throw new ValidationError(
            `speculativeConfig.speculativeModel: the draft model's vocabulary (${dv}) differs from the target's (${this.limits.vocabSize}); it must share the tokenizer`,
            "speculativeConfig.speculativeModel",
            sc.speculativeModel,
          );
        }
        draft = new DraftModelRunner(options.draftEngine, { backend: session.backend, maxBatchSize });
      }
      // Verify steps stay within the tokens the backend rounds like decode steps (greedy output = plain greedy).
      const maxVerifyTokens = session.impl.maxVerifyTokens;
      this.#spec = new Speculator(sc, draft, { maxNumTokens, maxNumRows: this.#scheduler.maxNumRows, maxSeqLen, maxVerifyTokens });
    }
  }

  /** Draft-model KV blocks held now (DraftTarget speculative decoding), else 0. */
  get numDraftKvBlocksUsed(): number {
    return this.#spec?.draft?.numUsedBlocks ?? 0;
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
    if (needsGuidedLoad(request?.samplingParams) && !this.#closed) { // the grammar engine loads once per process, before the first guided request
      this.#awaitingGrammar.set(requestId, request);
      loadXGrammar().then(() => {
        if (this.#awaitingGrammar.delete(requestId)) this.submit(requestId, request);
      }, (e) => {
        if (this.#awaitingGrammar.delete(requestId)) this.#sink.emit([], [{ requestId, error: toError(e) }], null);
      });
      return;
    }
    let st: RequestState;
    try {
      if (this.#closed) throw new AbortedError("GenerationExecutor: submit() after shutdown()");
      if (this.#states.has(requestId)) throw new ValidationError(`GenerationExecutor: request id ${requestId} is already in flight`, "requestId", requestId);
      st = admitRequest(this.#admission, requestId, request, this.#arrival++);
      if (request.loraRequest !== undefined) {
        if (!this.#lora) {
          throw new ValidationError(
            "GenerationRequest.loraRequest: LoRA is not enabled (LLM.create({ enableLora: true }))",
            "loraRequest",
            request.loraRequest?.name,
          );
        }
        const adapter = this.#lora.prepare(request.loraRequest, this.#loraWaiting.values());
        st.group.cacheSalt = `lora:${request.loraRequest.name}`;
        if (!this.#lora.hasRoomFor(adapter.name)) {
          // Every slot holds another adapter in use: wait until one is released.
          this.#states.set(requestId, st);
          this.#loraWaiting.set(requestId, adapter);
          return;
        }
        this.#loraSlotOf.set(requestId, this.#lora.acquire(request.loraRequest, adapter));
      }
    } catch (e) {
      this.#sink.emit([], [{ requestId, error: toError(e), rejected: true }], null);
      return;
    }
    this.#states.set(requestId, st);
    this.#scheduler.add(st.group);
    this.#kick();
  }

  /** Schedules the requests waiting for a LoRA slot whose adapter now has room (in arrival order). */
  #admitLoraWaiting(): void {
    for (const [id, adapter] of [...this.#loraWaiting]) {
      const st = this.#states.get(id);
      if (!st) {
        this.#loraWaiting.delete(id);
        continue;
      }
      if (!this.#lora!.hasRoomFor(adapter.name)) continue;
      this.#loraWaiting.delete(id);
      try {
        this.#loraSlotOf.set(id, this.#lora!.acquire(st.request.loraRequest!, adapter));
      } catch (e) {
        const failures: RequestFailure[] = [];
        this.#failInto(failures, id, toError(e));
        this.#sink.emit([], failures, null);
        continue;
      }
      this.#scheduler.add(st.group);
      this.#kick();
    }
  }

  /** Aborts a request at once (blocks freed, final output with finishReason "abort"); false when not in flight. */
  abort(requestId: number): boolean {
    const waiting = this.#awaitingGrammar.get(requestId);
    if (waiting) {
      this.#awaitingGrammar.delete(requestId);
      this.#sink.emit([notStartedAbortOutput(requestId, waiting)], [], null);
      return true;
    }
    const st = this.#states.get(requestId);
    if (!st) return false;
    this.#loraWaiting.delete(requestId);
    this.#scheduler.remove(requestId);
    for (const s of st.group.seqs) {
      if (!s.isFinished) {
        s.finishReason = "abort";
        s.stopReason = null;
      }
    }
    if (this.#inflight) this.#dropPlaceholders(st.group.seqs, this.#inflight.placeholders);
    this.#states.delete(requestId);
    this.#releaseLora(requestId);
    this.#spec?.release(st.group);
    this.#sink.emit([this.#outputs.snapshot(st, true)], [], null);
    return true;
  }

  /** Fails every request in flight with `reason` and stops. Idempotent. */
  shutdown(reason = "GenerationExecutor: shut down while the request was in flight"): void {
    if (this.#closed) return;
    this.#closed = true;
    const failures = [...this.#states.keys(), ...this.#awaitingGrammar.keys()].map((requestId) => ({ requestId, error: new AbortedError(reason) }));
    this.#awaitingGrammar.clear();
    this.#loraWaiting.clear();
    for (const id of this.#states.keys()) this.#scheduler.remove(id);
    for (const st of this.#states.values()) st.guided?.dispose();
    this.#states.clear();
    this.#admission.guided.dispose();
    this.#spec?.dispose();
    if (failures.length > 0) this.#sink.emit([], failures, null);
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
    const err = new InternalError(`GenerationExecutor: worker loop failed: ${e.message}`);
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
    const idleMs = this.#lastStepEnd > 0 ? t0 - this.#lastStepEnd : 0;
    this.#forwardMs = 0;
    const outputs: RequestOutput[] = [];
    const failures: RequestFailure[] = [];
    // Overlapped decode: the step enqueued by the previous iteration, whose ids are taken below.
    const prev = this.#inflight;
    this.#inflight = null;
    let plan: SchedulerOutput;
    try {
      // Speculative decoding: draft tokens join the decoding sequences before they are scheduled.
      this.#spec?.propose(this.#scheduler.groups, (id) => this.#states.get(id), this.kv);
      plan = this.#scheduler.schedule();
    } catch (e) {
      if (prev) this.#collect(prev, outputs, failures);
      this.#spec?.endStep(this.kv);
      const err = new InternalError(`GenerationExecutor: scheduling failed: ${toError(e).message}`);
      for (const id of [...this.#states.keys()]) this.#failInto(failures, id, err);
      this.#sink.emit(outputs, failures, null);
      return;
    }
    for (const f of plan.failed) this.#failInto(failures, f.group.requestId, new ValidationError(f.reason, "kvCacheConfig"));
    for (const g of plan.preempted) {
      const b = this.#states.get(g.requestId)?.beam;
      if (b) resetBeamRows(b);
    }
    if (plan.chunks.length > 0) {
      try {
        if (this.#overlap && isOverlapStep(plan, (seq) => this.#states.get(seq.requestId))) this.#runAhead(plan, prev, outputs, failures);
        else {
          if (prev) {
            // The step ahead ends here: its tokens first, then this step without the sequences they ended.
            this.#collect(prev, outputs, failures);
            plan = { ...plan, chunks: plan.chunks.filter((c) => !c.seq.isFinished && this.#states.has(c.seq.requestId)) };
          }
          if (plan.chunks.length > 0) this.#runPlan(plan, outputs, failures);
        }
      } catch (e) {
        const err = toError(e);
        const reason = err instanceof LlmrtError
          ? err
          : new RequestFailedError(`GenerationExecutor: step ${this.#iter} failed: ${err.message}`, { cause: err });
        for (const id of new Set(plan.chunks.map((c) => c.seq.requestId))) this.#failInto(failures, id, reason);
      }
    } else if (prev) {
      this.#collect(prev, outputs, failures);
    }
    // Drafts not verified (not scheduled, or their request failed) are rolled back.
    const spec = this.#spec?.endStep(this.kv);
    this.#spec?.collect(this.#scheduler.groups);
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
      forwardMs: this.#forwardMs,
      idleMs,
      kvBlocksUsed: kv.usedBlocks,
      kvBlocksFree: kv.freeBlocks,
      kvBlocksReused: kv.reusedBlocks,
      kvBlocksCached: kv.cachedBlocks,
      numDraftTokens: spec?.numDraftTokens ?? 0,
      numAcceptedDraftTokens: spec?.numAcceptedDraftTokens ?? 0,
      guidedMaskMs: this.#maskMs,
      guidedHostMs: this.#admission.guided.takeHostMs(),
    };
    this.#maskMs = 0;
    this.#stats.push(stats);
    if (this.#stats.length > this.#config.statsHistory) this.#stats.splice(0, this.#stats.length - this.#config.statsHistory);
    this.#sink.emit(outputs, failures, stats);
    this.#lastStepEnd = performance.now();
  }

  #runPlan(plan: SchedulerOutput, outputs: RequestOutput[], failures: RequestFailure[]): void {
    const V = this.limits.vocabSize;
    const prepared = prepareStepInputs(plan.chunks, this.#maxBlocksPerSeq, this.#scheduler.maxNumRows);
    const { rows, promptRows } = prepared;
    // LoRA: each packed sequence's adapter slot (-1: the base model).
    const adapterIds = this.#lora && plan.chunks.some((c) => this.#loraSlotOf.has(c.seq.requestId))
      ? Int32Array.from(prepared.packedSeqs, (s) => this.#loraSlotOf.get(s.requestId) ?? -1)
      : undefined;
    const inputs = adapterIds ? { ...prepared.inputs, adapterIds, loraSlots: this.#lora!.table } : prepared.inputs;
    const stateOf = (seq: StepRow["seq"]): RequestState => this.#states.get(seq.requestId)!;
    // Prompt rows come after the sampling rows and are sampled greedily, their draws ignored.
    const R = rows.length;
    const numRows = R + promptRows.length;
    const gm = guidedStepMasks(rows, (seq) => this.#states.get(seq.requestId), V, numRows); // guided rows masked by the sampler
    const sampling = { ...prepareSamplingInputs(rows, (seq) => stateOf(seq).params, promptRows.length), ...(gm ? { tokenMasks: gm.masks } : {}) };
    const wantLogits = promptRows.length > 0 || rows.some((r) => {
      const st = stateOf(r.seq);
      return st.host || st.wantLogprobs || st.beam !== null || st.wantGenerationLogits || isPromptLastRow(r) || this.#spec?.needsLogits(r.seq) === true;
    });
    const out = { sampledIds: new Int32Array(numRows), logits: wantLogits ? new Float32Array(numRows * V) : undefined };
    copyKvBlocks(this.#kvCache, plan.blockCopies);
    const tf = performance.now();
    this.#session.run({ ...inputs, sampling }, out, this.#kvCache);
    this.#forwardMs = performance.now() - tf;
    this.#scheduler.markComputed(plan);
    this.#maskMs = gm?.fillMs ?? 0;
    for (const [id, e] of gm?.failed ?? []) this.#failInto(failures, id, e);
    // Deferred acceptance: a sequence whose previous token completed the grammar ends now; this step's token is dropped.
    for (const { st, seq } of gm?.terminated ?? []) if (this.#states.get(st.id) === st) this.#outputs.endByGrammar(st, seq);
    // Prompt logits first: the sampling rows are processed in place below.
    if (out.logits) takePromptRows(rows, promptRows, out.logits, V, (id) => this.#states.get(id), (st, e) => this.#failInto(failures, st.id, toError(e)));

    this.#takeRows(rows, out.sampledIds, out.logits, sampling, outputs, failures);
  }

  /**
   * Enqueues a decode step without waiting for it (ExecutorConfig.overlapSteps): its token ids that are
   * the step ahead's samples come from the device; then the step ahead's ids are taken (while this step
   * runs), this step is marked computed and its sequences get a placeholder for the token it samples.
   */
  #runAhead(plan: SchedulerOutput, prev: InFlightStep | null, outputs: RequestOutput[], failures: RequestFailure[]): void {
    const prepared = prepareStepInputs(plan.chunks, this.#maxBlocksPerSeq, this.#scheduler.maxNumRows);
    const rows = prepared.rows;
    const sampling = prepareSamplingInputs(rows, (seq) => this.#states.get(seq.requestId)!.params);
    const rowOf = new Map<Sequence, number>();
    rows.forEach((r, i) => rowOf.set(r.seq, i));
    let forwardedTokens: ForwardedTokens | undefined;
    if (prev) {
      const fr = new Int32Array(rows.length).fill(-1); // one token per sequence, in row order
      rows.forEach((r, i) => {
        if (prev.placeholders.has(r.seq)) fr[i] = prev.rowOf.get(r.seq)!;
      });
      forwardedTokens = { from: prev.pending, rows: fr };
    }
    const ids = new Int32Array(rows.length);
    const tf = performance.now();
    const pending = this.#session.launch({ ...prepared.inputs, sampling, ...(forwardedTokens ? { forwardedTokens } : {}) }, { sampledIds: ids }, this.#kvCache);
    this.#forwardMs += performance.now() - tf;
    if (prev) this.#collect(prev, outputs, failures);
    const live = plan.chunks.filter((c) => !c.seq.isFinished && this.#states.has(c.seq.requestId));
    this.#scheduler.markComputed({ ...plan, chunks: live });
    const placeholders = new Set<Sequence>();
    for (const c of live) {
      if (endsByLength(this.#states.get(c.seq.requestId)!, c.seq, this.#outputs.maxSeqLen)) continue;
      c.seq.tokenIds.push(PLACEHOLDER_TOKEN);
      placeholders.add(c.seq);
    }
    this.#inflight = { rows, sampling, ids, pending, rowOf, placeholders };
  }

  /** Waits for the step enqueued ahead, drops its placeholders and takes its sampled ids as tokens. */
  #collect(step: InFlightStep, outputs: RequestOutput[], failures: RequestFailure[]): void {
    const tw = performance.now();
    step.pending.wait();
    this.#forwardMs += performance.now() - tw;
    this.#dropPlaceholders([...step.placeholders], step.placeholders);
    this.#takeRows(step.rows, step.ids, undefined, step.sampling, outputs, failures);
  }

  /** Removes the placeholder token of each of `seqs` in `held` (a step in flight's placeholders). */
  #dropPlaceholders(seqs: readonly Sequence[], held: Set<Sequence>): void {
    for (const seq of seqs) {
      if (!held.delete(seq)) continue;
      if (seq.tokenIds[seq.tokenIds.length - 1] !== PLACEHOLDER_TOKEN) {
        throw new InternalError(`executor: sequence of request ${seq.requestId} lost its placeholder (a bug)`);
      }
      seq.tokenIds.pop();
    }
  }

  /** The sampling rows' tokens handed to their sequences, finished groups reaped, outputs built. */
  #takeRows(
    rows: readonly StepRow[],
    sampledIds: Int32Array,
    logits: Float32Array | undefined,
    sampling: SamplingInputs,
    outputs: RequestOutput[],
    failures: RequestFailure[],
  ): void {
    const V = this.limits.vocabSize, R = rows.length;
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
        if (st.beam) applyBeamRows(this.#scheduler, st, st.beam, rows, r, end, logits!, V);
        else if (this.#spec?.isVerifying(rows[r].seq)) this.#spec.verify(st, rows, r, end, sampledIds, logits, sampling, V, this.kv, this.#outputs);
        else acceptTokens(this.#scheduler, this.#outputs, st, rows, r, end, chooseTokens(st, rows, r, end, sampledIds, logits, sampling, V));
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
        this.#releaseLora(st.id);
        outputs.push(this.#outputs.snapshot(st, true));
      } else if (st.streaming && st.params.bestOf === st.params.n && !st.beam) {
        outputs.push(this.#outputs.snapshot(st, false));
      }
    }
  }

  /** The request's LoRA slot is free for another adapter once no request uses it. */
  #releaseLora(requestId: number): void {
    const slot = this.#loraSlotOf.get(requestId);
    if (slot === undefined) return;
    this.#loraSlotOf.delete(requestId);
    this.#lora?.release(slot);
    if (this.#loraWaiting.size > 0) this.#admitLoraWaiting();
  }

  #failInto(failures: RequestFailure[], requestId: number, error: Error): void {
    if (!this.#states.has(requestId)) return;
    this.#releaseLora(requestId);
    this.#states.get(requestId)!.guided?.dispose();
    this.#states.delete(requestId);
    this.#scheduler.remove(requestId);
    failures.push({ requestId, error });
  }
}
