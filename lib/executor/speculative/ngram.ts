/**
 * Prompt-lookup drafting (TensorRT-LLM's NGram decoding, vLLM's `ngram` proposer): the last n tokens
 * of a sequence are looked up earlier in the same sequence (prompt and output), and the tokens that
 * followed the latest match are the draft. Longer n-grams are tried first. Pure host code.
 */

/**
 * Draft tokens for `tokens` (at most `maxDraftLen`; empty when no suffix of 1 … `maxNgram` tokens
 * occurs earlier).
 *
 * @example
 * ```ts
 * proposeNgram([5, 6, 7, 9, 5, 6], 3, 2); // [7, 9]: the suffix [5, 6] occurred at 0, followed by 7, 9
 * ```
 */
export function proposeNgram(tokens: ArrayLike<number>, maxNgram: number, maxDraftLen: number): number[] {
  const L = tokens.length;
  for (let n = Math.min(maxNgram, L - 1); n >= 1; n--) {
    const suffix = L - n;
    // Latest start s < suffix whose n tokens equal the suffix's, with at least one token after it.
    for (let s = suffix - 1; s >= 0; s--) {
      let j = 0;
      while (j < n && tokens[s + j] === tokens[suffix + j]) j++;
      if (j < n) continue;
      const out: number[] = [];
      for (let p = s + n; p < L && out.length < maxDraftLen; p++) out.push(tokens[p]);
      return out;
    }
  }
  return [];
}
