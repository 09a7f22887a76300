/** `llmrt build`: an HF checkpoint → an engine directory (config.json + rank0.engine + the tokenizer files). */
import * as fs from "node:fs";
import * as path from "node:path";
import { AutoModelForCausalLM, build as buildEngine, readGenerationDefaults, resolveBackend } from "../../mod.ts";
import { UsageError } from "../cli/args.ts";
import type { Command } from "../cli/command.ts";
import { TOKENIZER_FILES } from "../cli/model.ts";

export const build: Command = {
  name: "build",
  summary: "build an engine directory from an HF checkpoint",
  usage: "--model DIR --out ENGINE_DIR [options]",
  description: "Writes config.json and rank0.engine to ENGINE_DIR and copies the tokenizer files (from --tokenizer,\n" +
    "default the checkpoint) and the checkpoint's generation_config.json (end ids, sampling defaults) beside them,\n" +
    "so `llmrt generate --model ENGINE_DIR` works on its own and behaves like the checkpoint.",
  options: [
    { name: "model", type: "string", valueName: "DIR", help: "HF checkpoint directory (required)" },
    { name: "out", type: "string", valueName: "DIR", help: "engine directory to write (required)" },
    { name: "tokenizer", type: "string", valueName: "DIR", help: "tokenizer directory to copy from (default: --model)" },
    { name: "backend", type: "string", valueName: "NAME", choices: ["auto", "cpu", "cuda"], default: "auto", help: "backend the engine is for" },
    { name: "dtype", type: "string", valueName: "T", choices: ["auto", "float32", "float16", "bfloat16"], default: "auto", help: "weight dtype" },
    { name: "max-batch-size", type: "int", min: 1, max: 4096, help: "most sequences per step (default 64)" },
    { name: "max-num-tokens", type: "int", min: 1, max: 1048576, help: "most tokens per step (default 4096)" },
    { name: "max-seq-len", type: "int", min: 1, help: "longest sequence (default: the model's)" },
    { name: "max-input-len", type: "int", min: 1, help: "longest prompt (default min(1024, max-seq-len))" },
    { name: "tokens-per-block", type: "int", min: 1, help: "KV cache block size, a power of two (default 32)" },
    { name: "tp", type: "int", min: 1, max: 64, valueName: "N", help: "tensor parallelism: write N rank files (rank0.engine … rank<N-1>.engine)" },
  ],
  async run({ values }): Promise<number> {
    const modelDir = values.model as string | undefined;
    const out = values.out as string | undefined;
    if (!modelDir || !out) throw new UsageError("build needs --model DIR and --out ENGINE_DIR (see llmrt build --help)");
    const tokDir = (values.tokenizer as string | undefined) ?? modelDir;
    if (values.tokenizer !== undefined && !fs.existsSync(path.join(tokDir, "tokenizer.json"))) {
      throw new UsageError(`--tokenizer: ${JSON.stringify(tokDir)} has no tokenizer.json (a tokenizer directory to copy from)`);
    }
    const genDir = fs.existsSync(path.join(modelDir, "generation_config.json")) ? modelDir : tokDir;
    try {
      readGenerationDefaults(genDir); // copied as is: a bad sampling value is reported now, not first when the engine runs
    } catch (e) {
      console.error(
        `llmrt build: warning: ${(e as Error).message} (running the engine with --generation-config auto will refuse it; --generation-config none ignores it)`,
      );
    }
    const t0 = performance.now();
    const model = AutoModelForCausalLM.fromHuggingFace(modelDir, { dtype: values.dtype as "auto" });
    try {
      const engine = await buildEngine(model, {
        backend: resolveBackend(values.backend as "auto" | "cpu" | "cuda"),
        maxBatchSize: values["max-batch-size"] as number | undefined,
        maxNumTokens: values["max-num-tokens"] as number | undefined,
        maxSeqLen: values["max-seq-len"] as number | undefined,
        maxInputLen: values["max-input-len"] as number | undefined,
        tokensPerBlock: values["tokens-per-block"] as number | undefined,
        tensorParallelSize: values.tp as number | undefined,
      });
      try {
        engine.save(out);
      } finally {
        engine.dispose();
      }
    } finally {
      model.close();
    }
    const copied: string[] = [];
    for (const f of TOKENIZER_FILES) {
      // generation_config.json is the model's (end ids, sampling defaults): the checkpoint's, else the tokenizer directory's.
      const src = path.join(f === "generation_config.json" ? genDir : tokDir, f);
      if (fs.existsSync(src)) {
        fs.copyFileSync(src, path.join(out, f));
        copied.push(f);
      }
    }
    const note = copied.length > 0 ? `; tokenizer files copied: ${copied.join(", ")}` : `; no tokenizer files in ${tokDir} (pass --tokenizer DIR)`;
    console.log(`engine written to ${out} in ${((performance.now() - t0) / 1000).toFixed(2)} s${note}`);
    return 0;
  },
};
