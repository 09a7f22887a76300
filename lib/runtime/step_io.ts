import type { SamplingInputs } from "../backends/cpu/sampling.ts";

/**
 * One forward step's inputs: a packed batch of tokens from several sequences (prefill chunks and
 * decode tokens mixed) plus the paged-KV geometry. Host arrays; a device backend copies them in
 * with one host→device transfer.
 */
export interface StepInputs {
  /** [numTokens] token ids, sequence after sequence. */
  readonly tokenIds: Int32Array;
  /** [numTokens] absolute position of each token (its KV slot in its sequence). */
  readonly positions: Int32Array;
  /** [numSeqs + 1] start of each sequence's tokens in the packed batch; last = numTokens. */
  readonly seqStarts: Int32Array;
  /** [numSeqs * maxBlocksPerSeq] KV block ids of each sequence, in position order. */
  readonly blockTables: Int32Array;
  readonly maxBlocksPerSeq: number;
  /** [numRows] packed token index of each logits row wanted (e.g. each sequence's last token). */
  readonly logitRows: Int32Array;
  /** Per logits row sampling parameters; when absent, no sampling runs. */
  readonly sampling?: SamplingInputs;
}

/** Where a step's results go; each is optional and filled when present. */
export interface StepOutputs {
  /** [numRows * vocab] logits of the requested rows (float32). */
  logits?: Float32Array;
  /** [numRows] sampled token ids. */
  sampledIds?: Int32Array;
}
