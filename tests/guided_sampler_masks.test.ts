// Guided decoding's masks in the sampler (SamplingInputs.tokenMasks): the host helper, the CPU
// session, the CUDA launch plan on the fake device (forward, then apply_token_mask + sample_f32, as
// the CUDA session runs a masked step, eager and as a padded decode bucket), and end to end: a
// guided request whose mask goes to the sampler gives exactly the tokens of the host-masked path.
import { z } from "zod";
import { buildSync } from "../lib/builder/builder.ts";
import { CpuSession } from "../lib/backends/cpu/session.ts";
import { applyTokenMask, applyTokenMasks, sampleRow, type SamplingInputs, type TokenMasks } from "../lib/ir/sampling.ts";
import type { StepInputs } from "../lib/ir/step_io.ts";
import { LLM } from "../lib/llmapi/llm.ts";
import { FakeCudaSession, randomModel, rng, step } from "./cuda_fake_device.ts";
import { assert, test, testLlm } from "./harness.ts";

/** Random masks of `count` × ceil(V / 32) words, each allowing about `density` of the ids (at least one). */
function randomMasks(count: number, V: number, density: number, seed: number): Int32Array {
  const r = rng(seed), words = Math.ceil(V / 32);
  const m = new Int32Array(count * words);
  for (let i = 0; i < count; i++) {
    for (let id = 0; id < V; id++) if ((r() + 1) / 2 < density) m[i * words + (id >> 5)] |= 1 << (id & 31);
    const keep = (i * 37) % V;
    m[i * words + (keep >> 5)] |= 1 << (keep & 31);
  }
  return m;
}

test("applyTokenMask / applyTokenMasks: -inf exactly where the bit is 0, rows share masks, -1 rows untouched, the function form is called once", () => {
  const V = 70, words = 3;
  const masks = randomMasks(2, V, 0.3, 5);
  const logits = Float32Array.from({ length: 4 * V }, (_, i) => Math.sin(i));
  const raw = logits.slice();
  let calls = 0;
  const tm: TokenMasks = { words, rowMask: Int32Array.of(1, -1, 0, 1), count: 2, masks: (into) => (calls++, into.set(masks)) };
  const s = {
    temperature: new Float32Array(4),
    topK: new Int32Array(4),
    topP: new Float32Array(4).fill(1),
    minP: new Float32Array(4),
    seed: new Uint32Array(8),
    step: new Int32Array(4),
    tokenMasks: tm,
  };
  applyTokenMasks(logits, V, s, 4);
  assert.equal(calls, 1);
  [1, -1, 0, 1].forEach((m, r) => {
    for (let i = 0; i < V; i++) {
      const allowed = m < 0 || ((masks[m * words + (i >> 5)] >>> (i & 31)) & 1) === 1;
      assert.equal(logits[r * V + i], allowed ? raw[r * V + i] : -Infinity, `row ${r} id ${i}`);
    }
  });
  const row = Float32Array.of(1, -Infinity, 3, 4);
  assert.equal(applyTokenMask(row, 0, 4, Int32Array.of(0b1011)), 2, "allowed and finite: ids 0 and 3");
  assert.deepEqual(Array.from(row), [1, -Infinity, -Infinity, 4]);
});

test("CUDA launch plan on the fake device: a masked step (eager and padded decode bucket) samples what the host-masked CPU sampler does", () => {
  const model = randomModel(
    {
      vocab_size: 101,
      hidden_size: 64,
      intermediate_size: 96,
      num_hidden_layers: 2,
      max_position_embeddings: 256,
      architectures: ["LlamaForCausalLM"],
      model_type: "llama",
      num_attention_heads: 4,
      num_key_value_heads: 2,
      head_dim: 32,
    },
    3,
  );
  let engine;
  try {
    engine = buildSync(model, { backend: "cuda", dtype: "float32", maxBatchSize: 6, maxNumTokens: 64, maxSeqLen: 96, tokensPerBlock: 4 });
  } finally {
    model.close();
  }
  const V = engine.plan.attributes.vocabSize, words = Math.ceil(V / 32);
  const cpu = new CpuSession(engine);
  const kv = cpu.createKvCache(40);
  const fake = new FakeCudaSession(engine, 40);
  const seqs = [
    { ids: [1, 5, 9, 33], blocks: [0, 1, 2, 3, 4, 5] },
    { ids: [4, 4, 90, 7, 7], blocks: [6, 7, 8, 9, 10, 11] },
    { ids: [100, 1], blocks: [12, 13, 14, 15, 16, 17] },
  ];
  let calls = 0;
  const withMasks = (inp: StepInputs, seed: number): StepInputs => {
    const R = inp.logitRows.length;
    const masks = randomMasks(2, V, seed % 2 ? 0.05 : 0.5, seed);
    const rowMask = Int32Array.from({ length: R }, (_, r) => (r === 1 ? -1 : r % 2)); // row 1 unmasked; rows 0 and 2 differ
    const s: SamplingInputs = {
      ...inp.sampling!,
      temperature: Float32Array.from({ length: R }, (_, r) => [0, 0.9, 1.3][r % 3]),
      tokenMasks: { words, rowMask, count: 2, masks: (into) => (calls++, into.set(masks)) },
    };
    return { ...inp, sampling: s };
  };
  const check = (what: string, inp: StepInputs, graphs: boolean): number[] => {
    const R = inp.logitRows.length;
    const raw = new Float32Array(R * V);
    cpu.run(inp, { logits: raw, sampledIds: new Int32Array(R) }, kv);
    // The host path: mask each row, then sampleRow.
    const masked = raw.slice();
    applyTokenMasks(masked, V, inp.sampling!, R);
    const want = Array.from({ length: R }, (_, r) => sampleRow(masked, r * V, V, inp.sampling!, r));
    const before = calls;
    const got = fake.run(inp, graphs);
    assert.equal(calls, before + 1, `${what}: the masks are computed once per step`);
    assert.deepEqual(Array.from(got.ids), want, `${what}: sampled ids`);
    for (let i = 0; i < R * V; i++) {
      if (masked[i] === -Infinity) assert.equal(got.logits[i], -Infinity, `${what}: logit ${i} is masked on the device`);
      else assert.ok(Math.abs(got.logits[i] - masked[i]) <= 1e-5 * Math.max(1, Math.abs(masked[i])), `${what}: logit ${i}`);
    }
    const sampled = new Int32Array(R);
    // The CPU session applies the same masks itself.
    cpu.run(inp, { sampledIds: sampled }, kv);
    assert.deepEqual(Array.from(sampled), want, `${what}: CPU session sampled ids`);
    return want;
  };
  const prefill = withMasks(step(seqs.map((s) => ({ ids: s.ids, pos: 0, blocks: s.blocks })), 6), 1);
  let last = check("prefill (eager)", prefill, true);
  const pos = seqs.map((s) => s.ids.length);
  for (let i = 0; i < 4; i++) {
    const graphs = i % 2 === 0;
    const inp = withMasks(step(seqs.map((s, j) => ({ ids: [last[j]], pos: pos[j]++, blocks: s.blocks })), 6), 10 + i);
    last = check(`decode ${i} (${graphs ? "bucket" : "eager"})`, inp, graphs);
  }
  assert.ok(fake.graphSteps >= 2 && fake.eagerSteps >= 3);
  assert.ok(fake.lastLaunches.some((l) => l.kind === "kernel" && l.kernel === "apply_token_mask"));
});

const kjvDir = new URL("../models/kjv-llama", import.meta.url).pathname;
const PersonKjv = z.object({ name: z.string().max(24), age: z.number().int() });

test("kjv-llama: guided rows masked by the sampler give the host-masked path's tokens (sampled and greedy, batched, n = 2), and the step stats count the mask time", async () => {
  await using llm = await LLM.create({
    model: kjvDir,
    ...testLlm,
    cacheEngine: false,
    buildConfig: { maxBatchSize: 16, maxNumTokens: 512, maxInputLen: 64, maxSeqLen: 160 },
  });
  const prompts = ["And the LORD said", "In the beginning", "Blessed are the", "Behold"];
  const params = (host: boolean) =>
    prompts.map((_, i) => ({
      temperature: i === 0 ? 0 : 0.8,
      seed: 100 + i,
      n: i === 3 ? 2 : 1,
      maxTokens: 48,
      guidedDecoding: { json: PersonKjv },
      // logprobs bring the rows to the host: there the mask is applied before sampleRow (the other path).
      ...(host ? { logprobs: 0 } : {}),
    }));
  const from = llm.getStats().at(-1)?.iter ?? -1;
  const inSampler = await llm.generate(prompts, params(false), { useTqdm: false });
  const maskMs = llm.getStats().filter((s) => s.iter > from).reduce((a, s) => a + (s.guidedMaskMs ?? 0), 0);
  const onHost = await llm.generate(prompts, params(true), { useTqdm: false });
  inSampler.forEach((o, i) => {
    assert.equal(o.outputs.length, onHost[i].outputs.length);
    o.outputs.forEach((c, j) => {
      assert.deepEqual(c.tokenIds, onHost[i].outputs[j].tokenIds, `prompt ${i} seq ${j}`);
      assert.deepEqual(c.parsed, onHost[i].outputs[j].parsed);
      if (c.finishReason === "stop") assert.ok(PersonKjv.safeParse(JSON.parse(c.text)).success, c.text);
    });
  });
  assert.ok(maskMs > 0, "guidedMaskMs counts the sampler-path masks");
});
