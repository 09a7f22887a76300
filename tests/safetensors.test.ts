import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { assert, sharedDir, test as registerTest } from "./harness.ts";
import { Checkpoint, SafetensorsFile, writeSafetensors } from "../lib/models/safetensors.ts";
import { bf16ToF32, type DType, dtypeByteSize, DTYPES, f16ToF32, f32ToBf16, f32ToF16, toFloat32 } from "../lib/util/dtype.ts";
import { FormatError, ValidationError } from "../lib/util/errors.ts";

/** Temp dirs made by the running test; removed when it ends (tests in a file run one at a time). */
const tmpDirs: string[] = [];

function tmpDir(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), "llmrt-st-"));
  tmpDirs.push(d);
  return d;
}

function test(name: string, fn: () => void): void {
  registerTest(name, () => {
    try {
      fn();
    } finally {
      for (const d of tmpDirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
    }
  });
}

/** Writes a safetensors file from a raw header object (for malformed-file tests). */
function writeRaw(file: string, header: unknown, dataBytes: number, opts: { headerLen?: bigint } = {}): void {
  const json = new TextEncoder().encode(typeof header === "string" ? header : JSON.stringify(header));
  const prefix = new Uint8Array(8);
  new DataView(prefix.buffer).setBigUint64(0, opts.headerLen ?? BigInt(json.length), true);
  const out = new Uint8Array(8 + json.length + dataBytes);
  out.set(prefix, 0);
  out.set(json, 8);
  fs.writeFileSync(file, out);
}

function f32Bits(x: number): number {
  return new Uint32Array(new Float32Array([x]).buffer)[0];
}

// ---------------------------------------------------------------- dtype conversions

test("dtype: byte sizes", () => {
  assert.deepEqual(
    DTYPES.map((d) => [d, dtypeByteSize(d)]),
    [["F64", 8], ["F32", 4], ["F16", 2], ["BF16", 2], ["I64", 8], ["I32", 4], ["I16", 2], ["I8", 1], ["U8", 1], ["BOOL", 1], [
      "F8_E4M3",
      1,
    ], ["F8_E5M2", 1]],
  );
  assert.throws(() => dtypeByteSize("F4" as DType), /unknown dtype "F4"/);
});

test("dtype: f16 known bit patterns both ways (1, -2.5, 65504, subnormals, inf, NaN, rounding)", () => {
  const cases: [number, number][] = [
    [1, 0x3c00],
    [-2.5, 0xc100],
    [65504, 0x7bff],
    [2 ** -24, 0x0001], // smallest subnormal
    [2 ** -14 - 2 ** -24, 0x03ff], // largest subnormal
    [2 ** -14, 0x0400], // smallest normal
    [0, 0x0000],
    [-0, 0x8000],
    [Infinity, 0x7c00],
    [-Infinity, 0xfc00],
  ];
  const f16 = f32ToF16(new Float32Array(cases.map((c) => c[0])));
  assert.deepEqual([...f16], cases.map((c) => c[1]));
  const back = f16ToF32(new Uint16Array(cases.map((c) => c[1])));
  assert.deepEqual([...back], cases.map((c) => c[0]));
  assert.ok(Object.is(back[7], -0));
  // rounding: 65520 is halfway between 65504 and 65536 (=inf) → ties to even → inf; 65519 → 65504
  assert.deepEqual([...f32ToF16(new Float32Array([65519, 65520, 1e6, 2 ** -25, 2 ** -25 * 1.5]))], [0x7bff, 0x7c00, 0x7c00, 0x0000, 0x0001]);
  // 1 + 2^-11 is halfway between 1 and 1+2^-10 → even (1); 1 + 3·2^-11 → 1 + 2^-9
  assert.deepEqual([...f32ToF16(new Float32Array([1 + 2 ** -11, 1 + 3 * 2 ** -11]))], [0x3c00, 0x3c02]);
  const nan = f32ToF16(new Float32Array([NaN]))[0];
  assert.equal(nan & 0x7c00, 0x7c00);
  assert.notEqual(nan & 0x3ff, 0);
  assert.ok(Number.isNaN(f16ToF32(new Uint16Array([0x7e00]))[0]));
});

test("dtype: bf16 known bit patterns, round-to-nearest-even, NaN preserved", () => {
  // 65504 = 0x477FE000: the dropped half 0xE000 is above halfway, so it rounds up to 0x4780 (65536)
  assert.deepEqual([...f32ToBf16(new Float32Array([1, -2.5, 65504, Infinity, -Infinity, 0]))], [0x3f80, 0xc020, 0x4780, 0x7f80, 0xff80, 0]);
  // 1 + 2^-8 is exactly halfway between bf16 1 (0x3f80) and 1+2^-7 (0x3f81): tie → even (0x3f80)
  // 1 + 3·2^-8 is halfway between 0x3f81 and 0x3f82: tie → even (0x3f82)
  // 1 + 2^-8 + 2^-20 is above halfway → 0x3f81
  assert.deepEqual([...f32ToBf16(new Float32Array([1 + 2 ** -8, 1 + 3 * 2 ** -8, 1 + 2 ** -8 + 2 ** -20]))], [0x3f80, 0x3f82, 0x3f81]);
  // bf16 subnormal survives: f32 bits 0x00010000 → 0x0001
  const sub = new Float32Array(new Uint32Array([0x00010000]).buffer);
  assert.deepEqual([...f32ToBf16(sub)], [0x0001]);
  const nans = new Float32Array(new Uint32Array([0x7fc00000, 0xffc00001, 0x7f800001]).buffer);
  for (const b of f32ToBf16(nans)) {
    assert.equal(b & 0x7f80, 0x7f80);
    assert.notEqual(b & 0x7f, 0, `NaN became inf: ${b.toString(16)}`);
  }
  assert.equal(f32ToBf16(nans)[1] & 0x8000, 0x8000, "sign of NaN kept");
  const back = bf16ToF32(new Uint16Array([0x3f80, 0xc020, 0x0001, 0x7f80, 0x7fc0]));
  assert.deepEqual([...back].slice(0, 4), [1, -2.5, 2 ** -133, Infinity]);
  assert.ok(Number.isNaN(back[4]));
  assert.equal(f32Bits(back[2]), 0x00010000);
});

test("dtype: conversions into a caller-provided dst, and a too-small dst is an error", () => {
  const dst = new Float32Array(4);
  assert.equal(bf16ToF32(new Uint16Array([0x4000, 0x4040]), dst), dst);
  assert.deepEqual([...dst], [2, 3, 0, 0]);
  assert.throws(() => f16ToF32(new Uint16Array(3), new Float32Array(2)), (e: unknown) => e instanceof ValidationError && /need 3/.test(e.message));
});

test("dtype: toFloat32 for every dtype, including an unaligned byte offset", () => {
  const cases: [DType, ArrayBufferView, number[]][] = [
    ["F64", new Float64Array([1.5, -2]), [1.5, -2]],
    ["F32", new Float32Array([0.25, 7]), [0.25, 7]],
    ["F16", new Uint16Array([0x3c00, 0xc100]), [1, -2.5]],
    ["BF16", new Uint16Array([0x3f80, 0xc020]), [1, -2.5]],
    ["I64", new BigInt64Array([-3n, 1n << 40n]), [-3, 2 ** 40]],
    ["I32", new Int32Array([-7, 123456]), [-7, 123456]],
    ["I16", new Int16Array([-300, 300]), [-300, 300]],
    ["I8", new Int8Array([-128, 127]), [-128, 127]],
    ["U8", new Uint8Array([0, 255]), [0, 255]],
    ["BOOL", new Uint8Array([0, 1]), [0, 1]],
    ["F8_E4M3", new Uint8Array([0x38, 0x7e, 0x01, 0xb8]), [1, 448, 2 ** -9, -1]],
    ["F8_E5M2", new Uint8Array([0x3c, 0x7b, 0x7c, 0xc0]), [1, 57344, Infinity, -2]],
  ];
  for (const [dtype, data, want] of cases) {
    const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    assert.deepEqual([...toFloat32(bytes, dtype)], want, dtype);
    // the same bytes at offset 1 of a bigger buffer: not aligned for any multi-byte type
    const shifted = new Uint8Array(bytes.length + 1);
    shifted.set(bytes, 1);
    assert.deepEqual([...toFloat32(shifted.subarray(1), dtype)], want, `${dtype} unaligned`);
  }
  assert.ok(Number.isNaN(toFloat32(new Uint8Array([0x7f]), "F8_E4M3")[0]));
  assert.throws(() => toFloat32(new Uint8Array(3), "F32"), /not a whole number of F32 elements/);
});

// ---------------------------------------------------------------- writer + reader round trips

test("safetensors: round trip of every dtype through writer and reader (header padded, sorted)", () => {
  const dir = tmpDir();
  const file = path.join(dir, "all.safetensors");
  const f16Values = new Float32Array([1, -2.5, 65504, 2 ** -24, 2 ** -14, -0, Infinity, -Infinity, NaN]);
  const tensors = {
    "z.f64": { dtype: "F64" as const, shape: [2], data: new Float64Array([Math.PI, -1e300]) },
    "a.f32": { dtype: "F32" as const, shape: [2, 3], data: new Float32Array([1, 2, 3, 4, 5, 6]) },
    "f16": { dtype: "F16" as const, shape: [9], data: f32ToF16(f16Values) },
    "bf16": { dtype: "BF16" as const, shape: [3, 3], data: f32ToBf16(f16Values) },
    "i64": { dtype: "I64" as const, shape: [1], data: new BigInt64Array([-(1n << 62n)]) },
    "i32": { dtype: "I32" as const, shape: [2], data: new Int32Array([-1, 2 ** 31 - 1]) },
    "i16": { dtype: "I16" as const, shape: [1], data: new Int16Array([-5]) },
    "i8": { dtype: "I8" as const, shape: [3], data: new Int8Array([-1, 0, 1]) },
    "u8": { dtype: "U8" as const, shape: [1, 1, 3], data: new Uint8Array([9, 8, 7]) },
    "bool": { dtype: "BOOL" as const, shape: [2], data: new Uint8Array([1, 0]) },
    "e4m3": { dtype: "F8_E4M3" as const, shape: [1], data: new Uint8Array([0x38]) },
    "e5m2": { dtype: "F8_E5M2" as const, shape: [1], data: new Uint8Array([0x3c]) },
    "empty": { dtype: "F32" as const, shape: [0, 4], data: new Float32Array(0) },
    "scalar": { dtype: "F32" as const, shape: [], data: new Float32Array([42]) },
  };
  writeSafetensors(file, tensors, { format: "pt", note: "hello" });

  // on-disk layout: u64 length, header padded with spaces to 8 bytes, tensors in sorted order
  const raw = fs.readFileSync(file);
  const headerLen = Number(new DataView(raw.buffer, raw.byteOffset).getBigUint64(0, true));
  assert.equal(headerLen % 8, 0);
  const headerText = new TextDecoder().decode(raw.subarray(8, 8 + headerLen));
  assert.match(headerText, /^\{.*\} *$/);
  const header = JSON.parse(headerText) as Record<string, { data_offsets: [number, number] }>;
  const names = Object.keys(header).filter((k) => k !== "__metadata__");
  const byOffset = [...names].sort((a, b) => header[a].data_offsets[0] - header[b].data_offsets[0] || (a < b ? -1 : 1));
  assert.deepEqual(byOffset, [...names].sort());

  using f = SafetensorsFile.open(file);
  assert.deepEqual(f.metadata, { format: "pt", note: "hello" });
  assert.deepEqual(f.names(), Object.keys(tensors).sort());
  for (const [name, t] of Object.entries(tensors)) {
    const info = f.info(name);
    assert.equal(info.dtype, t.dtype);
    assert.deepEqual(info.shape, t.shape);
    assert.equal(info.path, file);
    assert.equal(info.byteLength, t.data.byteLength);
    assert.deepEqual(f.readBytes(name), new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength), name);
    assert.equal(raw.subarray(info.byteOffset, info.byteOffset + info.byteLength).compare(Buffer.from(f.readBytes(name))), 0);
  }
  assert.deepEqual([...f.readFloat32("z.f64")], [Math.fround(Math.PI), -Infinity]);
  assert.deepEqual([...f.readFloat32("a.f32")], [1, 2, 3, 4, 5, 6]);
  const f16Back = f.readFloat32("f16");
  assert.deepEqual([...f16Back.subarray(0, 8)], [1, -2.5, 65504, 2 ** -24, 2 ** -14, -0, Infinity, -Infinity]);
  assert.ok(Number.isNaN(f16Back[8]));
  const bfBack = f.readFloat32("bf16");
  // bf16 keeps 8 mantissa bits: 65504 rounds to 65536; 2^-24 and 2^-14 are exact
  assert.deepEqual([...bfBack.subarray(0, 8)], [1, -2.5, 65536, 2 ** -24, 2 ** -14, -0, Infinity, -Infinity]);
  assert.ok(Number.isNaN(bfBack[8]));
  assert.deepEqual([...f.readFloat32("i64")], [-(2 ** 62)]);
  assert.deepEqual([...f.readFloat32("bool")], [1, 0]);
  assert.deepEqual([...f.readFloat32("e4m3")], [1]);
  assert.deepEqual([...f.readFloat32("scalar")], [42]);
  assert.deepEqual(f.info("scalar").shape, []);
  assert.equal(f.readFloat32("empty").length, 0);
});

test("safetensors: writer rejects bad input with ValidationError", () => {
  const file = path.join(tmpDir(), "bad.safetensors");
  assert.throws(
    () => writeSafetensors(file, { w: { dtype: "F32", shape: [2, 2], data: new Float32Array(3) } }),
    (e: unknown) => e instanceof ValidationError && /tensor 'w'.*needs 16 bytes, data has 12/.test(e.message),
  );
  assert.throws(() => writeSafetensors(file, { w: { dtype: "F3" as DType, shape: [1], data: new Float32Array(1) } }), /tensor 'w': unknown dtype "F3"/);
  assert.throws(() => writeSafetensors(file, { w: { dtype: "F32", shape: [-1], data: new Float32Array(1) } }), /tensor 'w': shape must be non-negative/);
});

test("safetensors: close is idempotent, reading after close is a FormatError, dispose closes", () => {
  const file = path.join(tmpDir(), "c.safetensors");
  writeSafetensors(file, { w: { dtype: "F32", shape: [1], data: new Float32Array([3]) } });
  const f = SafetensorsFile.open(file);
  assert.deepEqual([...f.readFloat32("w")], [3]);
  f.close();
  f.close();
  assert.throws(() => f.readBytes("w"), (e: unknown) => e instanceof FormatError && e.message.includes("closed") && e.message.includes(file));
  let g: SafetensorsFile;
  {
    using opened = SafetensorsFile.open(file);
    g = opened;
  }
  assert.throws(() => g.readBytes("w"), /closed/);
});

// ---------------------------------------------------------------- laziness

test("safetensors: lazy — a tensor past a 5 GiB sparse tensor reads fast, without reading the big one", () => {
  const dir = tmpDir();
  const file = path.join(dir, "huge.safetensors");
  const bigBytes = 5 * 2 ** 30; // 5 GiB of F32, never materialized: the file is sparse
  const header = {
    "big": { dtype: "F32", shape: [bigBytes / 4], data_offsets: [0, bigBytes] },
    "small": { dtype: "F32", shape: [4], data_offsets: [bigBytes, bigBytes + 16] },
  };
  const json = new TextEncoder().encode(JSON.stringify(header));
  const fd = fs.openSync(file, "w");
  const prefix = new Uint8Array(8);
  new DataView(prefix.buffer).setBigUint64(0, BigInt(json.length), true);
  fs.writeSync(fd, prefix, 0, 8, 0);
  fs.writeSync(fd, json, 0, json.length, 8);
  const small = new Float32Array([1.5, -2, 3.25, 4]);
  const smallAt = 8 + json.length + bigBytes; // beyond 2^32: exercises 64-bit positions
  fs.writeSync(fd, new Uint8Array(small.buffer), 0, 16, smallAt);
  fs.closeSync(fd);
  assert.equal(fs.statSync(file).size, smallAt + 16);

  const rssBefore = process.memoryUsage().rss;
  const t0 = performance.now();
  using f = SafetensorsFile.open(file);
  assert.equal(f.info("small").byteOffset, smallAt);
  assert.deepEqual([...f.readFloat32("small")], [1.5, -2, 3.25, 4]);
  const ms = performance.now() - t0;
  const rssGrowth = process.memoryUsage().rss - rssBefore;
  // Reading the whole file would need a 5 GiB buffer (and seconds); the lazy path needs ~nothing.
  assert.ok(rssGrowth < 256 * 2 ** 20, `rss grew by ${(rssGrowth / 2 ** 20).toFixed(0)} MiB`);
  assert.ok(ms < 2000, `open + small read took ${ms.toFixed(0)} ms`);
  f.close();
});

test("safetensors: lazy — tensor bytes are read at call time, not cached at open", () => {
  const file = path.join(tmpDir(), "live.safetensors");
  writeSafetensors(file, { a: { dtype: "F32", shape: [2], data: new Float32Array([1, 2]) } });
  using f = SafetensorsFile.open(file);
  const off = f.info("a").byteOffset;
  const fd = fs.openSync(file, "r+");
  fs.writeSync(fd, new Uint8Array(new Float32Array([7, 8]).buffer), 0, 8, off);
  fs.closeSync(fd);
  assert.deepEqual([...f.readFloat32("a")], [7, 8]);
});

// ---------------------------------------------------------------- malformed files: one test each

function expectFormatError(file: string, ...parts: (string | RegExp)[]): void {
  assert.throws(
    () => SafetensorsFile.open(file),
    (e: unknown) => {
      assert.ok(e instanceof FormatError, `expected FormatError, got ${e}`);
      assert.ok(e.message.includes(file), `message does not name the file: ${e.message}`);
      for (const p of parts) {
        assert.ok(typeof p === "string" ? e.message.includes(p) : p.test(e.message), `message ${JSON.stringify(e.message)} lacks ${p}`);
      }
      return true;
    },
  );
}

const goodEntry = { dtype: "F32", shape: [2], data_offsets: [0, 8] };

test("safetensors malformed: file shorter than 8 bytes", () => {
  const file = path.join(tmpDir(), "short.safetensors");
  fs.writeFileSync(file, new Uint8Array(5));
  expectFormatError(file, "5 bytes", "shorter than the 8-byte header length");
});

test("safetensors malformed: absurd header length", () => {
  const file = path.join(tmpDir(), "absurd.safetensors");
  writeRaw(file, { w: goodEntry }, 8, { headerLen: 1n << 40n });
  expectFormatError(file, "absurd");
});

test("safetensors malformed: header length past end of file", () => {
  const file = path.join(tmpDir(), "past.safetensors");
  writeRaw(file, { w: goodEntry }, 0, { headerLen: 1000n });
  expectFormatError(file, "runs past the end of the file");
});

test("safetensors malformed: header not JSON", () => {
  const file = path.join(tmpDir(), "notjson.safetensors");
  writeRaw(file, '{"w": {"dtype": "F32",', 0);
  expectFormatError(file, "not valid JSON");
});

test("safetensors malformed: header JSON but not an object", () => {
  const file = path.join(tmpDir(), "array.safetensors");
  writeRaw(file, [1, 2, 3], 0);
  expectFormatError(file, "not a JSON object");
});

test("safetensors malformed: unknown dtype", () => {
  const file = path.join(tmpDir(), "dtype.safetensors");
  writeRaw(file, { "layer.w": { dtype: "F4", shape: [2], data_offsets: [0, 8] } }, 8);
  expectFormatError(file, "tensor 'layer.w'", 'unknown dtype "F4"');
});

test("safetensors malformed: shape not non-negative integers", () => {
  const file = path.join(tmpDir(), "shape.safetensors");
  writeRaw(file, { "layer.w": { dtype: "F32", shape: [2, -1], data_offsets: [0, 8] } }, 8);
  expectFormatError(file, "tensor 'layer.w'", "shape must be an array of non-negative integers", "[2,-1]");
  const file2 = path.join(tmpDir(), "shape2.safetensors");
  writeRaw(file2, { "layer.w": { dtype: "F32", shape: [1.5], data_offsets: [0, 8] } }, 8);
  expectFormatError(file2, "tensor 'layer.w'", "shape must be");
});

test("safetensors malformed: data_offsets not [begin, end] integers", () => {
  const file = path.join(tmpDir(), "offsets.safetensors");
  writeRaw(file, { "layer.w": { dtype: "F32", shape: [2], data_offsets: [0] } }, 8);
  expectFormatError(file, "tensor 'layer.w'", "data_offsets must be [begin, end]");
  const file2 = path.join(tmpDir(), "offsets2.safetensors");
  writeRaw(file2, { "layer.w": { dtype: "F32", shape: [2], data_offsets: [8, 0] } }, 8);
  expectFormatError(file2, "tensor 'layer.w'", "data_offsets must be [begin, end]");
});

test("safetensors malformed: byte span does not match shape × dtype size", () => {
  const file = path.join(tmpDir(), "size.safetensors");
  writeRaw(file, { "layer.w": { dtype: "BF16", shape: [3], data_offsets: [0, 8] } }, 8);
  expectFormatError(file, "tensor 'layer.w'", "span 8 bytes", "needs 6");
});

test("safetensors malformed: offsets outside the data section", () => {
  const file = path.join(tmpDir(), "range.safetensors");
  writeRaw(file, { "layer.w": { dtype: "F32", shape: [4], data_offsets: [0, 16] } }, 8);
  expectFormatError(file, "tensor 'layer.w'", "outside the data section (8 bytes)");
});

test("safetensors malformed: overlapping tensors", () => {
  const file = path.join(tmpDir(), "overlap.safetensors");
  writeRaw(file, {
    "a": { dtype: "F32", shape: [2], data_offsets: [0, 8] },
    "b": { dtype: "F32", shape: [2], data_offsets: [4, 12] },
  }, 12);
  expectFormatError(file, "'a'", "'b'", "overlap");
});

test("safetensors malformed: __metadata__ with a non-string value", () => {
  const file = path.join(tmpDir(), "meta.safetensors");
  writeRaw(file, { __metadata__: { format: 1 }, w: goodEntry }, 8);
  expectFormatError(file, "__metadata__.format is not a string");
});

test("safetensors: asking for a missing tensor names it, the file, and similar names", () => {
  const file = path.join(tmpDir(), "names.safetensors");
  writeSafetensors(file, {
    "model.layers.0.self_attn.q_proj.weight": { dtype: "F32", shape: [1], data: new Float32Array(1) },
    "model.layers.0.self_attn.k_proj.weight": { dtype: "F32", shape: [1], data: new Float32Array(1) },
    "model.norm.weight": { dtype: "F32", shape: [1], data: new Float32Array(1) },
  });
  using f = SafetensorsFile.open(file);
  assert.equal(f.has("model.norm.weight"), true);
  assert.equal(f.has("lm_head.weight"), false);
  assert.throws(
    () => f.readBytes("model.layers.0.self_attn.v_proj.weight"),
    (e: unknown) =>
      e instanceof FormatError &&
      e.message.startsWith(`tensor 'model.layers.0.self_attn.v_proj.weight' not found in ${file}`) &&
      e.message.includes("'model.layers.0.self_attn.k_proj.weight'") &&
      !e.message.includes("model.norm.weight"),
  );
});

// ---------------------------------------------------------------- checkpoints

function writeShardedCheckpoint(dir: string): void {
  writeSafetensors(path.join(dir, "model-00001-of-00002.safetensors"), {
    "model.embed_tokens.weight": { dtype: "BF16", shape: [2, 2], data: f32ToBf16(new Float32Array([1, 2, 3, 4])) },
    "model.layers.0.mlp.up_proj.weight": { dtype: "F32", shape: [2], data: new Float32Array([5, 6]) },
  });
  writeSafetensors(path.join(dir, "model-00002-of-00002.safetensors"), {
    "model.norm.weight": { dtype: "F16", shape: [2], data: f32ToF16(new Float32Array([0.5, -0.25])) },
    "lm_head.weight": { dtype: "F32", shape: [1], data: new Float32Array([9]) },
  });
  fs.writeFileSync(
    path.join(dir, "model.safetensors.index.json"),
    JSON.stringify({
      metadata: { total_size: 28 },
      weight_map: {
        "model.embed_tokens.weight": "model-00001-of-00002.safetensors",
        "model.layers.0.mlp.up_proj.weight": "model-00001-of-00002.safetensors",
        "model.norm.weight": "model-00002-of-00002.safetensors",
        "lm_head.weight": "model-00002-of-00002.safetensors",
      },
    }),
  );
}

test("checkpoint: sharded via model.safetensors.index.json", () => {
  const dir = tmpDir();
  writeShardedCheckpoint(dir);
  using ckpt = Checkpoint.open(dir);
  assert.deepEqual(ckpt.names(), ["lm_head.weight", "model.embed_tokens.weight", "model.layers.0.mlp.up_proj.weight", "model.norm.weight"]);
  assert.equal(ckpt.files.length, 2);
  assert.equal(ckpt.info("model.norm.weight").path, path.join(dir, "model-00002-of-00002.safetensors"));
  assert.equal(ckpt.info("model.norm.weight").dtype, "F16");
  assert.deepEqual([...ckpt.readFloat32("model.embed_tokens.weight")], [1, 2, 3, 4]);
  assert.deepEqual([...ckpt.readFloat32("model.norm.weight")], [0.5, -0.25]);
  assert.deepEqual([...ckpt.readFloat32("lm_head.weight")], [9]);
  assert.equal(ckpt.readBytes("model.layers.0.mlp.up_proj.weight").byteLength, 8);
  assert.throws(
    () => ckpt.info("model.norm.bias"),
    (e: unknown) =>
      e instanceof FormatError && e.message.startsWith(`tensor 'model.norm.bias' not found in ${dir}`) && e.message.includes("'model.norm.weight'"),
  );
});

test("checkpoint: a shard listed in the index is missing", () => {
  const dir = tmpDir();
  writeShardedCheckpoint(dir);
  fs.rmSync(path.join(dir, "model-00002-of-00002.safetensors"));
  assert.throws(
    () => Checkpoint.open(dir),
    (e: unknown) =>
      e instanceof FormatError && e.message.includes("model.safetensors.index.json") && e.message.includes("shard 'model-00002-of-00002.safetensors'") &&
      e.message.includes("is missing"),
  );
});

test("checkpoint: a tensor in the index is absent from its shard", () => {
  const dir = tmpDir();
  writeShardedCheckpoint(dir);
  const indexPath = path.join(dir, "model.safetensors.index.json");
  const index = JSON.parse(fs.readFileSync(indexPath, "utf8"));
  index.weight_map["model.layers.0.mlp.down_proj.weight"] = "model-00001-of-00002.safetensors";
  fs.writeFileSync(indexPath, JSON.stringify(index));
  assert.throws(
    () => Checkpoint.open(dir),
    (e: unknown) =>
      e instanceof FormatError && e.message.includes(indexPath) && e.message.includes("tensor 'model.layers.0.mlp.down_proj.weight'") &&
      e.message.includes("shard 'model-00001-of-00002.safetensors' but that shard has no such tensor"),
  );
});

test("checkpoint: index without weight_map, or not JSON", () => {
  const dir = tmpDir();
  writeShardedCheckpoint(dir);
  const indexPath = path.join(dir, "model.safetensors.index.json");
  fs.writeFileSync(indexPath, JSON.stringify({ metadata: {} }));
  assert.throws(
    () => Checkpoint.open(dir),
    (e: unknown) => e instanceof FormatError && e.message.includes(indexPath) && /weight_map is missing/.test(e.message),
  );
  fs.writeFileSync(indexPath, "{nope");
  assert.throws(() => Checkpoint.open(dir), (e: unknown) => e instanceof FormatError && e.message.includes(indexPath) && /not valid JSON/.test(e.message));
});

test("checkpoint: single model.safetensors, a lone *.safetensors, a file path, and ambiguous/empty dirs", () => {
  const single = tmpDir();
  writeSafetensors(path.join(single, "model.safetensors"), { w: { dtype: "F32", shape: [1], data: new Float32Array([1]) } });
  writeSafetensors(path.join(single, "other.safetensors"), { x: { dtype: "F32", shape: [1], data: new Float32Array([2]) } });
  using a = Checkpoint.open(single);
  assert.deepEqual(a.names(), ["w"]);

  const lone = tmpDir();
  writeSafetensors(path.join(lone, "consolidated.safetensors"), { y: { dtype: "F32", shape: [1], data: new Float32Array([3]) } });
  using b = Checkpoint.open(lone);
  assert.deepEqual([...b.readFloat32("y")], [3]);

  using c = Checkpoint.open(path.join(lone, "consolidated.safetensors"));
  assert.deepEqual(c.names(), ["y"]);

  const two = tmpDir();
  writeSafetensors(path.join(two, "a.safetensors"), { y: { dtype: "F32", shape: [1], data: new Float32Array([3]) } });
  writeSafetensors(path.join(two, "b.safetensors"), { z: { dtype: "F32", shape: [1], data: new Float32Array([3]) } });
  assert.throws(() => Checkpoint.open(two), (e: unknown) => e instanceof FormatError && e.message.includes(two) && /2 \.safetensors files/.test(e.message));

  const empty = tmpDir();
  assert.throws(() => Checkpoint.open(empty), (e: unknown) => e instanceof FormatError && e.message.includes(empty) && /no model\.safetensors/.test(e.message));
  assert.throws(() => Checkpoint.open(path.join(empty, "nope")), /no such checkpoint/);
});

// ---------------------------------------------------------------- the real tiny model

test("safetensors: stories260k model.safetensors names, shapes and values", () => {
  const file = sharedDir + "models/stories260k/model.safetensors";
  using f = SafetensorsFile.open(file);
  assert.deepEqual(f.metadata, { format: "pt" });
  const names = f.names();
  assert.equal(names.length, 1 + 5 * 9 + 1); // embed, 5 layers × 9 tensors, final norm (lm_head tied)
  assert.ok(!f.has("lm_head.weight"));
  const expectShapes: Record<string, number[]> = {
    "model.embed_tokens.weight": [512, 64],
    "model.norm.weight": [64],
    "model.layers.0.self_attn.q_proj.weight": [64, 64],
    "model.layers.0.self_attn.k_proj.weight": [32, 64],
    "model.layers.0.self_attn.v_proj.weight": [32, 64],
    "model.layers.0.self_attn.o_proj.weight": [64, 64],
    "model.layers.4.mlp.gate_proj.weight": [172, 64],
    "model.layers.4.mlp.up_proj.weight": [172, 64],
    "model.layers.4.mlp.down_proj.weight": [64, 172],
    "model.layers.4.input_layernorm.weight": [64],
    "model.layers.4.post_attention_layernorm.weight": [64],
  };
  for (const [name, shape] of Object.entries(expectShapes)) {
    const info = f.info(name);
    assert.equal(info.dtype, "F32", name);
    assert.deepEqual(info.shape, shape, name);
  }
  let total = 0;
  for (const n of names) total += f.info(n).byteLength;
  assert.equal(total, f.fileByteLength - 8 - f.headerByteLength);
  const emb = f.readFloat32("model.embed_tokens.weight");
  assert.equal(emb.length, 512 * 64);
  assert.ok(emb.every(Number.isFinite));
  const normW = f.readFloat32("model.norm.weight");
  assert.ok(normW.some((v) => v !== 0));

  using ckpt = Checkpoint.open(sharedDir + "models/stories260k");
  assert.deepEqual(ckpt.names(), names);
  assert.deepEqual(ckpt.readFloat32("model.embed_tokens.weight"), emb);
});
