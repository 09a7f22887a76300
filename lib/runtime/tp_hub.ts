/**
 * Rank 0's end of `--tp-master` (one Web Worker in rank 0's process, beside rank 0's own worker):
 * listens for the ranks that run in other processes, hands each its setup (the NCCL unique id rank
 * 0 made, the session options, the engine it must hold), forwards every session command to them
 * and writes their answers into the session's shared memory, as if they were local workers. On the
 * CPU it is also the centre of the collectives: rank 0's contributions come from its channel,
 * the others' over TCP; it combines them and sends the results back.
 *
 * A rank that never connects (rendezvous timeout) or whose connection drops is answered for with
 * an error naming it, rank 0's collectives are aborted and the other ranks are told to abort, so
 * the session fails the step instead of waiting.
 */
import type * as net from "node:net";
import { type CollRequest, combineCollective, decodeColl, encodeColl, SocketCommRelay } from "../backends/cpu/socket_communicator.ts";
import { abortNcclCell } from "../cuda/nccl.ts";
import { type SerializedError, serializeError, WorkerError } from "../util/errors.ts";
import { decodeMessage, F_ABORT, F_ACK, F_CMD, F_COLL, F_HELLO, F_INIT, F_REFUSE, FrameReader, listen, sendFrame, TP_PROTOCOL } from "./tp_rendezvous.ts";
import { controlLayout, ERROR_BYTES, type HubSetup, STATUS_ERROR, STATUS_OK, type TpCommand, type TpShared } from "./tp_wire.ts";

/** A rank's answer to one command (the F_ACK frame). */
export interface RemoteAck {
  readonly seq: number;
  readonly error?: SerializedError;
  /** freeMemory's answer. */
  readonly value?: number;
}

/** The hub; tp_worker.js makes one and feeds it the session's messages. */
export class TpHub {
  #s: HubSetup | null = null;
  #ctl: Int32Array | null = null;
  #server: net.Server | null = null;
  #timer: ReturnType<typeof setTimeout> | undefined;
  readonly #socks = new Map<number, net.Socket>();
  readonly #dead = new Map<number, string>();
  readonly #acked = new Map<number, number>();
  #lastSeq = 0;
  #disposing = false;
  #relay: SocketCommRelay | null = null;
  /** Contributions of each pending collective (by its index in each rank's sequence of calls). */
  readonly #pending = new Map<number, (CollRequest | undefined)[]>();
  readonly #nextColl = new Map<number, number>();

  /** `ncclAbort`: the NCCL abort call (tests pass a fake); default ncclCommAbort. */
  constructor(readonly options: { readonly ncclAbort?: (handle: bigint) => number } = {}) {}

  handle(raw: unknown): void {
    const msg = raw as HubSetup | TpCommand;
    if (msg.cmd === "hub") {
      void this.#start(msg);
      return;
    }
    this.#lastSeq = msg.seq;
    if (msg.cmd === "init") return; // the remote ranks got theirs when they connected
    if (msg.cmd === "dispose") this.#disposing = true;
    for (const r of this.#s!.ranks) {
      const sock = this.#socks.get(r);
      if (sock && !this.#dead.has(r)) sendFrame(sock, F_CMD, msg);
      else this.#fail(r, msg.seq, this.#dead.get(r) ?? "it is not connected");
    }
    if (msg.cmd === "dispose") this.#closeIfDone();
  }

  async #start(s: HubSetup): Promise<void> {
    this.#s = s;
    this.#ctl = new Int32Array(s.shared.control);
    this.#lastSeq = s.init.initSeq;
    if (s.channel) {
      this.#relay = new SocketCommRelay(s.channel, 0);
      void this.#pumpLocal(this.#relay);
    }
    try {
      const { server } = await listen(s.address);
      this.#server = server;
    } catch (e) {
      for (const r of s.ranks) this.#fail(r, s.init.initSeq, (e as Error).message);
      return;
    }
    this.#server.on("connection", (sock) => this.#accept(sock));
    if (s.ranks.length === 0) return void this.#server.close(); // one rank: nobody to wait for
    this.#timer = setTimeout(() => {
      const missing = s.ranks.filter((r) => !this.#socks.has(r));
      for (const r of missing) {
        this.#lost(
          r,
          `it did not connect to --tp-master ${s.address} within ${s.rendezvousTimeoutMs} ms (start it with: llmrt tp-worker --tp-master HOST:PORT --rank ${r} --model DIR)`,
        );
      }
      this.#server?.close();
    }, s.rendezvousTimeoutMs);
  }

  #accept(sock: net.Socket): void {
    sock.setNoDelay(true);
    let rank = -1;
    const reader = new FrameReader((type, payload) => {
      if (rank === -1) {
        rank = this.#hello(sock, type, payload);
        return;
      }
      if (rank < 0) return; // refused: closing
      if (type === F_ACK) this.#answer(rank, decodeMessage<RemoteAck>(payload));
      else if (type === F_COLL) this.#contribute(rank, decodeColl(payload));
    });
    sock.on("data", (chunk: Uint8Array) => {
      try {
        reader.push(new Uint8Array(chunk));
      } catch (e) {
        sock.destroy(e as Error);
      }
    });
    sock.on("error", () => {});
    sock.on("close", () => {
      if (rank > 0 && this.#socks.get(rank) === sock && !this.#disposing) this.#lost(rank, "its process disconnected");
      if (rank > 0 && this.#disposing) this.#closeIfDone();
    });
  }

  /** Checks a hello; answers F_INIT (returns the rank) or F_REFUSE (returns -2 and closes). */
  #hello(sock: net.Socket, type: number, payload: Uint8Array): number {
    const s = this.#s!;
    let refusal: string | null = null;
    let hello: { protocol?: string; rank?: number; worldSize?: number } = {};
    try {
      hello = type === F_HELLO ? decodeMessage(payload) : {};
    } catch {
      // refused below
    }
    const r = Number(hello.rank);
    if (type !== F_HELLO || hello.protocol !== TP_PROTOCOL) refusal = `not an llmrt tensor-parallel rank of protocol '${TP_PROTOCOL}'`;
    else if (hello.worldSize && hello.worldSize !== s.worldSize) {
      refusal = `rank ${r} expects ${hello.worldSize} ranks; rank 0 serves a group of ${s.worldSize}`;
    } else if (!s.ranks.includes(r)) refusal = `rank ${r} outside [1, ${s.worldSize})`;
    else if (this.#socks.has(r) || this.#dead.has(r)) refusal = `rank ${r} joined twice (or after it was given up on)`;
    if (refusal) {
      sendFrame(sock, F_REFUSE, new TextEncoder().encode(refusal));
      sock.end();
      return -2;
    }
    this.#socks.set(r, sock);
    sendFrame(sock, F_INIT, { ...s.init, rank: r });
    if (s.ranks.every((x) => this.#socks.has(x))) {
      clearTimeout(this.#timer);
      this.#server?.close();
    }
    return r;
  }

  /** Writes rank `r`'s answer into the session's shared memory. */
  #answer(r: number, ack: RemoteAck): void {
    const s = this.#s!, ctl = this.#ctl!, L = controlLayout(s.worldSize);
    if (ack.error) {
      const bytes = new TextEncoder().encode(JSON.stringify(ack.error)).subarray(0, ERROR_BYTES);
      new Uint8Array(s.shared.errors, r * ERROR_BYTES, ERROR_BYTES).set(bytes);
      Atomics.store(ctl, L.errorLen(r), bytes.length);
    }
    if (ack.value !== undefined) new Float64Array(s.shared.values)[r] = ack.value;
    Atomics.store(ctl, L.status(r), ack.error ? STATUS_ERROR : STATUS_OK);
    this.#acked.set(r, ack.seq);
    Atomics.store(ctl, L.ack(r), ack.seq);
    Atomics.notify(ctl, L.ack(r));
    if (this.#disposing) this.#closeIfDone();
  }

  /** Answers command `seq` for rank `r` with a WorkerError. */
  #fail(r: number, seq: number, why: string): void {
    const e = serializeError(new WorkerError(`tensor-parallel rank ${r}: ${why}`));
    this.#answer(r, { seq, error: e });
  }

  /** Rank `r` is gone: answer for it, abort rank 0's collectives and tell the other ranks. */
  #lost(r: number, why: string): void {
    if (this.#dead.has(r)) return;
    this.#dead.set(r, why);
    const sock = this.#socks.get(r);
    sock?.destroy();
    if ((this.#acked.get(r) ?? 0) < this.#lastSeq) this.#fail(r, this.#lastSeq, why);
    const reason = `tensor-parallel rank ${r}: ${why}`;
    this.#relay?.abort(reason);
    abortLocalNccl(this.#s!.shared, this.options.ncclAbort);
    for (const [x, other] of this.#socks) if (x !== r && !this.#dead.has(x)) sendFrame(other, F_ABORT, new TextEncoder().encode(reason));
  }

  async #pumpLocal(relay: SocketCommRelay): Promise<void> {
    for (;;) {
      const req = await relay.next();
      if (!req) return;
      this.#contribute(0, req);
    }
  }

  /** Adds rank `r`'s next collective call; once every rank has made it, sends out the result. */
  #contribute(r: number, req: CollRequest): void {
    const s = this.#s!;
    const k = this.#nextColl.get(r) ?? 0;
    this.#nextColl.set(r, k + 1);
    let parts = this.#pending.get(k);
    if (!parts) this.#pending.set(k, parts = new Array(s.worldSize).fill(undefined));
    parts[r] = req;
    if (parts.some((p) => p === undefined)) return;
    this.#pending.delete(k);
    let result: Float32Array;
    try {
      result = combineCollective(parts as CollRequest[]);
    } catch (e) {
      const reason = (e as Error).message;
      this.#relay?.abort(reason);
      abortLocalNccl(this.#s!.shared, this.options.ncclAbort);
      for (const sock of this.#socks.values()) sendFrame(sock, F_ABORT, new TextEncoder().encode(reason));
      return;
    }
    const bytes = encodeColl({ ...req, data: result });
    for (const [x, sock] of this.#socks) if (!this.#dead.has(x)) sendFrame(sock, F_COLL, bytes);
    this.#relay?.answer(result);
  }

  /** After dispose: closes the connections once every rank has answered. */
  #closeIfDone(): void {
    const s = this.#s!;
    if (!s.ranks.every((r) => this.#dead.has(r) || (this.#acked.get(r) ?? 0) >= this.#lastSeq)) return;
    for (const sock of this.#socks.values()) sock.end();
    this.#server?.close();
    clearTimeout(this.#timer);
  }
}

/**
 * Aborts the NCCL communicators published in `shared` (ncclCommAbort from this thread: a rank
 * blocked in a collective on a peer whose process is gone returns with an error instead of
 * waiting forever). Returns the ranks aborted.
 */
export function abortLocalNccl(shared: TpShared, abortFn?: (handle: bigint) => number): number[] {
  const done: number[] = [];
  shared.ncclCells?.forEach((cell, r) => {
    try {
      if (abortNcclCell(cell, abortFn)) done.push(r);
    } catch {
      // Best effort: the session fails the step and terminates the rank all the same.
    }
  });
  return done;
}
