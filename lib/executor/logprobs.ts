/**
 * Log-probabilities of chosen tokens and their top-k alternatives, from one logits row.
 * Pure host code.
 */

/** One alternative of a token's logprobs. */
export interface TokenLogprob {
  readonly id: number;
  readonly logprob: number;
}

/** The chosen token's logprob and the row's `topK` most likely ids (descending; ties by lower id). */
export interface TokenLogprobs {
  readonly logprob: number;
  readonly top: TokenLogprob[];
}

/** log Σ exp(logits) over a row, stable (max-shifted); -inf for an all -inf row. */
export function logSumExp(logits: Float32Array): number {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) if (logits[i] > max) max = logits[i];
  if (max === -Infinity) return -Infinity;
  let sum = 0;
  for (let i = 0; i < logits.length; i++) sum += Math.exp(logits[i] - max);
  return max + Math.log(sum);
}

/** log-softmax of a row into a new Float64Array (`out[i] = logits[i] - logSumExp(logits)`). */
export function logSoftmax(logits: Float32Array): Float64Array {
  const lse = logSumExp(logits);
  const out = new Float64Array(logits.length);
  for (let i = 0; i < logits.length; i++) out[i] = logits[i] - lse;
  return out;
}

/**
 * Indices of the `k` largest values of `x` (descending; ties by lower index), in O(V·k) with a
 * small sorted buffer — k is small (logprobs ≤ ~20, beams ≤ 2·beamWidth).
 */
export function topKIndices(x: ArrayLike<number>, k: number): number[] {
  const n = Math.min(k, x.length);
  const idx: number[] = [];
  if (n <= 0) return idx;
  for (let i = 0; i < x.length; i++) {
    const v = x[i];
    if (idx.length === n && !(v > x[idx[n - 1]])) continue;
    let j = idx.length < n ? idx.length : n - 1;
    while (j > 0 && v > x[idx[j - 1]]) j--;
    if (idx.length < n) idx.splice(j, 0, i);
    else {
      idx.splice(j, 0, i);
      idx.pop();
    }
  }
  return idx;
}

/**
 * The log-probability of `chosen` under softmax(`logits`) and the `topK` most likely alternatives.
 * Which row to pass is the caller's choice; llmrt passes the processed row (after
 * `processLogits`, before temperature / top-k / top-p), so the logprobs of a sequence sum to its
 * `cumulativeLogprob` and to the beam-search score numerator.
 *
 * @example
 * ```ts
 * const { logprob, top } = tokenLogprobs(row, sampledId, p.logprobs ?? 0);
 * ```
 */
export function tokenLogprobs(logits: Float32Array, chosen: number, topK: number): TokenLogprobs {
  const lse = logSumExp(logits);
  const top = topKIndices(logits, topK).map((id) => ({ id, logprob: logits[id] - lse }));
  return { logprob: logits[chosen] - lse, top };
}
