/**
 * The collective-communication contract of tensor parallelism: the ranks of one group sum, gather
 * and broadcast buffers. Implemented by NCCL over device memory (lib/cuda/nccl.ts, buffers are
 * `CUdeviceptr` bigints enqueued on the session's stream) and on the CPU (buffers are
 * Float32Arrays) by shared memory across Web Workers (lib/backends/cpu/communicator.ts) or, for
 * ranks in several processes or hosts, over TCP through rank 0 (lib/backends/cpu/socket_communicator.ts),
 * so sharded engines run in CI. Every rank calls the same collectives in the same order; a call blocks (CPU) or is
 * enqueued (NCCL) until every rank has joined it.
 */

/** Element type a communicator moves (one per communicator). */
export type CommDType = "float32" | "float16" | "bfloat16";

/** One rank's handle on a group of `worldSize` ranks. */
export interface Communicator<Buf = Float32Array> {
  /** This rank, in [0, worldSize). */
  readonly rank: number;
  readonly worldSize: number;
  /** Element type of every buffer. */
  readonly dtype: CommDType;
  /** recv[i] = Σ over ranks of send[i], i < count; `send` may be `recv` (in place). */
  allReduceSum(send: Buf, recv: Buf, count: number): void;
  /** recv = each rank's `sendCount` elements, rank after rank (recv holds worldSize × sendCount). */
  allGather(send: Buf, recv: Buf, sendCount: number): void;
  /** recv on every rank = `root`'s send (count elements); `send` is read on the root only. */
  broadcast(send: Buf, recv: Buf, count: number, root: number): void;
  /** Frees the communicator (idempotent). */
  dispose(): void;
}
