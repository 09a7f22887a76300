/**
 * The CPU reference of batched multi-LoRA: after a linear's `out = x · Wᵀ`, each sequence's rows
 * get its own adapter's `scaling · (x · Aᵀ) · Bᵀ` on the output columns of each target module
 * (several segments on a fused linear such as QKV or gate/up). Sequences without an adapter
 * (slot -1) are untouched. Accumulates in float64.
 */
import type { LoraAdapterWeights } from "../../ir/step_io.ts";

/**
 * Adds the LoRA deltas of `weight` to `out` [rows, outF] from `x` [rows, inF]; token rows of
 * sequence s are [seqStarts[s], seqStarts[s + 1]) and use adapter slot `adapterIds[s]`.
 */
export function applyLora(
  x: Float32Array,
  out: Float32Array,
  inF: number,
  outF: number,
  seqStarts: Int32Array,
  adapterIds: Int32Array,
  slots: readonly (LoraAdapterWeights | null)[],
  weight: string,
): void {
  const S = seqStarts.length - 1;
  for (let s = 0; s < S; s++) {
    const slot = adapterIds[s];
    if (slot < 0) continue;
    const segs = slots[slot]?.get(weight);
    if (!segs) continue;
    for (const seg of segs) {
      const { a, b, rank, scaling, outOffset, outFeatures } = seg;
      const t = new Float64Array(rank);
      for (let row = seqStarts[s]; row < seqStarts[s + 1]; row++) {
        const xo = row * inF;
        for (let r = 0; r < rank; r++) {
          let acc = 0;
          const ao = r * inF;
          for (let i = 0; i < inF; i++) acc += x[xo + i] * a[ao + i];
          t[r] = acc * scaling;
        }
        const oo = row * outF + outOffset;
        for (let o = 0; o < outFeatures; o++) {
          let acc = 0;
          const bo = o * rank;
          for (let r = 0; r < rank; r++) acc += t[r] * b[bo + r];
          out[oo + o] += acc;
        }
      }
    }
  }
}
