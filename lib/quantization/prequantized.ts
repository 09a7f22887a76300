/**
 * Pre-quantized Hugging Face checkpoints: `config.json` `quantization_config.quant_method` "awq"
 * (GEMM packing, zero points) or "gptq" (4/8-bit, sym or asym, desc_act false) load as a
 * {@link QuantizedModel}; their packed tensors are converted to llmrt's layout once at load.
 * FP8 ("fp8" per-tensor or block-wise, "compressed-tensors" float8): fp8_checkpoint.ts.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { z } from "zod";
import { LlamaForCausalLM, type ModelOptions } from "../models/llama.ts";
import { FormatError, UnsupportedError } from "../util/errors.ts";
import { parseWith } from "../util/validate.ts";
import { loadFp8Checkpoint } from "./fp8_checkpoint.ts";
import { fromAwqGemm, fromGptq, type PackedLinear } from "./hf_formats.ts";
import type { QuantizedTensor } from "./packed.ts";
import { QuantConfig, type QuantConfigInput } from "./quant_config.ts";
import { OverlayWeightSource, QuantizedModel } from "./quantized_model.ts";

const HfQuantSchema = z.looseObject({
  quant_method: z.string(),
  bits: z.number().int().optional(),
  group_size: z.number().int().optional(),
  zero_point: z.boolean().optional(),
  version: z.string().optional(),
  sym: z.boolean().optional(),
  desc_act: z.boolean().optional(),
  checkpoint_format: z.string().optional(),
  modules_to_not_convert: z.array(z.string()).nullish(),
  /** Written by `llmrt quantize`: the algorithm that produced the weights. */
  llmrt_quant_algo: z.string().optional(),
});
export type HfQuantizationConfig = z.output<typeof HfQuantSchema>;

/** The `quantization_config` of `<dir>/config.json`, or null when the checkpoint is not quantized. */
export function readHfQuantizationConfig(dir: string): HfQuantizationConfig | null {
  const file = path.join(dir, "config.json");
  let raw: { quantization_config?: unknown };
  try {
    raw = JSON.parse(fs.readFileSync(file, "utf8"));
  } catch {
    return null;
  }
  if (!raw || typeof raw !== "object" || raw.quantization_config == null) return null;
  return parseWith(HfQuantSchema, raw.quantization_config, `${file} quantization_config`);
}

/** The HF modules (without `.weight`) a Llama-family checkpoint quantizes. */
function linearModules(model: LlamaForCausalLM): string[] {
  const out: string[] = [];
  for (let l = 0; l < model.config.numHiddenLayers; l++) {
    for (const m of ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"]) {
      out.push(`model.layers.${l}.${m}`);
    }
  }
  out.push("lm_head");
  return out;
}

/** int32 words of a tensor's bytes: a view when aligned (readBytes returns fresh aligned buffers), else a copy. */
const i32 = (b: Uint8Array): Int32Array =>
  b.byteOffset % 4 === 0
    ? new Int32Array(b.buffer, b.byteOffset, b.byteLength >> 2)
    : new Int32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
const u16 = (b: Uint8Array): Uint16Array => new Uint16Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));

/**
 * Opens a checkpoint directory: a pre-quantized AWQ/GPTQ checkpoint as a {@link QuantizedModel},
 * any other as a plain model.
 *
 * @example
 * ```ts
 * const model = openModel("/models/Llama-3.2-1B-AWQ"); // QuantizedModel (W4A16_AWQ)
 * const engine = await build(model);
 * ```
 */
export function openModel(dir: string, options: ModelOptions = {}): LlamaForCausalLM {
  const hq = readHfQuantizationConfig(dir);
  const base = LlamaForCausalLM.fromHuggingFace(dir, options);
  if (!hq) return base;
  try {
    return loadPrequantized(base, hq, dir);
  } catch (e) {
    base.close();
    throw e;
  }
}

function loadPrequantized(base: LlamaForCausalLM, hq: HfQuantizationConfig, dir: string): QuantizedModel {
  const where = `${path.join(dir, "config.json")} quantization_config`;
  const method = hq.quant_method.toLowerCase();
  if (method === "fp8" || method === "compressed-tensors") return loadFp8Checkpoint(base, { ...hq, quant_method: method }, dir);
  const bits = hq.bits ?? 4;
  let qc: QuantConfigInput;
  let read: (p: PackedLinear, N: number, K: number, G: number) => QuantizedTensor;
  if (method === "awq") {
    if ((hq.version ?? "gemm").toLowerCase() !== "gemm") {
      throw new UnsupportedError(`${where}: AWQ version "${hq.version}" is not supported (only "gemm")`, "quantization_config.version", hq.version);
    }
    if (bits !== 4) throw new UnsupportedError(`${where}: AWQ with ${bits} bits is not supported (4 only)`, "quantization_config.bits", bits);
    qc = { quantAlgo: "W4A16_AWQ", hasZeroPoint: hq.zero_point ?? true };
    read = fromAwqGemm;
  } else if (method === "gptq") {
    if (hq.desc_act) {
      throw new UnsupportedError(
        `${where}: desc_act: true (act-order) GPTQ checkpoints are not supported; re-quantize with desc_act: false`,
        "quantization_config.desc_act",
        true,
      );
    }
    if (bits !== 4 && bits !== 8) throw new UnsupportedError(`${where}: GPTQ with ${bits} bits is not supported (4 or 8)`, "quantization_config.bits", bits);
    const fmt = hq.checkpoint_format ?? "gptq";
    if (fmt !== "gptq") {
      throw new UnsupportedError(`${where}: checkpoint_format "${fmt}" is not supported (only "gptq")`, "quantization_config.checkpoint_format", fmt);
    }
    const sym = hq.sym ?? true;
    qc = { quantAlgo: bits === 4 ? "W4A16_GPTQ" : "W8A16", hasZeroPoint: !sym };
    read = (p, N, K, G) => fromGptq(p, N, K, G, bits as 4 | 8, sym);
  } else {
    throw new UnsupportedError(
      `${where}: quant_method "${hq.quant_method}" is not supported (awq, gptq, fp8, compressed-tensors)`,
      "quantization_config.quant_method",
      hq.quant_method,
    );
  }
  const algo = hq.llmrt_quant_algo;
  if (algo === "W4A16" || algo === "W8A16" || algo === "W4A16_AWQ" || algo === "W4A16_GPTQ") qc = { ...qc, quantAlgo: algo };
  const w = base.weights;
  const quantized = new Map<string, QuantizedTensor>();
  let groupSize: number | null = null;
  for (const m of linearModules(base)) {
    if (!w.has(`${m}.qweight`)) continue;
    if (!w.readBytes) throw new FormatError(`${dir}: the weight source cannot read raw bytes`, dir);
    const scales = u16(w.readBytes(`${m}.scales`));
    const sInfo = w.info(`${m}.scales`);
    if (sInfo.dtype !== "F16") throw new FormatError(`${dir}: '${m}.scales' is ${sInfo.dtype}, expected F16`, dir);
    const [ng, N] = sInfo.shape;
    const K = method === "awq" ? w.info(`${m}.qweight`).shape[0] : (w.info(`${m}.qweight`).shape[0] * 32) / bits;
    const G = K / ng;
    if (!Number.isInteger(G)) throw new FormatError(`${dir}: '${m}' has ${K} in-features and ${ng} scale groups`, dir);
    groupSize ??= G;
    const packed: PackedLinear = {
      qweight: i32(w.readBytes(`${m}.qweight`)),
      qzeros: i32(w.readBytes(`${m}.qzeros`)),
      scales,
      gIdx: w.has(`${m}.g_idx`) ? i32(w.readBytes(`${m}.g_idx`)) : undefined,
    };
    quantized.set(`${m}.weight`, read(packed, N, K, G));
  }
  if (quantized.size === 0) throw new FormatError(`${dir}: quantization_config says ${method} but no tensor ends in .qweight`, dir);
  const perChannel = [...quantized.values()].every((t) => t.groupSize === t.cols);
  const excluded = hq.modules_to_not_convert ?? [];
  const quantConfig = QuantConfig.from({
    ...qc,
    ...(perChannel && (qc.quantAlgo === "W8A16" || qc.quantAlgo === "W4A16") ? {} : { groupSize: groupSize ?? undefined }), // per-channel GPTQ: groupSize = K
    excludeModules: ["lm_head", ...excluded.filter((x) => x !== "lm_head")],
  });
  return new QuantizedModel(base.config, new OverlayWeightSource(w, new Map(), quantized), base.options, quantConfig);
}
