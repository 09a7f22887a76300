// gemvXPre (issue 16 item 1, session 11): fused bf16 decode GEMVs of 1-2 rows on gemv_fused*_xpre (a chunk's x vectors
// loaded with its weight vectors). Checked without a GPU on the fake device (tests/cuda_fake_device.ts): which launches
// the switch changes and that the logits are the default's bits. The kernels' sums bit for bit against gemv_fused(_ks):
// tools/cuda-kernel-check/gemv_ks_emu.py (CPU emulation); on a GPU: bench/decode_pdl.ts --ab '{"gemvXPre":true}'.
import type { KernelLaunch } from "../lib/backends/cuda/launch_plan.ts";
import { resolveCudaFlags } from "../lib/backends/cuda/session_flags.ts";
import { buildSync } from "../lib/builder/builder.ts";
import { FakeCudaSession, randomModel, step } from "./cuda_fake_device.ts";
import { sameBits } from "./cuda_fake_plans.ts";
import { assert, test } from "./harness.ts";

test("gemvXPre: 1-2 row decode GEMVs on gemv_fused*_xpre (the default's bits), 3+ rows unchanged; on by default (session 11)", () => {
  assert.equal(resolveCudaFlags({}).gemvXPre, true);
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
  const opts = { fusedDecode: true, gemvSplitK: true, batchInvariant: true };
  const xp = new FakeCudaSession(bf16, 40, 132, false, { ...opts, gemvXPre: true });
  const ref = new FakeCudaSession(bf16, 40, 132, false, opts);
  for (const n of [1, 2, 3]) {
    const seqs = Array.from(
      { length: n },
      (_, s) => ({ ids: Array.from({ length: 5 + s }, (_, j) => (s * 11 + j * 7 + 3) % V), blocks: [3 * s, 3 * s + 1, 3 * s + 2] }),
    );
    const pre = step(seqs.map((s) => ({ ids: s.ids.slice(0, -1), pos: 0, blocks: s.blocks })), 3);
    sameBits(xp.run(pre, false).logits, ref.run(pre, false).logits, `prefill of ${n}`);
    for (const graphs of [false, true]) {
      const inp = step(seqs.map((s) => ({ ids: [s.ids[s.ids.length - 1]], pos: s.ids.length - 1, blocks: s.blocks })), 3);
      sameBits(xp.run(inp, graphs).logits, ref.run(inp, graphs).logits, `decode of ${n} (${graphs ? "graph" : "eager"})`);
      const names = xp.lastLaunches.filter((l): l is KernelLaunch => l.kind === "kernel" && l.kernel.includes("gemv")).map((l) => l.kernel);
      // qkv, o_proj, gate_up, down (k 6144: 2 warps a row), the lm_head; 3+ rows (m4) have no _xpre form.
      const tag = n <= 2 ? `_xpre_bf16_m${n}` : "_bf16_m4";
      assert.deepEqual(names, ["gemv_fused_norm", "gemv_fused", "gemv_fused_norm", "gemv_fused_ks", "gemv_fused_norm"].map((b) => b + tag));
    }
  }
});
