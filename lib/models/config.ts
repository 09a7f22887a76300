/**
 * Hugging Face `config.json` (+ `generation_config.json`) → one frozen, camelCase
 * `PretrainedConfig` for the Llama family we run: Llama 2/3.x (also SmolLM, TinyLlama), Mistral,
 * Qwen2/2.5 and Qwen3. Defaults and derived fields follow transformers' own config classes
 * (configuration_llama.py, configuration_mistral.py, configuration_qwen2.py, configuration_qwen3.py)
 * and its RoPE parameter handling (modeling_rope_utils.py): both the 4.x layout
 * (`rope_theta` + `rope_scaling` with `type` or `rope_type`) and the 5.x layout (`rope_parameters`
 * holding `rope_theta` and `rope_type`) are read.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { z } from "zod";
import { FormatError, showValue, ValidationError } from "../util/errors.ts";
import { deepFreeze, parseWith } from "../util/validate.ts";

/** RoPE frequency scaling (`rope_scaling` / `rope_parameters`); `null` in the config means plain RoPE. */
export interface RopeScaling {
  readonly type: "linear" | "dynamic" | "llama3" | "yarn";
  /** Context-extension factor (inverse frequencies divided by it, in whole or in part). */
  readonly factor: number;
  /** llama3: wavelengths longer than original/lowFreqFactor are fully scaled. */
  readonly lowFreqFactor?: number;
  /** llama3: wavelengths shorter than original/highFreqFactor are left alone. */
  readonly highFreqFactor?: number;
  /** llama3, yarn: the pretraining context (defaults to maxPositionEmbeddings, as transformers 5 does). */
  readonly originalMaxPositionEmbeddings?: number;
  /** yarn: rotations bounding the extrapolation ramp. @default 32 */
  readonly betaFast?: number;
  /** yarn: rotations bounding the interpolation ramp. @default 1 */
  readonly betaSlow?: number;
  /** yarn: explicit cos/sin scale; when absent it is derived from factor (and mscale). */
  readonly attentionFactor?: number;
  /** yarn (DeepSeek style): mscale and mscaleAllDim for the derived attention factor. */
  readonly mscale?: number;
  readonly mscaleAllDim?: number;
  /** yarn: floor/ceil the correction range. @default true */
  readonly truncate?: boolean;
}

/** Supported `architectures[0]` values. */
export type Architecture = "LlamaForCausalLM" | "MistralForCausalLM" | "Qwen2ForCausalLM" | "Qwen3ForCausalLM";
/** Supported `model_type` values. */
export type ModelType = "llama" | "mistral" | "qwen2" | "qwen3";

/** A model's hyperparameters, parsed once and frozen. Derived fields are computed, never read. */
export interface PretrainedConfig {
  readonly architecture: Architecture;
  readonly modelType: ModelType;
  readonly vocabSize: number;
  readonly hiddenSize: number;
  readonly intermediateSize: number;
  readonly numHiddenLayers: number;
  readonly numAttentionHeads: number;
  readonly numKeyValueHeads: number;
  /** `head_dim` when given, else hiddenSize / numAttentionHeads (qwen3: 128 when absent). */
  readonly headDim: number;
  readonly rmsNormEps: number;
  readonly ropeTheta: number;
  readonly ropeScaling: RopeScaling | null;
  readonly maxPositionEmbeddings: number;
  /** lm_head shares embed_tokens' weight (no lm_head.weight in the checkpoint). */
  readonly tieWordEmbeddings: boolean;
  /** q/k/v projections have a bias: llama/qwen3 `attention_bias`; qwen2 always; mistral never. */
  readonly qkvBias: boolean;
  /** o_proj has a bias: llama/qwen3 `attention_bias`; qwen2 and mistral never. */
  readonly oProjBias: boolean;
  /** gate/up/down projections have a bias (llama `mlp_bias`). */
  readonly mlpBias: boolean;
  /** RMSNorm over head_dim on q and k before RoPE (qwen3). */
  readonly qkNorm: boolean;
  readonly hiddenAct: "silu";
  /** Sliding-window attention span for every layer, or null for full attention. */
  readonly slidingWindow: number | null;
  readonly bosTokenId: number | null;
  /** Every end-of-sequence id (config.json first, then generation_config.json's). */
  readonly eosTokenIds: readonly number[];
  readonly padTokenId: number | null;
  /** Dtype the weights were saved in. @default "float32" when the config names none */
  readonly torchDtype: "float32" | "float16" | "bfloat16";
}

const ARCHITECTURES: Readonly<Record<ModelType, Architecture>> = {
  llama: "LlamaForCausalLM",
  mistral: "MistralForCausalLM",
  qwen2: "Qwen2ForCausalLM",
  qwen3: "Qwen3ForCausalLM",
};
const MODEL_TYPES = Object.keys(ARCHITECTURES) as ModelType[];

/** Per-type defaults of the transformers config classes, used when a key is absent. */
const TYPE_DEFAULTS: Readonly<
  Record<ModelType, { maxPos: number; kvHeads: number | "heads"; headDim: number | null; bos: number | null; eos: number | null }>
> = {
  llama: { maxPos: 2048, kvHeads: "heads", headDim: null, bos: 1, eos: 2 },
  mistral: { maxPos: 4096 * 32, kvHeads: 8, headDim: null, bos: 1, eos: 2 },
  qwen2: { maxPos: 32768, kvHeads: 32, headDim: null, bos: null, eos: null },
  qwen3: { maxPos: 32768, kvHeads: 32, headDim: 128, bos: null, eos: null },
};
const DEFAULT_SLIDING_WINDOW = 4096;
const DEFAULT_MAX_WINDOW_LAYERS = 28;

const missing = (iss: { input: unknown }): string | undefined => (iss.input === undefined ? "required field is missing" : undefined);
const requiredPositiveInt = (): z.ZodNumber => z.number({ error: missing }).int().positive();
const positiveInt = (): z.ZodNumber => z.number().int().positive();
const tokenId = z.number().int();
const dtypeName = z.enum(["float32", "float16", "bfloat16"]);

const RopeDictSchema = z.object({
  type: z.string().optional(),
  rope_type: z.string().optional(),
  rope_theta: z.number().positive().optional(),
  factor: z.number().positive().nullish(),
  low_freq_factor: z.number().positive().optional(),
  high_freq_factor: z.number().positive().optional(),
  original_max_position_embeddings: positiveInt().nullish(),
  beta_fast: z.number().nullish(),
  beta_slow: z.number().nullish(),
  attention_factor: z.number().positive().nullish(),
  mscale: z.number().nullish(),
  mscale_all_dim: z.number().nullish(),
  truncate: z.boolean().optional(),
  partial_rotary_factor: z.number().optional(),
});
type RopeDict = z.output<typeof RopeDictSchema>;

/** The keys of a HF config.json we read (snake_case, as written); unknown keys are ignored. */
const HfConfigSchema = z.object({
  model_type: z.string().optional(),
  architectures: z.array(z.string()).nullish(),
  vocab_size: requiredPositiveInt(),
  hidden_size: requiredPositiveInt(),
  intermediate_size: requiredPositiveInt(),
  num_hidden_layers: requiredPositiveInt(),
  num_attention_heads: requiredPositiveInt(),
  num_key_value_heads: positiveInt().nullish(),
  head_dim: positiveInt().nullish(),
  hidden_act: z.string().optional(),
  rms_norm_eps: z.number().positive().optional(),
  rope_theta: z.number().positive().optional(),
  rope_scaling: RopeDictSchema.nullish(),
  rope_parameters: RopeDictSchema.nullish(),
  partial_rotary_factor: z.number().optional(),
  max_position_embeddings: positiveInt().optional(),
  tie_word_embeddings: z.boolean().optional(),
  attention_bias: z.boolean().optional(),
  mlp_bias: z.boolean().optional(),
  use_sliding_window: z.boolean().optional(),
  sliding_window: positiveInt().nullish(),
  max_window_layers: z.number().int().nonnegative().optional(),
  layer_types: z.array(z.enum(["full_attention", "sliding_attention"])).nullish(),
  bos_token_id: tokenId.nullish(),
  eos_token_id: z.union([tokenId, z.array(tokenId)]).nullish(),
  pad_token_id: tokenId.nullish(),
  torch_dtype: dtypeName.nullish(),
  dtype: dtypeName.nullish(),
});
type HfConfig = z.output<typeof HfConfigSchema>;

function fail(source: string, field: string, message: string, value: unknown): never {
  const got = value === undefined ? "" : `, got ${showValue(value)}`;
  throw new ValidationError(`${source}: config.${field}: ${message}${got}`, field, value);
}

function resolveModelType(json: Record<string, unknown>, source: string): ModelType {
  const mt = json.model_type;
  const archs = json.architectures;
  const supportedTypes = MODEL_TYPES.join(", ");
  const supportedArchs = Object.values(ARCHITECTURES).join(", ");
  let fromType: ModelType | null = null;
  if (mt !== undefined) {
    if (typeof mt !== "string" || !(MODEL_TYPES as string[]).includes(mt)) {
      fail(source, "model_type", `unsupported model_type (supported: ${supportedTypes})`, mt);
    }
    fromType = mt as ModelType;
  }
  let fromArch: ModelType | null = null;
  if (Array.isArray(archs) && archs.length > 0) {
    const arch = archs[0];
    const found = MODEL_TYPES.find((t) => ARCHITECTURES[t] === arch);
    if (!found) fail(source, "architectures", `unsupported architecture (supported: ${supportedArchs})`, arch);
    fromArch = found;
  } else if (archs !== undefined && archs !== null && !Array.isArray(archs)) {
    fail(source, "architectures", "expected an array of architecture names", archs);
  }
  if (fromType && fromArch && fromType !== fromArch) {
    fail(source, "architectures", `architecture ${ARCHITECTURES[fromArch]} does not match model_type "${fromType}"`, archs);
  }
  const t = fromType ?? fromArch;
  if (!t) fail(source, "model_type", `required field is missing (and no architectures given; supported: ${supportedTypes})`, undefined);
  return t;
}

function parseRopeScaling(
  raw: HfConfig,
  source: string,
  maxPos: number,
): { theta: number; scaling: RopeScaling | null } {
  // transformers 5 reads `rope_scaling` first, then `rope_parameters`; `rope_theta` inside the dict wins.
  const key = raw.rope_scaling ? "rope_scaling" : "rope_parameters";
  const dict: RopeDict | null | undefined = raw.rope_scaling ?? raw.rope_parameters;
  const theta = dict?.rope_theta ?? raw.rope_theta ?? 10000;
  const partial = dict?.partial_rotary_factor ?? raw.partial_rotary_factor;
  if (partial !== undefined && partial !== 1) {
    fail(source, "partial_rotary_factor", "partial rotary embeddings are not supported by this model family (expected 1)", partial);
  }
  if (!dict) return { theta, scaling: null };
  const type = dict.rope_type ?? dict.type ?? "default";
  if (type === "default") return { theta, scaling: null };
  if (type !== "linear" && type !== "dynamic" && type !== "llama3" && type !== "yarn") {
    fail(source, `${key}.rope_type`, "unsupported RoPE type (supported: default, linear, dynamic, llama3, yarn)", type);
  }
  const factor = dict.factor;
  if (factor === undefined || factor === null) fail(source, `${key}.factor`, `required for rope_type "${type}"`, factor);
  const original = dict.original_max_position_embeddings ?? undefined;
  if (type === "linear") return { theta, scaling: { type, factor } };
  if (type === "dynamic") {
    return { theta, scaling: original === undefined ? { type, factor } : { type, factor, originalMaxPositionEmbeddings: original } };
  }
  if (type === "llama3") {
    const low = dict.low_freq_factor;
    const high = dict.high_freq_factor;
    if (low === undefined) fail(source, `${key}.low_freq_factor`, 'required for rope_type "llama3"', low);
    if (high === undefined) fail(source, `${key}.high_freq_factor`, 'required for rope_type "llama3"', high);
    if (high <= low) fail(source, `${key}.high_freq_factor`, `must be greater than low_freq_factor (${low})`, high);
    return {
      theta,
      scaling: { type, factor, lowFreqFactor: low, highFreqFactor: high, originalMaxPositionEmbeddings: original ?? maxPos },
    };
  }
  const yarn: { -readonly [K in keyof RopeScaling]: RopeScaling[K] } = {
    type,
    factor,
    originalMaxPositionEmbeddings: original ?? maxPos,
    betaFast: dict.beta_fast || 32, // transformers uses `or`: 0 and null both mean the default
    betaSlow: dict.beta_slow || 1,
    truncate: dict.truncate ?? true,
  };
  if (dict.attention_factor != null) yarn.attentionFactor = dict.attention_factor;
  if (dict.mscale != null) yarn.mscale = dict.mscale;
  if (dict.mscale_all_dim != null) yarn.mscaleAllDim = dict.mscale_all_dim;
  return { theta, scaling: yarn };
}

function resolveSlidingWindow(raw: HfConfig, modelType: ModelType, source: string): number | null {
  if (modelType === "llama") return null;
  if (modelType === "mistral") return raw.sliding_window === undefined ? DEFAULT_SLIDING_WINDOW : raw.sliding_window;
  // qwen2 / qwen3: only with use_sliding_window, and only on layers >= max_window_layers (or per layer_types).
  if (!raw.use_sliding_window) return null;
  const window = raw.sliding_window === undefined ? DEFAULT_SLIDING_WINDOW : raw.sliding_window;
  if (window === null) return null;
  const n = raw.num_hidden_layers;
  const maxWindowLayers = raw.max_window_layers ?? DEFAULT_MAX_WINDOW_LAYERS;
  const types = raw.layer_types ?? Array.from({ length: n }, (_, i) => (i >= maxWindowLayers ? "sliding_attention" : "full_attention"));
  if (types.length !== n) fail(source, "layer_types", `expected ${n} entries (one per layer)`, types);
  const numSliding = types.filter((t) => t === "sliding_attention").length;
  if (numSliding === 0) return null;
  if (numSliding === n) return window;
  return fail(
    source,
    raw.layer_types ? "layer_types" : "max_window_layers",
    `a mix of sliding-window and full-attention layers (${numSliding} of ${n} sliding) is not supported`,
    raw.layer_types ?? maxWindowLayers,
  );
}

function eosList(v: number | number[] | null | undefined): number[] {
  if (v === undefined || v === null) return [];
  return Array.isArray(v) ? [...new Set(v)] : [v];
}

/**
 * Parses a HF config.json object (already JSON-decoded). `source` names the file in errors.
 * Throws `ValidationError` naming the field and value for unsupported architectures/model types,
 * missing required fields, wrong types, a hidden_act other than silu, and inconsistent head counts.
 *
 * @example
 * ```ts
 * const cfg = parsePretrainedConfig(JSON.parse(text), "/models/qwen/config.json");
 * cfg.headDim; // 64
 * ```
 */
export function parsePretrainedConfig(json: unknown, source = "config.json"): PretrainedConfig {
  if (json === null || typeof json !== "object" || Array.isArray(json)) {
    throw new ValidationError(`${source}: config must be a JSON object, got ${showValue(json)}`, "config", json);
  }
  const modelType = resolveModelType(json as Record<string, unknown>, source);
  let raw: HfConfig;
  try {
    raw = parseWith(HfConfigSchema, json, "config") as HfConfig;
  } catch (e) {
    if (e instanceof ValidationError) {
      const message = e.message.replace("required field is missing, got undefined", "required field is missing");
      throw new ValidationError(`${source}: ${message}`, e.field?.replace(/^config\./, ""), e.value);
    }
    throw e;
  }
  const defaults = TYPE_DEFAULTS[modelType];
  if (raw.hidden_act !== undefined && raw.hidden_act !== "silu") {
    fail(source, "hidden_act", 'only "silu" is supported', raw.hidden_act);
  }
  const heads = raw.num_attention_heads;
  const kvHeads = raw.num_key_value_heads === undefined ? defaults.kvHeads === "heads" ? heads : defaults.kvHeads : raw.num_key_value_heads ?? heads;
  if (heads % kvHeads !== 0) {
    fail(source, "num_key_value_heads", `must divide num_attention_heads (${heads})`, kvHeads);
  }
  let headDim = raw.head_dim ?? defaults.headDim;
  if (headDim === null) {
    if (raw.hidden_size % heads !== 0) {
      fail(source, "hidden_size", `must be a multiple of num_attention_heads (${heads}) when head_dim is not given`, raw.hidden_size);
    }
    headDim = raw.hidden_size / heads;
  }
  if (headDim % 2 !== 0) fail(source, "head_dim", "must be even for rotary embeddings", headDim);
  const maxPos = raw.max_position_embeddings ?? defaults.maxPos;
  const { theta, scaling } = parseRopeScaling(raw, source, maxPos);
  const attentionBias = raw.attention_bias ?? false;
  const pad = raw.pad_token_id ?? null;
  const cfg: PretrainedConfig = {
    architecture: ARCHITECTURES[modelType],
    modelType,
    vocabSize: raw.vocab_size,
    hiddenSize: raw.hidden_size,
    intermediateSize: raw.intermediate_size,
    numHiddenLayers: raw.num_hidden_layers,
    numAttentionHeads: heads,
    numKeyValueHeads: kvHeads,
    headDim,
    rmsNormEps: raw.rms_norm_eps ?? 1e-6,
    ropeTheta: theta,
    ropeScaling: scaling,
    maxPositionEmbeddings: maxPos,
    tieWordEmbeddings: raw.tie_word_embeddings ?? false,
    qkvBias: modelType === "qwen2" ? true : modelType === "mistral" ? false : attentionBias,
    oProjBias: modelType === "llama" || modelType === "qwen3" ? attentionBias : false,
    mlpBias: modelType === "llama" ? raw.mlp_bias ?? false : false,
    qkNorm: modelType === "qwen3",
    hiddenAct: "silu",
    slidingWindow: resolveSlidingWindow(raw, modelType, source),
    bosTokenId: raw.bos_token_id === undefined ? defaults.bos : raw.bos_token_id,
    eosTokenIds: eosList(raw.eos_token_id === undefined ? defaults.eos : raw.eos_token_id),
    padTokenId: pad !== null && pad < 0 ? null : pad, // some old Llama conversions write -1 for "none"
    torchDtype: raw.torch_dtype ?? raw.dtype ?? "float32",
  };
  return deepFreeze(cfg);
}

function readJson(file: string): unknown {
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch (e) {
    throw new FormatError(`${file}: cannot read (${(e as Error).message})`, file);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new FormatError(`${file}: not valid JSON (${(e as Error).message})`, file);
  }
}

const GenerationConfigSchema = z.object({
  bos_token_id: tokenId.nullish(),
  eos_token_id: z.union([tokenId, z.array(tokenId)]).nullish(),
  pad_token_id: tokenId.nullish(),
});

/**
 * Loads `<dir>/config.json`. When `<dir>/generation_config.json` exists its `eos_token_id`(s) are
 * appended to eosTokenIds, and its bos/pad ids fill in those config.json leaves null.
 *
 * @example
 * ```ts
 * const cfg = loadPretrainedConfig("/models/Llama-3.2-1B-Instruct");
 * cfg.eosTokenIds; // [128001, 128008, 128009]
 * ```
 */
export function loadPretrainedConfig(dir: string): PretrainedConfig {
  const configPath = path.join(dir, "config.json");
  const cfg = parsePretrainedConfig(readJson(configPath), configPath);
  const genPath = path.join(dir, "generation_config.json");
  if (!fs.existsSync(genPath)) return cfg;
  let gen: z.output<typeof GenerationConfigSchema>;
  try {
    gen = parseWith(GenerationConfigSchema, readJson(genPath), "generation_config");
  } catch (e) {
    if (e instanceof ValidationError) throw new ValidationError(`${genPath}: ${e.message}`, e.field, e.value);
    throw e;
  }
  const eos = [...cfg.eosTokenIds];
  for (const id of eosList(gen.eos_token_id)) if (!eos.includes(id)) eos.push(id);
  const genPad = gen.pad_token_id ?? null;
  return deepFreeze({
    ...cfg,
    eosTokenIds: eos,
    bosTokenId: cfg.bosTokenId ?? gen.bos_token_id ?? null,
    padTokenId: cfg.padTokenId ?? (genPad !== null && genPad >= 0 ? genPad : null),
  });
}
