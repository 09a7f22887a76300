// Beam search: the step rules on crafted rows, exactness against exhaustive enumeration on a toy
// model when the beam is wide enough, and stories260k beams of widths 1-3 against an independent
// brute-force reference (every one-token extension of every beam scored from scratch by a
// teacher-forced forward of the whole sequence).
import * as fs from "node:fs";
import { uniformFor } from "../lib/ir/sampling.ts";
import { buildSync } from "../lib/builder/builder.ts";
import type { Engine } from "../lib/builder/engine.ts";
import { beamScore, beamSearchGenerate, beamSearchStep, finalizeBeamSearch, initialBeamState } from "../lib/executor/beam_search.ts";
import { AutoModelForCausalLM } from "../lib/models/llama.ts";
import { ModelRunner } from "../lib/runtime/model_runner.ts";
import type { Session } from "../lib/runtime/session.ts";
import { assert, sharedDir, test } from "./harness.ts";

/** log-softmax in float64, written out here so the references share no code with the library. */
function lsm(row: ArrayLike<number>): number[] {
  let max = -Infinity;
  for (let i = 0; i < row.length; i++) max = Math.max(max, row[i]);
  let s = 0;
  for (let i = 0; i < row.length; i++) s += Math.exp(row[i] - max);
  const lse = max + Math.log(s);
  return Array.from(row, (x) => x - lse);
}

/** Rows whose log-softmax is exactly `logprobs` (up to float32 rounding). */
function rowOf(probs: number[]): Float32Array {
  return Float32Array.from(probs, (p) => (p > 0 ? Math.log(p) : -Infinity));
}

test("step: best 2W candidates by cumulative logprob; parents and tokens; an end id ranked < W finishes", () => {
  const W = 2;
  const s0 = initialBeamState();
  const s1 = beamSearchStep(s0, [rowOf([0.1, 0.5, 0.3, 0.1])], { beamWidth: W, maxTokens: 10, eosIds: [0] });
  assert.deepEqual(s1.beams.map((b) => [b.parent, ...b.tokens]), [[0, 1], [0, 2]]);
  assert.ok(Math.abs(s1.beams[0].sumLogprob - Math.log(0.5)) < 1e-6);
  // Beam 0 (p .5) then beam 1 (p .3): candidates .5·.6 (eos), .5·.4 (tok 3), .3·.9 (tok 1), .3·.1 (tok 2).
  const s2 = beamSearchStep(s1, [rowOf([0.6, 0, 0, 0.4]), rowOf([0, 0.9, 0.1, 0])], { beamWidth: W, maxTokens: 10, eosIds: [0] });
  assert.equal(s2.finished.length, 1);
  assert.deepEqual(s2.finished[0].tokens, [1, 0]);
  assert.equal(s2.finished[0].finishReason, "stop");
  assert.ok(Math.abs(s2.finished[0].score - Math.log(0.3) / 2) < 1e-6, "score = sum / len^1");
  assert.deepEqual(s2.beams.map((b) => [b.parent, ...b.tokens]), [[1, 2, 1], [0, 1, 3]]);
  assert.ok(Math.abs(s2.beams[0].logprobs[1] - Math.log(0.9)) < 1e-6);
  assert.equal(s2.done, false);
});

test("step: an end id ranked >= W is skipped (HF) while the beams are still filled from lower ranks", () => {
  // W = 2, ids 0-2 end: ranks 0 and 1 (ids 0, 1) finish, rank 2 (id 2) is skipped, rank 3 (id 3) is a beam.
  const s1 = beamSearchStep(initialBeamState(), [rowOf([0.3, 0.25, 0.2, 0.15, 0.1])], { beamWidth: 2, maxTokens: 10, eosIds: [0, 1, 2] });
  assert.deepEqual(s1.finished.map((h) => h.tokens), [[0], [1]]);
  assert.equal(s1.done, true, "W hypotheses, none beatable by the live beam (HF heuristic)");
  const s2 = beamSearchStep(initialBeamState(), [rowOf([0.3, 0.25, 0.2, 0.15, 0.1])], {
    beamWidth: 2,
    maxTokens: 10,
    eosIds: [0, 1, 2],
    earlyStopping: "never",
    lengthPenalty: 3,
  });
  assert.deepEqual(s2.finished.map((h) => h.tokens), [[0], [1]]);
  assert.deepEqual(s2.beams.map((b) => b.tokens), [[3]], "only the non-end candidates within the best 2W become beams");
  // W = 3, ids 0 and 3 end: rank 0 finishes, ranks 1-2 are beams, rank 3 (id 3) is skipped, rank 4 fills the beams.
  const s3 = beamSearchStep(initialBeamState(), [rowOf([0.3, 0.25, 0.2, 0.15, 0.1])], { beamWidth: 3, maxTokens: 10, eosIds: [0, 3] });
  assert.deepEqual(s3.finished.map((h) => h.tokens), [[0]]);
  assert.deepEqual(s3.beams.map((b) => b.tokens), [[1], [2], [4]]);
});

test("step: maxTokens turns the beams into 'length' hypotheses; a done state steps to itself; row count is checked", () => {
  const s1 = beamSearchStep(initialBeamState(), [rowOf([0.2, 0.5, 0.3])], { beamWidth: 2, maxTokens: 1 });
  assert.equal(s1.done, true);
  assert.deepEqual(s1.beams, []);
  assert.deepEqual(s1.finished.map((h) => [h.tokens[0], h.finishReason]), [[1, "length"], [2, "length"]]);
  assert.equal(beamSearchStep(s1, [], { beamWidth: 2, maxTokens: 1 }), s1);
  assert.deepEqual(finalizeBeamSearch(s1, 1).map((h) => h.tokens), [[1]]);
  assert.throws(() => beamSearchStep(initialBeamState(), [], { beamWidth: 2, maxTokens: 3 }), /1 beams/);
  assert.throws(() => finalizeBeamSearch(initialBeamState(), 1), /live beams/);
});

test("earlyStopping: true stops at W hypotheses; false uses the current-length bound; 'never' the exact bound", () => {
  // Step 1: eos (id 0) p .4 and .3 → with W = 2 both finish (ranks 0 and 1); live beam from id 2 (p .2).
  const first = [rowOf([0.4, 0.3, 0.2, 0.1])];
  const opts = (earlyStopping: boolean | "never", lengthPenalty = 1) => ({ beamWidth: 2, maxTokens: 10, eosIds: [0, 1], earlyStopping, lengthPenalty });
  const t = beamSearchStep(initialBeamState(), first, opts(true));
  assert.equal(t.done, true);
  assert.equal(t.finished.length, 2);
  // false: worst finished log(.3)/1 ≥ best live log(.2)/1 → done as well.
  assert.equal(beamSearchStep(initialBeamState(), first, opts(false)).done, true);
  // With lengthPenalty 2 a longer live beam could still win under "never" (bound log(.2)/10² > log(.3)),
  // but not under false (bound log(.2)/1² < log(.3)).
  assert.equal(beamSearchStep(initialBeamState(), first, opts(false, 2)).done, true);
  const never = beamSearchStep(initialBeamState(), first, opts("never", 2));
  assert.equal(never.done, false);
  assert.ok(beamScore(Math.log(0.2), 10, 2) > Math.log(0.3));
});

test("beamSearchGenerate needs useBeamSearch; per-token logprobs sum to each hypothesis' sumLogprob", () => {
  const fwd = (seqs: number[][]): Float32Array[] => seqs.map(toyLogits);
  assert.throws(() => beamSearchGenerate(fwd, [1], { maxTokens: 3 }), /useBeamSearch must be true/);
  const hyps = beamSearchGenerate(fwd, [1], { useBeamSearch: true, beamWidth: 3, n: 3, maxTokens: 5 }, [0]);
  assert.equal(hyps.length, 3);
  for (const h of hyps) {
    assert.ok(Math.abs(h.logprobs.reduce((a, b) => a + b, 0) - h.sumLogprob) < 1e-9);
    assert.equal(h.score, beamScore(h.sumLogprob, h.tokens.length, 1));
  }
  for (let i = 1; i < hyps.length; i++) assert.ok(hyps[i - 1].score >= hyps[i].score, "best first");
});

// ---- toy model: exhaustive enumeration ----

const TOY_V = 4;
/** Deterministic logits depending on the whole sequence (a hash), spread over about ±3. */
function toyLogits(seq: number[]): Float32Array {
  let h = 17;
  for (const t of seq) h = (Math.imul(h, 31) + t + 1) >>> 0;
  return Float32Array.from({ length: TOY_V }, (_, v) => 6 * (uniformFor(h, v, seq.length) - 0.5));
}

/** Every finished sequence (ends on eos, none before) of ≤ L tokens and every eos-free one of exactly L, scored. */
function exhaustive(prompt: number[], L: number, eos: number, lp: number): { tokens: number[]; score: number }[] {
  const all: { tokens: number[]; score: number }[] = [];
  const walk = (tokens: number[], sum: number): void => {
    const row = lsm(toyLogits([...prompt, ...tokens]));
    for (let v = 0; v < TOY_V; v++) {
      const t = [...tokens, v], s = sum + row[v];
      if (v === eos || t.length === L) all.push({ tokens: t, score: s / Math.pow(t.length, lp) });
      else walk(t, s);
    }
  };
  walk([], 0);
  return all.sort((a, b) => b.score - a.score);
}

for (const lp of [-1, 0, 0.5, 1, 2]) {
  test(`a beam wide enough to keep everything equals exhaustive search (toy model, lengthPenalty ${lp})`, () => {
    const prompt = [3, 1];
    const L = 4;
    const ref = exhaustive(prompt, L, 0, lp).slice(0, 6);
    for (const earlyStopping of [false, "never"] as const) {
      const hyps = beamSearchGenerate((seqs) => seqs.map(toyLogits), prompt, {
        useBeamSearch: true,
        beamWidth: 256,
        n: 6,
        maxTokens: L,
        lengthPenalty: lp,
        earlyStopping,
      }, [0]);
      assert.deepEqual(hyps.map((h) => h.tokens), ref.map((r) => r.tokens), `earlyStopping ${earlyStopping}`);
      hyps.forEach((h, i) => assert.ok(Math.abs(h.score - ref[i].score) < 1e-9));
    }
  });
}

// ---- stories260k: beams vs a brute-force reference ----

const dir = `${sharedDir}models/stories260k`;
const storiesRef = JSON.parse(fs.readFileSync(`${dir}/reference_outputs.json`, "utf8")) as { prompt_ids: number[]; greedy_new_ids: number[] };
let cached: Engine | null = null;
function storiesEngine(): Engine {
  if (cached) return cached;
  const model = AutoModelForCausalLM.fromHuggingFace(dir);
  try {
    cached = buildSync(model, { maxBatchSize: 8, maxNumTokens: 256, gatherContextLogits: true });
    return cached;
  } finally {
    model.close();
  }
}

/** The beam driver's forward: last-position logits of each sequence via the runner's paged-KV generate. */
function lastLogits(runner: ModelRunner, seqs: number[][]): Float32Array[] {
  const out = runner.generate(seqs, { maxNewTokens: 1, endId: -1, outputGenerationLogits: true });
  return out.generationLogits!.map((l) => l[0]);
}

/** The reference's forward: one teacher-forced pass over the whole sequence, logits at every position. */
function allPositionLogits(session: Session, ids: number[]): Float32Array[] {
  const L = ids.length, bs = session.tokensPerBlock, nb = Math.ceil(L / bs);
  const V = session.engine.plan.attributes.vocabSize;
  const kv = session.createKvCache(nb);
  const out = { logits: new Float32Array(L * V) };
  const pos = Int32Array.from({ length: L }, (_, i) => i);
  session.run(
    {
      tokenIds: Int32Array.from(ids),
      positions: pos,
      seqStarts: Int32Array.of(0, L),
      blockTables: Int32Array.from({ length: nb }, (_, i) => i),
      maxBlocksPerSeq: nb,
      logitRows: pos,
    },
    out,
    kv,
  );
  return Array.from({ length: L }, (_, i) => out.logits.subarray(i * V, (i + 1) * V));
}

/**
 * Beam search by definition, no eos in play: the beams after step t are the W best of all one-token
 * extensions of the beams after step t-1, each scored by its full-sequence log-probability computed
 * from scratch. Asserts that no end id is among the best 2W (else the eos rules would apply).
 */
function bruteForceBeams(session: Session, prompt: number[], W: number, steps: number, eos: number): { tokens: number[]; sum: number }[] {
  let beams: { tokens: number[]; sum: number }[] = [{ tokens: [], sum: 0 }];
  for (let t = 0; t < steps; t++) {
    const cands: { tokens: number[]; sum: number }[] = [];
    for (const b of beams) {
      const rows = allPositionLogits(session, [...prompt, ...b.tokens]);
      let prefix = 0;
      b.tokens.forEach((tok, j) => (prefix += lsm(rows[prompt.length - 1 + j])[tok]));
      const next = lsm(rows[prompt.length - 1 + b.tokens.length]);
      next.forEach((lp, v) => cands.push({ tokens: [...b.tokens, v], sum: prefix + lp }));
    }
    cands.sort((a, b) => b.sum - a.sum);
    assert.ok(cands.slice(0, 2 * W).every((c) => c.tokens.at(-1) !== eos), "precondition: no eos among the best 2W");
    beams = cands.slice(0, W);
  }
  return beams;
}

test("stories260k: beam width 1 is greedy", () => {
  using runner = ModelRunner.fromEngine(storiesEngine());
  const [h] = beamSearchGenerate((s) => lastLogits(runner, s), storiesRef.prompt_ids, { useBeamSearch: true, beamWidth: 1, maxTokens: 8 }, [2]);
  assert.deepEqual(h.tokens, storiesRef.greedy_new_ids.slice(0, 8));
});

for (const [W, steps, prompt] of [[2, 6, [1, 403, 407, 261, 378]], [3, 5, [1, 403, 407, 261, 378]], [3, 5, [1, 351, 269]]] as const) {
  test(`stories260k: beam width ${W}, ${steps} tokens, prompt [${prompt}] matches the brute-force reference`, () => {
    const engine = storiesEngine();
    using runner = ModelRunner.fromEngine(engine);
    const hyps = beamSearchGenerate((s) => lastLogits(runner, s), [...prompt], { useBeamSearch: true, beamWidth: W, n: W, maxTokens: steps }, [2]);
    const ref = bruteForceBeams(runner.session, [...prompt], W, steps, 2);
    assert.deepEqual(hyps.map((h) => h.tokens), ref.map((r) => r.tokens));
    hyps.forEach((h, i) => {
      assert.equal(h.finishReason, "length");
      assert.ok(Math.abs(h.sumLogprob - ref[i].sum) < 1e-4, `beam ${i}: ${h.sumLogprob} vs ${ref[i].sum}`);
    });
  });
}
