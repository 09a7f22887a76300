/**
 * LoRA adapters in PEFT's format (`adapter_config.json` + `adapter_model.safetensors`, lora_A /
 * lora_B per target module) for the Llama family: loaded at run time and mapped onto the engine's
 * (fused) linears — q/k/v_proj onto segments of `layers.N.qkv.weight`, gate/up_proj onto
 * `layers.N.gate_up.weight`, o_proj and down_proj onto their own — plus the slot table an executor
 * keeps them in (at most `maxLoras` resident, least recently used evicted when not in use).
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { z } from "zod";
import type { LoraAdapterWeights, LoraSegment } from "../ir/step_io.ts";
import { FormatError, ResourceError, UnsupportedError, ValidationError } from "../util/errors.ts";
import type { PretrainedConfig } from "./config.ts";
import { SafetensorsFile } from "./safetensors.ts";

/** PEFT target module names LoRA may adapt. */
export const LORA_TARGET_MODULES = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"] as const;
export type LoraTargetModule = typeof LORA_TARGET_MODULES[number];

/** A request's adapter: a name (its identity: same name, same adapter) and the PEFT directory. */
export interface LoraRequest {
  readonly name: string;
  readonly path: string;
}

/** The subset of PEFT's LoraConfig the loader honours; anything it cannot apply is an error. */
const PeftConfigSchema = z.looseObject({
  peft_type: z.literal("LORA").optional(),
  r: z.number().int().positive(),
  lora_alpha: z.number().positive(),
  target_modules: z.array(z.enum(LORA_TARGET_MODULES)).min(1),
  use_rslora: z.boolean().default(false),
  use_dora: z.literal(false).optional(),
  bias: z.literal("none").default("none"),
  fan_in_fan_out: z.literal(false).default(false),
  modules_to_save: z.null().optional(),
  rank_pattern: z.record(z.string(), z.unknown()).refine((o) => Object.keys(o).length === 0, "per-module ranks (rank_pattern) are not supported").optional(),
  alpha_pattern: z.record(z.string(), z.unknown()).refine((o) => Object.keys(o).length === 0, "per-module alphas (alpha_pattern) are not supported").optional(),
  layers_to_transform: z.null().optional(),
});

/** A loaded adapter. */
export interface LoraAdapter {
  readonly name: string;
  readonly path: string;
  readonly rank: number;
  readonly alpha: number;
  /** alpha / r, or alpha / sqrt(r) with rsLoRA. */
  readonly scaling: number;
  readonly targetModules: readonly LoraTargetModule[];
  readonly weights: LoraAdapterWeights;
  /** Float32 parameters held (A and B of every module). */
  readonly numParams: number;
}

/** Where a target module lands in the engine: the linear's weight name, output column range and input width. */
export function loraTarget(
  c: PretrainedConfig,
  layer: number,
  module: LoraTargetModule,
): { weight: string; outOffset: number; outFeatures: number; inFeatures: number } {
  const H = c.hiddenSize, hd = c.headDim, nH = c.numAttentionHeads, nKV = c.numKeyValueHeads, I = c.intermediateSize;
  const e = `layers.${layer}.`;
  switch (module) {
    case "q_proj":
      return { weight: `${e}qkv.weight`, outOffset: 0, outFeatures: nH * hd, inFeatures: H };
    case "k_proj":
      return { weight: `${e}qkv.weight`, outOffset: nH * hd, outFeatures: nKV * hd, inFeatures: H };
    case "v_proj":
      return { weight: `${e}qkv.weight`, outOffset: (nH + nKV) * hd, outFeatures: nKV * hd, inFeatures: H };
    case "o_proj":
      return { weight: `${e}o_proj.weight`, outOffset: 0, outFeatures: H, inFeatures: nH * hd };
    case "gate_proj":
      return { weight: `${e}gate_up.weight`, outOffset: 0, outFeatures: I, inFeatures: H };
    case "up_proj":
      return { weight: `${e}gate_up.weight`, outOffset: I, outFeatures: I, inFeatures: H };
    case "down_proj":
      return { weight: `${e}down.weight`, outOffset: 0, outFeatures: H, inFeatures: I };
  }
}

/** Element types a LoRA A / B may have (an integer tensor would need scales PEFT's format does not carry). */
const FLOAT_DTYPES: ReadonlySet<string> = new Set(["F32", "F16", "BF16", "F64"]);

const KEY = /^(?:base_model\.model\.)?model\.layers\.(\d+)\.(?:self_attn|mlp)\.([a-z_]+)\.lora_([AB])(?:\.default)?\.weight$/;

/**
 * Loads a PEFT LoRA adapter for a model with config `model`. Throws a ValidationError naming the
 * file and field for a bad config, shapes that do not fit the model, or a rank above `maxLoraRank`;
 * an UnsupportedError for PEFT features it cannot apply (DoRA, bias, rank patterns, modules to save,
 * LoRA on embeddings or lm_head).
 *
 * @example
 * ```ts
 * const a = loadPeftAdapter("/adapters/sql", engine.config.model, { name: "sql", maxLoraRank: 64 });
 * a.weights.get("layers.0.qkv.weight"); // segments for q_proj / k_proj / v_proj
 * ```
 */
export function loadPeftAdapter(dir: string, model: PretrainedConfig, options: { readonly name: string; readonly maxLoraRank: number }): LoraAdapter {
  const cfgPath = path.join(dir, "adapter_config.json");
  const stPath = path.join(dir, "adapter_model.safetensors");
  if (!fs.existsSync(cfgPath) || !fs.existsSync(stPath)) {
    throw new ValidationError(
      `loraRequest.path: ${JSON.stringify(dir)} is not a PEFT adapter directory (needs adapter_config.json and adapter_model.safetensors)`,
      "loraRequest.path",
      dir,
    );
  }
  let raw: unknown;
  try {
    raw = JSON.parse(fs.readFileSync(cfgPath, "utf8"));
  } catch (e) {
    throw new FormatError(`${cfgPath}: not JSON (${(e as Error).message})`, "adapter_config.json");
  }
  const r = PeftConfigSchema.safeParse(raw);
  if (!r.success) {
    const issue = r.error.issues[0];
    const field = issue.path.join(".");
    const Err = ["use_dora", "bias", "fan_in_fan_out", "modules_to_save", "rank_pattern", "alpha_pattern", "layers_to_transform"].includes(field)
      ? UnsupportedError
      : ValidationError;
    throw new Err(`${cfgPath}: ${field === "" ? "the file" : field}: ${issue.message}`, field === "" ? "adapter_config" : `adapter_config.${field}`);
  }
  const cfg = r.data;
  if (cfg.r > options.maxLoraRank) {
    throw new ValidationError(`loraRequest ${JSON.stringify(options.name)}: rank ${cfg.r} exceeds maxLoraRank ${options.maxLoraRank}`, "maxLoraRank", cfg.r);
  }
  const scaling = cfg.use_rslora ? cfg.lora_alpha / Math.sqrt(cfg.r) : cfg.lora_alpha / cfg.r;
  const targets = new Set<string>(cfg.target_modules);
  const pairs = new Map<string, { layer: number; module: LoraTargetModule; a?: Float32Array; b?: Float32Array }>();
  const f = SafetensorsFile.open(stPath);
  try {
    for (const key of f.names()) {
      const m = KEY.exec(key);
      if (!m) {
        throw new UnsupportedError(
          `${stPath}: tensor '${key}' is not a lora_A / lora_B of a decoder layer's projection (LoRA on embeddings or lm_head is not supported)`,
          "adapter_model",
          key,
        );
      }
      const layer = Number(m[1]), module = m[2] as LoraTargetModule;
      if (!(LORA_TARGET_MODULES as readonly string[]).includes(module) || !targets.has(module)) {
        throw new ValidationError(
          `${stPath}: tensor '${key}' adapts '${module}', which is not in target_modules [${cfg.target_modules.join(", ")}]`,
          "target_modules",
          module,
        );
      }
      if (layer >= model.numHiddenLayers) {
        throw new ValidationError(`${stPath}: tensor '${key}' names layer ${layer}; the model has ${model.numHiddenLayers}`, "adapter_model", key);
      }
      const t = loraTarget(model, layer, module);
      const shape = f.info(key).shape;
      const want = m[3] === "A" ? [cfg.r, t.inFeatures] : [t.outFeatures, cfg.r];
      if (shape.join() !== want.join()) {
        throw new ValidationError(
          `${stPath}: tensor '${key}' has shape [${shape}], expected [${want}] (r ${cfg.r}, the model's ${module})`,
          "adapter_model",
          key,
        );
      }
      const id = `${layer}.${module}`;
      const p = pairs.get(id) ?? { layer, module };
      if (m[3] === "A" ? p.a : p.b) {
        throw new ValidationError(`${stPath}: layer ${layer} ${module} has lora_${m[3]} twice (tensor '${key}')`, "adapter_model", key);
      }
      const dtype = f.info(key).dtype;
      if (!FLOAT_DTYPES.has(dtype)) {
        throw new ValidationError(`${stPath}: tensor '${key}' is ${dtype}; LoRA weights must be floating point (F32, F16, BF16 or F64)`, "adapter_model", key);
      }
      const w = f.readFloat32(key);
      let bad = -1;
      for (let i = 0; i < w.length && bad < 0; i++) if (w[i] - w[i] !== 0) bad = i; // NaN or ±inf
      if (bad >= 0) throw new ValidationError(`${stPath}: tensor '${key}' holds ${w[bad]} at element ${bad} (a corrupt adapter)`, "adapter_model", key);
      if (m[3] === "A") p.a = w;
      else p.b = w;
      pairs.set(id, p);
    }
  } finally {
    f.close();
  }
  if (pairs.size === 0) throw new ValidationError(`${stPath}: no lora_A / lora_B tensors`, "adapter_model", stPath);
  // PEFT saves every targeted module of every layer (partial layers need layers_to_transform, refused above):
  // a gap is a truncated adapter or one made for a model with fewer layers, not something to run half of.
  for (let layer = 0; layer < model.numHiddenLayers; layer++) {
    const missing = cfg.target_modules.find((m) => !pairs.has(`${layer}.${m}`));
    if (missing) {
      throw new ValidationError(
        `${stPath}: no lora_A / lora_B for layer ${layer} ${missing}, which target_modules lists (the model has ${model.numHiddenLayers} layers; an adapter for another model?)`,
        "adapter_model",
        `${layer}.${missing}`,
      );
    }
  }
  const weights = new Map<string, LoraSegment[]>();
  let numParams = 0;
  for (const [id, p] of pairs) {
    if (!p.a || !p.b) {
      throw new ValidationError(`${stPath}: layer ${p.layer} ${p.module} has lora_${p.a ? "A" : "B"} but no lora_${p.a ? "B" : "A"}`, "adapter_model", id);
    }
    const t = loraTarget(model, p.layer, p.module);
    const segs = weights.get(t.weight) ?? [];
    segs.push({ outOffset: t.outOffset, outFeatures: t.outFeatures, rank: cfg.r, a: p.a, b: p.b, scaling });
    weights.set(t.weight, segs);
    numParams += p.a.length + p.b.length;
  }
  return { name: options.name, path: dir, rank: cfg.r, alpha: cfg.lora_alpha, scaling, targetModules: [...cfg.target_modules], weights, numParams };
}

/**
 * The adapters resident for one executor: `maxLoras` slots, each holding one adapter with a count
 * of requests using it. An adapter is loaded on first use; when the slots are full, the least
 * recently used slot no request holds is evicted; when every slot is in use, acquiring a new
 * adapter is a ResourceError (the executor has such a request wait until `hasRoomFor` holds).
 *
 * @example
 * ```ts
 * const slots = new LoraSlots(model, { maxLoras: 4, maxLoraRank: 64 });
 * const s = slots.acquire({ name: "sql", path: "/adapters/sql" }); // slot index for StepInputs.adapterIds
 * slots.release(s);
 * ```
 */
export class LoraSlots {
  readonly #slots: ({ adapter: LoraAdapter; refs: number; lastUsed: number } | null)[];
  #clock = 0;

  constructor(readonly model: PretrainedConfig, readonly options: { readonly maxLoras: number; readonly maxLoraRank: number }) {
    this.#slots = new Array(options.maxLoras).fill(null);
  }

  /** Weights per slot (StepInputs.loraSlots). */
  get table(): (LoraAdapterWeights | null)[] {
    return this.#slots.map((s) => s?.adapter.weights ?? null);
  }

  /** Slots holding an adapter. */
  get numLoaded(): number {
    return this.#slots.filter((s) => s !== null).length;
  }

  /** Requests holding a slot now. */
  get numInUse(): number {
    return this.#slots.reduce((a, s) => a + (s?.refs ?? 0), 0);
  }

  /**
   * Checks `req` and loads its adapter without taking a slot (the resident one when its name is
   * loaded): a bad request fails here, before it waits for a slot. `waiting`: the adapters of
   * requests waiting for a slot, whose names are taken as much as resident ones.
   */
  prepare(req: LoraRequest, waiting: Iterable<LoraAdapter> = []): LoraAdapter {
    if (req === null || typeof req !== "object" || typeof req.name !== "string" || req.name === "" || typeof req.path !== "string") {
      throw new ValidationError("loraRequest: expected { name: string, path: string }", "loraRequest", req);
    }
    const resident = this.#slots.find((s) => s?.adapter.name === req.name)?.adapter ?? [...waiting].find((a) => a.name === req.name);
    if (resident) checkSamePath(resident, req);
    return resident ?? loadPeftAdapter(req.path, this.model, { name: req.name, maxLoraRank: this.options.maxLoraRank });
  }

  /** True when adapter `name` is resident or a slot is free or held by no request (so acquire() succeeds). */
  hasRoomFor(name: string): boolean {
    return this.#slots.some((s) => s === null || s.adapter.name === name || s.refs === 0);
  }

  /**
   * The slot of `req`'s adapter (placing `adapter`, from prepare(), when not resident), counted as
   * in use until release(). A ResourceError when every slot holds another adapter in use.
   */
  acquire(req: LoraRequest, adapter: LoraAdapter = this.prepare(req)): number {
    let i = this.#slots.findIndex((s) => s?.adapter.name === req.name);
    if (i >= 0) checkSamePath(this.#slots[i]!.adapter, req);
    if (i < 0) {
      i = this.#slots.findIndex((s) => s === null);
      if (i < 0) {
        let best = -1;
        this.#slots.forEach((s, j) => {
          if (s && s.refs === 0 && (best < 0 || s.lastUsed < this.#slots[best]!.lastUsed)) best = j;
        });
        if (best < 0) {
          throw new ResourceError(
            `loraRequest ${JSON.stringify(req.name)}: all ${this.#slots.length} LoRA slots (maxLoras) hold adapters of requests in flight`,
            "maxLoras",
            this.#slots.length,
          );
        }
        i = best;
      }
      this.#slots[i] = { adapter, refs: 0, lastUsed: 0 };
    }
    const s = this.#slots[i]!;
    s.refs++;
    s.lastUsed = ++this.#clock;
    return i;
  }

  /** A request using slot `i` ended. */
  release(i: number): void {
    const s = this.#slots[i];
    if (s && s.refs > 0) s.refs--;
  }
}

/** One name, one adapter: a request naming a loaded (or waiting) adapter must give its directory. */
function checkSamePath(loaded: LoraAdapter, req: LoraRequest): void {
  if (path.resolve(loaded.path) !== path.resolve(req.path)) {
    throw new ValidationError(
      `loraRequest.name: ${JSON.stringify(req.name)} is loaded from ${loaded.path}, not ${req.path} (one name, one adapter)`,
      "loraRequest.name",
      req.name,
    );
  }
}
