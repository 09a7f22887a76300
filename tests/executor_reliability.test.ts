// Request-path defects of issue 11 (hostile-input probing) and issue 16, each pinned by a test that
// failed before its fix: every request ends in one final state with its outputs or a reason.
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { buildSync } from "../lib/builder/builder.ts";
import { Engine } from "../lib/builder/engine.ts";
import { sizeKvCache } from "../lib/executor/kv_sizing.ts";
import { SamplingParams, type SamplingParamsInput } from "../lib/executor/sampling_params.ts";
import { GenerationExecutorWorker } from "../lib/executor/worker.ts";
import { LLM } from "../lib/llmapi/llm.ts";
import { AutoModelForCausalLM } from "../lib/models/llama.ts";
import { ModelRunner } from "../lib/runtime/model_runner.ts";
import { RequestFailedError, ResourceError, ValidationError } from "../lib/util/errors.ts";
import { encodeInSlices, sliceCuts } from "../lib/llmapi/prompt_slices.ts";
import { LlmTokenizer } from "../lib/tokenizer/tokenizer.ts";
import { assert, sharedDir, test, testBackend, testBuild, testLlm, tokenizerSets } from "./harness.ts";

const src = `${sharedDir}models/stories260k`;
const ref = JSON.parse(fs.readFileSync(`${src}/reference_outputs.json`, "utf8")) as { prompt_ids: number[]; greedy_new_ids: number[] };
const model = AutoModelForCausalLM.fromHuggingFace(src);
const engine = buildSync(model, { maxBatchSize: 16, maxNumTokens: 128, tokensPerBlock: 8, maxSeqLen: 128, ...testBuild });
model.close();
const V = engine.plan.attributes.vocabSize;
const sp = (p: SamplingParamsInput) => new SamplingParams(p);
const executor = () => GenerationExecutorWorker.create({ engine, tokenizer: null, backend: testBackend });

/** stories260k with its config.json edited (weights and tokenizer linked). */
function modelWith(edit: (cfg: Record<string, unknown>) => void): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "llmrt-reliability-"));
  for (const f of fs.readdirSync(src)) if (f !== "config.json") fs.symlinkSync(path.join(src, f), path.join(dir, f));
  const cfg = JSON.parse(fs.readFileSync(path.join(src, "config.json"), "utf8"));
  edit(cfg);
  fs.writeFileSync(path.join(dir, "config.json"), JSON.stringify(cfg));
  return dir;
}

/** A copy of `engine` whose every weight is NaN. */
function nanEngine(): Engine {
  const tensors = engine.tensorNames().map((n) => engine.tensorInfo(n));
  const data = new Map(tensors.map((t) => [t.name, new Uint8Array(new Float32Array(t.bytes / 4).fill(NaN).buffer)]));
  return Engine.fromMemory(engine.config, engine.plan, tensors, data);
}

test("#2 beam search whose every candidate is masked fails with the reason instead of finishing with outputs: []", async () => {
  await using ex = executor();
  // Token 5 at the first step, then banned by noRepeatNgramSize 1: no candidate is left at the second.
  const r = ex.submit({
    promptTokenIds: ref.prompt_ids,
    samplingParams: sp({ useBeamSearch: true, beamWidth: 2, maxTokens: 4, allowedTokenIds: [5], noRepeatNgramSize: 1 }),
  });
  await assert.rejects(
    r.result(),
    (e: Error) =>
      e instanceof ValidationError && e.field === "allowedTokenIds" && /no hypothesis at output token 1/.test(e.message) &&
      /allowedTokenIds and noRepeatNgramSize together ban every candidate/.test(e.message),
  );
  const ok = await ex.submit({ promptTokenIds: ref.prompt_ids, samplingParams: sp({ useBeamSearch: true, beamWidth: 2, maxTokens: 4 }) }).result();
  assert.equal(ok.outputs.length, 1);
  assert.equal(ok.outputs[0].tokenIds.length, 4);
  assert.equal(ex.kvCacheStats.usedBlocks, 0);
});

test("#4 a fully masked row fails the request (greedy and sampled) with the reason; its batch mates finish", async () => {
  await using ex = executor();
  // Decidable from the request alone: refused at validation, before it runs.
  assert.throws(
    () => sp({ allowedTokenIds: [5], badTokenIds: [5] }),
    (e: Error) => e instanceof ValidationError && /allowedTokenIds: every allowed id is banned by badTokenIds/.test(e.message),
  );
  // Found at the step: token 5 first, then banned by noRepeatNgramSize 1 — a ValidationError naming both fields.
  const masked = { allowedTokenIds: [5], noRepeatNgramSize: 1, maxTokens: 4 };
  const greedy = ex.submit({ promptTokenIds: ref.prompt_ids, samplingParams: sp({ ...masked, temperature: 0 }) });
  const sampled = ex.submit({ promptTokenIds: ref.prompt_ids, samplingParams: sp({ ...masked, temperature: 0.8, seed: 3 }) });
  const mate = ex.submit({ promptTokenIds: ref.prompt_ids, samplingParams: sp({ temperature: 0, maxTokens: 4, ignoreEos: true }) });
  for (const r of [greedy, sampled]) {
    await assert.rejects(r.result(), (e: Error) =>
      e instanceof ValidationError && e.field === "allowedTokenIds" && !r.rejected &&
      /no token is left to choose at output token 1 .*: allowedTokenIds and noRepeatNgramSize together ban every id/.test(e.message));
  }
  // With the model's end ids, known at submission: allowed ids that are all end ids under minTokens are refused there.
  const eos = ex.submit({ promptTokenIds: ref.prompt_ids, samplingParams: sp({ allowedTokenIds: [2], minTokens: 1, temperature: 0 }) }); // 2: the model's eos
  await assert.rejects(eos.result(), /allowedTokenIds: every allowed id is banned by minTokens \(minTokens bans the end and stop ids for the first 1 token\)/);
  assert.ok(eos.rejected, "refused at submission");
  assert.deepEqual((await mate.result()).outputs[0].tokenIds, ref.greedy_new_ids.slice(0, 4));
  // allowedTokenIds alone is respected by the sampled path too (never id V - 1 by accident).
  const allowed = await ex.submit({
    promptTokenIds: ref.prompt_ids,
    samplingParams: sp({ allowedTokenIds: [7, 9], temperature: 1, seed: 1, maxTokens: 6, ignoreEos: true }),
  }).result();
  assert.ok(allowed.outputs[0].tokenIds.every((t) => t === 7 || t === 9), String(allowed.outputs[0].tokenIds));
  assert.equal(ex.kvCacheStats.usedBlocks, 0);
});

test("logitBias keys, allowedTokenIds and badTokenIds outside the vocabulary are refused at submission, naming the field and the id", async () => {
  await using ex = executor();
  const cases: [SamplingParamsInput, RegExp][] = [
    [{ logitBias: { [String(V)]: 1 } }, new RegExp(`SamplingParams\\.logitBias\\.${V}: token id ${V} is outside \\[0, ${V}\\)`)],
    [{ allowedTokenIds: [3, V + 7] }, new RegExp(`SamplingParams\\.allowedTokenIds\\[1\\]: token id ${V + 7} is outside`)],
    [{ badTokenIds: [4, 5, V] }, new RegExp(`SamplingParams\\.badTokenIds\\[2\\]: token id ${V} is outside`)],
  ];
  for (const [p, msg] of cases) {
    const r = ex.submit({ promptTokenIds: ref.prompt_ids, samplingParams: sp({ ...p, maxTokens: 3, temperature: 0 }) });
    await assert.rejects(r.result(), (e: Error) => e instanceof ValidationError && msg.test(e.message));
    assert.ok(r.rejected, `refused at submission, before it ran: ${msg}`);
  }
  assert.equal(ex.numInFlight, 0);
  assert.equal(ex.kvCacheStats.usedBlocks, 0);
});

test("#4 logitBias beyond float32 is rejected at validation; a bias sum overflowing to +inf fails the request", async () => {
  assert.throws(() => sp({ logitBias: { "5": 1e39 } }), (e: Error) => e instanceof ValidationError && /logitBias\.5/.test(e.message));
  assert.throws(() => sp({ logitBias: { "5": Number.NaN } }), /logitBias\.5/);
  await using ex = executor();
  const bias = new Float32Array(V);
  bias[5] = 3.4e38;
  const r = ex.submit({
    promptTokenIds: ref.prompt_ids,
    samplingParams: sp({ logitBias: { "5": 3.4e38 }, embeddingBias: bias, temperature: 0, maxTokens: 2 }),
  });
  await assert.rejects(r.result(), (e: Error) => e instanceof RequestFailedError && /\+inf/.test(e.message));
});

test("#4 NaN weights fail the request (device-sampled, host-processed and beam rows) and ModelRunner.generate, instead of [0, 0, ...]", async () => {
  const bad = nanEngine();
  try {
    {
      await using ex = GenerationExecutorWorker.create({ engine: bad, tokenizer: null, backend: testBackend });
      for (
        const p of [{ temperature: 0 }, { temperature: 0.7, seed: 2 }, { temperature: 0, repetitionPenalty: 1.2 }, {
          useBeamSearch: true,
          beamWidth: 2,
        }] as SamplingParamsInput[]
      ) {
        const r = ex.submit({ promptTokenIds: ref.prompt_ids, samplingParams: sp({ ...p, maxTokens: 3 }) });
        await assert.rejects(r.result(), (e: Error) => e instanceof RequestFailedError && /NaN/.test(e.message), JSON.stringify(p));
      }
      assert.equal(ex.kvCacheStats.usedBlocks, 0);
    }
    using runner = ModelRunner.fromEngine(bad, { backend: testBackend });
    assert.throws(() => runner.generate([ref.prompt_ids], { maxNewTokens: 3 }), (e: Error) => e instanceof RequestFailedError && /not finite/.test(e.message));
  } finally {
    bad.dispose();
  }
});

test("a logits processor returning number[] replaces the row; returning anything else fails the request", async () => {
  await using ex = executor();
  const only7 = (_ids: readonly number[], l: Float32Array) => Array.from(l, (_, j) => (j === 7 ? 0 : -1e9));
  const out = await ex.submit({ promptTokenIds: ref.prompt_ids, samplingParams: sp({ logitsProcessor: only7, temperature: 0, maxTokens: 3, ignoreEos: true }) })
    .result();
  assert.deepEqual(out.outputs[0].tokenIds, [7, 7, 7]);
  const wrong = ex.submit({ promptTokenIds: ref.prompt_ids, samplingParams: sp({ logitsProcessor: (() => "x") as unknown as typeof only7, maxTokens: 3 }) });
  await assert.rejects(wrong.result(), (e: Error) => e instanceof ValidationError && /logitsProcessor: returned "x"/.test(e.message));
});

test("#11 aborted n > 1 requests return n outputs (pre-aborted n: 2, bestOf > n, beam) and free their blocks", async () => {
  await using ex = executor();
  const cases: [SamplingParamsInput, number][] = [[{ n: 2 }, 2], [{ n: 2, bestOf: 3 }, 2], [{ n: 3, temperature: 0.8 }, 3], [{
    useBeamSearch: true,
    beamWidth: 3,
    n: 2,
  }, 2]];
  for (const [p, n] of cases) {
    const r = ex.submit({ promptTokenIds: ref.prompt_ids, samplingParams: sp({ ...p, maxTokens: 8 }) });
    r.abort();
    const out = await r.result();
    assert.equal(out.outputs.length, n, JSON.stringify(p));
    assert.deepEqual(out.outputs.map((o) => o.index), Array.from({ length: n }, (_, i) => i));
    for (const o of out.outputs) {
      assert.equal(o.finishReason, "abort");
      assert.deepEqual(o.tokenIds, []);
    }
  }
  // Aborted after the fork: still n outputs, each with what it generated.
  const mid = ex.submit({
    promptTokenIds: ref.prompt_ids,
    samplingParams: sp({ n: 2, temperature: 0.8, seed: 4, maxTokens: 50, ignoreEos: true }),
    streaming: true,
  });
  for await (const o of mid) if (o.outputs.length === 2 && o.outputs[0].tokenIds.length >= 2) mid.abort();
  const m = await mid.result();
  assert.equal(m.outputs.length, 2);
  assert.ok(m.outputs.every((o) => o.finishReason === "abort" && o.tokenIds.length >= 2));
  assert.equal(ex.kvCacheStats.usedBlocks, 0);
});

test("#3 the CPU KV default keeps its 1 GiB cap; a model whose one sequence exceeds it is a ResourceError naming the field", async () => {
  const build = (dir: string, opts = {}) => {
    const m = AutoModelForCausalLM.fromHuggingFace(dir);
    try {
      return buildSync(m, { backend: "cpu", ...opts });
    } finally {
      m.close();
    }
  };
  const huge = modelWith((c) => (c.max_position_embeddings = 1_000_000)); // 1.19 GiB per sequence
  const long = modelWith((c) => (c.max_position_embeddings = 131072));
  try {
    const e1 = build(huge);
    try {
      assert.throws(
        () => GenerationExecutorWorker.create({ engine: e1, tokenizer: null }),
        (e: Error) => e instanceof ResourceError && e.field === "kvCacheConfig.maxBytes" && /maxSeqLen 1000000/.test(e.message),
      );
      await using small = GenerationExecutorWorker.create({ engine: e1, tokenizer: null, config: { kvCacheConfig: { maxTokens: 1_000_000 } } });
      assert.equal(small.limits.numKvBlocks * small.limits.tokensPerBlock, 1_000_000);
    } finally {
      e1.dispose();
    }
    const e2 = build(long);
    try {
      await using ex = GenerationExecutorWorker.create({ engine: e2, tokenizer: null });
      assert.ok(ex.limits.kvCacheBytes <= 1 << 30, `${ex.limits.kvCacheBytes} bytes`);
      assert.ok(ex.limits.numKvBlocks * ex.limits.tokensPerBlock >= 131072);
      assert.match(ex.limits.kvCacheSizing, /CPU default budget/);
    } finally {
      e2.dispose();
    }
  } finally {
    fs.rmSync(huge, { recursive: true });
    fs.rmSync(long, { recursive: true });
  }
});

test("issue 16: maxSeqLen 2048 takes a 1100-token prompt (maxInputLen defaults to maxSeqLen - 1, was 1024); the KV default is a full batch, logged in limits", async () => {
  const dir = modelWith((c) => (c.max_position_embeddings = 2048));
  try {
    await using llm = await LLM.create({ model: dir, ...testLlm, cacheEngine: false, buildConfig: { maxSeqLen: 2048, maxNumTokens: 1100, maxBatchSize: 2 } });
    const l = llm.executor.limits;
    assert.equal(l.maxInputLen, 2047);
    const out = await llm.generate(Array.from({ length: 1100 }, (_, i) => 300 + (i % 50)), { temperature: 0, maxTokens: 2, ignoreEos: true }, {
      useTqdm: false,
    });
    assert.equal(out.outputs[0].tokenIds.length, 2);
    if (testBackend === "cpu") {
      const perBlock = 5 * 2 * l.tokensPerBlock * 4 * 8 * 4; // layers × (k, v) × tokens × kv heads × head dim × f32
      assert.equal(l.kvCacheBytes, 2 * Math.ceil(2048 / l.tokensPerBlock) * perBlock);
      assert.match(l.kvCacheSizing, /a full batch: 2 sequences × maxSeqLen 2048/);
    }
  } finally {
    fs.rmSync(dir, { recursive: true });
  }
});

test("the KV default (a full batch) counts the sequences a step can run: maxNumTokens below maxBatchSize caps both", async () => {
  await using llm = await LLM.create({ model: src, ...testLlm, cacheEngine: false, buildConfig: { maxBatchSize: 8, maxNumTokens: 2, maxSeqLen: 256 } });
  const l = llm.executor.limits;
  assert.equal(l.maxBatchSize, 2);
  if (testBackend === "cpu") {
    assert.match(l.kvCacheSizing, /a full batch: 2 sequences × maxSeqLen 256/);
    assert.equal(l.numKvBlocks, 2 * Math.ceil(256 / l.tokensPerBlock));
  }
  const outs = await llm.generate([[1, 300, 301, 302], [1, 310, 311]], { temperature: 0, maxTokens: 3, ignoreEos: true }, { useTqdm: false });
  assert.deepEqual(outs.map((o) => o.outputs[0].tokenIds.length), [3, 3]);
});

test("#6 bad generateAsync options fail that request before anything is submitted; #12 an oversized text prompt is a ResourceError at once", async () => {
  await using llm = await LLM.create({ model: src, ...testLlm, cacheEngine: false, buildConfig: { maxBatchSize: 4, maxNumTokens: 256, maxSeqLen: 256 } });
  for (
    const [opts, field] of [[{ signal: {} }, "signal"], [{ streaming: "yes" }, "streaming"], [{ priority: Number.NaN }, "priority"], [
      { sginal: 1 },
      "sginal",
    ]] as const
  ) {
    const r = llm.generateAsync("Once upon a time", { maxTokens: 2 }, opts as never);
    assert.equal(llm.executor.numInFlight, 0, `nothing submitted for ${field}`);
    await assert.rejects(r.result(), (e: Error) => e instanceof ValidationError && e.message.includes(field));
  }
  await assert.rejects(llm.generate("Once upon a time", { maxTokens: 2 }, { useTqdm: 1 } as never), /useTqdm/);
  const big = "Once upon a time there was a little girl. ".repeat(25_000); // ~1 MB
  const t0 = performance.now();
  const r = llm.generateAsync(big, { maxTokens: 2 });
  await assert.rejects(r.result(), (e: Error) => e instanceof ResourceError && /maxPromptBytes/.test(e.message) && e.field === "prompt");
  const ms = performance.now() - t0;
  assert.ok(ms < 250, `rejected in ${ms.toFixed(0)} ms (tokenizing it took 1.5-2.3 s)`);
  assert.equal(llm.maxPromptBytes, 64 * 1024);
  const ok = await llm.generate("Once upon a time", { temperature: 0, maxTokens: 2 }, { useTqdm: false });
  assert.equal(ok.outputs[0].tokenIds.length, 2);
});

test("#12 a long text prompt is tokenized a slice per macrotask (the event loop keeps turning) into exactly the ids of one encode; an abort meanwhile ends it", async () => {
  await using llm = await LLM.create({ model: src, ...testLlm, cacheEngine: false, buildConfig: { maxBatchSize: 4, maxNumTokens: 256, maxSeqLen: 256 } });
  const line = (i: number) => `Once upon a time, there was a little girl named Lily${i}. She loved to play outside in the sun.\n`;
  const text = Array.from({ length: 600 }, (_, i) => line(i)).join(""); // ~58 KB, under maxPromptBytes 64 KiB
  const want = llm.tokenizer!.encode(text).length;
  let maxGap = 0, last = performance.now(), ticking = true, ticks = 0;
  const tick = (): void => {
    const now = performance.now();
    maxGap = Math.max(maxGap, now - last);
    last = now;
    ticks++;
    if (ticking) setTimeout(tick, 0);
  };
  setTimeout(tick, 0);
  const t0 = performance.now();
  const r = llm.generateAsync(text, { maxTokens: 2 });
  const syncMs = performance.now() - t0;
  // stories260k's maxInputLen is 255: the ids are counted, then refused, exactly as one encode counts them.
  await assert.rejects(r.result(), (e: Error) => e instanceof ValidationError && e.message.includes(`prompt of ${want} tokens exceeds maxInputLen 255`));
  const totalMs = performance.now() - t0;
  ticking = false;
  assert.ok(syncMs < 50, `generateAsync returned after ${syncMs.toFixed(0)} ms`);
  // ~58 KB in slices of 8 KiB: the timer ran between slices (one encode would block it throughout).
  assert.ok(ticks >= 4, `${ticks} timer turns while tokenizing (longest gap ${maxGap.toFixed(0)} ms of ${totalMs.toFixed(0)} ms)`);
  // Aborted while tokenizing: a final output with n empty completions, finishReason abort.
  const a = llm.generateAsync(text, { maxTokens: 2, n: 2 });
  a.abort();
  const out = await a.result();
  assert.deepEqual(out.outputs.map((o) => [o.index, o.finishReason, o.tokenIds.length]), [[0, "abort", 0], [1, "abort", 0]]);
  assert.equal(llm.executor.numInFlight, 0);
  // generate() takes the same path.
  await assert.rejects(llm.generate(text, { maxTokens: 2 }, { useTqdm: false }), new RegExp(`prompt of ${want} tokens`));
});

test("#12 slicing is exact: every shared tokenizer (byte-level BPE and SentencePiece) gives the ids of one encode, with cuts", async () => {
  const base =
    "Once upon a time, there was a little girl named Lily.\nShe loved to play outside.  \n\n  The sun was warm; 日本語のテキスト and émigré café…\n\tdef f(x):\n    return x * 2\n";
  let text = "";
  for (let i = 0; text.length < 20_000; i++) text += base.replace("Lily", `Lily${i}`) + (i % 7 === 0 ? "\n" : "");
  const dirs: Record<string, string> = { ...tokenizerSets, stories260k: src, "kjv-llama": new URL("../models/kjv-llama", import.meta.url).pathname };
  for (const [name, dir] of Object.entries(dirs)) {
    const tok = LlmTokenizer.fromDir(dir);
    assert.ok(sliceCuts(tok, text).length >= 2, `${name}: no safe cut`);
    for (const add of [true, false]) {
      assert.deepEqual(await encodeInSlices(tok, text, add), tok.encode(text, { addSpecialTokens: add }), `${name} addSpecialTokens ${add}`);
    }
  }
});

test("issue 16: KV sizing on a GPU — a full batch capped at 0.9 of free memory by default, the whole fraction when set explicitly (serve), a ResourceError naming the field when one sequence cannot fit", () => {
  const geometry = { numLayers: 16, tokensPerBlock: 32, numKvHeads: 8, headDim: 64, elementBytes: 2 };
  const per = 16 * 2 * 32 * 8 * 64 * 2; // 1 MiB per block
  const GiB = 1 << 30;
  const size = (config: Record<string, unknown>, free: number | null, maxBatchSize = 8, maxSeqLen = 4096) =>
    sizeKvCache({ config: { enableBlockReuse: true, ...config }, geometry, bytesPerBlock: per, maxSeqLen, maxBatchSize, freeMemoryBytes: free });
  // In-process default: what 8 × 4096 tokens need (1024 blocks), not 90% of 80 GiB.
  const lib = size({}, 80 * GiB);
  assert.equal(lib.numBlocks, 8 * 4096 / 32);
  assert.match(lib.description, /a full batch: 8 sequences × maxSeqLen 4096/);
  // The need above 0.9 of what is free: capped.
  assert.equal(size({}, 0.5 * GiB).numBlocks, Math.floor(0.9 * 0.5 * GiB / per));
  // An explicit fraction takes that much of the free memory (llmrt serve's large default).
  assert.equal(size({ freeGpuMemoryFraction: 0.9 }, 80 * GiB).numBlocks, Math.floor(0.9 * 80 * GiB / per));
  // Explicit caps win, bounded by the free memory.
  assert.equal(size({ maxTokens: 8192 }, 80 * GiB).numBlocks, 256);
  // One sequence of maxSeqLen must fit.
  assert.throws(
    () => size({}, 100 * (1 << 20)),
    (e: Error) => e instanceof ResourceError && e.field === "kvCacheConfig.freeGpuMemoryFraction" && /maxSeqLen 4096/.test(e.message),
  );
  assert.throws(() => size({}, null, 8, 1 << 20), (e: Error) => e instanceof ResourceError && e.field === "kvCacheConfig.maxBytes");
});
