import { z } from "zod";
import { EngineDTypeSchema } from "../ir/backend.ts";
import { parseWith } from "../util/validate.ts";

export { type EngineDType, EngineDTypeSchema } from "../ir/backend.ts";

const posInt = z.number().int().positive();

/**
 * Build options, named as TensorRT-LLM's `BuildConfig` (camelCase). They fix the optimization
 * profile an engine is planned for: activation buffers are sized for `maxNumTokens` packed tokens,
 * logits for `maxBatchSize * maxBeamWidth` rows (or `maxNumTokens` with `gatherContextLogits`).
 */
export const BuildConfigSchema = z.strictObject({
  /** Longest prompt accepted. @default maxSeqLen - 1 (the whole context but one generated token) */
  maxInputLen: posInt.optional(),
  /** Longest sequence (prompt + generated). @default the model's max_position_embeddings */
  maxSeqLen: posInt.optional(),
  /** Most sequences in one step. @default 64 */
  maxBatchSize: posInt.default(64),
  /** Beams per request. @default 1 */
  maxBeamWidth: posInt.default(1),
  /** Most packed tokens (prefill chunks + decode tokens) in one step. @default 4096 */
  maxNumTokens: posInt.default(4096),
  /** Batch size the tuner favours. @default maxBatchSize */
  optBatchSize: posInt.optional(),
  /** Token count the tuner favours. @default maxNumTokens */
  optNumTokens: posInt.optional(),
  /** KV cache layout; only "paged" exists. @default "paged" */
  kvCacheType: z.literal("paged").default("paged"),
  /** Tokens per KV cache block. @default 32 */
  tokensPerBlock: z.number().int().refine((v) => v > 0 && (v & (v - 1)) === 0, "expected a power of two").default(32),
  /** Weight and activation dtype; "auto" takes the checkpoint's (float32 on the CPU backend). @default "auto" */
  dtype: z.union([EngineDTypeSchema, z.literal("auto")]).default("auto"),
  /** Keep logits of every prompt token (context logits / prompt logprobs). @default false */
  gatherContextLogits: z.boolean().default(false),
  /** Backend the engine is built for. @default "cpu" */
  backend: z.enum(["cpu", "cuda"]).default("cpu"),
  /** Ranks the model is split across (tensor parallelism; lib/builder/sharding.ts). @default 1 */
  tensorParallelSize: posInt.default(1),
});

export type BuildConfigInput = z.input<typeof BuildConfigSchema>;
export type BuildConfig = Readonly<z.output<typeof BuildConfigSchema>>;

/** Validates build options (errors name the field and value). */
export function parseBuildConfig(input: BuildConfigInput = {}): BuildConfig {
  return parseWith(BuildConfigSchema, input, "BuildConfig");
}
