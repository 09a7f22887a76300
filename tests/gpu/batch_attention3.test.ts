/**
 * GPU: decode_attention_batch3 (`batchAttention3`, session 10) end to end on small random Llamas (head dims 64 and 128,
 * bf16 and e4m3 caches; skipped without a GPU): a 12-sequence prefill, then decode steps of 12 sequences (batch3 vs
 * batch2) and of 4 (neither), as graphs and eagerly. batch3 takes batch2's key partition, sums and merges, so every
 * step's logits and sampled ids must be bitwise those of the session without it.
 * The kernel alone vs batch2 and float64: tools/cuda-kernel-check/decode_attention_batch3.py; the plan:
 * tests/cuda_batch_attention3.test.ts.
 */
import { buildSync } from "../../lib/builder/builder.ts";
import { quantizeSync } from "../../lib/quantization/quantize.ts";
import { Session } from "../../lib/runtime/session.ts";
import { randomModel, step } from "../cuda_fake_device.ts";
import { assert } from "../harness.ts";
import { gpuTest } from "./gpu.ts";

const RAW = {
  vocab_size: 211,
  hidden_size: 256,
  intermediate_size: 512,
  num_hidden_layers: 2,
  max_position_embeddings: 1024,
  architectures: ["LlamaForCausalLM"],
  model_type: "llama",
};
const CASES = [
  { name: "hd128 G4, bf16 cache", raw: { ...RAW, num_attention_heads: 8, num_key_value_heads: 2, head_dim: 128 }, fp8: false },
  { name: "hd64 G4, bf16 cache", raw: { ...RAW, num_attention_heads: 8, num_key_value_heads: 2, head_dim: 64 }, fp8: false },
  { name: "hd128 G4, FP8 cache", raw: { ...RAW, num_attention_heads: 8, num_key_value_heads: 2, head_dim: 128 }, fp8: true },
  { name: "hd64 G2, FP8 cache", raw: { ...RAW, num_attention_heads: 4, num_key_value_heads: 2, head_dim: 64 }, fp8: true },
];

for (const c of CASES) {
  gpuTest(`decode_attention_batch3 (${c.name}): decode steps bitwise those of decode_attention_batch2, graphs and eager`, () => {
    const model = randomModel(c.raw, 43, true, 0.15);
    const V = RAW.vocab_size;
    const calibration = [Array.from({ length: 64 }, (_, i) => (i * 29 + 5) % V)];
    const q = c.fp8 ? quantizeSync(model, { kvCacheQuantAlgo: "FP8" }, { calibration }) : model;
    const shape = { maxBatchSize: 16, maxNumTokens: 2048, maxSeqLen: 640, tokensPerBlock: 16 };
    using engine = buildSync(q, { backend: "cuda", dtype: "bfloat16", ...shape });
    if (q !== model) q.close();
    model.close();
    const three = Session.fromSerializedEngine(engine, { backend: "cuda", batchAttention2: true, batchAttention3: true });
    const eager = Session.fromSerializedEngine(engine, { backend: "cuda", batchAttention2: true, batchAttention3: true, cudaGraphs: false });
    const two = Session.fromSerializedEngine(engine, { backend: "cuda", batchAttention2: true, batchAttention3: false });
    try {
      const numBlocks = 12 * 40;
      const kv3 = three.createKvCache(numBlocks), kvE = eager.createKvCache(numBlocks), kv2 = two.createKvCache(numBlocks);
      // Lengths 1 .. 530 (sequence 0 spans two 256-key splits and more).
      const lens = [530, 1, 17, 64, 200, 3, 129, 255, 256, 31, 90, 300];
      const seqs = lens.map((n, s) => ({
        ids: Array.from({ length: n }, (_, j) => (s * 31 + j * 7 + 1) % V),
        blocks: Array.from({ length: 40 }, (_, j) => s * 40 + j),
      }));
      const pos = lens.slice(), last = seqs.map((s) => s.ids[s.ids.length - 1]);
      const run = (label: string, which: number[], prefill = false): void => {
        const inp = prefill
          ? step(seqs.map((s) => ({ ids: s.ids, pos: 0, blocks: s.blocks })), 40)
          : step(which.map((s) => ({ ids: [last[s]], pos: pos[s], blocks: seqs[s].blocks })), 40);
        const R = which.length;
        const g3 = new Float32Array(R * V), gE = new Float32Array(R * V), g2 = new Float32Array(R * V);
        const i3 = new Int32Array(R), iE = new Int32Array(R), i2 = new Int32Array(R);
        three.run(inp, { logits: g3, sampledIds: i3 }, kv3);
        eager.run(inp, { logits: gE, sampledIds: iE }, kvE);
        two.run(inp, { logits: g2, sampledIds: i2 }, kv2);
        const bits = (x: Float32Array) => new Uint32Array(x.buffer);
        const diff = (x: Float32Array) => bits(x).findIndex((v, i) => v !== bits(g2)[i]);
        assert.equal(diff(g3), -1, `${label}: graph logits differ from batch2's at ${diff(g3)}`);
        assert.equal(diff(gE), -1, `${label}: eager logits differ from batch2's at ${diff(gE)}`);
        assert.deepEqual([Array.from(i3), Array.from(iE)], [Array.from(i2), Array.from(i2)], `${label}: sampled ids`);
        if (prefill) return;
        which.forEach((s, r) => {
          last[s] = i2[r];
          pos[s]++;
        });
      };
      const all = lens.map((_, i) => i);
      run("prefill 12", all, true);
      for (let i = 0; i < 3; i++) run(`decode ${i}: 12 sequences`, all);
      run("decode: 4 sequences", all.slice(0, 4));
      run("decode: 12 sequences again", all);
      assert.ok(three.cuda!.numGraphs >= 1, "decode steps ran as graphs");
    } finally {
      three.dispose();
      eager.dispose();
      two.dispose();
    }
  }, 300_000);
}
