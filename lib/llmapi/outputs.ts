import type { TokenLogprobs } from "../executor/logprobs.ts";

export type { TokenLogprobs } from "../executor/logprobs.ts";

/** Why a completion ended. */
export type FinishReason = "stop" | "length" | "abort" | "error";

/**
 * One generated sequence of a request (TensorRT-LLM's CompletionOutput).
 */
export interface CompletionOutput {
  readonly index: number;
  /** Detokenized text of `tokenIds` (empty when detokenize is off). */
  readonly text: string;
  readonly tokenIds: readonly number[];
  /** Set once the sequence has ended. */
  readonly finishReason: FinishReason | null;
  /** The stop token id or stop string that ended it, when one did. */
  readonly stopReason?: number | string | null;
  /** Text new since the previous output of a stream (the whole text in a non-streamed output). */
  readonly textDiff?: string;
  /** Token ids new since the previous output of a stream. */
  readonly tokenIdsDiff?: readonly number[];
  /** Sum of the generated tokens' logprobs (when logprobs or bestOf > n were asked for). */
  readonly cumulativeLogprob?: number | null;
  /** Per generated token: its logprob and the top-k alternatives (when `logprobs` was asked for). */
  readonly logprobs?: readonly TokenLogprobs[] | null;
}

/**
 * The result of one request (TensorRT-LLM's RequestOutput).
 */
export interface RequestOutput {
  readonly requestId: number;
  /** The prompt text (null when the prompt was given as token ids). */
  readonly prompt: string | null;
  readonly promptTokenIds: readonly number[];
  readonly outputs: readonly CompletionOutput[];
  readonly finished: boolean;
}
