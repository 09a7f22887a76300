/**
 * Kernel signatures of the CUDA launch plans: the file and parameter kinds of each kernel family (the entry point
 * minus its _bf16 / _f32 / _hdN / _mN suffix), and which families may take a programmatic dependent launch.
 * Kernel ABIs: lib/backends/cuda/kernels/README.md.
 */
import type { KernelParamKind } from "../../../ffi/shim.ts";
import { InternalError } from "../../util/errors.ts";
import { LOWBIT_FAMILIES, LOWBIT_PDL_FAMILIES } from "./lowbit_kernels.ts";

const P: KernelParamKind = "ptr", I: KernelParamKind = "i32", F: KernelParamKind = "f32", L: KernelParamKind = "i64";

/** Kernel file and parameter kinds of each kernel family (the entry point minus its _bf16/_f32/_hdN suffix). */
const FAMILIES: Readonly<Record<string, { readonly file: string; readonly params: readonly KernelParamKind[] }>> = {
  embedding: { file: "embedding.cu", params: [P, P, P, I, I, I, P] },
  rmsnorm: { file: "rmsnorm.cu", params: [P, P, P, I, I, F] },
  add_rmsnorm: { file: "rmsnorm.cu", params: [P, P, P, P, I, I, F] },
  add_inplace: { file: "add.cu", params: [P, P, L] },
  silu_mul: { file: "silu_mul.cu", params: [P, P, I, I] },
  gather_rows: { file: "gather_rows.cu", params: [P, P, P, I, I] },
  qk_norm: { file: "qk_norm.cu", params: [P, P, P, I, I, I, I, F] },
  rope_kv_write: { file: "rope_kv_write.cu", params: [P, P, P, P, P, P, P, F, I, I, I, I, I, I, I] },
  rope_kv_write_pdl: { file: "rope_kv_write.cu", params: [P, P, P, P, P, P, P, F, I, I, I, I, I, I, I] },
  paged_attention_decode: { file: "paged_attention.cu", params: [P, P, P, P, P, P, P, P, I, I, I, I, I, I, F, I, I] },
  paged_attention_decode_reduce: { file: "paged_attention.cu", params: [P, P, P, I, I, I, I] },
  paged_attention_prefill: { file: "paged_attention.cu", params: [P, P, P, P, P, P, I, I, I, I, I, I, F, I] },
  paged_attention_prefill_mma: { file: "paged_attention.cu", params: [P, P, P, P, P, P, I, I, I, I, I, I, F, I] },
  flash_prefill: { file: "flash_prefill.cu", params: [P, P, P, P, P, P, I, I, I, I, I, I, F, I] },
  flash_prefill_wg: { file: "flash_prefill_wg.cu", params: [P, P, P, P, P, P, I, I, I, I, I, I, F, I] },
  flash_prefill_wg_q8: { file: "flash_prefill_wg.cu", params: [P, P, P, P, P, P, I, I, I, I, I, I, F, I, P, P, F] },
  flash_prefill_wgt: { file: "flash_prefill_wg.cu", params: [P, P, P, P, P, P, I, I, I, I, I, I, F, I] },
  flash_prefill_wgt_q8: { file: "flash_prefill_wg.cu", params: [P, P, P, P, P, P, I, I, I, I, I, I, F, I, P, P, F] },
  paged_attention_generic: { file: "paged_attention.cu", params: [P, P, P, P, P, P, I, I, I, I, I, I, I, F, I] },
  sample: { file: "sampling.cu", params: [P, I, P, P, P, P, P, P, P] },
  apply_token_mask: { file: "sampling.cu", params: [P, I, P, I, P] },
  stage_in: { file: "staging.cu", params: [P, P, I, I, P, I, I, I, P] },
  stage_out: { file: "staging.cu", params: [P, P, I] },
  lora_shrink: { file: "lora.cu", params: [P, I, I, P, P, I, P, I] },
  lora_expand: { file: "lora.cu", params: [P, I, I, P, P, I, P, I] },
  gemv: { file: "gemv.cu", params: [P, P, P, P, I, I, I] },
  gemv_fused: { file: "gemv.cu", params: [P, P, P, P, P, F, I, I, I, I, P, L] },
  gemv_fused_norm: { file: "gemv.cu", params: [P, P, P, P, P, F, I, I, I, I, P, L] },
  gemv_fused_ks: { file: "gemv.cu", params: [P, P, P, P, P, F, I, I, I, I, P, L] },
  gemv_fused_norm_ks: { file: "gemv.cu", params: [P, P, P, P, P, F, I, I, I, I, P, L] },
  gemv_fused_xpre: { file: "gemv.cu", params: [P, P, P, P, P, F, I, I, I, I, P, L] },
  gemv_fused_norm_xpre: { file: "gemv.cu", params: [P, P, P, P, P, F, I, I, I, I, P, L] },
  gemv_fused_ks_xpre: { file: "gemv.cu", params: [P, P, P, P, P, F, I, I, I, I, P, L] },
  gemv_fused_norm_ks_xpre: { file: "gemv.cu", params: [P, P, P, P, P, F, I, I, I, I, P, L] },
  quant_gemv_u4: { file: "quant_gemv.cu", params: [P, P, P, P, P, P, I, I, I, I] },
  quant_gemv_u8: { file: "quant_gemv.cu", params: [P, P, P, P, P, P, I, I, I, I] },
  quant_gemv_fused_u4: { file: "quant_gemv.cu", params: [P, P, P, P, P, P, P, F, I, I, I, I, I] },
  quant_gemv_fused_u8: { file: "quant_gemv.cu", params: [P, P, P, P, P, P, P, F, I, I, I, I, I] },
  quant_gemv_fused_norm_u4: { file: "quant_gemv.cu", params: [P, P, P, P, P, P, P, F, I, I, I, I, I] },
  quant_gemv_fused_norm_u8: { file: "quant_gemv.cu", params: [P, P, P, P, P, P, P, F, I, I, I, I, I] },
  quant_gemv_fused_addnorm_u4: { file: "quant_gemv.cu", params: [P, P, P, P, P, P, P, F, I, I, I, I, I, P, P] },
  quant_gemv_fused_addnorm_u8: { file: "quant_gemv.cu", params: [P, P, P, P, P, P, P, F, I, I, I, I, I, P, P] },
  quant_gemv_fused_rs_u4: { file: "quant_gemv.cu", params: [P, P, P, P, P, P, P, F, I, I, I, I, I] },
  quant_gemv_fused_rs_u8: { file: "quant_gemv.cu", params: [P, P, P, P, P, P, P, F, I, I, I, I, I] },
  quant_dequant_u4: { file: "quant_gemv.cu", params: [P, P, P, P, I, I, I] },
  // quantGemvFast: quant_gemv_fused*'s parameters (kernels/quant_gemv.cu QG_FAST).
  quant_gemv_fast_u4: { file: "quant_gemv.cu", params: [P, P, P, P, P, P, P, F, I, I, I, I, I] },
  quant_gemv_fast_u8: { file: "quant_gemv.cu", params: [P, P, P, P, P, P, P, F, I, I, I, I, I] },
  quant_gemv_fast_norm_u4: { file: "quant_gemv.cu", params: [P, P, P, P, P, P, P, F, I, I, I, I, I] },
  quant_gemv_fast_norm_u8: { file: "quant_gemv.cu", params: [P, P, P, P, P, P, P, F, I, I, I, I, I] },
  quant_gemv_fast_addnorm_u4: { file: "quant_gemv.cu", params: [P, P, P, P, P, P, P, F, I, I, I, I, I, P, P] },
  quant_gemv_fast_addnorm_u8: { file: "quant_gemv.cu", params: [P, P, P, P, P, P, P, F, I, I, I, I, I, P, P] },
  quant_gemv_fast_rs_u4: { file: "quant_gemv.cu", params: [P, P, P, P, P, P, P, F, I, I, I, I, I] },
  quant_gemv_fast_rs_u8: { file: "quant_gemv.cu", params: [P, P, P, P, P, P, P, F, I, I, I, I, I] },
  // quantGemvPairX: quant_gemv_fast_{addnorm,rs}_u4's parameters (kernels/quant_gemv.cu QG_FASTX_*).
  quant_gemv_fastx_addnorm_u4: { file: "quant_gemv.cu", params: [P, P, P, P, P, P, P, F, I, I, I, I, I, P, P] },
  quant_gemv_fastx_rs_u4: { file: "quant_gemv.cu", params: [P, P, P, P, P, P, P, F, I, I, I, I, I] },
  quant_gemv_fastxx_u4: { file: "quant_gemv.cu", params: [P, P, P, P, P, P, P, F, I, I, I, I, I] },
  quant_gemv_fastxx_addnorm_u4: { file: "quant_gemv.cu", params: [P, P, P, P, P, P, P, F, I, I, I, I, I, P, P] },
  quant_gemv_fastxx_rs_u4: { file: "quant_gemv.cu", params: [P, P, P, P, P, P, P, F, I, I, I, I, I] },
  quant_gemm_u4: { file: "quant_gemm.cu", params: [P, P, P, P, P, P, P, I, I, I, I] },
  quant_gemm_u8: { file: "quant_gemm.cu", params: [P, P, P, P, P, P, P, I, I, I, I] },
  quant_gemm_reduce: { file: "quant_gemm.cu", params: [P, P, P, I, I, I] },
  quant_dequant_u8: { file: "quant_gemv.cu", params: [P, P, P, P, I, I, I] },
  fp8_gemv: { file: "fp8_gemv.cu", params: [P, P, P, P, P, I, I, I, F] },
  fp8_gemv_fused: { file: "fp8_gemv.cu", params: [P, P, P, P, P, P, F, I, I, I, F, I] },
  fp8_gemv_fused_norm: { file: "fp8_gemv.cu", params: [P, P, P, P, P, P, F, I, I, I, F, I] },
  fp8_gemv1_fused: { file: "fp8_gemv.cu", params: [P, P, P, P, P, P, F, I, I, I, F, I] },
  fp8_gemv1_fused_norm: { file: "fp8_gemv.cu", params: [P, P, P, P, P, P, F, I, I, I, F, I] },
  fp8_gemvr_fused: { file: "fp8_gemv.cu", params: [P, P, P, P, P, P, F, I, I, I, F, I] },
  fp8_gemvr_fused_norm: { file: "fp8_gemv.cu", params: [P, P, P, P, P, P, F, I, I, I, F, I] },
  fp8_gemv_fused_pdl: { file: "fp8_gemv.cu", params: [P, P, P, P, P, P, F, I, I, I, F, I] },
  fp8_gemv_fused_norm_pdl: { file: "fp8_gemv.cu", params: [P, P, P, P, P, P, F, I, I, I, F, I] },
  fp8_quantize: { file: "fp8_gemv.cu", params: [P, P, P, I, I, F] },
  fp8_scale: { file: "fp8_gemv.cu", params: [P, P, P, P, I, I] },
  fp8_rmsnorm_quant: { file: "fp8_gemv.cu", params: [P, P, P, P, P, P, I, I, F, F, I] },
  fp8_silu_mul_quant: { file: "fp8_gemv.cu", params: [P, P, P, I, I, F] },
  fp8_silu_mul_quant_flat: { file: "fp8_gemv.cu", params: [P, P, P, I, I, F] },
  fp8_silu_mul_quant_fast: { file: "fp8_gemv.cu", params: [P, P, P, I, I, F] },
  fp8_quantize_flat: { file: "fp8_gemv.cu", params: [P, P, P, I, I, F] },
  rope_kv_write_fp8kv: { file: "rope_kv_write.cu", params: [P, P, P, P, P, P, P, F, I, I, I, I, I, I, I, P] },
  paged_attention_decode_fp8kv: { file: "paged_attention.cu", params: [P, P, P, P, P, P, P, P, I, I, I, I, I, I, F, I, I, P] },
  paged_attention_prefill_mma_fp8kv: { file: "paged_attention.cu", params: [P, P, P, P, P, P, I, I, I, I, I, I, F, I, P] },
  rope_kv_write_int8kv: { file: "rope_kv_write.cu", params: [P, P, P, P, P, P, P, F, I, I, I, I, I, I, I, P] },
  paged_attention_decode_int8kv: { file: "paged_attention.cu", params: [P, P, P, P, P, P, P, P, I, I, I, I, I, I, F, I, I, P] },
  paged_attention_prefill_mma_int8kv: { file: "paged_attention.cu", params: [P, P, P, P, P, P, I, I, I, I, I, I, F, I, P] },
  decode_attention: { file: "decode_attention.cu", params: [P, P, P, P, P, P, P, F, P, P, P, I, I, I, I, I, I, F, I, I, P, L] },
  decode_attention_g4: { file: "decode_attention.cu", params: [P, P, P, P, P, P, P, F, P, P, P, I, I, I, I, I, I, F, I, I, P, L] },
  decode_attention_sk: { file: "decode_attention_sk.cu", params: [P, P, P, P, P, P, P, F, P, P, P, I, I, I, I, I, I, F, I, I, P, L] },
  decode_attention_sk_fp8kv: { file: "decode_attention_sk.cu", params: [P, P, P, P, P, P, P, F, P, P, P, I, I, I, I, I, I, F, I, I, P, L, P] },
  decode_attention_batch: { file: "decode_attention_batch.cu", params: [P, P, P, P, P, P, P, F, P, P, P, I, I, I, I, I, I, F, I, I, P, L] },
  decode_attention_batch2: { file: "decode_attention_batch.cu", params: [P, P, P, P, P, P, P, F, P, P, P, I, I, I, I, I, I, F, I, I, P, L] },
  decode_attention_batch2_fp8kv: { file: "decode_attention_batch.cu", params: [P, P, P, P, P, P, P, F, P, P, P, I, I, I, I, I, I, F, I, I, P, L, P] },
  decode_attention_batch2w: { file: "decode_attention_batch.cu", params: [P, P, P, P, P, P, P, F, P, P, P, I, I, I, I, I, I, F, I, I, P, L] },
  decode_attention_batch4: { file: "decode_attention_batch4.cu", params: [P, P, P, P, P, P, P, F, P, P, P, I, I, I, I, I, I, F, I, I, P, L] },
  decode_attention_batch4w: { file: "decode_attention_batch4.cu", params: [P, P, P, P, P, P, P, F, P, P, P, I, I, I, I, I, I, F, I, I, P, L] },
  decode_attention_batch4_fp8kv: { file: "decode_attention_batch4.cu", params: [P, P, P, P, P, P, P, F, P, P, P, I, I, I, I, I, I, F, I, I, P, L, P] },
  decode_attention_batch4_q8_fp8kv: { file: "decode_attention_batch4.cu", params: [P, P, P, P, P, P, P, F, P, P, P, I, I, I, I, I, I, F, I, I, P, L, P, P, F] },
  decode_attention_batch4x: { file: "decode_attention_batch4.cu", params: [P, P, P, P, P, P, P, F, P, P, P, I, I, I, I, I, I, F, I, I, P, L] },
  decode_attention_batch4x_fp8kv: { file: "decode_attention_batch4.cu", params: [P, P, P, P, P, P, P, F, P, P, P, I, I, I, I, I, I, F, I, I, P, L, P] },
  decode_attention_batch4x_q8_fp8kv: {
    file: "decode_attention_batch4.cu",
    params: [P, P, P, P, P, P, P, F, P, P, P, I, I, I, I, I, I, F, I, I, P, L, P, P, F],
  },
  kv_dequant_fp8kv: { file: "kv_dequant.cu", params: [P, P, P, P, P, I, I, I, I, I, P] },
  kv_dequant_int8kv: { file: "kv_dequant.cu", params: [P, P, P, P, P, I, I, I, I, I, P] },
  kv_dequant_prefix_fp8kv: { file: "kv_dequant.cu", params: [P, P, P, P, P, I, I, I, I, I, P] },
  kv_dequant_prefix_int8kv: { file: "kv_dequant.cu", params: [P, P, P, P, P, I, I, I, I, I, P] },
  rope_kv_write_shadow_fp8kv: { file: "rope_kv_write.cu", params: [P, P, P, P, P, P, P, F, I, I, I, I, I, I, I, P, P] },
  rope_kv_write_shadow_int8kv: { file: "rope_kv_write.cu", params: [P, P, P, P, P, P, P, F, I, I, I, I, I, I, I, P, P] },
  decode_attention_fp8kv: { file: "decode_attention.cu", params: [P, P, P, P, P, P, P, F, P, P, P, I, I, I, I, I, I, F, I, I, P, L, P] },
  decode_attention_g4_fp8kv: { file: "decode_attention.cu", params: [P, P, P, P, P, P, P, F, P, P, P, I, I, I, I, I, I, F, I, I, P, L, P] },
  decode_attention_int8kv: { file: "decode_attention.cu", params: [P, P, P, P, P, P, P, F, P, P, P, I, I, I, I, I, I, F, I, I, P, L, P] },
  decode_attention_g4_int8kv: { file: "decode_attention.cu", params: [P, P, P, P, P, P, P, F, P, P, P, I, I, I, I, I, I, F, I, I, P, L, P] },
  ...LOWBIT_FAMILIES,
};

/** The family of a kernel entry point: the name minus its _hdN / _mN and _bf16 / _f32 suffixes. */
function kernelFamily(name: string): string {
  return name.replace(/_(hd|m)\d+$/, "").replace(/_(bf16|f32)$/, "");
}

/**
 * Kernel families whose code calls pdlWait (kernels/common.cuh) before it touches memory an earlier
 * launch writes, so they may take a programmatic dependent launch (KernelLaunch.pdl).
 */
const PDL_FAMILIES: ReadonlySet<string> = new Set([
  "gemv_fused",
  "gemv_fused_norm",
  "fp8_gemv_fused_pdl",
  "fp8_gemv_fused_norm_pdl",
  "fp8_gemv1_fused",
  "fp8_gemv1_fused_norm",
  "fp8_gemvr_fused",
  "fp8_gemvr_fused_norm",
  "gemv_fused_ks",
  "gemv_fused_norm_ks",
  "gemv_fused_xpre",
  "gemv_fused_norm_xpre",
  "gemv_fused_ks_xpre",
  "gemv_fused_norm_ks_xpre",
  "decode_attention",
  "decode_attention_g4",
  "decode_attention_sk",
  "decode_attention_sk_fp8kv",
  // fp8DecodeAttention: the fused step over a quantized KV cache (its first K/V tile and the scales before pdlWait).
  "decode_attention_fp8kv",
  "decode_attention_g4_fp8kv",
  "decode_attention_int8kv",
  "decode_attention_g4_int8kv",
  "gather_rows",
  "sample",
  // Decode steps over a quantized KV cache (≤ GEMV_MAX_ROWS tokens): RoPE + KV write, split attention and the merge
  // keep their own launches; each waits at its entry (session 8).
  "rope_kv_write_fp8kv",
  "rope_kv_write_int8kv",
  "paged_attention_decode_fp8kv",
  "paged_attention_decode_int8kv",
  "paged_attention_decode_reduce",
]);

/**
 * The quantized decode GEMVs (quant_gemv.cu quantGemvFusedImpl: the first weight loads,
 * then griddepcontrol.wait before x or y is touched, then launch_dependents). LaunchEnv.quantPdl (SessionOptions.quantPdl,
 * on by default since an H200 run gave the same bits and W4A16 batch-1 decode +12% on llama-3.2-1b, +8.8% on
 * llama-3.1-8b) adds them to PDL_FAMILIES.
 */
const QUANT_PDL_FAMILIES: ReadonlySet<string> = new Set([
  "quant_gemv_fused_u4",
  "quant_gemv_fused_u8",
  "quant_gemv_fused_norm_u4",
  "quant_gemv_fused_norm_u8",
  "quant_gemv_fused_addnorm_u4",
  "quant_gemv_fused_addnorm_u8",
  "quant_gemv_fused_rs_u4",
  "quant_gemv_fused_rs_u8",
  // quantGemvFast: quantGemvFusedImpl with another variant (the same load / wait order).
  "quant_gemv_fast_u4",
  "quant_gemv_fast_u8",
  "quant_gemv_fast_norm_u4",
  "quant_gemv_fast_norm_u8",
  "quant_gemv_fast_addnorm_u4",
  "quant_gemv_fast_addnorm_u8",
  "quant_gemv_fast_rs_u4",
  "quant_gemv_fast_rs_u8",
  // quantGemvPairX: the same load / wait order.
  "quant_gemv_fastx_addnorm_u4",
  "quant_gemv_fastx_rs_u4",
  "quant_gemv_fastxx_u4",
  "quant_gemv_fastxx_addnorm_u4",
  "quant_gemv_fastxx_rs_u4",
]);
/**
 * Whether kernel entry point `name` may be launched with programmatic dependent launch (`quant`: the
 * quantized decode GEMVs too, LaunchEnv.quantPdl).
 */
export function isPdlKernel(name: string, quant = false): boolean {
  const family = kernelFamily(name);
  return PDL_FAMILIES.has(family) || LOWBIT_PDL_FAMILIES.has(family) || (quant && QUANT_PDL_FAMILIES.has(family));
}

/**
 * Kernel families of prefill and mixed steps that call pdlWait at their entry (before any memory access), so they may
 * take a programmatic dependent launch after a cuBLASLt GEMM or another kernel (LaunchEnv.prefillPdl).
 */
const PREFILL_PDL_FAMILIES: ReadonlySet<string> = new Set([
  "rmsnorm",
  "add_rmsnorm",
  "rope_kv_write",
  "rope_kv_write_pdl",
  "flash_prefill_wg",
  "flash_prefill_wgt",
  "silu_mul",
  "gather_rows",
  "sample",
]);

/** Whether kernel `name` may take a programmatic dependent launch in a prefill step (LaunchEnv.prefillPdl). */
export function isPrefillPdlKernel(name: string): boolean {
  return PREFILL_PDL_FAMILIES.has(kernelFamily(name));
}

/** File and parameter kinds of a kernel entry point, e.g. "paged_attention_decode_bf16_hd64". */
export function kernelSignature(name: string): { readonly file: string; readonly params: readonly KernelParamKind[] } {
  const family = kernelFamily(name);
  const sig = FAMILIES[family];
  if (!sig) throw new InternalError(`launch plan: unknown kernel ${JSON.stringify(name)}`);
  return sig;
}
