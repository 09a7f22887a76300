/**
 * A tensor-parallel rank in its own process (`llmrt tp-worker`): connects to rank 0's
 * `--tp-master` address (retrying until rank 0 is up), receives the group's setup, opens its rank
 * engine, runs it in a rank worker (the same RankRunner as in-process ranks) and answers rank 0's
 * commands over the connection. On the CPU this thread also relays the rank's collectives to rank
 * 0's hub. Ends when rank 0 disposes the session; fails (WorkerError) when rank 0 goes away, refuses
 * the rank, or its engine differs from rank 0's.
 */
import type * as net from "node:net";
import { createSocketCommChannel, decodeColl, encodeColl, SocketCommRelay } from "../backends/cpu/socket_communicator.ts";
import type { Engine } from "../builder/engine.ts";
import { CudaDevice } from "../cuda/device.ts";
import { createNcclAbortCell } from "../cuda/nccl.ts";
import { deserializeError, type SerializedError, serializeError, ValidationError, WorkerError } from "../util/errors.ts";
import { abortLocalNccl, type RemoteAck } from "./tp_hub.ts";
import { RANK_MODULE, rankWorkerUrl } from "./tp_modules.ts";
import {
  connectWithRetry,
  decodeMessage,
  F_ABORT,
  F_ACK,
  F_CMD,
  F_COLL,
  F_HELLO,
  F_INIT,
  F_REFUSE,
  FrameReader,
  sendFrame,
  TP_PROTOCOL,
} from "./tp_rendezvous.ts";
import {
  type CommSetup,
  controlLayout,
  engineFingerprint,
  ERROR_BYTES,
  type RankEngineSource,
  type RemoteEngineSpec,
  type RemoteInit,
  STATUS_ERROR,
  type TpCommand,
  type TpShared,
} from "./tp_wire.ts";

/** Options of {@link runRemoteRank}. */
export interface RemoteRankOptions {
  /** Rank 0's `host:port`. */
  readonly tpMaster: string;
  /** This rank, in [1, worldSize). */
  readonly rank: number;
  /** The group size this rank expects (checked against rank 0's); absent: rank 0's. */
  readonly worldSize?: number;
  /** How long to keep trying to reach rank 0 (ms). @default 300000 */
  readonly connectTimeoutMs?: number;
  /** CUDA device of this rank on this host. @default rank mod the visible device count */
  readonly device?: number;
  /** Opens the engine (all ranks) rank 0 describes; the caller disposes nothing (runRemoteRank does). */
  readonly openEngine: (spec: RemoteEngineSpec, worldSize: number) => { engine: Engine; source: (rank: number) => RankEngineSource };
  /** Progress lines (connected, engine opened, session ended). */
  readonly log?: (line: string) => void;
}

/**
 * Runs rank `rank` of the group whose rank 0 listens at `tpMaster` until rank 0 disposes the
 * session.
 *
 * @example
 * ```ts
 * await runRemoteRank({ tpMaster: "10.0.0.1:29500", rank: 1, openEngine: (spec) => ({ engine, source: () => ({ kind: "dir", dir }) }) });
 * ```
 */
export async function runRemoteRank(o: RemoteRankOptions): Promise<void> {
  if (!Number.isInteger(o.rank) || o.rank < 1) {
    throw new ValidationError(`tp-worker --rank: expected an integer ≥ 1 (rank 0 is the process that runs the executor), got ${o.rank}`, "rank", o.rank);
  }
  const log = o.log ?? (() => {});
  const sock = await connectWithRetry(o.tpMaster, o.connectTimeoutMs ?? 300_000, o.rank);
  sock.setNoDelay(true);
  log(`rank ${o.rank}: connected to rank 0 at ${o.tpMaster}`);
  return await new RemoteRank(sock, o, log).run();
}

class RemoteRank {
  #init: RemoteInit | null = null;
  #worker: Worker | null = null;
  #shared: TpShared | null = null;
  #relay: SocketCommRelay | null = null;
  #chain: Promise<void> = Promise.resolve();
  readonly #collWaiters: ((r: Float32Array) => void)[] = [];
  #finished = false;
  #resolve!: () => void;
  #reject!: (e: Error) => void;

  constructor(readonly sock: net.Socket, readonly o: RemoteRankOptions, readonly log: (s: string) => void) {}

  run(): Promise<void> {
    const done = new Promise<void>((res, rej) => {
      this.#resolve = res;
      this.#reject = rej;
    });
    const reader = new FrameReader((type, payload) => this.#frame(type, payload));
    this.sock.on("data", (c: Uint8Array) => {
      try {
        reader.push(new Uint8Array(c));
      } catch (e) {
        this.#fail(e as Error);
      }
    });
    this.sock.on("error", () => {});
    this.sock.on(
      "close",
      () => this.#fail(new WorkerError(`tensor-parallel rank ${this.o.rank}: rank 0 at ${this.o.tpMaster} closed the connection before the session ended`)),
    );
    sendFrame(this.sock, F_HELLO, { protocol: TP_PROTOCOL, rank: this.o.rank, worldSize: this.o.worldSize ?? 0 });
    return done;
  }

  #frame(type: number, payload: Uint8Array): void {
    switch (type) {
      case F_REFUSE:
        this.#fail(new ValidationError(`tensor-parallel rank ${this.o.rank}: rank 0 refused it: ${new TextDecoder().decode(payload)}`, "rank", this.o.rank));
        return;
      case F_INIT:
        this.#start(decodeMessage<RemoteInit>(payload));
        return;
      case F_CMD: {
        const cmd = decodeMessage<TpCommand>(payload);
        this.#chain = this.#chain.then(() => this.#forward(cmd));
        return;
      }
      case F_COLL:
        this.#collWaiters.shift()?.(decodeColl(payload).data);
        return;
      case F_ABORT:
        this.#relay?.abort(new TextDecoder().decode(payload));
        if (this.#shared) abortLocalNccl(this.#shared);
        return;
    }
  }

  /** Opens the engine, starts the rank worker and answers the session's init. */
  #start(init: RemoteInit): void {
    this.#init = init;
    const r = init.rank, N = init.worldSize;
    let engine: Engine | null = null;
    try {
      const opened = this.o.openEngine(init.engine, N);
      engine = opened.engine;
      const mine = engine.rankEngine(r);
      const fp = engineFingerprint(mine);
      if (mine !== engine && engine.dir) mine.dispose();
      if (fp !== init.engine.fingerprints[r]) {
        throw new ValidationError(
          `tensor-parallel rank ${r}: its engine differs from rank 0's (fingerprint ${fp}, rank 0 expects ${
            init.engine.fingerprints[r]
          }); give every rank the same engine directory (llmrt build --tp ${N}) or the same checkpoint`,
          "model",
        );
      }
      const L = controlLayout(N);
      this.#shared = {
        control: new SharedArrayBuffer(L.words * 4),
        errors: new SharedArrayBuffer(N * ERROR_BYTES),
        logits: new SharedArrayBuffer(4),
        sampled: new SharedArrayBuffer(4),
        values: new SharedArrayBuffer(N * 8),
        ...(init.comm.kind === "nccl" ? { ncclCells: Array.from({ length: N }, () => createNcclAbortCell()) } : {}),
      };
      let comm: CommSetup;
      if (init.comm.kind === "socket") {
        const channel = createSocketCommChannel(N, { timeoutMs: init.stepTimeoutMs });
        this.#relay = new SocketCommRelay(channel, r);
        void this.#pump(this.#relay);
        comm = { kind: "socket", channel };
      } else {
        comm = { kind: "nccl", uniqueId: init.comm.uniqueId };
      }
      const device = init.options.backend === "cuda" ? this.o.device ?? r % Math.max(1, CudaDevice.count()) : undefined;
      this.#worker = new Worker(rankWorkerUrl(), { type: "module" });
      const source = opened.source(r);
      this.log(`rank ${r} of ${N}: engine opened (${source.kind === "dir" ? source.dir : "in memory"}), starting`);
      this.#chain = this.#chain.then(() =>
        this.#forward({
          cmd: "init",
          seq: init.initSeq,
          rankModule: RANK_MODULE,
          rank: r,
          worldSize: N,
          shared: this.#shared!,
          engine: source,
          options: init.options,
          comm,
          device,
        })
      );
    } catch (e) {
      this.#send({ seq: init.initSeq, error: serializeError(e) });
      this.#fail(e as Error);
    } finally {
      engine?.dispose();
    }
  }

  /** Posts one command to the rank worker, waits for its answer and sends it to rank 0. */
  async #forward(cmd: TpCommand): Promise<void> {
    if (this.#finished || !this.#worker) return;
    const r = this.#init!.rank, L = controlLayout(this.#init!.worldSize), sh = this.#shared!;
    const ctl = new Int32Array(sh.control);
    this.#worker.postMessage(cmd);
    for (;;) {
      const a = Atomics.load(ctl, L.ack(r));
      if (a >= cmd.seq) break;
      if (this.#finished) return;
      const w = Atomics.waitAsync(ctl, L.ack(r), a, 1000);
      if (w.async) await w.value;
    }
    let error: SerializedError | undefined;
    if (Atomics.load(ctl, L.status(r)) === STATUS_ERROR) {
      const n = Atomics.load(ctl, L.errorLen(r));
      const text = new TextDecoder().decode(new Uint8Array(sh.errors, r * ERROR_BYTES, n).slice());
      try {
        error = JSON.parse(text) as SerializedError;
      } catch {
        error = serializeError(new WorkerError(text));
      }
    }
    const value = cmd.cmd === "freeMemory" ? new Float64Array(sh.values)[r] : undefined;
    this.#send({ seq: cmd.seq, ...(error ? { error } : {}), ...(value !== undefined ? { value } : {}) });
    if (cmd.cmd === "dispose") {
      this.log(`rank ${r}: session ended by rank 0`);
      this.#finish(null);
    } else if (error && cmd.cmd === "init") {
      this.#fail(deserializeError(error));
    }
  }

  /** Relays the rank's collectives to rank 0's hub, one at a time. */
  async #pump(relay: SocketCommRelay): Promise<void> {
    for (;;) {
      const req = await relay.next();
      if (!req || this.#finished) return;
      const result = new Promise<Float32Array>((res) => this.#collWaiters.push(res));
      sendFrame(this.sock, F_COLL, encodeColl(req));
      relay.answer(await result);
    }
  }

  #send(ack: RemoteAck): void {
    if (!this.sock.destroyed) sendFrame(this.sock, F_ACK, ack);
  }

  #fail(e: Error): void {
    this.#relay?.abort(e.message);
    if (this.#shared) abortLocalNccl(this.#shared);
    this.#finish(e);
  }

  #finish(e: Error | null): void {
    if (this.#finished) return;
    this.#finished = true;
    const worker = this.#worker;
    // A rank blocked in a collective returns once its channel is aborted; give it a moment.
    if (worker) setTimeout(() => worker.terminate(), e ? 2000 : 0);
    this.sock.end();
    if (e) this.#reject(e);
    else this.#resolve();
  }
}
