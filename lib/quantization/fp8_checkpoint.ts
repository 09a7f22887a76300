/**
 * Pre-quantized FP8 Hugging Face checkpoints (`config.json` `quantization_config`), loaded as a
 * {@link QuantizedModel}; every quantized linear keeps `<module>.weight` as F8_E4M3 [N, K]:
 *
 * `quant_method: "fp8"` (vLLM / AutoFP8 / transformers):
 * - per-tensor: `<m>.weight_scale` F32 scalar, w = e4m3 · weight_scale; `activation_scheme`
 *   "static" adds `<m>.input_scale` F32 scalar (x ≈ e4m3 · input_scale), "dynamic" scales each
 *   token at run time. Loads as FP8 (static) or FP8_PER_CHANNEL_PER_TOKEN (dynamic).
 * - block-wise, `weight_block_size: [bn, bk]` (DeepSeek-V3, Qwen3-FP8, transformers FineGrainedFP8):
 *   `<m>.weight_scale_inv` F32 [⌈N/bn⌉, ⌈K/bk⌉], w = e4m3 · weight_scale_inv of its block; activations
 *   dynamic per token and group of bk. Loads as FP8_BLOCK_SCALES.
 *
 * `quant_method: "compressed-tensors"`, `format: "float-quantized"` (llm-compressor), one config group
 * targeting `Linear` with 8-bit float weights:
 * - weights `strategy` "channel" (`<m>.weight_scale` [N, 1]), "tensor" ([1]) or "block"
 *   (`block_structure` [bn, bk], `weight_scale` [⌈N/bn⌉, ⌈K/bk⌉]), in the checkpoint's float dtype;
 * - `input_activations` dynamic "token" (or "group" for block weights), or static "tensor" with
 *   `<m>.input_scale` [1];
 * - `kv_cache_scheme` 8-bit float "tensor": `self_attn.k_scale` / `v_scale` per layer become the
 *   FP8 KV-cache scales (kvCacheQuantAlgo FP8).
 *
 * Fused projections (q/k/v, gate/up) share one static activation scale: the largest of their
 * `input_scale`s, as vLLM does.
 */
import { z } from "zod";
import type { LlamaForCausalLM } from "../models/llama.ts";
import { FormatError, UnsupportedError } from "../util/errors.ts";
import { parseWith } from "../util/validate.ts";
import { fromFp8Blocks } from "./fp8_block.ts";
import type { QuantizedTensor } from "./packed.ts";
import type { QuantAlgo } from "./quant_algo.ts";
import { QuantConfig } from "./quant_config.ts";
import { OverlayWeightSource, QuantizedModel } from "./quantized_model.ts";

const Fp8Schema = z.looseObject({
  quant_method: z.literal("fp8"),
  activation_scheme: z.enum(["static", "dynamic"]).default("dynamic"),
  fmt: z.literal("e4m3").optional(),
  weight_block_size: z.tuple([z.number().int().positive(), z.number().int().positive()]).nullish(),
  ignored_layers: z.array(z.string()).nullish(),
  modules_to_not_convert: z.array(z.string()).nullish(),
});

const ArgsSchema = z.looseObject({
  num_bits: z.number().int(),
  type: z.enum(["float", "int"]),
  strategy: z.string(),
  symmetric: z.boolean().default(true),
  dynamic: z.union([z.boolean(), z.literal("local")]).default(false),
  block_structure: z.array(z.number().int().positive()).nullish(),
  group_size: z.number().int().nullish(),
});
const CompressedSchema = z.looseObject({
  quant_method: z.literal("compressed-tensors"),
  format: z.string(),
  config_groups: z.record(
    z.string(),
    z.looseObject({ targets: z.array(z.string()), weights: ArgsSchema.nullish(), input_activations: ArgsSchema.nullish() }),
  ),
  ignore: z.array(z.string()).nullish(),
  kv_cache_scheme: ArgsSchema.nullish(),
});

const LINEARS = ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"];
const FUSED = [["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"], ["mlp.gate_proj", "mlp.up_proj"]];

/** How one checkpoint lays out its FP8 linears. */
interface Layout {
  readonly algo: QuantAlgo;
  /** Name of the weight-scale tensor and its meaning. */
  readonly scaleName: "weight_scale" | "weight_scale_inv";
  readonly weights: "tensor" | "channel" | "block";
  readonly block?: readonly [number, number];
  readonly staticInput: boolean;
  readonly ignore: readonly string[];
  readonly kvCache: boolean;
}

function layoutOf(raw: Record<string, unknown>, where: string): Layout {
  const unsupported = (field: string, v: unknown, what: string): never => {
    throw new UnsupportedError(`${where}: ${what}`, `quantization_config.${field}`, v);
  };
  if (raw.quant_method === "fp8") {
    const c = parseWith(Fp8Schema, raw, where);
    const ignore = [...(c.ignored_layers ?? []), ...(c.modules_to_not_convert ?? [])];
    if (c.weight_block_size) {
      if (c.activation_scheme !== "dynamic") unsupported("activation_scheme", c.activation_scheme, 'block-wise FP8 needs activation_scheme "dynamic"');
      return {
        algo: "FP8_BLOCK_SCALES",
        scaleName: "weight_scale_inv",
        weights: "block",
        block: c.weight_block_size,
        staticInput: false,
        ignore,
        kvCache: false,
      };
    }
    const staticInput = c.activation_scheme === "static";
    return { algo: staticInput ? "FP8" : "FP8_PER_CHANNEL_PER_TOKEN", scaleName: "weight_scale", weights: "tensor", staticInput, ignore, kvCache: false };
  }
  const c = parseWith(CompressedSchema, raw, where);
  if (c.format !== "float-quantized") unsupported("format", c.format, `compressed-tensors format "${c.format}" is not supported (only "float-quantized": FP8)`);
  const groups = Object.values(c.config_groups);
  if (groups.length !== 1 || !groups[0].targets.includes("Linear")) {
    unsupported("config_groups", Object.keys(c.config_groups), 'only one config group targeting "Linear" is supported');
  }
  const { weights: w, input_activations: a } = groups[0];
  if (!w || w.type !== "float" || w.num_bits !== 8 || !w.symmetric || w.dynamic !== false) {
    unsupported("config_groups.weights", w, "weights must be static symmetric 8-bit float (e4m3)");
  }
  if (!a) unsupported("config_groups.input_activations", a, "FP8 weights with unquantized activations (W8A16 FP8) are not supported");
  if (a!.type !== "float" || a!.num_bits !== 8) unsupported("config_groups.input_activations", a, "activations must be 8-bit float");
  const strategy = w!.strategy;
  let block: [number, number] | undefined;
  if (strategy === "block") {
    const b = w!.block_structure;
    if (!b || b.length !== 2) unsupported("config_groups.weights.block_structure", b, "block weights need block_structure [rows, cols]");
    block = [b![0], b![1]];
    if (a!.dynamic !== true || a!.strategy !== "group" || a!.group_size !== block[1]) {
      unsupported("config_groups.input_activations", a, `block weights need dynamic "group" activations of group_size ${block[1]}`);
    }
  } else if (strategy !== "channel" && strategy !== "tensor") {
    unsupported("config_groups.weights.strategy", strategy, `weight strategy "${strategy}" is not supported (tensor, channel, block)`);
  }
  const staticInput = a!.dynamic === false;
  if (staticInput ? a!.strategy !== "tensor" : strategy !== "block" && a!.strategy !== "token") {
    unsupported("config_groups.input_activations.strategy", a!.strategy, 'activations must be dynamic "token" or static "tensor"');
  }
  const kv = c.kv_cache_scheme;
  if (kv && (kv.type !== "float" || kv.num_bits !== 8 || kv.strategy !== "tensor" || kv.dynamic !== false)) {
    unsupported("kv_cache_scheme", kv, 'only a static 8-bit float "tensor" KV-cache scheme is supported');
  }
  const algo: QuantAlgo = block ? "FP8_BLOCK_SCALES" : staticInput ? "FP8" : "FP8_PER_CHANNEL_PER_TOKEN";
  return {
    algo,
    scaleName: "weight_scale",
    weights: block ? "block" : strategy as "tensor" | "channel",
    block,
    staticInput,
    ignore: c.ignore ?? [],
    kvCache: !!kv,
  };
}

/**
 * Loads an FP8 checkpoint (`quant_method` "fp8" or "compressed-tensors") opened as `base`.
 *
 * @example
 * ```ts
 * const model = openModel("/models/Qwen3-0.6B-FP8"); // dispatches here: a QuantizedModel (FP8_BLOCK_SCALES)
 * ```
 */
export function loadFp8Checkpoint(base: LlamaForCausalLM, raw: Record<string, unknown>, dir: string): QuantizedModel {
  const where = `${dir}/config.json quantization_config`;
  const L = layoutOf(raw, where);
  const w = base.weights;
  if (!w.readBytes) throw new FormatError(`${dir}: the weight source cannot read raw bytes`, dir);
  const scalar = (name: string): number => {
    if (!w.has(name)) throw new FormatError(`${dir}: '${name}' is missing (${L.algo} checkpoint)`, name);
    const v = w.readFloat32(name);
    if (v.length !== 1 || !(v[0] > 0) || !Number.isFinite(v[0])) {
      throw new FormatError(`${dir}: '${name}' must hold one positive scale, got [${[...v].slice(0, 4)}]`, name);
    }
    return v[0];
  };
  const modules = [];
  for (let l = 0; l < base.config.numHiddenLayers; l++) for (const m of LINEARS) modules.push(`model.layers.${l}.${m}`);
  modules.push("lm_head");
  const quantized = new Map<string, QuantizedTensor>();
  for (const m of modules) {
    const name = `${m}.weight`;
    if (!w.has(name) || w.info(name).dtype !== "F8_E4M3") continue;
    const [N, K] = w.info(name).shape;
    const bytes = w.readBytes(name).slice();
    const sName = `${m}.${L.scaleName}`;
    if (!w.has(sName)) throw new FormatError(`${dir}: '${name}' is F8_E4M3 but '${sName}' is missing`, sName);
    const s = w.readFloat32(sName);
    let t: QuantizedTensor;
    if (L.weights === "block") {
      t = fromFp8Blocks(bytes, s, N, K, L.block!);
    } else {
      const perChannel = L.weights === "channel";
      if (s.length !== (perChannel ? N : 1)) {
        throw new FormatError(`${dir}: '${sName}' has ${s.length} values, expected ${perChannel ? `${N} (one per output channel)` : "1"}`, sName);
      }
      const scales = perChannel ? Float32Array.from(s) : new Float32Array(N).fill(s[0]);
      t = {
        bits: 8,
        rows: N,
        cols: K,
        groupSize: K,
        packed: bytes,
        scales,
        zeros: null,
        format: "fp8_e4m3",
        activationScale: L.staticInput ? scalar(`${m}.input_scale`) : null,
        weightScale: perChannel ? "per_channel" : "per_tensor",
      };
    }
    quantized.set(name, t);
  }
  if (quantized.size === 0) throw new FormatError(`${dir}: quantization_config says ${raw.quant_method} but no linear weight is F8_E4M3`, dir);
  // Fused projections run as one linear: one static activation scale, the largest of theirs.
  for (let l = 0; l < base.config.numHiddenLayers && L.staticInput; l++) {
    for (const f of FUSED) {
      const parts = f.map((m) => quantized.get(`model.layers.${l}.${m}.weight`));
      if (parts.some((p) => !p)) continue;
      const a = Math.max(...parts.map((p) => p!.activationScale!));
      f.forEach((m, i) => quantized.set(`model.layers.${l}.${m}.weight`, { ...parts[i]!, activationScale: a }));
    }
  }
  let kvScales: number[] | null = null;
  if (L.kvCache) {
    kvScales = [];
    for (let l = 0; l < base.config.numHiddenLayers; l++) {
      for (const kv of ["k_scale", "v_scale"]) kvScales.push(...new Array(base.config.numKeyValueHeads).fill(scalar(`model.layers.${l}.self_attn.${kv}`)));
    }
  }
  const quantConfig = QuantConfig.from({
    quantAlgo: L.algo,
    kvCacheQuantAlgo: L.kvCache ? "FP8" : null,
    excludeModules: ["lm_head", ...L.ignore.filter((x) => x !== "lm_head")],
  });
  return new QuantizedModel(base.config, new OverlayWeightSource(w, new Map(), quantized), base.options, quantConfig, new Map(), kvScales);
}
