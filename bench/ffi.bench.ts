/**
 * FFI and device ceilings (issue 4), under Bun or Deno:
 *   bun bench/ffi.bench.ts            deno run -A bench/ffi.bench.ts
 * - the cost of an empty FFI call (the shim's `llmrt_shim_abi()`, no driver involved);
 * - on a GPU: a cheap driver call, cuLaunchKernel of an empty kernel (direct FFI and through
 *   Kernel.launch → packet → shim), 100 launches vs a graph replay of the same 100 kernels;
 * - a GEMM throughput table (cuBLASLt bf16 4096³ and others, TFLOP/s against the GPU's peak) and a
 *   device-to-device copy (TB/s against the DRAM peak), validated before timed.
 * Times are host wall time around synchronized work unless marked GPU time (events).
 * `LLMRT_BENCH_JSON=path` also writes every number as JSON.
 */
import process from "node:process";
import { spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { bench, do_not_optimize, run } from "mitata";
import { cuda } from "../ffi/cuda.ts";
import { openPath, runtimeKind } from "../ffi/runtime.ts";
import { shim } from "../ffi/shim.ts";
import { loadKernelFile } from "../lib/backends/cuda/compiler.ts";
import { CublasLtGemm } from "../lib/backends/cuda/gemm.ts";
import { CudaDevice } from "../lib/cuda/device.ts";
import { launchKernelAddress } from "../lib/cuda/driver.ts";

/**
 * The driver's own launch cost measured from C inside this process (no FFI per launch): a loop of
 * `n` cuLaunchKernel calls through the driver's function pointer, timed with clock_gettime.
 * Null when no system C compiler is here.
 */
function inProcessCLaunchLoop(): ((pfn: bigint, fn: bigint, stream: bigint, n: number) => number) | null {
  const src = `
    #include <time.h>
    typedef int (*launch_t)(void*, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, void*, void**, void**);
    double llmrt_bench_launch_loop(unsigned long long pfn, unsigned long long f, unsigned long long s, unsigned n) {
      struct timespec a, b; clock_gettime(CLOCK_MONOTONIC, &a);
      for (unsigned i = 0; i < n; i++) if (((launch_t)pfn)((void*)f, 1, 1, 1, 1, 1, 1, 0, (void*)s, 0, 0)) return -1;
      clock_gettime(CLOCK_MONOTONIC, &b);
      return ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / n;
    }`;
  const dir = mkdtempSync(join(tmpdir(), "llmrt-bench-"));
  writeFileSync(join(dir, "loop.c"), src);
  const r = spawnSync("cc", ["-O2", "-shared", "-fPIC", "-o", join(dir, "loop.so"), join(dir, "loop.c")]);
  if (r.status !== 0) return null;
  const lib = openPath(join(dir, "loop.so"), { llmrt_bench_launch_loop: { args: ["handle", "handle", "handle", "u32"], returns: "f64" } } as const);
  return lib.symbols.llmrt_bench_launch_loop;
}

const results: Record<string, unknown> = { runtime: runtimeKind, runtimeVersion: runtimeVersion(), date: new Date().toISOString() };

function runtimeVersion(): string {
  const g = globalThis as unknown as { Bun?: { version: string }; Deno?: { version: { deno: string } } };
  return g.Bun ? `bun ${g.Bun.version}` : g.Deno ? `deno ${g.Deno.version.deno}` : "unknown";
}

/** Dense bf16 tensor-core peak (TFLOP/s) from the datasheet, by device name; null if unknown. */
function datasheetBf16Tflops(name: string): number | null {
  if (/H200/.test(name)) return 989.4;
  if (/H100.*(SXM|HBM3)/.test(name)) return 989.4;
  if (/H100.*NVL/.test(name)) return 835.5;
  if (/H100.*PCIe/.test(name)) return 756.5;
  if (/A100/.test(name)) return 312;
  return null;
}

const shimAbi = shim().symbols.llmrt_shim_abi;
bench("empty FFI call (shim llmrt_shim_abi)", () => do_not_optimize(shimAbi()));

const probe = CudaDevice.probe();
const gpuNotes: string[] = [];
if (!probe.ok) {
  console.log(`GPU parts skipped: ${probe.reason}`);
  results.gpu = null;
} else {
  const device = CudaDevice.open(0);
  const lib = cuda();
  const stream = device.createStream();
  const mod = loadKernelFile(device, "runtime_test.cu");
  const empty = mod.kernel("llmrt_empty", []);
  const emptyFn = empty.handle;
  const s = stream.handle;
  results.gpu = { name: device.name, arch: device.arch, smCount: device.smCount, memoryGiB: device.totalMemory / 2 ** 30, driverVersion: device.driverVersion };

  // Validate: the kernels run and a graph of 100 replays the right count.
  empty.launch(1, 1, [], { stream });
  stream.synchronize();
  const graph = stream.capture((st) => {
    for (let i = 0; i < 100; i++) empty.launch(1, 1, [], { stream: st });
  });
  if (graph.numNodes !== 100) throw new Error(`graph has ${graph.numNodes} nodes, expected 100`);
  graph.upload(stream);

  bench("cuStreamQuery (idle stream, one driver call)", () => do_not_optimize(lib.cuStreamQuery(s)));
  bench("cuLaunchKernel empty kernel, direct FFI", () => do_not_optimize(lib.cuLaunchKernel(emptyFn, 1, 1, 1, 1, 1, 1, 0, s, null, null)));
  bench("Kernel.launch empty kernel (packet + shim)", () => empty.launch(1, 1, [], { stream }));
  bench("100 × Kernel.launch + stream sync", () => {
    for (let i = 0; i < 100; i++) empty.launch(1, 1, [], { stream });
    stream.synchronize();
  });
  bench("graph replay of 100 kernels + stream sync", () => {
    graph.launch(stream);
    stream.synchronize();
  });

  // Host-side cost per launch: bursts of 100 (the launch queue never fills), best of 50.
  stream.synchronize();
  const hostPerLaunch = (launch: () => void): number => {
    let best = Infinity;
    for (let rep = 0; rep < 50; rep++) {
      const t0 = performance.now();
      for (let i = 0; i < 100; i++) launch();
      best = Math.min(best, (performance.now() - t0) / 100);
      stream.synchronize();
    }
    return best * 1e6; // ns
  };
  const directNs = hostPerLaunch(() => lib.cuLaunchKernel(emptyFn, 1, 1, 1, 1, 1, 1, 0, s, null, null));
  const shimNs = hostPerLaunch(() => empty.launch(1, 1, [], { stream }));
  const cLoop = inProcessCLaunchLoop();
  let cLoopNs: number | null = null;
  if (cLoop) {
    cLoopNs = Infinity;
    for (let rep = 0; rep < 50; rep++) {
      const ns = cLoop(launchKernelAddress(), emptyFn, s, 100);
      if (ns < 0) throw new Error("cuLaunchKernel failed in the C loop");
      cLoopNs = Math.min(cLoopNs, ns);
      stream.synchronize();
    }
  }
  // GPU time of 100 kernels: launched one by one vs one graph.
  const e0 = device.createEvent(), e1 = device.createEvent();
  const gpuMs = (work: () => void): number => {
    let best = Infinity;
    for (let rep = 0; rep < 20; rep++) {
      e0.record(stream);
      work();
      e1.record(stream);
      e1.synchronize();
      best = Math.min(best, e1.elapsedSince(e0));
    }
    return best;
  };
  const streamGpuMs = gpuMs(() => {
    for (let i = 0; i < 100; i++) empty.launch(1, 1, [], { stream });
  });
  const graphGpuMs = gpuMs(() => graph.launch(stream));
  results.launch = {
    directFfiHostNsPerLaunch: directNs,
    shimHostNsPerLaunch: shimNs,
    cLoopInProcessNsPerLaunch: cLoopNs,
    gpuUsPer100Launches: streamGpuMs * 1e3,
    gpuUsPer100KernelGraph: graphGpuMs * 1e3,
  };

  // ---- GEMM throughput (validated: constant inputs give an exactly known output) ----------
  const gemm = new CublasLtGemm(device);
  const gemmRows: Record<string, unknown>[] = [];
  const peakBf16 = datasheetBf16Tflops(device.name);
  const clockPeak = device.computeCapability.major === 9 ? device.smCount * device.clockRateKHz * 1e3 * 4096 / 1e12 : null;
  for (const [m, n, k] of [[4096, 4096, 4096], [8192, 8192, 8192], [16, 4096, 4096], [2048, 14336, 4096]] as const) {
    const a = device.alloc(m * k * 2), b = device.alloc(n * k * 2), d = device.alloc(m * n * 2);
    a.fillU32(0x3c803c80); // bf16 2^-6
    b.fillU32(0x3c803c80);
    gemm.run({ m, n, k, dtype: "bf16", a, b, d, transB: true, stream });
    stream.synchronize();
    const head = new Uint16Array(8);
    d.copyToHost(head);
    const want = k * 2 ** -12; // exact in bf16 for these k
    const f = new Float32Array(1), u = new Uint32Array(f.buffer);
    for (const bits of head) {
      u[0] = bits << 16;
      if (f[0] !== want) throw new Error(`GEMM ${m}x${n}x${k} wrote ${f[0]}, want ${want}`);
    }
    const iters = m * n * k >= 2 ** 36 ? 20 : 50;
    for (let i = 0; i < 5; i++) gemm.run({ m, n, k, dtype: "bf16", a, b, d, transB: true, stream });
    e0.record(stream);
    for (let i = 0; i < iters; i++) gemm.run({ m, n, k, dtype: "bf16", a, b, d, transB: true, stream });
    e1.record(stream);
    e1.synchronize();
    const ms = e1.elapsedSince(e0) / iters;
    const tflops = 2 * m * n * k / (ms * 1e-3) / 1e12;
    gemmRows.push({ shape: `${m}x${n}x${k}`, dtype: "bf16", ms, tflops, ofPeak: peakBf16 ? tflops / peakBf16 : null });
    a.dispose();
    b.dispose();
    d.dispose();
  }
  results.gemm = { peakBf16Tflops: peakBf16, clockFormulaPeakTflops: clockPeak, rows: gemmRows };

  // ---- device copy bandwidth (validated) ----------------------------------------------------
  const bytes = 1 << 30;
  const src = device.alloc(bytes), dst = device.alloc(bytes);
  src.fillU32(0x12345678, { stream });
  dst.copyFromDevice(src, bytes, { stream });
  stream.synchronize();
  const check = new Uint32Array(4);
  dst.copyToHost(check, { offset: bytes - 16 });
  if (!check.every((w) => w === 0x12345678)) throw new Error("device copy produced wrong data");
  for (let i = 0; i < 3; i++) dst.copyFromDevice(src, bytes, { stream });
  e0.record(stream);
  const copies = 20;
  for (let i = 0; i < copies; i++) dst.copyFromDevice(src, bytes, { stream });
  e1.record(stream);
  e1.synchronize();
  const copyMs = e1.elapsedSince(e0) / copies;
  const tbps = 2 * bytes / (copyMs * 1e-3) / 1e12; // bytes read + bytes written
  results.copy = {
    bytes,
    ms: copyMs,
    tbpsReadPlusWrite: tbps,
    peakTbps: device.peakMemoryBandwidth / 1e12,
    ofPeak: tbps / (device.peakMemoryBandwidth / 1e12),
  };
  src.dispose();
  dst.dispose();
  gemm.dispose();
  gpuNotes.push(`GPU: ${device.name} (${device.arch}, ${device.smCount} SMs, driver ${device.driverVersion})`);
}

const { benchmarks } = await run();
const micro: Record<string, { avgNs: number; p50Ns: number }> = {};
for (const b of benchmarks) {
  const st = b.runs[0]?.stats;
  if (st) micro[b.alias] = { avgNs: st.avg, p50Ns: st.p50 };
}
results.micro = micro;

console.log(`\n${runtimeVersion()}`);
for (const n of gpuNotes) console.log(n);
if (results.launch) {
  const l = results.launch as Record<string, number>;
  console.log(
    `host cost per launch (bursts of 100, best of 50): direct FFI ${l.directFfiHostNsPerLaunch.toFixed(0)} ns, Kernel.launch ${
      l.shimHostNsPerLaunch.toFixed(0)
    } ns, C loop in this process ${l.cLoopInProcessNsPerLaunch?.toFixed(0) ?? "n/a"} ns`,
  );
  console.log(`GPU time of 100 empty kernels: launched one by one ${l.gpuUsPer100Launches.toFixed(1)} us, one graph ${l.gpuUsPer100KernelGraph.toFixed(1)} us`);
}
if (results.gemm) {
  const g = results.gemm as {
    peakBf16Tflops: number | null;
    clockFormulaPeakTflops: number | null;
    rows: { shape: string; ms: number; tflops: number; ofPeak: number | null }[];
  };
  console.log(
    `GEMM (cuBLASLt, bf16 in, fp32 accumulate, bf16 out, B as [n,k]); peak ${g.peakBf16Tflops ?? "?"} TFLOP/s datasheet, ${
      g.clockFormulaPeakTflops?.toFixed(0) ?? "?"
    } by SMs × max clock × 4096`,
  );
  for (const r of g.rows) {
    console.log(
      `  ${r.shape.padEnd(18)} ${r.ms.toFixed(3).padStart(8)} ms ${r.tflops.toFixed(1).padStart(7)} TFLOP/s ${
        r.ofPeak ? `${(100 * r.ofPeak).toFixed(1)}% of peak` : ""
      }`,
    );
  }
}
if (results.copy) {
  const c = results.copy as Record<string, number>;
  console.log(
    `device copy 1 GiB: ${c.ms.toFixed(3)} ms = ${c.tbpsReadPlusWrite.toFixed(2)} TB/s (read + write) of ${c.peakTbps.toFixed(2)} TB/s peak (${
      (100 * c.ofPeak).toFixed(1)
    }%)`,
  );
}
if (process.env.LLMRT_BENCH_JSON) writeFileSync(process.env.LLMRT_BENCH_JSON, JSON.stringify(results, null, 2));
