// Engine serialization, the build passes and memory plan, and the errors for bad engine files.
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { buildSync } from "../lib/builder/builder.ts";
import { Engine } from "../lib/builder/engine.ts";
import { opTensors } from "../lib/ir/plan.ts";
import { AutoModelForCausalLM } from "../lib/models/llama.ts";
import { ModelRunner } from "../lib/runtime/model_runner.ts";
import { assert, sharedDir, test } from "./harness.ts";

const modelDir = `${sharedDir}models/stories260k`;
const ref = JSON.parse(fs.readFileSync(`${modelDir}/reference_outputs.json`, "utf8"));

function built(opts = {}): Engine {
  const model = AutoModelForCausalLM.fromHuggingFace(modelDir);
  try {
    return buildSync(model, { maxBatchSize: 4, maxNumTokens: 256, ...opts });
  } finally {
    model.close();
  }
}

function savedCopy(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "llmrt-engine-"));
  built().save(dir);
  return dir;
}

test("build is fast and an engine saved then read back generates the golden ids", () => {
  const t0 = performance.now();
  const e = built();
  const ms = performance.now() - t0;
  assert.ok(ms < 5000, `build took ${ms} ms`);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "llmrt-engine-"));
  e.save(dir);
  assert.ok(Engine.isEngineDir(dir));
  using runner = ModelRunner.fromDir(dir);
  const out = runner.generate([ref.prompt_ids], { maxNewTokens: 64, endId: -1 });
  assert.deepEqual(out.newTokenIds[0], ref.greedy_new_ids.slice(0, 64));
  assert.equal(runner.engine.config.build.maxBatchSize, 4);
  for (const n of e.tensorNames()) assert.deepEqual(runner.engine.readTensor(n), e.readTensor(n), n);
});

test("engine file: blobs are 256-byte aligned and the header carries magic and version", () => {
  const dir = savedCopy();
  const bytes = fs.readFileSync(path.join(dir, "rank0.engine"));
  assert.equal(new TextDecoder().decode(bytes.subarray(0, 8)), "LLMRTENG");
  const e = Engine.fromDir(dir);
  const dv = new DataView(bytes.buffer, bytes.byteOffset);
  const dataOffset = Number(dv.getBigUint64(32, true));
  assert.equal(dataOffset % 256, 0);
  assert.ok(e.tensorNames().includes("layers.0.qkv.weight"));
  assert.deepEqual(e.tensorInfo("layers.0.qkv.weight").shape, [(8 + 2 * 4) * 8, 64]);
  e.dispose();
  e.dispose(); // idempotent
  assert.throws(() => e.readTensor("embed_tokens"), /used after dispose/);
});

test("engine errors: wrong magic, wrong version, truncated file, missing tensor, bad config", () => {
  const dir = savedCopy();
  const file = path.join(dir, "rank0.engine");
  const good = fs.readFileSync(file);

  const badMagic = Uint8Array.from(good);
  badMagic.set(new TextEncoder().encode("NOTANENG"), 0);
  fs.writeFileSync(file, badMagic);
  assert.throws(() => Engine.fromDir(dir), /magic "NOTANENG", expected "LLMRTENG"/);

  const badVersion = Uint8Array.from(good);
  new DataView(badVersion.buffer).setUint32(8, 99, true);
  fs.writeFileSync(file, badVersion);
  assert.throws(() => Engine.fromDir(dir), /format version 99; this llmrt needs version 2/);

  fs.writeFileSync(file, good.subarray(0, good.length - 1000));
  assert.throws(() => Engine.fromDir(dir), /truncated: \d+ of \d+ bytes/);
  fs.writeFileSync(file, good.subarray(0, 100));
  assert.throws(() => Engine.fromDir(dir), /truncated: 100 bytes/);

  // A tensor the plan needs, renamed in the table: the table's CRC-32 no longer matches.
  const text = new TextDecoder("latin1").decode(good);
  const renamed = text.replace('"name":"norm"', '"name":"nrmx"');
  assert.notEqual(renamed, text);
  fs.writeFileSync(file, Uint8Array.from(renamed, (c) => c.charCodeAt(0)));
  assert.throws(() => Engine.fromDir(dir), /plan\/tensor table is corrupt/);

  fs.writeFileSync(file, good);
  const cfgPath = path.join(dir, "config.json");
  const cfg = JSON.parse(fs.readFileSync(cfgPath, "utf8"));
  fs.writeFileSync(cfgPath, JSON.stringify({ ...cfg, llmrt: { formatVersion: 0 } }));
  assert.throws(() => Engine.fromDir(dir), /format version 0; this llmrt needs version 2/);
  fs.writeFileSync(cfgPath, JSON.stringify({ ...cfg, build: { ...cfg.build, maxBatchSize: -3 } }));
  assert.throws(() => Engine.fromDir(dir), /build\.maxBatchSize.*got -3/);
  fs.writeFileSync(cfgPath, "{ not json");
  assert.throws(() => Engine.fromDir(dir), /config\.json cannot be read/);
  fs.writeFileSync(cfgPath, JSON.stringify(cfg));
  Engine.fromDir(dir).dispose();
});

test("build passes: add+rmsnorm fused; planned buffers that are live together never overlap", () => {
  const e = built();
  const ops = e.plan.ops;
  const L = 5;
  assert.equal(ops.filter((o) => o.type === "add_rmsnorm").length, 2 * L - 1);
  assert.equal(ops.filter((o) => o.type === "add").length, 1);
  const first = new Map<string, number>(), last = new Map<string, number>();
  ops.forEach((op, i) => {
    const { reads, writes } = opTensors(op);
    for (const t of [...reads, ...writes]) {
      if (!first.has(t)) first.set(t, i);
      last.set(t, i);
    }
  });
  const names = [...first.keys()];
  let reused = 0;
  for (const a of names) {
    for (const b of names) {
      if (a >= b) continue;
      const A = e.plan.buffers[a], B = e.plan.buffers[b];
      const liveTogether = first.get(a)! <= last.get(b)! && first.get(b)! <= last.get(a)!;
      const overlap = A.offset < B.offset + B.bytes && B.offset < A.offset + A.bytes;
      if (liveTogether) assert.ok(!overlap, `${a} and ${b} are live together but overlap`);
      if (overlap) reused++;
    }
  }
  assert.ok(reused > 0, "the planner reused no memory");
  const sum = Object.values(e.plan.buffers).reduce((a, b) => a + b.bytes, 0);
  assert.ok(e.plan.arenaBytes < sum / 2, `arena ${e.plan.arenaBytes} vs ${sum} unplanned`);
});

test("BuildConfig errors name the field and value", () => {
  assert.throws(() => built({ maxBatchSize: 0 }), /BuildConfig\.maxBatchSize.*got 0/);
  assert.throws(() => built({ tokensPerBlock: 24 }), /BuildConfig\.tokensPerBlock: expected a power of two, got 24/);
  assert.throws(() => built({ maxInputLen: 600 }), /maxInputLen: 600 exceeds maxSeqLen 512/);
  assert.throws(() => built({ bogus: 1 } as never), /BuildConfig.*bogus/);
});

test("bf16 engine: weights stored as bfloat16 and greedy output stays on the reference for 16 tokens", () => {
  const model = AutoModelForCausalLM.fromHuggingFace(modelDir, { dtype: "bfloat16" });
  const e = buildSync(model, { maxBatchSize: 2, maxNumTokens: 64 });
  model.close();
  assert.equal(e.tensorInfo("embed_tokens").dtype, "bfloat16");
  assert.equal(e.tensorInfo("embed_tokens").bytes, 512 * 64 * 2);
  using runner = ModelRunner.fromEngine(e);
  const out = runner.generate([ref.prompt_ids], { maxNewTokens: 16, endId: -1 });
  assert.deepEqual(out.newTokenIds[0], ref.greedy_new_ids.slice(0, 16));
});

test("saveAsync: blobs written first, CRC-32s from the file on workers (or here), header last; reads back checked and equal", async () => {
  const e = built();
  for (const threads of [3, 0]) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "llmrt-engine-async-"));
    try {
      await e.saveAsync(dir, threads);
      assert.ok(Engine.isEngineDir(dir));
      const back = Engine.fromDir(dir);
      try {
        back.verify(); // every blob's CRC-32 against the table the async write filled in
        assert.deepEqual(back.tensorNames(), e.tensorNames());
        for (const n of e.tensorNames()) assert.deepEqual(back.readTensor(n), e.readTensor(n), `tensor ${n} (threads ${threads})`);
        assert.equal(JSON.stringify(back.plan), JSON.stringify(e.plan));
      } finally {
        back.dispose();
      }
      // A flipped byte in a blob is caught by the table's CRC-32.
      const f = path.join(dir, "rank0.engine");
      const fd = fs.openSync(f, "r+");
      const head = Buffer.alloc(64);
      fs.readSync(fd, head, 0, 64, 0);
      const metaOffset = Number(head.readBigUInt64LE(16)), metaLength = Number(head.readBigUInt64LE(24));
      const dataOffset = Number(head.readBigUInt64LE(32));
      const metaBytes = Buffer.alloc(metaLength);
      fs.readSync(fd, metaBytes, 0, metaLength, metaOffset);
      const t = JSON.parse(metaBytes.toString("utf8")).tensors.find((x: { bytes: number }) => x.bytes > 100);
      const at = dataOffset + t.offset + 77;
      const b = Buffer.alloc(1);
      fs.readSync(fd, b, 0, 1, at);
      b[0] ^= 0x5a;
      fs.writeSync(fd, b, 0, 1, at);
      fs.closeSync(fd);
      const bad = Engine.fromDir(dir);
      try {
        assert.throws(() => bad.verify(), /corrupt|CRC/i);
      } finally {
        bad.dispose();
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }
  e.dispose();
});
