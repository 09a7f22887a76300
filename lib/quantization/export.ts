/**
 * Writes a quantized model as a Hugging Face style checkpoint that `openModel` / `LLM.create`
 * load again with identical outputs: `model.safetensors` (float tensors as they are, quantized
 * linears in AutoAWQ GEMM or AutoGPTQ layout, FP8 in the fp8 / compressed-tensors layouts of fp8_export.ts), `config.json` with `quantization_config`, and the
 * tokenizer / generation files copied from the source directory.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { type TensorToWrite, writeSafetensors } from "../models/safetensors.ts";
import type { DType } from "../util/dtype.ts";
import { UnsupportedError, ValidationError } from "../util/errors.ts";
import { fp8CheckpointTensors } from "./fp8_export.ts";
import { toAwqGemm, toGptq } from "./hf_formats.ts";
import type { QuantizedModel } from "./quantized_model.ts";

const COPY_FILES = ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json", "chat_template.jinja", "tokenizer.model"];

/** Which public layout a model is written in: AWQ GEMM for W4A16_AWQ, GPTQ otherwise. */
export function exportFormat(model: QuantizedModel): "awq" | "gptq" {
  return model.quantConfig.quantAlgo === "W4A16_AWQ" ? "awq" : "gptq";
}

/**
 * Saves `model` into `outDir` (created). Needs the model's source directory (for config.json and
 * the tokenizer) and one quantization for every quantized linear (MIXED_PRECISION of several
 * formats has no single HF `quantization_config`).
 *
 * @example
 * ```ts
 * const q = await quantize(AutoModelForCausalLM.fromHuggingFace(dir), { quantAlgo: "W4A16_AWQ", groupSize: 64 });
 * saveQuantizedCheckpoint(q, "/tmp/kjv-awq");
 * ```
 */
export function saveQuantizedCheckpoint(model: QuantizedModel, outDir: string): void {
  const src = model.options.sourceDir;
  if (!src) throw new ValidationError("saveQuantizedCheckpoint: the model has no source directory (open it with fromHuggingFace)", "model");
  const base = model.weights.base as { names?: () => string[] };
  if (typeof base.names !== "function") throw new ValidationError("saveQuantizedCheckpoint: the model's weights cannot be listed", "model");
  if (model.quantConfig.kvCacheQuantAlgo !== null) {
    throw new UnsupportedError(
      `saveQuantizedCheckpoint: llmrt's checkpoint exports have no place for KV-cache scales (kvCacheQuantAlgo ${model.quantConfig.kvCacheQuantAlgo}); export without it and quantize the KV cache at build time`,
      "quantConfig.kvCacheQuantAlgo",
      model.quantConfig.kvCacheQuantAlgo,
    );
  }
  const names = model.quantizedNames();
  if (names.length === 0) throw new ValidationError("saveQuantizedCheckpoint: the model has no quantized weights", "model");
  const ts = names.map((n) => model.quantizedTensor(n)!);
  const fp8 = ts.every((t) => t.format === "fp8_e4m3") ? fp8CheckpointTensors(model) : null;
  if (!fp8 && ts.some((t) => t.format !== undefined)) {
    throw new UnsupportedError(
      `saveQuantizedCheckpoint: ${model.quantConfig.quantAlgo} checkpoints (W8A8 / W4A8 / NVFP4 layouts, FP8 mixed with others) are not written yet; build an engine from the quantized model instead`,
      "quantConfig",
      model.quantConfig.quantAlgo,
    );
  }
  const first = ts[0];
  if (
    !fp8 &&
    !ts.every((t) =>
      t.bits === first.bits && (t.zeros === null) === (first.zeros === null) && t.groupSize === (first.groupSize === first.cols ? t.cols : first.groupSize)
    )
  ) {
    throw new UnsupportedError(
      "saveQuantizedCheckpoint: linears are quantized differently (MIXED_PRECISION); an HF quantization_config holds one format",
      "quantConfig",
      model.quantConfig.quantAlgo,
    );
  }
  const format = exportFormat(model);
  const perChannel = first.groupSize === first.cols;
  const tensors: Record<string, TensorToWrite> = {};
  const skip = new Set(names);
  for (const name of base.names()) {
    if (skip.has(name)) continue;
    if (model.weights.floats.has(name)) {
      const f = model.weights.floats.get(name)!;
      tensors[name] = { dtype: "F32", shape: model.weights.info(name).shape, data: f };
    } else {
      const info = model.weights.info(name);
      tensors[name] = { dtype: info.dtype as DType, shape: info.shape, data: model.weights.readBytes(name) };
    }
  }
  if (fp8) Object.assign(tensors, fp8.tensors);
  for (const name of fp8 ? [] : names) {
    const t = model.quantizedTensor(name)!;
    const m = name.replace(/\.weight$/, "");
    const p = format === "awq" ? toAwqGemm(t) : toGptq(t);
    const ng = t.cols / t.groupSize;
    if (format === "awq") {
      tensors[`${m}.qweight`] = { dtype: "I32", shape: [t.cols, t.rows / 8], data: p.qweight };
      tensors[`${m}.qzeros`] = { dtype: "I32", shape: [ng, t.rows / 8], data: p.qzeros };
    } else {
      const per = 32 / t.bits;
      tensors[`${m}.qweight`] = { dtype: "I32", shape: [t.cols / per, t.rows], data: p.qweight };
      tensors[`${m}.qzeros`] = { dtype: "I32", shape: [ng, t.rows / per], data: p.qzeros };
      tensors[`${m}.g_idx`] = { dtype: "I32", shape: [t.cols], data: p.gIdx! };
    }
    tensors[`${m}.scales`] = { dtype: "F16", shape: [ng, t.rows], data: p.scales };
  }
  fs.mkdirSync(outDir, { recursive: true });
  writeSafetensors(path.join(outDir, "model.safetensors"), tensors, { format: "pt" });
  const config = JSON.parse(fs.readFileSync(path.join(src, "config.json"), "utf8"));
  const qc = model.quantConfig;
  config.quantization_config = fp8 ? fp8.quantizationConfig : format === "awq"
    ? {
      quant_method: "awq",
      bits: 4,
      group_size: first.groupSize,
      zero_point: true,
      version: "gemm",
      modules_to_not_convert: null,
      llmrt_quant_algo: qc.quantAlgo,
    }
    : {
      quant_method: "gptq",
      bits: first.bits,
      group_size: perChannel ? -1 : first.groupSize,
      desc_act: false,
      sym: first.zeros === null,
      checkpoint_format: "gptq",
      llmrt_quant_algo: qc.quantAlgo,
    };
  fs.writeFileSync(path.join(outDir, "config.json"), JSON.stringify(config, null, 2));
  for (const f of COPY_FILES) if (fs.existsSync(path.join(src, f))) fs.copyFileSync(path.join(src, f), path.join(outDir, f));
}
