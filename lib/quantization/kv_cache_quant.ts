/**
 * KV-cache quantization (`QuantConfig.kvCacheQuantAlgo`): K (after RoPE) and V stored as one byte per
 * element — `FP8` e4m3, `INT8` symmetric int8 — with one static float32 scale per (layer, k | v, kv
 * head), from the calibration amax (s = amax / 448 for FP8, amax / 127 for INT8), or a fixed default
 * when not calibrated. The engine records the algorithm (its QuantConfig) and the scales
 * (`plan.attributes.kvCache`); the CPU backend's cache (lib/backends/cpu/kv_cache.ts) applies them.
 */
import { KV_QUANT_MAX, type KvCacheQuant, type KvQuantAlgo } from "../ir/kv_cache.ts";
import { LlamaForCausalLM } from "../models/llama.ts";
import { UnsupportedError, ValidationError } from "../util/errors.ts";
import { type Calibration, calibrationSequences, forEachLayerInputs } from "./calibration.ts";
import { dequantize } from "./packed.ts";
import { QuantConfig } from "./quant_config.ts";
import { OverlayWeightSource, QuantizedModel } from "./quantized_model.ts";

/**
 * The scale of an uncalibrated quantized KV cache: FP8 1.0 (e4m3 holds |x| ≤ 448 unscaled, the
 * default of TensorRT-LLM and vLLM), INT8 1/16 (|x| ≤ 7.9 in steps of 1/16).
 */
export const DEFAULT_KV_SCALE: Readonly<Record<KvQuantAlgo, number>> = Object.freeze({ FP8: 1, INT8: 1 / 16 });

/**
 * Scales [numLayers, 2, numKvHeads] from the calibration amax of each layer ([2, numKvHeads] each):
 * float32(amax / max); a head that never wrote a nonzero value gets the default scale.
 */
export function kvCacheScales(algo: KvQuantAlgo, amax: readonly Float64Array[]): number[] {
  const out: number[] = [];
  for (const layer of amax) for (const a of layer) out.push(a > 0 && Number.isFinite(a) ? Math.fround(a / KV_QUANT_MAX[algo]) : DEFAULT_KV_SCALE[algo]);
  return out;
}

/** Fixed default scales for a model (no calibration). */
export function defaultKvCacheScales(algo: KvQuantAlgo, numLayers: number, numKvHeads: number): number[] {
  return new Array(numLayers * 2 * numKvHeads).fill(DEFAULT_KV_SCALE[algo]);
}

/**
 * The `plan.attributes.kvCache` of an engine built from `model` for `build`, or null when the model
 * does not quantize its KV cache. Throws an UnsupportedError for backends/layouts that cannot run it
 * yet (CUDA other than bfloat16 engines with head dim 32/64/128; tensor parallelism).
 */
export function kvCacheAttributes(
  model: LlamaForCausalLM,
  build: { readonly backend: string; readonly tensorParallelSize?: number; readonly dtype?: string },
): KvCacheQuant | null {
  if (!(model instanceof QuantizedModel) || model.quantConfig.kvCacheQuantAlgo === null) return null;
  const algo = model.quantConfig.kvCacheQuantAlgo;
  // CUDA reads FP8 / INT8 caches in bfloat16 engines with a tiled attention head dim (rope_kv_write / paged_attention _fp8kv / _int8kv).
  const cudaOk = build.backend === "cuda" && build.dtype === "bfloat16" && [32, 64, 128].includes(model.config.headDim);
  if (build.backend !== "cpu" && !cudaOk) {
    throw new UnsupportedError(
      `build: kvCacheQuantAlgo ${algo} for the ${build.backend} backend${
        build.dtype ? ` (${build.dtype})` : ""
      }: CUDA runs quantized KV caches in bfloat16 engines with head dim 32, 64 or 128 only (or build with backend "cpu")`,
      "BuildConfig.backend",
      build.backend,
    );
  }
  if ((build.tensorParallelSize ?? 1) > 1) {
    throw new UnsupportedError(
      `build: kvCacheQuantAlgo ${algo} with tensor parallelism is not implemented yet`,
      "BuildConfig.tensorParallelSize",
      build.tensorParallelSize,
    );
  }
  const c = model.config;
  const scales = model.kvCacheScales ?? defaultKvCacheScales(algo, c.numHiddenLayers, c.numKeyValueHeads);
  if (scales.length !== c.numHiddenLayers * 2 * c.numKeyValueHeads) {
    throw new ValidationError(
      `build: ${scales.length} KV-cache scales for ${c.numHiddenLayers} layers × 2 × ${c.numKeyValueHeads} KV heads`,
      "kvCacheScales",
      scales.length,
    );
  }
  return { quantAlgo: algo, scales: [...scales] };
}

/**
 * Adds KV-cache quantization to an already quantized model (a pre-quantized checkpoint, or the result
 * of quantize()): the weights are kept, the KV scales calibrated on a forward of the dequantized
 * weights (the values the engine will compute), or the fixed defaults when `calibrate` is false.
 */
export function withKvCacheQuant(
  model: QuantizedModel,
  algo: KvQuantAlgo,
  opts: {
    readonly calibrate?: boolean;
    readonly calibration?: Calibration;
    readonly tokenize?: (text: string) => number[];
    readonly seqLen?: number;
    readonly maxTokens?: number;
  } = {},
): QuantizedModel {
  let scales: number[] | null = null;
  if (opts.calibrate !== false) {
    const floats = new Map(model.weights.floats);
    for (const n of model.quantizedNames()) floats.set(n, Float32Array.from(dequantize(model.quantizedTensor(n)!)));
    const view = new LlamaForCausalLM(model.config, new OverlayWeightSource(model.weights.base, floats, new Map()), model.options);
    const seqs = calibrationSequences(view, opts.calibration, opts);
    const amax: Float64Array[] = [];
    forEachLayerInputs(view, seqs, { hessian: false, sampleRows: 1 }, (l, inputs) => amax[l] = inputs.kvAmax);
    scales = kvCacheScales(algo, amax);
  }
  const qc = QuantConfig.from({ ...model.quantConfig.toDict(), kvCacheQuantAlgo: algo });
  return new QuantizedModel(model.config, model.weights, model.options, qc, model.awqScales, scales);
}
