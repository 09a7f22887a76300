/**
 * A model's sampling defaults from its `generation_config.json` (vLLM's `--generation-config auto`):
 * read and validated once at `LLM.create`, then filling the sampling fields a request leaves unset.
 * The end ids of the same file are read elsewhere (lib/models/config.ts, the tokenizer), always.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import process from "node:process";
import { z } from "zod";
import type { SamplingParams, SamplingParamsInput } from "../executor/sampling_params.ts";
import { FormatError, showValue } from "../util/errors.ts";

/**
 * Whether a model's generation_config.json sets the default sampling parameters: "auto" applies them
 * (vLLM's default), "none" ignores them (TensorRT-LLM's LLM API; vLLM's `--generation-config vllm`).
 */
export const GenerationConfigModeSchema = z.enum(["auto", "none"]);
export type GenerationConfigMode = z.output<typeof GenerationConfigModeSchema>;

/** The sampling fields of generation_config.json (transformers' GenerationConfig names); other fields are ignored, as transformers does. */
const GenerationSamplingSchema = z.looseObject({
  /** false: greedy (transformers' default when absent; absent here applies the values given, as vLLM does). */
  do_sample: z.boolean().nullish(),
  temperature: z.number().nonnegative().max(3.4028234663852886e38).nullish(),
  top_p: z.number().gt(0).lte(1).nullish(),
  top_k: z.number().int().nonnegative().nullish(),
  min_p: z.number().min(0).lte(1).nullish(),
  repetition_penalty: z.number().gt(0).nullish(),
  max_new_tokens: z.number().int().positive().nullish(),
  /** Prompt + new tokens: validated, not applied (vLLM ignores it too; the engine's maxSeqLen bounds a sequence). */
  max_length: z.number().int().positive().nullish(),
});

/** The defaults a generation_config.json sets, in SamplingParams' names (only the fields it gives). */
export type GenerationDefaults = Readonly<Pick<SamplingParamsInput, "temperature" | "topP" | "topK" | "minP" | "repetitionPenalty" | "maxTokens">>;

/**
 * The sampling defaults of a parsed generation_config.json. `do_sample: false` means greedy
 * (temperature 0; top_p, top_k, min_p and temperature of the file unused, as in transformers). A bad
 * value is a FormatError naming the file, the field and the value; `null` counts as absent.
 */
export function parseGenerationDefaults(raw: unknown, file: string): GenerationDefaults {
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) throw new FormatError(`${file}: expected a JSON object, got ${showValue(raw)}`, file);
  const r = GenerationSamplingSchema.safeParse(raw);
  if (!r.success) {
    const issue = r.error.issues[0];
    const field = issue.path.map(String).join(".");
    const value = (raw as Record<string, unknown>)[field];
    throw new FormatError(`${file}: ${field}: ${issue.message}, got ${showValue(value)}`, file, field, value);
  }
  const g = r.data;
  const d: Record<string, number> = {};
  const put = (k: keyof GenerationDefaults, v: number | null | undefined): void => {
    if (v != null) d[k] = v;
  };
  if (g.do_sample === false) d.temperature = 0;
  else {
    put("temperature", g.temperature);
    put("topP", g.top_p);
    put("topK", g.top_k);
    put("minP", g.min_p);
  }
  put("repetitionPenalty", g.repetition_penalty);
  put("maxTokens", g.max_new_tokens);
  return Object.freeze(d);
}

/** The sampling defaults of `<dir>/generation_config.json`; none (`{}`) when there is no such file. */
export function readGenerationDefaults(dir: string): GenerationDefaults {
  const file = path.join(dir, "generation_config.json");
  if (!fs.existsSync(file)) return Object.freeze({});
  let raw: unknown;
  try {
    raw = JSON.parse(fs.readFileSync(file, "utf8"));
  } catch (e) {
    throw new FormatError(`${file}: not valid JSON (${(e as Error).message})`, file);
  }
  return parseGenerationDefaults(raw, file);
}

/** `temperature=0.6, topP=0.9`. */
export function formatGenerationDefaults(d: GenerationDefaults): string {
  return Object.entries(d).map(([k, v]) => `${k}=${v}`).join(", ");
}

/**
 * LLM.create's defaults for `model` in `mode`, printing one line on stderr naming them when there
 * are any (as vLLM logs them). With "none" the file's sampling fields are not read; when the mode was
 * left at its default and a terminal is attached, a line says what "auto" would apply.
 */
export function loadGenerationDefaults(model: string, mode: GenerationConfigMode, modeGiven: boolean): GenerationDefaults {
  const file = path.join(model, "generation_config.json");
  if (mode === "none") {
    if (!modeGiven && process.stderr.isTTY) {
      let d: GenerationDefaults = {};
      try {
        d = readGenerationDefaults(model);
      } catch { /* only a hint: a broken file is reported where it is applied */ }
      if (Object.keys(d).length > 0) {
        process.stderr.write(`llmrt: ${file} recommends ${formatGenerationDefaults(d)}; not applied (LLM.create generationConfig: "auto" applies them)\n`);
      }
    }
    return Object.freeze({});
  }
  const d = readGenerationDefaults(model);
  if (Object.keys(d).length > 0) {
    process.stderr.write(
      `llmrt: default sampling parameters from ${file}: ${
        formatGenerationDefaults(d)
      } (a request's own values win; --generation-config none or generationConfig: "none" ignores them)\n`,
    );
  }
  return d;
}

/**
 * `p` with the model's defaults filling the fields its request did not set (request > generation_config
 * > library defaults). Defaults that would make a valid request invalid are not applied: the sampling
 * ones (temperature, topP, topK, minP) under beam search, which uses none of them; a greedy default
 * (temperature 0, topK 1) to a request for several sampled sequences; a maxTokens below its minTokens.
 */
export function applyGenerationDefaults(p: SamplingParams, d: GenerationDefaults): SamplingParams {
  if (Object.keys(d).length === 0) return p;
  const fill: Record<string, number | undefined> = { ...d };
  if (p.useBeamSearch) {
    fill.temperature =
      fill.topP =
      fill.topK =
      fill.minP =
        undefined;
  } else if (p.bestOf > 1) {
    if (fill.temperature === 0) fill.temperature = undefined;
    if (fill.topK === 1) fill.topK = undefined;
  }
  if (fill.maxTokens !== undefined && fill.maxTokens < p.minTokens) fill.maxTokens = undefined;
  return p.withDefaults(fill);
}
