// Engine.releaseHostWeights (session 14): once a session holds the weights (the CUDA upload; the proxy's worker), a
// built engine's host copy is let go (a 1B bf16 model kept ~2.4 GB live on the JS heap; bench/RESULTS.md, session 14
// host stalls). Checked on the fake CUDA device (tests/cuda_fake_device.ts): the uploaded session still runs, the bytes
// are collected (WeakRef + forced GC where the runtime exposes one), reads throw or go to the saved copy; LLM.create
// releases in proxy mode (CPU here) unless keepHostWeights, and leaves an in-process CPU engine alone.
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import process from "node:process";
import { buildSync } from "../lib/builder/builder.ts";
import { Engine } from "../lib/builder/engine.ts";
import { LLM, type LlmOptions } from "../lib/llmapi/llm.ts";
import { FakeCudaSession, randomModel, step } from "./cuda_fake_device.ts";
import { sameBits } from "./cuda_fake_plans.ts";
import { assert, sharedDir, test, testLlm } from "./harness.ts";

const RAW = {
  vocab_size: 97,
  max_position_embeddings: 256,
  architectures: ["LlamaForCausalLM"],
  model_type: "llama",
  hidden_size: 128,
  intermediate_size: 256,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  head_dim: 32,
};

/** A bf16 CUDA engine built in memory (the model closed: the engine holds the only copy of its bytes). */
function built(): Engine {
  const model = randomModel(RAW, 5, true, 0.1);
  try {
    return buildSync(model, { backend: "cuda" as const, maxBatchSize: 2, maxNumTokens: 32, maxSeqLen: 64, tokensPerBlock: 8, dtype: "bfloat16" });
  } finally {
    model.close();
  }
}

/** A full collection, where the runtime offers one (Bun; Deno with --v8-flags=--expose-gc). */
function forceGc(): boolean {
  const g = globalThis as unknown as { Bun?: { gc(full: boolean): void }; gc?: () => void };
  if (g.Bun) g.Bun.gc(true);
  else if (typeof g.gc === "function") g.gc();
  else return false;
  return true;
}

const prefill = (s: FakeCudaSession) => s.run(step([{ ids: [3, 14, 15, 92, 6], pos: 0, blocks: [0, 1] }], 2), false).logits;

test("Engine.releaseHostWeights: the fake-device session runs on, the host bytes are collected, reads throw", async () => {
  const engine = built();
  const session = new FakeCudaSession(engine, 8); // the upload's stand-in: the weights copied to device memory
  const before = prefill(session);
  const names = engine.tensorNames();
  const refs = names.map((n) => new WeakRef(engine.readTensor(n).buffer));
  await new Promise((r) => setTimeout(r, 0));
  if (forceGc()) assert.ok(refs.every((r) => r.deref() !== undefined), "the engine holds its bytes until released");
  engine.releaseHostWeights();
  await new Promise((r) => setTimeout(r, 0)); // WeakRef targets are kept until the turn ends
  if (forceGc()) assert.deepEqual(names.filter((_, i) => refs[i].deref() !== undefined), [], "host weight buffers still reachable");
  assert.deepEqual(engine.tensorNames(), names);
  assert.equal(engine.tensorInfo(names[0]).name, names[0]);
  assert.throws(() => engine.readTensor(names[0]), /released once uploaded.*keepHostWeights/);
  assert.throws(() => engine.readTensorInto(names[0], (n) => new Uint8Array(n)), /released/);
  assert.throws(() => engine.save(fs.mkdtempSync(path.join(os.tmpdir(), "llmrt-released-"))), /released/);
  sameBits(prefill(session), before, "prefill after the release");
  engine.releaseHostWeights(); // idempotent
  engine.dispose();
});

test("Engine.releaseHostWeights(savedDir): reads go to the saved rank file, the same bytes", () => {
  const engine = built();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "llmrt-release-"));
  try {
    engine.save(dir);
    const want = new Map(engine.tensorNames().map((n) => [n, engine.readTensor(n).slice()]));
    engine.releaseHostWeights(dir);
    assert.equal(engine.dir, dir);
    for (const [n, b] of want) assert.deepEqual(engine.readTensor(n), b, n);
    sameBits(prefill(new FakeCudaSession(engine, 8)), prefill(new FakeCudaSession(Engine.fromDir(dir), 8)), "session on the saved copy");
    engine.dispose();
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

const model = `${sharedDir}models/stories260k`;
const create = (o: Partial<LlmOptions>): Promise<LLM> =>
  LLM.create({ model, ...testLlm, backend: "cpu", buildConfig: { maxBatchSize: 4, maxNumTokens: 64, maxInputLen: 32, tokensPerBlock: 16 }, ...o });
const params = { temperature: 0, maxTokens: 8 };

test("LLM.create releases a built engine's host weights once the proxy's worker has them; keepHostWeights and in-process CPU keep them", async () => {
  let want: readonly number[], name = "";
  {
    await using llm = await create({ cacheEngine: false, executorMode: "inprocess" });
    name = llm.engine.tensorNames()[0];
    assert.ok(llm.engine.readTensor(name).byteLength > 0); // the CPU session's engine: kept
    want = (await llm.generate("Once upon a time", params, { useTqdm: false })).outputs[0].tokenIds;
  }
  {
    await using llm = await create({ cacheEngine: false, executorMode: "proxy" });
    assert.throws(() => llm.engine.readTensor(name), /released/);
    assert.deepEqual((await llm.generate("Once upon a time", params, { useTqdm: false })).outputs[0].tokenIds, want);
  }
  {
    await using llm = await create({ cacheEngine: false, executorMode: "proxy", keepHostWeights: true });
    assert.ok(llm.engine.readTensor(name).byteLength > 0);
  }
  const cache = fs.mkdtempSync(path.join(os.tmpdir(), "llmrt-release-cache-"));
  const saved = process.env.LLMRT_CACHE_DIR;
  process.env.LLMRT_CACHE_DIR = cache;
  try {
    await using llm = await create({ cacheEngine: true, executorMode: "proxy" });
    assert.equal(llm.loadStats.source, "build+cache");
    using cached = Engine.fromDir(llm.engineDir!);
    assert.deepEqual(llm.engine.readTensor(name), cached.readTensor(name)); // read from the cache entry now
    assert.deepEqual((await llm.generate("Once upon a time", params, { useTqdm: false })).outputs[0].tokenIds, want);
  } finally {
    if (saved === undefined) delete process.env.LLMRT_CACHE_DIR;
    else process.env.LLMRT_CACHE_DIR = saved;
    fs.rmSync(cache, { recursive: true, force: true });
  }
});
