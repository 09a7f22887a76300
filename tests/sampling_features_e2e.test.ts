// Sampling features end to end through LLM.generate on stories260k (tokenize → executor → detokenize),
// for those not already covered through the executor (tests/executor_batching.test.ts covers n with
// seeds, logprobs summing to cumulativeLogprob and excludeInputFromOutput). Each fails without its feature.
import * as fs from "node:fs";
import { LLM } from "../lib/llmapi/llm.ts";
import type { RequestOutput } from "../lib/executor/outputs.ts";
import type { SamplingParamsInput } from "../lib/executor/sampling_params.ts";
import { assert, sharedDir, test, testLlm } from "./harness.ts";

const dir = `${sharedDir}models/stories260k`;
const ref = JSON.parse(fs.readFileSync(`${dir}/reference_outputs.json`, "utf8")) as { prompt_ids: number[]; greedy_new_ids: number[] };
const PROMPT = "Once upon a time";

const create = (): Promise<LLM> =>
  LLM.create({ model: dir, ...testLlm, cacheEngine: false, buildConfig: { maxBatchSize: 8, maxNumTokens: 128, maxInputLen: 64, maxSeqLen: 128 } });
/** Greedy, 30 tokens, unless `p` says otherwise. */
const generator = (llm: LLM) => (p: SamplingParamsInput, prompt: string | number[] = PROMPT): Promise<RequestOutput> =>
  llm.generate(prompt, { temperature: 0, maxTokens: 30, ...p }, { useTqdm: false });
const greedy = ref.greedy_new_ids.slice(0, 30);

test("a stop string spanning two tokens (' lo' + 'ved'): text cut before it, finishReason stop, stopReason the string", async () => {
  await using llm = await create();
  const gen = generator(llm);
  const out = (await gen({ stop: ["loved", "dragon"], maxTokens: 40 })).outputs[0];
  const tok = llm.tokenizer!;
  const [lo, ved] = out.tokenIds.slice(-2).map((t) => tok.decode([t]));
  assert.ok(!lo.includes("loved") && !ved.includes("loved") && (lo + ved).endsWith("loved"), `last tokens ${JSON.stringify([lo, ved])}`);
  assert.equal(out.text, ", there was a little girl named Lily. She ");
  assert.equal(out.finishReason, "stop");
  assert.equal(out.stopReason, "loved");
  const kept = (await gen({ stop: "loved", includeStopStrInOutput: true, maxTokens: 40 })).outputs[0];
  assert.equal(kept.text, ", there was a little girl named Lily. She loved");
});

test("minTokens suppresses the end id until that many tokens exist", async () => {
  await using llm = await create();
  const gen = generator(llm);
  const comma = greedy[0]; // the greedy first token, made the end id
  const plain = (await gen({ endId: comma })).outputs[0];
  assert.deepEqual(plain.tokenIds, [comma]);
  assert.equal(plain.finishReason, "stop");
  const min = (await gen({ endId: comma, minTokens: 4 })).outputs[0];
  assert.ok(min.tokenIds.length > 4, `got ${min.tokenIds.length} tokens`);
  assert.ok(!min.tokenIds.slice(0, 4).includes(comma));
  assert.equal(min.tokenIds.at(-1), comma);
  assert.equal(min.finishReason, "stop");
});

test("repetitionPenalty changes the greedy output (and is deterministic)", async () => {
  await using llm = await create();
  const gen = generator(llm);
  assert.deepEqual((await gen({})).outputs[0].tokenIds, greedy);
  const a = (await gen({ repetitionPenalty: 1.5 })).outputs[0].tokenIds;
  assert.notDeepEqual(a, greedy);
  assert.deepEqual((await gen({ repetitionPenalty: 1.5 })).outputs[0].tokenIds, a);
});

test("extreme repetitionPenalty saturates instead of failing: 1e-300 repeats seen ids, 1e300 still picks the only allowed (seen) id", async () => {
  await using llm = await create();
  const gen = generator(llm);
  const prompt = [1, 300, 267];
  // Every seen id's positive logit / 1e-300 saturates at the float32 maximum: greedy picks a prompt id every step (it used
  // to be +inf and fail the request with "the logits contain +inf").
  const tiny = (await gen({ repetitionPenalty: 1e-300, maxTokens: 6 }, prompt)).outputs[0];
  assert.equal(tiny.finishReason, "length");
  assert.ok(tiny.tokenIds.every((t) => prompt.includes(t)), `${tiny.tokenIds}`);
  // The only allowed id is in the prompt: its negative logit × 1e300 saturates at -max, still the one choice (it used to be
  // -inf and fail with "every token is masked").
  const huge = (await gen({ repetitionPenalty: 1e300, allowedTokenIds: [267], maxTokens: 3 }, prompt)).outputs[0];
  assert.deepEqual(huge.tokenIds, [267, 267, 267]);
});

test("temperature: any finite float32 keeps masked ids out (uniform over the rest); beyond float32 is a validation error", async () => {
  await using llm = await create();
  const banned = Array.from({ length: 500 }, (_, i) => i).filter((i) => i % 50 !== 7);
  const out = (await llm.generate(PROMPT, { temperature: 3e38, badTokenIds: banned, maxTokens: 24, seed: 5 }, { useTqdm: false })).outputs[0];
  assert.equal(out.tokenIds.length, 24);
  assert.ok(out.tokenIds.every((t) => !banned.includes(t)), `banned ids generated: ${out.tokenIds}`);
  // At 1e39 the float32 samplers saw an infinite temperature: masked logits became NaN and banned ids came out.
  await assert.rejects(
    llm.generate(PROMPT, { temperature: 1e39, maxTokens: 2 }, { useTqdm: false }),
    /SamplingParams\.temperature: must be a finite float32 value.*got 1e\+39/,
  );
});

test("endId / stopTokenIds outside the vocabulary are errors naming them (they could never end the request); endId -1 is no end id", async () => {
  await using llm = await create();
  const gen = generator(llm);
  await assert.rejects(gen({ endId: 99999 }), /SamplingParams\.endId: token id 99999 is outside \[0, 512\)/);
  await assert.rejects(gen({ stopTokenIds: [261, 512] }), /SamplingParams\.stopTokenIds\[1\]: token id 512 is outside \[0, 512\)/);
  assert.equal((await gen({ endId: -1, maxTokens: 5 })).outputs[0].finishReason, "length");
});

test("badWords: a word spanning three tokens (' g' 'ir' 'l') never appears; the text is greedy up to it", async () => {
  await using llm = await create();
  const gen = generator(llm);
  assert.ok((await gen({})).outputs[0].text.includes("girl"), "precondition: greedy says girl");
  const out = (await gen({ badWords: ["girl"], maxTokens: 40 })).outputs[0];
  assert.ok(!out.text.includes("girl"), out.text);
  assert.deepEqual(out.tokenIds.slice(0, 6), greedy.slice(0, 6));
});

test("allowedTokenIds and logitBias restrict and steer the generated ids", async () => {
  await using llm = await create();
  const gen = generator(llm);
  const allowed = [261, 267, 300];
  assert.ok((await gen({ allowedTokenIds: allowed })).outputs[0].tokenIds.every((t) => allowed.includes(t)));
  const lily = greedy[9];
  assert.ok(greedy.includes(lily));
  assert.ok(!(await gen({ logitBias: { [lily]: -100 } })).outputs[0].tokenIds.includes(lily));
  assert.ok((await gen({ logitBias: { "300": 100 } })).outputs[0].tokenIds.every((t) => t === 300));
});

test("truncatePromptTokens keeps the last k prompt tokens: the same output as that shorter prompt", async () => {
  await using llm = await create();
  const gen = generator(llm);
  const out = await gen({ truncatePromptTokens: ref.prompt_ids.length, maxTokens: 8 }, [300, 301, 302, ...ref.prompt_ids]);
  assert.deepEqual(out.promptTokenIds, ref.prompt_ids);
  assert.deepEqual(out.outputs[0].tokenIds, greedy.slice(0, 8));
  const text = await gen({ truncatePromptTokens: 3, maxTokens: 8 }, "The dog ran. Once upon a time");
  assert.equal(text.promptTokenIds.length, 3);
  assert.deepEqual(text.outputs[0].tokenIds, (await gen({ maxTokens: 8 }, [...text.promptTokenIds])).outputs[0].tokenIds);
});
