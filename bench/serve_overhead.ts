/**
 * Host overhead of serving, without a GPU: the model step is replaced by a stand-in that writes
 * pseudo-random token ids and spins `--step-ms` (0: nearly free; 5.8: an H200's llama-3.2-1b decode
 * step of 256 rows), so what is left is host work. The same N requests of `--input` prompt tokens →
 * `--output` new tokens each (ignoreEos) run closed-loop for `--duration` seconds three ways:
 *
 *   offline  `llm.generate` of N prompts at once, again and again (bench/throughput.ts's path)
 *   stream   N in-process clients, each `llm.generateAsync(..., { streaming: true })` read to the end
 *   http     N streaming HTTP clients (bench/serve_load.ts's) against `startServer` in this process
 *
 *   bun bench/serve_overhead.ts [--requests 256] [--input 128] [--output 128] [--step-ms 0] [--duration 5]
 *                               [--modes offline,stream,http] [--clients process|inproc] [--executor inprocess|proxy]
 *                               [--model DIR] [--json]
 *
 * Output tokens/s of each mode and its ratio to offline. The HTTP clients run in a child process
 * (`bench/serve_load.ts --url`, as on a GPU machine), or with `--clients inproc` on the server's
 * thread (a lower bound). The model (default: the embedded kjv-llama, its tokenizer detokenizes)
 * only sets the vocabulary and the tokenizer: its weights are never read.
 */
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import process from "node:process";
import { parseArgs } from "node:util";
import { LLM } from "../mod.ts";
import { GenerationExecutorProxy } from "../lib/executor/proxy.ts";
import { fakeModelStep } from "./serve_overhead_stub.ts";
import { startServer } from "../lib/serve/server.ts";
import { runLoad } from "./serve_load.ts";

/** What one mode measured. */
export interface OverheadResult {
  readonly mode: string;
  readonly seconds: number;
  readonly outputTokens: number;
  readonly outputTokensPerS: number;
  readonly steps: number;
  /** Mean host time per step outside the model step (ms). */
  readonly hostMsPerStep: number;
  /**
   * Mean host time of the executor loop's own step (IterationStats.stepMs less the stand-in's spin):
   * schedule, stage, append tokens, stop checks, outputs; in the worker's thread with `--executor proxy`
   * (the posting of each step's message and the message handling between steps not included) (ms).
   */
  readonly loopHostMsPerStep: number;
  /** CPU time of this process (all its threads, the stand-in step's spin excluded) per output token, µs: robust to a busy machine. */
  readonly cpuUsPerToken: number;
}

function idPrompts(n: number, len: number, vocab: number): number[][] {
  let seed = 777;
  return Array.from({ length: n }, () =>
    Array.from({ length: len }, () => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return 3 + ((seed >>> 8) % (vocab - 3));
    }));
}

/** bench/serve_load.ts --url in a child process of this runtime (the clients off the server's thread). */
async function loadInChild(o: { url: string; model: string; concurrency: number; durationS: number; minTokens: number; maxTokens: number }, inputLen: number) {
  const script = new URL("./serve_load.ts", import.meta.url).pathname;
  const args = [
    ..."Deno" in globalThis ? ["run", "-A"] : [],
    script,
    "--url",
    o.url,
    "--served-model-name",
    o.model,
    "--concurrency",
    String(o.concurrency),
    "--duration",
    String(o.durationS),
    "--input-len",
    String(inputLen),
    "--min-tokens",
    String(o.minTokens),
    "--max-tokens",
    String(o.maxTokens),
    "--no-warmup",
    "--json",
  ];
  const child = spawn(process.execPath, args, { stdio: ["ignore", "pipe", "inherit"] });
  let out = "";
  child.stdout!.setEncoding("utf8").on("data", (d: string) => out += d);
  const code = await new Promise<number>((resolve) => child.on("close", (c) => resolve(c ?? 1)));
  if (code !== 0 && !out.includes("{")) throw new Error(`serve_load.ts exited ${code}`);
  return JSON.parse(out.slice(out.indexOf("{"))) as Awaited<ReturnType<typeof runLoad>>;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: process.argv.slice(2),
    options: {
      requests: { type: "string", default: "256" },
      input: { type: "string", default: "128" },
      output: { type: "string", default: "128" },
      "step-ms": { type: "string", default: "0" },
      duration: { type: "string", default: "5" },
      modes: { type: "string", default: "offline,stream,http" },
      clients: { type: "string", default: "process" },
      executor: { type: "string", default: "inprocess" },
      model: { type: "string", default: new URL("../models/kjv-llama/", import.meta.url).pathname },
      json: { type: "boolean", default: false },
      "no-tokenizer": { type: "boolean", default: false },
    },
  });
  const N = Number(values.requests), IN = Number(values.input), OUT = Number(values.output);
  const stepMs = Number(values["step-ms"]), durationS = Number(values.duration);
  const maxSeqLen = Math.ceil((IN + OUT + 32) / 32) * 32;
  const proxy = values.executor === "proxy";
  if (proxy) {
    // The worker installs the same stand-in step (the real worker entry, behind a shim).
    const create = GenerationExecutorProxy.create.bind(GenerationExecutorProxy);
    const V0 = JSON.parse(fs.readFileSync(`${values.model}/config.json`, "utf8")).vocab_size as number;
    process.env.LLMRT_STUB_STEP_MS = String(stepMs);
    process.env.LLMRT_STUB_VOCAB = String(V0);
    const workerUrl = new URL("./serve_overhead_worker.ts", import.meta.url);
    GenerationExecutorProxy.create = (init, o = {}) => create(init, { ...o, workerUrl });
  }
  const llm = await LLM.create({
    executorMode: proxy ? "proxy" : "inprocess",
    skipTokenizerInit: values["no-tokenizer"],
    model: values.model!,
    backend: "cpu",
    cacheEngine: false,
    maxBatchSize: N,
    buildConfig: { maxBatchSize: N, maxSeqLen, maxInputLen: IN },
    kvCacheConfig: { maxTokens: (N + 1) * maxSeqLen, enableBlockReuse: false },
  });
  const V = llm.engine.plan.attributes.vocabSize;
  const fake = fakeModelStep(stepMs, V);
  const prompts = idPrompts(N, IN, V);
  const params = { maxTokens: OUT, temperature: 0.8, topP: 0.95, ignoreEos: true };
  const results: OverheadResult[] = [];
  const measure = async (mode: string, body: (deadline: number) => Promise<number>): Promise<void> => {
    await body(performance.now() + 300); // warm-up
    const iter = (): number => (llm.getStats().at(-1)?.iter ?? -1) + 1;
    const s0 = iter(), t0 = performance.now(), c0 = process.cpuUsage();
    const tokens = await body(t0 + durationS * 1000);
    const secs = (performance.now() - t0) / 1000;
    const cpu = process.cpuUsage(c0);
    const steps = iter() - s0;
    const loopMs = llm.getStats().filter((s) => s.iter >= s0 && s.numDecodeTokens + s.numPrefillTokens > 0).map((s) => s.stepMs);
    const spinMs = steps * stepMs; // the stand-in's share of the steps (in this thread or the worker's)
    results.push({
      mode,
      seconds: secs,
      outputTokens: tokens,
      outputTokensPerS: tokens / secs,
      steps,
      hostMsPerStep: (secs * 1000 - spinMs) / Math.max(1, steps),
      loopHostMsPerStep: loopMs.reduce((a, b) => a + b, 0) / Math.max(1, loopMs.length) - stepMs,
      cpuUsPerToken: (cpu.user + cpu.system - spinMs * 1000) / Math.max(1, tokens),
    });
  };
  const modes = values.modes!.split(",");
  let httpDetail = "";
  try {
    if (modes.includes("offline")) {
      await measure("offline", async (deadline) => {
        let tokens = 0;
        do {
          const outs = await llm.generate(prompts, params, { useTqdm: false });
          for (const o of outs) tokens += o.outputs[0].tokenIds.length;
        } while (performance.now() < deadline);
        return tokens;
      });
    }
    if (modes.includes("stream")) {
      await measure("stream", async (deadline) => {
        let tokens = 0;
        await Promise.all(prompts.map(async (p) => {
          do {
            for await (const o of llm.generateAsync(p, params, { streaming: true })) tokens += o.outputs[0]?.tokenIdsDiff?.length ?? 0;
          } while (performance.now() < deadline);
        }));
        return tokens;
      });
    }
    if (modes.includes("http")) {
      const server = await startServer({ llm, port: 0, modelName: "m", maxQueue: 4 * N });
      try {
        await measure("http", async (deadline) => {
          const load = {
            url: server.url,
            model: "m",
            concurrency: N,
            durationS: Math.max(0, (deadline - performance.now()) / 1000),
            minTokens: OUT,
            maxTokens: OUT,
          };
          const r = values.clients === "process" ? await loadInChild(load, IN) : await runLoad({ ...load, prompts });
          if (r.errors > 0) throw new Error(`http: ${r.errors} errors: ${r.errorSamples.join("; ")}`);
          httpDetail = `${r.requests} requests, TTFT p50 ${r.ttftMs.p50.toFixed(1)} ms, ITL p50 ${r.itlMs.p50.toFixed(2)} p90 ${r.itlMs.p90.toFixed(2)} ms`;
          return r.outputTokens;
        });
      } finally {
        await server.close(2000);
      }
    }
  } finally {
    fake.restore();
    await llm.shutdown();
  }
  const base = results.find((r) => r.mode === "offline")?.outputTokensPerS;
  if (values.json) console.log(JSON.stringify({ requests: N, input: IN, output: OUT, stepMs, durationS, results }, null, 2));
  else {
    console.log(
      `${N} requests × (${IN} in, ${OUT} out), stand-in step ${stepMs} ms, ${durationS} s per mode (${
        "Bun" in globalThis ? "Bun" : "Deno"
      }, executor ${values.executor})`,
    );
    for (const r of results) {
      const pct = base ? ` (${((100 * r.outputTokensPerS) / base).toFixed(1)}% of offline)` : "";
      console.log(
        `  ${r.mode.padEnd(8)} ${r.outputTokensPerS.toFixed(0).padStart(8)} output tok/s${pct}; ${r.steps} steps, host ${
          r.hostMsPerStep.toFixed(2)
        } ms/step (loop ${r.loopHostMsPerStep.toFixed(2)}), CPU ${r.cpuUsPerToken.toFixed(1)} µs/token${r.mode === "http" ? `; ${httpDetail}` : ""}`,
      );
    }
  }
}

if (import.meta.main) await main();
