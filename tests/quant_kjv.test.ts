// Quantization I on the embedded model (models/kjv-llama), CPU: perplexity on held-out KJV text
// (validation chapters the model never trained on) through promptLogprobs, for the float32 engine
// and every weight-only algorithm; engine size; a quantized engine saved and reopened.
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { buildSync } from "../lib/builder/builder.ts";
import { Engine } from "../lib/builder/engine.ts";
import { LLM } from "../lib/llmapi/llm.ts";
import { AutoModelForCausalLM } from "../lib/models/llama.ts";
import type { QuantConfigInput } from "../lib/quantization/quant_config.ts";
import { quantizeSync } from "../lib/quantization/quantize.ts";
import { assert, test } from "./harness.ts";
import { kjv, kjvPerplexity as perplexity } from "./kjv_perplexity.ts";

const ppl = new Map<string, Promise<number>>();
const pplOf = (key: string, qc?: QuantConfigInput): Promise<number> => {
  if (!ppl.has(key)) ppl.set(key, perplexity(qc));
  return ppl.get(key)!;
};
const F32 = (): Promise<number> => pplOf("float32");
const report = (name: string, p: number, base: number): string =>
  `${name} ${p.toFixed(4)} vs float32 ${base.toFixed(4)} (${((p / base - 1) * 100).toFixed(2)}%)`;

test("kjv-llama W8A16 (per-channel int8): held-out perplexity within 1% of float32", async () => {
  const base = await F32(), p = await pplOf("W8A16", { quantAlgo: "W8A16" });
  console.log(report("W8A16", p, base));
  assert.ok(p <= base * 1.01, report("W8A16", p, base));
}, 300_000);

test("kjv-llama W4A16_GPTQ (g64): within 10% of float32 and better than round-to-nearest W4A16 g64", async () => {
  const base = await F32();
  const rtn = await pplOf("W4A16 g64", { quantAlgo: "W4A16", groupSize: 64 });
  const gptq = await pplOf("W4A16_GPTQ g64", { quantAlgo: "W4A16_GPTQ", groupSize: 64 });
  console.log(report("W4A16 RTN g64", rtn, base));
  console.log(report("W4A16_GPTQ g64", gptq, base));
  assert.ok(gptq <= base * 1.1, report("W4A16_GPTQ", gptq, base));
  assert.ok(gptq < rtn, `GPTQ ${gptq} is not better than RTN ${rtn}`);
}, 300_000);

test("kjv-llama W4A16_AWQ (g64, zero points as AutoAWQ): within 10% of float32 and better than RTN W4A16 g64 with zero points", async () => {
  const base = await F32();
  const rtn = await pplOf("W4A16 g64 zp", { quantAlgo: "W4A16", groupSize: 64, hasZeroPoint: true });
  const awq = await pplOf("W4A16_AWQ g64 zp", { quantAlgo: "W4A16_AWQ", groupSize: 64, hasZeroPoint: true });
  console.log(report("W4A16 RTN g64 zero points", rtn, base));
  console.log(report("W4A16_AWQ g64 zero points", awq, base));
  assert.ok(awq <= base * 1.1, report("W4A16_AWQ", awq, base));
  assert.ok(awq < rtn, `AWQ ${awq} is not better than RTN ${rtn}`);
}, 300_000);

test("kjv-llama W4A16 engine file is under half the float32 one; saved and reopened it holds the same packed tensors; config.json records the QuantConfig", () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "llmrt-quant-"));
  try {
    const bc = { backend: "cpu", maxBatchSize: 2, maxNumTokens: 64, maxSeqLen: 128 } as const;
    const f32 = buildSync(AutoModelForCausalLM.fromHuggingFace(kjv), bc);
    f32.save(path.join(dir, "f32"));
    const q = buildSync(quantizeSync(AutoModelForCausalLM.fromHuggingFace(kjv), { quantAlgo: "W4A16", groupSize: 64 }), bc);
    q.save(path.join(dir, "w4"));
    const size = (d: string): number => fs.statSync(path.join(dir, d, "rank0.engine")).size;
    console.log(`engine bytes: float32 ${size("f32")}, W4A16 g64 ${size("w4")} (${(size("w4") / size("f32") * 100).toFixed(1)}%)`);
    assert.ok(size("w4") < size("f32") / 2, `W4A16 engine ${size("w4")} bytes is not under half of ${size("f32")}`);
    const cfg = JSON.parse(fs.readFileSync(path.join(dir, "w4", "config.json"), "utf8"));
    assert.equal(cfg.quant.quantAlgo, "W4A16");
    assert.equal(cfg.quant.groupSize, 64);
    const again = Engine.fromDir(path.join(dir, "w4"));
    try {
      assert.deepEqual(again.config.quant, q.config.quant);
      const linear = again.plan.ops.find((o) => o.type === "linear" && o.weightFormat);
      assert.ok(linear && linear.type === "linear" && linear.weightFormat!.format === "uint4");
      for (const name of q.tensorNames()) assert.deepEqual(again.readTensor(name), q.readTensor(name), name);
    } finally {
      again.dispose();
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test("LLM.create({ quantConfig }) keys the engine cache by the QuantConfig: float and W8A16 engines of one checkpoint are cached apart", async () => {
  const env = (globalThis as { process: { env: Record<string, string | undefined> } }).process.env;
  const prev = env.LLMRT_CACHE_DIR;
  const cache = fs.mkdtempSync(path.join(os.tmpdir(), "llmrt-qcache-"));
  env.LLMRT_CACHE_DIR = cache;
  try {
    const bc = { maxBatchSize: 2, maxNumTokens: 64, maxSeqLen: 128 };
    const open = (quantConfig?: QuantConfigInput) => LLM.create({ model: kjv, backend: "cpu", cacheEngine: true, buildConfig: bc, quantConfig });
    let dirs: (string | null)[] = [];
    for (const qc of [undefined, { quantAlgo: "W8A16" } as const, undefined, { quantAlgo: "W8A16" } as const]) {
      await using llm = await open(qc);
      assert.equal(llm.engine.config.quant?.quantAlgo ?? null, qc ? "W8A16" : null);
      dirs = [...dirs, llm.engineDir];
    }
    assert.notEqual(dirs[0], dirs[1]);
    assert.equal(dirs[0], dirs[2]); // reopened from the cache
    assert.equal(dirs[1], dirs[3]);
  } finally {
    if (prev === undefined) delete env.LLMRT_CACHE_DIR;
    else env.LLMRT_CACHE_DIR = prev;
    fs.rmSync(cache, { recursive: true, force: true });
  }
});
