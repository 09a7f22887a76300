// Quantization II, SmoothQuant W8A8 (W8A8_SQ_PER_CHANNEL) on the CPU backend: the smoothing factors,
// int8 per-channel weights, the kernel (per-token dynamic int8 activations, exact int32 sums, scales
// after) against a float64 reference, smoothing's effect on an outlier channel, folding into the
// norms / pre-quant scales of kjv-llama, `alpha` in QuantConfig, held-out perplexity within 6% of
// float32, the engine's stored form and round trip, and the CUDA build.
import { lowbitLinear } from "../lib/backends/cpu/lowbit_linear.ts";
import { AutoModelForCausalLM } from "../lib/models/llama.ts";
import { dequantize } from "../lib/quantization/packed.ts";
import { QuantConfig } from "../lib/quantization/quant_config.ts";
import { quantizeSync } from "../lib/quantization/quantize.ts";
import { quantizeInt8PerChannel, smoothFactors } from "../lib/quantization/smoothquant.ts";
import { ValidationError } from "../lib/util/errors.ts";
import { assert, test } from "./harness.ts";
import { kjv } from "./kjv_perplexity.ts";
import { checkEngine, checkPerplexity, maxRelDiff, rng } from "./quant_lowbit_shared.ts";

/** Round half to even, written differently from the code under test. */
const rneRef = (v: number): number => (Math.abs(v % 1) === 0.5 ? 2 * Math.round(v / 2) : Math.round(v));

/** The float64 reference of the W8A8 linear: per-token int8 x (after the pre-quant multiplier), int8 W, exact sums. */
function refW8A8(x: Float32Array, pre: Float32Array | null, wq: Int8Array, ws: Float32Array, M: number, N: number, K: number): Float64Array {
  const out = new Float64Array(M * N);
  for (let m = 0; m < M; m++) {
    const xs = Array.from({ length: K }, (_, k) => Math.fround(pre ? x[m * K + k] * pre[k] : x[m * K + k]));
    const a = Math.fround(Math.max(...xs.map(Math.abs)) / 127);
    const xq = xs.map((v) => Math.min(127, Math.max(-127, rneRef(Math.fround(v / a)))));
    for (let n = 0; n < N; n++) {
      let acc = 0;
      for (let k = 0; k < K; k++) acc += xq[k] * wq[n * K + k];
      assert.ok(Number.isInteger(acc) && Math.abs(acc) < 2 ** 31, "an int32 sum");
      out[m * N + n] = acc * a * ws[n];
    }
  }
  return out;
}

test("smoothFactors: s_j = max|X_j|^α / max|W_j|^(1−α) over all linears sharing the input (clamped at 1e-5)", () => {
  const K = 3;
  const act = [8, 0.5, 0];
  const w1 = [1, -2, 0.1, -4, 0.5, 0]; // [2, 3]
  const w2 = [0.25, 3, 0]; // [1, 3]
  const s = smoothFactors(act, [w1, w2], K, 0.5);
  assert.deepEqual(Array.from(s), [Math.sqrt(8) / Math.sqrt(4), Math.sqrt(0.5) / Math.sqrt(3), Math.sqrt(1e-5) / Math.sqrt(0.1)]);
  assert.deepEqual(Array.from(smoothFactors(act, [w1], K, 1)), [8, 0.5, 1e-5]);
  assert.deepEqual(Array.from(smoothFactors(act, [w1], K, 0)), [1 / 4, 1 / 2, 1 / 0.1]);
});

test("int8 per-channel weights: scale amax/127, q = rne(w / scale) clamped to ±127, two's complement bytes", () => {
  const N = 3, K = 8;
  const W = [
    [127, -127, 0.5, 1.5, -0.5, -2.5, 63.5, 3],
    [0, 0, 0, 0, 0, 0, 0, 0],
    [1, -1, 0.25, 0.75, 0.1, -0.3, 0.9, -0.9],
  ].flat();
  const t = quantizeInt8PerChannel(W, N, K);
  assert.deepEqual(Array.from(t.scales), [1, 1, Math.fround(1 / 127)]);
  const q = new Int8Array(t.packed.buffer);
  assert.deepEqual(Array.from(q.subarray(0, 8)), [127, -127, 0, 2, 0, -2, 64, 3], "ties to even");
  assert.deepEqual(Array.from(q.subarray(8, 16)), [0, 0, 0, 0, 0, 0, 0, 0]);
  for (let k = 0; k < K; k++) assert.equal(q[16 + k], rneRef(W[16 + k] / Math.fround(1 / 127)));
  assert.equal(t.packed[1], 0x81, "−127 as a two's complement byte");
  assert.deepEqual(Array.from(dequantize(t).subarray(0, 3)), [127, -127, 0]);
});

test("W8A8 kernel equals the float64 reference (with and without a pre-quant scale); smoothing cuts the error of an outlier channel", () => {
  const M = 6, N = 16, K = 64, r = rng(9);
  const W = Float64Array.from({ length: N * K }, () => r());
  // Activations with one outlier channel (as LLM activations have), tokens of different ranges.
  const x = Float32Array.from({ length: M * K }, (_, i) => r() * (1 + ((i / K) | 0)) * (i % K === 5 ? 60 : 1));
  const bias = Float32Array.from({ length: N }, () => r());
  const exact = new Float64Array(M * N);
  for (let m = 0; m < M; m++) for (let n = 0; n < N; n++) for (let k = 0; k < K; k++) exact[m * N + n] += x[m * K + k] * W[n * K + k];
  const relErr = (out: ArrayLike<number>): number => {
    let e = 0, s = 0;
    for (let i = 0; i < M * N; i++) {
      e += (out[i] - exact[i]) ** 2;
      s += exact[i] ** 2;
    }
    return Math.sqrt(e / s);
  };
  const actAmax = Array.from({ length: K }, (_, k) => Math.max(...Array.from({ length: M }, (_, m) => Math.abs(x[m * K + k]))));
  const errs: number[] = [];
  for (const smooth of [false, true]) {
    const s = smooth ? smoothFactors(actAmax, [W], K, 0.5) : null;
    const Ws = s ? W.map((v, i) => v * s[i % K]) : W;
    const pre = s ? Float32Array.from(s, (v) => 1 / v) : null;
    const t = quantizeInt8PerChannel(Ws, N, K, pre ?? undefined);
    const q = new Int8Array(t.packed.buffer);
    const out = new Float32Array(M * N);
    lowbitLinear(x, { format: "int8", q, scales: t.scales, preQuantScale: pre }, bias, M, N, K, out);
    const ref = refW8A8(x, pre, q, t.scales, M, N, K).map((v, i) => v + bias[i % N]);
    assert.ok(maxRelDiff(out, ref) < 1e-6, `smooth=${smooth}: kernel vs reference ${maxRelDiff(out, ref)}`);
    errs.push(relErr(out.map((v, i) => v - bias[i % N])));
  }
  console.log(`W8A8 relative error vs the float product: plain ${errs[0].toFixed(4)}, smoothed ${errs[1].toFixed(4)}`);
  assert.ok(errs[1] < errs[0] / 2, `smoothing should at least halve the error of an outlier channel: ${errs}`);
  assert.ok(errs[1] < 0.03, `smoothed W8A8 error ${errs[1]}`);
});

test("QuantConfig alpha: default 0.5, in [0, 1] (else a ValidationError naming QuantConfig.alpha), in toDict; W8A8 is symmetric per-channel", () => {
  const qc = QuantConfig.from({ quantAlgo: "W8A8_SQ_PER_CHANNEL" });
  assert.equal(qc.alpha, 0.5);
  assert.equal(QuantConfig.from({ quantAlgo: "W8A8_SQ_PER_CHANNEL", alpha: 0.8 }).toDict().alpha, 0.8);
  for (const alpha of [1.5, -0.1, "0.5"]) {
    assert.throws(
      () => QuantConfig.from({ quantAlgo: "W8A8_SQ_PER_CHANNEL", alpha: alpha as number }),
      (e: unknown) => e instanceof ValidationError && e.field === "QuantConfig.alpha",
    );
  }
  assert.deepEqual(qc.layerQuant("model.layers.2.self_attn.o_proj"), { algo: "W8A8_SQ_PER_CHANNEL", bits: 8, groupSize: null, hasZeroPoint: false });
});

test("kjv-llama W8A8_SQ_PER_CHANNEL: held-out perplexity within 6% of float32", async () => {
  await checkPerplexity({ quantAlgo: "W8A8_SQ_PER_CHANNEL" }, 0.06);
}, 300_000);

test("kjv-llama W8A8 SmoothQuant: 1/s folded into both RMSNorms, kept as pre-quant scales for o_proj/down_proj; alpha changes s; engine int8 [N, K] + scales, round trip; the CUDA build takes it", () => {
  const model = AutoModelForCausalLM.fromHuggingFace(kjv);
  const calib = { maxCalibrationTokens: 256 };
  const q = quantizeSync(model, { quantAlgo: "W8A8_SQ_PER_CHANNEL" }, calib);
  const q0 = quantizeSync(model, { quantAlgo: "W8A8_SQ_PER_CHANNEL", alpha: 0.2 }, calib);
  for (const norm of ["input_layernorm", "post_attention_layernorm"]) {
    const name = `model.layers.1.${norm}.weight`;
    const orig = model.weights.readFloat32(name), a = q.weights.readFloat32(name), b = q0.weights.readFloat32(name);
    assert.ok(orig.some((v, i) => Math.abs(a[i] - v) > 1e-3 * Math.abs(v)), `${name} holds 1/s`);
    assert.ok(a.some((v, i) => v !== b[i]), `${name}: alpha 0.2 gives other factors`);
  }
  for (const [m, K] of [["self_attn.o_proj", 256], ["mlp.down_proj", 320], ["self_attn.q_proj", 0], ["mlp.up_proj", 0]] as const) {
    const t = q.quantizedTensor(`model.layers.1.${m}.weight`)!;
    assert.equal(t.format, "int8");
    assert.equal(t.preQuantScale?.length ?? 0, K, `${m} pre-quant scale`);
  }
  checkEngine(q, (f, N, K) => {
    assert.equal(f.format, "int8");
    assert.equal(f.activation, "dynamic_per_token");
    assert.equal(f.groupSize, 0);
    assert.equal(f.preQuantScale !== undefined, K === 320 || (K === 256 && N === 256), `pre-quant scale of a [${N}, ${K}] linear`);
    return N * K;
  });
});
