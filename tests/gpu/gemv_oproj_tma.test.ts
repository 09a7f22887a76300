/**
 * GPU: gemv_fused_tma_xpre (gemvOprojTma, session 16: the first 2 chunks of each warp's weight row bulk-copied into static
 * shared memory and the next one loaded into registers before pdlWait) against gemv_fused_xpre (the default of ≤ 2-row
 * decode GEMVs): modes 0 / 1 / 3, m 1 / 2, on llama-3.2-1b / llama-3.1-8b o_proj shapes and ragged ones (a row shorter
 * than the head, a row not a whole number of chunks) — bit for bit, one launch each and as a PDL chain in a graph (each
 * launch's x and residual the previous one's output, so a kernel that read them before its wait would differ).
 */
import { assert, test } from "../harness.ts";
import { loadKernelFile } from "../../lib/backends/cuda/compiler.ts";
import { device, gpuProbe, gpuTest, seededUniform } from "./gpu.ts";

const hopper = gpuProbe.ok && device().supportsPdl;
const tmaTest = hopper ? gpuTest : test.skipIf(gpuProbe.ok ? "cp.async.bulk needs compute capability 9.0+" : "no GPU", true);
const FUSED = ["ptr", "ptr", "ptr", "ptr", "ptr", "f32", "i32", "i32", "i32", "i32", "ptr", "i64"] as const;

/** bf16 bits of `f` (round to nearest even). */
function toBf16(f: Float32Array): Uint16Array {
  const u = new Uint32Array(f.buffer, f.byteOffset, f.length), out = new Uint16Array(f.length);
  for (let i = 0; i < f.length; i++) out[i] = (u[i] + 0x7fff + ((u[i] >>> 16) & 1)) >>> 16;
  return out;
}

tmaTest("gemv_fused_tma_xpre: the same bits as gemv_fused_xpre, one launch and a PDL chain in a graph", () => {
  const d = device();
  const names = ["gemv_fused_xpre_bf16_m1", "gemv_fused_xpre_bf16_m2", "gemv_fused_tma_xpre_bf16_m1", "gemv_fused_tma_xpre_bf16_m2"];
  using mod = loadKernelFile(d, "gemv.cu", { options: ["-DLLMRT_SELECT=1", ...names.map((n) => `-DLLMRT_K_${n}=1`)] });
  using stream = d.createStream();
  const maxK = 8192, maxN = 8192, wElems = 4096 * 8192;
  using W = d.alloc(wElems * 2);
  const tile = toBf16(seededUniform(7, 1 << 21, -0.05, 0.05)); // a 4 MB tile repeated over the weight
  for (let o = 0; o < wElems; o += 1 << 21) W.copyFromHost(tile.subarray(0, Math.min(1 << 21, wElems - o)), { offset: o * 2 });
  using x0 = d.alloc(2 * maxK * 2);
  x0.copyFromHost(toBf16(seededUniform(8, 2 * maxK, -1, 1)));
  using bias = d.alloc(maxN * 2);
  bias.copyFromHost(toBf16(seededUniform(10, maxN, -0.1, 0.1)));
  using y = d.alloc(2 * maxN * 4);
  let cases = 0;
  // [n, k, mode]: 1B o_proj, 8B o_proj, a plain and an f32-out one, a row shorter than the head (k 1024: 128 vectors),
  // a row of 2.5 chunks (k 5120: 640 vectors), a ragged n
  for (const [n, k, mode] of [[2048, 2048, 1], [4096, 4096, 1], [4096, 4096, 0], [3000, 4096, 3], [1000, 1024, 1], [1003, 5120, 1]] as const) {
    for (const m of [1, 2]) {
      for (const withBias of [false, true]) {
        const outs: Uint16Array[] = [];
        for (const v of ["", "_tma"]) {
          const kern = mod.kernel(`gemv_fused${v}_xpre_bf16_m${m}`, FUSED);
          const outBytes = m * n * (mode === 3 ? 4 : 2);
          y.copyFromDevice(x0, outBytes, { stream }); // mode 1 adds into y
          kern.launch(Math.ceil(n / 8), 256, [x0, W, withBias ? bias.ptr : 0n, y, 0n, 0, m, n, k, mode, 0n, 0n], { stream });
          stream.synchronize();
          const h = new Uint16Array(outBytes / 2);
          y.copyToHost(h);
          outs.push(h);
        }
        let diff = 0;
        for (let i = 0; i < outs[0].length; i++) if (outs[0][i] !== outs[1][i]) diff++;
        assert.equal(diff, 0, `n ${n} k ${k} mode ${mode} m ${m} bias ${withBias}: ${diff} of ${outs[0].length} differ`);
        cases++;
      }
    }
  }
  // A PDL chain: 24 launches of a 4096 × 4096 layer, alternately x → h (mode 0) and h → x (mode 1, residual), in a graph.
  const chain = (v: string): Uint16Array => {
    const kern = mod.kernel(`gemv_fused${v}_xpre_bf16_m1`, FUSED);
    using h = d.alloc(4096 * 2);
    using xs = d.alloc(4096 * 2);
    xs.copyFromDevice(x0, 4096 * 2, { stream });
    using g = stream.capture((s) => {
      for (let i = 0; i < 24; i++) {
        const off = BigInt((i % 2) * 4096 * 4096 * 2);
        const [src, dst, mode] = i % 2 === 0 ? [xs, h, 0] : [h, xs, 1];
        kern.launch(512, 256, [src, W.ptr + off, 0n, dst, 0n, 0, 1, 4096, 4096, mode, 0n, 0n], { stream: s, pdl: i > 0 });
      }
    });
    g.launch(stream);
    stream.synchronize();
    const out = new Uint16Array(4096);
    xs.copyToHost(out);
    return out;
  };
  const a = chain(""), b = chain("_tma");
  let diff = 0;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) diff++;
  assert.equal(diff, 0, `PDL chain of 24: ${diff} of 4096 differ`);
  console.log(`gemv_fused_tma_xpre: ${cases} single-launch cases and a 24-launch PDL chain bitwise equal to gemv_fused_xpre`);
});
