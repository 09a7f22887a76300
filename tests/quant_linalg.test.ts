// The cache-friendly kernels of calibration-based quantization (lib/quantization/linalg.ts) and the
// blocked GPTQ / row-blocked AWQ search against straightforward references: the blocked Gram
// matrix equals the token-by-token sum, the reverse Cholesky route gives H⁻¹'s upper factor, GPTQ
// with lazy batch updates gives the same bytes as the column-at-a-time algorithm, and AWQ's scores
// pick the same scales as fake-quantizing all of W and scoring it in one pass; a worker pool gives
// the serial bits (kernels, and quantize() end to end on kjv-llama).
import { AutoModelForCausalLM } from "../lib/models/llama.ts";
import { groupParams, type IntGrid, quantValue } from "../lib/quantization/algorithms.ts";
import { awqSearchScale, awqSearchScales } from "../lib/quantization/awq.ts";
import { gptqFactor, quantizeGptq } from "../lib/quantization/gptq.ts";
import { lowerDots, transposeRows } from "../lib/quantization/linalg.ts";
import { QuantPool } from "../lib/quantization/pool.ts";
import { quantizeSync } from "../lib/quantization/quantize.ts";
import { serialRunner } from "../lib/quantization/tasks.ts";
import { assert, test } from "./harness.ts";

const kjv = new URL("../models/kjv-llama/", import.meta.url).pathname;

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 4294967296 - 0.5;
  };
}

/** T activation rows [T, K] with correlated columns and a few large channels. */
function activations(T: number, K: number, seed: number): Float32Array {
  const r = rng(seed), X = new Float32Array(T * K), mix = Array.from({ length: 6 }, () => Float64Array.from({ length: K }, r));
  for (let t = 0; t < T; t++) {
    const z = mix.map(() => r());
    for (let k = 0; k < K; k++) {
      let v = 0.3 * r();
      for (let j = 0; j < z.length; j++) v += z[j] * mix[j][k];
      X[t * K + k] = v * (k % 11 === 0 ? 6 : 1);
    }
  }
  return X;
}

/** The full symmetric Σ x xᵀ / T, token by token. */
function naiveHessian(X: Float32Array, T: number, K: number): Float64Array {
  const H = new Float64Array(K * K);
  for (let t = 0; t < T; t++) for (let i = 0; i < K; i++) for (let j = 0; j < K; j++) H[i * K + j] += X[t * K + i] * X[t * K + j];
  return H.map((v) => v / T);
}

/** H += the lower triangle of Σ x xᵀ over the rows of x (as calibration's statistics accumulate it). */
function gramLower(H: Float64Array, x: Float32Array, T: number, K: number): void {
  const xt = new Float64Array(K * T);
  transposeRows(x, T, K, xt);
  lowerDots(xt, T, 0, T, 0, K, 0, H, K, 1);
}

test("lowerDots: the blocked Gram lower triangle equals the token-by-token sum (K not a multiple of 4, two calls)", () => {
  const K = 37, T = 13, X = activations(2 * T, K, 1);
  const H = new Float64Array(K * K);
  gramLower(H, X.subarray(0, T * K), T, K);
  gramLower(H, X.subarray(T * K), T, K);
  const ref = naiveHessian(X, 2 * T, K);
  for (let i = 0; i < K; i++) {
    for (let j = 0; j < K; j++) {
      const want = j <= i ? ref[i * K + j] * 2 * T : 0;
      assert.ok(Math.abs(H[i * K + j] - want) <= 1e-12 * (1 + Math.abs(want)), `H[${i}, ${j}] = ${H[i * K + j]}, want ${want}`);
    }
  }
});

test("gptqFactor: U upper with a positive diagonal and Uᵀ U (H + damping) = I (blocked over 64 columns); not positive definite is refused", () => {
  for (const K of [1, 6, 45, 100]) {
    const H = naiveHessian(activations(3 * K + 8, K, K), 3 * K + 8, K);
    let mean = 0;
    for (let k = 0; k < K; k++) mean += H[k * K + k] / K;
    const { U } = gptqFactor(H, K, 0.01);
    let worst = 0;
    for (let i = 0; i < K; i++) {
      assert.ok(U[i * K + i] > 0);
      for (let j = 0; j < i; j++) assert.equal(U[i * K + j], 0);
      for (let j = 0; j < K; j++) { // (Uᵀ U (H + λI))[i, j]
        let s = 0;
        for (let p = 0; p < K; p++) {
          let uu = 0;
          for (let m = 0; m <= Math.min(i, p); m++) uu += U[m * K + i] * U[m * K + p];
          s += uu * (H[p * K + j] + (p === j ? 0.01 * mean : 0));
        }
        worst = Math.max(worst, Math.abs(s - (i === j ? 1 : 0)));
      }
    }
    assert.ok(worst < 1e-8, `K ${K}: |Uᵀ U H − I| = ${worst}`);
  }
  assert.throws(() => gptqFactor(Float64Array.from([1, 2, 2, 1]), 2, 0), /not positive definite/);
});

/** GPTQ one column at a time on the same factor (the published algorithm without lazy batches). */
function referenceGptq(W0: Float64Array, N: number, K: number, grid: IntGrid, U: Float64Array): { q: Uint8Array; scales: Float64Array; zeros: Uint8Array } {
  const W = W0.slice(), G = grid.groupSize, ng = K / G, maxq = (1 << grid.bits) - 1;
  const q = new Uint8Array(N * K), scales = new Float64Array(N * ng), zeros = new Uint8Array(N * ng), err = new Float64Array(N);
  for (let i = 0; i < K; i++) {
    const g = (i / G) | 0;
    if (i % G === 0) {
      for (let n = 0; n < N; n++) ({ scale: scales[n * ng + g], zero: zeros[n * ng + g] } = groupParams(W, n * K + i, G, grid));
    }
    for (let n = 0; n < N; n++) {
      const w = W[n * K + i], s = scales[n * ng + g], z = zeros[n * ng + g];
      q[n * K + i] = quantValue(w, s, z, maxq);
      err[n] = (w - (q[n * K + i] - z) * s) / U[i * K + i];
    }
    for (let j = i + 1; j < K; j++) for (let n = 0; n < N; n++) W[n * K + j] -= err[n] * U[i * K + j];
  }
  return { q, scales, zeros };
}

test("GPTQ in blocks of 128 columns (lazy batch updates) gives the bytes of the column-at-a-time algorithm (g32, g64, g96, per-channel)", () => {
  const N = 12, K = 384, X = activations(600, K, 3), H = naiveHessian(X, 600, K);
  const r = rng(9), W = Float64Array.from({ length: N * K }, () => 0.05 * r());
  const f = gptqFactor(H, K);
  for (const [groupSize, hasZeroPoint] of [[32, false], [64, true], [96, true], [K, false]] as const) {
    const grid: IntGrid = { bits: 4, groupSize, hasZeroPoint };
    const got = quantizeGptq(W.slice(), N, K, grid, f);
    const ref = referenceGptq(W, N, K, grid, f.U);
    const unpacked = new Uint8Array(N * K);
    for (let i = 0; i < N * K; i++) unpacked[i] = (got.packed[i >> 1] >> ((i & 1) * 4)) & 15;
    assert.deepEqual(unpacked, ref.q, `g${groupSize}: quantized values`);
    assert.deepEqual(Array.from(got.scales), Array.from(ref.scales), `g${groupSize}: scales`);
    if (hasZeroPoint) assert.deepEqual(got.zeros, ref.zeros, `g${groupSize}: zeros`);
    // The Hessian itself (factored inside) gives the same result as the shared factor.
    assert.deepEqual(quantizeGptq(W.slice(), N, K, grid, H).packed, got.packed);
  }
});

test("AWQ: the row-blocked search in chunks of 512 rows picks the scales of the one-pass reference (all rows, and 7 rows scored)", () => {
  const N = 1100, K = 64, T = 40, X = Float64Array.from(activations(T, K, 5));
  const absMean = new Float64Array(K), r = rng(11);
  for (let t = 0; t < T; t++) for (let k = 0; k < K; k++) absMean[k] += Math.abs(X[t * K + k]) / T;
  const W = Float64Array.from({ length: N * K }, () => 0.05 * r());
  const sample = { absMean, sqMean: absMean, rows: X, numRows: T };
  const grid: IntGrid = { bits: 4, groupSize: 32, hasZeroPoint: true };
  for (const maxRows of [Infinity, 7]) {
    const got = awqSearchScale(W, N, K, grid, sample, 10, maxRows);
    // Reference: every candidate fake-quantizes the scored rows of W at once, then scores X Δᵀ.
    const stride = Math.max(1, Math.ceil(N / maxRows)), R = Math.ceil(N / stride);
    let best: Float64Array | null = null, bestErr = Infinity;
    for (let i = 0; i < 10; i++) {
      const s = absMean.map((v) => Math.max(v, 1e-4) ** (i / 10));
      const norm = Math.sqrt(Math.max(...s) * Math.min(...s));
      for (let k = 0; k < K; k++) s[k] /= norm;
      let err = 0;
      for (let n = 0; n < R; n++) {
        const row = W.subarray(n * stride * K, n * stride * K + K), sc = row.map((v, k) => v * s[k]), delta = new Float64Array(K);
        for (let g = 0; g < K; g += 32) {
          const { scale, zero } = groupParams(sc, g, 32, grid);
          for (let k = g; k < g + 32; k++) delta[k] = ((quantValue(sc[k], scale, zero, 15) - zero) * scale) / s[k] - row[k];
        }
        for (let t = 0; t < T; t++) {
          let d = 0;
          for (let k = 0; k < K; k++) d += X[t * K + k] * delta[k];
          err += d * d;
        }
      }
      if (err < bestErr) [best, bestErr] = [s, err];
    }
    assert.deepEqual(Array.from(got), Array.from(best!), `maxScoredRows ${maxRows}`);
    assert.notDeepEqual(Array.from(got), Array.from(new Float64Array(K).fill(1)), "the search moved off s = 1 (salient channels)");
  }
});

test("QuantPool (3 threads): GPTQ's factor and rows and AWQ's searches give the serial runner's bits", () => {
  using pool = QuantPool.create(3);
  const N = 40, K = 200, H = naiveHessian(activations(500, K, 4), 500, K);
  const serialF = gptqFactor(H, K, 0.01, serialRunner), poolF = gptqFactor(H, K, 0.01, pool);
  assert.deepEqual(Array.from(poolF.U), Array.from(serialF.U));
  const r = rng(2), W = Float64Array.from({ length: N * K }, () => 0.05 * r());
  const grid: IntGrid = { bits: 4, groupSize: 40, hasZeroPoint: true };
  const a = quantizeGptq(W.slice(), N, K, grid, serialF), b = quantizeGptq(W.slice(), N, K, grid, poolF, 0.01, pool);
  assert.deepEqual([a.packed, a.scales, a.zeros], [b.packed, b.scales, b.zeros]);
  assert.ok(!(b.scales.buffer instanceof SharedArrayBuffer), "results are in ordinary memory");
  const X = Float64Array.from(activations(24, K, 6)), absMean = new Float64Array(K);
  for (let t = 0; t < 24; t++) for (let k = 0; k < K; k++) absMean[k] += Math.abs(X[t * K + k]) / 24;
  const x = { absMean, sqMean: absMean, rows: X, numRows: 24 };
  const searches = [{ W, N, K, grid, x }, { W: W.subarray(0, 10 * K), N: 10, K, grid: { ...grid, hasZeroPoint: false }, x }];
  assert.deepEqual(awqSearchScales(searches, 10, Infinity, pool).map((s) => Array.from(s)), awqSearchScales(searches, 10).map((s) => Array.from(s)));
  // A task that throws (here: an unknown kind, on whichever thread takes it) fails the batch; the pool still works after.
  assert.throws(() => pool.run({ kind: "bogus" } as never, 6), /quantization task kind 'bogus' is unknown/);
  assert.deepEqual(Array.from(gptqFactor(H, K, 0.01, pool).U), Array.from(serialF.U));
});

test("quantize({ threads }): kjv-llama W4A16_GPTQ / W4A16_AWQ give the same tensors on 1 and 2 threads; a bad thread count is refused", () => {
  const model = AutoModelForCausalLM.fromHuggingFace(kjv);
  try {
    for (const quantAlgo of ["W4A16_GPTQ", "W4A16_AWQ"] as const) {
      const opts = { maxCalibrationTokens: 256 };
      const one = quantizeSync(model, { quantAlgo, groupSize: 64 }, { ...opts, threads: 1 });
      const two = quantizeSync(model, { quantAlgo, groupSize: 64 }, { ...opts, threads: 2 });
      for (const name of ["model.layers.0.self_attn.q_proj.weight", "model.layers.5.mlp.down_proj.weight", "model.layers.3.mlp.up_proj.weight"]) {
        const p = one.quantizedTensor(name)!, q = two.quantizedTensor(name)!;
        assert.deepEqual([p.packed, p.scales, p.zeros], [q.packed, q.scales, q.zeros], `${quantAlgo} ${name}`);
      }
      if (quantAlgo === "W4A16_AWQ") {
        const n = "model.layers.2.input_layernorm.weight";
        assert.deepEqual(one.weights.readFloat32(n), two.weights.readFloat32(n), "AWQ scales folded into the norm");
      }
    }
    assert.throws(() => quantizeSync(model, { quantAlgo: "W4A16_GPTQ", groupSize: 64 }, { threads: 0 }), /options\.threads must be a positive integer, got 0/);
  } finally {
    model.close();
  }
}, 120_000);
