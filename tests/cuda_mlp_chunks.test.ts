// prefillMlpColChunks (lib/backends/cuda/launch_plan.ts, session switch) on the fake device: the gate_up GEMM of a prefill
// step as column chunks (a gate and an up GEMM of the weight's rows per chunk, silu_mul_split_bf16 into the chunk's
// columns). The fake device's GEMM rounds each element once whatever n is, so the logits must be the default's bits
// here (on the GPU the chunk GEMMs' own algorithms may round otherwise: tests/gpu/prefill_mlp_chunks.test.ts); with
// pruning, batches of sequences, and decode steps unchanged.
import { buildSync } from "../lib/builder/builder.ts";
import { FakeCudaSession, randomModel, step } from "./cuda_fake_device.ts";
import { assert, test } from "./harness.ts";

const LLAMA = {
  vocab_size: 101,
  hidden_size: 64,
  intermediate_size: 8192,
  num_hidden_layers: 2,
  max_position_embeddings: 256,
  architectures: ["LlamaForCausalLM"],
  model_type: "llama",
  num_attention_heads: 4,
  num_key_value_heads: 1,
  head_dim: 64,
};

test("prefillMlpColChunks: column-chunked gate_up + silu_mul_split give the default's logits bits on the fake device", () => {
  const model = randomModel(LLAMA, 11, true, 0.1);
  const e = buildSync(model, { backend: "cuda", dtype: "bfloat16", maxBatchSize: 4, maxNumTokens: 32, maxSeqLen: 64, tokensPerBlock: 4 });
  model.close();
  for (const prune of [false, true]) {
    const base = new FakeCudaSession(e, 40, 132, false, { batchInvariant: true, pruneLastLayer: prune, gemmResidual: true, prefillPdl: true });
    const cols = new FakeCudaSession(e, 40, 132, false, {
      batchInvariant: true,
      pruneLastLayer: prune,
      gemmResidual: true,
      prefillPdl: true,
      prefillMlpColChunks: true,
    });
    const seqs = [
      { ids: [1, 5, 9, 33, 2, 7, 8, 21, 14], pos: 0, blocks: [3, 4, 5] },
      { ids: [4, 4, 90], pos: 0, blocks: [6] },
    ];
    const inp = step(seqs, 30);
    const a = base.run(inp), b = cols.run(inp);
    const splits = cols.lastLaunches.filter((l) => l.kind === "kernel" && l.kernel === "silu_mul_split_bf16");
    assert.equal(splits.length, 2 * 2, `prune ${prune}: two column chunks a layer`);
    assert.equal(cols.lastLaunches.filter((l) => l.kind === "gemm" && l.n === 4096).length, 2 * 4);
    const x = new Uint32Array(a.logits.buffer), y = new Uint32Array(b.logits.buffer);
    for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) assert.fail(`prune ${prune}: logit ${i} ${a.logits[i]} vs ${b.logits[i]}`);
    assert.deepEqual(Array.from(b.ids), Array.from(a.ids));
    // A decode step of both sequences: no column chunks (decode steps keep their launches).
    const dec = step([{ ids: [7], pos: 9, blocks: [3, 4, 5] }, { ids: [8], pos: 3, blocks: [6] }], 30);
    const c = base.run(dec, false), d = cols.run(dec, false);
    assert.equal(cols.lastLaunches.filter((l) => l.kind === "kernel" && l.kernel === "silu_mul_split_bf16").length, 0);
    assert.deepEqual(Array.from(d.logits), Array.from(c.logits));
  }
  e.dispose();
});
