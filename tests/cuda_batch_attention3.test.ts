// decode_attention_batch3 (session 10, issues 16 / 14; `batchAttention3`, off by default): with batchAttention2, decode
// steps of more than 8 sequences run the persistent-warp kernel — a grid of one-warp blocks (batchAttention3Blocks),
// numSplits as its last argument — instead of decode_attention_batch2. Checked without a GPU on the fake device
// (tests/cuda_fake_device.ts): the launches (names, grids, blocks, arguments), the same logits and KV bytes as batch2's
// plan, eager and in graphs, with the merge path (several splits). The kernel's bits against batch2 on a GPU:
// tools/cuda-kernel-check/decode_attention_batch3.py.
import { BATCH2_WIDE_MIN_ROWS, batchAttention3Blocks, batchAttention4Threads, type KernelLaunch } from "../lib/backends/cuda/launch_plan.ts";
import { buildSync } from "../lib/builder/builder.ts";
import { quantizeSync } from "../lib/quantization/quantize.ts";
import { FakeCudaSession, randomModel, step } from "./cuda_fake_device.ts";
import { sameBits, sameKvCache } from "./cuda_fake_plans.ts";
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

test("batchAttention3Blocks: one-warp blocks per SM by head dim and cache", () => {
  assert.equal(batchAttention3Blocks(128, false, 132), 792);
  assert.equal(batchAttention3Blocks(128, true, 132), 792);
  assert.equal(batchAttention3Blocks(64, false, 132), 924);
  assert.equal(batchAttention3Blocks(64, true, 132), 1056);
});

const CASES = [
  { name: "bf16 cache, head dim 128, G 4", raw: { ...RAW, num_attention_heads: 8, num_key_value_heads: 2, head_dim: 128 }, seed: 31, fp8: false },
  { name: "FP8 cache, head dim 64, G 2", raw: { ...RAW, num_attention_heads: 4, num_key_value_heads: 2, head_dim: 64 }, seed: 33, fp8: true },
];

for (const c of CASES) {
  test(`decode steps of 9–20 sequences on decode_attention_batch3: same bits as decode_attention_batch2: ${c.name}`, () => {
    const model = randomModel(c.raw, c.seed, true, 0.15);
    let bf16;
    try {
      const V0 = c.raw.vocab_size;
      const q = c.fp8 ? quantizeSync(model, { kvCacheQuantAlgo: "FP8" }, { calibration: [Array.from({ length: 48 }, (_, i) => (i * 29 + 5) % V0)] }) : model;
      try {
        bf16 = buildSync(q, { ...BUILD, dtype: "bfloat16" });
      } finally {
        if (q !== model) q.close();
      }
    } finally {
      model.close();
    }
    const a = bf16.plan.attributes, V = a.vocabSize;
    const numBlocks = 200, blocks3 = 7;
    // 64 SMs: the steps split sequence 0's 300+ keys (the merge path).
    const opts = { fusedDecode: true, batchAttention: true, batchAttention2: true };
    const three = new FakeCudaSession(bf16, numBlocks, 64, false, { ...opts, batchAttention3Blocks: blocks3 });
    const two = new FakeCudaSession(bf16, numBlocks, 64, false, opts);
    const lens = [300, 5, 3, 9, 2, 7, 4, 11, 6, 1, 8, 12, 3, 5, 7, 2, 9, 4, 6, 10];
    const seqs = lens.map((n, s) => ({
      ids: Array.from({ length: n }, (_, j) => (s * 31 + j * 7 + 1) % V),
      blocks: Array.from({ length: s === 0 ? 78 : 6 }, (_, j) => (s === 0 ? j : 78 + 6 * (s - 1) + j)),
    }));
    const pos = lens.map((n) => n - 1), last = seqs.map((s) => s.ids[s.ids.length - 1]);
    const want3 = `decode_attention_batch3_${c.fp8 ? "fp8kv_" : ""}bf16_hd${a.headDim}`;
    let launches3 = 0, splitLaunches = 0;
    const run = (what: string, which: number[], graphs: boolean, prefill = false): void => {
      const inp = prefill
        ? step(seqs.map((s) => ({ ids: s.ids.slice(0, -1), pos: 0, blocks: s.blocks })), 80)
        : step(which.map((s) => ({ ids: [last[s]], pos: pos[s], blocks: seqs[s].blocks })), 80);
      const got = three.run(inp, graphs), ref = two.run(inp, graphs);
      sameBits(got.logits, ref.logits, `${what}: logits vs decode_attention_batch2`);
      sameKvCache(three, two, a.numLayers, what);
      for (const l of three.lastLaunches) {
        if (l.kind !== "kernel" || !l.kernel.startsWith("decode_attention")) continue;
        const k = l as KernelLaunch;
        if (which.length <= 8 || prefill) {
          assert.ok(!k.kernel.startsWith("decode_attention_batch"), `${what}: ${k.kernel}`);
          continue;
        }
        assert.equal(k.kernel, want3, what);
        assert.deepEqual([k.grid, k.block], [[blocks3, 1, 1], 32], what);
        const numSplits = k.args[k.args.length - 1] as number;
        launches3++;
        if (numSplits > 1) splitLaunches++;
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
    run("decode 3: 20 sequences, eager", all, false);
    run("decode 4: 20 sequences, graph bucket 32", all, true);
    assert.equal(launches3, 4 * a.numLayers, `${want3} launches`);
    assert.ok(splitLaunches >= a.numLayers, `${splitLaunches} split launches`);
    bf16.dispose();
  });
}

test("decode steps of BATCH2_WIDE_MIN_ROWS+ sequences on decode_attention_batch2w (batchAttention2Wide): same bits as batch2, smaller steps keep batch2", () => {
  const raw = { ...RAW, num_attention_heads: 4, num_key_value_heads: 1, head_dim: 128 };
  const model = randomModel(raw, 35, true, 0.15);
  const build = { ...BUILD, maxBatchSize: 300, maxNumTokens: 2048 };
  let bf16;
  try {
    bf16 = buildSync(model, { ...build, dtype: "bfloat16" });
  } finally {
    model.close();
  }
  const a = bf16.plan.attributes, V = a.vocabSize;
  const N = 260, per = 3, numBlocks = N * per + 8;
  const opts = { fusedDecode: true, batchAttention: true, batchAttention2: true };
  const wide = new FakeCudaSession(bf16, numBlocks, 132, false, { ...opts, batchAttention2Wide: true });
  const two = new FakeCudaSession(bf16, numBlocks, 132, false, opts);
  const lens = Array.from({ length: N }, (_, s) => 2 + (s * 7) % 9);
  const seqs = lens.map((n, s) => ({
    ids: Array.from({ length: n }, (_, j) => (s * 31 + j * 7 + 1) % V),
    blocks: Array.from({ length: per }, (_, j) => s * per + j),
  }));
  const pos = lens.map((n) => n - 1), last = seqs.map((s) => s.ids[s.ids.length - 1]);
  const seen = new Map<string, number>();
  const run = (what: string, which: number[], graphs: boolean, prefill = false): void => {
    const inp = prefill
      ? step(seqs.map((s) => ({ ids: s.ids.slice(0, -1), pos: 0, blocks: s.blocks })), per)
      : step(which.map((s) => ({ ids: [last[s]], pos: pos[s], blocks: seqs[s].blocks })), per);
    const got = wide.run(inp, graphs), ref = two.run(inp, graphs);
    sameBits(got.logits, ref.logits, `${what}: logits vs decode_attention_batch2`);
    sameKvCache(wide, two, a.numLayers, what);
    for (const l of wide.lastLaunches) {
      if (l.kind !== "kernel" || !l.kernel.startsWith("decode_attention_batch")) continue;
      const want = which.length >= BATCH2_WIDE_MIN_ROWS ? "decode_attention_batch2w_bf16_hd128" : "decode_attention_batch2_bf16_hd128";
      assert.equal(l.kernel, want, what);
      seen.set(l.kernel, (seen.get(l.kernel) ?? 0) + 1);
    }
    if (prefill) return;
    which.forEach((s, r) => {
      last[s] = got.ids[r];
      pos[s]++;
    });
  };
  const all = lens.map((_, i) => i);
  run("prefill", all, false, true);
  run("decode 0: 260 sequences, graph", all, true);
  run("decode 1: 260 sequences, eager", all, false);
  run("decode 2: 12 sequences, graph", all.slice(0, 12), true);
  assert.equal(seen.get("decode_attention_batch2w_bf16_hd128"), 2 * a.numLayers, "batch2w launches");
  assert.equal(seen.get("decode_attention_batch2_bf16_hd128"), a.numLayers, "batch2 launches");
  bf16.dispose();
});

test("batchAttention4: every decode step of more than 8 sequences on decode_attention_batch4 (8 query heads a block), over batch2w / batch3", () => {
  // G 12 over one kv head: two blocks a token (8 + 4 heads). The fake device's stand-in is every decode kernel's exact
  // attention, so the logits are batch2's here; the kernel's sums vs float64 and its batch invariance on a GPU:
  // tools/cuda-kernel-check/decode_attention_batch4.py.
  const raw = { ...RAW, hidden_size: 128, intermediate_size: 128, num_hidden_layers: 1, num_attention_heads: 12, num_key_value_heads: 1, head_dim: 64 };
  const model = randomModel(raw, 37, true, 0.15);
  let bf16;
  try {
    bf16 = buildSync(model, { ...BUILD, dtype: "bfloat16" });
  } finally {
    model.close();
  }
  const a = bf16.plan.attributes, V = a.vocabSize;
  const opts = { fusedDecode: true, batchAttention: true, batchAttention2: true };
  const four = new FakeCudaSession(bf16, 64, 4, false, { ...opts, batchAttention4: true, batchAttention2Wide: true, batchAttention3Blocks: 5 });
  const two = new FakeCudaSession(bf16, 64, 4, false, opts);
  const lens = [40, 5, 3, 9, 2, 7, 4, 11, 6, 1, 8, 12];
  const seqs = lens.map((n, s) => ({ ids: Array.from({ length: n }, (_, j) => (s * 31 + j * 7 + 1) % V), blocks: [0, 1, 2, 3, 4].map((j) => s * 5 + j) }));
  const pos = lens.map((n) => n - 1), last = seqs.map((s) => s.ids[s.ids.length - 1]);
  let launches = 0;
  const run = (what: string, which: number[], graphs: boolean, prefill = false): void => {
    const inp = prefill
      ? step(seqs.map((s) => ({ ids: s.ids.slice(0, -1), pos: 0, blocks: s.blocks })), 5)
      : step(which.map((s) => ({ ids: [last[s]], pos: pos[s], blocks: seqs[s].blocks })), 5);
    const got = four.run(inp, graphs), ref = two.run(inp, graphs);
    sameBits(got.logits, ref.logits, `${what}: logits vs decode_attention_batch2`);
    sameKvCache(four, two, a.numLayers, what);
    for (const l of four.lastLaunches) {
      if (l.kind !== "kernel" || !l.kernel.startsWith("decode_attention")) continue;
      const k = l as KernelLaunch;
      if (which.length <= 8 || prefill) {
        assert.ok(!k.kernel.startsWith("decode_attention_batch"), `${what}: ${k.kernel}`);
        continue;
      }
      assert.equal(k.kernel, "decode_attention_batch4_bf16_hd64", what);
      assert.deepEqual([k.grid[0], k.block], [2, batchAttention4Threads(64, false)], what);
      launches++;
    }
    if (prefill) return;
    which.forEach((s, r) => {
      last[s] = got.ids[r];
      pos[s]++;
    });
  };
  const all = lens.map((_, i) => i);
  run("prefill", all, false, true);
  run("decode 0: 12 sequences, graph bucket 16", all, true);
  run("decode 1: 9 sequences, eager", all.slice(0, 9), false);
  run("decode 2: 4 sequences, graph bucket 4", all.slice(0, 4), true);
  assert.equal(launches, 2 * a.numLayers, "decode_attention_batch4 launches");
  bf16.dispose();
});
