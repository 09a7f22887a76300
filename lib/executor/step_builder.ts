/**
 * Host-side step input building: a scheduler plan → the packed StepInputs of one forward, and the
 * per-row sampling inputs. Pure host code.
 */
import type { SamplingInputs } from "../ir/sampling.ts";
import type { SamplingParams } from "./sampling_params.ts";
import type { StepInputs } from "../ir/step_io.ts";
import type { ScheduledChunk } from "./scheduler.ts";
import type { Sequence } from "./sequence.ts";

/** One logits row of a step: the sequence it samples for and, before a fork, which child. */
export interface StepRow {
  readonly seq: Sequence;
  /** Index of the sequence the row's token goes to (the child index before a fork, else seq.seqIndex). */
  readonly seqIndex: number;
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
}

/**
 * Packs the chunks, sequence after sequence. A chunk that reaches its sequence's last token asks
 * for `numRows` logits rows of that token (several when the prompt forks into n sequences); its
 * `promptRows` positions get rows after every sampling row, so the sampling rows are numbered as
 * they would be without them.
 */
export function prepareStepInputs(chunks: readonly ScheduledChunk[], maxBlocksPerSeq: number): PreparedStep {
  const T = chunks.reduce((a, c) => a + c.numTokens, 0);
  const tokenIds = new Int32Array(T); // [T]
  const positions = new Int32Array(T); // [T]
  const seqStarts = new Int32Array(chunks.length + 1); // [S + 1]
  const blockTables = new Int32Array(chunks.length * maxBlocksPerSeq); // [S, maxBlocksPerSeq]
  const logitRows: number[] = [];
  const promptLogitRows: number[] = [];
  const rows: StepRow[] = [];
  const promptRows: PromptRow[] = [];
  let t = 0;
  chunks.forEach((c, i) => {
    seqStarts[i] = t;
    const ids = c.seq.tokenIds;
    for (let p = c.start; p < c.start + c.numTokens; p++, t++) {
      tokenIds[t] = ids[p];
      positions[t] = p;
    }
    if (c.seq.blockTable.length > maxBlocksPerSeq) {
      throw new Error(`prepareStepInputs: sequence holds ${c.seq.blockTable.length} blocks, above maxBlocksPerSeq ${maxBlocksPerSeq}`);
    }
    blockTables.set(c.seq.blockTable, i * maxBlocksPerSeq);
    for (let r = 0; r < c.numRows; r++) {
      logitRows.push(t - 1);
      rows.push({ seq: c.seq, seqIndex: c.numRows > 1 ? r : c.seq.seqIndex });
    }
    const [from, to] = c.promptRows;
    for (let p = from; p < to; p++) {
      promptLogitRows.push(t - c.numTokens + (p - c.start));
      promptRows.push({ seq: c.seq, position: p });
    }
  });
  seqStarts[chunks.length] = t;
  logitRows.push(...promptLogitRows);
  return { inputs: { tokenIds, positions, seqStarts, blockTables, maxBlocksPerSeq, logitRows: Int32Array.from(logitRows) }, rows, promptRows };
}

/**
 * Sampling inputs of the rows: each row draws with its sequence's own seed words and the number of
 * tokens that sequence has generated as the counter, so a draw depends only on (request, sequence,
 * step) — not on batch mates, chunking, preemption or the sampling path (device or host).
 * `numExtraRows` more rows (prompt rows, whose samples are ignored) are greedy: the cheapest draw.
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
    s.step[r] = row.seq.numOutputTokens;
  });
  s.topP.fill(1, rows.length); // temperature 0, topK / minP off: argmax
  return s;
}
