/**
 * `LLMRT_TRACE_FFI`: the first tool after a crash. Wraps every native function of a library when
 * it is opened:
 * - `LLMRT_TRACE_FFI=1` (or `log`): one stderr line per call, written before the call (so the last
 *   line names the call that crashed) and its status after.
 * - `LLMRT_TRACE_FFI=time`: counts calls and time per function; prints a table at process exit
 *   (or on demand: `ffiTimingReport()`).
 * Unset or `0`: no wrapping, no cost.
 */
import process from "node:process";

/** How native calls are traced. */
export type TraceMode = "off" | "log" | "time";

/** Reads `LLMRT_TRACE_FFI`. */
export function traceMode(): TraceMode {
  const v = (process.env.LLMRT_TRACE_FFI ?? "").trim().toLowerCase();
  if (v === "" || v === "0" || v === "off" || v === "false") return "off";
  return v === "time" ? "time" : "log";
}

/** Formats one argument for a trace line: bigint in hex, buffers by size, no contents. */
export function formatArg(a: unknown): string {
  if (typeof a === "bigint") return `0x${a.toString(16)}`;
  if (a === null || a === undefined) return "NULL";
  if (ArrayBuffer.isView(a)) return `buf[${a.byteLength}]`;
  return String(a);
}

interface Timing {
  calls: number;
  ms: number;
}
const timings = new Map<string, Timing>();
let reportInstalled = false;

/** The `LLMRT_TRACE_FFI=time` table so far: calls, total ms and ns per call for each function. */
export function ffiTimingReport(): string {
  const rows = [...timings.entries()].sort((a, b) => b[1].ms - a[1].ms);
  const lines = rows.map(([name, t]) =>
    `${name.padEnd(40)} ${String(t.calls).padStart(10)} calls ${t.ms.toFixed(3).padStart(12)} ms ${(t.ms * 1e6 / t.calls).toFixed(0).padStart(9)} ns/call`
  );
  return `[llmrt ffi] time per native function\n${lines.join("\n")}\n`;
}

function installReport(): void {
  if (reportInstalled) return;
  reportInstalled = true;
  // Printed at process exit (bun run, deno run); `bun test` skips exit handlers, so call
  // ffiTimingReport() there.
  process.on("exit", () => process.stderr.write(ffiTimingReport()));
}

type AnyFn = (...args: unknown[]) => unknown;

/** Wraps each function of `symbols` (a library called `library`) for `mode`; returns a new object. */
export function wrapForTrace(
  library: string,
  symbols: Record<string, AnyFn | undefined>,
  mode: Exclude<TraceMode, "off">,
): Record<string, AnyFn | undefined> {
  const out: Record<string, AnyFn | undefined> = {};
  if (mode === "time") installReport();
  for (const [name, fn] of Object.entries(symbols)) {
    if (!fn) {
      out[name] = undefined;
      continue;
    }
    if (mode === "log") {
      out[name] = (...args: unknown[]): unknown => {
        process.stderr.write(`[llmrt ffi] ${name}(${args.map(formatArg).join(", ")})`);
        const t0 = performance.now();
        const r = fn(...args);
        process.stderr.write(` -> ${formatArg(r)} ${((performance.now() - t0) * 1000).toFixed(1)}us\n`);
        return r;
      };
    } else {
      const key = `${library}:${name}`;
      out[name] = (...args: unknown[]): unknown => {
        const t0 = performance.now();
        const r = fn(...args);
        const t = timings.get(key) ?? { calls: 0, ms: 0 };
        t.calls++;
        t.ms += performance.now() - t0;
        timings.set(key, t);
        return r;
      };
    }
  }
  return out;
}
