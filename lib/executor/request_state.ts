/**
 * What the executor loop keeps per request between steps: its params, its sequence group, the
 * output state of each sequence and, under beam search, the search. Pure host state.
 */
import type { IncrementalDetokenizer } from "../tokenizer/detokenizer.ts";
import type { BeamHypothesis, BeamSearchOptions, BeamSearchState } from "./beam_search.ts";
import type { GuidedRequest } from "./guided/request.ts";
import type { GenerationRequest } from "./config.ts";
import type { TokenLogprobs } from "./logprobs.ts";
import type { SamplingParams } from "./sampling_params.ts";
import type { Sequence, SequenceGroup } from "./sequence.ts";
import type { StopChecker } from "./stop_checker.ts";

/** Output state of one sequence. */
export interface SeqOutput {
  readonly detok: IncrementalDetokenizer | null;
  readonly checker: StopChecker;
  text: string;
  /** Characters / output tokens already sent in a stream. */
  sentText: number;
  sentTokens: number;
  readonly logprobs: TokenLogprobs[] | null;
  /** Raw logits row of each generated token (returnGenerationLogits). */
  readonly generationLogits: Float32Array[] | null;
}

/** Beam search of one request: the search state, the sequences holding its beams, rows waiting for the rest. */
export interface BeamRun {
  state: BeamSearchState;
  /** seqs[i] holds state.beams[i]. */
  seqs: Sequence[];
  /** Processed logits rows of beams whose step ran, until every beam has one. */
  readonly pending: Map<Sequence, Float32Array>;
  /** Their raw rows (returnGenerationLogits). */
  readonly pendingRaw: Map<Sequence, Float32Array>;
  /**
   * returnGenerationLogits: the raw rows behind each live beam and kept hypothesis, keyed by its
   * tokens (distinct within a search); else null.
   */
  generationLogits: Map<string, Float32Array[]> | null;
  readonly options: BeamSearchOptions;
  nextIndex: number;
  /** The best n hypotheses once the search is done. */
  hypotheses: BeamHypothesis[] | null;
}

/** One request in flight. */
export interface RequestState {
  readonly id: number;
  readonly request: GenerationRequest;
  readonly params: SamplingParams;
  readonly promptIds: readonly number[];
  readonly group: SequenceGroup;
  readonly streaming: boolean;
  readonly eosIds: readonly number[];
  readonly badWordIds: number[][];
  /** Rows need the host path (penalties, biases, callbacks, a grammar mask…). */
  readonly host: boolean;
  /** guidedDecoding: the grammar state of each sequence (rows masked on the host path when `host`, else by the sampler). */
  readonly guided: GuidedRequest | null;
  /** Logprobs are computed (asked for, or needed to rank bestOf > n). */
  readonly wantLogprobs: boolean;
  /** returnGenerationLogits: each sampling row's raw logits are kept. */
  readonly wantGenerationLogits: boolean;
  /** promptLogprobs: per prompt position (the first null), filled as their rows come back. */
  readonly promptLogprobs: (TokenLogprobs | null)[] | null;
  /** returnContextLogits: the raw logits row of each prompt position, filled as they come back. */
  readonly contextLogits: Float32Array[] | null;
  readonly outs: Map<Sequence, SeqOutput>;
  readonly beam: BeamRun | null;
}
