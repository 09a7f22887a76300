// Weight upload through pinned staging (lib/backends/cuda/weight_upload.ts), checked without a GPU:
// a stand-in device whose copies run only when an event or the stream is synchronized, so a
// staging buffer refilled before its copy finished shows up as wrong bytes.
import * as fs from "node:fs";
import * as path from "node:path";
import { buildSync } from "../lib/builder/builder.ts";
import { Engine } from "../lib/builder/engine.ts";
import { StagedUpload, uploadWeights, type WeightSlice } from "../lib/backends/cuda/weight_upload.ts";
import type { CudaDevice } from "../lib/cuda/device.ts";
import type { DeviceBuffer } from "../lib/cuda/memory.ts";
import type { Stream } from "../lib/cuda/stream.ts";
import { AutoModelForCausalLM } from "../lib/models/llama.ts";
import { blobOffset } from "./hostile/engine_edit.ts";
import { removeTempDirs, tempDir } from "./hostile/fixtures.ts";
import { assert, sharedDir, test } from "./harness.ts";

/** A device whose async copies land only at the next synchronize (as late as the GPU may run them). */
function lazyDevice(bytes: number) {
  const mem = new Uint8Array(bytes);
  const queue: { src: Uint8Array; offset: number }[] = [];
  let hostLive = 0;
  const drain = (upTo: number): void => {
    for (const q of queue.splice(0, upTo)) mem.set(q.src, q.offset); // reads the staging buffer now
  };
  const device = {
    allocHost: (n: number) => {
      hostLive++;
      const b = new Uint8Array(n).fill(0xee);
      return { bytes: b, dispose: () => void hostLive-- };
    },
    createEvent: () => {
      let mark = -1;
      return {
        record: () => void (mark = queue.length),
        synchronize: () => drain(mark),
        dispose: () => {},
      };
    },
  } as unknown as CudaDevice;
  const stream = { synchronize: () => drain(queue.length) } as unknown as Stream;
  const dst = {
    byteLength: bytes,
    copyFromHost: (src: Uint8Array, o: { offset: number; stream?: unknown }) => {
      assert.ok(o.stream, "staged copies are asynchronous, on the session's stream");
      assert.ok(o.offset + src.byteLength <= bytes);
      queue.push({ src, offset: o.offset });
    },
  } as unknown as DeviceBuffer;
  return { device, stream, dst, mem, hostLive: () => hostLive, pending: () => queue.length };
}

function pattern(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = (i * 31 + seed * 7 + (i >> 8)) & 0xff;
  return out;
}

test("staged upload: tensors bigger and smaller than a chunk, with alignment gaps, land whole (copies run late)", () => {
  const f = lazyDevice(64 * 1024);
  const up = new StagedUpload(f.device, f.stream, f.dst, 4096);
  const parts = [[0, 100], [256, 9000], [9472, 4096], [13568, 1], [13824, 20000]].map(([off, n], i) => ({ off, data: pattern(n, i) }));
  for (const p of parts) up.write(p.off, p.data);
  up.finish();
  for (const p of parts) assert.deepEqual(f.mem.subarray(p.off, p.off + p.data.byteLength), p.data, `bytes at ${p.off}`);
  assert.equal(f.hostLive(), 0, "staging freed");
  assert.equal(f.pending(), 0);
});

test("uploadWeights: file-backed engine read straight into staging; a corrupt tensor is a FormatError", () => {
  const dir = tempDir("llmrt-upload-");
  try {
    const model = AutoModelForCausalLM.fromHuggingFace(`${sharedDir}models/stories260k`);
    const built = buildSync(model, { maxBatchSize: 2, maxNumTokens: 64 });
    model.close();
    built.save(dir);
    const names = built.tensorNames();
    let off = 0;
    const slices: WeightSlice[] = names.map((n) => {
      const s = { name: n, offset: off, direct: n !== names[1] };
      off += Math.ceil(built.readTensor(n).byteLength / 256) * 256;
      return s;
    });
    const converted = (n: string): Uint8Array => built.readTensor(n).map((b) => b ^ 0x5a);
    for (const engine of [built, Engine.fromDir(dir)]) {
      const f = lazyDevice(off);
      const stats = uploadWeights(f.device, f.stream, f.dst, engine, slices, converted, 8192);
      assert.ok(stats.staged);
      for (const s of slices) {
        const want = s.direct ? built.readTensor(s.name) : converted(s.name);
        assert.deepEqual(f.mem.subarray(s.offset, s.offset + want.byteLength), want, s.name);
      }
      if (engine !== built) engine.dispose();
    }
    const file = path.join(dir, "rank0.engine");
    const bytes = fs.readFileSync(file);
    bytes[blobOffset(file, "layers.1.qkv.weight") + 7] ^= 0x10;
    fs.writeFileSync(file, bytes);
    using bad = Engine.fromDir(dir);
    const f = lazyDevice(off);
    assert.throws(() => uploadWeights(f.device, f.stream, f.dst, bad, slices, converted), /tensor 'layers\.1\.qkv\.weight' is corrupt/);
    assert.equal(f.hostLive(), 0, "staging freed after the error");
    built.dispose();
  } finally {
    removeTempDirs();
  }
});
