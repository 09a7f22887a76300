/**
 * The one error family of llmrt. Every error a caller can act on is an `LlmrtError` with a `kind`
 * (the server maps kinds to HTTP statuses; the executor's worker wire carries kind and fields
 * intact). Library code throws these: never exits, never bare asserts, never a plain `Error` for a
 * condition a caller can act on.
 *
 * This file is the bottom of the layer graph: it imports nothing.
 *
 * @example
 * ```ts
 * try { await llm.generate(prompt, { temperature: -1 }); } catch (e) {
 *   if (e instanceof LlmrtError && e.kind === "validation") console.log(e.message);
 * }
 * ```
 */

/**
 * What went wrong, as a caller would sort it:
 * - `validation`: bad user input (an options field, a request, a CLI flag); names the field and value.
 * - `format`: a file that is not what it claims (safetensors, engine, config, tokenizer, template).
 * - `resource`: a size or amount that cannot be had (memory, prompt bytes, queue full).
 * - `unsupported`: valid input that this build does not implement (yet).
 * - `cuda`: a non-success status from the CUDA driver, NVRTC, cuBLASLt or NCCL.
 * - `native_library`: a native library that could not be opened or the C shim that failed to compile.
 * - `disposed`: use of an object after `dispose()`.
 * - `aborted`: a request that was aborted.
 * - `request_failed`: a request that failed while running (non-finite logits, a throwing callback).
 * - `worker`: the executor's worker thread or a rank worker died.
 * - `internal`: a broken invariant inside llmrt (a bug: please report it).
 */
export type ErrorKind =
  | "validation"
  | "format"
  | "resource"
  | "unsupported"
  | "cuda"
  | "native_library"
  | "disposed"
  | "aborted"
  | "request_failed"
  | "worker"
  | "internal";

/** Every kind, for exhaustive mappings (HTTP statuses, tests). */
export const ERROR_KINDS: readonly ErrorKind[] = [
  "validation",
  "format",
  "resource",
  "unsupported",
  "cuda",
  "native_library",
  "disposed",
  "aborted",
  "request_failed",
  "worker",
  "internal",
];

/** Structured extras an error may carry (all structured-clonable). */
export interface ErrorDetails {
  /** The option or request field at fault (`validation`, `resource`). */
  readonly field?: string;
  /** The offending value, as given (`validation`, `resource`). */
  readonly value?: unknown;
  /** The file at fault (`format`). */
  readonly path?: string;
  /** Any further machine-readable facts (a CUDA status code, bytes asked for, ...). */
  readonly data?: Readonly<Record<string, unknown>>;
}

/** Base of every llmrt error. `kind` says what went wrong; `name` is the concrete class. */
export class LlmrtError extends Error {
  override name = "LlmrtError";
  readonly field?: string;
  readonly value?: unknown;
  readonly path?: string;
  readonly data?: Readonly<Record<string, unknown>>;
  constructor(readonly kind: ErrorKind, message: string, details: ErrorDetails = {}, options?: { cause?: unknown }) {
    super(message, options);
    if (details.field !== undefined) this.field = details.field;
    if (details.value !== undefined) this.value = details.value;
    if (details.path !== undefined) this.path = details.path;
    if (details.data !== undefined) this.data = details.data;
  }
}

/**
 * Bad user input: a field of an options object, config file or request. Names the field and value;
 * `data.fields` lists every field at fault when several conflict.
 */
export class ValidationError extends LlmrtError {
  override name = "ValidationError";
  constructor(message: string, field?: string, value?: unknown, data?: Readonly<Record<string, unknown>>) {
    super("validation", message, { field, value, data });
  }
}

/** A file (safetensors, engine, config, tokenizer) that cannot be read as what it claims to be; `field` and `value` name a bad entry in it. */
export class FormatError extends LlmrtError {
  override name = "FormatError";
  constructor(message: string, path?: string, field?: string, value?: unknown) {
    super("format", message, { path, field, value });
  }
}

/** A size that cannot be had: names the field, the amount asked for and the limit. */
export class ResourceError extends LlmrtError {
  override name = "ResourceError";
  constructor(message: string, field?: string, value?: unknown, data?: Readonly<Record<string, unknown>>) {
    super("resource", message, { field, value, data });
  }
}

/** Valid input that this build does not implement (yet); names the feature. */
export class UnsupportedError extends LlmrtError {
  override name = "UnsupportedError";
  constructor(message: string, field?: string, value?: unknown) {
    super("unsupported", message, { field, value });
  }
}

/** Use of an object (a session, a native handle, an executor) after it was disposed. */
export class DisposedError extends LlmrtError {
  override name = "DisposedError";
  constructor(what: string) {
    super("disposed", `${what}: used after dispose() (it was already disposed)`, { data: { what } });
  }
}

/** A request that was aborted (by `abort()`, an AbortSignal, a client disconnect or shutdown). */
export class AbortedError extends LlmrtError {
  override name = "AbortedError";
  constructor(message = "the request was aborted") {
    super("aborted", message);
  }
}

/** A request that failed while it ran; the message says why (non-finite logits, a throwing callback, ...). */
export class RequestFailedError extends LlmrtError {
  override name = "RequestFailedError";
  constructor(message: string, options?: { cause?: unknown }) {
    super("request_failed", message, {}, options);
  }
}

/** A worker (the executor's thread, a tensor-parallel rank) that died or could not start. */
export class WorkerError extends LlmrtError {
  override name = "WorkerError";
  constructor(message: string, options?: { cause?: unknown }) {
    super("worker", message, {}, options);
  }
}

/** A broken invariant inside llmrt: a bug, not bad input. */
export class InternalError extends LlmrtError {
  override name = "InternalError";
  constructor(message: string) {
    super("internal", message);
  }
}

/** An error as structured-clonable data (crosses `postMessage` and process boundaries). */
export interface SerializedError {
  readonly kind: ErrorKind;
  readonly name: string;
  readonly message: string;
  readonly field?: string;
  readonly value?: unknown;
  readonly path?: string;
  readonly data?: Readonly<Record<string, unknown>>;
}

function cloneable(v: unknown): unknown {
  try {
    structuredClone(v);
    return v;
  } catch {
    return showValue(v);
  }
}

/** Serializes any thrown value; a non-llmrt error becomes kind `internal` with its name kept. */
export function serializeError(e: unknown): SerializedError {
  if (e instanceof LlmrtError) {
    return {
      kind: e.kind,
      name: e.name,
      message: e.message,
      ...(e.field !== undefined ? { field: e.field } : {}),
      ...(e.value !== undefined ? { value: cloneable(e.value) } : {}),
      ...(e.path !== undefined ? { path: e.path } : {}),
      ...(e.data !== undefined ? { data: cloneable(e.data) as Record<string, unknown> } : {}),
    };
  }
  if (e instanceof Error) return { kind: "internal", name: e.name, message: e.message };
  return { kind: "internal", name: "Error", message: String(e) };
}

/**
 * Rebuilds an error from its serialized form: the same `kind`, `name`, message and fields; an
 * `instanceof` check against the concrete class holds for the classes of this file.
 */
export function deserializeError(s: SerializedError): LlmrtError {
  const revive = revivers.get(s.name);
  if (revive) return revive(s);
  let e: LlmrtError;
  switch (s.name) {
    case "ValidationError":
      e = new ValidationError(s.message, s.field, s.value, s.data);
      break;
    case "FormatError":
      e = new FormatError(s.message, s.path);
      break;
    case "ResourceError":
      e = new ResourceError(s.message, s.field, s.value, s.data);
      break;
    case "UnsupportedError":
      e = new UnsupportedError(s.message, s.field, s.value);
      break;
    case "AbortedError":
      e = new AbortedError(s.message);
      break;
    case "RequestFailedError":
      e = new RequestFailedError(s.message);
      break;
    case "WorkerError":
      e = new WorkerError(s.message);
      break;
    case "DisposedError":
      e = new DisposedError(String(s.data?.what ?? "object"));
      break;
    case "InternalError":
      e = new InternalError(s.message);
      break;
    default:
      e = new LlmrtError(s.kind, s.message, { field: s.field, value: s.value, path: s.path, data: s.data });
      e.name = s.name;
  }
  return e;
}

const revivers = new Map<string, (s: SerializedError) => LlmrtError>();

/**
 * Lets a higher layer rebuild its own error class from the wire (ffi/errors.ts registers
 * `CudaError` and `NativeLibraryError`), so `instanceof` holds across the worker boundary.
 */
export function registerErrorReviver(name: string, revive: (s: SerializedError) => LlmrtError): void {
  revivers.set(name, revive);
}

/** Shows a value in an error message, shortened so a huge value cannot flood the message. */
export function showValue(value: unknown): string {
  let s: string;
  try {
    // NaN and ±Infinity show as themselves (JSON would write null), at the top level or inside a container.
    s = typeof value === "string"
      ? JSON.stringify(value)
      : typeof value === "bigint"
      ? `${value}n`
      : typeof value === "number"
      ? String(value)
      : JSON.stringify(value, (_k, v) => (typeof v === "number" && !Number.isFinite(v) ? `\u0000${v}\u0000` : v))?.replace(/"\\u0000([^"]*)\\u0000"/g, "$1") ??
        String(value);
  } catch {
    s = String(value);
  }
  return s.length > 120 ? `${s.slice(0, 117)}...` : s;
}
