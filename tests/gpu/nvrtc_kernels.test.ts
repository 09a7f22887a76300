/**
 * GPU: NVRTC compiles kernels/*.cu for the device's exact arch, caches the CUBIN, and the kernels
 * match the CPU on random data; compile errors carry the log; launch errors are CudaErrors.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { assert } from "../harness.ts";
import { CudaError } from "../../ffi/errors.ts";
import { compileCuda, kernelSource, loadKernelFile, nvrtcVersion } from "../../lib/backends/cuda/compiler.ts";
import { ValidationError } from "../../lib/util/errors.ts";
import { compare, describe, device, gpuTest, seededUniform } from "./gpu.ts";

const FILE = "runtime_test.cu";

gpuTest("NVRTC compiles for the device arch and the second compile is a cache hit", () => {
  const d = device();
  const dir = mkdtempSync(join(tmpdir(), "llmrt-cubin-"));
  try {
    const v = nvrtcVersion();
    assert.ok(v.major >= 12, `NVRTC ${v.major}.${v.minor}`);
    const src = kernelSource(FILE);
    const first = compileCuda(src, { arch: d.arch, name: FILE, cacheDir: dir });
    assert.equal(first.fromCache, false);
    assert.ok(first.cubin.byteLength > 100);
    // ELF magic: a CUBIN, not PTX.
    assert.deepEqual([...first.cubin.subarray(0, 4)], [0x7f, 0x45, 0x4c, 0x46]);
    const second = compileCuda(src, { arch: d.arch, name: FILE, cacheDir: dir });
    assert.equal(second.fromCache, true);
    assert.equal(second.key, first.key);
    assert.deepEqual(second.cubin, first.cubin);
    const other = compileCuda(src, { arch: d.arch, name: FILE, cacheDir: dir, options: ["-DLLMRT_UNUSED=1"] });
    assert.equal(other.fromCache, false);
    assert.notEqual(other.key, first.key);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

gpuTest("quoted includes resolve through includeDirs (NVRTC --include-path)", () => {
  const d = device();
  const dir = mkdtempSync(join(tmpdir(), "llmrt-inc-"));
  try {
    writeFileSync(join(dir, "twice.cuh"), "__device__ __forceinline__ float twice(float x) { return 2.0f * x; }\n");
    const src =
      '#include "twice.cuh"\nextern "C" __global__ void twice_all(float* y, unsigned n) { unsigned i = blockIdx.x * blockDim.x + threadIdx.x; if (i < n) y[i] = twice(y[i]); }';
    const { cubin } = compileCuda(src, { arch: d.arch, name: "twice.cu", cacheDir: null, includeDirs: [dir] });
    using mod = d.loadModule(cubin);
    using y = d.alloc(64 * 4);
    y.copyFromHost(new Float32Array(64).fill(1.5));
    mod.kernel("twice_all", ["ptr", "u32"]).launch(1, 64, [y, 64]);
    const got = new Float32Array(64);
    y.copyToHost(got);
    assert.ok(got.every((v) => v === 3));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

gpuTest("saxpy kernel matches the CPU on random data", () => {
  const d = device();
  using mod = loadKernelFile(d, FILE);
  const saxpy = mod.kernel("llmrt_saxpy", ["ptr", "ptr", "f32", "u32"]);
  const n = 1_000_003; // not a multiple of the block
  const x = seededUniform(3, n), y = seededUniform(4, n);
  const a = 1.7;
  using dx = d.alloc(n * 4);
  using dy = d.alloc(n * 4);
  using stream = d.createStream();
  dx.copyFromHost(x);
  dy.copyFromHost(y);
  saxpy.launch(Math.ceil(n / 256), 256, [dy, dx, a, n], { stream });
  stream.synchronize();
  const got = new Float32Array(n);
  dy.copyToHost(got);
  const want = new Float64Array(n);
  const af = Math.fround(a);
  for (let i = 0; i < n; i++) want[i] = af * x[i] + y[i];
  // One f32 rounding of the result (fused multiply-add), plus one of the product if not fused.
  const atol = 2.5e-7, rtol = 2 ** -23;
  const r = compare(got, want, atol, rtol);
  console.log(describe("saxpy f32", r, atol, rtol));
  assert.ok(r.worst <= 1, describe("saxpy f32", r, atol, rtol));
});

gpuTest("row sum-of-squares reduction (dynamic shared memory) matches a float64 reference", () => {
  const d = device();
  using mod = loadKernelFile(d, FILE);
  const k = mod.kernel("llmrt_row_sumsq", ["ptr", "ptr", "u32", "u32"]);
  const rows = 37, cols = 4099;
  const x = seededUniform(5, rows * cols);
  using dx = d.alloc(x.byteLength);
  using dout = d.alloc(rows * 4);
  dx.copyFromHost(x);
  k.launch(rows, 256, [dx, dout, rows, cols], { sharedMemBytes: 256 * 4 });
  d.synchronize();
  const got = new Float32Array(rows);
  dout.copyToHost(got);
  const want = new Float64Array(rows);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) want[r] += x[r * cols + c] ** 2;
  const rep = compare(got, want, 0, 1e-5);
  console.log(describe("row_sumsq f32", rep, 0, 1e-5));
  assert.ok(rep.worst <= 1, describe("row_sumsq f32", rep, 0, 1e-5));
});

gpuTest("every kernel argument kind arrives intact through the launch packet", () => {
  const d = device();
  using mod = loadKernelFile(d, FILE);
  const echo = mod.kernel("llmrt_echo_args", ["ptr", "i32", "u32", "f32", "f64", "i64", "u64"]);
  using out = d.alloc(6 * 4);
  echo.launch(1, 1, [out, -123456, 3_000_000_000, 2.5, -0.125, -(2n ** 40n), 2n ** 50n]);
  const got = new Float32Array(6);
  out.copyToHost(got);
  assert.deepEqual([...got], [-123456, 3_000_000_000, 2.5, -0.125, -(2 ** 40), 2 ** 50].map(Math.fround));
});

gpuTest("a kernel with a compile error throws CudaError with the NVRTC log", () => {
  const d = device();
  const bad = `extern "C" __global__ void broken(float* y) { y[threadIdx.x] = undefined_thing; }`;
  assert.throws(() => compileCuda(bad, { arch: d.arch, name: "broken.cu", cacheDir: null }), (e: unknown) => {
    assert.ok(e instanceof CudaError);
    assert.equal(e.library, "nvrtc");
    assert.equal(e.api, "nvrtcCompileProgram");
    assert.equal(e.codeName, "NVRTC_ERROR_COMPILATION");
    assert.match(e.log ?? "", /undefined_thing/);
    assert.match(e.message, /broken\.cu/);
    return true;
  });
  assert.throws(() => compileCuda("", { arch: "compute_90", cacheDir: null }), ValidationError);
});

gpuTest("launch errors: unknown kernel, too many threads, wrong argument count", () => {
  const d = device();
  using mod = loadKernelFile(d, FILE);
  assert.throws(() => mod.kernel("no_such_kernel", []), (e: unknown) => e instanceof CudaError && e.codeName === "CUDA_ERROR_NOT_FOUND");
  const k = mod.kernel("llmrt_add_one", ["ptr", "u32"]);
  using y = d.alloc(4096);
  assert.throws(() => k.launch(1, 4096, [y, 1024]), (e: unknown) => e instanceof CudaError && e.api === "cuLaunchKernel" && e.code === 1);
  assert.throws(() => k.launch(1, 32, [y]), ValidationError);
  // The context is still healthy.
  k.launch(4, 256, [y, 1024]);
  d.synchronize();
});

gpuTest("a disposed module disposes its kernels; dispose twice is a no-op", () => {
  const d = device();
  const mod = loadKernelFile(d, FILE);
  const k = mod.kernel("llmrt_empty", []);
  k.launch(1, 1, []);
  mod.dispose();
  mod.dispose();
  assert.throws(() => k.launch(1, 1, []), /disposed/);
  d.synchronize();
});
