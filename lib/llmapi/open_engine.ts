/** How LLM.create gets its engine: an engine directory, the cached engine of an HF checkpoint, or a fresh build. */
import { z } from "zod";
import { type BuildConfigInput } from "../builder/build_config.ts";
import { buildSync, rawReadGroups } from "../builder/builder.ts";
import { Engine } from "../builder/engine.ts";
import { AutoModelForCausalLM, type LlamaForCausalLM } from "../models/llama.ts";
import { openModel, readHfQuantizationConfig } from "../quantization/prequantized.ts";
import { QuantConfig } from "../quantization/quant_config.ts";
import { quantizeSync } from "../quantization/quantize.ts";
import { ValidationError } from "../util/errors.ts";
import { loadOrBuildCachedEngine, lookupCachedEngine, storeBuiltEngine } from "./engine_cache.ts";
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

/** The build of an HF checkpoint as LLM.create asks for it: options resolved, opening and building split (a loader may read ahead in between). */
function planBuild(o: z.output<typeof LlmOptionsSchema>, backend: "cpu" | "cuda", opts: OpenOptions) {
  const timer = opts.timer;
  checkBuildOptions(o, backend);
  const bc: BuildConfigInput = { ...(o.buildConfig ?? {}), backend };
  if (o.tensorParallelSize !== undefined) bc.tensorParallelSize = o.tensorParallelSize;
  // Speculative decoding verifies several tokens per sequence: one logits row each.
  if (o.gatherContextLogits || o.speculativeConfig) bc.gatherContextLogits = true;
  const qc = o.quantConfig ? QuantConfig.from(o.quantConfig) : null;
  const quant = qc?.isQuantized || qc?.kvCacheQuantAlgo ? qc : null;
  let t0 = 0;
  const open = (): LlamaForCausalLM => {
    t0 = performance.now();
    return readHfQuantizationConfig(o.model) ? openModel(o.model, { dtype: o.dtype }) : AutoModelForCausalLM.fromHuggingFace(o.model, { dtype: o.dtype });
  };
  const build = (opened: LlamaForCausalLM): Engine => {
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
  const cacheRequest = {
    modelDir: o.model,
    buildConfig: bc,
    dtype: quant ? `${o.dtype} quant ${JSON.stringify(quant.toDict())}` : o.dtype,
    extraFiles: TOKENIZER_FILES,
    timer,
    verify: opts.verify,
    writeInBackground: opts.writeInBackground,
  };
  return { bc, quant, open, build, cacheRequest };
}

/** Opens an engine directory, or the cached engine of an HF checkpoint, or builds (and caches) it. */
export function openOrBuild(o: z.output<typeof LlmOptionsSchema>, backend: "cpu" | "cuda", opts: OpenOptions = {}): OpenedEngine {
  if (Engine.isEngineDir(o.model)) return openEngineDir(o, opts.timer);
  const p = planBuild(o, backend, opts);
  const buildIt = (): Engine => p.build(p.open());
  if (!o.cacheEngine) return { engine: buildIt(), engineDir: null, source: "build", written: Promise.resolve() };
  // Content-keyed, published atomically (safe with many processes), a broken cached engine rebuilt.
  return loadOrBuildCachedEngine({ ...p.cacheRequest, build: buildIt });
}

/**
 * {@link openOrBuild}, with a build's checkpoint reads done ahead in parallel on the runtime's I/O
 * threads (`Checkpoint.prefetchConcat` of the groups the build reads raw; not for quantized builds).
 */
export async function openOrBuildAsync(o: z.output<typeof LlmOptionsSchema>, backend: "cpu" | "cuda", opts: OpenOptions = {}): Promise<OpenedEngine> {
  if (Engine.isEngineDir(o.model)) return openEngineDir(o, opts.timer);
  const p = planBuild(o, backend, opts);
  const buildIt = async (): Promise<Engine> => {
    const model = p.open();
    try {
      if (!p.quant && model.weights instanceof Checkpoint) await model.weights.prefetchConcat(rawReadGroups(model, p.bc));
    } catch (e) {
      model.close();
      throw e;
    }
    return p.build(model);
  };
  if (!o.cacheEngine) return { engine: await buildIt(), engineDir: null, source: "build", written: Promise.resolve() };
  const { dir, engine } = lookupCachedEngine(p.cacheRequest);
  if (engine) return { engine, engineDir: dir, source: "cache", written: Promise.resolve() };
  return storeBuiltEngine(p.cacheRequest, dir, await buildIt());
}

/** `o` with only the buildConfig fields the caller gave (`raw`), not the schema's defaults: those are checked against the other options and an engine's build. */
export function givenBuildOptions<O extends z.output<typeof LlmOptionsSchema>>(o: O, raw: unknown): O {
  if (!o.buildConfig || raw === null || typeof raw !== "object") return o;
  const given = Object.entries(o.buildConfig).filter(([k]) => (raw as Record<string, unknown>)[k] !== undefined);
  return { ...o, buildConfig: Object.fromEntries(given) };
}

/** LLM.create options given twice (at the top level and in buildConfig) must agree: neither is dropped silently. */
function checkBuildOptions(o: z.output<typeof LlmOptionsSchema>, backend: "cpu" | "cuda"): void {
  const bc = o.buildConfig ?? {};
  const clash = (field: string, value: unknown, top: string, topValue: unknown): never => {
    throw new ValidationError(
      `LLM.create options.buildConfig.${field}: ${JSON.stringify(value)} contradicts options.${top} ${JSON.stringify(topValue)}; give it once`,
      `buildConfig.${field}`,
      value,
    );
  };
  if (bc.backend !== undefined && bc.backend !== backend) clash("backend", bc.backend, "backend", o.backend === "auto" ? `auto (${backend})` : o.backend);
  if (bc.dtype !== undefined && bc.dtype !== "auto" && o.dtype !== "auto" && bc.dtype !== o.dtype) clash("dtype", bc.dtype, "dtype", o.dtype);
  if (bc.tensorParallelSize !== undefined && o.tensorParallelSize !== undefined && bc.tensorParallelSize !== o.tensorParallelSize) {
    clash("tensorParallelSize", bc.tensorParallelSize, "tensorParallelSize", o.tensorParallelSize);
  }
  if (bc.gatherContextLogits === false && o.gatherContextLogits) clash("gatherContextLogits", false, "gatherContextLogits", true);
}

/** Opens the engine directory `o.model`, checking the options that cannot apply to a built engine. */
function openEngineDir(o: z.output<typeof LlmOptionsSchema>, timer: LoadTimer | undefined): OpenedEngine {
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
  // Build options must match what the engine was built with (they cannot change it).
  const built: Record<string, unknown> = { ...engine.config.build, dtype: engine.config.dtype };
  const given: [string, unknown][] = Object.entries(o.buildConfig ?? {}).filter(([k, v]) => v !== undefined && !(k === "dtype" && v === "auto"));
  if (o.dtype !== "auto") given.push(["dtype", o.dtype]);
  const differs = given.find(([k, v]) => built[k] !== v);
  if (differs) {
    engine.dispose();
    const [k, v] = differs;
    const field = k === "dtype" && o.dtype !== "auto" ? "dtype" : `buildConfig.${k}`;
    throw new ValidationError(
      `LLM.create options.${field}: ${JSON.stringify(v)}, but the engine in ${JSON.stringify(o.model)} was built with ${
        JSON.stringify(built[k])
      }; rebuild it from its checkpoint`,
      field,
      v,
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
