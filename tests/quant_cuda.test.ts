// Quantization I on the GPU (skipped without one): the weight-only GEMVs (uint4 groupwise, uint8
// per-channel; dequantized in registers) — the per-warp quant_gemv_* and the tensor-core
// quant_gemv_fused* (every mode, with and without the RMSNorm prologue, batch invariant) — and the
// dequantize-to-bf16 prefill step against the float64 dequantize-then-matmul reference; then their
// achieved bandwidth on llama-3.2-1b / llama-3.1-8b linear shapes against a device-copy ceiling measured
// in the same run, with the bf16 GEMV beside them (bench/quant_gemv_tune.ts sweeps the kernel's knobs).
import * as fs from "node:fs";
import * as path from "node:path";
import { loadKernelFile } from "../lib/backends/cuda/compiler.ts";
import { quantGemvGrid } from "../lib/backends/cuda/quant_launch.ts";
import type { DeviceBuffer } from "../lib/cuda/memory.ts";
import { type IntGrid, quantizeRtn } from "../lib/quantization/algorithms.ts";
import { dequantize, type QuantizedTensor } from "../lib/quantization/packed.ts";
import { assert } from "./harness.ts";
import { copyCeilingGBs, DECODE_LINEARS, graphMsPerLaunch, L2_FLUSH_BYTES } from "./gpu/gemv_timing.ts";
import { device, fromBf16Bits, gpuTest, seededUniform, toBf16Bits } from "./gpu/gpu.ts";

const GEMV_PARAMS = ["ptr", "ptr", "ptr", "ptr", "ptr", "ptr", "i32", "i32", "i32", "i32"] as const;
const bf16 = (f: Float32Array): Uint16Array => Uint16Array.from(f, (v) => toBf16Bits(v));

function quantized(N: number, K: number, grid: IntGrid, seed: number): QuantizedTensor {
  const w = seededUniform(seed, N * K, -0.05, 0.05);
  return quantizeRtn(w, N, K, grid);
}

/** Device copies of a quantized tensor. */
function upload(t: QuantizedTensor): { W: DeviceBuffer; s: DeviceBuffer; z: DeviceBuffer | null; bytes: number; [Symbol.dispose](): void } {
  const d = device();
  const W = d.alloc(t.packed.byteLength), s = d.alloc(t.scales.byteLength);
  W.copyFromHost(t.packed);
  s.copyFromHost(t.scales);
  let z: DeviceBuffer | null = null;
  if (t.zeros) {
    z = d.alloc(t.zeros.byteLength);
    z.copyFromHost(t.zeros);
  }
  return {
    W,
    s,
    z,
    bytes: t.packed.byteLength + t.scales.byteLength + (t.zeros?.byteLength ?? 0),
    [Symbol.dispose]() {
      W.dispose();
      s.dispose();
      z?.dispose();
    },
  };
}

const CASES: [string, IntGrid, number, number][] = [
  ["uint4 g128 symmetric", { bits: 4, groupSize: 128, hasZeroPoint: false }, 384, 1024],
  ["uint4 g64 zero points (AWQ)", { bits: 4, groupSize: 64, hasZeroPoint: true }, 256, 2048],
  ["uint8 per-channel (W8A16)", { bits: 8, groupSize: 1024, hasZeroPoint: false }, 256, 1024],
  ["uint8 g128 zero points (GPTQ 8-bit)", { bits: 8, groupSize: 128, hasZeroPoint: true }, 128, 512],
];

for (const [name, grid, N, K] of CASES) {
  gpuTest(`quant_gemv ${name}: m = 1, 2, 4, 8 equal the float64 dequantize-then-matmul reference; quant_dequant is exact`, () => {
    const d = device();
    using mod = loadKernelFile(d, "quant_gemv.cu");
    const t = quantized(N, K, grid, 17 + N);
    const D = dequantize(t);
    using q = upload(t);
    const u = grid.bits === 4 ? "u4" : "u8";
    for (const m of [1, 2, 4, 8]) {
      const xb = bf16(seededUniform(5 + m, m * K));
      using x = d.alloc(xb.byteLength);
      using y = d.alloc(m * N * 2);
      x.copyFromHost(xb);
      mod.kernel(`quant_gemv_${u}_m${m}`, GEMV_PARAMS).launch(Math.ceil(N / 8), 256, [x, q.W, q.s, q.z ?? 0n, 0n, y, m, N, K, grid.groupSize]);
      const got = new Uint16Array(m * N);
      y.copyToHost(got);
      let worst = 0, scale = 0;
      for (let r = 0; r < m; r++) {
        for (let n = 0; n < N; n++) {
          let ref = 0;
          for (let k = 0; k < K; k++) ref += fromBf16Bits(xb[r * K + k]) * D[n * K + k];
          worst = Math.max(worst, Math.abs(fromBf16Bits(got[r * N + n]) - ref) / Math.max(Math.abs(ref), 1e-2));
          scale = Math.max(scale, Math.abs(ref));
        }
      }
      // bf16 output rounding (2^-9 relative) plus fp32 accumulation order.
      assert.ok(worst <= 2 ** -8, `${name} m=${m}: max relative error ${worst} (max |y| ${scale})`);
    }
    using out = d.alloc(N * K * 2);
    mod.kernel(`quant_dequant_${u}_bf16`, ["ptr", "ptr", "ptr", "ptr", "i32", "i32", "i32"]).launch(Math.ceil((N * K) / 8 / 256), 256, [
      q.W,
      q.s,
      q.z ?? 0n,
      out,
      N,
      K,
      grid.groupSize,
    ]);
    const deq = new Uint16Array(N * K);
    out.copyToHost(deq);
    for (let i = 0; i < N * K; i++) if (deq[i] !== toBf16Bits(D[i])) assert.fail(`${name}: dequantized[${i}] = ${fromBf16Bits(deq[i])}, want ${D[i]}`);
  });
}

const FUSED_PARAMS = ["ptr", "ptr", "ptr", "ptr", "ptr", "ptr", "ptr", "f32", "i32", "i32", "i32", "i32", "i32"] as const;
const FUSED_CASES: [string, IntGrid, number, number][] = [
  ["uint4 g128 zero points (AWQ)", { bits: 4, groupSize: 128, hasZeroPoint: true }, 256, 1024],
  ["uint4 g256 symmetric", { bits: 4, groupSize: 256, hasZeroPoint: false }, 128, 2048],
  ["uint8 per-channel (W8A16)", { bits: 8, groupSize: 512, hasZeroPoint: false }, 128, 512],
  ["uint8 g64 zero points", { bits: 8, groupSize: 64, hasZeroPoint: true }, 64, 1024],
  // 9 superchunks: the last pipeline stage of 2 superchunks is half full.
  ["uint4 g128 zero points, odd superchunk count", { bits: 4, groupSize: 128, hasZeroPoint: true }, 64, 1152],
];
/** Each case for quant_gemv_fused* and for quant_gemv_fast* (quantGemvFast: the same products summed in another order). */
const FAMILY_CASES = ["quant_gemv_fused", "quant_gemv_fast"].flatMap((fam) => FUSED_CASES.map(([n, g, N, K]) => [n, g, N, K, fam] as const));
const silu = (g: number): number => g / (1 + Math.exp(-g));
const rbf = (v: number): number => fromBf16Bits(toBf16Bits(v));

for (const [name, grid, N, K, fam] of FAMILY_CASES) {
  gpuTest(`${fam} ${name}: modes 0-3, with and without the RMSNorm prologue, m = 1..8, vs float64; batch invariant`, () => {
    const d = device();
    using mod = loadKernelFile(d, "quant_gemv.cu");
    const t = quantized(N, K, grid, 29 + N);
    const D = dequantize(t);
    using q = upload(t);
    const u = grid.bits === 4 ? "u4" : "u8";
    const biasF = bf16(seededUniform(41, N, -0.2, 0.2));
    const normF = bf16(seededUniform(43, K, 0.5, 1.5));
    using bias = d.alloc(N * 2);
    using normW = d.alloc(K * 2);
    bias.copyFromHost(biasF);
    normW.copyFromHost(normF);
    const eps = 1e-5;
    for (const norm of [false, true]) {
      for (const m of [1, 2, 3, 8]) {
        if (norm && m * K > 8192) continue;
        const xb = bf16(seededUniform(7 + m, m * K));
        using x = d.alloc(xb.byteLength);
        x.copyFromHost(xb);
        // The x the product sees (after the prologue, rounded to bf16 like rmsnorm_bf16), and per output
        // (r, j) the float64 dot product and the sum of |terms| (the accumulation-order tolerance scale).
        const xs = new Float64Array(m * K);
        for (let r = 0; r < m; r++) {
          let ss = 0;
          for (let i = 0; i < K; i++) ss += fromBf16Bits(xb[r * K + i]) ** 2;
          const inv = 1 / Math.sqrt(ss / K + eps);
          for (let i = 0; i < K; i++) xs[r * K + i] = norm ? rbf(fromBf16Bits(xb[r * K + i]) * inv * fromBf16Bits(normF[i])) : fromBf16Bits(xb[r * K + i]);
        }
        const dot = new Float64Array(m * N), mag = new Float64Array(m * N);
        for (let r = 0; r < m; r++) {
          for (let j = 0; j < N; j++) {
            let s = 0, a = 0;
            for (let i = 0; i < K; i++) {
              const p = xs[r * K + i] * D[j * K + i];
              s += p;
              a += Math.abs(p);
            }
            dot[r * N + j] = s + fromBf16Bits(biasF[j]);
            mag[r * N + j] = a;
          }
        }
        // fp32 accumulation in another order plus the prologue's bf16 rounding of x (2^-8 relative, both sides).
        const tol = (r: number, j: number): number => 2 ** -8 * mag[r * N + j] + 1e-6;
        for (const mode of [0, 1, 2, 3]) {
          const outN = mode === 2 ? N / 2 : N, bytes = mode === 3 ? 4 : 2;
          const init = bf16(seededUniform(50 + mode, m * outN));
          using y = d.alloc(m * outN * bytes);
          if (mode === 1) y.copyFromHost(init);
          mod.kernel(`${fam}${norm ? "_norm" : ""}_${u}`, FUSED_PARAMS).launch(N / 16, 256, [
            x,
            q.W,
            q.s,
            q.z ?? 0n,
            bias,
            y,
            norm ? normW : 0n,
            eps,
            m,
            N,
            K,
            grid.groupSize,
            mode,
          ]);
          const got = mode === 3 ? new Float32Array(m * outN) : new Uint16Array(m * outN);
          y.copyToHost(got);
          const val = (i: number): number => (mode === 3 ? got[i] : fromBf16Bits(got[i]));
          for (let r = 0; r < m; r++) {
            for (let j = 0; j < outN; j++) {
              const v = val(r * outN + j);
              let want: number, bound: number;
              if (mode === 2) {
                const g = dot[r * N + j], up = dot[r * N + outN + j];
                want = silu(g) * up;
                // gate and up carry tol and are rounded to bf16 (2^-9) before silu·mul; silu' ≤ 1.1.
                bound = 1.1 * (tol(r, j) + 2 ** -9 * Math.abs(g)) * Math.abs(up) + Math.abs(silu(g)) * (tol(r, outN + j) + 2 ** -9 * Math.abs(up)) +
                  2 ** -7 * Math.abs(want) + 1e-6;
              } else {
                want = dot[r * N + j] + (mode === 1 ? fromBf16Bits(init[r * outN + j]) : 0);
                bound = tol(r, j) + (mode === 3 ? 0 : 2 ** -7 * Math.abs(want));
              }
              if (!(Math.abs(v - want) <= bound)) assert.fail(`${name} norm=${norm} m=${m} mode=${mode} y[${r}, ${j}] = ${v}, want ${want} ± ${bound}`);
            }
          }
          if (mode === 0) {
            // Batch invariance: row 0 of an m-row launch equals a launch of that row alone, bit for bit.
            using x1 = d.alloc(K * 2);
            using y1 = d.alloc(N * 2);
            x1.copyFromHost(xb.subarray(0, K));
            mod.kernel(`${fam}${norm ? "_norm" : ""}_${u}`, FUSED_PARAMS).launch(N / 16, 256, [
              x1,
              q.W,
              q.s,
              q.z ?? 0n,
              bias,
              y1,
              norm ? normW : 0n,
              eps,
              1,
              N,
              K,
              grid.groupSize,
              0,
            ]);
            const one = new Uint16Array(N);
            y1.copyToHost(one);
            const mine = (got as Uint16Array).subarray(0, N);
            assert.deepEqual(Array.from(mine), Array.from(one), `${name} norm=${norm} m=${m}: row 0 differs from the m = 1 launch`);
          }
        }
      }
    }
  });
}

// quant_gemv_fused_addnorm / quant_gemv_fused_rs (LaunchEnv.quantTailNorm). The producer: the residual GEMV (mode 1)
// that also writes xw = bf16(new residual · normW) and ssq [m, n / 16] = each 16-row tile's sum of squares. Its residual
// is quant_gemv_fused mode 1's bits; xw and ssq are recomputed here in float32 in the kernel's order (exact products of
// bf16 values; the tile sum as (r0 + r1) + (r2 + r3) per warp of 4 rows, then the 4 warps in order).
for (const [name, grid, N, K, fam] of FAMILY_CASES) {
  gpuTest(`${fam}_addnorm ${name}: the residual of mode 1, xw = bf16(y · normW) and the tile sums of squares, m = 1..8`, () => {
    const d = device();
    using mod = loadKernelFile(d, "quant_gemv.cu");
    const t = quantized(N, K, grid, 31 + N);
    using q = upload(t);
    const u = grid.bits === 4 ? "u4" : "u8";
    const normF = bf16(seededUniform(47, N, 0.5, 1.5));
    using bias = d.alloc(N * 2);
    using normW = d.alloc(N * 2);
    bias.copyFromHost(bf16(seededUniform(45, N, -0.2, 0.2)));
    normW.copyFromHost(normF);
    const f = Math.fround;
    for (const m of [1, 2, 3, 8]) {
      using x = d.alloc(m * K * 2);
      using r0 = d.alloc(m * N * 2);
      using r1 = d.alloc(m * N * 2);
      using xw = d.alloc(m * N * 2);
      using ssq = d.alloc(m * (N / 16) * 4);
      x.copyFromHost(bf16(seededUniform(9 + m, m * K)));
      const resid = bf16(seededUniform(60 + m, m * N, -2, 2));
      r0.copyFromHost(resid);
      r1.copyFromHost(resid);
      const args = [x, q.W, q.s, q.z ?? 0n, bias] as const;
      mod.kernel(`${fam}_${u}`, FUSED_PARAMS).launch(N / 16, 256, [...args, r0, 0n, 0, m, N, K, grid.groupSize, 1]);
      mod.kernel(`${fam}_addnorm_${u}`, [...FUSED_PARAMS, "ptr", "ptr"]).launch(N / 16, 256, [
        ...args,
        r1,
        normW,
        1e-5,
        m,
        N,
        K,
        grid.groupSize,
        1,
        xw,
        ssq,
      ]);
      const a = new Uint16Array(m * N), b = new Uint16Array(m * N), w = new Uint16Array(m * N), sq = new Float32Array(m * (N / 16));
      r0.copyToHost(a);
      r1.copyToHost(b);
      xw.copyToHost(w);
      ssq.copyToHost(sq);
      assert.deepEqual(Array.from(b), Array.from(a), `${name} m=${m}: residual`);
      for (let i = 0; i < m * N; i++) {
        const want = toBf16Bits(f(fromBf16Bits(a[i]) * fromBf16Bits(normF[i % N])));
        if (w[i] !== want) assert.fail(`${name} m=${m}: xw[${i}] = ${w[i]}, want ${want}`);
      }
      for (let r = 0; r < m; r++) {
        for (let tile = 0; tile < N / 16; tile++) {
          const v = (j: number): number => f(fromBf16Bits(a[r * N + tile * 16 + j]) ** 2);
          const warp = (w0: number): number => f(f(v(w0) + v(w0 + 1)) + f(v(w0 + 2) + v(w0 + 3)));
          const want = f(f(f(warp(0) + warp(4)) + warp(8)) + warp(12));
          const got = sq[r * (N / 16) + tile];
          if (got !== want) assert.fail(`${name} m=${m}: ssq[${r}, ${tile}] = ${got}, want ${want}`);
        }
      }
    }
  });
}

// The consumer: quant_gemv_fused_rs on x = xw with its ssq, modes 0-3, against float64 rsqrt(Σ ssq / k + eps) · (W · xw)
// + bias (then the epilogue), with the fused test's bounds; batch invariant (row 0 alone gives the same bits).
for (const [name, grid, N, K, fam] of FAMILY_CASES) {
  gpuTest(`${fam}_rs ${name}: sums scaled by the rms of the tile sums of squares, modes 0-3, m = 1..8, vs float64; batch invariant`, () => {
    const d = device();
    using mod = loadKernelFile(d, "quant_gemv.cu");
    const t = quantized(N, K, grid, 37 + N);
    const D = dequantize(t);
    using q = upload(t);
    const u = grid.bits === 4 ? "u4" : "u8";
    const biasF = bf16(seededUniform(51, N, -0.2, 0.2));
    using bias = d.alloc(N * 2);
    bias.copyFromHost(biasF);
    const eps = 1e-5;
    for (const m of [1, 3, 8]) {
      const xb = bf16(seededUniform(17 + m, m * K));
      const part = Float32Array.from(seededUniform(19 + m, m * (K / 16), 0.5, 30));
      using x = d.alloc(xb.byteLength);
      using ssq = d.alloc(part.byteLength);
      x.copyFromHost(xb);
      ssq.copyFromHost(part);
      const inv = Array.from({ length: m }, (_, r) => {
        let ss = 0;
        for (let i = 0; i < K / 16; i++) ss += part[r * (K / 16) + i];
        return 1 / Math.sqrt(ss / K + eps);
      });
      const dot = new Float64Array(m * N), mag = new Float64Array(m * N);
      for (let r = 0; r < m; r++) {
        for (let j = 0; j < N; j++) {
          let sum = 0, abs = 0;
          for (let i = 0; i < K; i++) {
            const p = fromBf16Bits(xb[r * K + i]) * D[j * K + i];
            sum += p;
            abs += Math.abs(p);
          }
          dot[r * N + j] = sum * inv[r] + fromBf16Bits(biasF[j]);
          mag[r * N + j] = abs * inv[r];
        }
      }
      // fp32 sums of exact products in another order (x is given in bf16: no prologue rounding here).
      const tol = (r: number, j: number): number => 2 ** -12 * mag[r * N + j] + 1e-6;
      for (const mode of [0, 1, 2, 3]) {
        const outN = mode === 2 ? N / 2 : N, bytes = mode === 3 ? 4 : 2;
        const init = bf16(seededUniform(70 + mode, m * outN));
        using y = d.alloc(m * outN * bytes);
        if (mode === 1) y.copyFromHost(init);
        mod.kernel(`${fam}_rs_${u}`, FUSED_PARAMS).launch(N / 16, 256, [x, q.W, q.s, q.z ?? 0n, bias, y, ssq, eps, m, N, K, grid.groupSize, mode]);
        const got = mode === 3 ? new Float32Array(m * outN) : new Uint16Array(m * outN);
        y.copyToHost(got);
        const val = (i: number): number => (mode === 3 ? got[i] : fromBf16Bits(got[i]));
        for (let r = 0; r < m; r++) {
          for (let j = 0; j < outN; j++) {
            const v = val(r * outN + j);
            let want: number, bound: number;
            if (mode === 2) {
              const g = dot[r * N + j], up = dot[r * N + outN + j];
              want = silu(g) * up;
              bound = 1.1 * (tol(r, j) + 2 ** -9 * Math.abs(g)) * Math.abs(up) + Math.abs(silu(g)) * (tol(r, outN + j) + 2 ** -9 * Math.abs(up)) +
                2 ** -7 * Math.abs(want) + 1e-6;
            } else {
              want = dot[r * N + j] + (mode === 1 ? fromBf16Bits(init[r * outN + j]) : 0);
              bound = tol(r, j) + (mode === 3 ? 0 : 2 ** -7 * Math.abs(want));
            }
            if (!(Math.abs(v - want) <= bound)) assert.fail(`${name} rs m=${m} mode=${mode} y[${r}, ${j}] = ${v}, want ${want} ± ${bound}`);
          }
        }
        if (mode === 0 && m > 1) {
          using y1 = d.alloc(N * 2);
          mod.kernel(`${fam}_rs_${u}`, FUSED_PARAMS).launch(N / 16, 256, [x, q.W, q.s, q.z ?? 0n, bias, y1, ssq, eps, 1, N, K, grid.groupSize, 0]);
          const one = new Uint16Array(N);
          y1.copyToHost(one);
          assert.deepEqual(Array.from((got as Uint16Array).subarray(0, N)), Array.from(one), `${name} rs m=${m}: row 0 differs from the m = 1 launch`);
        }
      }
    }
  });
}

gpuTest("quant_gemv bandwidth (m = 1) on 1B/8B linear shapes vs the device-copy ceiling, bf16 GEMV beside it", () => {
  const d = device();
  using mod = loadKernelFile(d, "quant_gemv.cu");
  using bfMod = loadKernelFile(d, "gemv.cu");
  using stream = d.createStream();
  using t0 = d.createEvent();
  using t1 = d.createEvent();
  /** ms per launch: `copies` launches (distinct weights, so none stays in the 50 MB L2) captured in one graph. */
  const time = (launch: (s: typeof stream, i: number) => void, copies: number): number => graphMsPerLaunch(stream, t0, t1, launch, copies);
  const ceiling = copyCeilingGBs(d, stream, t0, t1);
  const lines: string[] = [`device copy ceiling: ${ceiling.toFixed(0)} GB/s`];
  const results: Record<string, unknown>[] = [];
  for (const [model, spec] of Object.entries(DECODE_LINEARS)) {
    const totals: Record<string, { ms: number; bytes: number }> = {};
    for (const [lin, N, K] of spec.linears) {
      const xb = bf16(seededUniform(3, K));
      using x = d.alloc(K * 2);
      using y = d.alloc(N * 2);
      x.copyFromHost(xb);
      using x8 = d.alloc(8 * K * 2);
      using y8 = d.alloc(8 * N * 2);
      x8.copyFromHost(bf16(seededUniform(4, 8 * K)));
      // bf16 baseline (weights' contents do not matter for timing; correctness is the test above).
      const bfCopies = Math.max(1, Math.ceil(L2_FLUSH_BYTES / (N * K * 2)));
      using wbf = d.alloc(bfCopies * N * K * 2);
      wbf.fill(0x3c);
      const bfKern = bfMod.kernel("gemv_bf16_m1", ["ptr", "ptr", "ptr", "ptr", "i32", "i32", "i32"]);
      const bfMs = time((st, i) => bfKern.launch(Math.ceil(N / 8), 256, [x, wbf.ptr + BigInt(i * N * K * 2), 0n, y, 1, N, K], { stream: st }), bfCopies);
      const entries: [string, number, number][] = [["bf16", bfMs, N * K * 2]];
      for (
        const [fmt, grid] of [["int4 g128 zp", { bits: 4, groupSize: 128, hasZeroPoint: true }], ["int8 per-channel", {
          bits: 8,
          groupSize: K,
          hasZeroPoint: false,
        }]] as [string, IntGrid][]
      ) {
        const ng = K / grid.groupSize, rowBytes = (K * grid.bits) / 8;
        const bytes = N * rowBytes + N * ng * 4 + (grid.hasZeroPoint ? N * ng : 0);
        const copies = Math.max(1, Math.ceil(L2_FLUSH_BYTES / bytes));
        using W = d.alloc(copies * N * rowBytes);
        using s = d.alloc(copies * N * ng * 4);
        using z = grid.hasZeroPoint ? d.alloc(copies * N * ng) : null;
        W.fill(0x5a);
        s.copyFromHost(new Float32Array(copies * N * ng).fill(0.01));
        z?.fill(8);
        const u = grid.bits === 4 ? "u4" : "u8";
        const kern = mod.kernel(`quant_gemv_${u}_m1`, GEMV_PARAMS);
        const ms = time((st, i) =>
          kern.launch(Math.ceil(N / 8), 256, [
            x,
            W.ptr + BigInt(i * N * rowBytes),
            s.ptr + BigInt(i * N * ng * 4),
            z ? z.ptr + BigInt(i * N * ng) : 0n,
            0n,
            y,
            1,
            N,
            K,
            grid.groupSize,
          ], { stream: st }), copies);
        entries.push([`${fmt} quant_gemv_${u}_m1`, ms, bytes]);
        // The tensor-core kernel (mode 0), one and eight x rows.
        const fk = mod.kernel(`quant_gemv_fused_${u}`, FUSED_PARAMS);
        for (const m of [1, 8]) {
          const fms = time((st, i) =>
            fk.launch(quantGemvGrid(N), 256, [
              x8,
              W.ptr + BigInt(i * N * rowBytes),
              s.ptr + BigInt(i * N * ng * 4),
              z ? z.ptr + BigInt(i * N * ng) : 0n,
              0n,
              y8,
              0n,
              0,
              m,
              N,
              K,
              grid.groupSize,
              0,
            ], { stream: st }), copies);
          entries.push([`${fmt} quant_gemv_fused_${u} m=${m}`, fms, bytes]);
        }
      }
      for (const [fmt, ms, bytes] of entries) {
        const gbs = bytes / (ms * 1e6);
        lines.push(`${model} ${lin} [${N}x${K}] ${fmt}: ${(ms * 1000).toFixed(1)} us, ${gbs.toFixed(0)} GB/s = ${((gbs / ceiling) * 100).toFixed(1)}% of copy`);
        results.push({ model, linear: lin, N, K, format: fmt, us: ms * 1000, gbs, pctCeiling: (gbs / ceiling) * 100 });
        totals[fmt] ??= { ms: 0, bytes: 0 };
        totals[fmt].ms += ms * spec.layers;
        totals[fmt].bytes += bytes * spec.layers;
      }
    }
    for (const [fmt, t] of Object.entries(totals)) {
      const gbs = t.bytes / (t.ms * 1e6);
      lines.push(
        `${model} all decoder linears, ${fmt}: ${t.ms.toFixed(3)} ms per token, ${gbs.toFixed(0)} GB/s = ${((gbs / ceiling) * 100).toFixed(1)}%, ${
          (totals.bf16.ms / t.ms).toFixed(2)
        }x bf16`,
      );
    }
  }
  console.log(lines.join("\n"));
  const out = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env?.OUT;
  if (out) fs.writeFileSync(path.join(out, "quant_gemv.json"), JSON.stringify({ ceilingGBs: ceiling, results, lines }, null, 2));
  assert.ok(ceiling > 100);
}, 300_000);
