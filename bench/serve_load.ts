/**
 * Load test of `llmrt serve`: N concurrent streaming clients with mixed prompt and output lengths
 * for a duration; reports requests/s, output tokens/s, TTFT and ITL percentiles, errors (must be
 * zero), and that KV blocks and process memory return to their baseline afterwards.
 *
 *   bun bench/serve_load.ts [--model DIR] [--backend cpu] [--max-batch-size N] [--concurrency 64] [--duration 30]
 *                           [--min-tokens 8] [--max-tokens 96] [--input-len N] [--temperature 0.8] [--no-warmup] [--json]
 *   bun bench/serve_load.ts --url http://127.0.0.1:8000 --served-model-name NAME [--api-key KEY] ...
 *
 * Prompts are a few KJV verses of mixed lengths, or with --input-len N random token ids of exactly N
 * tokens (for comparing with bench/throughput.ts at the same lengths: --min-tokens = --max-tokens,
 * --temperature 0 as its greedy sampling). Sampling is temperature 0.8 with top-p 0.95 by default.
 *
 * Without --url it starts the server in this process. With --url (a server started by `llmrt serve`,
 * so the clients do not share its thread) KV blocks and RSS come from its /metrics and no heap is
 * shown. Exit code 1 when any request failed or KV blocks did not return to the baseline.
 */
import process from "node:process";
import { LLM } from "../mod.ts";
import { startServer } from "../lib/serve/server.ts";

/** Options of {@link runLoad}. */
export interface LoadOptions {
  readonly url: string;
  readonly model: string;
  readonly apiKey?: string;
  readonly concurrency: number;
  readonly durationS: number;
  /** Output lengths are drawn uniformly from [minTokens, maxTokens]. */
  readonly minTokens: number;
  readonly maxTokens: number;
  /** Text prompts, or token-id prompts. */
  readonly prompts: readonly (string | readonly number[])[];
  readonly seed?: number;
  /** Sampling temperature (0: greedy, as bench/throughput.ts). @default 0.8 */
  readonly temperature?: number;
  /** Nucleus mass (sent when temperature > 0). @default 0.95 */
  readonly topP?: number;
}

/** Percentiles in milliseconds. */
export interface Percentiles {
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
}

/** What one load run measured. */
export interface LoadResult {
  readonly requests: number;
  readonly errors: number;
  readonly errorSamples: readonly string[];
  readonly seconds: number;
  readonly requestsPerS: number;
  readonly outputTokens: number;
  readonly outputTokensPerS: number;
  readonly ttftMs: Percentiles;
  readonly itlMs: Percentiles;
}

function percentiles(xs: number[]): Percentiles {
  const s = [...xs].sort((a, b) => a - b);
  const at = (p: number): number => (s.length === 0 ? NaN : s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]);
  return { p50: at(50), p90: at(90), p99: at(99) };
}

/** One streaming completion; returns its timings or throws with the reason. */
async function oneRequest(o: LoadOptions, prompt: string | readonly number[], maxTokens: number, ttft: number[], itl: number[]): Promise<number> {
  const t0 = performance.now();
  const res = await fetch(`${o.url}/v1/completions`, {
    method: "POST",
    headers: { "content-type": "application/json", ...(o.apiKey ? { authorization: `Bearer ${o.apiKey}` } : {}) },
    body: JSON.stringify({
      model: o.model,
      prompt,
      max_tokens: maxTokens,
      temperature: o.temperature ?? 0.8,
      ...((o.temperature ?? 0.8) > 0 ? { top_p: o.topP ?? 0.95 } : {}),
      ignore_eos: true,
      stream: true,
      stream_options: { include_usage: true },
    }),
  });
  if (res.status !== 200 || !res.body) throw new Error(`HTTP ${res.status}: ${(await res.text()).slice(0, 200)}`);
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = "";
  let last = t0;
  let seen = 0;
  let usage: { completion_tokens: number } | null = null;
  let done = false;
  let finish: string | null = null;
  while (!done) {
    const r = await reader.read();
    if (r.done) break;
    buf += r.value;
    let cut: number;
    while ((cut = buf.indexOf("\n\n")) >= 0) {
      const ev = buf.slice(0, cut);
      buf = buf.slice(cut + 2);
      if (!ev.startsWith("data: ")) continue;
      const data = ev.slice(6);
      if (data === "[DONE]") {
        done = true;
        break;
      }
      const j = JSON.parse(data);
      if (j.error) throw new Error(`stream error: ${j.error.message}`);
      if (j.usage) usage = j.usage;
      const c = j.choices?.[0];
      if (!c) continue;
      const k = c.logprobs?.tokens?.length ?? (c.text ? 1 : 0);
      if (c.finish_reason) finish = c.finish_reason;
      if (!c.text) continue;
      const now = performance.now();
      if (seen === 0) ttft.push(now - t0);
      else for (let i = 0; i < k; i++) itl.push((now - last) / k);
      seen += k;
      last = now;
    }
  }
  if (!done) throw new Error("the stream ended without data: [DONE]");
  if (!usage) throw new Error("no usage chunk");
  if (finish !== "length" || usage.completion_tokens !== maxTokens) {
    throw new Error(`expected ${maxTokens} tokens and finish "length", got ${usage.completion_tokens} and ${finish}`);
  }
  return usage.completion_tokens;
}

/** Runs `concurrency` clients for `durationS` seconds (each runs at least one request and finishes its last). */
export async function runLoad(o: LoadOptions): Promise<LoadResult> {
  let seed = (o.seed ?? 1) >>> 0;
  const rand = (n: number): number => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return (seed >>> 8) % n;
  };
  const ttft: number[] = [];
  const itl: number[] = [];
  const errorSamples: string[] = [];
  let requests = 0, errors = 0, outputTokens = 0;
  const t0 = performance.now();
  const deadline = t0 + o.durationS * 1000;
  const client = async (): Promise<void> => {
    do { // every client runs at least one request
      const prompt = o.prompts[rand(o.prompts.length)];
      const maxTokens = o.minTokens + rand(o.maxTokens - o.minTokens + 1);
      requests++;
      try {
        const n = await oneRequest(o, prompt, maxTokens, ttft, itl);
        outputTokens += n;
      } catch (e) {
        errors++;
        if (errorSamples.length < 5) errorSamples.push((e as Error).message);
      }
    } while (performance.now() < deadline);
  };
  await Promise.all(Array.from({ length: o.concurrency }, client));
  const seconds = (performance.now() - t0) / 1000;
  return {
    requests,
    errors,
    errorSamples,
    seconds,
    requestsPerS: requests / seconds,
    outputTokens,
    outputTokensPerS: outputTokens / seconds,
    ttftMs: percentiles(ttft),
    itlMs: percentiles(itl),
  };
}

/** Reads a labelled sample from Prometheus text (`name{labels} value`). */
export function metricValue(text: string, name: string, labels = ""): number {
  const line = text.split("\n").find((l) => l.startsWith(labels ? `${name}{${labels}} ` : `${name} `));
  return line ? Number(line.slice(line.lastIndexOf(" ") + 1)) : NaN;
}

/** Prompts of mixed lengths (short to a few hundred characters). */
export const LOAD_PROMPTS: readonly string[] = [
  "In the beginning",
  "And God said",
  "The LORD is my shepherd; I shall not want. He maketh me to lie down in green pastures",
  "Blessed are the poor in spirit: for theirs is the kingdom of heaven. Blessed are they that mourn: for they shall be comforted. " +
  "Blessed are the meek: for they shall inherit the earth.",
  "Now the serpent was more subtil than any beast of the field which the LORD God had made. And he said unto the woman, Yea, hath God said, " +
  "Ye shall not eat of every tree of the garden? And the woman said unto the serpent, We may eat of the fruit of the trees of the garden",
];

function gc(): void {
  const g = globalThis as { Bun?: { gc(force: boolean): void }; gc?: () => void };
  if (g.Bun) g.Bun.gc(true);
  else g.gc?.();
}

function heapUsed(): number {
  return process.memoryUsage().heapUsed;
}

async function main(): Promise<number> {
  const args = process.argv.slice(2);
  const opt = (name: string, def?: string): string | undefined => {
    const i = args.indexOf(`--${name}`);
    return i >= 0 ? args[i + 1] : def;
  };
  const concurrency = Number(opt("concurrency", "64")), durationS = Number(opt("duration", "30"));
  const minTokens = Number(opt("min-tokens", "8")), maxTokens = Number(opt("max-tokens", "96"));
  const inputLen = opt("input-len") === undefined ? 0 : Number(opt("input-len"));
  const maxBatchSize = opt("max-batch-size") === undefined ? undefined : Number(opt("max-batch-size"));
  let url = opt("url");
  const model = opt("served-model-name", "llmrt")!;
  let server: Awaited<ReturnType<typeof startServer>> | null = null;
  let llm: LLM | null = null;
  if (!url) {
    const dir = opt("model", new URL("../models/kjv-llama/", import.meta.url).pathname)!;
    llm = await LLM.create({
      model: dir,
      backend: opt("backend", "cpu") as "cpu" | "cuda" | "auto",
      ...(maxBatchSize ? { maxBatchSize, buildConfig: { maxBatchSize } } : {}),
    });
    server = await startServer({ llm, port: 0, modelName: model, maxQueue: 4096 });
    url = server.url;
  }
  const scrape = async (): Promise<string> => await (await fetch(`${url}/metrics`)).text();
  let seed = 12345;
  const idPrompt = (): number[] =>
    Array.from({ length: inputLen }, () => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return 3 + ((seed >>> 8) % 997);
    });
  // Token-id prompts: enough distinct ones that the server's prefix cache rarely saves a prefill.
  const prompts = inputLen > 0 ? Array.from({ length: Math.max(64, 16 * concurrency) }, idPrompt) : LOAD_PROMPTS;
  const temperature = Number(opt("temperature", "0.8"));
  const base = { url, model, apiKey: opt("api-key"), concurrency, minTokens, maxTokens, prompts, temperature };
  // Warm-up (JIT, caches; on a GPU the kernels and decode graphs of the full batch): one short
  // request per client, then the baseline.
  if (!args.includes("--no-warmup")) {
    const w = Math.min(4, minTokens);
    await runLoad({ ...base, minTokens: w, maxTokens: w, durationS: 0 });
  }
  gc();
  // The server's memory: its own heap when it runs here; its RSS from /metrics either way.
  const sample = (m: string): { kv: number; heap: number; rss: number } => ({
    kv: metricValue(m, "llmrt_kv_cache_blocks", 'state="used"'),
    heap: server ? heapUsed() : NaN,
    rss: metricValue(m, "llmrt_process_resident_memory_bytes"),
  });
  const before = sample(await scrape());
  const r = await runLoad({ ...base, durationS });
  let m = await scrape();
  for (let i = 0; i < 50 && metricValue(m, "llmrt_kv_cache_blocks", 'state="used"') !== before.kv; i++) {
    await new Promise((res) => setTimeout(res, 100));
    m = await scrape();
  }
  gc();
  const after = sample(await scrape());
  const report = {
    ...r,
    backend: llm?.backend ?? "remote",
    concurrency,
    durationS,
    inputLen: inputLen || "mixed text",
    temperature,
    outputLengths: [minTokens, maxTokens],
    kvBlocksUsed: { before: before.kv, after: after.kv },
    heapMiB: { before: before.heap / 2 ** 20, after: after.heap / 2 ** 20 },
    rssMiB: { before: before.rss / 2 ** 20, after: after.rss / 2 ** 20 },
  };
  if (args.includes("--json")) console.log(JSON.stringify(report, null, 2));
  else {
    const f = (x: number, d = 1): string => x.toFixed(d);
    console.log(
      `${concurrency} streaming clients for ${durationS} s (${
        inputLen > 0 ? `${inputLen} prompt tokens, ` : ""
      }${minTokens}-${maxTokens} new tokens each, temperature ${temperature}, ${report.backend}):\n` +
        `  requests ${r.requests}, errors ${r.errors}${r.errors ? ` (${r.errorSamples.join("; ")})` : ""}\n` +
        `  ${f(r.requestsPerS, 2)} requests/s, ${f(r.outputTokensPerS)} output tokens/s\n` +
        `  TTFT ms p50 ${f(r.ttftMs.p50)} p90 ${f(r.ttftMs.p90)} p99 ${f(r.ttftMs.p99)}\n` +
        `  ITL ms  p50 ${f(r.itlMs.p50)} p90 ${f(r.itlMs.p90)} p99 ${f(r.itlMs.p99)}\n` +
        `  KV blocks used before ${before.kv}, after ${after.kv}\n` +
        `  heap MiB before ${f(report.heapMiB.before)}, after ${f(report.heapMiB.after)}; RSS MiB before ${f(report.rssMiB.before)}, after ${
          f(report.rssMiB.after)
        }`,
    );
  }
  await server?.close(5000);
  await llm?.shutdown();
  return r.errors === 0 && after.kv === before.kv ? 0 : 1;
}

if (import.meta.main) process.exitCode = await main();
