// LLM.create checks the tokenizer against the model's vocabulary (issue 11 #9): a tokenizer with ids
// the model has no row for is an error naming both sizes; a smaller tokenizer (padded model) is fine;
// one far smaller than padding explains (the 512-token tokenizer on a 4096-row model) is an error.
import { LLM } from "../lib/llmapi/llm.ts";
import { checkTokenizerFitsModel } from "../lib/llmapi/vocab_check.ts";
import { LlmrtError } from "../lib/util/errors.ts";
import { TINY, writeTiny } from "./hostile/fixtures.ts";
import { assert, sharedDir, test } from "./harness.ts";

const stories = `${sharedDir}models/stories260k`; // its tokenizer has 512 ids

test("LLM.create: a 512-id tokenizer on a 256-row model is a ValidationError naming both sizes", async () => {
  const model = writeTiny({ spec: { ...TINY, V: 256 }, tokenizerFrom: stories });
  await assert.rejects(LLM.create({ model, backend: "cpu", cacheEngine: false }), (e: unknown) => {
    assert.ok(e instanceof LlmrtError && e.kind === "validation", String(e));
    assert.match(e.message, /tokenizer .* has 512 ids/);
    assert.match(e.message, /model's vocabulary is 256/);
    assert.equal(e.field, "tokenizer");
    return true;
  });
});

test("LLM.create: a tokenizer smaller than the model's (padded) vocabulary is accepted and generates", async () => {
  const model = writeTiny({ spec: { ...TINY, V: 640 }, tokenizerFrom: stories });
  await using llm = await LLM.create({ model, backend: "cpu", cacheEngine: false, buildConfig: { maxBatchSize: 2, maxNumTokens: 64 } });
  const out = await llm.generate([1, 5, 7], { maxTokens: 3, temperature: 0, allowedTokenIds: [10, 11, 12] }, { useTqdm: false });
  assert.equal(out.outputs[0].tokenIds.length, 3);
});

test("LLM.create: the issue's 512-id tokenizer on the 4096-row kjv-llama is refused at create, not mid-generation", async () => {
  const kjv = new URL("../models/kjv-llama", import.meta.url).pathname;
  await assert.rejects(LLM.create({ model: kjv, tokenizer: stories, backend: "cpu", cacheEngine: false }), (e: unknown) => {
    assert.ok(e instanceof LlmrtError && e.kind === "validation", String(e));
    assert.match(e.message, /has 512 ids .* model's vocabulary is 4096/);
    assert.match(e.message, /3584 ids the model can generate have no token/);
    return true;
  });
});

test("vocabulary padding allowance: real padded models pass, a far smaller tokenizer does not", () => {
  // [tokenizer ids, model rows]: Qwen2.5, Phi-3, DeepSeek-V2, GPT-NeoX all pad.
  for (const [t, m] of [[151665, 151936], [32011, 32064], [100015, 102400], [50277, 50432]]) {
    checkTokenizerFitsModel({ vocabSize: t }, m, "tok");
  }
  assert.throws(() => checkTokenizerFitsModel({ vocabSize: 32000 }, 128256, "tok"), /96256 ids the model can generate have no token/);
  assert.throws(() => checkTokenizerFitsModel({ vocabSize: 513 }, 512, "tok"), /has 513 ids .* vocabulary is 512/);
});
