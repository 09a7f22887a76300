/**
 * Overlapped decode steps (ExecutorConfig.overlapSteps, issue 16 item 3): in the steady state of decoding,
 * the executor enqueues step N + 1 before it reads step N's sampled ids, so the host's work on step N
 * (tokens, stop checks, detokenizing, outputs) and the scheduling and packing of step N + 2 run while the
 * device computes step N + 1. Step N + 1's token ids are step N's samples, copied on the device
 * (StepInputs.forwardedTokens); until they are read back each sequence holds a placeholder token.
 * A sequence that step N ends (a stop id, a stop string) already has a row in step N + 1: that row is
 * dropped. A sequence that step N ends by length (maxTokens, maxSeqLen) gets no placeholder, so no row.
 * Pure host code: which steps qualify, and the state of the step in flight.
 */
import type { PendingStep } from "../ir/step_io.ts";
import type { SamplingInputs } from "../ir/sampling.ts";
import type { RequestState } from "./request_state.ts";
import type { SchedulerOutput } from "./scheduler.ts";
import type { Sequence } from "./sequence.ts";
import type { StepRow } from "./step_builder.ts";

/** The token id a sequence holds for a sampled id not yet read back (any valid id: the device overwrites it). */
export const PLACEHOLDER_TOKEN = 0;

/** A decode step enqueued ahead whose sampled ids are not yet taken. */
export interface InFlightStep {
  readonly rows: readonly StepRow[];
  readonly sampling: SamplingInputs;
  /** [rows] filled by `pending.wait()`. */
  readonly ids: Int32Array;
  readonly pending: PendingStep;
  /** Logits row of each sequence of the step. */
  readonly rowOf: ReadonlyMap<Sequence, number>;
  /** Sequences holding a placeholder for this step's token (their last token id). */
  readonly placeholders: Set<Sequence>;
}

/**
 * Whether a request's rows may run ahead: its tokens need nothing the host computes from the logits
 * (host sampling, logprobs, logits, a grammar, beams) and its prompt has forked into its sequences.
 */
export function canOverlap(st: RequestState): boolean {
  return !st.host && !st.wantLogprobs && !st.wantGenerationLogits && st.guided === null && st.beam === null && st.group.isForked &&
    st.contextLogits === null && st.promptLogprobs === null;
}

/**
 * Whether a scheduled step may be enqueued ahead: one token and one sampling row per sequence, past the
 * prompt, no block copies, preemptions or failures, every request able to overlap (`stateOf`).
 */
export function isOverlapStep(plan: SchedulerOutput, stateOf: (seq: Sequence) => RequestState | undefined): boolean {
  if (plan.chunks.length === 0 || plan.blockCopies.length > 0 || plan.preempted.length > 0 || plan.failed.length > 0) return false;
  for (const c of plan.chunks) {
    if (c.numTokens !== 1 || c.numRows !== 1 || c.promptRows[0] !== c.promptRows[1] || c.start < c.seq.numPromptTokens || c.seq.numDraftTokens > 0) {
      return false;
    }
    const st = stateOf(c.seq);
    if (!st || !canOverlap(st)) return false;
  }
  return true;
}

/**
 * Whether the token a step samples for `seq` (whose last token is the step's input) surely ends it by
 * length: maxTokens output tokens, or maxSeqLen tokens. Such a sequence gets no placeholder (no next row).
 */
export function endsByLength(st: RequestState, seq: Sequence, maxSeqLen: number): boolean {
  return seq.numOutputTokens + 1 >= st.params.maxTokens || seq.numTokens + 1 >= maxSeqLen;
}
