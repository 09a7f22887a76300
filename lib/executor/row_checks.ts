/**
 * Checks of one logits row before a token is chosen from it: a row with NaN or +∞, or with every
 * entry -∞, has no distribution to sample, so the request fails with the reason instead of
 * yielding an arbitrary id; and the request-level form of the masked case (allowed ids all banned),
 * refused before the request runs. Pure host code.
 */
import { type LlmrtError, RequestFailedError, showValue, ValidationError } from "../util/errors.ts";

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
    ? "every logit is -inf (the model's output: no setting of the request bans ids)"
    : problem === "NaN"
    ? "the logits contain NaN (non-finite model output, or a logits processor / bias that produced NaN)"
    : "the logits contain +inf (a logitBias / embeddingBias or logits processor overflowed float32)";
  return `request ${requestId}, sequence ${seqIndex}, output token ${outputIndex}: ${what}`;
}

/** The request fields that ban ids (→ -inf) on the host, as `maskingFields` and `bannedAllowedIds` read them. */
export interface BanFields {
  readonly allowedTokenIds?: readonly number[] | undefined;
  readonly badTokenIds: readonly number[];
  readonly badWords: readonly string[];
  readonly minTokens: number;
  readonly ignoreEos: boolean;
  readonly stopTokenIds: readonly number[];
  readonly noRepeatNgramSize: number;
  readonly logitsProcessor?: unknown;
}

/**
 * The fields of `p` that ban ids at output token `outputIndex` (allowedTokenIds, badTokenIds,
 * badWords, minTokens while it holds, noRepeatNgramSize, logitsProcessor): the ones a fully masked
 * row is blamed on. logitBias and embeddingBias are finite (checked at validation), so they never
 * mask an id.
 */
export function maskingFields(p: BanFields, outputIndex: number): string[] {
  const fields: string[] = [];
  if (p.allowedTokenIds !== undefined) fields.push("allowedTokenIds");
  if (p.badTokenIds.length > 0) fields.push("badTokenIds");
  if (p.badWords.length > 0) fields.push("badWords");
  if (outputIndex < p.minTokens) fields.push("minTokens");
  if (p.noRepeatNgramSize > 0) fields.push("noRepeatNgramSize");
  if (p.logitsProcessor !== undefined) fields.push("logitsProcessor");
  return fields;
}

/**
 * When every id of `p.allowedTokenIds` is banned before the first output token, whatever the model
 * says: the fields that ban them (badTokenIds, badWords — their single-token encodings
 * `badWordIds` —, minTokens with the end ids `eosIds` and stopTokenIds); null when some allowed id
 * is left (or allowedTokenIds is unset). Decidable from the request alone, so it is refused at
 * validation / submission instead of failing at its first step.
 */
export function bannedAllowedIds(p: BanFields, eosIds: readonly number[], badWordIds: readonly (readonly number[])[] = []): string[] | null {
  if (p.allowedTokenIds === undefined) return null;
  const bannedBy = new Map<number, string>();
  const ban = (id: number, field: string): void => {
    if (!bannedBy.has(id)) bannedBy.set(id, field);
  };
  for (const id of p.badTokenIds) ban(id, "badTokenIds");
  for (const w of badWordIds) if (w.length === 1) ban(w[0], "badWords");
  if (p.minTokens > 0) {
    if (!p.ignoreEos) { for (const id of eosIds) ban(id, "minTokens"); }
    for (const id of p.stopTokenIds) ban(id, "minTokens");
  }
  const fields = new Set<string>();
  for (const id of p.allowedTokenIds) {
    const by = bannedBy.get(id);
    if (by === undefined) return null;
    fields.add(by);
  }
  return ["badTokenIds", "badWords", "minTokens"].filter((f) => fields.has(f));
}

/** "a", "a and b", "a, b and c". */
export function joinFields(fields: readonly string[]): string {
  return fields.length <= 1 ? fields.join("") : `${fields.slice(0, -1).join(", ")} and ${fields[fields.length - 1]}`;
}

/**
 * The ValidationError of a request whose allowed ids are all banned (see {@link bannedAllowedIds}):
 * names allowedTokenIds and the fields that ban them (`data.fields`, for a caller that renames them).
 */
export function bannedAllowedIdsError(p: BanFields, by: readonly string[]): ValidationError {
  const n = p.minTokens;
  const why = by.includes("minTokens")
    ? ` (minTokens bans ${p.ignoreEos ? "the stop ids" : "the end and stop ids"} for the first ${n} token${n === 1 ? "" : "s"})`
    : "";
  return new ValidationError(
    `SamplingParams.allowedTokenIds: every allowed id is banned by ${joinFields(by)}${why}, so no token is left to choose, got ${showValue(p.allowedTokenIds)}`,
    "allowedTokenIds",
    p.allowedTokenIds,
    { fields: ["allowedTokenIds", ...by] },
  );
}

/**
 * The error a request fails with when its row at a step cannot be sampled: a fully masked row whose
 * ids the request's own settings banned (`maskingFields`) is a ValidationError naming them
 * (`data.fields`), the request, sequence and output token; NaN, +inf, or a row the model itself
 * made all -inf is a RequestFailedError.
 */
export function rowFailure(problem: RowProblem, p: BanFields, requestId: number, seqIndex: number, outputIndex: number): LlmrtError {
  const fields = problem === "masked" ? maskingFields(p, outputIndex) : [];
  if (fields.length === 0) return new RequestFailedError(rowProblemMessage(problem, requestId, seqIndex, outputIndex));
  return new ValidationError(
    `SamplingParams.${fields[0]}: no token is left to choose at output token ${outputIndex} (request ${requestId}, sequence ${seqIndex}): ` +
      `${joinFields(fields)} together ban every id`,
    fields[0],
    undefined,
    { fields },
  );
}
