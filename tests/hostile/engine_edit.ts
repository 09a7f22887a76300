/**
 * Test helpers that edit engine files the way a bug or a hand edit would, while keeping the file
 * self-consistent (header offsets and the JSON section's CRC-32 recomputed), so the checks behind
 * the CRC (plan validation, config agreement) are what the tests exercise.
 */
import * as fs from "node:fs";
import { BLOB_ALIGN, crc32, HEADER_BYTES } from "../../lib/builder/engine_format.ts";

const alignUp = (n: number): number => Math.ceil(n / BLOB_ALIGN) * BLOB_ALIGN;

// deno-lint-ignore no-explicit-any
export type Meta = { plan: any; tensors: any[]; config: any };

/** Rewrites `file`'s JSON section through `edit`, moving the data section and fixing the header. */
export function rewriteMeta(file: string, edit: (meta: Meta) => void): void {
  const bytes = fs.readFileSync(file);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const metaOffset = Number(dv.getBigUint64(16, true));
  const metaLength = Number(dv.getBigUint64(24, true));
  const dataOffset = Number(dv.getBigUint64(32, true));
  const dataLength = Number(dv.getBigUint64(40, true));
  const meta = JSON.parse(new TextDecoder().decode(bytes.subarray(metaOffset, metaOffset + metaLength))) as Meta;
  edit(meta);
  const newMeta = new TextEncoder().encode(JSON.stringify(meta));
  const newDataOffset = alignUp(HEADER_BYTES + newMeta.byteLength);
  const out = new Uint8Array(newDataOffset + dataLength);
  out.set(bytes.subarray(0, HEADER_BYTES), 0);
  out.set(newMeta, HEADER_BYTES);
  out.set(bytes.subarray(dataOffset, dataOffset + dataLength), newDataOffset);
  const odv = new DataView(out.buffer);
  odv.setBigUint64(24, BigInt(newMeta.byteLength), true);
  odv.setBigUint64(32, BigInt(newDataOffset), true);
  odv.setBigUint64(48, BigInt(out.byteLength), true);
  odv.setUint32(56, crc32(newMeta), true);
  fs.writeFileSync(file, out);
}

/** Reads `file`'s JSON section. */
export function readMeta(file: string): Meta {
  const bytes = fs.readFileSync(file);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const off = Number(dv.getBigUint64(16, true)), len = Number(dv.getBigUint64(24, true));
  return JSON.parse(new TextDecoder().decode(bytes.subarray(off, off + len)));
}

/** Offset in `file` of the first byte of tensor `name`'s blob. */
export function blobOffset(file: string, name: string): number {
  const bytes = fs.readFileSync(file);
  const dataOffset = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(32, true));
  const t = readMeta(file).tensors.find((x) => x.name === name);
  if (!t) throw new Error(`no tensor ${name}`);
  return dataOffset + t.offset;
}
