/**
 * Batch-1 decode with and without programmatic dependent launch (PDL), one engine, one process: the
 * same greedy run through a session with `pdl: false` and one with `pdl: true` must give the same ids
 * and bitwise the same logits; then each session's decode graph replay is timed at several context
 * lengths (the decode-attention share grows with the context), beside the device-copy ceiling measured
 * in the same process.
 *
 *   bun bench/decode_pdl.ts --model DIR [--ctx 128,4096,32768] [--decode 256] [--check 32] [--baseline] [--sk]
 *
 * --sk [--b JSON]: the two sessions are decode_attention (A) vs decode_attention_sk (B, `decodeSplitK`, plus the
 * session options in --b, e.g. '{"gemvSplitK":true}'), both with PDL (--c JSON: a third session C, A's options plus these):
 * different kernels, so the logits are compared by their largest difference relative to the largest |logit|
 * (and the greedy ids up to the first difference) instead of bit for bit; the graph replay is also shown as
 * a share of what the weights + the KV bytes at that context allow at the copy bandwidth.
 *
 * --ab JSON: as --sk with A the default session options and B those plus JSON (e.g. '{"decodeL2Prefetch":true}').
 *
 * --baseline: one session with the default options only (no `pdl` key: runs on trees without it), for
 * a before/after of the same measurements.
 *
 * Decode tokens/s = `--decode` graph-replayed steps after a 128-token prompt (each step syncs on its
 * sampled id, as bench/latency.ts). "graph" = mean of 50 replays of the bucket-1 decode graph at
 * position ctx − 1 (the KV cache past the prompt holds whatever earlier steps left: timing only).
 * Exit status 1 when the two sessions disagree. LLMRT_BENCH_JSON=FILE also writes the numbers.
 */
import * as fs from "node:fs";
import process from "node:process";
import { parseArgs } from "node:util";
import { buildSync } from "../lib/builder/builder.ts";
import { AutoModelForCausalLM } from "../lib/models/llama.ts";
import type { CudaKvCache } from "../lib/backends/cuda/session.ts";
import { Session } from "../lib/runtime/session.ts";
import { CudaDevice } from "../lib/cuda/device.ts";
import { deviceWeightBytes, greedyStepper } from "./batch1.ts";
import { copyCeiling, describeCeiling } from "./copy_bandwidth.ts";

const { values } = parseArgs({
  args: process.argv.slice(2),
  options: {
    model: { type: "string" },
    ctx: { type: "string" },
    decode: { type: "string" },
    check: { type: "string" },
    baseline: { type: "boolean" },
    sk: { type: "boolean" },
    ab: { type: "string" },
    b: { type: "string" },
    c: { type: "string" },
  },
});
if (!values.model) throw new Error("usage: bun bench/decode_pdl.ts --model DIR [--ctx 128,4096,32768] [--decode 256] [--check 32]");
const ctxs = (values.ctx ?? "128,4096,32768").split(",").map(Number);
const numDecode = Number(values.decode ?? 256);
const numCheck = Number(values.check ?? 32);
const bs = 32;
const maxSeqLen = Math.ceil((Math.max(...ctxs, 128 + numCheck + numDecode + 16) + 64) / bs) * bs;

const m = AutoModelForCausalLM.fromHuggingFace(values.model, { dtype: "bfloat16" });
const engine = buildSync(m, { backend: "cuda", maxBatchSize: 1, maxNumTokens: 128, maxSeqLen, tokensPerBlock: bs });
m.close();
const weightBytes = engine.tensorNames().reduce((a, n) => a + engine.tensorInfo(n).shape.reduce((x, y) => x * y, 1) * engine.plan.elementBytes, 0);
const V = engine.plan.attributes.vocabSize;
const blocks = Int32Array.from({ length: maxSeqLen / bs }, (_, i) => i);
const stepOf = greedyStepper(blocks);
let seed = 12345;
const prompt = Array.from({ length: 128 }, () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) % Math.min(V, 32000));

interface Run {
  ids: number[];
  logits: Float32Array[];
  tps: number;
  graphMs: Record<number, number>;
  pdl: boolean;
}

function runOne(pdl: boolean | undefined, extra?: Record<string, boolean>): Run {
  const session = Session.fromSerializedEngine(engine, pdl === undefined ? { backend: "cuda" } : { backend: "cuda", pdl, ...extra });
  try {
    const cuda = session.cuda!;
    const kv = session.createKvCache(blocks.length + 1);
    const out = { sampledIds: new Int32Array(1) };
    session.run(stepOf(prompt, 0), out, kv);
    const ids = [out.sampledIds[0]];
    const logits: Float32Array[] = [];
    let pos = prompt.length;
    for (let i = 0; i < numCheck; i++, pos++) {
      const l = new Float32Array(V);
      session.run(stepOf([ids[ids.length - 1]], pos), { sampledIds: out.sampledIds, logits: l }, kv);
      ids.push(out.sampledIds[0]);
      logits.push(l);
    }
    const t0 = performance.now();
    for (let i = 0; i < numDecode; i++, pos++) {
      session.run(stepOf([ids[ids.length - 1]], pos), out, kv);
      ids.push(out.sampledIds[0]);
    }
    const tps = numDecode / ((performance.now() - t0) / 1000);
    const graphMs: Record<number, number> = {};
    for (const c of ctxs) graphMs[c] = cuda.profileDecodeStep(stepOf([ids[ids.length - 1]], c - 1), kv as CudaKvCache, 50).graphMs;
    return { ids, logits, tps, graphMs, pdl: !!(cuda as { pdl?: boolean }).pdl };
  } finally {
    session.dispose();
  }
}

const ab: Record<string, boolean> | undefined = values.ab ? JSON.parse(values.ab) : undefined;
const sk = !!values.sk || !!ab;
const bOpts: Record<string, boolean> = ab ? ab : { decodeSplitK: true, ...JSON.parse(values.b ?? "{}") };
const [nameA, nameB] = ab ? ["default options", "B"] : ["decode_attention", "decode_attention_sk"];
const off = sk ? runOne(true, ab ? {} : { decodeSplitK: false }) : runOne(values.baseline ? undefined : false);
const on = values.baseline ? off : sk ? runOne(true, bOpts) : runOne(true);
const cOpts: Record<string, boolean> | undefined = sk && values.c ? JSON.parse(values.c) : undefined;
const third = cOpts ? runOne(true, cOpts) : undefined;
const dev = CudaDevice.open(0);
const ceiling = copyCeiling(dev);
const copyBps = ceiling.bps;
const gpu = dev.name;
dev.dispose();

let idsEqual = off.ids.length === on.ids.length && off.ids.every((x, i) => x === on.ids[i]);
let firstDiff = -1;
for (let s = 0; s < numCheck && firstDiff < 0; s++) {
  const a = new Uint32Array(off.logits[s].buffer), b = new Uint32Array(on.logits[s].buffer);
  for (let i = 0; i < a.length; i++) {
    if (a[i] !== b[i]) {
      firstDiff = s;
      break;
    }
  }
}
idsEqual &&= firstDiff < 0;
// --sk: largest |logit difference| / largest |logit| over the checked steps; first differing greedy id.
const relDiff = (x: Run, y: Run): number => {
  let worst = 0;
  for (let s = 0; s < numCheck; s++) {
    let mx = 0, d = 0;
    for (let i = 0; i < V; i++) {
      mx = Math.max(mx, Math.abs(x.logits[s][i]));
      d = Math.max(d, Math.abs(x.logits[s][i] - y.logits[s][i]));
    }
    worst = Math.max(worst, d / Math.max(mx, 1e-30));
  }
  return worst;
};
const worstRel = relDiff(off, on);
const firstIdDiff = off.ids.findIndex((x, i) => x !== on.ids[i]);
const a0 = engine.plan.attributes;
const kvBytesAt = (c: number): number => c * a0.numLayers * a0.numKvHeads * a0.headDim * 2 * engine.plan.elementBytes;
// Bytes a decode step reads: the weights less an untied embedding table (one row of it is read).
const embOp = engine.plan.ops.find((o) => o.type === "embedding") as { table: string } | undefined;
const headOp = engine.plan.ops.find((o) => o.type === "linear" && o.out === a0.logits) as { weight: string } | undefined;
const untied = embOp && headOp && embOp.table !== headOp.weight;
const readBytes = weightBytes - (untied ? engine.tensorInfo(embOp!.table).shape.reduce((x, y) => x * y, 1) * engine.plan.elementBytes : 0);
// The bytes a step reads (deviceWeightBytes leaves out an untied embedding table too; sessions 7–9 divided by all the weights).
const ceilingTps = copyBps / deviceWeightBytes(engine);
const f = (x: number, d = 1): string => x.toFixed(d);
console.log(`GPU ${gpu}; model ${values.model}: ${f(weightBytes / 1e9, 3)} GB of bf16 weights; maxSeqLen ${maxSeqLen}`);
console.log(`${describeCeiling(ceiling)} → decode ceiling ${f(ceilingTps)} tokens/s`);
if (sk) {
  console.log(
    `bytes a step reads: ${f(readBytes / 1e9, 3)} GB of weights${untied ? " (untied embedding table left out)" : ""} + KV ${
      ctxs.map((c) => `ctx ${c} ${f(kvBytesAt(c) / 1e9, 3)} GB`).join(", ")
    }`,
  );
  console.log(
    `${nameA} (A) vs ${nameB} (B: ${JSON.stringify(bOpts)}): ${numCheck} decode steps' logits max |diff| / max |logit| ${worstRel.toExponential(2)}; ` +
      `greedy ids ${firstIdDiff < 0 ? `equal (${off.ids.length})` : `equal up to index ${firstIdDiff} of ${off.ids.length}`}`,
  );
  if (third) {
    const d = third.ids.findIndex((x, i) => x !== off.ids[i]);
    console.log(
      `A vs C (${JSON.stringify(cOpts)}): logits max |diff| / max |logit| ${relDiff(off, third).toExponential(2)}; greedy ids ${
        d < 0 ? "equal" : `equal up to index ${d}`
      }`,
    );
  }
  const rows: [string, Run][] = [[`A ${nameA}`, off], [`B ${nameB}`, on], ...(third ? [["C", third] as [string, Run]] : [])];
  for (const [label, r] of rows) {
    console.log(
      `${label}: decode ${f(r.tps)} tokens/s = ${f((100 * r.tps) / ceilingTps)}% of the copy ceiling; graph replay ${
        ctxs.map((c) => `ctx ${c} ${f(r.graphMs[c] * 1000, 1)} µs (${f((100 * (readBytes + kvBytesAt(c))) / copyBps / (r.graphMs[c] / 1000))}% of weights+KV)`)
          .join(", ")
      }`,
    );
  }
} else if (!values.baseline) {
  console.log(
    `PDL on vs off: ${numCheck} decode steps' logits ${firstDiff < 0 ? "bitwise equal" : `differ from step ${firstDiff}`}; ${
      numCheck + numDecode + 1
    } greedy ids ${off.ids.every((x, i) => x === on.ids[i]) ? "equal" : "DIFFER"} (session pdl flags: ${off.pdl}, ${on.pdl})`,
  );
}
for (const r of values.baseline || sk ? [] : [off, on]) {
  console.log(
    `${values.baseline ? "baseline" : r.pdl ? "pdl on " : "pdl off"}: decode ${f(r.tps)} tokens/s = ${
      f((100 * r.tps) / ceilingTps)
    }% of the copy ceiling; graph replay ${ctxs.map((c) => `ctx ${c} ${f(r.graphMs[c] * 1000, 1)} µs`).join(", ")}`,
  );
}
if (process.env.LLMRT_BENCH_JSON) {
  fs.writeFileSync(
    process.env.LLMRT_BENCH_JSON,
    JSON.stringify(
      { gpu, weightBytes, copyBps, ceilingTps, equal: idsEqual, off: { tps: off.tps, graphMs: off.graphMs }, on: { tps: on.tps, graphMs: on.graphMs } },
      null,
      1,
    ),
  );
}
if (sk ? worstRel > 2e-2 : !idsEqual) process.exit(1);
