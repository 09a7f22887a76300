// Quantization II, NVFP4 on the CPU backend (W4A4: e2m1 values, an e4m3 scale per 16, a float32
// global scale; activations NVFP4 per 16 too, dynamically): the e2m1 codec on every value and tie,
// the block quantizer and the public byte layout, the kernel against a float64 reference, held-out
// kjv-llama perplexity within 15% of float32, the engine's stored form and round trip, the CUDA build.
import { lowbitLinear } from "../lib/backends/cpu/lowbit_linear.ts";
import { NVFP4_BUILD_NOTE } from "../lib/quantization/lowbit_engine.ts";
import { AutoModelForCausalLM } from "../lib/models/llama.ts";
import { e4m3Encode } from "../lib/util/e4m3.ts";
import { E2M1_DECODE, e2m1Decode, e2m1Encode, NVFP4_BLOCK, nvfp4GlobalScale, quantizeNvfp4 } from "../lib/quantization/nvfp4.ts";
import { dequantize } from "../lib/quantization/packed.ts";
import { QuantConfig } from "../lib/quantization/quant_config.ts";
import { quantizeSync } from "../lib/quantization/quantize.ts";
import { ValidationError } from "../lib/util/errors.ts";
import { assert, test } from "./harness.ts";
import { kjv } from "./kjv_perplexity.ts";
import { checkEngine, checkPerplexity, E2M1_MAGS, maxRelDiff, refE2m1, refE4m3, refNvfp4, rng } from "./quant_lowbit_shared.ts";

test("e2m1: every code decodes to S·{0, 0.5, 1, 1.5, 2, 3, 4, 6} and re-encodes to itself (−0 included)", () => {
  for (let c = 0; c < 16; c++) {
    const v = (c & 8 ? -1 : 1) * E2M1_MAGS[c & 7];
    assert.ok(Object.is(e2m1Decode(c), v), `code ${c}: ${e2m1Decode(c)}`);
    assert.equal(e2m1Encode(v), c, `encode(${Object.is(v, -0) ? "-0" : v})`);
  }
  assert.equal(e2m1Decode(0x17), 6, "only the low nibble counts");
});

test("e2m1 encode: every tie rounds to the even code, neighbours of ties to the nearer value, beyond ±6 saturates, NaN → +6", () => {
  // [x, code] by hand: midpoints between magnitudes go to the one with mantissa bit 0.
  const ties: [number, number][] = [[0.25, 0], [0.75, 2], [1.25, 2], [1.75, 4], [2.5, 4], [3.5, 6], [5, 6]];
  for (const [x, c] of ties) {
    assert.equal(e2m1Encode(x), c, `tie ${x}`);
    assert.equal(e2m1Encode(-x), c | 8, `tie −${x}`);
    const below = x * (1 - 2 ** -40), above = x * (1 + 2 ** -40);
    assert.equal(e2m1Decode(e2m1Encode(below)), refE2m1(below), `just below ${x}`);
    assert.equal(e2m1Decode(e2m1Encode(above)), refE2m1(above), `just above ${x}`);
    assert.notEqual(e2m1Encode(below), e2m1Encode(above), `the two sides of ${x} differ`);
  }
  for (const x of [6.0001, 7, 100, 1e30, Infinity]) {
    assert.equal(e2m1Encode(x), 7, `${x}`);
    assert.equal(e2m1Encode(-x), 15, `−${x}`);
  }
  assert.equal(e2m1Encode(NaN), 7);
  assert.equal(e2m1Encode(1e-30), 0);
  assert.equal(e2m1Encode(-1e-30), 8);
  const r = rng(3);
  for (let i = 0; i < 100_000; i++) {
    const x = r() * 16;
    assert.equal(e2m1Decode(e2m1Encode(x)), refE2m1(x), `x=${x}`);
  }
});

test("NVFP4 byte layout by hand: every e2m1 value once — codes S·index, element 2j in the low nibble, block scale 448 = e4m3 0x7e", () => {
  // amax 6 → g = f32(6 / 2688) and s = e4m3(6 / (6g)) = 448, where f32(448·g) = 1: the codes are the values themselves.
  const row = [0, 0.5, 1, 1.5, 2, 3, 4, 6, -0.5, -1, -1.5, -2, -3, -4, -6, 0];
  const t = quantizeNvfp4(row, 1, 16, 1);
  assert.equal(Math.fround(448 * t.globalScale!), 1);
  assert.deepEqual(Array.from(t.packed), [0x10, 0x32, 0x54, 0x76, 0xa9, 0xcb, 0xed, 0x0f]);
  assert.deepEqual(Array.from(t.scales, (v) => e4m3Encode(v)), [0x7e]);
});

test("NVFP4 weights: global scale amax/(6·448), e4m3 block scales per 16, e2m1 codes two per byte (element 2j low) — equal to the float64 reference", () => {
  const N = 6, K = 64, r = rng(11);
  // Rows of very different ranges, one all-zero block, one block of a single outlier.
  const W = Float64Array.from({ length: N * K }, (_, i) => r() * 2 ** ((i / K) | 0) * (i % K < 16 && i < K ? 0 : 1));
  W[3 * K + 40] = 50;
  const inAmax = 3.5;
  const t = quantizeNvfp4(W, N, K, inAmax);
  assert.equal(t.format, "nvfp4");
  assert.equal(t.packed.length, (N * K) / 2);
  assert.equal(t.scales.length, (N * K) / NVFP4_BLOCK);
  assert.equal(t.globalScale, Math.fround(50 / 2688));
  assert.equal(t.activationScale, Math.fround(inAmax / 2688));
  assert.equal(nvfp4GlobalScale(0), 1);
  const g = t.globalScale!;
  for (let n = 0; n < N; n++) {
    const ref = refNvfp4(W, n * K, K, g);
    for (let k = 0; k < K; k++) {
      const byte = t.packed[(n * K + k) >> 1], code = k % 2 === 0 ? byte & 15 : byte >> 4;
      const s = t.scales[n * (K / 16) + (k >> 4)];
      const got = E2M1_DECODE[code] * s * g;
      assert.ok(got === ref[k], `[${n},${k}]: ${got} vs ${ref[k]}`); // === : ±0 alike
    }
  }
  for (let b = 0; b < t.scales.length; b++) assert.equal(t.scales[b], refE4m3(t.scales[b]), "block scales are e4m3 values");
  assert.equal(t.scales[0], 1, "an all-zero block gets scale 1.0");
  assert.equal(t.scales[3 * 4 + 2], 448, "the block holding the tensor's amax gets the largest scale");
  assert.equal(e4m3Encode(448), 0x7e);
  const deq = dequantize(t);
  for (let i = 0; i < N * K; i++) {
    const s = t.scales[(i / 16) | 0] * g;
    assert.ok(Math.abs(deq[i] - W[i]) <= Math.max(Math.abs(W[i]) / 4, 0.25 * s) + 1e-12, `weight ${i}: ${deq[i]} vs ${W[i]}`);
  }
  // Fused parts share one global scale when the caller passes the fused amax.
  assert.equal(quantizeNvfp4(W.subarray(0, K), 1, K, inAmax, 50).globalScale, g);
});

test("NVFP4 kernel: activations NVFP4 per 16 under the static global scale, exact products, scales after — equal to a float64 reference; close to the float product", () => {
  const M = 4, N = 12, K = 96, r = rng(5);
  const W = Float64Array.from({ length: N * K }, () => r());
  const x = Float32Array.from({ length: M * K }, (_, i) => r() * (1 + ((i / K) | 0)) * 4);
  const bias = Float32Array.from({ length: N }, () => r());
  let xAmax = 0;
  for (const v of x) xAmax = Math.max(xAmax, Math.abs(v));
  for (const calib of [xAmax, xAmax / 3]) { // a calibrated amax below the run-time one saturates block scales
    const t = quantizeNvfp4(W, N, K, calib);
    const gw = t.globalScale!, ga = t.activationScale!;
    const out = new Float32Array(M * N);
    const bytes = Uint8Array.from(t.scales, (v) => e4m3Encode(v));
    lowbitLinear(x, { format: "nvfp4", packed: t.packed, blockScales: bytes, globalScale: gw, activationScale: ga }, bias, M, N, K, out);
    const wd = dequantize(t);
    const ref = new Float64Array(M * N), exact = new Float64Array(M * N);
    for (let m = 0; m < M; m++) {
      const xq = refNvfp4(x, m * K, K, ga);
      for (let n = 0; n < N; n++) {
        let s = 0, e = 0;
        for (let k = 0; k < K; k++) {
          s += xq[k] * wd[n * K + k];
          e += x[m * K + k] * W[n * K + k];
        }
        ref[m * N + n] = s + bias[n];
        exact[m * N + n] = e + bias[n];
      }
    }
    assert.ok(maxRelDiff(out, ref) < 1e-6, `kernel vs reference ${maxRelDiff(out, ref)}`);
    let errSq = 0, refSq = 0;
    for (let i = 0; i < M * N; i++) {
      errSq += (ref[i] - exact[i]) ** 2;
      refSq += exact[i] ** 2;
    }
    const rel = Math.sqrt(errSq / refSq);
    assert.ok(rel < (calib < xAmax ? 0.6 : 0.2), `NVFP4 W4A4 vs the float product: ${rel}`);
  }
});

test("QuantConfig NVFP4: one scale per 16 (another groupSize is refused, naming it), symmetric only", () => {
  const qc = QuantConfig.from({ quantAlgo: "NVFP4" });
  assert.deepEqual(qc.layerQuant("model.layers.0.mlp.down_proj"), { algo: "NVFP4", bits: 4, groupSize: 16, hasZeroPoint: false });
  assert.throws(
    () => QuantConfig.from({ quantAlgo: "NVFP4", groupSize: 32 }).layerQuant("model.layers.0.mlp.down_proj"),
    (e: unknown) => e instanceof ValidationError && e.field === "QuantConfig.groupSize" && /16/.test(e.message),
  );
  assert.throws(
    () => QuantConfig.from({ quantAlgo: "NVFP4", hasZeroPoint: true }).layerQuant("model.layers.0.mlp.down_proj"),
    (e: unknown) => e instanceof ValidationError && e.field === "QuantConfig.hasZeroPoint",
  );
});

test("kjv-llama NVFP4 (W4A4): held-out perplexity within 15% of float32", async () => {
  await checkPerplexity({ quantAlgo: "NVFP4" }, 0.15);
}, 300_000);

test("kjv-llama NVFP4 engines: e2m1 bytes [N, K/2] + e4m3 block scales [N, K/16] + global scales, save/load round trip; the CUDA build takes it (a storage format there: no FP4 tensor cores on the H200)", () => {
  const q = quantizeSync(AutoModelForCausalLM.fromHuggingFace(kjv), { quantAlgo: "NVFP4" });
  // q/k/v (fused) share one global weight scale.
  const gs = ["q", "k", "v"].map((p) => q.quantizedTensor(`model.layers.0.self_attn.${p}_proj.weight`)!.globalScale);
  assert.ok(gs[0]! > 0 && gs.every((g) => g === gs[0]), `fused q/k/v global scales ${gs}`);
  checkEngine(q, (f, N, K) => {
    assert.equal(f.format, "nvfp4");
    assert.equal(f.groupSize, 16);
    assert.equal(f.activation, "dynamic_per_block");
    assert.ok(f.activationScale! > 0 && f.globalScale! > 0);
    return (N * K) / 2;
  });
  assert.match(NVFP4_BUILD_NOTE, /H200 \(Hopper\) has no FP4 tensor cores/);
});
