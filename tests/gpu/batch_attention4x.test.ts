/**
 * GPU: `batchAttention4X` (session 17; skipped without a GPU) — decode steps of more than 8 sequences on
 * decode_attention_batch4x_* (batch4 with the e4m3 scales and the own key's block-table entry loaded early, o / l by the
 * correctly rounded reciprocal and one remainder step, the end's merge and output split over the block's two warps;
 * session 19 (DB4_XSEL 751): the own key / value made late by its tile's warp, the first tiles' block-table entries loaded
 * with the position, q's rotation over both warps, at G <= 4 a head's merge over two lanes) give the default batch4
 * session's logits bit for bit: bf16 and e4m3 caches, head dims 64 / 128, G 4 / 12 / 7 (an odd group: the last block's B
 * heads absent; G 12: two blocks a kv head, the second of 4 heads), sequences of 1 .. 530 keys (the own key in a first,
 * middle or last tile; several 256-key splits: the split merge), graphs and eager; and FP8 weights with fp8DecodeAttnQuant
 * (the q8 entry point writing o_proj's e4m3 rows).
 */
import { buildSync } from "../../lib/builder/builder.ts";
import { quantizeSync } from "../../lib/quantization/quantize.ts";
import { Session } from "../../lib/runtime/session.ts";
import { randomModel } from "../cuda_fake_device.ts";
import { quantTestLlama } from "../cuda_fake_plans.ts";
import { assert } from "../harness.ts";
import { attentionEngines, attentionSequences, BLOCKS_PER_SEQ, LENS12, SMALL_LLAMA as RAW } from "./batch_attention_setup.ts";
import { gpuTest } from "./gpu.ts";

const CASES = [
  { name: "hd128 G4, bf16 cache", raw: { ...RAW, num_attention_heads: 8, num_key_value_heads: 2, head_dim: 128 }, fp8: false },
  { name: "hd64 G12, bf16 cache", raw: { ...RAW, num_attention_heads: 12, num_key_value_heads: 1, head_dim: 64 }, fp8: false },
  { name: "hd64 G7, bf16 cache", raw: { ...RAW, num_attention_heads: 14, num_key_value_heads: 2, head_dim: 64 }, fp8: false },
  { name: "hd128 G4, FP8 cache", raw: { ...RAW, num_attention_heads: 8, num_key_value_heads: 2, head_dim: 128 }, fp8: true },
  { name: "hd64 G2, FP8 cache", raw: { ...RAW, num_attention_heads: 4, num_key_value_heads: 2, head_dim: 64 }, fp8: true },
];

const bits = (x: Float32Array) => new Uint32Array(x.buffer);

for (const c of CASES) {
  gpuTest(`batchAttention4X (${c.name}): the default batch4 session's logits bit for bit, graphs and eager`, () => {
    const lens = [...LENS12], n = lens.length, V = RAW.vocab_size;
    using engines = attentionEngines(c.raw, 53, c.fp8, { maxBatchSize: 16, maxNumTokens: 2048 });
    const on = { backend: "cuda" as const, batchAttention2: true, batchAttention4: true };
    const names = ["default", "x graphs", "x eager"];
    const sessions = [
      Session.fromSerializedEngine(engines.engine, { ...on, batchAttention4X: false }),
      Session.fromSerializedEngine(engines.engine, { ...on, batchAttention4X: true }),
      Session.fromSerializedEngine(engines.engine, { ...on, batchAttention4X: true, cudaGraphs: false }),
    ];
    try {
      const kvs = sessions.map((s) => s.createKvCache(n * BLOCKS_PER_SEQ));
      const seqs = attentionSequences(lens, V);
      const run = (label: string, which: number[], prefill = false): void => {
        const inp = prefill ? seqs.prefill(which) : seqs.decode(which);
        const R = which.length;
        const out = sessions.map(() => ({ logits: new Float32Array(R * V), sampledIds: new Int32Array(R) }));
        sessions.forEach((s, i) => s.run(inp, out[i], kvs[i]));
        assert.ok(out[0].logits.every(Number.isFinite) && out[0].logits.some((v) => v !== 0), `${label}: finite, non-zero logits`);
        for (let i = 1; i < sessions.length; i++) {
          const d = bits(out[i].logits).findIndex((v, j) => v !== bits(out[0].logits)[j]);
          assert.equal(d, -1, `${label}: ${names[i]} logits differ from the default's at ${d}`);
        }
        if (!prefill) seqs.advance(which, out[0].sampledIds);
      };
      const all = lens.map((_, i) => i);
      run(`prefill ${n}`, all, true);
      for (let i = 0; i < 3; i++) run(`decode ${i}: ${n} sequences`, all);
      run("decode: 9 sequences", all.slice(0, 9));
      run(`decode: ${n} sequences again`, all);
      assert.ok(sessions[1].cuda!.numGraphs >= 1, "decode steps ran as graphs");
    } finally {
      for (const s of sessions) s.dispose();
    }
  }, 300_000);
}

gpuTest("batchAttention4X with FP8 weights and fp8DecodeAttnQuant (the q8 entry point): the default's logits bit for bit", () => {
  const raw: Record<string, unknown> = {
    ...quantTestLlama(112),
    hidden_size: 512,
    intermediate_size: 1024,
    num_attention_heads: 4,
    num_key_value_heads: 1,
    head_dim: 128,
  };
  const V = raw.vocab_size as number;
  const model = randomModel(raw, 31, true, 0.1);
  const q = quantizeSync(model, { quantAlgo: "FP8", kvCacheQuantAlgo: "FP8" }, { calibration: [Array.from({ length: 48 }, (_, i) => (i * 29 + 5) % V)] });
  const engine = buildSync(q, { backend: "cuda", dtype: "bfloat16", maxBatchSize: 16, maxNumTokens: 4096, maxSeqLen: 640, tokensPerBlock: 16 });
  q.close();
  model.close();
  const lens = [...LENS12], n = lens.length;
  const sessions = [false, true].map((x) => Session.fromSerializedEngine(engine, { backend: "cuda", fp8DecodeAttnQuant: true, batchAttention4X: x }));
  try {
    const kvs = sessions.map((s) => s.createKvCache(n * BLOCKS_PER_SEQ));
    const seqs = attentionSequences(lens, V);
    const all = lens.map((_, i) => i);
    for (let d = -1; d < 3; d++) {
      const inp = d < 0 ? seqs.prefill(all) : seqs.decode(all);
      const out = sessions.map(() => ({ logits: new Float32Array(n * V), sampledIds: new Int32Array(n) }));
      sessions.forEach((s, i) => s.run(inp, out[i], kvs[i]));
      const off = bits(out[1].logits).findIndex((v, j) => v !== bits(out[0].logits)[j]);
      assert.equal(off, -1, `${d < 0 ? "prefill" : `decode ${d}`}: logits differ from the default's at ${off}`);
      assert.ok(out[0].logits.every(Number.isFinite), "finite logits");
      if (d >= 0) seqs.advance(all, out[0].sampledIds);
    }
  } finally {
    for (const s of sessions) s.dispose();
    engine.dispose();
  }
}, 300_000);
