/**
 * The CPU KV cache: one array per layer, [numBlocks, 2 (k, v), tokensPerBlock, numKvHeads, headDim],
 * float32 elements, or one byte per element when the engine quantizes its KV cache
 * (`plan.attributes.kvCache`): FP8 stores e4m3 bytes, INT8 two's-complement int8 in [−127, 127].
 * Element x (the float32 value an unquantized cache would hold) is stored as
 * q = encode(float32(x / s)) — e4m3: round to nearest even, saturating to ±448; int8: round to
 * nearest even, clamped to ±127 — and read back as decode(q) · s, with s the scale of its
 * (layer, k | v, kv head). Static scales make the stored bytes independent of how a sequence's
 * tokens were batched or chunked.
 */
import { bytesPerBlock, type KvCache, type KvCacheGeometry, type KvCacheQuant, type KvQuantAlgo } from "../../ir/kv_cache.ts";
import { E4M3_DECODE, e4m3Encode } from "../../util/e4m3.ts";
import { ValidationError } from "../../util/errors.ts";

/** Round to nearest integer, ties to even. */
function rne(v: number): number {
  const f = Math.floor(v), d = v - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

/** The stored byte of `x` under scale `s`. */
export function kvEncode(algo: KvQuantAlgo, x: number, s: number): number {
  const v = Math.fround(x / s);
  if (algo === "FP8") return e4m3Encode(v);
  if (Number.isNaN(v)) return 0;
  return Math.max(-127, Math.min(127, rne(v))) & 255;
}

/** The unscaled value of a stored byte (multiply by the scale). */
export function kvDecode(algo: KvQuantAlgo, b: number): number {
  return algo === "FP8" ? E4M3_DECODE[b & 255] : (b << 24) >> 24;
}

/** Encodes `n` values of `src` from `so` into `dst` at `d` with scale `s`. */
export function encodeKvRow(algo: KvQuantAlgo, src: ArrayLike<number>, so: number, dst: Uint8Array, d: number, n: number, s: number): void {
  for (let i = 0; i < n; i++) dst[d + i] = kvEncode(algo, src[so + i], s);
}

/** Decodes `n` bytes of `src` from `so` into `dst` [n] as float32(decode(q) · s). */
export function decodeKvRow(algo: KvQuantAlgo, src: Uint8Array, so: number, dst: Float32Array, n: number, s: number): void {
  if (algo === "FP8") { for (let i = 0; i < n; i++) dst[i] = E4M3_DECODE[src[so + i]] * s; }
  else for (let i = 0; i < n; i++) dst[i] = ((src[so + i] << 24) >> 24) * s;
}

/** Checks a plan's `attributes.kvCache` against the geometry; returns float32 scales [numLayers, 2, numKvHeads]. */
export function kvQuantScales(q: KvCacheQuant, numLayers: number, numKvHeads: number): Float32Array {
  const n = numLayers * 2 * numKvHeads;
  if (q.scales.length !== n || !q.scales.every((v) => Number.isFinite(v) && v > 0)) {
    throw new ValidationError(
      `Session: plan.attributes.kvCache.scales must be ${n} positive finite numbers ([numLayers, 2, numKvHeads]), got ${q.scales.length}`,
      "plan.attributes.kvCache.scales",
      q.scales.length,
    );
  }
  return Float32Array.from(q.scales);
}

/** A CPU KV cache: one float32 array per layer, or one byte array per layer when quantized. */
export class CpuKvCache implements KvCache {
  readonly layers: (Float32Array | Uint8Array)[];
  readonly bytesPerBlock: number;
  /** The quantization of the stored bytes and its scales [numLayers, 2, numKvHeads]; null for float32. */
  readonly quant: { readonly algo: KvQuantAlgo; readonly scales: Float32Array } | null;
  constructor(readonly geometry: KvCacheGeometry, scales: Float32Array | null = null) {
    const algo = geometry.quantAlgo;
    if ((algo === undefined) !== (scales === null) || geometry.elementBytes !== (algo ? 1 : 4)) {
      throw new ValidationError(
        `CpuKvCache: a ${algo ?? "float32"} cache has ${algo ? "1-byte elements and scales" : "4-byte elements and no scales"}`,
        "geometry.elementBytes",
        geometry.elementBytes,
      );
    }
    this.quant = algo && scales ? { algo, scales } : null;
    this.bytesPerBlock = bytesPerBlock(geometry);
    const per = 2 * geometry.tokensPerBlock * geometry.numKvHeads * geometry.headDim;
    this.layers = Array.from(
      { length: geometry.numLayers },
      () => algo ? new Uint8Array(geometry.numBlocks * per) : new Float32Array(geometry.numBlocks * per),
    );
  }
  get bytes(): number {
    return this.layers.reduce((a, l) => a + l.byteLength, 0);
  }

  /** Copies the KV of each `src` block into its `dst` block, in every layer (copy-on-write). */
  copyBlocks(copies: readonly (readonly [number, number])[]): void {
    if (copies.length === 0) return;
    const g = this.geometry;
    const per = 2 * g.tokensPerBlock * g.numKvHeads * g.headDim;
    for (const layer of this.layers) {
      for (const [src, dst] of copies) layer.copyWithin(dst * per, src * per, (src + 1) * per);
    }
  }

  /** Nothing native to free (the arrays are garbage collected); here for the KvCache contract. */
  dispose(): void {}

  [Symbol.dispose](): void {
    this.dispose();
  }
}
