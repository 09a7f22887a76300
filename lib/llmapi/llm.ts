import * as fs from "node:fs";
import * as path from "node:path";
import { z } from "zod";
import { type BuildConfigInput, BuildConfigSchema } from "../builder/build_config.ts";
import { buildSync } from "../builder/builder.ts";
import { Engine } from "../builder/engine.ts";
import { AutoModelForCausalLM } from "../models/llama.ts";
import { ModelRunner } from "../runtime/model_runner.ts";
import { ValidationError } from "../util/errors.ts";
import { parseWith } from "../util/validate.ts";
import { engineCacheDir } from "./engine_cache.ts";
import type { CompletionOutput, RequestOutput } from "./outputs.ts";
import { SamplingParams, type SamplingParamsInput } from "./sampling_params.ts";
import { LlmTokenizer } from "./tokenizer.ts";

/** Options of {@link LLM.create}. */
export const LlmOptionsSchema = z.strictObject({
  /** An HF checkpoint directory (built implicitly, engine cached) or an engine directory. */
  model: z.string().min(1),
  /** Tokenizer directory. @default the model directory */
  tokenizer: z.string().optional(),
  /** "auto" picks CUDA when a GPU is usable, else CPU. @default "auto" */
  backend: z.enum(["cpu", "cuda", "auto"]).default("auto"),
  /** Engine dtype. @default "auto" */
  dtype: z.enum(["auto", "float32", "float16", "bfloat16"]).default("auto"),
  /** Build options for an implicit build. */
  buildConfig: BuildConfigSchema.partial().optional(),
  /** Keep built engines on disk (LLMRT_CACHE_DIR). @default true */
  cacheEngine: z.boolean().default(true),
  /** Load no tokenizer: prompts must be token ids and no text is produced. @default false */
  skipTokenizerInit: z.boolean().default(false),
});
export type LlmOptions = z.input<typeof LlmOptionsSchema>;

/** A prompt: text, or token ids. */
export type Prompt = string | readonly number[];

const TOKENIZER_FILES = ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json", "chat_template.jinja"];

/**
 * The high-level entry point (TensorRT-LLM's `LLM`): loads or builds an engine, tokenizes,
 * generates and detokenizes.
 *
 * @example
 * ```ts
 * await using llm = await LLM.create({ model: "../shared/models/stories260k", backend: "cpu" });
 * const out = await llm.generate("Once upon a time", { maxTokens: 32, temperature: 0 });
 * console.log(out.outputs[0].text);
 * ```
 */
export class LLM {
  #nextRequestId = 0;
  #closed = false;

  private constructor(
    readonly engine: Engine,
    readonly runner: ModelRunner,
    readonly tokenizer: LlmTokenizer | null,
    readonly backend: "cpu" | "cuda",
    readonly engineDir: string | null,
  ) {}

  /** Opens `options.model` (HF checkpoint or engine directory) and prepares a session. */
  static create(options: LlmOptions): Promise<LLM> {
    return Promise.resolve().then(() => LLM.#createSync(options));
  }

  static #createSync(options: LlmOptions): LLM {
    const o = parseWith(LlmOptionsSchema, options, "LLM.create options");
    if (!fs.existsSync(path.join(o.model, "config.json"))) {
      throw new ValidationError(`LLM.create options.model: ${JSON.stringify(o.model)} is not a model or engine directory (no config.json there)`, "model", o.model);
    }
    const backend = resolveBackend(o.backend);
    let engine: Engine;
    let engineDir: string | null = null;
    if (Engine.isEngineDir(o.model)) {
      engine = Engine.fromDir(o.model);
      engineDir = o.model;
    } else {
      const bc: BuildConfigInput = { ...(o.buildConfig ?? {}), backend };
      const cacheDir = o.cacheEngine ? engineCacheDir(o.model, bc, o.dtype) : null;
      if (cacheDir && Engine.isEngineDir(cacheDir)) {
        engine = Engine.fromDir(cacheDir);
        engineDir = cacheDir;
      } else {
        const model = AutoModelForCausalLM.fromHuggingFace(o.model, { dtype: o.dtype });
        try {
          engine = buildSync(model, bc);
        } finally {
          model.close();
        }
        if (cacheDir) {
          engine.save(cacheDir);
          for (const f of TOKENIZER_FILES) {
            const src = path.join(o.model, f);
            if (fs.existsSync(src)) fs.copyFileSync(src, path.join(cacheDir, f));
          }
          engineDir = cacheDir;
        }
      }
    }
    const tokDir = o.tokenizer ?? o.model;
    const tokenizer = o.skipTokenizerInit ? null : LlmTokenizer.fromDir(tokDir);
    const runner = ModelRunner.fromEngine(engine, { backend });
    return new LLM(engine, runner, tokenizer, backend, engineDir);
  }

  /**
   * Generates for one prompt or a batch. Returns one RequestOutput for a single prompt (string or
   * id array) and an array for an array of prompts. `samplingParams` may be one for all or one per
   * prompt.
   */
  generate(prompt: Prompt, samplingParams?: SamplingParams | SamplingParamsInput): Promise<RequestOutput>;
  generate(prompts: Prompt[], samplingParams?: SamplingParams | SamplingParamsInput | (SamplingParams | SamplingParamsInput)[]): Promise<RequestOutput[]>;
  generate(
    prompts: Prompt | Prompt[],
    samplingParams?: SamplingParams | SamplingParamsInput | (SamplingParams | SamplingParamsInput)[],
  ): Promise<RequestOutput | RequestOutput[]> {
    return Promise.resolve().then(() => {
      if (this.#closed) throw new Error("LLM: used after shutdown()");
      const single = typeof prompts === "string" || (Array.isArray(prompts) && prompts.length > 0 && typeof prompts[0] === "number");
      const list = (single ? [prompts] : prompts) as Prompt[];
      if (!Array.isArray(list) || list.length === 0) throw new ValidationError("LLM.generate: prompts must be a string, an id array or a non-empty array of them", "prompts", prompts);
      if (Array.isArray(samplingParams) && samplingParams.length !== list.length) {
        throw new ValidationError(`LLM.generate: ${samplingParams.length} samplingParams for ${list.length} prompts`, "samplingParams", samplingParams.length);
      }
      const params = list.map((_, i) => SamplingParams.from(Array.isArray(samplingParams) ? samplingParams[i] : samplingParams));
      const results = list.map((p, i) => this.#runOne(p, params[i]));
      return single ? results[0] : results;
    });
  }

  #encode(prompt: Prompt, p: SamplingParams, field: string): { text: string | null; ids: number[] } {
    if (typeof prompt === "string") {
      if (!this.tokenizer) throw new ValidationError(`LLM.generate ${field}: a text prompt needs a tokenizer (skipTokenizerInit is set)`, field, prompt);
      return { text: prompt, ids: this.tokenizer.encode(prompt, { addSpecialTokens: p.addSpecialTokens }) };
    }
    if (!Array.isArray(prompt)) throw new ValidationError(`LLM.generate ${field}: expected a string or token ids`, field, prompt);
    return { text: null, ids: [...prompt] };
  }

  #runOne(prompt: Prompt, p: SamplingParams): RequestOutput {
    const requestId = this.#nextRequestId++;
    const { text, ids } = this.#encode(prompt, p, `prompt ${requestId}`);
    const eos = p.ignoreEos ? -1 : p.endId ?? this.tokenizer?.eosTokenId ?? this.engine.config.model.eosTokenIds[0] ?? -1;
    const stopIds = p.ignoreEos ? [] : [...p.stopTokenIds, ...this.engine.config.model.eosTokenIds.filter((e) => e !== eos && p.endId === undefined)];
    const out = this.runner.generate([ids], {
      maxNewTokens: p.maxTokens, endId: eos, stopTokenIds: stopIds, temperature: p.temperature, topK: p.topK,
      topP: p.topP, minP: p.minP, seed: p.seed,
    });
    const tokenIds = out.newTokenIds[0];
    const last = tokenIds.at(-1);
    const stopped = out.finishReasons[0] === "stop";
    const textIds = stopped ? tokenIds.slice(0, -1) : tokenIds;
    const completion: CompletionOutput = {
      index: 0,
      text: p.detokenize && this.tokenizer ? this.tokenizer.decode(textIds, { skipSpecialTokens: p.skipSpecialTokens, spacesBetweenSpecialTokens: p.spacesBetweenSpecialTokens }) : "",
      tokenIds,
      finishReason: out.finishReasons[0],
      stopReason: stopped ? last ?? null : null,
    };
    return { requestId, prompt: text, promptTokenIds: ids, outputs: [completion], finished: true };
  }

  /** Releases the session and engine. Idempotent. */
  shutdown(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      this.runner.dispose();
      this.engine.dispose();
    }
    return Promise.resolve();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.shutdown();
  }
}

/** "auto" → "cpu" until the CUDA session exists; an explicit "cuda" is a clear error at session creation. */
function resolveBackend(b: "cpu" | "cuda" | "auto"): "cpu" | "cuda" {
  return b === "auto" ? "cpu" : b;
}
