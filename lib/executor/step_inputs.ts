/**
 * Host-side step input building: a scheduler plan → the packed StepInputs of one forward, and the
 * per-row sampling inputs. Pure host code.
 */
import type { SamplingInputs } from "../backends/cpu/sampling.ts";
import type { SamplingParams } from "../llmapi/sampling_params.ts";
import type { StepInputs } from "../runtime/step_io.ts";
import type { ScheduledChunk } from "./scheduler.ts";
import type { Sequence } from "./sequence.ts";

/** One logits row of a step: the sequence it samples for and, before a fork, which child. */
export interface StepRow {
  readonly seq: Sequence;
  /** Index of the sequence the row's token goes to (the child index before a fork, else seq.seqIndex). */
  readonly seqIndex: number;
}

/** A packed step and what each logits row is for. */
export interface PreparedStep {
  readonly inputs: Omit<StepInputs, "sampling">;
  readonly rows: readonly StepRow[];
}

/**
 * Packs the chunks, sequence after sequence. A chunk that reaches its sequence's last token asks
 * for `numRows` logits rows of that token (several when the prompt forks into n sequences).
 */
export function prepareStepInputs(chunks: readonly ScheduledChunk[], maxBlocksPerSeq: number): PreparedStep {
  const T = chunks.reduce((a, c) => a + c.numTokens, 0);
  const tokenIds = new Int32Array(T); // [T]
  const positions = new Int32Array(T); // [T]
  const seqStarts = new Int32Array(chunks.length + 1); // [S + 1]
  const blockTables = new Int32Array(chunks.length * maxBlocksPerSeq); // [S, maxBlocksPerSeq]
  const logitRows: number[] = [];
  const rows: StepRow[] = [];
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
  });
  seqStarts[chunks.length] = t;
  return { inputs: { tokenIds, positions, seqStarts, blockTables, maxBlocksPerSeq, logitRows: Int32Array.from(logitRows) }, rows };
}

/**
 * Sampling inputs of the rows: each row draws with its sequence's own seed words and the number of
 * tokens that sequence has generated as the counter, so a draw depends only on (request, sequence,
 * step) — not on batch mates, chunking, preemption or the sampling path (device or host).
 */
export function prepareSamplingInputs(rows: readonly StepRow[], paramsOf: (seq: Sequence) => SamplingParams): SamplingInputs {
  const R = rows.length;
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
  return s;
}
