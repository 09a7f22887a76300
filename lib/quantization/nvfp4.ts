/**
 * NVFP4 weights and W4A8_AWQ's int4 weights with FP8 activations.
 *
 * NVFP4 follows the layout NVIDIA ModelOpt exports and TensorRT-LLM loads (ModelOpt's
 * `NVFP4QTensor`, modelopt/torch/quantization/qtensor/nvfp4_tensor.py): `weight` uint8 [N, K/2]
 * (two e2m1 codes per byte, element 2j in the low nibble), `weight_scale` e4m3 [N, K/16] (one per 16
 * consecutive input values), `weight_scale_2` float32 = amax / (6·448), `input_scale` float32 =
 * calibration amax of the input / (6·448). TensorRT-LLM's NVFP4 quantizes the activations too (W4A4):
 * dynamic e4m3 block scales per 16 values under that static global scale — so does the CPU kernel.
 * Hopper GPUs (the H200) have no FP4 tensor cores: there NVFP4 can only be a storage format that the
 * kernel dequantizes (no CUDA kernel exists yet; CUDA builds are refused).
 */
import { E4M3_DECODE } from "../util/e4m3.ts";
import { NVFP4_BLOCK, nvfp4GlobalScale, nvfp4QuantizeBlocks } from "../util/e2m1.ts";
import { InternalError } from "../util/errors.ts";
import { fp8Scale } from "./fp8.ts";
import { packInts, type QuantizedTensor } from "./packed.ts";

export { E2M1_DECODE, E2M1_MAX, e2m1Decode, e2m1Encode, NVFP4_BLOCK, nvfp4GlobalScale, nvfp4QuantizeBlocks } from "../util/e2m1.ts";

/**
 * NVFP4-quantizes W [N, K] (K a multiple of 16). `weightAmax` sets the global scale (default: max |W|;
 * fused q/k/v and gate/up pass the amax of the whole fused weight so its parts share one global scale,
 * as ModelOpt does); `inputAmax` is the calibration amax of the input (the activations' global scale).
 */
export function quantizeNvfp4(W: ArrayLike<number>, N: number, K: number, inputAmax: number, weightAmax?: number): QuantizedTensor {
  if (K % NVFP4_BLOCK !== 0) throw new InternalError(`quantizeNvfp4: in-features ${K} not a multiple of ${NVFP4_BLOCK}`);
  if (!Number.isFinite(inputAmax)) throw new InternalError(`quantizeNvfp4: the input amax must be finite (got ${inputAmax})`);
  let amax = weightAmax ?? 0;
  if (weightAmax === undefined) { for (let i = 0; i < N * K; i++) amax = Math.max(amax, Math.abs(W[i])); }
  const g = nvfp4GlobalScale(amax);
  const codes = new Uint8Array(N * K), scaleBytes = new Uint8Array((N * K) / NVFP4_BLOCK);
  nvfp4QuantizeBlocks(W, 0, N * K, g, codes, 0, scaleBytes, 0);
  return {
    bits: 4,
    rows: N,
    cols: K,
    groupSize: NVFP4_BLOCK,
    packed: packInts(codes, N, K, 4),
    scales: Float32Array.from(scaleBytes, (b) => E4M3_DECODE[b]),
    zeros: null,
    format: "nvfp4",
    activationScale: nvfp4GlobalScale(inputAmax),
    globalScale: g,
  };
}

/**
 * W4A8_AWQ: a symmetric int4 RTN/AWQ result (unsigned nibbles q with zero point 8, llmrt's uint4
 * layout) re-expressed as signed nibbles q − 8 (two's complement, as TensorRT-LLM's int4 weights),
 * with the static FP8 activation scale amax / 448 of the (AWQ-scaled) input.
 */
export function toW4A8(t: QuantizedTensor, inputAmax: number): QuantizedTensor {
  if (t.bits !== 4 || t.zeros !== null || t.format !== undefined) {
    throw new InternalError("toW4A8: expects a symmetric uint4 tensor (zero point 8)");
  }
  if (!Number.isFinite(inputAmax)) throw new InternalError(`toW4A8: the input amax must be finite (got ${inputAmax})`);
  // q ^ 8 maps 0..15 (zero point 8) to the two's complement nibble of q − 8.
  return { ...t, packed: t.packed.map((b) => b ^ 0x88), format: "int4", activationScale: fp8Scale(inputAmax) };
}
