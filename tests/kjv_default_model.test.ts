// The embedded default model (models/kjv-llama): llmrt's CPU backend reproduces transformers'
// greedy continuation (fixture computed with transformers in float32) for three prompts.
import * as fs from "node:fs";
import { buildSync } from "../lib/builder/builder.ts";
import { LLM } from "../lib/llmapi/llm.ts";
import { LlmTokenizer } from "../lib/tokenizer/tokenizer.ts";
import { AutoModelForCausalLM } from "../lib/models/llama.ts";
import { ModelRunner } from "../lib/runtime/model_runner.ts";
import { assert, test } from "./harness.ts";

const dir = new URL("../models/kjv-llama/", import.meta.url).pathname;
const fixture = JSON.parse(fs.readFileSync(`${dir}reference_greedy.json`, "utf8")) as {
  cases: { prompt: string; prompt_ids: number[]; new_ids: number[]; text: string; last_logits?: number[] }[];
};

test("kjv-llama: the tokenizer gives transformers' prompt ids and decodes the reference text", () => {
  const tok = LlmTokenizer.fromDir(dir);
  for (const c of fixture.cases) {
    assert.deepEqual(tok.encode(c.prompt), c.prompt_ids, c.prompt);
    assert.equal(tok.decode(c.new_ids, { skipSpecialTokens: false, spacesBetweenSpecialTokens: false }), c.text);
  }
});

test("kjv-llama: ModelRunner greedy equals transformers for three prompts; last logits within 1e-4", () => {
  const model = AutoModelForCausalLM.fromHuggingFace(dir);
  const engine = buildSync(model, { maxBatchSize: 4, maxNumTokens: 256 });
  model.close();
  using runner = ModelRunner.fromEngine(engine);
  const out = runner.generate(fixture.cases.map((c) => c.prompt_ids), { maxNewTokens: 48, endId: -1, outputGenerationLogits: true });
  fixture.cases.forEach((c, i) => assert.deepEqual(out.newTokenIds[i], c.new_ids, c.prompt));
  const ref = fixture.cases[0].last_logits!;
  const got = out.generationLogits![0][0];
  let maxAbs = 0;
  for (let i = 0; i < ref.length; i++) maxAbs = Math.max(maxAbs, Math.abs(got[i] - ref[i]));
  assert.ok(maxAbs < 1e-4, `last-position logits max abs error ${maxAbs}`);
});

test("kjv-llama: LLM.generate (text prompts, greedy, ignoreEos) equals transformers' ids", async () => {
  await using llm = await LLM.create({ model: dir, backend: "cpu", cacheEngine: false });
  const outs = await llm.generate(fixture.cases.map((c) => c.prompt), { maxTokens: 48, temperature: 0, ignoreEos: true });
  fixture.cases.forEach((c, i) => {
    assert.deepEqual(outs[i].promptTokenIds, c.prompt_ids);
    assert.deepEqual(outs[i].outputs[0].tokenIds, c.new_ids, c.prompt);
  });
});
