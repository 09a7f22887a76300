/**
 * Kernel families of kernels/lowbit.cu (W8A8_SQ_PER_CHANNEL, W4A8_AWQ, NVFP4 on bfloat16 engines), merged
 * into launch_types.ts's signature table. A file of its own without value imports, so that table can
 * spread it at module load.
 */
import type { KernelParamKind } from "../../../ffi/shim.ts";

const P: KernelParamKind = "ptr", I: KernelParamKind = "i32", F: KernelParamKind = "f32";

/** File and parameter kinds of each lowbit.cu kernel family (entry point minus its _bf16 / _mN suffix). */
export const LOWBIT_FAMILIES: Readonly<Record<string, { readonly file: string; readonly params: readonly KernelParamKind[] }>> = {
  lowbit_act_int8: { file: "lowbit.cu", params: [P, P, P, P, I, I, I] },
  lowbit_act_e4m3: { file: "lowbit.cu", params: [P, P, I, I, F, I] },
  lowbit_act_nvfp4: { file: "lowbit.cu", params: [P, P, I, I, F, I] },
  lowbit_dequant_int8: { file: "lowbit.cu", params: [P, P, P, I, I, I] },
  lowbit_dequant_int4: { file: "lowbit.cu", params: [P, P, P, I, I, I] },
  lowbit_dequant_nvfp4: { file: "lowbit.cu", params: [P, P, P, I, I, I] },
  lowbit_gemv_int8: { file: "lowbit.cu", params: [P, P, P, P, P, P, I, I, I, I, F] },
  lowbit_gemv_int4: { file: "lowbit.cu", params: [P, P, P, P, P, P, I, I, I, I, F] },
  lowbit_gemv_nvfp4: { file: "lowbit.cu", params: [P, P, P, P, P, P, I, I, I, I, F] },
  // kernels/nvfp4_mma.cu (CudaFlags.nvfp4Mma: NVFP4 on the int8 tensor cores, the tiled device layout)
  nvfp4_act_mma: { file: "nvfp4_mma.cu", params: [P, P, P, I, I, F] },
  nvfp4_gemv_mma: { file: "nvfp4_mma.cu", params: [P, P, P, P, P, P, I, I, I, I, F] },
  nvfp4_gemv_mma_w16: { file: "nvfp4_mma.cu", params: [P, P, P, P, P, P, I, I, I, I, F] },
  // CudaFlags.nvfp4GemvK32: one-row GEMVs, m16n8k32 mmas (the k32 GEMV's lean loop of session 14; nvfp4_gemv_mma's bits)
  nvfp4_gemv_k32x: { file: "nvfp4_mma.cu", params: [P, P, P, P, P, P, I, I, I, I, F] },
  nvfp4_gemv_k32x_w16: { file: "nvfp4_mma.cu", params: [P, P, P, P, P, P, I, I, I, I, F] },
  nvfp4_gemv_k32x_logits: { file: "nvfp4_mma.cu", params: [P, P, P, P, P, P, I, I, I, I, F] },
  nvfp4_gemv_k32x_act: { file: "nvfp4_mma.cu", params: [P, P, P, P, P, I, I, F, F] },
  nvfp4_gemv_k32x_act_w16: { file: "nvfp4_mma.cu", params: [P, P, P, P, P, I, I, F, F] },
  nvfp4_gemv_k32x_act_logits: { file: "nvfp4_mma.cu", params: [P, P, P, P, P, I, I, F, F] },
  nvfp4_dequant_mma: { file: "nvfp4_mma.cu", params: [P, P, P, I, I, I] },
  nvfp4_rmsnorm_act: { file: "nvfp4_mma.cu", params: [P, P, P, P, P, I, I, F, F, I] },
  nvfp4_rmsnorm_act_fast: { file: "nvfp4_mma.cu", params: [P, P, P, P, P, I, I, F, F, I] },
  nvfp4_silu_mul_act: { file: "nvfp4_mma.cu", params: [P, P, P, I, I, F] },
};

/** The lowbit.cu kernels that pdlWait before they touch an earlier launch's memory (PDL in fused decode steps). */
export const LOWBIT_PDL_FAMILIES: ReadonlySet<string> = new Set([
  "lowbit_act_int8",
  "lowbit_act_e4m3",
  "lowbit_act_nvfp4",
  "lowbit_gemv_int8",
  "lowbit_gemv_int4",
  "lowbit_gemv_nvfp4",
  "nvfp4_act_mma",
  "nvfp4_gemv_mma",
  "nvfp4_gemv_mma_w16",
  "nvfp4_gemv_k32x",
  "nvfp4_gemv_k32x_w16",
  "nvfp4_gemv_k32x_logits",
  "nvfp4_gemv_k32x_act",
  "nvfp4_gemv_k32x_act_w16",
  "nvfp4_gemv_k32x_act_logits",
  "nvfp4_rmsnorm_act",
  "nvfp4_rmsnorm_act_fast",
  "nvfp4_silu_mul_act",
]);
