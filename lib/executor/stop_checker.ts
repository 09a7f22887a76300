/**
 * Per-sequence stop conditions (vLLM's StopChecker): end ids, stop token ids, stop strings matched
 * in the detokenized text across token boundaries, minTokens and maxTokens. Pure host code.
 */
import type { SamplingParams } from "./sampling_params.ts";

/** What `StopChecker.check` decided for the newest token. */
export type StopDecision =
  | { readonly stop: false }
  | {
    readonly stop: true;
    /** "stop": an end id, stop id or stop string; "length": maxTokens reached. */
    readonly reason: "stop" | "length";
    /** The stop token id or stop string that matched; null for an end id or for "length". */
    readonly stopReason: number | string | null;
    /** Cut the output text to this many characters (a stop string matched). */
    readonly truncateTextTo?: number;
  };

/**
 * Number of trailing characters of `text` to hold back from a stream so a stop string that might
 * still complete is never sent: the longest suffix of `text` that is a proper prefix of some stop
 * string. Returns 0 when there are no stop strings or `includeStopStrInOutput` is set (then a
 * stop string is part of the output anyway).
 */
export function numHeldBackChars(text: string, stop: readonly string[], includeStopStrInOutput = false): number {
  if (includeStopStrInOutput) return 0;
  let best = 0;
  for (const s of stop) {
    for (let k = Math.min(s.length - 1, text.length); k > best; k--) {
      if (text.endsWith(s.slice(0, k))) {
        best = k;
        break;
      }
    }
  }
  return best;
}

/**
 * Decides, token by token, whether one sequence has finished.
 *
 * `check` is called once per generated token with that token, the detokenized output text so far
 * (prompt excluded, this token included) and the number of output tokens (this one included).
 * Stop strings are searched only in the part of the text that could hold a match new since the
 * previous call (the new characters plus the longest stop string's length − 1 before them), so a
 * stop string split across tokens is found once its last piece arrives. Nothing stops before
 * `minTokens` output tokens (vLLM semantics); end ids are ignored with `ignoreEos`; reaching
 * `maxTokens` gives "length" unless the same token also matched a stop condition.
 *
 * @example
 * ```ts
 * const checker = new StopChecker(params, [eosId]);
 * const d = checker.check(tokenId, detok.text, outputIds.length);
 * if (d.stop) text = d.truncateTextTo !== undefined ? text.slice(0, d.truncateTextTo) : text;
 * ```
 */
export class StopChecker {
  readonly #eos: ReadonlySet<number>;
  readonly #stopIds: ReadonlySet<number>;
  readonly #stop: readonly string[];
  readonly #maxStopLen: number;
  readonly #minTokens: number;
  readonly #maxTokens: number;
  readonly #includeStopStr: boolean;
  #prevLen = 0;

  constructor(
    p: Pick<SamplingParams, "ignoreEos" | "stopTokenIds" | "stop" | "minTokens" | "maxTokens" | "includeStopStrInOutput">,
    eosIds: readonly number[],
  ) {
    this.#eos = new Set(p.ignoreEos ? [] : eosIds.filter((id) => id >= 0));
    this.#stopIds = new Set(p.stopTokenIds);
    this.#stop = p.stop;
    this.#maxStopLen = Math.max(0, ...p.stop.map((s) => s.length));
    this.#minTokens = p.minTokens;
    this.#maxTokens = p.maxTokens;
    this.#includeStopStr = p.includeStopStrInOutput;
  }

  /** Trailing characters of `text` to hold back while streaming (see `numHeldBackChars`). */
  holdBack(text: string): number {
    return numHeldBackChars(text, this.#stop, this.#includeStopStr);
  }

  /** Decides whether the sequence ends with `tokenId`; see the class comment for the arguments. */
  check(tokenId: number, fullText: string, numOutputTokens: number): StopDecision {
    const from = fullText.length >= this.#prevLen ? Math.max(0, this.#prevLen - this.#maxStopLen + 1) : 0;
    this.#prevLen = fullText.length;
    if (numOutputTokens < this.#minTokens) return GO_ON;
    if (this.#eos.has(tokenId)) return { stop: true, reason: "stop", stopReason: null };
    if (this.#stopIds.has(tokenId)) return { stop: true, reason: "stop", stopReason: tokenId };
    if (this.#stop.length > 0) {
      let at = -1, which = "";
      for (const s of this.#stop) {
        const i = fullText.indexOf(s, from);
        if (i >= 0 && (at < 0 || i < at || (i === at && s.length > which.length))) {
          at = i;
          which = s;
        }
      }
      if (at >= 0) {
        const cut = this.#includeStopStr ? at + which.length : at;
        return { stop: true, reason: "stop", stopReason: which, ...(cut < fullText.length ? { truncateTextTo: cut } : {}) };
      }
    }
    if (numOutputTokens >= this.#maxTokens) return { stop: true, reason: "length", stopReason: null };
    return GO_ON;
  }
}

/** The decision of most calls, shared (check runs twice a generated token). */
const GO_ON: StopDecision = Object.freeze({ stop: false });
