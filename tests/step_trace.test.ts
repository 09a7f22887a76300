// LLMRT_STEP_TRACE (lib/executor/step_trace.ts): the proxy's per-step trace for performance work.
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import process from "node:process";
import { StepTrace, wallMs } from "../lib/executor/step_trace.ts";
import type { IterationStats } from "../lib/executor/config.ts";
import { assert, test } from "./harness.ts";

const stats = (iter: number): IterationStats => ({
  iter,
  numScheduled: 4,
  numPrefillTokens: iter === 0 ? 32 : 0,
  numDecodeTokens: iter === 0 ? 0 : 4,
  numPreempted: 0,
  numRunning: 4,
  numWaiting: 0,
  stepMs: 5,
  forwardMs: 4,
  idleMs: 0.5,
  kvBlocksUsed: 8,
  kvBlocksFree: 56,
  kvBlocksReused: 0,
  kvBlocksCached: 0,
});

test("step trace: off without LLMRT_STEP_TRACE; with it, steps, submits, lag ticks and thread CPU go to the file as JSON", async () => {
  const saved = process.env.LLMRT_STEP_TRACE;
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "llmrt-trace-")), "trace.json");
  try {
    delete process.env.LLMRT_STEP_TRACE;
    assert.equal(StepTrace.fromEnv(), null);
    process.env.LLMRT_STEP_TRACE = file;
    const trace = StepTrace.fromEnv()!;
    trace.submitted();
    trace.step(wallMs() - 0.5, wallMs(), stats(0));
    trace.step(wallMs() - 0.5, wallMs(), stats(1));
    // a few lag-timer ticks: one 30-ms sleep gave a single tick on a loaded 2-core CI machine (Deno), so sleep five
    // times — the 2-ms interval falls due before each 10-ms timeout and ticks at least once per sleep
    for (let i = 0; i < 5; i++) await new Promise((r) => setTimeout(r, 10));
    for (const end = performance.now() + 60; performance.now() < end;); // CPU time for this thread (/proc counts 10 ms ticks)
    trace.write();
    const t = JSON.parse(fs.readFileSync(file, "utf8"));
    assert.equal(t.steps.length, 2);
    assert.deepEqual(t.steps[1].stats, stats(1));
    assert.ok(t.steps[0].doneAt >= t.steps[0].recvAt && Math.abs(t.steps[0].recvAt - Date.now()) < 60_000, "absolute times");
    assert.equal(t.submits.length, 1);
    assert.ok(t.lagTicks >= 3, `lag ticks ${t.lagTicks}`);
    if (process.platform === "linux") assert.ok(t.threads.length > 0 && t.threads.every((x: { cpuS: number }) => x.cpuS > 0));
  } finally {
    if (saved === undefined) delete process.env.LLMRT_STEP_TRACE;
    else process.env.LLMRT_STEP_TRACE = saved;
    fs.rmSync(path.dirname(file), { recursive: true, force: true });
  }
});
