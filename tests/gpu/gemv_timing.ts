/**
 * Shared pieces of the GPU tests that time decode GEMVs against the device copy (quant_cuda, fp8_cuda, lowbit_cuda,
 * nvfp4_mma): the decode linears of the 1B / 8B Llama shapes, a copy ceiling and a graph timer. Not a test file.
 */
import type { CudaDevice } from "../../lib/cuda/device.ts";
import type { Event, Stream } from "../../lib/cuda/stream.ts";

/** Decode linears per layer of two Llama shapes: [name, out features, in features]. */
export const DECODE_LINEARS: Record<string, { layers: number; linears: [string, number, number][] }> = {
  "llama-3.2-1b": { layers: 16, linears: [["qkv", 3072, 2048], ["o", 2048, 2048], ["gate_up", 16384, 2048], ["down", 2048, 8192]] },
  "llama-3.1-8b": { layers: 32, linears: [["qkv", 6144, 4096], ["o", 4096, 4096], ["gate_up", 28672, 4096], ["down", 4096, 14336]] },
};

/** Bytes of distinct weights a timed graph cycles through so that none stays in the H200's 50 MB L2. */
export const L2_FLUSH_BYTES = 256 << 20;

/**
 * The device copy ceiling in GB/s: a 1 GiB device-to-device copy reads and writes every byte; the mean of 5 copies
 * after a warm-up one (bench/copy_bandwidth.ts copyCeiling is the benches' finer measure).
 */
export function copyCeilingGBs(d: CudaDevice, stream: Stream, t0: Event, t1: Event): number {
  const copyBytes = 1 << 30;
  using a = d.alloc(copyBytes);
  using b = d.alloc(copyBytes);
  a.fill(1, { stream });
  b.copyFromDevice(a, copyBytes, { stream });
  t0.record(stream);
  for (let i = 0; i < 5; i++) b.copyFromDevice(a, copyBytes, { stream });
  t1.record(stream);
  t1.synchronize();
  return (2 * copyBytes) / ((t1.elapsedSince(t0) / 5) * 1e6);
}

/**
 * Milliseconds a launch: `launch(s, i)` for i < n captured in one CUDA graph, replayed once to warm up, then 3 times
 * between t0 and t1.
 */
export function graphMsPerLaunch(stream: Stream, t0: Event, t1: Event, launch: (s: Stream, i: number) => void, n: number): number {
  using g = stream.capture((s) => {
    for (let i = 0; i < n; i++) launch(s, i);
  });
  g.launch(stream);
  t0.record(stream);
  for (let r = 0; r < 3; r++) g.launch(stream);
  t1.record(stream);
  t1.synchronize();
  return t1.elapsedSince(t0) / (3 * n);
}
