// Fake-device stand-ins of the FP8 launches (issue 14; kernels/fp8_gemv.cu and the cuBLASLt FP8 GEMM),
// used by tests/cuda_fake_device.ts for bf16 engines. They keep the kernels' roundings: activations
// quantized as e4m3(float32(x / a)) with a static scale or the row's float32(amax / 448) (1 for a zero
// row), e4m3 products summed (exactly here, fp32 on the GPU), v = float32(float32(sum · a) · wScale[j])
// (+ bias[j]) before the bf16 / f32 store; the fused forms apply gemv_fused's roundings (norm prologue
// rounded to bf16, residual add of bf16(v), silu of bf16 gate and up). The GEMM writes the unscaled
// product (bf16 or f32) unless it carries cuBLASLt's scalar scales; fp8_scale_* then scales in place.
import * as K from "../lib/backends/cpu/kernels.ts";
import type { GemmLaunch, KernelLaunch } from "../lib/backends/cuda/launch_types.ts";
import { E4M3_DECODE, e4m3Encode } from "../lib/util/e4m3.ts";
import type { FakeMemory } from "./cuda_fake_device.ts";
import { assert } from "./harness.ts";

const cvt = new Float32Array(1), bits = new Uint32Array(cvt.buffer);
const toBf16 = (x: number): number => {
  cvt[0] = x;
  const b = bits[0];
  return (b + 0x7fff + ((b >>> 16) & 1)) >>> 16;
};
const fromBf16 = (h: number): number => {
  bits[0] = h << 16;
  return cvt[0];
};
const rbf = (x: number): number => fromBf16(toBf16(x));
const f = Math.fround;

function ld(mem: FakeMemory, p: bigint, n: number): Float32Array {
  const h = mem.u16(p, n);
  return Float32Array.from(h, fromBf16);
}
function st(mem: FakeMemory, p: bigint, v: ArrayLike<number>): void {
  const h = mem.u16(p, v.length);
  for (let i = 0; i < v.length; i++) h[i] = toBf16(v[i]);
}

/** A row's activation scale as the kernels find it: the static scale, or float32(amax / 448) (1 for a zero row). */
function rowScale(x: Float32Array, o: number, k: number, actScale: number): number {
  if (actScale > 0) return f(actScale);
  let amax = 0;
  for (let i = 0; i < k; i++) amax = Math.max(amax, Math.abs(x[o + i]));
  return amax > 0 ? f(amax / 448) : 1;
}

/** e4m3 bytes of rows [m, k] of x and their scales (fp8_quantize_bf16 and the fused producers' quantization). */
export function quantizeRows(x: Float32Array, m: number, k: number, actScale: number): { q: Uint8Array; a: Float32Array } {
  const q = new Uint8Array(m * k), a = new Float32Array(m);
  for (let r = 0; r < m; r++) {
    a[r] = rowScale(x, r * k, k, actScale);
    for (let i = 0; i < k; i++) q[r * k + i] = e4m3Encode(f(x[r * k + i] / a[r]));
  }
  return { q, a };
}

/** Unscaled e4m3 dot products [m, n] of quantized rows with weight bytes [n, k], rounded to float32. */
function e4m3Sums(q: Uint8Array, W: Uint8Array, m: number, n: number, k: number): Float32Array {
  const out = new Float32Array(m * n), xq = new Float64Array(k);
  for (let r = 0; r < m; r++) {
    for (let i = 0; i < k; i++) xq[i] = E4M3_DECODE[q[r * k + i]];
    for (let j = 0; j < n; j++) {
      let acc = 0;
      for (let i = 0; i < k; i++) acc += xq[i] * E4M3_DECODE[W[j * k + i]];
      out[r * n + j] = acc;
    }
  }
  return out;
}

/** The GEMV's values v [m, n] (before the store): float32(float32(sum · a) · wScale[j]) + bias[j]. */
function gemvValues(mem: FakeMemory, x: Float32Array, A: (bigint & number)[], m: number, n: number, k: number, actScale: number): Float32Array {
  const [, W, sc, bias] = A;
  const { q, a } = quantizeRows(x, m, k, actScale);
  const s = e4m3Sums(q, mem.bytes(W, n * k), m, n, k), ws = mem.f32(sc, n), b = bias ? ld(mem, bias, n) : null;
  for (let r = 0; r < m; r++) {
    for (let j = 0; j < n; j++) {
      const v = f(f(s[r * n + j] * a[r]) * ws[j]);
      s[r * n + j] = b ? f(v + b[j]) : v;
    }
  }
  return s;
}

function disjoint(kernel: string, what: string, a: bigint, aBytes: number, b: bigint, bBytes: number): void {
  if (a < b + BigInt(bBytes) && b < a + BigInt(aBytes)) assert.fail(`${kernel}: ${what} overlap: a data race on the GPU`);
}

/** The cuBLASLt FP8 GEMM (A e4m3 [m, k], B e4m3 [n, k]): D = sum · aScale · bScale (+ bias) or, unscaled, D = sum. */
export function fp8GemmStandIn(mem: FakeMemory, l: GemmLaunch): void {
  assert.equal(l.dtype, "fp8e4m3");
  const scaled = l.aScale !== undefined;
  assert.equal(scaled, l.bScale !== undefined, "FP8 GEMM: both scales or neither");
  if (!scaled) assert.equal(l.bias, null, "FP8 GEMM without scales: the bias belongs to fp8_scale");
  disjoint("fp8 gemm", "A and D", l.a, l.m * l.k, l.d, l.m * l.n * (l.outDtype === "fp32" ? 4 : 2));
  const s = e4m3Sums(mem.bytes(l.a, l.m * l.k), mem.bytes(l.b, l.n * l.k), l.m, l.n, l.k);
  if (scaled) {
    const alpha = f(mem.f32(l.aScale!, 1)[0] * mem.f32(l.bScale!, 1)[0]), b = l.bias ? ld(mem, l.bias, l.n) : null;
    for (let i = 0; i < s.length; i++) s[i] = b ? f(f(alpha * s[i]) + b[i % l.n]) : f(alpha * s[i]);
  }
  // D = bf16(scaled product + C) (LaunchEnv.fp8GemmResidual: C = D = the residual), one rounding.
  if (l.c !== undefined) {
    assert.ok(l.outDtype !== "fp32", "FP8 GEMM with C: bf16 out");
    const c = ld(mem, l.c, l.m * l.n);
    for (let i = 0; i < s.length; i++) s[i] = f(s[i] + c[i]);
  }
  if (l.outDtype === "fp32") mem.f32(l.d, s.length).set(s);
  else st(mem, l.d, s);
}

/** The stand-in of an fp8_gemv.cu entry point; false for any other kernel. `maxRows`: the step's rows. */
export function fp8KernelStandIn(mem: FakeMemory, l: KernelLaunch, maxRows: number): boolean {
  const A = l.args as (bigint & number)[];
  switch (l.kernel) {
    case "fp8_gemv_bf16": {
      const [x, W, , , y, m, n, k, actScale] = A;
      assert.ok(m >= 1 && m <= 8 && m <= maxRows, `${l.kernel}: m ${m}`);
      assert.ok(k % 64 === 0 && x % 16n === 0n && W % 16n === 0n, `${l.kernel}: k ${k} or x / W not 16-byte aligned`);
      assert.deepEqual([...l.grid, l.block], [Math.ceil(n / 16), 1, 1, 256], `${l.kernel}: grid`);
      disjoint(l.kernel, "x and y", x, m * k * 2, y, m * n * 2);
      st(mem, y, gemvValues(mem, ld(mem, x, m * k), A, m, n, k, actScale));
      return true;
    }
    case "fp8_gemv_fused_bf16":
    case "fp8_gemv_fused_norm_bf16":
    case "fp8_gemv_fused_pdl_bf16":
    case "fp8_gemv_fused_norm_pdl_bf16":
    case "fp8_gemv1_fused_bf16":
    case "fp8_gemv1_fused_norm_bf16":
    case "fp8_gemvr_fused_bf16":
    case "fp8_gemvr_fused_norm_bf16": {
      // (x, W, wScale, bias, y, normW, eps, m, n, k, actScale, mode); _pdl: the same values
      const [x, W, , , y, normW, eps, m, n, k, actScale, mode] = A;
      const norm = /^fp8_gemv(1|r)?_fused_norm/.test(l.kernel);
      const byRow = l.kernel.startsWith("fp8_gemvr");
      const one = l.kernel.startsWith("fp8_gemv1") || byRow;
      assert.ok(m >= 1 && m <= (one ? 1 : 8) && m <= maxRows, `${l.kernel}: m ${m}`);
      assert.ok(k % (one ? 512 : 64) === 0 && n % 16 === 0 && x % 16n === 0n && W % 16n === 0n, `${l.kernel}: k ${k}, n ${n} or x / W not 16-byte aligned`);
      assert.ok(!one || k <= (norm || byRow ? 8192 : 16384), `${l.kernel}: k ${k} past the staged x`);
      assert.ok(mode === 0 || mode === 1 || (mode === 2 && !byRow) || mode === 3, `${l.kernel}: mode ${mode}`);
      // fp8_gemvr: one row a warp, 8 a block. fp8_gemv1: any grid is correct; the launcher's is persistent (at most 264
      // blocks here) and gives every warp a row.
      if (byRow) assert.deepEqual([...l.grid, l.block], [Math.ceil(n / 8), 1, 1, 256], `${l.kernel} mode ${mode}: grid`);
      else if (one) {
        assert.ok(
          l.grid[0] >= 1 && l.grid[0] <= 264 && l.grid[0] * 8 <= Math.max(8, mode === 2 ? n / 2 : n) + 7 && l.block === 256,
          `${l.kernel} mode ${mode}: grid ${l.grid}`,
        );
      } else assert.deepEqual([...l.grid, l.block], [n / 16, 1, 1, 256], `${l.kernel} mode ${mode}: grid`);
      if (norm) assert.ok(m * k <= 8192, `${l.kernel}: m × k = ${m * k} exceeds the staged 8192`);
      const yBytes = mode === 3 ? m * n * 4 : mode === 2 ? m * (n / 2) * 2 : m * n * 2;
      disjoint(l.kernel, "x and y", x, m * k * 2, y, yBytes);
      disjoint(l.kernel, "W and y", W, n * k, y, yBytes);
      let xv = ld(mem, x, m * k);
      if (norm) {
        const o = new Float32Array(m * k);
        K.rmsnorm(xv, ld(mem, normW, k), eps, m, k, o);
        xv = o.map(rbf);
      }
      const v = gemvValues(mem, xv, A, m, n, k, actScale);
      if (mode === 0) st(mem, y, v);
      else if (mode === 1) {
        const r = ld(mem, y, m * n);
        for (let i = 0; i < r.length; i++) r[i] = f(rbf(v[i]) + r[i]);
        st(mem, y, r);
      } else if (mode === 2) {
        const o = new Float32Array(m * (n / 2));
        K.siluMul(v.map(rbf), o, m, n / 2);
        st(mem, y, o);
      } else mem.f32(y, m * n).set(v);
      return true;
    }
    case "fp8_quantize_bf16":
    case "fp8_quantize_flat_bf16": {
      const [x, xq, rs, rows, k, actScale] = A;
      // The flat entry point: static scales only, (ceil(k / 2048), rows) blocks.
      const grid = l.kernel === "fp8_quantize_flat_bf16" ? actScale > 0 && l.grid[1] === rows && l.grid[0] * 2048 >= k : l.grid[0] === rows;
      assert.ok(rows >= 1 && rows <= maxRows && grid && k % 8 === 0, `${l.kernel}: rows ${rows}, k ${k}, grid ${l.grid}`);
      disjoint(l.kernel, "x and xq", x, rows * k * 2, xq, rows * k);
      const { q, a } = quantizeRows(ld(mem, x, rows * k), rows, k, actScale);
      mem.bytes(xq, q.length).set(q);
      mem.f32(rs, rows).set(a);
      return true;
    }
    case "fp8_scale_bf16":
    case "fp8_scale_f32": {
      const [y, rs, cs, bias, rows, n] = A;
      const isF32 = l.kernel === "fp8_scale_f32", V = isF32 ? 4 : 8;
      assert.ok(n % V === 0 && l.grid[1] === rows && l.grid[0] * 256 * V >= n, `${l.kernel}: n ${n}, grid ${l.grid}`);
      const v = isF32 ? mem.f32(y, rows * n) : ld(mem, y, rows * n), r = mem.f32(rs, rows), c = mem.f32(cs, n);
      const b = bias ? ld(mem, bias, n) : null;
      for (let i = 0; i < rows; i++) {
        for (let j = 0; j < n; j++) {
          const s = f(f(v[i * n + j] * r[i]) * c[j]);
          v[i * n + j] = b ? f(s + b[j]) : s;
        }
      }
      if (!isF32) st(mem, y, v);
      return true;
    }
  }
  return false;
}
