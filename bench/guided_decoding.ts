/**
 * Guided decoding cost per step on the CPU: grammar compile time, and per sampling step the
 * bitmask from xgrammar, the mask applied to a logits row and the token accepted — over random
 * masked walks of the JSON grammar of `{ name: string, age: int }` (plus regex and choice), on the
 * embedded model's byte-level BPE (4096), stories260k's SentencePiece (512) and, when present,
 * real-size vocabularies (tinyllama 32000, smollm 49152). With `--e2e`, also decode tokens/s
 * through LLM.generate with and without `guidedDecoding` (same prompts, greedy), per batch size.
 *
 *   bun bench/guided_decoding.ts [--tokenizer DIR] [--e2e [--e2e-only] [--model DIR] [--backend cpu|cuda] [--batch 1,64] [--new N] [--reps 3] [--accept-ab]]
 *   (--tokenizer: one more vocabulary for the table, e.g. tools/gpu/synthetic_tokenizer.py's byte-level 128,256)
 *   (or: deno run -A bench/guided_decoding.ts ...)
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
if (option("tokenizer", "")) sets.push(["--tokenizer", option("tokenizer", "")]);
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
const table = !cliArgs().includes("--e2e-only");
if (table) {
  console.log(
    "| vocabulary | V | constraint | compile ms | bitmask µs/step | apply µs/step | accept µs/step | total µs/step (mean) | total µs/step (p50) | steps |",
  );
  console.log("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|");
}
for (const [name, dir] of table ? sets : []) {
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

function option(name: string, fallback: string): string {
  const a = cliArgs(), i = a.indexOf(`--${name}`);
  return i >= 0 && i + 1 < a.length ? a[i + 1] : fallback;
}

/**
 * Decode speed through LLM.generate, greedy, with and without the JSON constraint, at each batch
 * size of `--batch` (prompts cycled): decode tokens/s over the decode-only steps that ran the
 * whole batch (prefill steps and the tail where requests have finished are excluded), from the
 * executor's iteration stats, so output lengths do not skew it; and the host time per step spent
 * computing the grammar masks (`guidedMaskMs`: on CUDA while the GPU runs the forward pass; with
 * the previous step's tokens accepted by their matchers first) and the grammar host time outside
 * that overlap (`guidedHostMs`: between a step's sampled ids and the next launch).
 * The plain run ignores EOS so every request decodes `--new` tokens. Plain and guided runs
 * alternate `--reps` times (default 3); the table has each one's median tokens/s and the cost from
 * those, with the cost's range over the pairs. `--accept-ab`: the same again on a second LLM whose
 * matchers accept tokens as they arrive (`guidedAccept: "immediate"`, the reference).
 */
async function endToEnd(): Promise<void> {
  await endToEndWith("deferred");
  if (cliArgs().includes("--accept-ab")) await endToEndWith("immediate");
}

async function endToEndWith(guidedAccept: "deferred" | "immediate"): Promise<void> {
  const { LLM } = await import("../lib/llmapi/llm.ts");
  const model = option("model", `${root}models/kjv-llama`);
  const backend = option("backend", "cpu") as "cpu" | "cuda";
  const batches = option("batch", "1,8").split(",").map(Number);
  const newTokens = Number(option("new", "40"));
  const reps = Math.max(1, Number(option("reps", "3")));
  const kjv = model.endsWith("kjv-llama");
  await using llm = await LLM.create({
    model,
    backend,
    cacheEngine: backend === "cuda",
    guidedAccept,
    buildConfig: { maxBatchSize: Math.max(8, ...batches), maxSeqLen: 64 + newTokens + 16 },
  });
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
  // kjv-llama never writes a double quote by itself: bound the name so its objects close.
  const schema = kjv ? z.object({ name: z.string().max(24), age: z.number().int() }) : Person;
  const median = (v: number[]): number => [...v].sort((x, y) => x - y)[v.length >> 1] ?? 0;
  const run = async (guided: boolean, b: number, maxTokens: number) => {
    const from = llm.getStats().at(-1)?.iter ?? -1;
    const params = { maxTokens, temperature: 0, ...(guided ? { guidedDecoding: { json: schema } } : { ignoreEos: true }) } as never;
    const list = Array.from({ length: b }, (_, i) => prompts[i % prompts.length]);
    const outs = await llm.generate(list, params, { useTqdm: false });
    const steps = llm.getStats().filter((s) => s.iter > from && s.numPrefillTokens === 0 && s.numDecodeTokens === b);
    const ms = steps.reduce((a, s) => a + s.stepMs, 0);
    const parsed = outs.filter((o) => o.outputs[0].parsed !== undefined).length;
    return {
      tps: (steps.length * b) / (ms / 1000),
      steps: steps.length,
      maskMs: median(steps.map((s) => s.guidedMaskMs ?? 0)),
      hostMs: median(steps.map((s) => s.guidedHostMs ?? 0)),
      parsed,
      sample: outs[0].outputs[0].text,
    };
  };
  for (const b of batches) { // warm-up: graphs of each bucket, the grammar compiled
    await run(false, b, 4);
    await run(true, b, 4);
  }
  console.log(
    `model ${model}, backend ${backend} (${llm.backend}), runtime ${
      "Bun" in globalThis ? "bun" : "deno"
    }, greedy, ${newTokens} new tokens, ${reps} reps, guidedAccept ${guidedAccept}`,
  );
  console.log(
    "| batch | plain tokens/s | guided JSON tokens/s | guided cost | cost range over reps | mask ms/step (median, overlapped) | grammar ms/step outside the overlap (median) | full-batch steps plain / guided | parsed |",
  );
  console.log("|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
  for (const b of batches) {
    const plain: Awaited<ReturnType<typeof run>>[] = [], guided: typeof plain = [];
    for (let r = 0; r < reps; r++) {
      plain.push(await run(false, b, newTokens));
      guided.push(await run(true, b, newTokens));
    }
    const costs = plain.map((p, r) => (1 - guided[r].tps / p.tps) * 100);
    const pt = median(plain.map((p) => p.tps)), gt = median(guided.map((g) => g.tps));
    const g = guided[0];
    console.log(
      `| ${b} | ${pt.toFixed(1)} | ${gt.toFixed(1)} | ${((1 - gt / pt) * 100).toFixed(1)}% | ${Math.min(...costs).toFixed(1)}–${
        Math.max(...costs).toFixed(1)
      }% | ${median(guided.map((x) => x.maskMs)).toFixed(3)} | ${median(guided.map((x) => x.hostMs)).toFixed(3)} | ${
        plain[0].steps
      } / ${g.steps} | ${g.parsed}/${b} |`,
    );
    console.log(`  e.g. ${JSON.stringify(g.sample.slice(0, 120))}`);
  }
}
