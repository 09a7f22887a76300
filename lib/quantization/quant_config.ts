import { z } from "zod";
import { UnsupportedError, ValidationError } from "../util/errors.ts";
import { parseWith } from "../util/validate.ts";
import {
  assertImplemented,
  isFp8,
  isLowbitActivation,
  KV_CACHE_QUANT_ALGOS,
  type KvCacheQuantAlgo,
  QUANT_ALGOS,
  type QuantAlgo,
  WEIGHT_ONLY_BITS,
} from "./quant_algo.ts";

const QuantAlgoSchema = z.enum(QUANT_ALGOS as [QuantAlgo, ...QuantAlgo[]]);
const groupSizeSchema = z.number().int().refine((v) => v >= 8 && v % 8 === 0, "expected a positive multiple of 8");

/** One module's override under MIXED_PRECISION. */
export const LayerQuantConfigSchema = z.strictObject({
  quantAlgo: QuantAlgoSchema,
  groupSize: groupSizeSchema.optional(),
  hasZeroPoint: z.boolean().optional(),
});

/**
 * Quantization options, named as TensorRT-LLM's `QuantConfig` (camelCase).
 * Module names are Hugging Face module paths (`model.layers.3.mlp.down_proj`, `lm_head`);
 * `*` matches any run of characters.
 */
export const QuantConfigSchema = z.strictObject({
  /** Weight/activation algorithm. @default "NO_QUANT" */
  quantAlgo: QuantAlgoSchema.default("NO_QUANT"),
  /**
   * KV-cache algorithm: FP8 (e4m3) or INT8, one byte per element with calibrated per-(layer, kv head)
   * scales (CPU backend), or null for the engine dtype. @default null
   */
  kvCacheQuantAlgo: z.enum(KV_CACHE_QUANT_ALGOS as [KvCacheQuantAlgo, ...KvCacheQuantAlgo[]]).nullable().default(null),
  /**
   * Input channels sharing one scale. @default 128 for W4A16_AWQ / W4A16_GPTQ; W8A16 and W4A16
   * are per-channel (TensorRT-LLM's meaning) unless a groupSize is given.
   */
  groupSize: groupSizeSchema.optional(),
  /** Asymmetric integers with a zero point per group (AutoAWQ's default). @default false */
  hasZeroPoint: z.boolean().default(false),
  /**
   * AWQ: keep the activation scales as a separate per-channel multiplier of each linear's input
   * instead of folding them into the preceding norm / projection. Not implemented yet. @default false
   */
  preQuantScale: z.boolean().default(false),
  /** SmoothQuant (W8A8_SQ_PER_CHANNEL) migration strength α in [0, 1]: s_j = max|X_j|^α / max|W_j|^(1−α). @default 0.5 */
  alpha: z.number().min(0).max(1).default(0.5),
  /** Modules left unquantized. @default ["lm_head"] */
  excludeModules: z.array(z.string().min(1)).default(["lm_head"]),
  /** MIXED_PRECISION: the algorithm of each listed module (pattern); unlisted modules stay unquantized. */
  quantizedLayers: z.record(z.string().min(1), LayerQuantConfigSchema).optional(),
});

export type QuantConfigInput = z.input<typeof QuantConfigSchema>;
export type QuantConfigDict = z.output<typeof QuantConfigSchema>;

/** How one linear is quantized. */
export interface LayerQuant {
  readonly algo: QuantAlgo;
  readonly bits: 4 | 8;
  /** Input channels per scale; null = one scale per output channel (per-channel). */
  readonly groupSize: number | null;
  readonly hasZeroPoint: boolean;
}

/** Shell-style match where `*` is any run of characters (also across dots). */
export function matchModule(pattern: string, name: string): boolean {
  if (!pattern.includes("*")) return pattern === name || name.endsWith(`.${pattern}`);
  const re = new RegExp(`^${pattern.split("*").map((p) => p.replace(/[.+?^${}()|[\]\\]/g, "\\$&")).join(".*")}$`);
  return re.test(name);
}

/**
 * A validated, frozen quantization config. A plain object is accepted wherever a QuantConfig is.
 *
 * @example
 * ```ts
 * const qc = QuantConfig.from({ quantAlgo: QuantAlgo.W4A16_AWQ, groupSize: 64 });
 * qc.toDict(); // { quantAlgo: "W4A16_AWQ", groupSize: 64, kvCacheQuantAlgo: null, ... }
 * ```
 */
export class QuantConfig {
  readonly quantAlgo: QuantAlgo;
  readonly kvCacheQuantAlgo: KvCacheQuantAlgo | null;
  readonly groupSize: number | undefined;
  readonly hasZeroPoint: boolean;
  readonly preQuantScale: boolean;
  readonly alpha: number;
  readonly excludeModules: readonly string[];
  readonly quantizedLayers: Readonly<Record<string, z.output<typeof LayerQuantConfigSchema>>> | undefined;

  private constructor(d: QuantConfigDict) {
    this.quantAlgo = d.quantAlgo;
    this.kvCacheQuantAlgo = d.kvCacheQuantAlgo;
    this.groupSize = d.groupSize;
    this.hasZeroPoint = d.hasZeroPoint;
    this.preQuantScale = d.preQuantScale;
    this.alpha = d.alpha;
    this.excludeModules = d.excludeModules;
    this.quantizedLayers = d.quantizedLayers;
    Object.freeze(this);
  }

  /** Validates a plain object (or returns a QuantConfig as is). Unimplemented algorithms throw UnsupportedError. */
  static from(input: QuantConfigInput | QuantConfig = {}): QuantConfig {
    if (input instanceof QuantConfig) return input;
    const d = parseWith(QuantConfigSchema, input, "QuantConfig");
    assertImplemented(d.quantAlgo);
    if (d.preQuantScale) {
      throw new UnsupportedError(
        "QuantConfig.preQuantScale: a separate pre-quant scale is not implemented yet; AWQ scales are folded into the preceding layer (leave it false)",
        "QuantConfig.preQuantScale",
        true,
      );
    }
    if (d.quantAlgo === "MIXED_PRECISION") {
      if (!d.quantizedLayers || Object.keys(d.quantizedLayers).length === 0) {
        throw new ValidationError(
          "QuantConfig.quantizedLayers: MIXED_PRECISION needs at least one module → algorithm entry",
          "QuantConfig.quantizedLayers",
          d.quantizedLayers,
        );
      }
      for (const [k, v] of Object.entries(d.quantizedLayers)) {
        assertImplemented(v.quantAlgo, `QuantConfig.quantizedLayers.${k}.quantAlgo`);
        if (v.quantAlgo === "MIXED_PRECISION") {
          throw new ValidationError(
            `QuantConfig.quantizedLayers.${k}.quantAlgo: MIXED_PRECISION cannot nest`,
            `QuantConfig.quantizedLayers.${k}.quantAlgo`,
            v.quantAlgo,
          );
        }
      }
    } else if (d.quantizedLayers) {
      throw new ValidationError(
        `QuantConfig.quantizedLayers: only used with MIXED_PRECISION, quantAlgo is ${d.quantAlgo}`,
        "QuantConfig.quantizedLayers",
        d.quantizedLayers,
      );
    }
    return new QuantConfig(d);
  }

  /** Whether any weight is quantized. */
  get isQuantized(): boolean {
    return this.quantAlgo !== "NO_QUANT";
  }

  /** A JSON-ready plain object that {@link QuantConfig.from} reads back to an equal config. */
  toDict(): QuantConfigDict {
    const d: Record<string, unknown> = {
      quantAlgo: this.quantAlgo,
      kvCacheQuantAlgo: this.kvCacheQuantAlgo,
      hasZeroPoint: this.hasZeroPoint,
      preQuantScale: this.preQuantScale,
      alpha: this.alpha,
      excludeModules: [...this.excludeModules],
    };
    if (this.groupSize !== undefined) d.groupSize = this.groupSize;
    if (this.quantizedLayers) d.quantizedLayers = structuredClone(this.quantizedLayers);
    return d as QuantConfigDict;
  }

  /** How the linear `module` (HF path, no `.weight`) is quantized, or null when it stays in float. */
  layerQuant(module: string): LayerQuant | null {
    if (this.excludeModules.some((p) => matchModule(p, module))) return null;
    let algo: QuantAlgo = this.quantAlgo, groupSize = this.groupSize, hasZeroPoint = this.hasZeroPoint;
    if (algo === "MIXED_PRECISION") {
      const hit = Object.entries(this.quantizedLayers ?? {}).find(([p]) => matchModule(p, module));
      if (!hit) return null;
      algo = hit[1].quantAlgo;
      groupSize = hit[1].groupSize ?? groupSize;
      hasZeroPoint = hit[1].hasZeroPoint ?? hasZeroPoint;
    }
    if (isFp8(algo)) return { algo, bits: 8, groupSize: null, hasZeroPoint: false };
    if (isLowbitActivation(algo)) return lowbitLayerQuant(algo, module, groupSize, hasZeroPoint);
    const bits = WEIGHT_ONLY_BITS[algo];
    if (bits === undefined) return null;
    const grouped = algo === "W4A16_AWQ" || algo === "W4A16_GPTQ";
    return { algo, bits, groupSize: groupSize ?? (grouped ? 128 : null), hasZeroPoint };
  }
}

/** W8A8_SQ_PER_CHANNEL (int8 per channel), W4A8_AWQ (int4, groupSize default 128), NVFP4 (blocks of 16): symmetric only. */
function lowbitLayerQuant(algo: QuantAlgo, module: string, groupSize: number | undefined, hasZeroPoint: boolean): LayerQuant {
  if (hasZeroPoint) {
    throw new ValidationError(
      `QuantConfig.hasZeroPoint: ${algo} (module '${module}') is symmetric; leave hasZeroPoint false`,
      "QuantConfig.hasZeroPoint",
      true,
    );
  }
  if (algo === "W8A8_SQ_PER_CHANNEL") return { algo, bits: 8, groupSize: null, hasZeroPoint: false };
  if (algo === "W4A8_AWQ") return { algo, bits: 4, groupSize: groupSize ?? 128, hasZeroPoint: false };
  if (groupSize !== undefined && groupSize !== 16) {
    throw new ValidationError(
      `QuantConfig.groupSize: NVFP4 (module '${module}') has one scale per 16 values, got groupSize ${groupSize}`,
      "QuantConfig.groupSize",
      groupSize,
    );
  }
  return { algo, bits: 4, groupSize: 16, hasZeroPoint: false };
}

/**
 * The group size a layer uses for an in-dimension `K`; throws a ValidationError naming the
 * layer, the dim and the group size when K is not a multiple of it.
 */
export function effectiveGroupSize(lq: LayerQuant, module: string, K: number): number {
  const g = lq.groupSize ?? K;
  if (K % g !== 0) {
    throw new ValidationError(
      `quantize: layer '${module}' has in-features ${K}, not a multiple of groupSize ${g} (choose a groupSize dividing ${K}, or exclude the module)`,
      "QuantConfig.groupSize",
      g,
    );
  }
  return g;
}
