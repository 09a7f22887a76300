import type { LlamaForCausalLM } from "../models/llama.ts";
import { f32ToBf16, f32ToF16 } from "../util/dtype.ts";
import { FormatError, InternalError, ValidationError } from "../util/errors.ts";
import { type BuildConfigInput, type EngineDType, parseBuildConfig } from "./build_config.ts";
import { Engine, type EngineConfig, type EngineTensor, sizeFacts } from "./engine.ts";
import { checkEngineSizes, checkModelSizes } from "./limits.ts";
import { ENGINE_FORMAT_VERSION } from "./engine_format.ts";
import { shardEngine } from "./sharding.ts";
import { type EnginePlan, fuseAddRmsnorm, planMemory } from "../ir/plan.ts";
import { quantizedEngineWeights } from "../quantization/engine_weights.ts";
import { isQuantizedModel } from "../quantization/quantized_model.ts";
import { kvCacheAttributes } from "../quantization/kv_cache_quant.ts";
import type { Network } from "../ir/network.ts";

const ELEMENT_BYTES: Record<EngineDType, number> = { float32: 4, float16: 2, bfloat16: 2 };

/**
 * Builds an engine for a model under an optimization profile: converts and fuses the weights
 * (QKV and gate/up concatenated, dtype converted), runs the graph passes, plans the activation
 * arena and records the op plan. Takes seconds, not minutes.
 *
 * @example
 * ```ts
 * const model = AutoModelForCausalLM.fromHuggingFace("../shared/models/stories260k");
 * const engine = await build(model, { maxBatchSize: 8, maxNumTokens: 2048 });
 * engine.save("/tmp/stories-engine");
 * ```
 */
export function build(model: LlamaForCausalLM, buildConfig: BuildConfigInput = {}): Promise<Engine> {
  return Promise.resolve().then(() => buildSync(model, buildConfig));
}

/** Synchronous form of {@link build}. */
export function buildSync(model: LlamaForCausalLM, buildConfig: BuildConfigInput = {}): Engine {
  const cfg = parseBuildConfig(buildConfig);
  const mc = model.config;
  const maxSeqLen = cfg.maxSeqLen ?? mc.maxPositionEmbeddings;
  if (maxSeqLen < 2) {
    const field = cfg.maxSeqLen !== undefined ? "BuildConfig.maxSeqLen" : "config.max_position_embeddings";
    throw new ValidationError(`${field}: ${maxSeqLen} leaves no room for a prompt token and a generated one (at least 2)`, field, maxSeqLen);
  }
  const maxInputLen = cfg.maxInputLen ?? maxSeqLen - 1; // the whole context but one generated token
  if (maxInputLen > maxSeqLen) {
    throw new ValidationError(`BuildConfig.maxInputLen: ${maxInputLen} exceeds maxSeqLen ${maxSeqLen}`, "BuildConfig.maxInputLen", maxInputLen);
  }
  const dtype = engineDtype(model, cfg);
  // The CPU backend computes in float32: weights may be stored narrower, activations stay float32.
  const activationDtype: EngineDType = cfg.backend === "cpu" ? "float32" : dtype;

  const asBuilt = { model: mc, build: { ...cfg, maxSeqLen, maxInputLen }, dtype } as EngineConfig;
  preflightModel(model, asBuilt, activationDtype);
  const net = model.toNetwork();
  if (!net.attributes) throw new InternalError("build: the model's network has no attributes");
  preflight(net, asBuilt, activationDtype);
  const quantized = quantizedEngineWeights(model, net.weights, fuseAddRmsnorm(net.ops), { ...cfg, activationDtype });
  const kvCache = kvCacheAttributes(model, { ...cfg, dtype: activationDtype });
  const ops = quantized?.ops ?? fuseAddRmsnorm(net.ops);
  const maxSeqs = cfg.gatherContextLogits ? Math.max(cfg.maxNumTokens, cfg.maxBatchSize * cfg.maxBeamWidth) : cfg.maxBatchSize * cfg.maxBeamWidth;
  const profile = { maxTokens: cfg.maxNumTokens, maxSeqs, elementBytes: ELEMENT_BYTES[activationDtype] };
  const { buffers, arenaBytes } = planMemory(net, ops, profile);
  const plan: EnginePlan = { ops, buffers, arenaBytes, ...profile, attributes: kvCache ? { ...net.attributes, kvCache } : net.attributes };

  const tensors: EngineTensor[] = [];
  const data = new Map<string, Uint8Array>();
  for (const t of quantized?.tensors ?? []) {
    tensors.push({ name: t.name, dtype: t.dtype, shape: t.shape, bytes: t.data.byteLength });
    data.set(t.name, t.data);
  }
  for (const w of net.weights.values()) {
    if (quantized?.handled.has(w.name)) continue;
    const bytes = readRaw(model, w.source, w.shape, dtype) ?? convert(readFused(model, w.source, w.shape, w.name), dtype);
    tensors.push({ name: w.name, dtype, shape: w.shape, bytes: bytes.byteLength });
    data.set(w.name, bytes);
  }
  const config: EngineConfig = {
    llmrt: { formatVersion: ENGINE_FORMAT_VERSION },
    model: mc,
    build: { ...cfg, maxSeqLen, maxInputLen },
    quant: isQuantizedModel(model) ? model.quantConfig.toDict() : null,
    dtype,
    numRanks: 1,
  };
  const engine = Engine.fromMemory(config, plan, tensors, data);
  return cfg.tensorParallelSize > 1 ? shardEngine(engine, cfg.tensorParallelSize) : engine;
}

/** The dtype an engine of `model` is built with: the model's or build's request, else by backend and checkpoint. */
function engineDtype(model: LlamaForCausalLM, cfg: ReturnType<typeof parseBuildConfig>): EngineDType {
  const requested = model.options.dtype && model.options.dtype !== "auto" ? model.options.dtype : cfg.dtype;
  const torchDtype = model.config.torchDtype;
  return requested !== "auto" ? requested : cfg.backend === "cpu" ? "float32" : torchDtype === "float32" ? "bfloat16" : torchDtype;
}

/**
 * The groups of checkpoint tensors `buildSync` will read raw (already in the engine dtype; a group
 * is a fused weight's parts, concatenated): what a loader may read ahead, in parallel, with
 * `Checkpoint.prefetchConcat`. Empty for a quantized model.
 */
export function rawReadGroups(model: LlamaForCausalLM, buildConfig: BuildConfigInput = {}): string[][] {
  if (isQuantizedModel(model)) return [];
  const dtype = engineDtype(model, parseBuildConfig(buildConfig));
  const w = model.weights;
  return [...model.toNetwork().weights.values()]
    .map((x) => [...x.source])
    .filter((src) => src.every((s) => w.has(s) && w.info(s).dtype === CHECKPOINT_DTYPE[dtype]));
}

/**
 * Checks made before the network is made or any weight read: the sizes the config and build options
 * ask for, from the numbers alone (ResourceError naming the field, bytes and limit), then every
 * checkpoint tensor's exact shape, missing tensors and unused layers (FormatError naming the tensor).
 */
function preflightModel(model: LlamaForCausalLM, config: EngineConfig, activationDtype: EngineDType): void {
  const m = config.model, b = config.build;
  const f = sizeFacts(config, { buffers: {}, arenaBytes: 0, maxTokens: 0, maxSeqs: 0, elementBytes: 0 } as unknown as EnginePlan, [], "build");
  checkModelSizes({
    backend: b.backend,
    vocabSize: m.vocabSize,
    hiddenSize: m.hiddenSize,
    intermediateSize: m.intermediateSize,
    numLayers: m.numHiddenLayers,
    numHeads: m.numAttentionHeads,
    numKvHeads: m.numKeyValueHeads,
    headDim: m.headDim,
    tied: m.tieWordEmbeddings,
    weightBytes: ELEMENT_BYTES[config.dtype],
    activationBytes: ELEMENT_BYTES[activationDtype],
    kvBytes: f.kvBytesPerToken / (2 * m.numHiddenLayers * m.numKeyValueHeads * m.headDim),
    maxNumTokens: b.maxNumTokens,
    maxSeqs: b.gatherContextLogits ? Math.max(b.maxNumTokens, b.maxBatchSize * b.maxBeamWidth) : b.maxBatchSize * b.maxBeamWidth,
    maxSeqsField: f.maxSeqsField,
    maxSeqLen: f.maxSeqLen,
    maxSeqLenField: f.maxSeqLenField,
  });
  model.validateCheckpoint();
}

/** The exact size check over the planned network (arena as planned, every weight), still before any read. */
function preflight(net: Network, config: EngineConfig, activationDtype: EngineDType): void {
  const b = config.build;
  const maxSeqs = b.gatherContextLogits ? Math.max(b.maxNumTokens, b.maxBatchSize * b.maxBeamWidth) : b.maxBatchSize * b.maxBeamWidth;
  const profile = { maxTokens: b.maxNumTokens, maxSeqs, elementBytes: ELEMENT_BYTES[activationDtype] };
  const { buffers, arenaBytes } = planMemory(net, fuseAddRmsnorm(net.ops), profile);
  const declared = [...net.weights.values()].map((w) => ({ name: w.name, dtype: config.dtype, shape: w.shape, bytes: 0 }));
  checkEngineSizes(sizeFacts(config, { buffers, arenaBytes, ...profile } as EnginePlan, declared, "build"));
}

const CHECKPOINT_DTYPE: Record<EngineDType, string> = { float32: "F32", bfloat16: "BF16", float16: "F16" };

/**
 * The fused weight as raw bytes when every source tensor is stored in the engine dtype already
 * (concatenation along dim 0 of row-major tensors is byte concatenation); null otherwise.
 */
function readRaw(model: LlamaForCausalLM, sources: readonly string[], shape: readonly number[], dtype: EngineDType): Uint8Array | null {
  const w = model.weights;
  if (!w.readBytes || !sources.every((s) => w.has(s) && w.info(s).dtype === CHECKPOINT_DTYPE[dtype])) return null;
  const numel = shape.reduce((a, b) => a * b, 1);
  if (w.readConcat) {
    // One buffer per engine weight, parts read in place (or read ahead in parallel by the loader).
    const out = w.readConcat(sources);
    return out.byteLength === numel * ELEMENT_BYTES[dtype] ? out : null; // a mismatch: let readFused report it
  }
  if (sources.length > 1 && w.readInto) {
    // A fused weight: each part read straight into its place (no per-part buffer, no copy).
    const sizes = sources.map((s) => w.info(s).shape.reduce((a, b) => a * b, 1) * ELEMENT_BYTES[dtype]);
    if (sizes.reduce((a, b) => a + b, 0) !== numel * ELEMENT_BYTES[dtype]) return null; // let readFused report the mismatch
    const out = new Uint8Array(numel * ELEMENT_BYTES[dtype]);
    let at = 0;
    sources.forEach((s, i) => {
      w.readInto!(s, out.subarray(at, at + sizes[i]));
      at += sizes[i];
    });
    return out;
  }
  const parts = sources.map((s) => w.readBytes!(s));
  const total = parts.reduce((a, p) => a + p.byteLength, 0);
  if (total !== numel * ELEMENT_BYTES[dtype]) return null; // let readFused report the mismatch
  if (parts.length === 1) return parts[0];
  const out = new Uint8Array(total);
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.byteLength;
  }
  return out;
}

/** Reads checkpoint tensors and concatenates them along dim 0 into the declared shape. */
function readFused(model: LlamaForCausalLM, sources: readonly string[], shape: readonly number[], name: string): Float32Array {
  const numel = shape.reduce((a, b) => a * b, 1);
  const out = new Float32Array(numel);
  let off = 0;
  for (const s of sources) {
    if (!model.weights.has(s)) throw new FormatError(`build: checkpoint has no tensor '${s}' (needed for engine weight '${name}')`, s);
    const t = model.weights.readFloat32(s);
    if (off + t.length > numel) throw new FormatError(`build: tensor '${s}' does not fit engine weight '${name}' [${shape}]`, s);
    out.set(t, off);
    off += t.length;
  }
  if (off !== numel) throw new FormatError(`build: engine weight '${name}' [${shape}] got ${off} of ${numel} values from ${sources.join(", ")}`, name);
  return out;
}

function convert(f32: Float32Array, dtype: EngineDType): Uint8Array {
  switch (dtype) {
    case "float32":
      return new Uint8Array(f32.buffer, f32.byteOffset, f32.byteLength);
    case "bfloat16": {
      const h = f32ToBf16(f32);
      return new Uint8Array(h.buffer, h.byteOffset, h.byteLength);
    }
    case "float16": {
      const h = f32ToF16(f32);
      return new Uint8Array(h.buffer, h.byteOffset, h.byteLength);
    }
  }
}
