/**
 * GPU: the FP8 producers' fused quantization (CudaSessionOptions.fp8FusedQuant; skipped without a GPU):
 * fp8_rmsnorm_quant_bf16 (add 0 / 1) and fp8_silu_mul_quant_bf16 write the same e4m3 bytes and row scales as
 * rmsnorm_bf16 / add_rmsnorm_bf16 / silu_mul_bf16 followed by fp8_quantize_bf16, the same residual, and (when
 * asked) the same bf16 normed rows — bit for bit, static and per-token scales, llama-3.1-8b widths.
 */
import { loadKernelFile } from "../../lib/backends/cuda/compiler.ts";
import { assert } from "../harness.ts";
import { device, gpuTest, seededUniform, toBf16Bits } from "./gpu.ts";

const bf16 = (f: Float32Array): Uint16Array => Uint16Array.from(f, (v) => toBf16Bits(v));
const P = "ptr", I = "i32", F = "f32";

/** Index of the first differing element, or -1. */
function firstDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return i;
  return a.length === b.length ? -1 : a.length;
}

gpuTest("fp8_rmsnorm_quant_bf16 = (add_)rmsnorm_bf16 + fp8_quantize_bf16 and fp8_silu_mul_quant_bf16 = silu_mul_bf16 + fp8_quantize_bf16, bit for bit", () => {
  const d = device();
  using fp8 = loadKernelFile(d, "fp8_gemv.cu");
  using norm = loadKernelFile(d, "rmsnorm.cu");
  using silu = loadKernelFile(d, "silu_mul.cu");
  const quant = fp8.kernel("fp8_quantize_bf16", [P, P, P, I, I, F]);
  const fused = fp8.kernel("fp8_rmsnorm_quant_bf16", [P, P, P, P, P, P, I, I, F, F, I]);
  const fusedSilu = fp8.kernel("fp8_silu_mul_quant_bf16", [P, P, P, I, I, F]);
  const rmsnorm = norm.kernel("rmsnorm_bf16", [P, P, P, I, I, F]);
  const addRmsnorm = norm.kernel("add_rmsnorm_bf16", [P, P, P, P, I, I, F]);
  const siluMul = silu.kernel("silu_mul_bf16", [P, P, I, I]);
  const rows = 37, eps = 1e-5;
  for (const H of [4096, 896]) {
    const x = bf16(seededUniform(1 + H, rows * H, -3, 3)), res = bf16(seededUniform(2 + H, rows * H, -2, 2));
    const w = bf16(seededUniform(3 + H, H, 0.5, 1.5));
    for (let k = 0; k < H; k++) x[5 * H + k] = 0; // an all-zero input row (rmsnorm 0: per-token scale 1)
    using dx = d.alloc(rows * H * 2);
    using dr = d.alloc(rows * H * 2);
    using dw = d.alloc(H * 2);
    using dout = d.alloc(rows * H * 2);
    using dq = d.alloc(rows * H);
    using ds = d.alloc(rows * 4);
    dx.copyFromHost(x);
    dw.copyFromHost(w);
    const read = () => {
      const q = new Uint8Array(rows * H), s = new Float32Array(rows), r = new Uint16Array(rows * H), o = new Uint16Array(rows * H);
      dq.copyToHost(q);
      ds.copyToHost(s);
      dr.copyToHost(r);
      dout.copyToHost(o);
      return { q, s, r, o };
    };
    for (const add of [0, 1]) {
      for (const actScale of [0.011, 0]) {
        const label = `H ${H} add ${add} actScale ${actScale}`;
        // Unfused.
        dr.copyFromHost(res);
        dout.copyFromHost(new Uint16Array(rows * H));
        if (add) addRmsnorm.launch(rows, 256, [dx, dr, dw, dout, rows, H, eps]);
        else rmsnorm.launch(rows, 256, [dx, dw, dout, rows, H, eps]);
        quant.launch(rows, 256, [dout, dq, ds, rows, H, actScale]);
        const want = read();
        // Fused, with and without the bf16 rows.
        for (const withOut of [true, false]) {
          dr.copyFromHost(res);
          dout.copyFromHost(new Uint16Array(rows * H));
          dq.copyFromHost(new Uint8Array(rows * H));
          fused.launch(rows, 256, [dx, add ? dr : 0n, dw, withOut ? dout : 0n, dq, ds, rows, H, eps, actScale, add]);
          const got = read();
          assert.equal(firstDiff(got.q, want.q), -1, `${label}: e4m3 bytes`);
          assert.equal(firstDiff(got.s, want.s), -1, `${label}: row scales`);
          assert.equal(firstDiff(got.r, want.r), -1, `${label}: residual`);
          if (withOut) assert.equal(firstDiff(got.o, want.o), -1, `${label}: bf16 normed rows`);
          else assert.ok(got.o.every((v) => v === 0), `${label}: out 0 writes no bf16 rows`);
        }
      }
    }
  }
  for (const I of [14336, 896]) {
    const gu = bf16(seededUniform(7 + I, rows * 2 * I, -6, 6));
    for (let k = 0; k < 2 * I; k++) gu[3 * 2 * I + k] = 0;
    using dg = d.alloc(rows * 2 * I * 2);
    using dout = d.alloc(rows * I * 2);
    using dq = d.alloc(rows * I);
    using ds = d.alloc(rows * 4);
    dg.copyFromHost(gu);
    for (const actScale of [0.02, 0]) {
      siluMul.launch([Math.ceil(I / 2048), rows, 1], 256, [dg, dout, rows, I]);
      quant.launch(rows, 256, [dout, dq, ds, rows, I, actScale]);
      const wq = new Uint8Array(rows * I), wsc = new Float32Array(rows);
      dq.copyToHost(wq);
      ds.copyToHost(wsc);
      dq.copyFromHost(new Uint8Array(rows * I));
      fusedSilu.launch(rows, 256, [dg, dq, ds, rows, I, actScale]);
      const gq = new Uint8Array(rows * I), gs = new Float32Array(rows);
      dq.copyToHost(gq);
      ds.copyToHost(gs);
      assert.equal(firstDiff(gq, wq), -1, `silu I ${I} actScale ${actScale}: e4m3 bytes`);
      assert.equal(firstDiff(gs, wsc), -1, `silu I ${I} actScale ${actScale}: row scales`);
    }
  }
});

gpuTest("fp8FlatQuant: the flat quantize entry points = the row kernels (static scales), bit for bit", () => {
  const d = device();
  using fp8 = loadKernelFile(d, "fp8_gemv.cu");
  const quant = fp8.kernel("fp8_quantize_bf16", [P, P, P, I, I, F]);
  const quantFlat = fp8.kernel("fp8_quantize_flat_bf16", [P, P, P, I, I, F]);
  const silu = fp8.kernel("fp8_silu_mul_quant_bf16", [P, P, P, I, I, F]);
  const siluFlat = fp8.kernel("fp8_silu_mul_quant_flat_bf16", [P, P, P, I, I, F]);
  const rows = 37, actScale = 0.013;
  // 4104: a row end inside a block's last 2048-column chunk.
  for (const K of [14336, 4096, 4104]) {
    const x = bf16(seededUniform(11 + K, rows * 2 * K, -8, 8));
    using dx = d.alloc(rows * 2 * K * 2);
    using dq = d.alloc(rows * K);
    using ds = d.alloc(rows * 4);
    dx.copyFromHost(x);
    const run = (f: () => void): { q: Uint8Array; s: Float32Array } => {
      dq.copyFromHost(new Uint8Array(rows * K));
      ds.copyFromHost(new Float32Array(rows));
      f();
      const q = new Uint8Array(rows * K), sc = new Float32Array(rows);
      dq.copyToHost(q);
      ds.copyToHost(sc);
      return { q, s: sc };
    };
    const grid: [number, number, number] = [Math.ceil(K / 2048), rows, 1];
    const cases: [string, () => void, () => void][] = [
      ["silu_mul", () => silu.launch(rows, 256, [dx, dq, ds, rows, K, actScale]), () => siluFlat.launch(grid, 256, [dx, dq, ds, rows, K, actScale])],
      ["quantize", () => quant.launch(rows, 256, [dx, dq, ds, rows, K, actScale]), () => quantFlat.launch(grid, 256, [dx, dq, ds, rows, K, actScale])],
    ];
    for (const [name, ref, alt] of cases) {
      const want = run(ref), got = run(alt);
      assert.ok(want.q.some((v) => v !== 0), `${name} K ${K}: the reference wrote bytes`);
      assert.equal(firstDiff(got.q, want.q), -1, `${name} K ${K}: e4m3 bytes`);
      assert.equal(firstDiff(got.s, want.s), -1, `${name} K ${K}: row scales`);
    }
  }
});

gpuTest("fp8FastSilu: fp8_silu_mul_quant_fast_bf16 within one e4m3 step of fp8_silu_mul_quant_bf16 on a few bytes (hardware exp / division)", () => {
  const d = device();
  using fp8 = loadKernelFile(d, "fp8_gemv.cu");
  const silu = fp8.kernel("fp8_silu_mul_quant_bf16", [P, P, P, I, I, F]);
  const fast = fp8.kernel("fp8_silu_mul_quant_fast_bf16", [P, P, P, I, I, F]);
  const rows = 64, K = 14336, actScale = 0.013;
  using dx = d.alloc(rows * 2 * K * 2);
  using dq = d.alloc(rows * K);
  using ds = d.alloc(rows * 4);
  dx.copyFromHost(bf16(seededUniform(21, rows * 2 * K, -8, 8)));
  const run = (f: () => void): Uint8Array => {
    dq.copyFromHost(new Uint8Array(rows * K));
    f();
    const q = new Uint8Array(rows * K);
    dq.copyToHost(q);
    return q;
  };
  const want = run(() => silu.launch(rows, 256, [dx, dq, ds, rows, K, actScale]));
  const got = run(() => fast.launch([Math.ceil(K / 2048), rows, 1], 256, [dx, dq, ds, rows, K, actScale]));
  let differ = 0;
  for (let i = 0; i < want.length; i++) {
    if (got[i] === want[i]) continue;
    differ++;
    // e4m3 codes of one sign are ordered by magnitude: a neighbour code, or ±0 against the smallest subnormal.
    const same = (got[i] & 0x80) === (want[i] & 0x80) && Math.abs((got[i] & 0x7f) - (want[i] & 0x7f)) === 1;
    const zero = (got[i] & 0x7f) <= 1 && (want[i] & 0x7f) <= 1;
    assert.ok(same || zero, `byte ${i}: ${got[i]} vs ${want[i]}`);
  }
  console.log(`fp8_silu_mul_quant_fast_bf16: ${differ} of ${want.length} e4m3 bytes differ from the accurate kernel's (one step each)`);
  assert.ok(differ < want.length * 1e-3, `${differ} bytes differ`);
});
