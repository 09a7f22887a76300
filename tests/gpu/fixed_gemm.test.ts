/**
 * GPU: the fixed-order GEMM kernel (kernels/fixed_gemm.cu, session 17) of batch-invariant shapes with no M-stable cuBLASLt
 * algorithm (skipped without a GPU). Against a float64 reference (bf16 / fp16 in; bf16 / fp16 / fp32 out; alpha, beta ·
 * C in place, bias; N and K off the 64 / 32 tiles), then the test model's down projection (256 × 8192): every row of
 * every M from 1 to 2048 bitwise equal to the same row at M 2048, and at M 2048 - s with A's rows shifted by s = 1..80.
 */
import { FixedOrderGemm } from "../../lib/backends/cuda/fixed_gemm.ts";
import { assert } from "../harness.ts";
import { compare, describe, device, fromBf16Bits, fromF16Bits, gpuTest, seededUniform, toBf16Bits, toF16Bits } from "./gpu.ts";

gpuTest("fixed-order GEMM = float64 reference (bf16 / fp16 in, 16-bit or f32 out, alpha, beta · C in place, bias)", () => {
  const d = device();
  using stream = d.createStream();
  const g = new FixedOrderGemm(d);
  const lines: string[] = [];
  const bad: string[] = [];
  let seed = 17;
  try {
    for (
      const [m, n, k, dtype, outDtype, withC, withBias] of [
        [77, 200, 1032, "bf16", "bf16", false, false],
        [130, 256, 8192, "bf16", "bf16", true, false],
        [65, 130, 264, "bf16", "fp32", false, true],
        [33, 96, 512, "fp16", "fp16", true, true],
        [1, 72, 256, "fp16", "fp32", false, false],
      ] as const
    ) {
      const enc = dtype === "bf16" ? toBf16Bits : toF16Bits, dec = dtype === "bf16" ? fromBf16Bits : fromF16Bits;
      const x = Uint16Array.from(seededUniform(seed++, m * k, -2, 2), enc);
      const w = Uint16Array.from(seededUniform(seed++, n * k, -0.1, 0.1), enc);
      const f32 = outDtype === "fp32";
      const cVals = seededUniform(seed++, m * n, -1, 1), biasVals = seededUniform(seed++, n, -1, 1);
      const out16 = (v: Float32Array): Uint16Array => Uint16Array.from(v, enc);
      const alpha = withC ? 0.75 : 1, beta = withC ? 0.5 : 0;
      using da = d.alloc(m * k * 2);
      using db = d.alloc(n * k * 2);
      using dd = d.alloc(m * n * 4);
      using dbias = d.alloc(n * 4);
      da.copyFromHost(x);
      db.copyFromHost(w);
      // C in place (D = C): D starts as C's values.
      const cHost = f32 ? Float32Array.from(cVals) : out16(cVals);
      const cUsed = Array.from(cHost, (v) => f32 ? v : dec(v));
      dd.copyFromHost(withC ? cHost : f32 ? new Float32Array(m * n).fill(NaN) : new Uint16Array(m * n).fill(0x7fc0));
      const biasHost = f32 ? Float32Array.from(biasVals) : out16(biasVals);
      const biasUsed = Array.from(biasHost, (v) => f32 ? v : dec(v));
      dbias.copyFromHost(biasHost);
      g.launch({ m, n, k, dtype, outDtype, a: da.ptr, b: db.ptr, d: dd.ptr, c: withC ? dd.ptr : 0n, bias: withBias ? dbias.ptr : 0n, alpha, beta, stream });
      stream.synchronize();
      const got = new Float64Array(m * n);
      if (f32) {
        const h = new Float32Array(m * n);
        dd.copyToHost(h);
        got.set(h);
      } else {
        const h = new Uint16Array(m * n);
        dd.copyToHost(h);
        h.forEach((v, i) => (got[i] = dec(v)));
      }
      const xf = Float64Array.from(x, dec), wf = Float64Array.from(w, dec);
      const want = new Float64Array(m * n);
      for (let r = 0; r < m; r++) {
        for (let c = 0; c < n; c++) {
          let s = 0;
          for (let i = 0; i < k; i++) s += xf[r * k + i] * wf[c * k + i];
          want[r * n + c] = alpha * s + (withC ? beta * cUsed[r * n + c] : 0) + (withBias ? biasUsed[c] : 0);
        }
      }
      const [atol, rtol] = f32 ? [1e-4, 1e-4] : [2e-3, 1e-2];
      const rep = compare(got, want, atol, rtol);
      const line = describe(`${m}x${n}x${k} ${dtype}->${outDtype}${withC ? " +beta·C" : ""}${withBias ? " +bias" : ""}`, rep, atol, rtol);
      lines.push(line);
      if (!(rep.worst <= 1)) bad.push(line);
    }
  } finally {
    g.dispose();
  }
  console.log(lines.join("\n"));
  assert.deepEqual(bad, []);
});

gpuTest("fixed-order GEMM: rows at every M from 1 to 2048, and shifted to other tile rows, bitwise equal to M 2048's (256 x 8192)", () => {
  const d = device();
  using stream = d.createStream();
  const g = new FixedOrderGemm(d);
  const n = 256, k = 8192, Mmax = 2048;
  const x = Uint16Array.from(seededUniform(41, Mmax * k, -2, 2), toBf16Bits);
  const w = Uint16Array.from(seededUniform(42, n * k, -0.1, 0.1), toBf16Bits);
  using da = d.alloc(Mmax * k * 2);
  using db = d.alloc(n * k * 2);
  using dd = d.alloc(Mmax * n * 2);
  da.copyFromHost(x);
  db.copyFromHost(w);
  const run = (m: number): Uint32Array => {
    g.launch({ m, n, k, dtype: "bf16", outDtype: "bf16", a: da.ptr, b: db.ptr, d: dd.ptr, c: 0n, bias: 0n, alpha: 1, beta: 0, stream });
    stream.synchronize();
    const h = new Uint32Array((m * n) / 2); // n even: whole bf16 pairs
    dd.copyToHost(h);
    return h;
  };
  const differing: string[] = [];
  try {
    const want = run(Mmax);
    let zeros = 0;
    for (const v of want) if ((v & 0x7fff7fff) === 0) zeros++;
    assert.ok(zeros < want.length / 100, `the reference rows are informative (${zeros} zero pairs)`);
    const t0 = performance.now();
    for (let m = 1; m <= Mmax; m++) {
      const got = run(m);
      let diff = 0;
      for (let i = 0; i < got.length; i++) if (got[i] !== want[i]) diff++;
      if (diff) differing.push(`M ${m}: ${diff} bf16 pairs differ`);
    }
    console.log(`M 1..${Mmax}: ${differing.length} row counts differ from M ${Mmax} (${((performance.now() - t0) / 1000).toFixed(1)} s)`);
    // The same rows starting s rows later in A (a prompt placed after another): each lands at another row of its tile.
    let shifted = 0;
    for (let sh = 1; sh <= 80; sh++) {
      const m = Mmax - sh;
      g.launch({ m, n, k, dtype: "bf16", outDtype: "bf16", a: da.ptr + BigInt(sh * k * 2), b: db.ptr, d: dd.ptr, c: 0n, bias: 0n, alpha: 1, beta: 0, stream });
      stream.synchronize();
      const got = new Uint32Array((m * n) / 2);
      dd.copyToHost(got);
      const off = (sh * n) / 2;
      let diff = 0;
      for (let i = 0; i < got.length; i++) if (got[i] !== want[off + i]) diff++;
      if (diff) differing.push(`rows shifted by ${sh}: ${diff} bf16 pairs differ`);
      shifted++;
    }
    console.log(`rows shifted by 1..${shifted} in A: ${differing.length} differ in all`);
  } finally {
    g.dispose();
  }
  assert.deepEqual(differing.slice(0, 8), []);
}, 300_000);
