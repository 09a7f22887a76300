/**
 * Block-wise FP8 (`FP8_BLOCK_SCALES`, TensorRT-LLM's name; DeepSeek-V3 / Qwen3-FP8 checkpoints with
 * `quant_method: "fp8"`, `weight_block_size: [bn, bk]`): W [N, K] in e4m3 with one float32 scale per
 * bn × bk block — the checkpoint's `weight_scale_inv` [⌈N/bn⌉, ⌈K/bk⌉], w = e4m3(q) · s — and
 * activations quantized to e4m3 per token and per group of bk input channels at run time.
 *
 * llmrt stores it as an "fp8_e4m3" tensor with groupSize bk and `scales` [N, ⌈K/bk⌉] (each block
 * row's scales repeated on its bn rows): the same values, addressable per output row, so fused
 * projections (q/k/v, gate/up) concatenate whatever their row counts.
 */
import { E4M3_MAX, e4m3EncodeMulF32 } from "../util/e4m3.ts";
import { absMax, isShared } from "./fp8.ts";
import { FormatError } from "../util/errors.ts";
import type { QuantizedTensor } from "./packed.ts";
import type { TaskRunner } from "./tasks.ts";

/** The block size of DeepSeek-V3 / Qwen3 FP8 checkpoints and FP8_BLOCK_SCALES. */
export const FP8_BLOCK: readonly [number, number] = [128, 128];

const ceilDiv = (a: number, b: number): number => Math.ceil(a / b);

/**
 * Quantizes W [N, K] block-wise the way Hugging Face's FineGrainedFP8 quantizer does: per block,
 * m = float32(448 / amax), q = e4m3(float32(w · m)), s = float32(1 / m) (blocks at the edges may be
 * partial). Returns the llmrt tensor and the checkpoint's block scales [⌈N/bn⌉, ⌈K/bk⌉].
 */
export function quantizeFp8Block(
  W: ArrayLike<number>,
  N: number,
  K: number,
  block: readonly [number, number] = FP8_BLOCK,
  runner?: TaskRunner,
): {
  tensor: QuantizedTensor;
  blockScales: Float32Array;
} {
  const [bn, bk] = block, rb = ceilDiv(N, bn), cb = ceilDiv(K, bk);
  // Over a pool (one task per block row) only when W is in shared memory; the same bytes either way.
  if (runner && runner.threads > 1 && isShared(W)) {
    const blockScales = new Float32Array(new SharedArrayBuffer(4 * rb * cb)), packed = new Uint8Array(new SharedArrayBuffer(N * K));
    runner.run({ kind: "fp8Block", W, N, K, bn, bk, blockScales, packed }, rb);
    const own = blockScales.slice();
    return { tensor: fromFp8Blocks(packed.slice(), own, N, K, block), blockScales: own };
  }
  const blockScales = new Float32Array(rb * cb);
  const packed = new Uint8Array(N * K);
  for (let i = 0; i < rb; i++) fp8BlockRows(W, N, K, block, i, blockScales, packed);
  return { tensor: fromFp8Blocks(packed, blockScales, N, K, block), blockScales };
}

/** Block row i (rows [i·bn, min(N, (i + 1)·bn))) of {@link quantizeFp8Block}: its block scales and bytes. */
export function fp8BlockRows(
  W: ArrayLike<number>,
  N: number,
  K: number,
  block: readonly [number, number],
  i: number,
  blockScales: Float32Array,
  packed: Uint8Array,
): void {
  const [bn, bk] = block, cb = ceilDiv(K, bk), n1 = Math.min(N, (i + 1) * bn);
  for (let j = 0; j < cb; j++) {
    const k0 = j * bk, len = Math.min(K, k0 + bk) - k0;
    let amax = 0;
    for (let n = i * bn; n < n1; n++) amax = Math.max(amax, absMax(W, n * K + k0, len));
    const m = amax > 0 ? Math.fround(E4M3_MAX / amax) : 1;
    blockScales[i * cb + j] = Math.fround(1 / m);
    for (let n = i * bn; n < n1; n++) e4m3EncodeMulF32(W, n * K + k0, len, m, packed, n * K + k0);
  }
}

/** An llmrt tensor from checkpoint bytes [N, K] and block scales [⌈N/bn⌉, ⌈K/bk⌉]. */
export function fromFp8Blocks(packed: Uint8Array, blockScales: Float32Array, N: number, K: number, block: readonly [number, number]): QuantizedTensor {
  const [bn, bk] = block, cb = ceilDiv(K, bk);
  if (packed.length !== N * K || blockScales.length !== ceilDiv(N, bn) * cb) {
    throw new FormatError(`FP8 block: ${packed.length} bytes and ${blockScales.length} scales do not fit [${N}, ${K}] in blocks of [${bn}, ${bk}]`);
  }
  const scales = new Float32Array(N * cb);
  for (let n = 0; n < N; n++) scales.set(blockScales.subarray(Math.floor(n / bn) * cb, Math.floor(n / bn) * cb + cb), n * cb);
  return {
    bits: 8,
    rows: N,
    cols: K,
    groupSize: bk,
    packed,
    scales,
    zeros: null,
    format: "fp8_e4m3",
    activationScale: null,
    weightScale: "per_block",
    blockRows: bn,
  };
}
