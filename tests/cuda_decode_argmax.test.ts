// decodeArgmax (issue 16 item 1, session 12): a sampling decode step's fused lm_head GEMV also folds each row's greedy
// argmax into u64 keys (gemv_fused{_norm}_amax) and the sampler runs as sample_amax_f32 (a greedy row's id from its key;
// the fake device checks it against sampleRow's id over the logits). Checked without a GPU on the fake device: which
// launches change, the same logits and ids as the default over several steps (the keys zeroed between them), greedy
// and temperature rows, graphs and eager, and no _amax lm_head in a step that does not sample. On a GPU:
// tests/gpu/decode_argmax.test.ts (the keys of tied / NaN logits) and bench/decode_pdl.ts --ab '{"decodeArgmax":true}'.
import type { KernelLaunch } from "../lib/backends/cuda/launch_plan.ts";
import { resolveCudaFlags } from "../lib/backends/cuda/session_flags.ts";
import { buildSync } from "../lib/builder/builder.ts";
import { FakeCudaSession, randomModel, step } from "./cuda_fake_device.ts";
import { sameBits } from "./cuda_fake_plans.ts";
import { assert, test } from "./harness.ts";

test("decodeArgmax: the lm_head GEMV folds the greedy argmax in, sample_amax_f32 reads it (the default's logits and ids); off by default", () => {
  assert.equal(resolveCudaFlags({}).decodeArgmax, false);
  const raw = {
    vocab_size: 301,
    max_position_embeddings: 2048,
    architectures: ["LlamaForCausalLM"],
    model_type: "llama",
    hidden_size: 256,
    intermediate_size: 512,
    num_hidden_layers: 1,
    num_attention_heads: 4,
    num_key_value_heads: 1,
    head_dim: 64,
  };
  const model = randomModel(raw, 48, true, 0.1);
  let bf16;
  try {
    bf16 = buildSync(model, { backend: "cuda" as const, maxBatchSize: 6, maxNumTokens: 64, maxSeqLen: 128, tokensPerBlock: 8, dtype: "bfloat16" });
  } finally {
    model.close();
  }
  const V = bf16.plan.attributes.vocabSize;
  const opts = { fusedDecode: true, gemvSplitK: true, batchInvariant: true, gemvXPre: true };
  const am = new FakeCudaSession(bf16, 40, 132, false, { ...opts, decodeArgmax: true });
  const ref = new FakeCudaSession(bf16, 40, 132, false, opts);
  for (const n of [1, 2, 5]) {
    const seqs = Array.from(
      { length: n },
      (_, s) => ({ ids: Array.from({ length: 4 + s }, (_, j) => (s * 13 + j * 5 + 1) % V), blocks: [3 * s, 3 * s + 1, 3 * s + 2] }),
    );
    const pre = step(seqs.map((s) => ({ ids: s.ids, pos: 0, blocks: s.blocks })), 3);
    const p0 = am.run(pre, false), p1 = ref.run(pre, false);
    sameBits(p0.logits, p1.logits, `prefill of ${n}`);
    assert.deepEqual([...p0.ids], [...p1.ids], `prefill of ${n}: ids`);
    let pos = seqs.map((s) => s.ids.length);
    let last = [...p1.ids];
    for (let t = 0; t < 4; t++) {
      const graphs = t % 2 === 1;
      const inp = step(seqs.map((s, i) => ({ ids: [last[i]], pos: pos[i], blocks: s.blocks })), 3);
      const a = am.run(inp, graphs), b = ref.run(inp, graphs);
      sameBits(a.logits, b.logits, `decode ${t} of ${n}`);
      assert.deepEqual([...a.ids], [...b.ids], `decode ${t} of ${n}: ids`);
      const names = am.lastLaunches.filter((l): l is KernelLaunch => l.kind === "kernel").map((l) => l.kernel);
      assert.ok(names.includes(`gemv_fused_norm_amax_bf16_m${n <= 2 ? n : 8}`) && names.at(-1) === "sample_amax_f32", names.slice(-3).join(", "));
      last = [...b.ids];
      pos = pos.map((p) => p + 1);
    }
    // A masked step samples after the graph (apply_token_mask, sample_f32): its lm_head stays plain (nothing would read
    // or zero the keys), and the next unmasked step's keys start from zero.
    const words = Math.ceil(V / 32);
    const masks = new Int32Array(words).fill(-1);
    masks[0] = 0x0000fff0; // ids 0-3 and 16-31 not allowed
    const masked = step(seqs.map((s, i) => ({ ids: [last[i]], pos: pos[i], blocks: s.blocks })), 3);
    const mInp = { ...masked, sampling: { ...masked.sampling!, tokenMasks: { words, count: 1, rowMask: new Int32Array(n).fill(0), masks } } };
    const ma = am.run(mInp, true), mb = ref.run(mInp, true);
    sameBits(ma.logits, mb.logits, `masked decode of ${n}`);
    assert.deepEqual([...ma.ids], [...mb.ids], `masked decode of ${n}: ids`);
    const names = am.lastLaunches.filter((l): l is KernelLaunch => l.kind === "kernel").map((l) => l.kernel);
    assert.ok(!names.some((k) => k.includes("amax")) && names.at(-1) === "sample_f32", names.slice(-3).join(", "));
    pos = pos.map((p) => p + 1);
    const after = step(seqs.map((s, i) => ({ ids: [mb.ids[i]], pos: pos[i], blocks: s.blocks })), 3);
    const aa = am.run(after, true), ab = ref.run(after, true);
    assert.deepEqual([...aa.ids], [...ab.ids], `decode of ${n} after the masked step: ids`);
  }
});
