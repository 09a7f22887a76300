/**
 * The messages between GenerationExecutorProxy and its Web Worker (lib/executor/worker_main.ts).
 * Everything crossing is structured-clonable: prompts, plain sampling fields, outputs, stats and
 * errors as { name, message, field }. Functions (a logitsProcessor callback) cannot cross.
 */
import type { RequestOutput } from "../llmapi/outputs.ts";
import { SamplingParams } from "../llmapi/sampling_params.ts";
import type { Backend } from "../runtime/session.ts";
import { ValidationError } from "../util/errors.ts";
import type { ExecutorConfigInput, ExecutorLimits, GenerationRequest, IterationStats } from "./config.ts";

/** What the worker needs to build its executor. */
export interface WorkerInit {
  readonly engineDir: string;
  readonly tokenizerDir: string | null;
  readonly backend: Backend;
  readonly config: ExecutorConfigInput;
}

export interface WireError {
  readonly name: string;
  readonly message: string;
  readonly field?: string;
}

export interface WireRequest {
  readonly promptTokenIds: number[];
  /** SamplingParams' own (validated) fields. */
  readonly samplingParams: Record<string, unknown>;
  readonly prompt: string | null;
  readonly streaming: boolean;
  readonly priority: number;
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
  if (e instanceof ValidationError) return { name: e.name, message: e.message, field: e.field };
  if (e instanceof Error) return { name: e.name, message: e.message };
  return { name: "Error", message: String(e) };
}

export function fromWireError(w: WireError): Error {
  if (w.name === "ValidationError") return new ValidationError(w.message, w.field);
  const e = new Error(w.message);
  if (w.name && w.name !== "Error") e.name = w.name;
  return e;
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
  };
}

/** The worker side: a SamplingParams from fields validated on the caller's side (not re-parsed). */
export function fromWireRequest(w: WireRequest): GenerationRequest {
  const p = Object.freeze(Object.assign(Object.create(SamplingParams.prototype) as SamplingParams, w.samplingParams));
  return { promptTokenIds: w.promptTokenIds, samplingParams: p, prompt: w.prompt, streaming: w.streaming, priority: w.priority };
}
