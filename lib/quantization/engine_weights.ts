/**
 * What the builder needs of a quantized model: each linear whose weight is quantized gets a
 * `weightFormat` (lib/ir) and three engine tensors in llmrt's packed layout:
 *   `<w>`         uint8   [N, K·bits/8]   packed unsigned integers (uint4: two per byte, low nibble first)
 *   `<w>.scales`  float32 [N, K/G]
 *   `<w>.zeros`   uint8   [N, K/G]        only when asymmetric (else the zero point is 2^(bits−1))
 * FP8 linears (format "fp8_e4m3") get `<w>` uint8 [N, K] e4m3 bytes and `<w>.scales` float32 [N, 1];
 * the activation scale mode (and the static scale) ride in the op's `weightFormat`.
 */
import type { Op, WeightDecl } from "../ir/network.ts";
import type { LlamaForCausalLM } from "../models/llama.ts";
import { UnsupportedError, ValidationError } from "../util/errors.ts";
import { isLowbitTensor, lowbitEngineRecord, NVFP4_BUILD_NOTE, refuseLowbitOnCuda } from "./lowbit_engine.ts";
import { concatRows, type QuantizedTensor } from "./packed.ts";
import { QuantizedModel } from "./quantized_model.ts";

/** One engine tensor with its bytes. */
export interface QuantEngineTensor {
  readonly name: string;
  readonly dtype: "uint8" | "float32";
  readonly shape: readonly number[];
  readonly data: Uint8Array;
}

/** The element format name of a bit width in `WeightFormat.format`. */
export const formatName = (bits: 4 | 8): "uint4" | "uint8" => (bits === 4 ? "uint4" : "uint8");

const bytesOf = (a: Float32Array | Uint8Array): Uint8Array => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

/**
 * Rewrites the linear ops of a quantized model to carry their weight format and returns the
 * packed tensors; `handled` lists the weight names the builder must not convert as floats.
 * Returns null for a model without quantized weights.
 */
export function quantizedEngineWeights(
  model: LlamaForCausalLM,
  weights: ReadonlyMap<string, WeightDecl>,
  ops: readonly Op[],
  build: { readonly backend: string; readonly tensorParallelSize?: number; readonly activationDtype?: string } = { backend: "cpu" },
): { ops: Op[]; tensors: QuantEngineTensor[]; handled: Set<string> } | null {
  if (!(model instanceof QuantizedModel) || model.quantizedNames().length === 0) return null;
  if (build.backend === "cuda" && build.activationDtype !== undefined && build.activationDtype !== "bfloat16") {
    throw new UnsupportedError(
      `build: quantized (${model.quantConfig.quantAlgo}) CUDA engines run in bfloat16 only, not ${build.activationDtype} (build with dtype "bfloat16" or "auto")`,
      "BuildConfig.dtype",
      build.activationDtype,
    );
  }
  const all = model.quantizedNames().map((n) => model.quantizedTensor(n)!);
  refuseLowbitOnCuda(all, build.backend);
  if (all.some((t) => t.format === "nvfp4")) console.info(NVFP4_BUILD_NOTE);
  if ((build.tensorParallelSize ?? 1) > 1) {
    throw new UnsupportedError(
      `build: tensor parallelism of quantized (${model.quantConfig.quantAlgo}) engines is not implemented yet`,
      "BuildConfig.tensorParallelSize",
      build.tensorParallelSize,
    );
  }
  const tensors: QuantEngineTensor[] = [];
  const handled = new Set<string>();
  const out = ops.map((op): Op => {
    if (op.type !== "linear") return op;
    const decl = weights.get(op.weight);
    if (!decl) return op;
    const parts = decl.source.map((s) => model.quantizedTensor(s));
    if (parts.every((p) => p === undefined)) return op;
    if (parts.some((p) => p === undefined)) {
      throw new ValidationError(`build: engine weight '${op.weight}' fuses ${decl.source.join(", ")}, only some of which are quantized`, op.weight);
    }
    let t: QuantizedTensor;
    try {
      t = concatRows(parts as QuantizedTensor[]);
    } catch (e) {
      throw new ValidationError(`build: engine weight '${op.weight}' fuses differently quantized tensors (${(e as Error).message})`, op.weight);
    }
    if (t.rows !== op.outFeatures || t.cols !== op.inFeatures) {
      throw new ValidationError(`build: quantized '${op.weight}' is [${t.rows}, ${t.cols}], the op needs [${op.outFeatures}, ${op.inFeatures}]`, op.weight);
    }
    if (isLowbitTensor(t)) {
      const r = lowbitEngineRecord(op.weight, t);
      if (!handled.has(op.weight)) {
        handled.add(op.weight);
        tensors.push(...r.tensors);
      }
      return { ...op, weightFormat: r.weightFormat };
    }
    if (t.format === "fp8_e4m3") {
      // cuBLASLt's FP8 GEMM (and the FP8 kernels' 16-byte vectors) want both dims in multiples of 16.
      if (build.backend === "cuda" && (t.rows % 16 !== 0 || t.cols % 16 !== 0)) {
        throw new UnsupportedError(
          `build: FP8 on the CUDA backend needs linear dims that are multiples of 16; '${op.weight}' is [${t.rows}, ${t.cols}] (exclude it or build with backend "cpu")`,
          op.weight,
          [t.rows, t.cols],
        );
      }
      const block = t.weightScale === "per_block"; // FP8_BLOCK_SCALES: scales per row and group of groupSize inputs
      if (block && build.backend === "cuda") {
        throw new UnsupportedError(
          `build: FP8_BLOCK_SCALES ('${op.weight}': block-scaled FP8 weights, per-group activations) is not implemented on the CUDA backend yet (build with backend "cpu")`,
          "BuildConfig.backend",
          build.backend,
        );
      }
      if (!handled.has(op.weight)) {
        handled.add(op.weight);
        tensors.push({ name: op.weight, dtype: "uint8", shape: [t.rows, t.cols], data: t.packed });
        tensors.push({ name: `${op.weight}.scales`, dtype: "float32", shape: [t.rows, block ? Math.ceil(t.cols / t.groupSize) : 1], data: bytesOf(t.scales) });
      }
      const dynamic = t.activationScale === null || t.activationScale === undefined;
      return {
        ...op,
        weightFormat: {
          format: "fp8_e4m3",
          groupSize: block ? t.groupSize : 0,
          scales: `${op.weight}.scales`,
          // A fused weight of per-tensor parts with different scales is per-channel in effect.
          weightScale: block ? "per_block" : t.weightScale === "per_tensor" && t.scales.every((s) => s === t.scales[0]) ? "per_tensor" : "per_channel",
          activation: block ? "dynamic_per_block" : dynamic ? "dynamic_per_token" : "static_per_tensor",
          ...(dynamic ? {} : { activationScale: t.activationScale! }),
        },
      };
    }
    if (!handled.has(op.weight)) {
      handled.add(op.weight);
      const ng = t.cols / t.groupSize;
      tensors.push({ name: op.weight, dtype: "uint8", shape: [t.rows, (t.cols * t.bits) / 8], data: t.packed });
      tensors.push({ name: `${op.weight}.scales`, dtype: "float32", shape: [t.rows, ng], data: bytesOf(t.scales) });
      if (t.zeros) tensors.push({ name: `${op.weight}.zeros`, dtype: "uint8", shape: [t.rows, ng], data: t.zeros });
    }
    return {
      ...op,
      weightFormat: {
        format: formatName(t.bits),
        groupSize: t.groupSize,
        scales: `${op.weight}.scales`,
        ...(t.zeros ? { zeros: `${op.weight}.zeros` } : {}),
      },
    };
  });
  return { ops: out, tensors, handled };
}
