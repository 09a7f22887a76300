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
  /** Invariant shapes with no M-stable cuBLASLt reference: fixed-order GEMM. */ invariantFixedGemm: { env: "LLMRT_INVARIANT_FIXED_GEMM", default: true },
  /** Invariant references: longer cuBLASLt search (gemm.ts). */ invariantWideSearch: { env: "LLMRT_INVARIANT_WIDE_SEARCH", default: true },
  /**
   * One-token fused FP8 decode steps run fp8_gemv1 (a persistent grid; each warp streams a contiguous run of weight
   * rows, PDL) for linears whose in-features are a multiple of 512 (at most 16384; 8192 with the RMSNorm prologue).
   * H200, llama-3.1-8b FP8 + FP8 KV batch 1: 240 → 276 tok/s (session 8 r2; 8B linears at 61–90% of copy against the
   * 16-row kernel's 42–64%). @default true
   */
  fp8Gemv1: { env: "LLMRT_FP8_GEMV1", default: true },
  /**
   * One-token FP8 o_proj GEMVs (no RMSNorm prologue, in-features a multiple of 512 up to 4096) on fp8_gemvr_fused: one
   * weight row a warp on short-lived blocks, fp8_gemv1's bits; no faster (bench/RESULTS.md session 16). @default false
   */
  fp8GemvRow: { env: "LLMRT_FP8_GEMV_ROW", default: false },
  /** fp8GemvRow's kernel for the GEMVs with the RMSNorm prologue (qkv; fp8_gemvr_fused_norm). @default false (session 16) */
  fp8GemvRowNorm: { env: "LLMRT_FP8_GEMV_ROW_NORM", default: false },
  /**
   * decode_attention_sk_fp8kv takes splits of at least 64 keys instead of 128 while a span needs at most (target + 1) / 2
   * of them (a function of the span and the model: batch invariance holds; other decode bits). H200, llama-3.1-8b FP8 +
   * FP8 KV batch 1, same process: 366.3 / 365.1 → 370.7 / 373.6 tok/s (bench/RESULTS.md session 16). @default true
   */
  fp8DecodeSkSmall: { env: "LLMRT_FP8_DECODE_SK_SMALL", default: true },
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
   * Eager prefill / mixed steps (not decode, not LoRA) of a shape seen before replay a CUDA graph of their launch list
   * (with prefillPlanCache and cudaGraphs; captured at the shape's second step, 16 kept): the same bits. H200 llama-3.2-1b
   * TTFT 128 −10%, 2048 −1%; a capturing step ~2 ms slower (bench/RESULTS.md session 16). @default false
   */
  prefillGraphs: { env: "LLMRT_PREFILL_GRAPHS", default: false },
  /**
   * With `batchAttention2`: decode steps of at least BATCH2_WIDE_MIN_ROWS sequences over a bf16 cache at head dim 128
   * run decode_attention_batch2w (batch2's 2 warps with 1 cp.async stage each and registers capped for 8 blocks per
   * SM: more blocks in flight; the same keys per warp, sums and merge, so the same bits) (H200 session 10: one 8B layer at
   * 512 sequences 159.3 → 136.8 µs; llama-3.1-8b bf16 512 × (128,128) 16,856 → 17,137 output tok/s, greedy ids
   * identical). @default true
   */
  batchAttention2Wide: { env: "LLMRT_BATCH_ATTENTION2_WIDE", default: true },
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
   * With `batchAttention2`: every decode step of more than 8 sequences over a bf16 or e4m3 cache at head dim 64 / 128 runs
   * decode_attention_batch4 instead of batch2 / batch2w — the score tile transposed (S^T = K · Q^T: 16 keys on the
   * mma rows, a kv group's <= 8 query heads on the n8 columns), half the q·k and p·v mma and exp2 of batch2 at GQA 4, e4m3
   * K / V converted straight into f16 fragments. Its sums run in another order than batch2's (other bits), so it takes
   * every such step, whatever its size (batch invariance). H200 session 11, same job each: llama-3.1-8b bf16 512 × (128,128)
   * --defer-decodes 1 17,670.9 → 18,036.2 output tok/s; FP8 + FP8 KV 26,818.5 → 29,003.6; one 8B layer at 512 sequences
   * 135.4 → 115.6 µs (bf16, vs batch2w) and 154.3 → 90.0 µs (e4m3).
   * @default true
   */
  batchAttention4: { env: "LLMRT_BATCH_ATTENTION4", default: true },
  /**
   * batch4 steps on decode_attention_batch4x_* (the same bits: s17's early scale / own-entry loads, the end over both warps; s19's
   * unpadded swizzled e4m3 rows, G ≤ 4's end over 2 lanes). H200 session 19, one job: 8B layer at 512 seqs e4m3 86.7 → 80.9 µs;
   * 8B FP8 + FP8 KV 512 × (128,128) 30,009.7 / 30,154.4 → 30,216.9 / 30,279.4 tok/s; 1B 64 × 44,078.8 → 44,794.3. @default true
   */
  batchAttention4X: { env: "LLMRT_BATCH_ATTENTION4_X", default: true },
  /**
   * Fused bf16 decode GEMVs of up to 2 rows run gemv_fused*_xpre (kernels/gemv.cu: a chunk's x vectors loaded together
   * with its weight vectors instead of after they land). A lane adds its vectors in the same order: the same bits.
   * H200 session 11: llama-3.2-1b batch-1 graph step 807.4 → 766.6 µs at 128 keys (one process, logits bitwise);
   * llama-3.1-8b GEMV chain (bench/gemv_tune.ts) 3,857 → 3,615 µs; the closing run (on): 8B batch 1 84.0% of copy
   * (session 10: 79.1%).
   * @default true
   */
  gemvXPre: { env: "LLMRT_GEMV_XPRE", default: true },
  /**
   * With `gemmResidual`: prefill / mixed steps' FP8 (e4m3) o_proj and down_proj cuBLASLt GEMMs with bf16 output add into
   * the residual stream in their epilogue too (C = D = residual, beta 1, one rounding of scale · acc + residual instead of
   * two), and the FP8 linear's fused norm after them quantizes the residual without the add (fp8_rmsnorm_quant_bf16
   * add 0: 2 of its 4 row passes over memory). Within bf16 rounding of the separate add.
   * @default true
   */
  fp8GemmResidual: { env: "LLMRT_FP8_GEMM_RESIDUAL", default: true },
  /**
   * With `fp8ShadowRope`: a prefill step whose every sequence starts at position 0 (a new prompt: no cached prefix to
   * convert) leaves out the kv_dequant_prefix_* launch of each layer (it would convert no row). The same bits.
   * @default true
   */
  fp8FreshPrompt: { env: "LLMRT_FP8_FRESH_PROMPT", default: true },
  /**
   * Prefill-sized FP8 linears with static activation scales: the SiLU·mul that quantizes for down_proj and the quantize
   * before o_proj run as fp8_silu_mul_quant_flat_bf16 / fp8_quantize_flat_bf16 (one 8-element chunk a thread over a
   * 2-D grid, as silu_mul_bf16, instead of a block looping over its row). The same bytes.
   * @default true
   */
  fp8FlatQuant: { env: "LLMRT_FP8_FLAT_QUANT", default: true },
  /**
   * Prefill steps whose attention runs flash_prefill_wg (wgmmaPrefill) before an FP8 o_proj with a static activation
   * scale on the cuBLASLt GEMM: the attention writes o_proj's e4m3 input rows and row scales itself
   * (flash_prefill_wg_q8_bf16_hd*) and o_proj launches no quantize; the bf16 attention output is not written. The same
   * bytes as fp8_quantize_bf16 of the bf16 output.
   * @default true
   */
  fp8AttnQuant: { env: "LLMRT_FP8_ATTN_QUANT", default: true },
  /**
   * With `pruneLastLayer`: plans whose last layer has FP8 (e4m3) linears prune it too (before: only plans without
   * quantized linears past the last attention). The last layer's attention, o_proj, MLP and final norm run over the
   * logits rows; batch-invariant sessions run those FP8 linears on the cuBLASLt GEMM whose rows do not depend on M, so
   * the logits keep their bits (llama-3.1-8b FP8 prefill of 2048 tokens: 1 row instead of 2048 in the last layer).
   * @default true
   */
  fp8PruneLastLayer: { env: "LLMRT_FP8_PRUNE_LAST_LAYER", default: true },
  /**
   * The static-scale SiLU·mul that quantizes for a prefill FP8 down_proj computes silu with the hardware exponential and
   * division (fp8_silu_mul_quant_fast_bf16: __expf, __fdividef) instead of expf and an IEEE division: within bf16 rounding
   * of silu_mul_bf16's value, not its bits (the accurate math makes the 8B's 2048 × 14336 SiLU·mul ALU-bound).
   * H200 session 11 (one process, with the five same-bytes FP8 prefill switches): llama-3.1-8b FP8 + FP8 KV TTFT 2048
   * 29.13 → 26.46 ms; prefill and decode logits identical to the default there.
   * @default true
   */
  fp8FastSilu: { env: "LLMRT_FP8_FAST_SILU", default: true },
  /**
   * The lm_head of decode steps of more than 8 sequences takes the per-M tuned cuBLASLt algorithm like the step's other
   * linears (whose rows already depend on the step's size there) instead of the batch-invariant pinned one. Steps of up
   * to 8 sequences and prefill are unchanged. H200 session 11, llama-3.2-1b at 64 rows: the lm_head 148 → 134 µs;
   * 64 × (128,128) +0.95% / +1.19% in alternating runs of one job.
   * @default true
   */
  decodeLogitsTuned: { env: "LLMRT_DECODE_LOGITS_TUNED", default: true },
  /**
   * Prefill and mixed steps: rmsnorm / add_rmsnorm, rope_kv_write, flash_prefill_wg, silu_mul, gather_rows and the
   * sampler take programmatic dependent launch (sm_90+; each waits for the previous kernel at its entry), so their
   * launch overlaps the end of the cuBLASLt GEMM or kernel before them (RoPE as rope_kv_write_pdl, which reads the
   * positions / block tables and computes cos/sin before its wait). The same kernels and sums: the same bits. H200:
   * llama-3.2-1b TTFT 2048 −1…−2%, 128 tokens −12% (session 14); llama-3.1-8b TTFT 2048 within ±1%. Made default in
   * session 14 and turned off again after that closing suite's batch4 "graphs = eager" failures; session 15's 3-process
   * suite passed with it off and on, the prefill KV bitwise equal either way (the failures were the per-M GEMM picks of
   * > 8-row eager decode steps: eagerBucketGemm) — on again. History: bench/RESULTS.md sessions 11, 14, 15.
   * @default true (session 15)
   */
  prefillPdl: { env: "LLMRT_PREFILL_PDL", default: true },
  /** ≤ 8-row decode steps' 16-row quantized GEMVs as quant_gemv_fast* (contiguous superchunk runs a warp). s12: 8B int4 +3.9%. @default true */
  quantGemvFast: { env: "LLMRT_QUANT_GEMV_FAST", default: true },
  /** u4 tailNorm pairs as quant_gemv_fastx_* (x in mma pair order; same sums). H200 s19: 8B W4A16 +3.4%. @default true */
  quantGemvPairX: { env: "LLMRT_QUANT_GEMV_PAIR_X", default: true },
  /** With `quantGemvPairX`: u4 gate_up → down too, as quant_gemv_fastxx_* (SiLU·mul out in pair order; same sums). @default false */
  quantGemvPairDown: { env: "LLMRT_QUANT_GEMV_PAIR_DOWN", default: false },
  /**
   * With `nvfp4Mma`: one-row steps run nvfp4_gemv_k32x (kernels/nvfp4_mma.cu) for the NVFP4 GEMVs: m16n8k32 mmas with a
   * k tile's four blocks in B's columns 0, 2, 4, 6, so each lane scales one block of two rows a k tile instead of four,
   * and a k tile takes 4 mmas, not 8; the act quantization of a row no producer wrote runs inside the GEMV (shared
   * memory), and an NVFP4 lm_head's logits take the GEMV too (not with batchInvariant: 2..8 logits rows take dequantize +
   * cuBLASLt, so one row does). The block terms are added in nvfp4_gemv_mma's order: the
   * same bits (batch-invariant with its m8 kernel). Its weight tiles in flight sit in a per-warp cp.async ring in shared
   * memory (session 12). H200 session 12 r3, batch 1, same process, with nvfp4NormFast: llama-3.1-8b 335.9 → 341.0 tok/s
   * (+1.5%; r1 without it 301.7 → 308.7), llama-3.2-1b 1,125.3 → 1,342.6 (+19.3%); logits bitwise equal. Since session 14
   * its loop is the lean k32x form (nvfp4K32xGemv: the same items, mmas and sums, so the same bits, with fewer instructions
   * an item: ring addresses by increments, one barrier a row tile, each lane's activation word and block scale loaded
   * NV_K32X_XPF items ahead; H200 session 14, batch 1, same process: llama-3.1-8b 335.4 -> 370.4 tok/s (+10.4%),
   * llama-3.2-1b 1,287.0 -> 1,328.8 (+3.2%), logits bitwise equal; the switch nvfp4K32X, removed with the old loop in
   * session 15). @default true (session 12)
   */
  nvfp4GemvK32: { env: "LLMRT_NVFP4_GEMV_K32", default: true },
  /**
   * With `nvfp4Mma`: the RMSNorms that quantize for the next NVFP4 linear run nvfp4_rmsnorm_act_fast_bf16 (rows up to 8192
   * wide): the same bytes as nvfp4_rmsnorm_act_bf16 with less latency on its one block (norm weight read before pdlWait,
   * the row kept in shared memory after the sum of squares, 1024 threads quantizing). H200 session 12 r2, llama-3.1-8b
   * batch 1 with nvfp4GemvK32 (same process): 303.2 → 329.7 tok/s (+8.7%), the 64 norms' marginal cost in the step's
   * graph 457 → 186 µs, logits bitwise equal. @default true (session 12)
   */
  nvfp4NormFast: { env: "LLMRT_NVFP4_NORM_FAST", default: true },
  /**
   * With `nvfp4GemvK32`: a one-row NVFP4 linear whose input no producer quantizes (o_proj) takes nvfp4_act_mma_bf16 (one
   * launch of k / 1024 blocks) and the plain k32x GEMV instead of nvfp4_gemv_k32x_act, where every block quantizes the
   * whole row before its first mma (the same bytes and bits). H200 session 15, batch 1, same process: llama-3.1-8b 360.8 ->
   * 384.7 tok/s (+6.6%, r2; r1 with nvfp4K32Dyn on: 348.2 -> 363.8), llama-3.2-1b 1,318.4 -> 1,347.1 (+2.2%), logits
   * bitwise equal. (Session 15's nvfp4AttnAct — decode_attention_sk writing o_proj's NVFP4 codes itself, no act launch —
   * measured no faster over this on the H200, 8B batch 1: 381.0 / 391.2 / 391.2 tok/s off vs 382.0 / 390.3 / 389.1 on;
   * removed.) @default true (session 15)
   */
  nvfp4ActLaunch: { env: "LLMRT_NVFP4_ACT_LAUNCH", default: true },
  /**
   * Decode steps of more than 8 sequences over an FP8 KV cache (decode_attention_batch4): the attention writes the next
   * static-scale FP8 linear's (o_proj's) e4m3 rows and row scales itself (decode_attention_batch4_q8_fp8kv_*, the bytes
   * fp8_quantize_flat_bf16 writes from the bf16 output) instead of its bf16 output: one launch a layer less, the same
   * bits. H200, llama-3.1-8b FP8 + FP8 KV, 512-row decode graph at 192 keys: 10,197 -> 10,039 us (r1), 10,287 -> 10,126
   * (r2, with prefillTileScan), logits bitwise equal. @default true (session 12)
   */
  fp8DecodeAttnQuant: { env: "LLMRT_FP8_DECODE_ATTN_QUANT", default: true },
  /**
   * Prefill attention on flash_prefill_wg finds each block's query tile with the whole block (one round of loads and a
   * prefix sum; flash_prefill_wgt_*) instead of every thread walking the step's sequences one by one: the same tiles and
   * bits, much less per-block latency in steps of hundreds of short prompts; the grid covers at most S query tiles of the
   * step's longest sequence each (StepShape.maxSeqTokens) instead of ceil(T / BM) + S. H200, llama-3.1-8b FP8 + FP8 KV,
   * 256 × 128-token prefill step (with fp8DecodeAttnQuant, same process): 421.2 -> 403.7 ms, logits bitwise equal; both
   * switches, 512 × (128,128) same job: 29,089 -> 30,065 output tok/s, greedy ids 512/512 identical.
   * @default true (session 12)
   */
  prefillTileScan: { env: "LLMRT_PREFILL_TILE_SCAN", default: true },
  /**
   * Eager (prefill / mixed) steps reuse the launch list of an earlier step of the same shape (StepShape: tokens, sequences,
   * logits rows, attention path, pruning, longest sequence) on the same KV cache instead of planning it again
   * (launch_cache.ts; the last 16 shapes): the same launches, so the same bits; the host work before the step's first
   * launch shrinks by the planning (~150 launches for llama-3.2-1b). LoRA steps are always planned. H200 session 14, same
   * job, logits bitwise equal: llama-3.2-1b TTFT 128 / 2048 tokens 1.99 → 1.65 / 7.85 → 7.64 ms (r1), 2.15 → 1.71 /
   * 8.05 → 7.85 ms (r2); with prefillPdl 1.69 / 7.72 ms (r2). @default true (session 14)
   */
  prefillPlanCache: { env: "LLMRT_PREFILL_PLAN_CACHE", default: true },
  /**
   * Eager decode steps (cudaGraphs off, or a session's graphs not used) of T sequences, T ≤ the decode cap: every GEMM
   * whose cuBLASLt algorithm is tuned per M (not batch-invariant: decode steps of more than 8 rows) takes the algorithm of
   * the decode graph of T's bucket (GemmArgs.pickM), so its rows round as that graph's do. Without it the 12-row eager step
   * and the 16-row graph were tuned apart, and under load could pick algorithms of another K order (session 14's batch4
   * "graphs = eager" failures). No kernel changes. H200 session 15 r1 (tools/gpu/s15_pickm_r1.sh): the 12-row call with
   * pickM 16 gave the 16-row call's bits on all 10 shapes tried (the small test Llama's linears and lm_head, llama-3.2-1b's
   * linears), also where M 12's own candidates round differently (lm_head 211x256, 2048x8192); with M 12's picks forced
   * to such candidates a 12-sequence eager decode step = the 16-row graph bitwise (off: differs at logit 0); cost per
   * eager GEMM at M 12 (1B shapes) 0.0103–0.0209 → 0.0114–0.0213 ms. Graph steps are unchanged. @default true (session 15)
   */
  eagerBucketGemm: { env: "LLMRT_EAGER_BUCKET_GEMM", default: true },
  /**
   * With `decodeSplitK`, bf16 / f32 KV caches: a token attending up to 256 keys (DECODE_SK_ONE_SPLIT) runs
   * decode_attention_sk in one split, no merge (a function of the span: batch invariance holds; other bits at 129–256
   * keys). H200 batch 1 after a 128-token prompt: 1B +2.2–6.0%, 8B +1.1–1.4% (bench/RESULTS.md session 16). @default true
   */
  decodeSkOneSplit: { env: "LLMRT_DECODE_SK_ONE_SPLIT", default: true },
  /** Step inputs read by a kernel from pinned host memory, ids by one (stage_launch.ts; 1B b1 −1.1%). @default true */
  zeroCopyStaging: { env: "LLMRT_ZERO_COPY_STAGING", default: true },
  /** Decode steps of > 8 sequences: prefillPdl's kernels with PDL (1B 64-row graph −0.6%). @default true */
  batchDecodePdl: { env: "LLMRT_BATCH_DECODE_PDL", default: true },
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
