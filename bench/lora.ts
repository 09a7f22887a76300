/**
 * Batched multi-LoRA throughput: `--batch` requests of `--new` tokens (greedy, EOS ignored) through
 * LLM.generateAsync, spread over `--adapters` PEFT adapters of rank `--rank` on every target module
 * (random, from tools/lora-packer), beside the same requests without adapters on the same LLM
 * (`enableLora` on). Reports output tokens/s over the wall time and decode tokens/s over the
 * full-batch decode steps (iteration stats).
 *
 *   bun bench/lora.ts [--model DIR] [--backend cpu|cuda] [--batch 64] [--new 64] [--adapters 4] [--rank 16]
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { parseArgs } from "node:util";
import { LLM } from "../mod.ts";
import { packPeftAdapter } from "../tools/lora-packer/pack.ts";

const { values } = parseArgs({
  args: (globalThis as { process?: { argv: string[] } }).process!.argv.slice(2),
  options: {
    model: { type: "string" },
    backend: { type: "string" },
    batch: { type: "string" },
    new: { type: "string" },
    adapters: { type: "string" },
    rank: { type: "string" },
  },
});
const model = values.model ?? new URL("../models/kjv-llama", import.meta.url).pathname;
const backend = (values.backend ?? "cpu") as "cpu" | "cuda";
const B = Number(values.batch ?? 64), newTokens = Number(values.new ?? 64), nAdapters = Number(values.adapters ?? 4), rank = Number(values.rank ?? 16);

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "llmrt-bench-lora-"));
const targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"] as const;
const adapters = Array.from({ length: nAdapters }, (_, i) => {
  const dir = path.join(tmp, `a${i}`);
  packPeftAdapter(model, dir, { rank, alpha: 2 * rank, targetModules: [...targets], seed: i + 1, std: 0.02 });
  return { name: `a${i}`, path: dir };
});

await using llm = await LLM.create({ model, backend, enableLora: true, maxLoras: nAdapters, maxLoraRank: rank, buildConfig: { maxBatchSize: B } });
const prompts = Array.from({ length: B }, (_, i) => `Request ${i}: and it came to pass in those days`);
const params = { maxTokens: newTokens, temperature: 0, ignoreEos: true };

async function run(lora: boolean, maxTokens = newTokens): Promise<{ tps: number; decodeTps: number; steps: number }> {
  const from = llm.getStats().at(-1)?.iter ?? -1;
  const t0 = performance.now();
  const outs = await Promise.all(
    prompts.map((p, i) => llm.generateAsync(p, { ...params, maxTokens }, lora ? { loraRequest: adapters[i % nAdapters] } : {}).result()),
  );
  const ms = performance.now() - t0;
  const tokens = outs.reduce((a, o) => a + o.outputs[0].tokenIds.length, 0);
  const steps = llm.getStats().filter((s) => s.iter > from && s.numPrefillTokens === 0 && s.numDecodeTokens === B);
  const stepMs = steps.reduce((a, s) => a + s.stepMs, 0);
  return { tps: tokens / (ms / 1000), decodeTps: (steps.length * B) / (stepMs / 1000), steps: steps.length };
}

await run(false, 4); // warm-up: graphs, kernels, adapters resident
await run(true, 4);
const plain = await run(false);
const lora = await run(true);
console.log(`model ${model}, backend ${backend}, ${B} requests × ${newTokens} tokens, ${nAdapters} adapters of rank ${rank} on ${targets.length} modules`);
console.log("| run | output tokens/s (wall) | decode tokens/s (full-batch steps) | steps |");
console.log("|---|---:|---:|---:|");
console.log(`| no LoRA | ${plain.tps.toFixed(1)} | ${plain.decodeTps.toFixed(1)} | ${plain.steps} |`);
console.log(`| ${nAdapters} adapters, ${B / nAdapters} requests each | ${lora.tps.toFixed(1)} | ${lora.decodeTps.toFixed(1)} | ${lora.steps} |`);
fs.rmSync(tmp, { recursive: true, force: true });
