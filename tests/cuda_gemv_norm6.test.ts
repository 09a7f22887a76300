// gemvNorm6 (issue 16 item 1, session 16): the qkv GEMV (RMSNorm prologue) of 1-2 row decode steps on gemv_fused_norm6
// (gemv_fused_norm at 6 blocks an SM; the same sums) where its grid needs a second wave at 5 blocks an SM but fits one at 6.
// Checked without a GPU on the fake device (tests/cuda_fake_device.ts): which launches the switch changes, the wave gate,
// and that the logits are the default's bits. On a GPU: tests/gpu/gemv_norm6.test.ts (bit for bit against
// gemv_fused_norm_xpre), bench/decode_gaps.ts (the step).
import type { KernelLaunch } from "../lib/backends/cuda/launch_plan.ts";
import { isPdlKernel } from "../lib/backends/cuda/kernel_signatures.ts";
import { resolveCudaFlags } from "../lib/backends/cuda/session_flags.ts";
import { buildSync } from "../lib/builder/builder.ts";
import { FakeCudaSession, randomModel, step } from "./cuda_fake_device.ts";
import { sameBits } from "./cuda_fake_plans.ts";
import { assert, test } from "./harness.ts";

test("gemvNorm6: wave-bound 1-2 row decode qkv GEMVs on gemv_fused_norm6 (the default's bits), nothing else; off by default", () => {
  assert.equal(resolveCudaFlags({}).gemvNorm6, false);
  for (const k of ["gemv_fused_norm6_bf16_m1", "gemv_fused_norm6_bf16_m2"]) assert.ok(isPdlKernel(k), `${k} waits in code: PDL`);
  const raw = {
    vocab_size: 101,
    max_position_embeddings: 2048,
    architectures: ["LlamaForCausalLM"],
    model_type: "llama",
    hidden_size: 512,
    intermediate_size: 6144,
    num_hidden_layers: 2,
    num_attention_heads: 4,
    num_key_value_heads: 1,
    head_dim: 128,
  };
  const model = randomModel(raw, 59, true, 0.1);
  let bf16;
  try {
    bf16 = buildSync(model, { backend: "cuda" as const, maxBatchSize: 4, maxNumTokens: 64, maxSeqLen: 128, tokensPerBlock: 8, dtype: "bfloat16" });
  } finally {
    model.close();
  }
  const V = bf16.plan.attributes.vocabSize;
  const opts = { fusedDecode: true, gemvSplitK: true, batchInvariant: true, gemvXPre: true };
  const gemvs = (s: FakeCudaSession): string[] =>
    s.lastLaunches.filter((l): l is KernelLaunch => l.kind === "kernel" && l.kernel.includes("gemv")).map((l) => l.kernel);
  // The wave gate: qkv's 768 rows are 96 blocks, which fit one wave at 5 blocks an SM on 132 SMs: left on _xpre.
  {
    const wide = new FakeCudaSession(bf16, 40, 132, false, { ...opts, gemvNorm6: true });
    wide.run(step([{ ids: [3, 10, 17], pos: 0, blocks: [0, 1, 2] }], 3), false);
    wide.run(step([{ ids: [24], pos: 3, blocks: [0, 1, 2] }], 3), true);
    assert.ok(!gemvs(wide).some((k) => k.includes("norm6")), `132 SMs: ${gemvs(wide).join(", ")}`);
  }
  // On 16 SMs 5 × 16 < 96 ≤ 6 × 16: qkv takes gemv_fused_norm6.
  const SMS = 16;
  const six = new FakeCudaSession(bf16, 40, SMS, false, { ...opts, gemvNorm6: true });
  const ref = new FakeCudaSession(bf16, 40, SMS, false, opts);
  for (const n of [1, 2, 3]) {
    const seqs = Array.from(
      { length: n },
      (_, s) => ({ ids: Array.from({ length: 5 + s }, (_, j) => (s * 11 + j * 7 + 3) % V), blocks: [3 * s, 3 * s + 1, 3 * s + 2] }),
    );
    const pre = step(seqs.map((s) => ({ ids: s.ids.slice(0, -1), pos: 0, blocks: s.blocks })), 3);
    sameBits(six.run(pre, false).logits, ref.run(pre, false).logits, `prefill of ${n}`);
    for (const graphs of [false, true]) {
      const inp = step(seqs.map((s) => ({ ids: [s.ids[s.ids.length - 1]], pos: s.ids.length - 1, blocks: s.blocks })), 3);
      sameBits(six.run(inp, graphs).logits, ref.run(inp, graphs).logits, `decode of ${n} (${graphs ? "graph" : "eager"})`);
      // Per layer qkv, o_proj, gate_up, down (k 6144: 2 warps a row); then the lm_head. 3+ rows (m4): unchanged.
      const x = n <= 2 ? `_xpre_bf16_m${n}` : "_bf16_m4";
      const q = n <= 2 ? `gemv_fused_norm6_bf16_m${n}` : "gemv_fused_norm" + x;
      const layer = [q, "gemv_fused" + x, "gemv_fused_norm" + x, "gemv_fused_ks" + x];
      assert.deepEqual(gemvs(six), [...layer, ...layer, "gemv_fused_norm" + x], `decode of ${n}`);
    }
  }
});
