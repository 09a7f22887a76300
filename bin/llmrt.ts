#!/usr/bin/env bun
/**
 * llmrt command line.
 *
 *   bun bin/llmrt.ts generate ["prompt"] [--model DIR] [--max-tokens N] [--temperature T]
 *                             [--top-k K] [--top-p P] [--seed S] [--backend auto|cpu|cuda]
 *   bun bin/llmrt.ts build --model DIR --out ENGINE_DIR [--max-batch-size N] [--max-num-tokens N] [--backend auto|cpu|cuda]
 *
 * `--backend auto` (the default) runs on the GPU when CUDA finds one, else on the CPU.
 * With no --model, `generate` uses the model that ships with llmrt (models/kjv-llama). Sampling
 * defaults to temperature 0.8, top-p 0.95, seed 0 (reproducible); `--temperature 0` is greedy.
 */
import * as fs from "node:fs";
import { parseArgs } from "node:util";
import { build } from "../lib/builder/builder.ts";
import { LLM, resolveBackend } from "../lib/llmapi/llm.ts";
import { AutoModelForCausalLM } from "../lib/models/llama.ts";

const DEFAULT_MODEL = new URL("../models/kjv-llama/", import.meta.url).pathname;
const FALLBACK_MODEL = new URL("../../shared/models/stories260k/", import.meta.url).pathname;

function defaultModel(): string {
  if (fs.existsSync(`${DEFAULT_MODEL}config.json`)) return DEFAULT_MODEL;
  if (fs.existsSync(`${FALLBACK_MODEL}config.json`)) return FALLBACK_MODEL;
  throw new Error(`no --model given and the embedded model is missing at ${DEFAULT_MODEL}`);
}

const USAGE = `usage:
  llmrt generate ["prompt"] [--model DIR] [--max-tokens N] [--temperature T] [--top-k K] [--top-p P] [--seed S] [--backend auto|cpu|cuda]
  llmrt build --model DIR --out ENGINE_DIR [--max-batch-size N] [--max-num-tokens N] [--backend auto|cpu|cuda]`;

function num(v: string | undefined, name: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new Error(`--${name}: expected a number, got ${JSON.stringify(v)}`);
  return n;
}

async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  const { values, positionals } = parseArgs({
    args: rest,
    allowPositionals: true,
    options: {
      model: { type: "string" }, out: { type: "string" }, backend: { type: "string" },
      "max-tokens": { type: "string" }, temperature: { type: "string" }, "top-k": { type: "string" },
      "top-p": { type: "string" }, seed: { type: "string" }, "max-batch-size": { type: "string" },
      "max-num-tokens": { type: "string" }, help: { type: "boolean", short: "h" },
    },
  });
  if (values.help || !cmd) {
    console.log(USAGE);
    return cmd ? 0 : 2;
  }
  const backend = (values.backend ?? "auto") as "auto" | "cpu" | "cuda";
  if (cmd === "generate") {
    const model = values.model ?? defaultModel();
    const prompt = positionals.join(" ") || (model === DEFAULT_MODEL ? "In the beginning" : "Once upon a time");
    const t0 = performance.now();
    const llm = await LLM.create({ model, backend });
    const tLoad = performance.now() - t0;
    try {
      const t1 = performance.now();
      const out = await llm.generate(prompt, {
        maxTokens: num(values["max-tokens"], "max-tokens") ?? 128,
        temperature: num(values.temperature, "temperature") ?? 0.8,
        topK: num(values["top-k"], "top-k"), topP: num(values["top-p"], "top-p") ?? 0.95, seed: num(values.seed, "seed"),
      });
      const dt = (performance.now() - t1) / 1000;
      const c = out.outputs[0];
      console.log(`${prompt}${c.text}`);
      console.error(
        `\n[llmrt] model ${model} on ${llm.backend}: ${out.promptTokenIds.length} prompt + ${c.tokenIds.length} generated tokens in ${dt.toFixed(2)} s ` +
          `(${(c.tokenIds.length / dt).toFixed(1)} tokens/s; load ${(tLoad / 1000).toFixed(2)} s; finish: ${c.finishReason})`,
      );
    } finally {
      await llm.shutdown();
    }
    return 0;
  }
  if (cmd === "build") {
    if (!values.model || !values.out) throw new Error("build needs --model DIR and --out ENGINE_DIR");
    const t0 = performance.now();
    const model = AutoModelForCausalLM.fromHuggingFace(values.model);
    const engine = await build(model, {
      backend: resolveBackend(backend),
      maxBatchSize: num(values["max-batch-size"], "max-batch-size"),
      maxNumTokens: num(values["max-num-tokens"], "max-num-tokens"),
    });
    engine.save(values.out);
    model.close();
    console.log(`engine written to ${values.out} in ${((performance.now() - t0) / 1000).toFixed(2)} s`);
    return 0;
  }
  console.error(`unknown command ${JSON.stringify(cmd)}\n${USAGE}`);
  return 2;
}

try {
  const code = await main((globalThis as { process?: { argv: string[] } }).process!.argv.slice(2));
  (globalThis as { process?: { exitCode?: number } }).process!.exitCode = code;
} catch (e) {
  console.error(`llmrt: ${(e as Error).message}`);
  (globalThis as { process?: { exitCode?: number } }).process!.exitCode = 1;
}
