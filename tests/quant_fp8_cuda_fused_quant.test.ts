// LaunchEnv.fp8FusedQuant (CudaSessionOptions.fp8FusedQuant), checked on the fake device: in prefill and large
// decode steps of FP8 engines the rmsnorm / add_rmsnorm before q/k/v and gate/up and the silu_mul before down_proj
// write the linear's e4m3 rows and row scales themselves (fp8_rmsnorm_quant_bf16 / fp8_silu_mul_quant_bf16), the
// linear launches no fp8_quantize_bf16, o_proj (fed by attention) keeps it, GEMV-sized steps are unchanged — and
// the logits and KV cache are bit for bit those of the unfused plan, for static (FP8) and per-token
// (FP8_PER_CHANNEL_PER_TOKEN) activation scales.
import type { KernelLaunch, Launch } from "../lib/backends/cuda/launch_types.ts";
import { buildSync } from "../lib/builder/builder.ts";
import { quantizeSync } from "../lib/quantization/quantize.ts";
import { CpuSession } from "../lib/backends/cpu/session.ts";
import { FakeCudaSession, randomModel, step } from "./cuda_fake_device.ts";
import { FP8_LOGITS_TOL } from "./cuda_fake_plans.ts";
import { assert, test } from "./harness.ts";

const relL2 = (a: Float32Array, b: Float32Array): number => {
  let num = 0, den = 0;
  for (let i = 0; i < a.length; i++) {
    num += (a[i] - b[i]) ** 2;
    den += b[i] ** 2;
  }
  return Math.sqrt(num / den);
};

const RAW = {
  vocab_size: 64,
  hidden_size: 64,
  intermediate_size: 128,
  num_hidden_layers: 2,
  max_position_embeddings: 64,
  architectures: ["LlamaForCausalLM"],
  model_type: "llama",
  num_attention_heads: 2,
  num_key_value_heads: 1,
  head_dim: 32,
};

for (const algo of ["FP8", "FP8_PER_CHANNEL_PER_TOKEN"] as const) {
  test(`fp8FusedQuant (${algo}): norms and silu_mul quantize for the next FP8 GEMM; same logits bits as the unfused plan`, () => {
    const model = randomModel(RAW, 7, true, 0.1);
    const q = quantizeSync(model, { quantAlgo: algo }, { calibration: [Array.from({ length: 24 }, (_, i) => (i * 5 + 1) % 64)] });
    const engine = buildSync(q, { backend: "cuda", dtype: "bfloat16", maxBatchSize: 32, maxNumTokens: 256, maxSeqLen: 32, tokensPerBlock: 4 });
    q.close();
    model.close();
    const L = RAW.num_hidden_layers;
    const S = 12;
    const seqs = Array.from(
      { length: S },
      (_, s) => ({ ids: [(s * 7) % 64, (s * 11 + 1) % 64, (s * 13 + 2) % 64, (s * 5 + 3) % 64], blocks: [2 * s, 2 * s + 1] }),
    );
    const runs = [false, true].map((fused) => {
      const fake = new FakeCudaSession(engine, S * 2 + 2, 132, false, { fusedDecode: true, fp8FusedQuant: fused });
      const pre = fake.run(step(seqs.map((x) => ({ ids: x.ids, pos: 0, blocks: x.blocks })), 2), false);
      const preLaunches = fake.lastLaunches;
      const dec = fake.run(step(seqs.map((x, s) => ({ ids: [s % 64], pos: 4, blocks: x.blocks })), 2), false);
      const decLaunches = fake.lastLaunches;
      const one = fake.run(step([{ ids: [5], pos: 5, blocks: seqs[0].blocks }], 2), false);
      return { pre, dec, one, preLaunches, decLaunches, oneLaunches: fake.lastLaunches };
    });
    const names = (ls: readonly { kind: string }[]): string[] => ls.filter((l) => l.kind === "kernel").map((l) => (l as KernelLaunch).kernel);
    for (const key of ["preLaunches", "decLaunches"] as const) {
      const plain = names(runs[0][key]), fused = names(runs[1][key]);
      assert.equal(plain.filter((n) => n === "fp8_quantize_bf16").length, 4 * L, `${key}: unfused, one quantize per linear`);
      assert.equal(fused.filter((n) => n === "fp8_quantize_bf16").length, L, `${key}: fused, o_proj's quantize only`);
      assert.equal(fused.filter((n) => n === "fp8_rmsnorm_quant_bf16").length, 2 * L, key);
      assert.equal(fused.filter((n) => n === "fp8_silu_mul_quant_bf16").length, L, key);
      assert.ok(!fused.some((n) => n === "silu_mul_bf16" || n === "add_rmsnorm_bf16"), `${key}: ${fused.join(",")}`);
      assert.equal(runs[1][key].filter((l) => l.kind === "gemm").length, runs[0][key].filter((l) => l.kind === "gemm").length);
    }
    assert.deepEqual(names(runs[1].oneLaunches), names(runs[0].oneLaunches), "a one-sequence decode step (GEMV) is unchanged");
    for (const k of ["pre", "dec", "one"] as const) {
      const a = new Uint32Array(runs[1][k].logits.buffer), b = new Uint32Array(runs[0][k].logits.buffer);
      assert.equal(a.length, b.length);
      for (let i = 0; i < b.length; i++) if (a[i] !== b[i]) assert.fail(`${k}: logit ${i}: ${runs[1][k].logits[i]} vs ${runs[0][k].logits[i]}`);
      assert.deepEqual(Array.from(runs[1][k].ids), Array.from(runs[0][k].ids));
    }
    engine.dispose();
  });
}

test("fp8Gemv1: one-token fused FP8 decode steps run fp8_gemv1_fused* (k % 512 == 0), the same values on the fake device; larger steps do not", () => {
  const raw = { ...RAW, hidden_size: 512, intermediate_size: 1024, num_attention_heads: 8, num_key_value_heads: 2, head_dim: 64 };
  const model = randomModel(raw, 9, true, 0.05);
  const q = quantizeSync(model, { quantAlgo: "FP8" }, { calibration: [Array.from({ length: 24 }, (_, i) => (i * 5 + 1) % 64)] });
  const engine = buildSync(q, { backend: "cuda", dtype: "bfloat16", maxBatchSize: 8, maxNumTokens: 64, maxSeqLen: 32, tokensPerBlock: 4 });
  q.close();
  model.close();
  const seqs = [0, 1].map((s) => ({ ids: [s + 3, s + 9, s + 27], blocks: [2 * s, 2 * s + 1] }));
  const runs = [false, true].map((one) => {
    const fake = new FakeCudaSession(engine, 8, 132, false, { fusedDecode: true, fp8Gemv1: one });
    fake.run(step(seqs.map((x) => ({ ids: x.ids, pos: 0, blocks: x.blocks })), 2), false);
    const dec1 = fake.run(step([{ ids: [7], pos: 3, blocks: seqs[0].blocks }], 2), false);
    const names1 = fake.lastLaunches.filter((l) => l.kind === "kernel").map((l) => (l as KernelLaunch).kernel);
    const dec2 = fake.run(step(seqs.map((x, s) => ({ ids: [s + 1], pos: 4, blocks: x.blocks })), 2), false);
    const names2 = fake.lastLaunches.filter((l) => l.kind === "kernel").map((l) => (l as KernelLaunch).kernel);
    return { dec1, dec2, names1, names2 };
  });
  assert.ok(!runs[0].names1.some((n) => n.startsWith("fp8_gemv1")), "off: no fp8_gemv1");
  assert.equal(runs[1].names1.filter((n) => n.startsWith("fp8_gemv1")).length, 4 * RAW.num_hidden_layers, runs[1].names1.join(","));
  assert.ok(!runs[1].names2.some((n) => n.startsWith("fp8_gemv1")), "two tokens: the 16-row GEMV");
  for (const k of ["dec1", "dec2"] as const) assert.deepEqual(Array.from(runs[1][k].logits), Array.from(runs[0][k].logits), k);
  engine.dispose();
});

test("fp8FusedQuant with an FP8 KV cache on decode_attention_batch2 (batchAttention2): a 12-sequence decode step keeps the unfused plan's bits", () => {
  const raw = { ...RAW, hidden_size: 128, intermediate_size: 256, num_attention_heads: 4, num_key_value_heads: 1, head_dim: 64 };
  const model = randomModel(raw, 11, true, 0.1);
  const q = quantizeSync(model, { quantAlgo: "FP8", kvCacheQuantAlgo: "FP8" }, { calibration: [Array.from({ length: 24 }, (_, i) => (i * 7 + 2) % 64)] });
  const engine = buildSync(q, { backend: "cuda", dtype: "bfloat16", maxBatchSize: 32, maxNumTokens: 256, maxSeqLen: 32, tokensPerBlock: 4 });
  q.close();
  model.close();
  const S = 12;
  const seqs = Array.from({ length: S }, (_, s) => ({ ids: [(s * 3) % 64, (s * 5 + 1) % 64, (s * 7 + 2) % 64], blocks: [2 * s, 2 * s + 1] }));
  const runs = [false, true].map((fused) => {
    const fake = new FakeCudaSession(engine, S * 2 + 2, 132, false, { fusedDecode: true, batchAttention: true, batchAttention2: true, fp8FusedQuant: fused });
    fake.run(step(seqs.map((x) => ({ ids: x.ids, pos: 0, blocks: x.blocks })), 2), false);
    const dec = fake.run(step(seqs.map((x, s) => ({ ids: [s % 64], pos: 3, blocks: x.blocks })), 2), false);
    return { dec, names: fake.lastLaunches.filter((l) => l.kind === "kernel").map((l) => (l as KernelLaunch).kernel) };
  });
  assert.ok(runs[1].names.some((n) => n.startsWith("decode_attention_batch2_fp8kv")), runs[1].names.join(","));
  assert.ok(runs[1].names.includes("fp8_rmsnorm_quant_bf16") && runs[1].names.includes("fp8_silu_mul_quant_bf16"), runs[1].names.join(","));
  const a = new Uint32Array(runs[1].dec.logits.buffer), b = new Uint32Array(runs[0].dec.logits.buffer);
  for (let i = 0; i < b.length; i++) if (a[i] !== b[i]) assert.fail(`logit ${i}: ${runs[1].dec.logits[i]} vs ${runs[0].dec.logits[i]}`);
  engine.dispose();
});

test("session 11's FP8 prefill switches (FP8 + FP8 KV, shadow RoPE, flash_prefill_wg): fp8GemmResidual, fp8FreshPrompt, fp8FlatQuant, fp8AttnQuant, fp8PruneLastLayer; logits as close to the CPU session as without, pruning keeps the bits", () => {
  const raw = { ...RAW, hidden_size: 256, intermediate_size: 512, num_attention_heads: 4, num_key_value_heads: 1, head_dim: 64 };
  const model = randomModel(raw, 13, true, 0.1);
  const q = quantizeSync(model, { quantAlgo: "FP8", kvCacheQuantAlgo: "FP8" }, { calibration: [Array.from({ length: 24 }, (_, i) => (i * 7 + 2) % 64)] });
  const build = { maxBatchSize: 4, maxNumTokens: 64, maxSeqLen: 32, tokensPerBlock: 4 };
  const engine = buildSync(q, { ...build, backend: "cuda", dtype: "bfloat16" });
  const f32 = buildSync(q, { ...build, backend: "cpu", dtype: "float32" });
  q.close();
  model.close();
  const L = raw.num_hidden_layers;
  const seqs = [{ ids: [3, 9, 27, 17, 50, 8, 1, 44, 12], blocks: [0, 1, 2, 3] }, { ids: [5, 6, 61, 2, 30, 19], blocks: [4, 5, 6, 7] }];
  const base = {
    fusedDecode: true,
    batchInvariant: true,
    fp8FusedQuant: true,
    gemmResidual: true,
    fp8FlashPrefill: true,
    fp8ShadowRope: true,
    wgmmaPrefill: true,
  };
  const steps = {
    pre: step(seqs.map((x) => ({ ids: x.ids, pos: 0, blocks: x.blocks })), 4),
    // A chunk over the first sequence's cached prefix: not a new prompt.
    chunk: step([{ ids: [7, 11, 13], pos: seqs[0].ids.length, blocks: seqs[0].blocks }], 4),
  };
  const cpu = new CpuSession(f32), kv = cpu.createKvCache(10);
  const want = Object.fromEntries(
    Object.entries(steps).map(([k, inp]) => {
      const out = { sampledIds: new Int32Array(inp.logitRows.length), logits: new Float32Array(inp.logitRows.length * raw.vocab_size) };
      cpu.run(inp, out, kv);
      return [k, out.logits];
    }),
  );
  const runs = [false, true, "prune", "fast"].map((on) => {
    const s11 = !!on;
    const fake = new FakeCudaSession(engine, 10, 132, false, {
      ...base,
      fp8GemmResidual: s11,
      fp8FreshPrompt: s11,
      fp8FlatQuant: s11,
      fp8AttnQuant: s11,
      fp8PruneLastLayer: on === "prune",
      fp8FastSilu: on === "fast",
    });
    const pre = fake.run(steps.pre, false);
    const preLaunches = fake.lastLaunches;
    const chunk = fake.run(steps.chunk, false);
    return { pre, preLaunches, chunk, chunkLaunches: fake.lastLaunches };
  });
  const names = (ls: readonly Launch[]): string[] => ls.filter((l) => l.kind === "kernel").map((l) => (l as KernelLaunch).kernel);
  const withC = (ls: readonly Launch[]) => ls.filter((l) => l.kind === "gemm" && l.c !== undefined);
  assert.equal(withC(runs[0].preLaunches).length, 0, "off: FP8 GEMMs write their own output");
  assert.equal(names(runs[0].preLaunches).filter((n) => n === "kv_dequant_prefix_fp8kv_bf16").length, L, "off: kv_dequant_prefix per layer");
  const on = runs[1].preLaunches;
  assert.equal(withC(on).length, 2 * L, "o_proj and down_proj of every layer add into the residual");
  for (const l of withC(on)) if (l.kind === "gemm") assert.ok(l.dtype === "fp8e4m3" && l.c === l.d, "an FP8 GEMM, C is D");
  const norms = on.filter((l): l is KernelLaunch => l.kind === "kernel" && l.kernel === "fp8_rmsnorm_quant_bf16");
  assert.equal(norms.length, 2 * L, names(on).join(","));
  assert.ok(norms.every((l) => l.args[10] === 0 && l.args[1] === 0n), "no norm adds (the GEMMs did)");
  assert.ok(!names(on).some((n) => n.startsWith("kv_dequant") || n.startsWith("add_")), names(on).join(","));
  // fp8FlatQuant: the SiLU·mul on the flat entry point; fp8AttnQuant: the attention writes o_proj's e4m3 input (no quantize).
  assert.equal(names(on).filter((n) => n === "fp8_silu_mul_quant_flat_bf16").length, L, names(on).join(","));
  assert.equal(names(on).filter((n) => n === "flash_prefill_wg_q8_bf16_hd64").length, L, names(on).join(","));
  assert.equal(names(runs[0].preLaunches).filter((n) => n === "flash_prefill_wg_bf16_hd64").length, L, "off: the bf16 attention output");
  assert.ok(!names(on).some((n) => n === "fp8_silu_mul_quant_bf16" || n.startsWith("fp8_quantize") || n === "flash_prefill_wg_bf16_hd64"), names(on).join(","));
  assert.equal(names(runs[1].chunkLaunches).filter((n) => n === "kv_dequant_prefix_fp8kv_bf16").length, L, "a chunk over a cached prefix converts it");
  // One rounding of product + residual instead of two moves some e4m3 roundings of the next linear's input: the logits
  // stay as close to the float32 CPU session's as the separate add's (bitwise equal when the stand-in rounds twice).
  // fp8FastSilu: the SiLU·mul quantize on its fast entry point (the fake device computes it exactly).
  assert.equal(names(runs[3].preLaunches).filter((n) => n === "fp8_silu_mul_quant_fast_bf16").length, L, names(runs[3].preLaunches).join(","));
  // fp8PruneLastLayer: the last layer's attention, FP8 linears and norms over the logits rows only, the same logits bits.
  const pruned = runs[2].preLaunches, cutRows = (l: Launch) => l.kind === "gemm" && l.m === seqs.length;
  assert.equal(
    pruned.filter((l) => l.kind === "gemm" && l.dtype === "fp8e4m3" && cutRows(l)).length,
    3,
    "the last layer's o_proj / gate_up / down over 2 rows",
  );
  assert.equal(runs[0].preLaunches.filter((l) => l.kind === "gemm" && l.dtype === "fp8e4m3" && cutRows(l)).length, 0, "off: no FP8 GEMM over the logits rows");
  assert.ok(names(pruned).includes("gather_rows_bf16"), names(pruned).join(","));
  for (const k of ["pre", "chunk"] as const) {
    const a = new Uint32Array(runs[2][k].logits.buffer), b = new Uint32Array(runs[1][k].logits.buffer);
    for (let i = 0; i < b.length; i++) if (a[i] !== b[i]) assert.fail(`${k}: pruned logit ${i} ${runs[2][k].logits[i]} vs ${runs[1][k].logits[i]}`);
  }
  for (const k of ["pre", "chunk"] as const) {
    const on = relL2(runs[1][k].logits, want[k]), off = relL2(runs[0][k].logits, want[k]);
    assert.ok(on < Math.max(FP8_LOGITS_TOL, 1.5 * off), `${k}: vs the CPU session rel L2 ${on.toExponential(2)} (separate add ${off.toExponential(2)})`);
  }
  engine.dispose();
  f32.dispose();
});
