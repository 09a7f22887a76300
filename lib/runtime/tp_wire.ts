/**
 * What the tensor-parallel session (main thread) and its rank workers share: the commands posted
 * to a rank, the layout of the shared control words, and how a rank finds its engine. Commands go
 * by `postMessage`; each rank answers in shared memory (ack word + status + error text), so the
 * main thread can block on `Atomics.wait` inside the synchronous `SessionBackend` calls.
 */
import type { EngineConfig, EngineTensor } from "../builder/engine.ts";
import type { CpuCommGroup } from "../backends/cpu/communicator.ts";
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
