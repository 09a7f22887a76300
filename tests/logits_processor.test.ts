// processLogits: each host-side logits edit changes the argmax of a crafted row (so each test fails
// without its feature), plus semantics (HF repetition, OpenAI presence/frequency, HF no-repeat
// n-grams, multi-token bad words, minTokens) and ordering.
import { argmax } from "../lib/ir/sampling.ts";
import { needsHostCallback, needsHostProcessing, processLogits, resolveBadWords, type SequenceView } from "../lib/executor/logits_processor.ts";
import { SamplingParams, type SamplingParamsInput } from "../lib/executor/sampling_params.ts";
import { assert, test } from "./harness.ts";

const EOS = [2];

function seq(outputIds: number[], promptIds: number[] = [1]): SequenceView {
  return { promptIds, outputIds, requestId: 7, seqIndex: 1 };
}

/** Applies `params` to a copy of `row` and returns the result. */
function run(row: number[], params: SamplingParamsInput, s: SequenceView = seq([]), badWordIds: number[][] = []): Float32Array {
  const x = Float32Array.from(row);
  processLogits(x, new SamplingParams(params), s, EOS, badWordIds);
  return x;
}

const argmaxOf = (x: Float32Array): number => argmax(x, 0, x.length);

test("needsHostProcessing is false for plain sampling and true for each host-side field", () => {
  assert.equal(needsHostProcessing(new SamplingParams({ temperature: 0.7, topK: 5, topP: 0.9, minP: 0.1, seed: 3, stop: "x", logprobs: 3 })), false);
  const each: SamplingParamsInput[] = [
    { logitsProcessor: () => {} },
    { embeddingBias: [0] },
    { logitBias: { "1": 1 } },
    { allowedTokenIds: [1] },
    { badTokenIds: [1] },
    { badWords: "x" },
    { minTokens: 1 },
    { repetitionPenalty: 1.2 },
    { presencePenalty: 0.1 },
    { frequencyPenalty: 0.1 },
    { noRepeatNgramSize: 2 },
  ];
  for (const p of each) assert.equal(needsHostProcessing(new SamplingParams(p)), true, JSON.stringify(p));
  assert.equal(needsHostProcessing(new SamplingParams({ logitBias: {} })), false);
  assert.equal(needsHostCallback(new SamplingParams({ logitsProcessor: () => {} })), true);
  assert.equal(needsHostCallback(new SamplingParams({ repetitionPenalty: 2 })), false);
});

test("logitsProcessor callback sees output ids, the row and info; edits in place or returns a replacement", () => {
  const row = [0, 0, 0, 5, 0, 0, 0, 0];
  let seen: unknown = null;
  const x = run(row, {
    logitsProcessor: (ids, logits, info) => {
      seen = { ids: [...ids], info: { ...info, promptIds: [...info.promptIds] } };
      logits[6] = 10;
    },
  }, seq([4, 5], [1, 3]));
  assert.equal(argmaxOf(x), 6);
  assert.deepEqual(seen, { ids: [4, 5], info: { requestId: 7, seqIndex: 1, promptIds: [1, 3] } });
  // A returned row replaces it; a list runs in order.
  const y = run(row, { logitsProcessor: [(_i, l) => Float32Array.from(l, (_, j) => (j === 1 ? 9 : 0)), (_i, l) => void (l[1] += 1)] });
  assert.equal(argmaxOf(y), 1);
  assert.equal(y[1], 10);
  assert.throws(() => run(row, { logitsProcessor: () => new Float32Array(3) }), /SamplingParams\.logitsProcessor: returned 3 logits for a vocabulary of 8/);
});

test("embeddingBias is added to the row; a wrong length names the field", () => {
  const x = run([0, 1, 0, 3, 0, 0, 0, 0], { embeddingBias: [0, 0, 0, 0, 0, 5, 0, 0] });
  assert.equal(argmaxOf(x), 5);
  assert.throws(() => run([0, 1, 0, 3, 0, 0, 0, 0], { embeddingBias: [1, 2] }), /SamplingParams\.embeddingBias: has 2 entries, the vocabulary 8/);
});

test("logitBias adds per id; an id outside the vocabulary names the key", () => {
  const x = run([0, 1, 0, 3, 0, 0, 0, 0], { logitBias: { "1": 2.5, "3": -1 } });
  assert.equal(argmaxOf(x), 1);
  assert.equal(x[1], 3.5);
  assert.equal(x[3], 2);
  assert.throws(() => run([0, 1, 0, 3, 0, 0, 0, 0], { logitBias: { "99": 1 } }), /SamplingParams\.logitBias\.99: token id 99 is outside \[0, 8\)/);
});

test("allowedTokenIds keeps only those ids (others -inf, values unchanged)", () => {
  const x = run([0, 1, 0, 3, 0, 0.5, 0, 0], { allowedTokenIds: [5, 6] });
  assert.equal(argmaxOf(x), 5);
  assert.equal(x[5], 0.5);
  assert.equal(x[6], 0);
  assert.equal(x[3], -Infinity);
  assert.throws(() => run([0, 0, 0, 0, 0, 0, 0, 0], { allowedTokenIds: [8] }), /allowedTokenIds\[0\]: token id 8/);
});

test("badTokenIds ban ids", () => {
  const x = run([0, 1, 0, 3, 0, 0, 0, 0], { badTokenIds: [3] });
  assert.equal(x[3], -Infinity);
  assert.equal(argmaxOf(x), 1);
  assert.throws(() => run([0, 0, 0, 0, 0, 0, 0, 0], { badTokenIds: [8] }), /badTokenIds\[0\]: token id 8/);
});

test("badWords: a single-token word is always banned; a multi-token word only when its prefix ends the context", () => {
  const row = [0, 1, 0, 3, 0, 0, 0, 4];
  const words = [[6], [4, 5, 7]];
  // Context tail [..., 4, 5]: 7 would complete the bad word → banned.
  const x = run(row, { badWords: "w" }, seq([4, 5], [1]), words);
  assert.equal(x[7], -Infinity);
  assert.equal(x[6], -Infinity);
  assert.equal(argmaxOf(x), 3);
  // Prefix spanning prompt and output also counts.
  assert.equal(run(row, { badWords: "w" }, seq([5], [1, 4]), words)[7], -Infinity);
  // Tail [..., 5, 5]: no match → 7 stays the argmax.
  const y = run(row, { badWords: "w" }, seq([5, 5], [1]), words);
  assert.equal(argmaxOf(y), 7);
  assert.equal(y[6], -Infinity);
});

test("resolveBadWords encodes each word as given and with a leading space, without duplicates", () => {
  const enc = (s: string): number[] => [...s].map((c) => (c === " " ? 0 : c.charCodeAt(0) - 96));
  assert.deepEqual(resolveBadWords(["ab", " c"], enc), [[1, 2], [0, 1, 2], [0, 3]]);
  assert.deepEqual(resolveBadWords(["x"], () => []), []);
});

test("minTokens bans eos and stopTokenIds until that many tokens exist (eos stays allowed with ignoreEos)", () => {
  const row = [0, 0, 9, 0, 0, 8, 0, 0];
  const under = run(row, { minTokens: 3, stopTokenIds: [5] }, seq([4, 4]));
  assert.equal(under[2], -Infinity);
  assert.equal(under[5], -Infinity);
  assert.notEqual(argmaxOf(under), 2);
  const reached = run(row, { minTokens: 3, stopTokenIds: [5] }, seq([4, 4, 4]));
  assert.equal(argmaxOf(reached), 2);
  const ignore = run(row, { minTokens: 3, ignoreEos: true }, seq([]));
  assert.equal(argmaxOf(ignore), 2);
});

test("repetitionPenalty (HF): over prompt + output, positive logits divided, negative multiplied, once per id", () => {
  const row = [0, 2, 0, 1.5, 0, -1, 0, 0];
  // id 1 in the prompt, twice in the output; id 5 in the output.
  const x = run(row, { repetitionPenalty: 2 }, seq([1, 1, 5], [1]));
  assert.equal(x[1], 1);
  assert.equal(x[5], -2);
  assert.equal(x[3], 1.5);
  assert.equal(argmaxOf(x), 3);
  const y = run(row, { repetitionPenalty: 0.5 }, seq([3]));
  assert.equal(y[3], 3);
});

test("repetitionPenalty saturates at ±the largest float32 instead of overflowing to ±inf", () => {
  const MAX = 3.4028234663852886e38;
  const row = [0, 2, 0, 1.5, 0, -1, 0, 0];
  const tiny = run(row, { repetitionPenalty: 1e-300 }, seq([1, 5]));
  assert.equal(tiny[1], MAX); // 2 / 1e-300
  assert.ok(tiny[5] === 0); // -1 · 1e-300 underflows to -0
  assert.equal(argmaxOf(tiny), 1);
  const huge = run(row, { repetitionPenalty: 1e300 }, seq([1, 5]));
  assert.equal(huge[5], -MAX); // -1 · 1e300
  assert.ok(huge[1] === 0); // 2 / 1e300 underflows to 0
  assert.ok(huge.every(Number.isFinite));
});

test("presence/frequency penalties (OpenAI): over output ids only, logit -= freq·count + presence", () => {
  const row = [0, 2, 0, 1.8, 0, 0, 0, 0];
  const x = run(row, { presencePenalty: 0.1, frequencyPenalty: 0.2 }, seq([1, 1, 6], [3, 3]));
  assert.ok(Math.abs(x[1] - (2 - 0.4 - 0.1)) < 1e-6);
  assert.ok(Math.abs(x[6] - (0 - 0.2 - 0.1)) < 1e-6);
  assert.equal(x[3], Math.fround(1.8), "prompt ids are not penalized");
  assert.equal(argmaxOf(x), 3);
  const neg = run(row, { frequencyPenalty: -1.5 }, seq([6, 6]));
  assert.equal(argmaxOf(neg), 6);
});

test("noRepeatNgramSize (HF): bans the token that would repeat an n-gram of prompt + output", () => {
  const row = [0, 0, 0, 5, 4, 0, 0, 0];
  // Context 1 3 4 6 1 3: the 3-gram (1 3 4) exists, so 4 is banned after (1 3).
  const ctx = seq([4, 6, 1, 3], [1, 3]);
  const x = run(row, { noRepeatNgramSize: 3 }, ctx);
  assert.equal(x[4], -Infinity);
  assert.equal(x[3], 5);
  // Size 2, context 1 3 4 6 1 3 6: after 6 the bigram (6 1) exists → 1 banned; 4 is not.
  const y = run(row, { noRepeatNgramSize: 2 }, seq([4, 6, 1, 3, 6], [1, 3]));
  assert.equal(y[1], -Infinity);
  assert.equal(y[4], 4);
  // Size 1 bans every id seen.
  const z = run(row, { noRepeatNgramSize: 1 }, seq([3], [4]));
  assert.equal(z[3], -Infinity);
  assert.equal(z[4], -Infinity);
  assert.equal(argmaxOf(z), 0);
  // Fewer tokens than the n-gram needs: nothing banned.
  assert.deepEqual(Array.from(run(row, { noRepeatNgramSize: 4 }, seq([], [3, 3]))), row);
  assert.equal(argmaxOf(run(row, { noRepeatNgramSize: 3 }, ctx)), 3);
});

test("order: callback before bias before allowed ids before bans before penalties", () => {
  const calls: number[] = [];
  const x = run([1, 1, 1, 1, 1, 1, 1, 1], {
    logitsProcessor: (_ids, l) => {
      calls.push(l[3]);
      l[3] = 2;
    },
    embeddingBias: [0, 0, 0, 1, 0, 0, 0, 0],
    logitBias: { "3": 1 },
    allowedTokenIds: [3, 4],
    badTokenIds: [4],
    repetitionPenalty: 2,
  }, seq([3]));
  assert.deepEqual(calls, [1], "the callback sees the raw row");
  // (2 + 1 + 1) / 2: the repetition penalty applies last, to the biased value.
  assert.equal(x[3], 2);
  assert.equal(x[4], -Infinity);
  assert.equal(x[0], -Infinity);
});

test("no fields set leaves the row untouched", () => {
  const row = [0.1, -2, 3, 4, 5, 6, 7, 8];
  assert.deepEqual(Array.from(run(row, {}, seq([1, 2, 3]))), Array.from(Float32Array.from(row)));
});
