import { assert, test } from "./harness.ts";
import { parsePretrainedConfig, type RopeScaling } from "../lib/models/config.ts";
import { applyRotaryHalf, computeRopeInvFreq, type RopeConfig, ropeCosSin } from "../lib/models/rope.ts";
import { ValidationError } from "../lib/util/errors.ts";

function rope(headDim: number, ropeTheta: number, ropeScaling: RopeScaling | null = null, maxPositionEmbeddings = 2048): RopeConfig {
  return { headDim, ropeTheta, ropeScaling, maxPositionEmbeddings };
}

/** Max relative error between two equal-length arrays, reported in the failure message. */
function assertClose(got: ArrayLike<number>, want: ArrayLike<number>, relTol: number, what: string): void {
  assert.equal(got.length, want.length, `${what}: length`);
  let worst = 0;
  let at = -1;
  for (let i = 0; i < want.length; i++) {
    const rel = Math.abs(got[i] - want[i]) / Math.max(Math.abs(want[i]), 1e-300);
    if (rel > worst) [worst, at] = [rel, i];
  }
  assert.ok(worst <= relTol, `${what}: max rel error ${worst.toExponential(2)} at [${at}] (got ${got[at]}, want ${want[at]}), tol ${relTol}`);
}

test("rope default: hand-computed values (headDim 8, theta 10000 → 1, 0.1, 0.01, 0.001)", () => {
  const { invFreq, attentionScaling } = computeRopeInvFreq(rope(8, 10000));
  assertClose(invFreq, [1, 0.1, 0.01, 0.001], 1e-15, "invFreq");
  assert.equal(attentionScaling, 1);
  // headDim 4, theta 1e6: 1e6^0 = 1, 1e6^(-2/4) = 1e-3
  assertClose(computeRopeInvFreq(rope(4, 1e6)).invFreq, [1, 1e-3], 1e-15, "theta 1e6");
});

test("rope default: stories260k config (headDim 8) and a 128-dim head", () => {
  const cfg = parsePretrainedConfig({
    model_type: "llama",
    vocab_size: 512,
    hidden_size: 64,
    intermediate_size: 172,
    num_hidden_layers: 5,
    num_attention_heads: 8,
    num_key_value_heads: 4,
    max_position_embeddings: 512,
  });
  assertClose(computeRopeInvFreq(cfg).invFreq, [1, 0.1, 0.01, 0.001], 1e-15, "stories260k");
  const inv = computeRopeInvFreq(rope(128, 10000)).invFreq;
  assert.equal(inv.length, 64);
  assert.equal(inv[0], 1);
  // inv[32] = 10000^(-64/128) = 0.01 ; inv[63] = 10000^(-126/128)
  assertClose([inv[32], inv[63]], [0.01, Math.pow(10, -4 * 126 / 128)], 1e-14, "128-dim");
});

test("rope linear: default divided by factor", () => {
  const base = computeRopeInvFreq(rope(8, 10000)).invFreq;
  const { invFreq, attentionScaling } = computeRopeInvFreq(rope(8, 10000, { type: "linear", factor: 4 }));
  assertClose(invFreq, [0.25, 0.025, 0.0025, 0.00025], 1e-15, "linear");
  assertClose(invFreq, base.map((v) => v / 4), 1e-15, "linear vs default");
  assert.equal(attentionScaling, 1);
});

test("rope dynamic NTK: unchanged up to maxPositionEmbeddings, rescaled base beyond it", () => {
  const cfg = rope(8, 10000, { type: "dynamic", factor: 2 }, 1024);
  const plain = computeRopeInvFreq(rope(8, 10000)).invFreq;
  assertClose(computeRopeInvFreq(cfg).invFreq, plain, 1e-15, "no seqLen");
  assertClose(computeRopeInvFreq(cfg, 100).invFreq, plain, 1e-15, "below");
  assertClose(computeRopeInvFreq(cfg, 1024).invFreq, plain, 1e-15, "at the threshold");
  // seqLen 2048 = 2 × maxPos, factor 2: base = 1e4 · (2·2 − 1)^(8/6) = 1e4 · 3^(4/3)
  const base = 1e4 * 3 ** (4 / 3);
  const above = computeRopeInvFreq(cfg, 2048).invFreq;
  assertClose(above, [1, base ** -0.25, base ** -0.5, base ** -0.75], 1e-14, "above");
  assert.ok(above[3] < plain[3], "a larger base lowers frequencies");
});

/**
 * Llama 3.1 frequency scaling, written from Meta's reference `apply_scaling` (llama-models):
 * short wavelengths kept, long ones divided by the factor, the band between blended.
 */
function llama3Reference(freqs: number[], scale: number, lowFactor: number, highFactor: number, oldContext: number): number[] {
  const lowFreqWavelen = oldContext / lowFactor;
  const highFreqWavelen = oldContext / highFactor;
  return freqs.map((freq) => {
    const wavelen = (2 * Math.PI) / freq;
    if (wavelen < highFreqWavelen) return freq;
    if (wavelen > lowFreqWavelen) return freq / scale;
    const smooth = (oldContext / wavelen - lowFactor) / (highFactor - lowFactor);
    return (1 - smooth) * (freq / scale) + smooth * freq;
  });
}

test("rope llama3: Llama-3.2-1B scaling against an independent re-implementation", () => {
  const cfg = parsePretrainedConfig({
    model_type: "llama",
    vocab_size: 128256,
    hidden_size: 2048,
    intermediate_size: 8192,
    num_hidden_layers: 16,
    num_attention_heads: 32,
    num_key_value_heads: 8,
    head_dim: 64,
    max_position_embeddings: 131072,
    rope_theta: 500000.0,
    rope_scaling: { factor: 32.0, high_freq_factor: 4.0, low_freq_factor: 1.0, original_max_position_embeddings: 8192, rope_type: "llama3" },
  });
  const { invFreq, attentionScaling } = computeRopeInvFreq(cfg);
  assert.equal(invFreq.length, 32);
  assert.equal(attentionScaling, 1);
  const plain = Array.from({ length: 32 }, (_, i) => 1 / 500000 ** ((2 * i) / 64));
  const want = llama3Reference(plain, 32, 1, 4, 8192);
  assertClose(invFreq, want, 1e-14, "llama3");
  // all three bands are exercised: kept (wavelen < 2048), divided (wavelen > 8192), blended between
  const wavelens = plain.map((f) => (2 * Math.PI) / f);
  const kept = wavelens.filter((w) => w < 2048).length;
  const divided = wavelens.filter((w) => w > 8192).length;
  assert.ok(kept > 0 && divided > 0 && kept + divided < 32, `bands: kept ${kept}, divided ${divided}`);
  assert.equal(invFreq[0], 1);
  assertClose([invFreq[31]], [plain[31] / 32], 1e-14, "lowest frequency divided by 32");
  for (let i = 0; i < 32; i++) {
    if (wavelens[i] >= 2048 && wavelens[i] <= 8192) {
      assert.ok(invFreq[i] < plain[i] && invFreq[i] > plain[i] / 32, `blended [${i}] lies between the two`);
    }
  }
});

test("rope yarn: Qwen long-context recipe (factor 4 over 32768, theta 1e6, headDim 128)", () => {
  const cfg = rope(128, 1e6, { type: "yarn", factor: 4, originalMaxPositionEmbeddings: 32768, betaFast: 32, betaSlow: 1, truncate: true }, 40960);
  const { invFreq, attentionScaling } = computeRopeInvFreq(cfg);
  assertClose([attentionScaling], [0.1 * Math.log(4) + 1], 1e-15, "mscale");
  // correction dims: 128·ln(32768/(32·2π))/(2·ln 1e6) ≈ 23.6 → 23 ; 128·ln(32768/(2π))/(2·ln 1e6) ≈ 39.7 → 40
  const low = 23;
  const high = 40;
  for (let i = 0; i < 64; i++) {
    const extrap = 1 / 1e6 ** ((2 * i) / 128);
    const ramp = Math.min(1, Math.max(0, (i - low) / (high - low)));
    const want = extrap * (1 - ramp) + (extrap / 4) * ramp;
    assertClose([invFreq[i]], [want], 1e-13, `yarn[${i}]`);
  }
  const explicit = computeRopeInvFreq({ ...cfg, ropeScaling: { ...cfg.ropeScaling!, attentionFactor: 1.5 } });
  assert.equal(explicit.attentionScaling, 1.5);
  const deepseek = computeRopeInvFreq({ ...cfg, ropeScaling: { ...cfg.ropeScaling!, mscale: 0.707, mscaleAllDim: 0.707 } });
  assert.equal(deepseek.attentionScaling, 1);
});

test("rope: cos/sin and rotate_half application (pairs i and i + headDim/2)", () => {
  const { invFreq } = computeRopeInvFreq(rope(8, 10000));
  const pos = 3;
  const { cos, sin } = ropeCosSin(invFreq, pos);
  assertClose(cos, [Math.cos(3), Math.cos(0.3), Math.cos(0.03), Math.cos(0.003)], 1e-15, "cos");
  assertClose(sin, [Math.sin(3), Math.sin(0.3), Math.sin(0.03), Math.sin(0.003)], 1e-15, "sin");
  // unit vector on index 1 rotates into index 1 + 4 by angle 0.3
  const x = new Float64Array(8);
  x[1] = 1;
  applyRotaryHalf(x, cos, sin);
  assertClose([x[1], x[5]], [Math.cos(0.3), Math.sin(0.3)], 1e-15, "e1 rotated");
  assert.ok([x[0], x[2], x[3], x[4], x[6], x[7]].every((v) => v === 0), `other lanes untouched: ${x}`);
  // scaled cos/sin
  const scaled = ropeCosSin(invFreq, pos, 2);
  assertClose(scaled.cos, cos.map((c) => 2 * c), 1e-15, "scaled cos");
});

test("rope: q·k after rotation depends only on the relative position", () => {
  const { invFreq } = computeRopeInvFreq(rope(16, 10000));
  const q = Float64Array.from({ length: 16 }, (_, i) => Math.sin(i + 1));
  const k = Float64Array.from({ length: 16 }, (_, i) => Math.cos(2 * i + 0.5));
  const dotAt = (m: number, n: number): number => {
    const qm = q.slice();
    const kn = k.slice();
    const a = ropeCosSin(invFreq, m);
    const b = ropeCosSin(invFreq, n);
    applyRotaryHalf(qm, a.cos, a.sin);
    applyRotaryHalf(kn, b.cos, b.sin);
    return qm.reduce((s, v, i) => s + v * kn[i], 0);
  };
  assertClose([dotAt(10, 7)], [dotAt(103, 100)], 1e-12, "relative");
  assert.ok(Math.abs(dotAt(10, 7) - dotAt(10, 2)) > 1e-6, "and it does change with the offset");
});

test("rope: bad inputs are ValidationErrors", () => {
  assert.throws(
    () => computeRopeInvFreq(rope(7, 10000)),
    (e: unknown) => e instanceof ValidationError && /headDim must be a positive even integer, got 7/.test(e.message),
  );
  const { cos, sin } = ropeCosSin(new Float64Array(4), 1);
  assert.throws(() => applyRotaryHalf(new Float32Array(6), cos, sin), /head has 6 elements/);
});
