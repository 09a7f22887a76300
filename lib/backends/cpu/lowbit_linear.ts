/**
 * CPU reference kernels of the weight-and-activation formats below FP8 (the emulation CUDA kernels
 * will be tested against). Each quantizes its activation rows exactly as the format prescribes,
 * accumulates the products of the quantized values exactly (float64 holds every partial sum of
 * these small integers / short floats without rounding), and applies the scales after:
 *
 * - "int8" (W8A8_SQ_PER_CHANNEL): x·preQuantScale (optional, float32) → per-token scale
 *   a = f32(amax / 127) → xq = clamp(rne(f32(x / a)), ±127); out = (Σ xq·wq, an exact int32 sum) · a · s[n].
 * - "int4" (W4A8_AWQ): xq = e4m3(f32(x / a)) with the static scale a (RNE, saturating to ±448);
 *   out = a · Σ_g s[n, g] · (Σ_{k∈g} xq·q), q the signed int4 value.
 * - "nvfp4": each row NVFP4-quantized per 16 values under the static global scale a
 *   (lib/util/e2m1.ts: dynamic e4m3 block scales, e2m1 codes); out = a · g_w · Σ_b sx_b·sw_b·(Σ_{k∈b} vx·vw).
 *
 * Weights stay packed; nothing is expanded to a float matrix.
 */
import type { Op } from "../../ir/network.ts";
import { E2M1_DECODE, NVFP4_BLOCK, nvfp4QuantizeBlocks } from "../../util/e2m1.ts";
import { E4M3_DECODE, e4m3Encode } from "../../util/e4m3.ts";
import { FormatError } from "../../util/errors.ts";

/** A linear weight in one of the formats of this file, as the CPU backend holds it. */
export type CpuLowbitWeight =
  | { readonly format: "int8"; readonly q: Int8Array; readonly scales: Float32Array; readonly preQuantScale: Float32Array | null }
  | { readonly format: "int4"; readonly packed: Uint8Array; readonly scales: Float32Array; readonly groupSize: number; readonly activationScale: number }
  | {
    readonly format: "nvfp4";
    readonly packed: Uint8Array;
    readonly blockScales: Uint8Array;
    readonly globalScale: number;
    readonly activationScale: number;
  };

/** Whether the CPU backend runs `format` through {@link lowbitLinear}. */
export const isLowbitFormat = (format: string): format is "int8" | "int4" | "nvfp4" => format === "int8" || format === "int4" || format === "nvfp4";

/** What the loader needs of an engine. */
interface TensorReader {
  readTensor(name: string): Uint8Array;
  readFloat32(name: string): Float32Array;
}

/** Reads a linear op's weight of format int8 / int4 / nvfp4 from the engine; FormatError on a malformed record. Returns the tensor names it consumed. */
export function loadLowbitWeight(op: Extract<Op, { type: "linear" }>, engine: TensorReader): { weight: CpuLowbitWeight; tensors: string[] } {
  const f = op.weightFormat!, N = op.outFeatures, K = op.inFeatures;
  const bad = (what: string): never => {
    throw new FormatError(`Session: ${f.format} weight '${op.weight}': ${what}`);
  };
  const scale = (
    v: number | undefined,
    name: string,
  ): number => (v !== undefined && v > 0 && Number.isFinite(v) ? v : bad(`${name} ${v} is not a positive number`));
  const bytes = engine.readTensor(op.weight);
  const need = f.format === "int8" ? N * K : (N * K) / 2;
  if (bytes.byteLength !== need) bad(`${bytes.byteLength} bytes, expected ${need}`);
  if (f.format === "int8") {
    const pre = f.preQuantScale ? engine.readFloat32(f.preQuantScale) : null;
    if (pre && pre.length !== K) bad(`pre-quant scale has ${pre.length} values, expected ${K}`);
    return {
      weight: { format: "int8", q: new Int8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength), scales: engine.readFloat32(f.scales), preQuantScale: pre },
      tensors: [op.weight, ...(f.preQuantScale ? [f.preQuantScale] : [])],
    };
  }
  if (f.format === "int4") {
    if (!(f.groupSize > 0 && K % f.groupSize === 0 && f.groupSize % 2 === 0)) bad(`group size ${f.groupSize} does not divide ${K}`);
    return {
      weight: {
        format: "int4",
        packed: bytes,
        scales: engine.readFloat32(f.scales),
        groupSize: f.groupSize,
        activationScale: scale(f.activationScale, "activation scale"),
      },
      tensors: [op.weight],
    };
  }
  const blockScales = engine.readTensor(f.scales);
  if (blockScales.byteLength !== (N * K) / NVFP4_BLOCK) bad(`${blockScales.byteLength} block scales, expected ${(N * K) / NVFP4_BLOCK}`);
  return {
    weight: {
      format: "nvfp4",
      packed: bytes,
      blockScales,
      globalScale: scale(f.globalScale, "global scale"),
      activationScale: scale(f.activationScale, "activation scale"),
    },
    tensors: [op.weight, f.scales],
  };
}

/** out[m, n] = Σ_k x[m, k] · w[n, k] (+ bias[n]) with x quantized as the weight's format prescribes. */
export function lowbitLinear(x: Float32Array, w: CpuLowbitWeight, bias: Float32Array | null, M: number, N: number, K: number, out: Float32Array): void {
  if (w.format === "int8") int8Linear(x, w, bias, M, N, K, out);
  else if (w.format === "int4") w4a8Linear(x, w, bias, M, N, K, out);
  else nvfp4Linear(x, w, bias, M, N, K, out);
}

/** Round to nearest, ties to even. */
function rne(v: number): number {
  const f = Math.floor(v), d = v - f;
  return d > 0.5 ? f + 1 : d < 0.5 ? f : f % 2 === 0 ? f : f + 1;
}

function int8Linear(
  x: Float32Array,
  w: Extract<CpuLowbitWeight, { format: "int8" }>,
  bias: Float32Array | null,
  M: number,
  N: number,
  K: number,
  out: Float32Array,
): void {
  const xs = new Float32Array(K), xq = new Int32Array(K), q = w.q, pre = w.preQuantScale;
  for (let m = 0; m < M; m++) {
    let amax = 0;
    for (let k = 0; k < K; k++) {
      xs[k] = pre ? x[m * K + k] * pre[k] : x[m * K + k]; // float32 product, as a bf16/f32 kernel multiplies
      amax = Math.max(amax, Math.abs(xs[k]));
    }
    const a = amax > 0 ? Math.fround(amax / 127) : 1;
    for (let k = 0; k < K; k++) xq[k] = Math.max(-127, Math.min(127, rne(Math.fround(xs[k] / a))));
    for (let n = 0; n < N; n++) {
      const wo = n * K;
      let acc = 0; // |acc| ≤ 127²·K: an exact int32 sum for K < 133k, exact in float64 here
      for (let k = 0; k < K; k++) acc += xq[k] * q[wo + k];
      const v = acc * a * w.scales[n];
      out[m * N + n] = bias ? v + bias[n] : v;
    }
  }
}

function w4a8Linear(
  x: Float32Array,
  w: Extract<CpuLowbitWeight, { format: "int4" }>,
  bias: Float32Array | null,
  M: number,
  N: number,
  K: number,
  out: Float32Array,
): void {
  const G = w.groupSize, ng = K / G, a = w.activationScale, rowBytes = K / 2;
  const xq = new Float64Array(K);
  for (let m = 0; m < M; m++) {
    for (let k = 0; k < K; k++) xq[k] = E4M3_DECODE[e4m3Encode(Math.fround(x[m * K + k] / a))];
    for (let n = 0; n < N; n++) {
      let acc = 0;
      for (let g = 0; g < ng; g++) {
        const pb = n * rowBytes + (g * G) / 2, xk = g * G;
        let dot = 0;
        for (let j = 0; j < G / 2; j++) {
          const b = w.packed[pb + j];
          dot += xq[xk + 2 * j] * ((b << 28) >> 28) + xq[xk + 2 * j + 1] * ((b << 24) >> 28);
        }
        acc += w.scales[n * ng + g] * dot;
      }
      const v = acc * a;
      out[m * N + n] = bias ? v + bias[n] : v;
    }
  }
}

function nvfp4Linear(
  x: Float32Array,
  w: Extract<CpuLowbitWeight, { format: "nvfp4" }>,
  bias: Float32Array | null,
  M: number,
  N: number,
  K: number,
  out: Float32Array,
): void {
  const nb = K / NVFP4_BLOCK, rowBytes = K / 2, dec = E2M1_DECODE;
  const codes = new Uint8Array(K), sx = new Uint8Array(nb), xv = new Float64Array(K);
  const outer = w.activationScale * w.globalScale;
  for (let m = 0; m < M; m++) {
    nvfp4QuantizeBlocks(x, m * K, K, w.activationScale, codes, 0, sx, 0);
    for (let k = 0; k < K; k++) xv[k] = dec[codes[k]];
    for (let n = 0; n < N; n++) {
      let acc = 0;
      for (let b = 0; b < nb; b++) {
        const pb = n * rowBytes + b * (NVFP4_BLOCK / 2), xk = b * NVFP4_BLOCK;
        let dot = 0;
        for (let j = 0; j < NVFP4_BLOCK / 2; j++) {
          const byte = w.packed[pb + j];
          dot += xv[xk + 2 * j] * dec[byte & 15] + xv[xk + 2 * j + 1] * dec[byte >> 4];
        }
        acc += E4M3_DECODE[sx[b]] * E4M3_DECODE[w.blockScales[n * nb + b]] * dot;
      }
      const v = acc * outer;
      out[m * N + n] = bias ? v + bias[n] : v;
    }
  }
}
