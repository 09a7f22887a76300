/**
 * Runs the fetch handler with Bun.serve under Bun and Deno.serve under Deno, and shuts it down
 * gracefully: stop accepting, let requests in flight finish until a deadline, abort the rest.
 */
import { createServeApp, type ServeApp, type ServeAppOptions } from "./app.ts";
import { UnsupportedError } from "../util/errors.ts";

/** Options of {@link startServer}. */
export interface ServerOptions extends ServeAppOptions {
  /** @default "127.0.0.1" */
  readonly hostname?: string;
  /** 0 picks a free port. @default 8000 */
  readonly port?: number;
}

/** A listening server. */
export interface RunningServer {
  /** `http://host:port` */
  readonly url: string;
  readonly port: number;
  readonly app: ServeApp;
  /**
   * Graceful shutdown: new requests get 503 and the listener closes; requests in flight get
   * `deadlineMs` to finish, then are aborted (finish reason "abort"). Idempotent.
   */
  close(deadlineMs?: number): Promise<void>;
}

interface BunServer {
  readonly port: number;
  stop(closeActiveConnections?: boolean): Promise<void> | void;
}
interface BunApi {
  serve(o: { hostname: string; port: number; idleTimeout: number; fetch: (r: Request) => Response | Promise<Response> }): BunServer;
}
interface DenoServer {
  readonly addr: { port: number };
  readonly finished: Promise<void>;
  shutdown(): Promise<void>;
}
interface DenoApi {
  serve(
    o: { hostname: string; port: number; onListen?: () => void },
    handler: (r: Request, info: { completed: Promise<void> }) => Response | Promise<Response>,
  ): DenoServer;
}

function withTimeout(p: Promise<unknown>, ms: number): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([
    p.then(() => {}, () => {}),
    new Promise<void>((resolve) => timer = setTimeout(resolve, ms)),
  ]).finally(() => clearTimeout(timer));
}

/**
 * Starts serving `options.llm` over HTTP.
 *
 * @example
 * ```ts
 * const server = await startServer({ llm, port: 0, modelName: "kjv-llama" });
 * console.log(server.url); // http://127.0.0.1:43121
 * await server.close(10_000);
 * ```
 */
export function startServer(options: ServerOptions): Promise<RunningServer> {
  const app = createServeApp(options);
  const hostname = options.hostname ?? "127.0.0.1";
  const port = options.port ?? 8000;
  const bun = (globalThis as { Bun?: BunApi }).Bun;
  const deno = (globalThis as { Deno?: DenoApi }).Deno;
  let stopListener: () => Promise<void>;
  let boundPort: number;
  if (bun) {
    // idleTimeout 0: a stream may stay silent while its request waits in the queue.
    const s = bun.serve({ hostname, port, idleTimeout: 0, fetch: (req) => app.fetch(req, req.signal) });
    boundPort = s.port;
    stopListener = async () => {
      await s.stop(false);
    };
  } else if (deno) {
    // request.signal reports a client that went away while its request runs (a non-streaming one
    // answers only at the end); `completed` rejects for a response that could not be delivered.
    // Deno's legacy mode also aborts request.signal after every successful response (and warns once;
    // deno.json opts out with "no-legacy-abort"): a generation stops listening when it ends, so that
    // late abort finds nothing to abort.
    const s = deno.serve({ hostname, port, onListen: () => {} }, (req, info) => {
      const ac = new AbortController();
      info.completed.catch(() => ac.abort());
      return app.fetch(req, AbortSignal.any([ac.signal, req.signal]));
    });
    boundPort = s.addr.port;
    stopListener = () => s.shutdown();
  } else {
    return Promise.reject(new UnsupportedError("startServer: needs Bun or Deno"));
  }
  let closing: Promise<void> | null = null;
  const host = hostname.includes(":") ? `[${hostname}]` : hostname;
  return Promise.resolve({
    url: `http://${host}:${boundPort}`,
    port: boundPort,
    app,
    close(deadlineMs = 30_000): Promise<void> {
      closing ??= (async () => {
        app.state.startDraining();
        const stopped = stopListener();
        await withTimeout(app.state.whenIdle(), deadlineMs);
        app.state.abortAll();
        await withTimeout(app.state.whenIdle(), 5_000);
        await withTimeout(stopped, 5_000);
      })();
      return closing;
    },
  });
}
