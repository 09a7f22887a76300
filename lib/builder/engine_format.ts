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
 * 56  u32 metaCrc32     CRC-32 of the JSON section (plan, tensor table, config)
 * 60  zero padding to 256
 * ```
 *
 * Version 2 added `metaCrc32`, a CRC-32 per tensor blob in the table (`crc32`, checked on every
 * read: ~11 GB/s, so a 2.5 GB engine costs ~0.25 s once) and the engine config in the JSON
 * section (config.json must match it).
 */
import * as fs from "node:fs";
import * as zlib from "node:zlib";
import { DisposedError, FormatError } from "../util/errors.ts";

export const ENGINE_MAGIC = "LLMRTENG";
export const ENGINE_FORMAT_VERSION = 2;
export const HEADER_BYTES = 256;
export const BLOB_ALIGN = 256;

/** One tensor's entry in the table; `offset` is relative to the data section. */
export interface TensorEntry {
  readonly name: string;
  readonly dtype: "float32" | "float16" | "bfloat16" | "int8" | "uint8" | "int32";
  readonly shape: readonly number[];
  readonly offset: number;
  readonly bytes: number;
  /** CRC-32 of the blob (format version 2). */
  readonly crc32: number;
}

export interface EngineFileMeta {
  readonly plan: unknown;
  readonly tensors: readonly TensorEntry[];
  /** The engine's config as built (config.json must equal it). */
  readonly config: unknown;
  /** The rank whose weights the file holds (rank<N>.engine must hold rank N's); absent in files written before it was recorded. */
  readonly rank?: number;
}

const nativeCrc32 = (zlib as { crc32?: (data: Uint8Array, value?: number) => number }).crc32;
let crcTable: Int32Array | null = null;

/** CRC-32 (IEEE, as zlib) of `data`, continuing from `prev`; node:zlib's native one where the runtime has it. */
export function crc32(data: Uint8Array, prev = 0): number {
  if (typeof nativeCrc32 === "function") return nativeCrc32(data, prev) >>> 0;
  if (!crcTable) {
    crcTable = new Int32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c;
    }
  }
  let c = ~prev;
  for (let i = 0; i < data.length; i++) c = crcTable[(c ^ data[i]) & 0xff] ^ (c >>> 8);
  return (c ^ -1) >>> 0;
}

/** Largest piece {@link EngineFile.readInto} reads at once. */
const READ_PIECE = 8 << 20;

/** An opened engine file: header and tables read eagerly, tensor blobs on demand. */
export class EngineFile {
  readonly #fd: number;
  readonly meta: EngineFileMeta;
  readonly #dataOffset: number;
  readonly #byName = new Map<string, TensorEntry>();
  #closed = false;
  #deferCrc = false;

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
      if (fs.statSync(path).isDirectory()) throw new Error("it is a directory");
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
      if (magic !== ENGINE_MAGIC) {
        throw new FormatError(`engine file ${path} has magic ${JSON.stringify(magic)}, expected ${JSON.stringify(ENGINE_MAGIC)}: not an llmrt engine`, path);
      }
      const dv = new DataView(header.buffer);
      const version = dv.getUint32(8, true);
      if (version !== ENGINE_FORMAT_VERSION) {
        throw new FormatError(
          `engine file ${path} has format version ${version}; this llmrt needs version ${ENGINE_FORMAT_VERSION} (rebuild the engine)`,
          path,
        );
      }
      const metaOffset = Number(dv.getBigUint64(16, true));
      const metaLength = Number(dv.getBigUint64(24, true));
      const dataOffset = Number(dv.getBigUint64(32, true));
      const dataLength = Number(dv.getBigUint64(40, true));
      const fileLength = Number(dv.getBigUint64(48, true));
      if (size < fileLength) throw new FormatError(`engine file ${path} is truncated: ${size} of ${fileLength} bytes`, path);
      if (metaOffset < HEADER_BYTES || metaOffset + metaLength > dataOffset || dataOffset % BLOB_ALIGN !== 0 || dataOffset + dataLength > fileLength) {
        throw new FormatError(
          `engine file ${path} has an inconsistent header (meta ${metaOffset}+${metaLength}, data ${dataOffset}+${dataLength}, file ${fileLength})`,
          path,
        );
      }
      if (size > fileLength) throw new FormatError(`engine file ${path} is ${size} bytes, its header says ${fileLength}: trailing data`, path);
      const metaBytes = new Uint8Array(metaLength);
      if (fs.readSync(fd, metaBytes, 0, metaLength, metaOffset) !== metaLength) {
        throw new FormatError(`engine file ${path}: short read of the tensor table`, path);
      }
      const metaCrc = dv.getUint32(56, true);
      const gotCrc = crc32(metaBytes);
      if (gotCrc !== metaCrc) {
        throw new FormatError(
          `engine file ${path}: the plan/tensor table is corrupt (CRC-32 ${hex(gotCrc)}, header says ${hex(metaCrc)}); rebuild the engine`,
          path,
        );
      }
      let meta: EngineFileMeta;
      try {
        meta = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(metaBytes));
      } catch (e) {
        throw new FormatError(`engine file ${path}: tensor table is not valid JSON (${(e as Error).message})`, path);
      }
      checkTable(meta, path, dataLength);
      return new EngineFile(path, fd, meta, dataOffset);
    } catch (e) {
      fs.closeSync(fd);
      throw e;
    }
  }

  has(name: string): boolean {
    return this.#byName.has(name);
  }

  /** Absolute offset of the data section (blob offsets in the table are relative to it). */
  get dataOffset(): number {
    return this.#dataOffset;
  }

  /**
   * Reads without checking the blobs' CRC-32s from now on: the caller checks them elsewhere (in
   * parallel, `verifyBlobsInWorkers`) and throws away what it read if that fails.
   */
  deferChecksums(): void {
    this.#deferCrc = true;
  }

  entry(name: string): TensorEntry {
    const t = this.#byName.get(name);
    if (!t) throw new FormatError(`engine file ${this.path}: tensor '${name}' is missing`, this.path);
    return t;
  }

  /** Reads one tensor's bytes into a fresh, aligned buffer and checks its CRC-32. */
  read(name: string): Uint8Array {
    if (this.#closed) throw new DisposedError(`engine file ${this.path}`);
    const t = this.entry(name);
    const out = new Uint8Array(t.bytes);
    let n = 0;
    while (n < t.bytes) {
      const got = fs.readSync(this.#fd, out, n, Math.min(t.bytes - n, 1 << 30), this.#dataOffset + t.offset + n);
      if (got <= 0) break;
      n += got;
    }
    if (n !== t.bytes) throw new FormatError(`engine file ${this.path}: short read of '${name}' (${n} of ${t.bytes} bytes)`, this.path);
    if (!this.#deferCrc) this.#checkCrc(t, crc32(out));
    return out;
  }

  /** FormatError naming tensor `t` when `crc` (of the bytes read) is not the CRC-32 the table holds for it. */
  #checkCrc(t: TensorEntry, crc: number): void {
    if (crc !== t.crc32) {
      throw new FormatError(
        `engine file ${this.path}: tensor '${t.name}' is corrupt (CRC-32 ${hex(crc)}, the table says ${hex(t.crc32)}); rebuild the engine`,
        this.path,
      );
    }
  }

  /**
   * Reads one tensor's bytes into buffers from `next(max)` (pieces of at most 8 MiB, so the CRC-32
   * runs over bytes still in cache), then checks the CRC-32 of the whole (FormatError when it
   * differs: the pieces handed over are corrupt).
   */
  readInto(name: string, next: (maxBytes: number) => Uint8Array): void {
    if (this.#closed) throw new DisposedError(`engine file ${this.path}`);
    const t = this.entry(name);
    let crc = 0;
    for (let done = 0; done < t.bytes;) {
      const dst = next(Math.min(t.bytes - done, READ_PIECE));
      const want = Math.min(dst.byteLength, t.bytes - done);
      for (let got = 0; got < want;) {
        const n = fs.readSync(this.#fd, dst, got, want - got, this.#dataOffset + t.offset + done + got);
        if (n <= 0) throw new FormatError(`engine file ${this.path}: short read of '${name}' (${done + got} of ${t.bytes} bytes)`, this.path);
        got += n;
      }
      if (!this.#deferCrc) crc = crc32(dst.subarray(0, want), crc);
      done += want;
    }
    if (!this.#deferCrc) this.#checkCrc(t, crc);
  }

  /**
   * Checks every blob's CRC-32 without keeping it: one reused 16 MiB buffer, so verifying costs a
   * read and a CRC pass, no allocation per tensor. FormatError naming the first corrupt tensor.
   */
  verifyAll(): void {
    if (this.#closed) throw new DisposedError(`engine file ${this.path}`);
    const buf = new Uint8Array(Math.min(16 << 20, Math.max(1, ...this.meta.tensors.map((t) => t.bytes))));
    for (const t of this.meta.tensors) {
      let crc = 0;
      for (let done = 0; done < t.bytes;) {
        const want = Math.min(buf.byteLength, t.bytes - done);
        const n = fs.readSync(this.#fd, buf, 0, want, this.#dataOffset + t.offset + done);
        if (n <= 0) throw new FormatError(`engine file ${this.path}: short read of '${t.name}' (${done} of ${t.bytes} bytes)`, this.path);
        crc = crc32(buf.subarray(0, n), crc);
        done += n;
      }
      this.#checkCrc(t, crc);
    }
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    fs.closeSync(this.#fd);
  }
}

const hex = (n: number): string => `0x${(n >>> 0).toString(16).padStart(8, "0")}`;

const DTYPE_BYTES: Readonly<Record<string, number>> = { float32: 4, float16: 2, bfloat16: 2, int8: 1, uint8: 1, int32: 4 };

/** Checks the tensor table: entries well formed, sizes matching shapes, blobs inside the data section, no overlaps. */
function checkTable(meta: EngineFileMeta, path: string, dataLength: number): void {
  if (meta === null || typeof meta !== "object" || !Array.isArray(meta.tensors)) {
    throw new FormatError(`engine file ${path}: the JSON section has no tensor table`, path);
  }
  const spans: { name: string; offset: number; end: number }[] = [];
  const seen = new Set<string>();
  for (const [i, t] of (meta.tensors as unknown as Record<string, unknown>[]).entries()) {
    const where = `engine file ${path}: tensors[${i}]${typeof t?.name === "string" ? ` '${t.name}'` : ""}`;
    if (t === null || typeof t !== "object" || typeof t.name !== "string") throw new FormatError(`${where}: not a tensor entry`, path);
    if (seen.has(t.name)) throw new FormatError(`${where}: listed twice`, path);
    seen.add(t.name);
    const size = DTYPE_BYTES[t.dtype as string];
    if (size === undefined) throw new FormatError(`${where}: unknown dtype ${JSON.stringify(t.dtype)}`, path);
    const shape = t.shape as number[];
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw new FormatError(`${where}: shape must be non-negative integers, got ${JSON.stringify(t.shape)}`, path);
    }
    if (![t.offset, t.bytes, t.crc32].every((v) => Number.isSafeInteger(v) && (v as number) >= 0)) {
      throw new FormatError(`${where}: offset, bytes and crc32 must be non-negative integers`, path);
    }
    const offset = t.offset as number, bytes = t.bytes as number;
    const need = shape.reduce((a, b) => a * b, 1) * size;
    // Packed (quantized) formats store fewer bytes than numel × element size; never more.
    if (bytes > need) throw new FormatError(`${where}: ${bytes} bytes for shape [${shape}] of ${t.dtype} (${need})`, path);
    if (offset % BLOB_ALIGN !== 0) throw new FormatError(`${where}: offset ${offset} is not ${BLOB_ALIGN}-byte aligned`, path);
    if (offset + bytes > dataLength) throw new FormatError(`engine file ${path}: tensor '${t.name}' lies past the end of the data section`, path);
    spans.push({ name: t.name, offset, end: offset + bytes });
  }
  spans.sort((a, b) => a.offset - b.offset);
  for (let i = 1; i < spans.length; i++) {
    if (spans[i].offset < spans[i - 1].end) {
      throw new FormatError(`engine file ${path}: tensors '${spans[i - 1].name}' and '${spans[i].name}' overlap`, path);
    }
  }
}
