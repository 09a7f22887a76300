/**
 * Batch-1 bf16 decode GEMVs (issue 16 item 1; kernels/gemv.cu) under compile-time variants: for each variant (NVRTC
 * -D options, e.g. GF_U, GF_PIPE, GF_XPRE) the decoder linears of llama-3.2-1b / llama-3.1-8b chained as a fused decode
 * step runs them — per layer gemv_fused_norm (qkv, mode 0), gemv_fused (o_proj, mode 1), gemv_fused_norm (gate_up,
 * mode 2), gemv_fused{_ks} (down, mode 1; the split of gemvSplitRows, as the engine) — every layer its own weights,
 * m = 1, captured in one graph with programmatic dependent launch as the engine's decode graph takes it ("step"), the
 * same without PDL ("nopdl"), and each role's launches alone, chained with PDL ("qkv", "o", "gu", "down"). Per token µs
 * and % of the copy ceiling (bench/copy_bandwidth.ts, measured in the same process) the weight bytes allow; the
 * registers of each entry point. No attention, embedding or lm_head: the GEMV chain only. Each variant's four layer-0
 * outputs (random layer-0 weights, x and residual) are compared bit for bit with the first variant's.
 *
 *   bun bench/gemv_tune.ts [--models 8b,1b] [--variants "default;-DGF_PIPE=1;ks:o=2,qkv=2 -DGF_XPRE=1"] [--kinds step,nopdl,qkv,o,gu,down] [--reps 7]
 *
 * (A variant list that starts with "-D" needs the `--variants=...` form.) A variant's `ks:ROLE=KS,...` word: those roles'
 * warps per row instead of gemvSplitRows'; `-DGF_TMA=1` (with `-DGF_TMA_HEAD=H`) launches with the dynamic shared memory
 * the bulk-copied slices need and the largest shared-memory carveout (`nocarve`: the driver's). Only the m = 1 fused entry
 * points compile (LLMRT_SELECT), a second or two a variant.
 */
import process from "node:process";
import { parseArgs } from "node:util";
import { loadKernelFile } from "../lib/backends/cuda/compiler.ts";
import { gemvSplitRows } from "../lib/backends/cuda/launch_types.ts";
import { CudaDevice } from "../lib/cuda/device.ts";
import { CU } from "../ffi/cuda.ts";
import { copyCeiling } from "./copy_bandwidth.ts";

const { values } = parseArgs({
  args: process.argv.slice(2),
  options: { models: { type: "string" }, variants: { type: "string" }, kinds: { type: "string" }, reps: { type: "string" } },
});
const MODELS: Record<string, { layers: number; H: number; qkv: number; I: number }> = {
  "1b": { layers: 16, H: 2048, qkv: 3072, I: 8192 },
  "8b": { layers: 32, H: 4096, qkv: 6144, I: 14336 },
};
const models = (values.models ?? "8b,1b").split(",");
const variants = (values.variants ?? "default").split(";");
const kinds = (values.kinds ?? "step,nopdl,qkv,o,gu,down").split(",");
const reps = Number(values.reps ?? 7);
const FUSED = ["ptr", "ptr", "ptr", "ptr", "ptr", "f32", "i32", "i32", "i32", "i32", "ptr", "i64"] as const;
const ROLES = ["qkv", "o", "gu", "down"] as const;
const cdiv = (a: number, b: number): number => Math.ceil(a / b);
const SELECT = [
  "gemv_fused_bf16_m1",
  "gemv_fused_norm_bf16_m1",
  "gemv_fused_ks_bf16_m1",
  "gemv_fused_norm_ks_bf16_m1",
];

const dev = CudaDevice.open(0);
const copy = copyCeiling(dev).bps;
console.log(`GPU ${dev.name}; copy ceiling ${(copy / 1e12).toFixed(3)} TB/s`);
using stream = dev.createStream();
using e0 = dev.createEvent();
using e1 = dev.createEvent();
console.log("| model | variant | kind | µs / token | % of copy | µs / layer |");
console.log("| --- | --- | --- | ---: | ---: | ---: |");
for (const md of models) {
  const M = MODELS[md];
  // [role, n, k, norm, mode]
  const shapes = [["qkv", M.qkv, M.H, true, 0], ["o", M.H, M.H, false, 1], ["gu", 2 * M.I, M.H, true, 2], ["down", M.H, M.I, false, 1]] as const;
  const perLayer = shapes.reduce((a, [, n, k]) => a + n * k * 2, 0);
  using W = dev.alloc(perLayer * M.layers);
  W.fill(0x3c, { stream }); // bf16 0x3c3c ≈ 0.0115
  using normW = dev.alloc(M.H * 2);
  normW.fill(0x3f, { stream });
  using h = dev.alloc(M.H * 2);
  h.fill(0x3c, { stream });
  using qkv = dev.alloc(M.qkv * 2);
  qkv.fill(0x3c, { stream });
  using act = dev.alloc(M.I * 2);
  act.fill(0x3c, { stream });
  // Layer 0's weights, x and the residual random (bf16 in ±0.05): each variant's four roles once from the same inputs,
  // compared bit for bit with the first variant's outputs.
  const rndBf16 = (count: number): Uint16Array => {
    const f = new Float32Array(1), u = new Uint32Array(f.buffer), out = new Uint16Array(count);
    for (let i = 0; i < count; i++) {
      f[0] = Math.random() * 0.1 - 0.05;
      out[i] = u[0] >>> 16;
    }
    return out;
  };
  const tile = rndBf16(1 << 21); // 4 MiB
  for (let o = 0; o < perLayer; o += tile.byteLength) W.copyFromHost(tile.subarray(0, Math.min(tile.length, (perLayer - o) / 2)), { offset: o });
  using xr = dev.alloc(M.I * 2);
  xr.copyFromHost(rndBf16(M.I));
  using yInit = dev.alloc(2 * M.I * 4);
  yInit.copyFromHost(rndBf16(4 * M.I));
  using yBuf = dev.alloc(2 * M.I * 4);
  let refBits: Uint16Array | undefined;
  stream.synchronize();
  for (const variant0 of variants) {
    const words = variant0 === "default" ? [] : variant0.split(/\s+/).filter(Boolean);
    const ksWord = words.find((w) => w.startsWith("ks:"));
    const ksOverride = new Map((ksWord ?? "ks:").slice(3).split(",").filter(Boolean).map((p) => [p.split("=")[0], Number(p.split("=")[1])] as const));
    const ksOf = (r: string, n: number, k: number): number => ksOverride.get(r) || gemvSplitRows(n, k);
    const options = [...words.filter((w) => w !== ksWord && w !== "nocarve"), "-DLLMRT_SELECT=1", ...SELECT.map((k) => `-DLLMRT_K_${k}=1`)];
    using mod = loadKernelFile(dev, "gemv.cu", { options });
    const kern = (norm: boolean, ks: number) => mod.kernel(`gemv_fused${norm ? "_norm" : ""}${ks > 1 ? "_ks" : ""}_bf16_m1`, FUSED);
    // GF_TMA: each of the 8 warps bulk-copies its row slice into dynamic shared memory (8 × k / ks bf16)
    const isTma = words.includes("-DGF_TMA=1");
    // GF_TMA_HEAD=H: only the first H chunks (32 × GF_U vectors) of a slice in shared memory (0: all of it)
    const defOf = (name: string, d: number): number => Number(words.find((w) => w.startsWith(`-D${name}=`))?.split("=")[1] ?? d);
    const headVec = defOf("GF_TMA_HEAD", 0) * 32 * defOf("GF_U", 4);
    const smemOf = (k: number, ks: number): number => (isTma ? 8 * (headVec > 0 ? Math.min(k / ks / 8, headVec) : k / ks / 8) * 16 : 0);
    if (isTma) {
      for (const [r, n, k, norm] of shapes) {
        const kf = kern(norm, ksOf(r, n, k));
        kf.setMaxDynamicSharedMemory(
          Math.max(
            ...shapes.filter(([r2, n2, k2, norm2]) => norm2 === norm && ksOf(r2, n2, k2) === ksOf(r, n, k)).map(([r2, n2, k2]) => smemOf(k2, ksOf(r2, n2, k2))),
          ),
        );
        if (!words.includes("nocarve")) kf.setPreferredSharedCarveout(100);
      }
    }
    const regs = shapes.map(([r, n, k, norm]) => `${r} ${kern(norm, ksOf(r, n, k)).attribute(CU.FUNC_ATTRIBUTE_NUM_REGS)}`).join(", ");
    console.log(`  ${md} ${variant0}: registers ${regs}`);
    {
      const parts: Uint16Array[] = [];
      let off = 0n;
      for (const [r, n, k, norm, mode] of shapes) {
        const ks = ksOf(r, n, k);
        yBuf.copyFromDevice(yInit, yInit.byteLength, { stream });
        const grid = mode === 2 ? cdiv(n / 2, 4 / ks) : cdiv(n, 8 / ks);
        kern(norm, ks).launch(grid, 256, [xr, W.ptr + off, 0n, yBuf, normW, 1e-5, 1, n, k, mode | (ks > 1 ? ks << 4 : 0), 0n, 0n], {
          stream,
          sharedMemBytes: smemOf(k, ks),
        });
        const outN = mode === 2 ? n / 2 : n;
        const host = new Uint16Array(outN);
        stream.synchronize();
        yBuf.copyToHost(host);
        parts.push(host);
        off += BigInt(n * k * 2);
      }
      const bits = new Uint16Array(parts.reduce((a, p) => a + p.length, 0));
      let o = 0;
      for (const p of parts) {
        bits.set(p, o);
        o += p.length;
      }
      if (!refBits) refBits = bits;
      let diff = 0;
      for (let i = 0; i < bits.length; i++) if (bits[i] !== refBits[i]) diff++;
      console.log(
        `  ${md} ${variant0}: check layer 0 (qkv, o, gu, down outputs, ${bits.length} bf16): ${diff === 0 ? "same bits as" : `${diff} DIFFER from`} ${
          variants[0]
        }`,
      );
    }
    for (const kind of kinds) {
      const roles = kind === "step" || kind === "nopdl" ? ROLES : ROLES.filter((r) => r === kind);
      const bytes = shapes.filter(([r]) => roles.includes(r)).reduce((a, [, n, k]) => a + n * k * 2, 0) * M.layers;
      const g = stream.capture((s) => {
        let first = true;
        for (let l = 0; l < M.layers; l++) {
          let off = BigInt(l * perLayer);
          for (const [r, n, k, norm, mode] of shapes) {
            const ks = ksOf(r, n, k);
            if (roles.includes(r)) {
              const x = r === "qkv" || r === "gu" ? h : r === "o" ? qkv : act;
              const y = r === "qkv" ? qkv : r === "gu" ? act : h;
              const grid = mode === 2 ? cdiv(n / 2, 4 / ks) : cdiv(n, 8 / ks);
              kern(norm, ks).launch(grid, 256, [x, W.ptr + off, 0n, y, normW, 1e-5, 1, n, k, mode | (ks > 1 ? ks << 4 : 0), 0n, 0n], {
                stream: s,
                pdl: kind !== "nopdl" && !first,
                sharedMemBytes: smemOf(k, ks),
              });
              first = false;
            }
            off += BigInt(n * k * 2);
          }
        }
      });
      g.launch(stream);
      stream.synchronize();
      const ts: number[] = [];
      for (let i = 0; i < reps; i++) {
        e0.record(stream);
        g.launch(stream);
        e1.record(stream);
        e1.synchronize();
        ts.push(e1.elapsedSince(e0));
      }
      g.dispose();
      const ms = ts.sort((a, b) => a - b)[reps >> 1];
      const pct = (100 * bytes) / copy / (ms / 1000);
      console.log(`| ${md} | ${variant0} | ${kind} | ${(ms * 1000).toFixed(1)} | ${pct.toFixed(1)}% | ${((ms * 1000) / M.layers).toFixed(2)} |`);
    }
  }
}
process.exit(0);
