// Decode steps of more than 8 sequences (issue 16 item 3): the fused decode plan runs the tensor-core decode
// attention kernel (decode_attention_batch) with batchDecodeSplit's geometry. Checked without a GPU on the fake
// device (tests/cuda_fake_device.ts, whose stand-ins compute what the kernels document): the launches (names,
// grids, blocks, split geometry, counters), the same bits as the fused plan on decode_attention, and the float32
// CPU session within bf16 tolerance. The kernel's arithmetic: tools/cuda-kernel-check/decode_attention_batch.py.
import { batchAttentionSplit, batchDecodeSplit, type KernelLaunch, MAX_DECODE_SPLITS, usesBatchAttention } from "../lib/backends/cuda/launch_plan.ts";
import { CpuSession } from "../lib/backends/cpu/session.ts";
import { buildSync } from "../lib/builder/builder.ts";
import { FakeCudaSession, maxRelDiff, randomModel, step } from "./cuda_fake_device.ts";
import { sameBits, sameKvCache } from "./cuda_fake_plans.ts";
import { assert, test } from "./harness.ts";

test("batchDecodeSplit: covers the span, ≥ 256-key splits, splits only below ~2 blocks per SM, within the workspace", () => {
  for (const T of [9, 16, 33, 64, 512]) {
    for (const G of [1, 4, 7, 16, 24]) {
      for (const maxLen of [1, 63, 256, 257, 4096, 131072]) {
        const { numSplits, splitSize } = batchDecodeSplit(T, 8, G, maxLen, 132);
        assert.ok(numSplits * splitSize >= maxLen && (numSplits - 1) * splitSize < maxLen, `T ${T} G ${G} len ${maxLen}: ${numSplits} × ${splitSize}`);
        assert.ok(splitSize >= 256 && splitSize % 64 === 0 && numSplits <= MAX_DECODE_SPLITS, `${numSplits} × ${splitSize}`);
        if (T * 8 * Math.ceil(G / 16) >= 264) assert.equal(numSplits, 1, `T ${T} G ${G}: no split with ≥ 2 blocks per SM`);
      }
    }
  }
  // 16 sequences of llama-3.2-1b (8 kv heads, G 4): 128 blocks → 3 splits of a 32k span.
  assert.deepEqual(batchDecodeSplit(16, 8, 4, 32768, 132), { numSplits: 3, splitSize: 10944 });
});

test("batchAttentionSplit: batch-invariant sessions split every step of more than 8 sequences at the same key ranges", () => {
  for (const [nKV, G, maxSeqLen] of [[8, 4, 288], [8, 4, 4096], [8, 4, 131072], [1, 17, 320], [2, 16, 32768]]) {
    const ref = batchAttentionSplit(9, nKV, G, maxSeqLen, maxSeqLen, 132, true);
    for (const T of [9, 16, 33, 64, 512]) {
      for (const maxLen of [1, 200, 257, maxSeqLen]) {
        if (maxLen > maxSeqLen) continue;
        const g = batchAttentionSplit(T, nKV, G, maxLen, maxSeqLen, 132, true);
        assert.equal(g.splitSize, ref.splitSize, `T ${T} len ${maxLen}: split size`);
        assert.ok(g.numSplits * g.splitSize >= maxLen && (g.numSplits - 1) * g.splitSize < Math.max(1, maxLen) && g.numSplits <= MAX_DECODE_SPLITS);
      }
    }
    // Not invariant: each step's own geometry (batchDecodeSplit).
    assert.deepEqual(batchAttentionSplit(512, nKV, G, maxSeqLen, maxSeqLen, 132, false), batchDecodeSplit(512, nKV, G, maxSeqLen, 132));
  }
});

const RAW = {
  vocab_size: 101,
  hidden_size: 256,
  intermediate_size: 512,
  num_hidden_layers: 2,
  max_position_embeddings: 512,
  architectures: ["LlamaForCausalLM"],
  model_type: "llama",
};
const MODELS = [
  { name: "head dim 64, G 4", raw: { ...RAW, num_attention_heads: 4, num_key_value_heads: 1, head_dim: 64 }, seed: 21 },
  { name: "head dim 128, G 17 (two row chunks)", raw: { ...RAW, num_attention_heads: 17, num_key_value_heads: 1, head_dim: 128 }, seed: 23 },
];

for (const m of MODELS) {
  test(`decode steps of 9–20 sequences on decode_attention_batch equal decode_attention's bits and the CPU session: ${m.name}`, () => {
    const model = randomModel(m.raw, m.seed, true, 0.15); // ~0.3 · sqrt(64 / hidden): activations of the small models' size
    const build = { backend: "cuda" as const, maxBatchSize: 32, maxNumTokens: 512, maxSeqLen: 320, tokensPerBlock: 4 };
    let bf16, f32;
    try {
      bf16 = buildSync(model, { ...build, dtype: "bfloat16" });
      f32 = buildSync(model, { ...build, dtype: "float32" });
    } finally {
      model.close();
    }
    const a = bf16.plan.attributes, V = a.vocabSize, G = m.raw.num_attention_heads / m.raw.num_key_value_heads;
    assert.ok(usesBatchAttention(bf16.plan, "bf16", 9, { batchAttention: true, gemv: true, lora: false, gemvMaxRows: 8 }));
    assert.ok(!usesBatchAttention(bf16.plan, "bf16", 8, { batchAttention: true, gemv: true, lora: false, gemvMaxRows: 8 }));
    const numBlocks = 200;
    // 64 SMs: fewer than 2 blocks per SM, so the steps split sequence 0's 300+ keys (the merge path).
    const batch = new FakeCudaSession(bf16, numBlocks, 64, false, { fusedDecode: true, batchAttention: true });
    const ref = new FakeCudaSession(bf16, numBlocks, 64, false, { fusedDecode: true });
    const cpu = new CpuSession(f32);
    const kv = cpu.createKvCache(numBlocks);
    const lens = [300, 5, 3, 9, 2, 7, 4, 11, 6, 1, 8, 12, 3, 5, 7, 2, 9, 4, 6, 10];
    const seqs = lens.map((n, s) => ({
      ids: Array.from({ length: n }, (_, j) => (s * 31 + j * 7 + 1) % V),
      blocks: Array.from({ length: s === 0 ? 78 : 6 }, (_, j) => (s === 0 ? j : 78 + 6 * (s - 1) + j)),
    }));
    const pos = lens.map((n) => n - 1), last = seqs.map((s) => s.ids[s.ids.length - 1]);
    let batchLaunches = 0, splitLaunches = 0;
    const run = (what: string, which: number[], graphs: boolean, prefill = false): void => {
      const inp = prefill
        ? step(seqs.map((s) => ({ ids: s.ids.slice(0, -1), pos: 0, blocks: s.blocks })), 80)
        : step(which.map((s) => ({ ids: [last[s]], pos: pos[s], blocks: seqs[s].blocks })), 80);
      const want = { sampledIds: new Int32Array(which.length), logits: new Float32Array(which.length * V) };
      cpu.run(inp, want, kv);
      const got = batch.run(inp, graphs), plain = ref.run(inp, graphs);
      sameBits(got.logits, plain.logits, `${what}: logits vs decode_attention`);
      sameKvCache(batch, ref, a.numLayers, what);
      const rel = maxRelDiff(got.logits, want.logits);
      assert.ok(rel < 4e-2, `${what}: logits vs the CPU session (max rel ${rel.toExponential(2)})`);
      for (const l of batch.lastLaunches) {
        if (l.kind !== "kernel" || !l.kernel.startsWith("decode_attention")) continue;
        const k = l as KernelLaunch;
        assert.equal(k.kernel, `decode_attention_batch_bf16_hd${a.headDim}`, what);
        assert.deepEqual([k.grid[0], k.block], [m.raw.num_key_value_heads * Math.ceil(G / 16), a.headDim === 128 ? 64 : 128], what);
        batchLaunches++;
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
    run("decode 2: 12 sequences, eager", all.slice(0, 12), false);
    run("decode 3: 10 sequences, graph bucket 16", all.slice(2, 12), true);
    run("decode 4: 20 sequences, eager", all, false);
    run("decode 5: 20 sequences, graph bucket 32", all, true);
    assert.equal(batchLaunches, 6 * a.numLayers, "decode_attention_batch launches");
    assert.ok(splitLaunches >= a.numLayers, `${splitLaunches} split launches`);
  });
}

test("batch-invariant decode_attention_batch: every step of 9–20 sequences, eager or graph, splits a sequence's keys at the same ranges", () => {
  const m = MODELS[0];
  const model = randomModel(m.raw, m.seed, true, 0.15);
  let bf16;
  try {
    bf16 = buildSync(model, { backend: "cuda" as const, maxBatchSize: 32, maxNumTokens: 1024, maxSeqLen: 2048, tokensPerBlock: 4, dtype: "bfloat16" });
  } finally {
    model.close();
  }
  const V = bf16.plan.attributes.vocabSize;
  // Sequence 0 attends 600 keys (more than one split); the others a few each.
  const lens = [600, ...Array.from({ length: 19 }, (_, i) => 2 + (i % 9))];
  const seqs = lens.map((n, s) => ({
    ids: Array.from({ length: n }, (_, j) => (s * 31 + j * 7 + 1) % V),
    blocks: Array.from({ length: s === 0 ? 160 : 8 }, (_, j) => (s === 0 ? j : 160 + 8 * (s - 1) + j)),
  }));
  // The split size (argument 19 of decode_attention_batch) and the logits of sequence 0 in each step.
  const geometry = (batchInvariant: boolean): { sizes: Set<number>; splits: number } => {
    const fake = new FakeCudaSession(bf16, 400, 64, false, { fusedDecode: true, batchAttention: true, batchInvariant });
    fake.run(step(seqs.map((s) => ({ ids: s.ids.slice(0, -1), pos: 0, blocks: s.blocks })), 160), false);
    const sizes = new Set<number>();
    let first: Float32Array | null = null, splits = 0;
    for (const [K, graphs] of [[9, false], [12, true], [12, false], [20, true], [20, false], [17, true]] as const) {
      const got = fake.run(step(seqs.slice(0, K).map((s, i) => ({ ids: [s.ids[lens[i] - 1]], pos: lens[i] - 1, blocks: s.blocks })), 160), graphs);
      const row0 = got.logits.slice(0, V);
      if (first) sameBits(row0, first, `sequence 0 in a step of ${K} sequences (${graphs ? "graph" : "eager"}) vs 9 (eager)`);
      first ??= row0;
      for (const l of fake.lastLaunches) {
        if (l.kind !== "kernel" || !l.kernel.startsWith("decode_attention_batch")) continue;
        sizes.add(l.args[19] as number);
        if (l.grid[2] > 1) splits++;
      }
    }
    return { sizes, splits };
  };
  const inv = geometry(true);
  assert.equal(inv.sizes.size, 1, `batch-invariant: one split size, got ${[...inv.sizes]}`);
  assert.ok(inv.splits > 0, "the span is split");
  // Without batch invariance the buckets size their own splits (graph 16: 256 keys, graph 32: 512).
  assert.ok(geometry(false).sizes.size > 1, "per-step split sizes without batch invariance");
});
