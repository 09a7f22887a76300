// The engine cache of LLM.create: several processes building the same model at once (issue 11 #1),
// content keys (#13: a checkpoint replaced with the same size and mtime), a truncated or corrupt
// cached engine rebuilt, and one cache root (issue 10 part 5).
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import process from "node:process";
import { llmrtCacheDir } from "../ffi/cache.ts";
import { builderDigest, cacheRoot, engineCacheDir } from "../lib/llmapi/engine_cache.ts";
import { LLM } from "../lib/llmapi/llm.ts";
import { assert, isDeno, sharedDir, test } from "./harness.ts";

const stories = `${sharedDir}models/stories260k`;
const repo = new URL("../", import.meta.url).pathname;

function tmp(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/** Runs `code` (an ES module) in a fresh bun/deno process with `env`; resolves with its exit code and output. */
function runChild(code: string, env: Record<string, string>): Promise<{ code: number; out: string }> {
  const dir = tmp("llmrt-child-");
  const file = path.join(dir, "child.ts");
  fs.writeFileSync(file, code);
  const args = isDeno ? ["run", "-A", "--config", path.join(repo, "deno.json"), file] : [file];
  return new Promise((resolve) => {
    const p = spawn(process.execPath, args, { cwd: repo, env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    p.stdout.on("data", (d) => (out += d));
    p.stderr.on("data", (d) => (out += d));
    p.on("close", (c) => resolve({ code: c ?? -1, out }));
  });
}

function copyModel(): string {
  const dir = tmp("llmrt-model-");
  for (const f of fs.readdirSync(stories)) fs.copyFileSync(path.join(stories, f), path.join(dir, f));
  return dir;
}

const generateChild = (model: string): string => `
import { LLM } from ${JSON.stringify(path.join(repo, "mod.ts"))};
const llm = await LLM.create({ model: ${JSON.stringify(model)}, backend: "cpu", buildConfig: { maxBatchSize: 2, maxNumTokens: 64 } });
const out = await llm.generate([1, 403, 407], { maxTokens: 6, temperature: 0 }, { useTqdm: false });
console.log("IDS " + JSON.stringify(out.outputs[0].tokenIds));
await llm.shutdown();
`;

test("engine cache: six processes loading one model for the first time all succeed with the same ids", async () => {
  const cache = tmp("llmrt-cache-");
  const model = copyModel();
  const runs = await Promise.all(Array.from({ length: 6 }, () => runChild(generateChild(model), { LLMRT_CACHE_DIR: cache })));
  for (const r of runs) assert.equal(r.code, 0, r.out);
  const ids = runs.map((r) => /IDS (.*)/.exec(r.out)?.[1]);
  assert.ok(ids[0], runs[0].out);
  for (const i of ids) assert.equal(i, ids[0]);
  const engines = fs.readdirSync(path.join(cache, "engines"));
  assert.equal(engines.length, 1, `one published engine and no leftovers: ${engines.join(", ")}`);
  for (const d of [cache, model]) fs.rmSync(d, { recursive: true, force: true });
}, 240_000);

const opts = { backend: "cpu" as const, buildConfig: { maxBatchSize: 2, maxNumTokens: 64 } };

test("engine cache: a weight file replaced with the same size and mtime is rebuilt, not served stale", async () => {
  const cache = tmp("llmrt-cache-");
  const saved = process.env.LLMRT_CACHE_DIR;
  process.env.LLMRT_CACHE_DIR = cache;
  try {
    const model = copyModel();
    const file = path.join(model, "model.safetensors");
    fs.utimesSync(file, 1_700_000_000, 1_700_000_000); // whole seconds: restorable exactly
    const first = await LLM.create({ model, ...opts });
    const a = await first.generate([1, 403, 407], { maxTokens: 4, temperature: 0 }, { useTqdm: false });
    await first.shutdown();
    // Same size, same header, other weights (the embedding table negated), same mtime.
    const st = fs.statSync(file);
    const bytes = fs.readFileSync(file);
    const headerLen = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
    const data = new Float32Array(bytes.buffer.slice(bytes.byteOffset + 8 + headerLen, bytes.byteOffset + bytes.length));
    for (let i = 0; i < data.length; i++) data[i] = -data[i];
    bytes.set(new Uint8Array(data.buffer), 8 + headerLen);
    fs.writeFileSync(file, bytes);
    fs.utimesSync(file, 1_700_000_000, 1_700_000_000);
    assert.equal(fs.statSync(file).size, st.size);
    assert.equal(fs.statSync(file).mtimeMs, st.mtimeMs);
    const second = await LLM.create({ model, ...opts });
    assert.notEqual(second.engineDir, first.engineDir);
    const b = await second.generate([1, 403, 407], { maxTokens: 4, temperature: 0 }, { useTqdm: false });
    await second.shutdown();
    assert.notDeepEqual(b.outputs[0].tokenIds, a.outputs[0].tokenIds);
  } finally {
    if (saved === undefined) delete process.env.LLMRT_CACHE_DIR;
    else process.env.LLMRT_CACHE_DIR = saved;
  }
});

test("engine cache: a truncated or corrupted cached engine is rebuilt, not an error", async () => {
  const cache = tmp("llmrt-cache-");
  const saved = process.env.LLMRT_CACHE_DIR;
  process.env.LLMRT_CACHE_DIR = cache;
  try {
    const model = copyModel();
    const first = await LLM.create({ model, ...opts });
    const dir = first.engineDir!;
    const want = (await first.generate([1, 403, 407], { maxTokens: 5, temperature: 0 }, { useTqdm: false })).outputs[0].tokenIds;
    await first.shutdown();
    const file = path.join(dir, "rank0.engine");
    const good = fs.readFileSync(file);
    for (const broken of [good.subarray(0, good.length >> 1), Uint8Array.from(good).map((b, i) => (i === good.length - 300 ? b ^ 0x40 : b))]) {
      fs.writeFileSync(file, broken);
      const again = await LLM.create({ model, ...opts });
      assert.equal(again.engineDir, dir);
      const got = (await again.generate([1, 403, 407], { maxTokens: 5, temperature: 0 }, { useTqdm: false })).outputs[0].tokenIds;
      await again.shutdown();
      assert.deepEqual(got, want);
      assert.deepEqual(fs.readFileSync(file), good, "the cache holds a whole engine again");
    }
    // A config.json another llmrt wrote (a key this one does not know): rebuilt too.
    const cfgPath = path.join(dir, "config.json");
    const cfg = JSON.parse(fs.readFileSync(cfgPath, "utf8"));
    fs.writeFileSync(cfgPath, JSON.stringify({ ...cfg, build: { ...cfg.build, someFutureOption: 1 } }));
    const again = await LLM.create({ model, ...opts });
    await again.shutdown();
    assert.equal(JSON.parse(fs.readFileSync(cfgPath, "utf8")).build.someFutureOption, undefined);
  } finally {
    if (saved === undefined) delete process.env.LLMRT_CACHE_DIR;
    else process.env.LLMRT_CACHE_DIR = saved;
  }
});

test("one cache root: engines and compiled artifacts both honour LLMRT_CACHE_DIR, then XDG_CACHE_HOME, then ~/.cache", () => {
  const env = process.env;
  const saved = { LLMRT_CACHE_DIR: env.LLMRT_CACHE_DIR, XDG_CACHE_HOME: env.XDG_CACHE_HOME };
  try {
    delete env.LLMRT_CACHE_DIR;
    env.XDG_CACHE_HOME = "/tmp/xdg-test";
    assert.equal(cacheRoot(), "/tmp/xdg-test/llmrt");
    assert.equal(llmrtCacheDir(), "/tmp/xdg-test/llmrt");
    assert.ok(engineCacheDir(stories, {}, "auto").startsWith("/tmp/xdg-test/llmrt/engines/"));
    env.LLMRT_CACHE_DIR = "/tmp/llmrt-explicit";
    assert.equal(cacheRoot(), "/tmp/llmrt-explicit");
    assert.equal(llmrtCacheDir(), "/tmp/llmrt-explicit");
    delete env.LLMRT_CACHE_DIR;
    delete env.XDG_CACHE_HOME;
    assert.equal(cacheRoot(), path.join(os.homedir(), ".cache", "llmrt"));
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete env[k];
      else env[k] = v;
    }
  }
});

test("engine cache: the key covers the code that builds engines; leftovers of interrupted builds are swept after an hour", async () => {
  assert.match(builderDigest(), /^[0-9a-f]{64}$/, "the builder sources are hashed");
  assert.equal(builderDigest(), builderDigest());
  const cache = tmp("llmrt-cache-");
  const saved = process.env.LLMRT_CACHE_DIR;
  process.env.LLMRT_CACHE_DIR = cache;
  try {
    const engines = path.join(cache, "engines");
    fs.mkdirSync(engines, { recursive: true });
    const stale = path.join(engines, "0123456789abcdef01234567.tmp-999-abc");
    const fresh = path.join(engines, "0123456789abcdef01234567.tmp-998-def");
    const bad = path.join(engines, "0123456789abcdef01234567.bad-997-ghi");
    for (const d of [stale, fresh, bad]) fs.mkdirSync(d);
    const old = Date.now() / 1000 - 7200;
    fs.utimesSync(stale, old, old);
    fs.utimesSync(bad, old, old);
    const llm = await LLM.create({ model: copyModel(), ...opts });
    await llm.shutdown();
    assert.ok(!fs.existsSync(stale) && !fs.existsSync(bad), "hour-old leftovers removed");
    assert.ok(fs.existsSync(fresh), "a build in progress elsewhere is left alone");
  } finally {
    if (saved === undefined) delete process.env.LLMRT_CACHE_DIR;
    else process.env.LLMRT_CACHE_DIR = saved;
  }
});
