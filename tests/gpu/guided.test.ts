/**
 * GPU: guided decoding with the masks applied on the device. The CUDA session's masked step
 * (forward, masks computed while it runs, apply_token_mask, sample_f32; eager and as decode graphs)
 * samples exactly what the host-masked CPU sampler picks from the same logits; and a guided JSON
 * request through LLM on CUDA (stories260k) returns objects that parse and validate, greedy equal
 * to the CPU backend's; deferred grammar acceptance gives immediate acceptance's outputs on CUDA.
 */
import * as fs from "node:fs";
import process from "node:process";
import { z } from "zod";
import { CudaSession } from "../../lib/backends/cuda/session.ts";
import { buildSync } from "../../lib/builder/builder.ts";
import type { Engine } from "../../lib/builder/engine.ts";
import { applyTokenMasks, sampleRow, type SamplingInputs } from "../../lib/ir/sampling.ts";
import type { StepInputs } from "../../lib/ir/step_io.ts";
import { LLM } from "../../lib/llmapi/llm.ts";
import { assert, sharedDir, test } from "../harness.ts";
import { randomModel, rng } from "../cuda_fake_device.ts";
import { gpuProbe, gpuTest, noGpuReason } from "./gpu.ts";

const storiesDir = `${process.env.LLMRT_MODELS ?? `${sharedDir}models`}/stories260k`;
const storiesTest = test.skipIf(noGpuReason || "shared/models/stories260k is missing", !gpuProbe.ok || !fs.existsSync(`${storiesDir}/config.json`));

/** One step of `seqs` (each its ids from `pos`, its own 8 blocks), one logits row per sequence. */
function stepOf(seqs: { ids: number[]; pos: number }[], temps: number[]): StepInputs {
  const T = seqs.reduce((a, s) => a + s.ids.length, 0), S = seqs.length, mb = 8;
  const tokenIds = new Int32Array(T), positions = new Int32Array(T), seqStarts = new Int32Array(S + 1), logitRows = new Int32Array(S);
  let t = 0;
  seqs.forEach((s, i) => {
    seqStarts[i] = t;
    s.ids.forEach((id, j) => {
      tokenIds[t] = id;
      positions[t++] = s.pos + j;
    });
    logitRows[i] = t - 1;
  });
  seqStarts[S] = t;
  const sampling: SamplingInputs = {
    temperature: Float32Array.from(temps),
    topK: Int32Array.from({ length: S }, (_, i) => (i % 3 === 2 ? 40 : 0)),
    topP: Float32Array.from({ length: S }, (_, i) => (i % 2 ? 0.9 : 1)),
    minP: new Float32Array(S),
    seed: Uint32Array.from({ length: 2 * S }, (_, i) => 977 * i + 3),
    step: Int32Array.from({ length: S }, (_, i) => seqs[i].pos),
  };
  return { tokenIds, positions, seqStarts, blockTables: Int32Array.from({ length: S * mb }, (_, i) => i), maxBlocksPerSeq: mb, logitRows, sampling };
}

gpuTest("CUDA masked sampler (V 50000, 6 rows, eager prefill + graph decode): equals the host-masked sampleRow on the same logits", () => {
  const model = randomModel(
    {
      architectures: ["LlamaForCausalLM"],
      model_type: "llama",
      vocab_size: 50000,
      hidden_size: 64,
      intermediate_size: 128,
      num_hidden_layers: 2,
      max_position_embeddings: 256,
      num_attention_heads: 4,
      num_key_value_heads: 2,
      head_dim: 16,
    },
    21,
    false,
    2,
  );
  let engine: Engine;
  try {
    engine = buildSync(model, { backend: "cuda", dtype: "float32", maxBatchSize: 8, maxNumTokens: 128, maxSeqLen: 128, tokensPerBlock: 16 });
  } finally {
    model.close();
  }
  const session = new CudaSession(engine);
  try {
    maskedSteps(session);
  } finally {
    session.dispose();
  }
});

function maskedSteps(session: CudaSession): void {
  const kv = session.createKvCache(64);
  const V = 50000, words = Math.ceil(V / 32), R = 6;
  const r = rng(5);
  let pos = 0;
  let ids = Array.from({ length: R }, (_, i) => Array.from({ length: 5 }, (_, j) => (i * 131 + j * 17) % V));
  let mismatches = 0, rows = 0, graphSteps = 0;
  for (let s = 0; s < 6; s++) {
    const inp = stepOf(ids.map((x) => ({ ids: x, pos })), [0, 0.7, 1, 1.3, 0, 0.9]);
    const raw = new Float32Array(R * V);
    session.run(inp, { logits: raw, sampledIds: new Int32Array(R) }, kv); // unmasked: the raw logits
    const density = [0.5, 0.01, 0.0005][s % 3];
    const masks = new Int32Array(4 * words);
    for (let m = 0; m < 4; m++) {
      for (let id = 0; id < V; id++) if ((r() + 1) / 2 < density) masks[m * words + (id >> 5)] |= 1 << (id & 31);
      masks[m * words + ((m * 4999) >> 5)] |= 1 << ((m * 4999) & 31);
    }
    let filled = 0;
    const masked: StepInputs = {
      ...inp,
      sampling: { ...inp.sampling!, tokenMasks: { words, rowMask: Int32Array.of(0, 1, -1, 2, 3, 3), count: 4, masks: (into) => (filled++, into.set(masks)) } },
    };
    const got = new Int32Array(R);
    const before = session.numGraphs;
    session.run(masked, { sampledIds: got }, kv); // the same step again (its KV writes are idempotent)
    if (session.numGraphs > before || pos > 0) graphSteps++;
    assert.equal(filled, 1, "the mask function runs once per step");
    const hostMasked = raw.slice();
    applyTokenMasks(hostMasked, V, masked.sampling!, R);
    for (let i = 0; i < R; i++) {
      const want = sampleRow(hostMasked, i * V, V, masked.sampling!, i);
      rows++;
      if (got[i] !== want) mismatches++;
      const m = masked.sampling!.tokenMasks!.rowMask[i];
      if (m >= 0) assert.ok(((masks[m * words + (got[i] >> 5)] >>> (got[i] & 31)) & 1) === 1, `step ${s} row ${i}: token ${got[i]} is banned by its mask`);
    }
    pos += ids[0].length;
    ids = Array.from(got, (x) => [x]);
  }
  console.log(
    `CUDA masked sampler: ${rows - mismatches}/${rows} rows equal the host-masked sampleRow; ${session.numGraphs} graph(s), ${graphSteps} decode steps`,
  );
  assert.equal(mismatches, 0);
  assert.ok(session.numGraphs >= 2, "decode steps ran as graphs (a sampling graph and a forward-only one)");
}

storiesTest("stories260k on CUDA: guided JSON requests parse and validate (8 seeds + greedy), greedy equals the CPU backend's", async () => {
  const opts = {
    model: storiesDir,
    dtype: "float32",
    cacheEngine: false,
    buildConfig: { maxBatchSize: 16, maxNumTokens: 512, maxSeqLen: 256, tokensPerBlock: 16 },
    kvCacheConfig: { maxTokens: 8192 },
  } as const;
  const Person = z.object({ name: z.string().max(16), age: z.number().int() });
  const prompts = ["Once upon a time", "The dog", "Lily", "Tom said"];
  const greedy = { temperature: 0, maxTokens: 64, guidedDecoding: { json: Person } } as const;
  let cpuGreedy: (readonly number[])[] = [];
  {
    await using cpu = await LLM.create({ ...opts, backend: "cpu" });
    cpuGreedy = (await cpu.generate(prompts, greedy, { useTqdm: false })).map((o) => o.outputs[0].tokenIds);
  }
  await using llm = await LLM.create({ ...opts, backend: "cuda" });
  assert.equal(llm.backend, "cuda");
  const g = await llm.generate(prompts, greedy, { useTqdm: false });
  assert.deepEqual(g.map((o) => o.outputs[0].tokenIds), cpuGreedy, "greedy guided: CUDA vs CPU");
  const from = llm.getStats().at(-1)?.iter ?? -1;
  const sampled = await llm.generate(
    Array.from({ length: 8 }, (_, i) => prompts[i % 4]),
    Array.from({ length: 8 }, (_, i) => ({ temperature: 0.9, seed: 40 + i, maxTokens: 64, guidedDecoding: { json: Person } })),
    { useTqdm: false },
  );
  const maskMs = llm.getStats().filter((s) => s.iter > from).map((s) => s.guidedMaskMs ?? 0);
  let ok = 0;
  for (const o of [...g, ...sampled]) {
    const c = o.outputs[0];
    assert.equal(c.finishReason, "stop", JSON.stringify(c.text));
    assert.deepEqual(c.parsed, Person.parse(JSON.parse(c.text)), c.text);
    ok++;
  }
  console.log(
    `stories260k CUDA guided JSON: ${ok}/12 parse and validate; host mask time ${
      maskMs.reduce((a, b) => a + b, 0).toFixed(2)
    } ms over ${maskMs.length} steps; e.g. ${sampled[0].outputs[0].text}`,
  );
});

storiesTest(
  "stories260k on CUDA: deferred grammar acceptance (matchers accept inside the next step's mask callback) gives immediate acceptance's outputs",
  async () => {
    const Person = z.object({ name: z.string().max(16), age: z.number().int() });
    const prompts = ["Once upon a time", "The dog", "Lily", "Tom said"];
    const list = Array.from({ length: 12 }, (_, i) => prompts[i % 4]);
    // ignoreEos: no stop id, so the grammar ends these requests by itself (under deferral, one step late, the in-flight token dropped).
    const params = list.map((_, i) => ({
      temperature: i < 4 ? 0 : 0.9,
      seed: 70 + i,
      maxTokens: 64,
      ignoreEos: i % 2 === 1,
      guidedDecoding: { json: Person },
    }));
    const outputs = async (guidedAccept: "deferred" | "immediate") => {
      await using llm = await LLM.create({
        model: storiesDir,
        backend: "cuda",
        dtype: "float32",
        cacheEngine: false,
        guidedAccept,
        buildConfig: { maxBatchSize: 16, maxNumTokens: 512, maxSeqLen: 256, tokensPerBlock: 16 },
        kvCacheConfig: { maxTokens: 8192 },
      });
      const outs = await llm.generate(list, params, { useTqdm: false });
      return outs.map((o) => ({ tokenIds: o.outputs[0].tokenIds, finishReason: o.outputs[0].finishReason, parsed: o.outputs[0].parsed }));
    };
    const deferred = await outputs("deferred");
    const immediate = await outputs("immediate");
    assert.deepEqual(deferred, immediate);
    const byGrammar = deferred.filter((o, i) => params[i].ignoreEos && o.finishReason === "stop").length;
    console.log(`stories260k CUDA deferred vs immediate acceptance: 12/12 equal; ${byGrammar} ended by the grammar itself (ignoreEos)`);
    assert.ok(byGrammar >= 2, `only ${byGrammar} requests ended by the grammar`);
  },
);
