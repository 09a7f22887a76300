/**
 * GPU: the fused decode forms of the FP8 GEMV (fp8_gemv_fused_bf16 / fp8_gemv_fused_norm_bf16, issue 14;
 * skipped without a GPU). Each mode (0 plain, 1 residual add, 2 SiLU·mul, 3 fp32 logits), with and
 * without the RMSNorm prologue, static and per-token activation scales, m = 1, 5, 8:
 * - against the unfused launches on the same device, equal bits expected (1 bf16 ulp allowed and reported):
 *   rmsnorm_bf16 → fp8_gemv_bf16 → (mode 1: bf16(bf16(v) + y); mode 2: silu_mul_bf16; mode 3: rounded to bf16,
 *   fp8_gemv_bf16's output);
 * - and, without the prologue, against the CPU emulation (fp8Linear on the same bf16 inputs) within the
 *   bf16 output rounding and fp32 accumulation order.
 * The fused plan's wiring: tests/quant_fp8_cuda_fused.test.ts (fake device).
 */
import { loadKernelFile } from "../../lib/backends/cuda/compiler.ts";
import { fp8Gemv1Grid } from "../../lib/backends/cuda/fp8_launch.ts";
import { type CpuFp8Weight, fp8Linear } from "../../lib/backends/cpu/quant_linear.ts";
import { quantizeFp8 } from "../../lib/quantization/fp8.ts";
import { assert } from "../harness.ts";
import { device, fromBf16Bits, gpuTest, seededUniform, toBf16Bits } from "./gpu.ts";

const FUSED = ["ptr", "ptr", "ptr", "ptr", "ptr", "ptr", "f32", "i32", "i32", "i32", "f32", "i32"] as const;
const GEMV = ["ptr", "ptr", "ptr", "ptr", "ptr", "i32", "i32", "i32", "f32"] as const;
const bf16 = (f: Float32Array): Uint16Array => Uint16Array.from(f, (v) => toBf16Bits(v));
const unBf16 = (b: Uint16Array): Float32Array => Float32Array.from(b, (v) => fromBf16Bits(v));

/**
 * bf16 bits `got` against `want`: equal bits expected (the same sums, roundings and epilogue formulas); a
 * difference of 1 bf16 ulp (another FMA contraction) is allowed and counted, anything more fails naming
 * the element. Returns the number of elements that differ.
 */
function sameBits(got: Uint16Array, want: Uint16Array, label: string): number {
  assert.equal(got.length, want.length, label);
  let off = 0;
  for (let i = 0; i < got.length; i++) {
    if (got[i] === want[i]) continue;
    const a = fromBf16Bits(got[i]), b = fromBf16Bits(want[i]);
    assert.ok(Math.abs(a - b) <= Math.max(Math.abs(b) * 2 ** -7, 1e-6), `${label}: element ${i} is ${a}, the unfused launches give ${b}`);
    off++;
  }
  return off;
}

for (const [N, K] of [[96, 512], [256, 1024]] as const) {
  gpuTest(`fp8_gemv_fused{,_norm}_bf16 [${N}x${K}] modes 0-3 against the unfused launches and the CPU emulation`, () => {
    const d = device();
    using mod = loadKernelFile(d, "fp8_gemv.cu");
    using norms = loadKernelFile(d, "rmsnorm.cu");
    using silu = loadKernelFile(d, "silu_mul.cu");
    const gemv = mod.kernel("fp8_gemv_bf16", GEMV);
    const rms = norms.kernel("rmsnorm_bf16", ["ptr", "ptr", "ptr", "i32", "i32", "f32"]);
    const siluMul = silu.kernel("silu_mul_bf16", ["ptr", "ptr", "i32", "i32"]);
    const w = seededUniform(21 + N, N * K, -0.08, 0.08);
    for (let n = 0; n < N; n++) w[n * K + (n % K)] *= 8;
    const bias = bf16(seededUniform(6, N, -0.5, 0.5)), normW = bf16(seededUniform(8, K, 0.8, 1.2));
    using dBias = d.alloc(N * 2);
    using dNormW = d.alloc(K * 2);
    dBias.copyFromHost(bias);
    dNormW.copyFromHost(normW);
    const eps = 1e-5;
    for (const algo of ["FP8", "FP8_PER_CHANNEL_PER_TOKEN"] as const) {
      const t = quantizeFp8(w, N, K, algo, 2.5);
      const actScale = t.activationScale ?? 0;
      using W = d.alloc(N * K);
      using S = d.alloc(N * 4);
      W.copyFromHost(t.packed);
      S.copyFromHost(t.scales);
      const cw: CpuFp8Weight = { bytes: t.packed, scales: t.scales, activationScale: t.activationScale ?? null };
      for (const m of [1, 5, 8]) {
        const xb = bf16(seededUniform(13 + m, m * K, -3, 3)), resid = bf16(seededUniform(17 + m, m * N, -2, 2));
        using dx = d.alloc(m * K * 2);
        using dxn = d.alloc(m * K * 2);
        using dRef = d.alloc(m * N * 2);
        using dy = d.alloc(m * N * 4);
        using dHalf = d.alloc(m * (N / 2) * 2);
        dx.copyFromHost(xb);
        const get16 = (buf: typeof dy, n: number): Uint16Array => {
          const h = new Uint16Array(n);
          buf.copyToHost(h);
          return h;
        };
        for (const norm of [false, true]) {
          const label = `${algo} m=${m}${norm ? " norm" : ""}`;
          // Unfused reference on the device: [rmsnorm_bf16 →] fp8_gemv_bf16.
          if (norm) rms.launch(m, 256, [dx, dNormW, dxn, m, K, eps]);
          gemv.launch(Math.ceil(N / 16), 256, [norm ? dxn : dx, W, S, dBias, dRef, m, N, K, actScale]);
          const ref = get16(dRef, m * N);
          const kern = mod.kernel(norm ? "fp8_gemv_fused_norm_bf16" : "fp8_gemv_fused_bf16", FUSED);
          const fused = (mode: number, y: typeof dy): void => kern.launch(N / 16, 256, [dx, W, S, dBias, y, norm ? dNormW : 0n, eps, m, N, K, actScale, mode]);
          // mode 0: the GEMV's bits.
          fused(0, dy);
          let off = sameBits(get16(dy, m * N), ref, `${label} mode 0 vs fp8_gemv_bf16`);
          // mode 1: y = bf16(bf16(v) + y).
          dy.copyFromHost(resid);
          fused(1, dy);
          const want1 = Uint16Array.from(ref, (r, j) => toBf16Bits(Math.fround(fromBf16Bits(r) + fromBf16Bits(resid[j]))));
          off += sameBits(get16(dy, m * N), want1, `${label} mode 1 vs the GEMV + residual add`);
          // mode 2: silu_mul_bf16 of the GEMV's gate/up output.
          siluMul.launch([1, m, 1], 256, [dRef, dHalf, m, N / 2]);
          const want2 = get16(dHalf, m * (N / 2));
          fused(2, dy);
          off += sameBits(get16(dy, m * (N / 2)), want2, `${label} mode 2 vs fp8_gemv_bf16 + silu_mul_bf16`);
          // mode 3: fp32 values whose bf16 rounding is the GEMV's output.
          fused(3, dy);
          const f = new Float32Array(m * N);
          dy.copyToHost(f);
          off += sameBits(Uint16Array.from(f, (v) => toBf16Bits(v)), ref, `${label} mode 3 (rounded to bf16) vs fp8_gemv_bf16`);
          if (off > 0) console.log(`${label}: ${off} outputs 1 bf16 ulp from the unfused launches'`);
          // The _pdl entry points (weights loaded ahead of pdlWait): the same bits in every mode.
          const kernPdl = mod.kernel(norm ? "fp8_gemv_fused_norm_pdl_bf16" : "fp8_gemv_fused_pdl_bf16", FUSED);
          for (const mode of [0, 1, 2, 3]) {
            const bytes = mode === 3 ? m * N * 4 : mode === 2 ? m * (N / 2) * 2 : m * N * 2;
            const [a, b] = [kern, kernPdl].map((kk) => {
              dy.copyFromHost(new Uint8Array(m * N * 4));
              if (mode === 1) dy.copyFromHost(resid);
              kk.launch(N / 16, 256, [dx, W, S, dBias, dy, norm ? dNormW : 0n, eps, m, N, K, actScale, mode]);
              const h = new Uint8Array(bytes);
              dy.copyToHost(h);
              return h;
            });
            assert.ok(a.every((v, i) => v === b[i]), `${label} mode ${mode}: the _pdl entry point's bits`);
          }
          // fp8_gemv1 (m = 1, contiguous rows per warp, any grid: the launcher's, one block, three blocks): the same
          // products summed in another order — bf16 outputs within a rounding step of the 16-row GEMV's, fp32 logits
          // within 1e-5 relative (of the row's magnitude).
          if (m === 1) {
            const kern1 = mod.kernel(norm ? "fp8_gemv1_fused_norm_bf16" : "fp8_gemv1_fused_bf16", FUSED);
            for (const [mode, grid1] of [0, 1, 2, 3].flatMap((mode) => [fp8Gemv1Grid(N, mode), 1, 3].map((g) => [mode, g] as const))) {
              const outN = mode === 2 ? N / 2 : N;
              const [a, b] = [[kern, N / 16], [kern1, grid1]].map(([kk, blocks]) => {
                dy.copyFromHost(new Uint8Array(m * N * 4));
                if (mode === 1) dy.copyFromHost(resid);
                (kk as typeof kern).launch(blocks as number, 256, [dx, W, S, dBias, dy, norm ? dNormW : 0n, eps, m, N, K, actScale, mode]);
                if (mode === 3) {
                  const h = new Float32Array(outN);
                  dy.copyToHost(h);
                  return h;
                }
                return get16(dy, outN);
              });
              if (mode === 3) {
                const scale = Math.max(...Array.from(a as Float32Array, Math.abs), 1e-3);
                for (let j = 0; j < outN; j++) {
                  assert.ok(Math.abs(a[j] - b[j]) <= 1e-5 * scale, `${label} fp8_gemv1 grid ${grid1} mode 3 row ${j}: ${b[j]} vs ${a[j]}`);
                }
              } else {
                const off1 = sameBits(b as Uint16Array, a as Uint16Array, `${label} fp8_gemv1 grid ${grid1} mode ${mode} vs the 16-row GEMV`);
                if (off1 > 0) console.log(`${label} fp8_gemv1 grid ${grid1} mode ${mode}: ${off1} outputs one bf16 rounding away`);
              }
            }
          }
          if (!norm) {
            const want = new Float32Array(m * N);
            fp8Linear(unBf16(xb), cw, unBf16(bias), m, N, K, want);
            let worst = 0;
            for (let j = 0; j < m * N; j++) worst = Math.max(worst, Math.abs(f[j] - want[j]) / Math.max(Math.abs(want[j]), 0.05));
            // fp32 accumulation order (the e4m3 bytes are the same; as tests/gpu/fp8_cuda.test.ts).
            assert.ok(worst <= 2 ** -8, `${label} mode 3 vs the CPU's fp8Linear: max relative error ${worst}`);
          }
        }
      }
    }
  });
}
