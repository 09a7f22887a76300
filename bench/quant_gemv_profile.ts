/**
 * The llama-3.1-8b int4 g128 (+ zero points) decode GEMVs of the quantTailNorm plan, each entry point launched a few
 * times on one weight copy: gate_up (`_rs`, mode 2) and down (`_addnorm`, mode 1) on quant_gemv_fused* and
 * quant_gemv_fast* and quant_gemv_fastx* (session 19; its _rs x in pair order: timing only). Alone it prints each launch's µs and % of the device copy; its use is under Nsight
 * Compute, where each launch is one profiled kernel (the launches of a name are identical):
 *
 *   ncu --section SpeedOfLight --section WarpStateStats -k regex:quant_gemv bun bench/quant_gemv_profile.ts [--reps 2]
 *
 * Weights are constant bytes (timing only): bench/quant_gemv_tune.ts checks the kernels' sums.
 */
import process from "node:process";
import { parseArgs } from "node:util";
import { loadKernelFile } from "../lib/backends/cuda/compiler.ts";
import { CudaDevice } from "../lib/cuda/device.ts";
import { copyCeiling } from "./copy_bandwidth.ts";
import { quantWeights, xBits } from "./quant_bench_data.ts";

const { values } = parseArgs({ args: process.argv.slice(2), options: { reps: { type: "string" } } });
const reps = Number(values.reps ?? 2);
const P = ["ptr", "ptr", "ptr", "ptr", "ptr", "ptr", "ptr", "f32", "i32", "i32", "i32", "i32", "i32"] as const;
const d = CudaDevice.open(0);
const ceiling = copyCeiling(d).bps;
const names = ["fused", "fast", "fastx"].flatMap((f) => [`quant_gemv_${f}_rs_u4`, `quant_gemv_${f}_addnorm_u4`]);
using mod = loadKernelFile(d, "quant_gemv.cu", { options: ["-DLLMRT_SELECT", ...names.map((n) => `-DLLMRT_K_${n}=1`)] });
using stream = d.createStream();
using t0 = d.createEvent();
using t1 = d.createEvent();
using x = d.alloc(14336 * 2);
using y = d.alloc(28672 * 2);
using xw = d.alloc(4096 * 2);
using ssq = d.alloc(1024 * 4);
x.copyFromHost(xBits(14336, 5));
y.copyFromHost(xBits(28672, 6));
ssq.fill(0x3f);
// [linear, N, K]: gate_up on _rs (mode 2, ssq in the normW slot), down on _addnorm (mode 1).
for (const [lin, N, K] of [["gate_up", 28672, 4096], ["down", 4096, 14336]] as [string, number, number][]) {
  using w = quantWeights(d, N, K, 4, 128, true, 1, false);
  for (const name of names.filter((n) => n.includes(lin === "gate_up" ? "_rs_" : "_addnorm_"))) {
    const tail = name.includes("_addnorm_");
    const kern = mod.kernel(name, tail ? [...P, "ptr", "ptr"] : P);
    const args = [x, ...w.args(0), 0n, y, tail ? xw.ptr : ssq.ptr, 1e-5, 1, N, K, 128, tail ? 1 : 2, ...(tail ? [xw.ptr, ssq.ptr] : [])];
    for (let r = 0; r < reps; r++) {
      t0.record(stream);
      kern.launch(N / 16, 256, args, { stream });
      t1.record(stream);
      t1.synchronize();
      const us = t1.elapsedSince(t0) * 1e3;
      console.log(`${lin} ${name} #${r}: ${us.toFixed(2)} us = ${((100 * w.bytes) / (us * 1e-6) / ceiling).toFixed(1)}% of copy`);
    }
  }
}
