/**
 * Time to first token on the GPU, A/B in one process (issue 16 item 2): one engine, one CUDA session per variant
 * (session options), for each prompt length the last position's logits of every variant against the first
 * (bitwise equal or relative L2, argmax) and the TTFT of each (one prefill step + greedy sample + the id on the
 * host; the sessions take turns, median of --reps). With --profile, where each variant's prefill of the longest
 * prompt goes (eager launches, an event after each): per kernel, and each GEMM's TFLOP/s against a large
 * cuBLASLt GEMM timed in the same process (the measured dense bf16 ceiling). With --lm-head, the lm_head GEMM
 * (one row, fp32 out) under each batch-invariant algorithm choice. With --check-runs N, each variant's logits of N more
 * runs of every prompt against the first variant's (bitwise: a launch that read its input early would show here).
 *
 *   bun bench/prefill_ttft.ts --model DIR [--prompt-lens 128,2048] [--reps 7] [--variants default,noprune,wgmma,noinv]
 *     [--profile default,noprune] [--lm-head] [--piped-all] [--check-runs N] [--subsets REPS] [--idle MS]
 *
 * --subsets REPS: for the first variant at the longest prompt, graph replays (REPS of them, ~1 s) of subsets of its
 * step's launches — all, the GEMMs only, the rest only, the gate_up GEMMs only, one gate_up GEMM (15 × REPS), the
 * attention only — each between two `PHASE name startMs endMs` lines (epoch ms) so a clock log (nvidia-smi -lms)
 * lines up with it: is a GEMM slower in the step because of its neighbours or because of the load it runs under.
 * --idle MS: after the timed reps, every variant's TTFT again with the GPU idle MS ms before each step (median of 5).
 * --phases N: then, per prompt length, each variant's N steps back to back (synchronous, as the TTFT reps) as one PHASE
 * (`PHASE p<length>_<i>_<variant>`), twice, so a clock / energy log gives each variant's clock and energy a step.
 *
 * Variants: default (the session defaults), noprune (pruneLastLayer false), wgmma / flash (wgmmaPrefill true / false),
 * noinv (batchInvariant false), notune (gemmTune false: batch-invariant GEMMs take the bucket's heuristic pick), resid
 * (gemmResidual: the residual add in the o_proj / down GEMMs), wide (gemmTuneWide: 32 tuning candidates), fp8resid
 * (fp8GemmResidual: the same for FP8 GEMMs), fresh (fp8FreshPrompt: no kv_dequant_prefix for new prompts), fp8flat
 * (fp8FlatQuant: static-scale SiLU·mul quantize and quantize on the flat entry points), fp8attn (fp8AttnQuant: the
 * attention writes o_proj's e4m3 input), fp8prune (fp8PruneLastLayer: FP8 plans prune their last layer), fastsilu (fp8FastSilu: the prefill SiLU·mul quantize with
 * the hardware exp / division; not bitwise), s11 (the six same-bytes FP8 prefill switches of session 11), pdl (prefillPdl: the prefill's norms, RoPE, attention,
 * SiLU·mul and sampler with programmatic dependent launch), pcache (prefillPlanCache: a step reuses the launch list of an earlier step of its
 * shape), nopdl / nopcache (those two off), graphs (prefillGraphs: a seen step shape replays a CUDA graph), nofixed (invariantFixedGemm
 * false: shapes with no M-stable cuBLASLt algorithm keep cuBLASLt), nowide (invariantWideSearch false: session 16's
 * reference search), joined with "+" (e.g. wgmma+noprune). LLMRT_BENCH_JSON=FILE writes the numbers.
 */
import * as fs from "node:fs";
import process from "node:process";
import { parseArgs } from "node:util";
import { buildSync } from "../lib/builder/builder.ts";
import { openModel } from "../lib/quantization/prequantized.ts";
import type { CudaKvCache } from "../lib/backends/cuda/session.ts";
import type { Launch } from "../lib/backends/cuda/launch_types.ts";
import { CublasLtGemm } from "../lib/backends/cuda/gemm.ts";
import { Session } from "../lib/runtime/session.ts";
import type { SessionOptions } from "../lib/runtime/session_options.ts";
import { argmax, greedyStepper, launchTotals, relL2 } from "./batch1.ts";

const { values } = parseArgs({
  args: process.argv.slice(2),
  options: {
    model: { type: "string" },
    "prompt-lens": { type: "string" },
    reps: { type: "string" },
    variants: { type: "string" },
    profile: { type: "string" },
    "lm-head": { type: "boolean" },
    "piped-all": { type: "boolean" },
    "check-runs": { type: "string" },
    subsets: { type: "string" },
    idle: { type: "string" },
    phases: { type: "string" },
  },
});
if (!values.model) throw new Error("usage: bun bench/prefill_ttft.ts --model DIR [--prompt-lens 128,2048] [--reps 7] [--variants ...] [--profile ...]");
const promptLens = (values["prompt-lens"] ?? "128,2048").split(",").map(Number);
const reps = Number(values.reps ?? 7);
const variants = (values.variants ?? "default,noprune").split(",");
const profiled = values.profile ? values.profile.split(",") : [];
const bs = 32;
const maxLen = Math.max(...promptLens);
const maxSeqLen = Math.ceil((maxLen + 64) / bs) * bs;

const OPTION: Record<string, SessionOptions> = {
  default: {},
  noprune: { pruneLastLayer: false },
  wgmma: { wgmmaPrefill: true },
  noinv: { batchInvariant: false },
  flash: { wgmmaPrefill: false },
  notune: { gemmTune: false },
  resid: { gemmResidual: true },
  wide: { gemmTuneWide: true },
  fp8resid: { fp8GemmResidual: true },
  fresh: { fp8FreshPrompt: true },
  fp8flat: { fp8FlatQuant: true },
  fp8attn: { fp8AttnQuant: true },
  fp8prune: { fp8PruneLastLayer: true },
  fastsilu: { fp8FastSilu: true },
  s11: { fp8GemmResidual: true, fp8FreshPrompt: true, fp8FlatQuant: true, fp8AttnQuant: true, fp8PruneLastLayer: true },
  pdl: { prefillPdl: true },
  pcache: { prefillPlanCache: true },
  nopdl: { prefillPdl: false },
  nopcache: { prefillPlanCache: false },
  graphs: { prefillGraphs: true },
  nofixed: { invariantFixedGemm: false },
  nowide: { invariantWideSearch: false },
};
const optionsOf = (v: string): SessionOptions =>
  Object.assign(
    { backend: "cuda" },
    ...v.split("+").map((p) => {
      if (!OPTION[p]) throw new Error(`unknown variant part '${p}' (${Object.keys(OPTION).join(", ")})`);
      return OPTION[p];
    }),
  );

const t0 = performance.now();
// openModel: a pre-quantized checkpoint (e.g. tools/quant-packers/pack_fp8_torch.py's FP8 + FP8 KV) as it is packed.
const m = openModel(values.model, { dtype: "bfloat16" });
const engine = buildSync(m, { backend: "cuda", maxBatchSize: 1, maxNumTokens: maxLen, maxSeqLen, tokensPerBlock: bs });
m.close();
const a = engine.plan.attributes;
const sessions = variants.map((v) => Session.fromSerializedEngine(engine, optionsOf(v)));
const kvs = sessions.map((s) => s.createKvCache(maxSeqLen / bs + 1));
const dev = sessions[0].cuda!.device;
console.log(
  `GPU ${dev.name} (${dev.arch}); model ${values.model} (hidden ${a.hiddenSize}, ${a.numLayers} layers, vocab ${a.vocabSize}); engine + ${variants.length} sessions in ${
    ((performance.now() - t0) / 1000).toFixed(1)
  } s; variants ${variants.map((v, i) => `${v} (prune ${sessions[i].cuda!.pruneLastLayer}, wgmma ${sessions[i].cuda!.wgmmaPrefill})`).join(", ")}`,
);

// The measured ceiling: an 8192^3 bf16 GEMM of random operands under cuBLASLt's heuristic, median of 3 batches of 10.
const ceiling = (() => {
  using g = new CublasLtGemm(dev, {});
  using stream = dev.createStream();
  using e0 = dev.createEvent();
  using e1 = dev.createEvent();
  const N = 8192;
  using A = dev.alloc(N * N * 2);
  using B = dev.alloc(N * N * 2);
  using D = dev.alloc(N * N * 2);
  // Random bf16 operands (magnitude 2^-7 … 2^-4, either sign): constant ones draw less power and run faster.
  const chunk = 1 << 22;
  const h = new Uint16Array(chunk);
  let s = 12345;
  for (let i = 0; i < chunk; i++) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    h[i] = ((s >>> 16) & 0x8000) | ((120 + ((s >>> 8) & 3)) << 7) | ((s >>> 1) & 0x7f);
  }
  for (const buf of [A, B]) {
    buf.copyFromHost(h, { stream });
    for (let done = chunk; done < N * N;) {
      const n = Math.min(done, N * N - done);
      buf.copyFromDevice(buf, n * 2, { dstOffset: done * 2, stream });
      done += n;
    }
  }
  const run = (): void => g.run({ m: N, n: N, k: N, dtype: "bf16", a: A, b: B, d: D, transB: true, stream });
  run();
  const ts: number[] = [];
  for (let r = 0; r < 3; r++) {
    e0.record(stream);
    for (let i = 0; i < 10; i++) run();
    e1.record(stream);
    e1.synchronize();
    ts.push(e1.elapsedSince(e0) / 10);
  }
  const ms = ts.sort((x, y) => x - y)[1];
  return (2 * N ** 3) / (ms * 1e-3) / 1e12;
})();
console.log(`ceiling: 8192^3 bf16 GEMM of random operands (cuBLASLt heuristic) ${ceiling.toFixed(1)} TFLOP/s`);

const stepOf = greedyStepper(Int32Array.from({ length: maxSeqLen / bs }, (_, i) => i));
let seed = 12345;
const rand = (n: number): number => {
  seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
  return seed % n;
};
const median = (xs: number[]): number => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)];
const V = a.vocabSize;
const rows: Record<string, unknown>[] = [];
for (const L of promptLens) {
  const prompt = Array.from({ length: L }, () => rand(Math.min(V, 32000)));
  const logits = sessions.map((s, i) => {
    const lg = new Float32Array(V);
    const st = performance.now();
    s.run(stepOf(prompt, 0), { logits: lg, sampledIds: new Int32Array(1) }, kvs[i]);
    console.log(`  prompt ${L}, ${variants[i]}: first run (GEMM plans, bucket checks) ${(performance.now() - st).toFixed(1)} ms`);
    return lg;
  });
  const cmp = logits.map((lg) => {
    const x = new Uint32Array(lg.buffer), y = new Uint32Array(logits[0].buffer);
    let diff = 0, nonFinite = 0;
    for (let i = 0; i < V; i++) {
      if (x[i] !== y[i]) diff++;
      if (!Number.isFinite(lg[i])) nonFinite++;
    }
    return { bitsDiffer: diff, nonFinite, relL2: relL2(lg, logits[0]), argmaxEqual: argmax(lg) === argmax(logits[0]) };
  });
  if (variants.length > 2) {
    // Every pair, where the first variant is not the reference of interest.
    for (let i = 1; i < variants.length; i++) {
      for (let j = i + 1; j < variants.length; j++) {
        const x = new Uint32Array(logits[i].buffer), y = new Uint32Array(logits[j].buffer);
        let diff = 0;
        for (let v = 0; v < V; v++) if (x[v] !== y[v]) diff++;
        console.log(
          `prompt ${L}: logits ${variants[j]} vs ${variants[i]}: ${
            diff === 0
              ? "bitwise equal"
              : `${diff} differ, rel L2 ${relL2(logits[j], logits[i]).toExponential(2)}, argmax ${
                argmax(logits[j]) === argmax(logits[i]) ? "equal" : "differs"
              }`
          }`,
        );
      }
    }
  }
  const ts: number[][] = sessions.map(() => []);
  const out = { sampledIds: new Int32Array(1) };
  const repsT0 = Date.now();
  for (let r = 0; r < reps; r++) {
    sessions.forEach((s, i) => {
      const st = performance.now();
      s.run(stepOf(prompt, 0), out, kvs[i]);
      ts[i].push(performance.now() - st);
    });
    if (L >= 8192) console.log(`  prompt ${L}, rep ${r}: ${ts.map((t, i) => `${variants[i]} ${t[r].toFixed(1)} ms`).join(", ")}`);
  }
  if (values.subsets || values.idle) console.log(`PHASE ttft${L} ${repsT0} ${Date.now()}`);
  // --check-runs: every variant's logits again, N times, against the first variant's first run.
  const checkRuns = Number(values["check-runs"] ?? 0);
  if (checkRuns > 0) {
    const lg = new Float32Array(V), ref = new Uint32Array(logits[0].buffer), got = new Uint32Array(lg.buffer);
    const equalRuns = sessions.map((s, i) => {
      let eq = 0;
      for (let r = 0; r < checkRuns; r++) {
        s.run(stepOf(prompt, 0), { logits: lg, sampledIds: new Int32Array(1) }, kvs[i]);
        let same = true;
        for (let v = 0; v < V && same; v++) same = got[v] === ref[v];
        if (same) eq++;
      }
      return eq;
    });
    console.log(
      `prompt ${L}: logits bitwise equal to ${variants[0]}'s first run in ${variants.map((v, i) => `${v} ${equalRuns[i]}/${checkRuns}`).join(", ")} runs`,
    );
  }
  // Host vs device for the first variant: the host's time to enqueue the step (Session.launch returns before the
  // device is done), and the time per step of 5 steps enqueued back to back (the device's, where the host keeps up).
  const enq: number[] = [];
  const hostReps = L <= 8192 ? 5 : 0;
  for (let r = 0; r < hostReps; r++) {
    const st = performance.now();
    const p = sessions[0].launch(stepOf(prompt, 0), out, kvs[0]);
    enq.push(performance.now() - st);
    p.wait();
  }
  const pst = performance.now();
  const pend = Array.from({ length: hostReps }, () => sessions[0].launch(stepOf(prompt, 0), { sampledIds: new Int32Array(1) }, kvs[0]));
  for (const p of pend) p.wait();
  const piped = (performance.now() - pst) / 5;
  if (hostReps) {
    console.log(
      `prompt ${L}: ${variants[0]}: host enqueue ${median(enq).toFixed(3)} ms (median of 5); 5 steps back to back ${
        piped.toFixed(3)
      } ms a step (device time where the host keeps up)`,
    );
  }
  // --piped-all: the same host enqueue / back-to-back device time for every other variant.
  for (let i = 1; values["piped-all"] && i < sessions.length; i++) {
    const e: number[] = [];
    for (let r = 0; r < 5; r++) {
      const st = performance.now();
      const p = sessions[i].launch(stepOf(prompt, 0), out, kvs[i]);
      e.push(performance.now() - st);
      p.wait();
    }
    const st = performance.now();
    const ps = Array.from({ length: 5 }, () => sessions[i].launch(stepOf(prompt, 0), { sampledIds: new Int32Array(1) }, kvs[i]));
    for (const p of ps) p.wait();
    console.log(
      `prompt ${L}: ${variants[i]}: host enqueue ${median(e).toFixed(3)} ms (median of 5); 5 steps back to back ${
        ((performance.now() - st) / 5).toFixed(3)
      } ms a step`,
    );
  }
  // Every variant's device time: 5 steps back to back, 5 rounds with the sessions taking turns (median).
  const pipedOf: number[][] = sessions.map(() => []);
  for (let r = 0; r < (hostReps ? 5 : 0); r++) {
    sessions.forEach((s, i) => {
      const st = performance.now();
      const ps = Array.from({ length: 5 }, () => s.launch(stepOf(prompt, 0), { sampledIds: new Int32Array(1) }, kvs[i]));
      for (const p of ps) p.wait();
      pipedOf[i].push((performance.now() - st) / 5);
    });
  }
  const row = {
    promptLen: L,
    hostEnqueueMs: median(enq),
    pipelinedStepMs: piped,
    variants: variants.map((v, i) => ({
      variant: v,
      ttftMs: median(ts[i]),
      minMs: Math.min(...ts[i]),
      maxMs: Math.max(...ts[i]),
      ...(hostReps ? { deviceStepMs: median(pipedOf[i]) } : {}),
      ...cmp[i],
    })),
  };
  rows.push(row);
  for (const v of row.variants) {
    console.log(
      `prompt ${L}: ${v.variant.padEnd(16)} TTFT ${v.ttftMs.toFixed(3)} ms (min ${v.minMs.toFixed(3)}, max ${v.maxMs.toFixed(3)}, median of ${reps})${
        v.deviceStepMs !== undefined ? `, device step ${v.deviceStepMs.toFixed(3)} ms (5 back to back, median of 5)` : ""
      }; logits vs ${variants[0]}: ${
        v.bitsDiffer === 0 ? "bitwise equal" : `${v.bitsDiffer} differ, rel L2 ${v.relL2.toExponential(2)}, argmax ${v.argmaxEqual ? "equal" : "differs"}`
      }${v.nonFinite ? `, ${v.nonFinite} non-finite` : ""}`,
    );
  }
}

// --idle: TTFT when the step starts on an idle GPU (the power cap's controller has recovered), sessions taking turns.
const idleMs = Number(values.idle ?? 0);
const sleepSync = (ms: number): void => void Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
for (const L of idleMs > 0 ? promptLens : []) {
  const prompt = Array.from({ length: L }, () => rand(Math.min(V, 32000)));
  const ts: number[][] = sessions.map(() => []);
  const t0 = Date.now();
  for (let r = 0; r < 5; r++) {
    sessions.forEach((s, i) => {
      sleepSync(idleMs);
      const st = performance.now();
      s.run(stepOf(prompt, 0), { sampledIds: new Int32Array(1) }, kvs[i]);
      ts[i].push(performance.now() - st);
    });
  }
  console.log(`PHASE idle${L} ${t0} ${Date.now()}`);
  console.log(`prompt ${L} after ${idleMs} ms idle: ${variants.map((v, i) => `${v} ${median(ts[i]).toFixed(3)}`).join(" / ")} ms (median of 5)`);
}

// --phases: each variant's steps as one phase (twice, in turn), for the clock / energy log.
const phaseSteps = Number(values.phases ?? 0);
for (const L of phaseSteps > 0 ? promptLens : []) {
  const prompt = Array.from({ length: L }, () => rand(Math.min(V, 32000)));
  for (let round = 0; round < 2; round++) {
    sessions.forEach((s, i) => {
      const t0 = Date.now(), st = performance.now();
      for (let r = 0; r < phaseSteps; r++) s.run(stepOf(prompt, 0), { sampledIds: new Int32Array(1) }, kvs[i]);
      const ms = (performance.now() - st) / phaseSteps;
      console.log(`PHASE p${L}_${i}_${variants[i]} ${t0} ${Date.now()} ${phaseSteps}`);
      console.log(`phase p${L}_${i}_${variants[i]} (round ${round}): ${ms.toFixed(3)} ms a step over ${phaseSteps} steps`);
    });
  }
}

// --subsets: graph replays of parts of the first variant's step at the longest prompt (see the header).
const subsetReps = Number(values.subsets ?? 0);
if (subsetReps > 0) {
  const prompt = Array.from({ length: maxLen }, () => rand(Math.min(V, 32000)));
  const isGemm = (l: Launch): boolean => l.kind === "gemm" && l.m === maxLen;
  const maxN = (ls: readonly Launch[]): number => Math.max(...ls.map((l) => (isGemm(l) ? (l as { n: number }).n : 0)));
  const subsets: [string, (ls: readonly Launch[]) => Launch[], number][] = [
    ["all", (ls) => [...ls], subsetReps],
    ["gemms", (ls) => ls.filter((l) => l.kind === "gemm"), subsetReps],
    ["rest", (ls) => ls.filter((l) => l.kind !== "gemm"), subsetReps],
    ["gate_up", (ls) => ls.filter((l) => isGemm(l) && (l as { n: number }).n === maxN(ls)), subsetReps],
    ["gate_up1", (ls) => ls.filter((l) => isGemm(l) && (l as { n: number }).n === maxN(ls)).slice(0, 1), subsetReps * 15],
    ["attention", (ls) => ls.filter((l) => l.kind === "kernel" && l.kernel.startsWith("flash")), subsetReps],
    ["all", (ls) => [...ls], subsetReps],
  ];
  for (const [name, select, n] of subsets) {
    let count = 0;
    const t0 = Date.now();
    const r = sessions[0].cuda!.timeEagerLaunches(stepOf(prompt, 0), kvs[0] as CudaKvCache, (ls) => {
      const sel = select(ls);
      count = sel.length;
      return sel;
    }, n);
    console.log(`PHASE ${name} ${t0} ${Date.now()} ${n}`);
    console.log(
      `subset ${name.padEnd(10)} ${count} launches: ${(r.ms * 1000).toFixed(1)} µs a replay (${
        (r.ms * 1000 / count).toFixed(2)
      } µs a launch), ${n} replays; host: enqueue ${r.enqueueMs.toFixed(3)} ms, capture + instantiate ${r.captureMs.toFixed(3)} ms, upload ${
        r.uploadMs.toFixed(3)
      } ms`,
    );
  }
}

const gemmFlops = (name: string): number => {
  const mm = /^gemm (\d+)x(\d+)x(\d+)/.exec(name);
  return mm ? 2 * Number(mm[1]) * Number(mm[2]) * Number(mm[3]) : 0;
};
const profiles: Record<string, unknown> = {};
for (const v of profiled) {
  const i = variants.indexOf(v);
  if (i < 0) continue;
  for (const L of [...new Set([Math.min(...promptLens), maxLen])]) {
    const p = sessions[i].cuda!.profileEagerStep(stepOf(Array.from({ length: L }, () => rand(Math.min(V, 32000))), 0), kvs[i] as CudaKvCache);
    const sum = p.launches.reduce((x, l) => x + l.ms, 0);
    const totals = launchTotals(p.launches);
    let gemmMs = 0, gemmFloorMs = 0;
    const inpSt = performance.now();
    stepOf(Array.from({ length: L }, () => rand(Math.min(V, 32000))), 0);
    const inpMs = performance.now() - inpSt;
    console.log(
      `profile ${v}, prefill of ${L} tokens, eager launches: ${
        sum.toFixed(3)
      } ms over ${p.launches.length} launches; host before the first launch: staging + planning ${p.hostPlanMs.toFixed(3)} ms (the bench's step inputs ${
        inpMs.toFixed(3)
      } ms):`,
    );
    for (const [name, e] of [...totals.entries()].sort((x, y) => y[1].ms - x[1].ms)) {
      const f = gemmFlops(name) * e.n;
      const extra = f ? `  ${(f / (e.ms * 1e-3) / 1e12).toFixed(0)} TFLOP/s = ${(100 * f / (e.ms * 1e-3) / 1e12 / ceiling).toFixed(0)}% of the ceiling` : "";
      if (f) {
        gemmMs += e.ms;
        gemmFloorMs += f / (ceiling * 1e12) * 1e3;
      }
      console.log(`  ${name.padEnd(44)} ×${String(e.n).padStart(3)}  ${(e.ms * 1000).toFixed(1).padStart(9)} µs${extra}`);
    }
    console.log(`  GEMMs ${gemmMs.toFixed(3)} ms (at the ceiling: ${gemmFloorMs.toFixed(3)} ms); everything else ${(sum - gemmMs).toFixed(3)} ms`);
    profiles[`${v}@${L}`] = { ms: sum, gemmMs, gemmFloorMs, hostPlanMs: p.hostPlanMs, launches: Object.fromEntries(totals) };
  }
}

let lmHead: Record<string, number> | undefined;
if (values["lm-head"]) {
  // The lm_head GEMM of one row (fp32 logits) under the batch-invariant choices and the heuristic, random operands.
  const H = a.hiddenSize;
  using stream = dev.createStream();
  using e0 = dev.createEvent();
  using e1 = dev.createEvent();
  using A = dev.alloc(H * 2 * 16);
  using B = dev.alloc(V * H * 2);
  using D = dev.alloc(V * 4 * 16);
  A.fill(0x3c, { stream });
  B.fill(0x3b, { stream });
  lmHead = {};
  const modes: [string, CublasLtGemm][] = [
    ["pinned@256 (reference algorithm)", new CublasLtGemm(dev, { batchInvariant: true, invariantF32OutBuckets: false })],
    ["bucketed (fp32-out buckets)", new CublasLtGemm(dev, { batchInvariant: true })],
    ["heuristic (not invariant)", new CublasLtGemm(dev, {})],
  ];
  for (const [name, g] of modes) {
    const run = (): void => g.run({ m: 1, n: V, k: H, dtype: "bf16", outDtype: "fp32", a: A, b: B, d: D, transB: true, stream });
    run();
    const ts: number[] = [];
    for (let r = 0; r < 3; r++) {
      e0.record(stream);
      for (let i = 0; i < 20; i++) run();
      e1.record(stream);
      e1.synchronize();
      ts.push(e1.elapsedSince(e0) / 20);
    }
    const ms = median(ts);
    lmHead[name] = ms;
    console.log(`lm_head 1 x ${V} x ${H} (fp32 out) ${name}: ${(ms * 1000).toFixed(1)} µs = ${(V * H * 2 / (ms * 1e-3) / 1e12).toFixed(2)} TB/s of weights`);
    if (name.startsWith("bucketed")) console.log(`  bucket checks: ${JSON.stringify(g.invariantBucketStats)}`);
    g.dispose();
  }
}
if (process.env.LLMRT_BENCH_JSON) {
  fs.writeFileSync(process.env.LLMRT_BENCH_JSON, JSON.stringify({ gpu: dev.name, model: values.model, ceiling, rows, profiles, lmHead }, null, 1));
}
console.log(
  `SUMMARY prefill_ttft: ${
    rows.map((r) => {
      const vs = (r as { promptLen: number; variants: { variant: string; ttftMs: number; deviceStepMs?: number; bitsDiffer: number }[] }).variants;
      return `L${(r as { promptLen: number }).promptLen} ${
        vs.map((v) =>
          `${v.variant} ${v.ttftMs.toFixed(2)}${v.deviceStepMs !== undefined ? ` (dev ${v.deviceStepMs.toFixed(2)})` : ""}${v.bitsDiffer ? "*" : ""}`
        )
          .join(" / ")
      }`;
    }).join("; ")
  } ms: TTFT (device step) (* = logits not bitwise equal to ${variants[0]})`,
);
kvs.forEach((k) => k.dispose());
sessions.forEach((s) => s.dispose());
