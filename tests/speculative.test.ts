// Speculative decoding (issue 15 part 2): prompt-lookup drafting, rejection sampling, KV rollback,
// and end to end over the embedded model: NGram / DraftTarget greedy output equals plain greedy,
// sampled NGram output equals plain sampled output (same draws), blocks return to zero, abort.
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { assert, test, testLlm } from "./harness.ts";
import { packPeftAdapter } from "../tools/lora-packer/pack.ts";
import { LLM } from "../mod.ts";
import { sampleRow, type SamplingInputs, uniformFor } from "../lib/ir/sampling.ts";
import { proposeNgram } from "../lib/executor/speculative/ngram.ts";
import { DraftBackoff } from "../lib/executor/speculative/backoff.ts";
import { drawFrom, samplingDistribution, verifyDraft } from "../lib/executor/speculative/rejection.ts";
import { KvCacheManager } from "../lib/executor/kv_cache_manager.ts";
import { SequenceGroup } from "../lib/executor/sequence.ts";
import type { GenerationExecutorWorker } from "../lib/executor/worker.ts";
import type { RequestOutput } from "../lib/executor/outputs.ts";
import type { IterationStats } from "../lib/executor/config.ts";

const kjv = new URL("../models/kjv-llama/", import.meta.url).pathname;
const draftDir = new URL("../models/kjv-llama-draft/", import.meta.url).pathname;

// ---- prompt lookup ---------------------------------------------------------------------------

test("speculative: proposeNgram takes the tokens after the latest earlier match, longest n-gram first", () => {
  assert.deepEqual(proposeNgram([5, 6, 7, 9, 5, 6], 3, 2), [7, 9]);
  assert.deepEqual(proposeNgram([5, 6, 7, 9, 5, 6], 3, 8), [7, 9, 5, 6]);
  // The latest occurrence wins: [1, 2] occurs at 0 (then 3) and at 3 (then 4).
  assert.deepEqual(proposeNgram([1, 2, 3, 1, 2, 4, 1, 2], 2, 1), [4]);
  // A 3-gram match beats a later 1-gram match.
  assert.deepEqual(proposeNgram([7, 8, 9, 1, 9, 0, 7, 8, 9], 3, 2), [1, 9]);
  assert.deepEqual(proposeNgram([1, 2, 3], 3, 4), []);
  assert.deepEqual(proposeNgram([4], 3, 4), []);
  assert.deepEqual(proposeNgram([3, 3, 3], 1, 4), [3]);
});

// ---- rejection sampling --------------------------------------------------------------------

function softmax(logits: number[], temp = 1): number[] {
  const m = Math.max(...logits);
  const e = logits.map((l) => Math.exp((l - m) / temp));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((x) => x / s);
}

function row(temperature: number, topK = 0, topP = 1, minP = 0, seed = 7, step = 0): SamplingInputs {
  return {
    temperature: Float32Array.of(temperature),
    topK: Int32Array.of(topK),
    topP: Float32Array.of(topP),
    minP: Float32Array.of(minP),
    seed: Uint32Array.of(seed, 0),
    step: Int32Array.of(step),
  };
}

/** Total variation distance between counts (normalized) and a distribution. */
function tv(counts: number[], p: ArrayLike<number>): number {
  const n = counts.reduce((a, b) => a + b, 0);
  let d = 0;
  for (let i = 0; i < counts.length; i++) d += Math.abs(counts[i] / n - p[i]);
  return d / 2;
}

/** Pearson chi-square statistic of counts against p (cells with p > 0). */
function chiSquare(counts: number[], p: ArrayLike<number>): { stat: number; df: number } {
  const n = counts.reduce((a, b) => a + b, 0);
  let stat = 0, df = -1;
  for (let i = 0; i < counts.length; i++) {
    if (p[i] <= 0) {
      assert.equal(counts[i], 0, `token ${i} has probability 0 but was drawn ${counts[i]} times`);
      continue;
    }
    stat += (counts[i] - n * p[i]) ** 2 / (n * p[i]);
    df++;
  }
  return { stat, df };
}

test("speculative: samplingDistribution is the distribution sampleRow draws from (temperature, top-k, top-p, min-p)", () => {
  const logits = Float32Array.from([2.0, 1.5, 0.3, -1, 0.9, 1.4]);
  const V = logits.length;
  for (const s of [row(1), row(0.7, 4), row(1.3, 0, 0.8), row(1, 0, 1, 0.3), row(0)]) {
    const p = samplingDistribution(logits, 0, V, s, 0);
    assert.ok(Math.abs(p.reduce((a, b) => a + b, 0) - 1) < 1e-12);
    const counts = new Array<number>(V).fill(0);
    const N = 20000;
    for (let i = 0; i < N; i++) {
      const si = { ...s, seed: Uint32Array.of(11, 0), step: Int32Array.of(i) };
      counts[sampleRow(logits, 0, V, si, 0)]++;
    }
    const d = tv(counts, p);
    assert.ok(
      d < 0.015,
      `TV ${d.toFixed(4)} between sampleRow and samplingDistribution (temperature ${s.temperature[0]}, topK ${s.topK[0]}, topP ${s.topP[0]}, minP ${
        s.minP[0]
      })`,
    );
  }
});

test("speculative: rejection sampling keeps the target distribution (chi-square and TV, fixed seed)", () => {
  // Target p and a rather different draft q over 6 tokens; three draft positions with the same p/q
  // (so every emitted token must follow p, whatever position it came from).
  const p = softmax([2.0, 1.5, 0.3, -1, 0.9, 1.4]);
  const q = softmax([0.1, 2.2, 1.0, 0.5, -0.5, 0.0]);
  const V = p.length, N = 40000, k = 3;
  const first = new Array<number>(V).fill(0);
  const second = new Array<number>(V).fill(0);
  const oneHotFirst = new Array<number>(V).fill(0);
  let accepted = 0;
  for (let t = 0; t < N; t++) {
    const u = (i: number, tag: number): number => uniformFor(t, tag, i);
    const draft = Array.from({ length: k }, (_, i) => drawFrom(q, u(i, 1)));
    const res = verifyDraft(draft, () => p, () => q, { accept: (i) => u(i, 2), resample: (i) => u(i, 3) }, () => drawFrom(p, u(k, 4)));
    assert.ok(res.tokens.length === res.numAccepted + 1 && res.numAccepted <= k);
    assert.deepEqual(res.tokens.slice(0, res.numAccepted), draft.slice(0, res.numAccepted));
    first[res.tokens[0]]++;
    if (res.tokens.length > 1) second[res.tokens[1]]++;
    accepted += res.numAccepted;
    // A deterministic draft (q one-hot at token 1).
    const oh = verifyDraft([1], () => p, () => null, { accept: () => u(0, 5), resample: () => u(0, 6) }, () => drawFrom(p, u(1, 7)));
    oneHotFirst[oh.tokens[0]]++;
  }
  for (const [name, counts] of [["first token", first], ["second token", second], ["one-hot draft", oneHotFirst]] as const) {
    const { stat, df } = chiSquare(counts, p);
    const d = tv(counts, p);
    // df = 5: the 0.999 quantile of chi-square(5) is 20.5.
    assert.ok(stat < 20.5, `${name}: chi-square ${stat.toFixed(2)} (df ${df}) against the target`);
    assert.ok(d < 0.015, `${name}: TV ${d.toFixed(4)}`);
  }
  // The acceptance rate of one position is sum_x min(p, q).
  const alpha = p.reduce((a, pi, i) => a + Math.min(pi, q[i]), 0);
  const expect = alpha + alpha ** 2 + alpha ** 3; // E[accepted] for k = 3 with the same p, q at every position
  assert.ok(Math.abs(accepted / N - expect) < 0.03, `mean accepted ${(accepted / N).toFixed(3)} vs ${expect.toFixed(3)}`);
  // The draft's q is not p: a test that cannot pass by accident with q's distribution.
  assert.ok(tv(first, q) > 0.1);
});

test("speculative: a draft equal to the target is always accepted; a draft outside the target's support never is", () => {
  const p = softmax([1, 2, 3]);
  const all = verifyDraft([2, 1, 0], () => p, () => p, { accept: () => 0.999999, resample: () => 0.5 }, () => 1);
  assert.deepEqual(all, { numAccepted: 3, tokens: [2, 1, 0, 1] });
  const pz = [0.5, 0.5, 0];
  for (let t = 0; t < 100; t++) {
    const r = verifyDraft([2], () => pz, () => null, { accept: () => uniformFor(t, 0, 0), resample: () => uniformFor(t, 1, 0) }, () => 0);
    assert.equal(r.numAccepted, 0);
    assert.notEqual(r.tokens[0], 2);
  }
});

// ---- KV rollback -----------------------------------------------------------------------------

test("speculative: KvCacheManager.rollback frees blocks past the accepted length and withdraws published draft blocks", () => {
  const kv = new KvCacheManager({ numBlocks: 16, tokensPerBlock: 4 });
  const g = new SequenceGroup(0, [1, 2, 3, 4, 5, 6], { arrival: 0 });
  const seq = g.seqs[0];
  assert.deepEqual(kv.allocate(seq, 6), []);
  seq.numComputedTokens = 6;
  seq.tokenIds.push(7, 8, 9, 10, 11, 12); // the last token and five drafts: 12 tokens, 3 blocks
  assert.deepEqual(kv.allocate(seq, 6), []);
  assert.equal(seq.blockTable.length, 3);
  seq.numComputedTokens = 12;
  kv.commitFullBlocks(seq); // publishes all three (drafts included)
  // Only the last real token (position 6) is kept: 7 valid tokens, the next one at position 7 → 2 blocks.
  seq.tokenIds.length = 8;
  seq.numComputedTokens = 7;
  kv.rollback(seq, 7);
  assert.equal(seq.blockTable.length, 2, "8 tokens fit 2 blocks");
  assert.equal(kv.numUsedBlocks, 2);
  // Block 1 held rejected drafts: a new sequence with those drafts' prefix must not reuse it.
  const other = new SequenceGroup(1, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10], { arrival: 1 });
  assert.equal(kv.numCachedPrefixTokens(other.seqs[0]), 4, "only the first block (all valid) stays published");
  kv.free(seq);
  assert.equal(kv.numUsedBlocks, 0);
});

// ---- end to end over the embedded model -------------------------------------------------------

const PROMPTS = [
  "In the beginning",
  "And the LORD said unto Moses,",
  "Blessed are the",
  "And it came to pass",
  "The LORD is my shepherd; I shall not want. The LORD is my shepherd;",
  "And God said, Let there be light: and there was light. And God said,",
  "Thou shalt not kill. Thou shalt not steal. Thou shalt not",
  "For God so loved the world,",
];
const MAX_TOKENS = 32;

function sumStats(stats: readonly IterationStats[]): { drafted: number; accepted: number } {
  return {
    drafted: stats.reduce((a, s) => a + (s.numDraftTokens ?? 0), 0),
    accepted: stats.reduce((a, s) => a + (s.numAcceptedDraftTokens ?? 0), 0),
  };
}

let plainCache: { greedy: RequestOutput[]; sampled: RequestOutput[] } | null = null;
async function plainOutputs(): Promise<{ greedy: RequestOutput[]; sampled: RequestOutput[] }> {
  if (plainCache) return plainCache;
  await using llm = await LLM.create({ model: kjv, ...testLlm });
  const greedy = await llm.generate(PROMPTS, { maxTokens: MAX_TOKENS, temperature: 0 }, { useTqdm: false });
  const sampled = await llm.generate(PROMPTS.slice(0, 4), { maxTokens: MAX_TOKENS, temperature: 0.8, topK: 40, seed: 5 }, { useTqdm: false });
  plainCache = { greedy, sampled };
  return plainCache;
}

test("speculative: NGram greedy equals plain greedy on many prompts (batched); sampled equals plain sampled; KV back to zero", async () => {
  const plain = await plainOutputs();
  await using llm = await LLM.create({ model: kjv, ...testLlm, speculativeConfig: { decodingType: "NGram", maxDraftLen: 4, maxMatchingNgramSize: 3 } });
  const outs = await llm.generate(PROMPTS, { maxTokens: MAX_TOKENS, temperature: 0 }, { useTqdm: false });
  outs.forEach((o, i) => assert.deepEqual(o.outputs[0].tokenIds, plain.greedy[i].outputs[0].tokenIds, `prompt ${i}: ${PROMPTS[i]}`));
  const g = sumStats(llm.getStats());
  console.log(`NGram greedy: ${g.accepted}/${g.drafted} draft tokens accepted (${(100 * g.accepted / Math.max(1, g.drafted)).toFixed(1)}%)`);
  assert.ok(g.drafted > 0 && g.accepted > 0 && g.accepted < g.drafted, "drafts were proposed, some accepted and some rejected");
  const ex = llm.executor as GenerationExecutorWorker;
  assert.equal(ex.kvCacheStats.usedBlocks, 0, "every block released after requests with rejections");
  const before = llm.getStats().length;
  const sampled = await llm.generate(PROMPTS.slice(0, 4), { maxTokens: MAX_TOKENS, temperature: 0.8, topK: 40, seed: 5 }, { useTqdm: false });
  sampled.forEach((o, i) => assert.deepEqual(o.outputs[0].tokenIds, plain.sampled[i].outputs[0].tokenIds, `sampled prompt ${i}`));
  const s = sumStats(llm.getStats().slice(before));
  console.log(`NGram sampled (T 0.8, top-k 40): ${s.accepted}/${s.drafted} accepted`);
  assert.ok(s.drafted > 0);
  assert.equal(ex.kvCacheStats.usedBlocks, 0);
}, 120_000);

test("speculative: DraftTarget (the shipped draft model) greedy equals plain greedy; draft and target KV back to zero", async () => {
  const plain = await plainOutputs();
  await using llm = await LLM.create({
    model: kjv,
    ...testLlm,
    speculativeConfig: { decodingType: "DraftTarget", speculativeModel: draftDir, maxDraftLen: 3 },
  });
  const outs = await llm.generate(PROMPTS, { maxTokens: MAX_TOKENS, temperature: 0 }, { useTqdm: false });
  outs.forEach((o, i) => assert.deepEqual(o.outputs[0].tokenIds, plain.greedy[i].outputs[0].tokenIds, `prompt ${i}: ${PROMPTS[i]}`));
  const g = sumStats(llm.getStats());
  console.log(
    `DraftTarget greedy (kjv-llama-draft): ${g.accepted}/${g.drafted} draft tokens accepted (${(100 * g.accepted / Math.max(1, g.drafted)).toFixed(1)}%)`,
  );
  assert.ok(g.drafted > 0 && g.accepted > 0);
  const ex = llm.executor as GenerationExecutorWorker;
  assert.equal(ex.kvCacheStats.usedBlocks, 0);
  assert.equal(ex.numDraftKvBlocksUsed, 0);
  // Sampled drafts are verified by rejection sampling: outputs are valid, finish, and free their blocks.
  const sampled = await llm.generate(PROMPTS.slice(0, 4), { maxTokens: 16, temperature: 1, seed: 3 }, { useTqdm: false });
  for (const o of sampled) assert.ok(o.outputs[0].tokenIds.length > 0 && o.outputs[0].finishReason !== null);
  assert.equal(ex.kvCacheStats.usedBlocks, 0);
  assert.equal(ex.numDraftKvBlocksUsed, 0);
}, 120_000);

test("speculative: a LoRA request with NGram speculation equals it without (verify rows packed per sequence keep the adapter slot)", async () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "llmrt-spec-lora-"));
  try {
    const adapter = path.join(tmp, "qv");
    packPeftAdapter(kjv, adapter, { rank: 4, alpha: 8, targetModules: ["q_proj", "v_proj"], seed: 4, std: 0.08 });
    const params = { maxTokens: 24, temperature: 0 };
    const run = async (speculative: boolean): Promise<number[][]> => {
      await using llm = await LLM.create({
        model: kjv,
        ...testLlm,
        enableLora: true,
        maxLoras: 2,
        maxLoraRank: 4,
        ...(speculative ? { speculativeConfig: { decodingType: "NGram" as const, maxDraftLen: 4, maxMatchingNgramSize: 3 } } : {}),
      });
      const a = llm.generateAsync(PROMPTS[0], params, { loraRequest: { name: "qv", path: adapter } });
      const b = llm.generateAsync(PROMPTS[1], params);
      return [[...(await a.result()).outputs[0].tokenIds], [...(await b.result()).outputs[0].tokenIds]];
    };
    assert.deepEqual(await run(true), await run(false));
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}, 120_000);

test("speculative: abort mid-speculation ends cleanly (finishReason abort, blocks freed, the next request is exact)", async () => {
  const plain = await plainOutputs();
  await using llm = await LLM.create({
    model: kjv,
    ...testLlm,
    speculativeConfig: { decodingType: "DraftTarget", speculativeModel: draftDir, maxDraftLen: 4 },
  });
  const ac = new AbortController();
  const victim = llm.generateAsync(PROMPTS[4], { maxTokens: 200, temperature: 0, ignoreEos: true }, { streaming: true, signal: ac.signal });
  let seen = 0;
  for await (const _ of victim) if (++seen === 3) ac.abort();
  const v = await victim.result();
  assert.equal(v.outputs[0].finishReason, "abort");
  assert.ok(v.outputs[0].tokenIds.length < 200);
  const ex = llm.executor as GenerationExecutorWorker;
  assert.equal(ex.kvCacheStats.usedBlocks, 0);
  assert.equal(ex.numDraftKvBlocksUsed, 0);
  const again = await llm.generate(PROMPTS[0], { maxTokens: MAX_TOKENS, temperature: 0 }, { useTqdm: false });
  assert.deepEqual(again.outputs[0].tokenIds, plain.greedy[0].outputs[0].tokenIds);
}, 120_000);

test("speculative: NGram and DraftTarget in a Web Worker executor (executorMode proxy) give plain greedy and report drafts in the stats", async () => {
  const plain = await plainOutputs();
  const configs = [{ decodingType: "NGram", maxDraftLen: 3, maxMatchingNgramSize: 2 }, {
    decodingType: "DraftTarget",
    speculativeModel: draftDir,
    maxDraftLen: 3,
  }] as const;
  for (const speculativeConfig of configs) {
    await using llm = await LLM.create({ model: kjv, ...testLlm, executorMode: "proxy", speculativeConfig });
    const outs = await llm.generate(PROMPTS.slice(4, 6), { maxTokens: 16, temperature: 0 }, { useTqdm: false });
    outs.forEach((o, i) =>
      assert.deepEqual(o.outputs[0].tokenIds, plain.greedy[4 + i].outputs[0].tokenIds.slice(0, 16), `${speculativeConfig.decodingType} prompt ${4 + i}`)
    );
    assert.ok(sumStats(llm.getStats()).drafted > 0, speculativeConfig.decodingType);
  }
}, 120_000);

test("speculative: DraftBackoff pauses a sequence 1, 2, 4 … (at most maxPause) steps after rejected verify steps; an accepted draft resets it", () => {
  const b = new DraftBackoff(2, 4);
  const a = {}, other = {};
  const pauses: number[] = [];
  // Each round: one verify step with nothing accepted, then count the steps it may not draft.
  for (let round = 0; round < 6; round++) {
    b.record(a, 3, 0);
    let n = 0;
    while (!b.shouldDraft(a)) n++;
    pauses.push(n);
  }
  assert.deepEqual(pauses, [0, 1, 2, 4, 4, 4], "the first miss does not pause; then 1, 2, 4 steps, capped at maxPause");
  assert.ok(b.shouldDraft(other), "other sequences are not affected");
  b.record(a, 3, 1);
  b.record(a, 3, 0);
  assert.ok(b.shouldDraft(a), "an accepted token resets the count: one miss after it does not pause");
  b.record(a, 0, 0);
  assert.ok(b.shouldDraft(a), "a step without drafts is not a miss");
});

test("speculative: adaptiveDrafting (default on) keeps NGram greedy output and drafts no more than without it", async () => {
  const plain = await plainOutputs();
  const drafted: number[] = [];
  for (const adaptiveDrafting of [false, true]) {
    await using llm = await LLM.create({
      model: kjv,
      ...testLlm,
      speculativeConfig: { decodingType: "NGram", maxDraftLen: 4, maxMatchingNgramSize: 1, adaptiveDrafting },
    });
    const outs = await llm.generate(PROMPTS.slice(0, 4), { maxTokens: MAX_TOKENS, temperature: 0 }, { useTqdm: false });
    outs.forEach((o, i) => assert.deepEqual(o.outputs[0].tokenIds, plain.greedy[i].outputs[0].tokenIds, `adaptive ${adaptiveDrafting} prompt ${i}`));
    const g = sumStats(llm.getStats());
    console.log(`NGram (1-gram) adaptiveDrafting ${adaptiveDrafting}: ${g.accepted}/${g.drafted} accepted`);
    drafted.push(g.drafted);
  }
  assert.ok(drafted[0] > 0 && drafted[1] <= drafted[0], `drafted without / with adaptive drafting: ${drafted.join(" / ")}`);
}, 120_000);

test("speculative: bad speculativeConfig fields are ValidationErrors naming the field", async () => {
  await assert.rejects(
    LLM.create({ model: kjv, ...testLlm, speculativeConfig: { decodingType: "Medusa" } as never }),
    (e: Error) => e.name === "ValidationError" && /speculativeConfig/.test(e.message),
  );
  await assert.rejects(
    LLM.create({ model: kjv, ...testLlm, speculativeConfig: { decodingType: "NGram", maxDraftLen: 0 } }),
    (e: Error) => e.name === "ValidationError" && /maxDraftLen/.test(e.message),
  );
  await assert.rejects(
    LLM.create({ model: kjv, ...testLlm, speculativeConfig: { decodingType: "DraftTarget", speculativeModel: "/nonexistent-draft" } }),
    (e: Error) => e.name === "ValidationError" && /speculativeModel/.test(e.message),
  );
  await assert.rejects(
    LLM.create({ model: kjv, ...testLlm, speculativeConfig: { decodingType: "NGram", adaptiveDrafting: "yes" as never } }),
    (e: Error) => e.name === "ValidationError" && /adaptiveDrafting/.test(e.message),
  );
});

test(
  "speculative: a DraftTarget draft whose tokenizer differs from the target's (same vocabulary size) is refused naming what differs; one without tokenizer files runs",
  async () => {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "llmrt-spec-tok-"));
    try {
      const other = path.join(tmp, "other"), bare = path.join(tmp, "bare");
      for (const dir of [other, bare]) fs.cpSync(draftDir, dir, { recursive: true });
      // Two ids' tokens swapped: the same 4096 ids, another id → token map.
      const tj = JSON.parse(fs.readFileSync(path.join(other, "tokenizer.json"), "utf8"));
      const vocab = tj.model.vocab as Record<string, number>;
      const [a, b] = Object.keys(vocab).filter((t) => vocab[t] === 100 || vocab[t] === 101);
      [vocab[a], vocab[b]] = [vocab[b], vocab[a]];
      fs.writeFileSync(path.join(other, "tokenizer.json"), JSON.stringify(tj));
      await assert.rejects(
        LLM.create({ model: kjv, ...testLlm, speculativeConfig: { decodingType: "DraftTarget", speculativeModel: other, maxDraftLen: 3 } }),
        (e: Error & { field?: string }) =>
          e.name === "ValidationError" && e.field === "speculativeConfig.speculativeModel" && /speculativeConfig/.test(e.message) &&
          /id 100 is .* in the draft's, .* in the target's/.test(e.message),
      );
      // Without tokenizer files only vocab_size can be compared: accepted, as before.
      for (const f of ["tokenizer.json", "tokenizer_config.json"]) fs.rmSync(path.join(bare, f));
      await using llm = await LLM.create({
        model: kjv,
        ...testLlm,
        speculativeConfig: { decodingType: "DraftTarget", speculativeModel: bare, maxDraftLen: 3 },
      });
      const [o] = await llm.generate(["In the beginning"], { maxTokens: 4, temperature: 0 });
      assert.equal(o.outputs[0].tokenIds.length, 4);
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  },
  120_000,
);
