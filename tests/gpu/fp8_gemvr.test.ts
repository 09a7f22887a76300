/**
 * GPU: fp8_gemvr_fused{,_norm}_bf16 (kernels/fp8_gemv.cu, session 16; SessionOptions.fp8GemvRow / fp8GemvRowNorm), the
 * one-token FP8 decode GEMV with one weight row a warp on short-lived blocks (skipped without a GPU). For modes 0 / 1 / 3,
 * with and without the RMSNorm prologue, static (FP8) and per-token (FP8_PER_CHANNEL_PER_TOKEN) activation scales, on
 * llama-3.1-8b's qkv / o_proj shapes, a 10-segment row (the ring past its first 8 loads), 8192 in-features and a row
 * count that leaves a block's last warps idle:
 * - against fp8_gemv1_fused{,_norm}_bf16 on the launcher's grid: the same bits (the same e4m3 bytes, the same sums in
 *   the same order), fp32 logits included;
 * - without the prologue, mode 3 against the CPU emulation (fp8Linear: the same e4m3 bytes summed in float64) within
 *   fp32 accumulation order.
 * Launch planning: tests/quant_fp8_cuda_gemvr.test.ts (fake device). CPU desk check: tools/cuda-kernel-check/fp8_gemv1_emu.py.
 */
import { loadKernelFile } from "../../lib/backends/cuda/compiler.ts";
import { fp8Gemv1Grid } from "../../lib/backends/cuda/fp8_launch.ts";
import { type CpuFp8Weight, fp8Linear } from "../../lib/backends/cpu/quant_linear.ts";
import { quantizeFp8 } from "../../lib/quantization/fp8.ts";
import { assert } from "../harness.ts";
import { device, fromBf16Bits, gpuTest, seededUniform, toBf16Bits } from "./gpu.ts";

const FUSED = ["ptr", "ptr", "ptr", "ptr", "ptr", "ptr", "f32", "i32", "i32", "i32", "f32", "i32"] as const;
const bf16 = (f: Float32Array): Uint16Array => Uint16Array.from(f, (v) => toBf16Bits(v));

for (
  const [N, K, norms] of [[6144, 4096, [true]], [4096, 4096, [false]], [100, 1024, [false, true]], [24, 5120, [false, true]], [40, 8192, [
    false,
    true,
  ]]] as const
) {
  gpuTest(`fp8_gemvr_fused{,_norm}_bf16 [${N}x${K}] modes 0 / 1 / 3: fp8_gemv1's bits; vs the CPU emulation`, () => {
    const d = device();
    using mod = loadKernelFile(d, "fp8_gemv.cu");
    const w = seededUniform(31 + N, N * K, -0.08, 0.08);
    for (let n = 0; n < N; n++) w[n * K + (n % K)] *= 8;
    const bias = bf16(seededUniform(6, N, -0.5, 0.5)), normW = bf16(seededUniform(8, K, 0.8, 1.2));
    const xb = bf16(seededUniform(13, K, -3, 3)), resid = bf16(seededUniform(17, N, -2, 2));
    using dBias = d.alloc(N * 2);
    using dNormW = d.alloc(K * 2);
    using dx = d.alloc(K * 2);
    using dy = d.alloc(N * 4);
    dBias.copyFromHost(bias);
    dNormW.copyFromHost(normW);
    dx.copyFromHost(xb);
    const eps = 1e-5;
    for (const algo of ["FP8", "FP8_PER_CHANNEL_PER_TOKEN"] as const) {
      const t = quantizeFp8(w, N, K, algo, 2.5);
      const actScale = t.activationScale ?? 0;
      using W = d.alloc(N * K);
      using S = d.alloc(N * 4);
      W.copyFromHost(t.packed);
      S.copyFromHost(t.scales);
      for (const norm of norms) {
        const row = mod.kernel(norm ? "fp8_gemvr_fused_norm_bf16" : "fp8_gemvr_fused_bf16", FUSED);
        const one = mod.kernel(norm ? "fp8_gemv1_fused_norm_bf16" : "fp8_gemv1_fused_bf16", FUSED);
        for (const withBias of [false, true]) {
          for (const mode of [0, 1, 3]) {
            const label = `${algo} [${N}x${K}]${norm ? " norm" : ""} mode ${mode}${withBias ? " bias" : ""}`;
            const bytes = mode === 3 ? N * 4 : N * 2;
            const [a, b] = ([[one, fp8Gemv1Grid(N, mode)], [row, Math.ceil(N / 8)]] as const).map(([kern, grid]) => {
              dy.copyFromHost(new Uint8Array(N * 4).fill(0xff));
              if (mode === 1) dy.copyFromHost(resid);
              kern.launch(grid, 256, [dx, W, S, withBias ? dBias : 0n, dy, norm ? dNormW : 0n, eps, 1, N, K, actScale, mode]);
              const h = new Uint8Array(bytes);
              dy.copyToHost(h);
              return h;
            });
            let diff = 0;
            for (let i = 0; i < bytes; i++) diff += a[i] !== b[i] ? 1 : 0;
            assert.equal(diff, 0, `${label}: ${diff} of ${bytes} output bytes differ from fp8_gemv1's`);
            if (mode === 3 && !norm) {
              const got = new Float32Array(b.buffer, 0, N), want = new Float32Array(N);
              const cw: CpuFp8Weight = { bytes: t.packed, scales: t.scales, activationScale: t.activationScale ?? null };
              fp8Linear(Float32Array.from(xb, (v) => fromBf16Bits(v)), cw, withBias ? Float32Array.from(bias, (v) => fromBf16Bits(v)) : null, 1, N, K, want);
              let worst = 0;
              for (let j = 0; j < N; j++) worst = Math.max(worst, Math.abs(got[j] - want[j]) / Math.max(Math.abs(want[j]), 0.05));
              assert.ok(worst <= 2 ** -8, `${label} vs the CPU's fp8Linear: max relative error ${worst}`);
              if (N === 4096) console.log(`${label}: vs the CPU's fp8Linear (float64 sums) max relative error ${worst.toExponential(2)}`);
            }
          }
        }
      }
    }
  }, 120_000);
}
