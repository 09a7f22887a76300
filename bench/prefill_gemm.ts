/**
 * Prefill GEMMs at large M (issue 16 item 2): TFLOP/s of the llama linears (y = x Wᵀ, bf16, fp32 accumulate)
 * under the cuBLASLt algorithm choices the engine can make — the batch-invariant pinned algorithm chosen for
 * each of --refs rows alone (GemmOptions.invariantRefM, invariantBuckets false: session 5's default at
 * INVARIANT_REF_M), "bucketed" (the default since session 6: the pick for M's power-of-two bucket where shown
 * bitwise equal to the INVARIANT_REF_M one),
 * the heuristic's first algorithm for this M, with --tuned the fastest of its candidates (and "bucketed+tuned": the
 * fastest non-split-K one shown bitwise equal to the pinned one, the sessions' default with gemmTune) — beside a large
 * square GEMM under the heuristic as the measured ceiling of the same run.
 *
 *   bun bench/prefill_gemm.ts [--models 1b,8b] [--ms 2048,8192,32768] [--refs 256,2048] [--tuned] [--random-a] [--cold]
 *     [--modes bucketed+tuned,...]
 *
 * A (the activations) is one constant bf16 value unless --random-a (random like B: the tensor cores toggle more bits
 * and draw more power, as in a real prefill). B (the weights) is one buffer every timed run reads again (what fits stays
 * in L2) unless --cold: each run reads the next slice of a 1 GiB region, as a prefill reads each layer's weights once.
 *
 * Prints one table row per (linear, M); LLMRT_BENCH_JSON=FILE also writes the numbers as JSON.
 */
import * as fs from "node:fs";
import process from "node:process";
import { parseArgs } from "node:util";
import { CudaDevice } from "../lib/cuda/device.ts";
import { CublasLtGemm, INVARIANT_REF_M } from "../lib/backends/cuda/gemm.ts";

const { values } = parseArgs({
  args: process.argv.slice(2),
  options: {
    models: { type: "string" },
    ms: { type: "string" },
    refs: { type: "string" },
    tuned: { type: "boolean" },
    "random-a": { type: "boolean" },
    cold: { type: "boolean" },
    modes: { type: "string" },
  },
});
const SHAPES: Record<string, [string, number, number][]> = {
  "1b": [["qkv", 3072, 2048], ["o_proj", 2048, 2048], ["gate_up", 16384, 2048], ["down", 2048, 8192]],
  "8b": [["qkv", 6144, 4096], ["o_proj", 4096, 4096], ["gate_up", 28672, 4096], ["down", 4096, 14336]],
};
const models = (values.models ?? "1b,8b").split(",");
const Ms = (values.ms ?? "2048,8192,32768").split(",").map(Number);

const dev = CudaDevice.open(0);
using stream = dev.createStream();
using e0 = dev.createEvent();
using e1 = dev.createEvent();
const refs = (values.refs ?? `${INVARIANT_REF_M},2048`).split(",").map(Number);
const modes: Record<string, CublasLtGemm> = {};
for (const r of refs) modes[`pinned@${r}`] = new CublasLtGemm(dev, { batchInvariant: true, invariantRefM: r, invariantBuckets: false });
// The default batch-invariant choice: the pick of M's bucket where shown bitwise equal to the pinned@INVARIANT_REF_M one.
modes.bucketed = new CublasLtGemm(dev, { batchInvariant: true });
modes.heuristic = new CublasLtGemm(dev, {});
if (values.tuned) {
  // Batch-invariant and timed: the fastest of M's non-split-K candidates shown bitwise equal to the pinned one.
  modes["bucketed+tuned"] = new CublasLtGemm(dev, { batchInvariant: true, tune: true, timingCacheDir: null });
  modes.tuned = new CublasLtGemm(dev, { tune: true, timingCacheDir: null });
}
if (values.modes) {
  const keep = new Set(values.modes.split(","));
  for (const name of Object.keys(modes)) {
    if (!keep.has(name)) {
      modes[name].dispose();
      delete modes[name];
    }
  }
}
const maxElems = (m: number, n: number, k: number): number => Math.max(m * k, n * k, m * n);
let big = 0;
for (const md of models) for (const [, n, k] of SHAPES[md]) for (const m of Ms) big = Math.max(big, maxElems(m, n, k));
big = Math.max(big, 8192 * 8192);
using A = dev.alloc(big * 2);
const coldBytes = 1 << 30; // --cold: the weights' region, > 20 x the 50 MB L2
const bBytes = values.cold ? Math.max(big * 2, coldBytes) : big * 2;
using B = dev.alloc(bBytes);
using D = dev.alloc(big * 2);
A.fill(0x3c, { stream }); // bf16 0x3c3c ≈ 0.0115: finite products
{
  // B: random bf16 of magnitude 2^-7 … 2^-4 (the bucketed mode's bitwise checks run against it), 8 MiB repeated.
  const chunk = Math.min(big, 1 << 22);
  const h = new Uint16Array(chunk);
  let s = 12345;
  for (let i = 0; i < chunk; i++) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    h[i] = ((s >>> 16) & 0x8000) | ((120 + ((s >>> 8) & 3)) << 7) | ((s >>> 1) & 0x7f);
  }
  for (const buf of values["random-a"] ? [A, B] : [B]) {
    buf.copyFromHost(h, { stream });
    const elems = buf === B ? bBytes / 2 : big;
    for (let done = chunk; done < elems;) {
      const n = Math.min(done, elems - done);
      buf.copyFromDevice(buf, n * 2, { dstOffset: done * 2, stream });
      done += n;
    }
  }
}

/** Median ms of one GEMM over 3 timed batches. */
function time(g: CublasLtGemm, m: number, n: number, k: number): number {
  // --cold: run i reads the weights at the i-th n x k slice of the region (256-byte aligned, wrapping).
  const slice = Math.ceil((n * k * 2) / 256) * 256, slots = Math.max(1, Math.floor(bBytes / slice));
  let i = 0;
  const run = (): void => {
    const b = values.cold ? B.ptr + BigInt((i++ % slots) * slice) : B;
    g.run({ m, n, k, dtype: "bf16", a: A, b, d: D, transB: true, stream });
  };
  run();
  run();
  const iters = Math.max(2, Math.min(50, Math.round(2e12 / (2 * m * n * k))));
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

const ceilGemm = new CublasLtGemm(dev, {}); // the heuristic, whatever --modes keeps
const ceilMs = time(ceilGemm, 8192, 8192, 8192);
ceilGemm.dispose();
const ceiling = tf(8192, 8192, 8192, ceilMs);
console.log(
  `GPU ${dev.name}; A ${values["random-a"] ? "random" : "constant"}; ceiling: 8192^3 bf16 GEMM (cuBLASLt heuristic) ${
    ceiling.toFixed(1)
  } TFLOP/s; INVARIANT_REF_M = ${INVARIANT_REF_M}`,
);
const names = Object.keys(modes);
const rows: Record<string, unknown>[] = [];
console.log(`| model | linear (n x k) | M | ${names.join(" | ")} | (TFLOP/s, % of the ceiling) |`);
for (const md of models) {
  for (const m of Ms) {
    const sums: Record<string, number> = Object.fromEntries(names.map((x) => [x, 0]));
    for (const [name, n, k] of SHAPES[md]) {
      const r: Record<string, number | string> = { model: md, name, n, k, m };
      const cells: string[] = [];
      for (const mode of names) {
        const ms = time(modes[mode], m, n, k);
        r[mode] = ms;
        sums[mode] += ms;
        cells.push(`${tf(m, n, k, ms).toFixed(0)} (${(100 * tf(m, n, k, ms) / ceiling).toFixed(0)}%)`);
      }
      rows.push(r);
      console.log(`| ${md} | ${name} ${n}x${k} | ${m} | ${cells.join(" | ")} |`);
    }
    const layers = md === "1b" ? 16 : 32;
    console.log(`  ${md} M=${m}: the 4 linears x ${layers} layers: ${names.map((x) => `${x} ${(sums[x] * layers).toFixed(2)} ms`).join(", ")}`);
  }
}
if (modes.bucketed) {
  const st = modes.bucketed.invariantBucketStats;
  console.log(`bucketed: ${st.verified} bucket algorithms shown bitwise equal to the pinned@${INVARIANT_REF_M} one (used), ${st.rejected} rejected`);
}
for (const g of Object.values(modes)) g.dispose();
if (process.env.LLMRT_BENCH_JSON) fs.writeFileSync(process.env.LLMRT_BENCH_JSON, JSON.stringify({ gpu: dev.name, ceiling, rows }, null, 1));
