/**
 * CPU backend speed: prefill and batch-1 decode tokens/s, with the weight bytes streamed per
 * decode step (tokens/s × weight bytes = achieved GB/s, the figure decode is bound by).
 *
 *   bun bench/cpu_decode.ts [--model DIR] [--prompt-len N] [--new N] [--batch B]
 */
import * as fs from "node:fs";
import { parseArgs } from "node:util";
import { buildSync } from "../lib/builder/builder.ts";
import { AutoModelForCausalLM } from "../lib/models/llama.ts";
import { ModelRunner } from "../lib/runtime/model_runner.ts";

const { values } = parseArgs({
  args: (globalThis as { process?: { argv: string[] } }).process!.argv.slice(2),
  options: { model: { type: "string" }, "prompt-len": { type: "string" }, new: { type: "string" }, batch: { type: "string" } },
});
const here = new URL("..", import.meta.url).pathname;
const model = values.model ?? [`${here}models/kjv-llama`, `${here}../shared/models/stories260k`].find((d) => fs.existsSync(`${d}/config.json`))!;
const promptLen = Number(values["prompt-len"] ?? 64), newTokens = Number(values.new ?? 128), batch = Number(values.batch ?? 1);

const m = AutoModelForCausalLM.fromHuggingFace(model);
const t0 = performance.now();
const engine = buildSync(m, { maxBatchSize: Math.max(batch, 1), maxNumTokens: Math.max(promptLen * batch, 256) });
const buildMs = performance.now() - t0;
m.close();
const weightBytes = engine.tensorNames().reduce((a, n) => a + engine.tensorInfo(n).bytes, 0);
const runner = ModelRunner.fromEngine(engine);
const V = runner.vocabSize;
const prompts = Array.from({ length: batch }, (_, b) => Array.from({ length: promptLen }, (_, i) => (i * 31 + b * 7 + 5) % V));

runner.generate(prompts, { maxNewTokens: 4, endId: -1 }); // warm-up (JIT)
const tp = performance.now();
runner.generate(prompts, { maxNewTokens: 1, endId: -1 });
const prefillMs = performance.now() - tp;
const td = performance.now();
runner.generate(prompts, { maxNewTokens: newTokens, endId: -1 });
const totalMs = performance.now() - td;
const decodeMs = totalMs - prefillMs;
const decodeTps = (batch * (newTokens - 1)) / (decodeMs / 1000);
const stepsPerS = (newTokens - 1) / (decodeMs / 1000);
console.log(`model ${model}  (${(weightBytes / 1e6).toFixed(2)} MB of weights, build ${buildMs.toFixed(0)} ms)`);
console.log(`runtime ${"Bun" in globalThis ? "bun" : "deno"}; batch ${batch}, prompt ${promptLen}, new ${newTokens}`);
console.log(`prefill: ${(batch * promptLen / (prefillMs / 1000)).toFixed(0)} tokens/s`);
console.log(
  `decode:  ${decodeTps.toFixed(1)} tokens/s  (${stepsPerS.toFixed(1)} steps/s × ${(weightBytes / 1e6).toFixed(2)} MB = ${
    (stepsPerS * weightBytes / 1e9).toFixed(2)
  } GB/s of weights)`,
);
