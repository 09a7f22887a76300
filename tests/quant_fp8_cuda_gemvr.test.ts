// fp8GemvRow / fp8GemvRowNorm (session 16), checked on the fake device: one-token fused FP8 decode steps run the
// linears of in-features <= 4096 other than gate_up (modes 0 / 1 / 3) on fp8_gemvr_fused{,_norm}_bf16 (one weight row a
// warp, ceil(n / 8) blocks), each switch only its own form; gate_up and steps of more than one token keep their kernels;
// the logits equal the default plan's (fp8_gemv1's). The kernel's bits against fp8_gemv1: tests/gpu/fp8_gemvr.test.ts.
import type { KernelLaunch } from "../lib/backends/cuda/launch_types.ts";
import { fp8GemvRowFits } from "../lib/backends/cuda/fp8_launch.ts";
import { resolveCudaFlags } from "../lib/backends/cuda/session_flags.ts";
import { buildSync } from "../lib/builder/builder.ts";
import { quantizeSync } from "../lib/quantization/quantize.ts";
import { FakeCudaSession, randomModel, step } from "./cuda_fake_device.ts";
import { assert, test } from "./harness.ts";

const RAW = {
  vocab_size: 64,
  hidden_size: 512,
  intermediate_size: 1024,
  num_hidden_layers: 2,
  max_position_embeddings: 64,
  architectures: ["LlamaForCausalLM"],
  model_type: "llama",
  num_attention_heads: 8,
  num_key_value_heads: 2,
  head_dim: 64,
};

test("fp8GemvRowFits: modes 0 / 1 / 3, in-features whole 512-byte segments up to 4096 (llama-3.1-8b: qkv, o_proj; not down)", () => {
  assert.ok(fp8GemvRowFits(4096, 0) && fp8GemvRowFits(4096, 1) && fp8GemvRowFits(512, 3));
  assert.ok(!fp8GemvRowFits(4096, 2), "SiLU·mul (gate_up) stays on fp8_gemv1");
  assert.ok(!fp8GemvRowFits(14336, 1) && !fp8GemvRowFits(8192, 1), "long rows (down_proj) stay on fp8_gemv1");
  assert.ok(!fp8GemvRowFits(1000, 0) && !fp8GemvRowFits(448, 0));
  const f = resolveCudaFlags({});
  assert.equal(f.fp8GemvRow, false, "off by default");
  assert.equal(f.fp8GemvRowNorm, false, "off by default");
});

for (const algo of ["FP8", "FP8_PER_CHANNEL_PER_TOKEN"] as const) {
  test(`fp8GemvRow / fp8GemvRowNorm (${algo}): one-token FP8 decode GEMVs on fp8_gemvr_fused*, gate_up on fp8_gemv1, same logits`, () => {
    const model = randomModel(RAW, 9, true, 0.05);
    const q = quantizeSync(model, { quantAlgo: algo }, { calibration: [Array.from({ length: 24 }, (_, i) => (i * 5 + 1) % 64)] });
    const engine = buildSync(q, { backend: "cuda", dtype: "bfloat16", maxBatchSize: 8, maxNumTokens: 64, maxSeqLen: 32, tokensPerBlock: 4 });
    q.close();
    model.close();
    const L = RAW.num_hidden_layers;
    const seqs = [0, 1].map((s) => ({ ids: [s + 3, s + 9, s + 27], blocks: [2 * s, 2 * s + 1] }));
    const variants = [{}, { fp8GemvRow: true }, { fp8GemvRowNorm: true }, { fp8GemvRow: true, fp8GemvRowNorm: true }];
    const runs = variants.map((v) => {
      const fake = new FakeCudaSession(engine, 8, 132, false, { fusedDecode: true, fp8Gemv1: true, ...v });
      fake.run(step(seqs.map((x) => ({ ids: x.ids, pos: 0, blocks: x.blocks })), 2), false);
      const dec1 = fake.run(step([{ ids: [7], pos: 3, blocks: seqs[0].blocks }], 2), false);
      const names1 = fake.lastLaunches.filter((l) => l.kind === "kernel").map((l) => (l as KernelLaunch).kernel);
      const dec2 = fake.run(step(seqs.map((x, s) => ({ ids: [s + 1], pos: 4, blocks: x.blocks })), 2), false);
      const names2 = fake.lastLaunches.filter((l) => l.kind === "kernel").map((l) => (l as KernelLaunch).kernel);
      return { dec1, dec2, names1, names2 };
    });
    const count = (names: string[], k: string): number => names.filter((n) => n === k).length;
    assert.equal(count(runs[0].names1, "fp8_gemv1_fused_norm_bf16"), 2 * L, "default: qkv and gate_up on fp8_gemv1");
    assert.ok(!runs[0].names1.some((n) => n.startsWith("fp8_gemvr")), "off: no fp8_gemvr");
    // fp8GemvRow: o_proj and down (k 1024 here) without the prologue; fp8GemvRowNorm: qkv; gate_up (mode 2) never.
    assert.equal(count(runs[1].names1, "fp8_gemvr_fused_bf16"), 2 * L, runs[1].names1.join(","));
    assert.equal(count(runs[1].names1, "fp8_gemvr_fused_norm_bf16"), 0);
    assert.equal(count(runs[2].names1, "fp8_gemvr_fused_norm_bf16"), L, runs[2].names1.join(","));
    assert.equal(count(runs[2].names1, "fp8_gemvr_fused_bf16"), 0);
    assert.equal(count(runs[3].names1, "fp8_gemvr_fused_bf16") + count(runs[3].names1, "fp8_gemvr_fused_norm_bf16"), 3 * L);
    assert.equal(count(runs[3].names1, "fp8_gemv1_fused_norm_bf16"), L, "gate_up stays on fp8_gemv1");
    for (const r of runs) assert.ok(!r.names2.some((n) => n.startsWith("fp8_gemvr") || n.startsWith("fp8_gemv1")), "two tokens: the 16-row GEMV");
    for (const r of runs.slice(1)) {
      for (const k of ["dec1", "dec2"] as const) assert.deepEqual(Array.from(r[k].logits), Array.from(runs[0][k].logits), k);
    }
    engine.dispose();
  });
}
