/**
 * CPU emulation of kernels/nvfp4_mma.cu's GEMV (prmt table lookup with the sign mode, the s8 mma's fragments, the
 * magic-number int → float, the tiled layouts of lib/backends/cuda/nvfp4_tiles.ts) against lowbitLinear, and at m = 1
 * nvfp4_gemv_k32x's (m16n8k32 fragments, blocks in B's columns 0, 2, 4, 6, the quad's block terms in block order):
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
    if (m === 1) {
      // nvfp4_gemv_k32x_bf16_m1: m16n8k32 fragments assembled as PTX lays them out (A: a0 row g k 4t.., a1 row g + 8,
      // a2 / a3 the same at k 16 + 4t; B: b0 k 4t.., b1 k 16 + 4t.., column g; C: c0 row g col 2t, c2 row g + 8 col 2t).
      const yk = new Float32Array(N);
      const mmaK32 = (C: Int32Array[], a: number[][], bfr: number[][]): void => {
        for (let lane = 0; lane < 32; lane++) {
          const g = lane >> 2, t = lane & 3;
          for (const [ai, row, k0] of [[0, g, 0], [1, g + 8, 0], [2, g, 16], [3, g + 8, 16]] as const) {
            for (let n = 0; n < 8; n++) {
              // B column n comes from the lanes 4n + t' (t' = the k slice); A's k 4t..4t+3 meets B's lane 4n + t.
              const bw = bfr[4 * n + t][k0 === 0 ? 0 : 1];
              for (let e = 0; e < 4; e++) C[row][n] += s8(a[lane][ai], e) * s8(bw, e);
            }
          }
        }
      };
      for (let rt = 0; rt < N / 16; rt++) {
        const red = Array.from({ length: 8 }, () => new Float32Array(16));
        for (let warp = 0; warp < 8; warp++) {
          const acc0 = new Float32Array(32), acc1 = new Float32Array(32);
          for (let q = warp; q < KT; q += 8) {
            const tile = rt * KT + q;
            // Two chains: positive weights · x from 1.5 · 2^23, negative weights' magnitudes · x from 0; then cp − cn.
            const Cp = Array.from({ length: 16 }, () => new Int32Array(8).fill(0x4b400000));
            const Cn = Array.from({ length: 16 }, () => new Int32Array(8));
            const frag = (pair: number, negative: boolean) => {
              const a: number[][] = [], bfr: number[][] = [];
              for (let lane = 0; lane < 32; lane++) {
                const g = lane >> 2, t = lane & 3, o = tile * 512 + lane * 16;
                const wd = (b: number) => {
                  const w = (W[o + 4 * b] | (W[o + 4 * b + 1] << 8) | (W[o + 4 * b + 2] << 16) | (W[o + 4 * b + 3] << 24)) >>> 0;
                  return negative ? (w ^ 0x88888888) >>> 0 : w;
                };
                const w0 = wd(2 * pair), w1 = wd(2 * pair + 1);
                a.push([prmt(T0, T1, w0), prmt(T0, T1, w0 >>> 16), prmt(T0, T1, w1), prmt(T0, T1, w1 >>> 16)]);
                const v = g & 1 ? 0 : word(xp, q * 64 + t * 16 + (g >> 1) * 4);
                bfr.push([g === 4 * pair ? v : 0, g === 4 * pair + 2 ? v : 0]);
              }
              return [a, bfr] as const;
            };
            for (const [pair, negative] of [[0, false], [0, true], [1, false], [1, true]] as const) mmaK32(negative ? Cn : Cp, ...frag(pair, negative));
            const C = Cp.map((row, i) => row.map((v, n) => v - Cn[i][n]));
            // Lane t's block term q (exact in fp32), the quad's four added in block order by every lane.
            const q0 = new Float32Array(32), q2 = new Float32Array(32);
            for (let lane = 0; lane < 32; lane++) {
              const g = lane >> 2, t = lane & 3;
              const sxv = sx[4 * q + t];
              const d0 = f32(new Float32Array(new Int32Array([C[g][2 * t]]).buffer)[0] - 12582912);
              const d2 = f32(new Float32Array(new Int32Array([C[g + 8][2 * t]]).buffer)[0] - 12582912);
              const swg = E4M3_DECODE[S[tile * 64 + g * 8 + t]], swh = E4M3_DECODE[S[tile * 64 + g * 8 + 4 + t]];
              q0[lane] = f32(d0 * f32(swg * sxv));
              q2[lane] = f32(d2 * f32(swh * sxv));
              if (q0[lane] !== d0 * f32(swg * sxv) || q2[lane] !== d2 * f32(swh * sxv)) throw new Error("a block term is not exact in fp32");
            }
            for (let lane = 0; lane < 32; lane++) {
              for (let b = 0; b < 4; b++) {
                acc0[lane] = f32(acc0[lane] + q0[(lane & ~3) | b]);
                acc1[lane] = f32(acc1[lane] + q2[(lane & ~3) | b]);
              }
            }
          }
          for (let g = 0; g < 8; g++) {
            red[warp][g] = acc0[4 * g];
            red[warp][g + 8] = acc1[4 * g];
          }
        }
        for (let row = 0; row < 16; row++) {
          let v = 0;
          for (let w = 0; w < 8; w++) v = f32(v + red[w][row]);
          yk[rt * 16 + row] = f32(v * f32(0.25 * alpha));
        }
      }
      const ref1 = new Float32Array(N);
      lowbitLinear(x, cpu, null, 1, N, K, ref1);
      let worstK = 0, worstVsMma = 0;
      for (let i = 0; i < N; i++) {
        worstK = Math.max(worstK, Math.abs(yk[i] - ref1[i]) / Math.max(Math.abs(ref1[i]), 0.05));
        worstVsMma = Math.max(worstVsMma, Math.abs(yk[i] - y[i]) / Math.max(Math.abs(y[i]), 0.05));
      }
      const okK = worstK <= 1e-5 && worstVsMma === 0; // the block terms in the mma kernel's order: its bits
      if (!okK) failures++;
      console.log(
        `[${N}x${K}] m=1 k32: max rel error vs lowbitLinear ${worstK.toExponential(2)}, vs the mma kernel's ${worstVsMma.toExponential(2)} ${
          okK ? "ok" : "FAIL"
        }`,
      );
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
