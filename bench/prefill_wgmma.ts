/**
 * Prefill attention on the Hopper warpgroup-MMA kernel (flash_prefill_wg, `wgmmaPrefill`) against the default
 * flash_prefill, end to end on one engine: two CUDA sessions of the same engine (wgmmaPrefill off / on), for each
 * prompt length the last position's logits of both (relative L2 difference, argmax) and the time to first token of
 * both (one prefill step + greedy sample + the id on the host, median of `--reps`, the two sessions alternating).
 *
 *   bun bench/prefill_wgmma.ts --model DIR [--prompt-lens 100,777,2048] [--reps 5] [--profile]
 *
 * --profile also prints where the longest prompt's prefill step goes with the kernel on (eager launches).
 * LLMRT_BENCH_JSON=FILE writes the numbers as JSON. Needs an sm_90 device (elsewhere both sessions run flash_prefill).
 */
import * as fs from "node:fs";
import process from "node:process";
import { parseArgs } from "node:util";
import { buildSync } from "../lib/builder/builder.ts";
import { AutoModelForCausalLM } from "../lib/models/llama.ts";
import type { CudaKvCache } from "../lib/backends/cuda/session.ts";
import { Session } from "../lib/runtime/session.ts";
import { greedyStepper, launchTotals } from "./batch1.ts";

const { values } = parseArgs({
  args: process.argv.slice(2),
  options: { model: { type: "string" }, "prompt-lens": { type: "string" }, reps: { type: "string" }, profile: { type: "boolean" } },
});
if (!values.model) throw new Error("usage: bun bench/prefill_wgmma.ts --model DIR [--prompt-lens 100,777,2048] [--reps 5] [--profile]");
const promptLens = (values["prompt-lens"] ?? "100,777,2048").split(",").map(Number);
const reps = Number(values.reps ?? 5);
const bs = 32;
const maxLen = Math.max(...promptLens);
const maxSeqLen = Math.ceil((maxLen + 64) / bs) * bs;

const m = AutoModelForCausalLM.fromHuggingFace(values.model, { dtype: "bfloat16" });
const engine = buildSync(m, { backend: "cuda", maxBatchSize: 1, maxNumTokens: maxLen, maxSeqLen, tokensPerBlock: bs });
m.close();
const base = Session.fromSerializedEngine(engine, { backend: "cuda", wgmmaPrefill: false });
const wg = Session.fromSerializedEngine(engine, { backend: "cuda", wgmmaPrefill: true });
console.log(`GPU ${base.cuda!.device.name} (${base.cuda!.device.arch}); model ${values.model}; wgmmaPrefill in effect: ${wg.cuda!.wgmmaPrefill}`);
const kvA = base.createKvCache(maxSeqLen / bs + 1), kvB = wg.createKvCache(maxSeqLen / bs + 1);
const stepOf = greedyStepper(Int32Array.from({ length: maxSeqLen / bs }, (_, i) => i));
const V = engine.plan.attributes.vocabSize;
let seed = 12345;
const rand = (n: number): number => {
  seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
  return seed % n;
};
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const argmax = (x: Float32Array): number => x.reduce((bi, v, i) => (v > x[bi] ? i : bi), 0);

const rows: Record<string, unknown>[] = [];
let worst = 0;
for (const L of promptLens) {
  const prompt = Array.from({ length: L }, () => rand(Math.min(V, 32000)));
  const la = new Float32Array(V), lb = new Float32Array(V), ids = new Int32Array(1);
  base.run(stepOf(prompt, 0), { logits: la, sampledIds: ids }, kvA);
  wg.run(stepOf(prompt, 0), { logits: lb, sampledIds: ids }, kvB);
  let d2 = 0, r2 = 0, nonFinite = 0;
  for (let i = 0; i < V; i++) {
    if (!Number.isFinite(lb[i])) nonFinite++;
    d2 += (lb[i] - la[i]) ** 2;
    r2 += la[i] ** 2;
  }
  const rel = Math.sqrt(d2 / r2);
  worst = Math.max(worst, nonFinite ? Infinity : rel);
  const ta: number[] = [], tb: number[] = [];
  const out = { sampledIds: ids };
  for (let i = 0; i < reps; i++) {
    let s = performance.now();
    base.run(stepOf(prompt, 0), out, kvA);
    ta.push(performance.now() - s);
    s = performance.now();
    wg.run(stepOf(prompt, 0), out, kvB);
    tb.push(performance.now() - s);
  }
  const row = { promptLen: L, logitsRelL2: rel, nonFinite, argmaxEqual: argmax(la) === argmax(lb), ttftFlashMs: median(ta), ttftWgmmaMs: median(tb) };
  rows.push(row);
  console.log(
    `prompt ${L}: logits rel L2 wgmma vs flash ${rel.toExponential(2)} (non-finite ${nonFinite}, argmax ${row.argmaxEqual ? "equal" : "differs"}); ` +
      `TTFT flash_prefill ${row.ttftFlashMs.toFixed(2)} ms, flash_prefill_wg ${row.ttftWgmmaMs.toFixed(2)} ms (median of ${reps})`,
  );
}
if (values.profile) {
  const p = wg.cuda!.profileEagerStep(stepOf(Array.from({ length: maxLen }, () => rand(Math.min(V, 32000))), 0), kvB as CudaKvCache);
  const sum = p.launches.reduce((a, l) => a + l.ms, 0);
  console.log(`prefill of ${maxLen} tokens with flash_prefill_wg, eager launches: ${sum.toFixed(3)} ms over ${p.launches.length} launches:`);
  for (const [name, e] of [...launchTotals(p.launches).entries()].sort((x, y) => y[1].ms - x[1].ms)) {
    console.log(`  ${name.padEnd(48)} ×${String(e.n).padStart(3)}  ${(e.ms * 1000).toFixed(1).padStart(9)} µs`);
  }
}
console.log(`SUMMARY prefill_wgmma: worst logits rel L2 ${worst.toExponential(2)} (${worst < 5e-2 ? "ok" : "FAIL"} at 5e-2)`);
if (process.env.LLMRT_BENCH_JSON) fs.writeFileSync(process.env.LLMRT_BENCH_JSON, JSON.stringify({ model: values.model, rows }, null, 1));
base.dispose();
wg.dispose();
