/** Options every model-running command shares (--model, --tokenizer, --backend, sampling), and opening the model. */
import * as fs from "node:fs";
import { type GenerationDefaults, LLM, type SamplingParamsInput, ValidationError } from "../../mod.ts";
import { type OptionSpec, UsageError } from "./args.ts";

/** The model that ships with llmrt. */
export const EMBEDDED_MODEL: string = new URL("../../models/kjv-llama/", import.meta.url).pathname;

/** The files of a tokenizer directory that an engine directory carries along. */
export const TOKENIZER_FILES: readonly string[] = [
  "tokenizer.json",
  "tokenizer_config.json",
  "special_tokens_map.json",
  "generation_config.json",
  "chat_template.jinja",
];

export const MODEL_OPTIONS: readonly OptionSpec[] = [
  { name: "model", type: "string", valueName: "DIR", help: "HF checkpoint or engine directory (default: the embedded models/kjv-llama)" },
  { name: "tokenizer", type: "string", valueName: "DIR", help: "tokenizer directory (default: the model directory)" },
  {
    name: "backend",
    type: "string",
    valueName: "NAME",
    choices: ["auto", "cpu", "cuda"],
    default: "auto",
    help: "where to run; auto uses a GPU when one is usable",
  },
];

/** --generation-config: the defaults of a model's generation_config.json (LLM.create's generationConfig; vLLM's server default). */
export const GENERATION_CONFIG_OPTION: OptionSpec = {
  name: "generation-config",
  type: "string",
  valueName: "MODE",
  choices: ["auto", "none"],
  default: "auto",
  help: "auto: the model's generation_config.json sets the default temperature, top_p, top_k, min_p, repetition_penalty and " +
    "max_new_tokens of requests (options and request fields given win); none: ignore them",
};

export const SAMPLING_OPTIONS: readonly OptionSpec[] = [
  { name: "max-tokens", type: "int", min: 1, default: 128, help: "most tokens to generate" },
  { name: "temperature", type: "number", min: 0, default: 0.8, valueName: "T", help: "sampling temperature; 0 is greedy" },
  { name: "top-k", type: "int", min: 0, default: 0, valueName: "K", help: "sample from the K most likely tokens; 0 is off" },
  { name: "top-p", type: "number", gt: 0, max: 1, default: 0.95, valueName: "P", help: "nucleus sampling mass" },
  { name: "min-p", type: "number", min: 0, max: 1, default: 0, valueName: "P", help: "drop tokens below P x the top probability" },
  { name: "repetition-penalty", type: "number", gt: 0, default: 1, valueName: "R", help: "HF repetition penalty; 1 is off" },
  { name: "seed", type: "int", min: 0, default: 0, valueName: "S", help: "sampling seed (reproducible)" },
  { name: "stop", type: "string", valueName: "TEXT", multiple: true, help: "stop at this text (repeatable)" },
];

/** The model directory to use: --model, or the embedded one. */
export function modelDir(values: Readonly<Record<string, unknown>>): string {
  const m = values.model as string | undefined;
  if (m !== undefined) return m;
  if (!fs.existsSync(`${EMBEDDED_MODEL}config.json`)) throw new ValidationError(`no --model given and the embedded model is missing at ${EMBEDDED_MODEL}`);
  return EMBEDDED_MODEL;
}

/** Opens the model of --model/--tokenizer/--backend (an engine directory needs its tokenizer files or --tokenizer). */
export async function openModel(
  values: Readonly<Record<string, unknown>>,
  extra: {
    maxBatchSize?: number;
    skipTokenizerInit?: boolean;
    executorMode?: "inprocess" | "proxy";
    tensorParallelSize?: number;
    tpMaster?: string;
    kvCacheFreeGpuMemoryFraction?: number;
    /** LLM.create's admissionDelaySteps. */
    admissionDelaySteps?: number;
    enableLora?: boolean;
    /** Longest sequence the engine is built for (default: the model's max_position_embeddings). */
    maxSeqLen?: number;
    /** Most tokens one step runs (the engine's activation budget; default: the engine's). */
    maxNumTokens?: number;
  } = {},
): Promise<{ llm: LLM; model: string }> {
  const model = modelDir(values);
  const tokenizer = values.tokenizer as string | undefined;
  if (!extra.skipTokenizerInit && tokenizer === undefined && fs.existsSync(`${model}/rank0.engine`) && !fs.existsSync(`${model}/tokenizer.json`)) {
    throw new ValidationError(`the engine directory ${JSON.stringify(model)} has no tokenizer.json; pass --tokenizer DIR (the checkpoint it was built from)`);
  }
  // An engine directory is built already: --max-seq-len cannot change it; --max-batch-size / --max-num-tokens limit the executor only.
  const isEngine = fs.existsSync(`${model}/rank0.engine`);
  if (isEngine && extra.maxSeqLen !== undefined) {
    throw new UsageError(`--max-seq-len: ${JSON.stringify(model)} is a built engine (its maxSeqLen is fixed); rebuild it with llmrt build --max-seq-len`);
  }
  const llm = await LLM.create({
    model,
    tokenizer,
    backend: values.backend as "auto" | "cpu" | "cuda",
    skipTokenizerInit: extra.skipTokenizerInit ?? false,
    generationConfig: (values["generation-config"] as "auto" | "none" | undefined) ?? "none",
    executorMode: extra.executorMode ?? "inprocess",
    ...(extra.tensorParallelSize !== undefined ? { tensorParallelSize: extra.tensorParallelSize } : {}),
    ...(extra.tpMaster !== undefined ? { tpMaster: extra.tpMaster } : {}),
    ...(extra.kvCacheFreeGpuMemoryFraction !== undefined ? { kvCacheConfig: { freeGpuMemoryFraction: extra.kvCacheFreeGpuMemoryFraction } } : {}),
    ...(extra.enableLora ? { enableLora: true } : {}),
    ...(extra.admissionDelaySteps ? { admissionDelaySteps: extra.admissionDelaySteps } : {}),
    ...(extra.maxBatchSize !== undefined ? { maxBatchSize: extra.maxBatchSize } : {}),
    ...(extra.maxNumTokens !== undefined ? { maxNumTokens: extra.maxNumTokens } : {}),
    ...(!isEngine && (extra.maxBatchSize !== undefined || extra.maxSeqLen !== undefined || extra.maxNumTokens !== undefined)
      ? {
        buildConfig: {
          ...(extra.maxBatchSize !== undefined ? { maxBatchSize: extra.maxBatchSize } : {}),
          ...(extra.maxSeqLen !== undefined ? { maxSeqLen: extra.maxSeqLen } : {}),
          ...(extra.maxNumTokens !== undefined ? { maxNumTokens: extra.maxNumTokens } : {}),
        },
      }
      : {}),
  });
  return { llm, model };
}

/**
 * The SamplingParams input of the sampling options: an option given on the command line, else the
 * model's generation_config.json default (`defaults`, --generation-config auto), else the option's default.
 */
export function samplingFrom(
  values: Readonly<Record<string, unknown>>,
  given: ReadonlySet<string> = new Set(),
  defaults: GenerationDefaults = {},
): SamplingParamsInput {
  const pick = (flag: string, field: keyof GenerationDefaults): number => given.has(flag) ? values[flag] as number : defaults[field] ?? values[flag] as number;
  return {
    maxTokens: pick("max-tokens", "maxTokens"),
    temperature: pick("temperature", "temperature"),
    topK: pick("top-k", "topK"),
    topP: pick("top-p", "topP"),
    minP: pick("min-p", "minP"),
    repetitionPenalty: pick("repetition-penalty", "repetitionPenalty"),
    seed: values.seed as number,
    stop: (values.stop as string[] | undefined) ?? [],
  };
}
