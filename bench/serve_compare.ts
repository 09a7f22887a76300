/**
 * Serve vs offline throughput in one run, reps alternating: this process holds an offline `LLM`
 * built as bench/throughput.ts builds it (same engine shape, same greedy 4-token warm-up, same
 * counting: output tokens / wall time of the whole `generate`) and, between its runs, drives a
 * running `llmrt serve` with N streaming clients (bench/serve_load.ts's `runLoad`, token-id prompts
 * of the same length, greedy, ignore_eos). Start the server with a small
 * `--kv-cache-free-gpu-memory-fraction` so both fit on the GPU; only one of them works at a time.
 *
 *   bun bench/serve_compare.ts --model DIR --url http://127.0.0.1:8000[,URL2,...] --served-model-name NAME
 *       [--requests 256] [--input 128] [--output 128] [--reps 3] [--duration 8]
 *
 * With several servers (e.g. two settings side by side) each rep runs offline, then each server,
 * a different one first in each rep. Prints one line per run and, per serve run, `WINDOW <url>
 * <start> <end>` (absolute ms, as in an LLMRT_STEP_TRACE file; `bench/serve_trace.ts FILE
 * --windows ...` summarizes the server's steps in them). Exit code 1 when a request failed or KV
 * blocks did not return to the baseline.
 */
import process from "node:process";
import { parseArgs } from "node:util";
import { LLM } from "../lib/llmapi/llm.ts";
import type { IterationStats } from "../lib/executor/config.ts";
import { metricValue, runLoad } from "./serve_load.ts";

const { values } = parseArgs({
  args: process.argv.slice(2),
  options: {
    model: { type: "string" },
    url: { type: "string" },
    "served-model-name": { type: "string" },
    requests: { type: "string" },
    input: { type: "string" },
    output: { type: "string" },
    reps: { type: "string" },
    duration: { type: "string" },
    backend: { type: "string" }, // cuda (default); cpu for a smoke test
  },
});
if (!values.model || !values.url) throw new Error("usage: bun bench/serve_compare.ts --model DIR --url URL --served-model-name NAME");
const url = values.url; // one server, or several: URL,URL,...
const N = Number(values.requests ?? 256), IN = Number(values.input ?? 128), OUT = Number(values.output ?? 128);
const reps = Number(values.reps ?? 3), durationS = Number(values.duration ?? 8);
const bs = 32;
const maxSeqLen = Math.ceil((IN + OUT + 32) / bs) * bs;
const f = (x: number, d = 1): string => x.toFixed(d);
const wall = (): number => performance.timeOrigin + performance.now();

await using llm = await LLM.create({
  model: values.model,
  ...(values.backend === "cpu" ? { backend: "cpu" as const } : { backend: "cuda" as const, dtype: "bfloat16" as const }),
  skipTokenizerInit: true,
  cacheEngine: false,
  buildConfig: { maxBatchSize: N, maxNumTokens: Math.min(Math.max(N * IN, 256), 32768), maxSeqLen, maxInputLen: IN, tokensPerBlock: bs },
  kvCacheConfig: { maxTokens: (N + 1) * maxSeqLen, enableBlockReuse: false },
});
let seed = 777;
const rand = (n: number): number => {
  seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
  return seed % n;
};
const V = llm.engine.plan.attributes.vocabSize;
const prompts = Array.from({ length: N }, () => Array.from({ length: IN }, () => rand(Math.min(V, 32000))));
await llm.generate(prompts, { maxTokens: 4, temperature: 0, ignoreEos: true }, { useTqdm: false });

const urls = url.split(",");
for (const u of urls) { // the servers
  for (let i = 0;; i++) {
    try {
      if ((await fetch(`${u}/health`)).ok) break;
    } catch {
      // not up yet
    }
    if (i > 600) throw new Error(`no server at ${u}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}
const kvUsed = async (u: string): Promise<number> => metricValue(await (await fetch(`${u}/metrics`)).text(), "llmrt_kv_cache_blocks", 'state="used"');
let lseed = 12345;
const idPrompt = (): number[] =>
  Array.from({ length: IN }, () => {
    lseed = (Math.imul(lseed, 1103515245) + 12345) >>> 0;
    return 3 + ((lseed >>> 8) % 997);
  });
const base = {
  model: values["served-model-name"] ?? "llmrt",
  concurrency: N,
  minTokens: OUT,
  maxTokens: OUT,
  prompts: Array.from({ length: Math.max(64, 16 * N) }, idPrompt),
  temperature: 0,
};
const kv0 = new Map<string, number>();
for (const u of urls) {
  await runLoad({ ...base, url: u, minTokens: 4, maxTokens: 4, durationS: 0 }); // as serve_load.ts: one short request per client
  kv0.set(u, await kvUsed(u));
}

/** Step figures of an offline run from its iteration stats. */
function stepSummary(st: IterationStats[]): string {
  const mean = (xs: IterationStats[], g: (s: IterationStats) => number): number => xs.reduce((a, s) => a + g(s), 0) / xs.length;
  const decode = st.filter((s) => s.numPrefillTokens === 0), prefill = st.filter((s) => s.numPrefillTokens > 0);
  return `${st.length} steps: ${decode.length} decode-only, ${f(mean(decode, (s) => s.stepMs), 2)} ms (forward ${
    f(mean(decode, (s) => s.forwardMs ?? 0), 2)
  }, host ${f(mean(decode, (s) => s.stepMs - (s.forwardMs ?? 0)), 2)}); ${prefill.length} with prefill, ${f(mean(prefill, (s) => s.stepMs), 1)} ms, ${
    f(mean(prefill, (s) => s.numPrefillTokens), 0)
  } tokens; idle ${f(st.slice(1).reduce((a, s) => a + (s.idleMs ?? 0), 0), 1)} ms in all`;
}

const offlineTps: number[] = [];
const serveTps = new Map<string, number[]>(urls.map((u) => [u, []]));
let failed = false;
for (let rep = 1; rep <= reps; rep++) {
  const before = llm.getStats().length;
  const s = performance.now();
  const outs = await llm.generate(prompts, { maxTokens: OUT, temperature: 0, ignoreEos: true }, { useTqdm: false });
  const secs = (performance.now() - s) / 1000;
  const generated = outs.reduce((a, o) => a + o.outputs[0].tokenIds.length, 0);
  if (generated !== N * OUT) throw new Error(`expected ${N * OUT} output tokens, got ${generated}`);
  const offline = generated / secs;
  offlineTps.push(offline);
  console.log(`rep ${rep} offline: ${f(secs, 3)} s, ${f(offline)} output tokens/s; ${stepSummary(llm.getStats().slice(before))}`);

  // Several servers: a different one first in each rep.
  for (let k = 0; k < urls.length; k++) {
    const u = urls[(rep - 1 + k) % urls.length];
    const cpu0 = process.cpuUsage();
    const t0 = wall();
    const r = await runLoad({ ...base, url: u, durationS, seed: rep });
    const t1 = wall();
    const cpu = process.cpuUsage(cpu0);
    let kv = await kvUsed(u);
    for (let i = 0; i < 50 && kv !== kv0.get(u); i++) {
      await new Promise((res) => setTimeout(res, 100));
      kv = await kvUsed(u);
    }
    if (r.errors > 0 || kv !== kv0.get(u)) failed = true;
    console.log(
      `rep ${rep} serve ${u}: ${f(r.seconds, 2)} s, ${r.requests} requests, ${r.errors} errors${r.errors ? ` (${r.errorSamples.join("; ")})` : ""}, ${
        f(r.outputTokensPerS)
      } output tokens/s = ${f((100 * r.outputTokensPerS) / offline)}% of offline; TTFT p50/p90/p99 ${f(r.ttftMs.p50)}/${f(r.ttftMs.p90)}/${
        f(r.ttftMs.p99)
      } ms, ITL ${f(r.itlMs.p50)}/${f(r.itlMs.p90)}/${f(r.itlMs.p99)} ms; clients' CPU ${
        f((cpu.user + cpu.system) / 1e4 / ((t1 - t0) / 1000))
      }% of a core; KV blocks ${kv0.get(u)} → ${kv}`,
    );
    console.log(`WINDOW ${u} ${f(t0, 0)} ${f(t1, 0)}`);
    serveTps.get(u)!.push(r.outputTokensPerS);
  }
}
const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
console.log(`SUMMARY offline ${offlineTps.map((x) => f(x)).join(", ")} (mean ${f(mean(offlineTps))})`);
for (const [u, xs] of serveTps) {
  const ratios = xs.map((x, i) => x / offlineTps[i]);
  console.log(
    `SUMMARY serve ${u}: ${xs.map((x) => f(x)).join(", ")} (mean ${f(mean(xs))}); serve/offline ${ratios.map((x) => f(100 * x)).join(", ")}% (mean ${
      f(100 * mean(ratios))
    }%)`,
  );
}
if (failed) console.log("FAILED: errors or KV blocks not back");
process.exitCode = failed ? 1 : 0;
