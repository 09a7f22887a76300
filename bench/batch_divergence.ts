/**
 * Why greedy ids of a batched bf16 run differ between decode kernels (issue 16 items 3 and 5): N prompts prefilled
 * in one step, then `--steps` decode steps teacher-forced with a float32 engine's greedy tokens, on sessions of the
 * same checkpoint: bf16 with decode_attention (`batchAttention: false`, `--kernels plain`), bf16 with
 * decode_attention_batch2 (`batchAttention4: false`, `batch2`), bf16 with the default past 8 sequences
 * (decode_attention_batch4, `batch4`) and the float32 engine (the reference), all in one process. Per session: the logits' relative L2
 * error vs float32 and how often its argmax equals float32's, and at the rows where it does not, float32's gap
 * between its top token and the one picked (a near-tie when that gap is bf16 noise). Then where batch invariance
 * holds: sequence 0's logits in decode steps of K = 1 … N sequences against K = 1 and K = N, bit for bit.
 *
 *   bun bench/batch_divergence.ts --model DIR [--requests 64] [--input 128] [--steps 32] [--kernels plain,batch2,batch4]
 *     [--backend cpu]
 *
 * (--backend cpu: the same code path on the CPU session, a smoke test without a GPU.)
 * LLMRT_BENCH_JSON=FILE also writes the numbers as JSON.
 */
import * as fs from "node:fs";
import process from "node:process";
import { parseArgs } from "node:util";
import { AutoModelForCausalLM } from "../lib/models/llama.ts";
import { buildSync } from "../lib/builder/builder.ts";
import { Session } from "../lib/runtime/session.ts";
import type { StepInputs } from "../lib/ir/step_io.ts";

const { values } = parseArgs({
  args: process.argv.slice(2),
  options: {
    backend: { type: "string" },
    model: { type: "string" },
    requests: { type: "string" },
    input: { type: "string" },
    steps: { type: "string" },
    kernels: { type: "string" },
  },
});
if (!values.model) throw new Error("usage: bun bench/batch_divergence.ts --model DIR [--requests 64] [--input 128] [--steps 32]");
const N = Number(values.requests ?? 64), IN = Number(values.input ?? 128), STEPS = Number(values.steps ?? 32);
const bs = 32, maxSeqLen = Math.ceil((IN + STEPS + 2) / bs) * bs, perSeq = maxSeqLen / bs;
const backend: "cpu" | "cuda" = values.backend === "cpu" ? "cpu" : "cuda";
const build = { backend, maxBatchSize: N, maxNumTokens: N * IN, maxSeqLen, maxInputLen: IN, tokensPerBlock: bs };
const model = AutoModelForCausalLM.fromHuggingFace(values.model);
const bf16 = buildSync(model, { ...build, dtype: "bfloat16" });
const f32 = buildSync(model, { ...build, dtype: "float32" });
model.close();
const V = bf16.plan.attributes.vocabSize;

/** A step of `ids[i]` tokens for sequence seqs[i] from position pos[i], one logits row each (its last token). */
function stepOf(seqs: number[], ids: number[][], pos: number[]): StepInputs {
  const T = ids.reduce((a, x) => a + x.length, 0), S = seqs.length;
  const tokenIds = new Int32Array(T), positions = new Int32Array(T), seqStarts = new Int32Array(S + 1), logitRows = new Int32Array(S);
  const blockTables = new Int32Array(S * perSeq);
  let t = 0;
  seqs.forEach((s, i) => {
    seqStarts[i] = t;
    ids[i].forEach((id, j) => {
      tokenIds[t] = id;
      positions[t++] = pos[i] + j;
    });
    logitRows[i] = t - 1;
    for (let b = 0; b < perSeq; b++) blockTables[i * perSeq + b] = s * perSeq + b;
  });
  seqStarts[S] = t;
  const sampling = {
    temperature: new Float32Array(S),
    topK: new Int32Array(S),
    topP: new Float32Array(S).fill(1),
    minP: new Float32Array(S),
    seed: new Uint32Array(2 * S),
    step: new Int32Array(S),
  };
  return { tokenIds, positions, seqStarts, blockTables, maxBlocksPerSeq: perSeq, logitRows, sampling };
}

/** The bf16 sessions by `--kernels` name: the decode attention kernel of steps of more than 8 sequences. */
const KERNELS = {
  plain: ["decode_attention", { batchAttention: false }],
  batch2: ["decode_attention_batch2", { batchAttention: true, batchAttention2: true, batchAttention4: false }],
  batch4: ["decode_attention_batch4", { batchAttention: true, batchAttention2: true, batchAttention4: true }],
} as const;
const picked = (values.kernels ?? "plain,batch2,batch4").split(",");
for (const k of picked) if (!(k in KERNELS)) throw new Error(`--kernels: unknown kernel "${k}" (one of ${Object.keys(KERNELS).join(", ")})`);
const sessions: Record<string, Session> = {};
for (const k of picked as (keyof typeof KERNELS)[]) sessions[KERNELS[k][0]] = Session.fromSerializedEngine(bf16, { backend, ...KERNELS[k][1] });
sessions.float32 = Session.fromSerializedEngine(f32, { backend });
type Name = string;
const names = Object.keys(sessions);
const kvs = Object.fromEntries(names.map((n) => [n, sessions[n].createKvCache(N * perSeq)])) as Record<Name, ReturnType<Session["createKvCache"]>>;
const run = (n: Name, inp: StepInputs): Float32Array => {
  const out = { logits: new Float32Array(inp.logitRows.length * V), sampledIds: new Int32Array(inp.logitRows.length) };
  sessions[n].run(inp, out, kvs[n]);
  return out.logits;
};
const argmax = (x: Float32Array, o: number): number => {
  let b = 0;
  for (let i = 1; i < V; i++) if (x[o + i] > x[o + b]) b = i;
  return b;
};

let seed = 777;
const rand = (n: number): number => {
  seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
  return seed % n;
};
const all = Array.from({ length: N }, (_, i) => i);
const prompts = all.map(() => Array.from({ length: IN }, () => rand(Math.min(V, 32000))));
const acc = Object.fromEntries(names.map((n) => [n, { rel: 0, maxRel: 0, agree: 0, rows: 0, gaps: [] as number[], rels: [] as number[] }]));
let last = Object.fromEntries(names.map((n) => [n, run(n, stepOf(all, prompts, all.map(() => 0)))])) as Record<Name, Float32Array>;
const topGaps: number[] = [];
for (let s = 0; s <= STEPS; s++) {
  const ref = last.float32;
  const next: number[] = [];
  for (let r = 0; r < N; r++) {
    const o = r * V, top = argmax(ref, o);
    next.push(top);
    let second = -Infinity;
    for (let i = 0; i < V; i++) if (i !== top && ref[o + i] > second) second = ref[o + i];
    topGaps.push(ref[o + top] - second);
    for (const n of names) {
      if (n === "float32") continue;
      const x = last[n];
      let num = 0, den = 0;
      for (let i = 0; i < V; i++) {
        num += (x[o + i] - ref[o + i]) ** 2;
        den += ref[o + i] ** 2;
      }
      const a = acc[n], pick = argmax(x, o);
      a.rel += Math.sqrt(num / den);
      a.maxRel = Math.max(a.maxRel, Math.sqrt(num / den));
      a.rels.push(Math.sqrt(num / den));
      a.rows++;
      if (pick === top) a.agree++;
      else a.gaps.push(ref[o + top] - ref[o + pick]);
    }
  }
  if (s === STEPS) break;
  const inp = stepOf(all, next.map((t) => [t]), all.map(() => IN + s));
  last = Object.fromEntries(names.map((n) => [n, run(n, inp)])) as Record<Name, Float32Array>;
}
const med = (xs: number[]): number => (xs.length ? [...xs].sort((a, b) => a - b)[xs.length >> 1] : NaN);
const e = (x: number): string => x.toExponential(2);
console.log(`model ${values.model}; ${N} prompts × ${IN} tokens, ${STEPS} decode steps teacher-forced with float32's greedy tokens`);
console.log(`float32's gap between its top two logits: median ${e(med(topGaps))} over ${topGaps.length} rows`);
console.log("| bf16 session | rel L2 vs float32 (mean, max) | argmax = float32's | float32's gap to the picked token where not (median, max) |");
console.log("| --- | ---: | ---: | ---: |");
const result: Record<string, unknown> = { model: values.model, requests: N, input: IN, steps: STEPS, medianTopGap: med(topGaps) };
for (const n of names) {
  if (n === "float32") continue;
  const a = acc[n];
  console.log(`| ${n} | ${e(a.rel / a.rows)}, ${e(a.maxRel)} | ${a.agree}/${a.rows} | ${e(med(a.gaps))}, ${e(Math.max(0, ...a.gaps))} |`);
  result[n] = { meanRel: a.rel / a.rows, maxRel: a.maxRel, agree: a.agree, rows: a.rows, medianGap: med(a.gaps), maxGap: Math.max(0, ...a.gaps) };
}
// Paired: in how many rows each bf16 session's logits are nearer float32's than another's (ties apart).
const bfNames = names.filter((n) => n !== "float32");
for (let i = 0; i < bfNames.length; i++) {
  for (let j = i + 1; j < bfNames.length; j++) {
    const x = acc[bfNames[i]].rels, y = acc[bfNames[j]].rels;
    const nearer = x.filter((v, r) => v < y[r]).length, ties = x.filter((v, r) => v === y[r]).length;
    console.log(`${bfNames[i]} nearer float32 than ${bfNames[j]} in ${nearer} of ${x.length} rows (${ties} ties)`);
    result[`${bfNames[i]}_vs_${bfNames[j]}`] = { nearer, ties, rows: x.length };
  }
}

// Batch invariance by decode-step size: sequence 0's logits at the next position in steps of its first K
// sequences (each step rewrites only that position's KV, which every K computes for sequence 0 itself).
const sizes = [...new Set([1, 2, 5, 8, 9, 16, 17, 32, 33, 48, 64, 65, 128, 256, 512, N])].filter((k) => k <= N).sort((a, b) => a - b);
const pos = IN + STEPS;
const inv: Record<string, unknown>[] = [];
console.log(`\nsequence 0's logits in a decode step of K sequences, max |difference| vs K = 1 and vs K = ${N} (0 = bitwise equal):`);
console.log(`| K | ${names.filter((n) => n !== "float32").map((n) => `${n} vs 1 | ${n} vs ${N}`).join(" | ")} |`);
const probe = Object.fromEntries(
  names.filter((n) => n !== "float32").map((
    n,
  ) => [n, sizes.map((k) => run(n, stepOf(all.slice(0, k), all.slice(0, k).map((r) => [r + 5]), all.slice(0, k).map(() => pos))).subarray(0, V))]),
);
sizes.forEach((k, i) => {
  const cells: string[] = [];
  const row: Record<string, unknown> = { K: k };
  for (const n of Object.keys(probe)) {
    const x = probe[n][i], one = probe[n][0], big = probe[n][sizes.length - 1];
    let d1 = 0, dN = 0;
    for (let j = 0; j < V; j++) {
      d1 = Math.max(d1, Math.abs(x[j] - one[j]));
      dN = Math.max(dN, Math.abs(x[j] - big[j]));
    }
    cells.push(d1 === 0 ? "0" : e(d1), dN === 0 ? "0" : e(dN));
    row[n] = { vs1: d1, vsN: dN };
  }
  inv.push(row);
  console.log(`| ${k} | ${cells.join(" | ")} |`);
});
result.invariance = inv;
for (const n of names) {
  kvs[n].dispose();
  sessions[n].dispose();
}
if (process.env.LLMRT_BENCH_JSON) fs.writeFileSync(process.env.LLMRT_BENCH_JSON, JSON.stringify(result, null, 1));
