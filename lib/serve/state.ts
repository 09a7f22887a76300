/**
 * What every route of one server shares: the LLM, the served name, metrics, and admission (how many
 * executor requests are in flight, and the cap beyond which requests get 429).
 */
import type { LLM } from "./deps.ts";
import { HttpError } from "./errors.ts";
import { type GaugeSource, ServeMetrics } from "./metrics.ts";

/** An executor request the server has in flight (aborted on shutdown). */
export interface ActiveRequest {
  abort(): void;
}

/** Options of the shared state. */
export interface ServeStateOptions {
  readonly llm: LLM;
  /** The model name clients send and /v1/models lists. */
  readonly modelName: string;
  /** Admitted requests that may wait beyond the executor's batch; more get 429. */
  readonly maxQueue: number;
  /** LoRA adapters clients may name as `model` (name → PEFT directory); the LLM needs `enableLora`. */
  readonly loraModules?: Readonly<Record<string, string>>;
  /** Where warnings go. @default `console.warn`, prefixed "[llmrt] " */
  readonly onWarning?: (message: string) => void;
}

/** The limits a request is checked against. */
export interface ServeLimits {
  readonly maxInputLen: number;
  readonly maxSeqLen: number;
  readonly maxBatchSize: number;
}

/** State shared by the routes of one server. */
export class ServeState implements GaugeSource {
  readonly llm: LLM;
  readonly modelName: string;
  readonly maxQueue: number;
  readonly loraModules: Readonly<Record<string, string>>;
  readonly limits: ServeLimits;
  readonly metrics: ServeMetrics;
  /** Reports a warning (ServeStateOptions.onWarning). */
  readonly warn: (message: string) => void;
  readonly created: number = Math.floor(Date.now() / 1000);
  /** Generations in flight → how many executor requests (prompts) each holds. */
  readonly #active = new Map<ActiveRequest, number>();
  #numRequests = 0;
  readonly #tokenText = new Map<number, string>();
  #draining = false;
  #idleWaiters: (() => void)[] = [];

  constructor(o: ServeStateOptions) {
    this.llm = o.llm;
    this.modelName = o.modelName;
    this.maxQueue = o.maxQueue;
    this.loraModules = Object.freeze({ ...(o.loraModules ?? {}) });
    const l = o.llm.executor.limits;
    this.limits = { maxInputLen: l.maxInputLen, maxSeqLen: l.maxSeqLen, maxBatchSize: l.maxBatchSize };
    this.metrics = new ServeMetrics(this);
    this.warn = o.onWarning ?? ((m) => console.warn(`[llmrt] ${m}`));
  }

  /** True once shutdown began: new generation requests get 503. */
  get draining(): boolean {
    return this.#draining;
  }

  startDraining(): void {
    this.#draining = true;
  }

  /** Executor requests (one per prompt of a generation request) admitted and not yet ended. */
  numActive(): number {
    return this.#numRequests;
  }

  numRunning(): number {
    if (this.#numRequests === 0) return 0;
    const last = this.llm.getStats().at(-1);
    return Math.min(this.#numRequests, last?.numRunning ?? this.#numRequests);
  }

  kvBlocks(): { used: number; free: number } {
    const live = (this.llm.executor as unknown as { kvCacheStats?: { usedBlocks: number; freeBlocks: number } }).kvCacheStats;
    if (live) return { used: live.usedBlocks, free: live.freeBlocks };
    const last = this.llm.getStats().at(-1);
    if (last) return { used: last.kvBlocksUsed, free: last.kvBlocksFree };
    return { used: 0, free: this.llm.executor.limits.numKvBlocks };
  }

  /**
   * Throws 503 while draining, 429 (with Retry-After) when `count` more would overflow the queue,
   * and 400 naming `field` when `count` alone is more than the queue holds (a retry cannot help).
   */
  admit(count: number, field = "prompt"): void {
    if (this.#draining) throw new HttpError(503, "the server is shutting down", "service_unavailable", null, "shutting_down");
    const cap = this.limits.maxBatchSize + this.maxQueue;
    if (count > cap) {
      throw new HttpError(
        400,
        `${field}: a batch of ${count} prompts is more than this server admits at once (at most ${cap}: --max-batch-size ${this.limits.maxBatchSize} + --max-queue ${this.maxQueue})`,
        "invalid_request_error",
        field,
        "invalid_value",
      );
    }
    if (this.#numRequests + count > cap) {
      throw new HttpError(
        429,
        `the request queue is full (${this.#numRequests} requests in flight, at most ${cap}: --max-batch-size ${this.limits.maxBatchSize} + --max-queue ${this.maxQueue}); retry later`,
        "rate_limit_error",
        null,
        "queue_full",
        { "retry-after": "1" },
      );
    }
  }

  /** Counts a generation of `numRequests` executor requests in flight (after `admit`). */
  track(r: ActiveRequest, numRequests: number): void {
    this.#active.set(r, numRequests);
    this.#numRequests += numRequests;
  }

  untrack(r: ActiveRequest): void {
    const n = this.#active.get(r);
    if (n === undefined) return;
    this.#active.delete(r);
    this.#numRequests -= n;
    if (this.#active.size === 0) { for (const w of this.#idleWaiters.splice(0)) w(); }
  }

  /** Aborts every request in flight (each then ends with finish reason "abort"). */
  abortAll(): void {
    for (const r of [...this.#active.keys()]) r.abort();
  }

  /** Resolves once no request is in flight. */
  whenIdle(): Promise<void> {
    if (this.#active.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  /** The text of one token, as OpenAI's logprobs show it (special tokens kept). */
  tokenText(id: number): string {
    let t = this.#tokenText.get(id);
    if (t === undefined) {
      t = this.llm.tokenizer?.decode([id], { skipSpecialTokens: false }) ?? `<${id}>`;
      this.#tokenText.set(id, t);
    }
    return t;
  }
}
