// Fake-device stand-ins of kernels/lowbit.cu (issue 14 item 3: W8A8_SQ_PER_CHANNEL "int8", W4A8_AWQ "int4",
// NVFP4 "nvfp4" on bf16 engines), used by tests/cuda_fake_device.ts. They keep the kernels' roundings:
// the activation rows quantized exactly as the CPU's lowbitLinear does (lib/backends/cpu/lowbit_linear.ts;
// NVFP4 through the same nvfp4QuantizeBlocks) from the bf16 inputs, the quantized values stored as bf16
// (exact); the weights dequantized as documented (int4: q·s rounded to bf16); GEMV sums exact here (fp32 on
// the GPU), then float32(float32(sum · a) · s[j]) (int8) or float32(sum · alpha) (+ bias[j]) before the store.
import type { KernelLaunch } from "../lib/backends/cuda/launch_types.ts";
import { E2M1_DECODE, NVFP4_BLOCK, nvfp4QuantizeBlocks } from "../lib/util/e2m1.ts";
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
const f = Math.fround;

function ld(mem: FakeMemory, p: bigint, n: number): Float32Array {
  return Float32Array.from(mem.u16(p, n), fromBf16);
}
function st(mem: FakeMemory, p: bigint, v: ArrayLike<number>): void {
  const h = mem.u16(p, v.length);
  for (let i = 0; i < v.length; i++) h[i] = toBf16(v[i]);
}
/** Stores values that must be exact in bf16 (the quantized activations and exact weights). */
function stExact(mem: FakeMemory, p: bigint, v: ArrayLike<number>, what: string): void {
  const h = mem.u16(p, v.length);
  for (let i = 0; i < v.length; i++) {
    h[i] = toBf16(v[i]);
    if (fromBf16(h[i]) !== v[i] && !(v[i] === 0 && fromBf16(h[i]) === 0)) assert.fail(`${what}: value ${v[i]} is not exact in bf16`);
  }
}

function rne(v: number): number {
  const fl = Math.floor(v), d = v - fl;
  return d > 0.5 ? fl + 1 : d < 0.5 ? fl : fl % 2 === 0 ? fl : fl + 1;
}

function disjoint(kernel: string, what: string, a: bigint, aBytes: number, b: bigint, bBytes: number): void {
  if (a < b + BigInt(bBytes) && b < a + BigInt(aBytes)) assert.fail(`${kernel}: ${what} overlap: a data race on the GPU`);
}

/** The weight [n, k] of a lowbit format as the dequant kernels write it (before the bf16 store), float32. */
function dequantWeight(mem: FakeMemory, fmt: string, W: bigint, sc: bigint, n: number, k: number, group: number): Float32Array {
  const out = new Float32Array(n * k);
  if (fmt === "int8") {
    const q = new Int8Array(mem.bytes(W, n * k).slice().buffer);
    for (let i = 0; i < n * k; i++) out[i] = q[i];
  } else if (fmt === "int4") {
    const b = mem.bytes(W, (n * k) / 2), s = mem.f32(sc, n * (k / group));
    for (let i = 0; i < n * k; i++) {
      const byte = b[i >> 1], q = i & 1 ? (byte << 24) >> 28 : (byte << 28) >> 28;
      out[i] = f(q * s[Math.floor(i / k) * (k / group) + Math.floor((i % k) / group)]);
    }
  } else {
    const b = mem.bytes(W, (n * k) / 2), s = mem.bytes(sc, (n * k) / NVFP4_BLOCK);
    for (let i = 0; i < n * k; i++) out[i] = E2M1_DECODE[i & 1 ? b[i >> 1] >> 4 : b[i >> 1] & 15] * E4M3_DECODE[s[i >> 4]];
  }
  return out;
}

/** The stand-in of a lowbit.cu entry point; false for any other kernel. `maxRows`: the step's rows. */
export function lowbitKernelStandIn(mem: FakeMemory, l: KernelLaunch, maxRows: number): boolean {
  const A = l.args as (bigint & number)[];
  const act = /^lowbit_act_(int8|e4m3|nvfp4)_bf16$/.exec(l.kernel);
  if (act) {
    const isInt8 = act[1] === "int8";
    const [x, pre, xq, rs, rows, k] = isInt8 ? A : [A[0], 0n, A[1], 0n, A[2], A[3]];
    const a = isInt8 ? 0 : A[4], swz = isInt8 ? A[6] : A[5];
    assert.ok(swz === 0 || swz === 1, `${l.kernel}: swz ${swz}`);
    if (swz) assert.ok(k % (isInt8 ? 16 : 32) === 0, `${l.kernel}: k ${k} for the GEMV order`);
    assert.ok(rows >= 1 && rows <= maxRows && l.grid[0] === rows && l.block === 256, `${l.kernel}: rows ${rows}, grid ${l.grid}`);
    assert.ok(k % (act[1] === "nvfp4" ? 16 : 8) === 0, `${l.kernel}: k ${k}`);
    disjoint(l.kernel, "x and xq", x, rows * k * 2, xq, rows * k * 2);
    const xv = ld(mem, x, rows * k), out = new Float32Array(rows * k);
    if (isInt8) {
      const p = pre ? mem.f32(pre, k) : null, scales = mem.f32(rs, rows);
      for (let r = 0; r < rows; r++) {
        let amax = 0;
        const xs = new Float32Array(k);
        for (let i = 0; i < k; i++) {
          xs[i] = p ? xv[r * k + i] * p[i] : xv[r * k + i];
          amax = Math.max(amax, Math.abs(xs[i]));
        }
        const s = amax > 0 ? f(amax / 127) : 1;
        scales[r] = s;
        for (let i = 0; i < k; i++) out[r * k + i] = Math.max(-127, Math.min(127, rne(f(xs[i] / s))));
      }
    } else if (act[1] === "e4m3") {
      for (let i = 0; i < rows * k; i++) out[i] = E4M3_DECODE[e4m3Encode(f(xv[i] / a))];
    } else {
      const codes = new Uint8Array(k), sx = new Uint8Array(k / NVFP4_BLOCK);
      for (let r = 0; r < rows; r++) {
        nvfp4QuantizeBlocks(xv, r * k, k, a, codes, 0, sx, 0);
        for (let i = 0; i < k; i++) out[r * k + i] = E2M1_DECODE[codes[i]] * E4M3_DECODE[sx[i >> 4]];
      }
    }
    stExact(mem, xq, swz ? swizzle(out, rows, k, isInt8 ? 2 : 4, false) : out, l.kernel);
    return true;
  }
  const dq = /^lowbit_dequant_(int8|int4|nvfp4)_bf16$/.exec(l.kernel);
  if (dq) {
    const [W, sc, out, n, k, group] = A;
    assert.deepEqual([...l.grid, l.block], [Math.ceil((n * k) / 8 / 256), 1, 1, 256], `${l.kernel}: grid`);
    assert.ok(k % 8 === 0 && k % group === 0 && group % 8 === 0, `${l.kernel}: k ${k}, group ${group}`);
    const w = dequantWeight(mem, dq[1], W, sc, n, k, group);
    if (dq[1] === "int4") st(mem, out, w);
    else stExact(mem, out, w, l.kernel);
    return true;
  }
  const gv = /^lowbit_gemv_(int8|int4|nvfp4)_bf16_m(\d)$/.exec(l.kernel);
  if (gv) {
    const [xq, W, sc, rs, bias, y, m, n, k, group, alpha] = A;
    const fmt = gv[1], M = Number(gv[2]);
    assert.ok(m >= 1 && m <= M && (M === 1 || m > M / 2) && m <= maxRows, `${l.kernel}: m ${m}`);
    assert.deepEqual([...l.grid, l.block], [Math.ceil(n / 8), 1, 1, 256], `${l.kernel}: grid`);
    assert.ok(k % (fmt === "int8" ? 16 : 32) === 0 && (fmt !== "int4" || group % 32 === 0), `${l.kernel}: k ${k}, group ${group}`);
    assert.ok(xq % 16n === 0n && W % 16n === 0n, `${l.kernel}: xq / W not 16-byte aligned`);
    disjoint(l.kernel, "xq and y", xq, m * k * 2, y, m * n * 2);
    const x = swizzle(ld(mem, xq, m * k), m, k, fmt === "int8" ? 2 : 4, true), b = bias ? ld(mem, bias, n) : null;
    // int8: the unscaled integers; int4 / nvfp4: the per-group / per-block scales inside the sum (exact here).
    const w = fmt === "int4" ? dequantExactInt4(mem, W, sc, n, k, group) : dequantWeight(mem, fmt, W, sc, n, k, group);
    const ws = fmt === "int8" ? mem.f32(sc, n) : null, rsv = fmt === "int8" ? mem.f32(rs, m) : null;
    const o = new Float32Array(m * n);
    for (let r = 0; r < m; r++) {
      for (let j = 0; j < n; j++) {
        let acc = 0;
        for (let i = 0; i < k; i++) acc += x[r * k + i] * w[j * k + i];
        const v = ws ? f(f(acc * rsv![r]) * ws[j]) : f(acc * alpha);
        o[r * n + j] = b ? f(v + b[j]) : v;
      }
    }
    st(mem, y, o);
    return true;
  }
  return false;
}

/**
 * The GEMV's order of quantized rows [rows, k] (lowbit.cu segSlot): segment s (values 8s..8s+7) of a row at
 * slot (s % spc) · chunks + s / spc, chunks = k / (8 · spc); `back`: from that order to row-major.
 */
function swizzle(v: Float32Array, rows: number, k: number, spc: number, back: boolean): Float32Array {
  const out = new Float32Array(v.length), chunks = k / (8 * spc);
  for (let r = 0; r < rows; r++) {
    for (let s = 0; s < k / 8; s++) {
      const slot = (s % spc) * chunks + Math.floor(s / spc), from = back ? slot : s, to = back ? s : slot;
      out.set(v.subarray(r * k + from * 8, r * k + from * 8 + 8), r * k + to * 8);
    }
  }
  return out;
}

/** int4 weights as float64 q · s (the GEMV keeps each group's scale in fp32 instead of rounding q · s to bf16). */
function dequantExactInt4(mem: FakeMemory, W: bigint, sc: bigint, n: number, k: number, group: number): Float64Array {
  const out = new Float64Array(n * k), b = mem.bytes(W, (n * k) / 2), s = mem.f32(sc, n * (k / group));
  for (let i = 0; i < n * k; i++) {
    const byte = b[i >> 1], q = i & 1 ? (byte << 24) >> 28 : (byte << 28) >> 28;
    out[i] = q * s[Math.floor(i / k) * (k / group) + Math.floor((i % k) / group)];
  }
  return out;
}

/** Code nibble and scale byte of element (j, i) of a tiled NVFP4 weight (lib/backends/cuda/nvfp4_tiles.ts). */
function tiledAt(codes: Uint8Array, scales: Uint8Array, k: number, j: number, i: number): { code: number; scale: number } {
  const rt = j >> 4, g = j & 7, hi = (j & 15) >= 8 ? 1 : 0, q = i >> 6, b = (i >> 4) & 3, t = (i >> 2) & 3, e = i & 3;
  const tile = rt * (k / 64) + q, o = tile * 512 + (4 * g + t) * 16 + b * 4 + 2 * hi + (e >> 1);
  return { code: (codes[o] >> ((e & 1) * 4)) & 15, scale: scales[tile * 64 + g * 8 + 4 * hi + b] };
}

/**
 * nvfp4_act_mma's outputs for rows [rows, k] of (bf16-exact) values v: doubled e2m1 codes in the mma's B fragment
 * order at xq, their negations after them, the e4m3 block scales as f32 at sx.
 */
export function nvfp4ActRows(mem: FakeMemory, v: Float32Array, rows: number, k: number, a: number, xq: bigint, sx: bigint): void {
  assert.ok(k % 64 === 0, `nvfp4 act rows: k ${k}`);
  const q = mem.bytes(xq, 2 * rows * k), s = mem.f32(sx, rows * (k / 16));
  const codes = new Uint8Array(k), sb = new Uint8Array(k / 16);
  for (let r = 0; r < rows; r++) {
    nvfp4QuantizeBlocks(v, r * k, k, a, codes, 0, sb, 0);
    for (let i = 0; i < k; i++) {
      const blk = i >> 4, o = r * k + (blk >> 2) * 64 + ((i & 15) >> 2) * 16 + (blk & 3) * 4 + (i & 3), c = 2 * E2M1_DECODE[codes[i]];
      q[o] = c & 255;
      q[rows * k + o] = -c & 255;
    }
    for (let b = 0; b < k / 16; b++) s[r * (k / 16) + b] = E4M3_DECODE[sb[b]];
  }
}

/** Stand-ins of kernels/nvfp4_mma.cu (CudaFlags.nvfp4Mma); false for any other kernel. */
export function nvfp4MmaKernelStandIn(mem: FakeMemory, l: KernelLaunch, maxRows: number): boolean {
  const A = l.args as (bigint & number)[];
  if (l.kernel === "nvfp4_act_mma_bf16") {
    const [x, xq, sx, rows, k, a] = A;
    assert.ok(
      rows >= 1 && rows <= maxRows && l.grid[1] === rows && l.grid[0] * 1024 >= k && l.block === 256 && k % 64 === 0,
      `${l.kernel}: rows ${rows}, k ${k}`,
    );
    disjoint(l.kernel, "x and xq", x, rows * k * 2, xq, rows * k * 2);
    nvfp4ActRows(mem, ld(mem, x, rows * k), rows, k, a, xq, sx);
    return true;
  }
  if (l.kernel === "nvfp4_dequant_mma_bf16") {
    const [W, sc, out, n, k] = A;
    assert.deepEqual([...l.grid, l.block], [Math.ceil((n * k) / 8 / 256), 1, 1, 256], `${l.kernel}: grid`);
    const codes = mem.bytes(W, (n * k) / 2), scales = mem.bytes(sc, (n * k) / 16), w = new Float32Array(n * k);
    for (let j = 0; j < n; j++) {
      for (let i = 0; i < k; i++) {
        const c = tiledAt(codes, scales, k, j, i);
        w[j * k + i] = E2M1_DECODE[c.code] * E4M3_DECODE[c.scale];
      }
    }
    stExact(mem, out, w, l.kernel);
    return true;
  }
  // nvfp4_gemv_k32x_act*: nvfp4_act_mma's codes (in shared memory on the GPU), then nvfp4_gemv_k32x*'s sums.
  const ga = /^nvfp4_gemv_(k32x)_act(_w16|_logits)?_bf16_m1$/.exec(l.kernel);
  if (ga) {
    const [x, W, sc, bias, y, n, k, a, alpha] = A;
    assert.equal(l.sharedBytes, 2 * k + k / 4, `${l.kernel}: shared memory`);
    const xq = mem.alloc(2 * k), sx = mem.alloc(k / 4);
    nvfp4ActRows(mem, ld(mem, x, k), 1, k, a, xq, sx);
    const kernel = `nvfp4_gemv_${ga[1]}${ga[2] ?? ""}_bf16_m1`;
    return nvfp4MmaKernelStandIn(mem, { ...l, kernel, args: [xq, W, sc, sx, bias, y, 1, n, k, 0, alpha], sharedBytes: undefined }, maxRows);
  }
  // nvfp4_gemv_k32x (nvfp4GemvK32, m = 1): the same sums, added in another fp32 order (exact here).
  const gv = /^nvfp4_gemv_(mma|k32x)(_w16|_logits)?_bf16_m(\d)$/.exec(l.kernel);
  if (!gv) return false;
  const [xq, W, sc, sx, bias, y, m, n, k, , alpha] = A;
  const M = Number(gv[3]), NW = gv[2] === "_w16" ? 16 : 8, logits = gv[2] === "_logits";
  assert.ok(m >= 1 && m <= M && m <= maxRows && (M === 1 || m > 1) && (gv[1] === "mma" || M === 1), `${l.kernel}: m ${m}`);
  assert.ok(l.grid[0] === n / 16 || (l.grid[0] < n / 16 && (k / 64) % (4 * NW) === 0), `${l.kernel}: grid ${l.grid}`);
  assert.deepEqual([...l.grid.slice(1), l.block], [1, 1, 32 * NW], `${l.kernel}: grid`);
  assert.ok(n % 16 === 0 && k % 64 === 0 && xq % 16n === 0n && W % 16n === 0n && sx % 16n === 0n, `${l.kernel}: shape / alignment`);
  disjoint(l.kernel, "xq and y", xq, 2 * m * k, y, m * n * (logits ? 4 : 2));
  const q = new Int8Array(mem.bytes(xq, 2 * m * k).slice().buffer), s = mem.f32(sx, m * (k / 16));
  const codes = mem.bytes(W, (n * k) / 2), scales = mem.bytes(sc, (n * k) / 16), b = bias ? ld(mem, bias, n) : null;
  const o = new Float32Array(m * n);
  for (let r = 0; r < m; r++) {
    for (let j = 0; j < n; j++) {
      // Exact block sums of doubled codes, scaled by the exact e4m3 products (fp32 on the GPU, exact here).
      let acc = 0;
      for (let blk = 0; blk < k / 16; blk++) {
        let dot = 0, sw = 0;
        for (let e = 0; e < 16; e++) {
          const i = blk * 16 + e, c = tiledAt(codes, scales, k, j, i);
          const xo = r * k + (blk >> 2) * 64 + (e >> 2) * 16 + (blk & 3) * 4 + (e & 3);
          assert.equal(q[m * k + xo], -q[xo] + 0, `${l.kernel}: xn is not −xp`);
          dot += q[xo] * 2 * E2M1_DECODE[c.code];
          sw = E4M3_DECODE[c.scale];
        }
        acc += dot * sw * s[r * (k / 16) + blk];
      }
      const v = f(acc * f(0.25 * alpha));
      o[r * n + j] = b ? f(v + b[j]) : v;
    }
  }
  if (logits) mem.f32(y, m * n).set(o);
  else st(mem, y, o);
  return true;
}
