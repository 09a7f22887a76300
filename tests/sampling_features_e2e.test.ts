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
