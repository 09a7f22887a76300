/**
 * CPU kernels: the numerical reference for every op. Float32 storage, float64 accumulation.
 * Row-major throughout; `x` arguments are views at the op's buffer offset.
 */
import type { KvQuantAlgo } from "../../ir/kv_cache.ts";
import { ValidationError } from "../../util/errors.ts";
import { decodeKvRow, encodeKvRow } from "./kv_cache.ts";

/** out[t, :] = table[ids[t], :]  — table [vocab, H]. */
export function embedding(ids: Int32Array, numTokens: number, table: Float32Array, H: number, vocab: number, out: Float32Array): void {
  for (let t = 0; t < numTokens; t++) {
    const id = ids[t];
    if (id < 0 || id >= vocab) throw new ValidationError(`embedding: token id ${id} at position ${t} is outside the vocabulary [0, ${vocab})`, "tokenIds", id);
    out.set(table.subarray(id * H, id * H + H), t * H);
  }
}

/** out[r, :] = x[r, :] / rms(x[r, :]) * w  for `rows` rows of width H. */
export function rmsnorm(x: Float32Array, w: Float32Array, eps: number, rows: number, H: number, out: Float32Array): void {
  for (let r = 0; r < rows; r++) {
    const o = r * H;
    let ss = 0;
    for (let i = 0; i < H; i++) ss += x[o + i] * x[o + i];
    const inv = 1 / Math.sqrt(ss / H + eps);
    for (let i = 0; i < H; i++) out[o + i] = x[o + i] * inv * w[i];
  }
}

/** residual += x; out = rmsnorm(residual). */
export function addRmsnorm(x: Float32Array, residual: Float32Array, w: Float32Array, eps: number, rows: number, H: number, out: Float32Array): void {
  const n = rows * H;
  for (let i = 0; i < n; i++) residual[i] += x[i];
  rmsnorm(residual, w, eps, rows, H, out);
}

/** out[m, n] = Σ_k x[m, k] · w[n, k] + bias[n]  — x [M, K], w [N, K] (HF layout), out [M, N]. */
export function linear(x: Float32Array, w: Float32Array, bias: Float32Array | null, M: number, N: number, K: number, out: Float32Array): void {
  let m0 = 0;
  // Two rows per pass over the weights (prefill, batched decode, speculative verification): each
  // output's sum runs in the same order as in the one-row loop below, so results are bit-identical.
  for (; m0 + 2 <= M; m0 += 2) linearTwoRows(x, w, bias, m0, N, K, out);
  for (let m = m0; m < M; m++) {
    const xo = m * K, oo = m * N;
    let n = 0;
    // Four weight rows at a time: each x element is loaded once per four outputs.
    for (; n + 4 <= N; n += 4) {
      const w0 = n * K, w1 = w0 + K, w2 = w1 + K, w3 = w2 + K;
      let a0 = 0, a1 = 0, a2 = 0, a3 = 0;
      for (let k = 0; k < K; k++) {
        const xv = x[xo + k];
        a0 += xv * w[w0 + k];
        a1 += xv * w[w1 + k];
        a2 += xv * w[w2 + k];
        a3 += xv * w[w3 + k];
      }
      if (bias) {
        a0 += bias[n];
        a1 += bias[n + 1];
        a2 += bias[n + 2];
        a3 += bias[n + 3];
      }
      out[oo + n] = a0;
      out[oo + n + 1] = a1;
      out[oo + n + 2] = a2;
      out[oo + n + 3] = a3;
    }
    for (; n < N; n++) {
      const wo = n * K;
      let a = 0;
      for (let k = 0; k < K; k++) a += x[xo + k] * w[wo + k];
      out[oo + n] = bias ? a + bias[n] : a;
    }
  }
}

/** Rows m and m + 1 of `linear`, four weight rows at a time (eight sums; the one-row loop's order). */
function linearTwoRows(x: Float32Array, w: Float32Array, bias: Float32Array | null, m: number, N: number, K: number, out: Float32Array): void {
  const xa = m * K, xb = xa + K, oa = m * N, ob = oa + N;
  let n = 0;
  for (; n + 4 <= N; n += 4) {
    const w0 = n * K, w1 = w0 + K, w2 = w1 + K, w3 = w2 + K;
    let a0 = 0, a1 = 0, a2 = 0, a3 = 0, b0 = 0, b1 = 0, b2 = 0, b3 = 0;
    for (let k = 0; k < K; k++) {
      const xv = x[xa + k], yv = x[xb + k];
      const v0 = w[w0 + k], v1 = w[w1 + k], v2 = w[w2 + k], v3 = w[w3 + k];
      a0 += xv * v0;
      a1 += xv * v1;
      a2 += xv * v2;
      a3 += xv * v3;
      b0 += yv * v0;
      b1 += yv * v1;
      b2 += yv * v2;
      b3 += yv * v3;
    }
    if (bias) {
      a0 += bias[n];
      a1 += bias[n + 1];
      a2 += bias[n + 2];
      a3 += bias[n + 3];
      b0 += bias[n];
      b1 += bias[n + 1];
      b2 += bias[n + 2];
      b3 += bias[n + 3];
    }
    out[oa + n] = a0;
    out[oa + n + 1] = a1;
    out[oa + n + 2] = a2;
    out[oa + n + 3] = a3;
    out[ob + n] = b0;
    out[ob + n + 1] = b1;
    out[ob + n + 2] = b2;
    out[ob + n + 3] = b3;
  }
  for (; n < N; n++) {
    const wo = n * K;
    let a = 0, b = 0;
    for (let k = 0; k < K; k++) {
      a += x[xa + k] * w[wo + k];
      b += x[xb + k] * w[wo + k];
    }
    out[oa + n] = bias ? a + bias[n] : a;
    out[ob + n] = bias ? b + bias[n] : b;
  }
}

/** RMSNorm over each q and k head inside packed qkv rows (Qwen3), in place. */
export function qkNorm(qkv: Float32Array, qw: Float32Array, kw: Float32Array, eps: number, T: number, nH: number, nKV: number, hd: number): void {
  const width = (nH + 2 * nKV) * hd;
  for (let t = 0; t < T; t++) {
    for (let h = 0; h < nH + nKV; h++) {
      const o = t * width + h * hd;
      const w = h < nH ? qw : kw;
      let ss = 0;
      for (let i = 0; i < hd; i++) ss += qkv[o + i] * qkv[o + i];
      const inv = 1 / Math.sqrt(ss / hd + eps);
      for (let i = 0; i < hd; i++) qkv[o + i] = qkv[o + i] * inv * w[i];
    }
  }
}

/** The paged KV cache of one layer: [numBlocks, 2 (k, v), blockSize, numKvHeads, headDim] elements. */
export interface LayerCache {
  /** float32 elements, or the stored bytes of a quantized cache (`quant`; see kv_cache.ts). */
  readonly data: Float32Array | Uint8Array;
  readonly blockSize: number;
  readonly numKvHeads: number;
  readonly headDim: number;
  /** A quantized cache: its algorithm and this layer's scales [2, numKvHeads] (K heads, then V heads). */
  readonly quant?: { readonly algo: KvQuantAlgo; readonly scales: Float32Array };
}

/** Packed-batch geometry shared by the attention kernels. */
export interface BatchGeometry {
  readonly numSeqs: number;
  readonly seqStarts: Int32Array; // [numSeqs + 1] packed token ranges
  readonly positions: Int32Array; // [numTokens]
  readonly blockTables: Int32Array; // [numSeqs, maxBlocksPerSeq]
  readonly maxBlocksPerSeq: number;
}

/** Element offset of (position, kvHead) of K (which=0) or V (which=1) in a sequence's paged cache. */
function cacheOffset(c: LayerCache, g: BatchGeometry, s: number, pos: number, which: 0 | 1, kvh: number): number {
  const bs = c.blockSize;
  const block = g.blockTables[s * g.maxBlocksPerSeq + ((pos / bs) | 0)];
  const rowWidth = c.numKvHeads * c.headDim;
  return ((block * 2 + which) * bs + (pos % bs)) * rowWidth + kvh * c.headDim;
}

/**
 * Applies RoPE (HF rotate_half layout: pairs i, i + hd/2) to q and k of each packed token,
 * writes rotated k and v into the paged cache at the token's position, and rotated q to `q`.
 */
export function ropeKvWrite(
  qkv: Float32Array,
  q: Float32Array,
  cache: LayerCache,
  g: BatchGeometry,
  invFreq: readonly number[],
  attnScaling: number,
  nH: number,
  nKV: number,
  hd: number,
): void {
  const width = (nH + 2 * nKV) * hd, half = hd / 2;
  const cos = new Float64Array(half), sin = new Float64Array(half);
  const qz = cache.quant, kRow = new Float32Array(hd);
  for (let s = 0; s < g.numSeqs; s++) {
    for (let t = g.seqStarts[s]; t < g.seqStarts[s + 1]; t++) {
      const pos = g.positions[t];
      for (let i = 0; i < half; i++) {
        const ang = invFreq[i] * pos;
        cos[i] = Math.cos(ang) * attnScaling;
        sin[i] = Math.sin(ang) * attnScaling;
      }
      const row = t * width;
      for (let h = 0; h < nH; h++) rotate(qkv, row + h * hd, q, t * nH * hd + h * hd, cos, sin, half);
      for (let h = 0; h < nKV; h++) {
        const ko = cacheOffset(cache, g, s, pos, 0, h), vo = row + (nH + nKV + h) * hd, vd = cacheOffset(cache, g, s, pos, 1, h);
        if (qz) {
          // The float32 values an unquantized cache would hold, encoded with the head's scale.
          rotate(qkv, row + (nH + h) * hd, kRow, 0, cos, sin, half);
          encodeKvRow(qz.algo, kRow, 0, cache.data as Uint8Array, ko, hd, qz.scales[h]);
          encodeKvRow(qz.algo, qkv, vo, cache.data as Uint8Array, vd, hd, qz.scales[nKV + h]);
        } else {
          rotate(qkv, row + (nH + h) * hd, cache.data as Float32Array, ko, cos, sin, half);
          (cache.data as Float32Array).set(qkv.subarray(vo, vo + hd), vd);
        }
      }
    }
  }
}

function rotate(src: Float32Array, so: number, dst: Float32Array, d: number, cos: Float64Array, sin: Float64Array, half: number): void {
  for (let i = 0; i < half; i++) {
    const a = src[so + i], b = src[so + half + i];
    dst[d + i] = a * cos[i] - b * sin[i];
    dst[d + half + i] = b * cos[i] + a * sin[i];
  }
}

/**
 * Causal attention of each packed token over its sequence's cache up to its own position
 * (optionally only the last `window` positions), GQA: query head h reads kv head h / (nH / nKV).
 */
export function pagedAttention(
  q: Float32Array,
  out: Float32Array,
  cache: LayerCache,
  g: BatchGeometry,
  nH: number,
  nKV: number,
  hd: number,
  scale: number,
  window: number,
): void {
  const group = nH / nKV;
  let scores = new Float64Array(256);
  const acc = new Float64Array(hd);
  // A quantized cache is read one dequantized row at a time (at offset 0 of `row`).
  const qz = cache.quant, row = new Float32Array(hd);
  const read = (o: number, which: 0 | 1, kvh: number): number => {
    if (!qz) return o;
    decodeKvRow(qz.algo, cache.data as Uint8Array, o, row, hd, qz.scales[which * nKV + kvh]);
    return 0;
  };
  const data = qz ? row : cache.data as Float32Array;
  for (let s = 0; s < g.numSeqs; s++) {
    for (let t = g.seqStarts[s]; t < g.seqStarts[s + 1]; t++) {
      const pos = g.positions[t];
      const start = window > 0 ? Math.max(0, pos + 1 - window) : 0;
      const n = pos + 1 - start;
      if (scores.length < n) scores = new Float64Array(n * 2);
      for (let h = 0; h < nH; h++) {
        const kvh = (h / group) | 0;
        const qo = (t * nH + h) * hd;
        let max = -Infinity;
        for (let j = 0; j < n; j++) {
          const ko = read(cacheOffset(cache, g, s, start + j, 0, kvh), 0, kvh);
          let dot = 0;
          for (let i = 0; i < hd; i++) dot += q[qo + i] * data[ko + i];
          const sc = dot * scale;
          scores[j] = sc;
          if (sc > max) max = sc;
        }
        let sum = 0;
        for (let j = 0; j < n; j++) {
          const e = Math.exp(scores[j] - max);
          scores[j] = e;
          sum += e;
        }
        acc.fill(0);
        for (let j = 0; j < n; j++) {
          const vo = read(cacheOffset(cache, g, s, start + j, 1, kvh), 1, kvh);
          const p = scores[j] / sum;
          for (let i = 0; i < hd; i++) acc[i] += p * data[vo + i];
        }
        for (let i = 0; i < hd; i++) out[qo + i] = acc[i];
      }
    }
  }
}

/** out[t, i] = silu(gateUp[t, i]) · gateUp[t, I + i]  — gateUp [T, 2I] (gate first), out [T, I]. */
export function siluMul(gateUp: Float32Array, out: Float32Array, T: number, I: number): void {
  for (let t = 0; t < T; t++) {
    const go = t * 2 * I, oo = t * I;
    for (let i = 0; i < I; i++) {
      const g = gateUp[go + i];
      out[oo + i] = (g / (1 + Math.exp(-g))) * gateUp[go + I + i];
    }
  }
}

/** out += x over n elements. */
export function addInPlace(x: Float32Array, out: Float32Array, n: number): void {
  for (let i = 0; i < n; i++) out[i] += x[i];
}

/** out[r, :] = x[rows[r], :] for each selected row. */
export function gatherRows(x: Float32Array, rows: Int32Array, numRows: number, width: number, out: Float32Array): void {
  for (let r = 0; r < numRows; r++) out.set(x.subarray(rows[r] * width, rows[r] * width + width), r * width);
}
