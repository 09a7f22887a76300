/**
 * The token masks of one step's guided rows for the sampler (`SamplingInputs.tokenMasks`): each
 * guided sequence whose mask goes to the sampler gets one mask (the fork rows of a prompt share
 * theirs), written by its matcher when the backend asks — on CUDA after the step's forward pass was
 * enqueued, so the grammar work overlaps the GPU. Before its mask, a sequence's matcher accepts the
 * token of the previous step (deferred acceptance, request.ts), so that work overlaps too. A mask that
 * allows nothing fails its request only; a sequence whose previous token completed the grammar is
 * reported in `terminated` (the loop ends it and drops this step's token).
 */
import type { TokenMasks } from "../../ir/sampling.ts";
import { ValidationError } from "../../util/errors.ts";
import type { RequestState } from "../request_state.ts";
import type { StepRow } from "../step_builder.ts";

/** A step's masks and what computing them found. */
export interface GuidedStepMasks {
  readonly masks: TokenMasks;
  /** Requests whose mask could not be made (filled after the masks were computed), with the reason. */
  readonly failed: Map<number, Error>;
  /** Sequences whose previous token completed the grammar (found while computing the masks): they end now. */
  readonly terminated: { readonly st: RequestState; readonly seq: StepRow["seq"] }[];
  /** Host time spent computing the masks (ms; 0 until the backend asked for them). */
  fillMs: number;
}

/**
 * Masks for the rows of guided requests that are not on the host path (`!st.host`), or null when
 * the step has none. `numRows`: every logits row of the step (rows after `rows` are unmasked).
 *
 * @example
 * ```ts
 * const gm = guidedStepMasks(rows, stateOf, V, numRows);
 * session.run({ ...inputs, sampling: gm ? { ...sampling, tokenMasks: gm.masks } : sampling }, out, kv);
 * for (const [id, e] of gm?.failed ?? []) fail(id, e);
 * ```
 */
export function guidedStepMasks(
  rows: readonly StepRow[],
  stateOf: (seq: StepRow["seq"]) => RequestState | undefined,
  vocabSize: number,
  numRows: number,
): GuidedStepMasks | null {
  const rowMask = new Int32Array(numRows).fill(-1);
  const owners: { st: RequestState; seq: StepRow["seq"] }[] = [];
  for (let r = 0; r < rows.length; r++) {
    const st = stateOf(rows[r].seq);
    if (!st?.guided || st.host) continue;
    const seq = rows[r].seq;
    if (r > 0 && rows[r - 1].seq === seq && rowMask[r - 1] >= 0 && !seq.group.isForked) {
      rowMask[r] = rowMask[r - 1]; // the prompt's rows, one per child to fork: the grammar's start for each
      continue;
    }
    rowMask[r] = owners.length;
    owners.push({ st, seq });
  }
  if (owners.length === 0) return null;
  const words = Math.ceil(vocabSize / 32);
  const failed = new Map<number, Error>();
  const terminated: GuidedStepMasks["terminated"] = [];
  const result: GuidedStepMasks = {
    failed,
    terminated,
    fillMs: 0,
    masks: {
      words,
      rowMask,
      count: owners.length,
      masks: (into: Int32Array): void => {
        const t0 = performance.now();
        owners.forEach(({ st, seq }, i) => {
          try {
            const r = st.guided!.writeMask(seq, into, i * words);
            if (r === "terminated") terminated.push({ st, seq });
            else if (r === "none") {
              throw new ValidationError(
                "SamplingParams.guidedDecoding: no token is allowed at this step (the grammar allows no id of this vocabulary)",
                "guidedDecoding",
                st.guided!.params.kind,
              );
            }
          } catch (e) {
            failed.set(st.id, e as Error);
            into.fill(-1, i * words, (i + 1) * words); // sampled, then dropped with the request
          }
        });
        result.fillMs += performance.now() - t0;
      },
    },
  };
  return result;
}
