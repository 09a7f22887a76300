/**
 * Rotary position embedding frequencies, computed as transformers' modeling_rope_utils.py does for
 * the rope types our configs accept (default, linear, dynamic NTK, llama3, yarn), in float64.
 *
 * Layout is HF "rotate_half": for a head vector x of length headDim and half = headDim / 2, pair
 * (i, i + half) rotates by angle position · invFreq[i]:
 *   out[i]        = x[i] · cos − x[i + half] · sin
 *   out[i + half] = x[i + half] · cos + x[i] · sin
 * (cos and sin already multiplied by attentionScaling).
 */
import { ValidationError } from "../util/errors.ts";
import type { PretrainedConfig } from "./config.ts";

/** The config fields RoPE depends on. */
export type RopeConfig = Pick<PretrainedConfig, "headDim" | "ropeTheta" | "ropeScaling" | "maxPositionEmbeddings">;

/** Inverse frequencies and the factor applied to cos/sin (1 except for yarn). */
export interface RopeFrequencies {
  /** [headDim / 2] */
  readonly invFreq: Float64Array;
  readonly attentionScaling: number;
}

function defaultInvFreq(base: number, dim: number): Float64Array {
  const inv = new Float64Array(dim / 2);
  for (let i = 0; i < inv.length; i++) inv[i] = 1 / base ** ((2 * i) / dim);
  return inv;
}

function yarnMscale(scale: number, mscale = 1): number {
  return scale <= 1 ? 1 : 0.1 * mscale * Math.log(scale) + 1;
}

/**
 * Inverse frequencies for `config`. `seqLen` matters only for dynamic NTK scaling, which changes
 * the base only once seqLen exceeds maxPositionEmbeddings (the HF forward recomputes at
 * seqLen = max position id + 1).
 *
 * @example
 * ```ts
 * const { invFreq, attentionScaling } = computeRopeInvFreq(cfg);
 * invFreq[0]; // 1 (always: theta^0)
 * ```
 */
export function computeRopeInvFreq(config: RopeConfig, seqLen?: number): RopeFrequencies {
  const dim = config.headDim;
  if (!Number.isInteger(dim) || dim <= 0 || dim % 2 !== 0) {
    throw new ValidationError(`computeRopeInvFreq: headDim must be a positive even integer, got ${dim}`, "headDim", dim);
  }
  const theta = config.ropeTheta;
  const s = config.ropeScaling;
  if (!s) return { invFreq: defaultInvFreq(theta, dim), attentionScaling: 1 };
  switch (s.type) {
    case "linear": {
      const inv = defaultInvFreq(theta, dim);
      for (let i = 0; i < inv.length; i++) inv[i] /= s.factor;
      return { invFreq: inv, attentionScaling: 1 };
    }
    case "dynamic": {
      const maxPos = config.maxPositionEmbeddings;
      const len = seqLen !== undefined && seqLen > maxPos ? seqLen : maxPos;
      const base = theta * ((s.factor * len) / maxPos - (s.factor - 1)) ** (dim / (dim - 2));
      return { invFreq: defaultInvFreq(base, dim), attentionScaling: 1 };
    }
    case "llama3": {
      const inv = defaultInvFreq(theta, dim);
      const low = s.lowFreqFactor as number;
      const high = s.highFreqFactor as number;
      const old = s.originalMaxPositionEmbeddings ?? config.maxPositionEmbeddings;
      const lowFreqWavelen = old / low;
      const highFreqWavelen = old / high;
      for (let i = 0; i < inv.length; i++) {
        const wavelen = (2 * Math.PI) / inv[i];
        if (wavelen > lowFreqWavelen) {
          inv[i] = inv[i] / s.factor;
        } else if (wavelen >= highFreqWavelen) {
          const smooth = (old / wavelen - low) / (high - low);
          inv[i] = (1 - smooth) * (inv[i] / s.factor) + smooth * inv[i];
        }
      }
      return { invFreq: inv, attentionScaling: 1 };
    }
    case "yarn": {
      const original = s.originalMaxPositionEmbeddings ?? config.maxPositionEmbeddings;
      const factor = s.factor;
      let attentionScaling = s.attentionFactor;
      if (attentionScaling === undefined) {
        attentionScaling = s.mscale && s.mscaleAllDim ? yarnMscale(factor, s.mscale) / yarnMscale(factor, s.mscaleAllDim) : yarnMscale(factor);
      }
      const betaFast = s.betaFast || 32;
      const betaSlow = s.betaSlow || 1;
      const correctionDim = (rotations: number): number => (dim * Math.log(original / (rotations * 2 * Math.PI))) / (2 * Math.log(theta));
      let lo = correctionDim(betaFast);
      let hi = correctionDim(betaSlow);
      if (s.truncate ?? true) {
        lo = Math.floor(lo);
        hi = Math.ceil(hi);
      }
      lo = Math.max(lo, 0);
      hi = Math.min(hi, dim - 1);
      if (lo === hi) hi += 0.001; // as transformers: avoid a zero-width ramp
      const inv = new Float64Array(dim / 2);
      for (let i = 0; i < inv.length; i++) {
        const posFreq = theta ** ((2 * i) / dim);
        const extrapolation = 1 / posFreq;
        const interpolation = 1 / (factor * posFreq);
        const ramp = Math.min(1, Math.max(0, (i - lo) / (hi - lo)));
        const extrapolationFactor = 1 - ramp;
        inv[i] = interpolation * (1 - extrapolationFactor) + extrapolation * extrapolationFactor;
      }
      return { invFreq: inv, attentionScaling };
    }
  }
}

/**
 * cos and sin of position · invFreq (each [invFreq.length]), times `attentionScaling`.
 *
 * @example
 * ```ts
 * const { cos, sin } = ropeCosSin(invFreq, 7);
 * ```
 */
export function ropeCosSin(
  invFreq: Float64Array,
  position: number,
  attentionScaling = 1,
): { cos: Float64Array; sin: Float64Array } {
  const cos = new Float64Array(invFreq.length);
  const sin = new Float64Array(invFreq.length);
  for (let i = 0; i < invFreq.length; i++) {
    const angle = position * invFreq[i];
    cos[i] = Math.cos(angle) * attentionScaling;
    sin[i] = Math.sin(angle) * attentionScaling;
  }
  return { cos, sin };
}

/**
 * Rotates one head vector in place, rotate_half layout (pairs i and i + headDim/2).
 *
 * @example
 * ```ts
 * const q = new Float32Array(headDim); // one head of one token
 * applyRotaryHalf(q, cos, sin);
 * ```
 */
export function applyRotaryHalf(head: Float32Array | Float64Array, cos: Float64Array, sin: Float64Array): void {
  const half = cos.length;
  if (head.length !== 2 * half || sin.length !== half) {
    throw new ValidationError(
      `applyRotaryHalf: head has ${head.length} elements, cos/sin ${cos.length}/${sin.length} (need head = 2 × cos = 2 × sin)`,
      "head",
      head.length,
    );
  }
  for (let i = 0; i < half; i++) {
    const a = head[i];
    const b = head[i + half];
    head[i] = a * cos[i] - b * sin[i];
    head[i + half] = b * cos[i] + a * sin[i];
  }
}
