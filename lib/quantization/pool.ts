/**
 * A pool of Web Workers running the tasks of calibration-based quantization (tasks.ts) beside the
 * calling thread, synchronously: `run()` posts a batch to every worker, takes tasks from a shared
 * counter itself too, and blocks (Atomics.wait) until every worker has drained it. Inputs and
 * outputs are typed arrays in shared memory. Each task's output is computed the same way on any
 * thread, so results do not depend on the number of threads.
 */
import { WorkerError } from "../util/errors.ts";
import { type AlgoBatch, runAlgoTask, type TaskRunner } from "./tasks.ts";

// Control words: next task, workers done with the batch, error flag, error text length.
const NEXT = 0, DONE = 1, ERR = 2, ERR_LEN = 3, ERR_BYTES = 4096;

/** What a worker receives per batch. */
interface BatchMessage {
  readonly module: string;
  readonly ctl: Int32Array;
  readonly err: Uint8Array;
  readonly batch: AlgoBatch;
  readonly numTasks: number;
}

/** This module's URL: workers import it (by URL, after starting from a blob) to run tasks. */
const MODULE_URL: string = import.meta.url;

// The worker entry: plain JavaScript with no static imports (Deno would type-check a static graph
// in every worker it starts); it imports this module by the URL each batch carries.
const WORKER_SOURCE = `
let mod = null, loading = null;
const queue = [];
function fail(msg, e) {
  const text = new TextEncoder().encode("quantization worker could not load: " + (e && e.message ? e.message : String(e)));
  const n = Math.min(text.length, msg.err.length);
  msg.err.set(text.subarray(0, n));
  Atomics.store(msg.ctl, ${ERR_LEN}, n);
  Atomics.store(msg.ctl, ${ERR}, 1);
  Atomics.add(msg.ctl, ${DONE}, 1);
  Atomics.notify(msg.ctl, ${DONE});
}
self.onmessage = (e) => {
  if (mod) return mod.workerBatch(e.data);
  queue.push(e.data);
  if (loading) return;
  loading = import(e.data.module).then(
    (m) => { mod = m; for (const msg of queue.splice(0)) m.workerBatch(msg); },
    (err) => { for (const msg of queue.splice(0)) fail(msg, err); },
  );
};`;

let workerUrl: string | null = null;

/** Takes tasks of the batch from the shared counter until none are left. */
function drain(batch: AlgoBatch, numTasks: number, ctl: Int32Array): void {
  for (;;) {
    const t = Atomics.add(ctl, NEXT, 1);
    if (t >= numTasks) return;
    runAlgoTask(batch, t);
  }
}

/** A worker's side of one batch (called by the worker entry). */
export function workerBatch(msg: BatchMessage): void {
  try {
    drain(msg.batch, msg.numTasks, msg.ctl);
  } catch (e) {
    const text = new TextEncoder().encode(e instanceof Error ? `${e.name}: ${e.message}` : String(e));
    const n = Math.min(text.length, msg.err.length);
    msg.err.set(text.subarray(0, n));
    Atomics.store(msg.ctl, ERR_LEN, n);
    Atomics.store(msg.ctl, ERR, 1);
    Atomics.store(msg.ctl, NEXT, msg.numTasks); // the others stop taking tasks
  }
  Atomics.add(msg.ctl, DONE, 1);
  Atomics.notify(msg.ctl, DONE);
}

/**
 * Runs quantization tasks on `threads` threads: this one and threads − 1 workers. Close it when done
 * (`using` works too).
 *
 * @example
 * ```ts
 * using pool = QuantPool.create(8);
 * const q = quantizeGptq(W, N, K, grid, hessian, 0.01, pool);
 * ```
 */
export class QuantPool implements TaskRunner, Disposable {
  readonly #workers: Worker[];
  readonly #ctl = new Int32Array(new SharedArrayBuffer(16));
  readonly #err = new Uint8Array(new SharedArrayBuffer(ERR_BYTES));
  private constructor(readonly threads: number) {
    if (!workerUrl) workerUrl = URL.createObjectURL(new Blob([WORKER_SOURCE], { type: "text/javascript" }));
    this.#workers = Array.from({ length: threads - 1 }, () => new Worker(workerUrl!, { type: "module" }));
    for (const w of this.#workers) (w as unknown as { unref?: () => void }).unref?.();
  }

  /** A pool of `threads` threads in all (1: no workers, tasks run on the calling thread). */
  static create(threads: number): QuantPool {
    if (!Number.isInteger(threads) || threads < 1) throw new WorkerError(`QuantPool: threads must be a positive integer, got ${threads}`);
    return new QuantPool(threads);
  }

  /** Runs tasks 0 … numTasks − 1 of `batch` over the pool's threads; returns when all are done. */
  run(batch: AlgoBatch, numTasks: number): void {
    if (this.#workers.length === 0 || numTasks <= 1) {
      for (let t = 0; t < numTasks; t++) runAlgoTask(batch, t);
      return;
    }
    const ctl = this.#ctl;
    Atomics.store(ctl, NEXT, 0);
    Atomics.store(ctl, DONE, 0);
    Atomics.store(ctl, ERR, 0);
    const msg: BatchMessage = { module: MODULE_URL, ctl, err: this.#err, batch, numTasks };
    for (const w of this.#workers) w.postMessage(msg);
    let mine: unknown = null;
    try {
      drain(batch, numTasks, ctl);
    } catch (e) {
      mine = e;
      Atomics.store(ctl, NEXT, numTasks);
    }
    // Workers still write shared memory until they report: wait for all of them, even after an error.
    for (let done = Atomics.load(ctl, DONE); done < this.#workers.length; done = Atomics.load(ctl, DONE)) Atomics.wait(ctl, DONE, done, 1000);
    if (mine) throw mine;
    if (Atomics.load(ctl, ERR)) {
      const text = new TextDecoder().decode(this.#err.slice(0, Atomics.load(ctl, ERR_LEN)));
      throw new WorkerError(`quantization task '${batch.kind}' failed in a worker: ${text}`);
    }
  }

  /** Terminates the workers. */
  close(): void {
    for (const w of this.#workers.splice(0)) w.terminate();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
