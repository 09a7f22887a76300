/**
 * The one-token FP8 decode GEMV (kernels/fp8_gemv.cu fp8_gemv1, session 8) on llama-3.1-8b / llama-3.2-1b linear shapes:
 *
 * 1. Correctness (random e4m3 weights with exponents 3..10, random bf16 x, per-row weight scales, static activation
 *    scale): mode 3 (fp32, no norm) of fp8_gemv1 and of the 16-row fp8_gemv_fused against a float64 sum of the same e4m3
 *    bytes (x quantized on the device by fp8_quantize_bf16): worst |Δ| / max |ref| and rel L2; the decode chain's forms
 *    (qkv: norm + mode 0, o_proj: mode 1, gate_up: norm + mode 2, down: mode 1) of fp8_gemv1 against the 16-row kernel:
 *    outputs that differ and the largest difference in bf16 rounding steps.
 * 2. Timing of each linear of one layer, per kind: "16row" (fp8_gemv_fused*, the default path), "16row_pdl" (the _pdl entry
 *    points with PDL, fp8Pdl), "gemv1" (persistent grid of blocksPerSm × SMs, PDL): a graph of launches cycling through
 *    copies of the weights (≥ 256 MB, past the L2), µs per launch and % of a device copy measured in this process.
 *    (Session 7's fp8_gemv1, timed as "gemv1old" in session 8's r1, is gone.)
 *
 *   bun bench/fp8_gemv1_check.ts [--models 8b,1b] [--variants "default;-DFG1_D=8"] [--no-check] [--probe]
 *
 * A variant's -DFG1_MINB=N sets the persistent grid's blocks per SM too (default FP8_GEMV1_BLOCKS_PER_SM); -DFG1_BPS=N sets
 * only the grid's (e.g. 1: one block per SM at the same registers, so the next launch's block fits beside it under PDL).
 */
import process from "node:process";
import { parseArgs } from "node:util";
import { loadKernelFile } from "../lib/backends/cuda/compiler.ts";
import { FP8_GEMV1_BLOCKS_PER_SM, fp8Gemv1Grid } from "../lib/backends/cuda/fp8_launch.ts";
import { CudaDevice } from "../lib/cuda/device.ts";
import { copyCeiling } from "./copy_bandwidth.ts";

const { values } = parseArgs({
  args: process.argv.slice(2),
  options: { models: { type: "string" }, variants: { type: "string" }, "no-check": { type: "boolean" }, probe: { type: "boolean" } },
});
const MODELS: Record<string, { H: number; qkv: number; I: number }> = {
  "8b": { H: 4096, qkv: 6144, I: 14336 },
  "1b": { H: 2048, qkv: 3072, I: 8192 },
};
const models = (values.models ?? "8b,1b").split(",");
const variants = (values.variants ?? "default").split(";");
const FUSED = ["ptr", "ptr", "ptr", "ptr", "ptr", "ptr", "f32", "i32", "i32", "i32", "f32", "i32"] as const;
const ACT = 0.05;

const E4 = new Float64Array(256);
for (let b = 0; b < 256; b++) {
  const e = (b >> 3) & 15, m = b & 7;
  const v = e === 0 ? m * 2 ** -9 : (1 + m / 8) * 2 ** (e - 7);
  E4[b] = b & 0x80 ? -v : v;
}
const bf16Of = (f: number): number => {
  const u = new Uint32Array(new Float32Array([f]).buffer)[0];
  return (u + 0x7fff + ((u >>> 16) & 1)) >>> 16;
};
const fromBf16 = (h: number): number => new Float32Array(new Uint32Array([h << 16]).buffer)[0];
let seed = 12345;
const rnd = (): number => {
  seed ^= seed << 13;
  seed ^= seed >>> 17;
  seed ^= seed << 5;
  return (seed >>> 0) / 4294967296;
};

const dev = CudaDevice.open(0);
const copy = copyCeiling(dev).bps;
console.log(`GPU ${dev.name}, ${dev.smCount} SMs; copy ${(copy / 1e12).toFixed(3)} TB/s`);
using stream = dev.createStream();
using e0 = dev.createEvent();
using e1 = dev.createEvent();

interface Lin {
  readonly name: string;
  readonly n: number;
  readonly k: number;
  readonly mode: number;
  readonly norm: boolean;
}
const linears = (md: string): Lin[] => {
  const M = MODELS[md];
  return [
    { name: "qkv", n: M.qkv, k: M.H, mode: 0, norm: true },
    { name: "o_proj", n: M.H, k: M.H, mode: 1, norm: false },
    { name: "gate_up", n: 2 * M.I, k: M.H, mode: 2, norm: true },
    { name: "down", n: M.H, k: M.I, mode: 1, norm: false },
    // --probe: a 1 MB linear of one row per warp of the persistent grid (2 blocks on 132 SMs), whose time is nearly all
    // the per-launch fixed cost (launch, prologue, ramp, tail), with and without the RMSNorm prologue.
    ...(values.probe ? [{ name: "probe", n: 2112, k: 512, mode: 1, norm: false }, { name: "probe_norm", n: 2112, k: 512, mode: 0, norm: true }] : []),
  ];
};

const maxNK = Math.max(...models.flatMap((md) => linears(md).map((l) => l.n * l.k)));
const maxN = Math.max(...models.flatMap((md) => linears(md).map((l) => l.n)));
const maxK = Math.max(...models.flatMap((md) => linears(md).map((l) => l.k)));
// Host data for the checks: e4m3 bytes with exponents 3..10 (|w| 2^-4 .. 2^3·1.875), random signs and mantissas.
const hostW = new Uint8Array(maxNK);
for (let i = 0; i < hostW.length; i++) {
  const r = (rnd() * 4294967296) >>> 0;
  hostW[i] = (r & 0x80) | ((3 + ((r >>> 8) % 8)) << 3) | ((r >>> 16) & 7);
}
const hostS = Float32Array.from({ length: maxN }, () => 0.002 + 0.01 * rnd());
const hostX = Uint16Array.from({ length: maxK }, () => bf16Of((rnd() - 0.5) * 4));
const hostNorm = Uint16Array.from({ length: maxK }, () => bf16Of(0.8 + 0.4 * rnd()));
using W = dev.alloc(maxNK);
W.copyFromHost(hostW);
using S = dev.alloc(maxN * 4);
S.copyFromHost(hostS);
using X = dev.alloc(maxK * 2);
X.copyFromHost(hostX);
using NW = dev.alloc(maxK * 2);
NW.copyFromHost(hostNorm);
using Y0 = dev.alloc(maxN * 4);
using Y1 = dev.alloc(maxN * 4);
using XQ = dev.alloc(maxK);
using RS = dev.alloc(256);
// Timing: 1 GiB of weights (copies of a linear at different offsets), e4m3 0.5.
const TBYTES = 1 << 30;
using TW = dev.alloc(TBYTES);
TW.fill(0x30, { stream });
stream.synchronize();

/** The persistent grid's blocks per SM of a variant: -DFG1_BPS=N (the grid only), else -DFG1_MINB=N, else the launcher's. */
const blocksPerSm = (variant: string): number =>
  Number(/-DFG1_BPS=(\d+)/.exec(variant)?.[1] ?? /-DFG1_MINB=(\d+)/.exec(variant)?.[1] ?? FP8_GEMV1_BLOCKS_PER_SM);

for (const [vi, variant] of variants.entries()) {
  const options = variant === "default" ? [] : variant.split(/\s+/).filter(Boolean);
  using mod = loadKernelFile(dev, "fp8_gemv.cu", { options });
  const bps = blocksPerSm(variant);
  const kern = (kind: string, norm: boolean) => {
    const n = norm ? "_norm" : "";
    const name = kind === "16row" ? `fp8_gemv_fused${n}_bf16` : kind === "16row_pdl" ? `fp8_gemv_fused${n}_pdl_bf16` : `fp8_gemv1_fused${n}_bf16`;
    return mod.kernel(name, FUSED);
  };
  const gridOf = (kind: string, l: Lin): number => kind === "gemv1" ? fp8Gemv1Grid(l.n, l.mode, bps * dev.smCount) : l.n / 16;
  const kinds = vi === 0 ? ["16row", "16row_pdl", "gemv1"] : ["gemv1"];
  for (const md of models) {
    if (vi === 0 && !values["no-check"]) {
      const quant = mod.kernel("fp8_quantize_bf16", ["ptr", "ptr", "ptr", "i32", "i32", "f32"]);
      for (const l of linears(md)) {
        // float64 reference of mode 3 (no norm, no bias) from the device's e4m3 x bytes.
        quant.launch(1, 256, [X, XQ, RS, 1, l.k, ACT]);
        const xq = new Uint8Array(l.k);
        XQ.copyToHost(xq);
        const xv = Float64Array.from(xq, (b) => E4[b]);
        const ref = new Float64Array(l.n);
        let refMax = 0;
        for (let j = 0; j < l.n; j++) {
          let acc = 0;
          const o = j * l.k;
          for (let i = 0; i < l.k; i++) acc += E4[hostW[o + i]] * xv[i];
          ref[j] = acc * Math.fround(ACT) * hostS[j];
          refMax = Math.max(refMax, Math.abs(ref[j]));
        }
        const m3 = (kind: string): string => {
          kern(kind, false).launch(gridOf(kind, { ...l, mode: 3 }), 256, [X, W, S, 0n, Y0, 0n, 1e-5, 1, l.n, l.k, ACT, 3]);
          const got = new Float32Array(l.n);
          Y0.copyToHost(got);
          let worst = 0, num = 0, den = 0;
          for (let j = 0; j < l.n; j++) {
            worst = Math.max(worst, Math.abs(got[j] - ref[j]));
            num += (got[j] - ref[j]) ** 2;
            den += ref[j] ** 2;
          }
          return `${kind} max|Δ|/max|ref| ${(worst / refMax).toExponential(2)} relL2 ${Math.sqrt(num / den).toExponential(2)}${
            got.some(Number.isNaN) ? " NaN!" : ""
          }`;
        };
        // The chain's form: gemv1 vs the 16-row kernel (bf16 outputs; mode 1 onto the same residual).
        const outN = l.mode === 2 ? l.n / 2 : l.n;
        const resid = Uint16Array.from({ length: outN }, (_, j) => bf16Of(Math.sin(j) * 2));
        const form = (kind: string): Uint16Array => {
          const y = kind === "gemv1" ? Y1 : Y0;
          y.copyFromHost(resid);
          kern(kind, l.norm).launch(gridOf(kind, l), 256, [X, W, S, 0n, y, l.norm ? NW : 0n, 1e-5, 1, l.n, l.k, ACT, l.mode]);
          const h = new Uint16Array(outN);
          y.copyToHost(h);
          return h;
        };
        const a = form("16row"), b = form("gemv1");
        let diff = 0, worstSteps = 0, nan = 0;
        for (let j = 0; j < outN; j++) {
          if (Number.isNaN(fromBf16(b[j]))) nan++;
          if (a[j] === b[j]) continue;
          diff++;
          const va = fromBf16(a[j]), vb = fromBf16(b[j]);
          const ulp = Math.max(Math.abs(va) * 2 ** -7, 1e-30);
          worstSteps = Math.max(worstSteps, Math.abs(va - vb) / ulp);
        }
        const ok = nan === 0 && worstSteps <= 1.0001;
        console.log(
          `check ${md} ${l.name} [${l.n}x${l.k}] mode 3 vs float64: ${m3("16row")}; ${m3("gemv1")}; chain form (${
            l.norm ? "norm + " : ""
          }mode ${l.mode}) gemv1 vs 16row: ${diff}/${outN} differ, worst ${worstSteps.toFixed(2)} bf16 steps${nan ? `, ${nan} NaN` : ""} ${ok ? "OK" : "FAIL"}`,
        );
      }
    }
    console.log(`| model | linear | n x k | kind | variant | µs | % of copy |`);
    console.log("| --- | --- | --- | --- | --- | ---: | ---: |");
    for (const l of linears(md)) {
      const bytes = l.n * l.k;
      const copies = Math.max(2, Math.min(Math.floor(TBYTES / bytes), Math.ceil((256 << 20) / bytes)));
      const launches = Math.max(copies, 24);
      for (const kind of kinds) {
        const k = kern(kind, l.norm);
        const pdl = kind !== "16row";
        const g = stream.capture((s) => {
          for (let r = 0; r < launches; r++) {
            const off = BigInt((r % copies) * bytes);
            k.launch(gridOf(kind, l), 256, [X, TW.ptr + off, S, 0n, r % 2 ? Y1 : Y0, l.norm ? NW : 0n, 1e-5, 1, l.n, l.k, ACT, l.mode], {
              stream: s,
              pdl: pdl && r > 0,
            });
          }
        });
        g.launch(stream);
        stream.synchronize();
        const ts: number[] = [];
        for (let r = 0; r < 7; r++) {
          e0.record(stream);
          g.launch(stream);
          e1.record(stream);
          e1.synchronize();
          ts.push(e1.elapsedSince(e0));
        }
        g.dispose();
        const us = (ts.sort((a, b) => a - b)[3] * 1e3) / launches;
        console.log(`| ${md} | ${l.name} | ${l.n}x${l.k} | ${kind} | ${variant} | ${us.toFixed(2)} | ${((100 * bytes) / (us * 1e-6) / copy).toFixed(1)}% |`);
      }
    }
  }
}
