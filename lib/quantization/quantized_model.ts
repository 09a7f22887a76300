import { LlamaForCausalLM, type ModelOptions, type WeightSource } from "../models/llama.ts";
import type { PretrainedConfig } from "../models/config.ts";
import { ValidationError } from "../util/errors.ts";
import type { QuantizedTensor } from "./packed.ts";
import type { QuantConfig } from "./quant_config.ts";

/**
 * A checkpoint's tensors with some replaced: float overrides (norms and projections that AWQ's
 * scales were folded into) and quantized linears, which have no float form at all.
 */
export class OverlayWeightSource implements WeightSource {
  constructor(
    readonly base: WeightSource,
    readonly floats: ReadonlyMap<string, Float32Array>,
    readonly quantized: ReadonlyMap<string, QuantizedTensor>,
  ) {}

  has(name: string): boolean {
    return this.floats.has(name) || this.quantized.has(name) || this.base.has(name);
  }

  readFloat32(name: string): Float32Array {
    const f = this.floats.get(name);
    if (f) return f;
    if (this.quantized.has(name)) {
      throw new ValidationError(`weight '${name}' is quantized; it has no float form (use quantizedTensor)`, name);
    }
    return this.base.readFloat32(name);
  }

  info(name: string): { readonly shape: readonly number[]; readonly dtype?: string } {
    const q = this.quantized.get(name);
    if (q) return { shape: [q.rows, q.cols], dtype: q.format === "fp8_e4m3" ? "F8_E4M3" : q.format === "nvfp4" ? "NVFP4" : `INT${q.bits}` };
    if (this.floats.has(name)) return { shape: this.base.has(name) ? this.base.info(name).shape : [this.floats.get(name)!.length], dtype: "F32" };
    return this.base.info(name);
  }

  readBytes(name: string): Uint8Array {
    const f = this.floats.get(name);
    if (f) return new Uint8Array(f.buffer, f.byteOffset, f.byteLength);
    if (this.quantized.has(name) || !this.base.readBytes) throw new ValidationError(`weight '${name}' has no raw float bytes`, name);
    return this.base.readBytes(name);
  }

  close(): void {
    this.base.close();
  }
}

/**
 * A model whose linears (some or all) are quantized: what `quantize()` returns and what a
 * pre-quantized AWQ/GPTQ checkpoint loads as. `build()` takes it like any other model.
 *
 * @example
 * ```ts
 * const q = await quantize(AutoModelForCausalLM.fromHuggingFace(dir), { quantAlgo: "W4A16_AWQ", groupSize: 64 });
 * const engine = await build(q, { backend: "cpu" });
 * ```
 */
export class QuantizedModel extends LlamaForCausalLM {
  constructor(
    config: PretrainedConfig,
    override readonly weights: OverlayWeightSource,
    options: ModelOptions,
    readonly quantConfig: QuantConfig,
    /**
     * AWQ's per-input-channel scales s by linear input (`model.layers.3.attnIn`, `.attnOut`, `.mlpIn`,
     * `.mlpAct`): those linears hold Q(W·diag(s)) and the layer feeding them was divided by s.
     */
    readonly awqScales: ReadonlyMap<string, Float64Array> = new Map(),
    /**
     * KV-cache scales [numLayers, 2, numKvHeads] (K then V of each layer) when `quantConfig.kvCacheQuantAlgo`
     * is set and they were calibrated (else the build uses the fixed defaults of kv_cache_quant.ts).
     */
    readonly kvCacheScales: readonly number[] | null = null,
  ) {
    super(config, weights, options);
  }

  /** The quantized form of HF tensor `name` (e.g. `model.layers.0.mlp.down_proj.weight`), if any. */
  quantizedTensor(name: string): QuantizedTensor | undefined {
    return this.weights.quantized.get(name);
  }

  /** Names of every quantized tensor. */
  quantizedNames(): string[] {
    return [...this.weights.quantized.keys()];
  }
}

/** Whether `model` carries quantized weights. */
export function isQuantizedModel(model: LlamaForCausalLM): model is QuantizedModel {
  return model instanceof QuantizedModel;
}
