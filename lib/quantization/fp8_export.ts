/**
 * FP8 models written in the public layouts fp8_checkpoint.ts reads (saveQuantizedCheckpoint's FP8
 * half): FP8 → `quant_method: "fp8"`, activation_scheme "static" (`weight_scale`, `input_scale`
 * scalars per module); FP8_PER_CHANNEL_PER_TOKEN → compressed-tensors float8 (channel weights
 * `weight_scale` [N, 1], dynamic per-token activations); FP8_BLOCK_SCALES → `quant_method: "fp8"`
 * with `weight_block_size` and `weight_scale_inv` [⌈N/bn⌉, ⌈K/bk⌉]. The e4m3 bytes are written as
 * they are, so the checkpoint loads back to the same tensors.
 */
import type { TensorToWrite } from "../models/safetensors.ts";
import { UnsupportedError } from "../util/errors.ts";
import type { QuantizedTensor } from "./packed.ts";
import type { QuantizedModel } from "./quantized_model.ts";

/** The F8_E4M3 weights and scale tensors of every quantized linear, and the `quantization_config`. */
export function fp8CheckpointTensors(model: QuantizedModel): { tensors: Record<string, TensorToWrite>; quantizationConfig: Record<string, unknown> } {
  const algo = model.quantConfig.quantAlgo;
  if (algo !== "FP8" && algo !== "FP8_PER_CHANNEL_PER_TOKEN" && algo !== "FP8_BLOCK_SCALES") {
    throw new UnsupportedError(
      `saveQuantizedCheckpoint: ${algo} FP8 models have no single public layout (FP8, FP8_PER_CHANNEL_PER_TOKEN, FP8_BLOCK_SCALES)`,
      "quantConfig.quantAlgo",
      algo,
    );
  }
  const tensors: Record<string, TensorToWrite> = {};
  let block: [number, number] | null = null;
  for (const name of model.quantizedNames()) {
    const t = model.quantizedTensor(name)!, m = name.replace(/\.weight$/, "");
    tensors[name] = { dtype: "F8_E4M3", shape: [t.rows, t.cols], data: t.packed };
    if (algo === "FP8") {
      if (t.weightScale !== "per_tensor" || !t.scales.every((s) => s === t.scales[0]) || !(t.activationScale! > 0)) {
        throw new UnsupportedError(`saveQuantizedCheckpoint: '${name}' is not per-tensor FP8 with a static activation scale`, name);
      }
      tensors[`${m}.weight_scale`] = { dtype: "F32", shape: [], data: Float32Array.of(t.scales[0]) };
      tensors[`${m}.input_scale`] = { dtype: "F32", shape: [], data: Float32Array.of(t.activationScale!) };
    } else if (algo === "FP8_PER_CHANNEL_PER_TOKEN") {
      tensors[`${m}.weight_scale`] = { dtype: "F32", shape: [t.rows, 1], data: t.scales };
    } else {
      const b = blockOf(t, name);
      if (block && (block[0] !== b[0] || block[1] !== b[1])) {
        throw new UnsupportedError(`saveQuantizedCheckpoint: '${name}' has blocks [${b}], others [${block}]`, name);
      }
      block = b;
      tensors[`${m}.weight_scale_inv`] = { dtype: "F32", shape: [Math.ceil(t.rows / b[0]), Math.ceil(t.cols / b[1])], data: collapse(t, b[0]) };
    }
  }
  const ignore = model.quantConfig.excludeModules.filter((x) => !x.includes("*"));
  const quantizationConfig = algo === "FP8"
    ? { quant_method: "fp8", activation_scheme: "static", ignored_layers: ignore }
    : algo === "FP8_BLOCK_SCALES"
    ? { quant_method: "fp8", activation_scheme: "dynamic", fmt: "e4m3", weight_block_size: block ?? [128, 128], modules_to_not_convert: ignore }
    : compressedTensorsConfig(ignore);
  return { tensors, quantizationConfig };
}

/** A block-scaled tensor's [bn, bk]: bk is its groupSize, bn the rows sharing one scale row (blockRows). */
function blockOf(t: QuantizedTensor, name: string): [number, number] {
  if (t.weightScale !== "per_block" || !t.blockRows) throw new UnsupportedError(`saveQuantizedCheckpoint: '${name}' has no block layout`, name);
  return [t.blockRows, t.groupSize];
}

/** Per-row scales [N, ⌈K/bk⌉] back to block scales [⌈N/bn⌉, ⌈K/bk⌉] (every bn-th row). */
function collapse(t: QuantizedTensor, bn: number): Float32Array {
  const cb = Math.ceil(t.cols / t.groupSize), rb = Math.ceil(t.rows / bn), out = new Float32Array(rb * cb);
  for (let i = 0; i < rb; i++) out.set(t.scales.subarray(i * bn * cb, i * bn * cb + cb), i * cb);
  return out;
}

function compressedTensorsConfig(ignore: readonly string[]): Record<string, unknown> {
  const args = (strategy: string, dynamic: boolean) => ({
    num_bits: 8,
    type: "float",
    symmetric: true,
    strategy,
    dynamic,
    group_size: null,
    block_structure: null,
  });
  return {
    quant_method: "compressed-tensors",
    format: "float-quantized",
    quantization_status: "compressed",
    config_groups: { group_0: { targets: ["Linear"], weights: args("channel", false), input_activations: args("token", true), output_activations: null } },
    ignore: [...ignore],
    kv_cache_scheme: null,
  };
}
