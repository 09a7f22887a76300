/**
 * The one prompt validator: every entry point (`LLM.generate`, the executor's admission,
 * `ModelRunner.generate`) checks prompt token ids here, against the limits of its engine.
 */
import { showValue, ValidationError } from "../util/errors.ts";

/** What a prompt is checked against. */
export interface PromptLimits {
  /** Ids must lie in [0, vocabSize). */
  readonly vocabSize: number;
  /** Most prompt tokens. */
  readonly maxInputLen: number;
  /** A prompt must leave room for one generated token below this. */
  readonly maxSeqLen: number;
}

/**
 * Checks prompt token ids: an array of at least one integer id in [0, vocabSize), at most
 * maxInputLen long and shorter than maxSeqLen. Throws a ValidationError whose message starts with
 * `label` and whose field is `field` (`${field}[j]` for a bad id).
 *
 * @example
 * ```ts
 * validatePromptIds(ids, { vocabSize: 32000, maxInputLen: 4095, maxSeqLen: 4096 }, "prompt", "LLM.generate prompt");
 * ```
 */
export function validatePromptIds(ids: unknown, limits: PromptLimits, field: string, label: string = field): asserts ids is readonly number[] {
  if (!Array.isArray(ids)) throw new ValidationError(`${label}: expected a non-empty array of token ids`, field, ids);
  if (ids.length === 0) throw new ValidationError(`${label}: empty prompt`, field, ids);
  const V = limits.vocabSize;
  for (let j = 0; j < ids.length; j++) {
    const t = ids[j];
    if (!Number.isInteger(t) || t < 0 || t >= V) {
      throw new ValidationError(`${label}[${j}]: token id ${showValue(t)} is outside [0, ${V})`, `${field}[${j}]`, t);
    }
  }
  const n = ids.length;
  if (n > limits.maxInputLen) throw new ValidationError(`${label}: prompt of ${n} tokens exceeds maxInputLen ${limits.maxInputLen}`, field, n);
  if (n >= limits.maxSeqLen) throw new ValidationError(`${label}: prompt of ${n} tokens leaves no room below maxSeqLen ${limits.maxSeqLen}`, field, n);
}

/** The prompt limit when an engine does not fix one: the whole context but one generated token. */
export function defaultMaxInputLen(maxSeqLen: number): number {
  return Math.max(1, maxSeqLen - 1);
}
