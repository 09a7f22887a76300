/**
 * Every cuBLASLt algorithm on the table for the prefill linears (issue 16, session 16): for each (linear, M), the
 * heuristic's candidates (split-K included), split-K variants of its first non-split ones and, with --variants, each
 * heuristic algorithm id re-configured over its tile / stage / cluster ids (CublasLtGemm.surveyAlgorithms) — timed
 * warm on random A and B, the fastest also checked bitwise against the batch-invariant reference algorithm (the pick
 * for INVARIANT_REF_M rows: a bucket may only use an algorithm that rounds rows as it does). Beside them, in the same
 * process: the engine's choice (batch-invariant, bucketed, tuned over 32 candidates: the session defaults) and the
 * heuristic's first pick for M.
 *
 *   bun bench/prefill_gemm_algos.ts [--shapes qkv,o_proj] [--ms 2048] [--top 12] [--variants] [--max-timed 400]
 *
 * Prints, per (linear, M): the engine's and the heuristic's TFLOP/s, then the fastest algorithms (config ids, split-K,
 * TFLOP/s, bitwise verdict). LLMRT_BENCH_JSON=FILE writes every row.
 */
import * as fs from "node:fs";
import process from "node:process";
import { parseArgs } from "node:util";
import { CudaDevice } from "../lib/cuda/device.ts";
import { CublasLtGemm, type GemmAlgoSurveyRow, INVARIANT_REF_M } from "../lib/backends/cuda/gemm.ts";

const { values } = parseArgs({
  args: process.argv.slice(2),
  options: {
    shapes: { type: "string" },
    ms: { type: "string" },
    top: { type: "string" },
    variants: { type: "boolean" },
    "max-timed": { type: "string" },
  },
});
const SHAPES: Record<string, [number, number]> = {
  qkv: [3072, 2048],
  o_proj: [2048, 2048],
  gate_up: [16384, 2048],
  down: [2048, 8192],
  qkv8b: [6144, 4096],
  o_proj8b: [4096, 4096],
};
const shapes = (values.shapes ?? "qkv,o_proj").split(",");
const Ms = (values.ms ?? "2048").split(",").map(Number);
const top = Number(values.top ?? 12);

const dev = CudaDevice.open(0);
using stream = dev.createStream();
using e0 = dev.createEvent();
using e1 = dev.createEvent();
let big = 0;
for (const s of shapes) for (const m of Ms) big = Math.max(big, m * SHAPES[s][1], SHAPES[s][0] * SHAPES[s][1], m * SHAPES[s][0]);
using A = dev.alloc(big * 2);
using B = dev.alloc(big * 2);
using D = dev.alloc(big * 2);
{
  // Random bf16 of magnitude 2^-7 … 2^-4, either sign (as bench/prefill_gemm.ts --random-a), 8 MiB repeated.
  const chunk = Math.min(big, 1 << 22);
  const h = new Uint16Array(chunk);
  let s = 12345;
  for (let i = 0; i < chunk; i++) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    h[i] = ((s >>> 16) & 0x8000) | ((120 + ((s >>> 8) & 3)) << 7) | ((s >>> 1) & 0x7f);
  }
  for (const buf of [A, B]) {
    buf.copyFromHost(h, { stream });
    for (let done = chunk; done < big;) {
      const n = Math.min(done, big - done);
      buf.copyFromDevice(buf, n * 2, { dstOffset: done * 2, stream });
      done += n;
    }
  }
  stream.synchronize();
}

/** Median ms of one GEMM call over 3 timed batches (warm B). */
function time(g: CublasLtGemm, m: number, n: number, k: number): number {
  const run = (): void => g.run({ m, n, k, dtype: "bf16", a: A, b: B, d: D, transB: true, stream });
  run();
  run();
  const iters = Math.max(4, Math.min(50, Math.round(2e12 / (2 * m * n * k))));
  const ts: number[] = [];
  for (let r = 0; r < 3; r++) {
    e0.record(stream);
    for (let i = 0; i < iters; i++) run();
    e1.record(stream);
    e1.synchronize();
    ts.push(e1.elapsedSince(e0) / iters);
  }
  return ts.sort((a, b) => a - b)[1];
}
const tf = (m: number, n: number, k: number, ms: number): number => (2 * m * n * k) / (ms * 1e-3) / 1e12;

const engine = new CublasLtGemm(dev, { batchInvariant: true, tune: true, tuneCandidates: 32, timingCacheDir: null });
const heuristic = new CublasLtGemm(dev, {});
const survey = new CublasLtGemm(dev, {});
console.log(`GPU ${dev.name}; cuBLASLt ${CublasLtGemm.version()}; reference M ${INVARIANT_REF_M}; A and B random bf16`);
const out: Record<string, unknown>[] = [];
const fmt = (r: GemmAlgoSurveyRow, m: number, n: number, k: number): string =>
  `id ${r.id} tile ${r.tile} stages ${r.stages} cluster ${r.cluster} swz ${r.swizzle} cust ${r.custom} splitK ${r.splitK}/${r.reduction} ` +
  `rank ${r.heuristicRank} ws ${(r.ws / 1048576).toFixed(1)}M: ${(r.ms * 1e3).toFixed(1)} us ${tf(m, n, k, r.ms).toFixed(0)} TFLOP/s ` +
  `${r.isRef ? "REF" : r.sameRowsAsRef === null ? "unchecked" : r.sameRowsAsRef ? "same-rows" : "DIFFERS"}`;
for (const name of shapes) {
  const [n, k] = SHAPES[name];
  for (const m of Ms) {
    const eMs = time(engine, m, n, k), hMs = time(heuristic, m, n, k);
    const t0 = performance.now();
    const rows = survey.surveyAlgorithms({ m, n, k, a: A, b: B, d: D, stream }, {
      variants: !!values.variants,
      maxTimed: Number(values["max-timed"] ?? 400),
    });
    const surveyS = (performance.now() - t0) / 1e3;
    // The engine's pick again after the survey (clock drift between the two).
    const eMs2 = time(engine, m, n, k);
    console.log(
      `== ${name} ${m}x${n}x${k}: engine (invariant, bucketed, tuned 32) ${(eMs * 1e3).toFixed(1)} / ${(eMs2 * 1e3).toFixed(1)} us = ${
        tf(m, n, k, Math.min(eMs, eMs2)).toFixed(0)
      } TFLOP/s; heuristic ${(hMs * 1e3).toFixed(1)} us = ${tf(m, n, k, hMs).toFixed(0)}; ${rows.length} algorithms timed in ${surveyS.toFixed(1)} s`,
    );
    rows.slice(0, top).forEach((r, i) => console.log(`  #${i} ${fmt(r, m, n, k)}`));
    const same = rows.filter((r) => r.sameRowsAsRef === true).slice(0, 5);
    console.log(`  fastest rounding as the reference:`);
    for (const r of same) console.log(`    ${fmt(r, m, n, k)}`);
    const split = rows.filter((r) => r.splitK > 1).slice(0, 3);
    console.log(`  fastest split-K:`);
    for (const r of split) console.log(`    ${fmt(r, m, n, k)}`);
    const ref = rows.find((r) => r.isRef);
    if (ref) console.log(`  reference: ${fmt(ref, m, n, k)}`);
    out.push({ name, m, n, k, engineMs: [eMs, eMs2], heuristicMs: hMs, rows });
  }
}
engine.dispose();
heuristic.dispose();
survey.dispose();
if (process.env.LLMRT_BENCH_JSON) fs.writeFileSync(process.env.LLMRT_BENCH_JSON, JSON.stringify({ gpu: dev.name, out }, null, 1));
