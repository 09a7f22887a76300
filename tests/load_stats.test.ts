// LLM.create's load path (issue 16 item 4): phases timed into llm.loadStats; a cached engine opened
// without a separate verify pass (each blob's CRC-32 checked as the session reads it), a corrupt
// blob found that way discarded and rebuilt before anything runs; the cache written in the background.
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import process from "node:process";
import { rawReadGroups } from "../lib/builder/builder.ts";
import { Engine } from "../lib/builder/engine.ts";
import { LLM } from "../lib/llmapi/llm.ts";
import { LlmrtError } from "../lib/util/errors.ts";
import { AutoModelForCausalLM } from "../lib/models/llama.ts";
import { Checkpoint } from "../lib/models/safetensors.ts";
import { formatLoadStats } from "../lib/llmapi/progress.ts";
import { blobOffset } from "./hostile/engine_edit.ts";
import { assert, sharedDir, test } from "./harness.ts";

const stories = `${sharedDir}models/stories260k`;
const opts = { model: stories, backend: "cpu" as const, buildConfig: { maxBatchSize: 2, maxNumTokens: 64 } };
const greedy = { maxTokens: 5, temperature: 0 };

test("loadStats: cold build+cache, then cache hit; a corrupt weight blob is found by the parallel check and rebuilt before use", async () => {
  const cache = fs.mkdtempSync(path.join(os.tmpdir(), "llmrt-loadstats-"));
  const saved = process.env.LLMRT_CACHE_DIR;
  process.env.LLMRT_CACHE_DIR = cache;
  try {
    const cold = await LLM.create(opts);
    const names = (l: LLM): string[] => l.loadStats.phases.map((p) => p.name);
    assert.equal(cold.loadStats.source, "build+cache");
    const want = (await cold.generate([1, 403, 407], greedy, { useTqdm: false })).outputs[0].tokenIds;
    await cold.shutdown(); // waits for the background cache write
    assert.deepEqual(names(cold), ["cache key", "read", "build", "session", "cache write (background)"]);
    const read = cold.loadStats.phases.find((p) => p.name === "read");
    assert.ok(read && read.bytes! > 0, `read bytes: ${formatLoadStats(cold.loadStats)}`);
    const write = cold.loadStats.phases.find((p) => p.name.startsWith("cache write"))!;
    assert.ok(write.bytes! >= read.bytes!, "the engine's bytes are written");
    assert.ok(cold.loadStats.totalMs >= cold.loadStats.phases.reduce((a, p) => a + (p.name.startsWith("cache write") ? 0 : p.ms), 0) - 1);
    const dir = cold.engineDir!;
    assert.ok(fs.existsSync(path.join(dir, "rank0.engine")), "published once shutdown returns");
    assert.ok(fs.existsSync(path.join(dir, "tokenizer.json")));

    const hit = await LLM.create(opts);
    assert.equal(hit.loadStats.source, "cache");
    // The blobs' checksums are checked on workers beside the load (that phase ends before or after "session").
    const verify = names(hit).filter((n) => n.startsWith("cache verify"));
    assert.equal(verify.length, 1);
    assert.match(verify[0], /^cache verify \(\d+ workers?, beside the load\)$/);
    assert.deepEqual(names(hit).filter((n) => !n.startsWith("cache verify")), ["cache key", "open", "session"]);
    assert.deepEqual((await hit.generate([1, 403, 407], greedy, { useTqdm: false })).outputs[0].tokenIds, want);
    await hit.shutdown();

    const file = path.join(dir, "rank0.engine");
    const good = fs.readFileSync(file);
    const bad = Uint8Array.from(good);
    bad[blobOffset(file, "layers.3.gate_up.weight") + 1000] ^= 0x08;
    fs.writeFileSync(file, bad);
    const again = await LLM.create(opts);
    assert.equal(again.loadStats.source, "rebuilt");
    assert.ok(again.loadStats.phases.some((p) => p.name === "session (corrupt cached engine)"));
    assert.deepEqual((await again.generate([1, 403, 407], greedy, { useTqdm: false })).outputs[0].tokenIds, want);
    await again.shutdown();
    assert.deepEqual(fs.readFileSync(file), good, "the cache holds a whole engine again");
  } finally {
    if (saved === undefined) delete process.env.LLMRT_CACHE_DIR;
    else process.env.LLMRT_CACHE_DIR = saved;
    fs.rmSync(cache, { recursive: true, force: true });
  }
});

test("loadStats: an engine directory is opened, not built; cacheEngine false builds without writing", async () => {
  const built = await LLM.create({ ...opts, cacheEngine: false });
  assert.equal(built.loadStats.source, "build");
  assert.equal(built.engineDir, null);
  assert.ok(!built.loadStats.phases.some((p) => p.name.startsWith("cache")));
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "llmrt-loadstats-engine-"));
  try {
    built.engine.save(dir);
    await built.shutdown();
    const opened = await LLM.create({ ...opts, model: dir, tokenizer: stories });
    assert.equal(opened.loadStats.source, "engine");
    assert.deepEqual(opened.loadStats.phases.map((p) => p.name), ["open", "session"]);
    await opened.shutdown();
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test("Checkpoint.prefetchConcat: groups read ahead in parallel equal the in-place reads; readConcat hands each over once", async () => {
  const model = AutoModelForCausalLM.fromHuggingFace(stories);
  const groups = rawReadGroups(model, { backend: "cpu" });
  model.close();
  assert.ok(groups.some((g) => g.length === 3) && groups.some((g) => g.length === 2), "q/k/v and gate/up groups");
  using a = Checkpoint.open(stories);
  using b = Checkpoint.open(stories);
  await a.prefetchConcat(groups, 3);
  const total = groups.flat().reduce((n, t) => n + a.info(t).byteLength, 0);
  assert.equal(a.readStats.bytes, total);
  for (const g of groups) {
    const want = Uint8Array.from(g.flatMap((t) => [...b.readBytes(t)]));
    assert.deepEqual(a.readConcat(g), want, g.join(","));
  }
  assert.equal(a.readStats.bytes, total, "every group came from the prefetch");
  a.readConcat(groups[0]);
  assert.ok(a.readStats.bytes > total, "a second readConcat reads again");
});

test("Engine.verifyInBackground: workers check every blob; a flipped byte is a FormatError naming the tensor; reads go unchecked meanwhile", async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "llmrt-verifybg-"));
  try {
    const built = await LLM.create({ ...opts, cacheEngine: false });
    built.engine.save(dir);
    await built.shutdown();
    {
      using e = Engine.fromDir(dir);
      await e.verifyInBackground(3);
    }
    const file = path.join(dir, "rank0.engine");
    const bytes = fs.readFileSync(file);
    bytes[blobOffset(file, "layers.4.qkv.weight") + 17] ^= 0x02;
    fs.writeFileSync(file, bytes);
    using e = Engine.fromDir(dir);
    const checked = e.verifyInBackground(2);
    e.readTensor("layers.4.qkv.weight"); // unchecked now: the workers report it
    await assert.rejects(
      checked,
      (err: Error) => err instanceof LlmrtError && err.kind === "format" && /'layers\.4\.qkv\.weight' is corrupt .*on a worker/.test(err.message),
    );
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
