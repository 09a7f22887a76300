// Beam search driven by the executor: beams are sequences of one group, forked and pruned every
// step with KV blocks shared copy-on-write; results equal the reference driver of beam_search.ts.
import * as fs from "node:fs";
import { buildSync } from "../lib/builder/builder.ts";
import { beamSearchGenerate } from "../lib/executor/beam_search.ts";
import { GenerationExecutorWorker } from "../lib/executor/worker.ts";
import { SamplingParams, type SamplingParamsInput } from "../lib/executor/sampling_params.ts";
import { LlmTokenizer } from "../lib/tokenizer/tokenizer.ts";
import { AutoModelForCausalLM } from "../lib/models/llama.ts";
import { ModelRunner } from "../lib/runtime/model_runner.ts";
import { assert, sharedDir, test, testBackend, testBuild } from "./harness.ts";

const dir = `${sharedDir}models/stories260k`;
const ref = JSON.parse(fs.readFileSync(`${dir}/reference_outputs.json`, "utf8")) as { prompt_ids: number[]; greedy_new_ids: number[] };
const tokenizer = LlmTokenizer.fromDir(dir);
const model = AutoModelForCausalLM.fromHuggingFace(dir);
const engine = buildSync(model, { maxBatchSize: 16, maxNumTokens: 128, tokensPerBlock: 4, maxInputLen: 64, ...testBuild });
model.close();
const runner = ModelRunner.fromEngine(engine, { backend: testBackend });
/** Last-position logits of each full sequence, by a fresh static-batch forward (the reference's model). */
const forward = (seqs: number[][]): Float32Array[] =>
  seqs.map((s) => runner.generate([s], { maxNewTokens: 1, endId: -1, outputGenerationLogits: true }).generationLogits![0][0]);

function reference(prompt: number[], p: SamplingParamsInput): { tokens: readonly number[]; sumLogprob: number; finishReason: string }[] {
  return beamSearchGenerate(forward, prompt, p, [2]); // eos of stories260k
}

test("beam search through the executor equals the reference driver (widths 1-4, n, lengthPenalty, end ids)", async () => {
  await using ex = GenerationExecutorWorker.create({ engine, tokenizer, backend: testBackend });
  const cases: [number[], SamplingParamsInput][] = [
    [ref.prompt_ids, { useBeamSearch: true, beamWidth: 3, maxTokens: 8 }],
    [[1, 403], { useBeamSearch: true, beamWidth: 4, n: 2, maxTokens: 10, lengthPenalty: 0.6 }],
    [ref.prompt_ids, { useBeamSearch: true, beamWidth: 1, maxTokens: 12 }],
    [[1, 351, 269, 295, 281, 420], { useBeamSearch: true, beamWidth: 2, n: 2, maxTokens: 24, earlyStopping: true }],
    [ref.prompt_ids, { useBeamSearch: true, beamWidth: 3, n: 3, maxTokens: 30, stopTokenIds: [426] }], // "." ends hypotheses
    [[1, 403], { useBeamSearch: true, beamWidth: 2, maxTokens: 30, stopTokenIds: [426], earlyStopping: "never", logprobs: 0 }],
  ];
  const results = cases.map(([prompt, p]) => ex.submit({ promptTokenIds: prompt, samplingParams: new SamplingParams(p), streaming: true }));
  const outs = await Promise.all(results.map((r) => r.result()));
  cases.forEach(([prompt, p], i) => {
    const want = reference(prompt, p);
    const got = outs[i].outputs;
    assert.equal(got.length, want.length, `case ${i}`);
    got.forEach((o, j) => {
      assert.deepEqual(o.tokenIds, want[j].tokens, `case ${i} output ${j}`);
      assert.equal(o.finishReason, want[j].finishReason);
      assert.ok(Math.abs(o.cumulativeLogprob! - want[j].sumLogprob) < 1e-4, `case ${i} output ${j} logprob`);
      const textIds = o.finishReason === "stop" ? o.tokenIds.slice(0, -1) : o.tokenIds;
      const d = tokenizer.createDetokenizer({ promptIds: prompt });
      assert.equal(o.text, d.push(textIds) + d.flush());
    });
  });
  assert.ok(outs[4].outputs.some((o) => o.finishReason === "stop" && o.stopReason === 426 && o.tokenIds.at(-1) === 426), "a hypothesis ended on the stop id");
  assert.equal(outs[5].outputs[0].logprobs!.length, outs[5].outputs[0].tokenIds.length);
  // Width 1 is greedy.
  assert.deepEqual(outs[2].outputs[0].tokenIds, ref.greedy_new_ids.slice(0, 12));
  assert.equal(ex.kvCacheStats.usedBlocks, 0, "every beam's blocks released");
  assert.ok(ex.kvCacheStats.copiedBlocks > 0, "branching beams copied their shared partial block");
});

test("beam search alongside sampling requests, under preemption, and aborted mid-search", async () => {
  const m = AutoModelForCausalLM.fromHuggingFace(dir);
  const tight = buildSync(m, { maxBatchSize: 16, maxNumTokens: 128, tokensPerBlock: 4, maxSeqLen: 64, maxInputLen: 32, ...testBuild });
  m.close();
  try {
    await using ex = GenerationExecutorWorker.create({ engine: tight, tokenizer, backend: testBackend, config: { kvCacheConfig: { maxTokens: 64 } } }); // 16 blocks
    const bp: SamplingParamsInput = { useBeamSearch: true, beamWidth: 2, maxTokens: 12, ignoreEos: true };
    const beam = ex.submit({ promptTokenIds: ref.prompt_ids, samplingParams: new SamplingParams(bp) });
    const others = [1, 2, 3].map((i) =>
      ex.submit({ promptTokenIds: [1, 403 + i], samplingParams: new SamplingParams({ temperature: 0.8, seed: i, maxTokens: 40, ignoreEos: true }) })
    );
    const got = await beam.result();
    await Promise.all(others.map((r) => r.result()));
    assert.ok(ex.getStats().some((s) => s.numPreempted > 0), "the cache was short enough to preempt");
    const want = reference(ref.prompt_ids, bp);
    assert.deepEqual(got.outputs[0].tokenIds, want[0].tokens);

    const aborted = ex.submit({ promptTokenIds: ref.prompt_ids, samplingParams: new SamplingParams({ ...bp, maxTokens: 20 }) });
    const clock = ex.submit({
      promptTokenIds: [1, 403],
      samplingParams: new SamplingParams({ temperature: 0, maxTokens: 30, ignoreEos: true }),
      streaming: true,
    });
    for await (const o of clock) if (o.outputs[0].tokenIds.length === 4) aborted.abort();
    const a = await aborted.result();
    assert.equal(a.outputs.length, 2, "the live beams");
    for (const o of a.outputs) {
      assert.equal(o.finishReason, "abort");
      assert.ok(o.tokenIds.length >= 3 && o.tokenIds.length < 20);
    }
    assert.equal(ex.kvCacheStats.usedBlocks, 0);
  } finally {
    tight.dispose();
  }
});
