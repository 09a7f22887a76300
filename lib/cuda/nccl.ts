/**
 * NCCL communicators over the CUDA object model: the unique id rank 0 makes, one communicator per
 * rank (`ncclCommInitRank`), and the collectives tensor parallelism uses, enqueued on the stream
 * the communicator was made for (so they are captured into CUDA graphs with the kernels around
 * them). `NcclCommunicator` has the shape of the `Communicator` interface (lib/ir, a layer above
 * this one, so it is matched structurally, not imported): buffers are device addresses
 * (`CUdeviceptr` bigints).
 *
 * NVLink multicast (NVLS) stays off: `NCCL_NVLS_ENABLE=0` is set before the first communicator
 * unless the environment says otherwise.
 */
import process from "node:process";
import { checkNccl } from "../../ffi/check.ts";
import { nccl, NCCL_DTYPE, NCCL_OP, NCCL_UNIQUE_ID_BYTES } from "../../ffi/nccl.ts";
import { ValidationError } from "../util/errors.ts";
import type { CudaDevice } from "./device.ts";
import { NativeOwner } from "./owner.ts";
import type { Stream } from "./stream.ts";

/** Element types a communicator moves (lib/ir's CommDType). */
export type NcclDType = "float32" | "float16" | "bfloat16";

/** NCCL's version as major·10000 + minor·100 + patch (e.g. 22703 for 2.27.3). */
export function ncclVersion(): number {
  const v = new Int32Array(1);
  checkNccl(nccl().ncclGetVersion(v), "ncclGetVersion");
  return v[0];
}

/** A new communicator id (rank 0 makes it; every rank of the group needs the same 128 bytes). */
export function ncclUniqueId(): Uint8Array {
  const id = new Uint8Array(NCCL_UNIQUE_ID_BYTES);
  checkNccl(nccl().ncclGetUniqueId(id), "ncclGetUniqueId");
  return id;
}

/** Starts a group: collectives until {@link ncclGroupEnd} are launched together. */
export function ncclGroupStart(): void {
  checkNccl(nccl().ncclGroupStart(), "ncclGroupStart");
}

/** Ends a group started by {@link ncclGroupStart}. */
export function ncclGroupEnd(): void {
  checkNccl(nccl().ncclGroupEnd(), "ncclGroupEnd");
}

/** States of an abort cell (Int32 word 0; the ncclComm_t handle is the BigUint64 at byte 8). */
const CELL_LIVE = 1, CELL_ABORTED = 2, CELL_DESTROYED = 3;

/**
 * A cell through which another thread of this process can abort a communicator (16 shared bytes):
 * pass it to {@link NcclCommunicator.init} as `abortCell`, hand the same buffer to a watchdog
 * (rank 0's `--tp-master` hub, a `tp-worker`'s main thread, the session waiting on its ranks),
 * which calls {@link abortNcclCell} when a peer is gone. Exactly one of abort and destroy runs.
 */
export function createNcclAbortCell(): SharedArrayBuffer {
  return new SharedArrayBuffer(16);
}

/**
 * Aborts the communicator published in `cell` from any thread (ncclCommAbort: its operations in
 * flight end, so a rank blocked on a peer that died returns with an error). Returns false when
 * there is nothing to abort (not made yet, already aborted or destroyed). `abortFn` is the NCCL
 * call (tests pass a fake).
 *
 * @example
 * ```ts
 * const cell = createNcclAbortCell(); // rank: NcclCommunicator.init(dev, stream, { ...o, abortCell: cell })
 * abortNcclCell(cell); // watchdog thread, once a peer's process is gone
 * ```
 */
export function abortNcclCell(cell: SharedArrayBuffer, abortFn: (handle: bigint) => number = (h) => nccl().ncclCommAbort(h)): boolean {
  const state = new Int32Array(cell, 0, 1);
  if (Atomics.compareExchange(state, 0, CELL_LIVE, CELL_ABORTED) !== CELL_LIVE) return false;
  checkNccl(abortFn(new BigUint64Array(cell, 8, 1)[0]), "ncclCommAbort", "from a watchdog thread");
  return true;
}

/** Claims a published cell for destroy; false when a watchdog aborted it first (then nothing is left to free). */
export function claimNcclCellForDestroy(cell: SharedArrayBuffer): boolean {
  const state = new Int32Array(cell, 0, 1);
  return Atomics.compareExchange(state, 0, CELL_LIVE, CELL_DESTROYED) === CELL_LIVE;
}

/** Publishes a communicator's handle in its cell (abortable from then on). */
function publishNcclCell(cell: SharedArrayBuffer, handle: bigint): void {
  new BigUint64Array(cell, 8, 1)[0] = handle;
  Atomics.store(new Int32Array(cell, 0, 1), 0, CELL_LIVE);
}

type InitArm64 = (comm: BigUint64Array, nranks: number, id: Uint8Array, rank: number) => number;
type InitX64 = (comm: BigUint64Array, nranks: number, rank: number, ...rest: bigint[]) => number;

/** ncclCommInitRank with the by-value id placed as this machine's ABI wants it (see ffi/nccl.ts). */
function commInitRank(cell: BigUint64Array, worldSize: number, id: Uint8Array, rank: number): number {
  const fn = nccl().ncclCommInitRank as unknown;
  if (process.arch === "arm64") return (fn as InitArm64)(cell, worldSize, id.slice(), rank);
  const words = new BigUint64Array(id.slice().buffer);
  return (fn as InitX64)(cell, worldSize, rank, 0n, 0n, 0n, ...words);
}

/**
 * One rank's NCCL communicator, bound to a device and a stream.
 *
 * @example
 * ```ts
 * const id = ncclUniqueId(); // rank 0; handed to the others (TCP rendezvous)
 * using comm = NcclCommunicator.init(device, stream, { uniqueId: id, rank: 0, worldSize: 1, dtype: "bfloat16" });
 * comm.allReduceSum(buf.ptr, buf.ptr, n);
 * ```
 */
export class NcclCommunicator extends NativeOwner {
  readonly #handle: bigint;
  /** Set by abort(): the handle is gone, the release must not destroy it again. */
  readonly #state: { aborted: boolean; cell: SharedArrayBuffer | null } = { aborted: false, cell: null };
  readonly #dtype: number;
  readonly #elemBytes: number;

  private constructor(
    readonly device: CudaDevice,
    readonly stream: Stream,
    readonly rank: number,
    readonly worldSize: number,
    readonly dtype: NcclDType,
    handle: bigint,
    cell: SharedArrayBuffer | null,
  ) {
    super("NcclCommunicator");
    this.#handle = handle;
    this.#dtype = NCCL_DTYPE[dtype];
    this.#elemBytes = dtype === "float32" ? 4 : 2;
    const state = this.#state;
    state.cell = cell;
    if (cell) publishNcclCell(cell, handle);
    this.own(device.adopt("NcclCommunicator", () => {
      if (state.aborted || (state.cell && !claimNcclCellForDestroy(state.cell))) return; // aborted (maybe by a watchdog)
      device.bind();
      checkNccl(nccl().ncclCommDestroy(handle), "ncclCommDestroy");
    }));
  }

  /** Joins the group `uniqueId` names as `rank` (blocks until every rank has joined). */
  static init(
    device: CudaDevice,
    stream: Stream,
    o: { uniqueId: Uint8Array; rank: number; worldSize: number; dtype: NcclDType; abortCell?: SharedArrayBuffer },
  ): NcclCommunicator {
    if (o.uniqueId.byteLength !== NCCL_UNIQUE_ID_BYTES) {
      throw new ValidationError(
        `NcclCommunicator: the unique id must be ${NCCL_UNIQUE_ID_BYTES} bytes, got ${o.uniqueId.byteLength}`,
        "uniqueId",
        o.uniqueId.byteLength,
      );
    }
    if (!Number.isInteger(o.rank) || o.rank < 0 || o.rank >= o.worldSize) {
      throw new ValidationError(`NcclCommunicator: rank ${o.rank} outside [0, ${o.worldSize})`, "rank", o.rank);
    }
    process.env.NCCL_NVLS_ENABLE ??= "0";
    device.bind();
    const cell = new BigUint64Array(1);
    checkNccl(commInitRank(cell, o.worldSize, o.uniqueId, o.rank), "ncclCommInitRank", `rank ${o.rank} of ${o.worldSize}`);
    return new NcclCommunicator(device, stream, o.rank, o.worldSize, o.dtype, cell[0], o.abortCell ?? null);
  }

  /** The ncclComm_t. */
  get handle(): bigint {
    this.assertLive();
    return this.#handle;
  }

  /** Bytes of one element. */
  get elementBytes(): number {
    return this.#elemBytes;
  }

  allReduceSum(send: bigint, recv: bigint, count: number): void {
    checkNccl(nccl().ncclAllReduce(send, recv, count, this.#dtype, NCCL_OP.sum, this.handle, this.stream.handle), "ncclAllReduce");
  }

  allGather(send: bigint, recv: bigint, sendCount: number): void {
    checkNccl(nccl().ncclAllGather(send, recv, sendCount, this.#dtype, this.handle, this.stream.handle), "ncclAllGather");
  }

  broadcast(send: bigint, recv: bigint, count: number, root: number): void {
    checkNccl(nccl().ncclBroadcast(send, recv, count, this.#dtype, root, this.handle, this.stream.handle), "ncclBroadcast");
  }

  /** An error NCCL raised asynchronously (a peer failed), or null. */
  asyncError(): string | null {
    const cell = new Int32Array(1);
    checkNccl(nccl().ncclCommGetAsyncError(this.handle, cell), "ncclCommGetAsyncError");
    return cell[0] === 0 ? null : `ncclResult ${cell[0]}`;
  }

  /** Aborts the communicator (peers blocked in a collective with it fail); frees it. */
  abort(): void {
    if (this.isDisposed) return;
    const { cell } = this.#state;
    if (cell && !claimNcclCellForDestroy(cell)) return void this.dispose(); // a watchdog aborted it already
    this.#state.aborted = true;
    this.device.bind();
    try {
      checkNccl(nccl().ncclCommAbort(this.#handle), "ncclCommAbort");
    } finally {
      this.dispose();
    }
  }
}
