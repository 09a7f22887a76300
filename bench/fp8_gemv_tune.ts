/**
 * Batch-1 FP8 decode GEMVs (issue 14; kernels/fp8_gemv.cu) under compile-time variants: for each variant (NVRTC
 * -D options: FG_U, FG_L2PF, FG_MINB) the decoder linears of llama-3.2-1b / llama-3.1-8b chained as a fused decode
 * step runs them — per layer fp8_gemv_fused_norm (qkv, mode 0), fp8_gemv_fused (o_proj, mode 1), fp8_gemv_fused_norm
 * (gate_up, mode 2), fp8_gemv_fused (down, mode 1), every layer its own weights — captured in one graph, m = 1,
 * static activation scales. "plain": the plain entry points launched one after another; "pdl": the _pdl entry
 * points with programmatic dependent launch (SessionOptions.fp8Pdl); "gemv1": fp8_gemv1 (SessionOptions.fp8Gemv1: a
 * persistent grid of blocks-per-SM × SMs — a variant's -DFG1_MINB=N sets N — each warp a contiguous run of rows) with
 * PDL; "gemvr": qkv and o_proj on fp8_gemvr (SessionOptions.fp8GemvRow / fp8GemvRowNorm: one row a warp, short-lived
 * blocks; -DFGR_MINB / -DFGR_D variants), gate_up and down on fp8_gemv1, with PDL (each variant also prints the registers
 * of fp8_gemv1 and fp8_gemvr). Per token ms and % of the bandwidth the weight bytes allow, against a device copy measured in the same run
 * (bench/copy_bandwidth.ts).
 *
 *   bun bench/fp8_gemv_tune.ts [--models 1b,8b] [--variants "default;-DFG_L2PF=1;-DFG_U=2"] [--kinds plain,pdl,gemv1]
 */
import process from "node:process";
import { parseArgs } from "node:util";
import { loadKernelFile } from "../lib/backends/cuda/compiler.ts";
import { FP8_GEMV1_BLOCKS_PER_SM, fp8Gemv1Grid } from "../lib/backends/cuda/fp8_launch.ts";
import { CudaDevice } from "../lib/cuda/device.ts";
import { CU } from "../ffi/cuda.ts";
import { copyCeiling } from "./copy_bandwidth.ts";

const { values } = parseArgs({
  args: process.argv.slice(2),
  options: { models: { type: "string" }, variants: { type: "string" }, kinds: { type: "string" } },
});
const MODELS: Record<string, { layers: number; H: number; qkv: number; I: number }> = {
  "1b": { layers: 16, H: 2048, qkv: 3072, I: 8192 },
  "8b": { layers: 32, H: 4096, qkv: 6144, I: 14336 },
};
const models = (values.models ?? "1b,8b").split(",");
const variants = (values.variants ?? "default;-DFG_L2PF=1;-DFG_U=2;-DFG_U=8 -DFG_MINB=2").split(";");
const kinds = (values.kinds ?? "plain,pdl,gemv1").split(",") as ("plain" | "pdl" | "gemv1" | "gemvr")[];
const FUSED = ["ptr", "ptr", "ptr", "ptr", "ptr", "ptr", "f32", "i32", "i32", "i32", "f32", "i32"] as const;

const dev = CudaDevice.open(0);
const copy = copyCeiling(dev).bps;
console.log(`GPU ${dev.name}; copy ${(copy / 1e12).toFixed(3)} TB/s`);
using stream = dev.createStream();
using e0 = dev.createEvent();
using e1 = dev.createEvent();
console.log("| model | variant | launches | ms / token | GB/s | % of copy |");
console.log("| --- | --- | --- | ---: | ---: | ---: |");
for (const md of models) {
  const M = MODELS[md];
  const shapes = [[M.qkv, M.H], [M.H, M.H], [2 * M.I, M.H], [M.H, M.I]] as const;
  const perLayer = shapes.reduce((a, [n, k]) => a + n * k, 0);
  const bytes = perLayer * M.layers;
  using W = dev.alloc(bytes);
  W.fill(0x30, { stream }); // e4m3 0.5
  const maxN = Math.max(...shapes.map(([n]) => n));
  using S = dev.alloc(maxN * 4);
  S.copyFromHost(new Float32Array(maxN).fill(0.001));
  using normW = dev.alloc(M.H * 2);
  normW.fill(0x3f, { stream }); // bf16 0x3f3f ≈ 0.75
  using h = dev.alloc(M.H * 2);
  h.fill(0x3c, { stream });
  using qkv = dev.alloc(M.qkv * 2);
  qkv.fill(0x3c, { stream });
  using act = dev.alloc(M.I * 2);
  for (const variant of variants) {
    const options = variant === "default" ? [] : variant.split(/\s+/).filter(Boolean);
    using mod = loadKernelFile(dev, "fp8_gemv.cu", { options });
    const bps = Number(/-DFG1_BPS=(\d+)/.exec(variant)?.[1] ?? /-DFG1_MINB=(\d+)/.exec(variant)?.[1] ?? FP8_GEMV1_BLOCKS_PER_SM);
    if (md === models[0] && kinds.includes("gemvr")) {
      const regs = ["fp8_gemv1_fused_norm", "fp8_gemv1_fused", "fp8_gemvr_fused_norm", "fp8_gemvr_fused"].map((n) =>
        `${n} ${mod.kernel(`${n}_bf16`, FUSED).attribute(CU.FUNC_ATTRIBUTE_NUM_REGS)}`
      );
      console.log(`  ${variant}: registers ${regs.join(", ")}`);
    }
    for (const kind of kinds) {
      const tag = kind === "pdl" ? "_pdl" : "";
      const base = kind === "gemv1" || kind === "gemvr" ? "fp8_gemv1_fused" : "fp8_gemv_fused";
      const norm = mod.kernel(`${base}_norm${tag}_bf16`, FUSED), plain = mod.kernel(`${base}${tag}_bf16`, FUSED);
      // gemvr: the <= 4096-column linears (qkv, o_proj) on fp8_gemvr, as the engine's fp8GemvRow / fp8GemvRowNorm.
      const rNorm = mod.kernel("fp8_gemvr_fused_norm_bf16", FUSED), rPlain = mod.kernel("fp8_gemvr_fused_bf16", FUSED);
      const grid = (n: number, mode: number): number => kind === "gemv1" || kind === "gemvr" ? fp8Gemv1Grid(n, mode, bps * dev.smCount) : n / 16;
      const g = stream.capture((s) => {
        let off = 0n, first = true;
        const go = (k: typeof norm, n: number, kk: number, x: typeof h, y: typeof h, mode: number): void => {
          const byRow = kind === "gemvr" && kk <= 4096 && mode !== 2;
          if (byRow) k = k === norm ? rNorm : rPlain;
          k.launch(byRow ? Math.ceil(n / 8) : grid(n, mode), 256, [x, W.ptr + off, S, 0n, y, normW, 1e-5, 1, n, kk, 0.05, mode], {
            stream: s,
            pdl: kind !== "plain" && !first,
          });
          off += BigInt(n * kk);
          first = false;
        };
        for (let l = 0; l < M.layers; l++) {
          go(norm, M.qkv, M.H, h, qkv, 0);
          go(plain, M.H, M.H, qkv, h, 1);
          go(norm, 2 * M.I, M.H, h, act, 2);
          go(plain, M.H, M.I, act, h, 1);
        }
      });
      g.launch(stream);
      stream.synchronize();
      const ts: number[] = [];
      for (let r = 0; r < 5; r++) {
        e0.record(stream);
        g.launch(stream);
        e1.record(stream);
        e1.synchronize();
        ts.push(e1.elapsedSince(e0));
      }
      g.dispose();
      const ms = ts.sort((a, b) => a - b)[2];
      const gbs = bytes / (ms * 1e6);
      console.log(`| ${md} | ${variant} | ${kind} | ${ms.toFixed(3)} | ${gbs.toFixed(0)} | ${((100 * gbs * 1e9) / copy).toFixed(1)}% |`);
    }
  }
}
