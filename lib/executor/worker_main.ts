/**
 * Entry point of the executor's Web Worker (Bun and Deno): builds an ExecutorLoop from the init
 * message and relays requests in and outputs out, one message per step. Any error it cannot pin on
 * one request is reported as "fatal" and fails every request in flight on the caller's side.
 */
import { Engine } from "../builder/engine.ts";
import { LlmTokenizer } from "../tokenizer/tokenizer.ts";
import { Session } from "../runtime/session.ts";
import { InternalError } from "../util/errors.ts";
import { parseWith } from "../util/validate.ts";
import { ExecutorConfigSchema } from "./config.ts";
import { ExecutorLoop } from "./executor_loop.ts";
import { fromWireRequest, type FromWorker, toWireError, type ToWorker, WireDeltaEncoder } from "./wire.ts";

interface WorkerScope {
  onmessage: ((e: MessageEvent<ToWorker>) => void) | null;
  postMessage(message: FromWorker): void;
  addEventListener(type: "unhandledrejection" | "error", listener: (e: Event & { reason?: unknown; error?: unknown }) => void): void;
  close(): void;
}

const scope = globalThis as unknown as WorkerScope;
let engine: Engine | null = null;
let session: Session | null = null;
let loop: ExecutorLoop | null = null;
let draftEngine: Engine | null = null;
const deltas = new WireDeltaEncoder();

function post(m: FromWorker): void {
  scope.postMessage(m);
}

function handle(msg: ToWorker): void {
  switch (msg.type) {
    case "init": {
      try {
        const { init } = msg;
        const config = parseWith(ExecutorConfigSchema, init.config, "ExecutorConfig");
        engine = Engine.fromDir(init.engineDir);
        session = Session.fromSerializedEngine(engine, { backend: init.backend, ...init.tp });
        const tokenizer = init.tokenizerDir ? LlmTokenizer.fromDir(init.tokenizerDir) : null;
        draftEngine = init.draftEngineDir ? Engine.fromDir(init.draftEngineDir) : null;
        loop = new ExecutorLoop(session, tokenizer, config, {
          emit: (outputs, failures, stats) => {
            const t0 = performance.now();
            const encoded = deltas.encode(outputs);
            const t1 = performance.now();
            post({
              type: "step",
              outputs: encoded,
              failures: failures.map((f) => {
                deltas.forget(f.requestId);
                return { requestId: f.requestId, error: toWireError(f.error), ...(f.rejected ? { rejected: true } : {}) };
              }),
              stats,
              sentAt: performance.timeOrigin + t1,
              encodeMs: t1 - t0,
            });
          },
        }, { draftEngine });
        post({ type: "ready", limits: loop.limits });
      } catch (e) {
        post({ type: "initError", error: toWireError(e) });
      }
      return;
    }
    case "submit":
      if (!loop) throw new InternalError("executor worker: submit before init");
      loop.submit(msg.id, fromWireRequest(msg.request));
      return;
    case "abort":
      loop?.abort(msg.id);
      return;
    case "shutdown":
      loop?.shutdown();
      session?.dispose();
      engine?.dispose();
      draftEngine?.dispose();
      loop = null;
      post({ type: "closed" });
      scope.close();
      return;
  }
}

scope.onmessage = (e) => {
  try {
    handle(e.data);
  } catch (err) {
    post({ type: "fatal", error: toWireError(err) });
  }
};
scope.addEventListener("unhandledrejection", (e) => {
  e.preventDefault();
  post({ type: "fatal", error: toWireError(e.reason) });
});
