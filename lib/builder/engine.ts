import * as fs from "node:fs";
import * as path from "node:path";
import { z } from "zod";
import type { PretrainedConfig } from "../models/config.ts";
import { FormatError } from "../util/errors.ts";
import { bf16ToF32, f16ToF32 } from "../util/dtype.ts";
import { parseWith } from "../util/validate.ts";
import { BuildConfigSchema, type BuildConfig, EngineDTypeSchema, type EngineDType } from "./build_config.ts";
import { ENGINE_FORMAT_VERSION, EngineFile, type TensorEntry, writeEngineFile } from "./engine_format.ts";
import type { EnginePlan } from "../ir/plan.ts";

/** `config.json` of an engine directory. */
export const EngineConfigSchema = z.strictObject({
  llmrt: z.strictObject({ formatVersion: z.number().int() }),
  /** The model's parsed config (camelCase PretrainedConfig). */
  model: z.looseObject({
    architecture: z.string(),
    vocabSize: z.number().int().positive(),
    hiddenSize: z.number().int().positive(),
    numHiddenLayers: z.number().int().positive(),
    eosTokenIds: z.array(z.number().int()),
  }),
  build: BuildConfigSchema,
  quant: z.null(),
  dtype: EngineDTypeSchema,
  numRanks: z.literal(1),
});
export type EngineConfig = Readonly<{
  llmrt: { formatVersion: number };
  model: PretrainedConfig;
  build: BuildConfig;
  quant: null;
  dtype: EngineDType;
  numRanks: 1;
}>;

/** A tensor held by an engine: its table entry (without a file offset) and, when built in memory, its bytes. */
export type EngineTensor = Omit<TensorEntry, "offset">;

/**
 * A built engine: config, static op plan and converted weights. Made by `build()` (weights in
 * memory) or `Engine.fromDir()` (weights read lazily from `rank0.engine`).
 *
 * @example
 * ```ts
 * const engine = await build(model, { maxBatchSize: 8 });
 * engine.save("/tmp/stories.engine");
 * const again = Engine.fromDir("/tmp/stories.engine");
 * ```
 */
export class Engine {
  readonly #tensors: Map<string, EngineTensor>;
  readonly #data: Map<string, Uint8Array> | null;
  readonly #file: EngineFile | null;
  #disposed = false;

  private constructor(
    readonly config: EngineConfig,
    readonly plan: EnginePlan,
    tensors: readonly EngineTensor[],
    source: { data: Map<string, Uint8Array> } | { file: EngineFile },
  ) {
    this.#tensors = new Map(tensors.map((t) => [t.name, t]));
    this.#data = "data" in source ? source.data : null;
    this.#file = "file" in source ? source.file : null;
  }

  /** Wraps tensors built in memory (used by the Builder). */
  static fromMemory(config: EngineConfig, plan: EnginePlan, tensors: readonly EngineTensor[], data: Map<string, Uint8Array>): Engine {
    for (const t of tensors) if (!data.has(t.name)) throw new Error(`Engine: tensor '${t.name}' has no data`);
    return new Engine(config, plan, tensors, { data });
  }

  /** Opens an engine directory written by {@link Engine.save}; tensors are read on demand. */
  static fromDir(dir: string): Engine {
    const cfgPath = path.join(dir, "config.json");
    let raw: unknown;
    try {
      raw = JSON.parse(fs.readFileSync(cfgPath, "utf8"));
    } catch (e) {
      throw new FormatError(`engine config ${cfgPath} cannot be read: ${(e as Error).message}`, cfgPath);
    }
    const version = (raw as { llmrt?: { formatVersion?: unknown } })?.llmrt?.formatVersion;
    if (version !== ENGINE_FORMAT_VERSION) {
      throw new FormatError(`engine config ${cfgPath} has format version ${JSON.stringify(version)}; this llmrt needs version ${ENGINE_FORMAT_VERSION} (rebuild the engine)`, cfgPath);
    }
    const config = parseWith(EngineConfigSchema, raw, cfgPath) as unknown as EngineConfig;
    const file = EngineFile.open(path.join(dir, "rank0.engine"));
    const plan = file.meta.plan as EnginePlan;
    for (const w of planWeightNames(plan)) {
      if (!file.has(w)) {
        file.close();
        throw new FormatError(`engine ${dir}: tensor '${w}' used by the plan is missing from rank0.engine`, dir);
      }
    }
    return new Engine(config, plan, file.meta.tensors, { file });
  }

  /** Whether `dir` looks like an engine directory (config.json with an llmrt section). */
  static isEngineDir(dir: string): boolean {
    try {
      const raw = JSON.parse(fs.readFileSync(path.join(dir, "config.json"), "utf8"));
      return typeof raw === "object" && raw !== null && "llmrt" in raw;
    } catch {
      return false;
    }
  }

  /** Writes `config.json` and `rank0.engine` into `dir` (created if needed). */
  save(dir: string): void {
    this.#checkLive();
    fs.mkdirSync(dir, { recursive: true });
    const tensors = [...this.#tensors.values()].map(({ name, dtype, shape }) => ({ name, dtype, shape }));
    writeEngineFile(path.join(dir, "rank0.engine"), this.plan, tensors, (n) => this.readTensor(n));
    fs.writeFileSync(path.join(dir, "config.json"), JSON.stringify(this.config, null, 2));
  }

  tensorNames(): string[] {
    return [...this.#tensors.keys()];
  }

  tensorInfo(name: string): EngineTensor {
    const t = this.#tensors.get(name);
    if (!t) throw new FormatError(`engine: tensor '${name}' is missing`);
    return t;
  }

  /** A tensor's raw bytes in the engine's dtype. */
  readTensor(name: string): Uint8Array {
    this.#checkLive();
    this.tensorInfo(name);
    return this.#data ? this.#data.get(name)! : this.#file!.read(name);
  }

  /** A float tensor widened to float32. */
  readFloat32(name: string): Float32Array {
    const t = this.tensorInfo(name);
    const b = this.readTensor(name);
    const aligned = b.byteOffset % 4 === 0 ? b : b.slice();
    switch (t.dtype) {
      case "float32": return new Float32Array(aligned.buffer, aligned.byteOffset, aligned.byteLength / 4);
      case "bfloat16": return bf16ToF32(new Uint16Array(aligned.buffer, aligned.byteOffset, aligned.byteLength / 2));
      case "float16": return f16ToF32(new Uint16Array(aligned.buffer, aligned.byteOffset, aligned.byteLength / 2));
      default: throw new FormatError(`engine: tensor '${name}' is ${t.dtype}, not a float tensor`);
    }
  }

  /** Closes the engine file (idempotent). */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    this.#file?.close();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  #checkLive(): void {
    if (this.#disposed) throw new Error("Engine: used after dispose()");
  }
}

/** Every weight name an engine plan reads. */
export function planWeightNames(plan: EnginePlan): string[] {
  const names = new Set<string>();
  for (const op of plan.ops) {
    switch (op.type) {
      case "embedding": names.add(op.table); break;
      case "rmsnorm": case "add_rmsnorm": names.add(op.weight); break;
      case "linear": names.add(op.weight); if (op.bias) names.add(op.bias); break;
      case "qk_norm": names.add(op.qWeight); names.add(op.kWeight); break;
      default: break;
    }
  }
  return [...names];
}
