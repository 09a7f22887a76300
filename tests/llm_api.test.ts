// LLM API over the executor: generate (batched), generateAsync (streaming, abort, AbortSignal), getStats,
// kvCacheConfig, proxy mode, progress bar.
import * as fs from "node:fs";
import type { GenerationExecutorWorker } from "../lib/executor/worker.ts";
import { LLM, type LlmOptions } from "../lib/llmapi/llm.ts";
import { ProgressBar } from "../lib/llmapi/progress.ts";
import { RequestOutput } from "../lib/llmapi/request_output.ts";
import { ValidationError } from "../lib/util/errors.ts";
import { assert, sharedDir, test, testLlm } from "./harness.ts";

const dir = `${sharedDir}models/stories260k`;
const ref = JSON.parse(fs.readFileSync(`${dir}/reference_outputs.json`, "utf8")) as { prompt_ids: number[]; greedy_new_ids: number[] };
const create = (o: Partial<LlmOptions> = {}): Promise<LLM> =>
  LLM.create({ model: dir, ...testLlm, cacheEngine: false, buildConfig: { maxBatchSize: 16, maxNumTokens: 256, maxInputLen: 64, tokensPerBlock: 16 }, ...o });

test("LLM.generate golden: 256 greedy ids of the reference prompt (temperature 0, ignoreEos)", async () => {
  await using llm = await create();
  const out = await llm.generate(ref.prompt_ids, { temperature: 0, maxTokens: 256, ignoreEos: true }, { useTqdm: false });
  assert.deepEqual(out.outputs[0].tokenIds, ref.greedy_new_ids);
  assert.equal(out.outputs[0].finishReason, "length");
  const text = await llm.generate("Once upon a time", { temperature: 0, maxTokens: 256, endId: -1 }, { useTqdm: false });
  assert.deepEqual(text.promptTokenIds, ref.prompt_ids);
  assert.equal(text.prompt, "Once upon a time");
  assert.deepEqual(text.outputs[0].tokenIds, ref.greedy_new_ids);
  assert.ok(text.outputs[0].text.startsWith(", there was a little girl named Lily"), text.outputs[0].text.slice(0, 60));
});

test("LLM.generate batches prompts with one or per-prompt params and keeps their order", async () => {
  await using llm = await create();
  const prompts = ["Once upon a time", "The dog", [1, 403, 407]];
  const outs = await llm.generate(prompts, [{ temperature: 0, maxTokens: 12 }, { temperature: 0.8, seed: 1, maxTokens: 5 }, { temperature: 0, maxTokens: 7 }], {
    useTqdm: false,
  });
  assert.equal(outs.length, 3);
  assert.deepEqual(outs.map((o) => o.outputs[0].tokenIds.length), [12, 5, 7]);
  assert.deepEqual(outs[0].outputs[0].tokenIds, ref.greedy_new_ids.slice(0, 12));
  for (const [i, p] of prompts.entries()) {
    const alone = await llm.generate(p, [{ temperature: 0, maxTokens: 12 }, { temperature: 0.8, seed: 1, maxTokens: 5 }, { temperature: 0, maxTokens: 7 }][i], {
      useTqdm: false,
    });
    assert.deepEqual(alone.outputs[0].tokenIds, outs[i].outputs[0].tokenIds);
  }
  assert.ok(llm.getStats().some((s) => s.numScheduled === 3), "the three ran in one batch");
});

test("TensorRT-LLM's TextPrompt / TokensPrompt objects: { prompt } and { promptTokenIds } run as the bare forms; other objects are refused naming their keys", async () => {
  await using llm = await create();
  const greedy = { temperature: 0, maxTokens: 8 };
  const opts = { useTqdm: false };
  const text = await llm.generate({ prompt: "Once upon a time" }, greedy, opts);
  assert.equal(text.prompt, "Once upon a time");
  assert.deepEqual(text.outputs[0].tokenIds, ref.greedy_new_ids.slice(0, 8));
  const ids = await llm.generate({ promptTokenIds: ref.prompt_ids }, greedy, opts);
  assert.deepEqual(ids.promptTokenIds, ref.prompt_ids);
  assert.deepEqual(ids.outputs[0].tokenIds, ref.greedy_new_ids.slice(0, 8));
  const batch = await llm.generate([{ prompt: "Once upon a time" }, "The dog", { promptTokenIds: [1, 403, 407] }], greedy, opts);
  assert.equal(batch.length, 3);
  assert.deepEqual(batch[0].outputs[0].tokenIds, text.outputs[0].tokenIds);
  assert.deepEqual(batch[2].outputs[0].tokenIds, (await llm.generate([1, 403, 407], greedy, opts)).outputs[0].tokenIds);
  const streamed = await llm.generateAsync({ promptTokenIds: ref.prompt_ids }, greedy).result();
  assert.deepEqual(streamed.outputs[0].tokenIds, ids.outputs[0].tokenIds);
  // deno-lint-ignore no-explicit-any
  const bad = (p: any) => llm.generate(p, greedy, opts);
  await assert.rejects(
    bad({ text: "x" }),
    (e: Error) =>
      e instanceof ValidationError &&
      /LLM\.generate prompt: expected a string, token ids, \{ prompt: string \} or \{ promptTokenIds: number\[\] \}, got an object with keys text/.test(
        e.message,
      ),
  );
  await assert.rejects(bad([{ prompt: "x", promptTokenIds: [1] }]), /LLM\.generate prompts\[0\]: .*keys prompt, promptTokenIds/);
  await assert.rejects(bad({}), /got an object with no keys/);
  await assert.rejects(bad({ promptTokenIds: [1, 600] }), /token id 600 is outside \[0, 512\)/);
  // deno-lint-ignore no-explicit-any
  await assert.rejects(llm.generateAsync({ prompt: 5 } as any, greedy).result(), /LLM\.generateAsync prompt: .*keys prompt/);
});

test("LLM.generate checks every prompt before running any", async () => {
  await using llm = await create();
  await assert.rejects(
    llm.generate(["Once upon a time", new Array(65).fill(5)], { maxTokens: 2 }),
    (e: Error) => e instanceof ValidationError && /prompts\[1\]: prompt of 65 tokens exceeds maxInputLen 64/.test(e.message),
  );
  await assert.rejects(llm.generate([[1, 600]], {}), /prompts\[0\]\[1\]: token id 600 is outside \[0, 512\)/);
  await assert.rejects(llm.generate("x", { temperature: -1 }), /SamplingParams.temperature/);
  assert.equal(llm.getStats().length, 0, "nothing ran");
});

test("generateAsync streaming: deltas add up to the final text; the RequestOutput reads as its latest output", async () => {
  await using llm = await create();
  const ro = llm.generateAsync("Once upon a time", { temperature: 0, maxTokens: 20 }, { streaming: true });
  assert.ok(ro instanceof RequestOutput);
  let text = "", n = 0;
  const ids: number[] = [];
  for await (const out of ro) {
    n++;
    text += out.outputs[0].textDiff ?? "";
    ids.push(...(out.outputs[0].tokenIdsDiff ?? []));
    assert.equal(out.finished, out.outputs[0].finishReason !== null);
  }
  const final = await ro.result();
  assert.ok(n >= 10, `${n} outputs streamed`);
  assert.equal(text, final.outputs[0].text);
  assert.deepEqual(ids, final.outputs[0].tokenIds);
  assert.equal(ro.finished, true);
  assert.equal(ro.outputs[0].text, final.outputs[0].text);
  assert.equal(ro.prompt, "Once upon a time");
  assert.equal(ro.error, null);
  // Not streaming: one output, the final one.
  let count = 0;
  for await (const out of llm.generateAsync("Once upon a time", { temperature: 0, maxTokens: 20 })) {
    count++;
    assert.equal(out.outputs[0].textDiff, final.outputs[0].text);
  }
  assert.equal(count, 1);
});

test("an AbortSignal ends only its request with finishReason abort and frees its KV blocks", async () => {
  await using llm = await create();
  const ex = llm.executor as GenerationExecutorWorker;
  const ac = new AbortController();
  const victim = llm.generateAsync(ref.prompt_ids, { temperature: 0, maxTokens: 200, ignoreEos: true }, { streaming: true, signal: ac.signal });
  const other = llm.generateAsync(ref.prompt_ids, { temperature: 0, maxTokens: 30, ignoreEos: true }, { streaming: true });
  let seen = 0;
  for await (const _ of victim) if (++seen === 5) ac.abort();
  const v = await victim.result();
  assert.equal(v.outputs[0].finishReason, "abort");
  assert.ok(v.outputs[0].tokenIds.length >= 5 && v.outputs[0].tokenIds.length < 200);
  assert.deepEqual(v.outputs[0].tokenIds, ref.greedy_new_ids.slice(0, v.outputs[0].tokenIds.length));
  const o = await other.result();
  assert.deepEqual(o.outputs[0].tokenIds, ref.greedy_new_ids.slice(0, 30));
  assert.equal(ex.kvCacheStats.usedBlocks, 0);
  // An already-aborted signal: the request ends at once, never computed.
  const pre = llm.generateAsync("Once upon a time", { maxTokens: 10 }, { signal: AbortSignal.abort() });
  const p = await pre.result();
  assert.equal(p.outputs[0].finishReason, "abort");
  // abort() on the RequestOutput works the same.
  const direct = llm.generateAsync("Once upon a time", { maxTokens: 100, ignoreEos: true }, { streaming: true });
  for await (const out of direct) if (out.outputs[0].tokenIds.length >= 2) direct.abort();
  assert.equal((await direct.result()).outputs[0].finishReason, "abort");
});

test("generateAsync: a prompt that is too long fails alone with a clear error", async () => {
  await using llm = await create();
  const ok = llm.generateAsync("Once upon a time", { temperature: 0, maxTokens: 8 }, { streaming: true });
  const bad = llm.generateAsync(new Array(100).fill(7), { maxTokens: 8 }, { streaming: true });
  await assert.rejects(bad.result(), /prompt: prompt of 100 tokens exceeds maxInputLen 64/);
  await assert.rejects(async () => {
    for await (const _ of bad) { /* throws */ }
  }, /maxInputLen/);
  assert.ok(bad.error instanceof ValidationError);
  assert.deepEqual((await ok.result()).outputs[0].tokenIds, ref.greedy_new_ids.slice(0, 8));
  const badParams = llm.generateAsync("x", { topP: 5 });
  await assert.rejects(badParams.result(), /SamplingParams.topP/);
});

test("getStats: per-iteration batch size, prefill/decode tokens, step time and KV blocks", async () => {
  await using llm = await create();
  await llm.generate(["Once upon a time", "The dog"], { temperature: 0, maxTokens: 6 }, { useTqdm: false });
  const stats = llm.getStats();
  assert.ok(stats.length >= 6);
  assert.equal(stats[0].iter, 0);
  assert.equal(stats[0].numScheduled, 2);
  assert.equal(stats[0].numPrefillTokens, 5 + 4);
  assert.equal(stats[1].numDecodeTokens, 2);
  assert.ok(stats.every((s) => s.stepMs >= 0 && s.kvBlocksUsed + s.kvBlocksFree > 0));
  assert.equal(stats.at(-1)!.kvBlocksUsed, 0);
  assert.ok(stats[0].kvBlocksUsed >= 2);
});

test("kvCacheConfig: validated with the field named; maxTokens sizes the cache; block reuse can be turned off", async () => {
  await assert.rejects(create({ kvCacheConfig: { maxTokens: -5 } }), (e: Error) => e instanceof ValidationError && /kvCacheConfig.maxTokens/.test(e.message));
  await assert.rejects(create({ kvCacheConfig: { freeGpuMemoryFraction: 2 } }), /kvCacheConfig.freeGpuMemoryFraction/);
  await assert.rejects(create({ kvCacheConfig: { maxBlocks: 3 } as unknown as LlmOptions["kvCacheConfig"] }), /kvCacheConfig/);
  await assert.rejects(create({ executorMode: "thread" as unknown as "proxy" }), /executorMode/);
  await using llm = await create({ kvCacheConfig: { maxTokens: 1024, enableBlockReuse: false } });
  assert.equal(llm.executor.limits.numKvBlocks, 1024 / 16);
  await llm.generate(ref.prompt_ids, { temperature: 0, maxTokens: 4 }, { useTqdm: false });
  await llm.generate(ref.prompt_ids, { temperature: 0, maxTokens: 4 }, { useTqdm: false });
  assert.equal(llm.getStats().at(-1)!.kvBlocksReused, 0);
  await using bytes = await create({ kvCacheConfig: { maxBytes: 1 << 20 } });
  assert.equal(bytes.executor.limits.numKvBlocks, Math.floor((1 << 20) / (5 * 2 * 16 * 4 * 8 * 4)));
});

test("executorMode proxy: generate, streaming with an abort, and a logitsProcessor rejected", async () => {
  await using llm = await create({ executorMode: "proxy" });
  const out = await llm.generate("Once upon a time", { temperature: 0, maxTokens: 32 }, { useTqdm: false });
  assert.deepEqual(out.outputs[0].tokenIds, ref.greedy_new_ids.slice(0, 32));
  const ac = new AbortController();
  const victim = llm.generateAsync("Once upon a time", { temperature: 0, maxTokens: 300, ignoreEos: true }, { streaming: true, signal: ac.signal });
  const others = ["The dog", "Once upon a time"].map((p) => llm.generateAsync(p, { temperature: 0.7, seed: 4, maxTokens: 12 }, { streaming: true }));
  let seen = 0;
  for await (const _ of victim) if (++seen === 3) ac.abort();
  assert.equal((await victim.result()).outputs[0].finishReason, "abort");
  for (const o of others) {
    let text = "";
    for await (const x of o) text += x.outputs[0].textDiff ?? "";
    assert.equal(text, (await o.result()).outputs[0].text);
  }
  await assert.rejects(llm.generate("x", { logitsProcessor: () => {} }), /cannot cross to the executor's worker/);
  assert.ok(llm.getStats().length > 0);
});

test("shutdown: idempotent; the LLM cannot be used afterwards; requests in flight fail with a reason", async () => {
  const llm = await create();
  const inflight = llm.generateAsync("Once upon a time", { maxTokens: 400, ignoreEos: true });
  await llm.shutdown();
  await llm.shutdown();
  await assert.rejects(inflight.result(), /shut down/);
  await assert.rejects(llm.generate("x"), /used after shutdown/);
  await assert.rejects(llm.generateAsync("x").result(), /used after shutdown/);
});

test("progress bar: drawn only on a TTY", () => {
  const chunks: string[] = [];
  const tty = { write: (s: string) => chunks.push(s), isTTY: true };
  const bar = new ProgressBar(4, { stream: tty });
  bar.update({ done: 4, inputTokens: 20, outputTokens: 40 });
  bar.close();
  assert.ok(chunks.some((c) => c.includes("4/4")), chunks.join(""));
  assert.ok(chunks.at(-1) === "\n");
  const silent: string[] = [];
  const pipe = { write: (s: string) => silent.push(s), isTTY: false };
  const off = new ProgressBar(2, { stream: pipe });
  off.update({ done: 2 });
  off.close();
  assert.equal(silent.length, 0);
  const disabled = new ProgressBar(2, { stream: tty, enabled: false });
  assert.equal(disabled.enabled, false);
});
