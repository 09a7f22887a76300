/**
 * Writing `rank<N>.engine` files (the layout is in engine_format.ts): synchronously, or with the
 * writes on the runtime's I/O threads so the caller goes on meanwhile.
 */
import * as fs from "node:fs";
import process from "node:process";
import { FormatError } from "../util/errors.ts";
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

/** Lays an engine file out: one pass over the tensor bytes (their CRC-32s), no copy. */
function layoutEngineFile(
  plan: unknown,
  config: unknown,
  tensors: readonly Omit<TensorEntry, "offset" | "bytes" | "crc32">[],
  data: (name: string) => Uint8Array,
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
  const meta = new TextEncoder().encode(JSON.stringify({ plan, tensors: entries, config } satisfies EngineFileMeta));
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
  dv.setUint32(56, crc32(meta), true);
  const blobs = entries.map((e, i) => ({ bytes: bytesOf[i], at: dataOffset + e.offset }));
  const last = entries.at(-1);
  // pad the last blob to its alignment
  if (fileLength > dataOffset + (last?.offset ?? 0) + (last?.bytes ?? 0)) blobs.push({ bytes: new Uint8Array(1), at: fileLength - 1 });
  return { header, meta, dataOffset, fileLength, blobs };
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
): void {
  const l = layoutEngineFile(plan, config, tensors, data);
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
 * {@link writeEngineFile} with the writes done off the JavaScript thread: the CRC-32s are computed
 * now (the caller's bytes must stay unchanged until the promise settles), then every write is issued
 * at once, so the runtime's I/O threads write while the caller goes on (e.g. uploads the weights).
 */
export async function writeEngineFileAsync(
  path: string,
  plan: unknown,
  config: unknown,
  tensors: readonly Omit<TensorEntry, "offset" | "bytes" | "crc32">[],
  data: (name: string) => Uint8Array,
): Promise<void> {
  const l = layoutEngineFile(plan, config, tensors, data);
  const tmp = tmpName(path);
  // Opened and every write issued before the first await: they run while the caller goes on.
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
  const writes: Promise<void>[] = [put(l.header, 0), put(l.meta, HEADER_BYTES)];
  for (const b of l.blobs) {
    for (let p = 0; p < b.bytes.byteLength; p += WRITE_PIECE) writes.push(put(b.bytes.subarray(p, p + WRITE_PIECE), b.at + p));
  }
  const settled = await Promise.allSettled(writes);
  try {
    const failed = settled.find((r) => r.status === "rejected");
    if (failed) throw (failed as PromiseRejectedResult).reason;
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

/** Writes all of `buf` at `position` (looping over short writes, in chunks of at most 1 GiB). */
function writeAll(fd: number, buf: Uint8Array, position: number): void {
  let done = 0;
  while (done < buf.byteLength) {
    done += fs.writeSync(fd, buf, done, Math.min(buf.byteLength - done, 1 << 30), position + done);
  }
}
