/** What the completion and chat routes share: the model check, response ids, the tokenizer, SSE of a generation. */
import { errorBody, HttpError, toHttpError } from "./errors.ts";
import type { Generation, GenerationEvent } from "./generation.ts";
import { sseResponse } from "./sse.ts";
import type { ServeState } from "./state.ts";

/** A LoRA adapter a request runs with (its served name and PEFT directory). */
export interface ServedLora {
  readonly name: string;
  readonly path: string;
}

/**
 * Checks the `model` field against the served name and the LoRA adapters (`--lora-modules`): the
 * adapter a request names, undefined for the base model; 404 for any other name.
 */
export function checkModel(state: ServeState, model: string | null | undefined): ServedLora | undefined {
  if (model == null || model === state.modelName) return undefined;
  const path = Object.hasOwn(state.loraModules, model) ? state.loraModules[model] : undefined;
  if (path !== undefined) return { name: model, path };
  const served = [state.modelName, ...Object.keys(state.loraModules)].map((n) => JSON.stringify(n)).join(", ");
  throw new HttpError(
    404,
    `the model ${JSON.stringify(model)} does not exist; this server serves ${served}`,
    "invalid_request_error",
    "model",
    "model_not_found",
  );
}

/** Reports a request's ignored top-level fields (`ignoredFields`) once, naming the route and the fields. */
export function warnIgnored(state: ServeState, route: string, fields: readonly string[]): void {
  if (fields.length > 0) state.warn(`${route}: fields present in the request but ignored: ${fields.join(", ")}`);
}

/** A fresh response id. */
export function responseId(prefix: string): string {
  return `${prefix}-${crypto.randomUUID().replaceAll("-", "")}`;
}

/** The LLM's tokenizer (400 when the server was started without one). */
export function tokenizerOf(state: ServeState): NonNullable<ServeState["llm"]["tokenizer"]> {
  const tok = state.llm.tokenizer;
  if (!tok) throw new HttpError(400, "this server was started without a tokenizer", "invalid_request_error", null, "no_tokenizer");
  return tok;
}

/** How a route turns a generation into SSE events (each a JSON text). */
export interface StreamWriter {
  /** Events before any output (the role chunk, echoed prompts). */
  start?(send: (json: string) => void): void;
  /** The chunk of one prompt's new outputs, or null when it carries nothing. */
  event(ev: GenerationEvent): string | null;
  /** Events after the last output (usage). */
  end?(send: (json: string) => void): void;
}

/**
 * The SSE response of a generation: its outputs are written as the executor produces them (see
 * sse.ts); a failed request ends the stream with an error event; cancelling it aborts the generation.
 */
export function sseResponseOf(g: Generation, w: StreamWriter): Response {
  let started = false;
  const fail = (e: unknown, send: (json: string) => void): true => {
    send(JSON.stringify(errorBody(toHttpError(e))));
    return true;
  };
  return sseResponse({
    subscribe: (wake) => g.listen(wake),
    drain(send): boolean {
      try {
        if (!started) {
          started = true;
          w.start?.(send);
        }
        const settled = g.settled;
        g.take((ev) => {
          const json = w.event(ev);
          if (json !== null) send(json);
        });
        const e = g.conclude();
        if (e) return fail(e, send);
        if (!settled) return false;
        w.end?.(send);
        return true;
      } catch (e) {
        g.abort();
        g.end("failed");
        return fail(e, send);
      }
    },
    onCancel(): void {
      g.abort();
      g.end("aborted");
    },
  });
}
