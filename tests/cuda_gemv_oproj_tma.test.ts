// gemvOprojTma (issue 16 item 1, session 16): the fused GEMV after the decode attention (o_proj) of 1-2 row decode steps
// on gemv_fused_tma_xpre (half its row bulk-copied into shared memory before the PDL wait; the same sums as _xpre).
// Checked without a GPU on the fake device (tests/cuda_fake_device.ts): which launches the switch changes and that the
// logits are the default's bits. On a GPU: tests/gpu/gemv_oproj_tma.test.ts, bench/decode_gaps.ts.
import type { KernelLaunch } from "../lib/backends/cuda/launch_plan.ts";
import { isPdlKernel } from "../lib/backends/cuda/kernel_signatures.ts";
import { resolveCudaFlags } from "../lib/backends/cuda/session_flags.ts";
import { buildSync } from "../lib/builder/builder.ts";
import { FakeCudaSession, randomModel, step } from "./cuda_fake_device.ts";
import { sameBits } from "./cuda_fake_plans.ts";
import { assert, test } from "./harness.ts";

test("gemvOprojTma: 1-2 row decode steps' o_proj on gemv_fused_tma_xpre (the default's bits), nothing else changes; off by default", () => {
  assert.equal(resolveCudaFlags({}).gemvOprojTma, false);
  assert.ok(isPdlKernel("gemv_fused_tma_xpre_bf16_m1") && isPdlKernel("gemv_fused_tma_xpre_bf16_m2"), "it waits in code: PDL as _xpre");
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
  const model = randomModel(raw, 53, true, 0.1);
  let bf16;
  try {
    bf16 = buildSync(model, { backend: "cuda" as const, maxBatchSize: 4, maxNumTokens: 64, maxSeqLen: 128, tokensPerBlock: 8, dtype: "bfloat16" });
  } finally {
    model.close();
  }
  const V = bf16.plan.attributes.vocabSize;
  const opts = { fusedDecode: true, gemvSplitK: true, batchInvariant: true, gemvXPre: true };
  const tma = new FakeCudaSession(bf16, 40, 132, false, { ...opts, gemvOprojTma: true });
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
      const names = tma.lastLaunches.filter((l): l is KernelLaunch => l.kind === "kernel" && l.kernel.includes("gemv")).map((l) => l.kernel);
      // Per layer qkv, o_proj, gate_up, down (k 6144: 2 warps a row); then the lm_head. 3+ rows (m4): no _xpre / _tma form.
      const tag = n <= 2 ? `_xpre_bf16_m${n}` : "_bf16_m4";
      const o = n <= 2 ? "gemv_fused_tma" : "gemv_fused";
      const layer = ["gemv_fused_norm", o, "gemv_fused_norm", "gemv_fused_ks"];
      assert.deepEqual(names, [...layer, ...layer, "gemv_fused_norm"].map((b) => b + tag));
    }
  }
});
