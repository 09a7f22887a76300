/**
 * Where a batch-1 decode step's GPU time goes inside its CUDA graph (issue 16 item 1): the step's launches by role
 * (embedding, qkv, attention, o_proj, gate_up, down, lm_head, sampler, …), each role's marginal cost (graph replay of
 * the whole step minus that of the step without the role's launches), the role alone (its launches chained, with PDL
 * as in the step), the bytes the role reads and the share of the copy ceiling that time is; the whole step with PDL
 * cleared; and the step's eager launches one by one (an event after each). The steps missing launches compute
 * garbage: timing only.
 *
 *   bun bench/decode_breakdown.ts --model DIR [--ctx 128,1024] [--rows N] [--opts JSON] [--opts2 JSON]
 *
 * --rows N: a decode step of N sequences (each at position ctx - 1 over a KV cache left as allocated: timing only)
 * instead of one sequence after a 128-token prompt (default 1).
 * DIR may be a pre-quantized checkpoint (AWQ / GPTQ, e.g. tools/quant-packers/pack_awq_torch.py's; FP8): its linears' bytes
 * are the packed weights, scales and zero points.
 * --opts: session options of the session measured (e.g. '{"batchInvariant":false}');
 * --opts2 / --opts3: a second / third session measured after it in the same process.
 */
import process from "node:process";
import { parseArgs } from "node:util";
import { buildSync } from "../lib/builder/builder.ts";
import { openModel } from "../lib/quantization/prequantized.ts";
import type { CudaKvCache } from "../lib/backends/cuda/session.ts";
import type { Engine } from "../lib/builder/engine.ts";
import type { Launch } from "../lib/backends/cuda/launch_plan.ts";
import { Session } from "../lib/runtime/session.ts";
import { deviceWeightBytes, greedyStepper } from "./batch1.ts";
import { decodeStep } from "./host_profile.ts";
import { prefillStep } from "./step_phases.ts";
import { copyCeiling, describeCeiling } from "./copy_bandwidth.ts";

/**
 * The breakdown of `engine`'s decode steps of each row count of `rowCounts` at each context of `ctxs` (the module's description), one
 * session per entry of `sessions` ([label, session options]) in turn. Exported for bench/throughput.ts
 * (--breakdown-rows: the same engine, no second build).
 */
export function breakdown(
  engine: Engine,
  rowCounts: readonly number[],
  ctxs: readonly number[],
  sessions: readonly (readonly [string, Record<string, boolean>])[],
  reps = 20,
): void {
  const bs = engine.config.build.tokensPerBlock;
  const maxSeqLen = engine.config.build.maxSeqLen!;
  if (Math.max(...ctxs) > maxSeqLen) throw new Error(`decode_breakdown: context ${Math.max(...ctxs)} past the engine's maxSeqLen ${maxSeqLen}`);
  const plan = engine.plan, a = plan.attributes;
  const blocks = Int32Array.from({ length: Math.ceil(maxSeqLen / bs) }, (_, i) => i);
  const stepOf = greedyStepper(blocks);
  const f = (x: number, d = 1): string => x.toFixed(d);
  /** A launch's role: the linear's weight name (its last parts), else the op type / kernel. */
  function role(l: Launch): string {
    const op = plan.ops[l.op] as { type: string; weight?: string; out?: string } | undefined;
    if (op?.type === "linear" && op.weight) {
      if (op.out === a.logits) return "lm_head";
      return op.weight.replace(/^.*layers\.\d+\./, "").replace(/\.weight$/, "");
    }
    return op?.type ?? (l.kind === "kernel" ? l.kernel : "gemm");
  }
  /** Bytes of weights a role's launches read (linears: the weight (FP8 / packed: 1 byte an element), a quantized one's scales and zero points; others 0). */
  function roleBytes(ls: readonly Launch[]): number {
    const seen = new Set<string>(), names = new Set(engine.tensorNames());
    let b = 0;
    for (const l of ls) {
      const op = plan.ops[l.op] as { type: string; weight?: string } | undefined;
      if (op?.type === "linear" && op.weight && !seen.has(op.weight)) {
        seen.add(op.weight);
        for (const n of [op.weight, `${op.weight}.scales`, `${op.weight}.zeros`].filter((n) => names.has(n))) {
          const info = engine.tensorInfo(n), elems = info.shape.reduce((x, y) => x * y, 1);
          b += elems * (info.dtype === "uint8" ? 1 : info.dtype === "float32" ? 4 : plan.elementBytes);
        }
      }
    }
    return b;
  }

  function measure(label: string, opts: Record<string, boolean>): void {
    const session = Session.fromSerializedEngine(engine, { backend: "cuda", ...opts });
    try {
      const cuda = session.cuda!;
      const ceiling = copyCeiling(cuda.device);
      for (const N of rowCounts) measureRows(N, session, cuda, ceiling, label, opts);
    } finally {
      session.dispose();
    }
  }
  function measureRows(
    N: number,
    session: Session,
    cuda: NonNullable<Session["cuda"]>,
    ceiling: ReturnType<typeof copyCeiling>,
    label: string,
    opts: Record<string, boolean>,
  ): void {
    {
      console.log(`\n== ${label} (${JSON.stringify(opts)}); ${N} row(s)`);
      console.log(describeCeiling(ceiling));
      const kv = session.createKvCache(N * blocks.length + 1) as CudaKvCache;
      const V = a.vocabSize;
      let seed = 12345;
      const prompt = Array.from({ length: 128 }, () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) % Math.min(V, 32000));
      if (N === 1) session.run(stepOf(prompt, 0), { sampledIds: new Int32Array(1) }, kv);
      const stepAt = (ctx: number) => (N === 1 ? stepOf([prompt[3]], ctx - 1) : decodeStep(N, ctx - 1, blocks.length));
      for (const ctx of ctxs) {
        const inp = stepAt(ctx);
        let roles: string[] = [];
        let stepBytes = 0, lmHeadBytes = 0;
        const all = cuda.timeDecodeLaunches(inp, kv, (ls) => {
          roles = [...new Set(ls.map(role))];
          stepBytes = deviceWeightBytes(engine);
          lmHeadBytes = roleBytes(ls.filter((l) => role(l) === "lm_head"));
          return [...ls];
        }, reps);
        const noPdl = cuda.timeDecodeLaunches(inp, kv, (ls) => ls.map((l) => (l.kind === "kernel" && l.pdl ? { ...l, pdl: false } : l)), reps);
        console.log(`ctx ${ctx}: graph replay ${f(all * 1000)} µs (PDL cleared: ${f(noPdl * 1000)} µs)`);
        console.log(
          `  ${"role".padEnd(26)} ${"launches".padStart(8)} ${"MB".padStart(8)} ${"marginal µs".padStart(12)} ${"alone µs".padStart(10)} ${
            "alone % copy".padStart(13)
          }`,
        );
        let sumMarg = 0;
        for (const r of roles) {
          let mine: Launch[] = [];
          const without = cuda.timeDecodeLaunches(inp, kv, (ls) => {
            mine = ls.filter((l) => role(l) === r);
            return ls.filter((l) => role(l) !== r);
          }, reps);
          const alone = cuda.timeDecodeLaunches(inp, kv, (ls) => ls.filter((l) => role(l) === r), reps);
          const bytes = r === "persistent layers" ? stepBytes - lmHeadBytes : roleBytes(mine);
          const marg = all - without;
          sumMarg += marg;
          console.log(
            `  ${r.padEnd(26)} ${String(mine.length).padStart(8)} ${f(bytes / 1e6).padStart(8)} ${f(marg * 1000).padStart(12)} ${
              f(alone * 1000).padStart(10)
            } ${bytes > 0 ? f((100 * bytes) / ceiling.bps / (alone / 1000)).padStart(12) + "%" : "".padStart(13)}`,
          );
        }
        console.log(
          `  sum of marginals ${f(sumMarg * 1000)} µs of ${f(all * 1000)}; the step's weights ${f(stepBytes / 1e6)} MB = ${
            f((100 * stepBytes) / ceiling.bps / (all / 1000))
          }% of the copy ceiling in the graph's time`,
        );
      }
      // The eager launches of the last context one by one (an event after each; no PDL overlap between them).
      const prof = cuda.profileDecodeStep(stepAt(ctxs[ctxs.length - 1]), kv, 20);
      console.log(`eager launches at ctx ${ctxs[ctxs.length - 1]} (first 12 and last 5):`);
      prof.launches.forEach((l, i) => {
        if (i < 12 || i >= prof.launches.length - 5) console.log(`  #${String(i).padStart(2)} ${l.name.padEnd(40)} ${f(l.ms * 1000, 2).padStart(8)} µs`);
      });
      // Every eager launch summed by kernel name (most time first).
      const byName = new Map<string, { n: number; ms: number }>();
      for (const l of prof.launches) {
        const e = byName.get(l.name) ?? { n: 0, ms: 0 };
        e.n++;
        e.ms += l.ms;
        byName.set(l.name, e);
      }
      const eagerMs = prof.launches.reduce((x, l) => x + l.ms, 0);
      console.log(`eager launches by kernel at ctx ${ctxs[ctxs.length - 1]} (${prof.launches.length} launches, ${f(eagerMs * 1000)} µs):`);
      for (const [name, e] of [...byName].sort((x, y) => y[1].ms - x[1].ms)) {
        console.log(`  ${name.padEnd(44)} ${String(e.n).padStart(4)}× ${f(e.ms * 1000).padStart(9)} µs (${f((e.ms * 1000) / e.n, 2)} each)`);
      }
      kv.dispose();
    }
  }
  for (const [label, opts] of sessions) measure(label, opts);
}

/**
 * Same-process A/B of whole decode steps: one session per entry of `variants` ([label, session options]) on `engine`, and
 * for each row count the graph replay of the step at context `ctx` (as breakdown's "graph replay"), the sessions taken in
 * turn `rounds` times; prints each variant's replays, their median and its ratio to the first variant's. `prefill`: also
 * a prefill step of P prompts of L tokens (eager, Session.run's wall time, synchronous) per session in turn, after a warm-up
 * run each.
 */
export function abGraph(
  engine: Engine,
  rowCounts: readonly number[],
  ctx: number,
  variants: readonly (readonly [string, Record<string, boolean>])[],
  rounds = 3,
  reps = 20,
  prefill?: { readonly P: number; readonly L: number },
): void {
  const bs = engine.config.build.tokensPerBlock;
  const maxSeqLen = engine.config.build.maxSeqLen!;
  const blocks = Int32Array.from({ length: Math.ceil(maxSeqLen / bs) }, (_, i) => i);
  const stepOf = greedyStepper(blocks);
  const V = engine.plan.attributes.vocabSize;
  const sessions = variants.map(([, o]) => Session.fromSerializedEngine(engine, { backend: "cuda", ...o }));
  const med = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  try {
    if (prefill) {
      const { P, L } = prefill;
      const kvs = sessions.map((s) => s.createKvCache(P * blocks.length + 1) as CudaKvCache);
      try {
        const inp = prefillStep(P, L, blocks.length);
        const out = { sampledIds: new Int32Array(P) };
        sessions.forEach((s, j) => s.run(inp, out, kvs[j])); // GEMM plans, kernel loads
        const ms = sessions.map(() => [] as number[]);
        for (let r = 0; r < rounds; r++) {
          sessions.forEach((s, j) => {
            const t = performance.now();
            s.run(inp, out, kvs[j]);
            ms[j].push(performance.now() - t);
          });
        }
        const m0 = med(ms[0]);
        console.log(`\nA/B prefill step, ${P} × ${L} tokens (Session.run wall, ${rounds} rounds in turn):`);
        variants.forEach(([label, o], j) => {
          const m = med(ms[j]);
          console.log(
            `  ${label.padEnd(12)} ${JSON.stringify(o)}: ${ms[j].map((x) => x.toFixed(2)).join(", ")} ms; median ${m.toFixed(2)} ms (${(m / m0).toFixed(4)}×)`,
          );
        });
        // The same bits? Each session: the prefill once more, then two decode steps of the P sequences (positions L, L + 1),
        // logits of every row, compared bit for bit with the first variant's.
        const logitsOf = (j: number): Float32Array[] => {
          const V = engine.plan.attributes.vocabSize, got: Float32Array[] = [];
          const pl = new Float32Array(P * V);
          sessions[j].run(inp, { logits: pl, sampledIds: new Int32Array(P) }, kvs[j]);
          got.push(pl);
          for (const pos of [L, L + 1]) {
            const dl = new Float32Array(P * V);
            sessions[j].run(decodeStep(P, pos, blocks.length), { logits: dl, sampledIds: new Int32Array(P) }, kvs[j]);
            got.push(dl);
          }
          return got;
        };
        const ref = logitsOf(0);
        for (let j = 1; j < sessions.length; j++) {
          const got = logitsOf(j);
          const diffs = got.map((g, i) => {
            const a = new Uint32Array(g.buffer), b = new Uint32Array(ref[i].buffer);
            let n = 0, mx = 0;
            for (let e = 0; e < a.length; e++) {
              if (a[e] !== b[e]) {
                n++;
                mx = Math.max(mx, Math.abs(g[e] - ref[i][e]));
              }
            }
            return n === 0 ? "bitwise equal" : `${n} of ${a.length} differ (max |diff| ${mx})`;
          });
          console.log(`  logits ${variants[j][0]} vs ${variants[0][0]}: prefill ${diffs[0]}; decode ${P} rows at ${L}: ${diffs[1]}; at ${L + 1}: ${diffs[2]}`);
        }
      } finally {
        for (const kv of kvs) kv.dispose();
      }
    }
    for (const N of rowCounts) {
      let seed = 12345;
      const prompt = Array.from({ length: 128 }, () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) % Math.min(V, 32000));
      const kvs = sessions.map((s) => s.createKvCache(N * blocks.length + 1) as CudaKvCache);
      try {
        if (N === 1) sessions.forEach((s, j) => s.run(stepOf(prompt, 0), { sampledIds: new Int32Array(1) }, kvs[j]));
        const inp = N === 1 ? stepOf([prompt[3]], ctx - 1) : decodeStep(N, ctx - 1, blocks.length);
        const ms = sessions.map(() => [] as number[]);
        for (let r = 0; r < rounds; r++) {
          sessions.forEach((s, j) => ms[j].push(s.cuda!.timeDecodeLaunches(inp, kvs[j], (ls) => [...ls], reps)));
        }
        const m0 = med(ms[0]);
        console.log(`\nA/B graph replay, ${N} row(s) at ctx ${ctx} (${rounds} rounds in turn, ${reps} replays each):`);
        variants.forEach(([label, o], j) => {
          const m = med(ms[j]);
          console.log(
            `  ${label.padEnd(12)} ${JSON.stringify(o)}: ${ms[j].map((x) => (x * 1000).toFixed(1)).join(", ")} µs; median ${(m * 1000).toFixed(1)} µs (${
              (m / m0).toFixed(4)
            }×)`,
          );
        });
      } finally {
        for (const kv of kvs) kv.dispose();
      }
    }
  } finally {
    for (const s of sessions) s.dispose();
  }
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: process.argv.slice(2),
    options: {
      model: { type: "string" },
      ctx: { type: "string" },
      rows: { type: "string" },
      opts: { type: "string" },
      opts2: { type: "string" },
      opts3: { type: "string" },
    },
  });
  if (!values.model) throw new Error("usage: bun bench/decode_breakdown.ts --model DIR [--ctx 128,1024] [--opts JSON] [--opts2 JSON]");
  const ctxs = (values.ctx ?? "128,1024").split(",").map(Number);
  const bs = 32;
  const maxSeqLen = Math.ceil((Math.max(...ctxs) + 256) / bs) * bs;
  // openModel: a pre-quantized checkpoint (e.g. the FP8 + FP8 KV pack of tools/quant-packers/pack_fp8_torch.py) as packed.
  const m = openModel(values.model, { dtype: "bfloat16" });
  const N = Number(values.rows ?? 1);
  const engine = buildSync(m, { backend: "cuda", dtype: "bfloat16", maxBatchSize: N, maxNumTokens: Math.max(128, N), maxSeqLen, tokensPerBlock: bs });
  m.close();
  const sessions: [string, Record<string, boolean>][] = [["A", JSON.parse(values.opts ?? "{}")]];
  if (values.opts2) sessions.push(["B", JSON.parse(values.opts2)]);
  if (values.opts3) sessions.push(["C", JSON.parse(values.opts3)]);
  breakdown(engine, [N], ctxs, sessions);
  process.exit(0);
}
