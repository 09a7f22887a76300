/**
 * GPU: `batchAttention4Occupancy` (session 14) on a small random Llama with an e4m3 KV cache at head dim 128 (skipped
 * without a GPU): 260 sequences (LENS12's 1..530 keys, so 1 to 3 splits of 256, and 248 short ones) — a prefill, then
 * decode steps of all 260 (decode_attention_batch4o: batch4 with 10 blocks an SM; with batchAttention4Serial batch4so), as
 * graphs and eagerly, and of 12 (batch4 either way). The logits must be bitwise the default session's, and the switch's
 * eager steps bitwise its graphs'. The plan: tests/cuda_batch_attention4_occupancy.test.ts.
 */
import { Session } from "../../lib/runtime/session.ts";
import { assert } from "../harness.ts";
import { attentionEngines, attentionSequences, BLOCKS_PER_SEQ, LENS12, SMALL_LLAMA as RAW } from "./batch_attention_setup.ts";
import { gpuTest } from "./gpu.ts";

const CASES = [
  { name: "hd128 G4", raw: { ...RAW, num_attention_heads: 8, num_key_value_heads: 2, head_dim: 128 }, serial: false },
  { name: "hd128 G4, with batchAttention4Serial", raw: { ...RAW, num_attention_heads: 8, num_key_value_heads: 2, head_dim: 128 }, serial: true },
];
const N = 260;
const LENS = [...LENS12, ...Array.from({ length: N - 12 }, (_, i) => ((i * 37) % 97) + 1)];

for (const c of CASES) {
  gpuTest(`batchAttention4Occupancy (${c.name}, FP8 cache, ${N} sequences): bitwise the default's logits, graphs = eager`, () => {
    using engines = attentionEngines(c.raw, 53, true, { maxBatchSize: N, maxNumTokens: 16384 });
    const { engine } = engines;
    const V = RAW.vocab_size;
    const on = { backend: "cuda" as const, batchAttention2: true, batchAttention4: true, batchAttention4Serial: c.serial };
    const dflt = Session.fromSerializedEngine(engine, on);
    const occ = Session.fromSerializedEngine(engine, { ...on, batchAttention4Occupancy: true });
    const occE = Session.fromSerializedEngine(engine, { ...on, batchAttention4Occupancy: true, cudaGraphs: false });
    try {
      const numBlocks = N * BLOCKS_PER_SEQ;
      const kvD = dflt.createKvCache(numBlocks), kvS = occ.createKvCache(numBlocks), kvE = occE.createKvCache(numBlocks);
      const seqs = attentionSequences(LENS, V);
      const bits = (x: Float32Array) => new Uint32Array(x.buffer);
      const run = (label: string, which: number[], prefill = false): void => {
        const inp = prefill ? seqs.prefill(which) : seqs.decode(which);
        const R = which.length;
        const gD = new Float32Array(R * V), gS = new Float32Array(R * V), gE = new Float32Array(R * V);
        const iD = new Int32Array(R);
        dflt.run(inp, { logits: gD, sampledIds: iD }, kvD);
        occ.run(inp, { logits: gS, sampledIds: new Int32Array(R) }, kvS);
        occE.run(inp, { logits: gE, sampledIds: new Int32Array(R) }, kvE);
        const dS = bits(gS).findIndex((v, i) => v !== bits(gD)[i]), dE = bits(gE).findIndex((v, i) => v !== bits(gS)[i]);
        assert.equal(dS, -1, `${label}: the switch's logits differ from the default's at ${dS}`);
        assert.equal(dE, -1, `${label}: the switch's eager logits differ from its graphs' at ${dE}`);
        assert.ok(gD.every(Number.isFinite), `${label}: finite logits`);
        if (!prefill) seqs.advance(which, iD);
      };
      const all = LENS.map((_, i) => i);
      run(`prefill ${N}`, all, true);
      for (let i = 0; i < 3; i++) run(`decode ${i}: ${N} sequences`, all);
      run("decode: 12 sequences", all.slice(0, 12));
      run(`decode: ${N} sequences again`, all);
      assert.ok(occ.cuda!.numGraphs >= 1, "decode steps ran as graphs");
    } finally {
      dflt.dispose();
      occ.dispose();
      occE.dispose();
    }
  }, 300_000);
}
