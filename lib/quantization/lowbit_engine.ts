/**
 * Engine records of the weight-and-activation formats W8A8_SQ_PER_CHANNEL ("int8"), W4A8_AWQ ("int4")
 * and NVFP4 ("nvfp4") — the tensors an engine stores and the op's `weightFormat`:
 *   int8:  `<w>` uint8 [N, K] (two's complement), `<w>.scales` float32 [N, 1], `<w>.pre_quant_scale` float32 [K] when kept
 *   int4:  `<w>` uint8 [N, K/2] (two's complement nibbles, element 2j low), `<w>.scales` float32 [N, K/G]
 *   nvfp4: `<w>` uint8 [N, K/2] (e2m1 codes, element 2j low), `<w>.scales` uint8 [N, K/16] (e4m3 block scales)
 * with the static scales (activation, NVFP4 global) in the weightFormat. The CPU backend runs them bit-exactly
 * (lib/backends/cpu/lowbit_linear.ts), the CUDA backend through lib/backends/cuda/lowbit_launch.ts.
 */
import type { WeightFormat } from "../ir/network.ts";
import { e4m3EncodeDiv } from "../util/e4m3.ts";
import { UnsupportedError } from "../util/errors.ts";
import type { QuantizedTensor } from "./packed.ts";

/** One engine tensor with its bytes. */
interface Tensor {
  readonly name: string;
  readonly dtype: "uint8" | "float32";
  readonly shape: readonly number[];
  readonly data: Uint8Array;
}

const ALGO: Record<string, string> = { int8: "W8A8_SQ_PER_CHANNEL", int4: "W4A8_AWQ", nvfp4: "NVFP4" };

/** Whether `t` is stored by {@link lowbitEngineRecord}. */
export const isLowbitTensor = (t: QuantizedTensor): boolean => t.format === "int8" || t.format === "int4" || t.format === "nvfp4";

/** The build-log line of an NVFP4 build. */
export const NVFP4_BUILD_NOTE =
  "build: NVFP4 weights are stored in the public NVFP4 layout (e2m1 + e4m3 block scales per 16 + a float32 global scale); the H200 (Hopper) has no FP4 tensor cores, so on CUDA NVFP4 is a storage format the kernels dequantize (GEMV in registers, prefill into a bf16 scratch for cuBLASLt); the CPU backend emulates it bit-exactly";

/**
 * Refuses a CUDA build of a tensor in these formats whose shape the CUDA kernels (kernels/lowbit.cu) do not
 * take: in-features a multiple of 16 (whole 16-byte activation vectors; NVFP4 blocks), out-features of 8
 * (SmoothQuant's scale epilogue), int4 groups of a multiple of 8.
 */
export function refuseLowbitOnCuda(ts: readonly QuantizedTensor[], backend: string): void {
  if (backend !== "cuda") return;
  for (const t of ts) {
    if (!isLowbitTensor(t)) continue;
    if (t.cols % 16 === 0 && t.rows % 8 === 0 && (t.format !== "int4" || t.groupSize % 8 === 0)) continue;
    throw new UnsupportedError(
      `build: ${ALGO[t.format!]} on CUDA needs in-features a multiple of 16 and out-features a multiple of 8${
        t.format === "int4" ? " (and a group size of a multiple of 8)" : ""
      }; a weight is [${t.rows}, ${t.cols}] (exclude it or build with backend "cpu")`,
      "BuildConfig.backend",
      backend,
    );
  }
}

const bytesOf = (a: Float32Array | Uint8Array): Uint8Array => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

/** The engine tensors and weight format of engine weight `w` holding `t` (int8 / int4 / nvfp4). */
export function lowbitEngineRecord(w: string, t: QuantizedTensor): { tensors: Tensor[]; weightFormat: WeightFormat } {
  const N = t.rows, K = t.cols;
  if (t.format === "int8") {
    const tensors: Tensor[] = [
      { name: w, dtype: "uint8", shape: [N, K], data: t.packed },
      { name: `${w}.scales`, dtype: "float32", shape: [N, 1], data: bytesOf(t.scales) },
    ];
    if (t.preQuantScale) tensors.push({ name: `${w}.pre_quant_scale`, dtype: "float32", shape: [K], data: bytesOf(t.preQuantScale) });
    return {
      tensors,
      weightFormat: {
        format: "int8",
        groupSize: 0,
        scales: `${w}.scales`,
        weightScale: "per_channel",
        activation: "dynamic_per_token",
        ...(t.preQuantScale ? { preQuantScale: `${w}.pre_quant_scale` } : {}),
      },
    };
  }
  if (t.format === "int4") {
    return {
      tensors: [
        { name: w, dtype: "uint8", shape: [N, K / 2], data: t.packed },
        { name: `${w}.scales`, dtype: "float32", shape: [N, K / t.groupSize], data: bytesOf(t.scales) },
      ],
      weightFormat: { format: "int4", groupSize: t.groupSize, scales: `${w}.scales`, activation: "static_per_tensor", activationScale: t.activationScale! },
    };
  }
  // The block scales' e4m3 bytes (e4m3Encode's, by the row encoder: an 8B model's 436M scales in seconds).
  const scales = new Uint8Array(t.scales.length);
  e4m3EncodeDiv(t.scales, 0, t.scales.length, 1, scales, 0);
  return {
    tensors: [
      { name: w, dtype: "uint8", shape: [N, K / 2], data: t.packed },
      { name: `${w}.scales`, dtype: "uint8", shape: [N, K / t.groupSize], data: scales },
    ],
    weightFormat: {
      format: "nvfp4",
      groupSize: t.groupSize,
      scales: `${w}.scales`,
      activation: "dynamic_per_block",
      activationScale: t.activationScale!,
      globalScale: t.globalScale!,
    },
  };
}
