/**
 * Where a batch-1 decode graph's time goes between its kernels (issue 16 item 1): each variant is a CUDA session of one
 * engine, optionally with harness -D options for some kernel files (compile_pool.ts setHarnessDefines), all alive at
 * once and timed in turn (graph replay µs at each context, median of the rounds), the synced decode loop's tokens/s,
 * and the logits of a few decode steps bit for bit against the first variant. A variant marked "stamp" is built with
 * LLMRT_STAMP (common.cuh): its fused GEMVs and decode_attention_sk write per-block globaltimer stamps (entry, PDL wait
 * passed, end) to a device buffer; the bench replays the decode step (Session.run, graph) R times at each context and
 * prints, per kernel transition of the layer (qkv → attention → o_proj → gate_up → down → next qkv), where the time
 * between one kernel's end and the next one's goes.
 *
 *   bun bench/decode_gaps.ts --model DIR [--ctx 128,1024] [--variants JSON] [--stamp-reps 20] [--rounds 3] [--decode 32] [--breakdown]
 *
 * --variants: [{"label": "A", "opts": {...session options}, "defines": {"gemv.cu": ["-DX=1"]}, "stamp": true}, ...]
 *   (default: A default, S stamps, E LLMRT_PDL_EARLY on the GEMVs and the attention). A stamp variant's graph µs is
 *   the instrumented build's (its stamps cost a little); its transitions are the measurement.
 * --dump DIR: each stamp variant's first replay at each context, the records of its first 300 µs (raw, 4 u64 each) to
 *   DIR/stamps_<variant>_<ctx>.bin (per-block analysis offline).
 * --breakdown: then bench/decode_breakdown.ts's role table (marginal / alone) of the default session, the same engine.
 * LLMRT_BENCH_JSON=FILE: the per-launch stamp summaries and the A/B numbers as JSON.
 */
import * as fs from "node:fs";
import process from "node:process";
import { parseArgs } from "node:util";
import { buildSync } from "../lib/builder/builder.ts";
import { AutoModelForCausalLM } from "../lib/models/llama.ts";
import type { CudaKvCache } from "../lib/backends/cuda/session.ts";
import { setHarnessDefines } from "../lib/backends/cuda/compile_pool.ts";
import { Session } from "../lib/runtime/session.ts";
import { CudaDevice } from "../lib/cuda/device.ts";
import type { DeviceBuffer } from "../lib/cuda/memory.ts";
import { deviceWeightBytes, greedyStepper } from "./batch1.ts";
import { breakdown } from "./decode_breakdown.ts";
import { copyCeiling, describeCeiling } from "./copy_bandwidth.ts";
import { launchesOf, type LaunchSum, timerStep, transitions } from "./stamp_gaps.ts";

interface Variant {
  readonly label: string;
  readonly opts?: Record<string, boolean>;
  readonly defines?: Record<string, string[]>;
  readonly stamp?: boolean;
}

const { values } = parseArgs({
  args: process.argv.slice(2),
  options: {
    model: { type: "string" },
    ctx: { type: "string" },
    variants: { type: "string" },
    "stamp-reps": { type: "string" },
    rounds: { type: "string" },
    decode: { type: "string" },
    reps: { type: "string" },
    breakdown: { type: "boolean" },
    dump: { type: "string" },
  },
});
if (!values.model) throw new Error("usage: bun bench/decode_gaps.ts --model DIR [--ctx 128,1024] [--variants JSON] [--stamp-reps 20]");
const ctxs = (values.ctx ?? "128,1024").split(",").map(Number);
const stampReps = Number(values["stamp-reps"] ?? 20);
const rounds = Number(values.rounds ?? 3);
const numDecode = Number(values.decode ?? 32);
const reps = Number(values.reps ?? 30);
const numCheck = 2;
const EARLY = ["-DLLMRT_PDL_EARLY=1"];
const variants: Variant[] = values.variants ? JSON.parse(values.variants) : [
  { label: "A default" },
  { label: "S stamps", stamp: true },
  { label: "E pdl-early", defines: { "gemv.cu": EARLY, "decode_attention_sk.cu": EARLY } },
];
const bs = 32;
const maxSeqLen = Math.ceil((Math.max(...ctxs, 128 + numCheck + numDecode + 16) + 64) / bs) * bs;
const f = (x: number, d = 1): string => x.toFixed(d);
const med = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);

const tBuild = performance.now();
const m = AutoModelForCausalLM.fromHuggingFace(values.model, { dtype: "bfloat16" });
const engine = buildSync(m, { backend: "cuda", maxBatchSize: 1, maxNumTokens: 128, maxSeqLen, tokensPerBlock: bs });
m.close();
const V = engine.plan.attributes.vocabSize;
const blocks = Int32Array.from({ length: maxSeqLen / bs }, (_, i) => i);
const stepOf = greedyStepper(blocks);
let seed = 12345;
const prompt = Array.from({ length: 128 }, () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) % Math.min(V, 32000));
console.log(`engine built in ${f((performance.now() - tBuild) / 1000)} s`);

// The stamp buffer: [0] records written, records from u64 8 on, 4 u64 each (common.cuh LLMRT_STAMP).
const CAP = 1_000_000;
const STAMP_BYTES = 64 + CAP * 32;

interface Live {
  v: Variant;
  session: Session;
  kv: CudaKvCache;
  stamp: DeviceBuffer | null;
  ids: number[];
  logits: Float32Array[];
  tps: number;
  graphMs: Record<number, number[]>;
}

const live: Live[] = [];
const device = CudaDevice.open(0); // the primary context, which the sessions share: the stamp buffers live there
for (const v of variants) {
  const t0 = performance.now();
  // A stamp build needs the buffer's address at compile time: allocate it on the device the session will use (the
  // primary context is shared), then build the session with the address as a define.
  let stamp: Live["stamp"] = null;
  const byFile = new Map<string, string[]>(Object.entries(v.defines ?? {}));
  if (v.stamp) {
    stamp = device.alloc(STAMP_BYTES);
    const def = [`-DLLMRT_STAMP=0x${stamp.ptr.toString(16)}ull`, `-DLLMRT_STAMP_CAP=${CAP}ull`];
    for (const file of ["gemv.cu", "decode_attention_sk.cu"]) byFile.set(file, [...(byFile.get(file) ?? []), ...def]);
  }
  setHarnessDefines(byFile);
  const session = Session.fromSerializedEngine(engine, { backend: "cuda", ...(v.opts ?? {}) });
  setHarnessDefines(new Map());
  const kv = session.createKvCache(blocks.length + 1) as CudaKvCache;
  live.push({ v, session, kv, stamp, ids: [], logits: [], tps: 0, graphMs: Object.fromEntries(ctxs.map((c) => [c, []])) });
  console.log(`session ${v.label} ready in ${f((performance.now() - t0) / 1000)} s`);
}

// Greedy prompt + checked steps + the synced decode loop, each session in turn.
for (const L of live) {
  const out = { sampledIds: new Int32Array(1) };
  L.session.run(stepOf(prompt, 0), out, L.kv);
  L.ids = [out.sampledIds[0]];
  let pos = prompt.length;
  for (let i = 0; i < numCheck; i++, pos++) {
    const l = new Float32Array(V);
    L.session.run(stepOf([L.ids[L.ids.length - 1]], pos), { sampledIds: out.sampledIds, logits: l }, L.kv);
    L.ids.push(out.sampledIds[0]);
    L.logits.push(l);
  }
  const t0 = performance.now();
  for (let i = 0; i < numDecode; i++, pos++) {
    L.session.run(stepOf([L.ids[L.ids.length - 1]], pos), out, L.kv);
    L.ids.push(out.sampledIds[0]);
  }
  L.tps = numDecode / ((performance.now() - t0) / 1000);
}
for (let r = 0; r < rounds; r++) {
  for (const c of ctxs) {
    for (const L of live) L.graphMs[c].push(L.session.cuda!.timeDecodeLaunches(stepOf([prompt[3]], c - 1), L.kv, (ls) => [...ls], reps));
  }
}
const dev0 = live[0].session.cuda!.device;
const ceiling = copyCeiling(dev0);
const stepBytes = deviceWeightBytes(engine);
const a0 = engine.plan.attributes;
const kvBytesAt = (c: number): number => c * a0.numLayers * a0.numKvHeads * a0.headDim * 2 * engine.plan.elementBytes;
console.log(`GPU ${dev0.name}; model ${values.model}; ${f(stepBytes / 1e9, 3)} GB a step`);
console.log(describeCeiling(ceiling));
const ceilTps = ceiling.bps / stepBytes;
const ref = live[0];
for (const L of live) {
  let diff = "bitwise equal";
  for (let s = 0; s < numCheck; s++) {
    const a = new Uint32Array(ref.logits[s].buffer), b = new Uint32Array(L.logits[s].buffer);
    let n = 0;
    for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) n++;
    if (n > 0) {
      diff = `step ${s}: ${n} logits differ`;
      break;
    }
  }
  const idsEq = L.ids.every((x, i) => x === ref.ids[i]);
  console.log(
    `${L.v.label.padEnd(18)} graph ${
      ctxs.map((c) =>
        `ctx ${c} ${f(med(L.graphMs[c]) * 1000)} µs (${f((100 * (stepBytes + kvBytesAt(c))) / ceiling.bps / (med(L.graphMs[c]) / 1000))}%) [${
          L.graphMs[c].map((x) => f(x * 1000)).join(" ")
        }]`
      ).join("; ")
    }; decode ${f(L.tps)} tok/s (${f((100 * L.tps) / ceilTps)}%); logits vs A ${diff}; ids ${idsEq ? "equal" : "DIFFER"}`,
  );
}

const json: Record<string, unknown> = {
  ceilingBps: ceiling.bps,
  stepBytes,
  variants: live.map((L) => ({ label: L.v.label, graphMs: L.graphMs, tps: L.tps })),
  stamps: {} as Record<string, unknown>,
};
for (const L of live.filter((x) => x.stamp)) {
  const buf = L.stamp!;
  for (const c of ctxs) {
    const replays: LaunchSum[][] = [];
    let tick = Infinity;
    for (let r = 0; r < stampReps; r++) {
      buf.copyFromHost(new BigUint64Array(1));
      L.session.run(stepOf([prompt[3]], c - 1), { sampledIds: new Int32Array(1) }, L.kv);
      const cnt = new BigUint64Array(1);
      buf.copyToHost(cnt);
      const n = Math.min(Number(cnt[0]), CAP);
      const rec = new BigUint64Array(4 * n);
      buf.copyToHost(rec, { offset: 64 });
      if (r === 0) {
        tick = timerStep(rec, n);
        if (values.dump) {
          let t0 = Infinity;
          for (let i = 0; i < n; i++) t0 = Math.min(t0, Number(rec[4 * i]));
          const keep: number[] = [];
          for (let i = 0; i < n; i++) if (Number(rec[4 * i]) - t0 < 300_000) keep.push(i);
          const out = new BigUint64Array(4 * keep.length);
          keep.forEach((i, j) => out.set(rec.subarray(4 * i, 4 * i + 4), 4 * j));
          fs.writeFileSync(`${values.dump}/stamps_${L.v.label.split(" ")[0]}_${c}.bin`, new Uint8Array(out.buffer));
        }
      }
      replays.push(launchesOf(rec, n));
    }
    const names = replays[0].map((l) => l.name);
    const same = replays.filter((r) => r.length === names.length && r.every((l, i) => l.name === names[i])).length;
    console.log(
      `\n== ${L.v.label}: stamps at ctx ${c}, ${stampReps} replays (Session.run each; ${same} with the first one's launches), ${names.length} stamped ` +
        `launches a replay; globaltimer step seen ${tick} ns`,
    );
    const tr = transitions(replays);
    console.log(
      `  ${"transition".padEnd(20)} ${"count".padStart(5)} ${"blocks".padStart(6)} ${"perSm".padStart(5)} ${"span".padStart(7)} ${"lag".padStart(6)} ${
        "release".padStart(7)
      } ${"busy".padStart(7)} ${"busy90".padStart(7)} ${"prevTail".padStart(8)} ${"allIn".padStart(7)}`,
    );
    let total = 0;
    for (const t of tr) {
      total += (t.span * t.count) / same;
      console.log(
        `  ${t.key.padEnd(20)} ${String(t.count).padStart(5)} ${String(t.blocks).padStart(6)} ${String(t.perSm).padStart(5)} ${f(t.span, 2).padStart(7)} ${
          f(t.lag, 2).padStart(6)
        } ${f(t.release, 2).padStart(7)} ${f(t.busy, 2).padStart(7)} ${f(t.busy90, 2).padStart(7)} ${f(t.prevTail, 2).padStart(8)} ${
          f(t.allIn, 2).padStart(7)
        }`,
      );
    }
    const spanAll = mean(replays.map((r) => r[r.length - 1].maxT2 - r[0].firstT0));
    console.log(
      `  first stamped entry → last stamped end ${f(spanAll)} µs (per replay: the spans sum to ${
        f(total)
      }). span = this end − previous end; lag = first entry − ` +
        `previous last entry; release = first pdlWait passed − previous end; busy(90) = last (90th-pct) end − first wait passed; prevTail = previous ` +
        `end − its 90th-pct end; allIn = last entry − previous end; perSm = most blocks on one SM at once`,
    );
    const r0 = replays[Math.floor(replays.length / 2)];
    console.log(`  one replay, first 12 and last 3 launches (µs): name n SMs perSm | firstT0 lastT0 | minT1 maxT1 | minT2 p10T2 p90T2 maxT2`);
    for (const l of [...r0.slice(0, 12), ...r0.slice(-3)]) {
      console.log(
        `    ${l.name.padEnd(8)} ${String(l.n).padStart(5)} ${String(l.sms).padStart(4)} ${String(l.perSm).padStart(2)} | ${f(l.firstT0, 2)} ${
          f(l.lastT0, 2)
        } | ${f(l.minT1, 2)} ${f(l.maxT1, 2)} | ${f(l.minT2, 2)} ${f(l.p10T2, 2)} ${f(l.p90T2, 2)} ${f(l.maxT2, 2)}`,
      );
    }
    (json.stamps as Record<string, unknown>)[`${L.v.label}@${c}`] = { transitions: tr, replay: r0 };
  }
}
if (process.env.LLMRT_BENCH_JSON) fs.writeFileSync(process.env.LLMRT_BENCH_JSON, JSON.stringify(json));
for (const L of live) {
  L.kv.dispose();
  L.session.dispose();
  L.stamp?.dispose();
}
if (values.breakdown) breakdown(engine, [1], ctxs, [["default", {}]]);
device.dispose();
process.exit(0);
