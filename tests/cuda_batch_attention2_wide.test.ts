// decode_attention_batch2w (session 10, issues 16 / 14; `batchAttention2Wide`): with batchAttention2, decode steps of at
// least BATCH2_WIDE_MIN_ROWS sequences over a bf16 cache at head dim 128 run batch2's kernel with 1 cp.async stage a warp
// and 8 blocks per SM. Checked without a GPU on the fake device (tests/cuda_fake_device.ts): the launches, the same
// logits and KV bytes as batch2's plan, eager and in graphs; smaller steps keep batch2.
import { BATCH2_WIDE_MIN_ROWS, batchAttention4Threads, type KernelLaunch } from "../lib/backends/cuda/launch_plan.ts";
import { buildSync } from "../lib/builder/builder.ts";
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

test("batchAttention4: every decode step of more than 8 sequences on decode_attention_batch4 (8 query heads a block), over batch2w", () => {
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
  const four = new FakeCudaSession(bf16, 64, 4, false, { ...opts, batchAttention4: true, batchAttention2Wide: true });
  const two = new FakeCudaSession(bf16, 64, 4, false, opts);
  // batchAttention4X (session 17): decode_attention_batch4x_*, the same grid and bits (on a GPU: tests/gpu/batch_attention4x.test.ts).
  const x = new FakeCudaSession(bf16, 64, 4, false, { ...opts, batchAttention4: true, batchAttention4X: true });
  const lens = [40, 5, 3, 9, 2, 7, 4, 11, 6, 1, 8, 12];
  const seqs = lens.map((n, s) => ({ ids: Array.from({ length: n }, (_, j) => (s * 31 + j * 7 + 1) % V), blocks: [0, 1, 2, 3, 4].map((j) => s * 5 + j) }));
  const pos = lens.map((n) => n - 1), last = seqs.map((s) => s.ids[s.ids.length - 1]);
  let launches = 0;
  const run = (what: string, which: number[], graphs: boolean, prefill = false): void => {
    const inp = prefill
      ? step(seqs.map((s) => ({ ids: s.ids.slice(0, -1), pos: 0, blocks: s.blocks })), 5)
      : step(which.map((s) => ({ ids: [last[s]], pos: pos[s], blocks: seqs[s].blocks })), 5);
    const got = four.run(inp, graphs), ref = two.run(inp, graphs), gx = x.run(inp, graphs);
    sameBits(got.logits, ref.logits, `${what}: logits vs decode_attention_batch2`);
    sameBits(gx.logits, got.logits, `${what}: batchAttention4X logits vs batch4`);
    for (const l of x.lastLaunches) {
      if (l.kind !== "kernel" || !l.kernel.startsWith("decode_attention_batch")) continue;
      assert.equal(l.kernel, "decode_attention_batch4x_bf16_hd64", what);
      assert.deepEqual([(l as KernelLaunch).grid[0], (l as KernelLaunch).block], [2, batchAttention4Threads(64, false)], what);
    }
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
