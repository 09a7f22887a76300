// gemv1 (issue 16 item 1, session 11): one-token fused bf16 decode GEMVs on gemv1_fused{_norm}, the persistent kernel.
// Checked without a GPU on the fake device (tests/cuda_fake_device.ts): which launches the switch changes (one-token
// steps only, the split gemv_fused_ks would take in the mode argument, a grid of at most LaunchEnv.gemv1Blocks) and
// that the logits are the default's bits. The kernel's sums bit for bit against gemv_fused(_ks):
// tools/cuda-kernel-check/gemv_ks_emu.py (CPU emulation); on a GPU: bench/decode_pdl.ts --ab '{"gemv1":true}'.
import { isPdlKernel, type KernelLaunch } from "../lib/backends/cuda/launch_plan.ts";
import { gemv1Fits, gemv1Grid, gemvSplitRows } from "../lib/backends/cuda/launch_types.ts";
import { resolveCudaFlags } from "../lib/backends/cuda/session_flags.ts";
import { buildSync } from "../lib/builder/builder.ts";
import { FakeCudaSession, maxRelDiff, randomModel, step } from "./cuda_fake_device.ts";
import { sameBits } from "./cuda_fake_plans.ts";
import { assert, test } from "./harness.ts";

test("gemv1: one-token decode GEMVs on gemv1_fused (the default's bits), steps of 2+ sequences unchanged; gemvSplitSquare: o_proj split 2; gemvPipe; all off by default", () => {
  assert.equal(resolveCudaFlags({}).gemv1, false);
  // gemvSplitSquare: o_proj (n <= k) on 2 warps a row; qkv, gate_up and the lm_head stay on 1, down keeps its split.
  assert.equal(resolveCudaFlags({}).gemvSplitSquare, false);
  assert.equal(resolveCudaFlags({}).gemvPipe, false);
  assert.deepEqual([[3072, 2048], [2048, 2048], [16384, 2048], [2048, 8192], [128256, 2048]].map(([n, k]) => gemvSplitRows(n, k, true)), [1, 2, 1, 2, 1]);
  assert.deepEqual([[6144, 4096], [4096, 4096], [28672, 4096], [4096, 14336]].map(([n, k]) => gemvSplitRows(n, k, true)), [1, 2, 1, 4]);
  assert.ok(isPdlKernel("gemv1_fused_bf16") && isPdlKernel("gemv1_fused_norm_bf16"), "gemv1 waits for its predecessor in code (PDL)");
  assert.ok(gemv1Fits(14336, 4) && gemv1Fits(2048, 1) && !gemv1Fits(1024, 8) && !gemv1Fits(1000, 1) && !gemv1Fits(32768, 1));
  // Every warp the same number of rows: llama-3.1-8b gate_up 7 pairs a warp on 256 blocks, llama-3.2-1b qkv 2 rows on 192.
  assert.equal(gemv1Grid(28672, 2, 264), 256);
  assert.equal(gemv1Grid(3072, 0, 264), 192);
  assert.equal(gemv1Grid(128256, 3, 264), 263);
  assert.equal(gemv1Grid(24, 0, 264), 3);
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
  const opts = { fusedDecode: true, gemvSplitK: true, batchInvariant: true, pdl: true };
  const g1 = new FakeCudaSession(bf16, 40, 132, false, { ...opts, gemv1: 6 });
  const ref = new FakeCudaSession(bf16, 40, 132, false, opts);
  const sq = new FakeCudaSession(bf16, 40, 132, false, { ...opts, gemvSplitSquare: true });
  const pipe = new FakeCudaSession(bf16, 40, 132, false, { ...opts, gemvPipe: true });
  const gemvs = (): KernelLaunch[] => g1.lastLaunches.filter((l): l is KernelLaunch => l.kind === "kernel" && l.kernel.includes("gemv"));
  for (const n of [1, 2]) {
    const seqs = Array.from(
      { length: n },
      (_, s) => ({ ids: Array.from({ length: 5 + s }, (_, j) => (s * 11 + j * 7 + 3) % V), blocks: [3 * s, 3 * s + 1, 3 * s + 2] }),
    );
    const pre = step(seqs.map((s) => ({ ids: s.ids.slice(0, -1), pos: 0, blocks: s.blocks })), 3);
    sameBits(g1.run(pre, false).logits, ref.run(pre, false).logits, `prefill of ${n}`);
    sq.run(pre, false);
    pipe.run(pre, false);
    for (const graphs of [false, true]) {
      const inp = step(seqs.map((s) => ({ ids: [s.ids[s.ids.length - 1]], pos: s.ids.length - 1, blocks: s.blocks })), 3);
      const want = ref.run(inp, graphs).logits;
      // gemvSplitSquare: o_proj (512 × 512) on gemv_fused_ks with 2 warps a row (another split of the sums: near, not the same bits).
      const d = maxRelDiff(sq.run(inp, graphs).logits, want);
      assert.ok(d < 1e-2, `gemvSplitSquare logits ${d}`);
      const o = sq.lastLaunches.filter((l): l is KernelLaunch => l.kind === "kernel" && l.kernel.includes("gemv"))[1];
      assert.equal(o.kernel, `gemv_fused_ks_bf16_m${n}`);
      assert.equal((o.args[9] as number) >> 4, 2);
      sameBits(g1.run(inp, graphs).logits, want, `decode of ${n} (${graphs ? "graph" : "eager"})`);
      // gemvPipe: every fused GEMV of 1-2 rows on its _pipe entry point (the same sums).
      sameBits(pipe.run(inp, graphs).logits, want, `gemvPipe decode of ${n}`);
      const pk = pipe.lastLaunches.filter((l): l is KernelLaunch => l.kind === "kernel" && l.kernel.includes("gemv")).map((l) => l.kernel);
      assert.deepEqual(pk, ["gemv_fused_norm", "gemv_fused", "gemv_fused_norm", "gemv_fused_ks", "gemv_fused_norm"].map((b) => `${b}_pipe_bf16_m${n}`));
      const ls = gemvs();
      if (n === 1) {
        // qkv, o_proj, gate_up, down (k 6144: 2 warps a row, as gemv_fused_ks), the lm_head.
        assert.deepEqual(ls.map((l) => l.kernel), [
          "gemv1_fused_norm_bf16",
          "gemv1_fused_bf16",
          "gemv1_fused_norm_bf16",
          "gemv1_fused_bf16",
          "gemv1_fused_norm_bf16",
        ]);
        assert.deepEqual(ls.map((l) => (l.args[9] as number) >> 4), [0, 0, 0, 2, 0]);
        assert.deepEqual(ls.map((l) => l.grid[0]), [6, 6, 6, 6, 5]); // the lm_head: 101 rows, 3 a warp
      } else assert.ok(ls.every((l) => l.kernel.startsWith("gemv_fused") && l.kernel.endsWith("_m2")), ls.map((l) => l.kernel).join());
    }
  }
});
