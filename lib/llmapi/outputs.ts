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
