// CudaFlags.eagerBucketGemm, checked on the fake device: an eager decode step of T sequences (T ≤ the decode cap) plans
// every per-M tuned GEMM (not batch-invariant) with GemmLaunch.pickM = T's graph bucket, so cuBLASLt picks its algorithm as
// the bucket's graph does (GemmArgs.pickM); batch-invariant GEMMs, prefill steps, graphs and steps of a bucket's own size
// carry none, and the launches are otherwise the default plan's (same bits on the fake device). bf16 and FP8 engines. The
// cuBLASLt side (pickM picks the graph's algorithm; rows bitwise the graph's): tests/gpu/eager_bucket_gemm.test.ts.
import type { GemmLaunch, Launch } from "../lib/backends/cuda/launch_types.ts";
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
  hidden_size: 256,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  head_dim: 64,
};
// The session's defaults that shape these steps (the fake device takes no table defaults).
const ON = {
  fusedDecode: true,
  batchInvariant: true,
  batchAttention: true,
  batchAttention2: true,
  batchAttention4: true,
  fp8FusedQuant: true,
  fp8Gemv1: true,
  gemmResidual: true,
  fp8GemmResidual: true,
  decodeSplitK: true,
  gemvXPre: true,
};
const B = 3;
const gemms = (ls: readonly Launch[]): GemmLaunch[] => ls.filter((l): l is GemmLaunch => l.kind === "gemm");
const withoutPick = (ls: readonly Launch[]): Launch[] =>
  ls.map((l) => {
    if (l.kind !== "gemm") return l;
    const { pickM: _, ...rest } = l;
    return rest;
  });

for (const fp8 of [false, true]) {
  test(`eagerBucketGemm${fp8 ? " (FP8 linears)" : ""}: a 12-sequence eager decode step's per-M tuned GEMMs pick as bucket 16; nothing else changes`, () => {
    const model = randomModel(raw, 31, true, 0.1);
    const q = fp8 ? quantizeSync(model, { quantAlgo: "FP8" }, { calibration: [Array.from({ length: 24 }, (_, i) => (i * 5 + 1) % 64)] }) : model;
    const engine = buildSync(q, { backend: "cuda", dtype: "bfloat16", maxBatchSize: 16, maxNumTokens: 256, maxSeqLen: 96, tokensPerBlock: 4 });
    if (q !== model) q.close();
    model.close();
    const seqs = Array.from({ length: 16 }, (_, s) => ({
      ids: Array.from({ length: 2 + (s % 5) }, (_, i) => (s * 7 + i * 11 + 1) % 64),
      blocks: Array.from({ length: B }, (_, j) => B * s + j),
    }));
    const decode = (n: number, d: number) => step(seqs.slice(0, n).map((x, s) => ({ ids: [(s * 3 + d) % 64], pos: x.ids.length + d, blocks: x.blocks })), B);
    const runs = [false, true].map((eagerBucketGemm) => {
      const fake = new FakeCudaSession(engine, 16 * B + 2, 132, false, { ...ON, eagerBucketGemm });
      const out: { what: string; launches: Launch[]; logits: Float32Array }[] = [];
      const run = (what: string, inp: ReturnType<typeof step>, graphs: boolean): void => {
        const r = fake.run(inp, graphs);
        out.push({ what, launches: fake.lastLaunches, logits: r.logits });
      };
      run("prefill 12", step(seqs.slice(0, 12).map((x) => ({ ids: x.ids, pos: 0, blocks: x.blocks })), B), false);
      run("decode 12 eager", decode(12, 0), false);
      run("decode 12 graph", decode(12, 1), true);
      run("decode 3 eager", decode(3, 2), false);
      return out;
    });
    const [off, on] = runs;
    for (let i = 0; i < on.length; i++) {
      const what = on[i].what;
      assert.deepEqual(withoutPick(on[i].launches), off[i].launches, `${what}: the default plan's launches but pickM`);
      assert.deepEqual(Array.from(on[i].logits), Array.from(off[i].logits), `${what}: the same logits`);
      assert.ok(gemms(off[i].launches).every((g) => g.pickM === undefined), `${what}, default: no pickM`);
    }
    const eager12 = gemms(on[1].launches), graph12 = gemms(on[2].launches);
    const tuned = eager12.filter((g) => !g.invariant);
    // qkv, o, gate_up, down per layer (> 8 rows: not batch-invariant); the lm_head too (decodeLogitsTuned is not set here).
    assert.equal(tuned.length, 4 * raw.num_hidden_layers, "the decode linears of a 12-sequence step are tuned per M");
    for (const g of eager12) {
      assert.equal(g.m, 12);
      assert.equal(g.pickM, g.invariant ? undefined : 16, `op ${g.op}: pickM`);
    }
    if (fp8) assert.ok(tuned.every((g) => g.dtype === "fp8e4m3"), "FP8 GEMMs carry pickM");
    // The graph of bucket 16 runs the same GEMMs at 16 rows, with no pickM.
    assert.deepEqual(graph12.map((g) => [g.op, g.m, g.n, g.k, g.invariant, g.pickM]), eager12.map((g) => [g.op, 16, g.n, g.k, g.invariant, undefined]));
    // Prefill and 3-row steps (GEMVs; the invariant lm_head): nothing to pick.
    for (const i of [0, 3]) assert.ok(gemms(on[i].launches).every((g) => g.pickM === undefined), `${on[i].what}: no pickM`);
  });
}

test("eagerBucketGemm, batchInvariant off: the lm_head of a 3-sequence eager decode step picks as bucket 4", () => {
  const model = randomModel(raw, 37, true, 0.1);
  const engine = buildSync(model, { backend: "cuda", dtype: "bfloat16", maxBatchSize: 8, maxNumTokens: 64, maxSeqLen: 96, tokensPerBlock: 4 });
  model.close();
  const fake = new FakeCudaSession(engine, 8 * B + 2, 132, false, { eagerBucketGemm: true });
  const seqs = Array.from({ length: 3 }, (_, s) => ({ ids: [s + 1, s + 2], blocks: Array.from({ length: B }, (_, j) => B * s + j) }));
  fake.run(step(seqs.map((x) => ({ ids: x.ids, pos: 0, blocks: x.blocks })), B), false);
  fake.run(step(seqs.map((x, s) => ({ ids: [s + 5], pos: 2, blocks: x.blocks })), B), false);
  const g = gemms(fake.lastLaunches);
  assert.equal(g.length, 1, "the lm_head alone (the linears on the skinny-GEMM kernel)");
  assert.deepEqual([g[0].m, g[0].outDtype, g[0].invariant, g[0].pickM], [3, "fp32", false, 4]);
});
