/**
 * Where the wall time of an offline throughput run goes (issue 16 item 3), for bench/throughput.ts
 * --profile-steps: the executor's own clocks of the timed run grouped by phase (steps with prompt tokens
 * only, mixed prefill + decode steps, decode steps by batch size), the time outside the steps (before the
 * first, after the last), and — from a second session on the same engine — the GPU time of the run's
 * largest prefill step and of its N-sequence decode step, launch by launch (CUDA events), grouped as
 * GEMMs (with their TFLOP/s), attention, and the rest.
 */
import type { Engine } from "../lib/builder/engine.ts";
import type { IterationStats } from "../lib/executor/config.ts";
import type { CudaKvCache } from "../lib/backends/cuda/session.ts";
import type { StepInputs } from "../lib/ir/step_io.ts";
import { Session } from "../lib/runtime/session.ts";

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;
const f = (x: number, d = 1): string => x.toFixed(d);

/**
 * The phase a step belongs to: "prefill", "mixed", "decode ≤B" (B the power-of-two batch bucket), or "collect" (no
 * tokens scheduled: the last step, which takes the ids of the decode step enqueued ahead and waits for it).
 */
export function phaseOf(s: IterationStats): string {
  if (s.numDecodeTokens === 0 && s.numPrefillTokens === 0) return "collect";
  if (s.numDecodeTokens === 0) return "prefill";
  if (s.numPrefillTokens > 0) return "mixed";
  let b = 1;
  while (b < s.numDecodeTokens) b *= 2;
  return `decode ≤${b}`;
}

/** One phase's totals (ms). */
export interface PhaseTotals {
  readonly phase: string;
  readonly steps: number;
  readonly prefillTokens: number;
  readonly decodeTokens: number;
  readonly stepMs: number;
  readonly forwardMs: number;
  readonly idleMs: number;
  readonly medianStepMs: number;
}

/**
 * Totals per phase of `stats` (the timed run's steps, in order) and the wall time outside the steps:
 * `totalMs` minus the span from the first step's start to the last step's end.
 */
export function phaseTotals(stats: readonly IterationStats[], totalMs: number): { phases: PhaseTotals[]; spanMs: number; outsideMs: number } {
  const by = new Map<string, IterationStats[]>();
  for (const s of stats) {
    const p = phaseOf(s);
    by.set(p, [...(by.get(p) ?? []), s]);
  }
  const sum = (xs: IterationStats[], k: (s: IterationStats) => number): number => xs.reduce((a, s) => a + k(s), 0);
  const phases = [...by].map(([phase, xs]) => ({
    phase,
    steps: xs.length,
    prefillTokens: sum(xs, (s) => s.numPrefillTokens),
    decodeTokens: sum(xs, (s) => s.numDecodeTokens),
    stepMs: sum(xs, (s) => s.stepMs),
    forwardMs: sum(xs, (s) => s.forwardMs ?? 0),
    // The first step's idle time reaches back before the timed run (the warm-up's end): not counted.
    idleMs: sum(xs, (s) => (s === stats[0] ? 0 : s.idleMs ?? 0)),
    medianStepMs: median(xs.map((s) => s.stepMs)),
  }));
  const spanMs = stats.reduce((a, s, i) => a + s.stepMs + (i > 0 ? s.idleMs ?? 0 : 0), 0);
  return { phases, spanMs, outsideMs: totalMs - spanMs };
}

/** Prints phaseTotals and the first and last few steps one by one; returns the numbers. */
export function printPhases(stats: readonly IterationStats[], totalMs: number): Record<string, unknown> {
  const t = phaseTotals(stats, totalMs);
  console.log(
    `\nsteps of the timed run by phase (executor clocks; run ${f(totalMs)} ms, steps span ${f(t.spanMs)} ms, outside the steps ${f(t.outsideMs)} ms):`,
  );
  console.log("| phase | steps | prefill tok | decode tok | Σ step ms | Σ Session.run ms | Σ rest ms | Σ between ms | median step ms |");
  console.log("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
  for (const p of t.phases) {
    console.log(
      `| ${p.phase} | ${p.steps} | ${p.prefillTokens} | ${p.decodeTokens} | ${f(p.stepMs)} | ${f(p.forwardMs)} | ${f(p.stepMs - p.forwardMs)} | ${
        f(p.idleMs)
      } | ${f(p.medianStepMs, 3)} |`,
    );
  }
  const show = (s: IterationStats, i: number): string =>
    `  step ${i}: prefill ${s.numPrefillTokens} decode ${s.numDecodeTokens} (scheduled ${s.numScheduled}, waiting ${s.numWaiting}) step ${
      f(s.stepMs, 2)
    } ms (run ${f(s.forwardMs ?? NaN, 2)}) between ${f(i === 0 ? NaN : s.idleMs ?? NaN, 2)}`;
  const n = stats.length;
  for (let i = 0; i < n; i++) if (i < 6 || i >= n - 4) console.log(show(stats[i], i));
  return { ...t, steps: stats.map((s) => [s.numPrefillTokens, s.numDecodeTokens, s.stepMs, s.forwardMs ?? null, s.idleMs ?? null]) };
}

/** GEMM FLOPs of a launch named "gemm MxNxK…" (0 for other launches). */
function gemmFlops(name: string): number {
  const m = /^gemm (\d+)x(\d+)x(\d+)/.exec(name);
  return m ? 2 * Number(m[1]) * Number(m[2]) * Number(m[3]) : 0;
}

/** Launch times grouped: GEMMs (with TFLOP/s), attention (+ RoPE / KV write), the rest; top kernels by time. */
function groupLaunches(launches: readonly { name: string; ms: number }[]): Record<string, unknown> {
  let gemmMs = 0, flops = 0, attnMs = 0, restMs = 0;
  const by = new Map<string, { n: number; ms: number }>();
  const shapes = new Map<string, { n: number; ms: number; flops: number }>();
  for (const l of launches) {
    const fl = gemmFlops(l.name);
    const key = fl > 0 ? "gemm" : l.name;
    if (fl > 0) {
      const sk = l.name.replace(/^gemm \d+x/, "n×k ");
      const e = shapes.get(sk) ?? { n: 0, ms: 0, flops: 0 };
      e.n++;
      e.ms += l.ms;
      e.flops += fl;
      shapes.set(sk, e);
    }
    if (fl > 0 || /gemm|gemv/.test(l.name)) {
      gemmMs += l.ms;
      flops += fl;
    } else if (/attention|flash|rope|kv_write/.test(l.name)) attnMs += l.ms;
    else restMs += l.ms;
    const e = by.get(key) ?? { n: 0, ms: 0 };
    e.n++;
    e.ms += l.ms;
    by.set(key, e);
  }
  const top = [...by].sort((a, b) => b[1].ms - a[1].ms).slice(0, 8);
  return {
    sumMs: gemmMs + attnMs + restMs,
    gemmMs,
    gemmTflops: gemmMs > 0 ? flops / (gemmMs * 1e9) : 0,
    attentionMs: attnMs,
    restMs,
    top: top.map(([name, e]) => ({ name, n: e.n, ms: e.ms })),
    gemmShapes: [...shapes].sort((a, b) => b[1].ms - a[1].ms).map(([name, e]) => ({ name, n: e.n, ms: e.ms, tflops: e.flops / (e.ms * 1e9) })),
  };
}

function sampling(n: number): NonNullable<StepInputs["sampling"]> {
  return {
    temperature: new Float32Array(n),
    topK: new Int32Array(n),
    topP: new Float32Array(n).fill(1),
    minP: new Float32Array(n),
    seed: new Uint32Array(2 * n),
    step: new Int32Array(n),
  };
}

/** A prefill step of `P` prompts of `L` tokens; sequence s in blocks [s × perSeq, (s + 1) × perSeq). */
export function prefillStep(P: number, L: number, perSeq: number): StepInputs {
  return {
    tokenIds: Int32Array.from({ length: P * L }, (_, i) => (i * 131 + 7) % 1000),
    positions: Int32Array.from({ length: P * L }, (_, i) => i % L),
    seqStarts: Int32Array.from({ length: P + 1 }, (_, i) => i * L),
    blockTables: Int32Array.from({ length: P * perSeq }, (_, i) => i),
    maxBlocksPerSeq: perSeq,
    logitRows: Int32Array.from({ length: P }, (_, i) => i * L + L - 1),
    sampling: sampling(P),
  };
}

/** A greedy decode step of N sequences at position `context`. */
export function decodeStepAt(N: number, context: number, perSeq: number): StepInputs {
  return {
    tokenIds: Int32Array.from({ length: N }, (_, i) => (i * 97 + 5) % 1000),
    positions: new Int32Array(N).fill(context),
    seqStarts: Int32Array.from({ length: N + 1 }, (_, i) => i),
    blockTables: Int32Array.from({ length: N * perSeq }, (_, i) => i),
    maxBlocksPerSeq: perSeq,
    logitRows: Int32Array.from({ length: N }, (_, i) => i),
    sampling: sampling(N),
  };
}

/**
 * GPU time of the run's two kinds of step on a second session: a prefill step of `P` prompts of `L`
 * tokens (Session.run wall vs its launches' summed event times), an N-sequence decode step at `context`
 * (graph replay vs launches). Prints a summary; returns the numbers.
 */
export function profileSteps(engine: Engine, P: number, L: number, N: number, context: number): Record<string, unknown> {
  using session = Session.fromSerializedEngine(engine, { backend: "cuda" });
  const cuda = session.cuda!;
  const bs = engine.config.build.tokensPerBlock;
  const perSeq = Math.ceil(session.maxSeqLen / bs);
  const kv = session.createKvCache(Math.max(P, N) * perSeq) as CudaKvCache;
  try {
    const pre = prefillStep(P, L, perSeq);
    const out = { sampledIds: new Int32Array(P) };
    session.run(pre, out, kv); // GEMM plans, kernel loads
    const wall: number[] = [];
    for (let i = 0; i < 3; i++) {
      const t = performance.now();
      session.run(pre, out, kv);
      wall.push(performance.now() - t);
    }
    const pp = groupLaunches(cuda.profileEagerStep(pre, kv).launches);
    const dec = cuda.profileDecodeStep(decodeStepAt(N, context, perSeq), kv, 20);
    const dp = groupLaunches(dec.launches);
    const g = (x: Record<string, unknown>, k: string): number => x[k] as number;
    console.log(`\nGPU time of the run's steps (second session, events):`);
    console.log(
      `prefill ${P} × ${L} tokens: Session.run ${f(median(wall), 2)} ms wall; launches ${f(g(pp, "sumMs"), 2)} ms = GEMMs ${f(g(pp, "gemmMs"), 2)} (${
        f(g(pp, "gemmTflops"), 0)
      } TFLOP/s) + attention ${f(g(pp, "attentionMs"), 2)} + rest ${f(g(pp, "restMs"), 2)}`,
    );
    const shapes = (x: Record<string, unknown>, d: number): string =>
      (x.gemmShapes as { name: string; n: number; ms: number; tflops: number }[]).map((t) => `${t.name} ${t.n}× ${f(t.ms, d)} ms (${f(t.tflops, 0)})`).join(
        ", ",
      );
    console.log(`  top: ${(pp.top as { name: string; n: number; ms: number }[]).map((t) => `${t.name} ${t.n}× ${f(t.ms, 2)}`).join(", ")}`);
    console.log(`  GEMMs (TFLOP/s): ${shapes(pp, 2)}`);
    console.log(
      `decode ${N} at context ${context} (bucket ${dec.bucket}): graph ${f(dec.graphMs, 3)} ms; launches ${f(g(dp, "sumMs"), 3)} ms = GEMM/GEMV ${
        f(g(dp, "gemmMs"), 3)
      } (${f(g(dp, "gemmTflops"), 0)} TFLOP/s) + attention ${f(g(dp, "attentionMs"), 3)} + rest ${f(g(dp, "restMs"), 3)}`,
    );
    console.log(`  top: ${(dp.top as { name: string; n: number; ms: number }[]).map((t) => `${t.name} ${t.n}× ${f(t.ms, 3)}`).join(", ")}`);
    console.log(`  GEMMs (TFLOP/s): ${shapes(dp, 3)}`);
    return { prefill: { P, L, runWallMs: median(wall), ...pp }, decode: { N, context, bucket: dec.bucket, graphMs: dec.graphMs, ...dp } };
  } finally {
    kv.dispose();
  }
}
