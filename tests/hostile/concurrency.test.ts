// Hostile concurrency: hundreds of requests at once on the CPU (stories260k, a KV cache small
// enough to preempt), mixed greedy / sampled / n > 1 / bestOf / beam / stop strings / streaming,
// random aborts (signals, abort(), pre-aborted), throwing and ill-typed logits processors, masked
// rows and bad parameters. Every request must end exactly once — finished, aborted, or failed
// with a reason — with no output after its final one, and the KV blocks must all come back.
import { SamplingParams, type SamplingParamsInput } from "../../lib/executor/sampling_params.ts";
import type { RequestOutput as RequestOutputData } from "../../lib/executor/outputs.ts";
import type { RequestFailure } from "../../lib/executor/executor.ts";
import type { GenerationExecutorWorker } from "../../lib/executor/worker.ts";
import { type GenerateAsyncOptions, LLM, type LlmOptions } from "../../lib/llmapi/llm.ts";
import type { RequestOutput } from "../../lib/llmapi/request_output.ts";
import { LlmrtError } from "../../lib/util/errors.ts";
import { assert, sharedDir, test } from "../harness.ts";

const model = `${sharedDir}models/stories260k`;
const PROMPTS = ["Once upon a time", "The little dog", "Lily and Tom went to the park.", "One day, a big", "She was happy because", "x"];

/** Deterministic PRNG (mulberry32), so a failure reproduces. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type Kind = "plain" | "sampled" | "n" | "bestOf" | "beam" | "stop" | "throwing" | "badReturn" | "masked" | "badParams";
interface Spec {
  readonly kind: Kind;
  readonly prompt: string | number[];
  readonly params: SamplingParamsInput;
  readonly options: GenerateAsyncOptions;
  /** How the test aborts it: never, at once, after a delay (ms), or after k streamed outputs. */
  readonly abort: { at: "never" } | { at: "now" } | { at: "delay"; ms: number } | { at: "stream"; k: number } | { at: "signal"; ms: number };
  /** Least number of outputs a finished (or aborted) result carries. */
  readonly minOutputs: number;
}

function makeSpecs(count: number, seed: number, inProcess: boolean): Spec[] {
  const r = rng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)];
  const kinds: Kind[] = inProcess
    ? ["plain", "sampled", "sampled", "n", "bestOf", "beam", "stop", "throwing", "badReturn", "masked", "badParams"]
    : ["plain", "sampled", "sampled", "n", "bestOf", "beam", "stop", "masked", "badParams"];
  return Array.from({ length: count }, (_, i) => {
    const kind = pick(kinds);
    const maxTokens = 1 + Math.floor(r() * 12);
    const prompt = r() < 0.2 ? [1, 300 + Math.floor(r() * 100), 400 + Math.floor(r() * 100)] : pick(PROMPTS);
    const base: SamplingParamsInput = { maxTokens, seed: i, temperature: kind === "plain" ? 0 : 0.8 };
    const failAt = Math.floor(r() * 4);
    const params: SamplingParamsInput = {
      plain: base,
      sampled: { ...base, topP: 0.9, topK: 20 },
      n: { ...base, n: 2 + Math.floor(r() * 2) },
      bestOf: { ...base, n: 2, bestOf: 3 },
      beam: { ...base, useBeamSearch: true, beamWidth: 2 + Math.floor(r() * 2), n: 2, temperature: 0 },
      stop: { ...base, stop: [" the", "."], minTokens: 1 },
      throwing: {
        ...base,
        logitsProcessor: (ids: readonly number[]) => {
          if (ids.length >= failAt) throw new Error(`hostile processor ${i} threw at token ${ids.length}`);
        },
      },
      badReturn: { ...base, logitsProcessor: (() => 42) as unknown as () => void },
      masked: { ...base, allowedTokenIds: [5], badTokenIds: [5] },
      badParams: { ...base, temperature: -1 },
    }[kind];
    const a = r();
    const abort: Spec["abort"] = a < 0.6
      ? { at: "never" }
      : a < 0.68
      ? { at: "now" }
      : a < 0.8
      ? { at: "delay", ms: Math.floor(r() * 30) }
      : a < 0.9
      ? { at: "stream", k: 1 + Math.floor(r() * 3) }
      : { at: "signal", ms: Math.floor(r() * 30) };
    const streaming = abort.at === "stream" || r() < 0.3;
    const n = kind === "n" ? params.n! : kind === "bestOf" || kind === "beam" ? 2 : 1;
    return { kind, prompt, params, options: { streaming, priority: Math.floor(r() * 3) }, abort, minOutputs: n };
  });
}

/** Counts, per request id, the final outputs and failures the executor delivers, and outputs after a final one. */
function watchDeliveries(executor: object): { finals: Map<number, number>; late: number[] } {
  const finals = new Map<number, number>();
  const late: number[] = [];
  const ex = executor as { deliver(outputs: readonly RequestOutputData[], failures: readonly RequestFailure[]): void };
  const deliver = ex.deliver.bind(executor);
  ex.deliver = (outputs, failures) => {
    for (const o of outputs) {
      if (finals.has(o.requestId)) late.push(o.requestId);
      if (o.finished) finals.set(o.requestId, (finals.get(o.requestId) ?? 0) + 1);
    }
    for (const f of failures) finals.set(f.requestId, (finals.get(f.requestId) ?? 0) + 1 + (finals.has(f.requestId) ? 100 : 0));
    deliver(outputs, failures);
  };
  return { finals, late };
}

type Ending = { state: "finished" | "aborted"; out: RequestOutputData } | { state: "failed"; error: unknown };

async function drive(llm: LLM, spec: Spec): Promise<{ ro: RequestOutput; ending: Ending; streamed: number }> {
  let ac: AbortController | undefined;
  let options = spec.options;
  if (spec.abort.at === "signal") {
    ac = new AbortController();
    options = { ...options, signal: ac.signal };
    setTimeout(() => ac!.abort(), spec.abort.ms);
  }
  const ro = llm.generateAsync(spec.prompt, spec.kind === "badParams" || spec.kind === "masked" ? spec.params : new SamplingParams(spec.params), options);
  if (spec.abort.at === "now") ro.abort();
  if (spec.abort.at === "delay") setTimeout(() => ro.abort(), spec.abort.ms);
  let streamed = 0;
  if (spec.options.streaming) {
    try {
      for await (const o of ro) {
        streamed++;
        if (spec.abort.at === "stream" && streamed === spec.abort.k) ro.abort();
        assert.ok(!o.finished || streamed >= 1);
      }
    } catch {
      // A failed request: its result() rejects with the same reason, checked below.
    }
  }
  try {
    const out = await ro.result();
    return { ro, ending: { state: out.outputs.some((o) => o.finishReason === "abort") ? "aborted" : "finished", out }, streamed };
  } catch (error) {
    return { ro, ending: { state: "failed", error }, streamed };
  }
}

async function hammer(options: Partial<LlmOptions>, count: number, seed: number): Promise<void> {
  const inProcess = (options.executorMode ?? "inprocess") === "inprocess";
  await using llm = await LLM.create({
    model,
    backend: "cpu",
    cacheEngine: false,
    buildConfig: { maxBatchSize: 24, maxNumTokens: 192, maxSeqLen: 96, tokensPerBlock: 8 },
    kvCacheConfig: { maxTokens: 256 }, // 32 blocks for 24 slots: preemption under load
    ...options,
  });
  const watch = watchDeliveries(llm.executor);
  const specs = makeSpecs(count, seed, inProcess);
  const t0 = performance.now();
  const results = await Promise.all(specs.map((s) => drive(llm, s)));
  const ms = performance.now() - t0;

  const byState = { finished: 0, aborted: 0, failed: 0 };
  results.forEach(({ ro, ending }, i) => {
    const spec = specs[i];
    const what = `request ${i} (${spec.kind}, abort ${spec.abort.at})`;
    byState[ending.state]++;
    if (ending.state === "failed") {
      assert.ok(ending.error instanceof LlmrtError, `${what}: failed with a non-llmrt error ${String(ending.error)}`);
      assert.ok((ending.error as Error).message.length > 10, `${what}: failed without a reason`);
      assert.ok(["throwing", "badReturn", "masked", "badParams"].includes(spec.kind), `${what}: failed unexpectedly: ${(ending.error as Error).message}`);
      if (spec.kind === "throwing") assert.match((ending.error as Error).message, /hostile processor \d+ threw/);
    } else {
      const out = ending.out;
      assert.equal(out.finished, true, what);
      assert.ok(out.outputs.length >= spec.minOutputs, `${what}: ${out.outputs.length} outputs, want >= ${spec.minOutputs}`);
      for (const o of out.outputs) {
        assert.ok(o.finishReason === "stop" || o.finishReason === "length" || o.finishReason === "abort", `${what}: finishReason ${o.finishReason}`);
      }
      if (ending.state === "finished") {
        assert.ok(!["throwing", "badReturn", "masked", "badParams"].includes(spec.kind) || spec.kind === "throwing", `${what}: finished although it must fail`);
      }
    }
    assert.equal(ro.finished || ending.state === "failed", true, what);
    // Submitted requests reached exactly one final delivery; pre-submit failures (bad params) none.
    const finals = watch.finals.get(ro.requestId) ?? 0;
    // "masked" (every allowed id banned) is refused before submission since session 13, as bad params are.
    if (spec.kind === "badParams" || spec.kind === "masked") assert.ok(finals === 0, `${what}: ${finals} final deliveries for a request never submitted`);
    else assert.equal(finals, 1, `${what}: ${finals} final deliveries`);
  });
  assert.deepEqual(watch.late, [], "outputs delivered after a request's final state");
  assert.equal(llm.executor.numInFlight, 0, "requests left in flight");
  if (inProcess) assert.equal((llm.executor as GenerationExecutorWorker).kvCacheStats.usedBlocks, 0, "KV blocks leaked");
  assert.ok(byState.finished > count / 4 && byState.aborted > 0 && byState.failed > 0, JSON.stringify(byState));
  const stats = llm.getStats();
  if (inProcess) assert.ok(stats.some((s) => s.numPreempted > 0), "the cache was small enough to preempt");
  assert.ok(ms < 25_000, `${count} requests took ${ms.toFixed(0)} ms`);
}

test("hostile concurrency, in process: 320 mixed requests with random aborts and throwing processors each end exactly once; KV back to zero", async () => {
  await hammer({}, 320, 11);
}, 60_000);

test("hostile concurrency, executor in a Web Worker: 120 mixed requests with random aborts each end exactly once", async () => {
  await hammer({ executorMode: "proxy" }, 120, 12);
}, 60_000);
