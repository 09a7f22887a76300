/**
 * quant_gemv1 (kernels/quant_gemv1.cu, CUDA flag quantGemv1: one-token quantized decode GEMV on a persistent grid,
 * each warp streaming a contiguous run of row pairs) against the 16-row quant_gemv_fused* kernels in one process:
 *
 * 1. checks — every gemv1 variant on the launcher's grid and on 1 / 3 blocks, modes 0-3, with and without the RMSNorm
 *    prologue, against quant_gemv_fused{,_norm} m = 1 (the kernel tests/quant_cuda.test.ts checks against float64): the
 *    same bits expected (the same products and fp32 sums in the same order), at least every output within one bf16 unit
 *    + 2^-16 of max |y| (fp32 mode 3: 2^-16 of max |y|); quant_gemv1_addnorm + _rs against quant_gemv_fused_addnorm + _rs.
 * 2. timing — one decoder layer's linears of llama-3.1-8b / llama-3.2-1b (int4 g128 + zero points, int8 per channel)
 *    as the decode plans run them: "fused" (quant_gemv_fused: _norm qkv / gate_up), "tail" (quantTailNorm: _rs qkv /
 *    gate_up, _addnorm o / down; today's default), "gemv1" (qkv / gate_up with the prologue RMSNorm, o / down mode 1),
 *    "gemv1 tail" (quant_gemv1_rs qkv / gate_up, quant_gemv1_addnorm o / down),
 *    graph replays over ≥ 256 MB of weight copies (no PDL), µs and % of the device copy measured in the same process.
 *
 *   bun bench/quant_gemv1_tune.ts [--variants "D=8;D=8,GMAX=4;D=6"] [--only 8b] [--bits 4] [--json FILE]
 *
 * A variant is a comma list of Q1_ knobs (`D=8` = -DQ1_D=8); `RB=n` sets the grid's blocks per SM (default MINB or 2).
 */
import * as fs from "node:fs";
import process from "node:process";
import { parseArgs } from "node:util";
import { loadKernelFile } from "../lib/backends/cuda/compiler.ts";
import { quantGemv1Grid } from "../lib/backends/cuda/quant_launch.ts";
import { CudaDevice } from "../lib/cuda/device.ts";
import type { CudaModule } from "../lib/cuda/module.ts";
import { copyCeiling } from "./copy_bandwidth.ts";
import { bf16Ulp, bf16Value, quantWeights, xBits } from "./quant_bench_data.ts";

const { values } = parseArgs({
  args: process.argv.slice(2),
  options: { variants: { type: "string" }, json: { type: "string" }, only: { type: "string" }, bits: { type: "string" } },
});
/** --bits 4 / 8: only that format's checks, timings and entry points (compile time). */
const BITS = values.bits ? [Number(values.bits)] : [4, 8];
const US = BITS.map((b) => (b === 4 ? "_u4" : "_u8"));
const variants = (values.variants ?? "D=8").split(";");
const PARAMS = ["ptr", "ptr", "ptr", "ptr", "ptr", "ptr", "ptr", "f32", "i32", "i32", "i32", "i32", "i32"] as const;
const APARAMS = [...PARAMS, "ptr", "ptr"] as const;

const d = CudaDevice.open(0);
const ceiling = copyCeiling(d).bps;
const base = loadKernelFile(d, "quant_gemv.cu", {
  options: [
    "-DLLMRT_SELECT",
    ...["", "_norm", "_addnorm", "_rs"].flatMap((f) => US.map((u) => `-DLLMRT_K_quant_gemv_fused${f}${u}=1`)),
  ],
});
const knob = (v: string, name: string): number | undefined => {
  const kv = v.split(",").find((s) => s.startsWith(`${name}=`));
  return kv ? Number(kv.slice(name.length + 1)) : undefined;
};
const mods: [string, CudaModule][] = variants.map((v) => [
  v,
  loadKernelFile(d, "quant_gemv1.cu", {
    options: [
      ...v.split(",").filter((kv) => kv !== "" && !kv.startsWith("RB=")).map((kv) => `-DQ1_${kv}`),
      "-DLLMRT_SELECT",
      ...["", "_norm", "_addnorm", "_rs"].flatMap((f) => US.map((u) => `-DLLMRT_K_quant_gemv1${f}${u}=1`)),
    ],
  }),
]);
/** The launcher's grid for variant v (blocks per SM: RB, else MINB, else 2). */
const grid1 = (v: string, N: number, mode: number): number => quantGemv1Grid(N, mode, (knob(v, "RB") ?? knob(v, "MINB") ?? 2) * d.smCount);
using stream = d.createStream();
using t0 = d.createEvent();
using t1 = d.createEvent();

// 1. Checks against quant_gemv_fused m = 1.
const checks: string[] = [];
let failed = 0;
for (
  const [bits, group, zp, K, N] of [
    [4, 128, true, 4096, 512],
    [4, 128, true, 2048, 768],
    [4, 256, false, 4096, 512],
    [4, 128, true, 14336, 256],
    [8, 4096, false, 4096, 512],
    [8, 64, true, 2048, 256],
    [8, 14336, false, 14336, 256],
  ] as [4 | 8, number, boolean, number, number][]
) {
  if (!BITS.includes(bits)) continue;
  const u = bits === 4 ? "u4" : "u8";
  using w = quantWeights(d, N, K, bits, group, zp, 1, true);
  using x = d.alloc(K * 2);
  using y0 = d.alloc(N * 4);
  using y1 = d.alloc(N * 4);
  using bias = d.alloc(N * 2);
  using normW = d.alloc(K * 2);
  x.copyFromHost(xBits(K, 3));
  bias.copyFromHost(xBits(N, 4));
  normW.copyFromHost(xBits(K, 6));
  const resid = xBits(N, 9);
  for (const [v, mod] of mods) {
    let worst = 0, maxRel = 0, launches = 0, sameBits = 0;
    for (const norm of K <= 8192 ? [false, true] : [false]) {
      for (const mode of [0, 1, 2, 3]) {
        for (const withBias of [false, true]) {
          if (withBias && mode !== 0 && mode !== 2) continue;
          const b = withBias ? bias.ptr : 0n;
          const fill = (y: typeof y0): void => y.copyFromHost(mode === 1 ? resid : new Uint8Array(N * 4));
          fill(y0);
          base.kernel(`quant_gemv_fused${norm ? "_norm" : ""}_${u}`, PARAMS).launch(N / 16, 256, [
            x,
            ...w.args(0),
            b,
            y0,
            norm ? normW.ptr : 0n,
            1e-5,
            1,
            N,
            K,
            group,
            mode,
          ]);
          const want = new Uint8Array(N * 4);
          d.synchronize();
          y0.copyToHost(want);
          for (const g of [grid1(v, N, mode), 1, 3]) {
            fill(y1);
            mod.kernel(`quant_gemv1${norm ? "_norm" : ""}_${u}`, PARAMS).launch(g, 256, [
              x,
              ...w.args(0),
              b,
              y1,
              norm ? normW.ptr : 0n,
              1e-5,
              1,
              N,
              K,
              group,
              mode,
            ]);
            const got = new Uint8Array(N * 4);
            d.synchronize();
            y1.copyToHost(got);
            launches++;
            if (got.every((b, j) => b === want[j])) sameBits++;
            if (mode === 3) {
              const a = new Float32Array(got.buffer), r = new Float32Array(want.buffer);
              const mx = r.reduce((p, q) => Math.max(p, Math.abs(q)), 1e-30);
              for (let j = 0; j < N; j++) {
                const diff = Math.abs(a[j] - r[j]);
                worst = Math.max(worst, Number.isFinite(diff) ? (diff / mx) * 2 ** 16 : Infinity);
                maxRel = Math.max(maxRel, diff / mx);
              }
            } else {
              const n = mode === 2 ? N / 2 : N, a = new Uint16Array(got.buffer, 0, n), r = new Uint16Array(want.buffer, 0, n);
              let mx = 1e-30;
              for (let j = 0; j < n; j++) mx = Math.max(mx, Math.abs(bf16Value(r[j])));
              for (let j = 0; j < n; j++) {
                const diff = Math.abs(bf16Value(a[j]) - bf16Value(r[j]));
                worst = Math.max(worst, Number.isFinite(diff) ? diff / (bf16Ulp(r[j]) + 2 ** -16 * mx) : Infinity);
                maxRel = Math.max(maxRel, diff / mx);
              }
            }
          }
        }
      }
    }
    const ok = worst <= 1;
    if (!ok) failed++;
    checks.push(
      `check ${u} g${group}${zp ? " zp" : ""} K=${K} N=${N} [${v}]: ${
        ok ? "ok" : "FAIL"
      } vs quant_gemv_fused (${launches} launches, ${sameBits} the same bits; worst ${worst.toFixed(2)} of the bound, max |diff| / max |y| ${
        maxRel.toExponential(2)
      })`,
    );
  }
}
// 1b. quant_gemv1_addnorm + quant_gemv1_rs (quantTailNorm with quantGemv1) against quant_gemv_fused_addnorm + _rs: the
// residual and xw the same bits, the consumer's outputs the same bits (modes 0, 2).
for (
  const [bits, group, zp, K, N] of [[4, 128, true, 4096, 4096], [4, 128, true, 14336, 4096], [8, 4096, false, 4096, 4096]] as [
    4 | 8,
    number,
    boolean,
    number,
    number,
  ][]
) {
  if (!BITS.includes(bits)) continue;
  const u = bits === 4 ? "u4" : "u8", N2 = 2 * N;
  using w = quantWeights(d, N, K, bits, group, zp, 1, true);
  using w2 = quantWeights(d, N2, N, bits, bits === 4 ? group : N, zp, 1, true);
  using x = d.alloc(K * 2);
  using normW = d.alloc(N * 2);
  using r0 = d.alloc(N * 2);
  using r1 = d.alloc(N * 2);
  using xw0 = d.alloc(N * 2);
  using xw1 = d.alloc(N * 2);
  using ssq0 = d.alloc((N / 16) * 4);
  using ssq1 = d.alloc((N / 2) * 4);
  using y0 = d.alloc(N2 * 2);
  using y1 = d.alloc(N2 * 2);
  x.copyFromHost(xBits(K, 11));
  normW.copyFromHost(xBits(N, 13));
  const resid = xBits(N, 14);
  const g2 = bits === 4 ? group : N;
  for (const [v, mod] of mods) {
    r0.copyFromHost(resid);
    r1.copyFromHost(resid);
    base.kernel(`quant_gemv_fused_addnorm_${u}`, APARAMS).launch(N / 16, 256, [x, ...w.args(0), 0n, r0, normW.ptr, 1e-5, 1, N, K, group, 1, xw0, ssq0]);
    mod.kernel(`quant_gemv1_addnorm_${u}`, APARAMS).launch(grid1(v, N, 1), 256, [x, ...w.args(0), 0n, r1, normW.ptr, 1e-5, 1, N, K, group, 1, xw1, ssq1]);
    const get = (b: typeof r0, n: number): Uint8Array => {
      const h = new Uint8Array(n);
      d.synchronize();
      b.copyToHost(h);
      return h;
    };
    const eq = (a: Uint8Array, b: Uint8Array): boolean => a.every((q, j) => q === b[j]);
    const resSame = eq(get(r0, N * 2), get(r1, N * 2)), xwSame = eq(get(xw0, N * 2), get(xw1, N * 2));
    let outSame = true;
    for (const mode of [0, 2]) {
      y0.fill(0);
      y1.fill(0);
      base.kernel(`quant_gemv_fused_rs_${u}`, PARAMS).launch(N2 / 16, 256, [xw0, ...w2.args(0), 0n, y0, ssq0.ptr, 1e-5, 1, N2, N, g2, mode]);
      mod.kernel(`quant_gemv1_rs_${u}`, PARAMS).launch(grid1(v, N2, mode), 256, [xw1, ...w2.args(0), 0n, y1, ssq1.ptr, 1e-5, 1, N2, N, g2, mode]);
      outSame &&= eq(get(y0, N2 * 2), get(y1, N2 * 2));
    }
    const ok = resSame && xwSame && outSame;
    if (!ok) failed++;
    checks.push(
      `tail ${u} K=${K} N=${N} [${v}]: ${ok ? "ok" : "FAIL"} — residual ${resSame ? "same bits" : "DIFFERENT"}, xw ${
        xwSame ? "same bits" : "DIFFERENT"
      }, rs outputs (modes 0/2) ${outSame ? "same bits" : "DIFFERENT"} as quant_gemv_fused_addnorm + _rs`,
    );
  }
}
console.log(checks.join("\n"));
console.log(`checks: ${checks.length - failed} ok, ${failed} failed; device copy ceiling ${(ceiling / 1e9).toFixed(0)} GB/s`);

// 2. Timing.
const time = (launch: (i: number) => void, copies: number): number => {
  using g = stream.capture(() => {
    for (let i = 0; i < copies; i++) launch(i);
  });
  g.launch(stream);
  t0.record(stream);
  for (let r = 0; r < 3; r++) g.launch(stream);
  t1.record(stream);
  t1.synchronize();
  return t1.elapsedSince(t0) / (3 * copies);
};
const MODELS: Record<string, [string, number, number][]> = {
  "llama-3.1-8b": [["qkv", 6144, 4096], ["o", 4096, 4096], ["gate_up", 28672, 4096], ["down", 4096, 14336]],
  "llama-3.2-1b": [["qkv", 3072, 2048], ["o", 2048, 2048], ["gate_up", 16384, 2048], ["down", 2048, 8192]],
};
/** Per linear: [prologue norm, mode] as the fused plan runs it. */
const PLAN: Record<string, [boolean, number]> = { qkv: [true, 0], o: [false, 1], gate_up: [true, 2], down: [false, 1] };
const rows: { model: string; fmt: string; plan: string; linear: string; us: number; bytes: number }[] = [];
using ssq = d.alloc(8 * 1024 * 4);
ssq.fill(0x3f);
const models = Object.entries(MODELS).filter(([name]) => !values.only || name.includes(values.only));
for (const [model, linears] of models) {
  for (const [lin, N, K] of linears) {
    using x = d.alloc(8 * K * 2);
    using y = d.alloc(8 * N * 4);
    using normW = d.alloc(K * 2);
    using xw = d.alloc(8 * N * 2);
    x.copyFromHost(xBits(8 * K, 5));
    normW.copyFromHost(xBits(K, 6));
    for (const [fmt, bits, group, zp] of [["int4 g128 zp", 4, 128, true], ["int8 per-channel", 8, K, false]] as [string, 4 | 8, number, boolean][]) {
      if (!BITS.includes(bits)) continue;
      const u = bits === 4 ? "u4" : "u8";
      const copies = Math.max(1, Math.ceil((256 << 20) / ((N * K * bits) / 8)));
      using w = quantWeights(d, N, K, bits, group, zp, copies, false);
      const [norm, mode] = PLAN[lin];
      const add = (plan: string, us: number): void => {
        rows.push({ model, fmt, plan, linear: lin, us, bytes: w.bytes });
        // As measured (a run cut short keeps what it has).
        console.log(`  ${model} ${fmt} ${lin} [${plan}] ${us.toFixed(2)} us ${((100 * w.bytes / (us * 1e-6)) / ceiling).toFixed(1)}% of copy`);
      };
      const a = (i: number, nw: bigint): (bigint | number | typeof x)[] => [x, ...w.args(i), 0n, y, nw, 1e-5, 1, N, K, group, mode];
      const fk = base.kernel(`quant_gemv_fused${norm ? "_norm" : ""}_${u}`, PARAMS);
      add("fused", 1e3 * time((i) => fk.launch(N / 16, 256, a(i, norm ? normW.ptr : 0n), { stream }), copies));
      if (mode === 1) {
        const tk = base.kernel(`quant_gemv_fused_addnorm_${u}`, APARAMS);
        add("tail", 1e3 * time((i) => tk.launch(N / 16, 256, [...a(i, normW.ptr), xw, ssq], { stream }), copies));
      } else {
        const rk = base.kernel(`quant_gemv_fused_rs_${u}`, PARAMS);
        add("tail", 1e3 * time((i) => rk.launch(N / 16, 256, a(i, ssq.ptr), { stream }), copies));
      }
      for (const [v, mod] of mods) {
        const k1 = mod.kernel(`quant_gemv1${norm ? "_norm" : ""}_${u}`, PARAMS), g = grid1(v, N, mode);
        add(`gemv1 ${v}`, 1e3 * time((i) => k1.launch(g, 256, a(i, norm ? normW.ptr : 0n), { stream }), copies));
        if (mode === 1) {
          const k2 = mod.kernel(`quant_gemv1_addnorm_${u}`, APARAMS);
          add(`gemv1 tail ${v}`, 1e3 * time((i) => k2.launch(g, 256, [...a(i, normW.ptr), xw, ssq], { stream }), copies));
        } else {
          const k2 = mod.kernel(`quant_gemv1_rs_${u}`, PARAMS);
          add(`gemv1 tail ${v}`, 1e3 * time((i) => k2.launch(g, 256, a(i, ssq.ptr), { stream }), copies));
        }
      }
    }
  }
}
const pct = (bytes: number, us: number): number => (100 * bytes / (us * 1e-6)) / ceiling;
const lines = [`device copy ceiling ${(ceiling / 1e9).toFixed(0)} GB/s`];
for (const [model, linears] of models) {
  for (const fmt of ["int4 g128 zp", "int8 per-channel"].filter((f) => BITS.includes(f.startsWith("int4") ? 4 : 8))) {
    const plans = [...new Set(rows.filter((r) => r.model === model && r.fmt === fmt).map((r) => r.plan))];
    for (const plan of plans) {
      const rs = rows.filter((r) =>
        r.model === model && r.fmt === fmt && (r.plan === plan || (plan.endsWith("no-norm") && r.plan === plan.replace(" no-norm", "")))
      );
      // "no-norm": qkv / gate_up without the prologue (o / down as the plan): the floor of the prologue's cost.
      const pick = linears.map(([lin]) => rs.find((r) => r.linear === lin && r.plan === plan) ?? rs.find((r) => r.linear === lin)!);
      const us = pick.reduce((s, r) => s + r.us, 0), b = pick.reduce((s, r) => s + r.bytes, 0);
      lines.push(
        `${model} ${fmt} [${plan}] layer ${us.toFixed(1)} us ${pct(b, us).toFixed(1)}% | ${
          pick.map((r) => `${r.linear} ${r.us.toFixed(2)} us ${pct(r.bytes, r.us).toFixed(0)}%`).join(", ")
        }`,
      );
    }
  }
}
console.log(lines.join("\n"));
if (values.json) fs.writeFileSync(values.json, JSON.stringify({ ceilingGBs: ceiling / 1e9, checks, rows, lines }, null, 1));
for (const [, m] of mods) m.dispose();
base.dispose();
