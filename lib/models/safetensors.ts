/**
 * safetensors: a lazy reader (header at open, tensor bytes on demand with positioned reads — never
 * the whole file), a checkpoint view over a model directory (single file or index-sharded), and a
 * writer.
 *
 * File layout: `u64le headerLength` · `headerLength` bytes of UTF-8 JSON
 * (`{name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__"?: {k: "v"}}`) · data section;
 * `data_offsets` are relative to the start of the data section.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { FormatError, showValue, ValidationError } from "../util/errors.ts";
import { type DType, dtypeByteSize, DTYPES, isDType, toFloat32 } from "../util/dtype.ts";

/** Where one tensor lives and what it is. */
export interface TensorInfo {
  readonly name: string;
  readonly dtype: DType;
  readonly shape: readonly number[];
  /** The .safetensors file holding it. */
  readonly path: string;
  /** Absolute offset of its first byte in that file. */
  readonly byteOffset: number;
  readonly byteLength: number;
}

/** A header bigger than this is treated as corrupt (real headers are kilobytes to a few MB). */
const MAX_HEADER_BYTES = 100 * 1024 * 1024;
/** Largest single positioned read (some runtimes cap one read at 2 GiB). */
const MAX_READ_CHUNK = 1 << 30;
const METADATA_KEY = "__metadata__";
/** Largest single read of Checkpoint.prefetchConcat. */
const PREFETCH_PIECE = 64 << 20;

const fdRegistry = new FinalizationRegistry<number>((fd) => {
  try {
    fs.closeSync(fd);
  } catch {
    // already closed: nothing to do in a safety net
  }
});

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

function isNonNegInt(v: unknown): v is number {
  return typeof v === "number" && Number.isSafeInteger(v) && v >= 0;
}

function levenshtein(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length];
}

function notFound(name: string, where: string, names: readonly string[]): FormatError {
  const ranked = names
    .map((n) => ({ n, d: levenshtein(name, n) }))
    .filter((x) => x.d <= Math.max(3, Math.floor(name.length / 3)))
    .sort((x, y) => x.d - y.d || (x.n < y.n ? -1 : 1))
    .slice(0, 3)
    .map((x) => `'${x.n}'`);
  const hint = ranked.length ? `; similar: ${ranked.join(", ")}` : names.length === 0 ? "; it holds no tensors" : "";
  return new FormatError(`tensor '${name}' not found in ${where}${hint}`, where);
}

/** Reads exactly `length` bytes at `position` (looping over short reads). */
function readExactly(fd: number, position: number, length: number, file: string, what: string): Uint8Array {
  const out = new Uint8Array(length);
  let done = 0;
  while (done < length) {
    const n = fs.readSync(fd, out, done, Math.min(length - done, MAX_READ_CHUNK), position + done);
    if (n <= 0) {
      throw new FormatError(`${file}: unexpected end of file reading ${what} (got ${done} of ${length} bytes at offset ${position})`, file);
    }
    done += n;
  }
  return out;
}

/**
 * One .safetensors file, opened lazily: `open` reads and validates only the header; each
 * `readBytes` is one positioned read of that tensor's bytes.
 *
 * @example
 * ```ts
 * using f = SafetensorsFile.open("model.safetensors");
 * f.info("model.embed_tokens.weight").shape; // [512, 64]
 * const w = f.readFloat32("model.embed_tokens.weight"); // Float32Array, any float dtype converted
 * ```
 */
export class SafetensorsFile {
  /** The path as given to `open`. */
  readonly path: string;
  /** The header's `__metadata__` (empty when absent). */
  readonly metadata: Readonly<Record<string, string>>;
  /** Length of the JSON header in bytes (data starts at 8 + this). */
  readonly headerByteLength: number;
  /** Size of the whole file in bytes at open. */
  readonly fileByteLength: number;
  #fd: number | null;
  /** Tensor bytes read so far and the milliseconds the reads took (load statistics). */
  readonly readStats = { bytes: 0, ms: 0 };
  readonly #infos: ReadonlyMap<string, TensorInfo>;
  readonly #names: readonly string[];

  private constructor(
    filePath: string,
    fd: number,
    metadata: Record<string, string>,
    infos: Map<string, TensorInfo>,
    headerByteLength: number,
    fileByteLength: number,
  ) {
    this.path = filePath;
    this.#fd = fd;
    this.metadata = Object.freeze(metadata);
    this.#infos = infos;
    this.#names = Object.freeze([...infos.keys()].sort());
    this.headerByteLength = headerByteLength;
    this.fileByteLength = fileByteLength;
    fdRegistry.register(this, fd, this);
  }

  /**
   * Opens `filePath` and validates its header (dtypes, shapes, offsets in range, sizes matching
   * shapes, no overlaps). Throws `FormatError` naming the file (and tensor) on any problem.
   */
  static open(filePath: string): SafetensorsFile {
    let fd: number;
    try {
      if (fs.statSync(filePath).isDirectory()) throw new FormatError(`${filePath}: is a directory, not a .safetensors file`, filePath);
      fd = fs.openSync(filePath, "r");
    } catch (e) {
      if (e instanceof FormatError) throw e;
      throw new FormatError(`${filePath}: cannot open (${(e as Error).message})`, filePath);
    }
    try {
      const size = fs.fstatSync(fd).size;
      if (size < 8) throw new FormatError(`${filePath}: file is ${size} bytes, shorter than the 8-byte header length`, filePath);
      const lenBytes = readExactly(fd, 0, 8, filePath, "the header length");
      const headerLen64 = new DataView(lenBytes.buffer).getBigUint64(0, true);
      if (headerLen64 > BigInt(MAX_HEADER_BYTES)) {
        throw new FormatError(`${filePath}: header length ${headerLen64} bytes is absurd (limit ${MAX_HEADER_BYTES}); not a safetensors file?`, filePath);
      }
      const headerLen = Number(headerLen64);
      if (8 + headerLen > size) {
        throw new FormatError(`${filePath}: header length ${headerLen} runs past the end of the file (${size} bytes)`, filePath);
      }
      const headerBytes = readExactly(fd, 8, headerLen, filePath, "the header");
      let header: unknown;
      try {
        header = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(headerBytes));
      } catch (e) {
        throw new FormatError(`${filePath}: header is not valid JSON (${(e as Error).message})`, filePath);
      }
      if (!isPlainObject(header)) throw new FormatError(`${filePath}: header is not a JSON object (got ${showValue(header)})`, filePath);
      const dataStart = 8 + headerLen;
      const { metadata, infos } = parseHeader(header, filePath, dataStart, size - dataStart);
      return new SafetensorsFile(filePath, fd, metadata, infos, headerLen, size);
    } catch (e) {
      fs.closeSync(fd);
      throw e;
    }
  }

  /** Tensor names, sorted. */
  names(): string[] {
    return [...this.#names];
  }

  /** Whether the file holds tensor `name`. */
  has(name: string): boolean {
    return this.#infos.has(name);
  }

  /** Dtype, shape and location of tensor `name`; FormatError if absent. */
  info(name: string): TensorInfo {
    const i = this.#infos.get(name);
    if (!i) throw notFound(name, this.path, this.#names);
    return i;
  }

  /** The raw little-endian bytes of tensor `name` (a fresh, 8-byte-aligned buffer). */
  readBytes(name: string): Uint8Array {
    const i = this.info(name);
    if (this.#fd === null) throw new FormatError(`${this.path}: file is closed (reading tensor '${name}')`, this.path);
    const t0 = performance.now();
    const out = readExactly(this.#fd, i.byteOffset, i.byteLength, this.path, `tensor '${name}'`);
    this.readStats.ms += performance.now() - t0;
    this.readStats.bytes += out.byteLength;
    return out;
  }

  /**
   * Reads the raw bytes of tensor `name` into `dst` (exactly its byte length): lets a caller read
   * several tensors straight into one buffer (a fused weight) without a copy.
   */
  readInto(name: string, dst: Uint8Array): void {
    const i = this.info(name);
    if (this.#fd === null) throw new FormatError(`${this.path}: file is closed (reading tensor '${name}')`, this.path);
    if (dst.byteLength !== i.byteLength) {
      throw new ValidationError(`SafetensorsFile.readInto: tensor '${name}' is ${i.byteLength} bytes, dst has ${dst.byteLength}`, "dst", dst.byteLength);
    }
    const t0 = performance.now();
    let done = 0;
    while (done < dst.byteLength) {
      const n = fs.readSync(this.#fd, dst, done, Math.min(dst.byteLength - done, MAX_READ_CHUNK), i.byteOffset + done);
      if (n <= 0) {
        throw new FormatError(
          `${this.path}: unexpected end of file reading tensor '${name}' (got ${done} of ${dst.byteLength} bytes at offset ${i.byteOffset})`,
          this.path,
        );
      }
      done += n;
    }
    this.readStats.ms += performance.now() - t0;
    this.readStats.bytes += done;
  }

  /** The open descriptor (for reads issued elsewhere); FormatError once closed. */
  fd(reading: string): number {
    if (this.#fd === null) throw new FormatError(`${this.path}: file is closed (reading tensor '${reading}')`, this.path);
    return this.#fd;
  }

  /** Tensor `name` converted to f32 (see `toFloat32` for the dtypes handled). */
  readFloat32(name: string): Float32Array {
    return toFloat32(this.readBytes(name), this.info(name).dtype);
  }

  /** Closes the file descriptor. Idempotent. */
  close(): void {
    if (this.#fd === null) return;
    const fd = this.#fd;
    this.#fd = null;
    fdRegistry.unregister(this);
    fs.closeSync(fd);
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

function parseHeader(
  header: Record<string, unknown>,
  file: string,
  dataStart: number,
  dataSize: number,
): { metadata: Record<string, string>; infos: Map<string, TensorInfo> } {
  const metadata: Record<string, string> = {};
  const raw = header[METADATA_KEY];
  if (raw !== undefined) {
    if (!isPlainObject(raw)) throw new FormatError(`${file}: ${METADATA_KEY} is not an object (got ${showValue(raw)})`, file);
    for (const [k, v] of Object.entries(raw)) {
      if (typeof v !== "string") throw new FormatError(`${file}: ${METADATA_KEY}.${k} is not a string (got ${showValue(v)})`, file);
      metadata[k] = v;
    }
  }
  const infos = new Map<string, TensorInfo>();
  const spans: { name: string; begin: number; end: number }[] = [];
  for (const [name, entry] of Object.entries(header)) {
    if (name === METADATA_KEY) continue;
    const where = `${file}: tensor '${name}'`;
    if (!isPlainObject(entry)) throw new FormatError(`${where}: entry is not an object (got ${showValue(entry)})`, file);
    const { dtype, shape, data_offsets: offsets } = entry;
    if (!isDType(dtype)) throw new FormatError(`${where}: unknown dtype ${showValue(dtype)} (known: ${DTYPES.join(", ")})`, file);
    if (!Array.isArray(shape) || !shape.every(isNonNegInt)) {
      throw new FormatError(`${where}: shape must be an array of non-negative integers, got ${showValue(shape)}`, file);
    }
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isNonNegInt) || offsets[0] > offsets[1]) {
      throw new FormatError(`${where}: data_offsets must be [begin, end] integers with 0 <= begin <= end, got ${showValue(offsets)}`, file);
    }
    const [begin, end] = offsets as [number, number];
    const numel = shape.reduce((a: number, b: number) => a * b, 1);
    const expected = numel * dtypeByteSize(dtype);
    if (end - begin !== expected) {
      throw new FormatError(
        `${where}: data_offsets [${begin}, ${end}] span ${end - begin} bytes but shape [${shape.join(", ")}] of ${dtype} needs ${expected}`,
        file,
      );
    }
    if (end > dataSize) {
      throw new FormatError(`${where}: data_offsets [${begin}, ${end}] lie outside the data section (${dataSize} bytes)`, file);
    }
    infos.set(name, Object.freeze({ name, dtype, shape: Object.freeze([...shape]), path: file, byteOffset: dataStart + begin, byteLength: expected }));
    if (end > begin) spans.push({ name, begin, end });
  }
  spans.sort((a, b) => a.begin - b.begin);
  for (let i = 1; i < spans.length; i++) {
    const a = spans[i - 1];
    const b = spans[i];
    if (b.begin < a.end) {
      throw new FormatError(`${file}: tensors '${a.name}' [${a.begin}, ${a.end}] and '${b.name}' [${b.begin}, ${b.end}] overlap`, file);
    }
  }
  return { metadata, infos };
}

const INDEX_FILE = "model.safetensors.index.json";
const SINGLE_FILE = "model.safetensors";

/**
 * A model's weights: `model.safetensors`, or shards listed by `model.safetensors.index.json`
 * (`weight_map`: tensor name → shard file), or the only `*.safetensors` in the directory, or a
 * `.safetensors` file path. Opening reads every shard header and checks the index against them.
 *
 * @example
 * ```ts
 * using ckpt = Checkpoint.open("/models/Qwen2.5-0.5B");
 * for (const name of ckpt.names()) console.log(name, ckpt.info(name).shape);
 * const emb = ckpt.readFloat32("model.embed_tokens.weight");
 * ```
 */
export class Checkpoint {
  /** The directory (or file) given to `open`. */
  readonly dir: string;
  /** Paths of the opened .safetensors files. */
  readonly files: readonly string[];
  readonly #byName: ReadonlyMap<string, SafetensorsFile>;
  readonly #shards: readonly SafetensorsFile[];
  readonly #names: readonly string[];
  /** Groups read ahead by prefetchConcat, by their names joined with newlines. */
  readonly #prefetched = new Map<string, Uint8Array>();
  readonly #prefetchStats = { bytes: 0, ms: 0 };

  private constructor(dir: string, shards: SafetensorsFile[], byName: Map<string, SafetensorsFile>) {
    this.dir = dir;
    this.#shards = shards;
    this.files = Object.freeze(shards.map((s) => s.path));
    this.#byName = byName;
    this.#names = Object.freeze([...byName.keys()].sort());
  }

  /** Opens the checkpoint at `dir` (see the class comment for the layouts recognized). */
  static open(dir: string): Checkpoint {
    if (!fs.existsSync(dir)) throw new FormatError(`${dir}: no such checkpoint directory or file`, dir);
    if (fs.statSync(dir).isFile()) return Checkpoint.#fromFile(dir, dir);
    const indexPath = path.join(dir, INDEX_FILE);
    if (fs.existsSync(indexPath)) return Checkpoint.#fromIndex(dir, indexPath);
    const single = path.join(dir, SINGLE_FILE);
    if (fs.existsSync(single)) return Checkpoint.#fromFile(dir, single);
    const found = fs.readdirSync(dir).filter((f) => f.endsWith(".safetensors")).sort();
    if (found.length === 1) return Checkpoint.#fromFile(dir, path.join(dir, found[0]));
    if (found.length === 0) throw new FormatError(`${dir}: no ${SINGLE_FILE}, ${INDEX_FILE} or other .safetensors file`, dir);
    throw new FormatError(
      `${dir}: ${found.length} .safetensors files (${found.slice(0, 4).join(", ")}${
        found.length > 4 ? ", ..." : ""
      }) but no ${INDEX_FILE} saying how they fit together`,
      dir,
    );
  }

  static #fromFile(dir: string, file: string): Checkpoint {
    const shard = SafetensorsFile.open(file);
    const byName = new Map(shard.names().map((n) => [n, shard]));
    return new Checkpoint(dir, [shard], byName);
  }

  static #fromIndex(dir: string, indexPath: string): Checkpoint {
    let index: unknown;
    try {
      index = JSON.parse(fs.readFileSync(indexPath, "utf8"));
    } catch (e) {
      throw new FormatError(`${indexPath}: not valid JSON (${(e as Error).message})`, indexPath);
    }
    const weightMap = isPlainObject(index) ? index.weight_map : undefined;
    if (!isPlainObject(weightMap)) throw new FormatError(`${indexPath}: weight_map is missing or not an object`, indexPath);
    const shards = new Map<string, SafetensorsFile>();
    const byName = new Map<string, SafetensorsFile>();
    try {
      for (const [name, file] of Object.entries(weightMap)) {
        if (typeof file !== "string" || file === "") {
          throw new FormatError(`${indexPath}: weight_map['${name}'] must be a shard file name, got ${showValue(file)}`, indexPath);
        }
        let shard = shards.get(file);
        if (!shard) {
          const shardPath = path.join(dir, file);
          if (!fs.existsSync(shardPath)) {
            throw new FormatError(`${indexPath}: shard '${file}' (listed for tensor '${name}') is missing from ${dir}`, indexPath);
          }
          shard = SafetensorsFile.open(shardPath);
          shards.set(file, shard);
        }
        if (!shard.has(name)) {
          throw new FormatError(`${indexPath}: tensor '${name}' is mapped to shard '${file}' but that shard has no such tensor`, indexPath);
        }
        byName.set(name, shard);
      }
    } catch (e) {
      for (const s of shards.values()) s.close();
      throw e;
    }
    return new Checkpoint(dir, [...shards.values()], byName);
  }

  /** Tensor names, sorted. */
  names(): string[] {
    return [...this.#names];
  }

  /** Whether the checkpoint holds tensor `name`. */
  has(name: string): boolean {
    return this.#byName.has(name);
  }

  /** Dtype, shape and location of tensor `name`; FormatError naming the directory if absent. */
  info(name: string): TensorInfo {
    return this.#shard(name).info(name);
  }

  /** Raw bytes of tensor `name` (one positioned read). */
  readBytes(name: string): Uint8Array {
    return this.#shard(name).readBytes(name);
  }

  /** Raw bytes of tensor `name` read into `dst` (exactly its byte length). */
  readInto(name: string, dst: Uint8Array): void {
    this.#shard(name).readInto(name, dst);
  }

  /** Tensor `name` converted to f32. */
  readFloat32(name: string): Float32Array {
    return this.#shard(name).readFloat32(name);
  }

  /**
   * The raw bytes of `names` concatenated into one fresh buffer (a fused weight): handed over from
   * {@link Checkpoint.prefetchConcat} when it read this group, else read now, each part in place.
   */
  readConcat(names: readonly string[]): Uint8Array {
    const key = names.join("\n");
    const ready = this.#prefetched.get(key);
    if (ready) {
      this.#prefetched.delete(key);
      return ready;
    }
    const sizes = names.map((n) => this.info(n).byteLength);
    const out = new Uint8Array(sizes.reduce((a, b) => a + b, 0));
    let at = 0;
    names.forEach((n, i) => {
      this.readInto(n, out.subarray(at, at + sizes[i]));
      at += sizes[i];
    });
    return out;
  }

  /**
   * Reads groups of tensors ahead (each group concatenated into one buffer, as readConcat returns
   * it) with up to `concurrency` reads of at most 64 MiB in flight on the runtime's I/O threads:
   * parallel reads, the page faults of the fresh buffers taken on those threads too. The buffers
   * wait in the checkpoint until readConcat takes them (or close drops them).
   */
  async prefetchConcat(groups: readonly (readonly string[])[], concurrency = 8): Promise<void> {
    const t0 = performance.now();
    const tasks: { fd: number; pos: number; dst: Uint8Array; file: string; name: string }[] = [];
    const outs: [string, Uint8Array][] = [];
    for (const g of groups) {
      const infos = g.map((n) => this.info(n));
      const out = new Uint8Array(infos.reduce((a, i) => a + i.byteLength, 0));
      let at = 0;
      for (const i of infos) {
        const fd = this.#shard(i.name).fd(i.name);
        for (let p = 0; p < i.byteLength; p += PREFETCH_PIECE) {
          const n = Math.min(PREFETCH_PIECE, i.byteLength - p);
          tasks.push({ fd, pos: i.byteOffset + p, dst: out.subarray(at + p, at + p + n), file: i.path, name: i.name });
        }
        at += i.byteLength;
      }
      outs.push([g.join("\n"), out]);
    }
    let next = 0, bytes = 0;
    const lane = async (): Promise<void> => {
      while (next < tasks.length) {
        const t = tasks[next++];
        for (let done = 0; done < t.dst.byteLength;) {
          const n = await new Promise<number>((resolve, reject) =>
            fs.read(t.fd, t.dst, done, t.dst.byteLength - done, t.pos + done, (err, got) => err ? reject(err) : resolve(got))
          );
          if (n <= 0) throw new FormatError(`${t.file}: unexpected end of file reading tensor '${t.name}' (offset ${t.pos + done})`, t.file);
          done += n;
        }
        bytes += t.dst.byteLength;
      }
    };
    const settled = await Promise.allSettled(Array.from({ length: Math.max(1, Math.min(concurrency, tasks.length)) }, lane));
    const failed = settled.find((r) => r.status === "rejected");
    if (failed) throw (failed as PromiseRejectedResult).reason;
    for (const [k, v] of outs) this.#prefetched.set(k, v);
    this.#prefetchStats.bytes += bytes;
    this.#prefetchStats.ms += performance.now() - t0;
  }

  /** Tensor bytes read so far from every shard (prefetches included), and the milliseconds the reads took. */
  get readStats(): { bytes: number; ms: number } {
    return this.#shards.reduce((a, s) => ({ bytes: a.bytes + s.readStats.bytes, ms: a.ms + s.readStats.ms }), { ...this.#prefetchStats });
  }

  /** Closes every shard (and drops prefetched buffers not taken). Idempotent. */
  close(): void {
    this.#prefetched.clear();
    for (const s of this.#shards) s.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }

  #shard(name: string): SafetensorsFile {
    const s = this.#byName.get(name);
    if (!s) throw notFound(name, this.dir, this.#names);
    return s;
  }
}

/** One tensor to write: `data` holds exactly numel × dtype-size bytes, little-endian. */
export interface TensorToWrite {
  readonly dtype: DType;
  readonly shape: readonly number[];
  readonly data: ArrayBufferView;
}

/**
 * Writes a .safetensors file: tensors in sorted name order, contiguous, header padded with spaces
 * so the data section starts 8-byte aligned. Throws `ValidationError` on a bad dtype, shape or
 * data size.
 *
 * @example
 * ```ts
 * writeSafetensors("/tmp/t.safetensors", {
 *   w: { dtype: "F32", shape: [2, 2], data: new Float32Array([1, 2, 3, 4]) },
 * }, { format: "pt" });
 * ```
 */
export function writeSafetensors(
  filePath: string,
  tensors: Readonly<Record<string, TensorToWrite>>,
  metadata?: Readonly<Record<string, string>>,
): void {
  const header: Record<string, unknown> = {};
  if (metadata) {
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== "string") throw new ValidationError(`writeSafetensors: metadata.${k} must be a string, got ${showValue(v)}`, `metadata.${k}`, v);
    }
    header[METADATA_KEY] = { ...metadata };
  }
  const names = Object.keys(tensors).sort();
  const chunks: Uint8Array[] = [];
  let offset = 0;
  for (const name of names) {
    if (name === METADATA_KEY) throw new ValidationError(`writeSafetensors: '${METADATA_KEY}' is reserved, not a tensor name`, "name", name);
    const { dtype, shape, data } = tensors[name];
    if (!isDType(dtype)) throw new ValidationError(`writeSafetensors: tensor '${name}': unknown dtype ${showValue(dtype)}`, `${name}.dtype`, dtype);
    if (!Array.isArray(shape) || !shape.every(isNonNegInt)) {
      throw new ValidationError(`writeSafetensors: tensor '${name}': shape must be non-negative integers, got ${showValue(shape)}`, `${name}.shape`, shape);
    }
    const need = shape.reduce((a: number, b: number) => a * b, 1) * dtypeByteSize(dtype);
    if (!ArrayBuffer.isView(data) || data.byteLength !== need) {
      throw new ValidationError(
        `writeSafetensors: tensor '${name}': shape [${shape.join(", ")}] of ${dtype} needs ${need} bytes, data has ${
          ArrayBuffer.isView(data) ? data.byteLength : showValue(data)
        }`,
        `${name}.data`,
        ArrayBuffer.isView(data) ? data.byteLength : data,
      );
    }
    header[name] = { dtype, shape: [...shape], data_offsets: [offset, offset + need] };
    chunks.push(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    offset += need;
  }
  let json = JSON.stringify(header);
  let jsonBytes = new TextEncoder().encode(json);
  const pad = (8 - (jsonBytes.length % 8)) % 8;
  if (pad) {
    json += " ".repeat(pad);
    jsonBytes = new TextEncoder().encode(json);
  }
  const prefix = new Uint8Array(8);
  new DataView(prefix.buffer).setBigUint64(0, BigInt(jsonBytes.length), true);
  const fd = fs.openSync(filePath, "w");
  try {
    let pos = 0;
    for (const chunk of [prefix, jsonBytes, ...chunks]) {
      let done = 0;
      while (done < chunk.length) {
        const n = fs.writeSync(fd, chunk, done, Math.min(chunk.length - done, MAX_READ_CHUNK), pos);
        done += n;
        pos += n;
      }
    }
  } finally {
    fs.closeSync(fd);
  }
}
