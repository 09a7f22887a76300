// prefillMlpColChunks (lib/backends/cuda/launch_plan.ts, session switch) on the fake device: the gate_up GEMM of a prefill
// step as column chunks (a gate and an up GEMM of the weight's rows per chunk, silu_mul_split_bf16 into the chunk's
// columns) in steps of 1024 rows or more. The fake device's GEMM rounds each element once whatever n is, so the logits
// must be the default's bits (on the GPU the chunk GEMMs hold to the whole-width algorithm's bits by GemmArgs.refN's
// checks: tests/gpu/prefill_mlp_chunks.test.ts); with pruning and two prompts in the step.
import { buildSync } from "../lib/builder/builder.ts";
import { FakeCudaSession, randomModel, step } from "./cuda_fake_device.ts";
import { assert, test } from "./harness.ts";

const LLAMA = {
  vocab_size: 101,
  hidden_size: 32,
  intermediate_size: 8192,
  num_hidden_layers: 2,
  max_position_embeddings: 2048,
  architectures: ["LlamaForCausalLM"],
  model_type: "llama",
  num_attention_heads: 1,
  num_key_value_heads: 1,
  head_dim: 32,
};

test("prefillMlpColChunks: column-chunked gate_up + silu_mul_split give the default's logits bits on the fake device", () => {
  const model = randomModel(LLAMA, 11, true, 0.1);
  const e = buildSync(model, { backend: "cuda", dtype: "bfloat16", maxBatchSize: 4, maxNumTokens: 1040, maxSeqLen: 1056, tokensPerBlock: 32 });
  model.close();
  const opts = { batchInvariant: true, pruneLastLayer: true, gemmResidual: true, prefillPdl: true } as const;
  const base = new FakeCudaSession(e, 40, 132, false, opts);
  const cols = new FakeCudaSession(e, 40, 132, false, { ...opts, prefillMlpColChunks: true });
  // 1030 rows (two prompts): the first layer's gate_up in 2 column chunks; the pruned last layer's 2 rows unchunked.
  const seqs = [
    { ids: Array.from({ length: 1000 }, (_, i) => (i * 37 + 3) % 101), pos: 0, blocks: Array.from({ length: 32 }, (_, i) => i) },
    { ids: Array.from({ length: 30 }, (_, i) => (i * 11 + 5) % 101), pos: 0, blocks: [33] },
  ];
  const inp = step(seqs, 32);
  const a = base.run(inp), b = cols.run(inp);
  const splits = cols.lastLaunches.filter((l) => l.kind === "kernel" && l.kernel === "silu_mul_split_bf16");
  assert.equal(splits.length, 2, "two column chunks in the first layer, none in the pruned last layer");
  const chunkGemms = cols.lastLaunches.filter((l) => l.kind === "gemm" && l.n === 4096);
  assert.equal(chunkGemms.length, 4);
  for (const g of chunkGemms) assert.equal(g.kind === "gemm" && g.refN, 16384);
  const x = new Uint32Array(a.logits.buffer), y = new Uint32Array(b.logits.buffer);
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) assert.fail(`logit ${i} ${a.logits[i]} vs ${b.logits[i]}`);
  assert.deepEqual(Array.from(b.ids), Array.from(a.ids));
  e.dispose();
});
