/**
 * Batch-1 latency on the GPU: time to first token per prompt length, decode tokens/s, and the
 * achieved weight bandwidth (weight bytes × steps/s) against the device-copy bandwidth measured in
 * the same run; with --hf the same workload through transformers on the same GPU, side by side.
 *
 *   bun bench/latency.ts --model DIR [--prompt-lens 128,2048] [--decode 256] [--hf] [--hf-compile] [--peer]
 *
 * --peer also runs bench/gpt_fast_peer.py (a gpt-fast-style PyTorch decode: static KV cache,
 * torch.compile with CUDA graphs) on the same checkpoint and GPU and prints it beside llmrt.
 * TTFT = one prefill step (all prompt tokens, eager launches) + on-device greedy sampling + the id
 * back on the host, median of 5 after a warm-up. Decode = `decode` single-token steps, each a CUDA
 * graph replay with one input copy and one id copy, after a 128-token prompt.
 * LLMRT_BENCH_JSON=FILE also writes the numbers as JSON.
 */
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import process from "node:process";
import { parseArgs } from "node:util";
import { buildSync } from "../lib/builder/builder.ts";
import { AutoModelForCausalLM } from "../lib/models/llama.ts";
import type { CudaKvCache } from "../lib/backends/cuda/session.ts";
import { Session } from "../lib/runtime/session.ts";
import { deviceWeightBytes, greedyStepper, launchTotals } from "./batch1.ts";
import { copyBandwidthMedian, copyCeiling, describeCeiling } from "./copy_bandwidth.ts";

const { values } = parseArgs({
  args: process.argv.slice(2),
  options: {
    model: { type: "string" },
    "prompt-lens": { type: "string" },
    decode: { type: "string" },
    hf: { type: "boolean" },
    "hf-compile": { type: "boolean" },
    peer: { type: "boolean" },
  },
});
if (!values.model) throw new Error("usage: bun bench/latency.ts --model DIR [--prompt-lens 128,2048] [--decode 256] [--hf] [--hf-compile]");
const modelDir = values.model;
const promptLens = (values["prompt-lens"] ?? "128,2048").split(",").map(Number);
const numDecode = Number(values.decode ?? 256);
const bs = 32;
const maxSeqLen = Math.ceil((Math.max(...promptLens, 128 + numDecode) + 64) / bs) * bs;

const t0 = performance.now();
const m = AutoModelForCausalLM.fromHuggingFace(modelDir, { dtype: "bfloat16" });
const engine = buildSync(m, { backend: "cuda", maxBatchSize: 1, maxNumTokens: Math.max(...promptLens, 128), maxSeqLen, tokensPerBlock: bs });
m.close();
const buildS = (performance.now() - t0) / 1000;
const t1 = performance.now();
const session = Session.fromSerializedEngine(engine, { backend: "cuda" });
const loadS = (performance.now() - t1) / 1000;
const cuda = session.cuda!;
const dev = cuda.device;
const weightBytes = engine.tensorNames().reduce((a, n) => a + engine.tensorInfo(n).shape.reduce((x, y) => x * y, 1) * engine.plan.elementBytes, 0);
// What a decode step reads: the weights less an untied embedding table (one row of it). Sessions 7–9 divided by all
// the weight bytes, which overstated llama-3.1-8b's share by the table's 0.53 GB (3.4%).
const stepBytes = deviceWeightBytes(engine);

const ceiling = copyCeiling(dev); // the highest of several copy methods, each at its best of 7 runs (bench/copy_bandwidth.ts)
const copyBps = ceiling.bps;
const oldCopyBps = copyBandwidthMedian(dev, 5); // sessions 7–9's ceiling (median of 5 × 20 cuMemcpyDtoD of 1 GiB), for the before/after

let seed = 12345;
const rand = (n: number): number => {
  seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
  return seed % n;
};
const V = engine.plan.attributes.vocabSize;
const kv = session.createKvCache(maxSeqLen / bs + 1);
const stepOf = greedyStepper(Int32Array.from({ length: maxSeqLen / bs }, (_, i) => i));
const out = { sampledIds: new Int32Array(1) };
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const ttft: Record<string, number> = {};
for (const L of promptLens) {
  const prompt = Array.from({ length: L }, () => rand(Math.min(V, 32000)));
  session.run(stepOf(prompt, 0), out, kv); // warm-up: kernel loads, GEMM plans
  const ts: number[] = [];
  for (let i = 0; i < 5; i++) {
    const s = performance.now();
    session.run(stepOf(prompt, 0), out, kv);
    ts.push(performance.now() - s);
  }
  ttft[L] = median(ts);
}
// Where the longest prompt's prefill step goes (eager launches, an event after each).
const prefillProfile = (() => {
  const L = Math.max(...promptLens);
  const p = cuda.profileEagerStep(stepOf(Array.from({ length: L }, () => rand(Math.min(V, 32000))), 0), kv as CudaKvCache);
  return { L, byName: launchTotals(p.launches), sum: p.launches.reduce((a, l) => a + l.ms, 0), n: p.launches.length };
})();

const prompt = Array.from({ length: 128 }, () => rand(Math.min(V, 32000)));
session.run(stepOf(prompt, 0), out, kv);
let last = out.sampledIds[0], pos = 128;
session.run(stepOf([last], pos++), out, kv); // captures the bucket-1 graph
last = out.sampledIds[0];
const stepMs: number[] = [];
const lastIds = [last];
const d0 = performance.now();
for (let i = 0; i < numDecode; i++) {
  const s = performance.now();
  session.run(stepOf([last], pos++), out, kv);
  last = out.sampledIds[0];
  lastIds.push(last);
  stepMs.push(performance.now() - s);
}
const decodeS = (performance.now() - d0) / 1000;
// The same steps overlapped as the executor runs them by default (ExecutorConfig.overlapSteps): step N + 1 is enqueued
// (its token id forwarded on the device from step N's sample) before step N's id is read back. Same start as the loop
// above, so the greedy ids must be the same.
const overlapped = (() => {
  const n = Math.min(numDecode, 64);
  const start = pos - numDecode, first = lastIds[0];
  const bufs = [new Int32Array(1), new Int32Array(1)];
  const ids: number[] = [];
  let p = start;
  let prev = session.launch(stepOf([first], p++), { sampledIds: bufs[0] }, kv);
  const t = performance.now();
  for (let i = 1; i <= numDecode; i++) {
    const cur = session.launch({ ...stepOf([0], p++), forwardedTokens: { from: prev, rows: Int32Array.of(0) } }, { sampledIds: bufs[i % 2] }, kv);
    prev.wait();
    ids.push(bufs[(i - 1) % 2][0]);
    prev = cur;
  }
  prev.wait();
  ids.push(bufs[numDecode % 2][0]);
  const s = (performance.now() - t) / 1000;
  const same = ids.slice(0, n).every((x, i) => x === lastIds[i + 1]);
  return { tps: numDecode / s, same, n };
})();
// Where the step's GPU time goes: graph replay alone, and each launch run eagerly.
const prof = cuda.profileDecodeStep(stepOf([last], pos), kv as CudaKvCache);
const byName = launchTotals(prof.launches);
const tps = numDecode / decodeS;
const ceilingTps = copyBps / stepBytes;

const result: Record<string, unknown> = {
  gpu: dev.name,
  driver: dev.driverVersion,
  model: modelDir,
  weightBytes,
  stepBytes,
  buildS,
  loadS,
  copyBandwidthBps: copyBps,
  copyCeiling: ceiling,
  oldCopyBandwidthBps: oldCopyBps,
  decodeTpsOverlapped: overlapped.tps,
  ttftMs: ttft,
  decodeTps: tps,
  decodeStepMedianMs: median(stepMs),
  achievedBps: tps * stepBytes,
  fractionOfCeiling: tps / ceilingTps,
  ceilingTps,
};
const f = (x: number, d = 1): string => x.toFixed(d);
console.log(
  `GPU ${dev.name} (driver ${dev.driverVersion}); model ${modelDir}: ${(weightBytes / 1e9).toFixed(3)} GB of bf16 weights (${
    (stepBytes / 1e9).toFixed(3)
  } GB read a step); build ${f(buildS)} s, upload ${f(loadS)} s`,
);
console.log(`${describeCeiling(ceiling)} → decode ceiling ${f(ceilingTps)} tokens/s`);
console.log(`  (sessions 7–9's ceiling, median of 5 × 20 cuMemcpyDtoD of 1 GiB, in this process: ${f(oldCopyBps / 1e12, 3)} TB/s)`);
for (const L of promptLens) console.log(`llmrt TTFT ${L} tokens: ${f(ttft[L], 2)} ms`);
console.log(`prefill of ${prefillProfile.L} tokens, eager launches: ${f(prefillProfile.sum, 3)} ms over ${prefillProfile.n} launches:`);
for (const [name, e] of [...prefillProfile.byName.entries()].sort((x, y) => y[1].ms - x[1].ms)) {
  console.log(`  ${name.padEnd(48)} ×${String(e.n).padStart(3)}  ${f(e.ms * 1000, 1).padStart(8)} µs`);
}
result.prefillProfile = { promptLen: prefillProfile.L, ms: prefillProfile.sum, launches: Object.fromEntries(prefillProfile.byName) };
console.log(
  `llmrt decode batch 1: ${f(tps)} tokens/s (median step ${f(median(stepMs), 3)} ms), ${f(tps * stepBytes / 1e9)} GB/s = ${
    f(100 * tps / ceilingTps)
  }% of the copy ceiling (sessions 7–9's measure, all weight bytes ÷ their ceiling: ${f(100 * tps * weightBytes / oldCopyBps)}%)`,
);
console.log(
  `llmrt decode batch 1, steps overlapped (the executor's default): ${f(overlapped.tps)} tokens/s = ${
    f(100 * overlapped.tps / ceilingTps)
  }% of the copy ceiling; greedy ids ${overlapped.same ? "equal to" : "DIFFER from"} the synced loop's (${overlapped.n} compared)`,
);
const eagerSum = prof.launches.reduce((a, l) => a + l.ms, 0);
console.log(
  `decode step GPU time: graph replay ${f(prof.graphMs, 3)} ms (host share of the step ${f(median(stepMs) - prof.graphMs, 3)} ms); eager launches sum ${
    f(eagerSum, 3)
  } ms over ${prof.launches.length} launches:`,
);
for (const [name, e] of [...byName.entries()].sort((x, y) => y[1].ms - x[1].ms)) {
  console.log(`  ${name.padEnd(48)} ×${String(e.n).padStart(3)}  ${f(e.ms * 1000, 1).padStart(8)} µs`);
}
// The first 11 and last 4 launches one by one (embedding, layers 0–1, the last norm, lm_head, sampler).
const L = prof.launches;
for (const [i, l] of L.entries()) {
  if (i < 11 || i >= L.length - 4) {
    console.log(`  #${String(i).padStart(2)} op ${String(l.op).padStart(3)} ${l.name.padEnd(40)} ${f(l.ms * 1000, 2).padStart(8)} µs`);
  }
}
result.graphStepMs = prof.graphMs;
result.profile = Object.fromEntries(byName);

if (values.hf) {
  const args = [
    "bench/hf_bench.py",
    "latency",
    "--model",
    modelDir,
    "--prompt-lens",
    promptLens.join(","),
    "--decode",
    String(Math.min(numDecode, 128)),
    ...(values["hf-compile"] ? ["--compile"] : []),
  ];
  const r = spawnSync("python3", args, { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"], timeout: 400_000 });
  const line = (r.stdout ?? "").split("\n").find((l) => l.startsWith("HF_RESULT "));
  if (!line) {
    console.log(`transformers run failed (exit ${r.status}): ${(r.stdout ?? "").slice(-500)}`);
  } else {
    const hf = JSON.parse(line.slice("HF_RESULT ".length)) as {
      copy_bandwidth_Bps: number;
      weight_bytes: number;
      ttft_ms: Record<string, number>;
      decode_tps_eager: number;
      decode_tps_static_compile?: number;
      compile_error?: string;
      transformers: string;
      torch: string;
    };
    result.transformers = hf;
    const hfCeil = hf.copy_bandwidth_Bps / hf.weight_bytes;
    console.log(`\ntransformers ${hf.transformers} / torch ${hf.torch}, same GPU, same run (torch copy ${f(hf.copy_bandwidth_Bps / 1e12, 3)} TB/s):`);
    console.log("| metric | llmrt | transformers eager | transformers static + compile | llmrt / best transformers |");
    console.log("| --- | ---: | ---: | ---: | ---: |");
    for (const L of promptLens) {
      const h = hf.ttft_ms[String(L)];
      console.log(`| TTFT ${L} tokens (ms) | ${f(ttft[L], 2)} | ${f(h, 2)} | – | ${f(h / ttft[L], 2)}× faster |`);
    }
    const best = Math.max(hf.decode_tps_eager, hf.decode_tps_static_compile ?? 0);
    console.log(
      `| decode batch 1 (tokens/s) | ${f(tps)} | ${f(hf.decode_tps_eager)} | ${
        hf.decode_tps_static_compile ? f(hf.decode_tps_static_compile) : hf.compile_error ?? "not run"
      } | ${f(tps / best, 2)}× |`,
    );
    console.log(
      `| decode as % of copy ceiling | ${f(100 * tps / ceilingTps)}% | ${f(100 * hf.decode_tps_eager / hfCeil)}% | ${
        hf.decode_tps_static_compile ? f(100 * hf.decode_tps_static_compile / hfCeil) + "%" : "–"
      } | |`,
    );
  }
}
if (values.peer) {
  const r = spawnSync("python3", ["bench/gpt_fast_peer.py", "--model", modelDir, "--prompt", "128", "--decode", String(numDecode)], {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "inherit"],
    timeout: 400_000,
  });
  const line = (r.stdout ?? "").split("\n").find((l) => l.startsWith("PEER_RESULT "));
  if (!line) {
    console.log(`gpt-fast-style peer failed (exit ${r.status}): ${(r.stdout ?? "").slice(-500)}`);
  } else {
    const p = JSON.parse(line.slice("PEER_RESULT ".length)) as { decode_tps: number; copy_Bps: number; weight_bytes: number; torch: string };
    result.peer = p;
    const pCeil = p.copy_Bps / p.weight_bytes;
    console.log(`\ngpt-fast-style PyTorch peer (bench/gpt_fast_peer.py, torch ${p.torch}, same GPU, same run; its copy ${f(p.copy_Bps / 1e12, 3)} TB/s):`);
    console.log(
      `| decode batch 1 | llmrt ${f(tps)} tokens/s = ${f(100 * tps / ceilingTps)}% of the copy ceiling | peer ${f(p.decode_tps)} tokens/s = ${
        f(100 * p.decode_tps / pCeil)
      }% of its own copy, ${f(100 * p.decode_tps * stepBytes / copyBps)}% of llmrt's ceiling (llmrt's step bytes) | llmrt / peer ${
        f(tps / p.decode_tps, 2)
      }× (overlapped ${f(overlapped.tps / p.decode_tps, 2)}×) |`,
    );
  }
}
if (process.env.LLMRT_BENCH_JSON) fs.writeFileSync(process.env.LLMRT_BENCH_JSON, JSON.stringify(result, null, 1));
kv.dispose();
session.dispose();
