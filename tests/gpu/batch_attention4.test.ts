/**
 * GPU: decode_attention_batch4 (`batchAttention4`, session 11) end to end on small random Llamas (head dims 64 and 128,
 * bf16 and e4m3 caches, G 4 / 2 / 12; skipped without a GPU): a 12-sequence prefill, then decode steps of 12 sequences
 * and of 4, as graphs and eagerly. batch4 sums in another order than batch2, so: its logits within the bound of
 * tests/gpu/batch_attention2.test.ts of the float32 CPU session (and as close as batch2's), graphs and eager bitwise
 * alike, and batch invariance — a session decoding only sequences 0..8 (9-sequence steps) gives those rows bitwise
 * the 12-sequence steps' logits. A 130-sequence case runs decode_attention_batch4w (BATCH4_WIDE_MIN_ROWS: bf16 cache, head
 * dim 128) beside batch2w; its 9-sequence subset steps would run batch4 under other cuBLASLt algorithms (decode linears of
 * more than 32 rows), so that case checks the accuracy and graphs = eager (batch2w's too; session 12 r1 once saw batch4w's
 * eager logits differ from its graphs', r2 not: the determinism test at the end repeats one such step).
 * The kernel alone vs float64: tools/cuda-kernel-check/decode_attention_batch4.py; the plan: tests/cuda_batch_attention3.test.ts.
 */
import { Session } from "../../lib/runtime/session.ts";
import { relL2 } from "../cuda_fake_plans.ts";
import { assert } from "../harness.ts";
import { attentionEngines, attentionSequences, BLOCKS_PER_SEQ, LENS12, SMALL_LLAMA as RAW } from "./batch_attention_setup.ts";
import { gpuTest } from "./gpu.ts";

const CASES = [
  { name: "hd128 G4, bf16 cache", raw: { ...RAW, num_attention_heads: 8, num_key_value_heads: 2, head_dim: 128 }, fp8: false },
  { name: "hd64 G12, bf16 cache", raw: { ...RAW, num_attention_heads: 12, num_key_value_heads: 1, head_dim: 64 }, fp8: false },
  { name: "hd128 G4, FP8 cache", raw: { ...RAW, num_attention_heads: 8, num_key_value_heads: 2, head_dim: 128 }, fp8: true },
  { name: "hd64 G2, FP8 cache", raw: { ...RAW, num_attention_heads: 4, num_key_value_heads: 2, head_dim: 64 }, fp8: true },
  { name: "hd128 G4, bf16 cache, 130 sequences (batch4w)", raw: { ...RAW, num_attention_heads: 8, num_key_value_heads: 2, head_dim: 128 }, fp8: false, n: 130 },
];
// The wide case adds short sequences to LENS12.
const lensOf = (n: number): number[] => n <= 12 ? [...LENS12] : [...LENS12, ...Array.from({ length: n - 12 }, (_, i) => ((i * 37) % 97) + 1)];

for (const c of CASES) {
  gpuTest(`decode_attention_batch4 (${c.name}): near the CPU session, graphs = eager, 9- and 12-sequence steps bitwise alike`, () => {
    const lens = lensOf(c.n ?? 12), n = lens.length;
    using engines = attentionEngines(c.raw, 47, c.fp8, { maxBatchSize: Math.max(16, n), maxNumTokens: n <= 12 ? 2048 : 8192 });
    const { engine, cpuEngine } = engines;
    const V = RAW.vocab_size;
    const on = { backend: "cuda" as const, batchAttention2: true, batchAttention4: true };
    const four = Session.fromSerializedEngine(engine, on);
    const eager = Session.fromSerializedEngine(engine, { ...on, cudaGraphs: false });
    const sub = Session.fromSerializedEngine(engine, on);
    const two = Session.fromSerializedEngine(engine, { backend: "cuda", batchAttention2: true, batchAttention4: false });
    // The wide case: batch2 eagerly too (whether its graphs and eager steps of n sequences agree bitwise).
    const wide = n > 12;
    const twoE = wide ? Session.fromSerializedEngine(engine, { backend: "cuda", batchAttention2: true, batchAttention4: false, cudaGraphs: false }) : null;
    const cpu = Session.fromSerializedEngine(cpuEngine, { backend: "cpu" });
    try {
      const numBlocks = n * BLOCKS_PER_SEQ;
      const kv4 = four.createKvCache(numBlocks), kvE = eager.createKvCache(numBlocks), kvS = sub.createKvCache(numBlocks);
      const kv2 = two.createKvCache(numBlocks), kvC = cpu.createKvCache(numBlocks), kv2E = twoE?.createKvCache(numBlocks);
      const seqs = attentionSequences(lens, V);
      const report: string[] = [];
      const bits = (x: Float32Array) => new Uint32Array(x.buffer);
      const run = (label: string, which: number[], prefill = false): void => {
        const mk = (w: number[]) => prefill ? seqs.prefill(w) : seqs.decode(w);
        const inp = mk(which);
        const R = which.length;
        const g4 = new Float32Array(R * V), gE = new Float32Array(R * V), g2 = new Float32Array(R * V), gc = new Float32Array(R * V);
        const i4 = new Int32Array(R), iE = new Int32Array(R), i2 = new Int32Array(R), ic = new Int32Array(R);
        cpu.run(inp, { logits: gc, sampledIds: ic }, kvC);
        four.run(inp, { logits: g4, sampledIds: i4 }, kv4);
        eager.run(inp, { logits: gE, sampledIds: iE }, kvE);
        two.run(inp, { logits: g2, sampledIds: i2 }, kv2);
        const dE = bits(gE).findIndex((v, i) => v !== bits(g4)[i]);
        if (twoE) {
          const g2E = new Float32Array(R * V);
          twoE.run(inp, { logits: g2E, sampledIds: new Int32Array(R) }, kv2E!);
          const d2 = bits(g2E).findIndex((v, i) => v !== bits(g2)[i]);
          report.push(
            `${label}: eager vs graphs: batch4 ${dE < 0 ? "bitwise" : `rel L2 ${relL2(gE, g4).toExponential(2)}`}, batch2 ${
              d2 < 0 ? "bitwise" : `rel L2 ${relL2(g2E, g2).toExponential(2)}`
            }`,
          );
          // The graph bucket is n itself (decodeBuckets' cap), so the linears see the same M either way: bitwise.
          assert.equal(d2, -1, `${label}: batch2's eager logits differ from its graphs' at ${d2}`);
        }
        assert.equal(dE, -1, `${label}: eager logits differ from the graphs' at ${dE}`);
        // The subset session: the same prefill, then only sequences 0..8 (steps of 9, still batch4's).
        const part = prefill ? which : wide ? [] : which.filter((s) => s < 9);
        if (part.length > 0) {
          const P = part.length, gS = new Float32Array(P * V), iS = new Int32Array(P);
          sub.run(mk(part), { logits: gS, sampledIds: iS }, kvS);
          part.forEach((s, r) => {
            const row = which.indexOf(s);
            const a = bits(gS).subarray(r * V, (r + 1) * V), b = bits(g4).subarray(row * V, (row + 1) * V);
            const d = a.findIndex((v, i) => v !== b[i]);
            assert.equal(d, -1, `${label}: sequence ${s} in a ${P}-sequence step differs from the ${R}-sequence step at ${d}`);
          });
        }
        const e4 = relL2(g4, gc), e2 = relL2(g2, gc);
        report.push(`${label}: vs CPU ${e4.toExponential(2)} (batch2 ${e2.toExponential(2)}), vs batch2 ${relL2(g4, g2).toExponential(2)}`);
        const bound = c.fp8 ? 0.08 : 0.05;
        assert.ok(e4 < bound && Number.isFinite(e4), `${label}: logits rel L2 ${e4} vs the CPU session`);
        assert.ok(e4 < 2 * e2 + 0.01, `${label}: batch4 ${e4} vs the CPU, batch2 ${e2}`);
        if (prefill) return;
        seqs.advance(which, ic); // follow the CPU's ids (every session sees the same tokens)
      };
      const all = lens.map((_, i) => i);
      run(`prefill ${n}`, all, true);
      for (let i = 0; i < 3; i++) run(`decode ${i}: ${n} sequences`, all);
      run("decode: 4 sequences", all.slice(0, 4));
      run(`decode: ${n} sequences again`, all);
      console.log(`batch4 ${c.name}: ${report.join("; ")}`);
      assert.ok(four.cuda!.numGraphs >= 1, "decode steps ran as graphs");
    } finally {
      four.dispose();
      eager.dispose();
      sub.dispose();
      two.dispose();
      twoE?.dispose();
      cpu.dispose();
    }
  }, 300_000);
}

gpuTest("decode_attention_batch4w / batch2w: one 130-sequence decode step repeated, as graphs and eagerly: the same bits every time", () => {
  const raw = { ...RAW, num_attention_heads: 8, num_key_value_heads: 2, head_dim: 128 };
  const lens = lensOf(130), n = lens.length, V = RAW.vocab_size, REPS = 12;
  using engines = attentionEngines(raw, 47, false, { maxBatchSize: n, maxNumTokens: 8192 });
  const mk = (batchAttention4: boolean, cudaGraphs: boolean) =>
    Session.fromSerializedEngine(engines.engine, { backend: "cuda", batchAttention2: true, batchAttention4, cudaGraphs });
  const names = ["batch4w graphs", "batch4w eager", "batch2w graphs", "batch2w eager"];
  const sessions = [mk(true, true), mk(true, false), mk(false, true), mk(false, false)];
  try {
    const kvs = sessions.map((s) => s.createKvCache(n * BLOCKS_PER_SEQ));
    const seqs = attentionSequences(lens, V);
    const all = lens.map((_, i) => i);
    const runAll = (inp: ReturnType<typeof seqs.decode>): Uint32Array[] =>
      sessions.map((s, i) => {
        const logits = new Float32Array(n * V);
        s.run(inp, { logits, sampledIds: new Int32Array(n) }, kvs[i]);
        return new Uint32Array(logits.buffer);
      });
    runAll(seqs.prefill(all));
    // The step rewrites each sequence's own KV entry with the same values: every repeat must give the first one's bits.
    const inp = seqs.decode(all);
    const first = runAll(inp);
    const differs = names.map(() => 0);
    for (let r = 1; r < REPS; r++) {
      runAll(inp).forEach((x, i) => {
        if (x.some((v, j) => v !== first[i][j])) differs[i]++;
      });
    }
    const eagerVsGraphs = [0, 2].map((i) => first[i].findIndex((v, j) => v !== first[i + 1][j]));
    console.log(
      `130-sequence decode step x ${REPS}: repeats differing from the first ${names.map((nm, i) => `${nm} ${differs[i]}`).join(", ")}; ` +
        `eager vs graphs first index differing: batch4w ${eagerVsGraphs[0]}, batch2w ${eagerVsGraphs[1]}`,
    );
    assert.deepEqual(differs, [0, 0, 0, 0], "repeats of one step gave other bits");
    assert.deepEqual(eagerVsGraphs, [-1, -1], "eager logits differ from the graphs'");
  } finally {
    for (const s of sessions) s.dispose();
  }
}, 300_000);
