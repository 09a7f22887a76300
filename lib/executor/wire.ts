/**
 * The messages between GenerationExecutorProxy and its Web Worker (lib/executor/worker_main.ts).
 * Everything crossing is structured-clonable: prompts, plain sampling fields, outputs, stats and
 * errors as `SerializedError` (kind, name, message, fields: an LlmrtError comes back as the same class
 * with the same kind). Functions (a logitsProcessor callback) cannot cross.
 */
import type { CompletionOutput, RequestOutput } from "./outputs.ts";
import { SamplingParams } from "./sampling_params.ts";
import type { Backend } from "../runtime/session.ts";
import { deserializeError, InternalError, type LlmrtError, type SerializedError, serializeError, ValidationError } from "../util/errors.ts";
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
    readonly outputs: WireStepOutputs;
    /** `rejected`: refused at submission (RequestFailure.rejected). */
    readonly failures: { readonly requestId: number; readonly error: WireError; readonly rejected?: boolean }[];
    readonly stats: IterationStats | null;
    /** When the worker posted the message (absolute ms: `performance.timeOrigin + performance.now()`). */
    readonly sentAt: number;
    /** How long the worker took to encode the outputs (ms; lib/executor/step_trace.ts). */
    readonly encodeMs: number;
  }
  | { readonly type: "fatal"; readonly error: WireError }
  | { readonly type: "closed" };

/**
 * A streamed, not yet final output as it crosses after the request's first one: only what is new
 * (the cumulative `text` / `tokenIds` and the prompt are rebuilt on the caller's side), so a step's
 * message costs O(new tokens) to clone, not O(prompt + text so far) per request.
 */
export interface WireDelta {
  readonly requestId: number;
  readonly delta: true;
  readonly outputs: readonly {
    readonly index: number;
    readonly textDiff: string;
    readonly tokenIdsDiff: readonly number[];
    readonly finishReason: CompletionOutput["finishReason"];
    readonly stopReason: CompletionOutput["stopReason"];
    readonly cumulativeLogprob: CompletionOutput["cumulativeLogprob"];
  }[];
}

/**
 * One step's outputs as they cross, in the step's order: the most common kind — a delta whose
 * completions are all still running (no finish or stop reason, no cumulative logprob) — packed into
 * one Int32Array and one string, so a step of hundreds of streams clones as two values, not as
 * hundreds of small objects; every other output as an object in `objects`.
 *
 * `packed` is a run of records: `-1` takes the next entry of `objects`; else the record is
 * `requestId, numCompletions` then per completion `index, numTokens, textDiffLength, ...tokenIds`,
 * the completions' `textDiff`s following one another in `texts`.
 */
export interface WireStepOutputs {
  readonly packed: Int32Array;
  readonly texts: string;
  readonly objects: (RequestOutput | WireDelta)[];
}

/** A delta that packs into {@link WireStepOutputs.packed}. */
function packable(d: RequestOutput | WireDelta): d is WireDelta {
  return "delta" in d && d.outputs.every((c) => c.finishReason === null && c.stopReason === null && c.cumulativeLogprob === null);
}

/** Packs one step's outputs (see {@link WireStepOutputs}). */
export function packStepOutputs(outputs: readonly (RequestOutput | WireDelta)[]): WireStepOutputs {
  const packed: number[] = [];
  const objects: (RequestOutput | WireDelta)[] = [];
  let texts = "";
  for (const o of outputs) {
    if (!packable(o)) {
      packed.push(-1);
      objects.push(o);
      continue;
    }
    packed.push(o.requestId, o.outputs.length);
    for (const c of o.outputs) {
      packed.push(c.index, c.tokenIdsDiff.length, c.textDiff.length);
      for (const t of c.tokenIdsDiff) packed.push(t);
      texts += c.textDiff;
    }
  }
  return { packed: Int32Array.from(packed), texts, objects };
}

/** The step's outputs back in order, packed deltas as {@link WireDelta} objects. */
export function unpackStepOutputs(w: WireStepOutputs): (RequestOutput | WireDelta)[] {
  const out: (RequestOutput | WireDelta)[] = [];
  const p = w.packed;
  let i = 0, obj = 0, at = 0;
  while (i < p.length) {
    if (p[i] === -1) {
      out.push(w.objects[obj++]);
      i++;
      continue;
    }
    const requestId = p[i], n = p[i + 1];
    i += 2;
    const outputs: WireDelta["outputs"][number][] = [];
    for (let k = 0; k < n; k++) {
      const index = p[i], numTokens = p[i + 1], textLen = p[i + 2];
      i += 3;
      const tokenIdsDiff = Array.from(p.subarray(i, i + numTokens));
      i += numTokens;
      outputs.push({ index, textDiff: w.texts.slice(at, at + textLen), tokenIdsDiff, finishReason: null, stopReason: null, cumulativeLogprob: null });
      at += textLen;
    }
    out.push({ requestId, delta: true, outputs });
  }
  if (obj !== w.objects.length || at !== w.texts.length) throw new InternalError("executor worker: a step message that does not add up (a bug)");
  return out;
}

/**
 * The worker side of the step outputs: a streamed request's later non-final outputs go as deltas
 * (see {@link WireDelta}), except those carrying logprobs, logits or a parsed value; the step's
 * outputs are then packed (see {@link WireStepOutputs}).
 */
export class WireDeltaEncoder {
  /** Requests whose full output the caller holds. */
  readonly #sent = new Set<number>();

  encode(outputs: readonly RequestOutput[]): WireStepOutputs {
    return packStepOutputs(this.#deltas(outputs));
  }

  #deltas(outputs: readonly RequestOutput[]): (RequestOutput | WireDelta)[] {
    return outputs.map((o) => {
      if (o.finished) {
        this.#sent.delete(o.requestId);
        return o;
      }
      const plain = o.outputs.every((c) => c.logprobs == null && c.generationLogits == null && c.parsed === undefined);
      if (!plain || !this.#sent.has(o.requestId)) {
        if (plain) this.#sent.add(o.requestId);
        else this.#sent.delete(o.requestId);
        return o;
      }
      return {
        requestId: o.requestId,
        delta: true,
        outputs: o.outputs.map((c) => ({
          index: c.index,
          textDiff: c.textDiff ?? "",
          tokenIdsDiff: c.tokenIdsDiff ?? [],
          finishReason: c.finishReason,
          stopReason: c.stopReason,
          cumulativeLogprob: c.cumulativeLogprob,
        })),
      };
    });
  }

  /** A request that failed: its next output (if any) starts over in full. */
  forget(requestId: number): void {
    this.#sent.delete(requestId);
  }
}

/** The caller's side: rebuilds full outputs from the worker's deltas. */
export class WireDeltaDecoder {
  /** The last full output of each streamed request not yet final. */
  readonly #latest = new Map<number, RequestOutput>();

  decode(step: WireStepOutputs): RequestOutput[] {
    return unpackStepOutputs(step).map((w) => {
      if (!("delta" in w)) {
        if (w.finished) this.#latest.delete(w.requestId);
        else this.#latest.set(w.requestId, w);
        return w;
      }
      const prev = this.#latest.get(w.requestId);
      if (!prev) throw new InternalError(`executor worker: a delta output for request ${w.requestId} without its full output first (a bug)`);
      // Object literals, not spreads: this runs for every stream on every step.
      const outputs: CompletionOutput[] = [];
      for (const d of w.outputs) {
        const p = prev.outputs.length === 1 && prev.outputs[0].index === d.index ? prev.outputs[0] : prev.outputs.find((c) => c.index === d.index);
        outputs.push({
          index: d.index,
          text: (p?.text ?? "") + d.textDiff,
          tokenIds: p ? p.tokenIds.concat(d.tokenIdsDiff) : [...d.tokenIdsDiff],
          finishReason: d.finishReason,
          stopReason: d.stopReason,
          textDiff: d.textDiff,
          tokenIdsDiff: d.tokenIdsDiff,
          cumulativeLogprob: d.cumulativeLogprob,
          logprobs: null,
          generationLogits: null,
        });
      }
      const out: RequestOutput = {
        requestId: prev.requestId,
        prompt: prev.prompt,
        promptTokenIds: prev.promptTokenIds,
        outputs,
        finished: prev.finished,
        promptLogprobs: prev.promptLogprobs,
        contextLogits: prev.contextLogits,
      };
      this.#latest.set(w.requestId, out);
      return out;
    });
  }

  /** A request that ended without a final output (failed). */
  forget(requestId: number): void {
    this.#latest.delete(requestId);
  }
}

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
