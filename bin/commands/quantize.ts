/** `llmrt quantize`: an HF checkpoint → a quantized HF checkpoint (AutoAWQ GEMM, AutoGPTQ or an FP8 layout) that llmrt loads again. */
import { AutoModelForCausalLM } from "../../lib/models/llama.ts";
import { saveQuantizedCheckpoint } from "../../lib/quantization/export.ts";
import type { QuantAlgo } from "../../lib/quantization/quant_algo.ts";
import { quantize as quantizeModel } from "../../lib/quantization/quantize.ts";
import { UsageError } from "../cli/args.ts";
import type { Command } from "../cli/command.ts";

/** --qformat values (TensorRT-LLM quantize.py style) → QuantAlgo. */
const QFORMATS: Readonly<Record<string, QuantAlgo>> = {
  w8a16: "W8A16",
  int8_wo: "W8A16",
  w4a16: "W4A16",
  int4_wo: "W4A16",
  w4a16_awq: "W4A16_AWQ",
  int4_awq: "W4A16_AWQ",
  w4a16_gptq: "W4A16_GPTQ",
  int4_gptq: "W4A16_GPTQ",
  fp8: "FP8",
  fp8_pc_pt: "FP8_PER_CHANNEL_PER_TOKEN",
  fp8_block: "FP8_BLOCK_SCALES",
};

export const quantize: Command = {
  name: "quantize",
  summary: "quantize an HF checkpoint (int8/int4 weight-only, AWQ, GPTQ, FP8) into a checkpoint llmrt loads",
  usage: "--model DIR --qformat FORMAT --out DIR [options]",
  description: "W4A16_AWQ is written in AutoAWQ's GEMM layout, the other integer formats in AutoGPTQ's; fp8 as quant_method \"fp8\"\n" +
    '(static), fp8_pc_pt as compressed-tensors float8, fp8_block as "fp8" with weight_block_size [128, 128] (quantization_config in\n' +
    "config.json); `llmrt generate --model OUT` and LLM.create({ model: OUT }) load it with the same outputs as\n" +
    "LLM.create({ model: DIR, quantConfig }). Calibration (AWQ, GPTQ): a slice of the KJV text shipped with llmrt.",
  options: [
    { name: "model", type: "string", valueName: "DIR", help: "HF checkpoint directory (required)" },
    { name: "out", type: "string", valueName: "DIR", help: "checkpoint directory to write (required)" },
    { name: "qformat", type: "string", valueName: "FORMAT", choices: Object.keys(QFORMATS), help: "quantization format (required)" },
    { name: "group-size", type: "int", min: 8, help: "input channels per scale (default 128 for AWQ/GPTQ, per-channel for w8a16/w4a16)" },
    { name: "zero-point", type: "boolean", help: "asymmetric integers with a zero point per group" },
    { name: "calib-tokens", type: "int", min: 16, help: "calibration tokens for AWQ/GPTQ (default 1024)" },
    {
      name: "threads",
      type: "int",
      min: 1,
      help: "threads for calibration (default: all cores for models with ≥ 4M weights per layer; same result for any count)",
    },
  ],
  async run({ values }): Promise<number> {
    const modelDir = values.model as string | undefined;
    const out = values.out as string | undefined;
    const qformat = values.qformat as string | undefined;
    if (!modelDir || !out || !qformat) throw new UsageError("quantize needs --model DIR, --qformat FORMAT and --out DIR (see llmrt quantize --help)");
    const t0 = performance.now();
    const model = AutoModelForCausalLM.fromHuggingFace(modelDir);
    try {
      const groupSize = values["group-size"] as number | undefined;
      const q = await quantizeModel(model, {
        quantAlgo: QFORMATS[qformat],
        ...(groupSize !== undefined ? { groupSize } : {}),
        hasZeroPoint: !!values["zero-point"],
      }, { maxCalibrationTokens: values["calib-tokens"] as number | undefined, threads: values.threads as number | undefined });
      saveQuantizedCheckpoint(q, out);
      console.log(
        `${q.quantConfig.quantAlgo} checkpoint written to ${out} (${q.quantizedNames().length} linears) in ${((performance.now() - t0) / 1000).toFixed(2)} s`,
      );
    } finally {
      model.close();
    }
    return 0;
  },
};
