import * as fs from "node:fs";
import * as path from "node:path";
import process from "node:process";
import { z } from "zod";
import { Engine } from "../builder/engine.ts";
import { type GenerationRequest, type IterationStats } from "../executor/config.ts";
import { createExecutor } from "../executor/create.ts";
import type { GenerationExecutor } from "../executor/executor.ts";
import { resolveBackend } from "../runtime/backends.ts";
import { validatePromptIds } from "../runtime/prompt.ts";
import { LlmrtError, ValidationError } from "../util/errors.ts";
import { parseWith } from "../util/validate.ts";
import { checkDraftTokenizerDir, checkTokenizerFitsModel } from "./vocab_check.ts";
import type { RequestOutput as RequestOutputData } from "../executor/outputs.ts";
import { formatLoadStats, type LoadStats, LoadTimer, ProgressBar } from "./progress.ts";
import { checkPromptBytes, encodeInSlices, SLICE_CHARS } from "./prompt_slices.ts";
import { RequestOutput } from "./request_output.ts";
import { SamplingParams, type SamplingParamsInput } from "../executor/sampling_params.ts";
import type { GuidedJsonParams, ParsedRequestOutput } from "../executor/guided/types.ts";
import { LlmTokenizer } from "../tokenizer/tokenizer.ts";
import {
  type GenerateAsyncOptions,
  GenerateAsyncOptionsSchema,
  type GenerateOptions,
  GenerateOptionsSchema,
  type LlmOptions,
  LlmOptionsSchema,
  paramsAt,
  type Prompt,
  promptInput,
  promptList,
} from "./llm_options.ts";
import { givenBuildOptions, openOrBuild, openOrBuildAsync } from "./open_engine.ts";
import { discardCachedEngine } from "./engine_cache.ts";
import { checkInBackground, releaseHostWeights, settleWrites } from "./load_steps.ts";
import { applyGenerationDefaults, type GenerationDefaults, loadGenerationDefaults } from "./generation_config.ts";

export * from "./llm_options.ts";
import type { LoraRequest } from "../models/lora.ts";

/** The request with its LoRA adapter, when one is given. */
const withLora = <R extends GenerationRequest | null>(r: R, lora: LoraRequest | undefined): R => (r && lora ? { ...r, loraRequest: lora } : r);

type ParamsArg = SamplingParams | SamplingParamsInput;

/**
 * The high-level entry point (TensorRT-LLM's `LLM`): loads or builds an engine, tokenizes, and
 * generates through a continuous-batching executor (in this thread, or in a Web Worker with
 * `executorMode: "proxy"`).
 *
 * @example
 * ```ts
 * await using llm = await LLM.create({ model: "../shared/models/stories260k", backend: "cpu" });
 * const out = await llm.generate("Once upon a time", { maxTokens: 32, temperature: 0 });
 * console.log(out.outputs[0].text);
 * for await (const o of llm.generateAsync("Once upon a time", { maxTokens: 32 }, { streaming: true })) {
 *   process.stdout.write(o.outputs[0].textDiff ?? "");
 * }
 * ```
 */
export class LLM {
  #closed = false;
  #loadStats: LoadStats = { source: "engine", totalMs: 0, phases: [] };
  #loadTimer: LoadTimer | null = null;
  /** Cache entries still being written (background); shutdown() waits for them. */
  #pendingWrites: Promise<unknown> = Promise.resolve();
  /** The speculative draft model's engine (DraftTarget), released with the LLM. */
  #draftEngine: Engine | null = null;
  #generationDefaults: GenerationDefaults = {};

  private constructor(
    readonly engine: Engine,
    readonly executor: GenerationExecutor,
    readonly tokenizer: LlmTokenizer | null,
    readonly backend: "cpu" | "cuda",
    readonly engineDir: string | null,
    readonly executorMode: "inprocess" | "proxy",
    /** Longest text prompt accepted, in UTF-8 bytes (LlmOptions.maxPromptBytes). */
    readonly maxPromptBytes: number,
  ) {}

  /** Opens `options.model` (HF checkpoint or engine directory) and starts the executor. */
  static async create(options: LlmOptions): Promise<LLM> {
    await Promise.resolve();
    const o = givenBuildOptions(parseWith(LlmOptionsSchema, options, "LLM.create options"), options.buildConfig);
    if (!fs.existsSync(path.join(o.model, "config.json"))) {
      throw new ValidationError(
        `LLM.create options.model: ${JSON.stringify(o.model)} is not a model or engine directory (no config.json there)`,
        "model",
        o.model,
      );
    }
    const backend = resolveBackend(o.backend);
    const generationDefaults = loadGenerationDefaults(o.model, o.generationConfig, options.generationConfig !== undefined);
    const timer = new LoadTimer();
    // In-process, one rank: a cached engine's blobs are checked on workers beside the load (not in a
    // pass of their own first), and a built engine is written to the cache while the session uploads it.
    const inproc = o.executorMode === "inprocess" && (o.tensorParallelSize ?? 1) === 1;
    const openOpts = { timer, verify: inproc ? "on-read" as const : "full" as const, writeInBackground: inproc };
    let opened = await openOrBuildAsync(o, backend, openOpts);
    let { engine, engineDir } = opened;
    let source: LoadStats["source"] = opened.source;
    let draftEngine: Engine | null = null, draftEngineDir: string | null = null;
    const writes: { dir: string | null; written: Promise<void> }[] = [{ dir: engineDir, written: opened.written }];
    try {
      const sc = o.speculativeConfig;
      if (sc?.decodingType === "DraftTarget" && !fs.existsSync(path.join(sc.speculativeModel, "config.json"))) {
        throw new ValidationError(
          `LLM.create options.speculativeConfig.speculativeModel: ${
            JSON.stringify(sc.speculativeModel)
          } is not a model or engine directory (no config.json there)`,
          "speculativeConfig.speculativeModel",
          sc.speculativeModel,
        );
      }
      if (sc?.decodingType === "DraftTarget") {
        const draft = openOrBuild(
          {
            ...o,
            model: sc.speculativeModel,
            // "auto": the target's dtype (a float16 draft checkpoint would not run beside a float32 or bfloat16 target on CUDA).
            dtype: o.dtype === "auto" ? engine.config.dtype as typeof o.dtype : o.dtype,
            gatherContextLogits: false,
            speculativeConfig: undefined,
          },
          backend,
          { writeInBackground: inproc },
        );
        ({ engine: draftEngine, engineDir: draftEngineDir } = draft);
        writes.push({ dir: draftEngineDir, written: draft.written });
      }
      const tokDir = o.tokenizer ?? o.model;
      const tokenizer = o.skipTokenizerInit ? null : LlmTokenizer.fromDir(tokDir);
      if (tokenizer) checkTokenizerFitsModel(tokenizer, engine.config.model.vocabSize, tokDir);
      if (tokenizer && sc?.decodingType === "DraftTarget") checkDraftTokenizerDir(sc.speculativeModel, tokenizer, tokDir);
      // The proxy's worker opens the engine directories: they must be published first.
      if (o.executorMode === "proxy") await settleWrites(writes);
      const start = (): Promise<GenerationExecutor> =>
        createExecutor({
          engine,
          engineDir,
          tokenizer,
          tokenizerDir: tokDir,
          backend,
          mode: o.executorMode,
          config: {
            maxBatchSize: o.maxBatchSize,
            maxNumTokens: o.maxNumTokens,
            enableChunkedPrefill: o.enableChunkedPrefill,
            admissionDelaySteps: o.admissionDelaySteps,
            decodeDeferSteps: o.decodeDeferSteps,
            guidedAccept: o.guidedAccept,
            overlapSteps: o.overlapSteps,
            kvCacheConfig: o.kvCacheConfig,
            speculativeConfig: o.speculativeConfig,
            lora: o.enableLora ? { maxLoras: o.maxLoras, maxLoraRank: o.maxLoraRank } : undefined,
          },
          draftEngine,
          draftEngineDir,
          tp: o.tpMaster !== undefined ? { tpMaster: o.tpMaster, rendezvousTimeoutMs: o.tpRendezvousTimeoutMs } : undefined,
        });
      let t0 = performance.now();
      // A cache hit: its blobs' CRC-32s checked on workers while the session loads them unchecked.
      const checking = inproc && opened.source === "cache" ? checkInBackground(engine, timer) : null;
      let executor: GenerationExecutor | null = null;
      let sessionMs = 0;
      try {
        executor = await start();
        sessionMs = performance.now() - t0;
        await checking; // (the wait beyond the session, if any, counts in the total only)
      } catch (e) {
        if (!(opened.source === "cache" && e instanceof LlmrtError && e.kind === "format")) {
          await executor?.shutdown().catch(() => {}); // started, then the check failed otherwise
          throw e;
        }
        // A cached engine whose weights fail their checksum: discard what was loaded and the entry, rebuild, start again.
        timer.add("session (corrupt cached engine)", performance.now() - t0);
        await executor?.shutdown();
        engine.dispose();
        discardCachedEngine(engineDir!);
        opened = await openOrBuildAsync(o, backend, openOpts);
        ({ engine, engineDir } = opened);
        source = "rebuilt";
        writes[0] = { dir: engineDir, written: opened.written };
        t0 = performance.now();
        executor = await start();
        sessionMs = performance.now() - t0;
      }
      const limits = executor.limits;
      timer.add("session", sessionMs);
      if (limits.weightUpload) timer.add(limits.weightUpload.staged ? "upload (pinned)" : "upload", limits.weightUpload.ms, limits.weightUpload.bytes);
      if (limits.kernelCompile && limits.kernelCompile.units > limits.kernelCompile.cacheHits) {
        const k = limits.kernelCompile;
        timer.add(`kernels (${k.units - k.cacheHits} of ${k.units} units compiled on ${k.workers} workers, beside the upload)`, k.ms);
      }
      // A cache entry still being written is published in the background; shutdown() waits for it. Then a
      // built engine's weights, on the device now (or loaded by the proxy's worker), leave the heap.
      const release = !o.keepHostWeights && o.tpMaster === undefined && (o.executorMode === "proxy" || (inproc && backend === "cuda"));
      const nothingWritten = writes.every((w) => w.dir === null);
      if (release && nothingWritten) releaseHostWeights([engine, draftEngine], writes, []); // now: no cache entry to wait for
      const pending = settleWrites(writes).then((failed) => release && !nothingWritten && releaseHostWeights([engine, draftEngine], writes, failed));
      const loadStats = timer.stats(source);
      if (process.stderr.isTTY) {
        process.stderr.write(`llmrt: loaded in ${(loadStats.totalMs / 1000).toFixed(2)} s (${source}): ${formatLoadStats(loadStats)}\n`);
      }
      if (process.stderr.isTTY) process.stderr.write(`llmrt: ${limits.kvCacheSizing}\n`);
      const maxPromptBytes = o.maxPromptBytes ?? Math.max(64 * 1024, 8 * limits.maxInputLen);
      const llm = new LLM(engine, executor, tokenizer, backend, engineDir, o.executorMode, maxPromptBytes);
      llm.#draftEngine = draftEngine;
      llm.#generationDefaults = generationDefaults;
      llm.#loadTimer = timer;
      llm.#loadStats = loadStats;
      llm.#pendingWrites = pending;
      return llm;
    } catch (e) {
      await Promise.allSettled(writes.map((w) => w.written)); // the engines' bytes are being written: dispose after
      draftEngine?.dispose();
      engine.dispose();
      throw e;
    }
  }

  /**
   * How `create` got the engine and where the time went: the phases in order (cache key, read,
   * build, cache write, open, session with its weight upload), each with milliseconds and, where
   * weights moved, bytes. Also printed on a TTY. `bench/load.ts` reports it. A freshly built
   * engine is written to the cache in the background: its "cache write (background)" phase joins
   * the list when the write ends (`shutdown()` waits for it; `engineDir` exists from then on).
   *
   * @example
   * ```ts
   * const llm = await LLM.create({ model: dir });
   * for (const p of llm.loadStats.phases) console.log(p.name, p.ms);
   * ```
   */
  get loadStats(): LoadStats {
    // Phases that finish later (the background cache write) join the list when they end.
    return this.#loadTimer ? { ...this.#loadStats, phases: this.#loadTimer.stats(this.#loadStats.source).phases } : this.#loadStats;
  }

  /** The sampling defaults requests get from the model's generation_config.json (`generationConfig: "auto"`); `{}` with "none". */
  get generationDefaults(): GenerationDefaults {
    return this.#generationDefaults;
  }

  /**
   * Generates for one prompt or a batch, all requests in flight together. Returns one output for a
   * single prompt (string, id array, `{ prompt }` or `{ promptTokenIds }`) and an array for an array of prompts; `samplingParams` may be
   * one for all or one per prompt. Every prompt is checked before any runs (a bad one throws); a
   * request that fails while running makes the call reject once the others are done.
   */
  /** With `guidedDecoding: { json: zodSchema }`: each completion's `parsed` is typed `z.output<typeof zodSchema>`. */
  generate<S extends z.ZodType>(prompt: Prompt, samplingParams: GuidedJsonParams<S>, options?: GenerateOptions): Promise<ParsedRequestOutput<z.output<S>>>;
  generate<S extends z.ZodType>(prompts: Prompt[], samplingParams: GuidedJsonParams<S>, options?: GenerateOptions): Promise<ParsedRequestOutput<z.output<S>>[]>;
  generate(prompt: Prompt, samplingParams?: ParamsArg, options?: GenerateOptions): Promise<RequestOutputData>;
  generate(prompts: Prompt[], samplingParams?: ParamsArg | ParamsArg[], options?: GenerateOptions): Promise<RequestOutputData[]>;
  async generate(
    prompts: Prompt | Prompt[],
    samplingParams?: ParamsArg | ParamsArg[],
    options: GenerateOptions = {},
  ): Promise<RequestOutputData | RequestOutputData[]> {
    await Promise.resolve();
    this.#live();
    parseWith(GenerateOptionsSchema, options ?? {}, "LLM.generate options");
    const { single, list } = promptList(prompts);
    if (Array.isArray(samplingParams) && samplingParams.length !== list.length) {
      throw new ValidationError(`LLM.generate: ${samplingParams.length} samplingParams for ${list.length} prompts`, "samplingParams", samplingParams.length);
    }
    const requests: GenerationRequest[] = [];
    // One parameter set for every prompt: parsed once (SamplingParams are immutable, shared as a given instance is).
    const shared = Array.isArray(samplingParams) ? null : applyGenerationDefaults(SamplingParams.from(samplingParams), this.#generationDefaults);
    for (const [i, given] of list.entries()) {
      const field = single ? "prompt" : `prompts[${i}]`;
      const p = promptInput(given, `LLM.generate ${field}`);
      const params = shared ?? applyGenerationDefaults(paramsAt(samplingParams as ParamsArg[], i), this.#generationDefaults);
      const r = this.#isLongText(p)
        ? (await this.#requestInSlices(p, params, field, false, options.priority))!
        : this.#request(p, params, field, false, options.priority);
      requests.push(withLora(r, options.loraRequest));
    }
    const bar = new ProgressBar(list.length, { enabled: options.useTqdm ?? true });
    const results = requests.map((r) => this.executor.submit(r));
    const settled = await Promise.allSettled(results.map((r) =>
      r.result().then((out) => {
        bar.update({ done: 1, inputTokens: out.promptTokenIds.length, outputTokens: out.outputs.reduce((a, c) => a + c.tokenIds.length, 0) });
        return out;
      })
    ));
    bar.close();
    const outs: RequestOutputData[] = [];
    for (const s of settled) {
      if (s.status === "rejected") throw s.reason;
      outs.push(s.value);
    }
    return single ? outs[0] : outs;
  }

  /**
   * Submits one request and returns its live RequestOutput at once: async-iterable (per-step
   * outputs with `streaming`), awaitable with `result()`, abortable with `abort()` or `signal`.
   * A bad request does not throw here: its `result()` rejects (and iteration throws) with the reason.
   */
  generateAsync(given: Prompt, samplingParams?: ParamsArg, options: GenerateAsyncOptions = {}): RequestOutput {
    let request: GenerationRequest;
    let prompt = given;
    try {
      this.#live();
      prompt = promptInput(given, "LLM.generateAsync prompt");
      // Options first: nothing is submitted for a request whose options are bad.
      parseWith(GenerateAsyncOptionsSchema, options ?? {}, "LLM.generateAsync options");
      const params = applyGenerationDefaults(SamplingParams.from(samplingParams), this.#generationDefaults);
      if (this.#isLongText(prompt)) {
        // Tokenized a slice per macrotask, so steps and streams keep running meanwhile.
        this.#tokenizerFor(prompt, "prompt");
        const long = prompt;
        const result = this.executor.submitWhenReady(
          (isCancelled) =>
            this.#requestInSlices(long, params, "prompt", options.streaming ?? false, options.priority, isCancelled).then((r) =>
              withLora(r, options.loraRequest)
            ),
          long,
          params.n,
        );
        return new RequestOutput(result, options.signal);
      }
      request = withLora(this.#request(prompt, params, "prompt", options.streaming ?? false, options.priority), options.loraRequest);
    } catch (e) {
      // The request still ends in one final state: failed, with the reason.
      const error = e instanceof Error ? e : new Error(String(e));
      const signal = options?.signal instanceof AbortSignal ? options.signal : undefined;
      return new RequestOutput(this.executor.failedResult(error, typeof prompt === "string" ? prompt : null), signal);
    }
    return new RequestOutput(this.executor.submit(request), options.signal);
  }

  /** Recent iteration stats (batch size, prefill/decode tokens, step time, KV blocks), oldest first. */
  getStats(): IterationStats[] {
    return this.executor.getStats();
  }

  /** Tokenizes a prompt and checks it against the executor's limits (ValidationError naming `field`). */
  #request(prompt: Prompt, p: SamplingParams, field: string, streaming: boolean, priority: number | undefined): GenerationRequest {
    let ids: number[];
    if (typeof prompt === "string") {
      ids = this.#tokenizerFor(prompt, field).encode(prompt, { addSpecialTokens: p.addSpecialTokens });
    } else if (Array.isArray(prompt)) {
      ids = [...prompt];
    } else {
      throw new ValidationError(`LLM.generate ${field}: expected a string or token ids`, field, prompt);
    }
    return this.#checked(typeof prompt === "string" ? prompt : null, ids, p, field, streaming, priority);
  }

  /** True for a text prompt long enough to be tokenized in slices, off the step loop's turn. */
  #isLongText(prompt: Prompt): prompt is string {
    return typeof prompt === "string" && prompt.length > SLICE_CHARS && this.tokenizer !== null;
  }

  /** {@link LLM.#request} for a long text prompt: tokenized a slice per macrotask; null once `isCancelled()`. */
  async #requestInSlices(
    prompt: string,
    p: SamplingParams,
    field: string,
    streaming: boolean,
    priority: number | undefined,
    isCancelled: () => boolean = () => false,
  ): Promise<GenerationRequest | null> {
    const ids = await encodeInSlices(this.#tokenizerFor(prompt, field), prompt, p.addSpecialTokens, isCancelled);
    return ids === null ? null : this.#checked(prompt, ids, p, field, streaming, priority);
  }

  /** The tokenizer for a text prompt that fits maxPromptBytes (ValidationError / ResourceError naming `field`). */
  #tokenizerFor(prompt: string, field: string): LlmTokenizer {
    if (!this.tokenizer) throw new ValidationError(`LLM.generate ${field}: a text prompt needs a tokenizer (skipTokenizerInit is set)`, field, prompt);
    checkPromptBytes(prompt, this.maxPromptBytes, field);
    return this.tokenizer;
  }

  /** Checks prompt ids against the executor's limits and makes the request. */
  #checked(text: string | null, ids: number[], p: SamplingParams, field: string, streaming: boolean, priority: number | undefined): GenerationRequest {
    if (p.truncatePromptTokens !== undefined && ids.length > p.truncatePromptTokens) ids = ids.slice(ids.length - p.truncatePromptTokens);
    validatePromptIds(ids, this.executor.limits, field, `LLM.generate ${field}`);
    if (this.executorMode === "proxy" && p.logitsProcessor !== undefined) {
      throw new ValidationError(
        `LLM.generate ${field}: SamplingParams.logitsProcessor is a function, which cannot cross to the executor's worker (executorMode "proxy"); use executorMode "inprocess"`,
        "logitsProcessor",
        "function",
      );
    }
    return { promptTokenIds: ids, samplingParams: p, prompt: text, streaming, priority };
  }

  #live(): void {
    if (this.#closed) throw new LlmrtError("disposed", "LLM: used after shutdown()");
  }

  /** Stops the executor (requests in flight fail with "shut down") and releases the engine. Idempotent. */
  async shutdown(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    try {
      await this.executor.shutdown();
    } finally {
      await this.#pendingWrites; // never rejects: a failed write was reported on stderr
      this.#draftEngine?.dispose();
      this.engine.dispose();
    }
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.shutdown();
  }
}

export { resolveBackend };
