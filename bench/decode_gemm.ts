/**
 * The bf16 linears of a batched decode step (issue 16 item 3) under the cuBLASLt choices the engine can make, timed
 * as the step runs them: one CUDA graph of every layer's qkv, o_proj, gate_up and down_proj (each layer its own
 * weights, so every weight comes from DRAM) plus the lm_head (fp32 logits), M rows each, replayed.
 *
 *   bun bench/decode_gemm.ts [--model 1b|8b] [--m 64]
 *
 * Modes: "tuned" (gemmTune as the engine's decode steps of > 8 sequences use it: the fastest of the heuristic's first 8
 * candidates, timed with the weight in L2), "cold" (GemmOptions.tuneCold: 32 candidates, weights cycled past L2),
 * "heuristic" (the heuristic's first pick), and for the lm_head "pinned" (the batch-invariant algorithm of the engine's
 * default). Prints µs per linear and set beside the read-only copy bandwidth of the same process.
 */
import process from "node:process";
import { parseArgs } from "node:util";
import { CudaDevice } from "../lib/cuda/device.ts";
import { CublasLtGemm } from "../lib/backends/cuda/gemm.ts";
import { copyCeiling } from "./copy_bandwidth.ts";

const { values } = parseArgs({ args: process.argv.slice(2), options: { model: { type: "string" }, m: { type: "string" } } });
const MODELS: Record<string, { layers: number; vocab: number; shapes: [string, number, number][] }> = {
  "1b": { layers: 16, vocab: 128256, shapes: [["qkv", 3072, 2048], ["o", 2048, 2048], ["gate_up", 16384, 2048], ["down", 2048, 8192]] },
  "8b": { layers: 32, vocab: 128256, shapes: [["qkv", 6144, 4096], ["o", 4096, 4096], ["gate_up", 28672, 4096], ["down", 4096, 14336]] },
};
const md = MODELS[values.model ?? "1b"];
const M = Number(values.m ?? 64);
const hidden = md.shapes[1][2];
const dev = CudaDevice.open(0);
const ceil = copyCeiling(dev);
using stream = dev.createStream();
using e0 = dev.createEvent();
using e1 = dev.createEvent();
const layerElems = md.shapes.reduce((a, [, n, k]) => a + n * k, 0);
const headElems = md.vocab * hidden;
using W = dev.alloc((md.layers * layerElems + headElems) * 2);
{
  // Random bf16 of magnitude 2^-7 … 2^-4 (the pinned lm_head's bucket check runs against it), 8 MiB repeated.
  const chunk = 1 << 22;
  const h = new Uint16Array(chunk);
  let s = 12345;
  for (let i = 0; i < chunk; i++) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    h[i] = ((s >>> 16) & 0x8000) | ((120 + ((s >>> 8) & 3)) << 7) | ((s >>> 1) & 0x7f);
  }
  W.copyFromHost(h, { stream });
  const total = W.byteLength / 2;
  for (let done = chunk; done < total;) {
    const n = Math.min(done, total - done);
    W.copyFromDevice(W, n * 2, { dstOffset: done * 2, stream });
    done += n;
  }
}
const maxN = Math.max(md.vocab, ...md.shapes.map(([, n]) => n)), maxK = Math.max(...md.shapes.map(([, , k]) => k));
using X = dev.alloc(M * maxK * 2);
using Y = dev.alloc(M * maxN * 4);
X.fill(0x3c, { stream });
stream.synchronize();
const wOf = (layer: number, j: number): bigint => {
  let off = layer * layerElems;
  for (let i = 0; i < j; i++) off += md.shapes[i][1] * md.shapes[i][2];
  return W.ptr + BigInt(off * 2);
};
const head = W.ptr + BigInt(md.layers * layerElems * 2);

const modes: Record<string, CublasLtGemm> = {
  heuristic: new CublasLtGemm(dev, {}),
  tuned: new CublasLtGemm(dev, { tune: true, timingCacheDir: null }),
  cold: new CublasLtGemm(dev, { tune: true, tuneCold: true, timingCacheDir: null }),
  coldsk: new CublasLtGemm(dev, { tune: true, tuneCold: true, tuneSplitK: true, timingCacheDir: null }),
  pinned: new CublasLtGemm(dev, { batchInvariant: true, tune: true, tuneCandidates: 32, timingCacheDir: null }),
};
type Call = (g: CublasLtGemm) => void;
const linear = (j: number, layer: number): Call => (g) =>
  g.run({ m: M, n: md.shapes[j][1], k: md.shapes[j][2], dtype: "bf16", a: X, b: wOf(layer, j), d: Y, transB: true, stream });
const lmHead: Call = (g) => g.run({ m: M, n: md.vocab, k: hidden, dtype: "bf16", outDtype: "fp32", a: X, b: head, d: Y, transB: true, stream });

/** µs of one replay of a graph of `calls` (median of 5 timed batches of 10 replays). */
function graphUs(g: CublasLtGemm, calls: Call[]): number {
  for (const c of calls) c(g); // plans (and tuning) before capture
  stream.synchronize();
  using graph = stream.capture(() => {
    for (const c of calls) c(g);
  });
  graph.launch(stream);
  const ts: number[] = [];
  for (let r = 0; r < 5; r++) {
    e0.record(stream);
    for (let i = 0; i < 10; i++) graph.launch(stream);
    e1.record(stream);
    e1.synchronize();
    ts.push((e1.elapsedSince(e0) * 1e3) / 10);
  }
  return ts.sort((a, b) => a - b)[2];
}
const pct = (bytes: number, us: number): string => `${((100 * bytes / (us * 1e-6)) / ceil.readBps).toFixed(1)}%`;
console.log(
  `GPU ${dev.name}; read-only copy ${(ceil.readBps / 1e12).toFixed(3)} TB/s; ${values.model ?? "1b"} M=${M}; µs per linear (the graph of all layers / layers)`,
);
const sets: Record<string, number> = {};
for (const [j, [name, n, k]] of md.shapes.entries()) {
  const calls = Array.from({ length: md.layers }, (_, l) => linear(j, l));
  const cells = ["heuristic", "tuned", "cold", "coldsk"].map((mode) => {
    const us = graphUs(modes[mode], calls) / md.layers;
    sets[mode] = (sets[mode] ?? 0) + us * md.layers;
    return `${mode} ${us.toFixed(2)} (${pct(n * k * 2, us)})`;
  });
  // The same weight every call (from L2 where it fits): what a weight prefetched into L2 would leave.
  for (const mode of ["tuned", "cold"]) {
    const us = graphUs(modes[mode], Array.from({ length: md.layers }, () => linear(j, 0))) / md.layers;
    sets[`${mode} L2-hot`] = (sets[`${mode} L2-hot`] ?? 0) + us * md.layers;
    cells.push(`${mode} L2-hot ${us.toFixed(2)}`);
  }
  console.log(`  ${name.padEnd(8)} ${n}x${k}: ${cells.join("  ")}`);
}
const headCells = ["heuristic", "tuned", "cold", "coldsk", "pinned"].map((mode) => {
  const us = graphUs(modes[mode], [lmHead]);
  if (mode !== "pinned") sets[mode] += us;
  if (mode === "tuned" || mode === "cold") sets[`${mode} L2-hot`] += us;
  return `${mode} ${us.toFixed(2)} (${pct(headElems * 2, us)})`;
});
console.log(`  lm_head  ${md.vocab}x${hidden} fp32 out: ${headCells.join("  ")}`);
const stepBytes = (md.layers * layerElems + headElems) * 2;
// The engine's default today: tuned linears + pinned lm_head.
console.log(
  `SUMMARY ${md.layers} layers + lm_head at M=${M}: ${
    Object.entries(sets).map(([k, us]) => `${k} ${(us / 1e3).toFixed(3)} ms (${pct(stepBytes, us)})`).join(", ")
  }; copy floor ${(stepBytes / ceil.readBps * 1e3).toFixed(3)} ms`,
);
// One graph of the whole set in step order (layer by layer), tuned vs cold: what the step would see.
for (const mode of ["tuned", "cold", "coldsk"]) {
  const calls: Call[] = [];
  for (let l = 0; l < md.layers; l++) for (let j = 0; j < md.shapes.length; j++) calls.push(linear(j, l));
  calls.push(lmHead);
  console.log(`  step-order graph, ${mode}: ${(graphUs(modes[mode], calls) / 1e3).toFixed(3)} ms`);
}
for (const g of Object.values(modes)) g.dispose();
