/**
 * Writing `rank<N>.engine` files (the layout is in engine_format.ts): synchronously, or with the
 * writes on the runtime's I/O threads so the caller goes on meanwhile.
 */
import * as fs from "node:fs";
import process from "node:process";
import { FormatError, ValidationError } from "../util/errors.ts";
import { computeBlobCrcsInWorkers } from "./engine_verify.ts";
import { BLOB_ALIGN, crc32, ENGINE_FORMAT_VERSION, ENGINE_MAGIC, type EngineFileMeta, HEADER_BYTES, type TensorEntry } from "./engine_format.ts";

const alignUp = (n: number): number => Math.ceil(n / BLOB_ALIGN) * BLOB_ALIGN;

/** An engine file laid out in memory: header, JSON section and the blobs with their file offsets. */
interface EngineFileLayout {
  readonly header: Uint8Array;
  readonly meta: Uint8Array;
  readonly dataOffset: number;
  readonly fileLength: number;
  /** Each blob and its absolute file offset. */
  readonly blobs: readonly { readonly bytes: Uint8Array; readonly at: number }[];
}

/** The fixed header of an engine file whose JSON section `meta` starts right after it. */
function engineHeader(meta: Uint8Array, dataOffset: number, dataLength: number, fileLength: number): Uint8Array {
  const header = new Uint8Array(HEADER_BYTES);
  const dv = new DataView(header.buffer);
  header.set(new TextEncoder().encode(ENGINE_MAGIC), 0);
  dv.setUint32(8, ENGINE_FORMAT_VERSION, true);
  dv.setUint32(12, 0, true);
  dv.setBigUint64(16, BigInt(HEADER_BYTES), true);
  dv.setBigUint64(24, BigInt(meta.byteLength), true);
  dv.setBigUint64(32, BigInt(dataOffset), true);
  dv.setBigUint64(40, BigInt(dataLength), true);
  dv.setBigUint64(48, BigInt(fileLength), true);
  dv.setUint32(56, crc32(meta), true);
  return header;
}

/** Lays an engine file out: one pass over the tensor bytes (their CRC-32s), no copy. */
function layoutEngineFile(
  plan: unknown,
  config: unknown,
  tensors: readonly Omit<TensorEntry, "offset" | "bytes" | "crc32">[],
  data: (name: string) => Uint8Array,
  rank: number,
): EngineFileLayout {
  const entries: TensorEntry[] = [];
  const bytesOf: Uint8Array[] = [];
  let off = 0;
  for (const t of tensors) {
    const bytes = data(t.name);
    entries.push({ ...t, offset: off, bytes: bytes.byteLength, crc32: crc32(bytes) });
    bytesOf.push(bytes);
    off = alignUp(off + bytes.byteLength);
  }
  const meta = new TextEncoder().encode(JSON.stringify({ plan, tensors: entries, config, rank } satisfies EngineFileMeta));
  const dataOffset = alignUp(HEADER_BYTES + meta.byteLength);
  const fileLength = dataOffset + off;
  const header = engineHeader(meta, dataOffset, off, fileLength);
  const blobs = entries.map((e, i) => ({ bytes: bytesOf[i], at: dataOffset + e.offset }));
  const last = entries.at(-1);
  // pad the last blob to its alignment
  if (fileLength > dataOffset + (last?.offset ?? 0) + (last?.bytes ?? 0)) blobs.push({ bytes: new Uint8Array(1), at: fileLength - 1 });
  return { header, meta, dataOffset, fileLength, blobs };
}

/** Creates the engine directory `dir` (and its parents); a path that cannot be one is a ValidationError naming it. */
export function makeEngineDir(dir: string, who: string): void {
  try {
    fs.mkdirSync(dir, { recursive: true });
  } catch (e) {
    const code = (e as { code?: string }).code;
    const why = code === "EEXIST" || code === "ENOTDIR" ? "a file is in the way" : (e as Error).message;
    throw new ValidationError(`${who}: cannot create the engine directory ${JSON.stringify(dir)} (${why})`, "dir", dir);
  }
}

/** A name no other writer uses: several processes may write the same engine at once. */
const tmpName = (path: string): string => `${path}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;

/** Writes an engine file; `data(name)` yields each tensor's bytes when it is written. */
export function writeEngineFile(
  path: string,
  plan: unknown,
  config: unknown,
  tensors: readonly Omit<TensorEntry, "offset" | "bytes" | "crc32">[],
  data: (name: string) => Uint8Array,
  rank = 0,
): void {
  const l = layoutEngineFile(plan, config, tensors, data, rank);
  const tmp = tmpName(path);
  const fd = fs.openSync(tmp, "w");
  try {
    writeAll(fd, l.header, 0);
    writeAll(fd, l.meta, HEADER_BYTES);
    for (const b of l.blobs) writeAll(fd, b.bytes, b.at);
    fs.closeSync(fd);
    fs.renameSync(tmp, path);
  } catch (e) {
    try {
      fs.closeSync(fd);
    } catch { /* closed already */ }
    fs.rmSync(tmp, { force: true });
    throw e;
  }
}

/** Largest single write of {@link writeEngineFileAsync}. */
const WRITE_PIECE = 256 << 20;

/**
 * {@link writeEngineFile} with the work done off the JavaScript thread: every blob write is issued at
 * once (the runtime's I/O threads write while the caller goes on, e.g. uploads the weights), then
 * Web Workers compute the blobs' CRC-32s from the written file, and the header and JSON section go
 * last. The JSON section's room is reserved for the longest CRC-32s, so the blobs' offsets are known
 * before their checksums. Without workers the CRC-32s are computed here. The caller's bytes must stay
 * unchanged until the promise settles.
 */
export async function writeEngineFileAsync(
  path: string,
  plan: unknown,
  config: unknown,
  tensors: readonly Omit<TensorEntry, "offset" | "bytes" | "crc32">[],
  data: (name: string) => Uint8Array,
  crcThreads: number = defaultCrcThreads(),
  rank = 0,
): Promise<void> {
  const entries: TensorEntry[] = [];
  const bytesOf: Uint8Array[] = [];
  let off = 0;
  for (const t of tensors) {
    const bytes = data(t.name);
    entries.push({ ...t, offset: off, bytes: bytes.byteLength, crc32: 0xffffffff }); // the longest CRC-32 in JSON
    bytesOf.push(bytes);
    off = alignUp(off + bytes.byteLength);
  }
  const roomy = new TextEncoder().encode(JSON.stringify({ plan, tensors: entries, config, rank } satisfies EngineFileMeta));
  const dataOffset = alignUp(HEADER_BYTES + roomy.byteLength);
  const fileLength = dataOffset + off;
  const tmp = tmpName(path);
  const fd = fs.openSync(tmp, "w");
  const put = async (buf: Uint8Array, at: number): Promise<void> => {
    for (let done = 0; done < buf.byteLength;) {
      const n = await new Promise<number>((resolve, reject) =>
        fs.write(fd, buf, done, buf.byteLength - done, at + done, (err, written) => err ? reject(err) : resolve(written))
      );
      if (n <= 0) throw new FormatError(`engine file ${path}: a write made no progress at offset ${at + done}`, path);
      done += n;
    }
  };
  try {
    // Blobs first, every write issued before the first await; the file's last byte sets its length.
    const writes: Promise<void>[] = [];
    entries.forEach((e, i) => {
      const b = bytesOf[i];
      for (let p = 0; p < b.byteLength; p += WRITE_PIECE) writes.push(put(b.subarray(p, p + WRITE_PIECE), dataOffset + e.offset + p));
    });
    const last = entries.at(-1);
    if (fileLength > dataOffset + (last?.offset ?? 0) + (last?.bytes ?? 0)) writes.push(put(new Uint8Array(1), fileLength - 1));
    if (entries.length === 0) writes.push(put(new Uint8Array(1), fileLength - 1));
    const settled = await Promise.allSettled(writes);
    const failed = settled.find((r) => r.status === "rejected");
    if (failed) throw (failed as PromiseRejectedResult).reason;
    let crcs: number[] | null = null;
    if (crcThreads > 0 && typeof Worker === "function" && entries.length > 0) {
      try {
        crcs = (await computeBlobCrcsInWorkers(tmp, dataOffset, entries, crcThreads)).crcs;
      } catch {
        crcs = null; // no workers here: computed below
      }
    }
    crcs ??= bytesOf.map((b) => crc32(b));
    const final: TensorEntry[] = entries.map((e, i) => ({ ...e, crc32: crcs![i] }));
    const meta = new TextEncoder().encode(JSON.stringify({ plan, tensors: final, config, rank } satisfies EngineFileMeta));
    await put(meta, HEADER_BYTES);
    await put(engineHeader(meta, dataOffset, off, fileLength), 0);
    fs.closeSync(fd);
    fs.renameSync(tmp, path);
  } catch (e) {
    try {
      fs.closeSync(fd);
    } catch { /* closed already */ }
    fs.rmSync(tmp, { force: true });
    throw e;
  }
}

/** CRC-32 workers of a background engine write: the cores but one, at most 8. */
function defaultCrcThreads(): number {
  const n = (globalThis.navigator as { hardwareConcurrency?: number } | undefined)?.hardwareConcurrency ?? 2;
  return Math.max(1, Math.min(8, n - 1));
}

/** Writes all of `buf` at `position` (looping over short writes, in chunks of at most 1 GiB). */
function writeAll(fd: number, buf: Uint8Array, position: number): void {
  let done = 0;
  while (done < buf.byteLength) {
    done += fs.writeSync(fd, buf, done, Math.min(buf.byteLength - done, 1 << 30), position + done);
  }
}
