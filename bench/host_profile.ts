/**
 * Where an N-sequence decode step's time goes (issue 16 part 3), for bench/throughput.ts
 * --profile-host: the executor's wall time per decode step of the timed run (scheduling, step
 * building, the session's run, outputs), the session's run of one N-sequence decode step alone
 * (validation, staging, one input copy, the graph replay, the sampled ids back) and the graph replay
 * alone on the GPU (CUDA events, back to back), from a second session on the same engine; the
 * differences are host time. Then the graph's launches run one by one with events (profileDecodeStep),
 * summed per kernel.
 */
import type { Engine } from "../lib/builder/engine.ts";
import type { IterationStats } from "../lib/executor/config.ts";
import type { CudaKvCache } from "../lib/backends/cuda/session.ts";
import type { StepInputs } from "../lib/ir/step_io.ts";
import { Session } from "../lib/runtime/session.ts";
import { launchTotals } from "./batch1.ts";

/** A greedy decode step of N sequences at position `context`, sequence s in blocks [s × perSeq, (s + 1) × perSeq). */
export function decodeStep(N: number, context: number, perSeq: number): StepInputs {
  return {
    tokenIds: Int32Array.from({ length: N }, (_, i) => (i * 97 + 5) % 1000),
    positions: new Int32Array(N).fill(context),
    seqStarts: Int32Array.from({ length: N + 1 }, (_, i) => i),
    blockTables: Int32Array.from({ length: N * perSeq }, (_, i) => i),
    maxBlocksPerSeq: perSeq,
    logitRows: Int32Array.from({ length: N }, (_, i) => i),
    sampling: {
      temperature: new Float32Array(N),
      topK: new Int32Array(N),
      topP: new Float32Array(N).fill(1),
      minP: new Float32Array(N),
      seed: new Uint32Array(2 * N),
      step: new Int32Array(N),
    },
  };
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;

/** Host vs GPU ms of an N-sequence decode step; prints a summary and returns the numbers. */
export function profileHost(engine: Engine, N: number, context: number, stats: readonly IterationStats[]): Record<string, unknown> {
  const decodeSteps = stats.filter((s) => s.numPrefillTokens === 0 && s.numDecodeTokens === N);
  const executorMs = median(decodeSteps.map((s) => s.stepMs));
  using session = Session.fromSerializedEngine(engine, { backend: "cuda" });
  const cuda = session.cuda!;
  const bs = engine.config.build.tokensPerBlock;
  const perSeq = Math.ceil(session.maxSeqLen / bs);
  const kv = session.createKvCache(N * perSeq);
  const step = decodeStep(N, context, perSeq);
  const out = { sampledIds: new Int32Array(N) };
  for (let i = 0; i < 5; i++) session.run(step, out, kv); // graph capture, warm-up
  const runMs: number[] = [];
  for (let i = 0; i < 50; i++) {
    const t = performance.now();
    session.run(step, out, kv);
    runMs.push(performance.now() - t);
  }
  const sessionMs = median(runMs);
  const prof = cuda.profileDecodeStep(step, kv as CudaKvCache, 50);
  const byName = launchTotals(prof.launches);
  const eagerSum = prof.launches.reduce((a, l) => a + l.ms, 0);
  const f = (x: number, d = 3): string => x.toFixed(d);
  console.log(`\nhost profile, ${N}-sequence decode step at context ${context} (bucket ${prof.bucket}, ${prof.launches.length} launches):`);
  console.log(`| executor step (median of ${decodeSteps.length}) | session.run | GPU graph replay | host in session.run | host in the executor |`);
  console.log("| ---: | ---: | ---: | ---: | ---: |");
  console.log(
    `| ${f(executorMs)} ms | ${f(sessionMs)} ms | ${f(prof.graphMs)} ms | ${f(sessionMs - prof.graphMs)} ms | ${f(executorMs - sessionMs)} ms |`,
  );
  console.log(`host share of the executor's step: ${f((100 * (executorMs - prof.graphMs)) / executorMs, 1)}%`);
  // The whole timed run from the executor's own clocks: inside Session.run (staging, launches, the device's work,
  // the sampled ids back), the rest of each step (scheduling, step building, outputs), and between steps.
  const sum = (k: "stepMs" | "forwardMs" | "idleMs", xs = stats): number => xs.reduce((a, s) => a + (s[k] ?? 0), 0);
  const fwd = median(decodeSteps.map((s) => s.forwardMs ?? NaN)), idle = median(decodeSteps.map((s) => s.idleMs ?? NaN));
  console.log(
    `executor clocks over the run: steps ${f(sum("stepMs"), 1)} ms (Session.run ${f(sum("forwardMs"), 1)} ms, the rest ${
      f(sum("stepMs") - sum("forwardMs"), 1)
    } ms), between steps ${f(sum("idleMs"), 1)} ms; ${N}-sequence decode step medians: Session.run ${f(fwd)} ms, rest ${f(executorMs - fwd)} ms, between ${
      f(idle)
    } ms`,
  );
  const prefill = stats.filter((s) => s.numPrefillTokens > 0);
  console.log(
    `run of ${stats.length} steps: ${prefill.length} with prefill tokens ${f(prefill.reduce((a, s) => a + s.stepMs, 0), 1)} ms, ` +
      `${decodeSteps.length} ${N}-sequence decode steps ${f(decodeSteps.reduce((a, s) => a + s.stepMs, 0), 1)} ms`,
  );
  console.log(`launches run one by one (events; sum ${f(eagerSum)} ms vs graph ${f(prof.graphMs)} ms), by kernel:`);
  for (const [name, e] of [...byName].sort((a, b) => b[1].ms - a[1].ms)) {
    console.log(`  ${name.padEnd(48)} ${String(e.n).padStart(4)} × ${f((1000 * e.ms) / e.n, 1).padStart(8)} µs = ${f(e.ms)} ms`);
  }
  kv.dispose();
  return {
    executorStepMs: executorMs,
    executorForwardMs: fwd,
    executorIdleMs: idle,
    runStepMs: sum("stepMs"),
    runForwardMs: sum("forwardMs"),
    runIdleMs: sum("idleMs"),
    sessionRunMs: sessionMs,
    graphMs: prof.graphMs,
    eagerSumMs: eagerSum,
    bucket: prof.bucket,
    kernels: Object.fromEntries(byName),
  };
}

/**
 * Decode attention by batch size: the graph replay and the attention launches' eager time (RoPE + KV
 * write + attention + reduce) of an N-sequence decode step, with the default plan (fused decode
 * attention) and with `gemv: false` (rope_kv_write + paged_attention_decode + reduce), per N.
 */
export function attentionSweep(engine: Engine, context: number, sizes: readonly number[]): Record<string, unknown>[] {
  const rows: Record<string, unknown>[] = [];
  const bs = engine.config.build.tokensPerBlock;
  for (const gemv of [true, false]) {
    using session = Session.fromSerializedEngine(engine, { backend: "cuda", gemv });
    const cuda = session.cuda!;
    const perSeq = Math.ceil(session.maxSeqLen / bs);
    const kv = session.createKvCache(Math.max(...sizes) * perSeq) as CudaKvCache;
    for (const N of sizes) {
      const prof = cuda.profileDecodeStep(decodeStep(N, context, perSeq), kv, 50);
      const attn = prof.launches.filter((l) => /attention|rope_kv_write/.test(l.name)).reduce((a, l) => a + l.ms, 0);
      rows.push({ gemv, N, graphMs: prof.graphMs, attentionMs: attn, launches: prof.launches.length });
      if (gemv) {
        const by = new Map<string, number>();
        for (const l of prof.launches) by.set(l.name, (by.get(l.name) ?? 0) + l.ms);
        const top = [...by].sort((a, b) => b[1] - a[1]).slice(0, 6).map(([n, ms]) => `${n} ${ms.toFixed(3)}`);
        console.log(`  ${N} sequences, graph ${prof.graphMs.toFixed(3)} ms; top kernels (eager ms, summed): ${top.join(", ")}`);
      }
    }
    kv.dispose();
  }
  console.log(`\ndecode attention by batch size at context ${context} (eager launch times, events):`);
  console.log("| sequences | graph, fused attention | attention launches, fused | graph, gemv off | attention launches, unfused |");
  console.log("| ---: | ---: | ---: | ---: | ---: |");
  for (const N of sizes) {
    const a = rows.find((r) => r.gemv && r.N === N)!, b = rows.find((r) => !r.gemv && r.N === N)!;
    const f = (x: unknown): string => (x as number).toFixed(3);
    console.log(`| ${N} | ${f(a.graphMs)} ms | ${f(a.attentionMs)} ms | ${f(b.graphMs)} ms | ${f(b.attentionMs)} ms |`);
  }
  return rows;
}
