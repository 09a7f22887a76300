// gemmResidual (lib/backends/cuda/launch_plan.ts, session switch): in prefill and mixed steps the o_proj / down_proj
// cuBLASLt GEMMs add into the residual stream in their epilogue (C = D = residual, beta 1) and the add_rmsnorm after
// each becomes an rmsnorm; the last layer's add is dropped. On the fake device: float32 engines give the same logits
// bits (one f32 rounding either way), bf16 engines logits within bf16 rounding of the residual; decode steps and
// LoRA steps keep their launches; pruning and batches of sequences still agree with single runs.
import { buildSync } from "../lib/builder/builder.ts";
import type { Engine } from "../lib/builder/engine.ts";
import type { Launch } from "../lib/backends/cuda/launch_plan.ts";
import { FakeCudaSession, randomModel, step } from "./cuda_fake_device.ts";
import { assert, test } from "./harness.ts";

const LLAMA = {
  vocab_size: 101,
  hidden_size: 64,
  intermediate_size: 96,
  num_hidden_layers: 3,
  max_position_embeddings: 256,
  architectures: ["LlamaForCausalLM"],
  model_type: "llama",
  num_attention_heads: 4,
  num_key_value_heads: 1,
  head_dim: 64,
};

function engineOf(dtype: "float32" | "bfloat16"): Engine {
  const model = randomModel(LLAMA, 7);
  try {
    return buildSync(model, { backend: "cuda", dtype, maxBatchSize: 6, maxNumTokens: 64, maxSeqLen: 96, tokensPerBlock: 4 });
  } finally {
    model.close();
  }
}

const kernels = (ls: readonly Launch[], prefix: string): number => ls.filter((l) => l.kind === "kernel" && l.kernel.startsWith(prefix)).length;
const relL2 = (a: Float32Array, b: Float32Array): number => {
  let num = 0, den = 0;
  for (let i = 0; i < a.length; i++) {
    num += (a[i] - b[i]) ** 2;
    den += b[i] ** 2;
  }
  return Math.sqrt(num / den);
};
const argmaxRow = (x: Float32Array, r: number, V: number): number => {
  let best = r * V;
  for (let i = r * V; i < (r + 1) * V; i++) if (x[i] > x[best]) best = i;
  return best - r * V;
};

for (const dtype of ["float32", "bfloat16"] as const) {
  test(`gemmResidual: prefill launches add in the GEMM, logits as the separate add (${dtype})`, () => {
    const e = engineOf(dtype);
    const numBlocks = 40;
    const V = e.plan.attributes.vocabSize, L = e.plan.attributes.numLayers;
    for (const prune of [false, true]) {
      const base = new FakeCudaSession(e, numBlocks, 132, false, { batchInvariant: true, pruneLastLayer: prune });
      const fused = new FakeCudaSession(e, numBlocks, 132, false, { batchInvariant: true, pruneLastLayer: prune, gemmResidual: true });
      const seqs = [
        { ids: [1, 5, 9, 33, 2, 7, 8, 21, 14], pos: 0, blocks: [3, 4, 5] },
        { ids: [4, 4, 90], pos: 0, blocks: [6] },
      ];
      const inp = step(seqs, 30);
      const a = base.run(inp), b = fused.run(inp);
      const ls = fused.lastLaunches;
      const withC = ls.filter((l) => l.kind === "gemm" && l.c !== undefined);
      assert.equal(withC.length, 2 * L, `prune ${prune}: o_proj and down_proj of every layer add in the GEMM`);
      for (const l of withC) if (l.kind === "gemm") assert.equal(l.c, l.d, "C is D: the residual, in place");
      assert.equal(kernels(ls, "add_rmsnorm"), 0, "no add_rmsnorm left");
      assert.equal(kernels(ls, "add_inplace"), 0, "the last layer's add dropped");
      assert.equal(kernels(base.lastLaunches, "add_rmsnorm"), 2 * L - 1);
      // One rmsnorm per norm: the first layer's input norm, 2 L - 1 former add_rmsnorms, the final norm.
      assert.equal(kernels(ls, "rmsnorm"), 2 * L + 1);
      if (dtype === "float32") {
        const x = new Uint32Array(a.logits.buffer), y = new Uint32Array(b.logits.buffer);
        for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) assert.fail(`prune ${prune}: f32 logit ${i} ${a.logits[i]} vs ${b.logits[i]}`);
      } else {
        const r = relL2(b.logits, a.logits);
        assert.ok(r < 2e-2, `prune ${prune}: bf16 logits rel L2 ${r.toExponential(2)} vs the separate add`);
        for (let row = 0; row < 2; row++) assert.equal(argmaxRow(b.logits, row, V), argmaxRow(a.logits, row, V), `row ${row} argmax`);
      }
      // Decode steps keep their launches (the fused decode path, its own epilogues).
      const dec = step(seqs.map((s) => ({ ids: [11], pos: s.ids.length, blocks: s.blocks })), 30);
      base.run(dec);
      fused.run(dec);
      assert.equal(fused.lastLaunches.filter((l) => l.kind === "gemm" && l.c !== undefined).length, 0, "decode: no residual GEMMs");
    }
  });
}

test("gemmResidual: a sequence's logits in a batch are the bits of its single run (bf16, batch-invariant, pruned)", () => {
  const e = engineOf("bfloat16");
  const V = e.plan.attributes.vocabSize;
  const one = new FakeCudaSession(e, 40, 132, false, { batchInvariant: true, gemmResidual: true });
  const many = new FakeCudaSession(e, 40, 132, false, { batchInvariant: true, gemmResidual: true });
  const s0 = { ids: [1, 5, 9, 33, 2, 7, 8], pos: 0, blocks: [3, 4] };
  const s1 = { ids: [12, 40, 41, 90, 3], pos: 0, blocks: [8, 9] };
  const alone = one.run(step([s0], 30));
  const both = many.run(step([s1, s0], 30));
  const x = new Uint32Array(alone.logits.buffer), y = new Uint32Array(both.logits.buffer, V * 4, V);
  for (let i = 0; i < V; i++) if (x[i] !== y[i]) assert.fail(`logit ${i}: ${alone.logits[i]} alone vs ${both.logits[V + i]} in the batch`);
});
