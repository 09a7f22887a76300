/**
 * Beam handling in the executor: collects each beam's processed logits row until every beam of
 * the request has one, steps the search (beam_search.ts), and re-forms the beams as sequences —
 * a beam continued once keeps its sequence, each further continuation forks it (KV blocks shared,
 * copied on write), a beam not continued is dropped (blocks freed). Pure host code.
 */
import { InternalError, RequestFailedError, ValidationError } from "../util/errors.ts";
import { type BeamSearchState, beamSearchStep, finalizeBeamSearch } from "./beam_search.ts";
import { processLogits } from "./logits_processor.ts";
import type { BeamRun, RequestState } from "./request_state.ts";
import { joinFields, maskingFields, rowProblem } from "./row_checks.ts";
import type { Scheduler } from "./scheduler.ts";
import type { StepRow } from "./step_builder.ts";

/**
 * Takes the rows [from, to) of a beam-search request (`logits` holds `rows.length` or more rows
 * of `V`). Throws a RequestFailedError when a row is not finite, and when the search ends with no
 * hypothesis (every candidate masked) a ValidationError naming the request's fields that banned
 * them (a RequestFailedError when none did).
 */
export function applyBeamRows(
  scheduler: Scheduler,
  st: RequestState,
  b: BeamRun,
  rows: readonly StepRow[],
  from: number,
  to: number,
  logits: Float32Array,
  V: number,
): void {
  const p = st.params;
  for (let r = from; r < to; r++) {
    const seq = rows[r].seq;
    const row = logits.slice(r * V, (r + 1) * V);
    if (b.generationLogits) b.pendingRaw.set(seq, row.slice());
    if (st.host) {
      processLogits(row, p, { promptIds: st.promptIds, outputIds: seq.outputIds, requestId: st.id, seqIndex: b.seqs.indexOf(seq) }, st.eosIds, st.badWordIds);
    }
    const problem = rowProblem(row);
    if (problem !== null && problem !== "masked") {
      throw new RequestFailedError(
        `beam search: request ${st.id}, beam ${b.seqs.indexOf(seq)} at output token ${seq.numOutputTokens}: the logits are ${problem}`,
      );
    }
    b.pending.set(seq, row);
  }
  if (b.seqs.some((s) => !b.pending.has(s))) return;
  const outputIndex = b.seqs[0].numOutputTokens;
  const next = beamSearchStep(b.state, b.seqs.map((s) => b.pending.get(s)!), b.options);
  if (b.generationLogits) b.generationLogits = nextBeamLogits(b.generationLogits, b.state, next, b.seqs.map((s) => b.pendingRaw.get(s)!));
  b.pending.clear();
  b.pendingRaw.clear();
  // Fork first (a child copies its parent's tokens before any is appended), then append.
  const continued = new Set<number>();
  const targets = next.beams.map((beam) => {
    if (!continued.has(beam.parent)) {
      continued.add(beam.parent);
      return b.seqs[beam.parent];
    }
    return scheduler.forkSequence(b.seqs[beam.parent], b.nextIndex++);
  });
  b.seqs.forEach((s, i) => {
    if (!continued.has(i)) scheduler.dropSequence(s);
  });
  next.beams.forEach((beam, j) => {
    targets[j].tokenIds.push(beam.tokens[beam.tokens.length - 1]);
    targets[j].cumulativeLogprob = beam.sumLogprob;
  });
  b.seqs = targets;
  b.state = next;
  if (next.done) {
    const hyps = finalizeBeamSearch(next, p.n); // every beam was dropped: the group is done
    if (hyps.length === 0) {
      const fields = maskingFields(p, outputIndex);
      if (fields.length === 0) {
        throw new RequestFailedError(`beam search: request ${st.id} ended with no hypothesis: every candidate token had probability 0 (the model's logits)`);
      }
      throw new ValidationError(
        `SamplingParams.${fields[0]}: beam search ended with no hypothesis at output token ${outputIndex} (request ${st.id}): ` +
          `${joinFields(fields)} together ban every candidate`,
        fields[0],
        undefined,
        { fields },
      );
    }
    b.hypotheses = hyps;
  }
}

/** A preempted beam search recomputes every beam, each giving its row again. */
export function resetBeamRows(b: BeamRun): void {
  b.pending.clear();
  b.pendingRaw.clear();
}

/**
 * Raw logits rows behind each beam and hypothesis of `next`: a new one extends its parent beam
 * (its tokens minus the last) of `prev` by that parent's row of this step; a hypothesis kept from
 * before keeps its rows.
 */
function nextBeamLogits(
  rowsOf: ReadonlyMap<string, Float32Array[]>,
  prev: BeamSearchState,
  next: BeamSearchState,
  stepRows: readonly Float32Array[],
): Map<string, Float32Array[]> {
  const parentIndex = new Map(prev.beams.map((b, i) => [b.tokens.join(","), i]));
  const out = new Map<string, Float32Array[]>();
  for (const { tokens } of [...next.beams, ...next.finished]) {
    const key = tokens.join(",");
    if (out.has(key)) continue;
    const kept = rowsOf.get(key); // a hypothesis finished at an earlier step (live beams never end on an end id)
    if (kept) {
      out.set(key, kept);
      continue;
    }
    const parentKey = tokens.slice(0, -1).join(",");
    const i = parentIndex.get(parentKey);
    if (i === undefined) throw new InternalError(`beam search: no parent beam for hypothesis [${key}] (a bug)`);
    out.set(key, [...(rowsOf.get(parentKey) ?? []), stepRows[i]]);
  }
  return out;
}
