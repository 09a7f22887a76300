// LLM.create checks the tokenizer against the model's vocabulary (issue 11 #9): a tokenizer with ids
// the model has no row for is an error naming both sizes; a smaller tokenizer (padded model) is fine.
import { LLM } from "../lib/llmapi/llm.ts";
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
