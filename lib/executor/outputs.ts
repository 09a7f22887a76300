import type { TokenLogprobs } from "./logprobs.ts";

export type { TokenLogprobs } from "./logprobs.ts";

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
  /**
   * With `returnGenerationLogits`: per generated token, the logits row `[vocab]` it was chosen from
   * — the model's raw output, before logits processors, penalties, biases and temperature. Set on
   * the final output only (null on intermediate streamed outputs).
   */
  readonly generationLogits?: readonly Float32Array[] | null;
  /**
   * With `guidedDecoding` json / jsonObject: the output parsed and validated (by the zod schema,
   * transforms included, or the JSON Schema). Set on the final output when the grammar completed;
   * undefined when maxTokens or a stop string ended it first, or validation failed.
   */
  readonly parsed?: unknown;
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
  /**
   * With `promptLogprobs: k` (vLLM): per prompt token, its logprob given the tokens before it and
   * the k most likely alternatives there; the first entry is null (nothing precedes it). From the
   * raw logits (no processors). Set on the final output only (null if the request was aborted
   * before its whole prompt was computed).
   */
  readonly promptLogprobs?: readonly (TokenLogprobs | null)[] | null;
  /**
   * With `returnContextLogits` (TensorRT-LLM): the raw logits row `[vocab]` of every prompt
   * position, `promptTokenIds.length` rows; row i predicts prompt token i + 1 and the last row the
   * first generated token. Set on the final output only (null as for `promptLogprobs`).
   */
  readonly contextLogits?: readonly Float32Array[] | null;
}
