/**
 * Offline throughput on the GPU: N requests of `input` prompt tokens → `output` new tokens each,
 * all submitted at once to the executor (LLM API, in-flight batching, decode graphs), output
 * tokens/s over the whole run; with --hf the same batch through transformers' generate, side by side.
 *
 *   bun bench/throughput.ts --model DIR [--requests 64] [--input 128] [--output 128] [--tp 1] [--hf] [--hf-compile]
 *       [--quant W4A16|W4A16_AWQ|W8A16|FP8|FP8_PER_CHANNEL_PER_TOKEN|... [--group-size 128]] [--kv-cache-quant FP8|INT8]
 *       [--profile-host] [--profile-steps] [--profile-gpu] [--no-overlap] [--max-num-tokens T] [--max-seq-len L] [--defer-decodes S]
 *       [--reps R] [--breakdown-rows R1,R2 [--breakdown-ctx C]] [--ab-rows R1,R2 --ab-opts JSON] [--ab-prefill P]
 *       [--keep-host-weights] [--mem]
 *
 * --quant quantizes the checkpoint at build time (LLM.create's quantConfig; int4 with zero points);
 * --kv-cache-quant stores the KV cache as e4m3 / int8 (QuantConfig.kvCacheQuantAlgo, with or without --quant).
 * --tp N splits the model over N GPUs (tensor parallelism: one rank worker per GPU, NCCL all-reduce).
 * --profile-host: host vs GPU time of an N-sequence decode step and its launches (bench/host_profile.ts).
 * --profile-steps: the timed run's wall time by phase (prefill, mixed, decode steps by batch size, outside the
 * steps); --profile-gpu: the GPU time of its prefill and decode steps launch by launch, on a second session
 * (bench/step_phases.ts).
 * --max-num-tokens T: the engine's and the executor's token budget per step (default min(N × input, 32768)).
 * --max-seq-len L: the engine's longest sequence (default input + output + 32, rounded up to the 32-token block).
 * --defer-decodes S: LLM.create's decodeDeferSteps (decode tokens sit out up to S steps in a row so that a large
 * batch of waiting prompts prefills alone; default: LLM.create's, 1).
 * --reps R: R timed runs (default 1); output tokens/s is their median, each printed; --profile-steps takes the last.
 * --breakdown-rows R1,R2: after the run, bench/decode_breakdown.ts's breakdown of decode steps of R1, R2, ... rows at context
 * C (--breakdown-ctx, default input + output / 2) on a second session of the same engine (each role's marginal cost in
 * the step's CUDA graph, the role alone, the eager launches by kernel).
 * --ab-rows R1,R2 --ab-opts '{"label": {options}, ...}': after the run, the graph replay of decode steps of R1, R2, ... rows
 * at context C on a default session (unless the JSON names one "default") and one session per entry, taken in turn
 * (decode_breakdown.ts abGraph); --ab-prefill P: also a prefill step of P prompts of `input` tokens on each.
 * --keep-host-weights: LLM.create's keepHostWeights (the engine's host copy of the weights stays on the heap after the
 * upload; the profiles above set it themselves). --mem: the process's memory (rss, JS heap, external / ArrayBuffer bytes)
 * after the load, the warm-up and the timed runs, in the JSON as `memory`, and each timed run's start and end on stderr
 * (`bench: run R start` / `end`: to place the lines of a GC log, e.g. Bun's BUN_JSC_logGC=1, among the runs).
 * --no-overlap: decode steps one at a time (LLM.create's overlapSteps false; by default the host's work on one
 * step runs while the GPU computes the next).
 *
 * Greedy, ignoreEos (every request makes exactly `output` tokens). One warm-up run of 4 tokens first
 * (kernel loads, GEMM plans, graph capture). LLMRT_BENCH_JSON=FILE also writes the numbers as JSON,
 * LLMRT_BENCH_IDS=FILE the generated ids of each request. LLMRT_BENCH_DEFINES='FILE.cu:-DX=1 -DY=2;...' (tuning aid):
 * extra NVRTC options for those kernel files' builds (compile_pool.ts setHarnessDefines), for A/B runs of harness knobs.
 */
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import process from "node:process";
import { parseArgs } from "node:util";
import { setHarnessDefines } from "../lib/backends/cuda/compile_pool.ts";
import { LLM } from "../lib/llmapi/llm.ts";
import { abGraph, breakdown } from "./decode_breakdown.ts";
import { attentionSweep, profileHost } from "./host_profile.ts";
import { printPhases, profileSteps } from "./step_phases.ts";

const { values } = parseArgs({
  args: process.argv.slice(2),
  options: {
    model: { type: "string" },
    requests: { type: "string" },
    input: { type: "string" },
    output: { type: "string" },
    hf: { type: "boolean" },
    "hf-compile": { type: "boolean" },
    tp: { type: "string" },
    quant: { type: "string" },
    "group-size": { type: "string" },
    "kv-cache-quant": { type: "string" },
    "profile-host": { type: "boolean" },
    "profile-steps": { type: "boolean" },
    "profile-gpu": { type: "boolean" },
    "max-num-tokens": { type: "string" },
    "max-seq-len": { type: "string" },
    "defer-decodes": { type: "string" },
    "no-overlap": { type: "boolean" },
    "keep-host-weights": { type: "boolean" },
    mem: { type: "boolean" },
    reps: { type: "string" },
    "breakdown-rows": { type: "string" },
    "breakdown-ctx": { type: "string" },
    "ab-rows": { type: "string" },
    "ab-opts": { type: "string" },
    "ab-prefill": { type: "string" },
  },
});
if (!values.model) throw new Error("usage: bun bench/throughput.ts --model DIR [--requests 64] [--input 128] [--output 128] [--hf] [--hf-compile]");
const N = Number(values.requests ?? 64), IN = Number(values.input ?? 128), OUT = Number(values.output ?? 128);
const bs = 32;
const kvQuant = values["kv-cache-quant"] as "FP8" | "INT8" | undefined;
if (kvQuant !== undefined && kvQuant !== "FP8" && kvQuant !== "INT8") throw new Error(`--kv-cache-quant: FP8 or INT8, got ${kvQuant}`);
const maxSeqLen = Number(values["max-seq-len"] ?? Math.ceil((IN + OUT + 32) / bs) * bs);
const maxNumTokens = Number(values["max-num-tokens"] ?? Math.min(Math.max(N * IN, 256), 32768));

if (process.env.LLMRT_BENCH_DEFINES) {
  setHarnessDefines(
    new Map(
      process.env.LLMRT_BENCH_DEFINES.split(";").filter((x) => x).map((x) => {
        const [file, opts] = x.split(":");
        return [file, opts.split(" ").filter((o) => o)] as [string, string[]];
      }),
    ),
  );
}
const t0 = performance.now();
await using llm = await LLM.create({
  model: values.model,
  backend: "cuda",
  dtype: "bfloat16",
  skipTokenizerInit: true,
  cacheEngine: false,
  // The profiles below open more sessions on llm.engine: its weights stay on the host for them.
  keepHostWeights:
    !!(values["keep-host-weights"] || values["profile-host"] || values["profile-gpu"] || values["breakdown-rows"] || values["ab-rows"] || values["ab-prefill"]),
  tensorParallelSize: Number(values.tp ?? 1),
  ...(values["no-overlap"] ? { overlapSteps: false } : {}),
  ...(values["defer-decodes"] ? { decodeDeferSteps: Number(values["defer-decodes"]) } : {}),
  ...(values.quant || kvQuant
    ? {
      quantConfig: {
        quantAlgo: (values.quant ?? "NO_QUANT") as "W4A16",
        groupSize: values.quant?.startsWith("W4") ? Number(values["group-size"] ?? 128) : undefined,
        hasZeroPoint: !!values.quant?.startsWith("W4"),
        ...(kvQuant ? { kvCacheQuantAlgo: kvQuant } : {}),
      },
    }
    : {}),
  buildConfig: { maxBatchSize: N, maxNumTokens, maxSeqLen, maxInputLen: IN, tokensPerBlock: bs },
  kvCacheConfig: { maxTokens: (N + 1) * maxSeqLen, enableBlockReuse: false },
});
const loadS = (performance.now() - t0) / 1000;
// --mem: the process's memory by phase (MiB).
const memory: Record<string, Record<string, number>> = {};
const noteMemory = (phase: string): void => {
  if (!values.mem) return;
  memory[phase] = Object.fromEntries(Object.entries(process.memoryUsage()).map(([k, v]) => [k, Math.round(v / 2 ** 20)]));
  memory[phase].maxRss = Math.round(process.resourceUsage().maxRSS / 1024); // KiB
};
noteMemory("load");
let seed = 777;
const rand = (n: number): number => {
  seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
  return seed % n;
};
const V = llm.engine.plan.attributes.vocabSize;
const prompts = Array.from({ length: N }, () => Array.from({ length: IN }, () => rand(Math.min(V, 32000))));
await llm.generate(prompts, { maxTokens: 4, temperature: 0, ignoreEos: true }, { useTqdm: false }); // warm-up
noteMemory("warm-up");
const reps = Math.max(1, Number(values.reps ?? 1));
const runs: { secs: number; firstIter: number }[] = [];
let outs: Awaited<ReturnType<typeof llm.generate>> = [];
for (let r = 0; r < reps; r++) {
  const firstIter = (llm.getStats().at(-1)?.iter ?? -1) + 1;
  if (values.mem) console.error(`bench: run ${r} start`);
  const s = performance.now();
  outs = await llm.generate(prompts, { maxTokens: OUT, temperature: 0, ignoreEos: true }, { useTqdm: false });
  runs.push({ secs: (performance.now() - s) / 1000, firstIter });
  if (values.mem) console.error(`bench: run ${r} end`);
  const generated = outs.reduce((a, o) => a + o.outputs[0].tokenIds.length, 0);
  if (generated !== N * OUT) throw new Error(`expected ${N * OUT} output tokens, got ${generated}`);
}
// The median run (the last one's steps for --profile-steps).
const secs = [...runs.map((r) => r.secs)].sort((a, b) => a - b)[Math.floor(reps / 2)];
const { firstIter } = runs[runs.length - 1];
const tps = (N * OUT) / secs;
const stats = llm.getStats();
const timed = stats.filter((st) => st.iter >= firstIter); // the last run's steps
const steps = stats.slice(-Math.min(stats.length, OUT + 8));
const f = (x: number, d = 1): string => x.toFixed(d);
console.log(
  `model ${values.model}${values.quant ? ` (${values.quant})` : ""}${kvQuant ? ` (${kvQuant} KV cache)` : ""}; ${N} requests × (${IN} in, ${OUT} out)${
    values["no-overlap"] ? ", steps not overlapped" : ""
  }${
    values["defer-decodes"] ? `, decodeDeferSteps ${values["defer-decodes"]}` : ""
  }; maxSeqLen ${maxSeqLen}; TP=${llm.engine.config.numRanks}; engine build + upload ${f(loadS)} s`,
);
console.log(`llmrt: ${f(secs, 3)} s, ${f(tps)} output tokens/s (${f((N * (IN + OUT)) / secs)} total tokens/s), ${steps.length} steps`);
noteMemory("runs");
if (values.mem) {
  const line = (m: Record<string, number>): string =>
    `rss ${m.rss} (peak ${m.maxRss}), heap used ${m.heapUsed}, external ${m.external}, array buffers ${m.arrayBuffers}`;
  for (const [phase, m] of Object.entries(memory)) console.log(`memory after ${phase} (MiB): ${line(m)}`);
}
if (reps > 1) console.log(`  ${reps} runs: ${runs.map((r) => f((N * OUT) / r.secs)).join(", ")} output tokens/s (median above)`);
const result: Record<string, unknown> = {
  model: values.model,
  quant: values.quant ?? null,
  kvCacheQuant: kvQuant ?? null,
  requests: N,
  input: IN,
  output: OUT,
  tp: llm.engine.config.numRanks,
  seconds: secs,
  outputTps: tps,
  runsTps: runs.map((r) => (N * OUT) / r.secs),
  ...(values.mem ? { memory } : {}),
};
if (values["profile-host"]) {
  result.hostProfile = profileHost(llm.engine, N, IN + OUT / 2, timed); // the timed run's steps
  result.attentionSweep = attentionSweep(llm.engine, IN + OUT / 2, [1, 2, 4, 5, 8, 16, 32, 64].filter((n) => n <= N));
}

if (values["profile-steps"]) result.phases = printPhases(timed, runs[runs.length - 1].secs * 1000);
if (values["profile-gpu"]) {
  result.stepProfile = profileSteps(llm.engine, Math.max(1, Math.min(N, Math.floor(maxNumTokens / IN))), IN, N, IN + OUT / 2);
}

if (values["breakdown-rows"]) {
  const ctx = Number(values["breakdown-ctx"] ?? IN + OUT / 2);
  breakdown(llm.engine, values["breakdown-rows"].split(",").map(Number), [ctx], [["default", {}]], 10);
}

if (values["ab-rows"] || values["ab-prefill"]) {
  const ctx = Number(values["breakdown-ctx"] ?? IN + OUT / 2);
  const given = JSON.parse(values["ab-opts"] ?? "{}") as Record<string, Record<string, boolean>>;
  const opts = Object.entries(given);
  const P = Number(values["ab-prefill"] ?? 0);
  abGraph(
    llm.engine,
    (values["ab-rows"] ?? "").split(",").filter((x) => x !== "").map(Number),
    ctx,
    "default" in given ? opts : [["default", {}], ...opts],
    3,
    20,
    P > 0 ? { P, L: IN } : undefined,
  );
}

if (values.hf) {
  const args = [
    "bench/hf_bench.py",
    "throughput",
    "--model",
    values.model,
    "--batch",
    String(N),
    "--input",
    String(IN),
    "--output",
    String(OUT),
    ...(values["hf-compile"] ? ["--compile"] : []),
  ];
  const r = spawnSync("python3", args, { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"], timeout: 400_000 });
  const line = (r.stdout ?? "").split("\n").find((l) => l.startsWith("HF_RESULT "));
  if (!line) {
    console.log(`transformers run failed (exit ${r.status}): ${(r.stdout ?? "").slice(-500)}`);
  } else {
    const hf = JSON.parse(line.slice("HF_RESULT ".length)) as {
      output_tps_eager: number;
      output_tps_static_compile?: number;
      compile_error?: string;
      gpu: string;
    };
    result.transformers = hf;
    const best = Math.max(hf.output_tps_eager, hf.output_tps_static_compile ?? 0);
    console.log(`\n| ${N} × (${IN} in, ${OUT} out), ${hf.gpu} | llmrt | transformers eager | transformers static + compile | llmrt / best transformers |`);
    console.log("| --- | ---: | ---: | ---: | ---: |");
    console.log(
      `| output tokens/s | ${f(tps)} | ${f(hf.output_tps_eager)} | ${
        hf.output_tps_static_compile ? f(hf.output_tps_static_compile) : hf.compile_error ?? "not run"
      } | ${f(tps / best, 2)}× |`,
    );
  }
}
if (process.env.LLMRT_BENCH_JSON) fs.writeFileSync(process.env.LLMRT_BENCH_JSON, JSON.stringify(result, null, 1));
// LLMRT_BENCH_IDS=FILE: the generated ids per request (to compare two runs' greedy outputs).
if (process.env.LLMRT_BENCH_IDS) fs.writeFileSync(process.env.LLMRT_BENCH_IDS, JSON.stringify(outs.map((o) => Array.from(o.outputs[0].tokenIds))));
