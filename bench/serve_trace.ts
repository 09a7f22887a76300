/**
 * Summarizes an LLMRT_STEP_TRACE file (lib/executor/step_trace.ts) of a server run, per time window
 * (bench/serve_compare.ts prints one `WINDOW start end` per serve rep):
 *
 *   bun bench/serve_trace.ts FILE [--windows START:END,START:END,...]
 *
 * Per window: wall time split into the worker's steps (forward pass vs its host work) and its idle
 * time between steps; steps by kind (decode-only vs with prefill) with mean batch, step and forward
 * ms; the main thread's handling of step messages (outputs → SSE events) and the message latency
 * from the worker; event-loop lag; request submits. Then the process's threads' CPU seconds.
 */
import * as fs from "node:fs";
import process from "node:process";
import type { StepTraceFile, TracedStep } from "../lib/executor/step_trace.ts";

const args = process.argv.slice(2);
if (!args[0]) throw new Error("usage: bun bench/serve_trace.ts FILE [--windows START:END,...]");
const t = JSON.parse(fs.readFileSync(args[0], "utf8")) as StepTraceFile;
const wi = args.indexOf("--windows");
const windows: [number, number][] = wi >= 0
  ? args[wi + 1].split(",").map((w) => w.split(":").map(Number) as [number, number])
  : [[t.steps[0]?.recvAt ?? 0, t.steps.at(-1)?.doneAt ?? 0]];
const f = (x: number, d = 1): string => (Number.isFinite(x) ? x.toFixed(d) : "-");
const sum = (xs: number[]): number => xs.reduce((a, b) => a + b, 0);
const mean = (xs: number[]): number => sum(xs) / xs.length;
const pct = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)] : NaN;
};

function kind(label: string, st: TracedStep[]): string {
  if (st.length === 0) return `  ${label}: none`;
  const s = st.map((x) => x.stats);
  return `  ${label}: ${st.length} steps, batch ${f(mean(s.map((x) => x.numScheduled)))}, prefill tokens ${
    f(mean(s.map((x) => x.numPrefillTokens)), 0)
  }, step ${f(mean(s.map((x) => x.stepMs)), 2)} ms (p90 ${f(pct(s.map((x) => x.stepMs), 90), 2)}), forward ${
    f(mean(s.map((x) => x.forwardMs ?? 0)), 2)
  } ms, worker host ${f(mean(s.map((x) => x.stepMs - (x.forwardMs ?? 0))), 2)} ms + encode ${f(mean(st.map((x) => x.encodeMs ?? 0)), 3)} ms`;
}

for (const [a, b] of windows) {
  const ms = b - a;
  const st = t.steps.filter((x) => x.sentAt >= a && x.sentAt <= b);
  const s = st.map((x) => x.stats);
  // A step's idle time counted only inside the window (the first one's began before it).
  const idleIn = (x: TracedStep): number => Math.max(0, Math.min(x.stats.idleMs ?? 0, x.sentAt - x.stats.stepMs - a));
  const stepSum = sum(s.map((x) => x.stepMs)), fwdSum = sum(s.map((x) => x.forwardMs ?? 0)), idleSum = sum(st.map(idleIn));
  const handle = st.map((x) => x.doneAt - x.recvAt), latency = st.map((x) => x.recvAt - x.sentAt);
  const lag = t.lag.filter(([at]) => at >= a && at <= b).map(([, l]) => l);
  const decodeTokens = sum(s.map((x) => x.numDecodeTokens)), prefillTokens = sum(s.map((x) => x.numPrefillTokens));
  const submits = t.submits.filter((x) => x >= a && x <= b).length;
  console.log(
    `window ${f(ms / 1000, 2)} s: ${st.length} steps; worker busy ${f((100 * stepSum) / ms)}% (forward ${f((100 * fwdSum) / ms)}%, host ${
      f((100 * (stepSum - fwdSum)) / ms)
    }%), idle between steps ${f((100 * idleSum) / ms)}% (steps after > 1 ms idle: ${st.filter((x) => idleIn(x) > 1).length}, their idle ${
      f(sum(st.filter((x) => idleIn(x) > 1).map(idleIn)))
    } ms)`,
  );
  console.log(`  tokens: decode ${decodeTokens} (${f(decodeTokens / (ms / 1000))}/s), prefill ${prefillTokens}; submits ${submits}`);
  console.log(kind("decode-only", st.filter((x) => x.stats.numPrefillTokens === 0)));
  console.log(kind("with prefill", st.filter((x) => x.stats.numPrefillTokens > 0)));
  const batches = new Map<number, number>();
  for (const x of s) batches.set(x.numScheduled, (batches.get(x.numScheduled) ?? 0) + 1);
  const top = [...batches].sort((p, q) => q[1] - p[1]).slice(0, 6).map(([k, v]) => `${k}×${v}`).join(" ");
  console.log(`  batch sizes (most common): ${top}`);
  console.log(
    `  main thread: handles a step in ${f(mean(handle), 3)} ms (p99 ${f(pct(handle, 99), 2)}; ${
      f((100 * sum(handle)) / ms)
    }% of the window), worker → main latency ${f(mean(latency), 3)} ms (p99 ${f(pct(latency, 99), 2)}); event-loop lag > 1 ms: ${lag.length} ticks, sum ${
      f(sum(lag))
    } ms, max ${f(Math.max(0, ...lag))} ms`,
  );
}
console.log(`threads' CPU s: ${t.threads.map((x) => `${x.name} ${f(x.cpuS, 2)}`).join(", ")}`);
