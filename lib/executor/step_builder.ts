/**
 * Step building: a scheduler plan → the packed StepInputs of one forward (through the runtime's
 * one step packer) and the per-row sampling inputs. A sequence may run any number of tokens in a
 * step and get logits rows at any of them; each row records the position it was read at, so the
 * output path never assumes one token per sequence. Pure host code.
 */
import type { SamplingInputs } from "../ir/sampling.ts";
import type { StepInputs } from "../ir/step_io.ts";
import { type PackChunk, packStep } from "../runtime/step_packer.ts";
import type { SamplingParams } from "./sampling_params.ts";
import type { ScheduledChunk } from "./scheduler.ts";
import type { Sequence } from "./sequence.ts";

/** One sampling row of a step: the sequence it samples for, the position it was read at, and (before a fork) which child. */
export interface StepRow {
  readonly seq: Sequence;
  /** Index of the sequence the row's token goes to (the child index before a fork, else seq.seqIndex). */
  readonly seqIndex: number;
  /** The token position whose logits the row holds (it predicts the token at position + 1). */
  readonly position: number;
}

/** A logits row of a prompt position, wanted for context logits / prompt logprobs (not sampled). */
export interface PromptRow {
  readonly seq: Sequence;
  /** The prompt position whose logits the row holds (they predict the token at position + 1). */
  readonly position: number;
}

/** A packed step and what each logits row is for. */
export interface PreparedStep {
  readonly inputs: Omit<StepInputs, "sampling">;
  /** Logits rows 0 … rows.length - 1: one per token to sample. */
  readonly rows: readonly StepRow[];
  /** Logits rows rows.length … : prompt positions (their samples are ignored). */
  readonly promptRows: readonly PromptRow[];
  /** The sequence of each packed sequence of `inputs` (a verify chunk packs as several). */
  readonly packedSeqs: readonly Sequence[];
}

/**
 * Positions of a chunk's sampling rows: `numRows` rows at its last token (several when the prompt
 * forks into n sequences before sampling). The rows of one sequence are adjacent and in position
 * order, so a chunk verifying several tokens at once would list each of its positions here.
 */
export function samplingPositions(c: ScheduledChunk): number[] {
  const last = c.start + c.numTokens - 1;
  const k = c.seq.numDraftTokens;
  // Speculative decoding: a row at the token before the drafts and at each draft.
  if (k > 0 && c.numRows === 1 + k) return Array.from({ length: k + 1 }, (_, i) => last - k + i);
  return new Array<number>(c.numRows).fill(last);
}

/** A speculative verify chunk: the last accepted token and every draft, a sampling row at each, no prompt rows. */
function isVerifyChunk(c: ScheduledChunk): boolean {
  const k = c.seq.numDraftTokens;
  return k > 0 && c.numTokens === 1 + k && c.numRows === 1 + k && c.promptRows[1] === c.promptRows[0];
}

/**
 * Packs the chunks, sequence after sequence. Sampling rows come first, numbered as they would be
 * without prompt rows; each chunk's `promptRows` positions get rows after every sampling row.
 * A speculative verify chunk packs as one-token sequences over the sequence's block table (marked
 * `readsStepKv`), so its step is a decode step the backend runs as such — a CUDA graph, and the
 * same rounding as decoding the tokens one by one — when the step's sequences stay within
 * `maxSeqs` (else the chunk packs as one multi-token sequence).
 */
export function prepareStepInputs(chunks: readonly ScheduledChunk[], maxBlocksPerSeq: number, maxSeqs = Infinity): PreparedStep {
  const rows: StepRow[] = [];
  const promptRows: PromptRow[] = [];
  const packedSeqs: Sequence[] = [];
  let numSplit = chunks.length;
  for (const c of chunks) if (isVerifyChunk(c)) numSplit += c.numTokens - 1;
  const split = numSplit > chunks.length && numSplit <= maxSeqs;
  const packed: PackChunk[] = [];
  for (const c of chunks) {
    const positions = samplingPositions(c);
    const isFork = c.seq.group.rowsFor(c.seq) > 1; // the prompt's rows, one per child to fork
    for (let r = 0; r < positions.length; r++) rows.push({ seq: c.seq, seqIndex: isFork ? r : c.seq.seqIndex, position: positions[r] });
    if (split && isVerifyChunk(c)) {
      for (const p of positions) {
        packed.push({ tokenIds: c.seq.tokenIds, start: p, numTokens: 1, blockTable: c.seq.blockTable, logitPositions: [p] });
        packedSeqs.push(c.seq);
      }
      continue;
    }
    const [from, to] = c.promptRows;
    const trailing: number[] = [];
    for (let p = from; p < to; p++) {
      trailing.push(p);
      promptRows.push({ seq: c.seq, position: p });
    }
    packed.push({
      tokenIds: c.seq.tokenIds,
      start: c.start,
      numTokens: c.numTokens,
      blockTable: c.seq.blockTable,
      logitPositions: positions,
      trailingLogitPositions: trailing,
    });
    packedSeqs.push(c.seq);
  }
  // Block tables as wide as this step's longest sequence needs (a backend reads only the slots of
  // its positions): for an engine of a long maxSeqLen, [S, maxBlocksPerSeq] would be megabytes per step.
  let width = 1;
  for (const c of chunks) width = Math.max(width, c.seq.blockTable.length);
  const inputs = packStep(packed, Math.min(maxBlocksPerSeq, width));
  return { inputs: split ? { ...inputs, readsStepKv: true } : inputs, rows, promptRows, packedSeqs };
}

/**
 * Sampling inputs of the rows: each row draws with its sequence's own seed words and, as the
 * counter, the number of tokens generated before the token it samples (position + 1 − prompt
 * length), so a draw depends only on (request, sequence, step) — not on batch mates, chunking,
 * preemption or the sampling path (device or host). `numExtraRows` more rows (prompt rows, whose
 * samples are ignored) are greedy: the cheapest draw.
 */
export function prepareSamplingInputs(rows: readonly StepRow[], paramsOf: (seq: Sequence) => SamplingParams, numExtraRows = 0): SamplingInputs {
  const R = rows.length + numExtraRows;
  const s: SamplingInputs = {
    temperature: new Float32Array(R),
    topK: new Int32Array(R),
    topP: new Float32Array(R),
    minP: new Float32Array(R),
    seed: new Uint32Array(2 * R),
    step: new Int32Array(R),
  };
  rows.forEach((row, r) => {
    const p = paramsOf(row.seq);
    s.temperature[r] = p.temperature;
    s.topK[r] = p.topK;
    s.topP[r] = p.topP;
    s.minP[r] = p.minP;
    const [lo, hi] = p.seedWords(row.seqIndex);
    s.seed[2 * r] = lo;
    s.seed[2 * r + 1] = hi;
    s.step[r] = row.position + 1 - row.seq.numPromptTokens;
  });
  s.topP.fill(1, rows.length); // temperature 0, topK / minP off: argmax
  return s;
}
