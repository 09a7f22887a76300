/**
 * The CPU communicator: the ranks of a tensor-parallel group live in Web Workers of one process and
 * meet in a SharedArrayBuffer. Each collective copies this rank's chunk into its slot, waits at a
 * barrier, reads every slot in rank order (so every rank computes bit-identical sums), and waits at
 * a second barrier before the slots are reused. A rank that fails calls `abort()`: every rank
 * blocked in a barrier then throws instead of waiting for a peer that will never come.
 */
import type { Communicator } from "../../ir/communicator.ts";
import { ValidationError, WorkerError } from "../../util/errors.ts";

/** The shared memory of one group; structured-clonable (post it to each rank's worker). */
export interface CpuCommGroup {
  /** Int32 words: [arrived count, barrier generation, aborted flag]. */
  readonly control: SharedArrayBuffer;
  /** [worldSize × slotFloats] float32 slots, one per rank. */
  readonly slots: SharedArrayBuffer;
  readonly worldSize: number;
  readonly slotFloats: number;
  /** How long a barrier waits for the slowest rank before it fails (ms). */
  readonly timeoutMs: number;
}

const ARRIVED = 0, GENERATION = 1, ABORTED = 2;

/**
 * Allocates the shared memory of a group of `worldSize` ranks.
 *
 * @example
 * ```ts
 * const group = createCpuCommGroup(2);
 * // in rank r's worker: const comm = new CpuCommunicator(group, r);
 * ```
 */
export function createCpuCommGroup(worldSize: number, options: { slotFloats?: number; timeoutMs?: number } = {}): CpuCommGroup {
  if (!Number.isInteger(worldSize) || worldSize < 1) {
    throw new ValidationError(`CpuCommunicator: worldSize must be a positive integer, got ${worldSize}`, "worldSize", worldSize);
  }
  const slotFloats = options.slotFloats ?? 1 << 18; // 1 MiB per rank; larger buffers go in chunks
  return {
    control: new SharedArrayBuffer(16),
    slots: new SharedArrayBuffer(worldSize * slotFloats * 4),
    worldSize,
    slotFloats,
    timeoutMs: options.timeoutMs ?? 120_000,
  };
}

/** One rank of a {@link CpuCommGroup}. Every method blocks until every rank has joined the call. */
export class CpuCommunicator implements Communicator<Float32Array> {
  readonly dtype = "float32" as const;
  readonly worldSize: number;
  readonly #ctl: Int32Array;
  readonly #slots: Float32Array;
  readonly #slotFloats: number;
  readonly #timeoutMs: number;
  #disposed = false;

  constructor(group: CpuCommGroup, readonly rank: number) {
    if (!Number.isInteger(rank) || rank < 0 || rank >= group.worldSize) {
      throw new ValidationError(`CpuCommunicator: rank ${rank} outside [0, ${group.worldSize})`, "rank", rank);
    }
    this.worldSize = group.worldSize;
    this.#ctl = new Int32Array(group.control);
    this.#slots = new Float32Array(group.slots);
    this.#slotFloats = group.slotFloats;
    this.#timeoutMs = group.timeoutMs;
  }

  /** Makes every rank's pending and future collectives throw (a peer failed). */
  abort(): void {
    Atomics.store(this.#ctl, ABORTED, 1);
    Atomics.add(this.#ctl, GENERATION, 1);
    Atomics.notify(this.#ctl, GENERATION);
  }

  get isAborted(): boolean {
    return Atomics.load(this.#ctl, ABORTED) !== 0;
  }

  allReduceSum(send: Float32Array, recv: Float32Array, count: number): void {
    this.#check("allReduceSum", [send, count], [recv, count]);
    const N = this.worldSize, C = this.#slotFloats;
    if (N === 1) {
      if (recv !== send) recv.set(send.subarray(0, count));
      return;
    }
    const mine = this.rank * C;
    for (let off = 0; off < count; off += C) {
      const n = Math.min(C, count - off);
      this.#slots.set(send.subarray(off, off + n), mine);
      this.#barrier();
      // Same order on every rank: rank 0's values, then + rank 1's, ... (bit-identical results).
      for (let i = 0; i < n; i++) {
        let s = this.#slots[i];
        for (let r = 1; r < N; r++) s += this.#slots[r * C + i];
        recv[off + i] = s;
      }
      this.#barrier();
    }
  }

  allGather(send: Float32Array, recv: Float32Array, sendCount: number): void {
    const N = this.worldSize, C = this.#slotFloats;
    this.#check("allGather", [send, sendCount], [recv, N * sendCount]);
    if (N === 1) {
      if (recv !== send) recv.set(send.subarray(0, sendCount));
      return;
    }
    for (let off = 0; off < sendCount; off += C) {
      const n = Math.min(C, sendCount - off);
      this.#slots.set(send.subarray(off, off + n), this.rank * C);
      this.#barrier();
      for (let r = 0; r < N; r++) recv.set(this.#slots.subarray(r * C, r * C + n), r * sendCount + off);
      this.#barrier();
    }
  }

  broadcast(send: Float32Array, recv: Float32Array, count: number, root: number): void {
    if (!Number.isInteger(root) || root < 0 || root >= this.worldSize) {
      throw new ValidationError(`CpuCommunicator.broadcast: root ${root} outside [0, ${this.worldSize})`, "root", root);
    }
    this.#check("broadcast", this.rank === root ? [send, count] : [recv, 0], [recv, count]);
    const C = this.#slotFloats;
    if (this.worldSize === 1) {
      if (recv !== send) recv.set(send.subarray(0, count));
      return;
    }
    for (let off = 0; off < count; off += C) {
      const n = Math.min(C, count - off);
      if (this.rank === root) this.#slots.set(send.subarray(off, off + n), 0);
      this.#barrier();
      recv.set(this.#slots.subarray(0, n), off);
      this.#barrier();
    }
  }

  /** Nothing to free (the group's memory is garbage collected with its last user). Idempotent. */
  dispose(): void {
    this.#disposed = true;
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  #check(api: string, send: [Float32Array, number], recv: [Float32Array, number]): void {
    if (this.#disposed) throw new WorkerError(`CpuCommunicator.${api}: used after dispose()`);
    if (!Number.isInteger(send[1]) || send[1] < 0 || send[0].length < send[1]) {
      throw new ValidationError(`CpuCommunicator.${api}: send holds ${send[0].length} of ${send[1]} elements`, "send", send[0].length);
    }
    if (recv[0].length < recv[1]) {
      throw new ValidationError(`CpuCommunicator.${api}: recv holds ${recv[0].length} of ${recv[1]} elements`, "recv", recv[0].length);
    }
  }

  /** Sense-reversing barrier on (arrived, generation); fails on abort or after the timeout. */
  #barrier(): void {
    const ctl = this.#ctl;
    if (Atomics.load(ctl, ABORTED) !== 0) throw new WorkerError(`CpuCommunicator: rank ${this.rank}: the group was aborted (a peer rank failed)`);
    const gen = Atomics.load(ctl, GENERATION);
    if (Atomics.add(ctl, ARRIVED, 1) === this.worldSize - 1) {
      Atomics.store(ctl, ARRIVED, 0);
      Atomics.add(ctl, GENERATION, 1);
      Atomics.notify(ctl, GENERATION);
      return;
    }
    const deadline = Date.now() + this.#timeoutMs;
    while (Atomics.load(ctl, GENERATION) === gen) {
      const left = deadline - Date.now();
      if (left <= 0) {
        this.abort();
        throw new WorkerError(`CpuCommunicator: rank ${this.rank} waited ${this.#timeoutMs} ms at a barrier for its peers`);
      }
      Atomics.wait(ctl, GENERATION, gen, Math.min(left, 1000));
    }
    if (Atomics.load(ctl, ABORTED) !== 0) throw new WorkerError(`CpuCommunicator: rank ${this.rank}: the group was aborted (a peer rank failed)`);
  }
}
