/**
 * Beam search as a pure step function over per-beam logits rows (HF BeamSearchScorer semantics,
 * TensorRT-LLM's beam search role), plus a reference driver over a plain forward callback.
 * The executor runs beams as sequences sharing KV blocks: each next beam names its parent beam
 * and the token it appended. Imports no device code.
 */
import { SamplingParams, type SamplingParamsInput } from "./sampling_params.ts";
import { ValidationError } from "../util/errors.ts";
import { needsHostProcessing, processLogits } from "./logits_processor.ts";
import { logSoftmax, topKIndices } from "./logprobs.ts";

/** A live beam: the tokens generated so far and their log-probabilities. */
export interface Beam {
  readonly tokens: readonly number[];
  /** logprob of each token of `tokens` under its step's (processed) distribution. */
  readonly logprobs: readonly number[];
  readonly sumLogprob: number;
  /** Index of the beam (in the previous state's `beams`) this one extends; -1 for the initial beam. */
  readonly parent: number;
}

/** A finished hypothesis (ended on an end id, or at maxTokens). */
export interface BeamHypothesis {
  /** Generated tokens, the end id included when it ended on one. */
  readonly tokens: readonly number[];
  readonly logprobs: readonly number[];
  readonly sumLogprob: number;
  /** `beamScore(sumLogprob, tokens.length, lengthPenalty)`. */
  readonly score: number;
  readonly finishReason: "stop" | "length";
}

/** Beam-search settings (from SamplingParams: beamWidth, lengthPenalty, earlyStopping, maxTokens). */
export interface BeamSearchOptions {
  readonly beamWidth: number;
  readonly maxTokens: number;
  /** @default 1 */
  readonly lengthPenalty?: number;
  /** @default false */
  readonly earlyStopping?: boolean | "never";
  /** Ids that finish a hypothesis. @default [] */
  readonly eosIds?: readonly number[];
}

/** Beam search between steps. `done` ⇔ no live beams remain; `finished` is then final. */
export interface BeamSearchState {
  readonly beams: readonly Beam[];
  /** The best ≤ beamWidth finished hypotheses, best first. */
  readonly finished: readonly BeamHypothesis[];
  readonly done: boolean;
}

/** HF length-normalized score: sumLogprob / length^lengthPenalty (length counts an end id). */
export function beamScore(sumLogprob: number, length: number, lengthPenalty: number): number {
  return sumLogprob / Math.pow(length, lengthPenalty);
}

/** The state before the first step: one empty beam (the prompt). */
export function initialBeamState(): BeamSearchState {
  return { beams: [{ tokens: [], logprobs: [], sumLogprob: 0, parent: -1 }], finished: [], done: false };
}

/**
 * One beam-search step. `logitsRows[i]` is beam i's next-token logits `[V]` (already processed:
 * penalties, bans, minTokens). Candidates are scored by cumulative logprob (log-softmax of the
 * row); of the best 2·beamWidth, in order, an end-id candidate ranked below beamWidth becomes a
 * finished hypothesis and the others fill the next beamWidth beams (HF). Finished hypotheses keep
 * the best beamWidth by `beamScore`. The search ends when beams reach maxTokens (they become
 * "length" hypotheses) or by `earlyStopping` once beamWidth hypotheses exist: true → at once;
 * false → when the best live beam's current score cannot beat the worst hypothesis (HF
 * heuristic); "never" → when no continuation of any live beam could (an exact bound).
 */
export function beamSearchStep(state: BeamSearchState, logitsRows: readonly Float32Array[], options: BeamSearchOptions): BeamSearchState {
  const W = options.beamWidth;
  const lp = options.lengthPenalty ?? 1;
  const eos = new Set(options.eosIds ?? []);
  if (state.done) return state;
  if (logitsRows.length !== state.beams.length) {
    throw new ValidationError(`beamSearchStep: ${logitsRows.length} logits rows for ${state.beams.length} beams`, "logitsRows", logitsRows.length);
  }

  // Each beam contributes at most its best 2W tokens to the global best 2W.
  const cands: { beam: number; token: number; lp: number; sum: number }[] = [];
  state.beams.forEach((b, i) => {
    const row = logSoftmax(logitsRows[i]);
    for (const token of topKIndices(row, 2 * W)) {
      if (row[token] > -Infinity) cands.push({ beam: i, token, lp: row[token], sum: b.sumLogprob + row[token] });
    }
  });
  cands.sort((a, b) => b.sum - a.sum || a.beam - b.beam || a.token - b.token);

  const finished = [...state.finished];
  const next: Beam[] = [];
  for (let rank = 0; rank < Math.min(cands.length, 2 * W) && next.length < W; rank++) {
    const c = cands[rank];
    const parent = state.beams[c.beam];
    const tokens = [...parent.tokens, c.token];
    const logprobs = [...parent.logprobs, c.lp];
    if (eos.has(c.token)) {
      if (rank < W) addHypothesis(finished, { tokens, logprobs, sumLogprob: c.sum, score: beamScore(c.sum, tokens.length, lp), finishReason: "stop" }, W);
    } else {
      next.push({ tokens, logprobs, sumLogprob: c.sum, parent: c.beam });
    }
  }

  if (next.length === 0) return { beams: [], finished, done: true };
  const len = next[0].tokens.length;
  if (len >= options.maxTokens) {
    for (const b of next) {
      addHypothesis(finished, {
        tokens: b.tokens,
        logprobs: b.logprobs,
        sumLogprob: b.sumLogprob,
        score: beamScore(b.sumLogprob, len, lp),
        finishReason: "length",
      }, W);
    }
    return { beams: [], finished, done: true };
  }
  if (finished.length >= W) {
    const worst = finished[finished.length - 1].score;
    const best = Math.max(...next.map((b) => b.sumLogprob));
    const es = options.earlyStopping ?? false;
    const attainable = es === "never" && lp > 0 ? beamScore(best, options.maxTokens, lp) : beamScore(best, len, lp);
    if (es === true || worst >= attainable) return { beams: [], finished, done: true };
  }
  return { beams: next, finished, done: false };
}

/** Inserts `h` into `pool` (sorted by score, best first), keeping at most `W`. */
function addHypothesis(pool: BeamHypothesis[], h: BeamHypothesis, W: number): void {
  if (pool.length >= W && !(h.score > pool[pool.length - 1].score)) return;
  let i = pool.length;
  while (i > 0 && h.score > pool[i - 1].score) i--;
  pool.splice(i, 0, h);
  if (pool.length > W) pool.pop();
}

/** The best `n` hypotheses of a finished search, best first. */
export function finalizeBeamSearch(state: BeamSearchState, n: number): BeamHypothesis[] {
  if (!state.done) throw new ValidationError("finalizeBeamSearch: the search has live beams; step it until done", "state", state.beams.length);
  return state.finished.slice(0, n);
}

/**
 * Reference beam-search driver: runs `beamSearchStep` to the end over `forward`, which returns the
 * last-position logits `[V]` of each full sequence (prompt + beam tokens) it is given. Applies
 * `processLogits` per beam when the params need it; end ids are `eosIds` (unless ignoreEos) plus
 * `stopTokenIds`. Stop strings are not handled here (they need a tokenizer). Returns the best
 * `n` hypotheses.
 *
 * @example
 * ```ts
 * const best = beamSearchGenerate((seqs) => seqs.map(lastLogits), promptIds, { useBeamSearch: true, beamWidth: 3, maxTokens: 8 }, [eosId]);
 * ```
 */
export function beamSearchGenerate(
  forward: (seqs: number[][]) => Float32Array[],
  prompt: readonly number[],
  params: SamplingParams | SamplingParamsInput,
  eosIds: readonly number[] = [],
  badWordIds: readonly (readonly number[])[] = [],
): BeamHypothesis[] {
  const p = SamplingParams.from(params);
  if (!p.useBeamSearch) throw new ValidationError("beamSearchGenerate: SamplingParams.useBeamSearch must be true", "useBeamSearch", p.useBeamSearch);
  const options: BeamSearchOptions = {
    beamWidth: p.beamWidth,
    maxTokens: p.maxTokens,
    lengthPenalty: p.lengthPenalty,
    earlyStopping: p.earlyStopping,
    eosIds: [...(p.ignoreEos ? [] : eosIds), ...p.stopTokenIds],
  };
  const host = needsHostProcessing(p);
  let state = initialBeamState();
  while (!state.done) {
    const rows = forward(state.beams.map((b) => [...prompt, ...b.tokens]));
    if (host) {
      rows.forEach((row, i) => processLogits(row, p, { promptIds: prompt, outputIds: state.beams[i].tokens, requestId: 0, seqIndex: i }, eosIds, badWordIds));
    }
    state = beamSearchStep(state, rows, options);
  }
  return finalizeBeamSearch(state, p.n);
}
