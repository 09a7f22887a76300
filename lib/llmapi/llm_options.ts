/** The options of the LLM API: LLM.create, generate and generateAsync (zod schemas and their types). */
import { z } from "zod";
import { BuildConfigSchema } from "../builder/build_config.ts";
import { KvCacheConfigSchema } from "../executor/config.ts";
import { QuantConfig, QuantConfigSchema } from "../quantization/quant_config.ts";
import { SpeculativeConfigSchema } from "../executor/speculative/config.ts";
import type { LoraRequest } from "../models/lora.ts";
import { SamplingParams, type SamplingParamsInput } from "../executor/sampling_params.ts";
import { LlmrtError, showValue, ValidationError } from "../util/errors.ts";
import { GenerationConfigModeSchema } from "./generation_config.ts";

/** Options of {@link LLM.create}. */
export const LlmOptionsSchema = z.strictObject({
  /** An HF checkpoint directory (built implicitly, engine cached) or an engine directory. */
  model: z.string().min(1),
  /**
   * Quantize the checkpoint at build time (a QuantConfig or a plain object; part of the engine cache
   * key). Pre-quantized AWQ/GPTQ checkpoints load without it. @default none
   */
  quantConfig: z.union([z.custom<QuantConfig>((v) => v instanceof QuantConfig), QuantConfigSchema]).optional(),
  /** Tokenizer directory. @default the model directory */
  tokenizer: z.string().optional(),
  /** "auto" picks CUDA when a GPU is usable, else CPU. @default "auto" */
  backend: z.enum(["cpu", "cuda", "auto"]).default("auto"),
  /** Engine dtype. @default "auto" */
  dtype: z.enum(["auto", "float32", "float16", "bfloat16"]).default("auto"),
  /** Build options for an implicit build. */
  buildConfig: BuildConfigSchema.partial().optional(),
  /**
   * Build the engine with `BuildConfig.gatherContextLogits` (logits capacity for every packed
   * token), which requests asking for `promptLogprobs` or `returnContextLogits` need. An engine
   * directory given as `model` must have been built with it. @default false
   */
  gatherContextLogits: z.boolean().default(false),
  /** Keep built engines on disk (LLMRT_CACHE_DIR). @default true */
  cacheEngine: z.boolean().default(true),
  /**
   * Keep the host copy of a built engine's weights (`llm.engine`'s reads) once the CUDA session has
   * uploaded them (or the proxy's worker loaded them): without it they are released, or read from the
   * engine cache entry from then on. For code that opens more sessions on `llm.engine`. @default false
   */
  keepHostWeights: z.boolean().default(false),
  /**
   * Whether the model's generation_config.json sets the default sampling parameters (temperature, topP,
   * topK, minP, repetitionPenalty, and maxTokens from max_new_tokens; `do_sample: false` means greedy):
   * "auto" fills the fields a request leaves unset with them (vLLM's default; a request's own value
   * always wins; one line on stderr names them), "none" ignores them. The library default is "none",
   * as in TensorRT-LLM's LLM API that this one follows: SamplingParams' documented defaults hold for
   * every model, and outputs do not change when a checkpoint gains or edits the file. `llmrt serve`,
   * `generate` and `chat` default to "auto", as vLLM's server does (`--generation-config none`).
   * End ids of the file apply either way. @default "none"
   */
  generationConfig: GenerationConfigModeSchema.default("none"),
  /** Load no tokenizer: prompts must be token ids and no text is produced. @default false */
  skipTokenizerInit: z.boolean().default(false),
  /** KV cache size and prefix reuse. @default {} */
  kvCacheConfig: KvCacheConfigSchema.prefault({}),
  /** Most sequences in flight. @default the engine's maxBatchSize */
  maxBatchSize: z.number().int().positive().optional(),
  /** Most tokens per step. @default the engine's maxNumTokens */
  maxNumTokens: z.number().int().positive().optional(),
  /** Split long prompts over several steps. @default true */
  enableChunkedPrefill: z.boolean().default(true),
  /** Steps new requests may wait while others run, so that prompts arriving together prefill in fewer steps (ExecutorConfig.admissionDelaySteps). @default 0 */
  admissionDelaySteps: z.number().int().min(0).max(1024).default(0),
  /**
   * Steps in a row decoding sequences may sit out so that a large batch of waiting prompts (at least half the step's
   * token budget) prefills alone (ExecutorConfig.decodeDeferSteps). One step by default: offline batches gain (H200
   * session 11, llama-3.1-8b 512 × (128,128): bf16 +5%, FP8 + FP8 KV +7.5% in session 10) and a running stream waits at
   * most one step when such a batch arrives; 0 keeps decode tokens in every step. @default 1
   */
  decodeDeferSteps: z.number().int().min(0).max(1024).default(1),
  /** Guided decoding: when matchers accept sampled tokens (ExecutorConfig.guidedAccept; same outputs). @default "deferred" */
  guidedAccept: z.enum(["deferred", "immediate"]).default("deferred"),
  /** Overlapped decode steps: the host's work on one step runs while the device computes the next (ExecutorConfig.overlapSteps). @default true on a single GPU */
  overlapSteps: z.boolean().optional(),
  /** "inprocess": steps run on this thread between its tasks; "proxy": in a Web Worker. @default "inprocess" */
  executorMode: z.enum(["inprocess", "proxy"]).default("inprocess"),
  /** Ranks to split the model across (tensor parallelism; one worker per rank). @default the engine's, 1 for a build */
  tensorParallelSize: z.number().int().positive().optional(),
  /**
   * Run rank 0 here and wait at this `host:port` for ranks 1 … N-1, each a process started with
   * `llmrt tp-worker --tp-master HOST:PORT --rank R --model DIR` (or `runTpWorker`), on this or
   * another host. @default absent: every rank is a worker of this process
   */
  tpMaster: z.string().min(1).optional(),
  /** How long the ranks of `tpMaster` may take to connect (ms). @default 300000 */
  tpRendezvousTimeoutMs: z.number().int().positive().optional(),
  /**
   * Longest text prompt accepted, in UTF-8 bytes, checked before tokenizing (a longer one is a
   * ResourceError at once instead of seconds of tokenizing a prompt that cannot fit).
   * @default max(64 KiB, 8 × maxInputLen)
   */
  maxPromptBytes: z.number().int().positive().optional(),
  /** Speculative decoding, TensorRT-LLM's names: NGram (prompt lookup) or DraftTarget (a draft model); lib/executor/speculative/config.ts. */
  speculativeConfig: SpeculativeConfigSchema.optional(),
  /** LoRA adapters per request (`loraRequest` option of generate / generateAsync; one CPU or GPU rank, not with tensorParallelSize > 1): at most `maxLoras` resident (LRU), ranks ≤ `maxLoraRank`. @default false, 4, 64 */
  enableLora: z.boolean().default(false),
  maxLoras: z.number().int().positive().max(64).default(4),
  maxLoraRank: z.number().int().positive().max(1024).default(64),
});
export type LlmOptions = z.input<typeof LlmOptionsSchema>;

/** TensorRT-LLM's `TextPrompt`: a text prompt as an object. */
export interface TextPrompt {
  readonly prompt: string;
}

/** TensorRT-LLM's `TokensPrompt`: a prompt of token ids as an object. */
export interface TokensPrompt {
  readonly promptTokenIds: readonly number[];
}

/** A prompt: text or token ids, bare or as TensorRT-LLM's `TextPrompt` / `TokensPrompt` objects. */
export type Prompt = string | readonly number[] | TextPrompt | TokensPrompt;

/** Whether `p` is one prompt in object form (not an array of prompts). */
export function isPromptObject(p: unknown): p is TextPrompt | TokensPrompt {
  return p !== null && typeof p === "object" && !Array.isArray(p) && !ArrayBuffer.isView(p);
}

/** `generate`'s first argument as a list of prompts, and whether it was one prompt (a ValidationError when neither). */
export function promptList(prompts: unknown): { single: boolean; list: Prompt[] } {
  const single = typeof prompts === "string" || isPromptObject(prompts) ||
    (Array.isArray(prompts) && prompts.length > 0 && typeof prompts[0] === "number");
  const list = (single ? [prompts] : prompts) as Prompt[];
  if (!Array.isArray(list) || list.length === 0) {
    throw new ValidationError(
      `LLM.generate: prompts must be a prompt (text, ids, { prompt }, { promptTokenIds }) or a non-empty array of them, got ${showValue(prompts)}`,
      "prompts",
      prompts,
    );
  }
  return { single, list };
}

/**
 * A prompt as text or ids: `{ prompt }` / `{ promptTokenIds }` unwrapped; any other object (no such key, both,
 * or another key) is a ValidationError naming `field` and the keys.
 */
export function promptInput(p: Prompt, field: string): string | readonly number[] {
  if (!isPromptObject(p)) return p;
  const keys = Object.keys(p);
  const o = p as unknown as Record<string, unknown>;
  if (keys.length === 1 && keys[0] === "prompt" && typeof o.prompt === "string") return o.prompt;
  if (keys.length === 1 && keys[0] === "promptTokenIds" && Array.isArray(o.promptTokenIds)) return o.promptTokenIds as readonly number[];
  throw new ValidationError(
    `${field}: expected a string, token ids, { prompt: string } or { promptTokenIds: number[] }, got an object with ${
      keys.length === 0 ? "no keys" : `keys ${keys.join(", ")}`
    } (${showValue(p)})`,
    field,
    p,
  );
}

/** Options of {@link LLM.generate} (checked: a bad field is a ValidationError naming it). */
const LoraRequestSchema = z.strictObject({ name: z.string().min(1), path: z.string().min(1) });

export const GenerateOptionsSchema = z.strictObject({
  useTqdm: z.boolean().optional(),
  priority: z.number().finite().optional(),
  loraRequest: LoraRequestSchema.optional(),
});

/** Options of {@link LLM.generateAsync}, checked before anything is submitted. */
export const GenerateAsyncOptionsSchema = z.strictObject({
  streaming: z.boolean().optional(),
  signal: z.custom<AbortSignal>((v) => v instanceof AbortSignal, { message: "expected an AbortSignal" }).optional(),
  priority: z.number().finite().optional(),
  loraRequest: LoraRequestSchema.optional(),
});

/** Options of {@link LLM.generate}. */
export interface GenerateOptions {
  /** Progress bar on stderr (only drawn on a TTY). @default true */
  readonly useTqdm?: boolean;
  /** Scheduling priority of every request (higher first). @default 0 */
  readonly priority?: number;
  /** Run every prompt with this LoRA adapter (PEFT directory; `enableLora` must be set). */
  readonly loraRequest?: LoraRequest;
}

/** Options of {@link LLM.generateAsync}. */
export interface GenerateAsyncOptions {
  /** Emit an output per step (with textDiff / tokenIdsDiff). @default false */
  readonly streaming?: boolean;
  /** Aborts the request: it ends with finishReason "abort". */
  readonly signal?: AbortSignal;
  /** Higher is scheduled first; equal priorities are first come, first served. @default 0 */
  readonly priority?: number;
  /** Run the request with this LoRA adapter (PEFT directory; `enableLora` must be set). */
  readonly loraRequest?: LoraRequest;
}

/** `SamplingParams.from(list[i])`; a bad one is a ValidationError naming its index (`samplingParams[i]`). */
export function paramsAt(list: readonly (SamplingParams | SamplingParamsInput)[], i: number): SamplingParams {
  try {
    return SamplingParams.from(list[i]);
  } catch (e) {
    if (!(e instanceof LlmrtError && e.kind === "validation")) throw e;
    throw new ValidationError(
      `LLM.generate samplingParams[${i}]: ${e.message}`,
      `samplingParams[${i}]${e.field ? `.${e.field.replace(/^SamplingParams\./, "")}` : ""}`,
      e.value,
    );
  }
}
