// CudaFlags.batchAttention4Occupancy, checked on the fake device: decode steps of BATCH4_OCCUPANCY_MIN_ROWS+ sequences over
// an FP8 KV cache at head dim 128 run decode_attention_batch4{,s}o_{,q8_}fp8kv_bf16_hd128 (10 blocks an SM) with the grid
// and arguments of the entry point they replace, the logits and ids bit for bit the default plan's; smaller steps keep
// decode_attention_batch4. The kernels are batch4's with another register cap: the same code paths (ptxas, no spills).
import { BATCH4_OCCUPANCY_MIN_ROWS } from "../lib/backends/cuda/attention_choice.ts";
import type { KernelLaunch } from "../lib/backends/cuda/launch_types.ts";
import { buildSync } from "../lib/builder/builder.ts";
import { quantizeSync } from "../lib/quantization/quantize.ts";
import { FakeCudaSession, randomModel, step } from "./cuda_fake_device.ts";
import { assert, test } from "./harness.ts";

const raw = {
  vocab_size: 64,
  intermediate_size: 128,
  num_hidden_layers: 2,
  max_position_embeddings: 512,
  architectures: ["LlamaForCausalLM"],
  model_type: "llama",
  hidden_size: 512,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  head_dim: 128,
};
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
  fp8GemmResidual: true,
  fp8FlatQuant: true,
  fp8FastSilu: true,
  gemmResidual: true,
  decodeSplitK: true,
  gemvXPre: true,
  fp8DecodeAttention: true,
};

for (const [q8, serial] of [[false, false], [true, false], [true, true]]) {
  test(`batchAttention4Occupancy${q8 ? " with fp8DecodeAttnQuant" : ""}${serial ? " and batchAttention4Serial" : ""}: ${BATCH4_OCCUPANCY_MIN_ROWS}-row decode steps on batch4${serial ? "s" : ""}o; same launches and bits`, () => {
    const model = randomModel(raw, 29, true, 0.1);
    const q = quantizeSync(model, { quantAlgo: "FP8", kvCacheQuantAlgo: "FP8" }, { calibration: [Array.from({ length: 24 }, (_, i) => (i * 5 + 1) % 64)] });
    const S = BATCH4_OCCUPANCY_MIN_ROWS, B = 3;
    const engine = buildSync(q, { backend: "cuda", dtype: "bfloat16", maxBatchSize: S, maxNumTokens: 2048, maxSeqLen: 320, tokensPerBlock: 4 });
    q.close();
    model.close();
    const L = raw.num_hidden_layers, hd = raw.head_dim;
    const seqs = Array.from({ length: S }, (_, s) => ({
      ids: Array.from({ length: 2 + (s % 4) }, (_, i) => (s * 7 + i * 11 + 1) % 64),
      blocks: Array.from({ length: B }, (_, j) => B * s + j),
    }));
    const runs = [false, true].map((occ) => {
      const fake = new FakeCudaSession(engine, S * B + 2, 132, false, {
        ...ON,
        fp8DecodeAttnQuant: q8,
        batchAttention4Serial: serial,
        batchAttention4Occupancy: occ,
      });
      fake.run(step(seqs.map((x) => ({ ids: x.ids, pos: 0, blocks: x.blocks })), B), false);
      const steps: { logits: Float32Array; ids: Int32Array; attn: KernelLaunch[] }[] = [];
      for (let d = 0; d < 3; d++) {
        // S sequences eager, then as bucket S's graph, then 12 of them (below BATCH4_OCCUPANCY_MIN_ROWS).
        const rows = d === 2 ? seqs.slice(0, 12) : seqs;
        const r = fake.run(step(rows.map((x, s) => ({ ids: [(s * 3 + d) % 64], pos: x.ids.length + d, blocks: x.blocks })), B), d === 1);
        const attn = fake.lastLaunches.filter((l): l is KernelLaunch => l.kind === "kernel" && l.kernel.startsWith("decode_attention"));
        steps.push({ logits: r.logits, ids: r.ids, attn });
      }
      return steps;
    });
    const tail = `_${q8 ? "q8_" : ""}fp8kv_bf16_hd${hd}`;
    const plain = `decode_attention_batch4${serial ? "s" : ""}${tail}`, occName = `decode_attention_batch4${serial ? "s" : ""}o${tail}`;
    for (const d of [0, 1]) {
      const off = runs[0][d].attn, on = runs[1][d].attn;
      assert.ok(off.length === L && off.every((l) => l.kernel === plain), `step ${d}, default: ${off.map((l) => l.kernel)}`);
      assert.ok(on.length === L && on.every((l) => l.kernel === occName), `step ${d}, switch: ${on.map((l) => l.kernel)}`);
      for (let i = 0; i < L; i++) {
        assert.deepEqual(on[i].grid, off[i].grid, `step ${d}: the grid`);
        assert.equal(on[i].block, off[i].block);
        assert.deepEqual(on[i].args, off[i].args, `step ${d}: the arguments`);
      }
    }
    assert.ok(runs[1][2].attn.every((l) => l.kernel === `decode_attention_batch4${tail}`), "12-row steps keep batch4");
    for (let d = 0; d < 3; d++) {
      const a = new Uint32Array(runs[1][d].logits.buffer), b = new Uint32Array(runs[0][d].logits.buffer);
      assert.equal(a.length, b.length);
      for (let i = 0; i < b.length; i++) if (a[i] !== b[i]) assert.fail(`step ${d}: logit ${i}: ${runs[1][d].logits[i]} vs ${runs[0][d].logits[i]}`);
      assert.deepEqual(Array.from(runs[1][d].ids), Array.from(runs[0][d].ids), `step ${d}: ids`);
    }
    engine.dispose();
  });
}
