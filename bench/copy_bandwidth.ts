/**
 * The bandwidth ceiling every GPU bench reports beside its numbers: the highest device-memory copy rate
 * (bytes read + bytes written per second) among several ways of copying, each taken at its best of several
 * runs, measured once per process (cached per device).
 *
 *   bun bench/copy_bandwidth.ts          — prints every method and the ceiling
 *
 * Methods: cuMemcpyDtoD of 1 GiB and of 2 GiB; a copy kernel with 16-byte loads and stores over 2 GiB (4 loads in
 * flight a thread, grid-stride; plain stores and evict-first `__stcs` stores; a few grid shapes). A read-only kernel
 * (16-byte loads over 2 GiB, bytes read per second) is reported beside them, never used as the ceiling: decode reads
 * far more than it writes, so it says how far above the copy ceiling a read stream can go.
 */
import process from "node:process";
import { compileCuda } from "../lib/backends/cuda/compiler.ts";
import { CudaDevice } from "../lib/cuda/device.ts";
import type { Kernel } from "../lib/cuda/module.ts";
import type { Stream } from "../lib/cuda/stream.ts";

const SRC = `
typedef unsigned long long u64;
// b[i] = a[i] over n 16-byte words, 4 loads in flight a thread.
extern "C" __global__ void copy16(const uint4* __restrict__ a, uint4* __restrict__ b, u64 n) {
  const u64 s = (u64)gridDim.x * blockDim.x;
  u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x;
  for (; i + 3 * s < n; i += 4 * s) {
    uint4 x0 = a[i], x1 = a[i + s], x2 = a[i + 2 * s], x3 = a[i + 3 * s];
    b[i] = x0; b[i + s] = x1; b[i + 2 * s] = x2; b[i + 3 * s] = x3;
  }
  for (; i < n; i += s) b[i] = a[i];
}
// The same with evict-first (streaming) loads and stores.
extern "C" __global__ void copy16_cs(const uint4* __restrict__ a, uint4* __restrict__ b, u64 n) {
  const u64 s = (u64)gridDim.x * blockDim.x;
  u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x;
  for (; i + 3 * s < n; i += 4 * s) {
    uint4 x0 = __ldcs(a + i), x1 = __ldcs(a + i + s), x2 = __ldcs(a + i + 2 * s), x3 = __ldcs(a + i + 3 * s);
    __stcs(b + i, x0); __stcs(b + i + s, x1); __stcs(b + i + 2 * s, x2); __stcs(b + i + 3 * s, x3);
  }
  for (; i < n; i += s) __stcs(b + i, __ldcs(a + i));
}
// Reads n 16-byte words (4 in flight a thread); writes only if the xor of everything read hits a constant.
extern "C" __global__ void read16(const uint4* __restrict__ a, uint4* __restrict__ sink, u64 n) {
  const u64 s = (u64)gridDim.x * blockDim.x;
  u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x;
  uint4 acc = make_uint4(0, 0, 0, 0);
  for (; i + 3 * s < n; i += 4 * s) {
    uint4 x0 = a[i], x1 = a[i + s], x2 = a[i + 2 * s], x3 = a[i + 3 * s];
    acc.x ^= x0.x ^ x1.x ^ x2.x ^ x3.x; acc.y ^= x0.y ^ x1.y ^ x2.y ^ x3.y;
    acc.z ^= x0.z ^ x1.z ^ x2.z ^ x3.z; acc.w ^= x0.w ^ x1.w ^ x2.w ^ x3.w;
  }
  for (; i < n; i += s) { uint4 x = a[i]; acc.x ^= x.x; acc.y ^= x.y; acc.z ^= x.z; acc.w ^= x.w; }
  if ((acc.x ^ acc.y ^ acc.z ^ acc.w) == 0x9e3779b9u) sink[threadIdx.x] = acc;
}
`;

/** What copyCeiling measured: the ceiling (the highest copy figure), its method, and every method's best. */
export interface CopyCeiling {
  /** Bytes read + written per second: the highest of the copy methods. */
  readonly bps: number;
  /** The method that gave `bps`. */
  readonly method: string;
  /** Each copy method's best run (bytes read + written per second). */
  readonly methods: Readonly<Record<string, number>>;
  /** The read-only kernel's best run (bytes read per second); not a copy, not the ceiling. */
  readonly readBps: number;
}

const cache = new WeakMap<CudaDevice, CopyCeiling>();

/** Best (highest) of `runs` timings of `reps` back-to-back `op`s, as bytes moved per second. */
function bestOf(dev: CudaDevice, stream: Stream, op: () => void, bytesPerOp: number, runs: number, reps: number): number {
  using start = dev.createEvent();
  using end = dev.createEvent();
  for (let i = 0; i < 2; i++) op();
  let best = 0;
  for (let r = 0; r < runs; r++) {
    start.record(stream);
    for (let i = 0; i < reps; i++) op();
    end.record(stream);
    end.synchronize();
    best = Math.max(best, (bytesPerOp * reps) / (end.elapsedSince(start) / 1e3));
  }
  return best;
}

/**
 * The copy ceiling of `dev` (measured on first call, then cached for the process): every method's best of 7 runs.
 * Needs 4 GiB of free device memory (two 2 GiB buffers) for the moment it runs.
 */
export function copyCeiling(dev: CudaDevice): CopyCeiling {
  const hit = cache.get(dev);
  if (hit) return hit;
  const n = 2 ** 31;
  using a = dev.alloc(n);
  using b = dev.alloc(n);
  using stream = dev.createStream();
  a.fill(7, { stream });
  const methods: Record<string, number> = {};
  for (const bytes of [2 ** 30, n]) {
    methods[`cuMemcpyDtoD ${bytes / 2 ** 30} GiB`] = bestOf(dev, stream, () => b.copyFromDevice(a, bytes, { stream }), 2 * bytes, 7, 10);
  }
  const { cubin } = compileCuda(SRC, { arch: dev.arch, name: "copy_bandwidth.cu" });
  using mod = dev.loadModule(cubin);
  const kern = (name: string): Kernel => mod.kernel(name, ["ptr", "ptr", "u64"]);
  const words = n / 16;
  for (const name of ["copy16", "copy16_cs"]) {
    const k = kern(name);
    for (const [perSm, threads] of [[4, 512], [8, 256], [2, 1024]]) {
      const grid = dev.smCount * perSm;
      methods[`${name} 2 GiB, ${perSm}×${threads} threads/SM`] = bestOf(
        dev,
        stream,
        () => k.launch(grid, threads, [a, b, BigInt(words)], { stream }),
        2 * n,
        7,
        10,
      );
    }
  }
  const rd = kern("read16");
  let readBps = 0;
  for (const [perSm, threads] of [[4, 512], [8, 256]]) {
    const grid = dev.smCount * perSm;
    readBps = Math.max(readBps, bestOf(dev, stream, () => rd.launch(grid, threads, [a, b, BigInt(words)], { stream }), n, 7, 10));
  }
  let method = "", bps = 0;
  for (const [k, v] of Object.entries(methods)) if (v > bps) [method, bps] = [k, v];
  const c: CopyCeiling = Object.freeze({ bps, method, methods: Object.freeze(methods), readBps });
  cache.set(dev, c);
  return c;
}

/** One line for a bench's header, e.g. "copy ceiling 4.210 TB/s (copy16 2 GiB, 4×512 threads/SM; cuMemcpyDtoD 1 GiB 4.150)". */
export function describeCeiling(c: CopyCeiling): string {
  const tb = (x: number): string => (x / 1e12).toFixed(3);
  const memcpy = c.methods["cuMemcpyDtoD 1 GiB"];
  return `copy ceiling ${tb(c.bps)} TB/s (read + write, best of 7 runs: ${c.method}; cuMemcpyDtoD 1 GiB ${tb(memcpy)}, read-only kernel ${tb(c.readBps)} TB/s)`;
}

/** Device → device copy of 1 GiB, bytes read + written per second (mean of 20 after 3 warm-ups): session 9's ceiling. */
export function copyBandwidth(dev: CudaDevice): number {
  const n = 1 << 30;
  using a = dev.alloc(n);
  using b = dev.alloc(n);
  using stream = dev.createStream();
  using start = dev.createEvent();
  using end = dev.createEvent();
  a.fill(7, { stream });
  for (let i = 0; i < 3; i++) b.copyFromDevice(a, n, { stream });
  start.record(stream);
  for (let i = 0; i < 20; i++) b.copyFromDevice(a, n, { stream });
  end.record(stream);
  end.synchronize();
  return (2 * n * 20) / (end.elapsedSince(start) / 1e3);
}

/** The median of `reps` copyBandwidth measurements: the ceiling sessions 7–9 used (kept for the before/after). */
export function copyBandwidthMedian(dev: CudaDevice, reps = 5): number {
  const xs = Array.from({ length: reps }, () => copyBandwidth(dev)).sort((a, b) => a - b);
  return xs[Math.floor(reps / 2)];
}

if (import.meta.main) {
  const dev = CudaDevice.open(0);
  const old = copyBandwidthMedian(dev, 5);
  const c = copyCeiling(dev);
  console.log(`GPU ${dev.name}; sessions 7–9 ceiling (median of 5 × 20 cuMemcpyDtoD 1 GiB): ${(old / 1e12).toFixed(3)} TB/s`);
  for (const [k, v] of Object.entries(c.methods)) console.log(`  ${k.padEnd(44)} ${(v / 1e12).toFixed(3)} TB/s`);
  console.log(`  ${"read16 2 GiB (read only; bytes read)".padEnd(44)} ${(c.readBps / 1e12).toFixed(3)} TB/s`);
  console.log(describeCeiling(c));
  dev.dispose();
  process.exit(0);
}
