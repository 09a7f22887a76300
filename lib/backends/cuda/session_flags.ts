/**
 * The CUDA session's on/off switches in one table: each flag's environment variable (read only by
 * lib/runtime/session_options.ts, as a documented default), its default, and what it does. The session
 * options schema, the backend factories (one session, tensor-parallel ranks) and CudaSession all take
 * their list from here, so a new switch is one entry.
 *
 * @example
 * ```ts
 * resolveCudaFlags({ pdl: false }).pdl; // false
 * resolveCudaFlags({}).batchAttention2; // true (the table's default)
 * ```
 */

/**
 * One switch: its environment variable and its default (the variable set to "0" / "1" flips it). A default of
 * "engine" resolves to undefined: CudaSession decides per engine.
 */
export interface CudaFlag {
  readonly env: string;
  readonly default: boolean | "engine";
}

export const CUDA_FLAGS = {
  /** Replay decode steps as captured CUDA graphs (off: every step launches eagerly). @default true */
  cudaGraphs: { env: "LLMRT_CUDA_GRAPHS", default: true },
  /** bf16 linears of up to 8 rows (decode) on the skinny-GEMM / fused GEMV kernels instead of cuBLASLt. @default true */
  gemv: { env: "LLMRT_GEMV", default: true },
  /**
   * Batch invariance: a sequence's logits are bitwise the same alone or in a batch (prefill: per-M-bucket cuBLASLt
   * algorithms shown to round as the 256-row one; decode steps of up to 8 sequences: the GEMV kernels). @default true
   */
  batchInvariant: { env: "LLMRT_BATCH_INVARIANT", default: true },
  /** Time cuBLASLt algorithms per new GEMM shape (kept in the on-disk timing cache). @default true */
  gemmTune: { env: "LLMRT_GEMM_TUNE", default: true },
  /**
   * Programmatic dependent launch of the fused decode step's kernels (compute capability 9.0+; ignored below): each
   * kernel starts streaming its weights while the previous one finishes. Same results bit for bit. @default true
   */
  pdl: { env: "LLMRT_PDL", default: true },
  /**
   * With `pdl`: the quantized decode GEMVs (W4A16 / W8A16 engines) take programmatic dependent launch too (H200:
   * llama-3.2-1b W4A16 batch-1 decode +12%, llama-3.1-8b +8.8%, the same bits). @default true
   */
  quantPdl: { env: "LLMRT_QUANT_PDL", default: true },
  /** Decode steps of more than 8 sequences on the tensor-core attention kernel (decode_attention_batch). @default true */
  batchAttention: { env: "LLMRT_BATCH_ATTENTION", default: true },
  /**
   * With `batchAttention`: those steps on decode_attention_batch2 (per-warp K/V streams), which also serves FP8 KV
   * caches (H200, llama-3.1-8b 512 × (128,128): bf16 +3.6%, FP8 + FP8 KV 18.4k → 23.9k output tokens/s). @default true
   */
  batchAttention2: { env: "LLMRT_BATCH_ATTENTION2", default: true },
  /**
   * FP8 GEMMs (prefill and large decode steps of FP8 engines) with cuBLASLt's fast accumulation (no periodic fp32
   * promotion of the tensor cores' partial sums). @default true
   */
  fp8FastAccum: { env: "LLMRT_FP8_FAST_ACCUM", default: true },
  /**
   * The RMSNorm / SiLU·mul before a prefill-sized FP8 linear writes its e4m3 input rows itself (no separate quantize
   * launch, no bf16 round trip; same bits). @default true
   */
  fp8FusedQuant: { env: "LLMRT_FP8_FUSED_QUANT", default: true },
  /**
   * Fused FP8 decode GEMVs issue their first weight loads before waiting for the previous kernel and take
   * programmatic dependent launch (with `pdl`). Same bits. @default false
   */
  fp8Pdl: { env: "LLMRT_FP8_PDL", default: false },
  /**
   * Batch-invariant sessions: FP8 prefill GEMMs use cuBLASLt's pick for their M bucket where it was shown to round
   * every row as the reference algorithm does, instead of the reference algorithm for every M. @default true
   */
  fp8InvariantBuckets: { env: "LLMRT_FP8_BUCKETS", default: true },
  /**
   * One-token fused FP8 decode steps run fp8_gemv1 (a persistent grid; each warp streams a contiguous run of weight
   * rows, PDL) for linears whose in-features are a multiple of 512 (at most 16384; 8192 with the RMSNorm prologue).
   * H200, llama-3.1-8b FP8 + FP8 KV batch 1: 240 → 276 tok/s (session 8 r2; 8B linears at 61–90% of copy against the
   * 16-row kernel's 42–64%). @default true
   */
  fp8Gemv1: { env: "LLMRT_FP8_GEMV1", default: true },
  /**
   * Prefill attention of bf16 engines (bf16 KV cache, head dims 64 / 128) on the Hopper warpgroup-MMA kernel
   * (flash_prefill_wg, sm_90 only; elsewhere ignored). @default "engine": engines of head dim 64 or 128 (H200: llama-3.1-8b
   * TTFT of a 32,000-token prompt 1.97 → 1.60 s in session 8; session 10's kernel 1.39× faster again at hd 128, and at
   * hd 64 68.0 vs flash_prefill's 86.2 µs at T 2048: llama-3.2-1b TTFT 2048 8.40 → 8.10 ms, the same logits bits).
   * Chosen per engine, never per step (batch invariance).
   */
  wgmmaPrefill: { env: "LLMRT_WGMMA_PREFILL", default: "engine" },
  /**
   * Decode steps of up to 8 sequences on the split-K flash-decoding kernel (decode_attention_sk: K/V streamed through
   * per-warp cp.async pipelines, q·k and p·v on tensor cores since session 9; a sequence's key partition depends on its
   * span only). H200, llama-3.1-8b batch-1 steps: 32% faster at 32k keys (88.6% of weights + KV bytes), 4–6% faster
   * at 128–2k keys; llama-3.2-1b 5–22%. @default true
   */
  decodeSplitK: { env: "LLMRT_DECODE_SK", default: true },
  /**
   * Fused decode GEMVs with long weight rows (llama down_proj) stream each row with 2 or 4 warps (gemv_fused_ks;
   * H200: batch-1 decode +2–3%). @default true
   */
  gemvSplitK: { env: "LLMRT_GEMV_KS", default: true },
  /**
   * Prefill and mixed steps run the last layer past its KV write over the logits rows only (the other rows' hidden
   * states are never read; batch-invariant sessions get the same logits bits). @default true
   */
  pruneLastLayer: { env: "LLMRT_PRUNE_LAST_LAYER", default: true },
  /**
   * Decode steps of 9 to 64 rows (uint4) / 32 rows (uint8) run W4A16 / W8A16 linears on the tensor-core quantized GEMM
   * (quant_gemm_*: packed weights dequantized in registers) instead of dequantizing each weight to bf16 and running
   * cuBLASLt (H200: llama-3.2-1b W4A16 64 × (128,128) 22.8k → 25.6k output tok/s; per layer 3.0× at 16 rows). @default true
   */
  quantGemm: { env: "LLMRT_QUANT_GEMM", default: true },
  /**
   * Decode graphs of more than 8 sequences (decode_attention_batch / batch2: fixed key ranges per split) are captured
   * per power-of-two split count too, and a step replays the one with just enough splits for its longest span, instead
   * of a grid covering maxSeqLen whose later splits only read each token's position and exit. Each token's splits
   * and their merge are the grid's whatever its size: the same bits. @default false
   */
  graphSplits: { env: "LLMRT_GRAPH_SPLITS", default: false },
  /**
   * Decode steps over a quantized KV cache (FP8 e4m3 / INT8) that do not take decode_attention_batch2 (up to 8
   * sequences) run one fused decode_attention_{fp8kv|int8kv} launch per layer (RoPE, the quantized KV write, split
   * attention with K/V dequantized in registers, the split merge; PDL) instead of rope_kv_write + split decode +
   * reduce (H200 session 9: llama-3.1-8b FP8 + FP8 KV batch 1 300 → 311 tok/s, decode step 3.31 → 3.16 ms; 26.7 → 13.2 µs
   * a layer at 265 keys). @default true
   */
  fp8DecodeAttention: { env: "LLMRT_FP8_DECODE_ATTENTION", default: true },
  /**
   * Prefill and mixed steps over a quantized KV cache (FP8 / INT8; head dims 64 / 128) dequantize the blocks the step
   * attends into a bf16 shadow of one layer (kv_dequant_*: the values the quantized prefill kernel stages) and run the
   * bf16 flash prefill kernels (flash_prefill / flash_prefill_wg) over it, instead of paged_attention_prefill_mma_*kv.
   * The KV cache then holds one bf16 layer more (Session.kvBytesPerBlock counts it). H200 session 9: llama-3.1-8b FP8 +
   * FP8 KV, TTFT of a 2048-token prompt 42.0 → 30.4 ms (attention 17.9 → 6.4 ms + 0.4 ms of kv_dequant). @default true
   */
  fp8FlashPrefill: { env: "LLMRT_FP8_FLASH_PREFILL", default: true },
  /**
   * Fused decode steps of W4A16 / W8A16 engines: the quantized GEMV that adds into the residual (o_proj, down_proj)
   * also writes the next RMSNorm's input times its weight and per-tile sums of squares (quant_gemv_fused_addnorm_*), and
   * the quantized GEMV after it (gate_up, the next layer's qkv) scales its sums by the rms (quant_gemv_fused_rs_*)
   * instead of re-normalizing x in each of its blocks. x is rounded to bf16 before its 1 / rms instead of after: not
   * the same bits, within bf16 rounding of x. H200, one llama-3.1-8b int4 layer 68.9 → 57.1 µs. @default true
   */
  quantTailNorm: { env: "LLMRT_QUANT_TAIL_NORM", default: true },
  /**
   * One-token decode steps of a llama-3.2-1b-shaped bf16 engine run every decoder layer in ONE persistent launch
   * (kernels/decode_persistent.cu: one block per SM, a TMA weight ring per block streaming the layers' weights
   * while the phases wait on each other through global counters) instead of 5 launches a layer. Needs sm_90,
   * gemv, a bf16 KV cache and `batchInvariant` off (its attention / down_proj sums round unlike the batched steps'
   * kernels). H200, llama-3.2-1b batch 1: 1039 → 1138 / 1054 → 1116 decode tok/s
   * (two runs, against decode_attention: measured before decodeSplitK became the default), slower at ≥ 512 keys
   * (session 9). @default false
   */
  persistentDecode: { env: "LLMRT_PERSISTENT_DECODE", default: false },
  /**
   * bf16 linears of decode steps of 9 to 64 sequences (the lm_head included; gate/up with the SiLU·mul epilogue, no
   * silu_mul launch) run on batch_gemm_* (kernels/batch_gemm.cu: 128 weight rows a block through a 4-stage cp.async
   * ring, Hopper warpgroup MMAs, split-K across a thread-block cluster reduced through distributed shared memory)
   * instead of cuBLASLt. The split count depends on the weight's shape only, so those steps are batch-invariant among
   * themselves (a sequence's logits the same bits in any step of 9..64). Needs sm_90 (clusters; ignored below).
   * H200 session 10: slower than cuBLASLt at 64 rows (llama-3.2-1b 64 × (128,128) 42.4k → 38.6k output tok/s with
   * batchGemmPdl; only the lm_head is faster). @default false
   */
  batchGemm: { env: "LLMRT_BATCH_GEMM", default: false },
  /**
   * With `batchGemm` and `pdl`: its launches take programmatic dependent launch whatever kernel precedes them (the
   * first ring stages' weight loads are issued before griddepcontrol.wait; x only after it), so a GEMM's pipeline
   * fills while the norm / attention / SiLU before it drains. Same bits. @default false
   */
  batchGemmPdl: { env: "LLMRT_BATCH_GEMM_PDL", default: false },
  /**
   * NVFP4 linears (in-features a multiple of 64, out-features of 16) on the int8 tensor cores (kernels/nvfp4_mma.cu):
   * weights re-tiled at upload (nvfp4_tiles.ts; the engine file keeps the public layout), the decode GEMV's block sums
   * exact int32 mma sums of doubled e2m1 codes; prefill dequantizes the tiled layout (H200 session 10: llama-3.2-1b NVFP4
   * batch 1 851.9 → 1,134.2 tok/s in one job). @default true
   */
  nvfp4Mma: { env: "LLMRT_NVFP4_MMA", default: true },
  /**
   * Prefill and mixed steps: an o_proj / down_proj cuBLASLt GEMM adds into the residual stream in its epilogue
   * (D = C = residual, beta 1) and the add_rmsnorm after it becomes an rmsnorm (the final layer's add is dropped). On
   * the H200 (cuBLASLt 13) the logits are the same bits as with the separate add (llama-3.2-1b 2048 tokens, llama-3.1-8b
   * 32,000), the GEMMs take no longer, and the norms 452 → 319 µs a 1B prefill (session 10). Each row's bits still do
   * not depend on the batch (tests/gpu/gemm.test.ts). @default true
   */
  gemmResidual: { env: "LLMRT_GEMM_RESIDUAL", default: true },
  /**
   * Tuned batch-invariant GEMMs (gemmTune) time the heuristic's first 32 non-split-K candidates for a bucket instead of
   * 8 (each still has to round rows as the 256-row algorithm does): llama-3.2-1b qkv at 2048 rows 697 → 670 µs, with
   * gemmResidual TTFT −1% (1B 2048) / −0.9% (8B 32k); a new bucket's first step times more candidates. @default true
   */
  gemmTuneWide: { env: "LLMRT_GEMM_TUNE_WIDE", default: true },
  /**
   * With `batchAttention2`: decode steps of more than 8 sequences run decode_attention_batch3 instead — batch2's
   * step with persistent warps (a few one-warp blocks per SM, each walking its share of the (token, kv head, split)
   * items with one cp.async ring that runs ahead across items), so the per-block prologue no longer stalls the KV
   * stream. The same key partition, sums and merges as batch2: the same bits (session 10). @default false
   */
  batchAttention3: { env: "LLMRT_BATCH_ATTENTION3", default: false },
  /**
   * With `batchAttention2`: decode steps of at least BATCH2_WIDE_MIN_ROWS sequences over a bf16 cache at head dim 128
   * run decode_attention_batch2w (batch2's 2 warps with 1 cp.async stage each and registers capped for 8 blocks per
   * SM: more blocks in flight; the same keys per warp, sums and merge, so the same bits) (H200 session 10: one 8B layer at
   * 512 sequences 159.3 → 136.8 µs; llama-3.1-8b bf16 512 × (128,128) 16,856 → 17,137 output tok/s, greedy ids
   * identical). @default true
   */
  batchAttention2Wide: { env: "LLMRT_BATCH_ATTENTION2_WIDE", default: true },
  /**
   * Fused bf16 decode GEMVs of up to 2 rows on the latency-bound layers (qkv, o_proj, down_proj; not gate_up or the
   * lm_head) keep 8 16-byte weight loads a lane in flight instead of 4 (gemv_fused*_deep: a llama-3.2-1b qkv / o_proj
   * row in one round trip instead of two). A lane adds its vectors in the same order: the same bits. H200 session 10:
   * slower (llama-3.2-1b graph replay at 128 keys 810 → 928 µs, llama-3.1-8b 4287 → 4387 µs with sampleSplit). @default false
   */
  gemvDeepLoads: { env: "LLMRT_GEMV_DEEP", default: false },
  /**
   * The sampler splits each logits row's argmax over SAMPLE_SPLIT_BLOCKS blocks (sample_split_f32: a batch-1 row of
   * 128K logits read by 16 SMs instead of one; the last block of a row merges the partial maxima and samples as
   * sample_f32 does). The same ids. H200 session 10, llama-3.2-1b: 1–3 µs a step faster (with gemvDeepLoads; within
   * run-to-run noise), not shown alone. @default false
   */
  sampleSplit: { env: "LLMRT_SAMPLE_SPLIT", default: false },
  /**
   * One-token decode steps of W4A16 / W8A16 engines run the quantized linears on quant_gemv1 (kernels/quant_gemv1.cu:
   * a persistent grid, each warp streaming a contiguous run of row pairs through a register ring, no block-level
   * reduction) instead of the 16-row quant_gemv_fused kernels, where every quantized linear of the engine fits it
   * (in-features a multiple of 2048 (uint4) / 1024 (uint8), at most 16384; groups a multiple of 128 / 64). The same
   * products and fp32 sums in the same order as quant_gemv_fused at one row: the same bits, so steps of 2–8 sequences
   * on the 16-row kernels stay batch-invariant with it. @default false
   */
  quantGemv1: { env: "LLMRT_QUANT_GEMV1", default: false },
  /**
   * With `fp8Gemv1`: one-token FP8 linears whose block slice of the persistent grid fits in 100 KiB of shared memory
   * (llama-3.1-8b qkv / o_proj) run fp8_gemv1s, which stages the slice with TMA bulk copies before waiting on the previous
   * kernel (under PDL o_proj's weights stream while the decode attention runs) and sums from shared memory. The same bits
   * as fp8_gemv1. @default false
   */
  fp8GemvSmem: { env: "LLMRT_FP8_GEMV_SMEM", default: false },
  /**
   * With `decodeSplitK` and `fp8DecodeAttention`: fused decode steps of up to 8 sequences over an FP8 (e4m3) KV cache run
   * decode_attention_sk_fp8kv (the split-K tensor-core kernel: raw e4m3 K / V through the per-warp cp.async stages,
   * converted to f16 in shared memory, q and p in f16, the scales folded into the score scale and the output) instead
   * of decode_attention_{g4_}fp8kv (H200 session 10, llama-3.1-8b FP8 + FP8 KV batch 1 in one process: 331.0 → 360.4
   * tok/s, the attention 687 → 383 µs a step; kernel within 1.9e-3 of float64 like the _g4 kernel; measured at batch 1
   * and short contexts only). @default true
   */
  fp8DecodeSk: { env: "LLMRT_FP8_DECODE_SK", default: true },
  /**
   * With `fp8FlashPrefill`: prefill and mixed steps write their tokens' k / v rows into the bf16 shadow layer as well
   * (rope_kv_write_shadow_*, the values kv_dequant writes), and the dequantization before the flash prefill converts
   * only the rows the step did not write (kv_dequant_prefix_*: for a new prompt, nothing). The same shadow, the same
   * bits (H200 session 10: llama-3.1-8b FP8 + FP8 KV TTFT 2048 −0.3 ms in one process). @default true
   */
  fp8ShadowRope: { env: "LLMRT_FP8_SHADOW_ROPE", default: true },
  /**
   * Decode steps of up to 8 sequences run the 16-row quantized GEMVs as quant_gemv_fast* (kernels/quant_gemv.cu QG_FAST):
   * each warp streams a contiguous run of its tile's superchunks (paired scale / zero-point loads) instead of superchunks
   * 8 apart. The same products summed in another order (within fp32 rounding of quant_gemv_fused's sums; still batch
   * invariant). H200: one llama-3.1-8b int4 layer 56.9 → 54.0 µs in one process; not measured end to end. @default false
   */
  quantGemvFast: { env: "LLMRT_QUANT_GEMV_FAST", default: false },
} as const satisfies Record<string, CudaFlag>;

export type CudaFlagName = keyof typeof CUDA_FLAGS;

/** Every switch resolved (undefined: a per-engine default the CUDA session applies). */
export type CudaFlags = { readonly [K in CudaFlagName]: (typeof CUDA_FLAGS)[K]["default"] extends boolean ? boolean : boolean | undefined };

/** Switches as given: any may be left out (its default applies). */
export type CudaFlagInput = { readonly [K in CudaFlagName]?: boolean };

export const CUDA_FLAG_NAMES = Object.keys(CUDA_FLAGS) as readonly CudaFlagName[];

/**
 * Every switch: the given value, else `fallback(name)` (session_options.ts passes the environment variable's
 * reading), else the table's default.
 */
export function resolveCudaFlags(given: CudaFlagInput, fallback: (name: CudaFlagName) => boolean | undefined = () => undefined): CudaFlags {
  const out = {} as Record<CudaFlagName, boolean | undefined>;
  for (const k of CUDA_FLAG_NAMES) {
    const d: boolean | "engine" = CUDA_FLAGS[k].default;
    out[k] = given[k] ?? fallback(k) ?? (d === "engine" ? undefined : d);
  }
  return Object.freeze(out) as CudaFlags;
}

/** Just the switches of `o` (e.g. resolved session options, which also carry the backend and device). */
export function pickCudaFlags(o: CudaFlags): CudaFlags {
  const out = {} as Record<CudaFlagName, boolean | undefined>;
  for (const k of CUDA_FLAG_NAMES) out[k] = o[k];
  return out as CudaFlags;
}
