// gemvTma (issue 16 item 1, session 12): with gemvXPre, fused bf16 decode GEMVs of 1-2 rows (not the lm_head) on
// gemv_fused*_tma (each warp's weight row slice bulk-copied into dynamic shared memory before pdlWait). Checked without a
// GPU on the fake device (tests/cuda_fake_device.ts): which launches the switch changes, their shared memory, and that the
// logits are the default's bits. On a GPU: tests/gpu/gemv_tma.test.ts and bench/decode_pdl.ts --ab '{"gemvTma":true}'.
import type { KernelLaunch } from "../lib/backends/cuda/launch_plan.ts";
import { resolveCudaFlags } from "../lib/backends/cuda/session_flags.ts";
import { buildSync } from "../lib/builder/builder.ts";
import { FakeCudaSession, randomModel, step } from "./cuda_fake_device.ts";
import { sameBits } from "./cuda_fake_plans.ts";
import { assert, test } from "./harness.ts";

test("gemvTma: 1-2 row decode GEMVs but the lm_head on gemv_fused*_tma (the default's bits), 3+ rows unchanged; off by default", () => {
  assert.equal(resolveCudaFlags({}).gemvTma, false);
  const raw = {
    vocab_size: 101,
    max_position_embeddings: 2048,
    architectures: ["LlamaForCausalLM"],
    model_type: "llama",
    hidden_size: 512,
    intermediate_size: 6144,
    num_hidden_layers: 1,
    num_attention_heads: 4,
    num_key_value_heads: 1,
    head_dim: 128,
  };
  const model = randomModel(raw, 47, true, 0.1);
  let bf16;
  try {
    bf16 = buildSync(model, { backend: "cuda" as const, maxBatchSize: 4, maxNumTokens: 64, maxSeqLen: 128, tokensPerBlock: 8, dtype: "bfloat16" });
  } finally {
    model.close();
  }
  const V = bf16.plan.attributes.vocabSize;
  const opts = { fusedDecode: true, gemvSplitK: true, batchInvariant: true, gemvXPre: true };
  const tma = new FakeCudaSession(bf16, 40, 132, false, { ...opts, gemvTma: true });
  const ref = new FakeCudaSession(bf16, 40, 132, false, opts);
  for (const n of [1, 2, 3]) {
    const seqs = Array.from(
      { length: n },
      (_, s) => ({ ids: Array.from({ length: 5 + s }, (_, j) => (s * 11 + j * 7 + 3) % V), blocks: [3 * s, 3 * s + 1, 3 * s + 2] }),
    );
    const pre = step(seqs.map((s) => ({ ids: s.ids.slice(0, -1), pos: 0, blocks: s.blocks })), 3);
    sameBits(tma.run(pre, false).logits, ref.run(pre, false).logits, `prefill of ${n}`);
    for (const graphs of [false, true]) {
      const inp = step(seqs.map((s) => ({ ids: [s.ids[s.ids.length - 1]], pos: s.ids.length - 1, blocks: s.blocks })), 3);
      sameBits(tma.run(inp, graphs).logits, ref.run(inp, graphs).logits, `decode of ${n} (${graphs ? "graph" : "eager"})`);
      const gemvs = tma.lastLaunches.filter((l): l is KernelLaunch => l.kind === "kernel" && l.kernel.includes("gemv"));
      // qkv, o_proj, gate_up, down (k 6144: 2 warps a row), the lm_head (_xpre); 3+ rows (m4) have neither form.
      const names = ["gemv_fused_norm", "gemv_fused", "gemv_fused_norm", "gemv_fused_ks", "gemv_fused_norm"];
      const tags = n <= 2 ? [..."tttt"].map(() => `_tma_bf16_m${n}`).concat(`_xpre_bf16_m${n}`) : names.map(() => "_bf16_m4");
      assert.deepEqual(gemvs.map((l) => l.kernel), names.map((b, i) => b + tags[i]));
      // 8 warp slots of the slice's head: all of k 512 (qkv, o_proj, gate_up), 256 of down's 384 vectors (6144 / 2)
      assert.deepEqual(gemvs.map((l) => l.sharedBytes ?? 0), n <= 2 ? [8192, 8192, 8192, 8 * 256 * 16, 0] : [0, 0, 0, 0, 0]);
    }
  }
});

test("gemvOccupancy: one-row decode GEMVs but the lm_head on gemv_fused*_occ (the default's bits), 2+ rows unchanged; off by default", () => {
  assert.equal(resolveCudaFlags({}).gemvOccupancy, false);
  const raw = {
    vocab_size: 101,
    max_position_embeddings: 2048,
    architectures: ["LlamaForCausalLM"],
    model_type: "llama",
    hidden_size: 512,
    intermediate_size: 6144,
    num_hidden_layers: 1,
    num_attention_heads: 4,
    num_key_value_heads: 1,
    head_dim: 128,
  };
  const model = randomModel(raw, 49, true, 0.1);
  let bf16;
  try {
    bf16 = buildSync(model, { backend: "cuda" as const, maxBatchSize: 4, maxNumTokens: 64, maxSeqLen: 128, tokensPerBlock: 8, dtype: "bfloat16" });
  } finally {
    model.close();
  }
  const V = bf16.plan.attributes.vocabSize;
  const opts = { fusedDecode: true, gemvSplitK: true, batchInvariant: true, gemvXPre: true };
  const occ = new FakeCudaSession(bf16, 40, 132, false, { ...opts, gemvOccupancy: true });
  const ref = new FakeCudaSession(bf16, 40, 132, false, opts);
  for (const n of [1, 2]) {
    const seqs = Array.from(
      { length: n },
      (_, s) => ({ ids: Array.from({ length: 5 + s }, (_, j) => (s * 11 + j * 7 + 3) % V), blocks: [3 * s, 3 * s + 1, 3 * s + 2] }),
    );
    const pre = step(seqs.map((s) => ({ ids: s.ids.slice(0, -1), pos: 0, blocks: s.blocks })), 3);
    sameBits(occ.run(pre, false).logits, ref.run(pre, false).logits, `prefill of ${n}`);
    for (const graphs of [false, true]) {
      const inp = step(seqs.map((s) => ({ ids: [s.ids[s.ids.length - 1]], pos: s.ids.length - 1, blocks: s.blocks })), 3);
      sameBits(occ.run(inp, graphs).logits, ref.run(inp, graphs).logits, `decode of ${n} (${graphs ? "graph" : "eager"})`);
      const names = occ.lastLaunches.filter((l): l is KernelLaunch => l.kind === "kernel" && l.kernel.includes("gemv")).map((l) => l.kernel);
      const tag = n === 1 ? "_occ_bf16_m1" : "_xpre_bf16_m2";
      const base = ["gemv_fused_norm", "gemv_fused", "gemv_fused_norm", "gemv_fused_ks"];
      assert.deepEqual(names, [...base.map((b) => b + tag), `gemv_fused_norm_xpre_bf16_m${n}`]);
    }
  }
});
