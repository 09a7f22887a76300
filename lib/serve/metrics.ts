/**
 * Prometheus metrics of one server (its own prom-client Registry, so two servers in one process do
 * not collide): requests by final state, tokens, latency histograms, queue and KV gauges.
 */
import { Counter, Gauge, Histogram, Registry } from "prom-client";

/** The final state of one generation request (exactly one per request). */
export type FinalState = "finished" | "aborted" | "failed" | "rejected";

/** Live numbers the gauges read at scrape time. */
export interface GaugeSource {
  /** Executor requests admitted by the server and not yet ended. */
  numActive(): number;
  /** Of those, how many the executor runs now. */
  numRunning(): number;
  /** KV cache blocks in use and free now. */
  kvBlocks(): { used: number; free: number };
}

const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1, 2.5, 5, 10, 20, 40, 80];

/**
 * The server's metrics. `text()` is the Prometheus exposition.
 *
 * @example
 * ```ts
 * const m = new ServeMetrics(source);
 * m.requests.inc({ endpoint: "completions", state: "finished" });
 * console.log(await m.text());
 * ```
 */
export class ServeMetrics {
  readonly registry: Registry = new Registry();
  readonly requests: Counter<"endpoint" | "state">;
  readonly promptTokens: Counter;
  readonly generationTokens: Counter;
  readonly timeToFirstToken: Histogram;
  readonly interTokenLatency: TokenHistogram;
  readonly requestLatency: Histogram;
  readonly httpResponses: Counter<"route" | "status">;

  constructor(source: GaugeSource) {
    const registers = [this.registry];
    this.requests = new Counter({
      name: "llmrt_requests_total",
      help: "Generation requests by endpoint and final state (finished, aborted, failed, rejected).",
      labelNames: ["endpoint", "state"],
      registers,
    });
    this.promptTokens = new Counter({ name: "llmrt_prompt_tokens_total", help: "Prompt tokens of admitted requests.", registers });
    this.generationTokens = new Counter({ name: "llmrt_generation_tokens_total", help: "Tokens generated.", registers });
    this.timeToFirstToken = new Histogram({
      name: "llmrt_time_to_first_token_seconds",
      help: "From request arrival to its first generated token.",
      buckets: LATENCY_BUCKETS,
      registers,
    });
    this.interTokenLatency = new TokenHistogram({
      name: "llmrt_inter_token_latency_seconds",
      help: "Time between successive generated tokens of a sequence.",
      buckets: LATENCY_BUCKETS,
      registry: this.registry,
    });
    this.requestLatency = new Histogram({
      name: "llmrt_request_latency_seconds",
      help: "From request arrival to its final state.",
      buckets: LATENCY_BUCKETS,
      registers,
    });
    this.httpResponses = new Counter({
      name: "llmrt_http_responses_total",
      help: "HTTP responses by route and status.",
      labelNames: ["route", "status"],
      registers,
    });
    new Gauge({
      name: "llmrt_requests_running",
      help: "Requests the executor runs now.",
      registers,
      collect(): void {
        this.set(source.numRunning());
      },
    });
    new Gauge({
      name: "llmrt_requests_waiting",
      help: "Requests admitted and waiting for the executor.",
      registers,
      collect(): void {
        this.set(Math.max(0, source.numActive() - source.numRunning()));
      },
    });
    new Gauge({
      name: "llmrt_kv_cache_blocks",
      help: "Paged KV cache blocks by state (used, free).",
      labelNames: ["state"],
      registers,
      collect(): void {
        const kv = source.kvBlocks();
        this.set({ state: "used" }, kv.used);
        this.set({ state: "free" }, kv.free);
      },
    });
    new Gauge({
      name: "llmrt_process_resident_memory_bytes",
      help: "Resident memory of the server process.",
      registers,
      collect(): void {
        this.set(processRss());
      },
    });
  }

  /** The Prometheus text exposition. */
  text(): Promise<string> {
    return this.registry.metrics();
  }

  /** The content type of `text()`. */
  get contentType(): string {
    return this.registry.contentType;
  }
}

/**
 * A histogram without labels for per-token observations: `observe` is a bucket search and three
 * adds (prom-client's Histogram hashes labels and allocates per call), and `times` records a value
 * for several tokens at once. prom-client's registry renders it like its own histograms.
 *
 * @example
 * ```ts
 * const h = new TokenHistogram({ name: "itl_seconds", help: "ITL", buckets: [0.01, 0.1], registry });
 * h.observe(0.02, 3); // three tokens, 20 ms apart
 * ```
 */
export class TokenHistogram {
  readonly name: string;
  readonly help: string;
  readonly #bounds: readonly number[];
  /** Per bucket (the last: above every bound), not cumulative. */
  readonly #counts: Float64Array;
  #sum = 0;
  #count = 0;

  constructor(o: { name: string; help: string; buckets: readonly number[]; registry: Registry }) {
    this.name = o.name;
    this.help = o.help;
    this.#bounds = [...o.buckets].sort((a, b) => a - b);
    this.#counts = new Float64Array(this.#bounds.length + 1);
    o.registry.registerMetric(this as unknown as Parameters<Registry["registerMetric"]>[0]);
  }

  /** Records `value` (seconds) `times` times. */
  observe(value: number, times = 1): void {
    const b = this.#bounds;
    let i = 0;
    while (i < b.length && value > b[i]) i++;
    this.#counts[i] += times;
    this.#sum += value * times;
    this.#count += times;
  }

  /** The metric as prom-client's registry reads it. */
  get(): {
    name: string;
    help: string;
    type: "histogram";
    aggregator: "sum";
    values: { labels: Record<string, string | number>; value: number; metricName: string }[];
  } {
    const values: { labels: Record<string, string | number>; value: number; metricName: string }[] = [];
    let acc = 0;
    this.#bounds.forEach((le, i) => {
      acc += this.#counts[i];
      values.push({ labels: { le }, value: acc, metricName: `${this.name}_bucket` });
    });
    values.push({ labels: { le: "+Inf" }, value: this.#count, metricName: `${this.name}_bucket` });
    values.push({ labels: {}, value: this.#sum, metricName: `${this.name}_sum` });
    values.push({ labels: {}, value: this.#count, metricName: `${this.name}_count` });
    return { name: this.name, help: this.help, type: "histogram", aggregator: "sum", values };
  }

  /** Back to zero. */
  reset(): void {
    this.#counts.fill(0);
    this.#sum = 0;
    this.#count = 0;
  }
}

/** Resident set size of this process in bytes (0 where the runtime cannot say). */
export function processRss(): number {
  const proc = (globalThis as { process?: { memoryUsage?: () => { rss: number } } }).process;
  try {
    return proc?.memoryUsage?.().rss ?? 0;
  } catch {
    return 0;
  }
}
