/**
 * The one step packer: sequences' token slices → the packed StepInputs of one forward. Each slice
 * may hold any number of tokens (a prefill chunk, one decode token, or several tokens to verify at
 * once, as speculative decoding does) and asks for logits rows at any of its positions.
 * ModelRunner and the executor's step builder both pack through here. Pure host code.
 */
import type { StepInputs } from "../ir/step_io.ts";
import { InternalError } from "../util/errors.ts";

/** The tokens of one sequence that run in a step. */
export interface PackChunk {
  /** The sequence's token ids (prompt, generated and draft tokens). */
  readonly tokenIds: ArrayLike<number>;
  /** Tokens [start, start + numTokens) run; their KV lands at those positions. */
  readonly start: number;
  readonly numTokens: number;
  /** KV block ids of the sequence in position order (covering start + numTokens - 1). */
  readonly blockTable: ArrayLike<number>;
  /**
   * Positions in [start, start + numTokens) that get a logits row, in row order; a position may
   * repeat (one row per child when a prompt forks into n sequences). @default []
   */
  readonly logitPositions?: readonly number[];
  /** Positions whose rows come after every chunk's `logitPositions` rows (prompt logits). @default [] */
  readonly trailingLogitPositions?: readonly number[];
}

/**
 * Packs the chunks sequence after sequence. Logits rows are numbered chunk by chunk in
 * `logitPositions` order, then chunk by chunk in `trailingLogitPositions` order.
 *
 * @example
 * ```ts
 * // Verify three tokens of one sequence in one step: a logits row at each.
 * const step = packStep([{ tokenIds: ids, start: 10, numTokens: 3, blockTable: [0, 1], logitPositions: [10, 11, 12] }], 2);
 * session.run({ ...step, sampling }, out, kv);
 * ```
 */
export function packStep(chunks: readonly PackChunk[], maxBlocksPerSeq: number): Omit<StepInputs, "sampling"> {
  let T = 0;
  for (const c of chunks) T += c.numTokens;
  const tokenIds = new Int32Array(T); // [T]
  const positions = new Int32Array(T); // [T]
  const seqStarts = new Int32Array(chunks.length + 1); // [S + 1]
  const blockTables = new Int32Array(chunks.length * maxBlocksPerSeq); // [S, maxBlocksPerSeq], unused slots 0
  const logitRows: number[] = [];
  const trailing: number[] = [];
  let t = 0;
  // A loop without closures: this runs for every sequence of every step (no host garbage a sequence).
  for (let i = 0; i < chunks.length; i++) {
    const c = chunks[i];
    const end = c.start + c.numTokens;
    if (c.start < 0 || c.numTokens <= 0 || end > c.tokenIds.length) {
      throw new InternalError(`packStep: chunk ${i} runs tokens [${c.start}, ${end}) of a sequence of ${c.tokenIds.length}`);
    }
    if (c.blockTable.length > maxBlocksPerSeq) {
      throw new InternalError(`packStep: chunk ${i}'s sequence holds ${c.blockTable.length} blocks, above maxBlocksPerSeq ${maxBlocksPerSeq}`);
    }
    seqStarts[i] = t;
    for (let p = c.start; p < end; p++, t++) {
      tokenIds[t] = c.tokenIds[p];
      positions[t] = p;
    }
    blockTables.set(c.blockTable, i * maxBlocksPerSeq);
    const base = t - c.numTokens - c.start; // packed index of position p is base + p
    if (c.logitPositions) { for (const p of c.logitPositions) logitRows.push(base + rowPosition(c, i, p)); }
    if (c.trailingLogitPositions) { for (const p of c.trailingLogitPositions) trailing.push(base + rowPosition(c, i, p)); }
  }
  seqStarts[chunks.length] = t;
  logitRows.push(...trailing);
  return { tokenIds, positions, seqStarts, blockTables, maxBlocksPerSeq, logitRows: Int32Array.from(logitRows) };
}

/** `p`, checked to lie in chunk `i`'s tokens. */
function rowPosition(c: PackChunk, i: number, p: number): number {
  const end = c.start + c.numTokens;
  if (!(p >= c.start && p < end)) throw new InternalError(`packStep: chunk ${i} asks for a logits row at position ${p}, outside [${c.start}, ${end})`);
  return p;
}
