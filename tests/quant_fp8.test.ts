// Quantization II, FP8 on the CPU backend (the reference the CUDA kernels will be tested against):
// the e4m3 codec bit for bit, the FP8 linear kernel against a float64 reference of the same
// quantized values, held-out perplexity of models/kjv-llama for FP8 and FP8_PER_CHANNEL_PER_TOKEN,
// the engine's stored form and its save/load round trip, and CUDA builds refused.
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { fp8Linear } from "../lib/backends/cpu/quant_linear.ts";
import { buildSync } from "../lib/builder/builder.ts";
import { Engine } from "../lib/builder/engine.ts";
import { AutoModelForCausalLM } from "../lib/models/llama.ts";
import { E4M3_DECODE, e4m3Decode, e4m3Encode, quantizeFp8 } from "../lib/quantization/fp8.ts";
import { dequantize } from "../lib/quantization/packed.ts";
import { QuantConfig } from "../lib/quantization/quant_config.ts";
import { quantizeSync } from "../lib/quantization/quantize.ts";
import { assert, test } from "./harness.ts";
import { kjv, kjvPerplexity as perplexity } from "./kjv_perplexity.ts";

// ---- codec ----

/** [x, byte] pairs checked by hand: 1.m·2^(e−7) for exponent field e ≥ 1, m·2^-9 for e = 0. */
const TABLE: [number, number][] = [
  [0, 0x00],
  [-0, 0x80],
  [2 ** -9, 0x01], // smallest subnormal
  [-(2 ** -9), 0x81],
  [3 * 2 ** -9, 0x03],
  [7 * 2 ** -9, 0x07], // largest subnormal
  [2 ** -6, 0x08], // smallest normal
  [2 ** -11, 0x00], // below half the smallest subnormal
  [2 ** -10, 0x00], // tie between 0 and 2^-9: to even (0)
  [3 * 2 ** -10, 0x02], // tie between 1 and 2 subnormal steps: to even (2)
  [15 * 2 ** -10, 0x08], // tie between 7·2^-9 and 2^-6: to even (0x08)
  [1, 0x38],
  [1.125, 0x39],
  [1.0625, 0x38], // tie between 1 (m=0) and 1.125 (m=1): to even
  [1.1875, 0x3a], // tie between 1.125 (m=1) and 1.25 (m=2): to even
  [-2, 0xc0],
  [0.1, 0x1d], // 1.6·2^-4 → m = 12.8 − 8 → 5: 0.1015625
  [240, 0x77],
  [248, 0x78], // tie between 240 (m=7) and 256 (0x78, m=0): to even
  [416, 0x7d],
  [432, 0x7e], // tie between 416 (m=5) and 448 (m=6): to even
  [448, 0x7e], // largest finite
  [449, 0x7e], // saturates
  [464, 0x7e], // where 480 would round without saturation
  [1e9, 0x7e],
  [Infinity, 0x7e],
  [-449, 0xfe],
  [-Infinity, 0xfe],
];

test("e4m3 encode: hand-checked table (zero, subnormals, ties to even, 448, saturation)", () => {
  for (const [x, b] of TABLE) assert.equal(e4m3Encode(x), b, `encode(${x}) = 0x${e4m3Encode(x).toString(16)}, want 0x${b.toString(16)}`);
  assert.equal(e4m3Encode(NaN) & 0x7f, 0x7f);
});

test("e4m3 decode: hand-checked values, NaN = S.1111.111, every finite byte round-trips", () => {
  assert.equal(e4m3Decode(0x7e), 448);
  assert.equal(e4m3Decode(0xfe), -448);
  assert.equal(e4m3Decode(0x01), 2 ** -9);
  assert.equal(e4m3Decode(0x08), 2 ** -6);
  assert.equal(e4m3Decode(0x1d), 0.1015625);
  assert.equal(e4m3Decode(0x77), 240);
  assert.equal(e4m3Decode(0x7d), 416);
  assert.ok(Object.is(e4m3Decode(0x80), -0));
  assert.ok(Number.isNaN(e4m3Decode(0x7f)) && Number.isNaN(e4m3Decode(0xff)));
  assert.ok(Number.isNaN(e4m3Decode(e4m3Encode(NaN))));
  let finite = 0;
  for (let b = 0; b < 256; b++) {
    if ((b & 0x7f) === 0x7f) continue;
    finite++;
    assert.equal(e4m3Encode(e4m3Decode(b)), b, `byte 0x${b.toString(16)}`);
  }
  assert.equal(finite, 254);
});

test("e4m3: decode(encode(x)) is the nearest representable value (ties to even, beyond ±448 saturated) for 200k random x", () => {
  const finite: { v: number; b: number }[] = [];
  for (let b = 0; b < 256; b++) if ((b & 0x7f) !== 0x7f) finite.push({ v: E4M3_DECODE[b], b });
  let seed = 12345;
  const rnd = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
  for (let i = 0; i < 200_000; i++) {
    // log-uniform magnitudes from 2^-12 to 2^10, both signs; every 7th exactly on a midpoint
    let x = (rnd() < 0.5 ? -1 : 1) * 2 ** (rnd() * 22 - 12);
    if (i % 7 === 0) {
      const j = Math.floor(rnd() * (finite.length - 1));
      const sorted = finite.map((f) => f.v).filter((v) => Math.sign(v) === Math.sign(x) || v === 0).sort((a, b) => a - b);
      const k = Math.min(j, sorted.length - 2);
      x = (sorted[k] + sorted[k + 1]) / 2;
    }
    const b = e4m3Encode(x), got = e4m3Decode(b);
    if (Math.abs(x) >= 448) {
      assert.equal(got, Math.sign(x) * 448, `x=${x}`);
      continue;
    }
    let best = Infinity;
    for (const f of finite) best = Math.min(best, Math.abs(f.v - x));
    const err = Math.abs(got - x);
    assert.equal(err, best, `x=${x}: got ${got} (0x${b.toString(16)}), nearest is at distance ${best}`);
    const tied = finite.filter((f) => Math.abs(f.v - x) === best && !Object.is(f.v, -0) && f.v !== got);
    if (tied.length > 0 && got !== 0) assert.equal(b & 1, 0, `x=${x}: tie not broken to even (0x${b.toString(16)})`);
  }
});

// ---- kernel ----

/** The nearest e4m3 value by search over all 254 finite values (ties to even), saturating: independent of e4m3Encode. */
function nearestE4m3(x: number): number {
  if (Math.abs(x) >= 448) return Math.sign(x) * 448;
  let best = 0, bestErr = Infinity, bestByte = 0;
  for (let b = 0; b < 256; b++) {
    if ((b & 0x7f) === 0x7f) continue;
    const e = Math.abs(E4M3_DECODE[b] - x);
    if (e < bestErr || (e === bestErr && (b & 1) === 0 && (bestByte & 1) === 1)) [best, bestErr, bestByte] = [E4M3_DECODE[b], e, b];
  }
  return best;
}

test("fp8Linear equals a float64 reference of the same quantized values (FP8 static with saturation, per-channel per-token), and tracks the float product", () => {
  const M = 5, N = 24, K = 48;
  let seed = 7;
  const rnd = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648 - 0.5;
  const W = Float64Array.from({ length: N * K }, (_, i) => rnd() * (1 + (i % N) / 4)); // rows of different ranges
  const x = Float32Array.from({ length: M * K }, (_, i) => rnd() * (1 + Math.floor(i / K)) * 3); // tokens of different ranges
  const bias = Float32Array.from({ length: N }, () => rnd());
  const exact = new Float64Array(M * N);
  for (let m = 0; m < M; m++) {
    for (let n = 0; n < N; n++) {
      let s = bias[n];
      for (let k = 0; k < K; k++) s += x[m * K + k] * W[n * K + k];
      exact[m * N + n] = s;
    }
  }
  let xAmax = 0;
  for (const v of x) xAmax = Math.max(xAmax, Math.abs(v));
  for (const [algo, inputAmax] of [["FP8", xAmax], ["FP8", xAmax / 2], ["FP8_PER_CHANNEL_PER_TOKEN", undefined]] as const) {
    const t = quantizeFp8(W, N, K, algo, inputAmax);
    assert.equal(t.packed.length, N * K);
    if (algo === "FP8") assert.ok(t.scales.every((s) => s === t.scales[0]), "per-tensor scale");
    else assert.ok(new Set(t.scales).size > 1, "per-channel scales");
    const wd = dequantize(t);
    for (let i = 0; i < N * K; i++) assert.ok(Math.abs(wd[i] - W[i]) <= Math.abs(W[i]) / 16 + t.scales[Math.floor(i / K)] * 2 ** -10, `weight ${i}`);
    const out = new Float32Array(M * N);
    fp8Linear(x, { bytes: t.packed, scales: t.scales, activationScale: t.activationScale ?? null }, bias, M, N, K, out);
    let saturated = 0, errSq = 0, refSq = 0;
    for (let m = 0; m < M; m++) {
      let amax = 0;
      for (let k = 0; k < K; k++) amax = Math.max(amax, Math.abs(x[m * K + k]));
      const a = t.activationScale ?? Math.fround(amax / 448);
      const xq = Array.from({ length: K }, (_, k) => {
        const v = Math.fround(x[m * K + k] / a);
        if (Math.abs(v) > 448) saturated++;
        return nearestE4m3(v) * a;
      });
      for (let n = 0; n < N; n++) {
        let s = 0;
        for (let k = 0; k < K; k++) s += xq[k] * wd[n * K + k];
        const ref = s + bias[n];
        assert.ok(Math.abs(out[m * N + n] - ref) <= 1e-6 * (1 + Math.abs(ref)), `${algo} [${m},${n}]: ${out[m * N + n]} vs ${ref}`);
        errSq += (ref - exact[m * N + n]) ** 2;
        refSq += exact[m * N + n] ** 2;
      }
    }
    if (algo === "FP8" && inputAmax! < xAmax) assert.ok(saturated > 0, "the half-amax scale saturates some activations");
    const rel = Math.sqrt(errSq / refSq);
    assert.ok(rel < (saturated > 0 ? 0.5 : 0.08), `${algo} relative error vs the float product ${rel}`);
  }
});

// ---- kjv-llama ----

let f32: Promise<number> | null = null;
const report = (name: string, p: number, base: number): string =>
  `${name} ${p.toFixed(4)} vs float32 ${base.toFixed(4)} (${((p / base - 1) * 100).toFixed(2)}%)`;

for (const algo of ["FP8", "FP8_PER_CHANNEL_PER_TOKEN"] as const) {
  test(`kjv-llama ${algo}: held-out perplexity within 3% of float32`, async () => {
    const base = await (f32 ??= perplexity());
    const p = await perplexity({ quantAlgo: algo });
    console.log(report(algo, p, base));
    assert.ok(p <= base * 1.03, report(algo, p, base));
    assert.notEqual(p, base, "the FP8 engine computed exactly the float32 perplexity: nothing was quantized");
  }, 300_000);
}

test("kjv-llama FP8 engines store e4m3 bytes (uint8) and scales, no float weights of the quantized linears; save/load round trip keeps tensors, formats and QuantConfig", () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "llmrt-fp8-"));
  try {
    const bc = { backend: "cpu", maxBatchSize: 2, maxNumTokens: 64, maxSeqLen: 128 } as const;
    for (const algo of ["FP8", "FP8_PER_CHANNEL_PER_TOKEN"] as const) {
      const e = buildSync(quantizeSync(AutoModelForCausalLM.fromHuggingFace(kjv), { quantAlgo: algo }), bc);
      const linears = e.plan.ops.filter((o) => o.type === "linear" && o.weightFormat);
      assert.equal(linears.length, 6 * 4, "qkv, o, gate_up, down of 6 layers"); // lm_head excluded by default (and tied)
      for (const op of linears) {
        if (op.type !== "linear") continue;
        const f = op.weightFormat!;
        assert.equal(f.format, "fp8_e4m3");
        assert.equal(f.activation, algo === "FP8" ? "static_per_tensor" : "dynamic_per_token");
        assert.equal(f.weightScale, algo === "FP8" ? "per_tensor" : "per_channel");
        if (algo === "FP8") assert.ok(f.activationScale! > 0);
        else assert.equal(f.activationScale, undefined);
        assert.equal(e.readTensor(op.weight).byteLength, op.outFeatures * op.inFeatures, `${op.weight} is one byte per element`);
      }
      const sub = path.join(dir, algo);
      e.save(sub);
      const cfg = JSON.parse(fs.readFileSync(path.join(sub, "config.json"), "utf8"));
      assert.equal(cfg.quant.quantAlgo, algo);
      const again = Engine.fromDir(sub);
      try {
        assert.deepEqual(again.config.quant, e.config.quant);
        const json = (v: unknown): unknown => JSON.parse(JSON.stringify(v)); // absent keys (bias: undefined) do not reach the file
        assert.deepEqual(json(again.plan.ops), json(e.plan.ops));
        for (const name of e.tensorNames()) assert.deepEqual(again.readTensor(name), e.readTensor(name), name);
      } finally {
        again.dispose();
      }
      e.dispose();
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test("FP8 engines build for the CUDA backend (their launch plan: tests/quant_fp8_cuda_plan.test.ts; kernels: tests/gpu/fp8_cuda.test.ts)", () => {
  const q = quantizeSync(AutoModelForCausalLM.fromHuggingFace(kjv), { quantAlgo: "FP8_PER_CHANNEL_PER_TOKEN" });
  buildSync(q, { backend: "cuda", maxBatchSize: 2, maxNumTokens: 64, maxSeqLen: 128 }).dispose();
  assert.equal(QuantConfig.from({ quantAlgo: "FP8" }).quantAlgo, "FP8");
});
