// Engines are validated and checksummed on load (issue 11 #8), sizes are checked before anything is
// allocated (#5), checkpoints are checked tensor by tensor (#7), and an engine config.json without
// maxSeqLen or a safetensors path that is a directory are clear errors.
import * as fs from "node:fs";
import * as path from "node:path";
import { buildSync } from "../lib/builder/builder.ts";
import { Engine } from "../lib/builder/engine.ts";
import { crc32 } from "../lib/builder/engine_format.ts";
import { AutoModelForCausalLM } from "../lib/models/llama.ts";
import { Checkpoint, SafetensorsFile } from "../lib/models/safetensors.ts";
import { ModelRunner } from "../lib/runtime/model_runner.ts";
import { LlmrtError } from "../lib/util/errors.ts";
import { blobOffset, rewriteMeta } from "./hostile/engine_edit.ts";
import { removeTempDirs, tempDir, TINY, writeTiny } from "./hostile/fixtures.ts";
import { assert, sharedDir, test } from "./harness.ts";

const stories = `${sharedDir}models/stories260k`;

/** Asserts `fn` throws an LlmrtError of `kind` whose message matches every pattern. */
function throwsKind(fn: () => unknown, kind: string, ...patterns: RegExp[]): LlmrtError {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof LlmrtError, `expected an LlmrtError, got ${e}`);
    assert.equal(e.kind, kind, e.message);
    for (const p of patterns) assert.match(e.message, p);
    return e;
  }
  throw new assert.AssertionError({ message: `expected a ${kind} error matching ${patterns.join(", ")}` });
}

function buildFrom(dir: string, opts = {}): Engine {
  const model = AutoModelForCausalLM.fromHuggingFace(dir);
  try {
    return buildSync(model, { maxBatchSize: 2, maxNumTokens: 64, ...opts });
  } finally {
    model.close();
  }
}

function savedStories(): string {
  const dir = tempDir("llmrt-engine-");
  const e = buildFrom(stories);
  e.save(dir);
  e.dispose();
  return dir;
}

test("engine validation: an unknown op type is a FormatError naming it, not skipped", () => {
  const dir = savedStories();
  rewriteMeta(path.join(dir, "rank0.engine"), (m) => {
    m.plan.ops.splice(3, 0, { type: "fancy_new_op", x: "hidden" });
  });
  throwsKind(() => Engine.fromDir(dir), "format", /unknown op type "fancy_new_op"/, /rank0\.engine/);
});

test("engine validation: head counts edited in config.json or in the plan are caught", () => {
  const dir = savedStories();
  const cfgPath = path.join(dir, "config.json");
  const cfg = JSON.parse(fs.readFileSync(cfgPath, "utf8"));
  fs.writeFileSync(cfgPath, JSON.stringify({ ...cfg, model: { ...cfg.model, numAttentionHeads: 4 } }));
  throwsKind(() => Engine.fromDir(dir), "format", /config\.json does not belong/, /model\.numAttentionHeads is 4 in config\.json but 8 in the engine/);
  fs.writeFileSync(cfgPath, JSON.stringify(cfg));
  rewriteMeta(path.join(dir, "rank0.engine"), (m) => {
    for (const op of m.plan.ops) if (op.type === "paged_attention") op.numHeads = 4;
  });
  throwsKind(() => Engine.fromDir(dir), "format", /numHeads is 4, the config says 8/);
});

test("engine validation: a config.json from another model is rejected", () => {
  const a = savedStories();
  const other = buildFrom(writeTiny());
  const b = tempDir("llmrt-engine-");
  other.save(b);
  fs.copyFileSync(path.join(b, "config.json"), path.join(a, "config.json"));
  throwsKind(() => Engine.fromDir(a), "format", /config\.json does not belong to rank0\.engine/);
});

test("engine validation: a weight whose shape disagrees with the config is named", () => {
  const dir = savedStories();
  rewriteMeta(path.join(dir, "rank0.engine"), (m) => {
    const t = m.tensors.find((x) => x.name === "layers.0.down.weight");
    t.shape = [t.shape[1], t.shape[0]];
  });
  throwsKind(() => Engine.fromDir(dir), "format", /weight 'layers\.0\.down\.weight' has shape \[172, 64\], expected \[64, 172\]/);
});

test("engine checksums: a flipped weight byte is a FormatError naming the tensor, on read and in verify()", () => {
  const dir = savedStories();
  const file = path.join(dir, "rank0.engine");
  const bytes = fs.readFileSync(file);
  bytes[blobOffset(file, "layers.2.qkv.weight") + 100] ^= 0x01;
  fs.writeFileSync(file, bytes);
  using e = Engine.fromDir(dir);
  throwsKind(() => e.readTensor("layers.2.qkv.weight"), "format", /tensor 'layers\.2\.qkv\.weight' is corrupt/, /CRC-32/);
  throwsKind(() => e.verify(), "format", /layers\.2\.qkv\.weight/);
  assert.throws(() => ModelRunner.fromDir(dir), /layers\.2\.qkv\.weight' is corrupt/);
});

test("engine checksums: verifying a big engine's blobs is cheap (CRC-32 throughput measured)", () => {
  const dir = tempDir("llmrt-engine-");
  const e = buildFrom(writeTiny({ spec: { ...TINY, V: 16000, H: 512, I: 1376, L: 2, nH: 8, nKV: 4, hd: 64 } }));
  e.save(dir);
  e.dispose();
  const size = fs.statSync(path.join(dir, "rank0.engine")).size;
  using opened = Engine.fromDir(dir);
  const t0 = performance.now();
  opened.verify();
  const ms = performance.now() - t0;
  const gbps = size / 1e9 / (ms / 1000);
  const whole = fs.readFileSync(path.join(dir, "rank0.engine"));
  const t1 = performance.now();
  crc32(whole);
  const crcMs = performance.now() - t1;
  const crcBytes = whole.byteLength;
  console.log(
    `verify: ${(size / 1e6).toFixed(0)} MB in ${ms.toFixed(0)} ms = ${gbps.toFixed(2)} GB/s (read + CRC-32); CRC-32 alone ${
      (crcBytes / 1e9 / (crcMs / 1000)).toFixed(1)
    } GB/s`,
  );
  removeTempDirs();
  assert.ok(size > 50e6, `engine of ${size} bytes`);
  assert.ok(gbps > 0.02, `verification at ${gbps} GB/s`); // loose: CI machines under load
});

test("engine config.json without build.maxSeqLen names the field (not NaN blocks)", () => {
  const dir = savedStories();
  const cfgPath = path.join(dir, "config.json");
  const cfg = JSON.parse(fs.readFileSync(cfgPath, "utf8"));
  delete cfg.build.maxSeqLen;
  fs.writeFileSync(cfgPath, JSON.stringify(cfg));
  const e = throwsKind(() => Engine.fromDir(dir), "validation", /build\.maxSeqLen/);
  assert.doesNotMatch(e.message, /NaN/);
});

test("sizes: absurd vocab_size, max_position_embeddings, maxNumTokens, maxBatchSize are ResourceErrors naming the field, bytes and limit", () => {
  const cases: [Record<string, unknown>, Record<string, unknown>, RegExp][] = [
    [{ vocab_size: 1e9 }, {}, /config\.vocab_size = 1000000000 asks for .* bytes\) for the embedding table/],
    [{ num_hidden_layers: 1e9 }, {}, /config\.num_hidden_layers = 1000000000 asks for/],
    [{ hidden_size: 1e9 }, {}, /config\.hidden_size = 1000000000 asks for/],
    [{ max_position_embeddings: 1e9 }, {}, /config\.max_position_embeddings = 1000000000 asks for .* KV cache of one sequence/],
    [{}, { maxNumTokens: 1e8 }, /BuildConfig\.maxNumTokens = 100000000 asks for/],
    [{}, { maxBatchSize: 1e7 }, /BuildConfig\.maxBatchSize = 10000000 asks for .* logits of that many sequences/],
  ];
  for (const [cfg, build, re] of cases) {
    const dir = writeTiny({ config: (c) => Object.assign(c, cfg) });
    const model = AutoModelForCausalLM.fromHuggingFace(dir);
    try {
      const e = throwsKind(() => buildSync(model, { maxBatchSize: 2, maxNumTokens: 64, ...build }), "resource", re, /the limit is/);
      assert.ok(typeof e.data?.bytes === "number" && typeof e.data?.limitBytes === "number");
    } finally {
      model.close();
    }
  }
});

test("sizes: an engine whose config asks for too much is refused at load, before allocating", () => {
  const dir = savedStories();
  const file = path.join(dir, "rank0.engine");
  rewriteMeta(file, (m) => {
    m.config.build.maxBatchSize = 1e7;
    m.plan.maxSeqs = 1e7;
    for (const b of Object.values(m.plan.buffers) as { rows: string; bytes: number; width: number; offset: number }[]) {
      if (b.rows === "seqs") b.bytes = Math.ceil((1e7 * b.width * 4) / 256) * 256;
    }
    m.plan.arenaBytes = Math.max(
      ...Object.values(m.plan.buffers).map((b) => (b as { offset: number; bytes: number }).offset + (b as { bytes: number }).bytes),
    ) * 2;
  });
  const cfgPath = path.join(dir, "config.json");
  const cfg = JSON.parse(fs.readFileSync(cfgPath, "utf8"));
  cfg.build.maxBatchSize = 1e7;
  fs.writeFileSync(cfgPath, JSON.stringify(cfg));
  throwsKind(() => Engine.fromDir(dir), "resource", /BuildConfig\.maxBatchSize = 10000000/, /the limit is/);
});

test("checkpoint: a transposed down_proj is a FormatError naming the tensor and both shapes", () => {
  const dir = writeTiny({
    tensors: (t) => {
      const d = t.get("model.layers.1.mlp.down_proj.weight")!;
      d.shape = [d.shape[1], d.shape[0]];
    },
  });
  throwsKind(() => buildFrom(dir), "format", /'model\.layers\.1\.mlp\.down_proj\.weight' has shape \[64, 32\], expected \[32, 64\]/, /transposed/);
});

test("checkpoint: tie_word_embeddings false with no lm_head.weight is an error, not silently tied", () => {
  const dir = writeTiny({ tensors: (t) => t.delete("lm_head.weight") });
  throwsKind(() => buildFrom(dir), "format", /'lm_head\.weight' is missing/, /tie_word_embeddings is false/);
  // Tied explicitly: fine.
  const tied = writeTiny({ config: (c) => (c.tie_word_embeddings = true), tensors: (t) => t.delete("lm_head.weight") });
  buildFrom(tied).dispose();
});

test("checkpoint: num_hidden_layers smaller than the checkpoint's layers is an error naming the unused tensor", () => {
  const dir = writeTiny({ config: (c) => (c.num_hidden_layers = 1) });
  throwsKind(() => buildFrom(dir), "format", /model\.layers\.1\./, /num_hidden_layers is 1/);
  const more = writeTiny({ config: (c) => (c.num_hidden_layers = 3) });
  throwsKind(() => buildFrom(more), "format", /'model\.layers\.2\.input_layernorm\.weight' is missing/);
});

test("safetensors: a path that is a directory names the path", () => {
  const dir = tempDir();
  throwsKind(() => SafetensorsFile.open(dir), "format", new RegExp(dir.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")), /directory/);
  const ckpt = tempDir();
  fs.mkdirSync(path.join(ckpt, "model.safetensors"));
  throwsKind(() => Checkpoint.open(ckpt), "format", /model\.safetensors/, /directory/);
});
