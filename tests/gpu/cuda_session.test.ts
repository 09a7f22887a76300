/**
 * GPU: the CUDA session end to end. stories260k (float32 engine) reproduces the 256 reference ids;
 * chunked prefill, batches, eager vs graph steps and the executor (copy-on-write forks) agree with
 * single runs. Random-weight checkpoints from `hf_reference.py make-model` (tiny-llama, tiny-qwen2,
 * qwen3-0.6b, llama-3.2-1b; made by `tools/gpu/run.sh hf` into $LLMRT_HF_MODELS) are compared with
 * transformers' float32 last-position logits in bf16 tolerance; prefill vs decode and a batch of
 * mixed lengths vs single runs agree.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import process from "node:process";
import { buildSync } from "../../lib/builder/builder.ts";
import type { Engine } from "../../lib/builder/engine.ts";
import { LLM } from "../../lib/llmapi/llm.ts";
import { AutoModelForCausalLM } from "../../lib/models/llama.ts";
import { ModelRunner } from "../../lib/runtime/model_runner.ts";
import { Session } from "../../lib/runtime/session.ts";
import { assert, sharedDir, test } from "../harness.ts";
import { gpuProbe, noGpuReason, step } from "./gpu.ts";

const modelsDir = process.env.LLMRT_MODELS ?? `${sharedDir}models`;
const storiesDir = `${modelsDir}/stories260k`;
const hasStories = fs.existsSync(`${storiesDir}/config.json`);
const storiesTest = test.skipIf(noGpuReason || "shared/models/stories260k is missing", !gpuProbe.ok || !hasStories);

function engineOf(dir: string, opts: Record<string, unknown>): Engine {
  const model = AutoModelForCausalLM.fromHuggingFace(dir);
  try {
    return buildSync(model, { backend: "cuda", ...opts });
  } finally {
    model.close();
  }
}

const ref = hasStories
  ? JSON.parse(fs.readFileSync(`${storiesDir}/reference_outputs.json`, "utf8")) as {
    prompt_ids: number[];
    greedy_new_ids: number[];
    last_position_logits: number[];
  }
  : { prompt_ids: [], greedy_new_ids: [], last_position_logits: [] };

storiesTest("stories260k f32 on CUDA: greedy reproduces the 256 reference ids and the last-position logits", () => {
  using engine = engineOf(storiesDir, { dtype: "float32", maxBatchSize: 8, maxNumTokens: 512 });
  using runner = ModelRunner.fromEngine(engine, { backend: "cuda" });
  const out = runner.generate([ref.prompt_ids], { maxNewTokens: 256, endId: -1, outputGenerationLogits: true });
  const logits = out.generationLogits![0][0];
  let maxAbs = 0;
  for (let i = 0; i < logits.length; i++) maxAbs = Math.max(maxAbs, Math.abs(logits[i] - ref.last_position_logits[i]));
  console.log(`stories260k f32 CUDA: last-position logits max abs error ${maxAbs.toExponential(2)}; ${runner.session.cuda!.numGraphs} decode graph(s)`);
  assert.deepEqual(out.newTokenIds[0], ref.greedy_new_ids);
  assert.ok(maxAbs < 1e-3, `last-position logits max abs error ${maxAbs}`);
  assert.ok(runner.session.cuda!.numGraphs >= 1, "decode steps ran as graphs");
});

storiesTest("stories260k f32 on CUDA: chunked prefill, eager steps and a 4-prompt batch equal single graph runs", () => {
  const prompts = [ref.prompt_ids, [1, 403, 407], [1, 351, 269, 295, 281, 420], ref.prompt_ids.slice(0, 2)];
  using engine = engineOf(storiesDir, { dtype: "float32", maxBatchSize: 8, maxNumTokens: 512, tokensPerBlock: 8 });
  using runner = ModelRunner.fromEngine(engine, { backend: "cuda" });
  const batched = runner.generate(prompts, { maxNewTokens: 48, endId: -1 });
  prompts.forEach((p, i) => {
    const single = runner.generate([p], { maxNewTokens: 48, endId: -1 });
    assert.deepEqual(batched.newTokenIds[i], single.newTokenIds[0], `prompt ${i}`);
  });
  assert.deepEqual(batched.newTokenIds[0], ref.greedy_new_ids.slice(0, 48));
  using chunkEngine = engineOf(storiesDir, { dtype: "float32", maxBatchSize: 8, maxNumTokens: 3, tokensPerBlock: 4 });
  using chunked = ModelRunner.fromEngine(chunkEngine, { backend: "cuda" });
  assert.deepEqual(chunked.generate([ref.prompt_ids], { maxNewTokens: 40, endId: -1 }).newTokenIds[0], ref.greedy_new_ids.slice(0, 40));
  const noGraphs = Session.fromSerializedEngine(engine, { backend: "cuda", cudaGraphs: false });
  try {
    const kv = noGraphs.createKvCache(64);
    const ids = greedyDirect(noGraphs, kv, ref.prompt_ids, 32);
    assert.deepEqual(ids, ref.greedy_new_ids.slice(0, 32), "eager decode steps (no graphs)");
    assert.equal(noGraphs.cuda!.numGraphs, 0);
  } finally {
    noGraphs.dispose();
  }
});

storiesTest("stories260k f32 on CUDA through LLM: greedy text and n=3 seeded forks (copy-on-write) equal the CPU's", async () => {
  const opts = {
    model: storiesDir,
    dtype: "float32",
    cacheEngine: false,
    buildConfig: { maxBatchSize: 8, maxNumTokens: 256, maxSeqLen: 256, tokensPerBlock: 16 },
    kvCacheConfig: { maxTokens: 4096 },
  } as const;
  // n = 3 forks after the prompt: the prompt's partial last block is shared, then copied on write.
  const forks = { maxTokens: 40, temperature: 0.8, topK: 20, n: 3, seed: 11 };
  let cpuText = "", cpuForks: (readonly number[])[] = [];
  {
    await using cpu = await LLM.create({ ...opts, backend: "cpu" });
    cpuText = (await cpu.generate("Once upon a time", { maxTokens: 40, temperature: 0 }, { useTqdm: false })).outputs[0].text;
    cpuForks = (await cpu.generate("Once upon a time", forks, { useTqdm: false })).outputs.map((o) => o.tokenIds);
  }
  await using llm = await LLM.create({ ...opts, backend: "cuda" });
  assert.equal(llm.backend, "cuda");
  const one = await llm.generate("Once upon a time", { maxTokens: 40, temperature: 0 }, { useTqdm: false });
  assert.equal(one.outputs[0].text, cpuText);
  const three = await llm.generate("Once upon a time", forks, { useTqdm: false });
  assert.deepEqual(three.outputs.map((o) => o.tokenIds), cpuForks, "n=3 seeded forks: CUDA vs CPU");
  assert.notDeepEqual(cpuForks[0], cpuForks[1], "the forks differ from each other");
  const sampled = await llm.generate(["Once upon a time", "The dog"], { maxTokens: 24, temperature: 1, topP: 0.9, seed: 5 }, { useTqdm: false });
  const again = await llm.generate(["Once upon a time", "The dog"], { maxTokens: 24, temperature: 1, topP: 0.9, seed: 5 }, { useTqdm: false });
  assert.deepEqual(sampled.map((o) => o.outputs[0].tokenIds), again.map((o) => o.outputs[0].tokenIds), "same seed, same tokens");
});

storiesTest("CUDA session lifetime: dispose twice; use after dispose throws; a CPU KV cache is refused", () => {
  using engine = engineOf(storiesDir, { dtype: "float32", maxBatchSize: 2, maxNumTokens: 16 });
  const s = Session.fromSerializedEngine(engine, { backend: "cuda" });
  const cpu = Session.fromSerializedEngine(engine, { backend: "cpu" });
  assert.throws(() => s.run(step([1, 2], 0, [0]), {}, cpu.createKvCache(2) as never), /CUDA session needs a KV cache/);
  s.dispose();
  s.dispose();
  assert.throws(() => s.createKvCache(1), /after dispose/);
});

// ---- random-weight checkpoints vs transformers ---------------------------------------------------

function greedyDirect(s: Session, kv: ReturnType<Session["createKvCache"]>, prompt: number[], n: number): number[] {
  const blocks = Array.from({ length: Math.ceil((prompt.length + n) / s.tokensPerBlock) }, (_, i) => i);
  const out = { sampledIds: new Int32Array(1) };
  s.run(step(prompt, 0, blocks), out, kv);
  const ids = [out.sampledIds[0]];
  for (let i = 1; i < n; i++) {
    s.run(step([ids[i - 1]], prompt.length + i - 1, blocks), out, kv);
    ids.push(out.sampledIds[0]);
  }
  return ids;
}

interface HfRef {
  prompts: { prompt_ids: number[]; greedy_new_ids: number[]; last_logits_top64_ids: number[] }[];
}

/** ‖got − want‖₂ / ‖want‖₂, max |got − want|, and max |want|. */
function errors(got: Float32Array, want: Float32Array): { rel: number; maxAbs: number; maxRef: number } {
  let d2 = 0, w2 = 0, maxAbs = 0, maxRef = 0;
  for (let i = 0; i < want.length; i++) {
    const d = got[i] - want[i];
    d2 += d * d;
    w2 += want[i] * want[i];
    maxAbs = Math.max(maxAbs, Math.abs(d));
    maxRef = Math.max(maxRef, Math.abs(want[i]));
  }
  return { rel: Math.sqrt(d2 / w2), maxAbs: Number.isNaN(d2) ? NaN : maxAbs, maxRef };
}

const hfDir = process.env.LLMRT_HF_MODELS ?? "";
for (const preset of ["tiny-llama", "tiny-qwen2", "qwen3-0.6b", "llama-3.2-1b"]) {
  const dir = path.join(hfDir, preset);
  const have = hfDir !== "" && fs.existsSync(path.join(dir, "reference.json"));
  const hfTest = test.skipIf(noGpuReason || `no ${preset} checkpoint + reference (set LLMRT_HF_MODELS; tools/gpu/run.sh hf makes them)`, !gpuProbe.ok || !have);
  hfTest(`${preset} bf16 on CUDA: last-position logits vs transformers float32; prefill = decode; batch = singles`, () => {
    const r = JSON.parse(fs.readFileSync(path.join(dir, "reference.json"), "utf8")) as HfRef;
    using engine = engineOf(dir, { dtype: "bfloat16", maxBatchSize: 4, maxNumTokens: 256, maxSeqLen: 256, tokensPerBlock: 16 });
    const V = engine.plan.attributes.vocabSize;
    const full = new Float32Array(fs.readFileSync(path.join(dir, "reference.logits.f32")).buffer.slice(0));
    assert.equal(full.length, r.prompts.length * V);
    using s = Session.fromSerializedEngine(engine, { backend: "cuda" });
    const kv = s.createKvCache(64);
    const lines: string[] = [];
    let worstRel = 0;
    r.prompts.forEach((p, i) => {
      const blocks = Array.from({ length: 8 }, (_, b) => b);
      const want = full.subarray(i * V, (i + 1) * V);
      // Whole prompt as one prefill step.
      const pre = { logits: new Float32Array(V), sampledIds: new Int32Array(1) };
      s.run(step(p.prompt_ids, 0, blocks), pre, kv);
      const e = errors(pre.logits, want);
      worstRel = Math.max(worstRel, e.rel);
      // Prefill n-1, then the last token as a decode step (graph).
      const n = p.prompt_ids.length;
      const dec = { logits: new Float32Array(V), sampledIds: new Int32Array(1) };
      if (n > 1) s.run(step(p.prompt_ids.slice(0, n - 1), 0, blocks), { sampledIds: new Int32Array(1) }, kv);
      s.run(step(p.prompt_ids.slice(n - 1), n - 1, blocks), dec, kv);
      const pd = errors(dec.logits, pre.logits);
      const top1 = pre.sampledIds[0] === p.last_logits_top64_ids[0];
      lines.push(
        `${preset} prompt ${i} (${n} tokens): vs transformers f32 rel L2 ${e.rel.toExponential(2)}, max abs ${e.maxAbs.toExponential(2)} (max |logit| ${
          e.maxRef.toFixed(3)
        }), argmax ${top1 ? "same" : "differs"}; decode vs prefill rel ${pd.rel.toExponential(2)} max abs ${pd.maxAbs.toExponential(2)}`,
      );
      assert.ok(e.rel < 5e-2, `${preset} prompt ${i}: relative L2 error ${e.rel} vs transformers`);
      assert.ok(pd.rel < 3e-2, `${preset} prompt ${i}: decode vs prefill logits rel ${pd.rel}`);
    });
    kv.dispose();
    // A batch of mixed-length prompts vs single runs: the first generated step's logits, then the greedy ids.
    using runner = ModelRunner.fromEngine(engine, { backend: "cuda" });
    const invariant = process.env.LLMRT_BATCH_INVARIANT !== "0";
    const prompts = r.prompts.map((p) => p.prompt_ids);
    const batched = runner.generate(prompts, { maxNewTokens: 8, endId: -1, outputGenerationLogits: true });
    let same = 0, total = 0;
    prompts.forEach((p, i) => {
      const single = runner.generate([p], { maxNewTokens: 8, endId: -1, outputGenerationLogits: true });
      const e = errors(batched.generationLogits![i][0], single.generationLogits![0][0]);
      const idsEqual = JSON.stringify(batched.newTokenIds[i]) === JSON.stringify(single.newTokenIds[0]);
      lines.push(
        `${preset} prompt ${i}: batch vs single first-step logits rel ${e.rel.toExponential(2)}, max abs ${e.maxAbs.toExponential(2)}; greedy ids ${
          idsEqual ? "equal" : "differ"
        }`,
      );
      if (invariant) {
        // Batch-invariant session (the default): a batch's prefill has more rows, but every linear keeps one
        // cuBLASLt algorithm for all M (no split-K) and decode steps stay on the skinny-GEMM kernel, so the
        // rows round exactly as in the single run.
        assert.ok(
          e.maxAbs === 0,
          `${preset} prompt ${i}: batch vs single first-step logits differ (max abs ${e.maxAbs}, rel ${e.rel}) although the session is batch-invariant`,
        );
        assert.ok(
          idsEqual,
          `${preset} prompt ${i}: batch vs single greedy ids differ although the session is batch-invariant: ${JSON.stringify(batched.newTokenIds[i])} vs ${
            JSON.stringify(single.newTokenIds[0])
          }`,
        );
        for (let j = 1; j < 8; j++) {
          const ej = errors(batched.generationLogits![i][j], single.generationLogits![0][j]);
          assert.ok(ej.maxAbs === 0, `${preset} prompt ${i}: batch vs single logits of step ${j} differ (max abs ${ej.maxAbs})`);
        }
      } else {
        // LLMRT_BATCH_INVARIANT=0: the batch's linears take other GEMM paths (cuBLASLt algorithms per M, or
        // the skinny-GEMM kernel for <= 8 rows) that round differently (float32 engines are exact).
        assert.ok(e.rel < 3e-2, `${preset} prompt ${i}: batch vs single logits rel ${e.rel}`);
      }
      for (let j = 0; j < 8; j++) {
        total++;
        if (batched.newTokenIds[i][j] === single.newTokenIds[0][j]) same++;
      }
      const hfSame = p.length > 0 ? r.prompts[i].greedy_new_ids.slice(0, 8).filter((t, j) => t === single.newTokenIds[0][j]).length : 0;
      lines.push(`${preset} prompt ${i}: greedy ids equal to transformers' for ${hfSame}/8 steps`);
    });
    lines.push(`${preset}: batch vs single greedy ids equal at ${same}/${total} steps; worst rel L2 vs transformers ${worstRel.toExponential(2)}`);
    console.log(lines.join("\n"));
  }, 600_000);
}
