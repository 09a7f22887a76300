/**
 * The TCP link between rank 0's process and the other ranks' processes (`--tp-master host:port`):
 * rank 0's hub (tp_hub.ts) listens, each other rank (tp_remote.ts, `llmrt tp-worker`) connects,
 * retrying until rank 0 is up, and keeps that one connection for the whole session. Rank 0 answers
 * the hello with the group's setup (the NCCL unique id rank 0 made, the session options, the
 * engine each rank must hold); then every step's command goes out and every rank's answer comes
 * back over it, and (CPU backend) so do the collectives. node:net works in Bun and Deno.
 *
 * Wire: frames of [u32 LE length of the rest][u8 type][payload]. Structured payloads use
 * {@link encodeMessage}: JSON with typed arrays and Maps moved out of line as binary.
 */
import * as net from "node:net";
import { ValidationError, WorkerError } from "../util/errors.ts";

/** Frame types. */
export const F_HELLO = 1, F_INIT = 2, F_REFUSE = 3, F_CMD = 4, F_ACK = 5, F_COLL = 6, F_ABORT = 7;

/** The hello's protocol tag (a different llmrt is refused, not misread). */
export const TP_PROTOCOL = "llmrt-tp 2";

/** `host:port` (IPv6 in brackets: `[::1]:29500`) → its parts; ValidationError naming `--tp-master` otherwise. */
export function parseMaster(address: string, allowAnyPort = false): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(String(address).trim());
  const port = m ? Number(m[3]) : NaN;
  if (!m || !(port >= (allowAnyPort ? 0 : 1) && port < 65536)) {
    throw new ValidationError(`--tp-master: expected host:port, got ${JSON.stringify(address)}`, "tpMaster", address);
  }
  return { host: m[1] ?? m[2], port };
}

/** One frame: [u32 length][u8 type][payload]. */
export function frame(type: number, payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(5 + payload.byteLength);
  new DataView(out.buffer).setUint32(0, payload.byteLength + 1, true);
  out[4] = type;
  out.set(payload, 5);
  return out;
}

/** Splits a byte stream into frames (feed it every chunk; it calls `onFrame` per whole frame). */
export class FrameReader {
  #buf = new Uint8Array(0);
  constructor(readonly onFrame: (type: number, payload: Uint8Array) => void, readonly maxFrameBytes = 1 << 30) {}

  push(chunk: Uint8Array): void {
    const joined = new Uint8Array(this.#buf.length + chunk.length);
    joined.set(this.#buf);
    joined.set(chunk, this.#buf.length);
    let o = 0;
    while (joined.length - o >= 4) {
      const len = new DataView(joined.buffer, o, 4).getUint32(0, true);
      if (len < 1 || len > this.maxFrameBytes) throw new WorkerError(`tensor-parallel link: malformed frame (length ${len})`);
      if (joined.length - o - 4 < len) break;
      const type = joined[o + 4];
      const payload = joined.slice(o + 5, o + 4 + len);
      o += 4 + len;
      this.onFrame(type, payload);
    }
    this.#buf = joined.slice(o);
  }
}

type TypedName = "Int32Array" | "Uint32Array" | "Float32Array" | "Float64Array" | "Uint8Array" | "Uint16Array";
const TYPED: Record<TypedName, new (b: ArrayBuffer, o: number, n: number) => ArrayBufferView & { length: number }> = {
  Int32Array,
  Uint32Array,
  Float32Array,
  Float64Array,
  Uint8Array,
  Uint16Array,
};

/**
 * Encodes a command-like value (plain objects, arrays, numbers, strings, typed arrays, Maps) as
 * [u32 JSON length][JSON][binary]; {@link decodeMessage} rebuilds it. Anything else is refused.
 */
export function encodeMessage(value: unknown): Uint8Array {
  const blobs: Uint8Array[] = [];
  let offset = 0;
  const json = JSON.stringify(value, function (this: unknown, _k: string, v: unknown) {
    if (ArrayBuffer.isView(v)) {
      const name = v.constructor.name as TypedName;
      if (!(name in TYPED)) throw new ValidationError(`tensor-parallel link: cannot send a ${name}`, "message", name);
      const bytes = new Uint8Array(v.buffer, v.byteOffset, v.byteLength).slice();
      const at = offset;
      blobs.push(bytes);
      offset += (bytes.byteLength + 7) & ~7;
      return { $t: name, o: at, n: bytes.byteLength };
    }
    if (v instanceof Map) return { $m: [...v.entries()] };
    if (typeof v === "bigint") throw new ValidationError("tensor-parallel link: cannot send a bigint", "message", String(v));
    return v;
  });
  const text = new TextEncoder().encode(json);
  const head = (4 + text.byteLength + 7) & ~7;
  const out = new Uint8Array(head + offset);
  new DataView(out.buffer).setUint32(0, text.byteLength, true);
  out.set(text, 4);
  let o = head;
  for (const b of blobs) {
    out.set(b, o);
    o += (b.byteLength + 7) & ~7;
  }
  return out;
}

/** The inverse of {@link encodeMessage}. */
export function decodeMessage<T>(bytes: Uint8Array): T {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = dv.getUint32(0, true);
  const head = (4 + n + 7) & ~7;
  const json = new TextDecoder().decode(bytes.subarray(4, 4 + n));
  return JSON.parse(json, (_k, v) => {
    if (v && typeof v === "object" && typeof v.$t === "string" && v.$t in TYPED) {
      const b = bytes.slice(head + v.o, head + v.o + v.n);
      const C = TYPED[v.$t as TypedName];
      return new C(b.buffer, 0, v.n / (C as unknown as { BYTES_PER_ELEMENT: number }).BYTES_PER_ELEMENT);
    }
    if (v && typeof v === "object" && Array.isArray(v.$m)) return new Map(v.$m);
    return v;
  }) as T;
}

/** Sends one frame of `type` with `payload` (a message value, encoded, or raw bytes). */
export function sendFrame(sock: net.Socket, type: number, payload: Uint8Array | object): void {
  sock.write(frame(type, payload instanceof Uint8Array ? payload : encodeMessage(payload)));
}

/** Listens on `address` (port 0: any free port); resolves with the server and its port. */
export function listen(address: string): Promise<{ server: net.Server; port: number }> {
  const { host, port } = parseMaster(address, true);
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", (e) => reject(new WorkerError(`tensor-parallel master: cannot listen on ${address}: ${e.message}`, { cause: e })));
    server.listen(port, host, () => {
      const a = server.address();
      resolve({ server, port: typeof a === "object" && a ? a.port : port });
    });
  });
}

/**
 * Connects to rank 0 at `address`, retrying every 200 ms until `timeoutMs` (rank 0 may start
 * later); WorkerError naming the address when it never answers.
 */
export async function connectWithRetry(address: string, timeoutMs: number, rank: number): Promise<net.Socket> {
  const { host, port } = parseMaster(address);
  const deadline = Date.now() + timeoutMs;
  let last = "no answer";
  while (Date.now() < deadline) {
    try {
      return await new Promise<net.Socket>((resolve, reject) => {
        const sock = net.connect({ host, port });
        const timer = setTimeout(() => sock.destroy(new Error("connect timed out")), Math.max(1, deadline - Date.now()));
        sock.once("connect", () => {
          clearTimeout(timer);
          sock.removeAllListeners("error");
          resolve(sock);
        });
        sock.once("error", (e) => {
          clearTimeout(timer);
          reject(e);
        });
      });
    } catch (e) {
      last = (e as Error).message;
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  throw new WorkerError(`tensor-parallel rank ${rank}: could not reach rank 0 at ${address} within ${timeoutMs} ms (${last})`);
}
