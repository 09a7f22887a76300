/**
 * Shared by tests/gpu/lowbit_cuda.test.ts and tools/cuda-kernel-check/lowbit_emu.ts (not a test file): a random
 * linear weight in each lowbit format (engine tensors + the CPU backend's weight) and the CPU emulation's
 * quantized activation values, the bits lowbit.cu's activation quantizers must write.
 */
import { loadLowbitWeight } from "../lib/backends/cpu/lowbit_linear.ts";
import type { Op } from "../lib/ir/network.ts";
import { quantizeRtn } from "../lib/quantization/algorithms.ts";
import { lowbitEngineRecord } from "../lib/quantization/lowbit_engine.ts";
import { quantizeNvfp4, toW4A8 } from "../lib/quantization/nvfp4.ts";
import { quantizeInt8PerChannel } from "../lib/quantization/smoothquant.ts";
import { E2M1_DECODE, nvfp4QuantizeBlocks } from "../lib/util/e2m1.ts";
import { E4M3_DECODE, e4m3Encode } from "../lib/util/e4m3.ts";
import { seededUniform } from "./gpu/gpu.ts";

export type Fmt = "int8" | "int4" | "nvfp4";

/** A random [N, K] weight in `fmt` (int8 with a pre-quant scale), its engine tensors and the CPU weight. */
export function weight(fmt: Fmt, N: number, K: number) {
  const w = seededUniform(11 + N + K, N * K, -0.08, 0.08);
  for (let n = 0; n < N; n++) w[n * K + ((7 * n) % K)] *= 8; // rows and blocks of different amaxes
  const pre = seededUniform(3, K, 0.5, 2);
  const t = fmt === "int8"
    ? quantizeInt8PerChannel(w, N, K, pre)
    : fmt === "int4"
    ? toW4A8(quantizeRtn(w, N, K, { bits: 4, groupSize: 64, hasZeroPoint: false }), 2.5)
    : quantizeNvfp4(w, N, K, 2.5);
  const rec = lowbitEngineRecord("w", t);
  const tensors = new Map(rec.tensors.map((x) => [x.name, x.data]));
  const op: Extract<Op, { type: "linear" }> = { type: "linear", x: "x", out: "y", weight: "w", inFeatures: K, outFeatures: N, weightFormat: rec.weightFormat };
  const cpu = loadLowbitWeight(op, {
    readTensor: (n) => tensors.get(n)!,
    readFloat32: (n) => new Float32Array(tensors.get(n)!.slice().buffer),
  }).weight;
  return { f: rec.weightFormat, tensors, cpu, pre };
}

/** The CPU's quantized activation values of rows [m, k] (what lowbit_act_* must write, row-major). */
export function cpuQuantized(fmt: Fmt, x: Float32Array, m: number, k: number, a: number, pre: Float32Array | null): { q: Float32Array; scales: Float32Array } {
  const q = new Float32Array(m * k), scales = new Float32Array(m);
  for (let r = 0; r < m; r++) {
    if (fmt === "int8") {
      const xs = Float32Array.from({ length: k }, (_, i) => (pre ? x[r * k + i] * pre[i] : x[r * k + i]));
      let amax = 0;
      for (const v of xs) amax = Math.max(amax, Math.abs(v));
      const s = amax > 0 ? Math.fround(amax / 127) : 1;
      scales[r] = s;
      for (let i = 0; i < k; i++) {
        const v = Math.fround(xs[i] / s), fl = Math.floor(v), d = v - fl;
        q[r * k + i] = Math.max(-127, Math.min(127, d > 0.5 ? fl + 1 : d < 0.5 ? fl : fl % 2 === 0 ? fl : fl + 1));
      }
    } else if (fmt === "int4") {
      for (let i = 0; i < k; i++) q[r * k + i] = E4M3_DECODE[e4m3Encode(Math.fround(x[r * k + i] / a))];
    } else {
      const codes = new Uint8Array(k), sx = new Uint8Array(k / 16);
      nvfp4QuantizeBlocks(x, r * k, k, a, codes, 0, sx, 0);
      for (let i = 0; i < k; i++) q[r * k + i] = E2M1_DECODE[codes[i]] * E4M3_DECODE[sx[i >> 4]];
    }
  }
  return { q, scales };
}

const cvt = new Float32Array(1), cvtBits = new Uint32Array(cvt.buffer);
/** x rounded to bf16 (nearest even), as a number. */
export function roundBf16(x: number): number {
  cvt[0] = x;
  cvtBits[0] = ((cvtBits[0] + 0x7fff + ((cvtBits[0] >>> 16) & 1)) >>> 16) << 16;
  return cvt[0];
}

/** The weights [N, K] lowbit_dequant_* must write: int8 q and NVFP4 e2m1 · e4m3 exactly, int4 bf16(q · s). */
export function expectedDequant(fmt: Fmt, tensors: ReadonlyMap<string, Uint8Array>, N: number, K: number, group: number): Float32Array {
  const w = tensors.get("w")!, sb = tensors.get("w.scales")!, out = new Float32Array(N * K);
  const sf = fmt === "int4" ? new Float32Array(sb.slice().buffer) : null;
  for (let n = 0; n < N; n++) {
    for (let k = 0; k < K; k++) {
      const i = n * K + k;
      if (fmt === "int8") out[i] = (w[i] << 24) >> 24;
      else if (fmt === "int4") {
        const byte = w[i >> 1], q = k & 1 ? (byte << 24) >> 28 : (byte << 28) >> 28;
        out[i] = roundBf16(Math.fround(q * sf![n * (K / group) + Math.floor(k / group)]));
      } else out[i] = E2M1_DECODE[k & 1 ? w[i >> 1] >> 4 : w[i >> 1] & 15] * E4M3_DECODE[sb[i >> 4]];
    }
  }
  return out;
}
