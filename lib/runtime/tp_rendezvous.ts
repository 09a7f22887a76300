/**
 * The TCP rendezvous of a tensor-parallel group (`--tp-master host:port`): rank 0 listens and hands
 * the NCCL unique id to every other rank, which connects (retrying until rank 0 is up), says who it
 * is, and receives the id. Ranks may live in other processes or on other hosts; node:net works in
 * Bun and Deno. Nothing else travels over it (the collectives then go through NCCL).
 *
 * Wire: the rank sends one line `llmrt-tp 1 <rank> <worldSize>\n`; rank 0 answers one status byte
 * (0 = ok, then the payload's 4-byte little-endian length and bytes; 1 = refused, then a UTF-8
 * reason) and closes.
 *
 * Two hosts (how it is meant to run; only 127.0.0.1 is tested here): host A (reachable as 10.0.0.1)
 * runs ranks 0..7 and the executor, host B ranks 8..15; rank 0 makes the id with `ncclUniqueId()`
 * and serves it with `RendezvousServer.listen("0.0.0.0:29500", 16, id)`, every other rank calls
 * `joinRendezvous("10.0.0.1:29500", rank, 16)` and passes the id to `NcclCommunicator.init`; NCCL
 * then connects the ranks over its own transports (NCCL_SOCKET_IFNAME picks the interface; NVLS
 * stays off). Open wiring (issue 17): a process running ranks of another host also needs each
 * step's inputs (rank 0 would broadcast them over NCCL), which TpSession does not do yet.
 */
import * as net from "node:net";
import { ValidationError, WorkerError } from "../util/errors.ts";

const MAGIC = "llmrt-tp 1";

/** `host:port` (IPv6 in brackets: `[::1]:29500`) → its parts; ValidationError naming `--tp-master` otherwise. */
export function parseMaster(address: string, allowAnyPort = false): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(address.trim());
  const port = m ? Number(m[3]) : NaN;
  if (!m || !(port >= (allowAnyPort ? 0 : 1) && port < 65536)) {
    throw new ValidationError(`--tp-master: expected host:port, got ${JSON.stringify(address)}`, "tpMaster", address);
  }
  return { host: m[1] ?? m[2], port };
}

/** Rank 0's side: a listening server that answers the ranks of one group. */
export class RendezvousServer {
  readonly #server: net.Server;
  readonly #served = new Set<number>();
  #done: Promise<void>;
  #resolve!: () => void;
  #reject!: (e: Error) => void;

  private constructor(server: net.Server, readonly port: number, readonly worldSize: number, payload: Uint8Array) {
    this.#server = server;
    this.#done = new Promise((res, rej) => {
      this.#resolve = res;
      this.#reject = rej;
    });
    this.#done.catch(() => {});
    if (worldSize === 1) this.#resolve();
    server.on("connection", (sock) => this.#answer(sock, payload));
    server.on("error", (e) => this.#reject(e));
  }

  /**
   * Listens on `address` (port 0: any free port, see `.port`) for the `worldSize - 1` other ranks.
   *
   * @example
   * ```ts
   * const server = await RendezvousServer.listen("0.0.0.0:29500", 2, ncclUniqueId());
   * await server.served(60_000); // every rank has the id
   * server.close();
   * ```
   */
  static listen(address: string, worldSize: number, payload: Uint8Array): Promise<RendezvousServer> {
    const { host, port } = parseMaster(address, true);
    return new Promise((resolve, reject) => {
      const server = net.createServer();
      server.once("error", reject);
      server.listen(port, host, () => {
        server.off("error", reject);
        const a = server.address();
        resolve(new RendezvousServer(server, typeof a === "object" && a ? a.port : port, worldSize, payload));
      });
    });
  }

  /** Resolves once every other rank has received the payload; rejects after `timeoutMs`. */
  served(timeoutMs: number): Promise<void> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, rej) => {
      timer = setTimeout(
        () =>
          rej(
            new WorkerError(
              `tensor-parallel rendezvous: ${this.#served.size} of ${this.worldSize - 1} ranks arrived within ${timeoutMs} ms (missing: ${
                this.#missing().join(", ")
              })`,
            ),
          ),
        timeoutMs,
      );
    });
    return Promise.race([this.#done, timeout]).finally(() => clearTimeout(timer));
  }

  /** Stops listening. */
  close(): void {
    this.#server.close();
  }

  #missing(): number[] {
    return Array.from({ length: this.worldSize - 1 }, (_, i) => i + 1).filter((r) => !this.#served.has(r));
  }

  #answer(sock: net.Socket, payload: Uint8Array): void {
    let line = "";
    sock.on("error", () => {});
    sock.on("data", (chunk: Uint8Array) => {
      line += new TextDecoder().decode(chunk);
      const nl = line.indexOf("\n");
      if (nl < 0) return;
      const [magic1, magic2, rankText, sizeText] = line.slice(0, nl).split(" ");
      const rank = Number(rankText), size = Number(sizeText);
      let refusal: string | null = null;
      if (`${magic1} ${magic2}` !== MAGIC) refusal = `not an llmrt tensor-parallel rank (${JSON.stringify(line.slice(0, 40))})`;
      else if (size !== this.worldSize) refusal = `rank ${rank} expects ${size} ranks; rank 0 serves a group of ${this.worldSize}`;
      else if (!Number.isInteger(rank) || rank < 1 || rank >= this.worldSize) refusal = `rank ${rank} outside [1, ${this.worldSize})`;
      else if (this.#served.has(rank)) refusal = `rank ${rank} joined twice`;
      if (refusal) {
        const msg = new TextEncoder().encode(refusal);
        sock.end(concat(new Uint8Array([1]), msg));
        return;
      }
      const len = new Uint8Array(4);
      new DataView(len.buffer).setUint32(0, payload.byteLength, true);
      sock.end(concat(new Uint8Array([0]), len, payload), () => {
        this.#served.add(rank);
        if (this.#served.size === this.worldSize - 1) this.#resolve();
      });
    });
  }
}

/**
 * A rank's side: connects to rank 0 at `address` (retrying every 200 ms until `timeoutMs`), says
 * it is `rank` of `worldSize`, and returns the payload (the NCCL unique id).
 */
export async function joinRendezvous(address: string, rank: number, worldSize: number, timeoutMs = 120_000): Promise<Uint8Array> {
  const { host, port } = parseMaster(address);
  const deadline = Date.now() + timeoutMs;
  let last: Error | null = null;
  while (Date.now() < deadline) {
    try {
      return await ask(host, port, rank, worldSize, Math.max(1, deadline - Date.now()));
    } catch (e) {
      if (e instanceof ValidationError) throw e; // refused: retrying cannot help
      last = e as Error;
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  throw new WorkerError(
    `tensor-parallel rendezvous: rank ${rank} could not reach rank 0 at ${address} within ${timeoutMs} ms (${last?.message ?? "no answer"})`,
  );
}

function ask(host: string, port: number, rank: number, worldSize: number, timeoutMs: number): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host, port });
    const parts: Uint8Array[] = [];
    const timer = setTimeout(() => sock.destroy(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
    sock.on("connect", () => sock.write(`${MAGIC} ${rank} ${worldSize}\n`));
    sock.on("data", (c: Uint8Array) => parts.push(new Uint8Array(c)));
    sock.on("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
    sock.on("close", () => {
      clearTimeout(timer);
      const all = concat(...parts);
      if (all.length === 0) return reject(new Error("rank 0 closed the connection without an answer"));
      if (all[0] === 1) {
        return reject(new ValidationError(`tensor-parallel rendezvous refused rank ${rank}: ${new TextDecoder().decode(all.subarray(1))}`, "tpMaster"));
      }
      const n = all.length >= 5 ? new DataView(all.buffer, all.byteOffset + 1, 4).getUint32(0, true) : -1;
      if (all[0] !== 0 || all.length !== 5 + n) return reject(new Error(`malformed answer (${all.length} bytes)`));
      resolve(all.slice(5));
    });
  });
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}
