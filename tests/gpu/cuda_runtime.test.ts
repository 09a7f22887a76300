/**
 * GPU: device properties, memory round trips, streams and events, ownership (dispose twice,
 * parents free children, the GC net) and error paths (out of memory). Skipped without a GPU.
 */
import { assert, isBun } from "../harness.ts";
import { CudaError } from "../../ffi/errors.ts";
import { CudaDevice } from "../../lib/cuda/device.ts";
import { DisposedError } from "../../lib/cuda/owner.ts";
import { device, gpuProbe, gpuTest, noGpuReason, seededUniform } from "./gpu.ts";
import { test } from "../harness.ts";

gpuTest("device reports name, SM count, compute capability and memory", () => {
  const d = device();
  console.log(`device: ${d.name} ${d.arch} SMs ${d.smCount} mem ${(d.totalMemory / 2 ** 30).toFixed(1)} GiB driver ${d.driverVersion}`);
  assert.ok(d.name.length > 0);
  assert.ok(d.smCount > 0);
  assert.ok(d.computeCapability.major >= 7);
  assert.equal(d.arch, `sm_${d.computeCapability.major}${d.computeCapability.minor}`);
  assert.ok(d.totalMemory > 2 ** 30);
  const info = d.memInfo();
  assert.ok(info.free > 0 && info.free <= info.total);
  assert.ok(Math.abs(info.total - d.totalMemory) <= d.totalMemory * 0.01);
  if (gpuProbe.ok) assert.ok(gpuProbe.count >= 1);
});

gpuTest("host -> device -> host round trip (sync, offsets, device-to-device)", () => {
  const d = device();
  const n = 1 << 20;
  const src = seededUniform(1, n);
  using a = d.alloc(n * 4);
  using b = d.alloc(n * 4);
  a.copyFromHost(src);
  b.copyFromDevice(a);
  const back = new Float32Array(n);
  b.copyToHost(back);
  assert.deepEqual(back, src);
  // A window: 16 floats written at byte offset 64, read back through a subarray.
  const win = new Float32Array([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16]);
  a.copyFromHost(win, { offset: 64 });
  const part = new Float32Array(20);
  a.copyToHost(part, { offset: 48 });
  assert.deepEqual([...part.subarray(4, 20)], [...win]);
  assert.equal(part[0], src[12]);
  assert.throws(() => a.copyFromHost(new Uint8Array(8), { offset: n * 4 - 4 }), RangeError);
});

gpuTest("async copies through pinned memory on a stream, memset", () => {
  const d = device();
  const n = 1 << 18;
  using stream = d.createStream();
  using pinnedIn = d.allocHost(n * 4);
  using pinnedOut = d.allocHost(n * 4);
  const src = seededUniform(2, n);
  new Float32Array(pinnedIn.buffer).set(src);
  using buf = d.alloc(n * 4);
  buf.copyFromHost(pinnedIn, { stream });
  buf.copyToHost(pinnedOut, { stream });
  stream.synchronize();
  assert.ok(stream.isDone());
  assert.deepEqual(new Float32Array(pinnedOut.buffer), src);
  buf.fillU32(0x3f800000, { stream }); // 1.0f
  buf.copyToHost(pinnedOut, { stream });
  stream.synchronize();
  assert.ok(new Float32Array(pinnedOut.buffer).every((v) => v === 1));
  buf.fill(0);
  const zeros = new Float32Array(n);
  buf.copyToHost(zeros);
  assert.ok(zeros.every((v) => v === 0));
});

gpuTest("events order streams and time GPU work", () => {
  const d = device();
  using s1 = d.createStream();
  using s2 = d.createStream();
  using start = d.createEvent();
  using end = d.createEvent();
  using big = d.alloc(256 << 20);
  using big2 = d.alloc(256 << 20);
  start.record(s1);
  big2.copyFromDevice(big, big.byteLength, { stream: s1 });
  end.record(s1);
  s2.waitEvent(end);
  s2.synchronize();
  assert.ok(end.isDone());
  const ms = end.elapsedSince(start);
  assert.ok(ms > 0 && ms < 1000, `elapsed ${ms} ms`);
});

gpuTest("dispose twice is a no-op; use after dispose throws DisposedError", () => {
  const d = device();
  const before = d.numChildren;
  const buf = d.alloc(1024);
  const pinned = d.allocHost(1024);
  const stream = d.createStream();
  const event = d.createEvent();
  assert.equal(d.numChildren, before + 4);
  for (const r of [buf, pinned, stream, event]) {
    r.dispose();
    r.dispose();
    r[Symbol.dispose]();
    assert.ok(r.isDisposed);
  }
  assert.equal(d.numChildren, before);
  assert.throws(() => buf.ptr, DisposedError);
  assert.throws(() => stream.synchronize(), DisposedError);
  assert.throws(() => pinned.bytes, DisposedError);
});

gpuTest("disposing a device frees its children first; disposing it twice is a no-op", () => {
  const d = CudaDevice.open(0);
  const buf = d.alloc(1 << 20);
  const stream = d.createStream();
  const event = d.createEvent();
  const pinned = d.allocHost(4096);
  assert.equal(d.numChildren, 4);
  d.dispose();
  d.dispose();
  assert.ok(d.isDisposed);
  assert.ok(buf.isDisposed && stream.isDisposed && event.isDisposed && pinned.isDisposed);
  buf.dispose(); // still a no-op
  assert.throws(() => d.alloc(16), DisposedError);
  // The shared device (same primary context) is unaffected.
  using again = device().alloc(16);
  again.fill(7);
});

gpuTest("an out-of-memory allocation throws CudaError(CUDA_ERROR_OUT_OF_MEMORY) and leaves the device usable", () => {
  const d = device();
  assert.throws(() => d.alloc(d.totalMemory * 4), (err: unknown) => {
    assert.ok(err instanceof CudaError);
    assert.equal(err.library, "cuda");
    assert.equal(err.api, "cuMemAlloc");
    assert.equal(err.code, 2);
    assert.equal(err.codeName, "CUDA_ERROR_OUT_OF_MEMORY");
    assert.match(err.message, /cuMemAlloc failed: CUDA_ERROR_OUT_OF_MEMORY/);
    return true;
  });
  using ok = d.alloc(1 << 20);
  ok.fill(1);
  d.synchronize();
});

/** A full GC: Bun.gc(true), or V8's gc() when exposed (deno test --v8-flags=--expose-gc). */
const forceGc: (() => void) | null = isBun
  ? () => (globalThis as unknown as { Bun: { gc(full: boolean): void } }).Bun.gc(true)
  : typeof (globalThis as unknown as { gc?: () => void }).gc === "function"
  ? () => (globalThis as unknown as { gc: () => void }).gc()
  : null;

test.skipIf(noGpuReason || "forcing GC needs Bun.gc or --v8-flags=--expose-gc", !gpuProbe.ok || !forceGc)(
  "the finalizer net frees device buffers nobody disposed",
  async () => {
    const d = device();
    const before = d.numChildren;
    const freeBefore = d.memInfo().free;
    (() => {
      for (let i = 0; i < 16; i++) d.alloc(64 << 20); // 1 GiB, dropped on the floor
    })();
    assert.equal(d.numChildren, before + 16);
    for (let i = 0; i < 100 && d.numChildren > before + 4; i++) {
      forceGc!();
      await new Promise((r) => setTimeout(r, 10));
    }
    assert.ok(d.numChildren <= before + 4, `only ${before + 16 - d.numChildren} of 16 leaked buffers were freed by the net`);
    assert.ok(d.memInfo().free >= freeBefore - (4 * 64 << 20) - (64 << 20));
  },
);
