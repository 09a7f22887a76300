/**
 * `TpSession`: a tensor-parallel engine as one `SessionBackend`. One Web Worker per rank, each with
 * its own backend session (CPU; on CUDA its own context and stream) and a communicator over the
 * group (shared memory on the CPU, NCCL on GPUs). The caller's thread keeps the executor: each
 * step's inputs are posted to every rank, rank 0's logits and sampled ids come back through shared
 * memory. The calls are synchronous (the SessionBackend contract): the caller blocks on
 * `Atomics.wait` until every rank has answered. A rank that fails to start makes the constructor
 * throw a WorkerError naming it (after terminating the others); a rank that fails or goes silent
 * later breaks the session: that step and every later one throw WorkerError, never hang.
 *
 * With `tpMaster` only rank 0 is a worker here; a hub worker (tp_hub.ts) listens at that address
 * for the other ranks' processes (`llmrt tp-worker`, tp_remote.ts), forwards each command to them
 * over TCP and writes their answers into the same shared memory, so the waiting above is unchanged.
 * On the CPU the collectives then run through the hub (SocketCommunicator); on GPUs over NCCL,
 * whose communicators a failing peer gets aborted (ncclCommAbort through abort cells).
 */
import type { Engine } from "../builder/engine.ts";
import { createCpuCommGroup } from "../backends/cpu/communicator.ts";
import { createSocketCommChannel } from "../backends/cpu/socket_communicator.ts";
import { abortNcclCell, createNcclAbortCell, ncclUniqueId } from "../cuda/nccl.ts";
import { type Backend, engineMaxSeqLen, type SessionBackend } from "../ir/backend.ts";
import { bytesPerBlock, type KvCache, type KvCacheGeometry } from "../ir/kv_cache.ts";
import type { EnginePlan } from "../ir/plan.ts";
import { resolveTokenMasks } from "../ir/sampling.ts";
import type { StepInputs, StepOutputs } from "../ir/step_io.ts";
import { deserializeError, DisposedError, type LlmrtError, type SerializedError, ValidationError, WorkerError } from "../util/errors.ts";
import type { ResolvedSessionOptions } from "./session_options.ts";
import { HUB_MODULE, RANK_MODULE, rankWorkerUrl } from "./tp_modules.ts";
import { parseMaster } from "./tp_rendezvous.ts";
import {
  type CommSetup,
  controlLayout,
  engineFingerprint,
  ERROR_BYTES,
  type HubSetup,
  type RankEngineSource,
  STATUS_ERROR,
  type TpCommand,
  type TpShared,
} from "./tp_wire.ts";

/** A command without its sequence number (distributes over the union). */
type Unsequenced<T> = T extends unknown ? Omit<T, "seq"> : never;

/** How long peers of a rank that failed a command may still take to answer it (ms). */
const FAILED_PEER_GRACE_MS = 10_000;

/** Options of a tensor-parallel session beyond the backend's. */
export interface TpSessionOptions {
  /** How long a rank may take to load its engine and start (ms). @default 600000 */
  readonly startupTimeoutMs?: number;
  /** How long one step may take on the slowest rank (ms). @default 600000 */
  readonly stepTimeoutMs?: number;
  /** NCCL: the communicator's unique id (made by rank 0 / the TCP rendezvous); made here when absent. */
  readonly ncclUniqueId?: Uint8Array;
  /**
   * Run only rank 0 here and serve the other ranks at this `host:port` (`0.0.0.0:29500` listens
   * on every interface): each runs in its own process, on this host or another, started with
   * `llmrt tp-worker --tp-master HOST:PORT --rank R --model DIR`. Rank 0 makes the NCCL unique id
   * and hands it out there; every step's command goes out over the same connections (and, on the
   * CPU, the collectives). @default absent: every rank is a worker of this process
   */
  readonly tpMaster?: string;
  /** How long the other ranks may take to connect to `tpMaster` (ms). @default 300000 */
  readonly rendezvousTimeoutMs?: number;
}

/** The main thread's handle on one rank's KV cache (each rank holds its KV heads). */
class TpKvCache implements KvCache {
  readonly bytesPerBlock: number;
  #disposed = false;
  constructor(readonly session: TpSession, readonly id: number, readonly geometry: KvCacheGeometry) {
    this.bytesPerBlock = bytesPerBlock(geometry);
  }
  get bytes(): number {
    return this.bytesPerBlock * this.geometry.numBlocks;
  }
  copyBlocks(copies: readonly (readonly [number, number])[]): void {
    if (copies.length === 0) return;
    if (this.#disposed) throw new DisposedError("KvCache");
    this.session.command({ cmd: "copyBlocks", kvId: this.id, copies: copies.map(([a, b]) => [a, b] as const) });
  }
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    if (!this.session.isBroken && !this.session.isDisposed) this.session.command({ cmd: "disposeKv", kvId: this.id });
  }
  [Symbol.dispose](): void {
    this.dispose();
  }
}

/**
 * A tensor-parallel engine on `engine.config.numRanks` workers (also one: the Worker-per-rank path
 * of a one-rank engine).
 *
 * @example
 * ```ts
 * const engine = await build(model, { tensorParallelSize: 2 });
 * using session = Session.fromSerializedEngine(engine, { backend: "cpu" }); // a TpSession inside
 * ```
 */
export class TpSession implements SessionBackend {
  readonly backend: Backend;
  readonly plan: EnginePlan;
  readonly maxSeqLen: number;
  readonly tokensPerBlock: number;
  readonly worldSize: number;
  readonly #workers: Worker[] = [];
  readonly #shared: TpShared;
  readonly #ctl: Int32Array;
  readonly #layout: ReturnType<typeof controlLayout>;
  readonly #stepTimeoutMs: number;
  readonly #maxLogits: number;
  #seq = 0;
  #kvIds = 0;
  #broken: LlmrtError | null = null;
  #dead = new Set<number>();
  #disposed = false;
  /** Ranks running as workers of this process (the first #workers; a hub worker may follow). */
  #localRanks = 0;

  constructor(readonly engine: Engine, options: ResolvedSessionOptions, tp: TpSessionOptions = {}) {
    this.backend = options.backend;
    this.plan = engine.plan;
    this.maxSeqLen = engineMaxSeqLen(engine);
    this.tokensPerBlock = engine.config.build.tokensPerBlock;
    const N = engine.config.numRanks;
    this.worldSize = N;
    this.#stepTimeoutMs = tp.stepTimeoutMs ?? 600_000;
    this.#layout = controlLayout(N);
    const V = engine.plan.attributes.vocabSize;
    this.#maxLogits = engine.plan.maxSeqs * V;
    this.#shared = {
      control: new SharedArrayBuffer(this.#layout.words * 4),
      errors: new SharedArrayBuffer(N * ERROR_BYTES),
      logits: new SharedArrayBuffer(this.#maxLogits * 4),
      sampled: new SharedArrayBuffer(engine.plan.maxSeqs * 4),
      values: new SharedArrayBuffer(N * 8),
      ...(options.backend === "cuda" ? { ncclCells: Array.from({ length: N }, () => createNcclAbortCell()) } : {}),
    };
    this.#ctl = new Int32Array(this.#shared.control);
    const master = tp.tpMaster;
    if (master !== undefined) parseMaster(master, true);
    // With tpMaster only rank 0 runs here; the hub worker answers for the ranks of other processes.
    const local = master !== undefined ? [0] : Array.from({ length: N }, (_, r) => r);
    this.#localRanks = local.length;
    const collectives = engine.plan.ops.some((op) => op.type === "all_reduce" || op.type === "all_gather");
    let comm: CommSetup;
    if (options.backend === "cpu") {
      comm = master !== undefined
        ? { kind: "socket", channel: createSocketCommChannel(N, { timeoutMs: this.#stepTimeoutMs }) }
        : { kind: "cpu", group: createCpuCommGroup(N, { timeoutMs: this.#stepTimeoutMs }) };
    } else {
      // Rank 0's process makes the NCCL id (handed to other processes by the hub); one rank needs none.
      comm = { kind: "nccl", uniqueId: tp.ncclUniqueId ?? (N > 1 || collectives || master !== undefined ? ncclUniqueId() : new Uint8Array(128)) };
    }
    const workerUrl = rankWorkerUrl();
    try {
      for (const _ of local) this.#workers.push(new Worker(workerUrl, { type: "module" }));
      const seq = ++this.#seq;
      if (master !== undefined) {
        const hub = new Worker(workerUrl, { type: "module" });
        this.#workers.push(hub);
        const setup: HubSetup = {
          cmd: "hub",
          seq: 0,
          rankModule: HUB_MODULE,
          entry: "TpHub",
          address: master,
          worldSize: N,
          ranks: Array.from({ length: N - 1 }, (_, i) => i + 1),
          shared: this.#shared,
          channel: comm.kind === "socket" ? comm.channel : null,
          init: {
            worldSize: N,
            initSeq: seq,
            options,
            comm: comm.kind === "nccl" ? { kind: "nccl", uniqueId: comm.uniqueId } : { kind: "socket" },
            engine: { build: engine.config.build, dtype: engine.config.dtype, quant: engine.config.quant, fingerprints: rankFingerprints(engine) },
            stepTimeoutMs: this.#stepTimeoutMs,
          },
          rendezvousTimeoutMs: tp.rendezvousTimeoutMs ?? 300_000,
        };
        hub.postMessage(setup);
        hub.postMessage({ cmd: "init", seq });
      }
      for (const r of local) {
        const source: RankEngineSource = engineSource(engine, r);
        const msg: TpCommand = { cmd: "init", seq, rankModule: RANK_MODULE, rank: r, worldSize: N, shared: this.#shared, engine: source, options, comm };
        this.#workers[r].postMessage(msg);
      }
      this.#await(seq, Math.max(tp.startupTimeoutMs ?? 600_000, master !== undefined ? (tp.rendezvousTimeoutMs ?? 300_000) + 5_000 : 0), "start");
    } catch (e) {
      for (const w of this.#workers) w.terminate();
      this.#disposed = true;
      throw e instanceof WorkerError ? e : new WorkerError(`tensor-parallel session: ${(e as Error).message}`, { cause: e });
    }
  }

  get isBroken(): boolean {
    return this.#broken !== null;
  }

  get isDisposed(): boolean {
    return this.#disposed;
  }

  createKvCache(numBlocks: number): KvCache {
    if (!Number.isInteger(numBlocks) || numBlocks <= 0) {
      throw new ValidationError(`Session.createKvCache: expected a positive integer block count, got ${numBlocks}`, "numBlocks", numBlocks);
    }
    const id = ++this.#kvIds;
    this.command({ cmd: "createKv", kvId: id, numBlocks });
    return new TpKvCache(this, id, { ...this.kvGeometry(), numBlocks });
  }

  /** One rank's KV geometry (each rank holds its share of the KV heads). */
  kvGeometry(): Omit<KvCacheGeometry, "numBlocks"> {
    const a = this.plan.attributes;
    const elementBytes = this.backend === "cpu" ? 4 : this.plan.elementBytes;
    return { numLayers: a.numLayers, tokensPerBlock: this.tokensPerBlock, numKvHeads: a.numKvHeads, headDim: a.headDim, elementBytes };
  }

  kvBytesPerBlock(): number {
    return bytesPerBlock(this.kvGeometry());
  }

  /** The smallest free device memory over the ranks; null on the CPU. */
  freeMemoryBytes(): number | null {
    if (this.backend === "cpu") return null;
    this.command({ cmd: "freeMemory" });
    const v = new Float64Array(this.#shared.values);
    return Math.min(...Array.from(v));
  }

  run(inputs: StepInputs, outputs: StepOutputs, kvCache: KvCache): void {
    if (!(kvCache instanceof TpKvCache) || kvCache.session !== this) {
      throw new ValidationError("Session.run: kvCache was not made by this tensor-parallel session (createKvCache)", "kvCache");
    }
    const R = inputs.logitRows.length, V = this.plan.attributes.vocabSize;
    if (R * V > this.#maxLogits) {
      throw new ValidationError(`Session.run: inputs.logitRows: ${R} rows exceed the engine's ${this.plan.maxSeqs} logit rows`, "logitRows", R);
    }
    // Token masks cross to the ranks as data (a mask function cannot be cloned): computed here, before the step.
    const tm = inputs.sampling?.tokenMasks;
    if (tm && typeof tm.masks === "function") inputs = { ...inputs, sampling: { ...inputs.sampling!, tokenMasks: { ...tm, masks: resolveTokenMasks(tm) } } };
    this.command({ cmd: "run", inputs, kvId: kvCache.id, wantLogits: outputs.logits !== undefined, wantSampled: outputs.sampledIds !== undefined });
    if (outputs.logits) outputs.logits.set(new Float32Array(this.#shared.logits, 0, R * V));
    if (outputs.sampledIds) outputs.sampledIds.set(new Int32Array(this.#shared.sampled, 0, R));
  }

  /**
   * Terminates rank `r`'s worker as if it had crashed (fault drills and tests): the session is
   * broken from then on and every call throws WorkerError.
   */
  killRank(r: number): void {
    if (r < this.#localRanks) this.#workers[r]?.terminate();
    this.#dead.add(r);
    this.#broken ??= new WorkerError(`tensor-parallel rank ${r} is gone (its worker was terminated)`);
  }

  /** Posts one command to every rank and blocks until all have answered; a rank's error is rethrown. */
  command(c: Unsequenced<TpCommand>): void {
    if (this.#disposed) throw new DisposedError("Session (tensor-parallel)");
    if (this.#broken) throw new WorkerError(`tensor-parallel session is broken: ${this.#broken.message}`, { cause: this.#broken });
    const seq = ++this.#seq;
    const msg = { ...c, seq } as TpCommand;
    for (const w of this.#workers) w.postMessage(msg);
    this.#await(seq, this.#stepTimeoutMs, c.cmd);
  }

  #await(seq: number, timeoutMs: number, what: string): void {
    const L = this.#layout, ctl = this.#ctl;
    const deadline = Date.now() + timeoutMs;
    // Once a rank has failed this command, its peers get a short grace: one blocked in a collective
    // (NCCL cannot be interrupted from here) must not hold the caller for the whole step timeout.
    let failedAt = 0;
    for (let r = 0; r < this.worldSize; r++) {
      while (Atomics.load(ctl, L.ack(r)) < seq) {
        const failed = failedAt ? -1 : this.#failedRank(seq);
        if (failed >= 0) {
          failedAt = Date.now();
          // Not a validation error (raised alike by every rank before any collective): a real failure.
          if (this.#errorOf(failed).kind !== "validation") this.#abortCollectives();
        }
        const limit = failedAt ? Math.min(deadline, failedAt + FAILED_PEER_GRACE_MS) : deadline;
        const left = limit - Date.now();
        if (left <= 0) {
          const booted = Atomics.load(ctl, L.booted);
          const why = booted < this.worldSize && what === "start" ? ` (${booted} of ${this.worldSize} workers loaded)` : "";
          const failed = this.#failedRank(seq);
          const cause = failed >= 0 ? `; rank ${failed} failed first: ${this.#errorOf(failed).message}` : "";
          this.#broken = new WorkerError(
            `tensor-parallel rank ${r} did not answer '${what}' within ${failedAt ? FAILED_PEER_GRACE_MS : timeoutMs} ms${why}${cause}`,
          );
          for (const w of this.#workers) w.terminate();
          throw this.#broken;
        }
        Atomics.wait(ctl, L.ack(r), Atomics.load(ctl, L.ack(r)), Math.min(left, 200));
      }
    }
    const errors: LlmrtError[] = [];
    for (let r = 0; r < this.worldSize; r++) if (Atomics.load(ctl, L.status(r)) === STATUS_ERROR) errors.push(this.#errorOf(r));
    if (errors.length === 0) return;
    // Every rank raised the same validation error before any collective: the session stays usable.
    if (errors.length === this.worldSize && errors.every((e) => e.kind === "validation")) throw errors[0];
    // The first cause, not a peer's "the group was aborted".
    const root = errors.find((e) => !/group was aborted/.test(e.message)) ?? errors[0];
    if (what === "start") throw new WorkerError(`tensor-parallel session could not start: ${root.message}`, { cause: root });
    this.#broken = new WorkerError(`tensor-parallel step '${what}' failed: ${root.message}`, { cause: root });
    throw this.#broken;
  }

  /**
   * A rank failed: abort the NCCL communicators of this process's ranks (ncclCommAbort from this
   * thread), so a rank blocked in a collective on the failed one returns instead of waiting out
   * the grace. (CPU ranks abort their shared-memory group themselves.)
   */
  #abortCollectives(): void {
    for (let r = 0; r < this.#localRanks; r++) {
      const cell = this.#shared.ncclCells?.[r];
      try {
        if (cell) abortNcclCell(cell);
      } catch {
        // The rank is being terminated anyway; the abort was only to release it sooner.
      }
    }
  }

  /** The first rank that answered command `seq` with an error, or -1. */
  #failedRank(seq: number): number {
    const L = this.#layout, ctl = this.#ctl;
    for (let r = 0; r < this.worldSize; r++) {
      if (Atomics.load(ctl, L.ack(r)) === seq && Atomics.load(ctl, L.status(r)) === STATUS_ERROR) return r;
    }
    return -1;
  }

  /** Rank `r`'s reported error. */
  #errorOf(r: number): LlmrtError {
    const n = Atomics.load(this.#ctl, this.#layout.errorLen(r));
    const text = new TextDecoder().decode(new Uint8Array(this.#shared.errors, r * ERROR_BYTES, n).slice());
    try {
      return deserializeError(JSON.parse(text) as SerializedError);
    } catch {
      return new WorkerError(text);
    }
  }

  /** Stops every rank (frees their sessions, KV caches and communicators). Idempotent. */
  dispose(): void {
    if (this.#disposed) return;
    try {
      if (!this.#broken) this.command({ cmd: "dispose" });
    } catch {
      // A rank that cannot dispose cleanly is terminated below all the same.
    } finally {
      this.#disposed = true;
      for (const w of this.#workers) w.terminate();
    }
  }
}

/** {@link engineFingerprint} of every rank's engine (rank engines opened from a directory are closed again). */
function rankFingerprints(engine: Engine): string[] {
  return Array.from({ length: engine.config.numRanks }, (_, r) => {
    const e = engine.rankEngine(r);
    try {
      return engineFingerprint(e);
    } finally {
      if (e !== engine && engine.dir) e.dispose();
    }
  });
}

/** Where rank `r` finds its engine: the directory it was opened from, or its tensors posted in memory. */
export function engineSource(engine: Engine, r: number): RankEngineSource {
  if (engine.dir) return { kind: "dir", dir: engine.dir };
  const e = engine.rankEngine(r);
  const tensors = e.tensorNames().map((n) => e.tensorInfo(n));
  // A copy of each tensor: a view would clone its whole backing buffer (a checkpoint file) per rank.
  const data = new Map(tensors.map((t) => [t.name, e.readTensor(t.name).slice()]));
  return { kind: "memory", config: e.config, plan: e.plan, tensors, data };
}
