// GenerationExecutor (in-process) on stories260k: in-flight batching, streaming, abort, errors,
// preemption, prefix reuse, n / bestOf.
import * as fs from "node:fs";
import { buildSync } from "../lib/builder/builder.ts";
import type { Engine } from "../lib/builder/engine.ts";
import type { ExecutorConfigInput, IterationStats } from "../lib/executor/config.ts";
import type { GenerationResult } from "../lib/executor/result.ts";
import { GenerationExecutorWorker } from "../lib/executor/worker.ts";
import type { RequestOutput } from "../lib/executor/outputs.ts";
import { SamplingParams, type SamplingParamsInput } from "../lib/executor/sampling_params.ts";
import { LlmTokenizer } from "../lib/tokenizer/tokenizer.ts";
import { AutoModelForCausalLM } from "../lib/models/llama.ts";
import { ValidationError } from "../lib/util/errors.ts";
import { assert, sharedDir, test, testBackend, testBuild } from "./harness.ts";

const dir = `${sharedDir}models/stories260k`;
const ref = JSON.parse(fs.readFileSync(`${dir}/reference_outputs.json`, "utf8")) as { prompt_ids: number[]; greedy_new_ids: number[] };
const tokenizer = LlmTokenizer.fromDir(dir);

function engine(opts = {}): Engine {
  const model = AutoModelForCausalLM.fromHuggingFace(dir);
  try {
    return buildSync(model, { maxBatchSize: 32, maxNumTokens: 128, tokensPerBlock: 8, maxInputLen: 64, ...testBuild, ...opts });
  } finally {
    model.close();
  }
}
const mainEngine = engine();
const executor = (config: ExecutorConfigInput = {}, eng = mainEngine): GenerationExecutorWorker =>
  GenerationExecutorWorker.create({ engine: eng, tokenizer, backend: testBackend, config });
const sp = (p: SamplingParamsInput): SamplingParams => new SamplingParams(p);

/** A long prompt that shares its first `n` ids with every other call. */
const longPrompt = (n: number, suffix: number[] = []): number[] => [1, ...ref.greedy_new_ids.slice(0, n - 1), ...suffix];

/** Reads a stream to the end: the outputs seen, and per output index the concatenated diffs. */
async function drain(r: GenerationResult): Promise<{ n: number; text: Map<number, string>; ids: Map<number, number[]>; last: RequestOutput | null }> {
  const text = new Map<number, string>(), ids = new Map<number, number[]>();
  let n = 0, last: RequestOutput | null = null;
  for await (const out of r) {
    n++;
    last = out;
    for (const o of out.outputs) {
      text.set(o.index, (text.get(o.index) ?? "") + (o.textDiff ?? ""));
      ids.set(o.index, [...(ids.get(o.index) ?? []), ...(o.tokenIdsDiff ?? [])]);
    }
  }
  return { n, text, ids, last };
}

const statsSince = (s: IterationStats[], from: number): IterationStats[] => s.filter((x) => x.iter >= from);
const sum = (s: IterationStats[], f: (x: IterationStats) => number): number => s.reduce((a, x) => a + f(x), 0);

test("a greedy request through the executor reproduces the 256 reference ids", async () => {
  await using ex = executor();
  const out = await ex.submit({ promptTokenIds: ref.prompt_ids, samplingParams: sp({ temperature: 0, maxTokens: 256, ignoreEos: true }) }).result();
  assert.deepEqual(out.outputs[0].tokenIds, ref.greedy_new_ids);
  assert.equal(out.outputs[0].finishReason, "length");
  assert.equal(out.finished, true);
});

test("in-process steps yield between each other: the caller's timers keep running during a generation", async () => {
  await using ex = executor();
  let ticks = 0, running = true;
  const tick = (): void => {
    ticks++;
    if (running) setTimeout(tick, 0);
  };
  setTimeout(tick, 0);
  const out = await ex.submit({ promptTokenIds: ref.prompt_ids, samplingParams: sp({ temperature: 0, maxTokens: 200, ignoreEos: true }) }).result();
  running = false;
  assert.equal(out.outputs[0].tokenIds.length, 200);
  assert.ok(ticks >= 5, `${ticks} timer callbacks ran during 200 steps`);
});

test("32 concurrent streaming requests with mixed lengths and parameters: every stream equals its final output and the request run alone", async () => {
  await using ex = executor();
  const prompts = [ref.prompt_ids, [1, 403], longPrompt(40), [1, 351, 269, 295, 281, 420], longPrompt(17, [300, 301]), [1]];
  const specs = Array.from({ length: 32 }, (_, i) => {
    const base = { maxTokens: 6 + (i % 7) * 3 };
    const params: SamplingParamsInput = i % 4 === 0
      ? { ...base, temperature: 0, ignoreEos: true }
      : i % 4 === 1
      ? { ...base, temperature: 0.9, topP: 0.9, seed: i }
      : i % 4 === 2
      ? { ...base, temperature: 0.7, topK: 20, seed: 100 + i, stop: [" the", "."], repetitionPenalty: 1.3 } // host-side path
      : { ...base, temperature: 1, minP: 0.05, n: 2, seed: i };
    return { promptTokenIds: prompts[i % prompts.length], samplingParams: sp(params), streaming: true };
  });
  const results = specs.map((s) => ex.submit(s));
  const streams = await Promise.all(results.map(drain));
  const finals = await Promise.all(results.map((r) => r.result()));
  const iters = ex.getStats();
  assert.ok(Math.max(...iters.map((s) => s.numScheduled)) >= 16, "requests ran batched");
  finals.forEach((f, i) => {
    assert.equal(f.finished, true);
    assert.equal(f.outputs.length, specs[i].samplingParams.n);
    for (const o of f.outputs) {
      assert.ok(o.finishReason === "length" || o.finishReason === "stop", `request ${i}: ${o.finishReason}`);
      assert.equal(streams[i].text.get(o.index), o.text, `request ${i} output ${o.index}: concatenated textDiffs`);
      assert.deepEqual(streams[i].ids.get(o.index), o.tokenIds, `request ${i} output ${o.index}: concatenated tokenIdsDiffs`);
    }
    assert.ok(streams[i].n >= 2 || f.outputs[0].tokenIds.length <= 1, `request ${i} streamed`);
  });
  assert.equal(ex.kvCacheStats.usedBlocks, 0, "every block released");
  // Each alone, one at a time: same ids and text (greedy and seeded sampling alike).
  for (let i = 0; i < specs.length; i++) {
    const alone = await ex.submit(specs[i]).result();
    assert.deepEqual(alone.outputs.map((o) => o.tokenIds), finals[i].outputs.map((o) => o.tokenIds), `request ${i} alone`);
    assert.deepEqual(alone.outputs.map((o) => o.text), finals[i].outputs.map((o) => o.text), `request ${i} alone (text)`);
  }
}, 60_000);

test("abort mid-stream ends that request only, frees its blocks at once, and others continue", async () => {
  await using ex = executor();
  const p = sp({ temperature: 0, maxTokens: 40, ignoreEos: true });
  const victim = ex.submit({ promptTokenIds: longPrompt(30), samplingParams: p, streaming: true });
  const others = [ref.prompt_ids, [1, 403, 407]].map((ids) => ex.submit({ promptTokenIds: ids, samplingParams: p, streaming: true }));
  let seen = 0, usedBefore = -1, usedAfter = -1;
  let last: RequestOutput | null = null;
  for await (const out of victim) {
    last = out;
    if (++seen === 3) {
      usedBefore = ex.kvCacheStats.usedBlocks;
      victim.abort();
      usedAfter = ex.kvCacheStats.usedBlocks;
    }
  }
  assert.ok(usedAfter < usedBefore, `blocks freed at once (${usedBefore} → ${usedAfter})`);
  assert.ok(usedBefore - usedAfter >= 4, "the 30-token prompt held at least 4 blocks");
  assert.equal(last?.finished, true);
  assert.equal(last?.outputs[0].finishReason, "abort");
  const final = await victim.result();
  assert.equal(final.outputs[0].finishReason, "abort");
  assert.ok(final.outputs[0].tokenIds.length < 40);
  victim.abort(); // no-op once done
  for (const o of await Promise.all(others.map((r) => r.result()))) {
    assert.equal(o.outputs[0].finishReason, "length");
    assert.equal(o.outputs[0].tokenIds.length, 40);
  }
  assert.deepEqual((await others[0].result()).outputs[0].tokenIds, ref.greedy_new_ids.slice(0, 40));
  assert.equal(ex.kvCacheStats.usedBlocks, 0, "KV use back to baseline");
  assert.equal(ex.numInFlight, 0);
});

test("abort before the first step and abort of an unknown id", async () => {
  await using ex = executor();
  const r = ex.submit({ promptTokenIds: ref.prompt_ids, samplingParams: sp({ maxTokens: 5 }) });
  r.abort();
  const out = await r.result();
  assert.equal(out.outputs[0].finishReason, "abort");
  assert.deepEqual(out.outputs[0].tokenIds, []);
  ex.abortRequest(12345);
});

test("a prompt longer than maxInputLen fails alone with a clear error; others finish", async () => {
  await using ex = executor();
  const good = [ref.prompt_ids, [1, 403]].map((ids) =>
    ex.submit({ promptTokenIds: ids, samplingParams: sp({ temperature: 0, maxTokens: 8 }), streaming: true })
  );
  const bad = ex.submit({ promptTokenIds: new Array(80).fill(300), samplingParams: sp({ maxTokens: 8 }), streaming: true });
  await assert.rejects(bad.result(), (e: Error) => e instanceof ValidationError && /prompt of 80 tokens exceeds maxInputLen 64/.test(e.message));
  await assert.rejects(async () => {
    for await (const _ of bad) { /* throws */ }
  }, /maxInputLen/);
  const outs = await Promise.all(good.map((r) => r.result()));
  assert.deepEqual(outs[0].outputs[0].tokenIds, ref.greedy_new_ids.slice(0, 8));
  const bad2 = ex.submit({ promptTokenIds: [1, 9999], samplingParams: sp({}) });
  await assert.rejects(bad2.result(), /promptTokenIds\[1\]: token id 9999 is outside \[0, 512\)/);
  const bad3 = ex.submit({ promptTokenIds: [], samplingParams: sp({}) });
  await assert.rejects(bad3.result(), /promptTokenIds: expected a non-empty array/);
});

test("a prompt that reaches maxSeqLen fails; generation stops at maxSeqLen with finishReason length", async () => {
  const eng = engine({ maxSeqLen: 24, maxInputLen: 24 });
  try {
    await using ex = executor({}, eng);
    await assert.rejects(ex.submit({ promptTokenIds: longPrompt(24), samplingParams: sp({}) }).result(), /leaves no room below maxSeqLen 24/);
    const out = await ex.submit({ promptTokenIds: longPrompt(20), samplingParams: sp({ temperature: 0, maxTokens: 50, ignoreEos: true }) }).result();
    assert.equal(out.outputs[0].tokenIds.length, 4);
    assert.equal(out.outputs[0].finishReason, "length");
  } finally {
    eng.dispose();
  }
});

test("when KV blocks run out, requests are preempted and recomputed with identical outputs", async () => {
  const eng = engine({ maxSeqLen: 96, maxInputLen: 64 });
  try {
    await using ex = executor({ kvCacheConfig: { maxTokens: 96, enableBlockReuse: false } }, eng); // 12 blocks of 8
    const specs = Array.from({ length: 6 }, (_, i) => ({
      promptTokenIds: longPrompt(10 + i, [200 + i]),
      samplingParams: sp(i % 2 ? { temperature: 0.8, seed: i, maxTokens: 30, ignoreEos: true } : { temperature: 0, maxTokens: 30, ignoreEos: true }),
      streaming: true,
    }));
    const results = specs.map((s) => ex.submit(s));
    const streams = await Promise.all(results.map(drain));
    const finals = await Promise.all(results.map((r) => r.result()));
    assert.ok(sum(ex.getStats(), (s) => s.numPreempted) > 0, "some request was preempted");
    for (let i = 0; i < specs.length; i++) {
      assert.equal(streams[i].text.get(0), finals[i].outputs[0].text);
      const alone = await ex.submit(specs[i]).result();
      assert.deepEqual(finals[i].outputs[0].tokenIds, alone.outputs[0].tokenIds, `request ${i}`);
    }
    assert.equal(ex.kvCacheStats.usedBlocks, 0);
  } finally {
    eng.dispose();
  }
});

test("decodeDeferSteps: a batch of prompts larger than one step prefills without mixed steps; every output and final state is the same", async () => {
  // 12 prompts of 20 tokens over 128-token steps: the first step prefills 6 prompts and 8 tokens of a seventh.
  // Without deferral the second step mixes their 6 decode tokens with the rest of the prompts.
  const specs = Array.from({ length: 12 }, (_, i) => ({
    promptTokenIds: longPrompt(19, [220 + i]),
    samplingParams: sp(i % 3 ? { temperature: 0, maxTokens: 12 + i, ignoreEos: true } : { temperature: 0.7, seed: i, maxTokens: 20 }),
  }));
  const runAll = async (config: ExecutorConfigInput): Promise<{ outs: unknown[]; mixed: number; steps: number }> => {
    await using ex = executor({ kvCacheConfig: { enableBlockReuse: false }, ...config });
    const finals = await Promise.all(specs.map((s) => ex.submit(s)).map((r) => r.result()));
    const st = ex.getStats();
    return {
      outs: finals.map((f) => f.outputs.map((o) => [o.tokenIds, o.text, o.finishReason, o.stopReason, o.cumulativeLogprob])),
      mixed: st.filter((s) => s.numPrefillTokens > 0 && s.numDecodeTokens > 0).length,
      steps: st.filter((s) => s.numScheduled > 0).length,
    };
  };
  const plain = await runAll({});
  const deferred = await runAll({ decodeDeferSteps: 1 });
  assert.deepEqual(deferred.outs, plain.outs);
  assert.ok(plain.mixed >= 1, `mixed steps without deferral: ${plain.mixed}`);
  assert.equal(deferred.mixed, 0);
  assert.ok(deferred.steps <= plain.steps, `steps ${deferred.steps} vs ${plain.steps}`);
});

test("prefix reuse: a request sharing a long prefix prefills fewer tokens and gives identical greedy output", async () => {
  const p = sp({ temperature: 0, maxTokens: 16, ignoreEos: true });
  const first = longPrompt(48, [310, 311, 312]);
  const second = longPrompt(48, [400, 401]);
  await using ex = executor();
  await ex.submit({ promptTokenIds: first, samplingParams: p }).result();
  const from = ex.getStats().length;
  const reused = await ex.submit({ promptTokenIds: second, samplingParams: p }).result();
  const st = statsSince(ex.getStats(), from);
  assert.equal(sum(st, (s) => s.numPrefillTokens), second.length - 48, "only the tokens after the 6 shared blocks are prefilled");
  assert.ok(st.at(-1)!.kvBlocksReused >= 6);

  await using cold = executor({ kvCacheConfig: { enableBlockReuse: false } });
  const from2 = cold.getStats().length;
  const fresh = await cold.submit({ promptTokenIds: second, samplingParams: p }).result();
  assert.equal(sum(statsSince(cold.getStats(), from2), (s) => s.numPrefillTokens), second.length);
  assert.deepEqual(reused.outputs[0].tokenIds, fresh.outputs[0].tokenIds);
  assert.equal(reused.outputs[0].text, fresh.outputs[0].text);
  // The same prompt again reuses every block but the one holding its last token.
  const from3 = ex.getStats().length;
  const again = await ex.submit({ promptTokenIds: second, samplingParams: p }).result();
  assert.ok(sum(statsSince(ex.getStats(), from3), (s) => s.numPrefillTokens) <= 8);
  assert.deepEqual(again.outputs[0].tokenIds, fresh.outputs[0].tokenIds);
});

test("n and bestOf: sequences fork from one prefill; output 0 matches n = 1; bestOf keeps the best by cumulative logprob", async () => {
  await using ex = executor();
  const base = { temperature: 1, seed: 5, maxTokens: 12, ignoreEos: true };
  const one = await ex.submit({ promptTokenIds: ref.prompt_ids, samplingParams: sp(base) }).result();
  const from = ex.getStats().length;
  const three = await ex.submit({ promptTokenIds: ref.prompt_ids, samplingParams: sp({ ...base, n: 3, logprobs: 0 }) }).result();
  assert.equal(sum(statsSince(ex.getStats(), from), (s) => s.numPrefillTokens), ref.prompt_ids.length, "the prompt is prefilled once for all three");
  assert.equal(three.outputs.length, 3);
  assert.deepEqual(three.outputs[0].tokenIds, one.outputs[0].tokenIds);
  assert.equal(new Set(three.outputs.map((o) => o.tokenIds.join(","))).size, 3, "distinct samples");
  for (const o of three.outputs) {
    assert.equal(o.logprobs!.length, o.tokenIds.length);
    const total = o.logprobs!.reduce((a, l) => a + l.logprob, 0);
    assert.ok(Math.abs(total - o.cumulativeLogprob!) < 1e-9);
  }
  const best = [...three.outputs].sort((a, b) => b.cumulativeLogprob! - a.cumulativeLogprob!)[0];
  const bestOf = await ex.submit({ promptTokenIds: ref.prompt_ids, samplingParams: sp({ ...base, n: 1, bestOf: 3 }) }).result();
  assert.equal(bestOf.outputs.length, 1);
  assert.deepEqual(bestOf.outputs[0].tokenIds, best.tokenIds);
  assert.equal(bestOf.outputs[0].index, 0);
});

test("stop strings, stop ids and logprobs through the executor", async () => {
  await using ex = executor();
  const greedyText = tokenizer.decode(ref.greedy_new_ids.slice(0, 30));
  const out = await ex.submit({ promptTokenIds: ref.prompt_ids, samplingParams: sp({ temperature: 0, maxTokens: 30, stop: ["Lily"] }) }).result();
  assert.equal(out.outputs[0].finishReason, "stop");
  assert.equal(out.outputs[0].stopReason, "Lily");
  assert.ok(!out.outputs[0].text.includes("Lily") && greedyText.includes("Lily"));
  const stopId = ref.greedy_new_ids[3];
  const byId = await ex.submit({ promptTokenIds: ref.prompt_ids, samplingParams: sp({ temperature: 0, maxTokens: 30, stopTokenIds: [stopId] }) }).result();
  const at = ref.greedy_new_ids.indexOf(stopId);
  assert.deepEqual(byId.outputs[0].tokenIds, ref.greedy_new_ids.slice(0, at + 1), "the stop id is the last token");
  assert.equal(byId.outputs[0].stopReason, stopId);
  assert.equal(byId.outputs[0].text, tokenizer.createDetokenizer({ promptIds: ref.prompt_ids }).push(ref.greedy_new_ids.slice(0, at)), "its text is not");
  const lp = await ex.submit({ promptTokenIds: ref.prompt_ids, samplingParams: sp({ temperature: 0, maxTokens: 4, logprobs: 2 }) }).result();
  assert.equal(lp.outputs[0].logprobs!.length, 4);
  for (const [i, l] of lp.outputs[0].logprobs!.entries()) {
    assert.equal(l.top.length, 2);
    assert.equal(l.top[0].id, lp.outputs[0].tokenIds[i], "greedy picks the top logprob");
    assert.ok(l.logprob <= 0);
  }
});

test("excludeInputFromOutput false puts the prompt ids in front of the output ids", async () => {
  await using ex = executor();
  const r = ex.submit({ promptTokenIds: ref.prompt_ids, samplingParams: sp({ temperature: 0, maxTokens: 3, excludeInputFromOutput: false }), streaming: true });
  const { ids } = await drain(r);
  const out = await r.result();
  assert.deepEqual(out.outputs[0].tokenIds, [...ref.prompt_ids, ...ref.greedy_new_ids.slice(0, 3)]);
  assert.deepEqual(ids.get(0), out.outputs[0].tokenIds);
});

test("a logitsProcessor that throws fails its request only", async () => {
  await using ex = executor();
  const bad = ex.submit({
    promptTokenIds: ref.prompt_ids,
    samplingParams: sp({
      maxTokens: 5,
      logitsProcessor: () => {
        throw new Error("boom");
      },
    }),
  });
  const good = ex.submit({ promptTokenIds: ref.prompt_ids, samplingParams: sp({ temperature: 0, maxTokens: 5 }) });
  await assert.rejects(bad.result(), /boom/);
  assert.deepEqual((await good.result()).outputs[0].tokenIds, ref.greedy_new_ids.slice(0, 5));
  assert.equal(ex.kvCacheStats.usedBlocks, 0);
});

test("higher priority requests are served first", async () => {
  await using ex = executor({ maxBatchSize: 1 });
  const order: number[] = [];
  const p = sp({ temperature: 0, maxTokens: 3 });
  const rs = [0, 0, 10].map((priority, i) => {
    const r = ex.submit({ promptTokenIds: [1, 403 + i], samplingParams: p, priority });
    r.result().then(() => order.push(i));
    return r;
  });
  await Promise.all(rs.map((r) => r.result()));
  assert.deepEqual(order, [2, 0, 1]);
});

test("shutdown fails requests in flight with a reason; submit after shutdown fails", async () => {
  const ex = executor();
  const r = ex.submit({ promptTokenIds: ref.prompt_ids, samplingParams: sp({ maxTokens: 200, ignoreEos: true }) });
  await ex.shutdown();
  await assert.rejects(r.result(), /shut down/);
  await assert.rejects(ex.submit({ promptTokenIds: [1], samplingParams: sp({}) }).result(), /after shutdown/);
  await ex.shutdown();
});

test("executor config is validated against the engine", () => {
  assert.throws(() => executor({ maxBatchSize: 1000 }), /maxBatchSize: 1000 exceeds the engine's 32/);
  assert.throws(() => executor({ maxNumTokens: 100000 }), /maxNumTokens: 100000 exceeds/);
  assert.throws(() => executor({ kvCacheConfig: { maxTokens: 8 } }), /cannot hold one sequence/);
  assert.throws(
    () => executor({ kvCacheConfig: { enableBlockReuse: "yes" } as unknown as ExecutorConfigInput["kvCacheConfig"] }),
    /kvCacheConfig.enableBlockReuse/,
  );
});
