// Hostile sequences on the executor-level features (session 13's probe 4): iterators left early,
// LoRA names reused with another directory while waiting for a slot, LoRA on a tensor-parallel CPU
// session, async or prompt-mutating logits processors. Each test failed before its fix.
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { buildSync } from "../lib/builder/builder.ts";
import { normalizeGuidedDecoding } from "../lib/executor/guided/params.ts";
import { SamplingParams, type SamplingParamsInput } from "../lib/executor/sampling_params.ts";
import { GenerationExecutorWorker } from "../lib/executor/worker.ts";
import { LLM } from "../lib/llmapi/llm.ts";
import { loadPeftAdapter } from "../lib/models/lora.ts";
import { loadPretrainedConfig } from "../lib/models/config.ts";
import { AutoModelForCausalLM } from "../lib/models/llama.ts";
import { SafetensorsFile, writeSafetensors } from "../lib/models/safetensors.ts";
import { RequestFailedError, UnsupportedError, ValidationError } from "../lib/util/errors.ts";
import { packPeftAdapter } from "../tools/lora-packer/pack.ts";
import { removeTempDirs, tempDir } from "./hostile/fixtures.ts";
import { assert, isDeno, sharedDir, test, testBackend, testBuild, testLlm } from "./harness.ts";

const src = `${sharedDir}models/stories260k`;
const kjv = new URL("../models/kjv-llama", import.meta.url).pathname;
const ref = JSON.parse(fs.readFileSync(`${src}/reference_outputs.json`, "utf8")) as { prompt_ids: number[] };
const model = AutoModelForCausalLM.fromHuggingFace(src);
const engine = buildSync(model, { maxBatchSize: 8, maxNumTokens: 64, tokensPerBlock: 8, maxSeqLen: 128, ...testBuild });
model.close();
const sp = (p: SamplingParamsInput) => new SamplingParams(p);
const executor = () => GenerationExecutorWorker.create({ engine, tokenizer: null, backend: testBackend });
const long = { temperature: 0, maxTokens: 100, ignoreEos: true };

test("leaving a result's for-await loop early aborts the request and frees its KV blocks at once", async () => {
  await using ex = executor();
  const r = ex.submit({ promptTokenIds: ref.prompt_ids, samplingParams: sp(long), streaming: true });
  const mate = ex.submit({ promptTokenIds: ref.prompt_ids, samplingParams: sp({ ...long, maxTokens: 20 }) });
  let seen = 0;
  for await (const _ of r) if (++seen === 3) break;
  // Before: the request ran on to maxTokens 100 with nobody reading, holding its blocks.
  assert.equal(r.done, true);
  const out = await r.result();
  assert.equal(out.outputs[0].finishReason, "abort");
  assert.ok(out.outputs[0].tokenIds.length < 100, `${out.outputs[0].tokenIds.length} tokens`);
  assert.equal((await mate.result()).outputs[0].tokenIds.length, 20);
  assert.equal(ex.kvCacheStats.usedBlocks, 0);
  // A loop that runs to the end, or a throw from a failed request, aborts nothing.
  const full = ex.submit({ promptTokenIds: ref.prompt_ids, samplingParams: sp({ ...long, maxTokens: 5 }), streaming: true });
  for await (const _ of full) { /* read all */ }
  assert.equal((await full.result()).outputs[0].finishReason, "length");
});

test("LLM.generateAsync: breaking out of the stream aborts the request (in process and in the proxy)", async () => {
  for (const executorMode of ["inprocess", "proxy"] as const) {
    await using llm = await LLM.create({ model: src, ...testLlm, executorMode, cacheEngine: false });
    const ro = llm.generateAsync("Once upon a time", long, { streaming: true });
    let seen = 0;
    for await (const _ of ro) if (++seen === 2) break;
    const out = await ro.result();
    assert.equal(out.outputs[0].finishReason, "abort", executorMode);
    assert.ok(out.outputs[0].tokenIds.length < 100, `${executorMode}: ${out.outputs[0].tokenIds.length} tokens`);
  }
});

test("LoRA: a name waiting for a slot is taken — the same name with another directory is refused, not run with the first adapter", async () => {
  const tmp = tempDir("llmrt-lora-hostile-");
  try {
    const pack = (name: string, seed: number) => {
      const dir = path.join(tmp, name);
      packPeftAdapter(kjv, dir, { rank: 4, alpha: 8, targetModules: ["q_proj", "v_proj"], seed, std: 0.08 });
      return dir;
    };
    const a = pack("a", 1), b = pack("b", 2);
    await using llm = await LLM.create({ model: kjv, backend: "cpu", cacheEngine: false, enableLora: true, maxLoras: 1, maxLoraRank: 8 });
    const p = { temperature: 0, maxTokens: 4, ignoreEos: true };
    const holder = llm.generateAsync("And the LORD", p, { loraRequest: { name: "holder", path: a } }); // takes the one slot
    const first = llm.generateAsync("And the LORD", p, { loraRequest: { name: "x", path: b } }); // waits for it
    const second = llm.generateAsync("And the LORD", p, { loraRequest: { name: "x", path: a } }); // same name, another directory
    await assert.rejects(
      second.result(),
      (e: Error) => e instanceof ValidationError && e.field === "loraRequest.name" && /"x" is loaded from .*\/b, not .*\/a/.test(e.message),
    );
    assert.equal(second.rejected, true);
    const [h, f] = await Promise.all([holder.result(), first.result()]);
    const alone = await llm.generate("And the LORD", p, { useTqdm: false, loraRequest: { name: "x", path: b } });
    assert.deepEqual(f.outputs[0].tokenIds, alone.outputs[0].tokenIds);
    assert.equal(h.outputs[0].tokenIds.length, 4);
  } finally {
    removeTempDirs();
  }
});

test("LoRA on a tensor-parallel CPU session is refused (its unsharded A / B corrupted every row of the batch)", async () => {
  await assert.rejects(
    LLM.create({ model: kjv, backend: "cpu", cacheEngine: false, tensorParallelSize: 2, enableLora: true }),
    (e: Error) => e instanceof UnsupportedError && e.field === "enableLora" && /tensor-parallel cpu session/.test(e.message),
  );
});

test("LoRA: an adapter_config.json that is not an object names the file", () => {
  const tmp = tempDir("llmrt-lora-hostile-");
  try {
    const dir = path.join(tmp, "null");
    packPeftAdapter(kjv, dir, { rank: 2, alpha: 4, targetModules: ["q_proj"], seed: 1 });
    fs.writeFileSync(path.join(dir, "adapter_config.json"), "null");
    assert.throws(
      () => loadPeftAdapter(dir, loadPretrainedConfig(kjv), { name: "n", maxLoraRank: 8 }),
      (e: Error) => e instanceof ValidationError && e.field === "adapter_config" && /adapter_config\.json: the file: .*expected object/.test(e.message),
    );
  } finally {
    removeTempDirs();
  }
});

test("logits processors: an async one is refused at validation; a Promise returned fails the request without an unhandled rejection", async () => {
  assert.throws(
    () => sp({ logitsProcessor: (async () => {}) as unknown as () => void }),
    (e: Error) => e instanceof ValidationError && e.field === "SamplingParams.logitsProcessor" && /expected a function .*\(not async\)/.test(e.message),
  );
  await using ex = executor();
  // A plain function returning a rejecting Promise: before, the rejection went unhandled (Deno ends the process on one).
  const promising = () => Promise.reject(new Error("late failure")) as unknown as void;
  const r = ex.submit({ promptTokenIds: ref.prompt_ids, samplingParams: sp({ temperature: 0, maxTokens: 3, logitsProcessor: promising }) });
  const typed = ex.submit({
    promptTokenIds: ref.prompt_ids,
    samplingParams: sp({ temperature: 0, maxTokens: 3, logitsProcessor: (_, l) => new Float64Array(l.length) as unknown as Float32Array }),
  });
  const mate = ex.submit({ promptTokenIds: ref.prompt_ids, samplingParams: sp({ temperature: 0, maxTokens: 3 }) });
  await assert.rejects(r.result(), (e: Error) => e instanceof ValidationError && /returned a Promise \(logits processors run synchronously/.test(e.message));
  await assert.rejects(typed.result(), (e: Error) => e instanceof ValidationError && /returned a Float64Array of \d+;/.test(e.message));
  assert.equal((await mate.result()).outputs[0].tokenIds.length, 3);
  await new Promise((res) => setTimeout(res, 10)); // the rejection's turn
  assert.equal(ex.kvCacheStats.usedBlocks, 0);
});

test("logits processors: info.promptIds is read-only, so a callback cannot rewrite the request's prompt", async () => {
  await using ex = executor();
  const r = ex.submit({
    promptTokenIds: ref.prompt_ids,
    samplingParams: sp({ temperature: 0, maxTokens: 3, logitsProcessor: (_, __, info) => void ((info.promptIds as number[]).length = 0) }),
  });
  await assert.rejects(r.result(), (e: Error) => e instanceof RequestFailedError && /logitsProcessor threw/.test(e.message));
  assert.deepEqual(r.latest.promptTokenIds, ref.prompt_ids);
  assert.equal(ex.kvCacheStats.usedBlocks, 0);
});

test("an onUpdate listener that throws cannot strand other requests: the executor delivers to all; a running request fails with the error", async () => {
  await using ex = executor();
  const p = { temperature: 0, maxTokens: 3, ignoreEos: true };
  const a = ex.submit({ promptTokenIds: ref.prompt_ids, samplingParams: sp(p) });
  const b = ex.submit({ promptTokenIds: ref.prompt_ids, samplingParams: sp(p) });
  const c = ex.submit({ promptTokenIds: ref.prompt_ids, samplingParams: sp({ ...p, maxTokens: 10 }) });
  a.onUpdate(() => {
    if (a.done) throw new Error("listener boom");
  });
  // Before: the throw left b (finishing in the same step) without its final output, forever.
  const [ra, rb, rc] = await Promise.all([a.result(), b.result(), c.result()]);
  assert.deepEqual([ra, rb, rc].map((r) => r.outputs[0].finishReason), ["length", "length", "length"]);
  // A listener throwing while its request runs: the request fails with the error and stops (blocks freed).
  const d = ex.submit({ promptTokenIds: ref.prompt_ids, samplingParams: sp(long), streaming: true });
  const e = ex.submit({ promptTokenIds: ref.prompt_ids, samplingParams: sp({ ...p, maxTokens: 8 }) });
  d.onUpdate(() => {
    throw new Error("mid-stream boom");
  });
  await assert.rejects(d.result(), (err: Error) => err instanceof RequestFailedError && /onUpdate: a listener threw: mid-stream boom/.test(err.message));
  assert.equal((await e.result()).outputs[0].tokenIds.length, 8);
  assert.equal(ex.numInFlight, 0);
  assert.equal(ex.kvCacheStats.usedBlocks, 0);
});

test("LoRA: an adapter holding NaN or inf is refused at load, naming the tensor (not a NaN-logits failure at the first token)", () => {
  const tmp = tempDir("llmrt-lora-hostile-");
  try {
    const dir = path.join(tmp, "nan");
    packPeftAdapter(kjv, dir, { rank: 2, alpha: 4, targetModules: ["q_proj"], seed: 1 });
    const file = path.join(dir, "adapter_model.safetensors");
    const f = SafetensorsFile.open(file);
    const tensors = Object.fromEntries(
      f.names().map((n) => {
        const data = f.readFloat32(n);
        if (n.includes("layers.1.") && n.includes("lora_B")) data[3] = NaN;
        return [n, { dtype: "F32" as const, shape: f.info(n).shape, data }];
      }),
    );
    f.close();
    writeSafetensors(file, tensors);
    assert.throws(
      () => loadPeftAdapter(dir, loadPretrainedConfig(kjv), { name: "n", maxLoraRank: 8 }),
      (e: Error) => e instanceof ValidationError && /layers\.1\.self_attn\.q_proj\.lora_B\.weight' holds NaN at element 3/.test(e.message),
    );
  } finally {
    removeTempDirs();
  }
});

test("submitWhenReady: a prepare that throws at once fails its request (it was left in flight forever, the throw escaping)", async () => {
  await using ex = executor();
  const r = ex.submitWhenReady(
    () => {
      throw new ValidationError("prepare refused", "prompt");
    },
    null,
    1,
  );
  await assert.rejects(r.result(), (e: Error) => e instanceof ValidationError && e.message === "prepare refused");
  assert.equal(r.rejected, true);
  assert.equal(ex.numInFlight, 0);
});

test("LoRA: an adapter missing layers its target_modules cover (truncated, or made for a shallower model) is refused, not half applied", () => {
  const tmp = tempDir("llmrt-lora-hostile-");
  try {
    const dir = path.join(tmp, "short");
    packPeftAdapter(kjv, dir, { rank: 2, alpha: 4, targetModules: ["q_proj", "o_proj"], seed: 1 });
    const file = path.join(dir, "adapter_model.safetensors");
    const f = SafetensorsFile.open(file);
    const kept = f.names().filter((n) => !/layers\.[45]\./.test(n)); // kjv-llama has 6 layers
    const tensors = Object.fromEntries(kept.map((n) => [n, { dtype: "F32" as const, shape: f.info(n).shape, data: f.readFloat32(n) }]));
    f.close();
    writeSafetensors(file, tensors);
    assert.throws(
      () => loadPeftAdapter(dir, loadPretrainedConfig(kjv), { name: "s", maxLoraRank: 8 }),
      (e: Error) =>
        e instanceof ValidationError && /no lora_A \/ lora_B for layer 4 q_proj, which target_modules lists \(the model has 6 layers/.test(e.message),
    );
  } finally {
    removeTempDirs();
  }
});

test("LoRA: integer A / B tensors and a module's lora_A given twice are refused (they were read as floats / the later one won)", () => {
  const tmp = tempDir("llmrt-lora-hostile-");
  try {
    const cfg = loadPretrainedConfig(kjv);
    const rewrite = (
      name: string,
      edit: (tensors: Record<string, { dtype: "F32" | "I8"; shape: readonly number[]; data: ArrayBufferView }>, first: string) => void,
    ) => {
      const dir = path.join(tmp, name);
      packPeftAdapter(kjv, dir, { rank: 2, alpha: 4, targetModules: ["q_proj"], seed: 1 });
      const file = path.join(dir, "adapter_model.safetensors");
      const f = SafetensorsFile.open(file);
      const tensors: Record<string, { dtype: "F32" | "I8"; shape: readonly number[]; data: ArrayBufferView }> = Object.fromEntries(
        f.names().map((n) => [n, { dtype: "F32" as const, shape: f.info(n).shape, data: f.readFloat32(n) }]),
      );
      edit(tensors, f.names().find((n) => n.includes("layers.0.") && n.includes("lora_A"))!);
      f.close();
      writeSafetensors(file, tensors);
      return dir;
    };
    const int8 = rewrite("int8", (t, k) => (t[k] = { dtype: "I8", shape: t[k].shape, data: new Int8Array((t[k].data as Float32Array).length).fill(3) }));
    assert.throws(
      () => loadPeftAdapter(int8, cfg, { name: "i", maxLoraRank: 8 }),
      (e: Error) => e instanceof ValidationError && /lora_A\.weight' is I8; LoRA weights must be floating point/.test(e.message),
    );
    const twice = rewrite("twice", (t, k) => (t[k.replace(".weight", ".default.weight")] = t[k]));
    assert.throws(
      () => loadPeftAdapter(twice, cfg, { name: "t", maxLoraRank: 8 }),
      (e: Error) => e instanceof ValidationError && /layer 0 q_proj has lora_A twice/.test(e.message),
    );
  } finally {
    removeTempDirs();
  }
});

test("guided decoding: constraints nested past what the grammar engine's stack takes are refused at submission; BigInt / cyclic schemas name the field", () => {
  const refused = (gd: unknown, re: RegExp) =>
    assert.throws(() => normalizeGuidedDecoding(gd), (e: Error) => e instanceof ValidationError && re.test(e.message));
  const nest = (n: number, wrap: (inner: unknown) => unknown): unknown => {
    let s: unknown = { type: "integer" };
    for (let i = 0; i < n; i++) s = wrap(s);
    return s;
  };
  // Before: 60 levels of additionalProperties / 70 of items trapped xgrammar, 40 $ref links corrupted it silently,
  // 200 nested regex or EBNF groups aborted it — and every later guided request of the process failed or hung.
  refused({ json: nest(60, (m) => ({ type: "object", additionalProperties: m })) }, /guidedDecoding\.json: the JSON Schema nests deeper than 32/);
  refused({ json: nest(70, (m) => ({ type: "array", items: m })) }, /nests deeper than 32/);
  const defs = Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`d${i}`, { type: "object", properties: { x: { $ref: `#/$defs/d${i + 1}` } } }]));
  refused({ json: { $defs: { ...defs, d40: { type: "integer" } }, $ref: "#/$defs/d0" } }, /nests deeper than 32 objects \/ arrays \(following \$ref\)/);
  refused({ json: JSON.stringify(nest(40, (m) => ({ type: "object", properties: { a: m } }))) }, /nests deeper than 32/);
  refused({ regex: "(".repeat(200) + "a" + ")".repeat(200) }, /guidedDecoding\.regex: groups nest 200 deep, above the limit of 64/);
  refused({ grammar: `root ::= ${"(".repeat(200)}"a"${")".repeat(200)}` }, /guidedDecoding\.grammar: groups nest 200 deep/);
  refused({ json: { type: "integer", maximum: 10n } }, /guidedDecoding\.json: the JSON Schema cannot be written as JSON/);
  const cyclic: Record<string, unknown> = { type: "object" };
  cyclic.properties = { self: cyclic };
  refused({ json: cyclic }, /cannot be written as JSON/);
  // What stays accepted: nesting at the limits, a recursive $ref (one rule), parentheses that are literals or escaped.
  normalizeGuidedDecoding({ json: nest(31, (m) => ({ type: "array", items: m })) });
  const tree = { type: "object", properties: { kids: { type: "array", items: { $ref: "#" } } } };
  normalizeGuidedDecoding({ json: tree });
  normalizeGuidedDecoding({ regex: "(".repeat(64) + "a" + ")".repeat(64) + "[(]{100}" + "\\(".repeat(100) });
  normalizeGuidedDecoding({ grammar: `root ::= "${"(".repeat(100)}" [(]` });
});

test("guided decoding: after the grammar engine crashes, later constraints fail at once naming the crash (they failed anywhere or hung)", () => {
  // A child process: the crash breaks its engine for good.
  const script = new URL("./hostile/xgrammar_crash.ts", import.meta.url).pathname;
  const args = isDeno ? ["run", "-A", script] : [script];
  const r = spawnSync(process.execPath, args, { encoding: "utf8", timeout: 60_000 });
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout.trim().split("\n").at(-1)!) as { deep: string; after: string };
  assert.match(out.deep, /^ValidationError: SamplingParams\.guidedDecoding\.regex: /);
  assert.match(
    out.after,
    /^InternalError: guided decoding: the grammar engine \(xgrammar, WebAssembly\) crashed on an earlier request .* until the process restarts$/,
  );
});
