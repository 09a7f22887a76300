/**
 * Checks an engine file's blob CRC-32s on Web Workers (issue 16 item 4): a cached engine's weights
 * are loaded without their checksums (`Engine.deferChecksums`) while this runs beside the load on
 * other cores, so the check costs no time on the load's own thread. A corrupt blob rejects with a
 * FormatError naming it; the caller then throws away what it loaded.
 */
import { FormatError } from "../util/errors.ts";
import type { TensorEntry } from "./engine_format.ts";

// Plain JavaScript with no imports of ours (Deno would type-check a static graph per worker): reads
// its share of the blobs with a reused 8 MiB buffer and answers the first bad one.
const WORKER_SOURCE = `
import * as fs from "node:fs";
import * as zlib from "node:zlib";
let table = null;
function crc32(data, prev) {
  if (typeof zlib.crc32 === "function") return zlib.crc32(data, prev) >>> 0;
  if (!table) { table = new Int32Array(256); for (let n = 0; n < 256; n++) { let c = n; for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1; table[n] = c; } }
  let c = ~prev; for (let i = 0; i < data.length; i++) c = table[(c ^ data[i]) & 0xff] ^ (c >>> 8); return (c ^ -1) >>> 0;
}
self.onmessage = (e) => {
  const { path, items } = e.data;
  const t0 = performance.now();
  let fd = -1;
  try {
    fd = fs.openSync(path, "r");
    const buf = new Uint8Array(8 << 20);
    const crcs = [];
    for (const [name, at, bytes, want] of items) {
      let c = 0;
      for (let done = 0; done < bytes;) {
        const n = fs.readSync(fd, buf, 0, Math.min(buf.length, bytes - done), at + done);
        if (n <= 0) { self.postMessage({ bad: name, why: "short read at byte " + done + " of " + bytes }); return; }
        c = crc32(buf.subarray(0, n), c);
        done += n;
      }
      crcs.push(c);
      if (want >= 0 && c !== want) { self.postMessage({ bad: name, why: "CRC-32 0x" + c.toString(16).padStart(8, "0") + ", the table says 0x" + want.toString(16).padStart(8, "0") }); return; }
    }
    self.postMessage({ ok: true, ms: performance.now() - t0, crcs });
  } catch (err) {
    self.postMessage({ error: String(err && err.message ? err.message : err) });
  } finally {
    if (fd >= 0) fs.closeSync(fd);
  }
};`;

let workerUrl: string | null = null;

type Reply = { ok: true; ms: number; crcs: number[] } | { bad: string; why: string } | { error: string };

/**
 * Checks the CRC-32 of every blob of the engine file at `path` on `threads` workers (each a
 * contiguous share of the blobs by bytes). Resolves, when all match, with the longest time a worker
 * took (ms, as the worker measured it); rejects with a FormatError naming a corrupt tensor, or with
 * the error that stopped a worker.
 */
export async function verifyBlobsInWorkers(path: string, dataOffset: number, tensors: readonly TensorEntry[], threads: number): Promise<number> {
  return (await blobCrcsInWorkers(path, dataOffset, tensors, threads, true)).ms;
}

/**
 * The CRC-32 of each blob (`tensors`' order) of the file at `path`, computed on `threads` workers
 * that read the file (a background engine write computes them this way after its blob writes, so
 * the writing thread never passes over the bytes). Rejects with the error that stopped a worker.
 */
export function computeBlobCrcsInWorkers(
  path: string,
  dataOffset: number,
  tensors: readonly Pick<TensorEntry, "name" | "offset" | "bytes">[],
  threads: number,
): Promise<{ crcs: number[]; ms: number }> {
  return blobCrcsInWorkers(path, dataOffset, tensors.map((t) => ({ ...t, crc32: -1 })), threads, false);
}

function blobCrcsInWorkers(
  path: string,
  dataOffset: number,
  tensors: readonly Pick<TensorEntry, "name" | "offset" | "bytes" | "crc32">[],
  threads: number,
  check: boolean,
): Promise<{ crcs: number[]; ms: number }> {
  const total = tensors.reduce((a, t) => a + t.bytes, 0);
  const n = Math.max(1, Math.min(threads, tensors.length));
  const shares: [string, number, number, number][][] = Array.from({ length: n }, () => []);
  const shareOf: number[] = [];
  let acc = 0;
  for (const t of tensors) {
    const k = Math.min(n - 1, Math.floor((acc / Math.max(total, 1)) * n));
    shares[k].push([t.name, dataOffset + t.offset, t.bytes, check ? t.crc32 : -1]);
    shareOf.push(k);
    acc += t.bytes;
  }
  workerUrl ??= URL.createObjectURL(new Blob([WORKER_SOURCE], { type: "text/javascript" }));
  const workers: Worker[] = [];
  const stop = (): void => {
    for (const w of workers.splice(0)) w.terminate();
  };
  const results: number[][] = shares.map(() => []);
  return new Promise<{ crcs: number[]; ms: number }>((resolve, reject) => {
    let left = shares.filter((s) => s.length > 0).length, longest = 0;
    const done = (): void => {
      // The CRCs back in the tensors' order: each share's in its own order.
      const next = shares.map(() => 0);
      resolve({ crcs: shareOf.map((k) => results[k][next[k]++]), ms: longest });
    };
    if (left === 0) return done();
    const fail = (e: Error): void => {
      stop();
      reject(e);
    };
    shares.forEach((items, k) => {
      if (items.length === 0) return;
      const w = new Worker(workerUrl!, { type: "module" });
      workers.push(w);
      w.onmessage = (e: MessageEvent<Reply>) => {
        const r = e.data;
        if ("bad" in r) {
          return fail(new FormatError(`engine file ${path}: tensor '${r.bad}' is corrupt (${r.why}; checked on a worker); rebuild the engine`, path));
        }
        if ("error" in r) return fail(new Error(`engine file ${path}: checksum worker failed: ${r.error}`));
        w.terminate();
        results[k] = r.crcs;
        longest = Math.max(longest, r.ms);
        if (--left === 0) done();
      };
      w.onerror = (e: ErrorEvent) => {
        e.preventDefault?.();
        fail(new Error(`engine file ${path}: checksum worker failed: ${e.message}`));
      };
      w.postMessage({ path, items });
    });
  });
}
