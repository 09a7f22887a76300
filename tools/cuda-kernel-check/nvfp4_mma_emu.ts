/**
 * CPU emulation of kernels/nvfp4_mma.cu's GEMV (prmt table lookup with the sign mode, the s8 mma's fragments, the
 * magic-number int → float, the tiled layouts of lib/backends/cuda/nvfp4_tiles.ts) against lowbitLinear:
 * `bun tools/cuda-kernel-check/nvfp4_mma_emu.ts`. Exits non-zero on a mismatch.
 */
import { lowbitLinear } from "../../lib/backends/cpu/lowbit_linear.ts";
import { nvfp4Tiles } from "../../lib/backends/cuda/nvfp4_tiles.ts";
import { E2M1_DECODE, nvfp4QuantizeBlocks } from "../../lib/util/e2m1.ts";
import { E4M3_DECODE } from "../../lib/util/e4m3.ts";
import { weight } from "../../tests/lowbit_ref.ts";
import { seededUniform } from "../../tests/gpu/gpu.ts";

const f32 = Math.fround;
/** PTX prmt.b32 (default mode): byte i = byte (s_i & 7) of {b:a}, or its sign replicated when s_i & 8. */
function prmt(a: number, b: number, s: number): number {
  let d = 0;
  for (let i = 0; i < 4; i++) {
    const sel = (s >>> (4 * i)) & 15, src = sel & 7;
    let byte = ((src < 4 ? a : b) >>> (8 * (src & 3))) & 0xff;
    if (sel & 8) byte = byte & 0x80 ? 0xff : 0;
    d |= byte << (8 * i);
  }
  return d >>> 0;
}
const s8 = (w: number, i: number): number => ((w >>> (8 * i)) << 24) >> 24;

let failures = 0;
for (const [N, K] of [[96, 1024], [32, 4160]] as const) {
  const { f, tensors, cpu } = weight("nvfp4", N, K);
  const a = f.activationScale!, alpha = f32(a * f.globalScale!);
  const { codes: W, scales: S } = nvfp4Tiles(tensors.get("w")!, tensors.get("w.scales")!, N, K);
  const KT = K / 64, nb = K / 16;
  for (const m of [1, 3, 8]) {
    const x = seededUniform(7 + m, m * K, -3, 3);
    for (let r = 0; r < m; r++) x[r * K + 5] = 40;
    // The act kernel's outputs: xp / xn [m, k] in the B fragment order, sx [m, k/16].
    const xp = new Int8Array(m * K), sx = new Float32Array(m * nb);
    const c = new Uint8Array(K), sb = new Uint8Array(nb);
    for (let r = 0; r < m; r++) {
      nvfp4QuantizeBlocks(x, r * K, K, a, c, 0, sb, 0);
      for (let i = 0; i < K; i++) {
        const blk = i >> 4;
        xp[r * K + (blk >> 2) * 64 + ((i & 15) >> 2) * 16 + (blk & 3) * 4 + (i & 3)] = 2 * E2M1_DECODE[c[i]];
      }
      for (let b = 0; b < nb; b++) sx[r * nb + b] = E4M3_DECODE[sb[b]];
    }
    const word = (arr: Int8Array, off: number) =>
      ((arr[off] & 255) | ((arr[off + 1] & 255) << 8) | ((arr[off + 2] & 255) << 16) | ((arr[off + 3] & 255) << 24)) >>> 0;
    const neg = Int8Array.from(xp, (v) => -v);
    const y = new Float32Array(m * N);
    const T0 = 0x03020100, T1 = 0x0c080604;
    for (let rt = 0; rt < N / 16; rt++) {
      // acc per (row, col), summed per warp then over the 8 warps in order.
      const red = Array.from({ length: 8 }, () => new Float32Array(16 * 8));
      for (let warp = 0; warp < 8; warp++) {
        for (let q = warp; q < KT; q += 8) {
          const tile = rt * KT + q;
          for (let b = 0; b < 4; b++) {
            // One mma pair: C[16 rows][8 cols] int32.
            const C = Array.from({ length: 16 }, () => new Int32Array(8));
            for (let lane = 0; lane < 32; lane++) {
              const g = lane >> 2, t = lane & 3, o = tile * 512 + lane * 16 + b * 4;
              const w = (W[o] | (W[o + 1] << 8) | (W[o + 2] << 16) | (W[o + 3] << 24)) >>> 0, xw = (w ^ 0x88888888) >>> 0;
              const a0p = prmt(T0, T1, w), a1p = prmt(T0, T1, w >>> 16), a0n = prmt(T0, T1, xw), a1n = prmt(T0, T1, xw >>> 16);
              // Every lane's A holds rows g / g + 8, k 4t..4t+3; B col n = lanes with g == n.
              for (let n = 0; n < 8; n++) {
                if (n >= m) continue;
                const bp = word(xp, n * K + q * 64 + t * 16 + b * 4), bn = word(neg, n * K + q * 64 + t * 16 + b * 4);
                for (let e = 0; e < 4; e++) {
                  C[g][n] += s8(a0p, e) * s8(bp, e) + s8(a0n, e) * s8(bn, e);
                  C[g + 8][n] += s8(a1p, e) * s8(bp, e) + s8(a1n, e) * s8(bn, e);
                }
              }
            }
            for (let row = 0; row < 16; row++) {
              const g = row & 7, sw = E4M3_DECODE[S[tile * 64 + g * 8 + (row >= 8 ? 4 : 0) + b]];
              for (let n = 0; n < m; n++) {
                const s = f32(sw * sx[n * nb + 4 * q + b]);
                red[warp][row * 8 + n] = f32(red[warp][row * 8 + n] + f32(C[row][n] * s)); // the fma: exact product here
              }
            }
          }
        }
      }
      for (let row = 0; row < 16; row++) {
        for (let n = 0; n < m; n++) {
          let v = 0;
          for (let w = 0; w < 8; w++) v = f32(v + red[w][row * 8 + n]);
          y[n * N + rt * 16 + row] = f32(v * f32(0.25 * alpha));
        }
      }
    }
    const ref = new Float32Array(m * N);
    lowbitLinear(x, cpu, null, m, N, K, ref);
    let worst = 0;
    for (let i = 0; i < m * N; i++) worst = Math.max(worst, Math.abs(y[i] - ref[i]) / Math.max(Math.abs(ref[i]), 0.05));
    const ok = worst <= 1e-5;
    if (!ok) failures++;
    console.log(`[${N}x${K}] m=${m}: max rel error of the emulated GEMV (fp32, before the bf16 store) ${worst.toExponential(2)} ${ok ? "ok" : "FAIL"}`);
  }
}
if (failures) process.exit(1);
