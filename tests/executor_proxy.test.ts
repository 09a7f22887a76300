// GenerationExecutorProxy: the executor loop in a Web Worker (Bun and Deno).
import * as fs from "node:fs";
import { buildSync } from "../lib/builder/builder.ts";
import { createExecutor } from "../lib/executor/create.ts";
import type { GenerationExecutor } from "../lib/executor/executor.ts";
import { GenerationExecutorProxy } from "../lib/executor/proxy.ts";
import { SamplingParams, type SamplingParamsInput } from "../lib/executor/sampling_params.ts";
import { LlmTokenizer } from "../lib/tokenizer/tokenizer.ts";
import { AutoModelForCausalLM } from "../lib/models/llama.ts";
import { ValidationError } from "../lib/util/errors.ts";
import { assert, sharedDir, test } from "./harness.ts";

const dir = `${sharedDir}models/stories260k`;
const ref = JSON.parse(fs.readFileSync(`${dir}/reference_outputs.json`, "utf8")) as { prompt_ids: number[]; greedy_new_ids: number[] };
const tokenizer = LlmTokenizer.fromDir(dir);
const model = AutoModelForCausalLM.fromHuggingFace(dir);
const engine = buildSync(model, { maxBatchSize: 8, maxNumTokens: 64, tokensPerBlock: 8, maxInputLen: 64 });
model.close();
const sp = (p: SamplingParamsInput): SamplingParams => new SamplingParams(p);
// Started through a data: URL so `deno test` does not type-check it (a file URL worker costs ~1.5 s there).
const crashWorker = new URL(
  `data:application/javascript,${encodeURIComponent(`import ${JSON.stringify(new URL("./executor_crash_worker.js", import.meta.url).href)};`)}`,
);
const dummyInit = { engineDir: "unused", tokenizerDir: null, backend: "cpu" as const, config: {} };

// One real worker for the tests below (under `deno test` every worker start type-checks its graph).
let shared: Promise<GenerationExecutor> | null = null;
const sharedProxy = (): Promise<GenerationExecutor> => (shared ??= createExecutor({ engine, tokenizer, tokenizerDir: dir, mode: "proxy" }));

test("proxy: a handful of streaming requests match the in-process executor; one abort ends only itself", async () => {
  const proxy = await sharedProxy();
  const local = await createExecutor({ engine, tokenizer, mode: "inprocess" });
  try {
    assert.ok(proxy instanceof GenerationExecutorProxy);
    const specs = [
      { promptTokenIds: ref.prompt_ids, samplingParams: sp({ temperature: 0, maxTokens: 24, ignoreEos: true }), streaming: true, prompt: "Once upon a time" },
      { promptTokenIds: [1, 403], samplingParams: sp({ temperature: 0.8, seed: 3, maxTokens: 16 }), streaming: true },
      { promptTokenIds: [1, 351, 269], samplingParams: sp({ temperature: 1, n: 2, seed: 9, maxTokens: 12, stop: ["."] }), streaming: true },
      { promptTokenIds: ref.prompt_ids, samplingParams: sp({ temperature: 0, maxTokens: 10, repetitionPenalty: 1.5 }) },
    ];
    const victim = proxy.submit({ promptTokenIds: ref.prompt_ids, samplingParams: sp({ temperature: 0, maxTokens: 100, ignoreEos: true }), streaming: true });
    const results = specs.map((s) => proxy.submit(s));
    let seen = 0;
    for await (const out of victim) {
      if (++seen === 2) victim.abort();
      if (out.finished) assert.equal(out.outputs[0].finishReason, "abort");
    }
    const aborted = await victim.result();
    assert.equal(aborted.outputs[0].finishReason, "abort");
    assert.ok(aborted.outputs[0].tokenIds.length < 100);
    const texts = await Promise.all(results.map(async (r) => {
      let t = "";
      for await (const o of r) t += o.outputs[0].textDiff ?? "";
      return t;
    }));
    const outs = await Promise.all(results.map((r) => r.result()));
    assert.equal(outs[0].prompt, "Once upon a time");
    assert.deepEqual(outs[0].outputs[0].tokenIds, ref.greedy_new_ids.slice(0, 24));
    for (let i = 0; i < specs.length; i++) {
      assert.equal(texts[i], outs[i].outputs[0].text, `stream ${i}`);
      const alone = await local.submit(specs[i]).result();
      assert.deepEqual(outs[i].outputs.map((o) => o.tokenIds), alone.outputs.map((o) => o.tokenIds), `request ${i} vs in-process`);
      assert.deepEqual(outs[i].outputs.map((o) => o.text), alone.outputs.map((o) => o.text));
    }
    const stats = proxy.getStats();
    assert.ok(stats.length > 0 && stats.at(-1)!.kvBlocksUsed === 0, "stats cross over; KV back to baseline");
    for (const s of stats) {
      assert.ok(s.forwardMs! > 0 && s.forwardMs! <= s.stepMs && s.idleMs! >= 0, `forward ${s.forwardMs} of step ${s.stepMs} ms, idle ${s.idleMs}`);
    }
  } finally {
    await local.shutdown();
  }
});

test("proxy: streamed outputs cross as deltas and arrive whole: each one's text and tokenIds are the diffs so far, as in-process", async () => {
  const proxy = await sharedProxy();
  const local = await createExecutor({ engine, tokenizer, mode: "inprocess" });
  try {
    const spec = { promptTokenIds: ref.prompt_ids, samplingParams: sp({ temperature: 0.8, seed: 5, n: 2, maxTokens: 20, ignoreEos: true }), streaming: true };
    const steps = async (ex: GenerationExecutor): Promise<{ text: string; ids: readonly number[] }[][]> => {
      const seen: { text: string; ids: readonly number[] }[][] = [];
      const acc = new Map<number, { text: string; ids: number[] }>();
      for await (const out of ex.submit(spec)) {
        seen.push(out.outputs.map((o) => {
          const a = acc.get(o.index) ?? { text: "", ids: [] };
          a.text += o.textDiff ?? "";
          a.ids.push(...(o.tokenIdsDiff ?? []));
          acc.set(o.index, a);
          assert.equal(o.text, a.text, "text = the diffs so far");
          assert.deepEqual(o.tokenIds, a.ids, "tokenIds = the diffs so far");
          return { text: o.text, ids: o.tokenIds };
        }));
      }
      return seen;
    };
    const remote = await steps(proxy);
    assert.ok(remote.length > 2, `${remote.length} outputs`);
    assert.deepEqual(remote.at(-1), (await steps(local)).at(-1));
  } finally {
    await local.shutdown();
  }
});

test("proxy: a logitsProcessor function is rejected with a clear error; a too-long prompt fails alone", async () => {
  const proxy = await sharedProxy();
  const fn = proxy.submit({ promptTokenIds: [1], samplingParams: sp({ logitsProcessor: (_ids, logits) => logits }) });
  await assert.rejects(fn.result(), (e: Error) => e instanceof ValidationError && /logitsProcessor: a function cannot cross/.test(e.message));
  const long = proxy.submit({ promptTokenIds: new Array(70).fill(5), samplingParams: sp({}) });
  const ok = proxy.submit({ promptTokenIds: [1, 403], samplingParams: sp({ temperature: 0, maxTokens: 3 }) });
  await assert.rejects(long.result(), (e: Error) => e instanceof ValidationError && /exceeds maxInputLen 64/.test(e.message));
  assert.equal((await ok.result()).outputs[0].tokenIds.length, 3);
});

test("proxy: a worker that crashes fails every request in flight with the reason, and later ones at once", async () => {
  const proxy = await GenerationExecutorProxy.create(dummyInit, { workerUrl: crashWorker });
  try {
    const held = [
      proxy.submit({ promptTokenIds: [1], samplingParams: sp({}), prompt: "hold" }),
      proxy.submit({ promptTokenIds: [1], samplingParams: sp({}), prompt: "hold" }),
    ];
    const crash = proxy.submit({ promptTokenIds: [1], samplingParams: sp({}), prompt: "crash" });
    for (const r of [...held, crash]) await assert.rejects(r.result(), /executor worker failed: [\s\S]*simulated crash/);
    assert.equal(proxy.numInFlight, 0);
    await assert.rejects(proxy.submit({ promptTokenIds: [1], samplingParams: sp({}) }).result(), /simulated crash/);
  } finally {
    await proxy.shutdown();
  }
});

test("proxy: a fatal report from the worker fails in-flight requests", async () => {
  const proxy = await GenerationExecutorProxy.create(dummyInit, { workerUrl: crashWorker });
  try {
    const held = proxy.submit({ promptTokenIds: [1], samplingParams: sp({}), prompt: "hold" });
    const fatal = proxy.submit({ promptTokenIds: [1], samplingParams: sp({}), prompt: "fatal" });
    await assert.rejects(held.result(), /simulated fatal report/);
    await assert.rejects(fatal.result(), /simulated fatal report/);
  } finally {
    await proxy.shutdown();
  }
});

test("proxy: a worker that cannot load the engine rejects create with the reason", async () => {
  await assert.rejects(
    GenerationExecutorProxy.create({ ...dummyInit, engineDir: "bad" }, { workerUrl: crashWorker }),
    (e: Error) => e.name === "FormatError" && /simulated: engine cannot be read/.test(e.message),
  );
});

test("proxy: shutdown fails requests still in flight", async () => {
  const proxy = await sharedProxy();
  const r = proxy.submit({ promptTokenIds: ref.prompt_ids, samplingParams: sp({ maxTokens: 400, ignoreEos: true }) });
  await proxy.shutdown();
  await assert.rejects(r.result(), /shut down/);
});
