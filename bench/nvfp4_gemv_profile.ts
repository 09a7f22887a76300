/**
 * The llama-3.1-8b NVFP4 decode GEMVs (kernels/nvfp4_mma.cu, one row): qkv, o_proj (its _act form, as the session runs
 * it), gate_up and down on nvfp4_gemv_k32x (CudaFlags.nvfp4GemvK32), each launched a few times on one weight copy with
 * the session's grid (lowbit_launch.ts nvfp4K32Grid). Alone it prints each launch's µs and % of the device
 * copy; its use is under Nsight Compute, where each launch is one profiled kernel:
 *
 *   ncu --section SpeedOfLight --section WarpStateStats -k regex:nvfp4_gemv bun bench/nvfp4_gemv_profile.ts --reps 1
 *
 * Weights are constant bytes (timing only): tests/gpu/nvfp4_mma.test.ts checks the kernels' sums.
 */
import process from "node:process";
import { parseArgs } from "node:util";
import { loadKernelFile } from "../lib/backends/cuda/compiler.ts";
import { LOWBIT_FAMILIES } from "../lib/backends/cuda/lowbit_kernels.ts";
import { NVFP4_K32_BLOCKS_PER_SM, nvfp4K32Grid } from "../lib/backends/cuda/lowbit_launch.ts";
import { CudaDevice } from "../lib/cuda/device.ts";
import { copyCeiling } from "./copy_bandwidth.ts";

const { values } = parseArgs({ args: process.argv.slice(2), options: { reps: { type: "string" } } });
const reps = Number(values.reps ?? 2);
const d = CudaDevice.open(0);
const ceiling = copyCeiling(d).bps;
const names = ["nvfp4_gemv_k32x_bf16_m1", "nvfp4_gemv_k32x_act_bf16_m1"];
using mod = loadKernelFile(d, "nvfp4_mma.cu", { options: ["-DLLMRT_SELECT", ...names.map((n) => `-DLLMRT_K_${n}=1`)] });
using stream = d.createStream();
using t0 = d.createEvent();
using t1 = d.createEvent();
const KMAX = 14336;
using x = d.alloc(KMAX * 2); // bf16 input row (the _act forms)
using xq = d.alloc(2 * KMAX); // int8 codes and their negations
using sx = d.alloc((KMAX / 16) * 4); // f32 block scales
using y = d.alloc(28672 * 2);
x.fill(0x3c, { stream });
xq.fill(0x02, { stream });
sx.fill(0x3c, { stream });
const maxBlocks = NVFP4_K32_BLOCKS_PER_SM * d.smCount;
for (const [lin, N, K] of [["qkv", 6144, 4096], ["o_proj", 4096, 4096], ["gate_up", 28672, 4096], ["down", 4096, 14336]] as const) {
  const bytes = (N * K) / 2 + (N * K) / 16;
  using W = d.alloc((N * K) / 2);
  using S = d.alloc((N * K) / 16);
  W.fill(0x2a, { stream });
  S.fill(0x38, { stream });
  const grid = nvfp4K32Grid(N / 16, K, maxBlocks);
  const act = lin === "o_proj";
  const family = `nvfp4_gemv_k32x${act ? "_act" : ""}`;
  const kern = mod.kernel(`${family}_bf16_m1`, LOWBIT_FAMILIES[family].params);
  if (act) kern.setMaxDynamicSharedMemory(2 * K + K / 4);
  const args = act ? [x, W, S, 0n, y, N, K, 0.01, 1] : [xq, W, S, sx, 0n, y, 1, N, K, 0, 1];
  for (let r = 0; r < reps; r++) {
    t0.record(stream);
    kern.launch(grid, 256, args, { stream, sharedMemBytes: act ? 2 * K + K / 4 : 0 });
    t1.record(stream);
    t1.synchronize();
    const us = t1.elapsedSince(t0) * 1e3;
    console.log(`${lin} [${N}x${K}] ${family} grid ${grid} #${r}: ${us.toFixed(2)} us = ${((100 * bytes) / (us * 1e-6) / ceiling).toFixed(1)}% of copy`);
  }
}
