// Last-layer pruning (lib/backends/cuda/last_layer_rows.ts) on the fake CUDA device: a prefill / mixed step runs
// its last layer past the KV write over the logits rows only. The logits must be the same bits as the unpruned
// step's (f32 and bf16 stand-ins compute each row on its own), the KV cache the same, and the launches must show
// the gathers and the last layer's linears at M = logits rows.
import { buildSync } from "../lib/builder/builder.ts";
import type { Engine } from "../lib/builder/engine.ts";
import { planLastLayerRows } from "../lib/backends/cuda/last_layer_rows.ts";
import { logitRowsIncreasing, packStep, stagingLayout } from "../lib/backends/cuda/step_staging.ts";
import type { StepInputs } from "../lib/ir/step_io.ts";
import { FakeCudaSession, randomModel, step } from "./cuda_fake_device.ts";
import { assert, test } from "./harness.ts";

const LLAMA = {
  vocab_size: 101,
  hidden_size: 64,
  intermediate_size: 96,
  num_hidden_layers: 2,
  max_position_embeddings: 256,
  architectures: ["LlamaForCausalLM"],
  model_type: "llama",
  num_attention_heads: 4,
  num_key_value_heads: 1,
  head_dim: 64,
};

function engineOf(dtype: "float32" | "bfloat16", raw: Record<string, unknown> = LLAMA): Engine {
  const model = randomModel(raw, 11);
  try {
    return buildSync(model, { backend: "cuda", dtype, maxBatchSize: 6, maxNumTokens: 64, maxSeqLen: 96, tokensPerBlock: 4 });
  } finally {
    model.close();
  }
}

test("planLastLayerRows: llama gathers the queries and the residual stream at the last attention", () => {
  const e = engineOf("float32");
  const p = planLastLayerRows(e.plan, 6)!;
  assert.ok(p, "a llama plan prunes");
  assert.equal(e.plan.ops[p.cut].type, "paged_attention");
  assert.deepEqual(p.gathers.map((g) => g.name), ["layers.1.q", "hidden"]);
  assert.deepEqual(p.gathers.map((g) => g.width), [256, 64]);
  assert.equal(p.aliases.size, 1);
  assert.ok(p.scratchBytes >= 6 * (256 + 64) * 4);
});

test("packStep: logits rows' positions and per-sequence starts (a sequence without logits rows included)", () => {
  const L = stagingLayout(64, 6, 24);
  const host = new ArrayBuffer(L.words * 4);
  const i32 = new Int32Array(host), f32 = new Float32Array(host), u32 = new Uint32Array(host);
  const inp = step([{ ids: [1, 2, 3], pos: 4, blocks: [1, 2] }, { ids: [5, 6], pos: 0, blocks: [3] }, { ids: [7, 8, 9, 10], pos: 2, blocks: [4, 5] }], 30);
  const noMiddle: StepInputs = { ...inp, logitRows: Int32Array.of(2, 8), sampling: undefined };
  packStep(L, i32, f32, u32, noMiddle, null);
  const o = L.offsets;
  assert.deepEqual(Array.from(i32.subarray(o.logitPositions, o.logitPositions + 2)), [6, 5]);
  assert.deepEqual(Array.from(i32.subarray(o.logitSeqStarts, o.logitSeqStarts + 4)), [0, 1, 1, 2]);
  assert.ok(logitRowsIncreasing(noMiddle));
  assert.ok(!logitRowsIncreasing({ ...inp, logitRows: Int32Array.of(8, 2) }));
});

for (const dtype of ["float32", "bfloat16"] as const) {
  test(`pruned last layer: same logits bits and KV cache as the full step (${dtype})`, () => {
    const e = engineOf(dtype);
    const numBlocks = 40;
    const full = new FakeCudaSession(e, numBlocks, 132, false, { pruneLastLayer: false, batchInvariant: true });
    const pruned = new FakeCudaSession(e, numBlocks, 132, false, { pruneLastLayer: true, batchInvariant: true });
    const V = e.plan.attributes.vocabSize;
    const perm = Array.from({ length: numBlocks }, (_, i) => (i * 17 + 3) % numBlocks);
    const seqs = [
      { ids: [1, 5, 9, 33, 2, 7, 8, 21, 14, 3, 60], blocks: perm.slice(0, 8) },
      { ids: [4, 4, 90], blocks: perm.slice(8, 16) },
      { ids: [100, 1, 2, 3, 4, 5, 6], blocks: perm.slice(16, 24) },
    ];
    const same = (what: string, inp: StepInputs): void => {
      const a = full.run(inp), b = pruned.run(inp);
      const x = new Uint32Array(a.logits.buffer), y = new Uint32Array(b.logits.buffer);
      for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) assert.fail(`${what}: logit ${i} (row ${Math.floor(i / V)}) ${a.logits[i]} vs ${b.logits[i]}`);
      assert.deepEqual(Array.from(b.ids), Array.from(a.ids), `${what}: sampled ids`);
      const layerBytes = full.env.kvLayerBytes * e.plan.attributes.numLayers;
      const ka = full.mem.bytes(full.env.kvBase, layerBytes), kb = pruned.mem.bytes(pruned.env.kvBase, layerBytes);
      for (let i = 0; i < ka.length; i++) if (ka[i] !== kb[i]) assert.fail(`${what}: KV byte ${i} differs`);
    };
    const prefill = step(seqs.map((s) => ({ ids: s.ids.slice(0, -2), pos: 0, blocks: s.blocks })), 30);
    same("prefill of 3", prefill);
    const gathers = pruned.lastLaunches.filter((l) => l.kind === "kernel" && l.kernel.startsWith("gather_rows"));
    assert.equal(gathers.length, 2, "pruned: the queries and the residual gathered, the final gather_rows skipped");
    const cut = planLastLayerRows(e.plan, 6)!.cut;
    const lastLinears = pruned.lastLaunches.filter((l) => l.op > cut && (l.kind === "gemm" || (l.kind === "kernel" && l.kernel.startsWith("gemv"))));
    for (const l of lastLinears) if (l.kind === "gemm") assert.equal(l.m, 3, `op ${l.op}: M = the logits rows`);
    // Mixed: a chunk without a logits row between two sequences that end their prompts.
    const mixed = step(seqs.map((s) => ({ ids: s.ids.slice(-2), pos: s.ids.length - 2, blocks: s.blocks })), 30);
    same("mixed, middle sequence without logits", { ...mixed, logitRows: Int32Array.of(1, 5), sampling: undefined });
    same("mixed, every sequence", mixed);
    // Not increasing: the full step (no gathers).
    const swapped = { ...mixed, logitRows: Int32Array.of(5, 1), sampling: undefined };
    same("logits rows out of order", swapped);
    assert.ok(!pruned.lastLaunches.some((l) => l.kind === "kernel" && l.kernel.startsWith("gather_rows") && l.op === cut), "out of order: no pruning");
  });
}
