/**
 * The CPU communicator across processes (and hosts): a rank's collectives travel over TCP. The
 * rank's thread must block inside a collective (the SessionBackend contract is synchronous) while
 * sockets are asynchronous, so the communicator has two ends that meet in a SharedArrayBuffer:
 *
 * - `SocketCommunicator` (the rank's thread): writes its contribution into the channel, bumps the
 *   request word and blocks on `Atomics.wait` until the result is there (or the channel is
 *   aborted, or the timeout passes).
 * - `SocketCommRelay` (a thread with an event loop: the tensor-parallel hub in rank 0's process, the
 *   `tp-worker` process's main thread): awaits each request with `Atomics.waitAsync`, carries it over
 *   TCP (lib/runtime/tp_hub.ts, tp_remote.ts) and writes the result back.
 *
 * The group is a star around rank 0: every rank's contribution goes to rank 0's hub, which combines
 * them with {@link combineCollective} (sums in rank order with the same rounding as
 * CpuCommunicator, so TP over processes gives the same bits as TP over workers) and sends the
 * result back. Correctness over speed: one round trip per collective chunk.
 */
import type { Communicator } from "../../ir/communicator.ts";
import { ValidationError, WorkerError } from "../../util/errors.ts";

/** A collective's kind on the wire. */
export const COLL_ALL_REDUCE = 1, COLL_ALL_GATHER = 2, COLL_BROADCAST = 3;
export type CollOp = typeof COLL_ALL_REDUCE | typeof COLL_ALL_GATHER | typeof COLL_BROADCAST;

/** The shared memory between a rank's thread and its relay; structured-clonable. */
export interface SocketCommChannel {
  /** Int32 words: [request seq, done seq, op, count, root, aborted, reason bytes]. */
  readonly control: SharedArrayBuffer;
  /** [capacity] float32: the contribution in, the result out. */
  readonly data: SharedArrayBuffer;
  /** UTF-8 reason of an abort. */
  readonly reason: SharedArrayBuffer;
  readonly worldSize: number;
  readonly capacity: number;
  /** How long a collective waits for the group (ms). */
  readonly timeoutMs: number;
}

const REQ = 0, DONE = 1, OP = 2, COUNT = 3, ROOT = 4, ABORTED = 5, REASON_LEN = 6;
const REASON_BYTES = 4096;

/**
 * Allocates the channel of one rank of a `worldSize` group.
 *
 * @example
 * ```ts
 * const channel = createSocketCommChannel(2);
 * // rank thread: new SocketCommunicator(channel, rank); relay thread: new SocketCommRelay(channel)
 * ```
 */
export function createSocketCommChannel(worldSize: number, options: { capacity?: number; timeoutMs?: number } = {}): SocketCommChannel {
  if (!Number.isInteger(worldSize) || worldSize < 1) {
    throw new ValidationError(`SocketCommunicator: worldSize must be a positive integer, got ${worldSize}`, "worldSize", worldSize);
  }
  const capacity = options.capacity ?? 1 << 18;
  if (!Number.isInteger(capacity) || capacity < worldSize) {
    throw new ValidationError(`SocketCommunicator: capacity must be an integer ≥ worldSize ${worldSize}, got ${capacity}`, "capacity", capacity);
  }
  return {
    control: new SharedArrayBuffer(8 * 4),
    data: new SharedArrayBuffer(capacity * 4),
    reason: new SharedArrayBuffer(REASON_BYTES),
    worldSize,
    capacity,
    timeoutMs: options.timeoutMs ?? 120_000,
  };
}

/** Marks `channel` aborted with `reason`: the rank's pending and later collectives throw it. */
export function abortSocketCommChannel(channel: SocketCommChannel, reason: string): void {
  const ctl = new Int32Array(channel.control);
  if (Atomics.compareExchange(ctl, ABORTED, 0, 1) === 0) {
    const bytes = new TextEncoder().encode(reason).subarray(0, REASON_BYTES);
    new Uint8Array(channel.reason).set(bytes);
    Atomics.store(ctl, REASON_LEN, bytes.length);
  }
  Atomics.notify(ctl, DONE); // the waiter checks ABORTED whenever it wakes
  Atomics.notify(ctl, REQ);
}

function abortReason(channel: SocketCommChannel): string {
  const ctl = new Int32Array(channel.control);
  return new TextDecoder().decode(new Uint8Array(channel.reason, 0, Atomics.load(ctl, REASON_LEN)).slice());
}

/** One rank over a socket relay. Every method blocks until the group has combined the call. */
export class SocketCommunicator implements Communicator<Float32Array> {
  readonly dtype = "float32" as const;
  readonly worldSize: number;
  readonly #ch: SocketCommChannel;
  readonly #ctl: Int32Array;
  readonly #data: Float32Array;
  #disposed = false;

  constructor(channel: SocketCommChannel, readonly rank: number) {
    if (!Number.isInteger(rank) || rank < 0 || rank >= channel.worldSize) {
      throw new ValidationError(`SocketCommunicator: rank ${rank} outside [0, ${channel.worldSize})`, "rank", rank);
    }
    this.worldSize = channel.worldSize;
    this.#ch = channel;
    this.#ctl = new Int32Array(channel.control);
    this.#data = new Float32Array(channel.data);
  }

  /** Makes this rank's pending and later collectives throw (the relay also tells the group). */
  abort(reason = `rank ${this.rank} aborted`): void {
    abortSocketCommChannel(this.#ch, reason);
  }

  allReduceSum(send: Float32Array, recv: Float32Array, count: number): void {
    this.#check("allReduceSum", send, count, recv, count);
    if (this.worldSize === 1) return void (recv !== send && recv.set(send.subarray(0, count)));
    const C = this.#ch.capacity;
    for (let off = 0; off < count; off += C) {
      const n = Math.min(C, count - off);
      this.#data.set(send.subarray(off, off + n));
      this.#call(COLL_ALL_REDUCE, n, 0);
      recv.set(this.#data.subarray(0, n), off);
    }
  }

  allGather(send: Float32Array, recv: Float32Array, sendCount: number): void {
    const N = this.worldSize;
    this.#check("allGather", send, sendCount, recv, N * sendCount);
    if (N === 1) return void (recv !== send && recv.set(send.subarray(0, sendCount)));
    const C = Math.floor(this.#ch.capacity / N);
    for (let off = 0; off < sendCount; off += C) {
      const n = Math.min(C, sendCount - off);
      this.#data.set(send.subarray(off, off + n));
      this.#call(COLL_ALL_GATHER, n, 0);
      for (let r = 0; r < N; r++) recv.set(this.#data.subarray(r * n, (r + 1) * n), r * sendCount + off);
    }
  }

  broadcast(send: Float32Array, recv: Float32Array, count: number, root: number): void {
    if (!Number.isInteger(root) || root < 0 || root >= this.worldSize) {
      throw new ValidationError(`SocketCommunicator.broadcast: root ${root} outside [0, ${this.worldSize})`, "root", root);
    }
    this.#check("broadcast", send, this.rank === root ? count : 0, recv, count);
    if (this.worldSize === 1) return void (recv !== send && recv.set(send.subarray(0, count)));
    const C = this.#ch.capacity;
    for (let off = 0; off < count; off += C) {
      const n = Math.min(C, count - off);
      if (this.rank === root) this.#data.set(send.subarray(off, off + n));
      this.#call(COLL_BROADCAST, n, root);
      recv.set(this.#data.subarray(0, n), off);
    }
  }

  /** Nothing to free here (the relay owns the sockets). Idempotent. */
  dispose(): void {
    this.#disposed = true;
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  #check(api: string, send: Float32Array, sendCount: number, recv: Float32Array, recvCount: number): void {
    if (this.#disposed) throw new WorkerError(`SocketCommunicator.${api}: used after dispose()`);
    if (!Number.isInteger(sendCount) || sendCount < 0 || send.length < sendCount) {
      throw new ValidationError(`SocketCommunicator.${api}: send holds ${send.length} of ${sendCount} elements`, "send", send.length);
    }
    if (recv.length < recvCount) {
      throw new ValidationError(`SocketCommunicator.${api}: recv holds ${recv.length} of ${recvCount} elements`, "recv", recv.length);
    }
  }

  /** Posts one request (its data already in the channel) and blocks until the relay answers it. */
  #call(op: CollOp, count: number, root: number): void {
    const ctl = this.#ctl;
    this.#throwIfAborted();
    Atomics.store(ctl, OP, op);
    Atomics.store(ctl, COUNT, count);
    Atomics.store(ctl, ROOT, root);
    const seq = Atomics.add(ctl, REQ, 1) + 1;
    Atomics.notify(ctl, REQ);
    const deadline = Date.now() + this.#ch.timeoutMs;
    for (;;) {
      this.#throwIfAborted();
      const done = Atomics.load(ctl, DONE);
      if (done === seq) return;
      const left = deadline - Date.now();
      if (left <= 0) {
        this.abort(`rank ${this.rank} waited ${this.#ch.timeoutMs} ms for a collective`);
        throw new WorkerError(`SocketCommunicator: rank ${this.rank} waited ${this.#ch.timeoutMs} ms for its peers in a collective`);
      }
      Atomics.wait(ctl, DONE, done, Math.min(left, 1000));
    }
  }

  #throwIfAborted(): void {
    if (Atomics.load(this.#ctl, ABORTED) !== 0) {
      throw new WorkerError(`SocketCommunicator: rank ${this.rank}: the group was aborted (a peer rank failed): ${abortReason(this.#ch)}`);
    }
  }
}

/** One collective a rank asked for: its kind, element count, root and contribution (a copy). */
export interface CollRequest {
  readonly op: CollOp;
  readonly count: number;
  readonly root: number;
  /** This rank's elements (broadcast: the root's only; empty elsewhere). */
  readonly data: Float32Array;
}

/** The relay's end of a channel (a thread with an event loop). */
export class SocketCommRelay {
  readonly #ch: SocketCommChannel;
  readonly #ctl: Int32Array;
  #handled = 0;

  constructor(channel: SocketCommChannel, readonly rank: number) {
    this.#ch = channel;
    this.#ctl = new Int32Array(channel.control);
  }

  get aborted(): boolean {
    return Atomics.load(this.#ctl, ABORTED) !== 0;
  }

  /** The next request of the rank's thread; null once the channel is aborted. */
  async next(): Promise<CollRequest | null> {
    const ctl = this.#ctl;
    for (;;) {
      if (this.aborted) return null;
      const req = Atomics.load(ctl, REQ);
      if (req > this.#handled) {
        this.#handled = req;
        const op = Atomics.load(ctl, OP) as CollOp, count = Atomics.load(ctl, COUNT), root = Atomics.load(ctl, ROOT);
        const mine = op !== COLL_BROADCAST || root === this.rank;
        return { op, count, root, data: mine ? new Float32Array(this.#ch.data, 0, count).slice() : new Float32Array(0) };
      }
      const w = Atomics.waitAsync(ctl, REQ, req, 1000);
      if (w.async) await w.value;
    }
  }

  /** Writes the result of the request last returned by {@link next} and wakes the rank's thread. */
  answer(result: Float32Array): void {
    if (this.aborted) return;
    if (result.length > this.#ch.capacity) throw new WorkerError(`SocketCommRelay: a result of ${result.length} floats exceeds the channel`);
    new Float32Array(this.#ch.data).set(result);
    Atomics.store(this.#ctl, DONE, this.#handled);
    Atomics.notify(this.#ctl, DONE);
  }

  /** Aborts the channel (a peer or the connection failed): the rank's thread throws `reason`. */
  abort(reason: string): void {
    abortSocketCommChannel(this.#ch, reason);
  }
}

/**
 * Combines the contributions of every rank (indexed by rank) to one collective: all-reduce sums in
 * rank order in double precision and rounds once (as CpuCommunicator does), all-gather
 * concatenates, broadcast returns the root's. A rank whose op, count or root differs is a
 * WorkerError (the ranks ran different plans).
 */
export function combineCollective(reqs: readonly CollRequest[]): Float32Array {
  const first = reqs[0];
  reqs.forEach((r, rank) => {
    if (r.op !== first.op || r.count !== first.count || r.root !== first.root) {
      throw new WorkerError(
        `tensor-parallel collective mismatch: rank 0 called op ${first.op} (${first.count} elements, root ${first.root}), rank ${rank} op ${r.op} (${r.count}, root ${r.root})`,
      );
    }
  });
  const n = first.count;
  if (first.op === COLL_BROADCAST) return reqs[first.root].data.subarray(0, n);
  if (first.op === COLL_ALL_GATHER) {
    const out = new Float32Array(reqs.length * n);
    reqs.forEach((r, rank) => out.set(r.data.subarray(0, n), rank * n));
    return out;
  }
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    let s = reqs[0].data[i];
    for (let r = 1; r < reqs.length; r++) s += reqs[r].data[i];
    out[i] = s;
  }
  return out;
}

/** A collective request or result on the wire: [i32 op, count, root][float32 data]. */
export function encodeColl(req: CollRequest): Uint8Array {
  const out = new Uint8Array(12 + req.data.byteLength);
  const dv = new DataView(out.buffer);
  dv.setInt32(0, req.op, true);
  dv.setInt32(4, req.count, true);
  dv.setInt32(8, req.root, true);
  out.set(new Uint8Array(req.data.buffer, req.data.byteOffset, req.data.byteLength), 12);
  return out;
}

/** The inverse of {@link encodeColl}. */
export function decodeColl(bytes: Uint8Array): CollRequest {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const data = new Float32Array(bytes.slice(12).buffer);
  return { op: dv.getInt32(0, true) as CollOp, count: dv.getInt32(4, true), root: dv.getInt32(8, true), data };
}
