/**
 * Token sampling on the CPU: greedy, temperature, top-k, top-p, min-p, with a counter-based RNG
 * so a request's draws depend only on (seed, step) — reproducible whatever its batch mates are.
 * The CUDA sampler uses the same hash, so both backends draw the same uniforms.
 */

/** Per-row sampling parameters of one step, struct-of-arrays (the layout the device wants). */
export interface SamplingInputs {
  /** 0 = greedy. [rows] */
  readonly temperature: Float32Array;
  /** 0 = off. [rows] */
  readonly topK: Int32Array;
  /** 1 = off. [rows] */
  readonly topP: Float32Array;
  /** 0 = off. [rows] */
  readonly minP: Float32Array;
  /** 64-bit seed as (lo, hi) u32 words. [rows * 2] */
  readonly seed: Uint32Array;
  /** Draw counter: the request's number of generated tokens so far. [rows] */
  readonly step: Int32Array;
  /** Token masks of some rows (guided decoding): applied before sampling; absent = no row masked. */
  readonly tokenMasks?: TokenMasks;
}

/**
 * Allowed-token masks of a step's rows, in xgrammar's packed form: bit (id % 32) of word id / 32
 * set = id allowed. A masked row's other ids are -inf before the sampler runs (the logits a step
 * returns stay unmasked on the CPU; on CUDA a masked row's returned logits are masked).
 * `masks` may be a function: the backend calls it once, after it has started the forward pass and
 * before it samples, so a device backend runs the step while the host computes the masks.
 */
export interface TokenMasks {
  /** Words per mask: ceil(vocab / 32). */
  readonly words: number;
  /** [rows] index of each row's mask, -1 = unmasked. Rows may share a mask. */
  readonly rowMask: Int32Array;
  /** Number of masks (every rowMask entry is < count). */
  readonly count: number;
  /** [count * words] the masks, or a function that writes them into `into` ([count * words]). */
  readonly masks: Int32Array | ((into: Int32Array) => void);
}

/** The masks of `m` as an array (calls the function form once). */
export function resolveTokenMasks(m: TokenMasks): Int32Array {
  if (typeof m.masks !== "function") return m.masks;
  const into = new Int32Array(m.count * m.words);
  m.masks(into);
  return into;
}

/**
 * `row[off + i] = -inf` for each i < V whose bit in `mask` (from word `moff`) is 0; returns how
 * many ids stay allowed and finite.
 */
export function applyTokenMask(row: Float32Array, off: number, V: number, mask: Int32Array, moff = 0): number {
  let allowed = 0;
  const words = Math.ceil(V / 32);
  for (let w = 0; w < words; w++) {
    const base = w << 5;
    const end = Math.min(base + 32, V);
    let bits = mask[moff + w];
    if (bits === 0) { // the common word under a grammar: nothing allowed
      row.fill(-Infinity, off + base, off + end);
      continue;
    }
    for (let i = base; i < end; i++, bits >>>= 1) {
      if ((bits & 1) === 0) row[off + i] = -Infinity;
      else if (row[off + i] !== -Infinity) allowed++;
    }
  }
  return allowed;
}

/** Applies `s.tokenMasks` (when present) to `logits` ([rows, V]) in place, before sampling. */
export function applyTokenMasks(logits: Float32Array, V: number, s: SamplingInputs, rows: number): void {
  const m = s.tokenMasks;
  if (!m || m.count === 0) return;
  const masks = resolveTokenMasks(m);
  for (let r = 0; r < rows; r++) {
    const i = m.rowMask[r];
    if (i >= 0) applyTokenMask(logits, r * V, V, masks, i * m.words);
  }
}

function mix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** The uniform in (0, 1) drawn for (seed, step): a 32-bit counter-based hash. */
export function uniformFor(seedLo: number, seedHi: number, step: number): number {
  const h = mix32(mix32(mix32((seedLo ^ 0x9e3779b9) >>> 0) ^ seedHi) ^ Math.imul(step + 1, 0x632be5ab));
  return (h + 0.5) / 4294967296;
}

/** Splits a non-negative integer seed (< 2^53) into u32 (lo, hi) words. */
export function splitSeed(seed: number): [number, number] {
  return [seed >>> 0, Math.floor(seed / 4294967296) >>> 0];
}

/** Index of the largest value (lowest index on ties, like torch.argmax). */
export function argmax(x: Float32Array, off: number, n: number): number {
  let best = 0, bv = x[off];
  for (let i = 1; i < n; i++) {
    if (x[off + i] > bv) {
      bv = x[off + i];
      best = i;
    }
  }
  return best;
}

/**
 * The candidates a sampled row (temperature > 0, top-k ≠ 1) keeps: ids by descending logit (top-k
 * applied), their unnormalized probabilities exp((l − max) / T), how many survive top-p and min-p,
 * and the mass of those. null when the row's maximum is -inf. The one truncation rule of `sampleRow`
 * and of speculative verification's `samplingDistribution`.
 */
export function keptCandidates(
  logits: Float32Array,
  off: number,
  V: number,
  p: SamplingInputs,
  r: number,
): { idx: number[]; probs: number[]; keep: number; sum: number } | null {
  const temp = p.temperature[r];
  const topK = p.topK[r];
  // Candidates sorted by logit (descending); truncate to top-k first so the sort is cheap.
  let idx = Array.from({ length: V }, (_, i) => i);
  idx.sort((a, b) => logits[off + b] - logits[off + a] || a - b);
  if (topK > 0 && topK < V) idx = idx.slice(0, topK);
  const max = logits[off + idx[0]];
  if (max === -Infinity) return null;
  const probs = idx.map((i) => Math.exp((logits[off + i] - max) / temp));
  let sum = probs.reduce((a, b) => a + b, 0);
  let keep = probs.length;
  const topP = p.topP[r];
  if (topP < 1) {
    let cum = 0;
    for (let j = 0; j < probs.length; j++) {
      cum += probs[j] / sum;
      if (cum >= topP) {
        keep = j + 1;
        break;
      }
    }
  }
  const minP = p.minP[r];
  if (minP > 0) {
    const floor = minP * (probs[0] / sum);
    let j = 1;
    while (j < keep && probs[j] / sum >= floor) j++;
    keep = j;
  }
  sum = 0;
  for (let j = 0; j < keep; j++) sum += probs[j];
  return { idx, probs, keep, sum };
}

/**
 * Samples one token id from `logits[off, off + V)` under row `r` of `p`; -1 when the row has no
 * finite maximum (every entry -inf, NaN or +inf), so the caller can fail the request with the reason.
 */
export function sampleRow(logits: Float32Array, off: number, V: number, p: SamplingInputs, r: number): number {
  const temp = p.temperature[r];
  const topK = p.topK[r];
  if (!(temp > 0) || topK === 1) {
    const id = argmax(logits, off, V);
    const best = logits[off + id];
    return best > -Infinity && best < Infinity ? id : -1;
  }
  for (let i = 0; i < V; i++) if (Number.isNaN(logits[off + i]) || logits[off + i] === Infinity) return -1;
  const kept = keptCandidates(logits, off, V, p, r);
  if (!kept) return -1;
  const { idx, probs, keep, sum } = kept;
  const u = uniformFor(p.seed[2 * r], p.seed[2 * r + 1], p.step[r]) * sum;
  let cum = 0;
  for (let j = 0; j < keep; j++) {
    cum += probs[j];
    if (u < cum) return idx[j];
  }
  return idx[keep - 1];
}
