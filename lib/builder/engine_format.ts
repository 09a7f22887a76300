/**
 * The `rank<N>.engine` file: magic + version + fixed 256-byte header, a JSON section (plan and
 * tensor table), then tensor blobs each aligned to 256 bytes (mmap-friendly).
 *
 * ```
 * 0   "LLMRTENG"        magic (8 bytes)
 * 8   u32 version       ENGINE_FORMAT_VERSION
 * 12  u32 flags         0
 * 16  u64 metaOffset    256
 * 24  u64 metaLength    bytes of UTF-8 JSON
 * 32  u64 dataOffset    256-aligned
 * 40  u64 dataLength
 * 48  u64 fileLength    whole file (detects truncation)
 * 56  zero padding to 256
 * ```
 */
import * as fs from "node:fs";
import { FormatError } from "../util/errors.ts";

export const ENGINE_MAGIC = "LLMRTENG";
export const ENGINE_FORMAT_VERSION = 1;
export const HEADER_BYTES = 256;
export const BLOB_ALIGN = 256;

/** One tensor's entry in the table; `offset` is relative to the data section. */
export interface TensorEntry {
  readonly name: string;
  readonly dtype: "float32" | "float16" | "bfloat16" | "int8" | "uint8" | "int32";
  readonly shape: readonly number[];
  readonly offset: number;
  readonly bytes: number;
}

export interface EngineFileMeta {
  readonly plan: unknown;
  readonly tensors: readonly TensorEntry[];
}

const alignUp = (n: number): number => Math.ceil(n / BLOB_ALIGN) * BLOB_ALIGN;

/** Writes an engine file; `data(name)` yields each tensor's bytes when it is written. */
export function writeEngineFile(
  path: string,
  plan: unknown,
  tensors: readonly Omit<TensorEntry, "offset" | "bytes">[],
  data: (name: string) => Uint8Array,
): void {
  const entries: TensorEntry[] = [];
  const blobs: Uint8Array[] = [];
  let off = 0;
  for (const t of tensors) {
    const bytes = data(t.name);
    entries.push({ ...t, offset: off, bytes: bytes.byteLength });
    blobs.push(bytes);
    off = alignUp(off + bytes.byteLength);
  }
  const meta = new TextEncoder().encode(JSON.stringify({ plan, tensors: entries } satisfies EngineFileMeta));
  const dataOffset = alignUp(HEADER_BYTES + meta.byteLength);
  const fileLength = dataOffset + off;
  const header = new Uint8Array(HEADER_BYTES);
  const dv = new DataView(header.buffer);
  header.set(new TextEncoder().encode(ENGINE_MAGIC), 0);
  dv.setUint32(8, ENGINE_FORMAT_VERSION, true);
  dv.setUint32(12, 0, true);
  dv.setBigUint64(16, BigInt(HEADER_BYTES), true);
  dv.setBigUint64(24, BigInt(meta.byteLength), true);
  dv.setBigUint64(32, BigInt(dataOffset), true);
  dv.setBigUint64(40, BigInt(off), true);
  dv.setBigUint64(48, BigInt(fileLength), true);
  const tmp = `${path}.tmp`;
  const fd = fs.openSync(tmp, "w");
  try {
    fs.writeSync(fd, header, 0, header.byteLength, 0);
    fs.writeSync(fd, meta, 0, meta.byteLength, HEADER_BYTES);
    entries.forEach((e, i) => fs.writeSync(fd, blobs[i], 0, blobs[i].byteLength, dataOffset + e.offset));
    if (fileLength > dataOffset + (entries.at(-1)?.offset ?? 0) + (entries.at(-1)?.bytes ?? 0)) {
      fs.writeSync(fd, new Uint8Array(1), 0, 1, fileLength - 1); // pad the last blob to its alignment
    }
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, path);
}

/** An opened engine file: header and tables read eagerly, tensor blobs on demand. */
export class EngineFile {
  readonly #fd: number;
  readonly meta: EngineFileMeta;
  readonly #dataOffset: number;
  readonly #byName = new Map<string, TensorEntry>();
  #closed = false;

  private constructor(readonly path: string, fd: number, meta: EngineFileMeta, dataOffset: number) {
    this.#fd = fd;
    this.meta = meta;
    this.#dataOffset = dataOffset;
    for (const t of meta.tensors) this.#byName.set(t.name, t);
  }

  /** Opens and validates `path`; a bad magic, version or truncated file is a FormatError. */
  static open(path: string): EngineFile {
    let fd: number;
    try {
      fd = fs.openSync(path, "r");
    } catch (e) {
      throw new FormatError(`engine file ${path} cannot be opened: ${(e as Error).message}`, path);
    }
    try {
      const size = fs.fstatSync(fd).size;
      if (size < HEADER_BYTES) throw new FormatError(`engine file ${path} is truncated: ${size} bytes, the header alone is ${HEADER_BYTES}`, path);
      const header = new Uint8Array(HEADER_BYTES);
      fs.readSync(fd, header, 0, HEADER_BYTES, 0);
      const magic = new TextDecoder().decode(header.subarray(0, 8));
      if (magic !== ENGINE_MAGIC) throw new FormatError(`engine file ${path} has magic ${JSON.stringify(magic)}, expected ${JSON.stringify(ENGINE_MAGIC)}: not an llmrt engine`, path);
      const dv = new DataView(header.buffer);
      const version = dv.getUint32(8, true);
      if (version !== ENGINE_FORMAT_VERSION) {
        throw new FormatError(`engine file ${path} has format version ${version}; this llmrt needs version ${ENGINE_FORMAT_VERSION} (rebuild the engine)`, path);
      }
      const metaOffset = Number(dv.getBigUint64(16, true));
      const metaLength = Number(dv.getBigUint64(24, true));
      const dataOffset = Number(dv.getBigUint64(32, true));
      const dataLength = Number(dv.getBigUint64(40, true));
      const fileLength = Number(dv.getBigUint64(48, true));
      if (size < fileLength) throw new FormatError(`engine file ${path} is truncated: ${size} of ${fileLength} bytes`, path);
      if (metaOffset + metaLength > dataOffset || dataOffset + dataLength > fileLength) {
        throw new FormatError(`engine file ${path} has an inconsistent header (meta ${metaOffset}+${metaLength}, data ${dataOffset}+${dataLength}, file ${fileLength})`, path);
      }
      const metaBytes = new Uint8Array(metaLength);
      fs.readSync(fd, metaBytes, 0, metaLength, metaOffset);
      let meta: EngineFileMeta;
      try {
        meta = JSON.parse(new TextDecoder().decode(metaBytes));
      } catch (e) {
        throw new FormatError(`engine file ${path}: tensor table is not valid JSON (${(e as Error).message})`, path);
      }
      for (const t of meta.tensors ?? []) {
        if (t.offset + t.bytes > dataLength) throw new FormatError(`engine file ${path}: tensor '${t.name}' lies past the end of the data section`, path);
      }
      return new EngineFile(path, fd, meta, dataOffset);
    } catch (e) {
      fs.closeSync(fd);
      throw e;
    }
  }

  has(name: string): boolean {
    return this.#byName.has(name);
  }

  entry(name: string): TensorEntry {
    const t = this.#byName.get(name);
    if (!t) throw new FormatError(`engine file ${this.path}: tensor '${name}' is missing`, this.path);
    return t;
  }

  /** Reads one tensor's bytes into a fresh, aligned buffer. */
  read(name: string): Uint8Array {
    if (this.#closed) throw new Error(`engine file ${this.path} is closed`);
    const t = this.entry(name);
    const out = new Uint8Array(t.bytes);
    const n = fs.readSync(this.#fd, out, 0, t.bytes, this.#dataOffset + t.offset);
    if (n !== t.bytes) throw new FormatError(`engine file ${this.path}: short read of '${name}' (${n} of ${t.bytes} bytes)`, this.path);
    return out;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    fs.closeSync(this.#fd);
  }
}
