// KV-cache quantization on the CPU backend (issue 14 item 2): the int8 / e4m3 KV codec, the RoPE/KV-write
// and paged-attention kernels on a quantized cache against a reference built from the float cache,
// held-out perplexity of models/kjv-llama with FP8 and INT8 KV, the engine's record (QuantConfig +
// plan.attributes.kvCache) and its save/load checks, KV sizing in bytes, and the paths that read or
// copy the cache (chunked prefill, speculative rollback, beam search copy-on-write).
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import * as K from "../lib/backends/cpu/kernels.ts";
import { CpuKvCache, kvDecode, kvEncode } from "../lib/backends/cpu/kv_cache.ts";
import { CpuSession } from "../lib/backends/cpu/session.ts";
import { buildSync } from "../lib/builder/builder.ts";
import { Engine } from "../lib/builder/engine.ts";
import { sizeKvCache } from "../lib/executor/kv_sizing.ts";
import { Session } from "../lib/runtime/session.ts";
import { KV_QUANT_MAX, type KvQuantAlgo } from "../lib/ir/kv_cache.ts";
import { LLM, type RequestOutputData } from "../mod.ts";
import { AutoModelForCausalLM } from "../lib/models/llama.ts";
import { DEFAULT_KV_SCALE } from "../lib/quantization/kv_cache_quant.ts";
import { saveQuantizedCheckpoint } from "../lib/quantization/export.ts";
import { quantizeSync } from "../lib/quantization/quantize.ts";
import { e4m3Encode } from "../lib/util/e4m3.ts";
import { FormatError, UnsupportedError } from "../lib/util/errors.ts";
import { assert, test } from "./harness.ts";
import { kjv, kjvPerplexity as perplexity } from "./kjv_perplexity.ts";

const ALGOS: readonly KvQuantAlgo[] = ["FP8", "INT8"];

// ---- codec ----

test("KV codec: INT8 rounds half to even and clamps to ±127 (−128 never written); FP8 is e4m3(x / s); decode(encode) · s within half a step", () => {
  const s = 0.5;
  for (const [x, q] of [[0, 0], [0.25, 0], [0.75, 2], [1.25, 2], [-1.25, -2], [-0.75, -2], [63.5, 127], [1e9, 127], [-1e9, -127], [-64, -127]] as const) {
    assert.equal(kvDecode("INT8", kvEncode("INT8", x, s)), q, `INT8 encode(${x}) with scale ${s}`);
  }
  assert.equal(kvEncode("INT8", NaN, s), 0);
  for (const x of [0, 1e-6, -3.3, 100, 223.9, 300, -1e9]) assert.equal(kvEncode("FP8", x, s), e4m3Encode(Math.fround(x / s)), `FP8 ${x}`);
  let seed = 3;
  const rnd = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648 - 0.5;
  for (const algo of ALGOS) {
    for (let i = 0; i < 20_000; i++) {
      const sc = 2 ** (rnd() * 8), x = rnd() * 2 * KV_QUANT_MAX[algo] * sc;
      const back = kvDecode(algo, kvEncode(algo, x, sc)) * sc;
      const step = algo === "INT8" ? sc : 2 ** (Math.floor(Math.log2(Math.max(Math.abs(x) / sc, 2 ** -6))) - 3) * sc;
      assert.ok(Math.abs(back - x) <= step / 2 + 1e-9 * sc, `${algo} x=${x} s=${sc}: ${back}`);
    }
  }
});

// ---- kernels ----

/** Random qkv rows for `S` sequences of `T` tokens, written through ropeKvWrite into `cache`, then attended. */
function attend(cache: K.LayerCache, qkv: Float32Array, S: number, T: number, nH: number, nKV: number, hd: number): Float32Array {
  const bs = cache.blockSize, per = T / bs;
  const g: K.BatchGeometry = {
    numSeqs: S,
    seqStarts: Int32Array.from({ length: S + 1 }, (_, i) => i * T),
    positions: Int32Array.from({ length: S * T }, (_, i) => i % T),
    blockTables: Int32Array.from({ length: S * per }, (_, i) => S * per - 1 - i), // blocks out of order
    maxBlocksPerSeq: per,
  };
  const q = new Float32Array(S * T * nH * hd), out = new Float32Array(q.length);
  const invFreq = Array.from({ length: hd / 2 }, (_, i) => 10000 ** (-(2 * i) / hd));
  K.ropeKvWrite(qkv.slice(), q, cache, g, invFreq, 1, nH, nKV, hd);
  K.pagedAttention(q, out, cache, g, nH, nKV, hd, 1 / Math.sqrt(hd), 0);
  return out;
}

test("ropeKvWrite / pagedAttention on a quantized cache: stored bytes = encode(float cache value / head scale) exactly; attention = float attention over the dequantized cache", () => {
  const S = 2, T = 24, nH = 4, nKV = 2, hd = 16, bs = 8, blocks = S * T / bs, per = 2 * bs * nKV * hd;
  let seed = 11;
  const rnd = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648 - 0.5;
  const W = (nH + 2 * nKV) * hd;
  const qkv = Float32Array.from({ length: S * T * W }, (_, i) => rnd() * 6 * (1 + ((i % W) / hd | 0) % 3)); // heads of different ranges
  const f32 = new Float32Array(blocks * per);
  const ref = attend({ data: f32, blockSize: bs, numKvHeads: nKV, headDim: hd }, qkv, S, T, nH, nKV, hd);
  for (const [algo, halve] of [["FP8", false], ["INT8", false], ["FP8", true], ["INT8", true]] as const) {
    // Per-head scales from the float cache's amax (with `halve`, K head 1's deliberately too small: saturation).
    const amax = new Float64Array(2 * nKV);
    for (let i = 0; i < f32.length; i++) {
      const which = Math.floor(i / (bs * nKV * hd)) % 2, h = Math.floor(i / hd) % nKV;
      amax[which * nKV + h] = Math.max(amax[which * nKV + h], Math.abs(f32[i]));
    }
    const scales = Float32Array.from(amax, (a, j) => Math.fround((halve && j === 1 ? a / 2 : a) / KV_QUANT_MAX[algo]));
    const codes = new Uint8Array(blocks * per);
    const got = attend({ data: codes, blockSize: bs, numKvHeads: nKV, headDim: hd, quant: { algo, scales } }, qkv, S, T, nH, nKV, hd);
    const deq = new Float32Array(f32.length);
    let saturated = 0;
    for (let i = 0; i < f32.length; i++) {
      const which = Math.floor(i / (bs * nKV * hd)) % 2, h = Math.floor(i / hd) % nKV, s = scales[which * nKV + h];
      assert.equal(codes[i], kvEncode(algo, f32[i], s), `${algo} element ${i}`);
      deq[i] = Math.fround(kvDecode(algo, codes[i]) * s);
      if (Math.abs(f32[i] / s) > KV_QUANT_MAX[algo] * (1 + 1e-6)) saturated++;
    }
    assert.equal(saturated > 0, halve, "only the halved scale saturates elements");
    // Reference: the float kernel reading the dequantized cache (no rewrite: attend() only reads it here).
    const g: K.BatchGeometry = {
      numSeqs: S,
      seqStarts: Int32Array.from({ length: S + 1 }, (_, i) => i * T),
      positions: Int32Array.from({ length: S * T }, (_, i) => i % T),
      blockTables: Int32Array.from({ length: S * T / bs }, (_, i) => S * T / bs - 1 - i),
      maxBlocksPerSeq: T / bs,
    };
    const q = new Float32Array(S * T * nH * hd), scratch = new Float32Array(blocks * per), want = new Float32Array(q.length);
    const invFreq = Array.from({ length: hd / 2 }, (_, i) => 10000 ** (-(2 * i) / hd));
    K.ropeKvWrite(qkv.slice(), q, { data: scratch, blockSize: bs, numKvHeads: nKV, headDim: hd }, g, invFreq, 1, nH, nKV, hd);
    K.pagedAttention(q, want, { data: deq, blockSize: bs, numKvHeads: nKV, headDim: hd }, g, nH, nKV, hd, 1 / Math.sqrt(hd), 0);
    let errSq = 0, refSq = 0;
    for (let i = 0; i < got.length; i++) {
      assert.ok(Math.abs(got[i] - want[i]) <= 1e-6 * (1 + Math.abs(want[i])), `${algo} out ${i}: ${got[i]} vs ${want[i]}`);
      errSq += (got[i] - ref[i]) ** 2;
      refSq += ref[i] ** 2;
    }
    const rel = Math.sqrt(errSq / refSq);
    assert.ok(rel > 0 && rel < (halve ? 2 : algo === "FP8" ? 0.12 : 0.03), `${algo}: relative error vs the float cache ${rel}`);
  }
});

test("CpuKvCache: quantized caches hold 1 byte per element (bytes = ¼ of float32) and copy blocks byte for byte; mismatched geometry refused", () => {
  const g = { numLayers: 2, numBlocks: 3, tokensPerBlock: 4, numKvHeads: 2, headDim: 8 };
  const f = new CpuKvCache({ ...g, elementBytes: 4 });
  const c = new CpuKvCache({ ...g, elementBytes: 1, quantAlgo: "INT8" }, new Float32Array(2 * 2 * 2).fill(0.1));
  assert.equal(c.bytes * 4, f.bytes);
  assert.equal(c.bytesPerBlock * 4, f.bytesPerBlock);
  const per = 2 * 4 * 2 * 8;
  c.layers[1].fill(7, 0, per);
  c.copyBlocks([[0, 2]]);
  assert.deepEqual([...c.layers[1].subarray(2 * per, 3 * per)], new Array(per).fill(7));
  assert.throws(() => new CpuKvCache({ ...g, elementBytes: 4, quantAlgo: "FP8" }, new Float32Array(8)));
  assert.throws(() => new CpuKvCache({ ...g, elementBytes: 1, quantAlgo: "FP8" }));
});

// ---- kjv-llama ----

let f32: Promise<number> | null = null;
const report = (name: string, p: number, base: number): string =>
  `${name} ${p.toFixed(4)} vs float32 ${base.toFixed(4)} (${((p / base - 1) * 100).toFixed(2)}%)`;

for (const algo of ALGOS) {
  test(`kjv-llama ${algo} KV cache (calibrated per-head scales): held-out perplexity within 3% of float32`, async () => {
    const base = await (f32 ??= perplexity());
    const p = await perplexity({ kvCacheQuantAlgo: algo });
    console.log(report(`${algo} KV`, p, base));
    assert.ok(Math.abs(p / base - 1) <= 0.03, report(`${algo} KV`, p, base));
    assert.notEqual(p, base, "the quantized-KV engine computed exactly the float32 perplexity: nothing was quantized");
  }, 300_000);
}

test("kjv-llama FP8 weights + FP8 KV cache: held-out perplexity within 3% of float32", async () => {
  const base = await (f32 ??= perplexity());
  const p = await perplexity({ quantAlgo: "FP8_PER_CHANNEL_PER_TOKEN", kvCacheQuantAlgo: "FP8" });
  console.log(report("FP8_PER_CHANNEL_PER_TOKEN + FP8 KV", p, base));
  assert.ok(Math.abs(p / base - 1) <= 0.03, report("FP8 rowwise + FP8 KV", p, base));
}, 300_000);

const bc = { backend: "cpu", maxBatchSize: 4, maxNumTokens: 128, maxSeqLen: 256, tokensPerBlock: 16 } as const;

test("kjv-llama KV-quantized engines record kvCacheQuantAlgo and per-(layer, k|v, head) scales; save/load keeps them; a config that disagrees is refused; CUDA builds only in bfloat16, TP builds refused", () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "llmrt-kvq-"));
  try {
    const model = AutoModelForCausalLM.fromHuggingFace(kjv);
    const c = model.config, n = c.numHiddenLayers * 2 * c.numKeyValueHeads;
    for (const algo of ALGOS) {
      const q = quantizeSync(model, { kvCacheQuantAlgo: algo });
      const e = buildSync(q, bc);
      assert.equal(e.config.quant?.kvCacheQuantAlgo, algo);
      assert.equal(e.config.quant?.quantAlgo, "NO_QUANT");
      const kv = e.plan.attributes.kvCache!;
      assert.equal(kv.quantAlgo, algo);
      assert.equal(kv.scales.length, n);
      assert.ok(new Set(kv.scales).size > n / 2, "calibrated scales differ per layer and head");
      assert.ok(kv.scales.every((s) => s > 0 && s === Math.fround(s)));
      assert.deepEqual(
        buildSync(quantizeSync(model, { kvCacheQuantAlgo: algo }, { calibrateKvCache: false }), bc).plan.attributes.kvCache!.scales,
        new Array(n).fill(DEFAULT_KV_SCALE[algo]),
      );
      const sub = path.join(dir, algo);
      e.save(sub);
      const again = Engine.fromDir(sub);
      assert.deepEqual(again.plan.attributes.kvCache, kv);
      again.dispose();
      // config.json says no KV quantization but the plan has it: refused (the config must match the engine file, so edit both views of it).
      const cfgPath = path.join(sub, "config.json");
      const cfg = JSON.parse(fs.readFileSync(cfgPath, "utf8"));
      cfg.quant.kvCacheQuantAlgo = algo === "FP8" ? "INT8" : "FP8";
      fs.writeFileSync(cfgPath, JSON.stringify(cfg));
      assert.throws(() => Engine.fromDir(sub), FormatError);
      // CUDA builds FP8 and INT8 KV caches in bfloat16 (rope_kv_write / paged_attention _fp8kv / _int8kv;
      // tests/quant_fp8_cuda_kv.test.ts), not in float32.
      const cuda = buildSync(q, { ...bc, backend: "cuda" });
      assert.deepEqual([cuda.config.dtype, cuda.plan.attributes.kvCache], ["bfloat16", kv]);
      cuda.dispose();
      assert.throws(
        () => buildSync(q, { ...bc, backend: "cuda", dtype: "float32" }),
        (e: unknown) => e instanceof UnsupportedError && /kvCacheQuantAlgo/.test(e.message),
      );
      assert.throws(
        () => buildSync(q, { ...bc, tensorParallelSize: 2 }),
        (e: unknown) => e instanceof UnsupportedError && /tensor parallelism/.test(e.message),
      );
      // An engine file reaches no other backend either (e.g. a CPU-built engine opened with backend "cuda").
      for (const o of [{ backend: "cuda" }, { backend: "cpu", rankWorkers: true }] as const) {
        assert.throws(
          () => Session.fromSerializedEngine(e, o),
          (err: unknown) => err instanceof UnsupportedError && /stores its KV cache as/.test(err.message),
          o.backend,
        );
      }
      e.dispose();
    }
    model.close();
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test("KV-cache quantization added to an already quantized model (W4A16 here; a pre-quantized checkpoint the same way): weights kept, KV scales calibrated on the dequantized weights; export refuses to drop them", () => {
  const model = AutoModelForCausalLM.fromHuggingFace(kjv);
  const w4 = quantizeSync(model, { quantAlgo: "W4A16", groupSize: 64 });
  const both = quantizeSync(w4, { kvCacheQuantAlgo: "FP8" }, { maxCalibrationTokens: 256 });
  assert.equal(both.quantConfig.quantAlgo, "W4A16");
  assert.equal(both.quantConfig.kvCacheQuantAlgo, "FP8");
  assert.deepEqual(both.quantizedNames(), w4.quantizedNames());
  const direct = quantizeSync(model, { quantAlgo: "W4A16", groupSize: 64, kvCacheQuantAlgo: "FP8" }, { maxCalibrationTokens: 256 });
  assert.notDeepEqual(both.kvCacheScales, direct.kvCacheScales, "calibrated on the int4 weights, not the float ones");
  both.kvCacheScales!.forEach((s, i) => assert.ok(Math.abs(s / direct.kvCacheScales![i] - 1) < 0.25, `scale ${i}: ${s} vs ${direct.kvCacheScales![i]}`));
  const e = buildSync(both, bc);
  assert.equal(e.plan.attributes.kvCache!.quantAlgo, "FP8");
  assert.ok(e.plan.ops.some((o) => o.type === "linear" && o.weightFormat?.format === "uint4"));
  assert.throws(() => quantizeSync(w4, { quantAlgo: "W8A16" }), /already quantized/);
  assert.throws(() => saveQuantizedCheckpoint(both, os.tmpdir()), (e: unknown) => e instanceof UnsupportedError && /KV-cache scales/.test(e.message));
  e.dispose();
  model.close();
});

test("KV sizing is in bytes: an FP8/INT8 cache holds 4× the tokens of float32 in the same maxBytes, and the log line says so", () => {
  const model = AutoModelForCausalLM.fromHuggingFace(kjv);
  const plain = new CpuSession(buildSync(model, bc));
  const quant = new CpuSession(buildSync(quantizeSync(model, { kvCacheQuantAlgo: "FP8" }, { calibrateKvCache: false }), bc));
  model.close();
  const size = (s: CpuSession) =>
    sizeKvCache({
      config: { maxBytes: 20 * plain.kvBytesPerBlock(), enableBlockReuse: true } as never,
      geometry: s.kvGeometry(),
      bytesPerBlock: s.kvBytesPerBlock(),
      maxSeqLen: 256,
      maxBatchSize: 4,
      freeMemoryBytes: null,
    });
  const a = size(plain), b = size(quant);
  assert.equal(quant.kvGeometry().elementBytes, 1);
  assert.equal(quant.kvBytesPerBlock() * 4, plain.kvBytesPerBlock());
  assert.equal(b.numBlocks, 4 * a.numBlocks);
  assert.match(b.description, /K\/V stored as FP8 \(e4m3\), 1 byte per element: the same bytes hold 2× the tokens of bfloat16, 4× of float32/);
  assert.doesNotMatch(a.description, /FP8/);
  const cache = quant.createKvCache(b.numBlocks);
  assert.equal(cache.bytes, b.bytes);
  const empty = { tokenIds: new Int32Array(0), seqStarts: new Int32Array(1), logitRows: new Int32Array(0) };
  assert.throws(() => plain.run(empty as never, {}, cache), /the KV cache holds FP8 elements, this engine.s are float32/);
});

test(
  "kjv-llama INT8 KV: chunked prefill, NGram speculative decoding (rollback of rejected drafts) and beam search (copy-on-write) give what one-shot prefill / plain greedy / a rescoring forward give",
  async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "llmrt-kvq-"));
    try {
      const model = AutoModelForCausalLM.fromHuggingFace(kjv);
      buildSync(quantizeSync(model, { kvCacheQuantAlgo: "INT8" }), { ...bc, gatherContextLogits: true }).save(dir);
      model.close();
      const prompts = [
        "In the beginning God created the heaven and the earth. And the earth was without form, and void; and darkness was upon the face of the deep.",
        "The LORD is my shepherd; I shall not want. The LORD is my shepherd;",
        "And God said, Let there be light: and there was light. And God said,",
      ];
      const greedy = { maxTokens: 24, temperature: 0 } as const;
      const ids = (outs: RequestOutputData[]) => outs.map((o) => o.outputs[0].tokenIds);
      let plain: (readonly number[])[];
      {
        await using llm = await LLM.create({ model: dir, tokenizer: kjv, backend: "cpu", enableChunkedPrefill: false });
        plain = ids(await llm.generate(prompts, greedy, { useTqdm: false }) as RequestOutputData[]);
      }
      {
        await using llm = await LLM.create({ model: dir, tokenizer: kjv, backend: "cpu", maxNumTokens: 8 });
        assert.deepEqual(ids(await llm.generate(prompts, greedy, { useTqdm: false }) as RequestOutputData[]), plain, "chunked prefill (8 tokens a step)");
      }
      {
        await using llm = await LLM.create({
          model: dir,
          tokenizer: kjv,
          backend: "cpu",
          speculativeConfig: { decodingType: "NGram", maxDraftLen: 4, maxMatchingNgramSize: 2 },
        });
        assert.deepEqual(ids(await llm.generate(prompts, greedy, { useTqdm: false }) as RequestOutputData[]), plain, "NGram speculative");
        const st = llm.getStats();
        assert.ok(
          st.reduce((a, s) => a + (s.numDraftTokens ?? 0), 0) > st.reduce((a, s) => a + (s.numAcceptedDraftTokens ?? 0), 0),
          "some drafts rejected (rolled back)",
        );
      }
      {
        await using llm = await LLM.create({ model: dir, tokenizer: kjv, backend: "cpu" });
        const [beam] = await llm.generate([prompts[1]], { useBeamSearch: true, beamWidth: 3, n: 3, maxTokens: 12, ignoreEos: true }, {
          useTqdm: false,
        }) as RequestOutputData[];
        assert.equal(beam.outputs.length, 3);
        // Each hypothesis rescored by one forward over prompt + hypothesis: the sum of its tokens' logprobs.
        const rescored = await llm.generate(
          beam.outputs.map((o) => [...beam.promptTokenIds, ...o.tokenIds]),
          { maxTokens: 1, temperature: 0, promptLogprobs: 0 },
          { useTqdm: false },
        ) as RequestOutputData[];
        beam.outputs.forEach((o, i) => {
          const lp = rescored[i].promptLogprobs!.slice(beam.promptTokenIds.length).reduce((a, e) => a + e!.logprob, 0);
          assert.ok(Math.abs(lp - o.cumulativeLogprob!) < 1e-3, `beam ${i}: cumulative ${o.cumulativeLogprob} vs rescored ${lp}`);
        });
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  },
  300_000,
);
