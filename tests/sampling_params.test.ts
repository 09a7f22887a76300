// SamplingParams: every TensorRT-LLM field (camelCase) plus vLLM's logitBias/allowedTokenIds,
// defaults, resolved bestOf/beamWidth, and errors that name the field and the value.
import { splitSeed } from "../lib/ir/sampling.ts";
import { SamplingParams, type SamplingParamsInput } from "../lib/executor/sampling_params.ts";
import { ValidationError } from "../lib/util/errors.ts";
import { assert, test } from "./harness.ts";

test("defaults: maxTokens 32, temperature 1, one sequence, no beams, nothing extra; the object is frozen", () => {
  const p = new SamplingParams();
  assert.equal(p.maxTokens, 32);
  assert.equal(p.temperature, 1);
  assert.equal(p.n, 1);
  assert.equal(p.bestOf, 1);
  assert.equal(p.useBeamSearch, false);
  assert.equal(p.beamWidth, 1);
  assert.equal(p.lengthPenalty, 1);
  assert.equal(p.earlyStopping, false);
  assert.deepEqual(p.stop, []);
  assert.deepEqual(p.badWords, []);
  assert.equal(p.repetitionPenalty, 1);
  assert.equal(p.presencePenalty, 0);
  assert.equal(p.frequencyPenalty, 0);
  assert.equal(p.logprobs, undefined);
  assert.equal(p.excludeInputFromOutput, true);
  assert.equal(p.includeStopStrInOutput, false);
  assert.equal(p.isGreedy, false);
  assert.ok(Object.isFrozen(p));
  assert.ok(Object.isFrozen(p.stop));
  assert.throws(() => {
    (p as { maxTokens: number }).maxTokens = 5;
  });
});

test("every field is accepted and reads back (strings normalized to lists, bestOf/beamWidth resolved)", () => {
  const fn = (_ids: readonly number[], _logits: Float32Array): void => {};
  const bias = new Float32Array([0.5, -1, 2]);
  const input: SamplingParamsInput = {
    maxTokens: 20,
    minTokens: 3,
    n: 2,
    bestOf: 4,
    temperature: 0.7,
    topK: 40,
    topP: 0.9,
    minP: 0.05,
    seed: 123,
    endId: 2,
    padId: 0,
    stop: "\n\n",
    stopTokenIds: [7],
    includeStopStrInOutput: true,
    ignoreEos: true,
    repetitionPenalty: 1.1,
    presencePenalty: 0.5,
    frequencyPenalty: -0.5,
    noRepeatNgramSize: 3,
    badWords: "dragon",
    badTokenIds: [9, 10],
    logprobs: 5,
    promptLogprobs: 2,
    returnContextLogits: true,
    returnGenerationLogits: true,
    excludeInputFromOutput: false,
    detokenize: false,
    skipSpecialTokens: false,
    spacesBetweenSpecialTokens: false,
    addSpecialTokens: false,
    truncatePromptTokens: 100,
    embeddingBias: bias,
    logitsProcessor: fn,
    logitBias: { "5": 2.5, "0": -1 },
    allowedTokenIds: [1, 2, 3],
  };
  const p = new SamplingParams(input);
  assert.equal(p.maxTokens, 20);
  assert.equal(p.minTokens, 3);
  assert.equal(p.n, 2);
  assert.equal(p.bestOf, 4);
  assert.equal(p.beamWidth, 1);
  assert.deepEqual(p.stop, ["\n\n"]);
  assert.deepEqual(p.badWords, ["dragon"]);
  assert.deepEqual(p.stopTokenIds, [7]);
  assert.equal(p.noRepeatNgramSize, 3);
  assert.equal(p.logprobs, 5);
  assert.equal(p.promptLogprobs, 2);
  assert.equal(p.truncatePromptTokens, 100);
  assert.equal(p.logitsProcessor, fn);
  assert.deepEqual(p.logitBias, { "5": 2.5, "0": -1 });
  assert.deepEqual(p.allowedTokenIds, [1, 2, 3]);
  assert.deepEqual(Array.from(p.embeddingBias!), [0.5, -1, 2]);
  bias[0] = 99;
  assert.equal(p.embeddingBias![0], 0.5, "embeddingBias is copied at construction");
  for (const [k, v] of Object.entries(input)) {
    if (k === "stop" || k === "badWords" || k === "embeddingBias") continue;
    assert.deepEqual((p as unknown as Record<string, unknown>)[k], v, k);
  }
});

test("beam search: beamWidth defaults to bestOf then n; bestOf reads back as the width", () => {
  assert.equal(new SamplingParams({ useBeamSearch: true, n: 3 }).beamWidth, 3);
  assert.equal(new SamplingParams({ useBeamSearch: true, n: 2, bestOf: 4 }).beamWidth, 4);
  const p = new SamplingParams({ useBeamSearch: true, beamWidth: 5, n: 2, lengthPenalty: 0.6, earlyStopping: "never" });
  assert.equal(p.beamWidth, 5);
  assert.equal(p.bestOf, 5);
  assert.equal(p.earlyStopping, "never");
  assert.equal(new SamplingParams({ useBeamSearch: true, beamWidth: 1 }).beamWidth, 1);
});

test("temperature 0 and topK 1 are greedy", () => {
  assert.ok(new SamplingParams({ temperature: 0 }).isGreedy);
  assert.ok(new SamplingParams({ topK: 1 }).isGreedy);
});

const bad: [string, unknown, RegExp][] = [
  ["maxTokens 0", { maxTokens: 0 }, /^SamplingParams\.maxTokens: .*got 0$/],
  ["negative temperature", { temperature: -1 }, /^SamplingParams\.temperature: .*got -1$/],
  ["temperature beyond float32", { temperature: 1e39 }, /^SamplingParams\.temperature: must be a finite float32 value .*got 1e\+39$/],
  ["temperature NaN (shown as NaN, not null)", { temperature: NaN }, /^SamplingParams\.temperature: .*got NaN$/],
  ["topK fraction", { topK: 1.5 }, /^SamplingParams\.topK: .*got 1\.5$/],
  ["topP 0", { topP: 0 }, /^SamplingParams\.topP: .*got 0$/],
  ["topP above 1", { topP: 1.2 }, /^SamplingParams\.topP: .*got 1\.2$/],
  ["minP above 1", { minP: 2 }, /^SamplingParams\.minP: .*got 2$/],
  ["negative seed", { seed: -3 }, /^SamplingParams\.seed: .*got -3$/],
  ["n 0", { n: 0 }, /^SamplingParams\.n: .*got 0$/],
  ["bestOf < n", { n: 3, bestOf: 2 }, /^SamplingParams\.bestOf: must be >= n \(3\), got 2$/],
  ["minTokens > maxTokens", { minTokens: 10, maxTokens: 5 }, /^SamplingParams\.minTokens: must be <= maxTokens \(5\), got 10$/],
  ["beamWidth without beam search", { beamWidth: 2 }, /^SamplingParams\.beamWidth: needs useBeamSearch: true, got 2$/],
  ["beamWidth < n", { useBeamSearch: true, beamWidth: 2, n: 3 }, /^SamplingParams\.beamWidth: must be >= n \(3\).*got 2$/],
  ["beamWidth != bestOf", { useBeamSearch: true, beamWidth: 2, bestOf: 3 }, /^SamplingParams\.beamWidth: must equal bestOf \(3\).*got 2$/],
  ["topP with beam search", { useBeamSearch: true, beamWidth: 2, topP: 0.5 }, /^SamplingParams\.topP: must be off with useBeamSearch.*got 0\.5$/],
  ["earlyStopping without beam search", { earlyStopping: true }, /^SamplingParams\.earlyStopping: only applies with useBeamSearch.*got true$/],
  ["earlyStopping bad value", { useBeamSearch: true, earlyStopping: "sometimes" }, /^SamplingParams\.earlyStopping: .*got "sometimes"$/],
  ["greedy n > 1", { n: 3, temperature: 0 }, /^SamplingParams\.n: greedy decoding .*got 3$/],
  ["repetitionPenalty 0", { repetitionPenalty: 0 }, /^SamplingParams\.repetitionPenalty: .*got 0$/],
  ["presencePenalty 3", { presencePenalty: 3 }, /^SamplingParams\.presencePenalty: .*got 3$/],
  ["frequencyPenalty -2.5", { frequencyPenalty: -2.5 }, /^SamplingParams\.frequencyPenalty: .*got -2\.5$/],
  ["noRepeatNgramSize negative", { noRepeatNgramSize: -1 }, /^SamplingParams\.noRepeatNgramSize: .*got -1$/],
  ["stop not a string", { stop: 3 }, /^SamplingParams\.stop: expected a string or an array of strings, got 3$/],
  ["empty stop string", { stop: ["ok", ""] }, /^SamplingParams\.stop\.1: expected a non-empty string, got ""$/],
  ["badWords not strings", { badWords: [1] }, /^SamplingParams\.badWords: .*got \[1\]$/],
  ["badTokenIds negative", { badTokenIds: [3, -1] }, /^SamplingParams\.badTokenIds\.1: .*got -1$/],
  ["stopTokenIds fraction", { stopTokenIds: [0.5] }, /^SamplingParams\.stopTokenIds\.0: .*got 0\.5$/],
  ["logprobs negative", { logprobs: -1 }, /^SamplingParams\.logprobs: .*got -1$/],
  ["truncatePromptTokens 0", { truncatePromptTokens: 0 }, /^SamplingParams\.truncatePromptTokens: .*got 0$/],
  ["logitBias key not an id", { logitBias: { "abc": 1 } }, /^SamplingParams\.logitBias: key "abc" is not a token id: a key must be .*, got \{"abc":1\}$/],
  // A non-canonical integer names the key and says what a key must be (was "Invalid key in record").
  [
    "logitBias key with leading zeros",
    { logitBias: { "007": 1 } },
    /^SamplingParams\.logitBias: key "007" is not a token id: a key must be a token id in decimal, without sign, spaces or leading zeros \(write "7"\), got \{"007":1\}$/,
  ],
  // Settings that leave no token to choose, decidable from the request alone.
  [
    "allowedTokenIds all in badTokenIds",
    { allowedTokenIds: [5, 6], badTokenIds: [6, 5] },
    /^SamplingParams\.allowedTokenIds: every allowed id is banned by badTokenIds, so no token is left to choose, got \[5,6\]$/,
  ],
  [
    "allowedTokenIds all banned or stop ids under minTokens",
    { allowedTokenIds: [5, 6], badTokenIds: [5], stopTokenIds: [6], minTokens: 1 },
    /^SamplingParams\.allowedTokenIds: every allowed id is banned by badTokenIds and minTokens \(minTokens bans the end and stop ids for the first 1 token\)/,
  ],
  [
    "allowedTokenIds only the endId under minTokens",
    { allowedTokenIds: [2], endId: 2, minTokens: 3 },
    /^SamplingParams\.allowedTokenIds: .*banned by minTokens/,
  ],
  // Choices compile to one grammar on the caller's thread: bounded (50,000 stalled the event loop ~1.3 s).
  [
    "more than 1024 guided choices",
    { guidedDecoding: { choice: Array.from({ length: 1025 }, (_, i) => `c${i}`) } },
    /^SamplingParams\.guidedDecoding\.choice: at most 1024 choices, got 1025$/,
  ],
  [
    "guided choices over 16 KiB",
    { guidedDecoding: { choice: ["a", "\u20ac".repeat(5462)] } },
    /^SamplingParams\.guidedDecoding\.choice: the choices total 16387 bytes \(UTF-8\), above the limit of 16384$/,
  ],
  // JSON.parse makes `__proto__` an own key; z.record used to skip it (the bias silently dropped).
  ["logitBias key __proto__", { logitBias: JSON.parse('{"__proto__": 5, "7": 1}') }, /^SamplingParams\.logitBias: key "__proto__" is not a token id, got /],
  ["logitBias value not a number", { logitBias: { "3": "x" } }, /^SamplingParams\.logitBias\.3: .*got "x"$/],
  ["logitBias beyond float32", { logitBias: { "3": -1e39 } }, /^SamplingParams\.logitBias\.3: the bias is not a finite float32 value .*got -1e\+39$/],
  ["allowedTokenIds empty", { allowedTokenIds: [] }, /^SamplingParams\.allowedTokenIds: expected at least one id, got \[\]$/],
  ["embeddingBias not numbers", { embeddingBias: "x" }, /^SamplingParams\.embeddingBias: .*got "x"$/],
  ["embeddingBias NaN", { embeddingBias: new Float32Array([0, NaN]) }, /^SamplingParams\.embeddingBias: expected finite values/],
  ["logitsProcessor not a function", { logitsProcessor: 42 }, /^SamplingParams\.logitsProcessor: expected a function.*got 42$/],
  ["unknown field", { temprature: 0.5 }, /^SamplingParams: Unrecognized key: "temprature"/],
];
for (const [name, input, re] of bad) {
  test(`rejects ${name}, naming the field and value`, () => {
    assert.throws(() => new SamplingParams(input as SamplingParamsInput), (e: unknown) => {
      assert.ok(e instanceof ValidationError, `ValidationError, got ${e}`);
      assert.match(e.message, re);
      return true;
    });
  });
}

test("allowed ids that some setting leaves choosable are accepted (the conflict checks refuse only an empty choice)", () => {
  assert.deepEqual(new SamplingParams({ allowedTokenIds: [5, 6], badTokenIds: [5] }).allowedTokenIds, [5, 6]);
  new SamplingParams({ allowedTokenIds: [6], stopTokenIds: [6] }); // minTokens 0: the stop id may be chosen
  new SamplingParams({ allowedTokenIds: [2], endId: 2, minTokens: 3, ignoreEos: true }); // ignoreEos: the end id is not banned
  new SamplingParams({ guidedDecoding: { choice: Array.from({ length: 1024 }, (_, i) => `c${i}`) } });
  new SamplingParams({ guidedDecoding: { choice: ["x".repeat(16 * 1024)] } });
});

test("SamplingParams.from passes an instance through and validates a plain object", () => {
  const p = new SamplingParams({ maxTokens: 4 });
  assert.equal(SamplingParams.from(p), p);
  assert.equal(SamplingParams.from(undefined).maxTokens, 32);
  assert.throws(() => SamplingParams.from({ topK: -1 }), /SamplingParams\.topK/);
});

test("seedWords: sequence 0 is the plain seed; other sequences get distinct streams outside any user seed", () => {
  const p = new SamplingParams({ seed: 2 ** 40 + 5 });
  assert.deepEqual(p.seedWords(0), splitSeed(2 ** 40 + 5));
  const words = [0, 1, 2, 3].map((i) => p.seedWords(i).join(":"));
  assert.equal(new Set(words).size, 4);
  // A user seed < 2^53 has hi < 2^21; every seqIndex > 0 sets hi >= 2^21.
  assert.ok(p.seedWords(1)[1] >= 2 ** 21);
  assert.ok(new SamplingParams({ seed: Number.MAX_SAFE_INTEGER }).seedWords(1023)[1] >>> 0 !== splitSeed(Number.MAX_SAFE_INTEGER)[1]);
});
