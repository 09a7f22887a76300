// CudaFlags.fp8DecodeAttnQuant, checked on the fake device: in decode steps of more than 8 sequences over an FP8 KV
// cache (decode_attention_batch4) the attention writes o_proj's e4m3 rows and row scales itself
// (decode_attention_batch4_q8_fp8kv_*), o_proj launches no quantize, and the logits and sampled ids are bit for bit
// those of the default plan (eager and as a bucket's graph), at head dim 128 and 64; GEMV-sized steps are unchanged.
import type { KernelLaunch } from "../lib/backends/cuda/launch_types.ts";
import { buildSync } from "../lib/builder/builder.ts";
import { quantizeSync } from "../lib/quantization/quantize.ts";
import { FakeCudaSession, randomModel, step } from "./cuda_fake_device.ts";
import { sameBits } from "./cuda_fake_plans.ts";
import { assert, test } from "./harness.ts";

const base = {
  vocab_size: 64,
  intermediate_size: 256,
  num_hidden_layers: 2,
  max_position_embeddings: 64,
  architectures: ["LlamaForCausalLM"],
  model_type: "llama",
};
const SHAPES = [
  { hidden_size: 512, num_attention_heads: 4, num_key_value_heads: 1, head_dim: 128 },
  { hidden_size: 256, num_attention_heads: 4, num_key_value_heads: 2, head_dim: 64 },
];
// The session's defaults that shape these steps (the fake device takes no table defaults).
const ON = {
  fusedDecode: true,
  batchInvariant: true,
  batchAttention: true,
  batchAttention2: true,
  batchAttention2Wide: true,
  batchAttention4: true,
  fp8FusedQuant: true,
  fp8Gemv1: true,
  fp8DecodeSk: true,
  fp8DecodeSkSmall: true,
  fp8GemmResidual: true,
  fp8FlatQuant: true,
  fp8FastSilu: true,
  gemmResidual: true,
  decodeSplitK: true,
  gemvXPre: true,
  fp8DecodeAttention: true,
};

for (const shape of SHAPES) {
  test(`fp8DecodeAttnQuant (hd ${shape.head_dim}): batch4 decode attention writes o_proj's e4m3 input; same logits bits as the default plan`, () => {
    const raw = { ...base, ...shape };
    const model = randomModel(raw, 11, true, 0.1);
    const q = quantizeSync(model, { quantAlgo: "FP8", kvCacheQuantAlgo: "FP8" }, { calibration: [Array.from({ length: 24 }, (_, i) => (i * 5 + 1) % 64)] });
    const engine = buildSync(q, { backend: "cuda", dtype: "bfloat16", maxBatchSize: 16, maxNumTokens: 256, maxSeqLen: 32, tokensPerBlock: 4 });
    q.close();
    model.close();
    const L = raw.num_hidden_layers, S = 12;
    const seqs = Array.from({ length: S }, (_, s) => ({
      ids: Array.from({ length: 3 + (s % 5) }, (_, i) => (s * 7 + i * 11 + 1) % 64),
      blocks: [4 * s, 4 * s + 1, 4 * s + 2, 4 * s + 3],
    }));
    const names = (ls: readonly { kind: string }[]): string[] => ls.filter((l) => l.kind === "kernel").map((l) => (l as KernelLaunch).kernel);
    // The third run: with batchAttention4X (session 17), decode_attention_batch4x_q8_fp8kv_* (the same bytes).
    const runs = [false, true, true].map((on, ri) => {
      const fake = new FakeCudaSession(engine, S * 4 + 2, 132, false, { ...ON, fp8DecodeAttnQuant: on, batchAttention4X: ri === 2 });
      fake.run(step(seqs.map((x) => ({ ids: x.ids, pos: 0, blocks: x.blocks })), 4), false);
      const steps: { logits: Float32Array; ids: Int32Array; kernels: string[] }[] = [];
      for (let d = 0; d < 3; d++) {
        // 12 sequences eager, then as bucket 16's graph, then one sequence (the GEMV path).
        const rows = d === 2 ? seqs.slice(0, 1) : seqs;
        const r = fake.run(step(rows.map((x, s) => ({ ids: [(s * 3 + d) % 64], pos: x.ids.length + d, blocks: x.blocks })), 4), d === 1);
        steps.push({ logits: r.logits, ids: r.ids, kernels: names(fake.lastLaunches) });
      }
      return steps;
    });
    const hd = shape.head_dim;
    for (const d of [0, 1]) {
      const off = runs[0][d].kernels, on = runs[1][d].kernels;
      assert.equal(off.filter((n) => n === `decode_attention_batch4_fp8kv_bf16_hd${hd}`).length, L, `step ${d}: ${off.join(",")}`);
      assert.equal(on.filter((n) => n === `decode_attention_batch4_q8_fp8kv_bf16_hd${hd}`).length, L, `step ${d}: ${on.join(",")}`);
      assert.equal(off.filter((n) => n.startsWith("fp8_quantize")).length, L, `step ${d}: o_proj's quantize, default`);
      assert.equal(on.filter((n) => n.startsWith("fp8_quantize")).length, 0, `step ${d}: no quantize with the switch`);
      assert.equal(on.length, off.length - L, `step ${d}: one launch a layer less`);
      assert.deepEqual(runs[2][d].kernels, on.map((n) => n.replace("decode_attention_batch4_", "decode_attention_batch4x_")), `step ${d}: batch4x`);
    }
    assert.deepEqual(runs[1][2].kernels, runs[0][2].kernels, "a one-sequence decode step (GEMV) is unchanged");
    for (let d = 0; d < 3; d++) {
      const a = new Uint32Array(runs[1][d].logits.buffer), b = new Uint32Array(runs[0][d].logits.buffer);
      assert.equal(a.length, b.length);
      for (let i = 0; i < b.length; i++) if (a[i] !== b[i]) assert.fail(`step ${d}: logit ${i}: ${runs[1][d].logits[i]} vs ${runs[0][d].logits[i]}`);
      assert.deepEqual(new Uint32Array(runs[2][d].logits.buffer), a, `step ${d}: batchAttention4X logits`);
      assert.deepEqual(Array.from(runs[1][d].ids), Array.from(runs[0][d].ids), `step ${d}: ids`);
    }
    engine.dispose();
  });
}

// Where o_proj cannot take the attention's e4m3 rows the switch changes nothing: o_proj left unquantized (excludeModules),
// o_proj weight-only under MIXED_PRECISION, per-token (dynamic) activation scales, an INT8 KV cache; a MIXED_PRECISION
// engine whose o_proj alone is FP8 (static) still takes it. 9 sequences (the least batch4 step), 12 eager and bucket 16's graph.
const VARIANTS: [string, Record<string, unknown>, boolean][] = [
  ["o_proj excluded", { quantAlgo: "FP8", kvCacheQuantAlgo: "FP8", excludeModules: ["lm_head", "*o_proj"] }, false],
  ["o_proj W8A16 (MIXED_PRECISION)", {
    quantAlgo: "MIXED_PRECISION",
    kvCacheQuantAlgo: "FP8",
    quantizedLayers: { "*o_proj": { quantAlgo: "W8A16" }, "*mlp*": { quantAlgo: "FP8" } },
  }, false],
  ["FP8_PER_CHANNEL_PER_TOKEN", { quantAlgo: "FP8_PER_CHANNEL_PER_TOKEN", kvCacheQuantAlgo: "FP8" }, false],
  ["INT8 KV cache", { quantAlgo: "FP8", kvCacheQuantAlgo: "INT8" }, false],
  ["o_proj alone FP8 (MIXED_PRECISION)", { quantAlgo: "MIXED_PRECISION", kvCacheQuantAlgo: "FP8", quantizedLayers: { "*o_proj": { quantAlgo: "FP8" } } }, true],
];
for (const [what, qc, fits] of VARIANTS) {
  test(`fp8DecodeAttnQuant, ${what}: ${fits ? "batch4 writes o_proj's e4m3 input" : "no q8 attention, the same launches"}; same logits bits`, () => {
    const raw = { ...base, ...SHAPES[0] };
    const model = randomModel(raw, 13, true, 0.1);
    const q = quantizeSync(model, qc as Parameters<typeof quantizeSync>[1], { calibration: [Array.from({ length: 24 }, (_, i) => (i * 5 + 1) % 64)] });
    const engine = buildSync(q, { backend: "cuda", dtype: "bfloat16", maxBatchSize: 16, maxNumTokens: 256, maxSeqLen: 32, tokensPerBlock: 4 });
    q.close();
    model.close();
    const L = raw.num_hidden_layers, S = 12;
    const seqs = Array.from(
      { length: S },
      (_, s) => ({ ids: Array.from({ length: 2 + (s % 4) }, (_, i) => (s * 5 + i * 7 + 3) % 64), blocks: [4 * s, 4 * s + 1, 4 * s + 2, 4 * s + 3] }),
    );
    // The third run: with batchAttention4X (session 17), decode_attention_batch4x_q8_fp8kv_* (the same bytes).
    const runs = [false, true, true].map((on, ri) => {
      const fake = new FakeCudaSession(engine, S * 4 + 2, 132, false, { ...ON, fp8DecodeAttnQuant: on, batchAttention4X: ri === 2 });
      fake.run(step(seqs.map((x) => ({ ids: x.ids, pos: 0, blocks: x.blocks })), 4), false);
      return [9, 12, 12].map((n, d) => {
        const r = fake.run(step(seqs.slice(0, n).map((x, s) => ({ ids: [(s * 3 + d) % 64], pos: x.ids.length + d, blocks: x.blocks })), 4), d === 2);
        return { logits: r.logits, ids: r.ids, kernels: fake.lastLaunches.filter((l): l is KernelLaunch => l.kind === "kernel").map((l) => l.kernel) };
      });
    });
    for (let d = 0; d < 3; d++) {
      const off = runs[0][d], on = runs[1][d];
      const q8 = on.kernels.filter((n) => /^decode_attention_batch4_q8_/.test(n)).length;
      assert.equal(q8, fits ? L : 0, `step ${d}: ${on.kernels.join(",")}`);
      if (!fits) assert.deepEqual(on.kernels, off.kernels, `step ${d}: the same launches`);
      sameBits(on.logits, off.logits, `step ${d}: logits`);
      assert.deepEqual(Array.from(on.ids), Array.from(off.ids), `step ${d}: ids`);
    }
    engine.dispose();
  });
}

test("prefillTileScan: prefill attention on flash_prefill_wgt_* (bf16 and FP8 engines, q8 output too); same logits bits", () => {
  for (const fp8 of [false, true]) {
    const raw = { ...base, ...SHAPES[0] };
    const model = randomModel(raw, 17, true, 0.1);
    const q = fp8
      ? quantizeSync(model, { quantAlgo: "FP8", kvCacheQuantAlgo: "FP8" }, { calibration: [Array.from({ length: 24 }, (_, i) => (i * 5 + 1) % 64)] })
      : model;
    const engine = buildSync(q, { backend: "cuda", dtype: "bfloat16", maxBatchSize: 16, maxNumTokens: 256, maxSeqLen: 32, tokensPerBlock: 4 });
    if (fp8) q.close();
    model.close();
    const seqs = Array.from(
      { length: 5 },
      (_, s) => ({ ids: Array.from({ length: 2 + 3 * s }, (_, i) => (s * 7 + i * 5 + 2) % 64), blocks: [5 * s, 5 * s + 1, 5 * s + 2, 5 * s + 3, 5 * s + 4] }),
    );
    const runs = [false, true].map((scan) => {
      const fake = new FakeCudaSession(engine, 30, 132, false, {
        ...ON,
        wgmmaPrefill: true,
        fp8FlashPrefill: true,
        fp8ShadowRope: true,
        fp8FreshPrompt: true,
        fp8AttnQuant: true,
        prefillTileScan: scan,
      });
      const pre = fake.run(step(seqs.map((x) => ({ ids: x.ids, pos: 0, blocks: x.blocks })), 5), false);
      const kernels = fake.lastLaunches.filter((l) => l.kind === "kernel").map((l) => (l as KernelLaunch).kernel);
      // A chunk over the cached prefix of the first three sequences.
      const chunk = fake.run(step(seqs.slice(0, 3).map((x) => ({ ids: [3, 4, 5], pos: x.ids.length, blocks: x.blocks })), 5), false);
      return { pre, chunk, kernels };
    });
    const want = `flash_prefill_wgt_${fp8 ? "q8_" : ""}bf16_hd128`;
    assert.equal(runs[1].kernels.filter((n) => n === want).length, raw.num_hidden_layers, `${fp8 ? "FP8" : "bf16"}: ${runs[1].kernels.join(",")}`);
    assert.ok(!runs[0].kernels.some((n) => n.startsWith("flash_prefill_wgt")));
    for (const k of ["pre", "chunk"] as const) {
      const a = new Uint32Array(runs[1][k].logits.buffer), b = new Uint32Array(runs[0][k].logits.buffer);
      for (let i = 0; i < b.length; i++) if (a[i] !== b[i]) assert.fail(`${k}: logit ${i}: ${runs[1][k].logits[i]} vs ${runs[0][k].logits[i]}`);
    }
    engine.dispose();
  }
});
