// quantGemvDeep4 (session 19, issue 12) on the GPU (skipped without one): quant_gemv_deep4{,_norm,_rs,_addnorm}_u4 — 4
// superchunks a warp in flight, zero points packed, slot pairs refilled as summed — against quant_gemv_fast*_u4, the
// default: the same products added in the same order, so every output must be the same bits (modes 0-3, m 1 / 3 / 8,
// g128 with and without zero points, g256, superchunk runs that pair and that do not, the 8B shapes' k 4096 / 14336).
// tests/quant_cuda.test.ts checks both families against float64.
import { loadKernelFile } from "../../lib/backends/cuda/compiler.ts";
import type { DeviceBuffer } from "../../lib/cuda/memory.ts";
import { type IntGrid, quantizeRtn } from "../../lib/quantization/algorithms.ts";
import { assert } from "../harness.ts";
import { device, gpuTest, seededUniform, toBf16Bits } from "./gpu.ts";

const P = ["ptr", "ptr", "ptr", "ptr", "ptr", "ptr", "ptr", "f32", "i32", "i32", "i32", "i32", "i32"] as const;
const bf16 = (f: Float32Array): Uint16Array => Uint16Array.from(f, (v) => toBf16Bits(v));

// [name, grid, N, K]: K 4096 (runs of 4: one round trip a warp), 14336 (runs of 14: pairs refilled), 1152 (9 superchunks:
// odd runs, no paired loads), 2560 (runs of 3), g256 (a group is two superchunks: unpaired loads).
const CASES: [string, IntGrid, number, number][] = [
  ["g128 zero points, k 4096", { bits: 4, groupSize: 128, hasZeroPoint: true }, 512, 4096],
  ["g128 zero points, k 14336", { bits: 4, groupSize: 128, hasZeroPoint: true }, 256, 14336],
  ["g128 zero points, k 1152", { bits: 4, groupSize: 128, hasZeroPoint: true }, 128, 1152],
  ["g128 symmetric, k 2560", { bits: 4, groupSize: 128, hasZeroPoint: false }, 256, 2560],
  ["g256 zero points, k 4096", { bits: 4, groupSize: 256, hasZeroPoint: true }, 256, 4096],
];

function up(d: ReturnType<typeof device>, a: ArrayBufferView): DeviceBuffer {
  const b = d.alloc(a.byteLength);
  b.copyFromHost(a);
  return b;
}

for (const [name, grid, N, K] of CASES) {
  gpuTest(`quant_gemv_deep4_u4 ${name}: the same bits as quant_gemv_fast_u4 (plain, _norm, _rs, _addnorm; modes 0-3; m 1/3/8)`, () => {
    const d = device();
    const names = ["", "_norm", "_rs", "_addnorm"].flatMap((f) => [`quant_gemv_fast${f}_u4`, `quant_gemv_deep4${f}_u4`]);
    using mod = loadKernelFile(d, "quant_gemv.cu", { options: ["-DLLMRT_SELECT", ...names.map((n) => `-DLLMRT_K_${n}=1`)] });
    const t = quantizeRtn(seededUniform(5 + N, N * K, -0.05, 0.05), N, K, grid);
    using W = up(d, t.packed);
    using s = up(d, t.scales);
    using z = t.zeros ? up(d, t.zeros) : null;
    using bias = up(d, bf16(seededUniform(9, N, -0.2, 0.2)));
    using normW = up(d, bf16(seededUniform(11, K, 0.5, 1.5)));
    // _rs: ssq [m, K / 16] tile sums of squares (positive); _addnorm writes xw [m, N] and ssq [m, N / 16].
    using ssqIn = up(d, seededUniform(13, 8 * (K / 16), 0.5, 2));
    let launches = 0;
    for (const m of [1, 3, 8]) {
      using x = up(d, bf16(seededUniform(17 + m, m * K)));
      for (const form of ["", "_norm", "_rs", "_addnorm"]) {
        if (form === "_norm" && m * K > 8192) continue; // the prologue's stage holds 8192 elements
        for (const mode of form === "_addnorm" ? [1] : [0, 1, 2, 3]) {
          const outN = mode === 2 ? N / 2 : N, bytes = mode === 3 ? 4 : 2;
          const init = bf16(seededUniform(50 + mode, m * outN));
          const outs: Uint8Array[] = [];
          for (const fam of ["quant_gemv_fast", "quant_gemv_deep4"]) {
            using y = d.alloc(m * outN * bytes);
            using xw = d.alloc(m * N * 2);
            using ssqOut = d.alloc(m * (N / 16) * 4);
            y.copyFromHost(mode === 3 ? new Uint8Array(m * outN * 4) : init);
            const nw = form === "_norm" || form === "_addnorm" ? normW.ptr : form === "_rs" ? ssqIn.ptr : 0n;
            const args = [x, W, s, z ?? 0n, bias, y, nw, 1e-5, m, N, K, grid.groupSize, mode];
            if (form === "_addnorm") mod.kernel(`${fam}_addnorm_u4`, [...P, "ptr", "ptr"]).launch(N / 16, 256, [...args, xw, ssqOut]);
            else mod.kernel(`${fam}${form}_u4`, P).launch(N / 16, 256, args);
            const o = new Uint8Array(m * outN * bytes), ow = new Uint8Array(form === "_addnorm" ? m * N * 2 + m * (N / 16) * 4 : 0);
            y.copyToHost(o);
            if (form === "_addnorm") {
              xw.copyToHost(ow.subarray(0, m * N * 2));
              ssqOut.copyToHost(ow.subarray(m * N * 2));
            }
            outs.push(new Uint8Array([...o, ...ow]));
            launches++;
          }
          const [a, b] = outs;
          const diff = a.findIndex((v, i) => v !== b[i]);
          assert.ok(diff < 0, `${name} ${form || "plain"} m=${m} mode=${mode}: deep4 differs from fast at byte ${diff}`);
        }
      }
    }
    assert.ok(launches > 40, `only ${launches} launches`);
  });
}
