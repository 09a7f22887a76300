/** The bandwidth ceiling the GPU benches report beside their numbers. Not a benchmark by itself. */
import type { CudaDevice } from "../lib/cuda/device.ts";

/** Device → device copy of 1 GiB, bytes read + written per second (mean of 20 after 3 warm-ups). */
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

/** The median of `reps` copyBandwidth measurements (one 20-copy mean varies by up to ~10% between processes). */
export function copyBandwidthMedian(dev: CudaDevice, reps = 5): number {
  const xs = Array.from({ length: reps }, () => copyBandwidth(dev)).sort((a, b) => a - b);
  return xs[Math.floor(reps / 2)];
}
