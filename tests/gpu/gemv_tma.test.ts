/**
 * GPU: gemv_fused*_tma (gemvTma, session 12: the head of each warp's weight row slice bulk-copied into shared memory before
 * pdlWait) and gemv_fused*_occ (gemvOccupancy: 6 blocks a SM, m 1) against gemv_fused*_xpre (the default of ≤ 2-row
 * decode GEMVs): every mode, norm or not, KS 1 / 2 / 4, m 1 / 2, on
 * llama-3.2-1b / llama-3.1-8b shapes and a ragged one — bit for bit, one launch each and as a PDL chain in a graph
 * (each launch's x and residual the previous one's output, so a kernel that read them before its wait would differ).
 */
import { assert } from "../harness.ts";
import { loadKernelFile } from "../../lib/backends/cuda/compiler.ts";
import { GEMV_TMA_HEAD_VECTORS } from "../../lib/backends/cuda/linear_launch.ts";
import { device, gpuProbe, gpuTest, seededUniform } from "./gpu.ts";
import { test } from "../harness.ts";

const hopper = gpuProbe.ok && device().supportsPdl;
const tmaTest = hopper ? gpuTest : test.skipIf(gpuProbe.ok ? "cp.async.bulk needs compute capability 9.0+" : "no GPU", true);
const FUSED = ["ptr", "ptr", "ptr", "ptr", "ptr", "f32", "i32", "i32", "i32", "i32", "ptr", "i64"] as const;

/** bf16 bits of `f` (round to nearest even). */
function toBf16(f: Float32Array): Uint16Array {
  const u = new Uint32Array(f.buffer, f.byteOffset, f.length), out = new Uint16Array(f.length);
  for (let i = 0; i < f.length; i++) out[i] = (u[i] + 0x7fff + ((u[i] >>> 16) & 1)) >>> 16;
  return out;
}

tmaTest("gemv_fused*_tma: the same bits as gemv_fused*_xpre, one launch and a PDL chain in a graph", () => {
  const d = device();
  const names: string[] = [];
  for (const norm of ["", "_norm"]) {
    for (const ks of ["", "_ks"]) {
      for (const v of ["_xpre", "_tma", "_occ"]) for (const m of v === "_occ" ? [1] : [1, 2]) names.push(`gemv_fused${norm}${ks}${v}_bf16_m${m}`);
    }
  }
  using mod = loadKernelFile(d, "gemv.cu", { options: ["-DLLMRT_SELECT=1", ...names.map((n) => `-DLLMRT_K_${n}=1`)] });
  using stream = d.createStream();
  const maxK = 14336, maxN = 2 * 14336, wElems = 28672 * 4096; // the largest layer: 8B gate_up
  using W = d.alloc(wElems * 2);
  const tile = toBf16(seededUniform(7, 1 << 21, -0.05, 0.05)); // a 4 MB tile repeated over the weight
  for (let o = 0; o < wElems; o += 1 << 21) W.copyFromHost(tile.subarray(0, Math.min(1 << 21, wElems - o)), { offset: o * 2 });
  using x0 = d.alloc(2 * maxN * 2);
  x0.copyFromHost(toBf16(seededUniform(8, 2 * maxN, -1, 1)));
  using normW = d.alloc(maxK * 2);
  normW.copyFromHost(toBf16(seededUniform(9, maxK, 0.5, 1.5)));
  using bias = d.alloc(maxN * 2);
  bias.copyFromHost(toBf16(seededUniform(10, maxN, -0.1, 0.1)));
  using y = d.alloc(2 * maxN * 4);
  const ksOf = (k: number): number => (k >= 4 * 3072 && (k / 8) % 4 === 0 ? 4 : k >= 2 * 3072 && (k / 8) % 2 === 0 ? 2 : 1);
  let cases = 0;
  // [n, k, mode]: 1B qkv / o / gate_up / down, 8B qkv / gate_up / down, ragged n
  for (
    const [n, k, mode] of [[3072, 2048, 0], [2048, 2048, 1], [16384, 2048, 2], [2048, 8192, 1], [6144, 4096, 0], [28672, 4096, 2], [4096, 14336, 1], [
      1000,
      1024,
      0,
    ]] as const
  ) {
    for (const m of [1, 2]) {
      for (const norm of m * k <= 8192 ? [false, true] : [false]) {
        const ks = norm ? 1 : ksOf(k);
        const outs: Uint16Array[] = [];
        const variants = m === 1 ? ["_xpre", "_tma", "_occ"] : ["_xpre", "_tma"];
        for (const v of variants) {
          const kern = mod.kernel(`gemv_fused${norm ? "_norm" : ""}${ks > 1 ? "_ks" : ""}${v}_bf16_m${m}`, FUSED);
          // the head of each warp's slice: at most 256 16-byte vectors (GEMV_TMA_HEAD_VECTORS); static + dynamic may pass 48 KB
          const shared = v === "_tma" ? 8 * Math.min(k / ks / 8, GEMV_TMA_HEAD_VECTORS) * 16 : 0;
          if (shared > 0) kern.setMaxDynamicSharedMemory(shared);
          const grid = mode === 2 ? Math.ceil(n / 2 / (4 / ks)) : Math.ceil(n / (8 / ks));
          const outLen = m * (mode === 2 ? n / 2 : n);
          y.copyFromDevice(x0, outLen * 2, { stream }); // mode 1 adds into y
          kern.launch(grid, 256, [x0, W, bias, y, normW, 1e-5, m, n, k, mode | (ks > 1 ? ks << 4 : 0), 0n, 0n], { stream, sharedMemBytes: shared });
          stream.synchronize();
          const h = new Uint16Array(outLen);
          y.copyToHost(h);
          outs.push(h);
        }
        for (let j = 1; j < outs.length; j++) {
          let diff = 0;
          for (let i = 0; i < outs[0].length; i++) if (outs[0][i] !== outs[j][i]) diff++;
          assert.equal(diff, 0, `${variants[j]} n ${n} k ${k} mode ${mode} m ${m} norm ${norm} ks ${ks}: ${diff} of ${outs[0].length} differ`);
        }
        cases++;
      }
    }
  }
  // A PDL chain: 24 launches of a 2048 × 2048 layer, alternately x → h (mode 0) and h → x (mode 1, residual), in a graph.
  const chain = (v: string): Uint16Array => {
    const plain = mod.kernel(`gemv_fused${v}_bf16_m1`, FUSED), nrm = mod.kernel(`gemv_fused_norm${v}_bf16_m1`, FUSED);
    const shared = v === "_tma" ? 8 * GEMV_TMA_HEAD_VECTORS * 16 : 0;
    if (shared > 0) { for (const kern of [plain, nrm]) kern.setMaxDynamicSharedMemory(shared); }
    using h = d.alloc(2048 * 2);
    using xs = d.alloc(2048 * 2);
    xs.copyFromDevice(x0, 2048 * 2, { stream });
    using g = stream.capture((s) => {
      for (let i = 0; i < 24; i++) {
        const off = BigInt((i % 6) * 2048 * 2048 * 2);
        if (i % 2 === 0) {
          nrm.launch(256, 256, [xs, W.ptr + off, 0n, h, normW, 1e-5, 1, 2048, 2048, 0, 0n, 0n], { stream: s, pdl: i > 0, sharedMemBytes: shared });
        } else plain.launch(256, 256, [h, W.ptr + off, 0n, xs, 0n, 0, 1, 2048, 2048, 1, 0n, 0n], { stream: s, pdl: true, sharedMemBytes: shared });
      }
    });
    g.launch(stream);
    stream.synchronize();
    const out = new Uint16Array(2048);
    xs.copyToHost(out);
    return out;
  };
  const a = chain("_xpre"), b = chain("_tma");
  let diff = 0;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) diff++;
  assert.equal(diff, 0, `PDL chain of 24: ${diff} of 2048 differ`);
  console.log(`gemv_fused*_tma: ${cases} single-launch cases and a 24-launch PDL chain bitwise equal to _xpre`);
});

gpuTest("gemv_fused{_norm}_amax + sample_amax_f32: sample_f32's greedy ids (ties to the lowest index, NaN rows never win, all NaN → 0), keys zeroed", () => {
  const d = device();
  const names = ["gemv_fused_amax_bf16_m1", "gemv_fused_amax_bf16_m2", "gemv_fused_norm_amax_bf16_m1", "gemv_fused_norm_amax_bf16_m2"];
  using mod = loadKernelFile(d, "gemv.cu", { options: ["-DLLMRT_SELECT=1", ...names.map((n) => `-DLLMRT_K_${n}=1`)] });
  using smod = loadKernelFile(d, "sampling.cu", { options: ["-DLLMRT_SELECT=1", "-DLLMRT_K_sample_f32=1", "-DLLMRT_K_sample_amax_f32=1"] });
  const SAMPLE = ["ptr", "i32", "ptr", "ptr", "ptr", "ptr", "ptr", "ptr", "ptr"] as const;
  const sampleF32 = smod.kernel("sample_f32", SAMPLE), sampleAmax = smod.kernel("sample_amax_f32", [...SAMPLE, "ptr"]);
  using stream = d.createStream();
  const n = 16003, k = 2048;
  const x = toBf16(seededUniform(11, 2 * k, -1, 1));
  using xd = d.alloc(x.byteLength);
  xd.copyFromHost(x);
  using normW = d.alloc(k * 2);
  normW.copyFromHost(toBf16(seededUniform(12, k, 0.5, 1.5)));
  using W = d.alloc(n * k * 2);
  using logits = d.alloc(2 * n * 4);
  using keys = d.alloc(2 * 8);
  keys.fill(0);
  // per-row sampling params, all greedy: temperature 0, topK 0, topP 1, minP 0, seed, step
  using params = d.alloc(6 * 2 * 4);
  params.copyFromHost(new Uint32Array([0, 0, 0, 0, 0x3f800000, 0x3f800000, 0, 0, 1, 2, 3, 4]));
  const p = (i: number): bigint => params.ptr + BigInt(i * 8);
  using ids = d.alloc(2 * 4);
  let want: number[] = [];
  const run = (w: Uint16Array, label: string): void => {
    W.copyFromHost(w);
    for (const name of names) {
      const m = Number(name.at(-1));
      for (const kern of [sampleF32, sampleAmax]) {
        mod.kernel(name, FUSED).launch(Math.ceil(n / 8), 256, [xd, W, 0n, logits, normW, 1e-5, m, n, k, 3, keys, 0n], { stream });
        const args = [logits, n, p(0), p(1), p(2), p(3), p(4), p(5), ids];
        if (kern === sampleAmax) sampleAmax.launch(m, 512, [...args, keys], { stream });
        else sampleF32.launch(m, 512, args, { stream });
        stream.synchronize();
        const got = new Int32Array(m);
        ids.copyToHost(got);
        if (kern === sampleF32) {
          keys.fill(0); // sample_f32 leaves the GEMV's keys behind
          want = [...got];
        } else {
          assert.deepEqual([...got], want, `${label} ${name}: sample_amax_f32 vs sample_f32`);
          const left = new BigUint64Array(2);
          keys.copyToHost(left);
          assert.ok(left.every((v) => v === 0n), `${label} ${name}: keys left ${left}`);
        }
      }
    }
  };
  const w = toBf16(seededUniform(13, n * k, -0.05, 0.05));
  // rows 5000 and 9001: the same weights, aligned with x (the largest logits, tied): the lower index wins
  const top = new Uint16Array(k);
  for (let i = 0; i < k; i++) top[i] = x[i] & 0x8000 ? 0xbd4c : 0x3d4c; // ∓0.05
  w.set(top, 5000 * k);
  w.set(top, 9001 * k);
  w.fill(0x7fc0, 12000 * k, 12001 * k); // a NaN row
  run(w, "tie");
  w.fill(0x7fc0, 5000 * k, 5001 * k); // the first of the tie NaN: 9001 wins
  run(w, "NaN");
  w.fill(0x7fc0); // every logit NaN: id 0
  run(w, "all NaN");
});
