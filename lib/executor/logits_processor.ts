/**
 * Host-side logits processing of one row: callbacks, biases, bans, minTokens and penalties, in
 * the order vLLM / TensorRT-LLM apply them. Runs only for requests that need it
 * (`needsHostProcessing`); plain temperature/top-k/top-p/min-p sampling needs none of this.
 * Imports no device code.
 */
import type { LogitsProcessorFn, SamplingParams } from "./sampling_params.ts";
import { RequestFailedError, showValue, ValidationError } from "../util/errors.ts";

/** The sequence a logits row belongs to. */
export interface SequenceView {
  readonly promptIds: readonly number[];
  /** Tokens generated so far (before the one this row will choose). */
  readonly outputIds: readonly number[];
  readonly requestId: number;
  /** Index of the sequence within its request (0 … n-1, or the beam index). */
  readonly seqIndex: number;
}

/** True when `p` asks for anything `processLogits` does (any penalty, bias, ban, minTokens or callback). */
export function needsHostProcessing(p: SamplingParams): boolean {
  return p.logitsProcessor !== undefined ||
    p.embeddingBias !== undefined ||
    (p.logitBias !== undefined && Object.keys(p.logitBias).length > 0) ||
    p.allowedTokenIds !== undefined ||
    p.badTokenIds.length > 0 ||
    p.badWords.length > 0 ||
    p.minTokens > 0 ||
    p.repetitionPenalty !== 1 ||
    p.presencePenalty !== 0 ||
    p.frequencyPenalty !== 0 ||
    p.noRepeatNgramSize > 0;
}

/** True when `p` has a host callback, so its rows must come to the host whatever the backend. */
export function needsHostCallback(p: SamplingParams): boolean {
  return p.logitsProcessor !== undefined;
}

/**
 * Encodes `SamplingParams.badWords` into token-id sequences for `processLogits`. Like vLLM, each
 * word is encoded as given and with a leading space (a word usually starts mid-text after a space,
 * which most tokenizers fold into the first token); duplicates and empty encodings are dropped.
 *
 * @example
 * ```ts
 * const badWordIds = resolveBadWords(p.badWords, (s) => tokenizer.encode(s, { addSpecialTokens: false }));
 * ```
 */
export function resolveBadWords(words: readonly string[], encode: (text: string) => readonly number[]): number[][] {
  const out: number[][] = [];
  const seen = new Set<string>();
  for (const w of words) {
    for (const text of [w, ` ${w.trimStart()}`]) {
      const ids = [...encode(text)];
      const key = ids.join(",");
      if (ids.length === 0 || seen.has(key)) continue;
      seen.add(key);
      out.push(ids);
    }
  }
  return out;
}

/**
 * Applies every host-side logits edit of `p` to one row `logits[V]` in place, in this order:
 * 1. `logitsProcessor` callback(s) (output ids so far, row, info);
 * 2. `embeddingBias` (added, `[V]`);
 * 3. `logitBias` (added per id);
 * 4. `allowedTokenIds` (every other id → -inf);
 * 5. `badTokenIds` and `badWordIds` (→ -inf; a multi-token bad word bans its last token only when
 *    its preceding tokens equal the tail of prompt + output);
 * 6. `minTokens`: while `outputIds.length < minTokens`, every id in `eosIds` (unless ignoreEos)
 *    and `stopTokenIds` → -inf;
 * 7. `repetitionPenalty` (HF: over the distinct ids of prompt + output, a positive logit is
 *    divided by it, a negative one multiplied; a result beyond float32 saturates at ±its largest
 *    finite value, so a tiny or huge penalty favours or suppresses those ids instead of making the
 *    row ±inf);
 * 8. `presencePenalty` / `frequencyPenalty` (OpenAI: over output ids,
 *    logit -= frequency·count + presence·[count > 0]);
 * 9. `noRepeatNgramSize` (HF: over prompt + output, any id that would complete an n-gram already
 *    present → -inf).
 *
 * Bad words are token-id sequences here: the executor encodes `p.badWords` with the request's
 * tokenizer once at submission (`resolveBadWords`) and passes the result as `badWordIds`.
 * `eosIds` are the ids that end the request (the request's endId or the model's eos ids).
 */
export function processLogits(
  logits: Float32Array,
  p: SamplingParams,
  seq: SequenceView,
  eosIds: readonly number[],
  badWordIds: readonly (readonly number[])[] = [],
): void {
  const V = logits.length;
  const out = seq.outputIds;

  if (p.logitsProcessor !== undefined) {
    const fns: readonly LogitsProcessorFn[] = typeof p.logitsProcessor === "function" ? [p.logitsProcessor] : p.logitsProcessor;
    const info = { requestId: seq.requestId, seqIndex: seq.seqIndex, promptIds: seq.promptIds };
    for (const fn of fns) {
      let r: unknown;
      try {
        r = fn(out, logits, info);
      } catch (e) {
        throw new RequestFailedError(`SamplingParams.logitsProcessor threw: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
      }
      if (r === undefined || r === null || r === logits) continue;
      if (!(r instanceof Float32Array) && !Array.isArray(r)) {
        throw new ValidationError(
          `SamplingParams.logitsProcessor: returned ${
            describeReturn(r)
          }; expected nothing (edit the row in place), a Float32Array or a number[] of ${V} logits`,
          "logitsProcessor",
          typeof r,
        );
      }
      if (r.length !== V) {
        throw new ValidationError(`SamplingParams.logitsProcessor: returned ${r.length} logits for a vocabulary of ${V}`, "logitsProcessor", r.length);
      }
      logits.set(r);
    }
  }

  if (p.embeddingBias !== undefined) {
    const b = p.embeddingBias;
    if (b.length !== V) throw new ValidationError(`SamplingParams.embeddingBias: has ${b.length} entries, the vocabulary ${V}`, "embeddingBias", b.length);
    for (let i = 0; i < V; i++) logits[i] += b[i];
  }

  if (p.logitBias !== undefined) {
    for (const [k, bias] of Object.entries(p.logitBias)) {
      const id = Number(k);
      checkId(id, V, `logitBias.${k}`);
      logits[id] += bias;
    }
  }

  if (p.allowedTokenIds !== undefined) {
    const keep = new Float32Array(p.allowedTokenIds.length);
    p.allowedTokenIds.forEach((id, j) => {
      checkId(id, V, `allowedTokenIds[${j}]`);
      keep[j] = logits[id];
    });
    logits.fill(-Infinity);
    p.allowedTokenIds.forEach((id, j) => (logits[id] = keep[j]));
  }

  p.badTokenIds.forEach((id, j) => {
    checkId(id, V, `badTokenIds[${j}]`);
    logits[id] = -Infinity;
  });
  if (badWordIds.length > 0) {
    const ctx = concatView(seq.promptIds, out);
    for (const word of badWordIds) {
      const last = word[word.length - 1];
      const pre = word.length - 1;
      if (pre > ctx.length) continue;
      let match = true;
      for (let j = 0; j < pre && match; j++) match = ctx.at(ctx.length - pre + j) === word[j];
      if (match && last >= 0 && last < V) logits[last] = -Infinity;
    }
  }

  if (out.length < p.minTokens) {
    if (!p.ignoreEos) { for (const id of eosIds) if (id >= 0 && id < V) logits[id] = -Infinity; }
    for (const id of p.stopTokenIds) if (id < V) logits[id] = -Infinity;
  }

  if (p.repetitionPenalty !== 1) {
    const rp = p.repetitionPenalty;
    const seen = new Uint8Array(V);
    const mark = (id: number): void => {
      if (id >= 0 && id < V && !seen[id]) {
        seen[id] = 1;
        const x = logits[id];
        logits[id] = x > 0 ? Math.min(x / rp, MAX_FLOAT32) : Math.max(x * rp, -MAX_FLOAT32);
      }
    };
    seq.promptIds.forEach(mark);
    out.forEach(mark);
  }

  if (p.presencePenalty !== 0 || p.frequencyPenalty !== 0) {
    const counts = new Map<number, number>();
    for (const id of out) counts.set(id, (counts.get(id) ?? 0) + 1);
    for (const [id, c] of counts) if (id >= 0 && id < V) logits[id] -= p.frequencyPenalty * c + p.presencePenalty;
  }

  const ng = p.noRepeatNgramSize;
  if (ng > 0) {
    const ctx = concatView(seq.promptIds, out);
    const L = ctx.length;
    if (L + 1 >= ng) {
      // The n-1 most recent tokens; any earlier window with the same n-1 tokens bans its next token.
      const pre = ng - 1;
      for (let s = 0; s + ng <= L; s++) {
        let match = true;
        for (let j = 0; j < pre && match; j++) match = ctx.at(s + j) === ctx.at(L - pre + j);
        if (match) {
          const id = ctx.at(s + pre);
          if (id >= 0 && id < V) logits[id] = -Infinity;
        }
      }
    }
  }
}

/** What a logits processor returned, for its error: a Promise or typed array by kind, else the value. */
function describeReturn(r: unknown): string {
  if (typeof (r as { then?: unknown } | null)?.then === "function") {
    (r as PromiseLike<unknown>).then(undefined, () => {}); // its rejection would be unhandled (Deno ends the process on one)
    return "a Promise (logits processors run synchronously; an async function cannot be one)";
  }
  if (ArrayBuffer.isView(r)) return `a ${r.constructor.name}${"length" in r ? ` of ${r.length}` : ""}`;
  return showValue(r);
}

/** Largest finite float32. */
const MAX_FLOAT32 = 3.4028234663852886e38;

/** A token id that indexes the logits row lies in [0, V): a ValidationError naming `SamplingParams.<field>` otherwise. */
export function checkId(id: number, V: number, field: string): void {
  if (!(id >= 0 && id < V)) throw new ValidationError(`SamplingParams.${field}: token id ${id} is outside [0, ${V})`, field, id);
}

/** Read-only view of a ++ b without copying. */
function concatView(a: readonly number[], b: readonly number[]): { length: number; at(i: number): number } {
  const na = a.length;
  return { length: na + b.length, at: (i: number): number => (i < na ? a[i] : b[i - na]) };
}
