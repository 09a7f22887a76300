/**
 * Device diagnostic of speculative verify steps on a real checkpoint (bf16): logits of a verify step of
 * n tokens (one-token sequences over one block table, StepInputs.readsStepKv) vs n decode steps, the
 * KV rows each writes, and whether a decode step of b identical sequences (graph bucket b) gives each
 * row the single sequence's logits. Prints one line per check.
 *
 *   bun tools/gpu/spec_diag.ts MODEL_DIR [PROMPT_LEN]
 */
import process from "node:process";
import { CudaSession } from "../../lib/backends/cuda/session.ts";
import { buildSync } from "../../lib/builder/builder.ts";
import type { StepInputs } from "../../lib/ir/step_io.ts";
import { AutoModelForCausalLM } from "../../lib/models/llama.ts";

const dir = process.argv[2];
const P = Number(process.argv[3] ?? 600);
const BS = 16, SET = Math.ceil((P + 9) / BS), SETS = 9;
const m = AutoModelForCausalLM.fromHuggingFace(dir);
const engine = buildSync(m, { backend: "cuda", dtype: "bfloat16", maxBatchSize: 8, maxNumTokens: 1024, maxSeqLen: 1024, tokensPerBlock: BS });
m.close();
const s = new CudaSession(engine);
const V = s.plan.attributes.vocabSize;
const kv = s.createKvCache(SET * SETS);
const set = (i: number): number[] => Array.from({ length: SET }, (_, b) => i * SET + b);

/** One step: each entry a sequence (ids from pos over blocks); a greedy row at every token when `all`, else the last. */
function stepOf(seqs: { ids: number[]; pos: number; blocks: number[] }[], readsStepKv = false): StepInputs {
  const T = seqs.reduce((a, q) => a + q.ids.length, 0), S = seqs.length;
  const tokenIds = new Int32Array(T), positions = new Int32Array(T), seqStarts = new Int32Array(S + 1), logitRows: number[] = [];
  const blockTables = new Int32Array(S * SET);
  let t = 0;
  seqs.forEach((q, i) => {
    seqStarts[i] = t;
    q.ids.forEach((id, j) => {
      tokenIds[t] = id;
      positions[t++] = q.pos + j;
    });
    logitRows.push(t - 1);
    blockTables.set(q.blocks, i * SET);
  });
  seqStarts[S] = t;
  const R = logitRows.length;
  return {
    tokenIds,
    positions,
    seqStarts,
    blockTables,
    maxBlocksPerSeq: SET,
    logitRows: Int32Array.from(logitRows),
    readsStepKv,
    sampling: {
      temperature: new Float32Array(R),
      topK: new Int32Array(R),
      topP: new Float32Array(R).fill(1),
      minP: new Float32Array(R),
      seed: new Uint32Array(2 * R),
      step: new Int32Array(R),
    },
  };
}
function run(inp: StepInputs): { ids: Int32Array; logits: Float32Array } {
  const R = inp.logitRows.length;
  const out = { sampledIds: new Int32Array(R), logits: new Float32Array(R * V) };
  s.run(inp, out, kv);
  return { ids: out.sampledIds, logits: out.logits };
}
const maxAbs = (a: Float32Array, ao: number, b: Float32Array, bo: number): number => {
  let d = 0;
  for (let j = 0; j < V; j++) d = Math.max(d, Math.abs(a[ao + j] - b[bo + j]));
  return d;
};
const a = engine.plan.attributes;
const rowBytes = a.numKvHeads * a.headDim * 2, blockBytes = 2 * BS * rowBytes, layerBytes = (SET * SETS + 1) * blockBytes;
function kvRows(blocks: number[], from: number, n: number): Uint8Array[] {
  const host = new Uint8Array(kv.buffer.byteLength);
  kv.buffer.copyToHost(host);
  const out: Uint8Array[] = [];
  for (let l = 0; l < a.numLayers; l++) {
    for (let p = from; p < from + n; p++) {
      for (const w of [0, 1]) {
        const off = l * layerBytes + blocks[Math.floor(p / BS)] * blockBytes + w * BS * rowBytes + (p % BS) * rowBytes;
        out.push(host.slice(off, off + rowBytes));
      }
    }
  }
  return out;
}

const prompt = Array.from({ length: P }, (_, i) => (7919 * i + 13) % Math.min(V, 32000));
// Decoding 8 tokens one step at a time on set 0.
let r = run(stepOf([{ ids: prompt, pos: 0, blocks: set(0) }]));
const ids = [r.ids[0]], rows: Float32Array[] = [];
for (let i = 0; i < 8; i++) {
  r = run(stepOf([{ ids: [ids[i]], pos: P + i, blocks: set(0) }]));
  rows.push(r.logits);
  ids.push(r.ids[0]);
}
const ref = kvRows(set(0), P, 8);
console.log(`model ${dir}, prompt ${P}, decoded ${ids.join(" ")}`);
// Verify steps of n tokens on sets 1.., with and without the flag's KV write ahead.
let si = 1;
for (const n of [2, 3, 4, 5, 8]) {
  for (const flag of [true]) {
    const b = set(si++);
    run(stepOf([{ ids: prompt, pos: 0, blocks: b }]));
    const v = run(stepOf(ids.slice(0, n).map((id, i) => ({ ids: [id], pos: P + i, blocks: b })), flag));
    const d = Array.from({ length: n }, (_, i) => maxAbs(v.logits, i * V, rows[i], 0));
    const got = kvRows(b, P, n), want = ref.filter((_, j) => Math.floor(j / 2) % 8 < n);
    let kvDiff = 0;
    got.forEach((x, j) => x.forEach((y, e) => (kvDiff += y !== want[j][e] ? 1 : 0)));
    console.log(
      `verify n=${n} readsStepKv=${flag}: max |Δlogit| per row ${d.map((x) => x.toExponential(2)).join(" ")}; argmax ${
        Array.from(v.ids).join(" ")
      }; KV bytes differing ${kvDiff}`,
    );
  }
}
// Bucket invariance of plain decode: b copies of the sequence decode ids[0] at P in one step.
for (const bsz of [2, 4, 8]) {
  const sets = Array.from({ length: bsz }, (_, i) => set(1 + i));
  for (const b of sets) run(stepOf([{ ids: prompt, pos: 0, blocks: b }]));
  const v = run(stepOf(sets.map((b) => ({ ids: [ids[0]], pos: P, blocks: b }))));
  const d = Array.from({ length: bsz }, (_, i) => maxAbs(v.logits, i * V, rows[0], 0));
  console.log(`decode batch ${bsz} (same sequence): max |Δlogit| per row vs batch 1 ${d.map((x) => x.toExponential(2)).join(" ")}`);
}
kv.dispose();
s.dispose();
