/** How LLM.create gets its engine: an engine directory, the cached engine of an HF checkpoint, or a fresh build. */
import { z } from "zod";
import { type BuildConfigInput } from "../builder/build_config.ts";
import { buildSync } from "../builder/builder.ts";
import { Engine } from "../builder/engine.ts";
import { AutoModelForCausalLM } from "../models/llama.ts";
import { openModel, readHfQuantizationConfig } from "../quantization/prequantized.ts";
import { QuantConfig } from "../quantization/quant_config.ts";
import { quantizeSync } from "../quantization/quantize.ts";
import { ValidationError } from "../util/errors.ts";
import { loadOrBuildCachedEngine } from "./engine_cache.ts";
import type { LoadTimer } from "./progress.ts";
import { Checkpoint } from "../models/safetensors.ts";
import type { LlmOptionsSchema } from "./llm_options.ts";

/** Tokenizer files an engine cache entry carries beside the engine. */
export const TOKENIZER_FILES = ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json", "chat_template.jinja"];

/** How {@link openOrBuild} loads: phases timed into `timer`; the cache's checking and writing (see CachedEngineRequest). */
export interface OpenOptions {
  readonly timer?: LoadTimer;
  /** @default "full" */
  readonly verify?: "full" | "on-read";
  /** @default false */
  readonly writeInBackground?: boolean;
}

/** What {@link openOrBuild} got: the engine, its directory, where it came from, and when its cache entry is written. */
export interface OpenedEngine {
  readonly engine: Engine;
  readonly engineDir: string | null;
  readonly source: "engine" | "cache" | "build" | "build+cache";
  /** Settles once a freshly built engine is in the cache (at once otherwise). */
  readonly written: Promise<void>;
}

/** Opens an engine directory, or the cached engine of an HF checkpoint, or builds (and caches) it. */
export function openOrBuild(o: z.output<typeof LlmOptionsSchema>, backend: "cpu" | "cuda", opts: OpenOptions = {}): OpenedEngine {
  const timer = opts.timer;
  if (Engine.isEngineDir(o.model)) {
    const engine = timer ? timer.time("open", () => Engine.fromDir(o.model)) : Engine.fromDir(o.model);
    if (o.tensorParallelSize !== undefined && o.tensorParallelSize !== engine.config.numRanks) {
      engine.dispose();
      throw new ValidationError(
        `LLM.create options.tensorParallelSize: ${o.tensorParallelSize}, but the engine in ${
          JSON.stringify(o.model)
        } has ${engine.config.numRanks} rank(s); rebuild it from its checkpoint`,
        "tensorParallelSize",
        o.tensorParallelSize,
      );
    }
    if (o.gatherContextLogits && !engine.config.build.gatherContextLogits) {
      engine.dispose();
      throw new ValidationError(
        `LLM.create options.gatherContextLogits: the engine in ${
          JSON.stringify(o.model)
        } was built without gatherContextLogits; rebuild it with BuildConfig.gatherContextLogits: true`,
        "gatherContextLogits",
        true,
      );
    }
    if (o.quantConfig) {
      engine.dispose();
      throw new ValidationError(
        `LLM.create options.quantConfig: ${JSON.stringify(o.model)} is a built engine; quantize its HF checkpoint instead`,
        "quantConfig",
        o.quantConfig,
      );
    }
    return { engine, engineDir: o.model, source: "engine", written: Promise.resolve() };
  }
  const bc: BuildConfigInput = { ...(o.buildConfig ?? {}), backend };
  if (o.tensorParallelSize !== undefined) bc.tensorParallelSize = o.tensorParallelSize;
  // Speculative decoding verifies several tokens per sequence: one logits row each.
  if (o.gatherContextLogits || o.speculativeConfig) bc.gatherContextLogits = true;
  const qc = o.quantConfig ? QuantConfig.from(o.quantConfig) : null;
  const quant = qc?.isQuantized || qc?.kvCacheQuantAlgo ? qc : null;
  const buildIt = (): Engine => {
    const t0 = performance.now();
    const opened = readHfQuantizationConfig(o.model)
      ? openModel(o.model, { dtype: o.dtype })
      : AutoModelForCausalLM.fromHuggingFace(o.model, { dtype: o.dtype });
    let model = opened;
    try {
      if (quant) model = quantizeSync(opened, quant);
    } catch (e) {
      opened.close();
      throw e;
    }
    try {
      return buildSync(model, bc);
    } finally {
      // "read": the checkpoint's tensor reads; "build": the rest (quantize, convert, fuse, plan).
      const read = opened.weights instanceof Checkpoint ? opened.weights.readStats : null;
      model.close();
      if (read) timer?.add("read", read.ms, read.bytes);
      timer?.add(quant ? "quantize+build" : "build", performance.now() - t0 - (read?.ms ?? 0));
    }
  };
  if (!o.cacheEngine) return { engine: buildIt(), engineDir: null, source: "build", written: Promise.resolve() };
  // Content-keyed, published atomically (safe with many processes), a broken cached engine rebuilt.
  return loadOrBuildCachedEngine({
    modelDir: o.model,
    buildConfig: bc,
    dtype: quant ? `${o.dtype} quant ${JSON.stringify(quant.toDict())}` : o.dtype,
    build: buildIt,
    extraFiles: TOKENIZER_FILES,
    timer,
    verify: opts.verify,
    writeInBackground: opts.writeInBackground,
  });
}
