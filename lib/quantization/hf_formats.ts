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
import { packInts, type QuantizedTensor, unpackRow, zeroAt } from "./packed.ts";

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

/** AWQ GEMM → llmrt. */
export function fromAwqGemm(p: PackedLinear, N: number, K: number, groupSize: number): QuantizedTensor {
  if (N % 8 !== 0) throw new FormatError(`AWQ: out-features ${N} is not a multiple of 8`);
  const ng = K / groupSize, words = N / 8;
  if (p.qweight.length !== K * words || p.qzeros.length !== ng * words || p.scales.length !== ng * N) {
    throw new FormatError(
      `AWQ: tensor sizes (qweight ${p.qweight.length}, qzeros ${p.qzeros.length}, scales ${p.scales.length}) do not fit [${N}, ${K}] with group ${groupSize}`,
    );
  }
  const q = new Uint8Array(N * K), zeros = new Uint8Array(N * ng);
  for (let k = 0; k < K; k++) {
    for (let c = 0; c < words; c++) {
      const w = p.qweight[k * words + c];
      for (let i = 0; i < 8; i++) q[(8 * c + AWQ_ORDER[i]) * K + k] = (w >>> (4 * i)) & 15;
    }
  }
  for (let g = 0; g < ng; g++) {
    for (let c = 0; c < words; c++) {
      const w = p.qzeros[g * words + c];
      for (let i = 0; i < 8; i++) zeros[(8 * c + AWQ_ORDER[i]) * ng + g] = (w >>> (4 * i)) & 15;
    }
  }
  return { bits: 4, rows: N, cols: K, groupSize, packed: packInts(q, N, K, 4), scales: scalesFromHf(p.scales, N, ng), zeros };
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
  const q = new Uint8Array(N * K);
  for (let r = 0; r < K / per; r++) {
    for (let n = 0; n < N; n++) {
      const w = p.qweight[r * N + n];
      for (let j = 0; j < per; j++) q[n * K + r * per + j] = (w >>> (bits * j)) & mask;
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
  return { bits, rows: N, cols: K, groupSize, packed: packInts(q, N, K, bits), scales: scalesFromHf(p.scales, N, ng), zeros: sym ? null : zeros };
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
