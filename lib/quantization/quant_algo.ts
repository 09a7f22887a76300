/**
 * Quantization algorithm names, as TensorRT-LLM spells them (`tensorrt_llm.quantization.QuantAlgo`).
 * String values, so a QuantConfig written to JSON reads back unchanged.
 */
import { UnsupportedError } from "../util/errors.ts";

/** Weight/activation quantization algorithms. */
export const QuantAlgo = Object.freeze(
  {
    NO_QUANT: "NO_QUANT",
    W8A16: "W8A16",
    W4A16: "W4A16",
    W4A16_AWQ: "W4A16_AWQ",
    W4A16_GPTQ: "W4A16_GPTQ",
    W8A8_SQ_PER_CHANNEL: "W8A8_SQ_PER_CHANNEL",
    W4A8_AWQ: "W4A8_AWQ",
    FP8: "FP8",
    FP8_PER_CHANNEL_PER_TOKEN: "FP8_PER_CHANNEL_PER_TOKEN",
    FP8_BLOCK_SCALES: "FP8_BLOCK_SCALES",
    NVFP4: "NVFP4",
    MIXED_PRECISION: "MIXED_PRECISION",
  } as const,
);
export type QuantAlgo = (typeof QuantAlgo)[keyof typeof QuantAlgo];

/** KV-cache quantization algorithms. */
export const KvCacheQuantAlgo = Object.freeze({ FP8: "FP8", INT8: "INT8" } as const);
export type KvCacheQuantAlgo = (typeof KvCacheQuantAlgo)[keyof typeof KvCacheQuantAlgo];

export const QUANT_ALGOS: readonly QuantAlgo[] = Object.freeze(Object.values(QuantAlgo));
export const KV_CACHE_QUANT_ALGOS: readonly KvCacheQuantAlgo[] = Object.freeze(Object.values(KvCacheQuantAlgo));

/** The weight-only algorithms this build implements, with their integer width. */
export const WEIGHT_ONLY_BITS: Readonly<Partial<Record<QuantAlgo, 4 | 8>>> = Object.freeze({
  W8A16: 8,
  W4A16: 4,
  W4A16_AWQ: 4,
  W4A16_GPTQ: 4,
});

/** Whether `algo` stores weights as groupwise/per-channel integers with float activations. */
export function isWeightOnly(algo: QuantAlgo): boolean {
  return WEIGHT_ONLY_BITS[algo] !== undefined;
}

/** Whether `algo` stores weights as e4m3 and quantizes activations to e4m3 (CPU backend only so far). */
export function isFp8(algo: QuantAlgo): boolean {
  return algo === "FP8" || algo === "FP8_PER_CHANNEL_PER_TOKEN" || algo === "FP8_BLOCK_SCALES";
}

/** Whether `algo` quantizes weights and activations below FP8: W8A8_SQ_PER_CHANNEL, W4A8_AWQ, NVFP4 (CPU backend, and bfloat16 CUDA engines through lib/backends/cuda/lowbit_launch.ts). */
export function isLowbitActivation(algo: QuantAlgo): boolean {
  return algo === "W8A8_SQ_PER_CHANNEL" || algo === "W4A8_AWQ" || algo === "NVFP4";
}

/** Throws an UnsupportedError naming `algo` when this build does not implement it yet. */
export function assertImplemented(algo: QuantAlgo, field = "QuantConfig.quantAlgo"): void {
  if (algo === "NO_QUANT" || isWeightOnly(algo) || isFp8(algo) || isLowbitActivation(algo) || algo === "MIXED_PRECISION") return;
  throw new UnsupportedError(
    `${field}: quantization algorithm ${algo} is not implemented yet (implemented: W8A16, W4A16, W4A16_AWQ, W4A16_GPTQ, FP8, FP8_PER_CHANNEL_PER_TOKEN, FP8_BLOCK_SCALES, W8A8_SQ_PER_CHANNEL, W4A8_AWQ, NVFP4, MIXED_PRECISION of those)`,
    field,
    algo,
  );
}
