/**
 * GPU: cuBLASLt GEMM (row-major) against a float64 reference at per-dtype tolerances, for odd
 * shapes, both B layouts, the bias epilogue, beta·C, and fp8 e4m3 on sm_89+.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { assert } from "../harness.ts";
import { CublasLtGemm, type GemmDtype } from "../../lib/backends/cuda/gemm.ts";
import { ValidationError } from "../../lib/util/errors.ts";
import type { CudaDevice } from "../../lib/cuda/device.ts";
import type { DeviceBuffer } from "../../lib/cuda/memory.ts";
import {
  compare,
  describe,
  device,
  fromBf16Bits,
  fromE4m3,
  fromF16Bits,
  gpuProbe,
  gpuTest,
  noGpuReason,
  seededUniform,
  toBf16Bits,
  toE4m3Exact,
  toF16Bits,
} from "./gpu.ts";
import { test } from "../harness.ts";

type Dt = Exclude<GemmDtype, "fp8e4m3">;

/** Rounds `x` to `dt` and returns (device bytes, the rounded values as numbers). */
function quantize(x: Float32Array, dt: Dt): { bytes: ArrayBufferView; values: Float64Array } {
  const values = new Float64Array(x.length);
  if (dt === "fp32") {
    values.set(x);
    return { bytes: x, values };
  }
  const bits = new Uint16Array(x.length);
  for (let i = 0; i < x.length; i++) {
    bits[i] = dt === "bf16" ? toBf16Bits(x[i]) : toF16Bits(x[i]);
    values[i] = dt === "bf16" ? fromBf16Bits(bits[i]) : fromF16Bits(bits[i]);
  }
  return { bytes: bits, values };
}

function readOut(buf: DeviceBuffer, n: number, dt: Dt): Float64Array {
  const out = new Float64Array(n);
  if (dt === "fp32") {
    const f = new Float32Array(n);
    buf.copyToHost(f);
    out.set(f);
  } else {
    const h = new Uint16Array(n);
    buf.copyToHost(h);
    for (let i = 0; i < n; i++) out[i] = dt === "bf16" ? fromBf16Bits(h[i]) : fromF16Bits(h[i]);
  }
  return out;
}

/** D[m,n] = A[m,k]·B (+bias[n]) (+beta·C) in float64; B is [k,n], or [n,k] when transB. */
function reference(
  a: Float64Array,
  b: Float64Array,
  m: number,
  n: number,
  k: number,
  transB: boolean,
  bias?: Float64Array,
  c?: Float64Array,
  beta = 0,
): Float64Array {
  const d = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let p = 0; p < k; p++) s += a[i * k + p] * (transB ? b[j * k + p] : b[p * n + j]);
      if (bias) s += bias[j];
      if (c) s += beta * c[i * n + j];
      d[i * n + j] = s;
    }
  }
  return d;
}

/** Tolerance: the output's rounding (rtol) plus accumulation-order slack growing with sqrt(k). */
function tolerance(dt: Dt, k: number): { atol: number; rtol: number } {
  const eps = dt === "fp32" ? 2 ** -23 : dt === "fp16" ? 2 ** -10 : 2 ** -7;
  return { atol: (dt === "fp32" ? 16 : 1) * eps * Math.sqrt(k / 3), rtol: eps };
}

interface Case {
  dt: Dt;
  m: number;
  n: number;
  k: number;
  transB: boolean;
  bias?: boolean;
  residual?: boolean;
}

function runCase(gemm: CublasLtGemm, d: CudaDevice, cs: Case, seed: number): void {
  const { dt, m, n, k, transB } = cs;
  const A = quantize(seededUniform(seed, m * k), dt);
  const B = quantize(seededUniform(seed + 1, k * n), dt);
  const bias = cs.bias ? quantize(seededUniform(seed + 2, n), dt) : undefined;
  const C = cs.residual ? quantize(seededUniform(seed + 3, m * n), dt) : undefined;
  const size = dt === "fp32" ? 4 : 2;
  using da = d.alloc(m * k * size);
  using db = d.alloc(k * n * size);
  using dd = d.alloc(m * n * size);
  using dbias = d.alloc(n * size);
  da.copyFromHost(A.bytes);
  db.copyFromHost(B.bytes);
  if (bias) dbias.copyFromHost(bias.bytes);
  if (C) dd.copyFromHost(C.bytes); // in place: D = A·B + 0.5·D
  using stream = d.createStream();
  gemm.run({ m, n, k, dtype: dt, a: da, b: db, d: dd, transB, bias: bias ? dbias : null, c: C ? dd : null, beta: C ? 0.5 : undefined, stream });
  stream.synchronize();
  const got = readOut(dd, m * n, dt);
  const want = reference(A.values, B.values, m, n, k, transB, bias?.values, C?.values, 0.5);
  const { atol, rtol } = tolerance(dt, k);
  const label = `${dt} ${m}x${n}x${k} transB=${transB}${cs.bias ? " +bias" : ""}${cs.residual ? " +0.5C" : ""}`;
  const r = compare(got, want, atol, rtol);
  console.log(describe(label, r, atol, rtol));
  assert.ok(r.worst <= 1, describe(label, r, atol, rtol));
}

gpuTest("bf16 GEMM, odd shapes, both B layouts, vs float64", () => {
  const d = device();
  using gemm = new CublasLtGemm(d);
  const shapes: [number, number, number][] = [[1, 1, 1], [7, 13, 29], [33, 65, 127], [129, 257, 300], [3, 4099, 64]];
  let seed = 10;
  for (const [m, n, k] of shapes) for (const transB of [false, true]) runCase(gemm, d, { dt: "bf16", m, n, k, transB }, seed += 4);
  assert.equal(gemm.numPlans, shapes.length * 2);
});

gpuTest("fp32 GEMM, odd shapes, vs float64", () => {
  const d = device();
  using gemm = new CublasLtGemm(d);
  let seed = 100;
  for (const [m, n, k] of [[5, 3, 7], [31, 63, 129], [100, 37, 513]] as const) {
    for (const transB of [false, true]) runCase(gemm, d, { dt: "fp32", m, n, k, transB }, seed += 4);
  }
});

gpuTest("fp16 GEMM, bias epilogue and beta·C residual", () => {
  const d = device();
  using gemm = new CublasLtGemm(d);
  runCase(gemm, d, { dt: "fp16", m: 17, n: 40, k: 96, transB: true }, 200);
  runCase(gemm, d, { dt: "bf16", m: 17, n: 40, k: 96, transB: true, bias: true }, 210);
  runCase(gemm, d, { dt: "fp32", m: 9, n: 24, k: 33, transB: false, bias: true }, 220);
  runCase(gemm, d, { dt: "bf16", m: 12, n: 64, k: 80, transB: true, residual: true }, 230);
  const plans = gemm.numPlans;
  runCase(gemm, d, { dt: "bf16", m: 17, n: 40, k: 96, transB: true, bias: true }, 240); // same shape: cached plan
  assert.equal(gemm.numPlans, plans);
});

const fp8Reason = noGpuReason || "fp8 e4m3 GEMM needs compute capability 8.9+";
const hasFp8 = gpuProbe.ok && (() => {
  const cc = device().computeCapability;
  return cc.major * 10 + cc.minor >= 89;
})();

test.skipIf(fp8Reason, !hasFp8)("fp8 e4m3 GEMM (transB) writes bf16 close to float64", () => {
  const d = device();
  using gemm = new CublasLtGemm(d);
  const m = 64, n = 96, k = 128;
  // Values on the e4m3 grid: multiples of 0.25 in [-2, 2] are exact.
  const grid = (seed: number, len: number): Uint8Array => Uint8Array.from(seededUniform(seed, len), (u) => toE4m3Exact(Math.round(u * 8) / 4));
  const a8 = grid(300, m * k), b8 = grid(301, n * k);
  for (const v of [0.25, -1.75, 2, -0.5]) assert.equal(fromE4m3(toE4m3Exact(v)), v);
  using da = d.alloc(a8.length);
  using db = d.alloc(b8.length);
  using dd = d.alloc(m * n * 2);
  da.copyFromHost(a8);
  db.copyFromHost(b8);
  gemm.run({ m, n, k, dtype: "fp8e4m3", outDtype: "bf16", a: da, b: db, d: dd, transB: true });
  d.synchronize();
  const got = readOut(dd, m * n, "bf16");
  const want = reference(Float64Array.from(a8, fromE4m3), Float64Array.from(b8, fromE4m3), m, n, k, true);
  const { atol, rtol } = tolerance("bf16", k);
  const r = compare(got, want, atol, rtol);
  console.log(describe("fp8e4m3->bf16 64x96x128", r, atol, rtol));
  assert.ok(r.worst <= 1, describe("fp8e4m3", r, atol, rtol));
});

gpuTest("GEMM validation errors name the field; dispose twice is a no-op", () => {
  const d = device();
  const gemm = new CublasLtGemm(d);
  using buf = d.alloc(1024);
  assert.throws(
    () => gemm.run({ m: 0, n: 1, k: 1, dtype: "bf16", a: buf, b: buf, d: buf }),
    (e: unknown) => e instanceof ValidationError && /GemmArgs\.m/.test(e.message),
  );
  assert.throws(() => gemm.run({ m: 1, n: 1, k: 16, dtype: "fp8e4m3", a: buf, b: buf, d: buf, transB: false }), ValidationError);
  assert.throws(() => gemm.run({ m: 1, n: 1, k: 1, dtype: "bf16", a: buf, b: buf, d: buf, beta: 1 }), ValidationError);
  gemm.dispose();
  gemm.dispose();
  assert.ok(gemm.isDisposed && gemm.workspace.isDisposed);
  assert.throws(() => gemm.run({ m: 1, n: 1, k: 1, dtype: "bf16", a: buf, b: buf, d: buf }), /disposed/);
});

/**
 * Rows 0..m-1 of D computed with M = m must equal, bit for bit, the same rows computed inside a
 * bigger M (the model's linear shapes: llama-3.2-1b, qwen3-0.6b, a bias epilogue, an fp32-out lm_head).
 * With the default per-shape heuristic they need not (logged for information).
 */
gpuTest("batch-invariant GEMM: each row of D is bitwise the same for every M (pinned non-split-K algorithm)", () => {
  const d = device();
  using inv = new CublasLtGemm(d, { batchInvariant: true, timingCacheDir: null });
  using plain = new CublasLtGemm(d, { timingCacheDir: null });
  const Mmax = 600;
  const ms = [1, 2, 3, 4, 5, 8, 9, 17, 60, 82, 128, 257, 512, 513];
  const shapes: { n: number; k: number; bias?: boolean; out?: Dt }[] = [
    { n: 2048, k: 2048 },
    { n: 3072, k: 2048 },
    { n: 16384, k: 2048 },
    { n: 2048, k: 8192 },
    { n: 4096, k: 1024 },
    { n: 1024, k: 2048 },
    { n: 6144, k: 1024 },
    { n: 1024, k: 3072 },
    { n: 896, k: 896, bias: true },
    { n: 32000, k: 1024, out: "fp32" },
  ];
  let seed = 500;
  const lines: string[] = [];
  for (const s of shapes) {
    const out = s.out ?? "bf16";
    const osz = out === "fp32" ? 4 : 2;
    using da = d.alloc(Mmax * s.k * 2);
    using db = d.alloc(s.n * s.k * 2);
    using dbias = d.alloc(s.n * 2);
    using dd = d.alloc(Mmax * s.n * osz);
    da.copyFromHost(quantize(seededUniform(seed += 3, Mmax * s.k), "bf16").bytes);
    db.copyFromHost(quantize(seededUniform(seed + 1, s.n * s.k), "bf16").bytes);
    dbias.copyFromHost(quantize(seededUniform(seed + 2, s.n), "bf16").bytes);
    using stream = d.createStream();
    const rows = (g: CublasLtGemm, m: number): Uint8Array => {
      g.run({ m, n: s.n, k: s.k, dtype: "bf16", outDtype: out, a: da, b: db, d: dd, transB: true, bias: s.bias ? dbias : null, stream });
      stream.synchronize();
      const h = new Uint8Array(m * s.n * osz);
      dd.copyToHost(h);
      return h;
    };
    for (const [name, g] of [["invariant", inv], ["heuristic", plain]] as const) {
      const full = rows(g, Mmax);
      const differ: number[] = [];
      for (const m of ms) {
        const part = rows(g, m);
        let same = true;
        for (let i = 0; i < part.length; i++) {
          if (part[i] !== full[i]) {
            same = false;
            break;
          }
        }
        if (!same) differ.push(m);
      }
      lines.push(`${name} n=${s.n} k=${s.k}${s.bias ? " +bias" : ""} ${out} out: rows differ from M=${Mmax} at M in [${differ.join(",")}]`);
      if (name === "invariant") assert.deepEqual(differ, [], `batch-invariant GEMM n=${s.n} k=${s.k}: rows at these M differ bitwise from M=${Mmax}`);
    }
  }
  lines.push(`pinned-algorithm fallbacks: ${inv.numInvariantFallbacks}`);
  console.log(lines.join("\n"));
  assert.equal(inv.numInvariantFallbacks, 0);
});

/**
 * M buckets (GemmOptions.invariantBuckets, the default): every row of D at every M — across the buckets, up
 * to a 4096-row prefill — is bitwise the row the single reference-M algorithm (invariantBuckets: false, the
 * session-5 behaviour) computes, for llama-3.2-1b's and llama-3.1-8b's prefill linears.
 */
gpuTest("batch-invariant GEMM with M buckets: rows bitwise equal to the single pinned algorithm up to M = 4096", () => {
  const d = device();
  using buck = new CublasLtGemm(d, { batchInvariant: true, timingCacheDir: null });
  using single = new CublasLtGemm(d, { batchInvariant: true, invariantBuckets: false, timingCacheDir: null });
  const Mmax = 4100;
  const ms = [9, 31, 100, 255, 300, 600, 1100, 2100, 4096];
  const shapes = [[3072, 2048], [2048, 2048], [16384, 2048], [2048, 8192], [4096, 14336]] as const;
  let seed = 900;
  const lines: string[] = [];
  const same = (x: Uint8Array, y: Uint8Array): boolean => {
    for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
    return true;
  };
  for (const [n, k] of shapes) {
    // 512 random rows repeated: a row's result depends only on that row.
    const block = quantize(seededUniform(seed += 2, 512 * k), "bf16").bytes as Uint16Array;
    using da = d.alloc(Mmax * k * 2);
    for (let r = 0; r < Mmax; r += 512) da.copyFromHost(block.subarray(0, Math.min(512, Mmax - r) * k), { offset: r * k * 2 });
    using db = d.alloc(n * k * 2);
    const wBlock = quantize(seededUniform(seed + 1, 256 * k, -0.05, 0.05), "bf16").bytes as Uint16Array;
    for (let r = 0; r < n; r += 256) db.copyFromHost(wBlock.subarray(0, Math.min(256, n - r) * k), { offset: r * k * 2 });
    using dd = d.alloc(Mmax * n * 2);
    using stream = d.createStream();
    const rows = (g: CublasLtGemm, m: number): Uint8Array => {
      dd.fill(0xff, { stream });
      g.run({ m, n, k, dtype: "bf16", a: da, b: db, d: dd, transB: true, stream });
      stream.synchronize();
      const h = new Uint8Array(m * n * 2);
      dd.copyToHost(h);
      return h;
    };
    const want = rows(single, Mmax);
    const differ = ms.filter((m) => !same(rows(buck, m), want.subarray(0, m * n * 2)));
    lines.push(`n=${n} k=${k}: bucketed rows differ from the single pinned algorithm at M in [${differ.join(",")}]`);
    assert.deepEqual(differ, [], `bucketed GEMM n=${n} k=${k}: rows at these M differ bitwise from the single pinned algorithm`);
  }
  const st = buck.invariantBucketStats;
  lines.push(`bucket algorithms: ${st.verified} shown bitwise equal to the reference one (used), ${st.rejected} rejected`);
  console.log(lines.join("\n"));
  assert.equal(buck.numInvariantFallbacks + single.numInvariantFallbacks, 0);
});

gpuTest("batch-invariant GEMM adding into C in place (beta 1, gemmResidual): rows bitwise equal across M buckets, tuned too", () => {
  const d = device();
  using buck = new CublasLtGemm(d, { batchInvariant: true, tune: true, timingCacheDir: null });
  using single = new CublasLtGemm(d, { batchInvariant: true, invariantBuckets: false, timingCacheDir: null });
  const Mmax = 2100;
  const ms = [9, 300, 600, 1100, 2100];
  const shapes = [[2048, 2048], [2048, 8192], [4096, 14336]] as const;
  let seed = 1900;
  const lines: string[] = [];
  for (const [n, k] of shapes) {
    const block = quantize(seededUniform(seed += 3, 512 * k), "bf16").bytes as Uint16Array;
    using da = d.alloc(Mmax * k * 2);
    for (let r = 0; r < Mmax; r += 512) da.copyFromHost(block.subarray(0, Math.min(512, Mmax - r) * k), { offset: r * k * 2 });
    using db = d.alloc(n * k * 2);
    const wBlock = quantize(seededUniform(seed + 1, 256 * k, -0.05, 0.05), "bf16").bytes as Uint16Array;
    for (let r = 0; r < n; r += 256) db.copyFromHost(wBlock.subarray(0, Math.min(256, n - r) * k), { offset: r * k * 2 });
    // The residual: 512 random rows repeated (row r of every M holds the same values).
    const res = quantize(seededUniform(seed + 2, 512 * n, -2, 2), "bf16").bytes as Uint16Array;
    using dd = d.alloc(Mmax * n * 2);
    using stream = d.createStream();
    const rows = (g: CublasLtGemm, m: number, withC: boolean): Uint16Array => {
      for (let r = 0; r < m; r += 512) dd.copyFromHost(res.subarray(0, Math.min(512, m - r) * n), { offset: r * n * 2, stream });
      g.run({ m, n, k, dtype: "bf16", a: da, b: db, d: dd, transB: true, stream, ...(withC ? { c: dd } : {}) });
      stream.synchronize();
      const h = new Uint16Array(m * n);
      dd.copyToHost(h);
      return h;
    };
    const want = rows(single, Mmax, true);
    const differ = ms.filter((m) => !rows(buck, m, true).every((v, i) => v === want[i]));
    // D = round(A·Bᵀ + C): within one bf16 rounding of round(A·Bᵀ) + C.
    const plain = rows(single, Mmax, false);
    let worst = 0;
    for (let i = 0; i < 512 * n; i++) {
      const ab = fromBf16Bits(plain[i]), c = fromBf16Bits(res[i]);
      worst = Math.max(worst, Math.abs(fromBf16Bits(want[i]) - (ab + c)) / (Math.abs(ab) + Math.abs(c) + 1e-6));
    }
    lines.push(
      `n=${n} k=${k}: rows with C differ from the single pinned algorithm at M in [${differ.join(",")}]; worst |D - (round(AB) + C)| / (|AB| + |C|) ${
        worst.toExponential(2)
      }`,
    );
    assert.deepEqual(differ, [], `GEMM + C n=${n} k=${k}: rows at these M differ bitwise from the single pinned algorithm`);
    assert.ok(worst < 2 ** -7, `GEMM + C n=${n} k=${k}: ${worst} from round(AB) + C`);
  }
  console.log(lines.join("\n"));
});

gpuTest("per-M tuned GEMM adding into C in place (beta 1, gemmResidual's epilogue without batch invariance): D = round(A·Bᵀ + C)", () => {
  // GEMMs outside batch invariance tune cuBLASLt per M (split-K algorithms); an in-place call plans apart (no split-K that
  // reduces in the output buffer). Its D must be A·Bᵀ + C within one bf16 rounding, for every M and shape of the 1B / 8B.
  const d = device();
  using g = new CublasLtGemm(d, { batchInvariant: false, tune: true, timingCacheDir: null });
  const shapes = [[2048, 2048], [2048, 8192], [4096, 4096], [4096, 14336]] as const;
  let seed = 2900;
  const lines: string[] = [];
  for (const [n, k] of shapes) {
    for (const m of [16, 64, 512]) {
      using da = d.alloc(m * k * 2);
      da.copyFromHost(quantize(seededUniform(seed += 3, m * k), "bf16").bytes);
      using db = d.alloc(n * k * 2);
      db.copyFromHost(quantize(seededUniform(seed + 1, n * k, -0.05, 0.05), "bf16").bytes);
      const res = quantize(seededUniform(seed + 2, m * n, -2, 2), "bf16").bytes as Uint16Array;
      using dd = d.alloc(m * n * 2);
      using stream = d.createStream();
      const run = (withC: boolean): Uint16Array => {
        dd.copyFromHost(res, { stream });
        g.run({ m, n, k, dtype: "bf16", a: da, b: db, d: dd, transB: true, stream, ...(withC ? { c: dd } : {}) });
        stream.synchronize();
        const h = new Uint16Array(m * n);
        dd.copyToHost(h);
        return h;
      };
      const plain = run(false), withC = run(true), again = run(true);
      let worst = 0;
      for (let i = 0; i < m * n; i++) {
        const ab = fromBf16Bits(plain[i]), c = fromBf16Bits(res[i]);
        worst = Math.max(worst, Math.abs(fromBf16Bits(withC[i]) - (ab + c)) / (Math.abs(ab) + Math.abs(c) + 1e-6));
      }
      lines.push(`m=${m} n=${n} k=${k}: worst ${worst.toExponential(2)}`);
      assert.ok(worst < 2 ** -7 && Number.isFinite(worst), `in-place GEMM m=${m} n=${n} k=${k}: ${worst} from round(AB) + C`);
      assert.ok(withC.every((v, i) => v === again[i]), `in-place GEMM m=${m} n=${n} k=${k}: two calls differ`);
    }
  }
  console.log(lines.join("; "));
});

gpuTest("tuned GEMMs: instances sharing a timing file time a shape once and run the same algorithm (the same bits)", () => {
  const d = device();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "llmrt-gemm-timing-"));
  try {
    // Both exist before either has timed anything (two sessions created together).
    using first = new CublasLtGemm(d, { tune: true, timingCacheDir: dir });
    using second = new CublasLtGemm(d, { tune: true, timingCacheDir: dir });
    const m = 130, n = 2048, k = 2048;
    using da = d.alloc(m * k * 2);
    using db = d.alloc(n * k * 2);
    da.copyFromHost(quantize(seededUniform(2201, m * k), "bf16").bytes);
    db.copyFromHost(quantize(seededUniform(2202, n * k, -0.05, 0.05), "bf16").bytes);
    using stream = d.createStream();
    const rows = (g: CublasLtGemm): Uint16Array => {
      using dd = d.alloc(m * n * 2);
      g.run({ m, n, k, dtype: "bf16", a: da, b: db, d: dd, transB: true, stream });
      stream.synchronize();
      const h = new Uint16Array(m * n);
      dd.copyToHost(h);
      return h;
    };
    const a = rows(first), b = rows(second);
    assert.equal(first.numTuned, 1, "the first instance times the shape");
    assert.equal(second.numTuned, 0, "the second instance takes the first one's pick");
    assert.ok(a.every((v, i) => v === b[i]), "the two instances' rows differ");
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
