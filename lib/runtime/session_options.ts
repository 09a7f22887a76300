/**
 * Options of a runtime `Session`, one zod schema. Environment variables are only documented
 * defaults, read here and nowhere else in the library:
 * - `LLMRT_CUDA_GRAPHS=0`: `cudaGraphs` defaults to false
 * - `LLMRT_GEMV=0`: `gemv` defaults to false
 * - `LLMRT_BATCH_INVARIANT=0`: `batchInvariant` defaults to false
 * - `LLMRT_GEMM_TUNE=0`: `gemmTune` defaults to false
 * - `LLMRT_PDL=0`: `pdl` defaults to false
 * - `LLMRT_BATCH_ATTENTION=0`: `batchAttention` defaults to false
 * - `LLMRT_DECODE_SK=1`: `decodeSplitK` defaults to true
 * - `LLMRT_GEMV_KS=1`: `gemvSplitK` defaults to true
 */
import { z } from "zod";
import { parseWith } from "../util/validate.ts";

const env = (): Record<string, string | undefined> => (globalThis as { process?: { env: Record<string, string | undefined> } }).process?.env ?? {};
const envOn = (name: string): boolean => env()[name] !== "0";

export const SessionOptionsSchema = z.strictObject({
  /** Backend to run on. @default "cpu" */
  backend: z.enum(["cpu", "cuda"]).default("cpu"),
  /** CUDA: device ordinal. @default 0 */
  device: z.number().int().nonnegative().default(0),
  /** CUDA: replay decode steps as captured graphs. @default true (LLMRT_CUDA_GRAPHS=0: false) */
  cudaGraphs: z.boolean().optional(),
  /** CUDA: decode-sized bf16 linears on the skinny-GEMM kernel. @default true (LLMRT_GEMV=0: false) */
  gemv: z.boolean().optional(),
  /** CUDA: batch == single, bitwise. @default true (LLMRT_BATCH_INVARIANT=0: false) */
  batchInvariant: z.boolean().optional(),
  /** CUDA: time cuBLASLt algorithms per new GEMM shape. @default true (LLMRT_GEMM_TUNE=0: false) */
  gemmTune: z.boolean().optional(),
  /**
   * CUDA: programmatic dependent launch of the fused decode step's kernels (compute capability 9.0+;
   * ignored below): each kernel starts streaming its weights while the previous one finishes. Same
   * results bit for bit. @default true (LLMRT_PDL=0: false)
   */
  pdl: z.boolean().optional(),
  /** CUDA: decode steps of more than 8 sequences on the tensor-core attention kernel. @default true (LLMRT_BATCH_ATTENTION=0: false) */
  batchAttention: z.boolean().optional(),
  /**
   * CUDA: decode steps of up to 8 sequences on the split-K flash-decoding kernel (decode_attention_sk: K/V
   * streamed through per-warp cp.async pipelines; a sequence's key partition depends on its span only).
   * @default false (LLMRT_DECODE_SK=1: true) until measured on a GPU
   */
  decodeSplitK: z.boolean().optional(),
  /**
   * CUDA: fused decode GEMVs with long weight rows (gemvSplitRows: llama down_proj) stream each row with 2 or 4 warps
   * (gemv_fused_ks). @default false (LLMRT_GEMV_KS=1: true) until measured on a GPU
   */
  gemvSplitK: z.boolean().optional(),
});

export type SessionOptions = z.input<typeof SessionOptionsSchema>;
export type ResolvedSessionOptions = Readonly<{
  backend: "cpu" | "cuda";
  device: number;
  cudaGraphs: boolean;
  gemv: boolean;
  batchInvariant: boolean;
  gemmTune: boolean;
  pdl: boolean;
  batchAttention: boolean;
  decodeSplitK: boolean;
  gemvSplitK: boolean;
}>;

/** Validates session options and applies the documented defaults (errors name the field and value). */
export function parseSessionOptions(input: SessionOptions = {}): ResolvedSessionOptions {
  const o = parseWith(SessionOptionsSchema, input, "SessionOptions");
  return Object.freeze({
    backend: o.backend,
    device: o.device,
    cudaGraphs: o.cudaGraphs ?? envOn("LLMRT_CUDA_GRAPHS"),
    gemv: o.gemv ?? envOn("LLMRT_GEMV"),
    batchInvariant: o.batchInvariant ?? envOn("LLMRT_BATCH_INVARIANT"),
    gemmTune: o.gemmTune ?? envOn("LLMRT_GEMM_TUNE"),
    pdl: o.pdl ?? envOn("LLMRT_PDL"),
    batchAttention: o.batchAttention ?? envOn("LLMRT_BATCH_ATTENTION"),
    decodeSplitK: o.decodeSplitK ?? env()["LLMRT_DECODE_SK"] === "1",
    gemvSplitK: o.gemvSplitK ?? env()["LLMRT_GEMV_KS"] === "1",
  });
}
