// Speculative verify steps on the CUDA launch plan, checked without a GPU on the fake device of
// tests/cuda_fake_device.ts: the executor packs a sequence's last token and drafts as one-token
// sequences over its block table (StepInputs.readsStepKv), so the step is a decode step (graph
// bucket); the fused bf16 plan then keeps rope_kv_write ahead of decode_attention. The verify rows'
// logits must be the bits of decoding the same tokens one step at a time, and without the flag the
// stand-in must catch decode_attention reading keys that other blocks of its launch are writing.
import { buildSync } from "../lib/builder/builder.ts";
import type { StepInputs } from "../lib/ir/step_io.ts";
import { prepareStepInputs } from "../lib/executor/step_builder.ts";
import { SequenceGroup } from "../lib/executor/sequence.ts";
import type { ScheduledChunk } from "../lib/executor/scheduler.ts";
import { FakeCudaSession, randomModel, step } from "./cuda_fake_device.ts";
import { maxVerifyTokens } from "../lib/backends/cuda/verify_cap.ts";
import { graphDecodeSplit, planLaunches } from "../lib/backends/cuda/launch_plan.ts";
import { assert, test } from "./harness.ts";

const RAW = {
  architectures: ["LlamaForCausalLM"],
  model_type: "llama",
  vocab_size: 97,
  hidden_size: 128,
  intermediate_size: 96,
  num_hidden_layers: 2,
  max_position_embeddings: 256,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  head_dim: 64,
};
const BUILD = { backend: "cuda" as const, maxBatchSize: 8, maxNumTokens: 64, maxSeqLen: 64, tokensPerBlock: 4 };
const BLOCKS = Array.from({ length: 16 }, (_, i) => i);

/** `ids` at positions pos, pos + 1, … as one-token sequences over BLOCKS, a greedy row each. */
function verifyStep(ids: number[], pos: number, readsStepKv: boolean): StepInputs {
  const s = step(ids.map((id, i) => ({ ids: [id], pos: pos + i, blocks: BLOCKS })), BLOCKS.length);
  s.sampling!.temperature.fill(0);
  return readsStepKv ? { ...s, readsStepKv } : s;
}

test("fake CUDA: a verify step (one-token sequences, readsStepKv) runs as a graph bucket with the decode steps' logits bits (fused bf16, hd64)", () => {
  const model = randomModel(RAW, 3, true);
  const engine = (() => {
    try {
      return buildSync(model, { ...BUILD, dtype: "bfloat16" });
    } finally {
      model.close();
    }
  })();
  const prompt = Array.from({ length: 11 }, (_, i) => (13 * i + 5) % 97);
  const greedy = (s: StepInputs): StepInputs => {
    s.sampling!.temperature.fill(0);
    return s;
  };
  for (const fusedDecode of [true, false]) {
    // Decoding one token per step.
    const dec = new FakeCudaSession(engine, 16, 132, false, { fusedDecode, batchInvariant: true });
    let r = dec.run(greedy(step([{ ids: prompt, pos: 0, blocks: BLOCKS }], BLOCKS.length)));
    const ids = [r.ids[0]], rows: Float32Array[] = [];
    for (let i = 0; i < 5; i++) {
      r = dec.run(greedy(step([{ ids: [ids[i]], pos: prompt.length + i, blocks: BLOCKS }], BLOCKS.length)));
      rows.push(r.logits);
      ids.push(r.ids[0]);
    }
    // Verifying the same 5 tokens in one step.
    const ver = new FakeCudaSession(engine, 16, 132, false, { fusedDecode, batchInvariant: true });
    ver.mem.strictKvReads = true;
    ver.run(greedy(step([{ ids: prompt, pos: 0, blocks: BLOCKS }], BLOCKS.length)));
    const graphs = ver.graphSteps;
    const v = ver.run(verifyStep(ids.slice(0, 5), prompt.length, true));
    assert.equal(ver.graphSteps, graphs + 1, "the verify step should run as a decode graph bucket");
    const names = ver.lastLaunches.map((l) => (l.kind === "kernel" ? l.kernel : "gemm"));
    if (fusedDecode) {
      const da = names.findIndex((n) => n.startsWith("decode_attention")), rope = names.indexOf("rope_kv_write_bf16");
      assert.ok(da >= 0 && rope >= 0 && rope < da, `fused verify plan: ${names.join(", ")}`);
    }
    const V = 97;
    for (let i = 0; i < 5; i++) {
      assert.equal(v.ids[i], ids[i + 1], `fusedDecode ${fusedDecode}: verify row ${i} argmax`);
      for (let j = 0; j < V; j++) {
        assert.ok(Object.is(v.logits[i * V + j], rows[i][j]), `fusedDecode ${fusedDecode}: row ${i} logit ${j}: ${v.logits[i * V + j]} vs ${rows[i][j]}`);
      }
    }
    if (fusedDecode) {
      // Without the flag the fused plan lets decode_attention read keys other blocks of the launch write.
      const bad = new FakeCudaSession(engine, 16, 132, false, { fusedDecode, batchInvariant: true });
      bad.mem.strictKvReads = true;
      bad.run(greedy(step([{ ids: prompt, pos: 0, blocks: BLOCKS }], BLOCKS.length)));
      assert.throws(() => bad.run(verifyStep(ids.slice(0, 5), prompt.length, false)), /same launch writes/);
    }
  }
});

test("prepareStepInputs: a verify chunk packs as one-token sequences (readsStepKv) within maxSeqs, else as one chunk", () => {
  const g = new SequenceGroup(0, [1, 2, 3, 4, 5, 6], { arrival: 0 });
  const seq = g.seqs[0];
  seq.tokenIds.push(7, 8, 9); // the last token (6) and 3 drafts after it... as the speculator appends them
  seq.numDraftTokens = 3;
  seq.blockTable.push(0, 1);
  const chunk: ScheduledChunk = { seq, start: 5, numTokens: 4, numRows: 4, promptRows: [0, 0] };
  const split = prepareStepInputs([chunk], 8, 8);
  assert.equal(split.inputs.readsStepKv, true);
  assert.deepEqual(Array.from(split.inputs.seqStarts), [0, 1, 2, 3, 4]);
  assert.deepEqual(Array.from(split.inputs.positions), [5, 6, 7, 8]);
  assert.deepEqual(Array.from(split.inputs.tokenIds), [6, 7, 8, 9]);
  assert.deepEqual(Array.from(split.inputs.logitRows), [0, 1, 2, 3]);
  assert.deepEqual(split.rows.map((r) => r.position), [5, 6, 7, 8]);
  assert.equal(split.packedSeqs.length, 4);
  const whole = prepareStepInputs([chunk], 8, 3);
  assert.equal(whole.inputs.readsStepKv, undefined);
  assert.deepEqual(Array.from(whole.inputs.seqStarts), [0, 4]);
  assert.deepEqual(Array.from(whole.inputs.logitRows), [0, 1, 2, 3]);
});

test("maxVerifyTokens: the decode buckets whose plan runs bucket 1's kernels (hidden 128: all 8; hidden 1032: 4, the RMSNorm leaves the GEMV prologue at 8)", () => {
  const capOf = (hidden: number): number => {
    const raw = { ...RAW, hidden_size: hidden, num_attention_heads: 2, num_key_value_heads: 1 };
    const model = randomModel(raw, 9, true, 0.05);
    let engine;
    try {
      engine = buildSync(model, { ...BUILD, dtype: "bfloat16" });
    } finally {
      model.close();
    }
    const f = new FakeCudaSession(engine, 16, 132, true, { fusedDecode: true, batchInvariant: true });
    const att = { kind: "decode" as const, ...graphDecodeSplit(1, 1, 2, BUILD.maxSeqLen, "bf16", 132) };
    return maxVerifyTokens(f.env, f.buckets, () => att);
  };
  assert.equal(capOf(128), 8);
  assert.equal(capOf(1032), 4);
});

test("a fused verify plan with PDL: decode_attention waits for rope_kv_write (no early start); plain decode keeps PDL on it", () => {
  const model = randomModel(RAW, 3, true);
  let engine;
  try {
    engine = buildSync(model, { ...BUILD, dtype: "bfloat16" });
  } finally {
    model.close();
  }
  const f = new FakeCudaSession(engine, 16, 132, true, { fusedDecode: true, batchInvariant: true });
  const att = { kind: "decode" as const, ...graphDecodeSplit(1, 2, 2, BUILD.maxSeqLen, "bf16", 132) };
  const plan = (writeKvFirst: boolean) =>
    planLaunches({ ...f.env, pdl: true }, { numTokens: 8, numSeqs: 8, numRows: 8, attention: att, sample: true, writeKvFirst })
      .filter((l) => l.kind === "kernel" && l.kernel.startsWith("decode_attention"));
  const verify = plan(true), decode = plan(false);
  assert.ok(verify.length > 0 && verify.every((l) => l.kind === "kernel" && !l.pdl), "verify: decode_attention without pdl");
  assert.ok(decode.length > 0 && decode.every((l) => l.kind === "kernel" && l.pdl === true), "decode: decode_attention with pdl");
});
