// Golden end-to-end runs of the real pretrained stories260k on the CPU backend.
import * as fs from "node:fs";
import { buildSync } from "../lib/builder/builder.ts";
import { AutoModelForCausalLM } from "../lib/models/llama.ts";
import { ModelRunner } from "../lib/runtime/model_runner.ts";
import { assert, sharedDir, test } from "./harness.ts";

const dir = `${sharedDir}models/stories260k`;
const ref = JSON.parse(fs.readFileSync(`${dir}/reference_outputs.json`, "utf8")) as {
  prompt_ids: number[];
  greedy_new_ids: number[];
  last_position_logits: number[];
  prompt_argmax_per_position: number[];
};

function engine(opts = {}) {
  const model = AutoModelForCausalLM.fromHuggingFace(dir);
  try {
    return buildSync(model, { maxBatchSize: 8, maxNumTokens: 512, ...opts });
  } finally {
    model.close();
  }
}

test("ModelRunner greedy reproduces all 256 reference ids and the last-position logits", () => {
  using runner = ModelRunner.fromEngine(engine());
  const out = runner.generate([ref.prompt_ids], { maxNewTokens: 256, endId: -1, outputGenerationLogits: true });
  assert.deepEqual(out.newTokenIds[0], ref.greedy_new_ids);
  assert.equal(out.finishReasons[0], "length");
  const logits = out.generationLogits![0][0];
  let maxAbs = 0;
  for (let i = 0; i < logits.length; i++) maxAbs = Math.max(maxAbs, Math.abs(logits[i] - ref.last_position_logits[i]));
  assert.ok(maxAbs < 1e-4, `last-position logits max abs error ${maxAbs}`);
});

test("chunked prefill (maxNumTokens 3) gives the same greedy ids as one-shot prefill", () => {
  using runner = ModelRunner.fromEngine(engine({ maxNumTokens: 3, tokensPerBlock: 4 }));
  const out = runner.generate([ref.prompt_ids], { maxNewTokens: 40, endId: -1 });
  assert.deepEqual(out.newTokenIds[0], ref.greedy_new_ids.slice(0, 40));
});

test("a batch of 4 different prompts equals 4 single runs token for token", () => {
  const prompts = [ref.prompt_ids, [1, 403, 407], [1, 351, 269, 295, 281, 420], ref.prompt_ids.slice(0, 2)];
  using runner = ModelRunner.fromEngine(engine({ tokensPerBlock: 8 }));
  const batched = runner.generate(prompts, { maxNewTokens: 48, endId: -1 });
  prompts.forEach((p, i) => {
    const single = runner.generate([p], { maxNewTokens: 48, endId: -1 });
    assert.deepEqual(batched.newTokenIds[i], single.newTokenIds[0], `prompt ${i}`);
  });
  assert.deepEqual(batched.newTokenIds[0], ref.greedy_new_ids.slice(0, 48));
});

test("sampling is reproducible per seed and differs across seeds; endId stops with finishReason stop", () => {
  using runner = ModelRunner.fromEngine(engine());
  const a = runner.generate([ref.prompt_ids], { maxNewTokens: 30, endId: -1, temperature: 1, topP: 0.95, seed: 42 });
  const b = runner.generate([ref.prompt_ids, [1, 403]], { maxNewTokens: 30, endId: -1, temperature: 1, topP: 0.95, seed: 42 });
  const c = runner.generate([ref.prompt_ids], { maxNewTokens: 30, endId: -1, temperature: 1, topP: 0.95, seed: 7 });
  assert.deepEqual(a.newTokenIds[0], b.newTokenIds[0], "same seed, different batch mate");
  assert.notDeepEqual(a.newTokenIds[0], c.newTokenIds[0], "different seeds");
  const stopAt = ref.greedy_new_ids[5];
  const d = runner.generate([ref.prompt_ids], { maxNewTokens: 30, endId: stopAt });
  const firstIdx = ref.greedy_new_ids.indexOf(stopAt);
  assert.deepEqual(d.newTokenIds[0], ref.greedy_new_ids.slice(0, firstIdx + 1));
  assert.equal(d.finishReasons[0], "stop");
});

test("ModelRunner rejects bad input naming the field", () => {
  using runner = ModelRunner.fromEngine(engine());
  assert.throws(() => runner.generate([[1, 9999]], { maxNewTokens: 2 }), /batchInputIds\[0\]\[1\]: token id 9999/);
  assert.throws(() => runner.generate([[]], { maxNewTokens: 2 }), /batchInputIds\[0\]: empty prompt/);
  assert.throws(() => runner.generate([[1]], { maxNewTokens: 0 }), /SamplingConfig.maxNewTokens/);
  assert.throws(() => runner.generate([[1]], { maxNewTokens: 2, topP: 2 }), /SamplingConfig.topP.*got 2/);
});
