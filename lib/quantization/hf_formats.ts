/**
 * The public pre-quantized checkpoint layouts, converted to and from llmrt's packed layout
 * (packed.ts). Both store, per linear with in-features K and out-features N:
 *
 * AutoAWQ "GEMM" (`quant_method: "awq"`, `version: "gemm"`, 4-bit):
 *   qweight int32 [K, N/8]    word (k, c) holds q[k, 8c + ORDER[i]] in bits 4i..4i+3, ORDER = 0 2 4 6 1 3 5 7
 *   qzeros  int32 [K/G, N/8]  zero points, same packing
 *   scales  fp16  [K/G, N]    w = (q − z) · s
 * AutoGPTQ (`quant_method: "gptq"`, `checkpoint_format: "gptq"`, 4 or 8 bits, desc_act false):
 *   qweight int32 [K·b/32, N]  word (r, n) holds q[r·(32/b) + j, n] in bits b·j.. (packed along K)
 *   qzeros  int32 [K/G, N·b/32] word (g, c) holds z[g, c·(32/b) + j] − 1 in bits b·j.. (packed along N;
 *                               the "v1" off-by-one every GPTQ reader undoes with +1)
 *   scales  fp16  [K/G, N];  g_idx int32 [K] = k / G (group_size −1: one group of K)
 */
import { f16ToF32, f32ToF16 } from "../util/dtype.ts";
import { FormatError, UnsupportedError } from "../util/errors.ts";
import { type QuantizedTensor, unpackRow, zeroAt } from "./packed.ts";

export const AWQ_ORDER: readonly number[] = [0, 2, 4, 6, 1, 3, 5, 7];

/** Tensors of one linear in a public layout (int32 words, float16 bit patterns). */
export interface PackedLinear {
  readonly qweight: Int32Array;
  readonly qzeros: Int32Array;
  readonly scales: Uint16Array;
  readonly gIdx?: Int32Array;
}

/** scales [K/G, N] fp16 → llmrt [N, K/G] float32. */
function scalesFromHf(s: Uint16Array, N: number, ng: number): Float32Array {
  const f = f16ToF32(s), out = new Float32Array(N * ng);
  for (let g = 0; g < ng; g++) for (let n = 0; n < N; n++) out[n * ng + g] = f[g * N + n];
  return out;
}

/** llmrt scales [N, K/G] → fp16 [K/G, N]; FormatError when a scale is not a float16 value. */
function scalesToHf(t: QuantizedTensor): Uint16Array {
  const N = t.rows, ng = t.cols / t.groupSize, f = new Float32Array(N * ng);
  for (let n = 0; n < N; n++) for (let g = 0; g < ng; g++) f[g * N + n] = t.scales[n * ng + g];
  const h = f32ToF16(f);
  const back = f16ToF32(h);
  for (let i = 0; i < f.length; i++) if (back[i] !== f[i]) throw new FormatError(`scale ${f[i]} is not a float16 value; cannot store it in an HF checkpoint`);
  return h;
}

/**
 * AWQ GEMM → llmrt. The weights take an 8 × 8 nibble transpose per block of 8 in-features × 8 out-features
 * (one int32 word per in-feature in, one llmrt word per out-feature row out), tiled so that both sides stay
 * in cache: llama-3.1-8b's 7 B weights convert in seconds, not a scalar pass per nibble.
 */
export function fromAwqGemm(p: PackedLinear, N: number, K: number, groupSize: number): QuantizedTensor {
  if (N % 8 !== 0) throw new FormatError(`AWQ: out-features ${N} is not a multiple of 8`);
  const ng = K / groupSize, words = N / 8;
  if (p.qweight.length !== K * words || p.qzeros.length !== ng * words || p.scales.length !== ng * N) {
    throw new FormatError(
      `AWQ: tensor sizes (qweight ${p.qweight.length}, qzeros ${p.qzeros.length}, scales ${p.scales.length}) do not fit [${N}, ${K}] with group ${groupSize}`,
    );
  }
  const zeros = new Uint8Array(N * ng);
  for (let g = 0; g < ng; g++) {
    for (let c = 0; c < words; c++) {
      const w = p.qzeros[g * words + c];
      for (let i = 0; i < 8; i++) zeros[(8 * c + AWQ_ORDER[i]) * ng + g] = (w >>> (4 * i)) & 15;
    }
  }
  return { bits: 4, rows: N, cols: K, groupSize, packed: awqWeightsToLlmrt(p.qweight, N, K), scales: scalesFromHf(p.scales, N, ng), zeros };
}

/** AWQ qweight [K, N/8] → llmrt packed [N, K/2] (see fromAwqGemm). */
function awqWeightsToLlmrt(qw: Int32Array, N: number, K: number): Uint8Array {
  const words = N / 8, packed = new Uint8Array((N * K) / 2);
  if (K % 8 !== 0) {
    // Not whole 8-in-feature words: one nibble at a time.
    for (let k = 0; k < K; k++) {
      for (let c = 0; c < words; c++) {
        const w = qw[k * words + c];
        for (let i = 0; i < 8; i++) {
          const n = 8 * c + AWQ_ORDER[i], b = n * (K / 2) + (k >> 1);
          packed[b] |= ((w >>> (4 * i)) & 15) << (4 * (k & 1));
        }
      }
    }
    return packed;
  }
  // Output row n, word kb holds q[n, 8kb .. 8kb + 7] (element e in bits 4e: llmrt's nibble order, little-endian).
  const out = new Uint32Array(packed.buffer), kw = K / 8;
  const r0 = AWQ_ORDER[0] * kw, r1 = AWQ_ORDER[1] * kw, r2 = AWQ_ORDER[2] * kw, r3 = AWQ_ORDER[3] * kw;
  const r4 = AWQ_ORDER[4] * kw, r5 = AWQ_ORDER[5] * kw, r6 = AWQ_ORDER[6] * kw, r7 = AWQ_ORDER[7] * kw;
  const CT = 16; // words of a 64-byte line of one qweight row
  for (let c0 = 0; c0 < words; c0 += CT) {
    const c1 = Math.min(words, c0 + CT);
    for (let kb = 0; kb < kw; kb++) {
      const row = kb * 8 * words;
      for (let c = c0; c < c1; c++) {
        const i = row + c;
        // a_j = the word of in-feature 8kb + j: nibble i = q[8kb + j, 8c + ORDER[i]].
        let a0 = qw[i], a1 = qw[i + words], a2 = qw[i + 2 * words], a3 = qw[i + 3 * words];
        let a4 = qw[i + 4 * words], a5 = qw[i + 5 * words], a6 = qw[i + 6 * words], a7 = qw[i + 7 * words];
        // Transpose the 8 × 8 nibble matrix: swap 4 × 4 blocks (16-bit halves), then 2 × 2 (bytes), then nibbles.
        let t = ((a0 >>> 16) ^ a4) & 0xffff;
        a0 ^= t << 16, a4 ^= t;
        t = ((a1 >>> 16) ^ a5) & 0xffff;
        a1 ^= t << 16, a5 ^= t;
        t = ((a2 >>> 16) ^ a6) & 0xffff;
        a2 ^= t << 16, a6 ^= t;
        t = ((a3 >>> 16) ^ a7) & 0xffff;
        a3 ^= t << 16, a7 ^= t;
        t = ((a0 >>> 8) ^ a2) & 0x00ff00ff;
        a0 ^= t << 8, a2 ^= t;
        t = ((a1 >>> 8) ^ a3) & 0x00ff00ff;
        a1 ^= t << 8, a3 ^= t;
        t = ((a4 >>> 8) ^ a6) & 0x00ff00ff;
        a4 ^= t << 8, a6 ^= t;
        t = ((a5 >>> 8) ^ a7) & 0x00ff00ff;
        a5 ^= t << 8, a7 ^= t;
        t = ((a0 >>> 4) ^ a1) & 0x0f0f0f0f;
        a0 ^= t << 4, a1 ^= t;
        t = ((a2 >>> 4) ^ a3) & 0x0f0f0f0f;
        a2 ^= t << 4, a3 ^= t;
        t = ((a4 >>> 4) ^ a5) & 0x0f0f0f0f;
        a4 ^= t << 4, a5 ^= t;
        t = ((a6 >>> 4) ^ a7) & 0x0f0f0f0f;
        a6 ^= t << 4, a7 ^= t;
        // a_i now holds nibble i of every in-feature word: out-feature row 8c + ORDER[i].
        const o = 8 * c * kw + kb;
        out[o + r0] = a0, out[o + r1] = a1, out[o + r2] = a2, out[o + r3] = a3;
        out[o + r4] = a4, out[o + r5] = a5, out[o + r6] = a6, out[o + r7] = a7;
      }
    }
  }
  return packed;
}

/** llmrt → AWQ GEMM (symmetric tensors get explicit zero points 8). */
export function toAwqGemm(t: QuantizedTensor): PackedLinear {
  if (t.bits !== 4) throw new UnsupportedError(`AWQ GEMM stores 4-bit weights only, got ${t.bits}-bit`, "bits", t.bits);
  const { rows: N, cols: K, groupSize } = t, ng = K / groupSize, words = N / 8;
  if (N % 8 !== 0) throw new UnsupportedError(`AWQ GEMM needs out-features divisible by 8, got ${N}`, "rows", N);
  const qweight = new Int32Array(K * words), qzeros = new Int32Array(ng * words);
  const row = new Uint8Array(K);
  for (let n = 0; n < N; n++) {
    unpackRow(t, n, row);
    const c = n >> 3, i = AWQ_ORDER.indexOf(n & 7);
    for (let k = 0; k < K; k++) qweight[k * words + c] |= row[k] << (4 * i);
    for (let g = 0; g < ng; g++) qzeros[g * words + c] |= zeroAt(t, n, g) << (4 * i);
  }
  return { qweight, qzeros, scales: scalesToHf(t) };
}

/** GPTQ (v1, desc_act false) → llmrt. `sym` drops the zero tensor after checking it is 2^(bits−1). */
export function fromGptq(p: PackedLinear, N: number, K: number, groupSize: number, bits: 4 | 8, sym: boolean): QuantizedTensor {
  const per = 32 / bits, mask = (1 << bits) - 1, ng = K / groupSize;
  if (p.qweight.length !== (K / per) * N || p.qzeros.length !== ng * (N / per) || p.scales.length !== ng * N) {
    throw new FormatError(
      `GPTQ: tensor sizes (qweight ${p.qweight.length}, qzeros ${p.qzeros.length}, scales ${p.scales.length}) do not fit [${N}, ${K}] ${bits}-bit group ${groupSize}`,
    );
  }
  if (p.gIdx) {
    for (let k = 0; k < K; k++) {
      if (p.gIdx[k] !== Math.floor(k / groupSize)) {
        throw new UnsupportedError(
          `GPTQ: g_idx[${k}] = ${p.gIdx[k]} is not k / group_size (act-order / desc_act checkpoints are not supported)`,
          "g_idx",
          p.gIdx[k],
        );
      }
    }
  }
  // Word (r, n) holds q[n, r·per .. r·per + per − 1] in bits b·j: exactly llmrt's word r of row n (element
  // order within a word and little-endian bytes agree), so the weights are a tiled 32-bit transpose.
  const R = K / per, packed = new Uint8Array((N * K * bits) / 8), out = new Uint32Array(packed.buffer), qw = p.qweight;
  const T = 16;
  for (let r0 = 0; r0 < R; r0 += T) {
    const r1 = Math.min(R, r0 + T);
    for (let n0 = 0; n0 < N; n0 += T) {
      const n1 = Math.min(N, n0 + T);
      for (let n = n0; n < n1; n++) for (let r = r0; r < r1; r++) out[n * R + r] = qw[r * N + n];
    }
  }
  const zeros = new Uint8Array(N * ng);
  const cols = N / per;
  for (let g = 0; g < ng; g++) {
    for (let c = 0; c < cols; c++) {
      const w = p.qzeros[g * cols + c];
      for (let j = 0; j < per; j++) {
        // v1 stores z − 1, so a zero point of 0 wrapped to 2^bits − 1: read it back as 2^bits, as
        // AutoGPTQ's own reader does (fits our uint8 zeros for 4-bit; 256 does not for 8-bit).
        const z = ((w >>> (bits * j)) & mask) + 1;
        if (z > 255) throw new UnsupportedError(`GPTQ: 8-bit zero point ${z} (stored ${z - 1}, a wrapped zero point of 0) is not supported`, "qzeros", z);
        zeros[(c * per + j) * ng + g] = z;
      }
    }
  }
  if (sym) {
    const mid = 1 << (bits - 1);
    const bad = zeros.findIndex((z) => z !== mid);
    if (bad >= 0) throw new FormatError(`GPTQ: sym is true but zero point ${zeros[bad]} != ${mid}`);
  }
  return { bits, rows: N, cols: K, groupSize, packed, scales: scalesFromHf(p.scales, N, ng), zeros: sym ? null : zeros };
}

/** llmrt → GPTQ v1. */
export function toGptq(t: QuantizedTensor): PackedLinear {
  const { rows: N, cols: K, groupSize, bits } = t, per = 32 / bits, ng = K / groupSize;
  if (N % per !== 0) throw new UnsupportedError(`GPTQ ${bits}-bit needs out-features divisible by ${per}, got ${N}`, "rows", N);
  const qweight = new Int32Array((K / per) * N), qzeros = new Int32Array(ng * (N / per));
  const row = new Uint8Array(K);
  for (let n = 0; n < N; n++) {
    unpackRow(t, n, row);
    for (let k = 0; k < K; k++) qweight[Math.floor(k / per) * N + n] |= row[k] << (bits * (k % per));
    for (let g = 0; g < ng; g++) {
      const z = zeroAt(t, n, g);
      if (z === 0) throw new UnsupportedError(`GPTQ v1 cannot store a zero point of 0 (row ${n}, group ${g})`, "zeros", 0);
      qzeros[g * (N / per) + Math.floor(n / per)] |= (z - 1) << (bits * (n % per));
    }
  }
  const gIdx = Int32Array.from({ length: K }, (_, k) => Math.floor(k / groupSize));
  return { qweight, qzeros, scales: scalesToHf(t), gIdx };
}
