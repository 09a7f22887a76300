/**
 * LoRA test adapters in PEFT's layout, and the merged-weight checkpoint to check them against.
 *
 *   bun tools/lora-packer/pack.ts --model DIR --out ADAPTER_DIR [--rank 8] [--alpha 16]
 *       [--targets q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj] [--seed 1] [--std 0.05]
 *       [--merged-out MERGED_DIR]
 *
 * Writes ADAPTER_DIR/adapter_config.json and ADAPTER_DIR/adapter_model.safetensors (keys
 * `base_model.model.model.layers.N.{self_attn,mlp}.X_proj.lora_{A,B}.weight`, A [r, in], B [out, r],
 * float32, seeded; unlike PEFT's initialization B is not zero, so the adapter changes the output).
 * With --merged-out, also a full HF checkpoint whose weights are W + (alpha / r) · B · A (float32),
 * with the base model's config and tokenizer files.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { parseArgs } from "node:util";
import { loadPretrainedConfig } from "../../lib/models/config.ts";
import { LORA_TARGET_MODULES, type LoraTargetModule } from "../../lib/models/lora.ts";
import { Checkpoint, SafetensorsFile, type TensorToWrite, writeSafetensors } from "../../lib/models/safetensors.ts";
import { ValidationError } from "../../lib/util/errors.ts";

/** Options of {@link packPeftAdapter}. */
export interface PackOptions {
  readonly rank: number;
  readonly alpha: number;
  readonly targetModules: readonly LoraTargetModule[];
  readonly seed: number;
  /** Standard deviation of the uniform-random A and B entries. @default 0.05 */
  readonly std?: number;
}

/** A small seeded generator (mulberry32) → uniform values with standard deviation `std`. */
function randomFill(n: number, seed: number, std: number): Float32Array {
  let s = seed >>> 0;
  const out = new Float32Array(n);
  const half = std * Math.sqrt(3); // uniform on [-half, half] has this std
  for (let i = 0; i < n; i++) {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    out[i] = (((t ^ (t >>> 14)) >>> 0) / 4294967296 * 2 - 1) * half;
  }
  return out;
}

/** In/out features of a module in an HF Llama checkpoint. */
function moduleDims(c: ReturnType<typeof loadPretrainedConfig>, m: LoraTargetModule): [inF: number, outF: number] {
  const H = c.hiddenSize, q = c.numAttentionHeads * c.headDim, kv = c.numKeyValueHeads * c.headDim, I = c.intermediateSize;
  switch (m) {
    case "q_proj":
      return [H, q];
    case "k_proj":
      return [H, kv];
    case "v_proj":
      return [H, kv];
    case "o_proj":
      return [q, H];
    case "gate_proj":
      return [H, I];
    case "up_proj":
      return [H, I];
    case "down_proj":
      return [I, H];
  }
}

const parentOf = (m: LoraTargetModule): string => (["gate_proj", "up_proj", "down_proj"].includes(m) ? "mlp" : "self_attn");

/** Writes a PEFT adapter for the model in `modelDir` to `outDir`; returns the tensors written (float32). */
export function packPeftAdapter(modelDir: string, outDir: string, o: PackOptions): Map<string, Float32Array> {
  const c = loadPretrainedConfig(modelDir);
  for (const m of o.targetModules) {
    if (!(LORA_TARGET_MODULES as readonly string[]).includes(m)) throw new ValidationError(`lora-packer: unknown target module ${m}`, "targets", m);
  }
  fs.mkdirSync(outDir, { recursive: true });
  const tensors: Record<string, TensorToWrite> = {};
  const out = new Map<string, Float32Array>();
  let k = 0;
  for (let l = 0; l < c.numHiddenLayers; l++) {
    for (const m of o.targetModules) {
      const [inF, outF] = moduleDims(c, m);
      const base = `base_model.model.model.layers.${l}.${parentOf(m)}.${m}`;
      const a = randomFill(o.rank * inF, o.seed * 7919 + 2 * k, o.std ?? 0.05);
      const b = randomFill(outF * o.rank, o.seed * 7919 + 2 * k + 1, o.std ?? 0.05);
      k++;
      tensors[`${base}.lora_A.weight`] = { dtype: "F32", shape: [o.rank, inF], data: a };
      tensors[`${base}.lora_B.weight`] = { dtype: "F32", shape: [outF, o.rank], data: b };
      out.set(`${base}.lora_A.weight`, a);
      out.set(`${base}.lora_B.weight`, b);
    }
  }
  writeSafetensors(path.join(outDir, "adapter_model.safetensors"), tensors, { format: "pt" });
  const cfg = {
    peft_type: "LORA",
    task_type: "CAUSAL_LM",
    base_model_name_or_path: path.resolve(modelDir),
    r: o.rank,
    lora_alpha: o.alpha,
    lora_dropout: 0.0,
    target_modules: [...o.targetModules],
    bias: "none",
    fan_in_fan_out: false,
    use_rslora: false,
    modules_to_save: null,
    inference_mode: true,
  };
  fs.writeFileSync(path.join(outDir, "adapter_config.json"), JSON.stringify(cfg, null, 2) + "\n");
  return out;
}

/**
 * Writes `outDir`: the checkpoint in `modelDir` with the adapter in `adapterDir` merged into its
 * weights (W + alpha / r · B · A, computed in float64, stored float32), plus its config and tokenizer files.
 */
export function mergePeftAdapter(modelDir: string, adapterDir: string, outDir: string): void {
  const cfg = JSON.parse(fs.readFileSync(path.join(adapterDir, "adapter_config.json"), "utf8"));
  const scaling = cfg.lora_alpha / cfg.r;
  const ad = SafetensorsFile.open(path.join(adapterDir, "adapter_model.safetensors"));
  const base = Checkpoint.open(modelDir);
  try {
    fs.mkdirSync(outDir, { recursive: true });
    const tensors: Record<string, TensorToWrite> = {};
    for (const name of base.names()) tensors[name] = { dtype: "F32", shape: base.info(name).shape, data: base.readFloat32(name) };
    for (const key of ad.names()) {
      const m = /^base_model\.model\.(.*)\.lora_A\.weight$/.exec(key);
      if (!m) continue;
      const target = `${m[1]}.weight`;
      const a = ad.readFloat32(key), b = ad.readFloat32(key.replace("lora_A", "lora_B"));
      const w = tensors[target].data as Float32Array;
      const [outF, inF] = tensors[target].shape;
      const r = cfg.r;
      for (let o = 0; o < outF; o++) {
        for (let i = 0; i < inF; i++) {
          let acc = 0;
          for (let j = 0; j < r; j++) acc += b[o * r + j] * a[j * inF + i];
          w[o * inF + i] = w[o * inF + i] + scaling * acc;
        }
      }
    }
    writeSafetensors(path.join(outDir, "model.safetensors"), tensors, { format: "pt" });
  } finally {
    ad.close();
    base.close();
  }
  const modelCfg = JSON.parse(fs.readFileSync(path.join(modelDir, "config.json"), "utf8"));
  modelCfg.torch_dtype = "float32";
  if ("dtype" in modelCfg) modelCfg.dtype = "float32";
  fs.writeFileSync(path.join(outDir, "config.json"), JSON.stringify(modelCfg, null, 2) + "\n");
  for (const f of ["generation_config.json", "tokenizer.json", "tokenizer_config.json"]) {
    if (fs.existsSync(path.join(modelDir, f))) fs.copyFileSync(path.join(modelDir, f), path.join(outDir, f));
  }
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: (globalThis as { process?: { argv: string[] } }).process!.argv.slice(2),
    options: {
      model: { type: "string" },
      out: { type: "string" },
      rank: { type: "string", default: "8" },
      alpha: { type: "string", default: "16" },
      targets: { type: "string", default: LORA_TARGET_MODULES.join(",") },
      seed: { type: "string", default: "1" },
      std: { type: "string", default: "0.05" },
      "merged-out": { type: "string" },
    },
  });
  if (!values.model || !values.out) throw new ValidationError("lora-packer: --model DIR and --out DIR are required", "model", values.model);
  packPeftAdapter(values.model, values.out, {
    rank: Number(values.rank),
    alpha: Number(values.alpha),
    targetModules: values.targets!.split(",") as LoraTargetModule[],
    seed: Number(values.seed),
    std: Number(values.std),
  });
  console.log(`wrote ${values.out}/adapter_config.json and adapter_model.safetensors`);
  if (values["merged-out"]) {
    mergePeftAdapter(values.model, values.out, values["merged-out"]);
    console.log(`wrote the merged checkpoint ${values["merged-out"]}`);
  }
}
