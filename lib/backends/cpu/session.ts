import * as K from "./kernels.ts";
import { type CpuFp8Weight, type CpuQuantWeight, fp8Linear, quantLinear } from "./quant_linear.ts";
import { applyLora } from "./lora.ts";
import { type CpuFp8BlockWeight, fp8BlockLinear } from "./fp8_block_linear.ts";
import { type CpuLowbitWeight, isLowbitFormat, loadLowbitWeight, lowbitLinear } from "./lowbit_linear.ts";
import { applyTokenMasks, sampleRow } from "../../ir/sampling.ts";
import { engineMaxSeqLen, type EngineView, type SessionBackend } from "../../ir/backend.ts";
import type { Op } from "../../ir/network.ts";
import type { EnginePlan } from "../../ir/plan.ts";
import { FormatError, ValidationError } from "../../util/errors.ts";
import { bytesPerBlock, type KvCache, type KvCacheGeometry } from "../../ir/kv_cache.ts";
import { CpuKvCache, kvQuantScales } from "./kv_cache.ts";
import type { Communicator } from "../../ir/communicator.ts";
import { type StepInputs, type StepOutputs, validateStep } from "../../ir/step_io.ts";

/**
 * Runs an engine plan with the TypeScript kernels: one float32 arena holds every activation at
 * its planned offset; weights are widened to float32 once at load.
 */
export class CpuSession implements SessionBackend {
  readonly backend = "cpu" as const;
  readonly #weights = new Map<string, Float32Array>();
  /** Quantized linear weights, kept packed (dequantized inside the kernel). */
  readonly #quant = new Map<string, CpuQuantWeight>();
  readonly #fp8 = new Map<string, CpuFp8Weight>();
  readonly #fp8Block = new Map<string, CpuFp8BlockWeight>();
  /** W8A8 int8, W4A8 int4, NVFP4 weights (lowbit_linear.ts). */
  readonly #lowbit = new Map<string, CpuLowbitWeight>();
  readonly #arena: Float32Array;
  readonly plan: EnginePlan;
  readonly maxSeqLen: number;
  readonly tokensPerBlock: number;
  /** KV-cache quantization scales [numLayers, 2, numKvHeads] (plan.attributes.kvCache), or null for a float32 cache. */
  readonly #kvScales: Float32Array | null;

  /** The tensor-parallel group this rank belongs to (plans with all_reduce / all_gather ops need one). */
  readonly #comm: Communicator<Float32Array> | null;
  #gather: Float32Array | null = null;

  constructor(readonly engine: EngineView, options: { readonly communicator?: Communicator<Float32Array> } = {}) {
    this.#comm = options.communicator ?? null;
    this.plan = engine.plan;
    if (this.plan.elementBytes !== 4) {
      throw new ValidationError(
        `Session: engine was planned for ${this.plan.elementBytes}-byte activations (built for ${engine.config.build.backend}); the CPU backend needs an engine built with backend "cpu"`,
        "backend",
        "cpu",
      );
    }
    const packed = new Set<string>();
    for (const op of this.plan.ops) {
      if (op.type !== "linear" || !op.weightFormat) continue;
      const f = op.weightFormat;
      if (f.format === "fp8_e4m3" && f.activation === "dynamic_per_block") {
        if (!(f.groupSize > 0)) throw new FormatError(`Session: block-scaled fp8 weight '${op.weight}' has groupSize ${f.groupSize}`);
        this.#fp8Block.set(op.weight, { bytes: engine.readTensor(op.weight), scales: engine.readFloat32(f.scales), groupSize: f.groupSize });
        packed.add(op.weight);
        continue;
      }
      if (f.format === "fp8_e4m3") {
        const activationScale = f.activation === "dynamic_per_token" ? null : f.activationScale;
        if (activationScale === undefined || (activationScale !== null && !(activationScale > 0))) {
          throw new FormatError(`Session: fp8 weight '${op.weight}' has no valid static activation scale (${activationScale})`);
        }
        this.#fp8.set(op.weight, { bytes: engine.readTensor(op.weight), scales: engine.readFloat32(f.scales), activationScale });
        packed.add(op.weight);
        continue;
      }
      if (isLowbitFormat(f.format)) {
        const { weight, tensors } = loadLowbitWeight(op, engine);
        this.#lowbit.set(op.weight, weight);
        for (const t of tensors) packed.add(t);
        continue;
      }
      if (f.format !== "uint4" && f.format !== "uint8") {
        throw new FormatError(`Session: weight format '${f.format}' of '${op.weight}' is not supported by the CPU backend`);
      }
      const zeros = f.zeros ? engine.readTensor(f.zeros) : null;
      this.#quant.set(op.weight, {
        bits: f.format === "uint4" ? 4 : 8,
        groupSize: f.groupSize || op.inFeatures,
        packed: engine.readTensor(op.weight),
        scales: engine.readFloat32(f.scales),
        zeros,
      });
      packed.add(op.weight);
      if (f.zeros) packed.add(f.zeros);
    }
    for (const name of engine.tensorNames()) if (!packed.has(name)) this.#weights.set(name, engine.readFloat32(name));
    this.#arena = new Float32Array(this.plan.arenaBytes / 4);
    this.maxSeqLen = engineMaxSeqLen(engine);
    this.tokensPerBlock = engine.config.build.tokensPerBlock;
    const kq = this.plan.attributes.kvCache;
    this.#kvScales = kq ? kvQuantScales(kq, this.plan.attributes.numLayers, this.plan.attributes.numKvHeads) : null;
  }

  /** Allocates a KV cache of `numBlocks` blocks for this engine. */
  createKvCache(numBlocks: number): CpuKvCache {
    if (!Number.isInteger(numBlocks) || numBlocks <= 0) {
      throw new ValidationError(`Session.createKvCache: expected a positive integer block count, got ${numBlocks}`, "numBlocks", numBlocks);
    }
    return new CpuKvCache({ ...this.kvGeometry(), numBlocks }, this.#kvScales);
  }

  /** KV geometry: float32 elements, or one byte per element when the engine quantizes its KV cache. */
  kvGeometry(): Omit<KvCacheGeometry, "numBlocks"> {
    const a = this.plan.attributes;
    const g = { numLayers: a.numLayers, tokensPerBlock: this.tokensPerBlock, numKvHeads: a.numKvHeads, headDim: a.headDim };
    return a.kvCache ? { ...g, elementBytes: 1, quantAlgo: a.kvCache.quantAlgo } : { ...g, elementBytes: 4 };
  }

  /** Bytes one KV block takes (all layers, k and v). */
  kvBytesPerBlock(): number {
    return bytesPerBlock(this.kvGeometry());
  }

  /** The CPU budgets its KV cache from the batch, not from free memory. */
  freeMemoryBytes(): null {
    return null;
  }

  /** Nothing native to free. */
  dispose(): void {}

  #buf(name: string, rows: number): Float32Array {
    const b = this.plan.buffers[name];
    const start = b.offset / 4;
    return this.#arena.subarray(start, start + rows * b.width);
  }

  #group(): Communicator<Float32Array> {
    if (!this.#comm) {
      throw new ValidationError(
        "Session: this engine is one rank of a tensor-parallel engine; run it through the tensor-parallel session (a communicator is needed)",
        "communicator",
      );
    }
    return this.#comm;
  }

  #w(name: string): Float32Array {
    const w = this.#weights.get(name);
    if (!w) throw new FormatError(`Session: weight '${name}' missing from the engine`);
    return w;
  }

  /** One forward pass over a packed batch; writes the requested outputs. */
  run(inp: StepInputs, out: StepOutputs, kv: KvCache): void {
    const T = inp.tokenIds.length;
    const S = inp.seqStarts.length - 1;
    const R = inp.logitRows.length;
    if (!(kv instanceof CpuKvCache)) throw new ValidationError("Session.run: a CPU session needs a KV cache from its createKvCache()", "kvCache");
    const kvAlgo = this.plan.attributes.kvCache?.quantAlgo ?? null;
    if ((kv.quant?.algo ?? null) !== kvAlgo) {
      throw new ValidationError(
        `Session.run: the KV cache holds ${kv.quant?.algo ?? "float32"} elements, this engine's are ${
          kvAlgo ?? "float32"
        } (use this session's createKvCache())`,
        "kvCache",
      );
    }
    validateStep(this.plan, inp, kv.geometry.numBlocks, this.tokensPerBlock, this.maxSeqLen);
    if (inp.adapterIds) {
      if (inp.adapterIds.length !== S) {
        throw new ValidationError(`Session.run: inputs.adapterIds: length ${inp.adapterIds.length} != ${S} sequences`, "adapterIds", inp.adapterIds.length);
      }
      for (const id of inp.adapterIds) {
        if (id >= 0 && !inp.loraSlots?.[id]) {
          throw new ValidationError(`Session.run: inputs.adapterIds: slot ${id} holds no adapter (inputs.loraSlots)`, "adapterIds", id);
        }
      }
    }
    const a = this.plan.attributes;
    const g: K.BatchGeometry = {
      numSeqs: S,
      seqStarts: inp.seqStarts,
      positions: inp.positions,
      blockTables: inp.blockTables,
      maxBlocksPerSeq: inp.maxBlocksPerSeq,
    };
    const rowsOf = (name: string): number => (this.plan.buffers[name].rows === "tokens" ? T : R);
    const nKV = a.numKvHeads, q = kv.quant;
    const layerCache = (l: number): K.LayerCache => ({
      data: kv.layers[l],
      blockSize: this.tokensPerBlock,
      numKvHeads: nKV,
      headDim: a.headDim,
      ...(q ? { quant: { algo: q.algo, scales: q.scales.subarray(l * 2 * nKV, (l + 1) * 2 * nKV) } } : {}),
    });
    for (const op of this.plan.ops) this.#exec(op, inp, out, g, T, R, rowsOf, layerCache);
  }

  #exec(
    op: Op,
    inp: StepInputs,
    out: StepOutputs,
    g: K.BatchGeometry,
    T: number,
    R: number,
    rowsOf: (n: string) => number,
    layerCache: (l: number) => K.LayerCache,
  ): void {
    const a = this.plan.attributes;
    switch (op.type) {
      case "embedding":
        K.embedding(inp.tokenIds, T, this.#w(op.table), a.hiddenSize, a.vocabSize, this.#buf(op.out, T));
        break;
      case "rmsnorm": {
        const rows = rowsOf(op.x), w = this.#w(op.weight);
        K.rmsnorm(this.#buf(op.x, rows), w, op.eps, rows, w.length, this.#buf(op.out, rows));
        break;
      }
      case "add_rmsnorm": {
        const rows = rowsOf(op.x), w = this.#w(op.weight);
        K.addRmsnorm(this.#buf(op.x, rows), this.#buf(op.residual, rows), w, op.eps, rows, w.length, this.#buf(op.out, rows));
        break;
      }
      case "linear": {
        const rows = rowsOf(op.x);
        const q = op.weightFormat ? this.#quant.get(op.weight) : undefined;
        const f8 = op.weightFormat ? this.#fp8.get(op.weight) : undefined;
        const lb = op.weightFormat ? this.#lowbit.get(op.weight) : undefined;
        const fb = op.weightFormat ? this.#fp8Block.get(op.weight) : undefined;
        if (fb) fp8BlockLinear(this.#buf(op.x, rows), fb, op.bias ? this.#w(op.bias) : null, rows, op.outFeatures, op.inFeatures, this.#buf(op.out, rows));
        else if (lb) lowbitLinear(this.#buf(op.x, rows), lb, op.bias ? this.#w(op.bias) : null, rows, op.outFeatures, op.inFeatures, this.#buf(op.out, rows));
        else if (f8) fp8Linear(this.#buf(op.x, rows), f8, op.bias ? this.#w(op.bias) : null, rows, op.outFeatures, op.inFeatures, this.#buf(op.out, rows));
        else if (q) quantLinear(this.#buf(op.x, rows), q, op.bias ? this.#w(op.bias) : null, rows, op.outFeatures, op.inFeatures, this.#buf(op.out, rows));
        else {K.linear(
            this.#buf(op.x, rows),
            this.#w(op.weight),
            op.bias ? this.#w(op.bias) : null,
            rows,
            op.outFeatures,
            op.inFeatures,
            this.#buf(op.out, rows),
          );}
        // Multi-LoRA: each sequence's adapter on token-row linears (LoRA on lm_head is not supported).
        if (inp.adapterIds && this.plan.buffers[op.x].rows === "tokens") {
          applyLora(
            this.#buf(op.x, rows),
            this.#buf(op.out, rows),
            op.inFeatures,
            op.outFeatures,
            inp.seqStarts,
            inp.adapterIds,
            inp.loraSlots ?? [],
            op.weight,
          );
        }
        break;
      }
      case "qk_norm":
        K.qkNorm(this.#buf(op.qkv, T), this.#w(op.qWeight), this.#w(op.kWeight), op.eps, T, op.numHeads, op.numKvHeads, op.headDim);
        break;
      case "rope_kv_write":
        K.ropeKvWrite(
          this.#buf(op.qkv, T),
          this.#buf(op.q, T),
          layerCache(op.layer),
          g,
          a.rope.invFreq,
          a.rope.attentionScaling,
          op.numHeads,
          op.numKvHeads,
          op.headDim,
        );
        break;
      case "paged_attention":
        K.pagedAttention(this.#buf(op.q, T), this.#buf(op.out, T), layerCache(op.layer), g, op.numHeads, op.numKvHeads, op.headDim, op.scale, op.window);
        break;
      case "silu_mul":
        K.siluMul(this.#buf(op.gateUp, T), this.#buf(op.out, T), T, op.width);
        break;
      case "add": {
        const rows = rowsOf(op.x);
        K.addInPlace(this.#buf(op.x, rows), this.#buf(op.out, rows), rows * this.plan.buffers[op.x].width);
        break;
      }
      case "gather_rows":
        K.gatherRows(this.#buf(op.x, T), inp.logitRows, R, this.plan.buffers[op.x].width, this.#buf(op.out, R));
        break;
      case "all_reduce": {
        const x = this.#buf(op.x, rowsOf(op.x));
        this.#group().allReduceSum(x, x, x.length);
        break;
      }
      case "all_gather": {
        // Gathered rank-major [ranks, rows, width], then laid out as [rows, outWidth].
        const rows = rowsOf(op.x), c = this.#group(), n = rows * op.width;
        if (!this.#gather || this.#gather.length < c.worldSize * n) this.#gather = new Float32Array(c.worldSize * this.plan.buffers[op.x].bytes / 4);
        const g = this.#gather, y = this.#buf(op.out, rows);
        c.allGather(this.#buf(op.x, rows), g, n);
        for (let r = 0; r < c.worldSize; r++) {
          const cols = Math.min(op.width, op.outWidth - r * op.width);
          for (let i = 0; i < rows && cols > 0; i++) y.set(g.subarray(r * n + i * op.width, r * n + i * op.width + cols), i * op.outWidth + r * op.width);
        }
        break;
      }
      case "sample": {
        const V = a.vocabSize;
        const logits = this.#buf(op.logits, R);
        if (out.logits) out.logits.set(logits.subarray(0, R * V));
        if (out.sampledIds) {
          if (!inp.sampling) throw new ValidationError("Session.run: outputs.sampledIds needs inputs.sampling", "sampling");
          applyTokenMasks(logits, V, inp.sampling, R); // after the raw logits were copied out
          for (let r = 0; r < R; r++) out.sampledIds[r] = sampleRow(logits, r * V, V, inp.sampling, r);
        }
        break;
      }
    }
  }
}
