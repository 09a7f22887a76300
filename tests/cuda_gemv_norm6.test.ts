// gemvNorm6 / gemvNorm6Mlp / gemvKs6 / gemvOprojL2 (issue 16 item 1, session 16): the RMSNorm-prologue GEMVs of 1-2 row
// decode steps (qkv; gate_up and the lm_head) on gemv_fused_norm6, one-row split-row GEMVs (down) on gemv_fused_ks6 (6
// blocks an SM), o_proj on gemv_fused_pf_xpre (its rows pulled into L2 before the PDL wait); the same sums. Checked without a GPU on the fake device (tests/cuda_fake_device.ts): which launches each switch changes and
// that the logits are the default's bits. On a GPU: tests/gpu/gemv_norm6.test.ts (bit for bit against the _xpre forms),
// bench/decode_gaps.ts (the step).
import type { KernelLaunch } from "../lib/backends/cuda/launch_plan.ts";
import { isPdlKernel } from "../lib/backends/cuda/kernel_signatures.ts";
import { resolveCudaFlags } from "../lib/backends/cuda/session_flags.ts";
import { buildSync } from "../lib/builder/builder.ts";
import { FakeCudaSession, randomModel, step } from "./cuda_fake_device.ts";
import { sameBits } from "./cuda_fake_plans.ts";
import { assert, test } from "./harness.ts";

test("gemvNorm6 / gemvNorm6Mlp / gemvKs6 / gemvOprojL2: decode steps' GEMVs on their new entry points (the default's bits); off by default", () => {
  assert.equal(resolveCudaFlags({}).gemvNorm6, false);
  assert.equal(resolveCudaFlags({}).gemvNorm6Mlp, false);
  assert.equal(resolveCudaFlags({}).gemvKs6, false);
  assert.equal(resolveCudaFlags({}).gemvOprojL2, false);
  for (const k of ["gemv_fused_norm6_bf16_m1", "gemv_fused_norm6_bf16_m2", "gemv_fused_ks6_bf16_m1", "gemv_fused_pf_xpre_bf16_m1"]) {
    assert.ok(isPdlKernel(k), `${k} waits in code: PDL`);
  }
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
  const ref = new FakeCudaSession(bf16, 40, 132, false, opts);
  const variants: [string, FakeCudaSession, boolean, boolean, boolean, boolean][] = [
    ["qkv", new FakeCudaSession(bf16, 40, 132, false, { ...opts, gemvNorm6: true }), true, false, false, false],
    ["mlp", new FakeCudaSession(bf16, 40, 132, false, { ...opts, gemvNorm6Mlp: true }), false, true, false, false],
    ["o_proj", new FakeCudaSession(bf16, 40, 132, false, { ...opts, gemvOprojL2: true }), false, false, false, true],
    [
      "all",
      new FakeCudaSession(bf16, 40, 132, false, { ...opts, gemvNorm6: true, gemvNorm6Mlp: true, gemvKs6: true, gemvOprojL2: true }),
      true,
      true,
      true,
      true,
    ],
  ];
  for (const n of [1, 2, 3]) {
    const seqs = Array.from(
      { length: n },
      (_, s) => ({ ids: Array.from({ length: 5 + s }, (_, j) => (s * 11 + j * 7 + 3) % V), blocks: [3 * s, 3 * s + 1, 3 * s + 2] }),
    );
    const pre = step(seqs.map((s) => ({ ids: s.ids.slice(0, -1), pos: 0, blocks: s.blocks })), 3);
    const want = ref.run(pre, false).logits;
    for (const [label, v] of variants) sameBits(v.run(pre, false).logits, want, `${label}: prefill of ${n}`);
    for (const graphs of [false, true]) {
      const inp = step(seqs.map((s) => ({ ids: [s.ids[s.ids.length - 1]], pos: s.ids.length - 1, blocks: s.blocks })), 3);
      const wantD = ref.run(inp, graphs).logits;
      for (const [label, v, qkv, mlp, down, o] of variants) {
        sameBits(v.run(inp, graphs).logits, wantD, `${label}: decode of ${n} (${graphs ? "graph" : "eager"})`);
        const names = v.lastLaunches.filter((l): l is KernelLaunch => l.kind === "kernel" && l.kernel.includes("gemv")).map((l) => l.kernel);
        // Per layer qkv, o_proj, gate_up, down (k 6144: 2 warps a row); then the lm_head. 3+ rows (m4): unchanged.
        const x = n <= 2 ? `_xpre_bf16_m${n}` : "_bf16_m4", six = `_bf16_m${n}`;
        const q = n <= 2 && qkv ? "gemv_fused_norm6" + six : "gemv_fused_norm" + x;
        const g = n <= 2 && mlp ? "gemv_fused_norm6" + six : "gemv_fused_norm" + x;
        const dn = n === 1 && down ? "gemv_fused_ks6_bf16_m1" : "gemv_fused_ks" + x;
        const layer = [q, (n <= 2 && o ? "gemv_fused_pf" : "gemv_fused") + x, g, dn];
        assert.deepEqual(names, [...layer, ...layer, g], `${label}: decode of ${n}`);
      }
    }
  }
});
