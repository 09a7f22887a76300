/**
 * Guided decoding cost per step on the CPU: grammar compile time, and per sampling step the
 * bitmask from xgrammar, the mask applied to a logits row and the token accepted — over random
 * masked walks of the JSON grammar of `{ name: string, age: int }` (plus regex and choice), on the
 * embedded model's byte-level BPE (4096), stories260k's SentencePiece (512) and, when present,
 * real-size vocabularies (tinyllama 32000, smollm 49152). With `--e2e`, also decode tokens/s of
 * the embedded model through LLM.generate with and without `guidedDecoding` (same prompts, greedy).
 *
 *   bun bench/guided_decoding.ts [--e2e]      (or: deno run -A bench/guided_decoding.ts)
 */
import { existsSync } from "node:fs";
import { z } from "zod";
import { LlmTokenizer } from "../lib/tokenizer/tokenizer.ts";
import { loadXGrammar } from "../lib/executor/guided/xgrammar.ts";
import { applyBitmask, GuidedCompiler, guidedVocabulary } from "../lib/executor/guided/grammar.ts";
import { type GuidedDecodingInput, normalizeGuidedDecoding } from "../lib/executor/guided/params.ts";

const root = new URL("..", import.meta.url).pathname;
const shared = new URL("../../shared/", import.meta.url).pathname;
const sets: [string, string][] = [
  ["kjv-llama", `${root}models/kjv-llama`],
  ["stories260k", `${shared}models/stories260k`],
  ["tinyllama", `${shared}tokenizers/tinyllama-chat`],
  ["smollm", `${shared}tokenizers/smollm`],
];
const Person = z.object({ name: z.string(), age: z.number().int() });
const constraints: [string, GuidedDecodingInput][] = [
  ["json {name,age}", { json: Person }],
  ["regex", { regex: "(cat|dog)s? [0-9]{2,3}" }],
  ["choice x3", { choice: ["yes", "no", "maybe"] }],
];

let seed = 1;
const rand = (): number => {
  seed = (seed * 1103515245 + 12345) >>> 0;
  return seed / 4294967296;
};

const xg = await loadXGrammar();
console.log(
  "| vocabulary | V | constraint | compile ms | bitmask µs/step | apply µs/step | accept µs/step | total µs/step (mean) | total µs/step (p50) | steps |",
);
console.log("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|");
for (const [name, dir] of sets) {
  if (!existsSync(`${dir}/tokenizer.json`)) continue;
  const tok = LlmTokenizer.fromDir(dir);
  const V = tok.vocabSize;
  const eos = tok.eosTokenId ?? 0;
  const compiler = new GuidedCompiler(xg, guidedVocabulary(tok), V);
  const row = new Float32Array(V);
  for (const [cname, input] of constraints) {
    const g = normalizeGuidedDecoding(input);
    let t = performance.now();
    const compiled = compiler.compile(g);
    const compileMs = performance.now() - t;
    let tMask = 0, tApply = 0, tAccept = 0, steps = 0;
    const totals: number[] = [];
    for (let w = 0; w < 20; w++) {
      const m = compiled.matcher([eos]);
      for (let s = 0; s < 40; s++) {
        for (let i = 0; i < V; i++) row[i] = rand();
        t = performance.now();
        const mask = m.nextTokenBitmask();
        const t1 = performance.now();
        applyBitmask(row, mask);
        const t2 = performance.now();
        // Greedy pick, preferring to close after a few steps so walks end.
        let best = -1;
        for (let i = 0; i < V; i++) if (row[i] !== -Infinity && (best < 0 || row[i] > row[best])) best = i;
        if (s > 8 && row[eos] !== -Infinity) best = eos;
        const t3 = performance.now();
        m.accept(best);
        const t4 = performance.now();
        tMask += t1 - t;
        tApply += t2 - t1;
        tAccept += t4 - t3;
        totals.push(t4 - t3 + t2 - t);
        steps++;
        if (m.isTerminated) break;
      }
      m.dispose();
    }
    const us = (ms: number): string => ((ms / steps) * 1000).toFixed(1);
    console.log(
      `| ${name} | ${V} | ${cname} | ${compileMs.toFixed(1)} | ${us(tMask)} | ${us(tApply)} | ${us(tAccept)} | ${us(tMask + tApply + tAccept)} | ${
        (totals.sort((a, b) => a - b)[totals.length >> 1] * 1000).toFixed(1)
      } | ${steps} |`,
    );
  }
  compiler.dispose();
}

if (cliArgs().includes("--e2e")) await endToEnd();

function cliArgs(): string[] {
  const d = (globalThis as { Deno?: { args: string[] } }).Deno;
  return d ? d.args : ((globalThis as { process?: { argv: string[] } }).process?.argv.slice(2) ?? []);
}

/**
 * Decode steps through LLM.generate on the embedded model, greedy, 8 prompts one at a time (batch 1)
 * and all 8 together (batch 8), with and without the JSON constraint: the median over decode-only
 * steps (prefill steps excluded) of step time per decoded token, from the executor's iteration
 * stats, so different output lengths and batch sizes do not skew it.
 */
async function endToEnd(): Promise<void> {
  const { LLM } = await import("../lib/llmapi/llm.ts");
  await using llm = await LLM.create({ model: `${root}models/kjv-llama`, backend: "cpu", cacheEngine: false });
  const prompts = [
    "And the LORD said",
    "In the beginning",
    "Blessed are the",
    "And it came to pass",
    "Thou shalt",
    "The son of",
    "And he said unto them",
    "Behold",
  ];
  const Kjv = z.object({ name: z.string().max(24), age: z.number().int() });
  // Fewer than the 1000 iteration stats kept: 8 × 40 decode steps per batch-1 run.
  const run = async (guided: boolean, batched: boolean): Promise<number> => {
    const from = llm.getStats().at(-1)?.iter ?? -1;
    const params = { maxTokens: 40, temperature: 0, ...(guided ? { guidedDecoding: { json: Kjv } } : {}) } as never;
    if (batched) await llm.generate(prompts, params, { useTqdm: false });
    else for (const p of prompts) await llm.generate(p, params, { useTqdm: false });
    const steps = llm.getStats().filter((s) => s.iter > from && s.numPrefillTokens === 0 && s.numDecodeTokens > 0);
    // Median over steps of step ms per decoded token (robust to other load on the machine).
    const perToken = steps.map((s) => s.stepMs / s.numDecodeTokens).sort((a, b) => a - b);
    return perToken[perToken.length >> 1];
  };
  await run(false, false); // warm up
  await run(true, false);
  for (const batched of [false, true]) {
    const plain = await run(false, batched);
    const guided = await run(true, batched);
    console.log(
      `kjv-llama CPU, batch ${batched ? 8 : 1}, greedy: decode ${plain.toFixed(2)} ms/token plain, ${
        guided.toFixed(2)
      } ms/token guided JSON (median over steps) (+${((guided / plain - 1) * 100).toFixed(1)}%)`,
    );
  }
}
