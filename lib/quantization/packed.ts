/**
 * llmrt's packed weight-only format (what engines store and the kernels read), independent of
 * the Hugging Face checkpoint layouts (AWQ GEMM, GPTQ) that hf_formats.ts converts from and to.
 *
 * A linear W [N out, K in] becomes
 * - `packed`  [N, K·bits/8] uint8: unsigned integers q; int4 holds two per byte, element 2j in the
 *   low nibble of byte j, 2j+1 in the high nibble; int8 one per byte.
 * - `scales`  [N, K/G] float32 (values exactly representable in float16, as every public format stores them)
 * - `zeros`   [N, K/G] uint8, or absent for symmetric weights (zero point 2^(bits-1))
 *
 * w[n, k] = (q[n, k] − z[n, k/G]) · s[n, k/G]. Per-channel is G = K.
 */
import { e2m1Decode } from "../util/e2m1.ts";
import { e4m3Decode } from "../util/e4m3.ts";
import { InternalError } from "../util/errors.ts";

export interface QuantizedTensor {
  readonly bits: 4 | 8;
  /** N: output features. */
  readonly rows: number;
  /** K: input features. */
  readonly cols: number;
  /** Input channels per scale (K for per-channel). */
  readonly groupSize: number;
  /** [rows, cols·bits/8] */
  readonly packed: Uint8Array;
  /** [rows, cols/groupSize] */
  readonly scales: Float32Array;
  /** [rows, cols/groupSize]; null = symmetric, zero point 2^(bits−1). */
  readonly zeros: Uint8Array | null;
  /**
   * "fp8_e4m3": `packed` holds e4m3 bytes (bits 8, groupSize = cols, zeros null) and
   * w[n, k] = e4m3(packed[n, k]) · scales[n]; absent: unsigned integers as above.
   * "int8" (W8A8_SQ_PER_CHANNEL): signed two's complement bytes, w = q · scales[n] (groupSize = cols).
   * "int4" (W4A8_AWQ): signed two's complement nibbles (−8..7, element 2j low), w = q · scales[n, k/G].
   * "nvfp4": e2m1 codes (lib/util/e2m1.ts, element 2j low), `scales` [rows, cols/16] the e4m3 block
   * scales' values (exactly e4m3), w = e2m1 · scales[n, k/16] · globalScale. zeros are null for all.
   */
  readonly format?: "fp8_e4m3" | "int8" | "int4" | "nvfp4";
  /**
   * Static per-tensor activation scale (FP8, W4A8_AWQ: x ≈ e4m3 · a; NVFP4: the activations' global
   * scale under their dynamic block scales), or null for dynamic per-token scales.
   */
  readonly activationScale?: number | null;
  /** NVFP4: the weight's float32 global scale (amax / (6·448)). */
  readonly globalScale?: number;
  /** W8A8_SQ_PER_CHANNEL o_proj / down_proj: [cols] multipliers of the input (1/s of SmoothQuant) applied before it is quantized. */
  readonly preQuantScale?: Float32Array;
  /** FP8: whether every row of `scales` repeats one per-tensor scale. */
  readonly weightScale?: "per_tensor" | "per_channel" | "per_block";
  /** FP8_BLOCK_SCALES: rows per block (bn of the checkpoint's [bn, bk] blocks; `scales` repeats each block row's scales on its rows). */
  readonly blockRows?: number;
}

/** Bytes one row of `packed` takes. */
export const packedRowBytes = (bits: 4 | 8, cols: number): number => (cols * bits) / 8;

/** Packs unsigned integers q [rows, cols] (each < 2^bits) into the llmrt layout. */
export function packInts(q: Uint8Array, rows: number, cols: number, bits: 4 | 8): Uint8Array {
  if (bits === 8) return q.slice(0, rows * cols);
  if (cols % 2 !== 0) throw new InternalError(`packInts: int4 needs an even column count, got ${cols}`);
  const out = new Uint8Array((rows * cols) / 2);
  for (let i = 0, j = 0; j < out.length; i += 2, j++) out[j] = (q[i] & 15) | ((q[i + 1] & 15) << 4);
  return out;
}

/** Unpacks the integers of row `n` into `dst` [cols]. */
export function unpackRow(t: QuantizedTensor, n: number, dst: Uint8Array): void {
  const rb = packedRowBytes(t.bits, t.cols), base = n * rb;
  if (t.bits === 8) {
    dst.set(t.packed.subarray(base, base + rb));
    return;
  }
  for (let j = 0; j < rb; j++) {
    const b = t.packed[base + j];
    dst[2 * j] = b & 15;
    dst[2 * j + 1] = b >> 4;
  }
}

/** Zero point of (row n, group g). */
export function zeroAt(t: QuantizedTensor, n: number, g: number): number {
  return t.zeros ? t.zeros[n * (t.cols / t.groupSize) + g] : 1 << (t.bits - 1);
}

/** The dequantized matrix in float64 [rows, cols] (reference and tests; engines never do this). */
export function dequantize(t: QuantizedTensor): Float64Array {
  const { rows, cols, groupSize } = t;
  const out = new Float64Array(rows * cols);
  const q = new Uint8Array(cols);
  const ng = cols / groupSize;
  if (t.format === "fp8_e4m3") {
    // Per row (groupSize = cols), or per row and group of groupSize input channels (FP8_BLOCK_SCALES: scales [rows, ⌈cols/groupSize⌉]).
    const fg = Math.ceil(cols / groupSize);
    for (let i = 0; i < rows * cols; i++) out[i] = e4m3Decode(t.packed[i]) * t.scales[Math.floor(i / cols) * fg + Math.floor((i % cols) / groupSize)];
    return out;
  }
  if (t.format === "int8") {
    for (let i = 0; i < rows * cols; i++) out[i] = ((t.packed[i] << 24) >> 24) * t.scales[Math.floor(i / cols)];
    return out;
  }
  for (let n = 0; n < rows; n++) {
    unpackRow(t, n, q);
    if (t.format === "int4" || t.format === "nvfp4") {
      const g2 = t.format === "nvfp4" ? t.globalScale! : 1;
      for (let k = 0; k < cols; k++) {
        const v = t.format === "int4" ? ((q[k] << 28) >> 28) : e2m1Decode(q[k]);
        out[n * cols + k] = v * t.scales[n * ng + ((k / groupSize) | 0)] * g2;
      }
      continue;
    }
    for (let k = 0; k < cols; k++) {
      const g = (k / groupSize) | 0;
      out[n * cols + k] = (q[k] - zeroAt(t, n, g)) * t.scales[n * ng + g];
    }
  }
  return out;
}

/** Stacks tensors with the same cols/bits/groupSize along the rows (fused QKV, gate/up). */
export function concatRows(parts: readonly QuantizedTensor[]): QuantizedTensor {
  const first = parts[0];
  if (parts.length === 1) return first;
  for (const p of parts) {
    if (
      p.cols !== first.cols || p.bits !== first.bits || p.groupSize !== first.groupSize || (p.zeros === null) !== (first.zeros === null) ||
      p.format !== first.format || p.activationScale !== first.activationScale || p.weightScale !== first.weightScale ||
      p.globalScale !== first.globalScale || p.preQuantScale !== undefined
    ) {
      throw new InternalError(
        `concatRows: parts differ (cols ${p.cols}/${first.cols}, bits ${p.bits}/${first.bits}, groupSize ${p.groupSize}/${first.groupSize})`,
      );
    }
  }
  const cat = <T extends Uint8Array | Float32Array>(xs: T[], make: (n: number) => T): T => {
    const out = make(xs.reduce((a, x) => a + x.length, 0));
    let o = 0;
    for (const x of xs) {
      out.set(x, o);
      o += x.length;
    }
    return out;
  };
  return {
    bits: first.bits,
    rows: parts.reduce((a, p) => a + p.rows, 0),
    cols: first.cols,
    groupSize: first.groupSize,
    packed: cat(parts.map((p) => p.packed), (n) => new Uint8Array(n)),
    scales: cat(parts.map((p) => p.scales), (n) => new Float32Array(n)),
    zeros: first.zeros ? cat(parts.map((p) => p.zeros!), (n) => new Uint8Array(n)) : null,
    ...(first.format ? { format: first.format, activationScale: first.activationScale, weightScale: first.weightScale } : {}),
    ...(first.globalScale !== undefined ? { globalScale: first.globalScale } : {}),
  };
}

/** Bytes the tensor occupies (packed + scales as float32, NVFP4's as e4m3 bytes + zeros + pre-quant scales). */
export function quantizedByteSize(t: QuantizedTensor): number {
  const scales = t.format === "nvfp4" ? t.scales.length : t.scales.byteLength;
  return t.packed.byteLength + scales + (t.zeros?.byteLength ?? 0) + (t.preQuantScale?.byteLength ?? 0);
}
