// Hostile inputs on the model-loading surface (session 13's probe): LLM.create / build options that
// contradict each other, explicit KV caps the host cannot hold, a padded vocabulary's tokenless ids,
// engine directories whose rank files are mixed up, engine and cache directories that cannot be
// written, and the CLI's build command. Each is an LlmrtError naming the field and the value (or the
// file), or a correct result: never a raw RangeError / ENOTDIR, never an option silently dropped.
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { LLM } from "../lib/llmapi/llm.ts";
import { AutoModelForCausalLM } from "../lib/models/llama.ts";
import { buildSync } from "../lib/builder/builder.ts";
import { Engine } from "../lib/builder/engine.ts";
import { LlmTokenizer } from "../lib/tokenizer/tokenizer.ts";
import { LlmrtError } from "../lib/util/errors.ts";
import { removeTempDirs, tempDir, TINY, writeTiny } from "./hostile/fixtures.ts";
import { assert, isDeno, sharedDir, test } from "./harness.ts";

const stories = `${sharedDir}models/stories260k`; // its tokenizer has 512 ids
const kjv = new URL("../models/kjv-llama", import.meta.url).pathname;
const cpu = { backend: "cpu" as const, cacheEngine: false };

/** Asserts `p` rejects with an LlmrtError of `kind` whose message matches every pattern (and whose field is `field`). */
async function rejects(p: Promise<unknown>, kind: string, patterns: RegExp[], field?: string): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof LlmrtError, `not an LlmrtError: ${(e as Error)?.stack ?? e}`);
    assert.equal(e.kind, kind, e.message);
    for (const re of patterns) assert.match(e.message, re);
    if (field !== undefined) assert.equal(e.field, field);
    return true;
  });
}

test("a padded model's ids past the tokenizer decode to no text (as vLLM) instead of failing the request", async () => {
  const model = writeTiny({ spec: { ...TINY, V: 600 }, tokenizerFrom: stories });
  try {
    for (const executorMode of ["inprocess", "proxy"] as const) {
      await using llm = await LLM.create({ model, ...cpu, executorMode, buildConfig: { maxBatchSize: 2, maxNumTokens: 64 } });
      // Only padding ids (512..599) and one real id may be sampled: the text holds the real one's alone.
      const allowed = [520, 530, 599, 65];
      const out = await llm.generate([1, 5, 7], { maxTokens: 6, temperature: 1, seed: 3, allowedTokenIds: allowed }, { useTqdm: false });
      const ids = out.outputs[0].tokenIds;
      assert.equal(ids.length, 6);
      assert.ok(ids.some((id) => id >= 512), `no padding id sampled: ${ids}`);
      assert.equal(out.outputs[0].text, llm.tokenizer!.decode(ids.filter((id) => id < 512)), executorMode);
      // Streaming, and a prompt holding padding ids.
      const ro = llm.generateAsync([1, 550, 7], { maxTokens: 4, temperature: 0, allowedTokenIds: [540, 66] }, { streaming: true });
      let streamed = "";
      for await (const o of ro) streamed += o.outputs[0].textDiff ?? "";
      const last = await ro.result();
      assert.equal(streamed, last.outputs[0].text);
      assert.equal(last.outputs[0].finishReason, "length");
    }
    // The detokenizer alone: padding ids add no text and still count as pushed; ids past the model's vocabulary stay errors.
    const tok = LlmTokenizer.fromDir(stories);
    const d = tok.createDetokenizer({ modelVocabSize: 600 });
    const hello = tok.encode("Hello", { addSpecialTokens: false });
    assert.equal(d.push([...hello, 560]) + d.push([599]) + d.flush(), tok.decode(hello));
    assert.deepEqual(d.tokenIds, [...hello, 560, 599]);
    assert.throws(() => d.push([600]), /token id 600 at index 0 is not in the vocabulary/);
    assert.throws(() => tok.createDetokenizer().push([560]), /token id 560/);
  } finally {
    removeTempDirs();
  }
});

test("LLM.create: options given twice (top level and buildConfig) must agree; an engine directory's build cannot be changed", async () => {
  await rejects(LLM.create({ model: kjv, ...cpu, buildConfig: { backend: "cuda" } }), "validation", [
    /buildConfig\.backend: "cuda" contradicts options\.backend "cpu"/,
  ], "buildConfig.backend");
  await rejects(LLM.create({ model: kjv, ...cpu, dtype: "float32", buildConfig: { dtype: "float16" } }), "validation", [
    /buildConfig\.dtype: "float16" contradicts options\.dtype "float32"/,
  ]);
  await rejects(LLM.create({ model: kjv, ...cpu, tensorParallelSize: 1, buildConfig: { tensorParallelSize: 2 } }), "validation", [
    /buildConfig\.tensorParallelSize: 2 contradicts options\.tensorParallelSize 1/,
  ]);
  const dir = tempDir();
  try {
    const model = AutoModelForCausalLM.fromHuggingFace(kjv);
    const engine = buildSync(model, { maxBatchSize: 4, maxNumTokens: 64 });
    engine.save(dir);
    engine.dispose();
    model.close();
    for (const f of ["tokenizer.json", "tokenizer_config.json"]) fs.copyFileSync(path.join(kjv, f), path.join(dir, f));
    await rejects(LLM.create({ model: dir, ...cpu, buildConfig: { maxBatchSize: 8 } }), "validation", [
      /buildConfig\.maxBatchSize: 8, but the engine in .* was built with 4/,
    ], "buildConfig.maxBatchSize");
    await rejects(
      LLM.create({ model: dir, ...cpu, dtype: "float16" }),
      "validation",
      [/options\.dtype: "float16", but the engine .* built with "float32"/],
      "dtype",
    );
    // The same values (the fields left out are not compared as their defaults), and executor limits below the engine's, are fine.
    await using llm = await LLM.create({ model: dir, ...cpu, maxBatchSize: 2, buildConfig: { maxBatchSize: 4 } });
    assert.equal((await llm.generate([1, 5], { maxTokens: 2 }, { useTqdm: false })).outputs[0].tokenIds.length, 2);
  } finally {
    removeTempDirs();
  }
});

test("LLM.create / build: a maxSeqLen below 2 is refused up front; chunked prefill off refuses only prompts over maxNumTokens; an explicit CPU KV cap past the host is a ResourceError, not a RangeError", async () => {
  await rejects(
    LLM.create({ model: kjv, ...cpu, buildConfig: { maxSeqLen: 1 } }),
    "validation",
    [/BuildConfig\.maxSeqLen: 1 leaves no room/],
    "BuildConfig.maxSeqLen",
  );
  await rejects(LLM.create({ model: kjv, ...cpu, kvCacheConfig: { maxTokens: 1e12 } }), "resource", [
    /kvCacheConfig\.maxTokens = 1000000000000 asks for a KV cache of .* on the CPU; the limit is/,
  ], "kvCacheConfig.maxTokens");
  await rejects(
    LLM.create({ model: kjv, ...cpu, kvCacheConfig: { maxBytes: 2 ** 52 } }),
    "resource",
    [/kvCacheConfig\.maxBytes = 4503599627370496/],
    "kvCacheConfig.maxBytes",
  );
  // Chunked prefill off with a step budget below maxInputLen: short prompts run, a longer one is refused naming both.
  await using llm = await LLM.create({ model: kjv, ...cpu, maxNumTokens: 8, enableChunkedPrefill: false });
  assert.equal((await llm.generate([1, 5], { maxTokens: 2 }, { useTqdm: false })).outputs[0].tokenIds.length, 2);
  await rejects(llm.generate(Array.from({ length: 9 }, () => 5), { maxTokens: 2 }, { useTqdm: false }), "validation", [
    /prompt of 9 tokens exceeds maxNumTokens 8 and chunked prefill is off/,
  ]);
});

test("LLM.generate: a bad element of a samplingParams list names its index; a string token id is shown quoted", async () => {
  await using llm = await LLM.create({ model: kjv, ...cpu, buildConfig: { maxBatchSize: 4, maxNumTokens: 64 } });
  await rejects(llm.generate(["a", "b"], [{ maxTokens: 2 }, { maxTokens: -1 }], { useTqdm: false }), "validation", [
    /^LLM\.generate samplingParams\[1\]: SamplingParams\.maxTokens/,
  ], "samplingParams[1].maxTokens");
  await rejects(llm.generateAsync([1, "2"] as never, { maxTokens: 2 }).result(), "validation", [/prompt\[1\]: token id "2" is outside/]);
});

test("engine directories: a rank file holding another rank's weights is refused (it would run and give garbage)", () => {
  const dir = tempDir();
  try {
    const model = AutoModelForCausalLM.fromHuggingFace(kjv);
    const engine = buildSync(model, { maxBatchSize: 2, maxNumTokens: 32, tensorParallelSize: 2 });
    engine.save(dir);
    engine.dispose();
    model.close();
    Engine.fromDir(dir, { rank: 1 }).dispose();
    fs.copyFileSync(path.join(dir, "rank0.engine"), path.join(dir, "rank1.engine"));
    assert.throws(() => Engine.fromDir(dir, { rank: 1 }), (e: unknown) => {
      assert.ok(e instanceof LlmrtError && e.kind === "format", String(e));
      assert.match(e.message, /rank1\.engine holds the weights of rank 0, not rank 1/);
      return true;
    });
  } finally {
    removeTempDirs();
  }
});

test("an engine directory or engine cache that cannot be written is named (ValidationError), never a raw ENOTDIR", async () => {
  const dir = tempDir();
  try {
    const file = path.join(dir, "a-file");
    fs.writeFileSync(file, "x");
    const model = AutoModelForCausalLM.fromHuggingFace(kjv);
    const engine = buildSync(model, { maxBatchSize: 2, maxNumTokens: 32 });
    model.close();
    try {
      assert.throws(() => engine.save(file), /Engine\.save: cannot create the engine directory ".*a-file" \(a file is in the way\)/);
      await assert.rejects(engine.saveAsync(path.join(file, "sub")), /Engine\.saveAsync: cannot create the engine directory/);
    } finally {
      engine.dispose();
    }
    // The cache root is a file: in process the LLM runs uncached (the entry reported unwritten); with a worker it needs the entry, and says why.
    const env = (globalThis as unknown as { process: { env: Record<string, string | undefined> } }).process.env;
    const saved = env.LLMRT_CACHE_DIR;
    env.LLMRT_CACHE_DIR = file;
    try {
      const tiny = writeTiny({ tokenizerFrom: stories });
      await using llm = await LLM.create({ model: tiny, backend: "cpu", buildConfig: { maxBatchSize: 2, maxNumTokens: 64 } });
      assert.equal((await llm.generate([1, 5], { maxTokens: 2 }, { useTqdm: false })).outputs[0].tokenIds.length, 2);
      await rejects(
        LLM.create({ model: tiny, backend: "cpu", executorMode: "proxy", buildConfig: { maxBatchSize: 2, maxNumTokens: 64 } }),
        "validation",
        [/engine cache: cannot write .*ENOTDIR.*set LLMRT_CACHE_DIR to a writable directory or pass cacheEngine: false/],
        "LLMRT_CACHE_DIR",
      );
    } finally {
      if (saved === undefined) delete env.LLMRT_CACHE_DIR;
      else env.LLMRT_CACHE_DIR = saved;
    }
  } finally {
    removeTempDirs();
  }
});

test("a chat_template.jinja that cannot be read is a FormatError naming it", () => {
  const dir = writeTiny({ tokenizerFrom: stories });
  try {
    fs.mkdirSync(path.join(dir, "chat_template.jinja"));
    assert.throws(() => LlmTokenizer.fromDir(dir), (e: unknown) => {
      assert.ok(e instanceof LlmrtError && e.kind === "format", String(e));
      assert.match(e.message, /chat_template\.jinja: cannot read/);
      return true;
    });
  } finally {
    removeTempDirs();
  }
});

test("llmrt build: --tokenizer without a tokenizer.json and --out on a file exit non-zero with one line naming them", () => {
  const cli = new URL("../bin/llmrt.ts", import.meta.url).pathname;
  const proc = (globalThis as unknown as { process: { execPath: string; env: Record<string, string> } }).process;
  const run = (args: string[]) => {
    const r = spawnSync(proc.execPath, isDeno ? ["run", "-A", cli, ...args] : [cli, ...args], { encoding: "utf8", env: proc.env, timeout: 120_000 });
    return { code: r.status, stderr: r.stderr };
  };
  const dir = tempDir();
  try {
    const file = path.join(dir, "a-file");
    fs.writeFileSync(file, "x");
    const base = ["build", "--model", kjv, "--backend", "cpu", "--max-batch-size", "2", "--max-num-tokens", "32"];
    const t = run([...base, "--out", path.join(dir, "e1"), "--tokenizer", "/nonexistent/tok"]);
    assert.equal(t.code, 2, t.stderr);
    assert.match(t.stderr, /^llmrt: --tokenizer: "\/nonexistent\/tok" has no tokenizer\.json/m);
    assert.ok(!fs.existsSync(path.join(dir, "e1")), "nothing built");
    const o = run([...base, "--out", file]);
    assert.equal(o.code, 1, o.stderr);
    assert.match(o.stderr, /^llmrt: Engine\.save: cannot create the engine directory ".*a-file" \(a file is in the way\)$/m);
    assert.doesNotMatch(o.stderr, /\n\s+at /, "no stack trace");
  } finally {
    removeTempDirs();
  }
});
