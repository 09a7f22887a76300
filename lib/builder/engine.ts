import * as fs from "node:fs";
import * as path from "node:path";
import { z } from "zod";
import type { PretrainedConfig } from "../models/config.ts";
import { DisposedError, FormatError, InternalError, LlmrtError, showValue, ValidationError } from "../util/errors.ts";
import { bf16ToF32, f16ToF32 } from "../util/dtype.ts";
import { parseWith } from "../util/validate.ts";
import { type QuantConfigDict, QuantConfigSchema } from "../quantization/quant_config.ts";
import { type BuildConfig, BuildConfigSchema, type EngineDType, EngineDTypeSchema } from "./build_config.ts";
import { ENGINE_FORMAT_VERSION, EngineFile, type TensorEntry } from "./engine_format.ts";
import { makeEngineDir, writeEngineFile, writeEngineFileAsync } from "./engine_write.ts";
import { type EnginePlan, validatePlan } from "../ir/plan.ts";
import { checkEngineSizes } from "./limits.ts";
import { verifyBlobsInWorkers } from "./engine_verify.ts";

/** `config.json` of an engine directory. */
export const EngineConfigSchema = z.strictObject({
  llmrt: z.strictObject({ formatVersion: z.number().int() }),
  /** The model's parsed config (camelCase PretrainedConfig). */
  model: z.looseObject({
    architecture: z.string(),
    vocabSize: z.number().int().positive(),
    hiddenSize: z.number().int().positive(),
    numHiddenLayers: z.number().int().positive(),
    intermediateSize: z.number().int().positive(),
    numAttentionHeads: z.number().int().positive(),
    numKeyValueHeads: z.number().int().positive(),
    headDim: z.number().int().positive(),
    maxPositionEmbeddings: z.number().int().positive(),
    eosTokenIds: z.array(z.number().int()),
  }),
  /** Build options as built: maxSeqLen and maxInputLen are always resolved. */
  build: BuildConfigSchema.extend({ maxSeqLen: z.number().int().positive(), maxInputLen: z.number().int().positive() }),
  /** The QuantConfig the weights were quantized with (`QuantConfig.toDict()`), or null. */
  quant: QuantConfigSchema.nullable(),
  dtype: EngineDTypeSchema,
  /** Rank files in the directory (rank0.engine ... rank<numRanks-1>.engine). */
  numRanks: z.number().int().positive(),
  /** Tensor parallelism: how the ranks split the model (lib/builder/sharding.ts); absent for one rank. */
  mapping: z.strictObject({
    tpSize: z.number().int().positive(),
    numHeadsPerRank: z.number().int().positive(),
    numKvHeadsPerRank: z.number().int().positive(),
    /** "split": each rank holds its own KV heads; "replicated": fewer KV heads than ranks. */
    kvHeads: z.enum(["split", "replicated"]),
    intermediatePerRank: z.number().int().positive(),
    /** LM head rows per rank (the last rank's padded with zero rows; the vocab when replicated). */
    vocabPerRank: z.number().int().positive(),
    embedding: z.literal("replicated"),
    /** "vocab-parallel" + all_gather (CPU); "replicated": each rank computes every logit (CUDA: no gather). */
    lmHead: z.enum(["vocab-parallel", "replicated"]),
  }).optional(),
});
/** How a tensor-parallel engine splits its model across ranks. */
export type TpMapping = NonNullable<z.infer<typeof EngineConfigSchema>["mapping"]>;
export type EngineConfig = Readonly<{
  llmrt: { formatVersion: number };
  model: PretrainedConfig;
  build: BuildConfig;
  quant: QuantConfigDict | null;
  dtype: EngineDType;
  numRanks: number;
  mapping?: TpMapping;
}>;

/** A tensor held by an engine: its table entry (without a file offset) and, when built in memory, its bytes. */
export type EngineTensor = Omit<TensorEntry, "offset" | "crc32">;

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
  #data: Map<string, Uint8Array> | null;
  #file: EngineFile | null;
  /** Set by {@link Engine.releaseHostWeights} when no saved copy took over the reads. */
  #released = false;
  #disposed = false;
  /** Every rank's engine (this one first) of a multi-rank engine built in memory. */
  #ranks: readonly Engine[] | null = null;
  /** The directory and rank this engine was opened from. */
  #dir: string | null = null;
  #rank = 0;

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
    for (const t of tensors) if (!data.has(t.name)) throw new InternalError(`Engine: tensor '${t.name}' has no data`);
    return new Engine(config, plan, tensors, { data });
  }

  /**
   * Opens an engine directory written by {@link Engine.save}; tensors are read on demand (each
   * checked against its CRC-32 on read). The plan is validated against config.json (op types,
   * head counts, widths, every weight's shape and dtype), config.json must equal the config the
   * engine file was built with, and the sizes must fit this machine (ResourceError otherwise).
   */
  static fromDir(dir: string, options: { readonly rank?: number } = {}): Engine {
    const cfgPath = path.join(dir, "config.json");
    let raw: unknown;
    try {
      raw = JSON.parse(fs.readFileSync(cfgPath, "utf8"));
    } catch (e) {
      throw new FormatError(`engine config ${cfgPath} cannot be read: ${(e as Error).message}`, cfgPath);
    }
    const version = (raw as { llmrt?: { formatVersion?: unknown } })?.llmrt?.formatVersion;
    if (version !== ENGINE_FORMAT_VERSION) {
      throw new FormatError(
        `engine config ${cfgPath} has format version ${JSON.stringify(version)}; this llmrt needs version ${ENGINE_FORMAT_VERSION} (rebuild the engine)`,
        cfgPath,
      );
    }
    const config = parseWith(EngineConfigSchema, raw, cfgPath) as unknown as EngineConfig;
    const rank = options.rank ?? 0;
    if (!Number.isInteger(rank) || rank < 0 || rank >= config.numRanks) {
      throw new ValidationError(`Engine.fromDir: rank ${rank} outside [0, ${config.numRanks}) of ${dir}`, "rank", rank);
    }
    const enginePath = path.join(dir, `rank${rank}.engine`);
    const file = EngineFile.open(enginePath);
    try {
      const diff = firstDifference(file.meta.config, raw, "");
      if (diff !== null) {
        throw new FormatError(
          `engine ${dir}: config.json does not belong to rank0.engine: ${diff.path.slice(1)} is ${showValue(diff.b)} in config.json but ${
            showValue(diff.a)
          } in the engine (rebuild the engine or restore its config.json)`,
          cfgPath,
        );
      }
      if (file.meta.rank !== undefined && file.meta.rank !== rank) {
        throw new FormatError(
          `${enginePath} holds the weights of rank ${showValue(file.meta.rank)}, not rank ${rank} (a rank file copied or swapped; rebuild the engine)`,
          enginePath,
        );
      }
      const m = config.model;
      const plan = validatePlan(file.meta.plan, {
        vocabSize: m.vocabSize,
        hiddenSize: m.hiddenSize,
        intermediateSize: config.mapping?.intermediatePerRank ?? m.intermediateSize,
        numLayers: m.numHiddenLayers,
        numHeads: config.mapping?.numHeadsPerRank ?? m.numAttentionHeads,
        numKvHeads: config.mapping?.numKvHeadsPerRank ?? m.numKeyValueHeads,
        headDim: m.headDim,
        weightDtype: config.dtype,
        tensor: (n) => file.has(n) ? file.entry(n) : undefined,
        kvCacheQuantAlgo: config.quant?.kvCacheQuantAlgo ?? null,
      }, enginePath);
      checkEngineSizes(sizeFacts(config, plan, file.meta.tensors, `engine ${dir}`));
      const engine = new Engine(config, plan, file.meta.tensors, { file });
      engine.#dir = dir;
      engine.#rank = rank;
      return engine;
    } catch (e) {
      file.close();
      throw e;
    }
  }

  /** Checks every blob's CRC-32 of a file-backed engine (FormatError naming the first corrupt one); an engine built in memory has nothing to check. */
  verify(): void {
    this.#checkLive();
    if (this.#file) this.#file.verifyAll();
  }

  /**
   * Checks every blob's CRC-32 on `threads` Web Workers while this thread goes on, after switching
   * this engine's reads to unchecked ones (the workers do the checking): the caller must not use
   * what it read until the promise resolves, and throw it away if it rejects (FormatError naming the
   * tensor). Resolves (with the longest time a worker took, ms) at once for an engine built in memory.
   *
   * @example
   * ```ts
   * const checked = engine.verifyInBackground(4);
   * const session = new CpuSession(engine); // reads the weights meanwhile
   * await checked;
   * ```
   */
  verifyInBackground(threads: number): Promise<number> {
    this.#checkLive();
    if (!this.#file) return Promise.resolve(0);
    this.#file.deferChecksums();
    return verifyBlobsInWorkers(this.#file.path, this.#file.dataOffset, this.#file.meta.tensors, threads);
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

  /**
   * Joins the rank engines of a tensor-parallel build (lib/builder/sharding.ts): the result is
   * rank 0, holding the others; `save` writes every rank file.
   */
  static fromRanks(ranks: readonly Engine[]): Engine {
    if (ranks.length !== ranks[0]?.config.numRanks) throw new InternalError(`Engine.fromRanks: ${ranks.length} engines for ${ranks[0]?.config.numRanks} ranks`);
    ranks.forEach((e, r) => (e.#rank = r));
    ranks[0].#ranks = ranks;
    return ranks[0];
  }

  /** This engine's rank (0 for a one-rank engine). */
  get rank(): number {
    return this.#rank;
  }

  /** The directory this engine was opened from (null when built in memory). */
  get dir(): string | null {
    return this.#dir;
  }

  /**
   * The engine of rank `r`: this one, one held in memory, or (opened from a directory) a new
   * Engine the caller disposes.
   */
  rankEngine(r: number): Engine {
    if (r === this.#rank) return this;
    if (this.#ranks?.[r]) return this.#ranks[r];
    if (this.#dir) return Engine.fromDir(this.#dir, { rank: r });
    throw new ValidationError(`Engine.rankEngine: rank ${r} outside [0, ${this.config.numRanks})`, "rank", r);
  }

  /** Writes `config.json` and `rank0.engine` (… `rank<numRanks-1>.engine`) into `dir` (created if needed). */
  save(dir: string): void {
    this.#checkLive();
    makeEngineDir(dir, "Engine.save");
    for (let r = 1; r < this.config.numRanks; r++) {
      const e = this.#ranks?.[r];
      if (!e) throw new ValidationError(`Engine.save: rank ${r} is not held in memory (save the directory the engine was opened from instead)`, "rank", r);
      const t = [...e.#tensors.values()].map(({ name, dtype, shape }) => ({ name, dtype, shape }));
      writeEngineFile(path.join(dir, `rank${r}.engine`), e.plan, e.config, t, (n) => e.readTensor(n), r);
    }
    const tensors = [...this.#tensors.values()].map(({ name, dtype, shape }) => ({ name, dtype, shape }));
    writeEngineFile(path.join(dir, "rank0.engine"), this.plan, this.config, tensors, (n) => this.readTensor(n));
    fs.writeFileSync(path.join(dir, "config.json"), JSON.stringify(this.config, null, 2));
  }

  /**
   * {@link Engine.save} with the file writes done off the JavaScript thread (the engine cache writes
   * while the weights upload; the blobs' CRC-32s are computed on `crcThreads` Web Workers from the
   * written file, 0 = on this thread; default: the cores but one, at most 8). The engine must not be
   * disposed before the promise settles.
   */
  async saveAsync(dir: string, crcThreads?: number): Promise<void> {
    this.#checkLive();
    makeEngineDir(dir, "Engine.saveAsync");
    const writes: Promise<void>[] = [];
    for (let r = 0; r < this.config.numRanks; r++) {
      const e = r === 0 ? this : this.#ranks?.[r];
      if (!e) throw new ValidationError(`Engine.saveAsync: rank ${r} is not held in memory (save the directory the engine was opened from instead)`, "rank", r);
      const t = [...e.#tensors.values()].map(({ name, dtype, shape }) => ({ name, dtype, shape }));
      writes.push(writeEngineFileAsync(path.join(dir, `rank${r}.engine`), e.plan, e.config, t, (n) => e.readTensor(n), crcThreads, r));
    }
    const settled = await Promise.allSettled(writes);
    const failed = settled.find((r) => r.status === "rejected");
    if (failed) throw (failed as PromiseRejectedResult).reason;
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
    return this.#data ? this.#data.get(name)! : this.#readable().read(name);
  }

  /**
   * Streams a tensor's raw bytes into buffers from `next(max)` (see EngineView.readTensorInto): read
   * straight from the engine file, its CRC-32 checked after the last piece; copied when in memory.
   */
  readTensorInto(name: string, next: (maxBytes: number) => Uint8Array): void {
    this.#checkLive();
    this.tensorInfo(name);
    if (!this.#data) return this.#readable().readInto(name, next);
    const src = this.#data.get(name)!;
    for (let done = 0; done < src.byteLength;) {
      const dst = next(src.byteLength - done);
      const n = Math.min(dst.byteLength, src.byteLength - done);
      dst.set(src.subarray(done, done + n));
      done += n;
    }
  }

  /** A float tensor widened to float32. */
  readFloat32(name: string): Float32Array {
    const t = this.tensorInfo(name);
    const b = this.readTensor(name);
    const aligned = b.byteOffset % 4 === 0 ? b : b.slice();
    switch (t.dtype) {
      case "float32":
        return new Float32Array(aligned.buffer, aligned.byteOffset, aligned.byteLength / 4);
      case "bfloat16":
        return bf16ToF32(new Uint16Array(aligned.buffer, aligned.byteOffset, aligned.byteLength / 2));
      case "float16":
        return f16ToF32(new Uint16Array(aligned.buffer, aligned.byteOffset, aligned.byteLength / 2));
      default:
        throw new FormatError(`engine: tensor '${name}' is ${t.dtype}, not a float tensor`);
    }
  }

  /**
   * Lets go of the weight bytes of an engine built in memory once a backend holds its own copy (the
   * CUDA session's upload; LLM.create calls it, after any cache write): as much host memory as the
   * model. The config, plan and tensor table stay. With `savedDir` (where this engine was saved),
   * reads go to its rank files from then on; without, reading a weight throws. A no-op for an
   * engine opened from a directory (its reads keep nothing).
   */
  releaseHostWeights(savedDir: string | null = null): void {
    if (this.#disposed || !this.#data) return;
    for (const e of this.#ranks ?? [this]) {
      e.#data = null;
      e.#released = true;
      if (!savedDir) continue;
      try {
        e.#file = EngineFile.open(path.join(savedDir, `rank${e.#rank}.engine`));
        e.#dir = savedDir;
        e.#released = false;
      } catch {
        // the saved copy is gone: reads throw, as without one
      }
    }
  }

  /** Closes the engine file (idempotent). */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    this.#file?.close();
    for (const e of this.#ranks ?? []) if (e !== this) e.dispose();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  #checkLive(): void {
    if (this.#disposed) throw new DisposedError("Engine (used after dispose())");
  }

  #readable(): EngineFile {
    if (this.#released || !this.#file) {
      throw new LlmrtError(
        "disposed",
        "Engine: the weights of this engine built in memory were released once uploaded to the device (LLM.create option keepHostWeights: true keeps them)",
      );
    }
    return this.#file;
  }
}

/** The first path where two JSON values differ (`a` the engine's, `b` config.json's), or null. */
function firstDifference(a: unknown, b: unknown, at: string): { path: string; a: unknown; b: unknown } | null {
  if (a === b) return null;
  if (a === null || b === null || typeof a !== "object" || typeof b !== "object" || Array.isArray(a) !== Array.isArray(b)) {
    return { path: at, a, b };
  }
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
  for (const k of [...keys].sort()) {
    const d = firstDifference((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k], `${at}.${k}`);
    if (d) return d;
  }
  return null;
}

const DTYPE_BYTES: Readonly<Record<string, number>> = { float32: 4, float16: 2, bfloat16: 2, int8: 1, uint8: 1, int32: 4 };

/** The facts `checkEngineSizes` needs, from an engine's config, plan and tensor table. */
export function sizeFacts(config: EngineConfig, plan: EnginePlan, tensors: readonly EngineTensor[], where: string): Parameters<typeof checkEngineSizes>[0] {
  const m = config.model, b = config.build;
  const kvElementBytes = b.backend === "cpu" ? 4 : DTYPE_BYTES[config.dtype];
  const maxSeqLen = b.maxSeqLen ?? m.maxPositionEmbeddings;
  return {
    backend: b.backend,
    weights: new Map(tensors.map((t) => [t.name, { shape: t.shape, bytes: t.shape.reduce((x, y) => x * y, 1) * (DTYPE_BYTES[t.dtype] ?? 4) }])),
    plan,
    kvBytesPerToken: 2 * m.numHiddenLayers * m.numKeyValueHeads * m.headDim * kvElementBytes,
    maxSeqLen,
    maxSeqLenField: b.maxSeqLen !== undefined && b.maxSeqLen !== m.maxPositionEmbeddings ? "BuildConfig.maxSeqLen" : "config.max_position_embeddings",
    maxSeqsField: b.gatherContextLogits && b.maxNumTokens >= b.maxBatchSize * b.maxBeamWidth ? "BuildConfig.maxNumTokens" : "BuildConfig.maxBatchSize",
    where,
  };
}
