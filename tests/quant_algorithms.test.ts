// Quantization I, unit level: QuantConfig (defaults, toDict, refusals, MIXED_PRECISION, ragged
// shapes), the packed layout, and every algorithm through the CPU kernel against a float64
// dequantize-then-matmul reference; GPTQ and AWQ against RTN on their own objectives.
import { quantLinear } from "../lib/backends/cpu/quant_linear.ts";
import { buildSync } from "../lib/builder/builder.ts";
import { AutoModelForCausalLM } from "../lib/models/llama.ts";
import { groupParams, type IntGrid, quantizeRtn } from "../lib/quantization/algorithms.ts";
import { awqSearchScale } from "../lib/quantization/awq.ts";
import { quantizeGptq } from "../lib/quantization/gptq.ts";
import { dequantize, packInts, type QuantizedTensor, unpackRow } from "../lib/quantization/packed.ts";
import { QuantAlgo } from "../lib/quantization/quant_algo.ts";
import { QuantConfig } from "../lib/quantization/quant_config.ts";
import { quantizeSync } from "../lib/quantization/quantize.ts";
import { UnsupportedError, ValidationError } from "../lib/util/errors.ts";
import { assert, test } from "./harness.ts";

const kjv = new URL("../models/kjv-llama/", import.meta.url).pathname;

/** Deterministic normal-ish numbers (xorshift + Box-Muller). */
function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  const u = (): number => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return (s + 0.5) / 4294967296;
  };
  return () => Math.sqrt(-2 * Math.log(u())) * Math.cos(2 * Math.PI * u());
}

/** Activations with a few large channels (what AWQ protects) and correlated columns (what GPTQ uses). */
function activations(T: number, K: number, seed: number): Float64Array {
  const r = rng(seed), X = new Float64Array(T * K);
  const mix = Array.from({ length: 8 }, () => Array.from({ length: K }, () => r()));
  for (let t = 0; t < T; t++) {
    const z = mix.map(() => r());
    for (let k = 0; k < K; k++) {
      let v = 0.3 * r();
      for (let j = 0; j < z.length; j++) v += 0.2 * z[j] * mix[j][k];
      X[t * K + k] = v * (k % 17 === 0 ? 8 : 1);
    }
  }
  return X;
}

function weights(N: number, K: number, seed: number): Float64Array {
  const r = rng(seed);
  return Float64Array.from({ length: N * K }, () => 0.05 * r());
}

const gram = (X: Float64Array, T: number, K: number): Float64Array => {
  const H = new Float64Array(K * K);
  for (let t = 0; t < T; t++) for (let i = 0; i < K; i++) for (let j = 0; j < K; j++) H[i * K + j] += (X[t * K + i] * X[t * K + j]) / T;
  return H;
};

/** ‖X (Ŵ − W)ᵀ‖²_F with Ŵ = dequantize(q) / s (s = AWQ column scales, or 1). */
function outErr(X: Float64Array, T: number, W: Float64Array, q: QuantizedTensor, s?: Float64Array): number {
  const { rows: N, cols: K } = q, D = dequantize(q);
  let e = 0;
  for (let t = 0; t < T; t++) {
    for (let n = 0; n < N; n++) {
      let d = 0;
      for (let k = 0; k < K; k++) d += X[t * K + k] * (D[n * K + k] / (s ? s[k] : 1) - W[n * K + k]);
      e += d * d;
    }
  }
  return e;
}

/** The CPU kernel equals the float64 dequantize-then-matmul reference (max relative error). */
function checkKernel(q: QuantizedTensor, X: Float64Array, M: number, what: string): void {
  const { rows: N, cols: K } = q;
  const x = Float32Array.from(X.subarray(0, M * K));
  const bias = Float32Array.from({ length: N }, (_, i) => 0.01 * i);
  const out = new Float32Array(M * N);
  quantLinear(x, { bits: q.bits, groupSize: q.groupSize, packed: q.packed, scales: q.scales, zeros: q.zeros }, bias, M, N, K, out);
  const D = dequantize(q);
  let worst = 0, scale = 0;
  for (let m = 0; m < M; m++) {
    for (let n = 0; n < N; n++) {
      let ref = bias[n];
      for (let k = 0; k < K; k++) ref += x[m * K + k] * D[n * K + k];
      worst = Math.max(worst, Math.abs(out[m * N + n] - ref));
      scale = Math.max(scale, Math.abs(ref));
    }
  }
  assert.ok(worst <= 2e-6 * Math.max(1, scale), `${what}: kernel vs float64 reference max abs error ${worst} (max |ref| ${scale})`);
}

test("QuantConfig: TensorRT-LLM names, defaults, toDict round trip, plain objects", () => {
  assert.equal(QuantAlgo.W4A16_AWQ, "W4A16_AWQ");
  const qc = QuantConfig.from({ quantAlgo: "W4A16_AWQ" });
  assert.deepEqual(qc.excludeModules, ["lm_head"]);
  assert.equal(qc.kvCacheQuantAlgo, null);
  assert.equal(qc.layerQuant("model.layers.0.mlp.down_proj")!.groupSize, 128); // AWQ default group
  assert.equal(QuantConfig.from({ quantAlgo: "W8A16" }).layerQuant("model.layers.0.mlp.down_proj")!.groupSize, null); // per-channel
  assert.equal(qc.layerQuant("lm_head"), null);
  const d = QuantConfig.from({ quantAlgo: "W4A16_GPTQ", groupSize: 64, hasZeroPoint: true }).toDict();
  assert.deepEqual(QuantConfig.from(JSON.parse(JSON.stringify(d))).toDict(), d);
  assert.equal(QuantConfig.from(qc), qc);
});

test("QuantConfig: unknown algorithm names and ragged group sizes are refused; KV-cache FP8 / INT8 accepted (tests/quant_kv.test.ts)", () => {
  // Every weight algorithm is implemented (W8A8_SQ / W4A8_AWQ / NVFP4: tests/quant_sq, quant_w4a8, quant_nvfp4).
  assert.equal(QuantConfig.from({ kvCacheQuantAlgo: "INT8" }).kvCacheQuantAlgo, "INT8");
  assert.throws(() => QuantConfig.from({ kvCacheQuantAlgo: "INT4" as never }), ValidationError);
  assert.throws(() => QuantConfig.from({ quantAlgo: "W4" as never }), ValidationError);
  assert.throws(
    () => QuantConfig.from({ quantAlgo: "W4A16", groupSize: 12 }),
    (e: unknown) => e instanceof ValidationError && e.field === "QuantConfig.groupSize",
  );
});

test("QuantConfig: MIXED_PRECISION resolves per-module overrides; unlisted modules stay float", () => {
  const qc = QuantConfig.from({
    quantAlgo: "MIXED_PRECISION",
    quantizedLayers: { "*.mlp.down_proj": { quantAlgo: "W8A16" }, "model.layers.0.self_attn.*": { quantAlgo: "W4A16_AWQ", groupSize: 64 } },
  });
  assert.deepEqual(qc.layerQuant("model.layers.3.mlp.down_proj"), { algo: "W8A16", bits: 8, groupSize: null, hasZeroPoint: false });
  assert.equal(qc.layerQuant("model.layers.0.self_attn.q_proj")!.groupSize, 64);
  assert.equal(qc.layerQuant("model.layers.1.self_attn.q_proj"), null);
  assert.throws(() => QuantConfig.from({ quantAlgo: "MIXED_PRECISION" }), ValidationError);
  assert.throws(() => QuantConfig.from({ quantAlgo: "MIXED_PRECISION", quantizedLayers: { "*": { quantAlgo: "MIXED_PRECISION" } } }), ValidationError);
});

test("quantize: ragged in-dims (naming layer, dim, groupSize), a tied lm_head, float32 CUDA and tensor-parallel builds are refused", () => {
  const model = AutoModelForCausalLM.fromHuggingFace(kjv);
  try {
    assert.throws(
      () => quantizeSync(model, { quantAlgo: "W4A16", groupSize: 128 }),
      (e: unknown) =>
        e instanceof ValidationError && /model\.layers\.0\.mlp\.down_proj/.test(e.message) && /320/.test(e.message) && /groupSize 128/.test(e.message),
    );
    assert.throws(() => quantizeSync(model, { quantAlgo: "W8A16", excludeModules: [] }), UnsupportedError); // tied lm_head
    const q = quantizeSync(model, { quantAlgo: "W8A16" });
    assert.throws(() => buildSync(q, { backend: "cuda", dtype: "float32" }), (e: unknown) => e instanceof UnsupportedError && /bfloat16 only/.test(e.message));
    assert.equal(buildSync(q, { backend: "cuda" }).config.dtype, "bfloat16"); // quantized bf16 CUDA engines build (checked end to end on an H200)
    assert.throws(() => buildSync(q, { backend: "cpu", tensorParallelSize: 2 }), UnsupportedError);
  } finally {
    model.close();
  }
});

test("packed layout: int4 two per byte (low nibble first), int8 one per byte; unpack inverts pack", () => {
  const q = Uint8Array.from({ length: 6 * 8 }, (_, i) => (i * 7) % 16);
  const p = packInts(q, 6, 8, 4);
  assert.equal(p.length, 24);
  assert.equal(p[0], q[0] | (q[1] << 4));
  const t: QuantizedTensor = { bits: 4, rows: 6, cols: 8, groupSize: 8, packed: p, scales: new Float32Array(6).fill(1), zeros: null };
  const row = new Uint8Array(8);
  for (let n = 0; n < 6; n++) {
    unpackRow(t, n, row);
    assert.deepEqual([...row], [...q.subarray(n * 8, n * 8 + 8)]);
  }
});

const N = 48, K = 128, T = 192;
const X = activations(T, K, 7);
const W = weights(N, K, 11);

for (
  const [name, grid] of [
    ["W8A16 per-channel", { bits: 8, groupSize: K, hasZeroPoint: false }],
    ["W4A16 per-channel", { bits: 4, groupSize: K, hasZeroPoint: false }],
    ["W4A16 g32 symmetric", { bits: 4, groupSize: 32, hasZeroPoint: false }],
    ["W4A16 g32 zero points", { bits: 4, groupSize: 32, hasZeroPoint: true }],
  ] as [string, IntGrid][]
) {
  test(`RTN ${name}: error ≤ scale/2 (symmetric) or ≤ scale (rounded zero point), kernel equals the float64 reference`, () => {
    const q = quantizeRtn(W, N, K, grid);
    const D = dequantize(q);
    for (let n = 0; n < N; n++) {
      for (let k = 0; k < K; k++) {
        const g = Math.floor(k / grid.groupSize), s = q.scales[n * (K / grid.groupSize) + g];
        const bound = grid.hasZeroPoint ? s : s / 2;
        assert.ok(Math.abs(D[n * K + k] - W[n * K + k]) <= bound + 1e-12, `w[${n},${k}]: |${D[n * K + k]} - ${W[n * K + k]}| > ${bound}`);
      }
    }
    checkKernel(q, X, 5, name);
  });
}

test("GPTQ (g32): output error on the calibration inputs well below RTN's; kernel equals the float64 reference", () => {
  const H = gram(X, T, K);
  for (const hasZeroPoint of [false, true]) {
    const grid: IntGrid = { bits: 4, groupSize: 32, hasZeroPoint };
    const rtn = quantizeRtn(W, N, K, grid);
    const gptq = quantizeGptq(W.slice(), N, K, grid, H);
    const er = outErr(X, T, W, rtn), eg = outErr(X, T, W, gptq);
    assert.ok(eg < 0.8 * er, `zero points ${hasZeroPoint}: GPTQ error ${eg.toExponential(3)} vs RTN ${er.toExponential(3)}`);
    checkKernel(gptq, X, 5, `GPTQ zero points ${hasZeroPoint}`);
  }
});

test("AWQ (g32): the searched scales lower the output error vs RTN on inputs with salient channels; kernel equals the reference", () => {
  const absMean = new Float64Array(K), sqMean = new Float64Array(K);
  for (let t = 0; t < T; t++) {
    for (let k = 0; k < K; k++) {
      absMean[k] += Math.abs(X[t * K + k]) / T;
      sqMean[k] += X[t * K + k] ** 2 / T;
    }
  }
  const grid: IntGrid = { bits: 4, groupSize: 32, hasZeroPoint: true };
  const s = awqSearchScale(W, N, K, grid, { absMean, sqMean, rows: X, numRows: T });
  assert.ok(s.some((v) => Math.abs(v - 1) > 1e-3), "AWQ picked α = 0 on inputs with 8× channels");
  const scaled = W.map((w, i) => w * s[i % K]);
  const awq = quantizeRtn(scaled, N, K, grid);
  const rtn = quantizeRtn(W, N, K, grid);
  const ea = outErr(X, T, W, awq, s), er = outErr(X, T, W, rtn);
  assert.ok(ea < er, `AWQ error ${ea.toExponential(3)} vs RTN ${er.toExponential(3)}`);
  checkKernel(awq, X, 5, "AWQ");
});

test("groupParams: symmetric uses amax/(2^(b-1)-1) with zero 2^(b-1); scales are float16 values", () => {
  const w = [0.5, -1.75, 0.25, 1];
  const { scale, zero } = groupParams(w, 0, 4, { bits: 4, groupSize: 4, hasZeroPoint: false });
  assert.equal(zero, 8);
  assert.equal(scale, 0.25);
  const a = groupParams([0.1, 0.2, 0.33], 0, 3, { bits: 8, groupSize: 3, hasZeroPoint: true });
  assert.equal(Math.fround(a.scale), a.scale);
  assert.equal(a.zero, 0);
});
