/**
 * A step's results → tokens: the prompt rows kept as context logits / prompt logprobs, and each
 * sampling row turned into a token (host logits processing and re-sampling when the request needs
 * it, logprobs, checks that the row could be sampled), then handed to its sequence — forking the
 * prompt into its n sequences on the first token. Rows of one sequence may be several (tokens
 * verified together); they are accepted in position order. Pure host code.
 */
import { sampleRow, type SamplingInputs } from "../ir/sampling.ts";
import { InternalError, RequestFailedError, UnsupportedError } from "../util/errors.ts";
import { processLogits } from "./logits_processor.ts";
import { type TokenLogprobs, tokenLogprobs } from "./logprobs.ts";
import type { AcceptedToken, OutputBuilder } from "./output_builder.ts";
import type { RequestState } from "./request_state.ts";
import { rowFailure, rowProblem, rowProblemMessage } from "./row_checks.ts";
import type { Scheduler } from "./scheduler.ts";
import type { Sequence } from "./sequence.ts";
import type { PromptRow, StepRow } from "./step_builder.ts";

/**
 * Chooses the token of each row [from, to) of one request (non-beam). `logits` (`V` per row) is
 * present when some request of the step needed rows on the host. Throws when a row cannot be
 * sampled: a ValidationError naming the fields when the request's own bans left no id, else a
 * RequestFailedError (NaN or infinite logits).
 */
export function chooseTokens(
  st: RequestState,
  rows: readonly StepRow[],
  from: number,
  to: number,
  sampledIds: Int32Array,
  logits: Float32Array | undefined,
  sampling: SamplingInputs,
  V: number,
): AcceptedToken[] {
  const p = st.params;
  const out: AcceptedToken[] = [];
  for (let r = from; r < to; r++) {
    const { seq, seqIndex, position } = rows[r];
    const outputIndex = position + 1 - seq.numPromptTokens;
    let token = sampledIds[r];
    let lp: TokenLogprobs | null = null;
    const raw = logits && st.wantGenerationLogits ? logits.slice(r * V, (r + 1) * V) : null;
    if (logits && (st.host || st.wantLogprobs)) {
      const row = logits.subarray(r * V, (r + 1) * V);
      if (st.host) {
        processLogits(
          row,
          p,
          { promptIds: st.promptIds, outputIds: seq.tokenIds.slice(seq.numPromptTokens, position + 1), requestId: st.id, seqIndex },
          st.eosIds,
          st.badWordIds,
        );
        if (st.guided) {
          // The matcher is at the sequence's last token; a later row of the same sequence (tokens verified together) is not.
          if (r > from && rows[r - 1].seq === seq && seq.group.isForked) {
            throw new UnsupportedError(
              "SamplingParams.guidedDecoding: several rows of one sequence in a step (speculative decoding) are not supported",
              "guidedDecoding",
            );
          }
          st.guided.maskRow(seq, row);
        }
        const problem = rowProblem(row);
        if (problem) throw rowFailure(problem, p, st.id, seqIndex, outputIndex);
        token = sampleRow(row, 0, V, sampling, r);
      }
      if (st.wantLogprobs) lp = tokenLogprobs(row, token, p.logprobs ?? 0);
    }
    if (!(token >= 0 && token < V)) {
      // The sampler found no finite maximum: the model's logits are NaN or infinite.
      const problem = logits ? rowProblem(logits.subarray(r * V, (r + 1) * V)) : null;
      throw new RequestFailedError(
        problem
          ? rowProblemMessage(problem, st.id, seqIndex, outputIndex)
          : `request ${st.id}, sequence ${seqIndex}, output token ${outputIndex}: the sampler found no finite logit (NaN or infinite model output; check the weights)`,
      );
    }
    out.push({ token, logprobs: lp, raw });
  }
  return out;
}

/**
 * Hands the tokens of rows [from, to) to their sequences: before the fork the prompt's rows go one
 * to each child; after it, each sequence takes its rows' tokens in position order.
 */
export function acceptTokens(
  scheduler: Scheduler,
  outputs: OutputBuilder,
  st: RequestState,
  rows: readonly StepRow[],
  from: number,
  to: number,
  tokens: readonly AcceptedToken[],
): void {
  const first = rows[from].seq;
  if (!first.group.isForked) {
    const children = scheduler.fork(first.group);
    if (children.length !== to - from) throw new InternalError(`executor: ${to - from} rows for a prompt forking into ${children.length} sequences (a bug)`);
    for (let i = 0; i < children.length; i++) outputs.appendTokens(st, children[i], [tokens[i]]);
    return;
  }
  let i = from;
  while (i < to) {
    const seq: Sequence = rows[i].seq;
    let end = i + 1;
    while (end < to && rows[end].seq === seq) end++;
    // Rows of one sequence cover consecutive positions ending at its last token.
    if (rows[end - 1].position !== seq.numTokens - 1) {
      throw new InternalError(
        `executor: sequence ${seq.seqIndex} of request ${st.id} got a row at position ${rows[end - 1].position}, not at its last token ${
          seq.numTokens - 1
        } (a bug)`,
      );
    }
    outputs.appendTokens(st, seq, end - i === tokens.length ? tokens : tokens.slice(i - from, end - from));
    i = end;
  }
}

/**
 * Keeps the raw logits of one prompt position (`row` predicts the token after `position`):
 * context logits and prompt logprobs. Rows come back in position order.
 */
export function takePromptRow(st: RequestState, position: number, row: Float32Array): void {
  const g = st.group;
  if (position !== g.promptLogitsFrom) {
    throw new InternalError(`prompt logits of position ${position} came back while ${g.promptLogitsFrom} was expected (a bug)`);
  }
  if (st.contextLogits) st.contextLogits[position] = row.slice();
  const k = st.params.promptLogprobs;
  if (st.promptLogprobs && k !== undefined && position + 1 < g.numPromptTokens) {
    st.promptLogprobs[position + 1] = tokenLogprobs(row, st.promptIds[position + 1], k);
  }
  g.promptLogitsFrom = position + 1;
}

/**
 * Keeps the raw logits of prompt positions: the prompt rows (logits row R + i for promptRows[i])
 * and, for the prompt's last position, the first sampling row of the prompt's sequence. A request
 * whose row cannot be taken goes to `onError` (the others go on).
 */
export function takePromptRows(
  rows: readonly StepRow[],
  promptRows: readonly PromptRow[],
  logits: Float32Array,
  V: number,
  stateOf: (requestId: number) => RequestState | undefined,
  onError: (st: RequestState, e: unknown) => void,
): void {
  const take = (seq: Sequence, position: number, row: number): void => {
    const st = stateOf(seq.requestId);
    if (!st) return;
    try {
      takePromptRow(st, position, logits.subarray(row * V, (row + 1) * V));
    } catch (e) {
      onError(st, e);
    }
  };
  promptRows.forEach((pr, i) => take(pr.seq, pr.position, rows.length + i));
  rows.forEach((r, i) => {
    if (isPromptLastRow(r)) take(r.seq, r.position, i);
  });
}

/** A sampling row of the prompt's sequence that still owes the prompt's last position its logits. */
export function isPromptLastRow(row: StepRow): boolean {
  return row.position === row.seq.numPromptTokens - 1 && row.seq.group.promptLogitsFrom === row.position;
}
