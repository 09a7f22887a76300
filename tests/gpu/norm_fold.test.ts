/**
 * GPU: `decodeNormFold` (session 12; lib/backends/cuda/norm_fold.ts) end to end on small random Llamas (head dims 64 and
 * 128, bf16 cache; skipped without a GPU): a 12-sequence prefill, then decode steps of 12 sequences (folded: no norm
 * launch but the final one, the qkv / gate_up GEMMs on W · diag(norm weight), silu_mul_rs, decode_attention_batch4_rs,
 * the residual adds in the o_proj / down GEMMs) and of 4 (≤ 8 rows: not folded). The fold rounds otherwise than the norm
 * path, so: its logits within the bound of tests/gpu/batch_attention4.test.ts of the float32 CPU session and about as close
 * as the default session's, graphs and eager bitwise alike, the 4-sequence steps bitwise the default session's
 * (their KV cache came through the folded steps, so only where no folded step ran before: the first decode), and the
 * greedy ids of the folded and the default session counted.
 */
import { buildSync } from "../../lib/builder/builder.ts";
import { Session } from "../../lib/runtime/session.ts";
import { randomModel, step } from "../cuda_fake_device.ts";
import { relL2 } from "../cuda_fake_plans.ts";
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
  { name: "hd64 G4", raw: { ...RAW, num_attention_heads: 8, num_key_value_heads: 2, head_dim: 64 }, deep: false },
  { name: "hd128 G4", raw: { ...RAW, num_attention_heads: 8, num_key_value_heads: 2, head_dim: 128 }, deep: false },
  // batchAttention4Deep on every session but the CPU's: decode_attention_batch4d{_rs} (4 warps a block).
  { name: "hd64 G4, batch4d", raw: { ...RAW, num_attention_heads: 8, num_key_value_heads: 2, head_dim: 64 }, deep: true },
];

for (const c of CASES) {
  gpuTest(`decodeNormFold (${c.name}): near the CPU session as the default is, graphs = eager, small steps unchanged`, () => {
    const model = randomModel(c.raw, 53, true, 0.15);
    const V = RAW.vocab_size;
    const shape = { maxBatchSize: 16, maxNumTokens: 2048, maxSeqLen: 640, tokensPerBlock: 16 };
    using engine = buildSync(model, { backend: "cuda", dtype: "bfloat16", ...shape });
    using cpuEngine = buildSync(model, { backend: "cpu", ...shape });
    model.close();
    const base = { backend: "cuda" as const, batchAttention4Deep: c.deep };
    const fold = Session.fromSerializedEngine(engine, { ...base, decodeNormFold: true });
    const eager = Session.fromSerializedEngine(engine, { ...base, decodeNormFold: true, cudaGraphs: false });
    const def = Session.fromSerializedEngine(engine, { ...base, decodeNormFold: false });
    const cpu = Session.fromSerializedEngine(cpuEngine, { backend: "cpu" });
    try {
      assert.ok(fold.cuda!.decodeNormFold, "the random Llama's norms fold");
      const numBlocks = 12 * 40;
      const kvF = fold.createKvCache(numBlocks), kvE = eager.createKvCache(numBlocks), kvD = def.createKvCache(numBlocks);
      const kvC = cpu.createKvCache(numBlocks);
      const lens = [530, 1, 17, 64, 200, 3, 129, 255, 256, 31, 90, 300];
      const seqs = lens.map((n, s) => ({
        ids: Array.from({ length: n }, (_, j) => (s * 31 + j * 7 + 1) % V),
        blocks: Array.from({ length: 40 }, (_, j) => s * 40 + j),
      }));
      const pos = lens.slice(), last = seqs.map((s) => s.ids[s.ids.length - 1]);
      const report: string[] = [];
      const bits = (x: Float32Array) => new Uint32Array(x.buffer);
      let sameIds = 0, ids = 0;
      const run = (label: string, which: number[], opts: { prefill?: boolean; bitwiseDefault?: boolean } = {}): void => {
        const inp = opts.prefill
          ? step(which.map((s) => ({ ids: seqs[s].ids, pos: 0, blocks: seqs[s].blocks })), 40)
          : step(which.map((s) => ({ ids: [last[s]], pos: pos[s], blocks: seqs[s].blocks })), 40);
        const R = which.length;
        const gF = new Float32Array(R * V), gE = new Float32Array(R * V), gD = new Float32Array(R * V), gC = new Float32Array(R * V);
        const iF = new Int32Array(R), iE = new Int32Array(R), iD = new Int32Array(R), iC = new Int32Array(R);
        cpu.run(inp, { logits: gC, sampledIds: iC }, kvC);
        fold.run(inp, { logits: gF, sampledIds: iF }, kvF);
        eager.run(inp, { logits: gE, sampledIds: iE }, kvE);
        def.run(inp, { logits: gD, sampledIds: iD }, kvD);
        const dE = bits(gE).findIndex((v, i) => v !== bits(gF)[i]);
        assert.equal(dE, -1, `${label}: eager logits differ from the graphs' at ${dE}`);
        if (opts.prefill || opts.bitwiseDefault) {
          const dD = bits(gD).findIndex((v, i) => v !== bits(gF)[i]);
          assert.equal(dD, -1, `${label}: logits differ from the default session's at ${dD}`);
        }
        const eF = relL2(gF, gC), eD = relL2(gD, gC);
        report.push(`${label}: vs CPU ${eF.toExponential(2)} (default ${eD.toExponential(2)}), vs default ${relL2(gF, gD).toExponential(2)}`);
        assert.ok(eF < 0.05 && Number.isFinite(eF), `${label}: logits rel L2 ${eF} vs the CPU session`);
        assert.ok(eF < 2 * eD + 0.01, `${label}: folded ${eF} vs the CPU, default ${eD}`);
        if (opts.prefill) return;
        which.forEach((s, r) => {
          ids++;
          if (iF[r] === iD[r]) sameIds++;
          last[s] = iC[r]; // follow the CPU's ids (every session sees the same tokens)
          pos[s]++;
        });
      };
      const all = lens.map((_, i) => i);
      run("prefill 12", all, { prefill: true });
      run("decode: 4 sequences (not folded)", all.slice(0, 4), { bitwiseDefault: true });
      for (let i = 0; i < 4; i++) run(`decode ${i}: 12 sequences`, all);
      run("decode: 4 sequences", all.slice(0, 4));
      run("decode: 12 sequences again", all);
      console.log(`decodeNormFold ${c.name}: ${report.join("; ")}; greedy ids equal to the default's ${sameIds}/${ids}`);
      assert.ok(fold.cuda!.numGraphs >= 1, "decode steps ran as graphs");
    } finally {
      fold.dispose();
      eager.dispose();
      def.dispose();
      cpu.dispose();
    }
  }, 300_000);
}
