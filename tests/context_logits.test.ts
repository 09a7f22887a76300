// Prompt logprobs, context logits and generation logits through the executor on stories260k: values
// against the float64 reference, sampling left unchanged, chunked prefill, the logits-row budget,
// prefix reuse, preemption, beam search, the engine-capacity error, and the LLM API (proxy too).
import * as fs from "node:fs";
import { argmax } from "../lib/ir/sampling.ts";
import { buildSync } from "../lib/builder/builder.ts";
import type { Engine } from "../lib/builder/engine.ts";
import type { ExecutorConfigInput, GenerationRequest, IterationStats } from "../lib/executor/config.ts";
import { logSoftmax } from "../lib/executor/logprobs.ts";
import { GenerationExecutorWorker } from "../lib/executor/worker.ts";
import { LLM } from "../lib/llmapi/llm.ts";
import type { RequestOutput } from "../lib/executor/outputs.ts";
import { SamplingParams, type SamplingParamsInput } from "../lib/executor/sampling_params.ts";
import { LlmTokenizer } from "../lib/tokenizer/tokenizer.ts";
import { AutoModelForCausalLM } from "../lib/models/llama.ts";
import { ValidationError } from "../lib/util/errors.ts";
import { assert, sharedDir, test, testBackend, testBuild, testLlm } from "./harness.ts";

const dir = `${sharedDir}models/stories260k`;
/**
 * Bound for "the same logits by another schedule" (chunked, preempted, reused): the CPU computes
 * them identically (bound 1e-5); CUDA float32 GEMMs may reduce in another order when the row count
 * changes (measured 1.3e-5 on an H100), so allow float32 rounding of ~20-magnitude logits there.
 */
const SAME = testBackend === "cuda" ? 1e-4 : 1e-5;
const ref = JSON.parse(fs.readFileSync(`${dir}/reference_outputs.json`, "utf8")) as {
  prompt_ids: number[];
  greedy_new_ids: number[];
  prompt_argmax_per_position: number[];
  last_position_logits: number[];
};
const tokenizer = LlmTokenizer.fromDir(dir);
const V = 512;

function engine(opts = {}): Engine {
  const model = AutoModelForCausalLM.fromHuggingFace(dir);
  try {
    return buildSync(model, {
      maxBatchSize: 8,
      maxNumTokens: 64,
      tokensPerBlock: 8,
      maxInputLen: 64,
      maxSeqLen: 128,
      gatherContextLogits: true,
      ...testBuild,
      ...opts,
    });
  } finally {
    model.close();
  }
}
const gathering = engine();
const executor = (config: ExecutorConfigInput = {}, eng = gathering): GenerationExecutorWorker =>
  GenerationExecutorWorker.create({ engine: eng, tokenizer, backend: testBackend, config });
const sp = (p: SamplingParamsInput): SamplingParams => new SamplingParams(p);
const ALL = { returnContextLogits: true, promptLogprobs: 3, returnGenerationLogits: true } as const;

/** A 40-token prompt (5 blocks of 8) sharing its first `n` ids with every other call. */
const longPrompt = (n: number, suffix: number[] = []): number[] => [1, ...ref.greedy_new_ids.slice(0, n - 1), ...suffix];

const maxAbsDiff = (a: ArrayLike<number>, b: ArrayLike<number>): number => {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
};
/** Every row of `got` equals `want`'s within `tol` (reports the worst). */
function assertRowsClose(got: readonly Float32Array[], want: readonly Float32Array[], tol: number, what: string): void {
  assert.equal(got.length, want.length, `${what}: row count`);
  const worst = Math.max(...got.map((r, i) => maxAbsDiff(r, want[i])));
  assert.ok(worst <= tol, `${what}: max abs error ${worst} > ${tol}`);
}
const statsSince = (s: IterationStats[], from: number): IterationStats[] => s.filter((x) => x.iter >= from);
const sum = (s: IterationStats[], f: (x: IterationStats) => number): number => s.reduce((a, x) => a + f(x), 0);

/** Context logits of `prompt` from one unchunked forward with no prefix reuse: the baseline. */
async function baseline(prompt: number[]): Promise<RequestOutput> {
  await using ex = executor({ kvCacheConfig: { enableBlockReuse: false } });
  return await ex.submit({ promptTokenIds: prompt, samplingParams: sp({ temperature: 0, maxTokens: 4, ignoreEos: true, ...ALL }) }).result();
}
const long40 = longPrompt(40);
let long40Cached: Promise<RequestOutput> | null = null;
const long40Base = (): Promise<RequestOutput> => long40Cached ??= baseline(long40);

test("context logits, prompt logprobs and generation logits of the reference prompt match the float64 reference", async () => {
  await using ex = executor();
  const out = await ex.submit({ promptTokenIds: ref.prompt_ids, samplingParams: sp({ temperature: 0, maxTokens: 12, logprobs: 0, ...ALL }) }).result();
  const L = ref.prompt_ids.length;
  const ctx = out.contextLogits!;
  assert.equal(ctx.length, L);
  assert.ok(ctx.every((r) => r instanceof Float32Array && r.length === V));
  assert.deepEqual(ctx.map((r) => argmax(r, 0, V)), ref.prompt_argmax_per_position);
  const err = maxAbsDiff(ctx[L - 1], ref.last_position_logits);
  assert.ok(err <= 1e-4, `last row: max abs error ${err}`);

  // promptLogprobs[i] = log-softmax(ctx[i - 1]) at prompt token i, with its 3 best alternatives.
  const plp = out.promptLogprobs!;
  assert.equal(plp.length, L);
  assert.equal(plp[0], null);
  let total = 0, fromCtx = 0;
  for (let i = 1; i < L; i++) {
    const ls = logSoftmax(ctx[i - 1]);
    const e = plp[i]!;
    assert.ok(Math.abs(e.logprob - ls[ref.prompt_ids[i]]) < 1e-9, `position ${i}`);
    assert.equal(e.top.length, 3);
    assert.equal(e.top[0].id, ref.prompt_argmax_per_position[i - 1]);
    for (const t of e.top) assert.ok(Math.abs(t.logprob - ls[t.id]) < 1e-9);
    assert.ok(e.top[0].logprob >= e.top[1].logprob && e.top[1].logprob >= e.top[2].logprob);
    assert.ok(Math.abs(ls.reduce((a, x) => a + Math.exp(x), 0) - 1) < 1e-9, "a row's probabilities sum to 1");
    total += e.logprob;
    fromCtx += ls[ref.prompt_ids[i]];
  }
  assert.ok(total < 0 && Math.abs(total - fromCtx) < 1e-9, `prompt log-likelihood ${total} vs ${fromCtx}`);

  // Generation logits: one raw row per generated token; the first is the prompt's last row.
  const o = out.outputs[0];
  assert.deepEqual(o.tokenIds, ref.greedy_new_ids.slice(0, 12));
  const gen = o.generationLogits!;
  assert.equal(gen.length, 12);
  assert.deepEqual(Array.from(gen[0]), Array.from(ctx[L - 1]));
  assert.deepEqual(gen.map((r) => argmax(r, 0, V)), o.tokenIds);
  o.logprobs!.forEach((l, i) => assert.ok(Math.abs(l.logprob - logSoftmax(gen[i])[o.tokenIds[i]]) < 1e-9, `generated ${i}`));
});

test("asking for prompt/context/generation logits leaves every sampled token unchanged (batched, seeded, n = 2, host path)", async () => {
  const specs: SamplingParamsInput[] = [
    { temperature: 0, maxTokens: 10, ignoreEos: true },
    { temperature: 0.9, topP: 0.9, seed: 3, maxTokens: 10, ignoreEos: true },
    { temperature: 1, seed: 11, n: 2, maxTokens: 8, ignoreEos: true },
    { temperature: 0.7, topK: 20, seed: 5, repetitionPenalty: 1.3, maxTokens: 10, ignoreEos: true },
  ];
  const prompts = [ref.prompt_ids, longPrompt(30), [1, 403, 407], longPrompt(20, [300, 301])];
  const run = async (extra: SamplingParamsInput): Promise<RequestOutput[]> => {
    await using ex = executor();
    return await Promise.all(specs.map((p, i) => ex.submit({ promptTokenIds: prompts[i], samplingParams: sp({ ...p, ...extra }) }).result()));
  };
  const plain = await run({});
  const withLogits = await run(ALL);
  plain.forEach((p, i) => {
    assert.deepEqual(withLogits[i].outputs.map((o) => o.tokenIds), p.outputs.map((o) => o.tokenIds), `request ${i}`);
    assert.equal(p.contextLogits, null);
    assert.equal(p.outputs[0].generationLogits, null);
    assert.equal(withLogits[i].contextLogits!.length, prompts[i].length);
    for (const o of withLogits[i].outputs) {
      assert.equal(o.generationLogits!.length, o.tokenIds.length);
      // The first generated token of every sequence (n = 2 forks) came from the prompt's last row.
      assert.deepEqual(Array.from(o.generationLogits![0]), Array.from(withLogits[i].contextLogits!.at(-1)!));
    }
  });
  assert.equal(withLogits[0].outputs[0].generationLogits!.length, 10);
});

test("chunked prefill (maxNumTokens 8): context logits complete, in order and equal to one unchunked forward", async () => {
  const base = await long40Base();
  await using ex = executor({ maxNumTokens: 8 });
  const out = await ex.submit({ promptTokenIds: long40, samplingParams: sp({ temperature: 0, maxTokens: 4, ignoreEos: true, ...ALL }) }).result();
  assert.ok(ex.getStats().filter((s) => s.numPrefillTokens > 0).length >= 5, "the prompt ran in chunks");
  assertRowsClose(out.contextLogits!, base.contextLogits!, SAME, "context logits");
  out.promptLogprobs!.slice(1).forEach((e, i) => assert.ok(Math.abs(e!.logprob - base.promptLogprobs![i + 1]!.logprob) < SAME));
  assertRowsClose(out.outputs[0].generationLogits!, base.outputs[0].generationLogits!, SAME, "generation logits");
  assert.deepEqual(out.outputs[0].tokenIds, base.outputs[0].tokenIds);
});

test("logits rows are budgeted: a 16-token prompt with n = 3 (15 prompt rows + 3 sampling rows) on a 16-row engine still completes", async () => {
  const small = engine({ maxNumTokens: 16, maxBatchSize: 4 });
  try {
    assert.equal(small.plan.maxSeqs, 16);
    const prompt = longPrompt(16);
    const params = { temperature: 1, seed: 9, n: 3, maxTokens: 6, ignoreEos: true };
    await using ex = executor({}, small);
    const [plain, out] = [
      await ex.submit({ promptTokenIds: prompt, samplingParams: sp(params) }).result(),
      await ex.submit({ promptTokenIds: prompt, samplingParams: sp({ ...params, ...ALL }) }).result(),
    ];
    assert.deepEqual(out.outputs.map((o) => o.tokenIds), plain.outputs.map((o) => o.tokenIds));
    const base = await baseline(prompt);
    assertRowsClose(out.contextLogits!, base.contextLogits!, SAME, "context logits");
    await using strict = executor({ enableChunkedPrefill: false }, small);
    await assert.rejects(
      strict.submit({ promptTokenIds: prompt, samplingParams: sp({ ...params, returnContextLogits: true }) }).result(),
      (e: Error) =>
        e instanceof ValidationError && /returnContextLogits: a prompt of 16 tokens needs 18 logits rows in one step, above the engine's 16/.test(e.message),
    );
  } finally {
    small.dispose();
  }
});

test("prefix reuse on: a request wanting prompt logits prefills its cached prefix anyway; later requests still reuse it", async () => {
  const base = await long40Base();
  await using ex = executor();
  const p = { temperature: 0, maxTokens: 4, ignoreEos: true };
  await ex.submit({ promptTokenIds: long40, samplingParams: sp(p) }).result();
  const from = ex.getStats().length;
  const out = await ex.submit({ promptTokenIds: long40, samplingParams: sp({ ...p, ...ALL }) }).result();
  const st = statsSince(ex.getStats(), from);
  assert.equal(sum(st, (s) => s.numPrefillTokens), long40.length, "every prompt position computed");
  assert.equal(st.at(-1)!.kvBlocksReused, ex.getStats()[from - 1].kvBlocksReused, "no block reused");
  assertRowsClose(out.contextLogits!, base.contextLogits!, SAME, "context logits");
  assert.deepEqual(out.outputs[0].tokenIds, base.outputs[0].tokenIds);
  // A plain request with the same prefix reuses the cache as before.
  const from2 = ex.getStats().length;
  await ex.submit({ promptTokenIds: longPrompt(40, [300]), samplingParams: sp(p) }).result();
  assert.equal(sum(statsSince(ex.getStats(), from2), (s) => s.numPrefillTokens), 1);
});

test("under preemption (small KV cache, chunked prefill) every request's context logits and tokens equal the baseline", async () => {
  const eng = engine({ maxSeqLen: 96 });
  try {
    await using ex = executor({ maxNumTokens: 16, kvCacheConfig: { maxTokens: 96, enableBlockReuse: true } }, eng); // 12 blocks of 8
    const prompts = Array.from({ length: 5 }, (_, i) => longPrompt(20 + 4 * i, [200 + i]));
    const reqs: GenerationRequest[] = prompts.map((prompt, i) => ({
      promptTokenIds: prompt,
      samplingParams: sp(
        i % 2 ? { temperature: 0.8, seed: i, maxTokens: 24, ignoreEos: true, ...ALL } : { temperature: 0, maxTokens: 24, ignoreEos: true, ...ALL },
      ),
    }));
    const outs = await Promise.all(reqs.map((r) => ex.submit(r).result()));
    assert.ok(sum(ex.getStats(), (s) => s.numPreempted) > 0, "some request was preempted");
    for (const [i, r] of reqs.entries()) {
      await using alone = executor({ kvCacheConfig: { enableBlockReuse: false } });
      const want = await alone.submit(r).result();
      assert.deepEqual(outs[i].outputs[0].tokenIds, want.outputs[0].tokenIds, `request ${i}`);
      assertRowsClose(outs[i].contextLogits!, want.contextLogits!, SAME, `request ${i} context logits`);
      assertRowsClose(outs[i].outputs[0].generationLogits!, want.outputs[0].generationLogits!, SAME, `request ${i} generation logits`);
      assert.equal(outs[i].promptLogprobs!.length, prompts[i].length);
    }
    assert.equal(ex.kvCacheStats.usedBlocks, 0);
  } finally {
    eng.dispose();
  }
});

test("beam search: each hypothesis carries the raw row behind each of its tokens", async () => {
  await using ex = executor();
  const out = await ex.submit({
    promptTokenIds: ref.prompt_ids,
    samplingParams: sp({ useBeamSearch: true, beamWidth: 3, n: 3, maxTokens: 8, logprobs: 0, ...ALL }),
  }).result();
  assert.equal(out.outputs.length, 3);
  assert.equal(out.contextLogits!.length, ref.prompt_ids.length);
  for (const o of out.outputs) {
    const gen = o.generationLogits!;
    assert.equal(gen.length, o.tokenIds.length);
    assert.deepEqual(Array.from(gen[0]), Array.from(out.contextLogits!.at(-1)!));
    o.logprobs!.forEach((l, i) => assert.ok(Math.abs(l.logprob - logSoftmax(gen[i])[o.tokenIds[i]]) < 1e-9, `token ${i}`));
  }
});

test("streaming: intermediate outputs carry no logits; the final one carries all of them", async () => {
  await using ex = executor();
  const r = ex.submit({ promptTokenIds: ref.prompt_ids, samplingParams: sp({ temperature: 0, maxTokens: 6, ...ALL }), streaming: true });
  const seen: RequestOutput[] = [];
  for await (const out of r) seen.push(out);
  assert.ok(seen.length >= 2);
  for (const out of seen.slice(0, -1)) {
    assert.equal(out.contextLogits, null);
    assert.equal(out.promptLogprobs, null);
    assert.equal(out.outputs[0].generationLogits, null);
  }
  const last = seen.at(-1)!;
  assert.equal(last.contextLogits!.length, 5);
  assert.equal(last.promptLogprobs!.length, 5);
  assert.equal(last.outputs[0].generationLogits!.length, 6);
});

test("an engine built without gatherContextLogits rejects prompt logits with the field named; generation logits still work", async () => {
  const plain = engine({ gatherContextLogits: false });
  try {
    await using ex = executor({}, plain);
    for (const [field, extra] of [["promptLogprobs", { promptLogprobs: 0 }], ["returnContextLogits", { returnContextLogits: true }]] as const) {
      await assert.rejects(
        ex.submit({ promptTokenIds: ref.prompt_ids, samplingParams: sp({ maxTokens: 2, ...extra }) }).result(),
        (e: Error) =>
          e instanceof ValidationError && e.field === field && e.message.includes(`SamplingParams.${field}`) && /gatherContextLogits: true/.test(e.message),
      );
    }
    const out = await ex.submit({ promptTokenIds: ref.prompt_ids, samplingParams: sp({ temperature: 0, maxTokens: 3, returnGenerationLogits: true }) })
      .result();
    assert.deepEqual(out.outputs[0].generationLogits!.map((r) => argmax(r, 0, V)), ref.greedy_new_ids.slice(0, 3));
    const err = maxAbsDiff(out.outputs[0].generationLogits![0], ref.last_position_logits);
    assert.ok(err <= 1e-4, `${err}`);
  } finally {
    plain.dispose();
  }
});

test("LLM.create({ gatherContextLogits: true }): prompt logprobs through generate, in process and across the proxy worker", async () => {
  const opts = { model: dir, ...testLlm, cacheEngine: false, buildConfig: { maxBatchSize: 4, maxNumTokens: 64, maxInputLen: 32, maxSeqLen: 64 } } as const;
  {
    await using llm = await LLM.create(opts);
    await assert.rejects(llm.generate("Once upon a time", { promptLogprobs: 1 }, { useTqdm: false }), /SamplingParams.promptLogprobs: .*gatherContextLogits/);
  }
  const params = { temperature: 0, maxTokens: 5, ...ALL };
  await using inproc = await LLM.create({ ...opts, gatherContextLogits: true });
  assert.equal(inproc.engine.config.build.gatherContextLogits, true);
  const a = await inproc.generate("Once upon a time", params, { useTqdm: false });
  assert.deepEqual(a.contextLogits!.map((r) => argmax(r, 0, V)), ref.prompt_argmax_per_position);
  await using proxy = await LLM.create({ ...opts, gatherContextLogits: true, executorMode: "proxy" });
  const b = await proxy.generate("Once upon a time", params, { useTqdm: false });
  assert.ok(b.contextLogits![0] instanceof Float32Array);
  assert.deepEqual(b.contextLogits!.map((r) => Array.from(r)), a.contextLogits!.map((r) => Array.from(r)));
  assert.deepEqual(b.promptLogprobs, a.promptLogprobs);
  assert.ok(b.outputs[0].generationLogits![0] instanceof Float32Array);
  assert.deepEqual(b.outputs[0].generationLogits!.map((r) => Array.from(r)), a.outputs[0].generationLogits!.map((r) => Array.from(r)));
  assert.deepEqual(b.outputs[0].tokenIds, ref.greedy_new_ids.slice(0, 5));
  // An engine directory built without it cannot be opened with the option.
  const engDir = fs.mkdtempSync(`${fs.realpathSync((await import("node:os")).tmpdir())}/llmrt-noctx-`);
  try {
    const e = engine({ gatherContextLogits: false });
    e.save(engDir);
    e.dispose();
    for (const f of ["tokenizer.json", "tokenizer_config.json"]) fs.copyFileSync(`${dir}/${f}`, `${engDir}/${f}`);
    await assert.rejects(
      LLM.create({ model: engDir, backend: "cpu", gatherContextLogits: true }),
      (e: Error) => e instanceof ValidationError && /options.gatherContextLogits: the engine in .* was built without/.test(e.message),
    );
  } finally {
    fs.rmSync(engDir, { recursive: true, force: true });
  }
});
