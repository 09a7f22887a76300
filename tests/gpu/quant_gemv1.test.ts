// quant_gemv1 on the GPU (kernels/quant_gemv1.cu; CUDA flag quantGemv1; skipped without a GPU): every mode, with and
// without the RMSNorm prologue, on the launcher's grid and on 1 / 3 blocks, against the float64 dequantize-then-matmul
// reference, and bit for bit against quant_gemv_fused at one row (the same products and fp32 sums in the same order:
// what keeps one-row steps on quant_gemv1 batch-invariant with steps of 2..8 rows on the 16-row kernel) and against row
// 0 of a 3-row quant_gemv_fused launch; quant_gemv1_addnorm + quant_gemv1_rs against quant_gemv_fused_addnorm + _rs.
import { loadKernelFile } from "../../lib/backends/cuda/compiler.ts";
import { quantGemv1Grid } from "../../lib/backends/cuda/quant_launch.ts";
import type { DeviceBuffer } from "../../lib/cuda/memory.ts";
import { type IntGrid, quantizeRtn } from "../../lib/quantization/algorithms.ts";
import { dequantize } from "../../lib/quantization/packed.ts";
import { assert } from "../harness.ts";
import { device, fromBf16Bits, gpuTest, seededUniform, toBf16Bits } from "./gpu.ts";

const PARAMS = ["ptr", "ptr", "ptr", "ptr", "ptr", "ptr", "ptr", "f32", "i32", "i32", "i32", "i32", "i32"] as const;
const APARAMS = [...PARAMS, "ptr", "ptr"] as const;
const bf16 = (f: Float32Array): Uint16Array => Uint16Array.from(f, (v) => toBf16Bits(v));
const rbf = (v: number): number => fromBf16Bits(toBf16Bits(v));
const silu = (g: number): number => g / (1 + Math.exp(-g));
/** Only the entry points this file runs (compile time): quant_gemv1{,_norm,_addnorm,_rs}_u{4,8} and the 16-row ones. */
const select = (prefix: string): { options: string[] } => ({
  options: ["-DLLMRT_SELECT", ...["", "_norm", "_addnorm", "_rs"].flatMap((f) => ["_u4", "_u8"].map((u) => `-DLLMRT_K_${prefix}${f}${u}=1`))],
});

const CASES: [string, IntGrid, number, number][] = [
  ["uint4 g128 zero points (AWQ)", { bits: 4, groupSize: 128, hasZeroPoint: true }, 384, 2048],
  ["uint4 g256 symmetric", { bits: 4, groupSize: 256, hasZeroPoint: false }, 128, 4096],
  ["uint8 per-channel (W8A16)", { bits: 8, groupSize: 1024, hasZeroPoint: false }, 256, 1024],
  ["uint8 g64 zero points", { bits: 8, groupSize: 64, hasZeroPoint: true }, 64, 3072],
];

function upload(d: ReturnType<typeof device>, bytes: ArrayBufferView): DeviceBuffer {
  const b = d.alloc(bytes.byteLength);
  b.copyFromHost(bytes);
  return b;
}

for (const [name, grid, N, K] of CASES) {
  gpuTest(`quant_gemv1 ${name}: modes 0-3, with and without the RMSNorm prologue, any grid, vs float64 and the bits of quant_gemv_fused`, () => {
    const d = device();
    using mod = loadKernelFile(d, "quant_gemv1.cu", select("quant_gemv1"));
    using base = loadKernelFile(d, "quant_gemv.cu", select("quant_gemv_fused"));
    const t = quantizeRtn(seededUniform(31 + N, N * K, -0.05, 0.05), N, K, grid);
    const D = dequantize(t);
    using W = upload(d, t.packed);
    using s = upload(d, t.scales);
    using z = t.zeros ? upload(d, t.zeros) : null;
    const u = grid.bits === 4 ? "u4" : "u8";
    const biasF = bf16(seededUniform(41, N, -0.2, 0.2)), normF = bf16(seededUniform(43, K, 0.5, 1.5));
    using bias = upload(d, biasF);
    using normW = upload(d, normF);
    const eps = 1e-5;
    const xb = bf16(seededUniform(9, 3 * K));
    using x = upload(d, xb);
    for (const norm of [false, true]) {
      let ss = 0;
      for (let i = 0; i < K; i++) ss += fromBf16Bits(xb[i]) ** 2;
      const inv = 1 / Math.sqrt(ss / K + eps);
      const xs = Float64Array.from({ length: K }, (_, i) => (norm ? rbf(fromBf16Bits(xb[i]) * inv * fromBf16Bits(normF[i])) : fromBf16Bits(xb[i])));
      const dot = new Float64Array(N), mag = new Float64Array(N);
      for (let j = 0; j < N; j++) {
        let a = 0, m = 0;
        for (let i = 0; i < K; i++) {
          const p = xs[i] * D[j * K + i];
          a += p;
          m += Math.abs(p);
        }
        dot[j] = a + fromBf16Bits(biasF[j]);
        mag[j] = m;
      }
      const tol = (j: number): number => 2 ** -8 * mag[j] + 1e-6;
      for (const mode of [0, 1, 2, 3]) {
        const outN = mode === 2 ? N / 2 : N, bytes = mode === 3 ? 4 : 2;
        const init = bf16(seededUniform(50 + mode, 3 * outN));
        const run = (kernel: string, blocks: number, m: number): Uint8Array => {
          using y = d.alloc(3 * outN * bytes);
          if (mode === 1) y.copyFromHost(init);
          const k = (kernel.startsWith("quant_gemv1") ? mod : base).kernel(kernel, PARAMS);
          k.launch(blocks, 256, [x, W, s, z ?? 0n, bias, y, norm ? normW : 0n, eps, m, N, K, grid.groupSize, mode]);
          const out = new Uint8Array(outN * bytes);
          y.copyToHost(out);
          return out;
        };
        const ref1 = run(`quant_gemv_fused${norm ? "_norm" : ""}_${u}`, N / 16, 1);
        const ref3 = norm && 3 * K > 8192 ? ref1 : run(`quant_gemv_fused${norm ? "_norm" : ""}_${u}`, N / 16, 3);
        assert.deepEqual(Array.from(ref3), Array.from(ref1), `${name} norm=${norm} mode=${mode}: quant_gemv_fused row 0 of 3 vs alone`);
        for (const blocks of [quantGemv1Grid(N, mode), 1, 3]) {
          const got = run(`quant_gemv1${norm ? "_norm" : ""}_${u}`, blocks, 1);
          const label = `${name} norm=${norm} mode=${mode} grid=${blocks}`;
          const vals = mode === 3 ? new Float32Array(got.buffer) : Uint16Array.from(new Uint16Array(got.buffer), (b) => b);
          for (let j = 0; j < outN; j++) {
            const v = mode === 3 ? vals[j] : fromBf16Bits(vals[j]);
            let want: number, bound: number;
            if (mode === 2) {
              const g = dot[j], up = dot[outN + j];
              want = silu(g) * up;
              bound = 1.1 * (tol(j) + 2 ** -9 * Math.abs(g)) * Math.abs(up) + Math.abs(silu(g)) * (tol(outN + j) + 2 ** -9 * Math.abs(up)) +
                2 ** -7 * Math.abs(want) + 1e-6;
            } else {
              want = dot[j] + (mode === 1 ? fromBf16Bits(init[j]) : 0);
              bound = tol(j) + (mode === 3 ? 0 : 2 ** -7 * Math.abs(want));
            }
            if (!(Math.abs(v - want) <= bound)) assert.fail(`${label}: y[${j}] = ${v}, want ${want} ± ${bound}`);
          }
          let diff = 0;
          for (let i = 0; i < got.length; i++) if (got[i] !== ref1[i]) diff++;
          assert.equal(diff, 0, `${label}: ${diff} bytes differ from quant_gemv_fused's`);
        }
      }
    }
  });
}

// (The consumer's in-features are the producer's N: an even number of segments, 2048 for uint4. Session 10 r3 ran this
// test with N = 1024 for uint4, a shape quant_gemv1 does not take (k % 2048), and failed on it; not re-run since.)
gpuTest("quant_gemv1_addnorm + quant_gemv1_rs: the bits of quant_gemv_fused_addnorm + quant_gemv_fused_rs (residual, xw, modes 0 / 2)", () => {
  const d = device();
  using mod = loadKernelFile(d, "quant_gemv1.cu", select("quant_gemv1"));
  using base = loadKernelFile(d, "quant_gemv.cu", select("quant_gemv_fused"));
  for (
    const [grid, N, K] of [[{ bits: 4, groupSize: 128, hasZeroPoint: true }, 2048, 2048], [{ bits: 8, groupSize: 1024, hasZeroPoint: false }, 1024, 1024]] as [
      IntGrid,
      number,
      number,
    ][]
  ) {
    const u = grid.bits === 4 ? "u4" : "u8", N2 = 2 * N;
    const g2 = grid.bits === 4 ? grid.groupSize : N;
    const t = quantizeRtn(seededUniform(3, N * K, -0.05, 0.05), N, K, grid);
    const t2 = quantizeRtn(seededUniform(4, N2 * N, -0.05, 0.05), N2, N, { ...grid, groupSize: g2 });
    using W = upload(d, t.packed);
    using s = upload(d, t.scales);
    using z = t.zeros ? upload(d, t.zeros) : null;
    using W2 = upload(d, t2.packed);
    using s2 = upload(d, t2.scales);
    using z2 = t2.zeros ? upload(d, t2.zeros) : null;
    using x = upload(d, bf16(seededUniform(5, K)));
    using normW = upload(d, bf16(seededUniform(6, N, 0.5, 1.5)));
    const resid = bf16(seededUniform(7, N));
    using r0 = upload(d, resid);
    using r1 = upload(d, resid);
    using xw0 = d.alloc(N * 2);
    using xw1 = d.alloc(N * 2);
    using ssq0 = d.alloc((N / 16) * 4);
    using ssq1 = d.alloc((N / 2) * 4);
    base.kernel(`quant_gemv_fused_addnorm_${u}`, APARAMS).launch(N / 16, 256, [x, W, s, z ?? 0n, 0n, r0, normW, 1e-5, 1, N, K, grid.groupSize, 1, xw0, ssq0]);
    mod.kernel(`quant_gemv1_addnorm_${u}`, APARAMS).launch(3, 256, [x, W, s, z ?? 0n, 0n, r1, normW, 1e-5, 1, N, K, grid.groupSize, 1, xw1, ssq1]);
    const host = (b: DeviceBuffer, n: number): number[] => {
      const h = new Uint8Array(n);
      b.copyToHost(h);
      return Array.from(h);
    };
    assert.deepEqual(host(r1, N * 2), host(r0, N * 2), `${u}: residual`);
    assert.deepEqual(host(xw1, N * 2), host(xw0, N * 2), `${u}: xw`);
    for (const mode of [0, 2]) {
      using y0 = d.alloc(N2 * 2);
      using y1 = d.alloc(N2 * 2);
      base.kernel(`quant_gemv_fused_rs_${u}`, PARAMS).launch(N2 / 16, 256, [xw0, W2, s2, z2 ?? 0n, 0n, y0, ssq0, 1e-5, 1, N2, N, g2, mode]);
      mod.kernel(`quant_gemv1_rs_${u}`, PARAMS).launch(quantGemv1Grid(N2, mode), 256, [xw1, W2, s2, z2 ?? 0n, 0n, y1, ssq1, 1e-5, 1, N2, N, g2, mode]);
      const outB = (mode === 2 ? N : N2) * 2;
      assert.deepEqual(host(y1, outB), host(y0, outB), `${u} rs mode ${mode}`);
    }
  }
});
