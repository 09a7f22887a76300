/**
 * A step trace of the worker proxy for performance work (`LLMRT_STEP_TRACE=FILE`): per step message
 * the worker's stats (batch, prefill / decode tokens, step, forward and idle ms), when the worker
 * posted it and when and how long this thread handled it (outputs → SSE events on a server); the
 * times requests were submitted; this thread's event-loop lag (a 2 ms timer's lateness); at close the
 * CPU time of the process's threads (Linux). Written as JSON when the proxy closes; off (null) unless
 * the variable is set. `bench/serve_trace.ts` summarizes one.
 */
import * as fs from "node:fs";
import process from "node:process";
import type { IterationStats } from "./config.ts";

/** Absolute time in ms, comparable across threads. */
export function wallMs(): number {
  return performance.timeOrigin + performance.now();
}

/** One step message as the caller's thread saw it. */
export interface TracedStep {
  /** When the worker posted it, when this thread started and ended handling it (absolute ms). */
  readonly sentAt: number;
  readonly recvAt: number;
  readonly doneAt: number;
  readonly stats: IterationStats;
  /** The worker's time to encode the step's outputs for the message, after `stats.stepMs` (ms). */
  readonly encodeMs: number;
}

/** The file's content. */
export interface StepTraceFile {
  readonly steps: TracedStep[];
  readonly submits: number[];
  /** [absolute ms, lateness ms] of each tick of the 2 ms lag timer that came more than 1 ms late. */
  readonly lag: [number, number][];
  readonly lagTicks: number;
  readonly threads: { name: string; cpuS: number }[];
}

/**
 * Collects the trace; `write()` puts it in the file.
 *
 * @example
 * ```ts
 * const trace = StepTrace.fromEnv(); // null unless LLMRT_STEP_TRACE is set
 * trace?.submitted();
 * trace?.write();
 * ```
 */
export class StepTrace {
  readonly #file: string;
  readonly #data: StepTraceFile = { steps: [], submits: [], lag: [], lagTicks: 0, threads: [] };
  readonly #timer: ReturnType<typeof setInterval>;
  #ticks = 0;

  private constructor(file: string) {
    this.#file = file;
    let last = performance.now();
    this.#timer = setInterval(() => {
      const now = performance.now();
      this.#ticks++;
      const late = now - last - 2;
      if (late > 1) this.#data.lag.push([performance.timeOrigin + now, late]);
      last = now;
    }, 2);
    (this.#timer as { unref?: () => void }).unref?.();
  }

  /** A trace when `LLMRT_STEP_TRACE` names a file, else null. */
  static fromEnv(): StepTrace | null {
    const file = process.env.LLMRT_STEP_TRACE;
    return file ? new StepTrace(file) : null;
  }

  submitted(): void {
    this.#data.submits.push(wallMs());
  }

  step(sentAt: number, recvAt: number, stats: IterationStats, encodeMs = 0): void {
    this.#data.steps.push({ sentAt, recvAt, doneAt: wallMs(), stats, encodeMs });
  }

  /** Stops the lag timer and writes the file (a failure to write is reported on stderr, not thrown). */
  write(): void {
    clearInterval(this.#timer);
    try {
      fs.writeFileSync(this.#file, JSON.stringify({ ...this.#data, lagTicks: this.#ticks, threads: threadCpu() }));
    } catch (e) {
      process.stderr.write(`[llmrt] LLMRT_STEP_TRACE: could not write ${this.#file}: ${String(e)}\n`);
    }
  }
}

/** CPU seconds (user + system) per thread of this process, from /proc (empty elsewhere). */
function threadCpu(): { name: string; cpuS: number }[] {
  const out: { name: string; cpuS: number }[] = [];
  try {
    for (const tid of fs.readdirSync("/proc/self/task")) {
      const stat = fs.readFileSync(`/proc/self/task/${tid}/stat`, "utf8");
      const close = stat.lastIndexOf(")");
      const name = stat.slice(stat.indexOf("(") + 1, close);
      const f = stat.slice(close + 2).split(" "); // f[0] is field 3 (state); utime, stime are fields 14, 15
      const cpuS = (Number(f[11]) + Number(f[12])) / 100;
      if (cpuS > 0) out.push({ name: `${tid}:${name}`, cpuS });
    }
  } catch {
    // not Linux
  }
  return out;
}
