/**
 * HTTP errors in OpenAI's shape (`{ error: { message, type, param, code } }`) and the mapping from
 * llmrt's error kinds to statuses.
 */
import { LlmrtError } from "./deps.ts";

/** An error the server answers with `status`; `param` names the request field at fault. */
export class HttpError extends Error {
  override name = "HttpError";
  constructor(
    readonly status: number,
    message: string,
    readonly type: string = "invalid_request_error",
    readonly param: string | null = null,
    readonly code: string | null = null,
    readonly headers: Readonly<Record<string, string>> = {},
  ) {
    super(message);
  }
}

/** OpenAI's error body. */
export interface OpenAiErrorBody {
  error: { message: string; type: string; param: string | null; code: string | null };
}

/** `maxTokens` → `max_tokens`; drops a `SamplingParams.` prefix. */
export function snakeField(field: string): string {
  return field.replace(/^SamplingParams\./, "").replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}

/** HTTP status of each llmrt error kind. */
const STATUS_BY_KIND: Readonly<Record<string, [number, string]>> = {
  validation: [400, "invalid_request_error"],
  unsupported: [400, "invalid_request_error"],
  resource: [413, "invalid_request_error"],
  format: [500, "server_error"],
  aborted: [499, "request_aborted"],
  disposed: [503, "service_unavailable"],
  worker: [503, "service_unavailable"],
  request_failed: [500, "server_error"],
  cuda: [500, "server_error"],
  native_library: [500, "server_error"],
  internal: [500, "server_error"],
};

/** Any thrown value as an HttpError (an llmrt error by its kind; anything else is a 500). */
export function toHttpError(e: unknown): HttpError {
  if (e instanceof HttpError) return e;
  if (e instanceof LlmrtError) {
    const [status, type] = STATUS_BY_KIND[e.kind] ?? [500, "server_error"];
    const param = e.field ? snakeField(e.field) : null;
    // "SamplingParams.minTokens: ..." reads as the request field: "min_tokens: ...".
    const prefix = e.field ? `SamplingParams.${e.field}:` : null;
    let message = prefix && e.message.startsWith(prefix) ? `${param}:${e.message.slice(prefix.length)}` : e.message;
    // Several conflicting fields (data.fields): each named as the request field in the rest of the message too.
    const fields = e.data?.fields;
    if (Array.isArray(fields)) {
      for (const f of fields) if (typeof f === "string") message = message.replace(new RegExp(`\\b${f}\\b`, "g"), snakeField(f));
    }
    return new HttpError(status, message, type, param, e.kind);
  }
  const message = e instanceof Error ? e.message : String(e);
  return new HttpError(500, message, "server_error", null, "internal");
}

/** The OpenAI error body of an HttpError. */
export function errorBody(e: HttpError): OpenAiErrorBody {
  return { error: { message: e.message, type: e.type, param: e.param, code: e.code } };
}

/** A JSON error response. */
export function errorResponse(e: HttpError): Response {
  return new Response(JSON.stringify(errorBody(e)), {
    status: e.status,
    headers: { "content-type": "application/json", ...e.headers },
  });
}
