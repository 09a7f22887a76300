import type { SamplingInputs } from "./sampling.ts";
import type { EnginePlan } from "./plan.ts";
import { ValidationError } from "../util/errors.ts";

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
  /** [numSeqs] LoRA adapter slot of each sequence (-1 = none); absent = no adapters this step. */
  readonly adapterIds?: Int32Array;
  /** The adapters `adapterIds` index (slot → weights; null = empty slot). Needed when `adapterIds` is given. */
  readonly loraSlots?: readonly (LoraAdapterWeights | null)[];
  /**
   * Some token attends to KV another token of this step writes: speculative verification packs a
   * sequence's tokens as consecutive one-token sequences over one block table, so the step runs as a
   * decode step (the same kernels, and bits, as decoding them one by one). A backend whose decode
   * attention writes a token's own KV inside the attention launch writes the step's KV first.
   * @default false
   */
  readonly readsStepKv?: boolean;
  /**
   * Token ids this step takes from the step launched just before it on the same session (pipelined
   * decode, `Session.launch`): token t with `rows[t] >= 0` is that step's sampled id of logits row
   * `rows[t]` (its `tokenIds[t]` is ignored), so the step can be enqueued before those ids are read back.
   */
  readonly forwardedTokens?: ForwardedTokens;
}

/**
 * A step enqueued with `Session.launch`: the device runs it while the host goes on; `wait()` blocks
 * until it is done and fills the outputs it was launched with (its sampled ids).
 */
export interface PendingStep {
  /** Blocks until the step is done and its outputs are filled. Idempotent. */
  wait(): void;
}

/** StepInputs.forwardedTokens: `from` must be the step launched last on the session. */
export interface ForwardedTokens {
  readonly from: PendingStep;
  /** [numTokens] logits row of `from` whose sampled id is this token, or -1 (the token is `tokenIds[t]`). */
  readonly rows: Int32Array;
}

/**
 * One LoRA delta on a (possibly fused) linear: output columns [outOffset, outOffset + outFeatures)
 * get `scaling · (x · aᵀ) · bᵀ` added (PEFT's lora_A / lora_B of one target module).
 */
export interface LoraSegment {
  readonly outOffset: number;
  readonly outFeatures: number;
  readonly rank: number;
  /** [rank, inFeatures] float32 (lora_A). */
  readonly a: Float32Array;
  /** [outFeatures, rank] float32 (lora_B). */
  readonly b: Float32Array;
  /** lora_alpha / r (or / sqrt(r) with rsLoRA). */
  readonly scaling: number;
}

/** An adapter's deltas by the engine weight name of the linear they apply to. */
export type LoraAdapterWeights = ReadonlyMap<string, readonly LoraSegment[]>;

/** Where a step's results go; each is optional and filled when present. */
export interface StepOutputs {
  /** [numRows * vocab] logits of the requested rows (float32). */
  logits?: Float32Array;
  /** [numRows] sampled token ids. */
  sampledIds?: Int32Array;
}

/**
 * Checks a step against the engine's profile and the KV cache (every backend runs this before a
 * forward): sizes, sequence ranges, positions inside maxSeqLen, block ids inside the cache, logits
 * rows inside the batch. Throws a ValidationError naming the field.
 */
export function validateStep(plan: EnginePlan, inp: StepInputs, numBlocks: number, tokensPerBlock: number, maxSeqLen: number): void {
  const T = inp.tokenIds.length, S = inp.seqStarts.length - 1;
  const bad = (field: string, msg: string, value: unknown): never => {
    throw new ValidationError(`Session.run: inputs.${field}: ${msg}`, field, value);
  };
  if (T === 0) bad("tokenIds", "empty batch", T);
  if (T > plan.maxTokens) bad("tokenIds", `${T} tokens exceed the engine's maxNumTokens ${plan.maxTokens}`, T);
  if (inp.logitRows.length > plan.maxSeqs) {
    bad("logitRows", `${inp.logitRows.length} rows exceed the engine's ${plan.maxSeqs} logit rows`, inp.logitRows.length);
  }
  if (inp.positions.length !== T) bad("positions", `length ${inp.positions.length} != tokenIds length ${T}`, inp.positions.length);
  if (inp.seqStarts[0] !== 0 || inp.seqStarts[S] !== T) bad("seqStarts", `must run from 0 to ${T}`, Array.from(inp.seqStarts));
  if (inp.blockTables.length < S * inp.maxBlocksPerSeq) bad("blockTables", `needs ${S} × ${inp.maxBlocksPerSeq} entries`, inp.blockTables.length);
  const bs = tokensPerBlock;
  for (let s = 0; s < S; s++) {
    for (let t = inp.seqStarts[s]; t < inp.seqStarts[s + 1]; t++) {
      const pos = inp.positions[t];
      if (pos < 0 || pos >= maxSeqLen) bad("positions", `position ${pos} of token ${t} is outside [0, maxSeqLen ${maxSeqLen})`, pos);
      const bi = (pos / bs) | 0;
      if (bi >= inp.maxBlocksPerSeq) bad("positions", `position ${pos} needs block slot ${bi} >= maxBlocksPerSeq ${inp.maxBlocksPerSeq}`, pos);
      const block = inp.blockTables[s * inp.maxBlocksPerSeq + bi];
      if (block < 0 || block >= numBlocks) bad("blockTables", `sequence ${s} block slot ${bi} holds ${block}, outside [0, ${numBlocks})`, block);
    }
  }
  for (const r of inp.logitRows) if (r < 0 || r >= T) bad("logitRows", `row ${r} outside [0, ${T})`, r);
}
