/**
 * One HTTP generation request: its prompts submitted as executor requests (one per prompt, each
 * with `n` sequences), their streamed outputs merged, latency metrics, and exactly one final state.
 */
import { checkMinTokensRoom, type CompletionOutput, type RequestOutput, type RequestOutputData, SamplingParams, type SamplingParamsInput } from "./deps.ts";
import { HttpError, toHttpError } from "./errors.ts";
import type { FinalState } from "./metrics.ts";
import type { ServeState } from "./state.ts";

/** A tokenized prompt. */
export interface PreparedPrompt {
  readonly ids: number[];
  /** The prompt text (for echo). */
  readonly text: string;
}

/** One output of one prompt's request, as it arrives. */
export interface GenerationEvent {
  /** Index of the prompt. */
  readonly prompt: number;
  readonly out: RequestOutputData;
}

/** Per generated sequence: when its last tokens came, for ITL. */
interface SeqTiming {
  lastAt: number;
  numTokens: number;
}

/**
 * Checks prompt lengths, `maxTokens` and `minTokens` against the engine's limits: a prompt over the
 * limit is 413, a completion that cannot fit is 400 naming `maxTokensField` (or `min_tokens`, with
 * the executor's own check).
 */
export function checkLengths(
  state: ServeState,
  prompts: readonly PreparedPrompt[],
  maxTokens: number,
  minTokens: number,
  promptField: string,
  maxTokensField: string,
  maxTokensGiven = true,
): void {
  const { maxInputLen, maxSeqLen } = state.limits;
  for (const p of prompts) {
    const n = p.ids.length;
    if (n === 0) throw new HttpError(400, `${promptField}: the prompt is empty`, "invalid_request_error", promptField, "empty_prompt");
    if (n > maxInputLen || n >= maxSeqLen) {
      throw new HttpError(
        413,
        `${promptField}: the prompt has ${n} tokens; this model accepts at most ${Math.min(maxInputLen, maxSeqLen - 1)} prompt tokens`,
        "invalid_request_error",
        promptField,
        "context_length_exceeded",
      );
    }
    try {
      checkMinTokensRoom(minTokens, n, maxSeqLen);
    } catch (e) {
      throw toHttpError(e);
    }
    if (n + maxTokens > maxSeqLen) {
      throw new HttpError(
        400,
        `${maxTokensField}: this model's maximum context length is ${maxSeqLen} tokens; ${n} prompt tokens + ${maxTokens} completion tokens exceed it`,
        "invalid_request_error",
        maxTokensField,
        "context_length_exceeded",
      );
    }
  }
  // Named by the request's fields (the executor's check names SamplingParams'); a defaulted max_tokens is said so.
  if (minTokens > maxTokens) {
    const why = maxTokensGiven ? "" : `; ${maxTokensField} was not given and defaulted to ${maxTokens}`;
    throw new HttpError(400, `min_tokens: must be <= ${maxTokensField} (${maxTokens})${why}`, "invalid_request_error", "min_tokens", "validation");
  }
}

const utf8 = new TextEncoder();

/**
 * A text prompt too long to fit the engine whatever it tokenizes to (over the LLM's maxPromptBytes)
 * is 413 before it is tokenized, so a huge body cannot stall the event loop in the tokenizer.
 */
export function checkPromptBytes(state: ServeState, text: string, field: string): void {
  const max = state.llm.maxPromptBytes;
  if (text.length <= max / 3) return; // at most 3 UTF-8 bytes per UTF-16 unit: cannot exceed
  const bytes = utf8.encode(text).length;
  if (bytes > max) {
    throw new HttpError(
      413,
      `${field}: a prompt of ${bytes} bytes exceeds this server's limit of ${max} bytes`,
      "invalid_request_error",
      field,
      "context_length_exceeded",
    );
  }
}

/**
 * Validates sampling parameters; a bad field is a 400 naming it (snake_case), renamed to the request
 * field it came from by `rename` (a key matches the param or any `key.` path under it).
 */
export function samplingParams(input: SamplingParamsInput, rename: Readonly<Record<string, string | undefined>> = {}): SamplingParams {
  try {
    return new SamplingParams(input);
  } catch (e) {
    throw renameParam(toHttpError(e), rename);
  }
}

/** `e` with its param renamed by `rename` (see {@link samplingParams}). */
export function renameParam(e: HttpError, rename: Readonly<Record<string, string | undefined>>): HttpError {
  const p = e.param;
  if (!p) return e;
  for (const [from, to] of Object.entries(rename)) {
    if (to !== undefined && (p === from || p.startsWith(`${from}.`))) {
      const message = e.message.startsWith(`${p}:`) ? `${to}:${e.message.slice(p.length + 1)}` : e.message;
      return new HttpError(e.status, message, e.type, to, e.code);
    }
  }
  return e;
}

/**
 * One HTTP request's generation. Create it, `start()` it (admission: 429/503), read `events()`,
 * and it ends in exactly one final state (`end()` is idempotent; `events()` calls it).
 */
export class Generation {
  readonly #state: ServeState;
  readonly #endpoint: string;
  readonly #params: SamplingParams;
  readonly prompts: readonly PreparedPrompt[];
  readonly #arrival: number;
  #requests: RequestOutput[] = [];
  readonly #firstTokenSeen: boolean[];
  readonly #timing = new Map<string, SeqTiming>();
  #ended = false;
  #aborted = false;
  readonly #handle = { abort: (): void => this.abort() };
  #unbind: (() => void) | null = null;
  /** How a failure's param is renamed to the request field (see {@link samplingParams}). */
  #rename: Readonly<Record<string, string | undefined>> = {};
  readonly #unsubscribe: (() => void)[] = [];

  constructor(
    state: ServeState,
    endpoint: string,
    prompts: readonly PreparedPrompt[],
    params: SamplingParams,
    arrival: number,
    readonly lora?: { readonly name: string; readonly path: string },
    /** llmrt's scheduling priority (higher first). */
    readonly priority?: number,
  ) {
    this.#state = state;
    this.#endpoint = endpoint;
    this.prompts = prompts;
    this.#params = params;
    this.#arrival = arrival;
    this.#firstTokenSeen = prompts.map(() => false);
  }

  /** Sequences per prompt. */
  get n(): number {
    return this.#params.n;
  }

  /**
   * Admits and submits every prompt (throws 429/503/400 before anything runs); a submission error's
   * param is renamed by `rename` (see {@link samplingParams}).
   */
  start(rename: Readonly<Record<string, string | undefined>> = {}): void {
    this.#rename = rename;
    this.#state.admit(this.prompts.length);
    for (const p of this.prompts) {
      const ro = this.#state.llm.generateAsync(p.ids, this.#params, {
        streaming: true,
        ...(this.lora ? { loraRequest: this.lora } : {}),
        ...(this.priority !== undefined ? { priority: this.priority } : {}),
      });
      if (ro.error) {
        for (const r of this.#requests) r.abort();
        this.#requests = [];
        throw renameParam(toHttpError(ro.error), rename);
      }
      this.#requests.push(ro);
    }
    this.#state.track(this.#handle, this.#requests.length);
    for (const p of this.prompts) this.#state.metrics.promptTokens.inc(p.ids.length);
  }

  /**
   * Aborts the generation when `signal` aborts (the client went away). The listener is removed when
   * the generation ends, so a runtime that aborts request signals after a response (Deno's legacy
   * behaviour) finds nothing to call.
   */
  abortOn(signal: AbortSignal): void {
    const onAbort = (): void => this.abort();
    if (signal.aborted) onAbort();
    signal.addEventListener("abort", onAbort, { once: true });
    this.#unbind = () => signal.removeEventListener("abort", onAbort);
  }

  /** Aborts every prompt's request (a client that went away, or shutdown). */
  abort(): void {
    if (this.#ended) return;
    this.#aborted = true;
    for (const r of this.#requests) r.abort();
  }

  /**
   * Push-based reading: `onNews` runs synchronously, on the executor's turn, whenever a request of
   * this generation has new outputs or reached its final state (and once now, for what is already
   * there); read them with {@link take} when the consumer can take them (unread outputs merge).
   * Stops calling once the generation ends. `onNews` must not throw.
   */
  listen(onNews: () => void): void {
    for (const r of this.#requests) this.#unsubscribe.push(r.onUpdate(onNews));
    onNews();
  }

  /** Calls `each` with the new outputs of every prompt since the last take (their latency metrics recorded). */
  take(each: (ev: GenerationEvent) => void): void {
    for (let i = 0; i < this.#requests.length; i++) {
      const out = this.#requests[i].takeNew();
      if (out === null) continue;
      this.#observe(i, out);
      each({ prompt: i, out });
    }
  }

  /** True once every prompt's request reached its final state. */
  get settled(): boolean {
    for (const r of this.#requests) if (!r.done) return false;
    return true;
  }

  /** The error of the first failed request, else null. */
  get failure(): Error | null {
    for (const r of this.#requests) if (r.error) return r.error;
    return null;
  }

  /** True when a request failed at submission (the executor's admission refused it before it ran). */
  get #rejected(): boolean {
    return this.#requests.some((r) => r.rejected);
  }

  /** Resolves once every request reached its final state (never rejects). */
  whenSettled(): Promise<void> {
    return Promise.allSettled(this.#requests.map((r) => r.result())).then(() => {});
  }

  /**
   * After a request failed: aborts the others and ends "failed" ("rejected" when the executor refused
   * one at submission: in a worker (`--executor proxy`) that verdict comes after `start`, as does a
   * grammar compiled after submission); returns the error (null when none failed), its param renamed
   * as `start` was told. Once settled without a failure: ends "finished" or "aborted".
   */
  conclude(): HttpError | null {
    const e = this.failure;
    if (e) {
      this.abort();
      this.end(this.#rejected ? "rejected" : "failed");
      return renameParam(toHttpError(e), this.#rename);
    }
    if (this.settled) this.end(this.#aborted || this.#anyAborted() ? "aborted" : "finished");
    return null;
  }

  /** Waits for every request, then ends; throws the failure of a failed one (non-streaming responses). */
  async run(): Promise<void> {
    this.listen(() => this.take(() => {})); // latency metrics as tokens come
    await this.whenSettled();
    const e = this.conclude();
    if (e) throw e;
  }

  /** Final (or, before the end, latest) outputs of each prompt. */
  finals(): RequestOutputData[] {
    return this.#requests.map((r) => r.toJSON());
  }

  /** Records the final state once; later calls do nothing. */
  end(state: FinalState): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#unbind?.();
    for (const off of this.#unsubscribe.splice(0)) off();
    this.#state.untrack(this.#handle);
    const m = this.#state.metrics;
    m.requests.inc({ endpoint: this.#endpoint, state });
    if (state === "rejected") return; // as a request refused before start(): no latency, no tokens
    m.requestLatency.observe((performance.now() - this.#arrival) / 1000);
    let generated = 0;
    for (const r of this.#requests) for (const o of r.outputs) generated += o.tokenIds.length;
    m.generationTokens.inc(generated);
  }

  /** Token counts for `usage`. */
  usage(finals: readonly RequestOutputData[]): { prompt_tokens: number; completion_tokens: number; total_tokens: number } {
    const prompt = this.prompts.reduce((a, p) => a + p.ids.length, 0);
    let completion = 0;
    for (const f of finals) for (const o of f.outputs) completion += o.tokenIds.length;
    return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion };
  }

  #anyAborted(): boolean {
    return this.#requests.some((r) => r.outputs.some((o: CompletionOutput) => o.finishReason === "abort"));
  }

  #observe(prompt: number, out: RequestOutputData): void {
    const now = performance.now();
    const m = this.#state.metrics;
    for (const o of out.outputs) {
      const numNew = o.tokenIdsDiff?.length ?? 0;
      if (numNew === 0) continue;
      if (!this.#firstTokenSeen[prompt]) {
        this.#firstTokenSeen[prompt] = true;
        m.timeToFirstToken.observe((now - this.#arrival) / 1000);
      }
      const key = `${prompt}:${o.index}`;
      const t = this.#timing.get(key);
      if (t) {
        const per = (now - t.lastAt) / 1000 / numNew;
        m.interTokenLatency.observe(per, numNew);
        t.lastAt = now;
        t.numTokens += numNew;
      } else {
        this.#timing.set(key, { lastAt: now, numTokens: numNew });
        if (numNew > 1) m.interTokenLatency.observe(0, numNew - 1);
      }
    }
  }
}
