/**
 * Speculative decoding speed: output tokens/s without speculation, with prompt lookup (NGram) and
 * with the draft model (DraftTarget), greedy, on a repetitive workload; with the acceptance rate
 * (accepted / drafted tokens) and the mean tokens per decode step. The modes' LLMs are all made
 * first, then timed in `--reps` alternating rounds (plain, NGram, DraftTarget, plain, ...), so a
 * drift of the machine hits every mode alike; the table gives each mode's median and every rep.
 * Every run's output ids are checked equal to the plain run's (an error on the CPU, reported on a GPU).
 *
 * Workloads (`--workload`):
 * - `text` (the default for the kjv models): prompts that repeat a phrase, whose greedy continuation
 *   keeps repeating text of the context.
 * - `loop` (any model, e.g. random weights): a seed of 8 token ids, decoded greedily for `--loop-len`
 *   tokens by the plain LLM; the seed plus that output is the prompt. A greedy model soon cycles, and
 *   the prompt then ends inside its own cycle, so the continuation repeats the prompt's tail.
 *
 *   bun bench/speculative.ts [--model DIR] [--draft DIR] [--backend cpu|cuda] [--new N] [--batch 1,4] [--draft-len K]
 *     [--modes plain,NGram,DraftTarget,NGram-always,DraftTarget-always] [--dtype auto|float32|bfloat16] [--reps 3] [--workload text|loop] [--loop-len 256]
 *     [--max-seq-len 4096]
 */
import { parseArgs } from "node:util";
import { LLM, type Prompt } from "../mod.ts";
import type { IterationStats } from "../lib/executor/config.ts";
import type { SpeculativeConfigInput } from "../lib/executor/speculative/config.ts";

const { values } = parseArgs({
  args: (globalThis as { process?: { argv: string[] } }).process!.argv.slice(2),
  options: {
    model: { type: "string" },
    draft: { type: "string" },
    backend: { type: "string" },
    new: { type: "string" },
    batch: { type: "string" },
    "draft-len": { type: "string" },
    modes: { type: "string" },
    dtype: { type: "string" },
    reps: { type: "string" },
    workload: { type: "string" },
    "loop-len": { type: "string" },
    "max-seq-len": { type: "string" },
  },
});
const here = new URL("..", import.meta.url).pathname;
const model = values.model ?? `${here}models/kjv-llama`;
const draft = values.draft ?? `${here}models/kjv-llama-draft`;
const backend = (values.backend ?? "cpu") as "cpu" | "cuda";
const dtype = (values.dtype ?? "auto") as "auto" | "float32" | "bfloat16";
const newTokens = Number(values.new ?? 128), k = Number(values["draft-len"] ?? 4), reps = Number(values.reps ?? 3);
const batches = (values.batch ?? "1").split(",").map(Number);
const workload = values.workload ?? (model.includes("kjv") ? "text" : "loop");
const loopLen = Number(values["loop-len"] ?? 256);
// The engines' context (the decode graphs' attention splits cover it): 4096 unless given.
const maxSeqLen = Number(values["max-seq-len"] ?? 4096);
const modes = ["plain", ...(values.modes ?? "plain,NGram,DraftTarget").split(",").filter((m) => m !== "plain")];

const passages = [
  "And the world shall be saved, and the world shall be saved, and the world shall be saved,",
  "And they shall eat their flesh, and they shall eat their flesh, and they shall eat their flesh,",
  "Holy, holy, holy, LORD God Almighty. Holy, holy, holy,",
  "And the LORD said unto Moses, Speak unto the children of Israel. And the LORD said unto Moses, Speak unto the children of Israel.",
];

interface Run {
  ids: number[][];
  ms: number;
  tokens: number;
  steps: number;
  /** Summed stepMs (host + device time inside the executor's steps) of the decode steps. */
  stepMs: number;
  drafted: number;
  accepted: number;
}

const configs: Record<string, SpeculativeConfigInput | undefined> = {
  plain: undefined,
  NGram: { decodingType: "NGram", maxDraftLen: k, maxMatchingNgramSize: 3 },
  DraftTarget: { decodingType: "DraftTarget", speculativeModel: draft, maxDraftLen: k },
  // The same without adaptive drafting (a sequence whose drafts keep failing still drafts every step).
  "NGram-always": { decodingType: "NGram", maxDraftLen: k, maxMatchingNgramSize: 3, adaptiveDrafting: false },
  "DraftTarget-always": { decodingType: "DraftTarget", speculativeModel: draft, maxDraftLen: k, adaptiveDrafting: false },
};
const kvCacheConfig = { maxTokens: 32768 }; // several LLMs share the GPU
const llms = new Map<string, LLM>();
for (const m of modes) {
  if (!(m in configs)) throw new Error(`bench/speculative: unknown mode ${m} (${Object.keys(configs).join(", ")})`);
  llms.set(m, await LLM.create({ model, backend, speculativeConfig: configs[m], dtype, kvCacheConfig, buildConfig: { maxSeqLen } }));
}
const params = { maxTokens: newTokens, temperature: 0, ignoreEos: true };

async function run(llm: LLM, list: Prompt[]): Promise<Run> {
  const last = llm.getStats().at(-1)?.iter ?? -1; // the history is capped: select by iteration number
  const t0 = performance.now();
  const outs = await llm.generate(list, params, { useTqdm: false });
  const ms = performance.now() - t0;
  const stats: IterationStats[] = llm.getStats().filter((s) => s.iter > last);
  return {
    ids: outs.map((o) => [...o.outputs[0].tokenIds]),
    ms,
    tokens: outs.reduce((a, o) => a + o.outputs[0].tokenIds.length, 0),
    steps: stats.filter((s) => s.numDecodeTokens > 0).length,
    stepMs: stats.reduce((a, s) => a + (s.numDecodeTokens > 0 ? s.stepMs : 0), 0),
    drafted: stats.reduce((a, s) => a + (s.numDraftTokens ?? 0), 0),
    accepted: stats.reduce((a, s) => a + (s.numAcceptedDraftTokens ?? 0), 0),
  };
}

/** The b prompts of the workload. */
async function promptsFor(b: number): Promise<Prompt[]> {
  if (workload === "text") return Array.from({ length: b }, (_, i) => passages[i % passages.length]);
  const seeds = Array.from({ length: b }, (_, i) => Array.from({ length: 8 }, (_, j) => (1000 + 37 * j + 101 * i) % 4096));
  const outs = await llms.get("plain")!.generate(seeds, { ...params, maxTokens: loopLen }, { useTqdm: false });
  const list = seeds.map((s, i) => [...s, ...outs[i].outputs[0].tokenIds]);
  console.log(`loop prompts: tail cycle of ${list.map((p) => cycleOf(p) ?? "none").join(", ")} tokens (the shortest period the last 128 ids repeat with)`);
  return list;
}

/** The shortest period p with which the last 128 ids of `ids` repeat (ids[i] = ids[i - p]), else null. */
function cycleOf(ids: readonly number[]): number | null {
  for (let p = 1; p + 128 <= ids.length; p++) {
    let ok = true;
    for (let i = ids.length - 128; ok && i < ids.length; i++) ok = ids[i] === ids[i - p];
    if (ok) return p;
  }
  return null;
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

console.log(
  `model ${model}, draft ${draft}, backend ${backend}, dtype ${dtype}, runtime ${"Bun" in globalThis ? "bun" : "deno"}; ` +
    `greedy, ${newTokens} new tokens, maxDraftLen ${k}, engines' maxSeqLen ${maxSeqLen}, workload ${workload}${
      workload === "loop" ? ` (seed 8 ids + ${loopLen} greedy tokens)` : ""
    }, ` +
    `${reps} alternating reps`,
);
let allSame = true;
try {
  for (const b of batches) {
    const list = await promptsFor(b);
    for (const llm of llms.values()) await llm.generate(list, { ...params, maxTokens: 16 }, { useTqdm: false }); // warm-up (JIT, graphs)
    const runs = new Map<string, Run[]>(modes.map((m) => [m, []]));
    for (let r = 0; r < reps; r++) for (const m of modes) runs.get(m)!.push(await run(llms.get(m)!, list));
    const plainIds = JSON.stringify(runs.get("plain")![0].ids);
    const tps = (x: Run): number => x.tokens / (x.ms / 1000);
    const plainTps = median(runs.get("plain")!.map(tps));
    console.log(`\nbatch ${b} (prompt lengths ${list.map((p) => typeof p === "string" ? `${p.length} chars` : `${p.length} ids`).join(", ")}):`);
    console.log("| mode | tokens/s (median) | speedup | tokens/s per rep | acceptance | tokens per decode step | ms per decode step | identical to plain |");
    console.log("|---|---:|---:|---|---:|---:|---:|---|");
    for (const m of modes) {
      const rs = runs.get(m)!;
      const drafted = rs.reduce((a, x) => a + x.drafted, 0), accepted = rs.reduce((a, x) => a + x.accepted, 0);
      const tokens = rs.reduce((a, x) => a + x.tokens, 0), steps = rs.reduce((a, x) => a + x.steps, 0);
      const stepMs = rs.reduce((a, x) => a + x.stepMs, 0) / Math.max(1, steps);
      const diffs = rs.flatMap((x) => x.ids.map((ids, i) => ids.findIndex((t, j) => t !== runs.get("plain")![0].ids[i][j])).filter((j) => j >= 0));
      const same = rs.every((x) => JSON.stringify(x.ids) === plainIds);
      allSame &&= same;
      if (!same && backend === "cpu") throw new Error(`bench/speculative: ${m} output differs from plain greedy at batch ${b}`);
      const acc = drafted > 0 ? `${(100 * accepted / drafted).toFixed(1)}% (${accepted}/${drafted})` : "-";
      console.log(
        `| ${m} | ${median(rs.map(tps)).toFixed(1)} | ${(median(rs.map(tps)) / plainTps).toFixed(2)}× | ${rs.map((x) => tps(x).toFixed(0)).join(" / ")} | ` +
          `${acc} | ${(tokens / Math.max(1, steps) / b).toFixed(2)} | ${stepMs.toFixed(3)} | ${
            same ? "yes" : `no: first difference at token ${Math.min(...diffs)}`
          } |`,
      );
    }
  }
} finally {
  for (const llm of llms.values()) await llm[Symbol.asyncDispose]();
}
console.log(`\ngreedy output identical to plain in every run: ${allSame ? "yes" : "NO"}`);
