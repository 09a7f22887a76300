// The one step packer (lib/runtime/step_packer.ts) with several tokens per sequence: a hand-built
// multi-token decode step (as speculative decoding verifies drafts) gives, row for row, the logits
// of single-token steps — on the CPU session of stories260k (or the test backend).
import * as fs from "node:fs";
import { buildSync } from "../lib/builder/builder.ts";
import { AutoModelForCausalLM } from "../lib/models/llama.ts";
import { Session } from "../lib/runtime/session.ts";
import { packStep } from "../lib/runtime/step_packer.ts";
import { InternalError } from "../lib/util/errors.ts";
import { assert, sharedDir, test, testBackend, testBuild } from "./harness.ts";

const dir = `${sharedDir}models/stories260k`;
const ref = JSON.parse(fs.readFileSync(`${dir}/reference_outputs.json`, "utf8")) as { prompt_ids: number[]; greedy_new_ids: number[] };
const model = AutoModelForCausalLM.fromHuggingFace(dir);
const engine = buildSync(model, { maxBatchSize: 8, maxNumTokens: 64, tokensPerBlock: 4, maxSeqLen: 64, ...testBuild });
model.close();
const V = engine.plan.attributes.vocabSize;
const MAXB = 16;

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** Runs one packed step and returns its logits rows. */
function run(session: Session, kv: ReturnType<Session["createKvCache"]>, step: ReturnType<typeof packStep>): Float32Array[] {
  const R = step.logitRows.length;
  const out = { logits: new Float32Array(R * V) };
  session.run(step, out, kv);
  return Array.from({ length: R }, (_, r) => out.logits.slice(r * V, (r + 1) * V));
}

test("a multi-token decode step (3 tokens of one sequence, 1 of another) gives each row the logits of single-token steps", () => {
  using session = Session.fromSerializedEngine(engine, { backend: testBackend });
  const a = [...ref.prompt_ids, ...ref.greedy_new_ids.slice(0, 3)]; // prompt, then 3 "draft" tokens
  const b = [1, 403, 407, 261, 378, 300];
  const L = ref.prompt_ids.length;
  const blocksA = [0, 1, 2, 3, 4, 5, 6, 7].slice(0, Math.ceil(a.length / 4));
  const blocksB = [8, 9];

  // Reference: prefill each prompt, then one token per step.
  const single: Float32Array[] = [];
  {
    using kv = session.createKvCache(MAXB);
    run(session, kv, packStep([{ tokenIds: a, start: 0, numTokens: L, blockTable: blocksA, logitPositions: [L - 1] }], 8));
    for (let p = L; p < a.length; p++) {
      single.push(run(session, kv, packStep([{ tokenIds: a, start: p, numTokens: 1, blockTable: blocksA, logitPositions: [p] }], 8))[0]);
    }
    run(session, kv, packStep([{ tokenIds: b, start: 0, numTokens: 5, blockTable: blocksB }], 8));
    single.push(run(session, kv, packStep([{ tokenIds: b, start: 5, numTokens: 1, blockTable: blocksB, logitPositions: [5] }], 8))[0]);
  }

  // One step: the 3 tokens of `a` with a row at each, beside the one decode token of `b`.
  using kv = session.createKvCache(MAXB);
  run(
    session,
    kv,
    packStep([
      { tokenIds: a, start: 0, numTokens: L, blockTable: blocksA, logitPositions: [L - 1] },
      { tokenIds: b, start: 0, numTokens: 5, blockTable: blocksB },
    ], 8),
  );
  const step = packStep([
    { tokenIds: a, start: L, numTokens: 3, blockTable: blocksA, logitPositions: [L, L + 1, L + 2] },
    { tokenIds: b, start: 5, numTokens: 1, blockTable: blocksB, logitPositions: [5] },
  ], 8);
  assert.deepEqual(Array.from(step.seqStarts), [0, 3, 4]);
  assert.deepEqual(Array.from(step.logitRows), [0, 1, 2, 3]);
  assert.deepEqual(Array.from(step.positions), [L, L + 1, L + 2, 5]);
  const multi = run(session, kv, step);
  assert.equal(multi.length, 4);
  const tol = testBackend === "cpu" ? 1e-5 : 2e-3;
  multi.forEach((row, i) => {
    const d = maxAbsDiff(row, single[i]);
    assert.ok(d <= tol, `row ${i}: max abs diff ${d} > ${tol}`);
  });
  // The rows verify the drafts: each row's argmax is the next greedy token.
  const argmax = (x: Float32Array) => x.indexOf(Math.max(...x));
  assert.deepEqual(multi.slice(0, 3).map(argmax), ref.greedy_new_ids.slice(1, 4));
});

test("packStep: trailing rows come after every chunk's rows; repeated positions give repeated rows; bad chunks are InternalErrors", () => {
  const ids = [5, 6, 7, 8, 9];
  const s = packStep([
    { tokenIds: ids, start: 0, numTokens: 3, blockTable: [2], logitPositions: [2, 2], trailingLogitPositions: [0, 1] },
    { tokenIds: ids, start: 3, numTokens: 2, blockTable: [3, 4], logitPositions: [4] },
  ], 2);
  assert.deepEqual(Array.from(s.tokenIds), ids);
  assert.deepEqual(Array.from(s.logitRows), [2, 2, 4, 0, 1]);
  assert.deepEqual(Array.from(s.blockTables), [2, 0, 3, 4]);
  assert.throws(
    () => packStep([{ tokenIds: ids, start: 0, numTokens: 2, blockTable: [0], logitPositions: [3] }], 1),
    (e: Error) => e instanceof InternalError && /position 3, outside \[0, 2\)/.test(e.message),
  );
  assert.throws(() => packStep([{ tokenIds: ids, start: 4, numTokens: 2, blockTable: [0] }], 1), InternalError);
  assert.throws(() => packStep([{ tokenIds: ids, start: 0, numTokens: 1, blockTable: [0, 1] }], 1), /above maxBlocksPerSeq 1/);
});
