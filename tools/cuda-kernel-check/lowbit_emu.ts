/**
 * Desk check of kernels/lowbit.cu on a machine without a GPU: builds the kernels with the CPU emulation of
 * tools/cuda-kernel-check/emu (every CUDA thread an OS thread, real block / warp barriers; lowbit_emu.h for the
 * e4m3 cvt and the read-only loads; g++ ≥ 11), runs one linear of each format — activation quantizer (row-major
 * and in the GEMV's segment order), weight dequantizer, decode GEMV (m = 1, 3, 8) — and checks the results as
 * tests/gpu/lowbit_cuda.test.ts does on a GPU: the quantized activations and dequantized weights bit for bit,
 * the GEMV against the CPU backend's lowbitLinear within one bf16 rounding. It checks the kernels' index math and
 * roundings, not the hardware.
 *
 *   bun tools/cuda-kernel-check/lowbit_emu.ts [N K]   (default 96 1024)
 */
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { lowbitLinear } from "../../lib/backends/cpu/lowbit_linear.ts";
import { cpuQuantized, expectedDequant, weight } from "../../tests/lowbit_ref.ts";

const here = new URL("./emu/", import.meta.url).pathname;
const kdir = new URL("../../lib/backends/cuda/kernels/", import.meta.url).pathname;
const out = join(here, "build");
mkdirSync(out, { recursive: true });
const gpp = (args: string[]): void => void execFileSync("g++", ["-std=c++20", "-O1", "-pthread", "-w", ...args], { stdio: "inherit" });
writeFileSync(join(out, "lowbit.cpp"), readFileSync(join(kdir, "lowbit.cu")));
gpp([`-I${kdir}`, "-include", join(here, "cuda_emu.h"), "-include", join(here, "lowbit_emu.h"), "-c", join(out, "lowbit.cpp"), "-o", join(out, "lowbit.o")]);
gpp([`-I${here}`, "-c", join(here, "emu_launch.cpp"), "-o", join(out, "emu_launch.o")]);
gpp([`-I${here}`, "-c", join(here, "lowbit_emu_main.cpp"), "-o", join(out, "lowbit_emu_main.o")]);
gpp(["-o", join(out, "lowbit_emu"), join(out, "lowbit.o"), join(out, "emu_launch.o"), join(out, "lowbit_emu_main.o")]);

const N = Number(process.argv[2] ?? 96), K = Number(process.argv[3] ?? 1024);
const bf = (v: number): number => {
  const f = new Float32Array([v]), u = new Uint32Array(f.buffer);
  u[0] = ((u[0] + 0x7fff + ((u[0] >>> 16) & 1)) >>> 16) << 16;
  return f[0];
};
const toBits = (v: ArrayLike<number>): Uint16Array =>
  Uint16Array.from(v as ArrayLike<number>, (x) => new Uint32Array(new Float32Array([bf(x)]).buffer)[0] >>> 16);
const fromBits = (b: Uint16Array): Float32Array => new Float32Array(Uint32Array.from(b, (h) => h << 16).buffer);
/** Same generator as tests/gpu/gpu.ts seededUniform. */
function uniform(seed: number, n: number, lo: number, hi: number): Float32Array {
  let s = seed >>> 0;
  const o = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    o[i] = lo + (hi - lo) * (((t ^ (t >>> 14)) >>> 0) / 4294967296);
  }
  return o;
}

let failures = 0;
const report = (ok: boolean, what: string): void => {
  if (!ok) failures++;
  console.log(`${ok ? "ok  " : "FAIL"} ${what}`);
};
for (const fmt of ["int8", "int4", "nvfp4"] as const) {
  const { f, tensors, cpu, pre } = weight(fmt, N, K);
  const a = f.activationScale ?? 0, alpha = fmt === "nvfp4" ? Math.fround(a * f.globalScale!) : a;
  const group = fmt === "int4" ? f.groupSize : fmt === "nvfp4" ? 16 : K;
  const biasB = toBits(uniform(5, N, -0.5, 0.5));
  for (const m of [1, 3, 8]) {
    const dir = mkdtempSync(join(tmpdir(), "lowbit-emu-"));
    try {
      const x = uniform(7 + m, m * K, -3, 3);
      for (let r = 0; r < m; r++) x[r * K + 5] = 40;
      const xb = toBits(x), xf = fromBits(xb);
      writeFileSync(join(dir, "x.bin"), xb);
      writeFileSync(join(dir, "w.bin"), tensors.get("w")!);
      writeFileSync(join(dir, "s.bin"), tensors.get("w.scales")!);
      writeFileSync(join(dir, "pre.bin"), new Uint8Array(pre.buffer));
      writeFileSync(join(dir, "bias.bin"), biasB);
      execFileSync(join(out, "lowbit_emu"), [dir, fmt, String(N), String(K), String(m), String(a), String(alpha)], { stdio: "inherit" });
      const rd = (n: string): Uint8Array => new Uint8Array(readFileSync(join(dir, n)));
      const u16 = (n: string): Uint16Array => new Uint16Array(rd(n).slice().buffer);
      const want = cpuQuantized(fmt, xf, m, K, a, fmt === "int8" ? pre : null);
      const act0 = fromBits(u16("act0.bin")), act1 = fromBits(u16("act1.bin"));
      let diff = 0;
      for (let i = 0; i < m * K; i++) if (act0[i] !== want.q[i]) diff++;
      report(diff === 0, `${fmt} m=${m}: act (row-major) ${diff} of ${m * K} values differ from the CPU's`);
      // The GEMV order: segment s of a row at slot (s % spc) · chunks + s / spc.
      const spc = fmt === "int8" ? 2 : 4, chunks = K / (8 * spc);
      let sdiff = 0;
      for (let r = 0; r < m; r++) {
        for (let s = 0; s < K / 8; s++) {
          const slot = (s % spc) * chunks + Math.floor(s / spc);
          for (let e = 0; e < 8; e++) if (act1[r * K + slot * 8 + e] !== want.q[r * K + s * 8 + e]) sdiff++;
        }
      }
      report(sdiff === 0, `${fmt} m=${m}: act (GEMV order) ${sdiff} values misplaced`);
      if (fmt === "int8") {
        const rs = new Float32Array(rd("rs.bin").slice().buffer);
        report(Array.from(rs).every((v, i) => v === want.scales[i]), `${fmt} m=${m}: per-token scales ${Array.from(rs).join(",")}`);
      }
      if (m === 1) {
        const dq = fromBits(u16("dq.bin")), wantDq = expectedDequant(fmt, tensors, N, K, group);
        let bad = 0;
        for (let i = 0; i < N * K; i++) if (dq[i] !== wantDq[i]) bad++;
        report(bad === 0, `${fmt}: dequant ${bad} of ${N * K} weights differ`);
      }
      const y = fromBits(u16("y.bin")), ref = new Float32Array(m * N);
      lowbitLinear(xf, cpu, fromBits(biasB), m, N, K, ref);
      let worst = 0;
      for (let i = 0; i < m * N; i++) worst = Math.max(worst, Math.abs(y[i] - ref[i]) / Math.max(Math.abs(ref[i]), 0.05));
      report(worst <= 2 ** -7, `${fmt} m=${m}: GEMV max relative error ${worst.toExponential(2)} (≤ 2^-7, one bf16 ulp; the store alone 2^-8)`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
}
console.log(failures === 0 ? "all checks passed" : `${failures} checks FAILED`);
process.exit(failures === 0 ? 0 : 1);
