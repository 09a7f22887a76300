/**
 * GPU: Session.launch (issue 16 item 3's overlapped decode steps). A chain of decode steps enqueued one ahead of
 * the host — each step's token ids copied on the device from the previous step's sampled ids
 * (StepInputs.forwardedTokens), rows reordered and some sequences leaving — gives the ids of the same steps run
 * one by one with the ids read back in between; a `from` that is not the last launched step is refused. The same
 * with zeroCopyStaging (stage_in / stage_out kernels instead of the stream copies), graphs and eager steps.
 */
import * as fs from "node:fs";
import { buildSync } from "../../lib/builder/builder.ts";
import { AutoModelForCausalLM } from "../../lib/models/llama.ts";
import { Session, type StepInputs } from "../../lib/runtime/session.ts";
import { ValidationError } from "../../lib/util/errors.ts";
import { assert, sharedDir } from "../harness.ts";
import { gpuTest } from "./gpu.ts";

const dir = `${sharedDir}models/stories260k`;
const have = fs.existsSync(`${dir}/config.json`);

/** One decode step of `seqs` (sequence s at position pos[s] with token ids[s], blocks [8s, 8s + 8)). */
function decode(seqs: number[], ids: Int32Array, pos: Int32Array): StepInputs {
  const n = seqs.length;
  return {
    tokenIds: Int32Array.from(seqs, (s) => ids[s]),
    positions: Int32Array.from(seqs, (s) => pos[s]),
    seqStarts: Int32Array.from({ length: n + 1 }, (_, i) => i),
    blockTables: Int32Array.from({ length: n * 8 }, (_, i) => 8 * seqs[Math.floor(i / 8)] + (i % 8)),
    maxBlocksPerSeq: 8,
    logitRows: Int32Array.from({ length: n }, (_, i) => i),
    sampling: {
      temperature: Float32Array.from(seqs, (s) => (s % 3 === 0 ? 0.8 : 0)),
      topK: new Int32Array(n),
      topP: new Float32Array(n).fill(1),
      minP: new Float32Array(n),
      seed: Uint32Array.from({ length: 2 * n }, (_, i) => 7 * seqs[i >> 1] + (i & 1)),
      step: Int32Array.from(seqs, (s) => pos[s]),
    },
  };
}

gpuTest(`Session.launch: decode steps enqueued ahead with device-forwarded token ids equal steps run one by one${have ? "" : " (no stories260k)"}`, () => {
  if (!have) return;
  const model = AutoModelForCausalLM.fromHuggingFace(dir);
  const engine = buildSync(model, { backend: "cuda", dtype: "bfloat16", maxBatchSize: 32, maxNumTokens: 512, maxSeqLen: 64, tokensPerBlock: 8 });
  model.close();
  const S = 24;
  // Which sequences each step runs: all, then some leave and the order changes (several forwarded runs).
  const plan = Array.from({ length: 30 }, (_, k) => {
    const all = Array.from({ length: S }, (_, s) => s);
    if (k < 8) return all;
    if (k < 16) return all.filter((s) => s % 5 !== 2);
    return all.filter((s) => s % 5 !== 2 && s % 7 !== 3).reverse();
  });
  const runChain = (ahead: boolean, opts: { zeroCopyStaging?: boolean; cudaGraphs?: boolean } = {}): number[][] => {
    using session = Session.fromSerializedEngine(engine, { backend: "cuda", ...opts });
    const kv = session.createKvCache(8 * S + 8);
    const ids = Int32Array.from({ length: S }, (_, s) => 1 + ((s * 37) % 400)), pos = new Int32Array(S);
    const out: number[][] = [];
    let prev: { step: ReturnType<Session["launch"]>; seqs: number[]; ids: Int32Array } | null = null;
    for (const seqs of plan) {
      const inp = decode(seqs, ids, pos);
      const got = new Int32Array(seqs.length);
      if (!ahead) {
        session.run(inp, { sampledIds: got }, kv);
        seqs.forEach((s, r) => (ids[s] = got[r]));
        out.push([...got]);
      } else {
        // Token ids from the previous step's rows (not yet read back), then that step's ids taken.
        const rows = prev ? Int32Array.from(seqs, (s) => prev!.seqs.indexOf(s)) : undefined;
        const step = session.launch(rows ? { ...inp, forwardedTokens: { from: prev!.step, rows } } : inp, { sampledIds: got }, kv);
        if (prev) {
          prev.step.wait();
          prev.seqs.forEach((s, r) => (ids[s] = prev!.ids[r]));
          out.push([...prev.ids]);
        }
        prev = { step, seqs, ids: got };
      }
      for (const s of seqs) pos[s]++;
    }
    if (prev) {
      prev.step.wait();
      out.push([...prev.ids]);
      // A step whose forwarded tokens come from an older step is refused.
      const stale = decode([0], ids, pos);
      assert.throws(
        () => session.launch({ ...stale, forwardedTokens: { from: { wait: () => {} }, rows: Int32Array.of(0) } }, { sampledIds: new Int32Array(1) }, kv),
        ValidationError,
      );
    }
    kv.dispose();
    return out;
  };
  // The stream-copy staging first (zeroCopyStaging off), then the stage_in / stage_out kernels (the default).
  const oneByOne = runChain(false, { zeroCopyStaging: false }), ahead = runChain(true, { zeroCopyStaging: false });
  assert.deepEqual(ahead, oneByOne);
  assert.ok(new Set(oneByOne.flat()).size > 20, "the steps sample varied ids");
  for (const cudaGraphs of [true, false]) {
    const ref = cudaGraphs ? oneByOne : runChain(false, { cudaGraphs, zeroCopyStaging: false });
    assert.deepEqual(runChain(true, { zeroCopyStaging: true, cudaGraphs }), ref, `zeroCopyStaging, launched ahead, cudaGraphs ${cudaGraphs}`);
    assert.deepEqual(runChain(false, { zeroCopyStaging: true, cudaGraphs }), ref, `zeroCopyStaging, one by one, cudaGraphs ${cudaGraphs}`);
  }
});
