/**
 * Tuning sweep of the tensor-core quantized GEMVs (quant_gemv_fused_u4/u8, quant_gemv.cu):
 * compile-time variants (QG_U / QG_UN superchunks in flight per warp, QG_RING slots refilled one by one, QG_MINB min blocks per SM, QG_FASTNORM / QG_XFIRST the
 * one-row RMSNorm prologue, QG_TILED a tiled weight layout: timing only, its outputs differ) on the llama-3.2-1b /
 * llama-3.1-8b decoder linear shapes, beside the copy ceiling (bench/copy_bandwidth.ts) and the bf16 lm_head GEMV
 * (gemv_fused_norm_bf16_m1, fp32 logits) measured in the same run. Every variant's output is first
 * checked against the first variant's: the same bits, or (a variant that sums in another order) within
 * one bf16 unit / 2^-16 of max |y| for fp32 outputs, and quant_gemv_fused_addnorm + _rs against quant_gemv_fused
 * mode 1 + _norm. tests/quant_cuda.test.ts checks the default against float64. Timing "m=1 fused" runs each
 * linear as the fused decode plan does (qkv: _norm mode 0, o: mode 1, gate_up: _norm mode 2, down: mode 1); "m=1 tail"
 * as with LaunchEnv.quantTailNorm (qkv _rs mode 0, o _addnorm mode 1, gate_up _rs mode 2, down _addnorm mode 1);
 * "m=1" / "m=8" the plain kernel, mode 0.
 * Weights are random bytes: the timing does not depend on their values.
 *
 *   bun bench/quant_gemv_tune.ts [--variants "FASTNORM=0;U=4,MINB=2;LOOP=1"] [--m8] [--only 8b] [--bits 4] [--ms "1 tail,1"] [--json FILE]
 *
 * NOSCALE=1 / NOMATH=1 (no scale / zero-point loads; no dequantization or mma) are ceilings: timing only, their checks
 * say DIFFERENT. LDNC=1 loads the weights without L1 allocation (the same sums); CONTIG=1 (quant_gemv_fast's variant:
 * contiguous superchunk runs a warp), ZFOLD=1 (u4 zero points off through Σx), XSTAGE=1 (x staged per block in the mma's
 * pair order) sum in another order ("close").
 *
 * A variant is a comma list of QG_ knobs (`U=4` = -DQG_U=4; `NW=16`: 16 warps a tile, blocks of 512 threads);
 * `LOOP=1` (QG_LOOP) runs quant_gemv_fused* on a persistent grid of min(tiles, RB × SMs) blocks (RB=3 unless
 * given); RB=n alone caps the grid too (RING_SC=1: QG_V_RING, the per-warp cp.async ring, whose blocks loop over the
 * tiles; its _norm entry points do not loop, so their checks at a capped grid say DIFFERENT). ZS=1: QG_V_ZS (u4 zero points
 * off through per-block Σx: "close"). Each variant compiles only the entry points it runs.
 */
import * as fs from "node:fs";
import process from "node:process";
import { parseArgs } from "node:util";
import { loadKernelFile } from "../lib/backends/cuda/compiler.ts";
import { CudaDevice } from "../lib/cuda/device.ts";
import type { CudaModule } from "../lib/cuda/module.ts";
import { copyCeiling } from "./copy_bandwidth.ts";
import { bf16Ulp, bf16Value, quantWeights, xBits } from "./quant_bench_data.ts";

const { values } = parseArgs({
  args: process.argv.slice(2),
  options: {
    variants: { type: "string" },
    json: { type: "string" },
    m8: { type: "boolean" },
    only: { type: "string" },
    bits: { type: "string" },
    ms: { type: "string" },
  },
});
// --bits 4 / 8: only that format (checks, compiled entry points, timing); --ms "1 tail": only those timing rows.
const onlyBits = values.bits ? Number(values.bits) : 0;
const keepBits = (bits: number): boolean => onlyBits === 0 || bits === onlyBits;
const variants = (values.variants ?? "FASTNORM=0;FASTNORM=1;XFIRST=0;UN=3;TILED=1").split(";");
const PARAMS = ["ptr", "ptr", "ptr", "ptr", "ptr", "ptr", "ptr", "f32", "i32", "i32", "i32", "i32", "i32"] as const;

const d = CudaDevice.open(0);
const ceiling = copyCeiling(d).bps;
const defines = (v: string): string[] => [
  ...v.split(",").filter((kv) => kv !== "" && !kv.startsWith("RB=")).map((kv) => `-DQG_${kv}`),
  "-DLLMRT_SELECT",
  ...["_u4", "_u8", "_norm_u4", "_norm_u8", "_addnorm_u4", "_addnorm_u8", "_rs_u4", "_rs_u8"].filter((e) => keepBits(e.endsWith("u4") ? 4 : 8))
    .map((e) => `-DLLMRT_K_quant_gemv_fused${e}=1`),
];
const mods: [string, CudaModule][] = variants.map((v) => [v, loadKernelFile(d, "quant_gemv.cu", { options: defines(v) })]);
/** Entry point and grid of variant v for a launch of N rows (mode 2: N / 2 gate rows). */
const entry = (v: string, norm: boolean, u: string, N: number, mode: number): { name: string; grid: number; block: number; capped: boolean } => {
  const kvs = v.split(",");
  // LOOP=1, or RB=n given (RING_SC=1: the ring's persistent grid): min(tiles, RB · SMs) blocks.
  const loop = kvs.includes("LOOP=1") || kvs.some((kv) => kv.startsWith("RB="));
  const tiles = mode === 2 ? N / 2 / 8 : N / 16;
  const rb = Number(kvs.find((kv) => kv.startsWith("RB="))?.slice(3) ?? 3);
  return {
    name: `quant_gemv_fused${norm ? "_norm" : ""}_${u}`,
    block: 32 * Number(kvs.find((kv) => kv.startsWith("NW="))?.slice(3) ?? 8),
    grid: loop ? Math.min(tiles, rb * d.smCount) : tiles,
    capped: loop,
  };
};
using gemvMod = loadKernelFile(d, "gemv.cu");
using stream = d.createStream();
using t0 = d.createEvent();
using t1 = d.createEvent();

// 1. Every variant and grid gives the first variant's bits, or is within one bf16 unit (u4 g128 zp and u8 per-channel;
// modes 0-3; m 1, 3, 8; K = 2560: 20 (u4) / 40 (u8) superchunks a row, m 1 and 3; the 8B shapes K = 4096 and
// 14336 (down), m 1 (the _norm entry points where m · K <= 8192). LOOP variants run on a grid of 3 blocks here.
const checks: string[] = [];
for (
  const [bits, group, zp, K] of [
    [4, 128, true, 1024],
    [8, 1024, false, 1024],
    [4, 128, true, 2560],
    [8, 2560, false, 2560],
    [4, 128, true, 4096],
    [4, 256, false, 4096],
    [8, 4096, false, 4096],
    [4, 128, true, 14336],
    [8, 14336, false, 14336],
  ] as [
    4 | 8,
    number,
    boolean,
    number,
  ][]
) {
  if (!keepBits(bits)) continue;
  const N = 512, u = bits === 4 ? "u4" : "u8";
  using w = quantWeights(d, N, K, bits, group, zp, 1, true);
  using x = d.alloc(8 * K * 2);
  using y = d.alloc(8 * N * 4);
  using bias = d.alloc(N * 2);
  using normW = d.alloc(K * 2);
  x.copyFromHost(xBits(8 * K, 3));
  bias.copyFromHost(xBits(N, 4));
  normW.copyFromHost(xBits(K, 6));
  let want: Map<string, Uint8Array> | null = null;
  for (const [v, mod] of mods) {
    const got = new Map<string, Uint8Array>();
    for (const norm of [false, true]) {
      for (const m of K * 8 <= 8192 ? [1, 3, 8] : K <= 2560 ? [1, 3] : [1]) {
        for (const mode of [0, 2, 3]) {
          y.copyFromHost(new Uint8Array(8 * N * 4));
          const e = entry(v, norm, u, N, mode);
          if (norm && m * K > 8192) continue; // the _norm stage holds 8192 elements
          mod.kernel(e.name, PARAMS).launch(e.capped ? Math.min(e.grid, 3) : e.grid, e.block, [
            x,
            ...w.args(0),
            bias,
            y,
            norm ? normW.ptr : 0n,
            1e-5,
            m,
            N,
            K,
            group,
            mode,
          ]);
          const out = new Uint8Array(8 * N * 4);
          y.copyToHost(out);
          got.set(`${norm} ${m} ${mode}`, out);
        }
      }
    }
    if (!want) want = got;
    const keys = [...got.keys()].filter((key) => want!.has(key));
    const same = keys.every((key) => got.get(key)!.every((b, j) => b === want!.get(key)![j]));
    // Not the same bits: every output within one bf16 unit (modes 0, 2) or 2^-16 of max |y| (mode 3, fp32).
    let worst = 0, maxRel = 0;
    keys.forEach((key) => {
      const g = got.get(key)!, w0 = want!.get(key)!, mode = Number(key.split(" ")[2]);
      if (mode === 3) {
        const a = new Float32Array(g.buffer), b = new Float32Array(w0.buffer);
        const mx = b.reduce((p, q) => Math.max(p, Math.abs(q)), 1e-30);
        for (let j = 0; j < a.length; j++) {
          worst = Math.max(worst, (Math.abs(a[j] - b[j]) / mx) * 2 ** 16);
          maxRel = Math.max(maxRel, Math.abs(a[j] - b[j]) / mx);
        }
      } else {
        // One bf16 unit, plus 2^-16 of max |y| for outputs near zero (a variant summing in another order, e.g. the
        // zero-point fold, differs from the reference by ~2^-20 of the tile's magnitude, which is many units of a tiny y).
        const a = new Uint16Array(g.buffer), b = new Uint16Array(w0.buffer);
        let mx = 1e-30;
        for (let j = 0; j < b.length; j++) mx = Math.max(mx, Math.abs(bf16Value(b[j])));
        for (let j = 0; j < a.length; j++) {
          worst = Math.max(worst, Math.abs(bf16Value(a[j]) - bf16Value(b[j])) / (bf16Ulp(b[j]) + 2 ** -16 * mx));
          maxRel = Math.max(maxRel, Math.abs(bf16Value(a[j]) - bf16Value(b[j])) / mx);
        }
      }
    });
    const verdict = same
      ? "same bits"
      : worst <= 1
      ? `close (worst ${worst.toFixed(2)} of the bound, max |diff| / max |y| ${maxRel.toExponential(2)})`
      : `DIFFERENT (worst ${worst.toFixed(2)} of the bound, max |diff| / max |y| ${maxRel.toExponential(2)})`;
    checks.push(
      `${u} g${group}${zp ? " zp" : ""} K=${K} ${v}: ${verdict} as ${variants[0]} (${keys.length} launches: plain and _norm, m 1/3${
        K * 8 <= 8192 ? "/8" : ""
      }, modes 0/2/3)`,
    );
  }
}
console.log(checks.join("\n"));

// 1b. quant_gemv_fused_addnorm + quant_gemv_fused_rs (LaunchEnv.quantTailNorm) against the fused plan's pair they
// replace: quant_gemv_fused mode 1, then the next GEMV with its RMSNorm prologue (_norm, modes 0 and 2). The residual
// must be the same bits; the next GEMV's outputs within 2 bf16 units + 2^-8 of max |y| (x is rounded to bf16 before
// its 1 / rms instead of after: a relative 2^-9 per element, summed with random signs). First variant only.
{
  const APARAMS = [...PARAMS, "ptr", "ptr"] as const;
  const res: string[] = [];
  for (
    const [bits, group, zp, K, N] of [[4, 128, true, 4096, 4096], [4, 128, true, 14336, 4096], [8, 4096, false, 4096, 4096], [4, 128, true, 2048, 2048]] as [
      4 | 8,
      number,
      boolean,
      number,
      number,
    ][]
  ) {
    if (!keepBits(bits)) continue;
    const u = bits === 4 ? "u4" : "u8", mod = mods[0][1];
    const N2 = 2 * N; // the next linear: N in-features, 2N out (mode 0, and mode 2 as gate_up)
    using w = quantWeights(d, N, K, bits, group, zp, 1, true);
    using w2 = quantWeights(d, N2, N, bits, bits === 4 ? group : N, zp, 1, true);
    using x = d.alloc(8 * K * 2);
    using bias = d.alloc(N * 2);
    using normW = d.alloc(N * 2);
    using r0 = d.alloc(8 * N * 2);
    using r1 = d.alloc(8 * N * 2);
    using xw = d.alloc(8 * N * 2);
    using ssq = d.alloc(8 * (N / 16) * 4);
    using y0 = d.alloc(8 * N2 * 2);
    using y1 = d.alloc(8 * N2 * 2);
    x.copyFromHost(xBits(8 * K, 11));
    bias.copyFromHost(xBits(N, 12));
    normW.copyFromHost(xBits(N, 13));
    const resid = xBits(8 * N, 14);
    let worst = 0, maxRel = 0, same = true;
    for (const m of [1, 3, 8]) {
      r0.copyFromHost(resid);
      r1.copyFromHost(resid);
      mod.kernel(`quant_gemv_fused_${u}`, PARAMS).launch(N / 16, 256, [x, ...w.args(0), bias, r0, 0n, 0, m, N, K, group, 1]);
      mod.kernel(`quant_gemv_fused_addnorm_${u}`, APARAMS).launch(N / 16, 256, [x, ...w.args(0), bias, r1, normW.ptr, 1e-5, m, N, K, group, 1, xw, ssq]);
      const a = new Uint16Array(m * N), b = new Uint16Array(m * N);
      d.synchronize();
      r0.copyToHost(a);
      r1.copyToHost(b);
      same &&= a.every((v, j) => v === b[j]);
      for (const mode of [0, 2]) {
        const g2 = bits === 4 ? group : N;
        if (m * N <= 8192) {
          mod.kernel(`quant_gemv_fused_norm_${u}`, PARAMS).launch(N2 / 16, 256, [r0, ...w2.args(0), 0n, y0, normW.ptr, 1e-5, m, N2, N, g2, mode]);
        } else continue; // the _norm stage holds 8192 elements
        mod.kernel(`quant_gemv_fused_rs_${u}`, PARAMS).launch(N2 / 16, 256, [xw, ...w2.args(0), 0n, y1, ssq.ptr, 1e-5, m, N2, N, g2, mode]);
        const outN = mode === 2 ? N : N2, p = new Uint16Array(m * outN), q = new Uint16Array(m * outN);
        d.synchronize();
        y0.copyToHost(p);
        y1.copyToHost(q);
        let mx = 1e-30;
        for (let j = 0; j < p.length; j++) mx = Math.max(mx, Math.abs(bf16Value(p[j])));
        for (let j = 0; j < p.length; j++) {
          const diff = Math.abs(bf16Value(p[j]) - bf16Value(q[j]));
          worst = Math.max(worst, diff / (2 * bf16Ulp(p[j]) + 2 ** -8 * mx));
          maxRel = Math.max(maxRel, diff / mx);
        }
      }
    }
    res.push(
      `tail ${u} g${group}${zp ? " zp" : ""} K=${K} N=${N}: residual ${same ? "same bits" : "DIFFERENT"}; rs vs _norm (modes 0/2, m 1/3/8 where m·N <= 8192) ${
        worst <= 1 ? "close" : "DIFFERENT"
      } (worst ${worst.toFixed(2)} of 2 bf16 units + 2^-8 max |y|; max |diff| / max |y| ${maxRel.toExponential(2)})`,
    );
  }
  console.log(res.join("\n"));
}

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
const MODELS: Record<string, { layers: number; vocab: number; linears: [string, number, number][] }> = {
  "llama-3.2-1b": { layers: 16, vocab: 128256, linears: [["qkv", 3072, 2048], ["o", 2048, 2048], ["gate_up", 16384, 2048], ["down", 2048, 8192]] },
  "llama-3.1-8b": { layers: 32, vocab: 128256, linears: [["qkv", 6144, 4096], ["o", 4096, 4096], ["gate_up", 28672, 4096], ["down", 4096, 14336]] },
};
/** How the fused decode plan runs each linear (decode_fusion.ts): prologue norm and epilogue mode. */
const FUSED: Record<string, [boolean, number]> = { qkv: [true, 0], o: [false, 1], gate_up: [true, 2], down: [false, 1] };
interface Row {
  model: string;
  linear: string;
  format: string;
  variant: string;
  m: string;
  us: number;
  bytes: number;
}
const rows: Row[] = [];
const lmHead: string[] = [];
// "1 tail": the plan with LaunchEnv.quantTailNorm (o and down on quant_gemv_fused_addnorm, qkv and gate_up plain).
const TAIL: Record<string, [boolean, number, boolean]> = { qkv: [false, 0, false], o: [false, 1, true], gate_up: [false, 2, false], down: [false, 1, true] };
// (qkv and gate_up run quant_gemv_fused_rs there.)
const ms = values.ms ? values.ms.split(",") : values.m8 ? ["1 fused", "1 tail", "1", "8"] : ["1 fused", "1 tail", "1"];
using tailSsq = d.alloc(8 * 1024 * 4); // f32 sums of squares, [8, 16384 / 16]
tailSsq.fill(0x3f); // 0.75f each: a positive mean square
const models = Object.entries(MODELS).filter(([name]) => !values.only || name.includes(values.only));
for (const [model, spec] of models) {
  for (const [lin, N, K] of spec.linears) {
    using x = d.alloc(8 * K * 2);
    using y = d.alloc(8 * N * 2);
    using normW = d.alloc(K * 2);
    using normOut = d.alloc(8 * N * 2);
    x.copyFromHost(xBits(8 * K, 5));
    normW.copyFromHost(xBits(K, 6));
    for (const [fmt, bits, group, zp] of [["int4 g128 zp", 4, 128, true], ["int8 per-channel", 8, K, false]] as [string, 4 | 8, number, boolean][]) {
      if (!keepBits(bits)) continue;
      const bytes1 = (N * K * bits) / 8;
      const copies = Math.max(1, Math.ceil((256 << 20) / bytes1));
      using w = quantWeights(d, N, K, bits, group, zp, copies, false);
      for (const [v, mod] of mods) {
        for (const m of ms) {
          const [norm, mode, tail] = m === "1 fused" ? [...FUSED[lin], false] : m === "1 tail" ? TAIL[lin] : [false, 0, false];
          const e = entry(v, norm, bits === 4 ? "u4" : "u8", N, mode);
          const rowsM = m === "8" ? 8 : 1;
          // "1 tail": o / down on _addnorm (xw, ssq out), qkv / gate_up on _rs (ssq in the normW slot).
          const rs = m === "1 tail" && !tail;
          const kern = tail
            ? mod.kernel(e.name.replace("fused_", "fused_addnorm_"), [...PARAMS, "ptr", "ptr"])
            : mod.kernel(rs ? e.name.replace("fused_", "fused_rs_") : e.name, PARAMS);
          const extra = tail ? [normOut.ptr, tailSsq.ptr] : [];
          const nw = norm || tail ? normW.ptr : rs ? tailSsq.ptr : 0n;
          const us = 1e3 *
            time((i) => kern.launch(e.grid, e.block, [x, ...w.args(i), 0n, y, nw, 1e-5, rowsM, N, K, group, mode, ...extra], { stream }), copies);
          rows.push({ model, linear: lin, format: fmt, variant: v, m, us, bytes: w.bytes });
          console.log(`  ${model} ${fmt} ${lin} m=${m} [${v}] ${us.toFixed(2)} us ${((100 * w.bytes / (us * 1e-6)) / ceiling).toFixed(1)}% of copy`);
        }
      }
    }
  }
  // The bf16 lm_head of a quantized checkpoint (AWQ keeps it bf16): the fused plan's final-norm + fp32-logits GEMV.
  const N = spec.vocab, K = spec.linears[0][2];
  using W = d.alloc(N * K * 2);
  using x = d.alloc(K * 2);
  using normW = d.alloc(K * 2);
  using y = d.alloc(N * 4);
  W.fill(0x3c);
  x.copyFromHost(xBits(K, 7));
  normW.copyFromHost(xBits(K, 8));
  const kern = gemvMod.kernel("gemv_fused_norm_bf16_m1", ["ptr", "ptr", "ptr", "ptr", "ptr", "f32", "i32", "i32", "i32", "i32", "ptr", "i64"]);
  const us = 1e3 * time(() => kern.launch(Math.ceil(N / 8), 256, [x, W, 0n, y, normW, 1e-5, 1, N, K, 3, 0n, 0n], { stream }), 1);
  lmHead.push(
    `${model} lm_head bf16 [${N}x${K}] gemv_fused_norm_bf16_m1 mode 3: ${us.toFixed(1)} us = ${
      (100 * (N * K * 2) / (us * 1e-6) / ceiling).toFixed(1)
    }% of copy`,
  );
}
const lines: string[] = [`device copy ceiling ${(ceiling / 1e9).toFixed(0)} GB/s`, ...lmHead];
const pct = (bytes: number, us: number): number => (100 * bytes / (us * 1e-6)) / ceiling;
for (const [model] of models) {
  for (const fmt of ["int4 g128 zp", "int8 per-channel"].filter((f) => keepBits(f.startsWith("int4") ? 4 : 8))) {
    for (const m of ms) {
      const sel = rows.filter((r) => r.model === model && r.format === fmt && r.m === m);
      // Per variant: all decoder linears of one layer, and each linear.
      for (const v of variants) {
        const rs = sel.filter((r) => r.variant === v);
        const us = rs.reduce((a, r) => a + r.us, 0), b = rs.reduce((a, r) => a + r.bytes, 0);
        const each = rs.map((r) => `${r.linear} ${r.us.toFixed(1)} us ${pct(r.bytes, r.us).toFixed(0)}%`);
        lines.push(`${model} ${fmt} m=${m} [${v}] layer ${us.toFixed(1)} us ${pct(b, us).toFixed(1)}% | ${each.join(", ")}`);
      }
    }
  }
}
console.log(lines.join("\n"));
if (values.json) fs.writeFileSync(values.json, JSON.stringify({ ceilingGBs: ceiling / 1e9, checks, rows, lines }, null, 1));
for (const [, m] of mods) m.dispose();
