/**
 * Checks of one logits row before a token is chosen from it: a row with NaN or +∞, or with every
 * entry -∞, has no distribution to sample, so the request fails with the reason instead of
 * yielding an arbitrary id. Pure host code.
 */

/** What is wrong with a row: "NaN", "infinite" (+∞), "masked" (every entry -∞), or null when it can be sampled. */
export type RowProblem = "NaN" | "infinite" | "masked";

/** Scans `row` once. */
export function rowProblem(row: Float32Array): RowProblem | null {
  let finite = false;
  for (let i = 0; i < row.length; i++) {
    const x = row[i];
    if (x !== x) return "NaN";
    if (x === Infinity) return "infinite";
    if (x !== -Infinity) finite = true;
  }
  return finite ? null : "masked";
}

/** The reason a request fails when a row of its sequence cannot be sampled. */
export function rowProblemMessage(problem: RowProblem, requestId: number, seqIndex: number, outputIndex: number): string {
  const what = problem === "masked"
    ? "every token is masked (-inf): allowedTokenIds, badTokenIds, badWords, minTokens, logitBias or a logits processor left nothing to choose"
    : problem === "NaN"
    ? "the logits contain NaN (non-finite model output, or a logits processor / bias that produced NaN)"
    : "the logits contain +inf (a logitBias / embeddingBias or logits processor overflowed float32)";
  return `request ${requestId}, sequence ${seqIndex}, output token ${outputIndex}: ${what}`;
}
