/** GPU: weights uploaded through two pinned staging buffers (lib/backends/cuda/weight_upload.ts) land byte-exact. */
import { StagedUpload } from "../../lib/backends/cuda/weight_upload.ts";
import { assert } from "../harness.ts";
import { device, gpuTest } from "./gpu.ts";

gpuTest("staged upload: 9 MiB in 1 MiB pinned chunks, tensors across chunk edges and alignment gaps, read back exact", () => {
  const d = device();
  const total = 9 << 20;
  using dst = d.alloc(total);
  using stream = d.createStream();
  const want = new Uint8Array(total);
  const spans: [number, number][] = [];
  let off = 0;
  for (const n of [100, 3 << 20, 1, 777_777, 4096, 2 << 20, 1 << 20]) {
    spans.push([off, n]);
    for (let i = 0; i < n; i++) want[off + i] = (i * 131 + off) & 0xff;
    off = Math.ceil((off + n) / 256) * 256;
  }
  const up = new StagedUpload(d, stream, dst, 1 << 20);
  for (const [o, n] of spans) up.write(o, want.subarray(o, o + n));
  up.finish();
  const got = new Uint8Array(total);
  dst.copyToHost(got);
  for (const [o, n] of spans) assert.deepEqual(got.subarray(o, o + n), want.subarray(o, o + n), `span at ${o} (${n} bytes)`);
});
