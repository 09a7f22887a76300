/**
 * Verification of draft tokens (speculative sampling, Leviathan et al. 2023 / Chen et al. 2023):
 * draft token d_i drawn from q_i is accepted with probability min(1, p_i(d_i) / q_i(d_i)); at the
 * first rejection a token is drawn from norm(max(0, p_i − q_i)) and the rest are dropped; when all
 * are accepted, one more token comes from p_k. The result follows the target distribution p exactly.
 * A deterministic draft (prompt lookup, a greedy draft model) has q = one-hot. Pure host code.
 */
import { argmax, keptCandidates, type SamplingInputs, uniformFor } from "../../ir/sampling.ts";

/**
 * The distribution `sampleRow` draws from for row `r` of `p` over `logits[off, off + V)`:
 * temperature, then top-k, top-p and min-p truncation, renormalized; one-hot at the argmax when the
 * row is greedy (temperature 0 or top-k 1). Entries outside the kept set are 0.
 */
export function samplingDistribution(logits: Float32Array, off: number, V: number, p: SamplingInputs, r: number): Float64Array {
  const out = new Float64Array(V);
  const temp = p.temperature[r];
  const topK = p.topK[r];
  if (!(temp > 0) || topK === 1) {
    out[argmax(logits, off, V)] = 1;
    return out;
  }
  const kept = keptCandidates(logits, off, V, p, r);
  if (!kept) return out;
  const { idx, probs, keep, sum } = kept;
  for (let j = 0; j < keep; j++) out[idx[j]] = probs[j] / sum;
  return out;
}

/** Draws from `w` (non-negative weights, not necessarily normalized) with the uniform `u`; -1 when every weight is 0. */
export function drawFrom(w: ArrayLike<number>, u: number): number {
  let sum = 0;
  for (let i = 0; i < w.length; i++) sum += w[i];
  if (!(sum > 0)) return -1;
  const target = u * sum;
  let cum = 0, last = -1;
  for (let i = 0; i < w.length; i++) {
    if (w[i] <= 0) continue;
    cum += w[i];
    last = i;
    if (target < cum) return i;
  }
  return last;
}

/** The outcome of verifying one sequence's drafts. */
export interface Verification {
  /** Draft tokens accepted (a prefix of the draft). */
  readonly numAccepted: number;
  /** Tokens to append: the accepted drafts, then the resampled token (after a rejection) or the bonus token. */
  readonly tokens: number[];
}

/** Uniforms of one verification: `accept(i)` decides draft i, `resample(i)` draws after rejecting it. */
export interface VerifyUniforms {
  accept(i: number): number;
  resample(i: number): number;
}

/**
 * Rejection-samples `draft` against the target. `p(i)` is the target distribution at draft position
 * i (i < draft.length); `q(i)` the draft's (null: one-hot at draft[i]); `bonus()` draws the token
 * after a fully accepted draft (from the target's last row).
 */
export function verifyDraft(
  draft: readonly number[],
  p: (i: number) => ArrayLike<number>,
  q: (i: number) => ArrayLike<number> | null,
  u: VerifyUniforms,
  bonus: () => number,
): Verification {
  const tokens: number[] = [];
  for (let i = 0; i < draft.length; i++) {
    const d = draft[i];
    const pi = p(i), qi = q(i);
    const qd = qi ? qi[d] : 1;
    const pd = pi[d];
    if (qd > 0 && u.accept(i) * qd < pd) {
      tokens.push(d);
      continue;
    }
    // Rejected: draw from norm(max(0, p − q)).
    const resid = new Float64Array(pi.length);
    for (let t = 0; t < pi.length; t++) resid[t] = Math.max(0, pi[t] - (qi ? qi[t] : t === d ? 1 : 0));
    let tok = drawFrom(resid, u.resample(i));
    if (tok < 0) tok = drawFrom(pi, u.resample(i)); // p == q (only through rounding): p itself
    tokens.push(tok);
    return { numAccepted: i, tokens };
  }
  tokens.push(bonus());
  return { numAccepted: draft.length, tokens };
}

/** Stream tags mixed into a request's seed words, so verification draws are independent of the sampler's. */
const ACCEPT_STREAM = 0x6a09e667, RESAMPLE_STREAM = 0xbb67ae85, DRAFT_STREAM = 0x3c6ef372;

/** A draw of stream `tag` for (seed words, output index): reproducible per request, independent of batch mates. */
function streamUniform(tag: number, seed: readonly [number, number], outputIndex: number): number {
  return uniformFor((seed[0] ^ tag) >>> 0, seed[1], outputIndex);
}

/** Verification uniforms of a sequence whose draft starts at output index `firstOutputIndex`. */
export function seededUniforms(seed: readonly [number, number], firstOutputIndex: number): VerifyUniforms {
  return {
    accept: (i) => streamUniform(ACCEPT_STREAM, seed, firstOutputIndex + i),
    resample: (i) => streamUniform(RESAMPLE_STREAM, seed, firstOutputIndex + i),
  };
}

/** The uniform a draft model uses to sample its token at `outputIndex`. */
export function draftUniform(seed: readonly [number, number], outputIndex: number): number {
  return streamUniform(DRAFT_STREAM, seed, outputIndex);
}
