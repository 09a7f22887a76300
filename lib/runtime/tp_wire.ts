/**
 * What the tensor-parallel session (main thread) and its rank workers share: the commands posted
 * to a rank, the layout of the shared control words, and how a rank finds its engine. Commands go
 * by `postMessage`; each rank answers in shared memory (ack word + status + error text), so the
 * main thread can block on `Atomics.wait` inside the synchronous `SessionBackend` calls.
 */
import type { EngineConfig, EngineTensor } from "../builder/engine.ts";
import { createHash } from "node:crypto";
import type { Engine } from "../builder/engine.ts";
import type { CpuCommGroup } from "../backends/cpu/communicator.ts";
import type { SocketCommChannel } from "../backends/cpu/socket_communicator.ts";
import type { EnginePlan } from "../ir/plan.ts";
import type { StepInputs } from "../ir/step_io.ts";
import type { ResolvedSessionOptions } from "./session_options.ts";

/** How a rank opens its engine: from a directory (rank<r>.engine) or from bytes posted to it. */
export type RankEngineSource =
  | { readonly kind: "dir"; readonly dir: string }
  | {
    readonly kind: "memory";
    readonly config: EngineConfig;
    readonly plan: EnginePlan;
    readonly tensors: readonly EngineTensor[];
    readonly data: ReadonlyMap<string, Uint8Array>;
  };

/** How the ranks' communicator is made. */
export type CommSetup =
  | { readonly kind: "cpu"; readonly group: CpuCommGroup }
  /** Ranks in several processes (CPU): collectives relayed over TCP through rank 0's hub. */
  | { readonly kind: "socket"; readonly channel: SocketCommChannel }
  /** NCCL: the 128-byte unique id rank 0 made (handed out in-process or over the TCP rendezvous). */
  | { readonly kind: "nccl"; readonly uniqueId: Uint8Array };

/** The shared memory of one tensor-parallel session. */
export interface TpShared {
  /** Int32 control words (see the offsets below). */
  readonly control: SharedArrayBuffer;
  /** Per rank ERROR_BYTES of UTF-8 error JSON. */
  readonly errors: SharedArrayBuffer;
  /** [maxRows × vocab] float32 logits written by rank 0. */
  readonly logits: SharedArrayBuffer;
  /** [maxRows] int32 sampled ids written by rank 0. */
  readonly sampled: SharedArrayBuffer;
  /** [worldSize] float64 answers of queries (free memory). */
  readonly values: SharedArrayBuffer;
  /** CUDA: each rank's NCCL abort cell (lib/cuda/nccl.ts), so a watchdog thread can abort a rank blocked on a dead peer. */
  readonly ncclCells?: readonly SharedArrayBuffer[];
}

/** Bytes of error text a rank can report. */
export const ERROR_BYTES = 16384;

/** Offsets of the control words for `worldSize` ranks. */
export function controlLayout(
  worldSize: number,
): { ack: (r: number) => number; status: (r: number) => number; errorLen: (r: number) => number; booted: number; words: number } {
  return {
    ack: (r) => r,
    status: (r) => worldSize + r,
    errorLen: (r) => 2 * worldSize + r,
    booted: 3 * worldSize,
    words: 3 * worldSize + 1,
  };
}

/** Rank status words. */
export const STATUS_OK = 0, STATUS_ERROR = 1;

/** A command to one rank; `seq` is echoed in its ack word. */
export type TpCommand =
  | {
    readonly cmd: "init";
    readonly seq: number;
    /** URL of tp_rank.ts, which the worker loads (see tp_worker.js). */
    readonly rankModule: string;
    readonly rank: number;
    readonly worldSize: number;
    readonly shared: TpShared;
    readonly engine: RankEngineSource;
    readonly options: ResolvedSessionOptions;
    readonly comm: CommSetup;
    /** CUDA device of this rank; absent: options.device + rank (every rank in one process). */
    readonly device?: number;
  }
  | {
    readonly cmd: "run";
    readonly seq: number;
    readonly inputs: StepInputs;
    readonly kvId: number;
    readonly wantLogits: boolean;
    readonly wantSampled: boolean;
  }
  | { readonly cmd: "createKv"; readonly seq: number; readonly kvId: number; readonly numBlocks: number }
  | { readonly cmd: "copyBlocks"; readonly seq: number; readonly kvId: number; readonly copies: readonly (readonly [number, number])[] }
  | { readonly cmd: "disposeKv"; readonly seq: number; readonly kvId: number }
  | { readonly cmd: "freeMemory"; readonly seq: number }
  | { readonly cmd: "dispose"; readonly seq: number };

/** What a rank in another process needs to open the same rank engine as rank 0's process. */
export interface RemoteEngineSpec {
  /** The engine's build options (`EngineConfig.build`, tensorParallelSize included). */
  readonly build: EngineConfig["build"];
  readonly dtype: EngineConfig["dtype"];
  readonly quant: EngineConfig["quant"];
  /** {@link engineFingerprint} of each rank's engine: a rank holding another engine is refused. */
  readonly fingerprints: readonly string[];
}

/** What rank 0's hub sends a rank that joined over `--tp-master` (the F_INIT frame). */
export interface RemoteInit {
  readonly rank: number;
  readonly worldSize: number;
  /** The sequence number of the session's init command (the rank's first answer). */
  readonly initSeq: number;
  readonly options: ResolvedSessionOptions;
  /** NCCL: the unique id rank 0 made; CPU: collectives over this connection. */
  readonly comm: { readonly kind: "socket" } | { readonly kind: "nccl"; readonly uniqueId: Uint8Array };
  readonly engine: RemoteEngineSpec;
  /** How long one step may take (ms): the rank's collectives wait as long. */
  readonly stepTimeoutMs: number;
}

/** The setup TpSession posts to its hub worker (rank 0's end of `--tp-master`, tp_hub.ts). */
export interface HubSetup {
  readonly cmd: "hub";
  readonly seq: 0;
  /** URL of tp_hub.ts and the class the worker makes (see tp_worker.js). */
  readonly rankModule: string;
  readonly entry: "TpHub";
  readonly address: string;
  readonly worldSize: number;
  /** The ranks in other processes (1 … worldSize-1): the hub answers for them in `shared`. */
  readonly ranks: readonly number[];
  readonly shared: TpShared;
  /** Rank 0's collective channel (CPU); null with NCCL. */
  readonly channel: SocketCommChannel | null;
  /** Everything but `rank` of each rank's F_INIT. */
  readonly init: Omit<RemoteInit, "rank">;
  /** How long the ranks may take to connect (ms). */
  readonly rendezvousTimeoutMs: number;
}

/** A digest of an engine's config, plan and tensor table (not its bytes; object keys sorted): equal for equal builds. */
export function engineFingerprint(engine: Engine): string {
  const tensors = engine.tensorNames().sort().map((n) => {
    const t = engine.tensorInfo(n);
    return [t.name, t.dtype, t.shape];
  });
  const canonical = JSON.stringify(
    { config: engine.config, plan: engine.plan, tensors },
    (_k, v) =>
      v && typeof v === "object" && !Array.isArray(v) && !ArrayBuffer.isView(v)
        ? Object.fromEntries(Object.keys(v).sort().map((k) => [k, (v as Record<string, unknown>)[k]]))
        : v,
  );
  return createHash("sha256").update(canonical).digest("hex").slice(0, 32);
}
