/**
 * The server's one web-standard fetch handler (a hono app): OpenAI routes, /health, /metrics,
 * bearer-key auth, a body size cap, and errors in OpenAI's shape. Runtime-neutral: server.ts runs
 * it with Bun.serve or Deno.serve, and tests may call `fetch` directly.
 */
import { Hono } from "hono";
import type { LLM } from "./deps.ts";
import { chatCompletions } from "./chat.ts";
import { completions } from "./completions.ts";
import { errorResponse, HttpError, toHttpError } from "./errors.ts";
import { ServeState } from "./state.ts";

/** Options of {@link createServeApp}. */
export interface ServeAppOptions {
  readonly llm: LLM;
  /** Name clients send as `model` and /v1/models lists. @default "llmrt" */
  readonly modelName?: string;
  /** When set, /v1/* needs `Authorization: Bearer <apiKey>`. */
  readonly apiKey?: string;
  /** Requests that may wait beyond the executor's batch before 429. @default 256 */
  readonly maxQueue?: number;
  /** Largest request body. @default 8 MiB */
  readonly maxBodyBytes?: number;
  /** LoRA adapters clients may name as `model` (name → PEFT directory); the LLM needs `enableLora`. */
  readonly loraModules?: Readonly<Record<string, string>>;
  /**
   * Where the server's warnings go (a request's top-level fields it does not know and ignores, as vLLM logs
   * them). @default a line on stderr (`console.warn`)
   */
  readonly onWarning?: (message: string) => void;
}

/**
 * A fetch handler and the state behind it. `signal` (default `request.signal`) is what tells a
 * request that its client went away.
 */
export interface ServeApp {
  readonly fetch: (request: Request, signal?: AbortSignal) => Response | Promise<Response>;
  readonly state: ServeState;
}

/**
 * The body as JSON. The size cap counts bytes as they arrive, so a body sent without a
 * content-length (chunked) is cut off at the cap instead of read whole into memory first.
 */
async function readJson(req: Request, maxBytes: number): Promise<unknown> {
  const declared = Number(req.headers.get("content-length") ?? "0");
  const tooLarge = (): HttpError => new HttpError(413, `the request body exceeds ${maxBytes} bytes`, "invalid_request_error", null, "body_too_large");
  if (declared > maxBytes) throw tooLarge();
  const chunks: Uint8Array[] = [];
  let numBytes = 0;
  if (req.body) {
    const reader = req.body.getReader();
    for (let r = await reader.read(); !r.done; r = await reader.read()) {
      numBytes += r.value.byteLength;
      if (numBytes > maxBytes) {
        await reader.cancel().catch(() => {});
        throw tooLarge();
      }
      chunks.push(r.value);
    }
  }
  const bytes = new Uint8Array(numBytes);
  let at = 0;
  for (const c of chunks) {
    bytes.set(c, at);
    at += c.byteLength;
  }
  try {
    return JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    throw new HttpError(400, "the request body is not valid JSON", "invalid_request_error", null, "invalid_json");
  }
}

function sameKey(a: string, b: string): boolean {
  // Compares in time independent of where the keys differ.
  let diff = a.length ^ b.length;
  for (let i = 0; i < Math.max(a.length, b.length); i++) diff |= (a.charCodeAt(i) || 0) ^ (b.charCodeAt(i) || 0);
  return diff === 0;
}

/**
 * Builds the fetch handler of one server.
 *
 * @example
 * ```ts
 * const app = createServeApp({ llm, modelName: "kjv-llama" });
 * const res = await app.fetch(new Request("http://x/v1/models"));
 * ```
 */
export function createServeApp(o: ServeAppOptions): ServeApp {
  const state = new ServeState({
    llm: o.llm,
    modelName: o.modelName ?? "llmrt",
    maxQueue: o.maxQueue ?? 256,
    loraModules: o.loraModules,
    onWarning: o.onWarning,
  });
  const maxBodyBytes = o.maxBodyBytes ?? 8 * 1024 * 1024;
  const app = new Hono<{ Bindings: { signal?: AbortSignal } }>();
  const signalOf = (c: { env: { signal?: AbortSignal } | undefined; req: { raw: Request } }): AbortSignal => c.env?.signal ?? c.req.raw.signal;

  app.use("*", async (c, next) => {
    await next();
    state.metrics.httpResponses.inc({ route: c.req.routePath ?? "unknown", status: String(c.res.status) });
  });
  app.onError((e) => errorResponse(toHttpError(e)));
  app.notFound((c) => errorResponse(new HttpError(404, `no route ${c.req.method} ${new URL(c.req.url).pathname}`, "invalid_request_error", null, "not_found")));

  app.get("/health", (c) => state.draining ? c.json({ status: "draining" }, 503) : c.json({ status: "ok" }));
  app.get("/metrics", async () => new Response(await state.metrics.text(), { headers: { "content-type": state.metrics.contentType } }));

  app.use("/v1/*", async (c, next) => {
    if (o.apiKey !== undefined) {
      const auth = c.req.header("authorization") ?? "";
      const m = /^Bearer\s+(.+)$/i.exec(auth);
      if (!m || !sameKey(m[1].trim(), o.apiKey)) {
        throw new HttpError(401, "invalid or missing API key: send Authorization: Bearer <key>", "authentication_error", null, "invalid_api_key", {
          "www-authenticate": "Bearer",
        });
      }
    }
    await next();
  });

  // The base model, then each LoRA adapter (vLLM's shape: root = the adapter's path, parent = the base).
  const modelCard = (id: string): Record<string, unknown> => ({
    id,
    object: "model",
    created: state.created,
    owned_by: "llmrt",
    root: id === state.modelName ? state.modelName : state.loraModules[id],
    parent: id === state.modelName ? null : state.modelName,
    max_model_len: state.limits.maxSeqLen,
  });
  const served = (): string[] => [state.modelName, ...Object.keys(state.loraModules)];
  app.get("/v1/models", (c) => c.json({ object: "list", data: served().map(modelCard) }));
  app.get("/v1/models/:id{.+}", (c) => {
    const id = c.req.param("id");
    if (!served().includes(id)) throw new HttpError(404, `the model ${JSON.stringify(id)} does not exist`, "invalid_request_error", "model", "model_not_found");
    return c.json(modelCard(id));
  });
  app.post("/v1/completions", async (c) => {
    const arrival = performance.now();
    return await completions(state, await readJson(c.req.raw, maxBodyBytes), signalOf(c), arrival);
  });
  app.post("/v1/chat/completions", async (c) => {
    const arrival = performance.now();
    return await chatCompletions(state, await readJson(c.req.raw, maxBodyBytes), signalOf(c), arrival);
  });

  return { fetch: (req, signal) => app.fetch(req, { signal }), state };
}
