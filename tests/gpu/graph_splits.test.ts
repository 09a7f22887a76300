/**
 * GPU: `graphSplits` (decode graphs of more than 8 sequences captured per power-of-two split count of
 * decode_attention_batch2; skipped without a GPU). A random Llama built for 1,024-token sequences (four 256-key
 * splits) decodes 12 sequences, first all shorter than 256 keys (the one-split graph), then with one past 256 (two
 * splits), on a bf16 and an e4m3 KV cache: every step's logits and sampled ids bitwise equal to the session without
 * the switch, which replays the graph covering maxSeqLen; the session with it holds more graphs.
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
  num_attention_heads: 4,
  num_key_value_heads: 2,
  head_dim: 128,
  max_position_embeddings: 2048,
  architectures: ["LlamaForCausalLM"],
  model_type: "llama",
};

for (const fp8 of [false, true]) {
  gpuTest(`graphSplits (${fp8 ? "FP8" : "bf16"} cache): 12-sequence decode graphs with 1 and 2 of 4 splits give the bits of the full graph`, () => {
    const model = randomModel(RAW, 43, true, 0.15);
    const V = RAW.vocab_size;
    const q = fp8 ? quantizeSync(model, { kvCacheQuantAlgo: "FP8" }, { calibration: [Array.from({ length: 64 }, (_, i) => (i * 29 + 5) % V)] }) : model;
    using engine = buildSync(q, { backend: "cuda", dtype: "bfloat16", maxBatchSize: 16, maxNumTokens: 4096, maxSeqLen: 1024, tokensPerBlock: 16 });
    if (q !== model) q.close();
    model.close();
    const on = Session.fromSerializedEngine(engine, { backend: "cuda", graphSplits: true });
    const off = Session.fromSerializedEngine(engine, { backend: "cuda", graphSplits: false });
    try {
      const maxBlocks = 64, numBlocks = 12 * maxBlocks;
      const kvOn = on.createKvCache(numBlocks), kvOff = off.createKvCache(numBlocks);
      const lens = [250, 1, 17, 64, 200, 3, 129, 240, 255, 31, 90, 120];
      const seqs = lens.map((n, s) => ({
        ids: Array.from({ length: n }, (_, j) => (s * 31 + j * 7 + 1) % V),
        blocks: Array.from({ length: maxBlocks }, (_, j) => s * maxBlocks + j),
      }));
      const pos = lens.slice(), last = seqs.map((s) => s.ids[s.ids.length - 1]);
      const run = (label: string, prefill = false): void => {
        const inp = prefill
          ? step(seqs.map((s) => ({ ids: s.ids, pos: 0, blocks: s.blocks })), maxBlocks)
          : step(seqs.map((s, i) => ({ ids: [last[i]], pos: pos[i], blocks: s.blocks })), maxBlocks);
        const R = seqs.length;
        const a = new Float32Array(R * V), b = new Float32Array(R * V), ia = new Int32Array(R), ib = new Int32Array(R);
        on.run(inp, { logits: a, sampledIds: ia }, kvOn);
        off.run(inp, { logits: b, sampledIds: ib }, kvOff);
        let diff = 0;
        for (let i = 0; i < a.length; i++) if (a[i] !== b[i] && !(Number.isNaN(a[i]) && Number.isNaN(b[i]))) diff++;
        assert.equal(diff, 0, `${label}: ${diff} logits differ`);
        assert.deepEqual(Array.from(ia), Array.from(ib), `${label}: sampled ids`);
        if (prefill) return;
        seqs.forEach((_, i) => {
          last[i] = ib[i];
          pos[i]++;
        });
      };
      run("prefill", true);
      for (let i = 0; i < 4; i++) run(`decode ${i} (longest span ${Math.max(...pos) + 1})`); // 256 .. 259 keys: 1, then 2 splits
      assert.ok(Math.max(...pos) > 256, "the last steps span two splits");
      assert.ok(on.cuda!.numGraphs > off.cuda!.numGraphs, `graphs: ${on.cuda!.numGraphs} with graphSplits, ${off.cuda!.numGraphs} without`);
    } finally {
      on.dispose();
      off.dispose();
    }
  }, 300_000);
}
