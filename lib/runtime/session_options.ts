/**
 * Options of a runtime `Session`, one zod schema. Environment variables are only documented
 * defaults, read here and nowhere else in the library:
 * - `LLMRT_CUDA_GRAPHS=0`: `cudaGraphs` defaults to false
 * - `LLMRT_GEMV=0`: `gemv` defaults to false
 * - `LLMRT_BATCH_INVARIANT=0`: `batchInvariant` defaults to false
 * - `LLMRT_GEMM_TUNE=0`: `gemmTune` defaults to false
 * - `LLMRT_PDL=0`: `pdl` defaults to false
 * - `LLMRT_QUANT_PDL=0`: `quantPdl` defaults to false
 * - `LLMRT_QUANT_RING=1`: `quantRing` defaults to true
 * - `LLMRT_BATCH_ATTENTION=0`: `batchAttention` defaults to false
 * - `LLMRT_BATCH_ATTENTION2=1`: `batchAttention2` defaults to true
 * - `LLMRT_FP8_FAST_ACCUM=0`: `fp8FastAccum` defaults to false
 * - `LLMRT_FP8_FUSED_QUANT=0`: `fp8FusedQuant` defaults to false
 * - `LLMRT_FP8_PDL=1`: `fp8Pdl` defaults to true
 * - `LLMRT_FP8_BUCKETS=0`: `fp8InvariantBuckets` defaults to false
 * - `LLMRT_FP8_GEMV1=1`: `fp8Gemv1` defaults to true
 * - `LLMRT_WGMMA_PREFILL=1` / `=0`: `wgmmaPrefill` defaults to true / false (unset: head dim 128 only)
 * - `LLMRT_DECODE_SK=1`: `decodeSplitK` defaults to true
 * - `LLMRT_GEMV_KS=1`: `gemvSplitK` defaults to true
 * - `LLMRT_PRUNE_LAST_LAYER=0`: `pruneLastLayer` defaults to false
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
  /**
   * CUDA: time cuBLASLt algorithms per new GEMM shape (batch-invariant sessions: among those shown to round rows
   * as the pinned algorithm does). @default true (LLMRT_GEMM_TUNE=0: false)
   */
  gemmTune: z.boolean().optional(),
  /**
   * CUDA: programmatic dependent launch of the fused decode step's kernels (compute capability 9.0+;
   * ignored below): each kernel starts streaming its weights while the previous one finishes. Same
   * results bit for bit. @default true (LLMRT_PDL=0: false)
   */
  pdl: z.boolean().optional(),
  /**
   * CUDA, with `pdl`: the quantized decode GEMVs (W4A16 / W8A16 engines) take programmatic dependent launch
   * too (H200: llama-3.2-1b W4A16 batch-1 decode +12%, llama-3.1-8b +8.8%, the same bits). @default true
   * (LLMRT_QUANT_PDL=0: false)
   */
  quantPdl: z.boolean().optional(),
  /**
   * CUDA (compute capability 9.0+): the quantized decode GEMVs stream their weights through shared memory by bulk
   * copies on a persistent grid (quant_gemv_ring*; same bits). @default false (LLMRT_QUANT_RING=1: true)
   */
  quantRing: z.boolean().optional(),
  /** CUDA: decode steps of more than 8 sequences on the tensor-core attention kernel. @default true (LLMRT_BATCH_ATTENTION=0: false) */
  batchAttention: z.boolean().optional(),
  /**
   * CUDA: with `batchAttention`, those steps on decode_attention_batch2 (per-warp K/V streams), which also
   * serves FP8 KV caches. @default false (LLMRT_BATCH_ATTENTION2=1: true)
   */
  batchAttention2: z.boolean().optional(),
  /**
   * CUDA: FP8 GEMMs (prefill and large decode steps of FP8 engines) with cuBLASLt's fast accumulation (no periodic
   * fp32 promotion of the tensor cores' partial sums). @default true (LLMRT_FP8_FAST_ACCUM=0: false)
   */
  fp8FastAccum: z.boolean().optional(),
  /**
   * CUDA: the RMSNorm / SiLU·mul before a prefill-sized FP8 linear writes its e4m3 input rows itself (no separate
   * quantize launch, no bf16 round trip; same bits). @default true (LLMRT_FP8_FUSED_QUANT=0: false)
   */
  fp8FusedQuant: z.boolean().optional(),
  /**
   * CUDA: fused FP8 decode GEMVs issue their first weight loads before waiting for the previous kernel and take
   * programmatic dependent launch (with `pdl`). Same bits. @default false (LLMRT_FP8_PDL=1: true)
   */
  fp8Pdl: z.boolean().optional(),
  /**
   * CUDA, batch-invariant sessions: FP8 prefill GEMMs use cuBLASLt's pick for their M bucket where it was shown to
   * round every row as the reference algorithm does (as bf16 GEMMs do), instead of the reference algorithm for every
   * M. @default true (LLMRT_FP8_BUCKETS=0: false)
   */
  fp8InvariantBuckets: z.boolean().optional(),
  /**
   * CUDA: one-token fused FP8 decode steps run fp8_gemv1 (contiguous 512-byte weight row segments per warp, PDL) for
   * linears whose in-features are a multiple of 512. @default false (LLMRT_FP8_GEMV1=1: true)
   */
  fp8Gemv1: z.boolean().optional(),
  /**
   * CUDA: prefill attention of bf16 engines (bf16 KV cache, head dims 64 / 128) on the Hopper warpgroup-MMA kernel
   * (flash_prefill_wg, sm_90 only; elsewhere ignored). @default engines of head dim 128 (H200: llama-3.1-8b TTFT of
   * a 32,000-token prompt 1.97 → 1.60 s, 2048 tokens unchanged; at head dim 64 flash_prefill stays faster)
   * (LLMRT_WGMMA_PREFILL=1 / 0: every engine / none)
   */
  wgmmaPrefill: z.boolean().optional(),
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
  /**
   * CUDA: prefill and mixed steps run the last layer past its KV write over the logits rows only (the other
   * rows' hidden states are never read; batch-invariant sessions get the same logits bits).
   * @default true (LLMRT_PRUNE_LAST_LAYER=0: false)
   */
  pruneLastLayer: z.boolean().optional(),
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
  quantPdl: boolean;
  quantRing: boolean;
  batchAttention: boolean;
  batchAttention2: boolean;
  fp8FastAccum: boolean;
  fp8FusedQuant: boolean;
  fp8Pdl: boolean;
  fp8InvariantBuckets: boolean;
  fp8Gemv1: boolean;
  /** Undefined: the CUDA session's per-engine default (head dim 128). */
  wgmmaPrefill: boolean | undefined;
  decodeSplitK: boolean;
  gemvSplitK: boolean;
  pruneLastLayer: boolean;
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
    quantPdl: o.quantPdl ?? envOn("LLMRT_QUANT_PDL"),
    quantRing: o.quantRing ?? env()["LLMRT_QUANT_RING"] === "1",
    batchAttention: o.batchAttention ?? envOn("LLMRT_BATCH_ATTENTION"),
    batchAttention2: o.batchAttention2 ?? env()["LLMRT_BATCH_ATTENTION2"] === "1",
    fp8FastAccum: o.fp8FastAccum ?? envOn("LLMRT_FP8_FAST_ACCUM"),
    fp8FusedQuant: o.fp8FusedQuant ?? envOn("LLMRT_FP8_FUSED_QUANT"),
    fp8Pdl: o.fp8Pdl ?? env()["LLMRT_FP8_PDL"] === "1",
    fp8InvariantBuckets: o.fp8InvariantBuckets ?? envOn("LLMRT_FP8_BUCKETS"),
    fp8Gemv1: o.fp8Gemv1 ?? env()["LLMRT_FP8_GEMV1"] === "1",
    wgmmaPrefill: o.wgmmaPrefill ?? (env()["LLMRT_WGMMA_PREFILL"] === "1" ? true : env()["LLMRT_WGMMA_PREFILL"] === "0" ? false : undefined),
    decodeSplitK: o.decodeSplitK ?? env()["LLMRT_DECODE_SK"] === "1",
    gemvSplitK: o.gemvSplitK ?? env()["LLMRT_GEMV_KS"] === "1",
    pruneLastLayer: o.pruneLastLayer ?? envOn("LLMRT_PRUNE_LAST_LAYER"),
  });
}
