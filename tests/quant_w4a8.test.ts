// Quantization II, W4A8_AWQ on the CPU backend: AWQ int4 groupwise weights (signed nibbles) with FP8
// e4m3 activations under a static per-tensor scale from calibration, as TensorRT-LLM runs it: the
// stored form, the kernel against a float64 reference (saturation included), held-out kjv-llama
// perplexity within 15% of float32 (groupSize 64), the engine round trip, the CUDA build.
import { lowbitLinear } from "../lib/backends/cpu/lowbit_linear.ts";
import { quantizeRtn } from "../lib/quantization/algorithms.ts";
import { AutoModelForCausalLM } from "../lib/models/llama.ts";
import { toW4A8 } from "../lib/quantization/nvfp4.ts";
import { dequantize } from "../lib/quantization/packed.ts";
import { QuantConfig } from "../lib/quantization/quant_config.ts";
import { quantizeSync } from "../lib/quantization/quantize.ts";
import { ValidationError } from "../lib/util/errors.ts";
import { assert, test } from "./harness.ts";
import { kjv } from "./kjv_perplexity.ts";
import { checkEngine, checkPerplexity, maxRelDiff, refE4m3, rng } from "./quant_lowbit_shared.ts";

test("W4A8 weights: symmetric int4 as signed two's complement nibbles (element 2j low), same values as the uint4 form, static FP8 activation scale amax/448", () => {
  const N = 4, K = 32, r = rng(2);
  const W = Float64Array.from({ length: N * K }, () => r());
  const u = quantizeRtn(W, N, K, { bits: 4, groupSize: 16, hasZeroPoint: false });
  const t = toW4A8(u, 7);
  assert.equal(t.format, "int4");
  assert.equal(t.activationScale, Math.fround(7 / 448));
  assert.deepEqual(dequantize(t), dequantize(u));
  for (let i = 0; i < N * K; i++) {
    const ub = u.packed[i >> 1], tb = t.packed[i >> 1];
    const uq = i % 2 === 0 ? ub & 15 : ub >> 4, tn = i % 2 === 0 ? tb & 15 : tb >> 4;
    assert.equal(tn >= 8 ? tn - 16 : tn, uq - 8, `element ${i}`);
  }
  assert.throws(() => toW4A8(quantizeRtn(W, N, K, { bits: 4, groupSize: 16, hasZeroPoint: true }), 7));
});

test("W4A8 kernel: e4m3(x / a) with the static scale (RNE, saturating), exact products per group, scales after — equal to a float64 reference", () => {
  const M = 5, N = 10, K = 128, G = 64, r = rng(8);
  const W = Float64Array.from({ length: N * K }, () => r());
  const x = Float32Array.from({ length: M * K }, (_, i) => r() * (1 + ((i / K) | 0)) * 2);
  const bias = Float32Array.from({ length: N }, () => r());
  let xAmax = 0;
  for (const v of x) xAmax = Math.max(xAmax, Math.abs(v));
  for (const calib of [xAmax, xAmax / 4]) {
    const t = toW4A8(quantizeRtn(W, N, K, { bits: 4, groupSize: G, hasZeroPoint: false }), calib);
    const a = t.activationScale!;
    const out = new Float32Array(M * N);
    lowbitLinear(x, { format: "int4", packed: t.packed, scales: t.scales, groupSize: G, activationScale: a }, bias, M, N, K, out);
    const wd = dequantize(t);
    const ref = new Float64Array(M * N);
    let saturated = 0;
    for (let m = 0; m < M; m++) {
      const xq = Array.from({ length: K }, (_, k) => {
        const v = Math.fround(x[m * K + k] / a);
        if (Math.abs(v) > 448) saturated++;
        return Math.sign(v) * refE4m3(Math.abs(v)) * a;
      });
      for (let n = 0; n < N; n++) {
        let s = 0;
        for (let k = 0; k < K; k++) s += xq[k] * wd[n * K + k];
        ref[m * N + n] = s + bias[n];
      }
    }
    if (calib < xAmax) assert.ok(saturated > 0, "the quarter-amax scale saturates some activations");
    assert.ok(maxRelDiff(out, ref) < 1e-6, `kernel vs reference ${maxRelDiff(out, ref)}`);
  }
});

test("QuantConfig W4A8_AWQ: groupSize default 128, symmetric only (hasZeroPoint refused by name)", () => {
  assert.deepEqual(QuantConfig.from({ quantAlgo: "W4A8_AWQ" }).layerQuant("model.layers.0.mlp.down_proj"), {
    algo: "W4A8_AWQ",
    bits: 4,
    groupSize: 128,
    hasZeroPoint: false,
  });
  assert.throws(
    () => QuantConfig.from({ quantAlgo: "W4A8_AWQ", hasZeroPoint: true }).layerQuant("model.layers.0.mlp.down_proj"),
    (e: unknown) => e instanceof ValidationError && e.field === "QuantConfig.hasZeroPoint" && e.message.includes("W4A8_AWQ"),
  );
});

test("kjv-llama W4A8_AWQ (groupSize 64): held-out perplexity within 15% of float32", async () => {
  await checkPerplexity({ quantAlgo: "W4A8_AWQ", groupSize: 64 }, 0.15);
}, 300_000);

test("kjv-llama W4A8_AWQ engines: AWQ scales folded, int4 [N, K/2] + group scales + static FP8 activation scale, round trip; the CUDA build takes it", () => {
  const model = AutoModelForCausalLM.fromHuggingFace(kjv);
  const q = quantizeSync(model, { quantAlgo: "W4A8_AWQ", groupSize: 64 }, { maxCalibrationTokens: 256 });
  assert.ok(q.awqScales.size > 0, "the AWQ search ran and its scales were folded");
  const name = "model.layers.0.input_layernorm.weight";
  assert.notDeepEqual(q.weights.readFloat32(name), model.weights.readFloat32(name));
  checkEngine(q, (f, N, K) => {
    assert.equal(f.format, "int4");
    assert.equal(f.groupSize, 64);
    assert.equal(f.activation, "static_per_tensor");
    assert.ok(f.activationScale! > 0);
    return (N * K) / 2;
  });
});
