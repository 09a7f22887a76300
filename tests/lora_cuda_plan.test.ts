// Multi-LoRA in the CUDA launch plan, checked on the fake device: a step whose sequences use two
// different adapters (3 segments on the fused QKV, 2 on gate/up, one elsewhere) and none, prefill
// and decode (eager and as a padded graph bucket), gives the CPU session's logits (its applyLora reference) and sampled ids; the adapter
// tables are uploaded once per slot change, the step's launches carry a lora_shrink and a lora_expand per targeted
// linear and no fused decode launches.
import { buildSync } from "../lib/builder/builder.ts";
import type { Engine } from "../lib/builder/engine.ts";
import { CpuSession } from "../lib/backends/cpu/session.ts";
import type { LoraAdapterWeights, LoraSegment, StepInputs } from "../lib/ir/step_io.ts";
import { FakeCudaSession, maxRelDiff, randomModel, rng, step } from "./cuda_fake_device.ts";
import { assert, test } from "./harness.ts";

/** Random adapter deltas on every token-row linear of `engine`: `parts` segments on the weights named in it. */
export function randomAdapter(engine: Engine, rank: number, seed: number, parts: Record<string, number>): LoraAdapterWeights {
  const r = rng(seed);
  const w = new Map<string, LoraSegment[]>();
  for (const op of engine.plan.ops) {
    if (op.type !== "linear" || engine.plan.buffers[op.x].rows !== "tokens") continue;
    const n = Object.entries(parts).find(([k]) => op.weight.includes(k))?.[1] ?? 1;
    const width = Math.floor(op.outFeatures / n);
    w.set(
      op.weight,
      Array.from({ length: n }, (_, k) => ({
        outOffset: k * width,
        outFeatures: k === n - 1 ? op.outFeatures - k * width : width - 1, // a gap between segments
        rank,
        a: Float32Array.from({ length: rank * op.inFeatures }, () => r() * 0.2),
        b: Float32Array.from({ length: (k === n - 1 ? op.outFeatures - k * width : width - 1) * rank }, () => r() * 0.2),
        scaling: 2 / rank,
      })),
    );
  }
  return w;
}

test("CUDA launch plan with multi-LoRA on the fake device equals the CPU session's applyLora (two adapters and none in one step, prefill and decode)", () => {
  const model = randomModel(
    {
      architectures: ["LlamaForCausalLM"],
      model_type: "llama",
      vocab_size: 97,
      hidden_size: 64,
      intermediate_size: 96,
      num_hidden_layers: 2,
      max_position_embeddings: 256,
      num_attention_heads: 4,
      num_key_value_heads: 2,
      head_dim: 16,
    },
    5,
  );
  let engine: Engine;
  try {
    engine = buildSync(model, { backend: "cuda", dtype: "float32", maxBatchSize: 6, maxNumTokens: 64, maxSeqLen: 96, tokensPerBlock: 4 });
  } finally {
    model.close();
  }
  const cpu = new CpuSession(engine);
  const kv = cpu.createKvCache(40);
  const kvBase = cpu.createKvCache(40); // the same steps without adapters
  const fake = new FakeCudaSession(engine, 40);
  const V = engine.plan.attributes.vocabSize;
  const slots = [randomAdapter(engine, 4, 1, { qkv: 3, gate: 2 }), null, randomAdapter(engine, 8, 2, {})];
  const adapterIds = Int32Array.of(0, -1, 2);
  const seqs = [
    { ids: [1, 5, 9, 33, 2], blocks: [0, 1, 2, 3, 4, 5] },
    { ids: [4, 4, 90], blocks: [6, 7, 8, 9, 10, 11] },
    { ids: [50, 1, 2, 3], blocks: [12, 13, 14, 15, 16, 17] },
  ];
  const check = (what: string, inp: StepInputs, graphs = false): number[] => {
    const R = inp.logitRows.length;
    const want = { logits: new Float32Array(R * V), sampledIds: new Int32Array(R) };
    const withLora = { ...inp, adapterIds, loraSlots: slots };
    cpu.run(withLora, want, kv);
    const got = fake.run(withLora, graphs);
    const rel = maxRelDiff(got.logits, want.logits);
    assert.ok(rel < 1e-5, `${what}: logits differ from the CPU's (max rel ${rel.toExponential(2)})`);
    assert.deepEqual(Array.from(got.ids), Array.from(want.sampledIds), `${what}: sampled ids`);
    const loraLaunches = fake.lastLaunches.filter((l) => l.kind === "kernel" && l.kernel === "lora_shrink_f32").length;
    const targeted = engine.plan.ops.filter((o) => o.type === "linear" && engine.plan.buffers[o.x].rows === "tokens").length;
    assert.equal(loraLaunches, targeted, `${what}: one lora_shrink per targeted linear`);
    assert.ok(!fake.lastLaunches.some((l) => l.kind === "kernel" && /fused|decode_attention/.test(l.kernel)), `${what}: no fused decode launches`);
    // The adapters changed the rows of sequences 0 and 2 and left sequence 1's alone.
    const base = { logits: new Float32Array(R * V), sampledIds: new Int32Array(R) };
    cpu.run(inp, base, kvBase);
    assert.ok(maxRelDiff(want.logits.subarray(0, V), base.logits.subarray(0, V)) > 1e-3, `${what}: adapter 0 changes its row`);
    assert.ok(maxRelDiff(want.logits.subarray(V, 2 * V), base.logits.subarray(V, 2 * V)) === 0, `${what}: no adapter, no change`);
    return Array.from(want.sampledIds);
  };
  let last = check("prefill", step(seqs.map((s) => ({ ids: s.ids, pos: 0, blocks: s.blocks })), 6));
  const pos = seqs.map((s) => s.ids.length);
  for (let i = 0; i < 4; i++) {
    const graphs = i % 2 === 1;
    const inp = step(seqs.map((s, j) => ({ ids: [last[j]], pos: pos[j]++, blocks: s.blocks })), 6);
    last = check(`decode ${i} (${graphs ? "graph bucket 4, a dummy row without adapter" : "eager"})`, inp, graphs);
  }
  assert.equal(fake.graphSteps, 2, "LoRA decode steps run as graphs too");
});
