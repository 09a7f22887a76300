/**
 * `llmrt bench`: throughput (N requests at once, in-flight batching) and latency (one request at a
 * time) workloads like trtllm-bench, on random prompt ids with ignoreEos so every request makes
 * exactly --output-len tokens. Prints a table; --json prints the numbers as JSON instead.
 */
import type { LLM } from "../../mod.ts";
import { UsageError } from "../cli/args.ts";
import type { Command } from "../cli/command.ts";
import { MODEL_OPTIONS, openModel } from "../cli/model.ts";

interface RequestTiming {
  ttftMs: number;
  itlMs: number[];
  e2eMs: number;
  outputTokens: number;
}

function percentile(xs: readonly number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
}

function randomPrompts(num: number, len: number, vocab: number, seed: number): number[][] {
  let s = seed >>> 0;
  const rand = (): number => {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    return s;
  };
  return Array.from({ length: num }, () => Array.from({ length: len }, () => 3 + (rand() % (vocab - 3))));
}

async function timed(llm: LLM, prompt: number[], outputLen: number): Promise<RequestTiming> {
  const t0 = performance.now();
  let last = t0;
  let ttft = NaN;
  const itl: number[] = [];
  let n = 0;
  const ro = llm.generateAsync(prompt, { maxTokens: outputLen, temperature: 0, ignoreEos: true, detokenize: false }, { streaming: true });
  for await (const o of ro) {
    const k = o.outputs[0]?.tokenIdsDiff?.length ?? 0;
    if (k === 0) continue;
    const now = performance.now();
    if (n === 0) ttft = now - t0;
    else for (let j = 0; j < k; j++) itl.push((now - last) / k);
    n += k;
    last = now;
  }
  await ro.result();
  return { ttftMs: ttft, itlMs: itl, e2eMs: performance.now() - t0, outputTokens: n };
}

export const bench: Command = {
  name: "bench",
  summary: "measure throughput or latency (like trtllm-bench)",
  usage: "[throughput|latency] [options]",
  description: "throughput: --num-requests requests submitted at once; reports output tokens/s and requests/s.\n" +
    "latency: the requests one after another (batch 1); reports time to first token and inter-token latency.",
  options: [
    ...MODEL_OPTIONS,
    { name: "num-requests", type: "int", min: 1, default: 32, help: "requests in the workload" },
    { name: "input-len", type: "int", min: 1, default: 128, help: "prompt tokens per request" },
    { name: "output-len", type: "int", min: 1, default: 128, help: "generated tokens per request" },
    { name: "max-batch-size", type: "int", min: 1, max: 4096, help: "most requests running at once (default: the engine's)" },
    { name: "warmup", type: "int", min: 0, default: 1, help: "warm-up requests before timing" },
    { name: "seed", type: "int", min: 0, default: 1, help: "seed of the random prompts" },
    { name: "json", type: "boolean", help: "print the results as JSON instead of a table" },
  ],
  async run({ values, positionals }): Promise<number> {
    const workload = positionals[0] ?? "throughput";
    if (workload !== "throughput" && workload !== "latency") {
      throw new UsageError(`bench: workload must be throughput or latency, got ${JSON.stringify(workload)}`);
    }
    const num = values["num-requests"] as number, inLen = values["input-len"] as number, outLen = values["output-len"] as number;
    const { llm, model } = await openModel(values, { maxBatchSize: values["max-batch-size"] as number | undefined, skipTokenizerInit: true });
    try {
      const lim = llm.executor.limits;
      if (inLen > lim.maxInputLen || inLen + outLen > lim.maxSeqLen) {
        throw new UsageError(
          `--input-len ${inLen} + --output-len ${outLen}: exceed the engine's limits (prompt <= ${lim.maxInputLen}, total <= ${lim.maxSeqLen})`,
        );
      }
      const prompts = randomPrompts(num, inLen, lim.vocabSize, values.seed as number);
      for (let i = 0; i < (values.warmup as number); i++) await timed(llm, prompts[0], Math.min(outLen, 4));
      const t0 = performance.now();
      const timings: RequestTiming[] = [];
      if (workload === "throughput") timings.push(...await Promise.all(prompts.map((p) => timed(llm, p, outLen))));
      else for (const p of prompts) timings.push(await timed(llm, p, outLen));
      const s = (performance.now() - t0) / 1000;
      const outTokens = timings.reduce((a, t) => a + t.outputTokens, 0);
      const ttft = timings.map((t) => t.ttftMs), itl = timings.flatMap((t) => t.itlMs), e2e = timings.map((t) => t.e2eMs);
      const result = {
        workload,
        model,
        backend: llm.backend,
        numRequests: num,
        inputLen: inLen,
        outputLen: outLen,
        maxBatchSize: lim.maxBatchSize,
        seconds: s,
        requestsPerS: num / s,
        outputTokensPerS: outTokens / s,
        totalTokensPerS: (outTokens + num * inLen) / s,
        ttftMs: { p50: percentile(ttft, 50), p90: percentile(ttft, 90), p99: percentile(ttft, 99) },
        itlMs: { p50: percentile(itl, 50), p90: percentile(itl, 90), p99: percentile(itl, 99) },
        e2eMs: { p50: percentile(e2e, 50), p90: percentile(e2e, 90), p99: percentile(e2e, 99) },
      };
      if (values.json) console.log(JSON.stringify(result, null, 2));
      else {
        const f = (x: number, d = 2): string => (Number.isFinite(x) ? x.toFixed(d) : "-");
        const rows: [string, string][] = [
          ["workload", `${workload}: ${num} x (${inLen} in, ${outLen} out), max batch ${lim.maxBatchSize}`],
          ["model", `${model} on ${llm.backend}`],
          ["wall time", `${f(s)} s`],
          ["requests/s", f(result.requestsPerS, 3)],
          ["output tokens/s", f(result.outputTokensPerS, 1)],
          ["total tokens/s", f(result.totalTokensPerS, 1)],
          ["TTFT ms p50 / p90 / p99", `${f(result.ttftMs.p50)} / ${f(result.ttftMs.p90)} / ${f(result.ttftMs.p99)}`],
          ["ITL ms p50 / p90 / p99", `${f(result.itlMs.p50)} / ${f(result.itlMs.p90)} / ${f(result.itlMs.p99)}`],
          ["request ms p50 / p90 / p99", `${f(result.e2eMs.p50)} / ${f(result.e2eMs.p90)} / ${f(result.e2eMs.p99)}`],
        ];
        const w = Math.max(...rows.map((r) => r[0].length));
        console.log(rows.map(([k, v]) => `${k.padEnd(w)}  ${v}`).join("\n"));
      }
    } finally {
      await llm.shutdown();
    }
    return 0;
  },
};
