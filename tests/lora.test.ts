// LoRA adapters (issue 15 part 3): PEFT adapters from tools/lora-packer, loaded per request; a LoRA
// request's logits equal the merged-weight model's (W + alpha/r · B·A) within 1e-5 while a request
// without an adapter in the same batch is unchanged; two adapters in one batch; prefix-cache isolation.
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { assert, test } from "./harness.ts";
import { LLM } from "../mod.ts";
import { mergePeftAdapter, packPeftAdapter } from "../tools/lora-packer/pack.ts";
import { loadPeftAdapter } from "../lib/models/lora.ts";
import { loadPretrainedConfig } from "../lib/models/config.ts";
import type { RequestOutput } from "../lib/executor/outputs.ts";

const kjv = new URL("../models/kjv-llama/", import.meta.url).pathname;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "llmrt-lora-test-"));
const adapterAll = path.join(tmp, "all"), mergedAll = path.join(tmp, "all-merged");
const adapterQv = path.join(tmp, "qv"), mergedQv = path.join(tmp, "qv-merged");
packPeftAdapter(kjv, adapterAll, { rank: 4, alpha: 8, targetModules: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"], seed: 1 });
mergePeftAdapter(kjv, adapterAll, mergedAll);
packPeftAdapter(kjv, adapterQv, { rank: 8, alpha: 32, targetModules: ["q_proj", "v_proj"], seed: 2, std: 0.08 });
mergePeftAdapter(kjv, adapterQv, mergedQv);

// Over 32 tokens (one KV block) so prefix reuse could hit if adapters were not kept apart.
const PROMPT =
  "And the LORD spake unto Moses, saying, Speak unto the children of Israel, and say unto them, When any man of you bringeth an offering unto the LORD,";
const PARAMS = { maxTokens: 6, temperature: 0, ignoreEos: true, returnGenerationLogits: true };

function maxAbsDiff(a: readonly Float32Array[], b: readonly Float32Array[]): number {
  assert.equal(a.length, b.length);
  let d = 0;
  a.forEach((row, i) => row.forEach((v, j) => (d = Math.max(d, Math.abs(v - b[i][j])))));
  return d;
}

let mergedQvIds: number[] | null = null;

async function alone(model: string): Promise<RequestOutput> {
  await using llm = await LLM.create({ model, backend: "cpu" });
  return await llm.generate(PROMPT, PARAMS, { useTqdm: false });
}

test("lora: the packer writes PEFT's layout and the loader maps it onto the fused linears", () => {
  const cfg = JSON.parse(fs.readFileSync(path.join(adapterQv, "adapter_config.json"), "utf8"));
  assert.equal(cfg.peft_type, "LORA");
  assert.deepEqual(cfg.target_modules, ["q_proj", "v_proj"]);
  const model = loadPretrainedConfig(kjv);
  const a = loadPeftAdapter(adapterQv, model, { name: "qv", maxLoraRank: 64 });
  assert.equal(a.scaling, 4);
  const segs = a.weights.get("layers.0.qkv.weight")!;
  assert.deepEqual(segs.map((s) => [s.outOffset, s.outFeatures]), [[0, 256], [320, 64]]); // q: 8 heads × 32; v after q and k (2 × 32)
  assert.equal(a.weights.size, model.numHiddenLayers);
  assert.throws(
    () => loadPeftAdapter(adapterQv, model, { name: "qv", maxLoraRank: 4 }),
    (e: Error) => e.name === "ValidationError" && /maxLoraRank/.test(e.message),
  );
  assert.throws(
    () => loadPeftAdapter(tmp, model, { name: "none", maxLoraRank: 64 }),
    (e: Error) => e.name === "ValidationError" && /loraRequest\.path/.test(e.message),
  );
});

test("lora: adapter logits equal the merged model's within 1e-5 while a base request in the same batch is unchanged; two adapters in one batch", async () => {
  const base = await alone(kjv);
  const mAll = await alone(mergedAll);
  const mQv = await alone(mergedQv);
  mergedQvIds = [...mQv.outputs[0].tokenIds];
  await using llm = await LLM.create({ model: kjv, backend: "cpu", enableLora: true, maxLoras: 2, maxLoraRank: 8 });
  // The base request first, alone: its blocks are published for prefix reuse…
  const baseFirst = await llm.generate(PROMPT, PARAMS, { useTqdm: false });
  // …then one step batches a base request and two adapters (none may reuse the base's KV).
  const reqs = [
    llm.generateAsync(PROMPT, PARAMS, { loraRequest: { name: "all", path: adapterAll } }),
    llm.generateAsync(PROMPT, PARAMS),
    llm.generateAsync(PROMPT, PARAMS, { loraRequest: { name: "qv", path: adapterQv } }),
  ];
  const [withAll, plain, withQv] = await Promise.all(reqs.map((r) => r.result()));
  const logits = (o: RequestOutput): Float32Array[] => [...o.outputs[0].generationLogits!];
  const dAll = maxAbsDiff(logits(withAll), logits(mAll));
  const dQv = maxAbsDiff(logits(withQv), logits(mQv));
  console.log(`LoRA vs merged weights: max |Δlogit| ${dAll.toExponential(2)} (7 modules, r 4), ${dQv.toExponential(2)} (q/v, r 8)`);
  assert.ok(dAll <= 1e-5, `adapter "all": max abs logit difference ${dAll} vs the merged model`);
  assert.ok(dQv <= 1e-5, `adapter "qv": max abs logit difference ${dQv} vs the merged model`);
  assert.deepEqual(withAll.outputs[0].tokenIds, mAll.outputs[0].tokenIds);
  assert.deepEqual(withQv.outputs[0].tokenIds, mQv.outputs[0].tokenIds);
  // The adapters change the model (a test that could not pass with the adapter ignored).
  assert.ok(maxAbsDiff(logits(withAll), logits(base)) > 1e-2);
  assert.ok(maxAbsDiff(logits(withQv), logits(base)) > 1e-2);
  // The request without an adapter, batched with both: unchanged.
  assert.equal(maxAbsDiff(logits(plain), logits(base)), 0);
  assert.equal(maxAbsDiff(logits(baseFirst), logits(base)), 0);
  const ex = llm.executor as unknown as { kvCacheStats: { usedBlocks: number } };
  assert.equal(ex.kvCacheStats.usedBlocks, 0);
}, 120_000);

test("lora: requests name adapters only when enabled; an adapter beyond maxLoras waits for a free slot (LRU eviction), abortable while it waits", async () => {
  {
    await using llm = await LLM.create({ model: kjv, backend: "cpu" });
    await assert.rejects(
      llm.generate(PROMPT, { maxTokens: 2 }, { useTqdm: false, loraRequest: { name: "all", path: adapterAll } }),
      (e: Error) => e.name === "ValidationError" && /enableLora/.test(e.message),
    );
  }
  await using llm = await LLM.create({ model: kjv, backend: "cpu", enableLora: true, maxLoras: 1, maxLoraRank: 8 });
  await assert.rejects(
    llm.generate(PROMPT, { maxTokens: 2 }, { useTqdm: false, loraRequest: { name: "", path: adapterAll } }),
    (e: Error) => e.name === "ValidationError",
  );
  await assert.rejects(
    llm.generate(PROMPT, { maxTokens: 2 }, { useTqdm: false, loraRequest: { name: "bad", path: tmp } }),
    (e: Error) => e.name === "ValidationError" && /adapter_config/.test(e.message),
  );
  // One slot: "qv" waits while "all" runs, then evicts it; a second "qv" request is aborted while it waits.
  const a = llm.generateAsync(PROMPT, { maxTokens: 4, temperature: 0, ignoreEos: true }, { loraRequest: { name: "all", path: adapterAll } });
  const b = llm.generateAsync(PROMPT, { maxTokens: 4, temperature: 0, ignoreEos: true }, { loraRequest: { name: "qv", path: adapterQv } });
  const ac = new AbortController();
  const c = llm.generateAsync(PROMPT, { maxTokens: 4, temperature: 0, ignoreEos: true }, { loraRequest: { name: "qv", path: adapterQv }, signal: ac.signal });
  const base = llm.generateAsync(PROMPT, { maxTokens: 4, temperature: 0, ignoreEos: true });
  await new Promise((r) => setTimeout(r, 0)); // submitted; "qv" requests wait
  ac.abort();
  const [ra, rbase] = await Promise.all([a.result(), base.result()]);
  const [rb, rc] = await Promise.all([b.result(), c.result()]);
  assert.equal(ra.outputs[0].tokenIds.length, 4);
  assert.equal(rbase.outputs[0].tokenIds.length, 4);
  assert.deepEqual([...rb.outputs[0].tokenIds], (mergedQvIds ?? [...(await alone(mergedQv)).outputs[0].tokenIds]).slice(0, 4));
  assert.equal(rc.outputs[0].finishReason, "abort");
  assert.equal(rc.outputs[0].tokenIds.length, 0);
  const ex = llm.executor as unknown as { kvCacheStats: { usedBlocks: number } };
  assert.equal(ex.kvCacheStats.usedBlocks, 0);
});

test("lora: adapters work in a Web Worker executor (executorMode proxy)", async () => {
  await using llm = await LLM.create({ model: kjv, backend: "cpu", executorMode: "proxy", enableLora: true, maxLoras: 1, maxLoraRank: 8 });
  const out = await llm.generateAsync(PROMPT, { ...PARAMS, returnGenerationLogits: false }, { loraRequest: { name: "qv", path: adapterQv } }).result();
  assert.deepEqual([...out.outputs[0].tokenIds], mergedQvIds ?? [...(await alone(mergedQv)).outputs[0].tokenIds]);
}, 120_000);

test("lora: cleanup of the temporary adapters", () => {
  fs.rmSync(tmp, { recursive: true, force: true });
  assert.ok(!fs.existsSync(tmp));
});
