/**
 * The messages between GenerationExecutorProxy and its Web Worker (lib/executor/worker_main.ts).
 * Everything crossing is structured-clonable: prompts, plain sampling fields, outputs, stats and
 * errors as `SerializedError` (kind, name, message, fields: an LlmrtError comes back as the same class
 * with the same kind). Functions (a logitsProcessor callback) cannot cross.
 */
import type { RequestOutput } from "./outputs.ts";
import { SamplingParams } from "./sampling_params.ts";
import type { Backend } from "../runtime/session.ts";
import { deserializeError, type LlmrtError, type SerializedError, serializeError, ValidationError } from "../util/errors.ts";
import type { ExecutorConfigInput, ExecutorLimits, GenerationRequest, IterationStats } from "./config.ts";

/** What the worker needs to build its executor. */
export interface WorkerInit {
  readonly engineDir: string;
  readonly tokenizerDir: string | null;
  readonly backend: Backend;
  readonly config: ExecutorConfigInput;
  /** The speculative draft model's engine directory (speculativeConfig DraftTarget). */
  readonly draftEngineDir?: string | null;
  /** Tensor parallelism over processes: rank 0's `--tp-master` address and how long ranks may take to join. */
  readonly tp?: { readonly tpMaster?: string; readonly rendezvousTimeoutMs?: number };
}

export type WireError = SerializedError;

export interface WireRequest {
  readonly promptTokenIds: number[];
  /** SamplingParams' own (validated) fields. */
  readonly samplingParams: Record<string, unknown>;
  readonly prompt: string | null;
  readonly streaming: boolean;
  readonly priority: number;
  readonly loraRequest?: { readonly name: string; readonly path: string };
}

export type ToWorker =
  | { readonly type: "init"; readonly init: WorkerInit }
  | { readonly type: "submit"; readonly id: number; readonly request: WireRequest }
  | { readonly type: "abort"; readonly id: number }
  | { readonly type: "shutdown" };

export type FromWorker =
  | { readonly type: "ready"; readonly limits: ExecutorLimits }
  | { readonly type: "initError"; readonly error: WireError }
  | {
    readonly type: "step";
    readonly outputs: RequestOutput[];
    readonly failures: { readonly requestId: number; readonly error: WireError }[];
    readonly stats: IterationStats | null;
  }
  | { readonly type: "fatal"; readonly error: WireError }
  | { readonly type: "closed" };

export function toWireError(e: unknown): WireError {
  return serializeError(e);
}

export function fromWireError(w: WireError): LlmrtError {
  return deserializeError(w);
}

/** A request as plain data; a function-valued sampling field is a ValidationError. */
export function toWireRequest(request: GenerationRequest): WireRequest {
  const p = request.samplingParams;
  const fields: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(p ?? {})) {
    if (typeof v === "function" || (Array.isArray(v) && v.some((x) => typeof x === "function"))) {
      throw new ValidationError(
        `SamplingParams.${k}: a function cannot cross to the executor's worker thread (executorMode "proxy"); use executorMode "inprocess"`,
        k,
        "function",
      );
    }
    if (v !== undefined) fields[k] = v;
  }
  return {
    promptTokenIds: [...(request.promptTokenIds ?? [])],
    samplingParams: fields,
    prompt: request.prompt ?? null,
    streaming: request.streaming ?? false,
    priority: request.priority ?? 0,
    ...(request.loraRequest ? { loraRequest: { name: request.loraRequest.name, path: request.loraRequest.path } } : {}),
  };
}

/** The worker side: a SamplingParams from fields validated on the caller's side (not re-parsed). */
export function fromWireRequest(w: WireRequest): GenerationRequest {
  const p = Object.freeze(Object.assign(Object.create(SamplingParams.prototype) as SamplingParams, w.samplingParams));
  return { promptTokenIds: w.promptTokenIds, samplingParams: p, prompt: w.prompt, streaming: w.streaming, priority: w.priority, loraRequest: w.loraRequest };
}
