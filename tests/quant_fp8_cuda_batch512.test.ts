// Hundreds of sequences in flight (issue 14 item 6), checked without a GPU: a bf16 CUDA FP8 engine
// built with maxBatchSize 512 has decode-graph buckets 1, 2, 4, …, 256, 512 (every batch up to 512 has
// one), and one 300-sequence decode step runs as bucket 512's launch plan on the fake device
// (FP8 linears through fp8_quantize + the FP8 GEMM at 512 rows) with the bits of the same step run
// eagerly at 300 rows (the padding rows disturb nothing); then the executor (CPU backend, stories260k) built with
// maxBatchSize 512 keeps 300 requests in flight at once: some step schedules all 300 sequences.
import * as fs from "node:fs";
import { bucketFor } from "../lib/backends/cuda/attention_choice.ts";
import { buildSync } from "../lib/builder/builder.ts";
import { GenerationExecutorWorker } from "../lib/executor/worker.ts";
import { SamplingParams } from "../lib/executor/sampling_params.ts";
import { AutoModelForCausalLM } from "../lib/models/llama.ts";
import { quantizeSync } from "../lib/quantization/quantize.ts";
import { LlmTokenizer } from "../lib/tokenizer/tokenizer.ts";
import { FakeCudaSession, randomModel, step } from "./cuda_fake_device.ts";
import { assert, sharedDir, test, testBackend, testBuild } from "./harness.ts";

const RAW = {
  vocab_size: 64,
  hidden_size: 64,
  intermediate_size: 128,
  num_hidden_layers: 1,
  max_position_embeddings: 64,
  architectures: ["LlamaForCausalLM"],
  model_type: "llama",
  num_attention_heads: 2,
  num_key_value_heads: 1,
  head_dim: 32,
};

test("CUDA FP8 engine with maxBatchSize 512: decode buckets reach 512; a 300-sequence decode step runs as bucket 512 on the fake device", () => {
  const model = randomModel(RAW, 5, true, 0.1);
  const q = quantizeSync(model, { quantAlgo: "FP8_PER_CHANNEL_PER_TOKEN" });
  const engine = buildSync(q, { backend: "cuda", dtype: "bfloat16", maxBatchSize: 512, maxNumTokens: 1024, maxSeqLen: 16, tokensPerBlock: 4 });
  q.close();
  model.close();
  const S = 300, maxBlocks = 4;
  const fake = new FakeCudaSession(engine, S * 2 + 2, 132, false, { fusedDecode: true });
  assert.deepEqual(fake.buckets, [1, 2, 4, 8, 16, 32, 64, 128, 256, 512], "decode-graph buckets up to maxBatchSize");
  for (let n = 1; n <= 512; n++) assert.ok(bucketFor(n, fake.buckets) >= n);
  assert.equal(bucketFor(S, fake.buckets), 512);
  // Each sequence: a 3-token prefill, then one decode token; all 300 decode tokens in one graph step.
  const seqs = Array.from({ length: S }, (_, s) => ({ ids: [(s * 7) % 64, (s * 11 + 1) % 64, (s * 13 + 2) % 64], blocks: [2 * s, 2 * s + 1] }));
  fake.run(step(seqs.map((x) => ({ ids: x.ids, pos: 0, blocks: x.blocks })), maxBlocks), false);
  const before = fake.graphSteps;
  const got = fake.run(step(seqs.map((x, s) => ({ ids: [s % 64], pos: 3, blocks: x.blocks })), maxBlocks), true);
  assert.equal(fake.graphSteps, before + 1, "the 300-sequence step ran as a decode graph");
  const gemms = fake.lastLaunches.filter((l) => l.kind === "gemm");
  assert.ok(gemms.length > 0 && gemms.every((g) => g.m === 512), "bucket 512: every GEMM of the step has 512 rows");
  // The same step eager (300 rows, no bucket padding) on a second session of the same history: the same bits.
  const eager = new FakeCudaSession(engine, S * 2 + 2, 132, false, { fusedDecode: true });
  eager.run(step(seqs.map((x) => ({ ids: x.ids, pos: 0, blocks: x.blocks })), maxBlocks), false);
  const ref = eager.run(step(seqs.map((x, s) => ({ ids: [s % 64], pos: 3, blocks: x.blocks })), maxBlocks), false);
  assert.ok(eager.lastLaunches.some((l) => l.kind === "gemm" && l.m === S), "the eager step's GEMMs have 300 rows");
  const ua = new Uint32Array(got.logits.buffer), ub = new Uint32Array(ref.logits.buffer);
  for (let i = 0; i < ub.length; i++) if (ua[i] !== ub[i]) assert.fail(`bucket 512 vs eager 300 rows: logit ${i}: ${got.logits[i]} vs ${ref.logits[i]}`);
  assert.deepEqual(Array.from(got.ids), Array.from(ref.ids), "sampled ids");
  engine.dispose();
});

test("executor with maxBatchSize 512 keeps 300 requests in flight: one step schedules all 300 sequences", async () => {
  const dir = `${sharedDir}models/stories260k`;
  const tokenizer = LlmTokenizer.fromDir(dir);
  const ref = JSON.parse(fs.readFileSync(`${dir}/reference_outputs.json`, "utf8")) as { prompt_ids: number[] };
  const model = AutoModelForCausalLM.fromHuggingFace(dir);
  const engine = buildSync(model, { maxBatchSize: 512, maxNumTokens: 4096, tokensPerBlock: 8, maxInputLen: 16, maxSeqLen: 32, ...testBuild });
  model.close();
  const ex = GenerationExecutorWorker.create({ engine, tokenizer, backend: testBackend, config: { kvCacheConfig: { maxTokens: 320 * 32 } } });
  try {
    const N = 300;
    const prompt = ref.prompt_ids.slice(0, 6);
    const results = Array.from(
      { length: N },
      (_, i) => ex.submit({ promptTokenIds: [...prompt, i % 200], samplingParams: new SamplingParams({ maxTokens: 4, temperature: 0, ignoreEos: true }) }),
    );
    const finals = await Promise.all(results.map((r) => r.result()));
    for (const f of finals) assert.equal(f.outputs[0].tokenIds.length, 4);
    const stats = ex.getStats();
    const most = Math.max(...stats.map((s) => s.numScheduled));
    assert.equal(most, N, `the largest step scheduled ${most} of ${N} sequences`);
    assert.ok(stats.some((s) => s.numDecodeTokens === N), "a decode step of all 300 sequences");
  } finally {
    await ex.shutdown();
    engine.dispose();
  }
});
