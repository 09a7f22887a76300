// decode_attention_sk (issue 16 item 1, session 7): split-K flash decoding whose key partition depends on a
// sequence's span and the split target only. Checked without a GPU: the geometry (attention_choice.ts), and on
// the fake device (tests/cuda_fake_device.ts) the launches of fused decode steps with `decodeSplitK` (kernel,
// dynamic shared memory, the same split target in every step, eager or graph, any bucket, batch-invariant or
// not) and their outputs (the same bits as decode_attention's stand-in, the CPU session within bf16 tolerance).
// The kernel's arithmetic: tools/cuda-kernel-check/decode_attention_sk.py (float64, batch invariance, on a GPU).
import {
  DECODE_SK_MIN_SPLIT,
  DECODE_SK_ONE_SPLIT,
  DECODE_SK_SMEM,
  decodeSkGeometry,
  decodeSkSplitKeys,
  decodeSplitTarget,
  gemvSplitRows,
  type KernelLaunch,
  MAX_DECODE_SPLITS,
} from "../lib/backends/cuda/launch_plan.ts";
import { CpuSession } from "../lib/backends/cpu/session.ts";
import { buildSync } from "../lib/builder/builder.ts";
import { parseSessionOptions } from "../lib/runtime/session_options.ts";
import { FakeCudaSession, maxRelDiff, randomModel, step } from "./cuda_fake_device.ts";
import { sameBits, sameKvCache } from "./cuda_fake_plans.ts";
import { assert, test } from "./harness.ts";

test("decodeSkSplitKeys / decodeSkGeometry: splits cover the span, at most the target, the grid holds every span's splits", () => {
  assert.equal(decodeSplitTarget(8, 4, 132), 33);
  assert.equal(decodeSplitTarget(2, 7, 132), MAX_DECODE_SPLITS);
  assert.equal(decodeSplitTarget(8, 16, 132), 17);
  for (const [nKV, G] of [[8, 4], [2, 7], [1, 16], [8, 1], [32, 1]]) {
    const target = decodeSplitTarget(nKV, G, 132);
    for (const maxLen of [1, 512, 513, 4096, 32832, 131072]) {
      const g = decodeSkGeometry(maxLen, nKV, G, 132);
      assert.equal(g.splitSize, target, "the target rides in splitSize");
      assert.ok(g.numSplits >= 1 && g.numSplits <= target, `grid z ${g.numSplits}`);
      for (let span = 1; span <= maxLen; span += Math.max(1, Math.floor(maxLen / 97))) {
        const sz = decodeSkSplitKeys(span, target), nz = Math.ceil(span / sz);
        assert.ok(sz >= DECODE_SK_MIN_SPLIT && sz % 64 === 0, `span ${span}: ${sz} keys per split`);
        assert.ok(nz <= target && nz <= g.numSplits, `span ${span} of ${maxLen}: ${nz} splits, target ${target}, grid ${g.numSplits}`);
        assert.ok((nz - 1) * sz < span && nz * sz >= span, `span ${span}: ${nz} × ${sz}`);
      }
    }
  }
  // llama-3.1-8b at 32k keys: 32 splits of 1024 keys (256 blocks for one sequence); up to 128 keys: one split.
  assert.equal(decodeSkSplitKeys(32768, 33), 1024);
  assert.equal(decodeSkSplitKeys(512, 33), 128);
  assert.equal(decodeSkSplitKeys(513, 33), 128);
  assert.equal(decodeSkSplitKeys(4300, 33), 192);
  // decodeSkOneSplit: spans up to 256 keys in one split (splitSize's bits 8..15 = 256 / 64), longer ones as before.
  const one = decodeSkGeometry(4096, 8, 4, 132, DECODE_SK_ONE_SPLIT);
  assert.deepEqual(one, { numSplits: 32, splitSize: 33 + (4 << 8) });
  for (const span of [1, 64, 65, 128, 129, 200, 256]) {
    const sz = decodeSkSplitKeys(span, one.splitSize);
    assert.ok(sz >= span && sz % 64 === 0 && sz - span < 64, `span ${span}: one split of ${sz}`);
  }
  for (let span = 257; span <= 4096; span += 37) {
    assert.equal(decodeSkSplitKeys(span, one.splitSize), decodeSkSplitKeys(span, 33), `span ${span}: the default partition`);
  }
  assert.throws(() => decodeSkGeometry(4096, 8, 4, 132, 100), /oneSplitKeys 100/);
});

test("gemvSplitRows: 2 or 4 warps per row for long rows only, by shape", () => {
  // llama-3.2-1b: qkv 3072 x 2048, o_proj 2048 x 2048, gate_up 16384 x 2048, down 2048 x 8192, lm_head 128256 x 2048.
  assert.deepEqual([[3072, 2048], [2048, 2048], [16384, 2048], [2048, 8192], [128256, 2048]].map(([n, k]) => gemvSplitRows(n, k)), [1, 1, 1, 2, 1]);
  // llama-3.1-8b: qkv 6144 x 4096, o_proj 4096 x 4096, gate_up 28672 x 4096, down 4096 x 14336.
  assert.deepEqual([[6144, 4096], [4096, 4096], [28672, 4096], [4096, 14336]].map(([n, k]) => gemvSplitRows(n, k)), [1, 1, 1, 4]);
  // (k / 8) % ks == 0.
  assert.equal(gemvSplitRows(100, 8200), 1);
  assert.equal(gemvSplitRows(100, 8208), 2);
});

test("decodeSplitK session option: on by default (session 9), LLMRT_DECODE_SK=0 turns it off", () => {
  const env = (globalThis as { process?: { env: Record<string, string | undefined> } }).process?.env ?? {};
  const saved = env.LLMRT_DECODE_SK;
  try {
    delete env.LLMRT_DECODE_SK;
    assert.equal(parseSessionOptions({}).decodeSplitK, true);
    env.LLMRT_DECODE_SK = "0";
    assert.equal(parseSessionOptions({}).decodeSplitK, false);
    assert.equal(parseSessionOptions({ decodeSplitK: true }).decodeSplitK, true);
  } finally {
    if (saved === undefined) delete env.LLMRT_DECODE_SK;
    else env.LLMRT_DECODE_SK = saved;
  }
});

const RAW = {
  vocab_size: 101,
  hidden_size: 256,
  intermediate_size: 512,
  num_hidden_layers: 2,
  max_position_embeddings: 2048,
  architectures: ["LlamaForCausalLM"],
  model_type: "llama",
};
const MODELS = [
  { name: "head dim 64, G 4", raw: { ...RAW, num_attention_heads: 8, num_key_value_heads: 2, head_dim: 64 }, seed: 31 },
  { name: "head dim 128, G 17 (two row chunks)", raw: { ...RAW, num_attention_heads: 17, num_key_value_heads: 1, head_dim: 128 }, seed: 37 },
];

for (const m of MODELS) {
  for (const [batchInvariant, one] of m.raw.head_dim === 64 ? [[true, false], [false, false], [true, true]] : [[true, true]]) {
    test(`decode steps of 1–8 sequences on decode_attention_sk: ${m.name}, batchInvariant ${batchInvariant}${one ? ", decodeSkOneSplit" : ""}`, () => {
      const model = randomModel(m.raw, m.seed, true, 0.15);
      const build = { backend: "cuda" as const, maxBatchSize: 8, maxNumTokens: 640, maxSeqLen: 1024, tokensPerBlock: 8 };
      let bf16, f32;
      try {
        bf16 = buildSync(model, { ...build, dtype: "bfloat16" });
        f32 = buildSync(model, { ...build, dtype: "float32" });
      } finally {
        model.close();
      }
      const a = bf16.plan.attributes, V = a.vocabSize, G = m.raw.num_attention_heads / m.raw.num_key_value_heads;
      const numBlocks = 120;
      const sk = new FakeCudaSession(bf16, numBlocks, 132, false, { fusedDecode: true, decodeSplitK: true, batchInvariant, decodeSkOneSplit: one });
      const ref = new FakeCudaSession(bf16, numBlocks, 132, false, { fusedDecode: true, batchInvariant });
      const cpu = new CpuSession(f32);
      const kv = cpu.createKvCache(numBlocks);
      // Sequence 0 attends 300+ keys (3 splits of 128: the merge path), the others a few (one split; up to 256 keys with
      // decodeSkOneSplit).
      const lens = [300, 5, 3, 9, 2, 7, 4, 11];
      const seqs = lens.map((n, s) => ({
        ids: Array.from({ length: n }, (_, j) => (s * 31 + j * 7 + 1) % V),
        blocks: Array.from({ length: s === 0 ? 80 : 4 }, (_, j) => (s === 0 ? j : 80 + 4 * (s - 1) + j)),
      }));
      const pos = lens.map((n) => n - 1), last = seqs.map((s) => s.ids[s.ids.length - 1]);
      // the split target, with decodeSkOneSplit's span / 64 in bits 8..15
      const target = decodeSplitTarget(m.raw.num_key_value_heads, G, 132) | (one ? (DECODE_SK_ONE_SPLIT / 64) << 8 : 0);
      let skLaunches = 0;
      const run = (what: string, which: number[], graphs: boolean, prefill = false): void => {
        const inp = prefill
          ? step(seqs.map((s) => ({ ids: s.ids.slice(0, -1), pos: 0, blocks: s.blocks })), 80)
          : step(which.map((s) => ({ ids: [last[s]], pos: pos[s], blocks: seqs[s].blocks })), 80);
        const want = { sampledIds: new Int32Array(which.length), logits: new Float32Array(which.length * V) };
        cpu.run(inp, want, kv);
        const got = sk.run(inp, graphs), plain = ref.run(inp, graphs);
        sameBits(got.logits, plain.logits, `${what}: logits vs decode_attention`);
        sameKvCache(sk, ref, a.numLayers, what);
        const rel = maxRelDiff(got.logits, want.logits);
        assert.ok(rel < 4e-2, `${what}: logits vs the CPU session (max rel ${rel.toExponential(2)})`);
        for (const l of sk.lastLaunches) {
          if (l.kind !== "kernel" || !l.kernel.startsWith("decode_attention")) continue;
          const k = l as KernelLaunch;
          assert.equal(k.kernel, `decode_attention_sk_bf16_hd${a.headDim}`, what);
          assert.deepEqual([k.grid[0], k.block, k.sharedBytes], [m.raw.num_key_value_heads * Math.ceil(G / 8), 128, DECODE_SK_SMEM], what);
          assert.equal(k.args[19], target, `${what}: the split target is the same in every step`);
          const maxLen = graphs ? sk.maxSeqLen : Math.max(...which.map((s) => pos[s] + 1));
          assert.equal(k.grid[2], decodeSkGeometry(maxLen, m.raw.num_key_value_heads, G, 132).numSplits, `${what}: grid z`);
          skLaunches++;
        }
        if (prefill) return;
        which.forEach((s, r) => {
          last[s] = got.ids[r];
          pos[s]++;
        });
      };
      const all = lens.map((_, i) => i);
      run("prefill", all, false, true);
      run("decode 0: 8 sequences, graph bucket 8", all, true);
      run("decode 1: 1 sequence, eager", [0], false);
      run("decode 2: 1 sequence, graph bucket 1", [0], true);
      run("decode 3: 3 sequences, graph bucket 4", [0, 3, 5], true);
      run("decode 4: 5 sequences, eager", all.slice(0, 5), false);
      assert.equal(skLaunches, 5 * a.numLayers, "decode_attention_sk launches");
    });
  }
}

test("gemvSplitK: long-row fused decode GEMVs on gemv_fused_ks (same outputs on the fake device, ks in the mode bits)", () => {
  const raw = { ...RAW, hidden_size: 1024, intermediate_size: 6144, num_hidden_layers: 1, num_attention_heads: 8, num_key_value_heads: 2, head_dim: 128 };
  const model = randomModel(raw, 41, true, 0.1);
  let bf16;
  try {
    bf16 = buildSync(model, { backend: "cuda" as const, maxBatchSize: 4, maxNumTokens: 64, maxSeqLen: 128, tokensPerBlock: 8, dtype: "bfloat16" });
  } finally {
    model.close();
  }
  const V = bf16.plan.attributes.vocabSize;
  const ks = new FakeCudaSession(bf16, 40, 132, false, { fusedDecode: true, gemvSplitK: true, batchInvariant: true });
  const ref = new FakeCudaSession(bf16, 40, 132, false, { fusedDecode: true, batchInvariant: true });
  const seqs = [5, 9, 3].map((n, s) => ({ ids: Array.from({ length: n }, (_, j) => (s * 13 + j * 5 + 2) % V), blocks: [3 * s, 3 * s + 1, 3 * s + 2] }));
  const pre = step(seqs.map((s) => ({ ids: s.ids.slice(0, -1), pos: 0, blocks: s.blocks })), 3);
  sameBits(ks.run(pre, false).logits, ref.run(pre, false).logits, "prefill");
  for (const graphs of [false, true]) {
    const inp = step(seqs.map((s) => ({ ids: [s.ids[s.ids.length - 1]], pos: s.ids.length - 1, blocks: s.blocks })), 3);
    sameBits(ks.run(inp, graphs).logits, ref.run(inp, graphs).logits, `decode (${graphs ? "graph" : "eager"})`);
    const names = ks.lastLaunches.filter((l) => l.kind === "kernel" && l.kernel.startsWith("gemv_fused")).map((l) => (l as KernelLaunch).kernel);
    // Rows of 1024 (qkv, o_proj, gate_up, lm_head): one warp; down (k 6144): 2 warps per row.
    assert.deepEqual(names, ["gemv_fused_norm_bf16_m4", "gemv_fused_bf16_m4", "gemv_fused_norm_bf16_m4", "gemv_fused_ks_bf16_m4", "gemv_fused_norm_bf16_m4"]);
    const modes = ks.lastLaunches.filter((l) => l.kind === "kernel" && l.kernel.startsWith("gemv_fused")).map((l) => (l as KernelLaunch).args[9] as number);
    assert.deepEqual(modes.map((m) => m >> 4), [0, 0, 0, 2, 0]);
  }
});
