/**
 * Tensor parallelism on the CPU (CI): sharded engines of models/kjv-llama against the one-rank
 * engine (greedy ids equal, logits within 1e-5), rank files through save/fromDir, the KV-head
 * replication case, and ranks that fail to start or die later ending in errors, never hangs.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { assert, test } from "./harness.ts";
import { AutoModelForCausalLM, build, Engine, LLM, ModelRunner } from "../mod.ts";
import { shardPlan, sliceWeight, tpMapping } from "../lib/builder/sharding.ts";
import type { TpSession } from "../lib/runtime/tp_session.ts";
import { WorkerError } from "../lib/util/errors.ts";

const KJV = new URL("../models/kjv-llama/", import.meta.url).pathname;
const PROFILE = { maxBatchSize: 4, maxNumTokens: 128, maxSeqLen: 128, dtype: "float32" } as const;
const PROMPTS = [[0, 403, 407, 261, 378], [0, 55, 66, 77, 88, 99, 120]];
const NEW_TOKENS = 16;

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

async function engines(tp: number): Promise<{ one: Engine; sharded: Engine }> {
  const model = AutoModelForCausalLM.fromHuggingFace(KJV);
  try {
    return { one: await build(model, PROFILE), sharded: await build(model, { ...PROFILE, tensorParallelSize: tp }) };
  } finally {
    model.close();
  }
}

function generate(engine: Engine): { ids: number[][]; logits: Float32Array[][] } {
  const runner = ModelRunner.fromEngine(engine);
  try {
    const out = runner.generate(PROMPTS, { maxNewTokens: NEW_TOKENS, outputGenerationLogits: true });
    return { ids: out.outputIds, logits: out.generationLogits! };
  } finally {
    runner.session.dispose();
  }
}

function assertSameAsOneRank(tp: number, one: ReturnType<typeof generate>, sharded: ReturnType<typeof generate>): void {
  assert.deepEqual(sharded.ids, one.ids, `TP=${tp} greedy ids differ from TP=1`);
  let worst = 0;
  for (let s = 0; s < PROMPTS.length; s++) {
    assert.equal(sharded.logits[s].length, NEW_TOKENS);
    for (let k = 0; k < NEW_TOKENS; k++) worst = Math.max(worst, maxAbsDiff(one.logits[s][k], sharded.logits[s][k]));
  }
  assert.ok(worst < 1e-5, `TP=${tp} logits: max |diff| ${worst} vs TP=1 (bound 1e-5)`);
}

test("tp: mapping and plan of kjv-llama TP=2 (column/row parallel, KV heads split, vocab-parallel LM head)", async () => {
  const { one, sharded } = await engines(2);
  const m = sharded.config.mapping!;
  assert.equal(sharded.config.numRanks, 2);
  assert.deepEqual({ ...m }, {
    tpSize: 2,
    numHeadsPerRank: 4,
    numKvHeadsPerRank: 1,
    kvHeads: "split",
    intermediatePerRank: 160,
    vocabPerRank: 2048,
    embedding: "replicated",
    lmHead: "vocab-parallel",
  });
  for (const r of [0, 1]) {
    const e = sharded.rankEngine(r);
    assert.equal(e.rank, r);
    const ops = e.plan.ops;
    assert.equal(ops.filter((o) => o.type === "all_reduce").length, 2 * 6, "one all_reduce after o and after down in each of 6 layers");
    assert.equal(ops.filter((o) => o.type === "all_gather").length, 1);
    assert.equal(e.plan.attributes.numKvHeads, 1);
    assert.deepEqual(e.tensorInfo("layers.0.qkv.weight").shape, [(4 + 2) * 32, 256]);
    assert.deepEqual(e.tensorInfo("layers.0.o_proj.weight").shape, [256, 128]);
    assert.deepEqual(e.tensorInfo("layers.0.gate_up.weight").shape, [320, 256]);
    assert.deepEqual(e.tensorInfo("layers.0.down.weight").shape, [256, 160]);
    assert.deepEqual(e.tensorInfo("lm_head.shard").shape, [2048, 256]);
    assert.deepEqual(e.tensorInfo("embed_tokens").shape, [4096, 256]);
  }
  // Rank 1's k rows are KV head 1 of the unsharded qkv weight.
  const full = one.readFloat32("layers.0.qkv.weight"), r1 = sharded.rankEngine(1).readFloat32("layers.0.qkv.weight");
  const H = 256, hd = 32;
  assert.deepEqual(r1.subarray(4 * hd * H, 5 * hd * H), full.subarray((8 + 1) * hd * H, (8 + 2) * hd * H));
  sharded.dispose();
  one.dispose();
});

test("tp: TP=2 on kjv-llama float32 gives TP=1's greedy ids and logits within 1e-5", async () => {
  const { one, sharded } = await engines(2);
  assertSameAsOneRank(2, generate(one), generate(sharded));
  sharded.dispose();
  one.dispose();
});

test("tp: TP=4 (fewer KV heads than ranks: replicated) matches TP=1", async () => {
  const { one, sharded } = await engines(4);
  assert.equal(sharded.config.mapping!.kvHeads, "replicated");
  assertSameAsOneRank(4, generate(one), generate(sharded));
  sharded.dispose();
  one.dispose();
});

test("tp: LLM.create({ tensorParallelSize: 2 }) generates TP=1's greedy text; a mismatching engine directory is refused", async () => {
  const opts = {
    model: KJV,
    backend: "cpu",
    dtype: "float32",
    cacheEngine: false,
    buildConfig: { maxBatchSize: 4, maxNumTokens: 128, maxSeqLen: 128 },
  } as const;
  const params = { maxTokens: 12, temperature: 0 };
  let want: string;
  {
    await using llm = await LLM.create(opts);
    want = (await llm.generate("In the beginning", params)).outputs[0].text;
  }
  assert.ok(want.length > 0);
  await using llm2 = await LLM.create({ ...opts, tensorParallelSize: 2 });
  assert.equal(llm2.engine.config.numRanks, 2);
  assert.equal((await llm2.generate("In the beginning", params)).outputs[0].text, want);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "llmrt-tp-llm-"));
  try {
    llm2.engine.save(dir);
    await assert.rejects(
      LLM.create({ model: dir, backend: "cpu", tensorParallelSize: 4, skipTokenizerInit: true }),
      /tensorParallelSize: 4, but the engine .* has 2 rank/,
    );
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test("tp: rank engines round-trip through save / fromDir({ rank }) and run from the directory; a rank that dies makes later steps throw", async () => {
  const { one, sharded } = await engines(2);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "llmrt-tp-"));
  try {
    sharded.save(dir);
    assert.deepEqual(fs.readdirSync(dir).filter((f) => f.endsWith(".engine")).sort(), ["rank0.engine", "rank1.engine"]);
    const cfg = JSON.parse(fs.readFileSync(path.join(dir, "config.json"), "utf8"));
    assert.equal(cfg.numRanks, 2);
    assert.equal(cfg.mapping.tpSize, 2);
    assert.equal(cfg.build.tensorParallelSize, 2);
    for (const r of [0, 1]) {
      using e = Engine.fromDir(dir, { rank: r });
      assert.equal(e.rank, r);
      assert.deepEqual(e.plan, JSON.parse(JSON.stringify(sharded.rankEngine(r).plan)));
      for (const n of e.tensorNames()) assert.deepEqual(e.readTensor(n), sharded.rankEngine(r).readTensor(n), n);
    }
    assert.throws(() => Engine.fromDir(dir, { rank: 2 }), /rank 2 outside \[0, 2\)/);
    const runner = ModelRunner.fromDir(dir);
    try {
      assert.equal((runner.session.impl as TpSession).worldSize, 2);
      const out = runner.generate(PROMPTS, { maxNewTokens: NEW_TOKENS });
      assert.deepEqual(out.outputIds, generate(one).ids);
      // A rank that dies after starting: every later step throws a WorkerError at once, never hangs.
      (runner.session.impl as TpSession).killRank(1);
      for (let i = 0; i < 2; i++) {
        assert.throws(() => runner.generate([PROMPTS[1]], { maxNewTokens: 4 }), (e: unknown) => e instanceof WorkerError && /rank 1 is gone/.test(e.message));
      }
    } finally {
      runner.session.dispose();
      runner.engine.dispose();
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
    sharded.dispose();
    one.dispose();
  }
});

test("tp: a rank that fails to start makes creation fail with a WorkerError naming it (LLM.create rejects, no hang)", async () => {
  const { one, sharded } = await engines(2);
  one.dispose();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "llmrt-tp-bad-"));
  try {
    sharded.save(dir);
    for (const f of ["tokenizer.json", "tokenizer_config.json"]) fs.copyFileSync(path.join(KJV, f), path.join(dir, f));
    fs.truncateSync(path.join(dir, "rank1.engine"), 1000);
    // (A hang would run into the test's timeout: the rank reports its failure, nobody waits it out.)
    await assert.rejects(LLM.create({ model: dir, backend: "cpu" }), (e: unknown) => e instanceof WorkerError && /rank 1/.test(e.message));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
    sharded.dispose();
  }
});

test("tp: engines built for CUDA keep the LM head replicated (all_reduce only, no all_gather)", async () => {
  const model = AutoModelForCausalLM.fromHuggingFace(KJV);
  let e: Engine;
  try {
    e = await build(model, { ...PROFILE, backend: "cuda", tensorParallelSize: 2 });
  } finally {
    model.close();
  }
  assert.equal(e.config.mapping!.lmHead, "replicated");
  for (const r of [0, 1]) {
    const ops = e.rankEngine(r).plan.ops;
    assert.equal(ops.filter((o) => o.type === "all_reduce").length, 12);
    assert.equal(ops.filter((o) => o.type === "all_gather").length, 0);
    const head = ops.find((o) => o.type === "linear" && o.out === e.plan.attributes.logits);
    assert.ok(head?.type === "linear" && head.outFeatures === 4096 && head.weight === "embed_tokens", "whole (tied) LM head on every rank");
  }
  e.dispose();
});

test("tp: sliceWeight cuts rows, columns and pads; tpMapping names what does not divide", () => {
  // [4, 3] f32: rows 1..3 and 0..1 concatenated, columns 1..3, one zero row of padding.
  const w = new Float32Array([0, 1, 2, 10, 11, 12, 20, 21, 22, 30, 31, 32]);
  const bytes = new Uint8Array(w.buffer);
  const out = sliceWeight(bytes, [4, 3], 4, { rows: [[1, 3], [0, 1]], cols: [1, 3], padRows: 1 });
  assert.deepEqual(out.shape, [4, 2]);
  assert.deepEqual(Array.from(new Float32Array(out.bytes.buffer)), [11, 12, 21, 22, 1, 2, 0, 0]);
  const bias = sliceWeight(bytes, [12], 4, { rows: [[2, 4]] });
  assert.deepEqual(Array.from(new Float32Array(bias.bytes.buffer)), [2, 10]);
  assert.throws(
    () => tpMapping({ numHeads: 8, numKvHeads: 2, intermediateSize: 320, vocabSize: 4096 }, 3),
    /tensorParallelSize: 3 does not divide the attention heads 8/,
  );
  assert.throws(() => tpMapping({ numHeads: 12, numKvHeads: 4, intermediateSize: 48, vocabSize: 10 }, 6), /KV heads 4/);
  const m = tpMapping({ numHeads: 8, numKvHeads: 2, intermediateSize: 320, vocabSize: 4095 }, 2);
  assert.equal(m.vocabPerRank, 2048);
  void shardPlan;
});
