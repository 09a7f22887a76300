// sampleSplit (issue 16 item 1, session 17): the sampler's greedy rows take their argmax over SAMPLE_SPLITS blocks
// (sample_split_f32; sampled rows keep sample_f32's one-block path). Checked without a GPU on the fake device
// (tests/cuda_fake_device.ts, whose stand-in is sampleRow for both kernels): the launch it changes, its signature and PDL,
// the ids of greedy and sampled rows equal to the default's, off by default. On a GPU: tests/gpu/sample_split.test.ts
// (against sample_f32: ties, -0, NaN, -inf rows, vocab not a multiple of 4 or of the split), bench/decode_gaps.ts (the step).
import type { KernelLaunch } from "../lib/backends/cuda/launch_plan.ts";
import { isPdlKernel, kernelSignature } from "../lib/backends/cuda/kernel_signatures.ts";
import { SAMPLE_SPLITS } from "../lib/backends/cuda/sample_launch.ts";
import { resolveCudaFlags } from "../lib/backends/cuda/session_flags.ts";
import { buildSync } from "../lib/builder/builder.ts";
import { FakeCudaSession, randomModel, step } from "./cuda_fake_device.ts";
import { assert, test } from "./harness.ts";

test("sampleSplit: the step's sampler on sample_split_f32 (grid rows × SAMPLE_SPLITS), the default's ids; off by default", () => {
  assert.equal(resolveCudaFlags({}).sampleSplit, false);
  assert.ok(isPdlKernel("sample_split_f32"), "sample_split_f32 waits at its entry: PDL");
  assert.equal(kernelSignature("sample_split_f32").params.length, 11);
  const raw = {
    vocab_size: 101,
    max_position_embeddings: 2048,
    architectures: ["LlamaForCausalLM"],
    model_type: "llama",
    hidden_size: 64,
    intermediate_size: 128,
    num_hidden_layers: 1,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    head_dim: 16,
  };
  const model = randomModel(raw, 61, true, 0.3);
  let engine;
  try {
    engine = buildSync(model, { backend: "cuda" as const, maxBatchSize: 4, maxNumTokens: 64, maxSeqLen: 64, tokensPerBlock: 8, dtype: "bfloat16" });
  } finally {
    model.close();
  }
  const V = engine.plan.attributes.vocabSize;
  const opts = { fusedDecode: true, gemvSplitK: true, batchInvariant: true, gemvXPre: true };
  const split = new FakeCudaSession(engine, 40, 16, false, { ...opts, sampleSplit: true });
  const ref = new FakeCudaSession(engine, 40, 16, false, opts);
  const samplers = (s: FakeCudaSession): KernelLaunch[] =>
    s.lastLaunches.filter((l): l is KernelLaunch => l.kind === "kernel" && l.kernel.startsWith("sample"));
  for (const n of [1, 2, 3]) { // rows alternate greedy / temperature 0.8 (step()'s sampling inputs)
    const seqs = Array.from({ length: n }, (_, s) => ({ ids: Array.from({ length: 4 + s }, (_, j) => (s * 13 + j * 5 + 2) % V), blocks: [2 * s, 2 * s + 1] }));
    const pre = step(seqs.map((s) => ({ ids: s.ids.slice(0, -1), pos: 0, blocks: s.blocks })), 2);
    assert.deepEqual([...split.run(pre, false).ids], [...ref.run(pre, false).ids], `prefill of ${n}`);
    for (const graphs of [false, true]) {
      const inp = step(seqs.map((s) => ({ ids: [s.ids[s.ids.length - 1]], pos: s.ids.length - 1, blocks: s.blocks })), 2);
      assert.deepEqual([...split.run(inp, graphs).ids], [...ref.run(inp, graphs).ids], `decode of ${n} (${graphs ? "graph" : "eager"})`);
      const [l] = samplers(split);
      assert.equal(l.kernel, "sample_split_f32");
      assert.ok(l.grid[0] >= n && l.grid[1] === SAMPLE_SPLITS, `grid ${l.grid}`); // a graph's bucket may hold more rows
      assert.equal(samplers(ref)[0].kernel, "sample_f32");
    }
  }
});
