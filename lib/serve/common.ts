/** What the completion and chat routes share: the model check, response ids, the tokenizer, SSE of a generation. */
import { HttpError } from "./errors.ts";
import type { Generation } from "./generation.ts";
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

/** The SSE response of a generation: cancelling it aborts the generation. */
export function sseResponseOf(events: AsyncGenerator<unknown>, g: Generation): Response {
  return sseResponse(events, () => {
    g.abort();
    // A stream cancelled before its first read never ran its generator: end the generation here.
    g.end("aborted");
  });
}
