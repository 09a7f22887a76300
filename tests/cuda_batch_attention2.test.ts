// decode_attention_batch2 (session 7, issue 16 item 3; `batchAttention2`, on by default since session 8): decode steps of more than 8
// sequences run the per-warp-stream kernel, and FP8-KV engines take its _fp8kv_ entry point (RoPE + e4m3 KV write +
// attention in one launch) instead of rope_kv_write_fp8kv + paged_attention_decode_fp8kv (+ reduce). Checked without a
// GPU on the fake device (tests/cuda_fake_device.ts): the launches (names, blocks, grids), the same bits as the plan
// without batchAttention2 (the stand-ins compute what the kernels document), the same KV bytes, and the float32 CPU
// session within tolerance. The kernels' arithmetic: tools/cuda-kernel-check/decode_attention_batch2.py.
import { batchAttention2Threads, type KernelLaunch, usesBatchAttention } from "../lib/backends/cuda/launch_plan.ts";
import { CpuSession } from "../lib/backends/cpu/session.ts";
import { buildSync } from "../lib/builder/builder.ts";
import { quantizeSync } from "../lib/quantization/quantize.ts";
import { FakeCudaSession, maxRelDiff, randomModel, step } from "./cuda_fake_device.ts";
import { relL2, sameBits, sameKvCache } from "./cuda_fake_plans.ts";
import { assert, test } from "./harness.ts";

const RAW = {
  vocab_size: 101,
  hidden_size: 256,
  intermediate_size: 512,
  num_hidden_layers: 2,
  max_position_embeddings: 512,
  architectures: ["LlamaForCausalLM"],
  model_type: "llama",
};
const BUILD = { backend: "cuda" as const, maxBatchSize: 32, maxNumTokens: 512, maxSeqLen: 320, tokensPerBlock: 4 };

const CASES = [
  { name: "bf16 cache, head dim 64, G 4", raw: { ...RAW, num_attention_heads: 4, num_key_value_heads: 1, head_dim: 64 }, seed: 21, fp8: false },
  { name: "bf16 cache, head dim 128, G 17", raw: { ...RAW, num_attention_heads: 17, num_key_value_heads: 1, head_dim: 128 }, seed: 23, fp8: false },
  { name: "FP8 cache, head dim 64, G 2", raw: { ...RAW, num_attention_heads: 4, num_key_value_heads: 2, head_dim: 64 }, seed: 25, fp8: true },
  { name: "FP8 cache, head dim 128, G 4", raw: { ...RAW, num_attention_heads: 4, num_key_value_heads: 1, head_dim: 128 }, seed: 27, fp8: true },
];

for (const c of CASES) {
  test(`decode steps of 9–20 sequences on decode_attention_batch2: same bits as without it, and the CPU session: ${c.name}`, () => {
    const model = randomModel(c.raw, c.seed, true, 0.15);
    let bf16, f32;
    try {
      const V0 = c.raw.vocab_size;
      const calibration = [Array.from({ length: 48 }, (_, i) => (i * 29 + 5) % V0)];
      const q = c.fp8 ? quantizeSync(model, { kvCacheQuantAlgo: "FP8" }, { calibration }) : model;
      try {
        bf16 = buildSync(q, { ...BUILD, dtype: "bfloat16" });
        f32 = buildSync(q, { ...BUILD, backend: "cpu", dtype: "float32" });
      } finally {
        if (q !== model) q.close();
      }
    } finally {
      model.close();
    }
    const a = bf16.plan.attributes, V = a.vocabSize, G = c.raw.num_attention_heads / c.raw.num_key_value_heads;
    assert.equal(a.kvCache?.quantAlgo ?? null, c.fp8 ? "FP8" : null);
    const o = { batchAttention: true, gemv: true, lora: false, gemvMaxRows: 8 };
    assert.equal(usesBatchAttention(bf16.plan, "bf16", 9, o), !c.fp8, "without batchAttention2 an FP8 cache keeps the unfused path");
    assert.ok(usesBatchAttention(bf16.plan, "bf16", 9, { ...o, batchAttention2: true }));
    assert.ok(!usesBatchAttention(bf16.plan, "bf16", 8, { ...o, batchAttention2: true }));
    const numBlocks = 200;
    // 64 SMs: fewer than 2 blocks per SM, so the steps split sequence 0's 300+ keys (the merge path).
    const two = new FakeCudaSession(bf16, numBlocks, 64, false, { fusedDecode: true, batchAttention: true, batchAttention2: true });
    const ref = new FakeCudaSession(bf16, numBlocks, 64, false, { fusedDecode: true, batchAttention: true });
    const cpu = new CpuSession(f32);
    const kv = cpu.createKvCache(numBlocks);
    const lens = [300, 5, 3, 9, 2, 7, 4, 11, 6, 1, 8, 12, 3, 5, 7, 2, 9, 4, 6, 10];
    const seqs = lens.map((n, s) => ({
      ids: Array.from({ length: n }, (_, j) => (s * 31 + j * 7 + 1) % V),
      blocks: Array.from({ length: s === 0 ? 78 : 6 }, (_, j) => (s === 0 ? j : 78 + 6 * (s - 1) + j)),
    }));
    const pos = lens.map((n) => n - 1), last = seqs.map((s) => s.ids[s.ids.length - 1]);
    const want2 = `decode_attention_batch2_${c.fp8 ? "fp8kv_" : ""}bf16_hd${a.headDim}`;
    let launches2 = 0, splitLaunches = 0;
    const run = (what: string, which: number[], graphs: boolean, prefill = false): void => {
      const inp = prefill
        ? step(seqs.map((s) => ({ ids: s.ids.slice(0, -1), pos: 0, blocks: s.blocks })), 80)
        : step(which.map((s) => ({ ids: [last[s]], pos: pos[s], blocks: seqs[s].blocks })), 80);
      const want = { sampledIds: new Int32Array(which.length), logits: new Float32Array(which.length * V) };
      cpu.run(inp, want, kv);
      const got = two.run(inp, graphs), plain = ref.run(inp, graphs);
      sameBits(got.logits, plain.logits, `${what}: logits vs without batchAttention2`);
      sameKvCache(two, ref, a.numLayers, what);
      // bf16: max relative difference (as tests/cuda_batch_attention.test.ts); FP8 cache: relative L2 (as quant_fp8_cuda_kv).
      const rel = c.fp8 ? relL2(got.logits, want.logits) : maxRelDiff(got.logits, want.logits);
      assert.ok(rel < (c.fp8 ? 0.05 : 4e-2), `${what}: logits vs the CPU session (${c.fp8 ? "rel L2" : "max rel"} ${rel.toExponential(2)})`);
      const names = two.lastLaunches.filter((l): l is KernelLaunch => l.kind === "kernel").map((l) => l.kernel);
      if (!prefill && which.length > 8) {
        // RoPE + KV write inside the attention launch: no rope_kv_write, no paged decode, no reduce.
        assert.ok(!names.some((n) => n.startsWith("rope_kv_write") || n.startsWith("paged_attention_decode")), `${what}: ${names.join(" ")}`);
      }
      for (const l of two.lastLaunches) {
        if (l.kind !== "kernel" || !l.kernel.startsWith("decode_attention") || which.length <= 8) continue;
        const k = l as KernelLaunch;
        assert.equal(k.kernel, want2, what);
        assert.deepEqual([k.grid[0], k.block], [c.raw.num_key_value_heads * Math.ceil(G / 16), batchAttention2Threads(a.headDim, c.fp8)], what);
        launches2++;
        if (k.grid[2] > 1) splitLaunches++;
      }
      if (prefill) return;
      which.forEach((s, r) => {
        last[s] = got.ids[r];
        pos[s]++;
      });
    };
    const all = lens.map((_, i) => i);
    run("prefill", all, false, true);
    run("decode 0: 12 sequences, graph bucket 16", all.slice(0, 12), true);
    run("decode 1: 9 sequences, eager", all.slice(0, 9), false);
    run("decode 2: 4 sequences, graph bucket 4", all.slice(0, 4), true);
    run("decode 3: 10 sequences, graph bucket 16", all.slice(2, 12), true);
    run("decode 4: 20 sequences, eager", all, false);
    run("decode 5: 20 sequences, graph bucket 32", all, true);
    assert.equal(launches2, 5 * a.numLayers, `${want2} launches`);
    assert.ok(splitLaunches >= a.numLayers, `${splitLaunches} split launches`);
    bf16.dispose();
    f32.dispose();
  });
}
