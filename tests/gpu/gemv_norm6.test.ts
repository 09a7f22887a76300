/**
 * GPU: gemv_fused_norm6 (gemvNorm6 / gemvNorm6Mlp, session 16: gemv_fused_norm at 6 blocks an SM) against
 * gemv_fused_norm_xpre (the default of ≤ 2-row decode steps' norm GEMVs): modes 0 / 2 / 3, m 1 / 2, with and without a
 * bias, on llama-3.2-1b / llama-3.1-8b shapes and a ragged one — bit for bit, one launch each and as a PDL chain in a
 * graph (each launch's x the previous one's output, so a kernel that read it before its wait would differ). (Session 16's
 * round 2 also checked gemv_fused_ks6 / gemv_fused_pf_xpre here, bitwise; both were removed, measured slower.)
 */
import { assert } from "../harness.ts";
import { loadKernelFile } from "../../lib/backends/cuda/compiler.ts";
import { CU } from "../../ffi/cuda.ts";
import { device, gpuTest, seededUniform } from "./gpu.ts";

const FUSED = ["ptr", "ptr", "ptr", "ptr", "ptr", "f32", "i32", "i32", "i32", "i32", "ptr", "i64"] as const;

/** bf16 bits of `f` (round to nearest even). */
function toBf16(f: Float32Array): Uint16Array {
  const u = new Uint32Array(f.buffer, f.byteOffset, f.length), out = new Uint16Array(f.length);
  for (let i = 0; i < f.length; i++) out[i] = (u[i] + 0x7fff + ((u[i] >>> 16) & 1)) >>> 16;
  return out;
}

gpuTest("gemv_fused_norm6: the same bits as gemv_fused_norm_xpre, one launch and a PDL chain in a graph", () => {
  const d = device();
  const names = [
    "gemv_fused_norm_xpre_bf16_m1",
    "gemv_fused_norm_xpre_bf16_m2",
    "gemv_fused_norm6_bf16_m1",
    "gemv_fused_norm6_bf16_m2",
  ];
  using mod = loadKernelFile(d, "gemv.cu", { options: ["-DLLMRT_SELECT=1", ...names.map((n) => `-DLLMRT_K_${n}=1`)] });
  const regs = names.map((n) => `${n} ${mod.kernel(n, FUSED).attribute(CU.FUNC_ATTRIBUTE_NUM_REGS)}`).join(", ");
  using stream = d.createStream();
  const maxK = 4096, maxN = 28672, wElems = 28672 * 4096; // the largest layer: 8B gate_up
  using W = d.alloc(wElems * 2);
  const tile = toBf16(seededUniform(7, 1 << 21, -0.05, 0.05)); // a 4 MB tile repeated over the weight
  for (let o = 0; o < wElems; o += 1 << 21) W.copyFromHost(tile.subarray(0, Math.min(1 << 21, wElems - o)), { offset: o * 2 });
  using x0 = d.alloc(2 * maxK * 2);
  x0.copyFromHost(toBf16(seededUniform(8, 2 * maxK, -1, 1)));
  using normW = d.alloc(maxK * 2);
  normW.copyFromHost(toBf16(seededUniform(9, maxK, 0.5, 1.5)));
  using bias = d.alloc(maxN * 2);
  bias.copyFromHost(toBf16(seededUniform(10, maxN, -0.1, 0.1)));
  using y = d.alloc(2 * maxN * 4);
  let cases = 0;
  // [n, k, mode]: 1B qkv / gate_up, 8B qkv / gate_up, an lm_head-like f32 one (ragged n), a ragged plain one
  for (const [n, k, mode] of [[3072, 2048, 0], [16384, 2048, 2], [6144, 4096, 0], [28672, 4096, 2], [16003, 4096, 3], [1000, 1024, 0]] as const) {
    for (const m of [1, 2]) {
      for (const withBias of [false, true]) {
        const outs: Uint16Array[] = [];
        for (const v of ["_xpre", "6"]) {
          const kern = mod.kernel(`gemv_fused_norm${v}_bf16_m${m}`, FUSED);
          const outBytes = m * (mode === 2 ? n / 2 : n) * (mode === 3 ? 4 : 2);
          y.fill(0, { stream });
          kern.launch(mode === 2 ? Math.ceil(n / 2 / 4) : Math.ceil(n / 8), 256, [x0, W, withBias ? bias.ptr : 0n, y, normW, 1e-5, m, n, k, mode, 0n, 0n], {
            stream,
          });
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
  // A PDL chain: 24 launches of a 4096 × 4096 layer (mode 0), each normalising the previous one's output, in a graph.
  const chain = (v: string): Uint16Array => {
    const kern = mod.kernel(`gemv_fused_norm${v}_bf16_m1`, FUSED);
    using a = d.alloc(4096 * 2);
    using b = d.alloc(4096 * 2);
    a.copyFromDevice(x0, 4096 * 2, { stream });
    using g = stream.capture((s) => {
      for (let i = 0; i < 24; i++) {
        const off = BigInt((i % 4) * 4096 * 4096 * 2);
        const [src, dst] = i % 2 === 0 ? [a, b] : [b, a];
        kern.launch(512, 256, [src, W.ptr + off, 0n, dst, normW, 1e-5, 1, 4096, 4096, 0, 0n, 0n], { stream: s, pdl: i > 0 });
      }
    });
    g.launch(stream);
    stream.synchronize();
    const out = new Uint16Array(4096);
    a.copyToHost(out);
    return out;
  };
  const ca = chain("_xpre"), cb = chain("6");
  let diff = 0;
  for (let i = 0; i < ca.length; i++) if (ca[i] !== cb[i]) diff++;
  assert.equal(diff, 0, `PDL chain of 24: ${diff} of 4096 differ`);
  console.log(`gemv_fused_norm6: ${cases} single-launch cases and a 24-launch PDL chain bitwise equal to the _xpre forms; registers ${regs}`);
});
