// The fast FP8 row encoders (lib/util/e4m3.ts: e4m3EncodeDiv, e4m3EncodeMulF32) against the scalar
// codec e4m3Encode bit for bit — float32 inputs over all 2^32 bit patterns at a stride plus every
// e4m3 midpoint and value ± a few ulps, float64 quotients the same way — and quantizeFp8 /
// quantizeFp8Block byte-equal to a per-element reference that calls e4m3Encode; the pool's row-block
// tasks (FP8, FP8 block, RTN) and quantize({ threads }) byte-equal on 1, 2 and 3 threads.
import process from "node:process";
import { E4M3_DECODE, E4M3_MAX, e4m3Encode, e4m3EncodeDiv, e4m3EncodeMulF32 } from "../lib/util/e4m3.ts";
import { absMax, fp8Scale, quantizeFp8 } from "../lib/quantization/fp8.ts";
import { quantizeFp8Block } from "../lib/quantization/fp8_block.ts";
import { quantizeRtn, quantValue, roundHalfUp } from "../lib/quantization/algorithms.ts";
import { QuantPool } from "../lib/quantization/pool.ts";
import { quantizeSync } from "../lib/quantization/quantize.ts";
import { type QuantizedTensor, unpackRow } from "../lib/quantization/packed.ts";
import { AutoModelForCausalLM } from "../lib/models/llama.ts";
import { assert, test } from "./harness.ts";
import { kjv } from "./kjv_perplexity.ts";

/** The non-negative finite e4m3 values, ascending. */
const VALUES = Array.from(E4M3_DECODE).filter((v) => Number.isFinite(v) && v >= 0).sort((a, b) => a - b);

/** Checks both encoders on float32 bit patterns (factor 1 / divisor 1: the value itself). */
function checkF32(bits: Uint32Array, n: number, what: string): void {
  const src = new Float32Array(bits.buffer, 0, n), a = new Uint8Array(n), b = new Uint8Array(n);
  e4m3EncodeMulF32(src, 0, n, 1, a, 0);
  e4m3EncodeDiv(src, 0, n, 1, b, 0);
  for (let i = 0; i < n; i++) {
    const want = e4m3Encode(src[i]);
    if (a[i] !== want || b[i] !== want) {
      assert.fail(
        `${what}: bits 0x${bits[i].toString(16)} (${src[i]}): e4m3Encode 0x${want.toString(16)}, MulF32 0x${a[i].toString(16)}, Div 0x${b[i].toString(16)}`,
      );
    }
  }
}

// LLMRT_E4M3_EXHAUSTIVE=1: every one of the 2^32 patterns (about 70 s under Bun; run for this change, passed).
const EXHAUSTIVE = typeof process !== "undefined" && process.env.LLMRT_E4M3_EXHAUSTIVE === "1";

test(`e4m3 row encoders: every float32 bit pattern at stride ${EXHAUSTIVE ? 1 : 251} (NaNs, infinities, subnormals) equals e4m3Encode`, () => {
  const STRIDE = EXHAUSTIVE ? 1 : 251, CH = 1 << 16, bits = new Uint32Array(CH);
  for (let base = 0; base < 2 ** 32; base += STRIDE * CH) {
    let n = 0;
    for (; n < CH && base + n * STRIDE < 2 ** 32; n++) bits[n] = base + n * STRIDE;
    checkF32(bits, n, "stride sweep");
  }
}, EXHAUSTIVE ? 900_000 : 60_000);

test("e4m3 row encoders: float32 at every e4m3 value and midpoint (ties), ±8 ulps, both signs, and the range ends", () => {
  const xs: number[] = [];
  const box = new Float32Array(1), w = new Uint32Array(box.buffer);
  const points = [...VALUES, ...VALUES.slice(1).map((v, i) => (v + VALUES[i]) / 2), 464, 480, E4M3_MAX * 2, 2 ** -6, 2 ** -10, 2 ** -149];
  for (const p of points) {
    box[0] = p;
    const c = w[0];
    for (let d = -8; d <= 8; d++) if (c + d >= 0) xs.push(c + d, (c + d) | 0x80000000);
  }
  xs.push(0x7f800000, 0xff800000, 0x7fc00000, 0xffc00001, 0x7f800001);
  checkF32(Uint32Array.from(xs, (x) => x >>> 0), xs.length, "ties and boundaries");
});

test("e4m3EncodeDiv: float64 quotients at ties ± a few ulps (low-word sticky bits) and random values equal e4m3Encode(x / d)", () => {
  const xs: number[] = [];
  const box = new Float64Array(1), w = new Uint32Array(box.buffer);
  for (const p of [...VALUES, ...VALUES.slice(1).map((v, i) => (v + VALUES[i]) / 2), 464, 2 ** -6]) {
    for (const d of [-3, -2, -1, 0, 1, 2, 3]) {
      box[0] = p;
      const lo = w[0] + d, carry = lo < 0 ? -1 : lo >= 2 ** 32 ? 1 : 0; // step by d ulps across the word boundary
      w[0] = lo >>> 0;
      w[1] += carry;
      if (box[0] >= 0) xs.push(box[0], -box[0]);
    }
  }
  let s = 12345;
  const r = (): number => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 4294967296;
  for (let i = 0; i < 200_000; i++) xs.push((r() - 0.5) * 2 ** (Math.floor(r() * 30) - 15) * (1 + r() * 1e-12));
  xs.push(0, -0, Infinity, -Infinity, NaN, 1e300, -5e-324);
  const src = Float64Array.from(xs), out = new Uint8Array(src.length);
  for (const div of [1, 0.75, 3.0000001, fp8Scale(0.37)]) {
    e4m3EncodeDiv(src, 0, src.length, div, out, 0);
    for (let i = 0; i < src.length; i++) {
      const want = e4m3Encode(src[i] / div);
      if (out[i] !== want) assert.fail(`e4m3EncodeDiv(${src[i]} / ${div}) = 0x${out[i].toString(16)}, e4m3Encode 0x${want.toString(16)}`);
    }
  }
});

/** W [N, K] of float32 values with zeros, tiny values (subnormal codes) and one large outlier per row. */
function weights(N: number, K: number): Float64Array {
  let s = 99;
  const r = (): number => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 4294967296 - 0.5;
  const W = new Float64Array(N * K);
  for (let i = 0; i < W.length; i++) W[i] = Math.fround(i % 17 === 0 ? 0 : i % 29 === 0 ? r() * 1e-6 : r() * 0.1);
  for (let n = 0; n < N; n++) W[n * K + (n * 7) % K] = Math.fround(3 * (n % 2 ? 1 : -1));
  return W;
}

test("quantizeFp8 (FP8, FP8_PER_CHANNEL_PER_TOKEN) and quantizeFp8Block: the same bytes and scales as the per-element e4m3Encode reference", () => {
  const N = 300, K = 260, W = weights(N, K);
  for (const algo of ["FP8", "FP8_PER_CHANNEL_PER_TOKEN"] as const) {
    const t = quantizeFp8(W, N, K, algo, 2.5, algo === "FP8" ? 3.5 : undefined);
    for (let n = 0; n < N; n++) {
      let m = 0;
      for (let k = 0; k < K; k++) m = Math.max(m, Math.abs(W[n * K + k]));
      const s = algo === "FP8" ? fp8Scale(3.5) : fp8Scale(m);
      assert.equal(t.scales[n], s, `${algo} scale of row ${n}`);
      for (let k = 0; k < K; k++) {
        if (t.packed[n * K + k] !== e4m3Encode(W[n * K + k] / s)) assert.fail(`${algo} byte [${n}, ${k}]`);
      }
    }
  }
  const { tensor, blockScales } = quantizeFp8Block(W, N, K, [128, 128]);
  for (let i = 0; i < Math.ceil(N / 128); i++) {
    for (let j = 0; j < Math.ceil(K / 128); j++) {
      let amax = 0;
      for (let n = i * 128; n < Math.min(N, i * 128 + 128); n++) {
        for (let k = j * 128; k < Math.min(K, j * 128 + 128); k++) amax = Math.max(amax, Math.abs(W[n * K + k]));
      }
      const m = Math.fround(E4M3_MAX / amax);
      assert.equal(blockScales[i * Math.ceil(K / 128) + j], Math.fround(1 / m), `block scale [${i}, ${j}]`);
      for (let n = i * 128; n < Math.min(N, i * 128 + 128); n++) {
        for (let k = j * 128; k < Math.min(K, j * 128 + 128); k++) {
          if (tensor.packed[n * K + k] !== e4m3Encode(Math.fround(W[n * K + k] * m))) assert.fail(`block byte [${n}, ${k}]`);
        }
      }
    }
  }
});

/** packed, scales and the scalar fields of a tensor, for byte-equality. */
const parts = (t: QuantizedTensor): unknown[] => [t.packed, t.scales, t.zeros, t.activationScale, t.weightScale, t.groupSize, t.blockRows];

test("quantizeFp8 / quantizeFp8Block / quantizeRtn over a QuantPool of 2 and 3 threads (W in shared memory): the serial bytes", () => {
  const N = 700, K = 300, W = weights(N, K), shared = new Float64Array(new SharedArrayBuffer(8 * W.length));
  shared.set(W);
  const w8 = { bits: 8, groupSize: K, hasZeroPoint: false } as const, w4 = { bits: 4, groupSize: 100, hasZeroPoint: true } as const;
  const names = ["FP8", "FP8_PER_CHANNEL_PER_TOKEN", "FP8_BLOCK_SCALES", "W8A16", "W4A16 g100 asym"];
  const serial = [
    quantizeFp8(W, N, K, "FP8", 1, 2),
    quantizeFp8(W, N, K, "FP8_PER_CHANNEL_PER_TOKEN"),
    quantizeFp8Block(W, N, K).tensor,
    quantizeRtn(W, N, K, w8),
    quantizeRtn(W, N, K, w4),
  ];
  for (const threads of [2, 3]) {
    using pool = QuantPool.create(threads);
    const par = [
      quantizeFp8(shared, N, K, "FP8", 1, 2, pool),
      quantizeFp8(shared, N, K, "FP8_PER_CHANNEL_PER_TOKEN", undefined, undefined, pool),
      quantizeFp8Block(shared, N, K, undefined, pool).tensor,
      quantizeRtn(shared, N, K, w8, undefined, pool),
      quantizeRtn(shared, N, K, w4, undefined, pool),
    ];
    for (let i = 0; i < serial.length; i++) {
      assert.deepEqual(parts(par[i]), parts(serial[i]), `${names[i]} on ${threads} threads`);
      assert.ok(!(par[i].packed.buffer instanceof SharedArrayBuffer), "results live in ordinary memory");
    }
  }
});

test("quantize({ threads }): kjv-llama FP8, FP8_PER_CHANNEL_PER_TOKEN, FP8_BLOCK_SCALES, W8A16, W4A16 engines are byte-equal on 1, 2 and 3 threads", () => {
  const model = AutoModelForCausalLM.fromHuggingFace(kjv);
  try {
    const modules = ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"];
    for (const quantAlgo of ["FP8", "FP8_PER_CHANNEL_PER_TOKEN", "FP8_BLOCK_SCALES", "W8A16", "W4A16"] as const) {
      const opts = { maxCalibrationTokens: 128 };
      const [one, two, three] = [1, 2, 3].map((threads) => quantizeSync(model, { quantAlgo }, { ...opts, threads }));
      for (let l = 0; l < model.config.numHiddenLayers; l++) {
        for (const m of modules) {
          const name = `model.layers.${l}.${m}.weight`, p = one.quantizedTensor(name)!;
          assert.ok(p, `${quantAlgo} ${name} quantized`);
          assert.deepEqual(parts(two.quantizedTensor(name)!), parts(p), `${quantAlgo} ${name}, 2 threads`);
          assert.deepEqual(parts(three.quantizedTensor(name)!), parts(p), `${quantAlgo} ${name}, 3 threads`);
        }
      }
    }
  } finally {
    model.close();
  }
}, 120_000);

test("absMax: max |w| of a range, NaN when one value is NaN (as Math.max), 0 for an empty range or zeros", () => {
  const w = [0.5, -3, 2, Infinity, -Infinity, NaN, -0];
  assert.equal(absMax(w, 0, 3), 3);
  assert.equal(absMax(w, 1, 0), 0);
  assert.equal(absMax(w, 3, 2), Infinity);
  assert.ok(Number.isNaN(absMax(w, 0, 7)));
  assert.ok(Object.is(absMax([-0, 0], 0, 2), 0));
});

test("quantizeRtn: the same integers as quantValue (Math.round) at ties k + ½ of both signs, near ties and random values", () => {
  const K = 64, N = 40, W = new Float64Array(N * K);
  let s = 5;
  const r = (): number => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 4294967296 - 0.5;
  for (let i = 0; i < W.length; i++) {
    const k = Math.floor(r() * 16), kind = i % 4; // steps of 2^-6: w / scale lands on, beside and between half-integers
    W[i] = kind === 0 ? (k + 0.5) / 64 : kind === 1 ? (k + 0.5) / 64 * (1 + 2 ** -52) : kind === 2 ? -(k + 0.5) / 64 : r() * 0.25;
  }
  for (let n = 0; n < N; n++) W[n * K] = 0.125 * (n % 2 ? 1 : -1); // a fixed range: scale 2^-6 for int4 symmetric, so w / scale are the ties
  for (const grid of [{ bits: 4, groupSize: 32, hasZeroPoint: false }, { bits: 8, groupSize: K, hasZeroPoint: true }] as const) {
    const t = quantizeRtn(W, N, K, grid), ng = K / grid.groupSize, maxq = (1 << grid.bits) - 1;
    const q = new Uint8Array(K);
    for (let n = 0; n < N; n++) {
      unpackRow(t, n, q);
      for (let k = 0; k < K; k++) {
        const g = n * ng + Math.floor(k / grid.groupSize), z = grid.hasZeroPoint ? t.zeros![g] : 1 << (grid.bits - 1);
        const want = quantValue(W[n * K + k], t.scales[g], z, maxq);
        if (q[k] !== want) assert.fail(`bits ${grid.bits} [${n}, ${k}] w ${W[n * K + k]} scale ${t.scales[g]}: ${q[k]}, quantValue ${want}`);
      }
    }
  }
});

test("roundHalfUp equals Math.round at halves, beside halves (±4 ulps), near 2^52 / 2^53, infinities, NaN and 1M random values", () => {
  const xs = [0.49999999999999994, -0.49999999999999994, 2 ** 52 + 1, 2 ** 52 - 0.5, -(2 ** 52) - 1, 2 ** 53 + 2, 4503599627370495.5, -4503599627370495.5];
  xs.push(1e300, -1e300, Infinity, -Infinity, NaN, 5e-324, -5e-324, 0, -0);
  const box = new Float64Array(1), w = new Uint32Array(box.buffer);
  for (let k = -60; k < 60; k++) {
    for (const x of [k + 0.5, k, 0.5 * 2 ** k, 0.75 * 2 ** k]) {
      for (let d = -4; d <= 4; d++) {
        box[0] = x;
        w[0] = (w[0] + d) >>> 0;
        xs.push(box[0], -box[0]);
      }
    }
  }
  let s = 3;
  const r = (): number => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 4294967296 - 0.5;
  for (let i = 0; i < 1_000_000; i++) xs.push(r() * 2 ** Math.floor(r() * 120));
  for (const x of xs) {
    const want = Math.round(x), got = roundHalfUp(x);
    const same = Object.is(got, want) || (x >= -0.5 && x <= 0 && got === 0 && want === 0); // +0 where Math.round gives −0
    if (!same) assert.fail(`roundHalfUp(${x}) = ${got}, Math.round ${want}`);
  }
});
