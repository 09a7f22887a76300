/**
 * Speculative decoding speed: decode tokens/s without speculation, with prompt lookup (NGram) and
 * with the draft model (DraftTarget), on a repetitive workload (prompts whose greedy continuation
 * repeats text already in the context), greedy, at batch 1 and batch B; with the acceptance rate
 * (accepted / drafted tokens) and the mean tokens per target step. Every run's output ids are
 * checked equal to the plain run's before its time is reported. Wall time and this process's CPU
 * time are both reported: on a shared machine the CPU-time ratio is the steadier figure.
 *
 *   bun bench/speculative.ts [--model DIR] [--draft DIR] [--backend cpu|cuda] [--new N] [--batch B] [--draft-len K]
 *     [--modes plain,NGram,DraftTarget] [--dtype auto|float32|bfloat16]   (plain always runs: the others are checked against it)
 */
import { parseArgs } from "node:util";
import { LLM } from "../mod.ts";
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
  },
});
const here = new URL("..", import.meta.url).pathname;
const model = values.model ?? `${here}models/kjv-llama`;
const draft = values.draft ?? `${here}models/kjv-llama-draft`;
const backend = (values.backend ?? "cpu") as "cpu" | "cuda";
const dtype = (values.dtype ?? "auto") as "auto" | "float32" | "bfloat16";
const newTokens = Number(values.new ?? 128), batch = Number(values.batch ?? 4), k = Number(values["draft-len"] ?? 4);

// Repetitive: prompts that repeat a phrase, whose greedy continuation keeps repeating text of the context.
const passages = [
  "And the world shall be saved, and the world shall be saved, and the world shall be saved,",
  "And they shall eat their flesh, and they shall eat their flesh, and they shall eat their flesh,",
  "Holy, holy, holy, LORD God Almighty. Holy, holy, holy,",
  "And the LORD said unto Moses, Speak unto the children of Israel. And the LORD said unto Moses, Speak unto the children of Israel.",
];
const prompts = Array.from({ length: batch }, (_, i) => passages[i % passages.length]);

interface Run {
  name: string;
  ids: number[][];
  ms: number;
  /** CPU time of this process (user + system) over the run: robust on a machine shared with other work. */
  cpuMs: number;
  tokens: number;
  steps: number;
  drafted: number;
  accepted: number;
}

async function run(name: string, speculativeConfig: SpeculativeConfigInput | undefined, list: string[]): Promise<Run> {
  await using llm = await LLM.create({ model, backend, speculativeConfig, dtype });
  const params = { maxTokens: newTokens, temperature: 0, ignoreEos: true };
  await llm.generate(list.map((p) => p.slice(0, 40)), { ...params, maxTokens: 8 }, { useTqdm: false }); // warm-up (JIT)
  const first = llm.getStats().length;
  const proc = (globalThis as { process: { cpuUsage(): { user: number; system: number } } }).process;
  const c0 = proc.cpuUsage();
  const t0 = performance.now();
  const outs = await llm.generate(list, params, { useTqdm: false });
  const ms = performance.now() - t0;
  const c1 = proc.cpuUsage();
  const cpuMs = (c1.user - c0.user + c1.system - c0.system) / 1000;
  const stats: IterationStats[] = llm.getStats().slice(first);
  return {
    name,
    ids: outs.map((o) => [...o.outputs[0].tokenIds]),
    ms,
    cpuMs,
    tokens: outs.reduce((a, o) => a + o.outputs[0].tokenIds.length, 0),
    steps: stats.filter((s) => s.numDecodeTokens > 0).length,
    drafted: stats.reduce((a, s) => a + (s.numDraftTokens ?? 0), 0),
    accepted: stats.reduce((a, s) => a + (s.numAcceptedDraftTokens ?? 0), 0),
  };
}

console.log(
  `model ${model}, draft ${draft}, backend ${backend}, dtype ${dtype}, runtime ${
    "Bun" in globalThis ? "bun" : "deno"
  }; greedy, ${newTokens} new tokens, maxDraftLen ${k}`,
);
const modes = (values.modes ?? "plain,NGram,DraftTarget").split(",");
for (const b of [...new Set([1, batch])]) {
  const list = prompts.slice(0, b);
  const plain = await run("plain", undefined, list);
  const runs = [plain];
  if (modes.includes("NGram")) runs.push(await run("NGram", { decodingType: "NGram", maxDraftLen: k, maxMatchingNgramSize: 3 }, list));
  if (modes.includes("DraftTarget")) runs.push(await run("DraftTarget", { decodingType: "DraftTarget", speculativeModel: draft, maxDraftLen: k }, list));
  console.log(`\nbatch ${b}:`);
  console.log(
    "| mode | tokens/s (wall) | speedup (wall) | tokens per CPU-second | speedup (CPU time) | acceptance | tokens per decode step | identical to plain |",
  );
  console.log("|---|---:|---:|---:|---:|---:|---:|---|");
  for (const r of runs) {
    const same = JSON.stringify(r.ids) === JSON.stringify(plain.ids);
    // float32 on the CPU: identical by construction. Reduced precision on a GPU: verifying k + 1 tokens in
    // one step rounds differently from one token per step, so a near-tie can flip: report where.
    const firstDiff = r.ids.map((ids, i) => ids.findIndex((t, j) => t !== plain.ids[i][j])).filter((j) => j >= 0);
    if (!same && backend === "cpu") throw new Error(`bench/speculative: ${r.name} output differs from plain greedy at batch ${b}`);
    const sameText = same ? "true" : `no: first difference at token ${Math.min(...firstDiff)} of ${newTokens}`;
    const tps = r.tokens / (r.ms / 1000);
    const acc = r.drafted > 0 ? `${(100 * r.accepted / r.drafted).toFixed(1)}% (${r.accepted}/${r.drafted})` : "-";
    const cps = r.tokens / (r.cpuMs / 1000);
    console.log(
      `| ${r.name} | ${tps.toFixed(1)} | ${(tps / (plain.tokens / (plain.ms / 1000))).toFixed(2)}× | ${cps.toFixed(1)} | ${
        (cps / (plain.tokens / (plain.cpuMs / 1000))).toFixed(2)
      }× | ` +
        `${acc} | ${(r.tokens / Math.max(1, r.steps) / b).toFixed(2)} | ${sameText} |`,
    );
  }
}
