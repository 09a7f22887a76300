/**
 * GPU: the session-12 prefill row kernels against the kernels they replace, bitwise (skipped without a GPU):
 * - rmsnorm_warp_bf16 (prefillNormWarp, one warp a row) vs rmsnorm_bf16 launched with 256 threads a row, hidden 1024 …
 *   4096, rows not a multiple of 4, out separate and in place, rows of very different magnitudes;
 * - silu_mul_rev_bf16 (prefillSiluRev, tokens last first) vs silu_mul_bf16;
 * - rope_kv_write_tab_bf16 over rope_table_f32's table (prefillRopeTable) vs rope_kv_write_bf16: q and the KV cache.
 * The launch plan's choice of them: tests/cuda_launch_plan_fused.test.ts (fake device).
 */
import { loadKernelFile } from "../../lib/backends/cuda/compiler.ts";
import { assert } from "../harness.ts";
import { device, gpuTest, seededUniform, toBf16Bits } from "./gpu.ts";

const bf16 = (f: Float32Array): Uint16Array => Uint16Array.from(f, (v) => toBf16Bits(v));
const NORM = ["ptr", "ptr", "ptr", "i32", "i32", "f32"] as const;
const SILU = ["ptr", "ptr", "i32", "i32"] as const;

/** Index of the first element where a and b differ, or -1. */
function firstDiff(a: Uint16Array, b: Uint16Array): number {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return i;
  return -1;
}

gpuTest("rmsnorm_warp_bf16: the bits of rmsnorm_bf16 (256 threads a row), hidden 1024..4096, separate and in place", () => {
  const d = device();
  using mod = loadKernelFile(d, "rmsnorm.cu");
  const ref = mod.kernel("rmsnorm_bf16", NORM), warp = mod.kernel("rmsnorm_warp_bf16", NORM);
  const rows = 37, eps = 1e-5;
  for (const hidden of [1024, 2048, 3072, 4096]) {
    const x = seededUniform(hidden + 3, rows * hidden, -2, 2);
    for (let r = 0; r < rows; r++) for (let i = 0; i < hidden; i++) x[r * hidden + i] *= 2 ** ((r % 9) - 4);
    const xb = bf16(x), wb = bf16(seededUniform(hidden + 5, hidden, 0.5, 1.5));
    using dx = d.alloc(xb.byteLength);
    using dw = d.alloc(wb.byteLength);
    using dRef = d.alloc(xb.byteLength);
    using dOut = d.alloc(xb.byteLength);
    dx.copyFromHost(xb);
    dw.copyFromHost(wb);
    ref.launch(rows, 256, [dx, dw, dRef, rows, hidden, eps]);
    warp.launch(Math.ceil(rows / 4), 128, [dx, dw, dOut, rows, hidden, eps]);
    const want = new Uint16Array(xb.length), got = new Uint16Array(xb.length);
    dRef.copyToHost(want);
    dOut.copyToHost(got);
    const i = firstDiff(got, want);
    assert.equal(i, -1, `hidden ${hidden}: element ${i} (row ${Math.floor(i / hidden)}) ${got[i]} vs rmsnorm_bf16 ${want[i]}`);
    // In place (out = x).
    warp.launch(Math.ceil(rows / 4), 128, [dx, dw, dx, rows, hidden, eps]);
    dx.copyToHost(got);
    const j = firstDiff(got, want);
    assert.equal(j, -1, `hidden ${hidden} in place: element ${j} ${got[j]} vs rmsnorm_bf16 ${want[j]}`);
  }
});

gpuTest("silu_mul_rev_bf16: the bits of silu_mul_bf16", () => {
  const d = device();
  using mod = loadKernelFile(d, "silu_mul.cu");
  const ref = mod.kernel("silu_mul_bf16", SILU), rev = mod.kernel("silu_mul_rev_bf16", SILU);
  for (const [rows, inter] of [[33, 8192], [5, 1000]] as const) {
    const gu = bf16(seededUniform(rows + inter, rows * 2 * inter, -6, 6));
    using dgu = d.alloc(gu.byteLength);
    using dRef = d.alloc(rows * inter * 2);
    using dOut = d.alloc(rows * inter * 2);
    dgu.copyFromHost(gu);
    const grid = [Math.ceil(inter / 2048), rows, 1] as [number, number, number];
    ref.launch(grid, 256, [dgu, dRef, rows, inter]);
    rev.launch(grid, 256, [dgu, dOut, rows, inter]);
    const want = new Uint16Array(rows * inter), got = new Uint16Array(rows * inter);
    dRef.copyToHost(want);
    dOut.copyToHost(got);
    const i = firstDiff(got, want);
    assert.equal(i, -1, `${rows}x${inter}: element ${i} ${got[i]} vs silu_mul_bf16 ${want[i]}`);
  }
});

gpuTest("rope_kv_write_tab_bf16 with rope_table_f32's table: the bits of rope_kv_write_bf16 (q and the KV cache)", () => {
  const d = device();
  using mod = loadKernelFile(d, "rope_kv_write.cu");
  const ROPE = ["ptr", "ptr", "ptr", "ptr", "ptr", "ptr", "ptr", "f32", "i32", "i32", "i32", "i32", "i32", "i32", "i32"] as const;
  const ref = mod.kernel("rope_kv_write_bf16", ROPE), tab = mod.kernel("rope_kv_write_tab_bf16", ROPE);
  const build = mod.kernel("rope_table_f32", ["ptr", "ptr", "i32", "i32", "f32"]);
  const maxSeqLen = 4096, tpb = 32, mbps = maxSeqLen / tpb, T = 100, scaling = 1.25;
  for (const [H, KV, HD] of [[32, 8, 64], [16, 4, 128]] as const) {
    const half = HD / 2;
    const invFreq = Float64Array.from({ length: half }, (_, i) => 1 / 500000 ** ((2 * i) / HD));
    const qkv = bf16(seededUniform(HD + 1, T * (H + 2 * KV) * HD, -3, 3));
    const positions = Int32Array.from({ length: T }, (_, t) => 3900 + t - (t % 3) * 1300);
    const rowBytes = KV * HD * 2, cacheBytes = mbps * 2 * tpb * rowBytes;
    using dInv = d.alloc(half * 8);
    using dTab = d.alloc(maxSeqLen * HD * 4);
    using dQkv = d.alloc(qkv.byteLength);
    using dPos = d.alloc(T * 4);
    using dStarts = d.alloc(8);
    using dTables = d.alloc(mbps * 4);
    using qA = d.alloc(T * H * HD * 2);
    using qB = d.alloc(T * H * HD * 2);
    using cA = d.alloc(cacheBytes);
    using cB = d.alloc(cacheBytes);
    dInv.copyFromHost(invFreq);
    dQkv.copyFromHost(qkv);
    dPos.copyFromHost(positions);
    dStarts.copyFromHost(Int32Array.of(0, T));
    dTables.copyFromHost(Int32Array.from({ length: mbps }, (_, i) => mbps - 1 - i));
    const zeros = new Uint8Array(cacheBytes);
    cA.copyFromHost(zeros);
    cB.copyFromHost(zeros);
    build.launch([maxSeqLen, 1, 1], 64, [dInv, dTab, maxSeqLen, half, scaling]);
    ref.launch([T, 1, 1], 128, [dQkv, qA, cA, dPos, dStarts, dTables, dInv, scaling, T, 1, H, KV, HD, tpb, mbps]);
    tab.launch([T, 1, 1], 128, [dQkv, qB, cB, dPos, dStarts, dTables, dTab, scaling, T, 1, H, KV, HD, tpb, mbps]);
    const get = (b: typeof qA, n: number): Uint16Array => {
      const h = new Uint16Array(n);
      b.copyToHost(h);
      return h;
    };
    const qi = firstDiff(get(qB, T * H * HD), get(qA, T * H * HD));
    assert.equal(qi, -1, `hd ${HD}: q element ${qi} differs`);
    const ci = firstDiff(get(cB, cacheBytes / 2), get(cA, cacheBytes / 2));
    assert.equal(ci, -1, `hd ${HD}: KV cache element ${ci} differs`);
  }
});
