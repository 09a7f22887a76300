/**
 * One tensor-parallel rank inside its worker: opens its rank engine, makes its communicator and
 * its own backend session (on CUDA: its own context and stream), and answers the session's
 * commands. Rank 0 writes the step's logits and sampled ids into shared memory. A failure is
 * written as this rank's error; a failure that may leave peers waiting inside a collective aborts
 * the group so they fail too.
 */
import { CpuCommunicator } from "../backends/cpu/communicator.ts";
import { SocketCommunicator } from "../backends/cpu/socket_communicator.ts";
import { CpuSession } from "../backends/cpu/session.ts";
import { CudaSession } from "../backends/cuda/session.ts";
import { Engine } from "../builder/engine.ts";
import type { SessionBackend } from "../ir/backend.ts";
import type { KvCache } from "../ir/kv_cache.ts";
import { LlmrtError, serializeError, ValidationError } from "../util/errors.ts";
import { controlLayout, ERROR_BYTES, STATUS_ERROR, STATUS_OK, type TpCommand, type TpShared } from "./tp_wire.ts";

/** Handles the commands of one rank (see tp_wire.ts). */
export class RankRunner {
  #rank = 0;
  #worldSize = 1;
  #shared: TpShared | null = null;
  #ctl: Int32Array | null = null;
  #engine: Engine | null = null;
  #session: SessionBackend | null = null;
  #abort: (() => void) | null = null;
  #disposeComm: (() => void) | null = null;
  readonly #kv = new Map<number, KvCache>();

  handle(raw: unknown): void {
    const msg = raw as TpCommand;
    let failed: unknown = null;
    try {
      this.#do(msg);
    } catch (e) {
      failed = e;
      // A validation error is raised before any collective (every rank raises it alike); any
      // other failure may leave peers inside a collective: abort the group so they return too.
      if (!(e instanceof LlmrtError && e.kind === "validation")) this.#abort?.();
    }
    this.#ack(msg.seq, failed);
    if (msg.cmd === "dispose") (globalThis as unknown as { close?: () => void }).close?.();
  }

  #do(msg: TpCommand): void {
    switch (msg.cmd) {
      case "init":
        this.#init(msg);
        return;
      case "run": {
        const s = this.#live();
        const kv = this.#kvOf(msg.kvId);
        const R = msg.inputs.logitRows.length;
        const sh = this.#shared!;
        const isRoot = this.#rank === 0;
        const V = s.plan.attributes.vocabSize;
        const out = {
          logits: isRoot && msg.wantLogits ? new Float32Array(sh.logits, 0, R * V) : undefined,
          sampledIds: isRoot && msg.wantSampled ? new Int32Array(sh.sampled, 0, R) : undefined,
        };
        s.run(msg.inputs, out, kv);
        return;
      }
      case "createKv":
        this.#kv.set(msg.kvId, this.#live().createKvCache(msg.numBlocks));
        return;
      case "copyBlocks":
        this.#kvOf(msg.kvId).copyBlocks(msg.copies);
        return;
      case "disposeKv":
        this.#kv.get(msg.kvId)?.dispose();
        this.#kv.delete(msg.kvId);
        return;
      case "freeMemory":
        new Float64Array(this.#shared!.values)[this.#rank] = this.#live().freeMemoryBytes() ?? -1;
        return;
      case "dispose":
        this.#dispose();
        return;
    }
  }

  #init(msg: Extract<TpCommand, { cmd: "init" }>): void {
    this.#rank = msg.rank;
    this.#worldSize = msg.worldSize;
    this.#shared = msg.shared;
    this.#ctl = new Int32Array(msg.shared.control);
    const src = msg.engine;
    this.#engine = src.kind === "dir" ? Engine.fromDir(src.dir, { rank: msg.rank }) : Engine.fromMemory(src.config, src.plan, src.tensors, new Map(src.data));
    const o = msg.options;
    if (o.backend === "cpu") {
      if (msg.comm.kind === "nccl") {
        throw new ValidationError("tensor-parallel rank: the CPU backend needs a CPU communicator, not NCCL", "communicator", msg.comm.kind);
      }
      const comm = msg.comm.kind === "cpu" ? new CpuCommunicator(msg.comm.group, msg.rank) : new SocketCommunicator(msg.comm.channel, msg.rank);
      this.#abort = () => comm.abort();
      this.#disposeComm = () => comm.dispose();
      this.#session = new CpuSession(this.#engine, { communicator: comm });
      return;
    }
    // CUDA: one device per rank (device + rank), its own context and stream inside CudaSession; the
    // ranks of a group join through NCCL (the id made by rank 0's process) inside its constructor.
    // NCCL when the plan has collectives (also a one-rank sharded plan: its all_reduce ops run as NCCL calls).
    const collectives = this.#engine.plan.ops.some((op) => op.type === "all_reduce" || op.type === "all_gather");
    if ((msg.worldSize > 1 || collectives) && msg.comm.kind !== "nccl") {
      throw new ValidationError("tensor-parallel rank: the CUDA backend needs NCCL", "communicator", msg.comm.kind);
    }
    const nccl = (msg.worldSize > 1 || collectives) && msg.comm.kind === "nccl"
      ? { uniqueId: msg.comm.uniqueId, rank: msg.rank, worldSize: msg.worldSize, abortCell: msg.shared.ncclCells?.[msg.rank] }
      : undefined;
    this.#session = new CudaSession(this.#engine, {
      device: msg.device ?? o.device + msg.rank,
      cudaGraphs: o.cudaGraphs,
      gemv: o.gemv,
      batchInvariant: o.batchInvariant,
      gemmTune: o.gemmTune,
      pdl: o.pdl,
      quantPdl: o.quantPdl,
      quantRing: o.quantRing,
      batchAttention: o.batchAttention,
      batchAttention2: o.batchAttention2,
      fp8FastAccum: o.fp8FastAccum,
      fp8FusedQuant: o.fp8FusedQuant,
      fp8Pdl: o.fp8Pdl,
      fp8InvariantBuckets: o.fp8InvariantBuckets,
      fp8Gemv1: o.fp8Gemv1,
      wgmmaPrefill: o.wgmmaPrefill,
      decodeSplitK: o.decodeSplitK,
      gemvSplitK: o.gemvSplitK,
      pruneLastLayer: o.pruneLastLayer,
      nccl,
    });
  }

  #live(): SessionBackend {
    if (!this.#session) throw new ValidationError(`tensor-parallel rank ${this.#rank}: not initialised`, "rank", this.#rank);
    return this.#session;
  }

  #kvOf(id: number): KvCache {
    const kv = this.#kv.get(id);
    if (!kv) throw new ValidationError(`tensor-parallel rank ${this.#rank}: no KV cache ${id}`, "kvCache", id);
    return kv;
  }

  #dispose(): void {
    for (const kv of this.#kv.values()) kv.dispose();
    this.#kv.clear();
    this.#session?.dispose();
    this.#session = null;
    this.#disposeComm?.();
    this.#engine?.dispose();
    this.#engine = null;
  }

  #ack(seq: number, failed: unknown): void {
    const ctl = this.#ctl;
    if (!ctl) return; // no shared memory to answer in (an init that could not even be read)
    const L = controlLayout(this.#worldSize), r = this.#rank;
    if (failed !== null) {
      const s = serializeError(failed);
      const text = JSON.stringify({ ...s, message: `tensor-parallel rank ${r}: ${s.message}` });
      const bytes = new TextEncoder().encode(text);
      const clipped = bytes.length <= ERROR_BYTES
        ? bytes
        : new TextEncoder().encode(JSON.stringify({ kind: s.kind, name: s.name, message: `tensor-parallel rank ${r}: ${s.message.slice(0, 4000)}` }));
      new Uint8Array(this.#shared!.errors, r * ERROR_BYTES, ERROR_BYTES).set(clipped.subarray(0, ERROR_BYTES));
      Atomics.store(ctl, L.errorLen(r), Math.min(clipped.length, ERROR_BYTES));
    }
    Atomics.store(ctl, L.status(r), failed === null ? STATUS_OK : STATUS_ERROR);
    Atomics.store(ctl, L.ack(r), seq);
    Atomics.notify(ctl, L.ack(r));
  }
}
