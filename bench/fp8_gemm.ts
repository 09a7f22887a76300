/**
 * FP8 GEMMs at decode-batch and prefill M (issue 14): the llama linears y = x Wᵀ under cuBLASLt as the FP8 engine
 * runs them — e4m3 A and B, per-tensor scales as device pointers, bf16 out — with and without fast accumulation
 * (GemmArgs.fastAccum), beside the bf16 GEMM of the same shape, and an 8192³ bf16 / fp8 GEMM as the same run's
 * ceilings. The heuristic's pick (what the engine's non-invariant decode steps use), with --invariant also the
 * batch-invariant choices prefill GEMMs make (pinned: the reference-M algorithm for every M, FP8's default;
 * bucketed: GemmOptions.invariantFp8Buckets, the verified pick of M's bucket), with --tuned the fastest of the
 * heuristic's candidates. Inputs are random e4m3 / bf16 bytes of moderate magnitude.
 *
 *   bun bench/fp8_gemm.ts [--models 1b,8b] [--ms 64,512,2048,8192] [--invariant] [--tuned]
 */
import * as fs from "node:fs";
import process from "node:process";
import { parseArgs } from "node:util";
import { CublasLtGemm, type GemmArgs } from "../lib/backends/cuda/gemm.ts";
import { CudaDevice } from "../lib/cuda/device.ts";

const { values } = parseArgs({
  args: process.argv.slice(2),
  options: { models: { type: "string" }, ms: { type: "string" }, tuned: { type: "boolean" }, invariant: { type: "boolean" } },
});
const SHAPES: Record<string, [string, number, number][]> = {
  "1b": [["qkv", 3072, 2048], ["o_proj", 2048, 2048], ["gate_up", 16384, 2048], ["down", 2048, 8192]],
  "8b": [["qkv", 6144, 4096], ["o_proj", 4096, 4096], ["gate_up", 28672, 4096], ["down", 4096, 14336]],
};
const models = (values.models ?? "1b,8b").split(",");
const Ms = (values.ms ?? "64,512,2048,8192").split(",").map(Number);

const dev = CudaDevice.open(0);
using stream = dev.createStream();
using e0 = dev.createEvent();
using e1 = dev.createEvent();
const heur = new CublasLtGemm(dev, {});
const tuned = values.tuned ? new CublasLtGemm(dev, { tune: true, timingCacheDir: null }) : null;
const pinned = values.invariant ? new CublasLtGemm(dev, { batchInvariant: true, invariantFp8Buckets: false }) : null;
const bucketed = values.invariant ? new CublasLtGemm(dev, { batchInvariant: true, invariantFp8Buckets: true }) : null;
let big = 8192 * 8192;
for (const md of models) for (const [, n, k] of SHAPES[md]) for (const m of Ms) big = Math.max(big, m * k, n * k, m * n);
using A = dev.alloc(big * 2);
using B = dev.alloc(big * 2);
using D = dev.alloc(big * 2);
// Two scales 256 bytes apart: cuBLASLt refuses (NOT_SUPPORTED) scale pointers that are not 16-byte aligned.
using S = dev.alloc(512);
S.copyFromHost(new Float32Array(128).fill(0.01), { stream });
{
  // Bytes whose e4m3 and bf16 readings are both finite and moderate: e4m3 0x28..0x37 / 0xa8..0xb7 (0.03 … 0.94),
  // as bf16 pairs 0x2828-ish (≈ 1e-14 … 1e-5): finite products either way.
  const chunk = Math.min(big * 2, 1 << 23);
  const h = new Uint8Array(chunk);
  let s = 12345;
  for (let i = 0; i < chunk; i++) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    h[i] = 0x28 + ((s >>> 16) & 15) + ((s >>> 8) & 1 ? 0x80 : 0);
  }
  for (const buf of [A, B]) {
    buf.copyFromHost(h, { stream });
    for (let done = chunk; done < big * 2;) {
      const n = Math.min(done, big * 2 - done);
      buf.copyFromDevice(buf, n, { dstOffset: done, stream });
      done += n;
    }
  }
}

type Mode = "bf16" | "fp8" | "fp8 fast";
const MODES: Mode[] = ["bf16", "fp8", "fp8 fast"];
const args = (mode: Mode, m: number, n: number, k: number): GemmArgs =>
  mode === "bf16"
    ? { m, n, k, dtype: "bf16", a: A, b: B, d: D, transB: true, stream }
    : { m, n, k, dtype: "fp8e4m3", outDtype: "bf16", a: A, b: B, d: D, transB: true, stream, aScale: S, bScale: S.ptr + 256n, fastAccum: mode === "fp8 fast" };

/** Median ms of one GEMM over 3 timed batches; NaN (and the error printed once per message) when cuBLASLt refuses it. */
const errors = new Set<string>();
function time(g: CublasLtGemm, a: GemmArgs): number {
  try {
    return timeOrThrow(g, a);
  } catch (e) {
    const msg = (e as Error).message;
    if (!errors.has(msg)) console.log(`error: ${msg}`);
    errors.add(msg);
    return NaN;
  }
}
function timeOrThrow(g: CublasLtGemm, a: GemmArgs): number {
  g.run(a);
  g.run(a);
  const iters = Math.max(3, Math.min(100, Math.round(2e12 / (2 * a.m * a.n * a.k))));
  const ts: number[] = [];
  for (let r = 0; r < 3; r++) {
    e0.record(stream);
    for (let i = 0; i < iters; i++) g.run(a);
    e1.record(stream);
    e1.synchronize();
    ts.push(e1.elapsedSince(e0) / iters);
  }
  return ts.sort((x, y) => x - y)[1];
}
const tf = (m: number, n: number, k: number, ms: number): number => (2 * m * n * k) / (ms * 1e-3) / 1e12;

const ceil: Record<string, number> = {};
for (const mode of MODES) ceil[mode] = tf(8192, 8192, 8192, time(heur, args(mode, 8192, 8192, 8192)));
console.log(`GPU ${dev.name}; 8192^3 ceilings (cuBLASLt heuristic): ${MODES.map((x) => `${x} ${ceil[x].toFixed(0)} TFLOP/s`).join(", ")}`);
const gemms: [string, CublasLtGemm][] = [["heuristic", heur]];
if (pinned && bucketed) gemms.push(["pinned", pinned], ["bucketed", bucketed]);
if (tuned) gemms.push(["tuned", tuned]);
const cols = gemms.flatMap(([g]) => MODES.map((x) => `${x} ${g}`));
console.log(`| model | linear (n x k) | M | ${cols.join(" | ")} | (µs, TFLOP/s) |`);
console.log(`| --- | --- | ---: | ${cols.map(() => "---:").join(" | ")} |`);
const rows: Record<string, unknown>[] = [];
for (const md of models) {
  for (const m of Ms) {
    const sums: Record<string, number> = Object.fromEntries(cols.map((x) => [x, 0]));
    for (const [name, n, k] of SHAPES[md]) {
      const r: Record<string, number | string> = { model: md, name, n, k, m };
      const cells: string[] = [];
      for (const [gname, g] of gemms) {
        for (const mode of MODES) {
          const ms = time(g, args(mode, m, n, k));
          r[`${mode} ${gname}`] = ms;
          sums[`${mode} ${gname}`] += ms;
          cells.push(`${(ms * 1e3).toFixed(1)} (${tf(m, n, k, ms).toFixed(0)})`);
        }
      }
      rows.push(r);
      console.log(`| ${md} | ${name} ${n}x${k} | ${m} | ${cells.join(" | ")} |`);
    }
    const layers = md === "1b" ? 16 : 32;
    console.log(`  ${md} M=${m}: the 4 linears x ${layers} layers: ${cols.map((x) => `${x} ${(sums[x] * layers).toFixed(3)} ms`).join(", ")}`);
  }
}
if (bucketed) {
  const st = bucketed.invariantBucketStats;
  console.log(`bucketed: ${st.verified} bucket algorithms shown bitwise equal to the reference one (used), ${st.rejected} rejected`);
}
for (const [, g] of gemms) g.dispose();
if (process.env.LLMRT_BENCH_JSON) fs.writeFileSync(process.env.LLMRT_BENCH_JSON, JSON.stringify({ gpu: dev.name, ceil, rows }, null, 1));
