/**
 * The data of a CUDA launch plan: the launch environment (resolved device addresses) and the launch records
 * planLaunches returns (kernel signatures: kernel_signatures.ts; kernel ABIs: lib/backends/cuda/kernels/README.md).
 */
import type { LastLayerRows } from "./last_layer_rows.ts";
import type { EnginePlan } from "../../ir/plan.ts";

/** Activation element type of a CUDA engine. */
export type ElemType = "bf16" | "f32";

/** Most decode-attention splits per token (sizes the split-K workspace). */
export const MAX_DECODE_SPLITS = 64;

/** Device addresses of the step's input/output segments (see step_staging.ts). */
export interface StepIoPointers {
  readonly sampledIds: bigint;
  readonly temperature: bigint;
  readonly topK: bigint;
  readonly topP: bigint;
  readonly minP: bigint;
  readonly seed: bigint;
  readonly step: bigint;
  readonly maskIndex: bigint;
  readonly logitRows: bigint;
  readonly seqStarts: bigint;
  readonly tokenIds: bigint;
  readonly positions: bigint;
  readonly blockTables: bigint;
  /** [rows] i32: the position of each logits row's token (last-layer pruning: the rows' attention queries). */
  readonly logitPositions: bigint;
  /** [seqs + 1] i32: logits rows before each sequence (the pruned attention's sequence starts). */
  readonly logitSeqStarts: bigint;
}

/** Everything a launch needs besides the step shape: addresses and fixed geometry. */
export interface LaunchEnv {
  readonly plan: EnginePlan;
  readonly elem: ElemType;
  /** Base of the activation arena (plan.buffers offsets are relative to it). */
  readonly arena: bigint;
  /** Device address of a weight. */
  readonly weight: (name: string) => bigint;
  /** [maxSeqs, vocab] f32: the lm_head writes here (fp32 output), the sampler and the host read it. */
  readonly logits: bigint;
  readonly io: StepIoPointers;
  /** u32 [masks, ceil(vocab / 32)]: the step's token masks (guided decoding); 0n until a step has masks. */
  readonly tokenMasks?: bigint;
  /**
   * Multi-LoRA of this step (adapters on token-row linears): the token → adapter slot array, the
   * [slots, K] LoraEntry table of each linear weight that some resident adapter targets
   * (kernels/lora.cu), K segments per table, and the f32 [tokens, K, rankStride] shrink results.
   * Absent: no adapters this step (decode fusion is off when set).
   */
  readonly lora?: {
    readonly tokenSlot: bigint;
    readonly K: number;
    readonly table: (weight: string) => bigint | undefined;
    readonly tmp: bigint;
    readonly rankStride: number;
  };
  /** [headDim / 2] f64 RoPE inverse frequencies. */
  readonly invFreq: bigint;
  /** The KV cache: layer l starts at base + l × layerBytes. */
  readonly kvBase: bigint;
  readonly kvLayerBytes: number;
  /** Split-K workspace of decode attention: f32 [decodeCap, numHeads, MAX_DECODE_SPLITS, headDim] and [.., 2]. */
  readonly partialO: bigint;
  readonly partialML: bigint;
  readonly tokensPerBlock: number;
  /** Row stride of the device block tables (the session's maxBlocksPerSeq). */
  readonly blockStride: number;
  /** bf16 linears of at most GEMV_MAX_ROWS rows use the skinny-GEMM kernel (gemv.cu) instead of cuBLASLt. */
  readonly gemv: boolean;
  /**
   * Batch invariance: a row's linears round the same whatever else the step holds. The skinny-GEMM
   * kernel (whose per-row reduction is the same for 1..8 rows) then serves only steps where every
   * sequence brings one token (decode), and every other step's linears go to cuBLASLt, which pins one
   * non-split-K algorithm per (n, k) for all M (CublasLtGemm's batchInvariant). A prompt's prefill alone
   * or inside a batch thus takes the same kernels. @default false
   */
  readonly batchInvariant?: boolean;
  /**
   * Decode-step fusion (issue 16; needs `gemv`, bf16): RMSNorm folded into the next linear's prologue,
   * the residual add and SiLU·mul into the linear's epilogue (gemv_fused), RoPE + KV write + split-K
   * reduce into one attention launch (decode_attention). Needs `decodeCounters`.
   */
  readonly fusedDecode?: boolean;
  /**
   * Fused decode steps of more than GEMV_MAX_ROWS sequences run decode_attention_batch (tensor cores, one
   * block per kv head and 16 query heads) with batchDecodeSplit's geometry instead of decode_attention.
   */
  readonly batchAttention?: boolean;
  /**
   * With batchAttention: those steps run decode_attention_batch2 (per-warp K/V streams) instead, and FP8-KV
   * engines take it too (decode_attention_batch2_fp8kv: RoPE + e4m3 KV write + attention in one launch).
   */
  readonly batchAttention2?: boolean;
  /**
   * With batchAttention2: steps of at least BATCH2_WIDE_MIN_ROWS sequences over a bf16 cache at head dim 128 run
   * decode_attention_batch2w (the same bits as batch2).
   */
  readonly batchAttention2Wide?: boolean;
  /**
   * With batchAttention2: every decode step of more than GEMV_MAX_ROWS sequences (bf16 or e4m3 cache, head dim 64 / 128)
   * runs decode_attention_batch4 (keys on the mma rows; other bits than batch2, so all such steps take it).
   */
  readonly batchAttention4?: boolean;
  /** batch4 steps run decode_attention_batch4x_* (the same bits; CudaFlags.batchAttention4X). */
  readonly batchAttention4X?: boolean;
  /** FP8 GEMM launches ask for cuBLASLt's fast accumulation (GemmLaunch.fastAccum). */
  readonly fp8FastAccum?: boolean;
  /**
   * The (add_)rmsnorm / silu_mul feeding a prefill-sized FP8 linear writes its e4m3 rows itself
   * (fp8_rmsnorm_quant / fp8_silu_mul_quant) instead of a separate fp8_quantize launch (fp8_launch.ts fp8QuantProducers).
   */
  readonly fp8FusedQuant?: boolean;
  /** Fused FP8 decode GEMVs as the _pdl entry points (first weight loads ahead of pdlWait; PDL launches in fused steps). */
  readonly fp8Pdl?: boolean;
  /**
   * One-token fused FP8 decode GEMVs as fp8_gemv1_fused* (a persistent grid; each warp streams a contiguous run of
   * weight rows; k % 512 == 0, k <= 16384).
   */
  readonly fp8Gemv1?: boolean;
  /** One-token fused FP8 GEMVs without / with the RMSNorm prologue (modes 0 / 1 / 3) on fp8_gemvr_fused* (fp8_launch.ts fp8GemvRowFits). */
  readonly fp8GemvRow?: boolean;
  readonly fp8GemvRowNorm?: boolean;
  /** With fp8DecodeSk: decode_attention_sk_fp8kv splits of at least FP8_DECODE_SK_SMALL_SPLIT keys (attention_choice.ts; the session's default). */
  readonly fp8DecodeSkSmall?: boolean;
  /** With decodeSplitK: fused decode steps over an e4m3 KV cache (≤ GEMV_MAX_ROWS sequences) on decode_attention_sk_fp8kv. */
  readonly fp8DecodeSk?: boolean;
  /** With kvShadow: prefill steps' KV writes fill the shadow too (rope_kv_write_shadow_*), kv_dequant_prefix_* the rest. */
  readonly fp8ShadowRope?: boolean;
  /** With gemmResidual: FP8 GEMMs with bf16 output add into the residual too (CudaSessionOptions.fp8GemmResidual). */
  readonly fp8GemmResidual?: boolean;
  /** With fp8ShadowRope: steps whose sequences all start at position 0 (StepShape.freshPrompts) skip kv_dequant_prefix_*. */
  readonly fp8FreshPrompt?: boolean;
  /** Static-scale SiLU·mul quantize / quantize of prefill FP8 linears on the _flat entry points (CudaSessionOptions.fp8FlatQuant). */
  readonly fp8FlatQuant?: boolean;
  /** Prefill attention on flash_prefill_wg writes a static-scale FP8 o_proj's e4m3 input (CudaSessionOptions.fp8AttnQuant). */
  readonly fp8AttnQuant?: boolean;
  /** Static-scale prefill SiLU·mul quantize with the hardware exp / division (CudaSessionOptions.fp8FastSilu). */
  readonly fp8FastSilu?: boolean;
  /** Most blocks of fp8_gemv1's grid (fp8_launch.ts FP8_GEMV1_BLOCKS_PER_SM per SM). Unset: 264 (an H200's 132 SMs). */
  readonly fp8Gemv1Blocks?: number;
  /**
   * Prefill attention of bf16 engines (bf16 KV cache, head dims 64 / 128) on flash_prefill_wg (Hopper warpgroup
   * MMAs; the session sets it on sm_90 devices only).
   */
  readonly wgmmaPrefill?: boolean;
  /**
   * Fused decode steps of up to GEMV_MAX_ROWS sequences run decode_attention_sk (split-K flash decoding:
   * per-warp cp.async pipelines, tensor cores, a key partition by the span only) with decodeSkGeometry's launch
   * geometry instead of decode_attention (session option decodeSplitK).
   */
  readonly decodeSplitK?: boolean;
  /** Fused decode GEMVs with long rows run gemv_fused_ks with gemvSplitRows' warps per row. */
  readonly gemvSplitK?: boolean;
  /** CudaSessionOptions.gemvXPre: fused decode GEMVs of ≤ 2 rows on gemv_fused*_xpre. */
  readonly gemvXPre?: boolean;
  /** CudaSessionOptions.decodeLogitsTuned: the lm_head of decode steps of more than GEMV_MAX_ROWS sequences is not pinned. */
  readonly decodeLogitsTuned?: boolean;
  /**
   * Prefill and mixed steps: a plain cuBLASLt linear whose output only feeds the next op's residual add (add /
   * add_rmsnorm) writes into the residual itself (GemmLaunch.c, beta 1); the add_rmsnorm runs as rmsnorm.
   */
  readonly gemmResidual?: boolean;
  /**
   * Prefill and mixed steps (not fused decode): rmsnorm / add_rmsnorm, rope_kv_write, flash_prefill_wg, silu_mul,
   * gather_rows and the sampler take programmatic dependent launch (CudaSessionOptions.prefillPdl).
   */
  readonly prefillPdl?: boolean;
  /** Decode steps of more than GEMV_MAX_ROWS sequences: prefillPdl's kernels with PDL too (CudaSessionOptions.batchDecodePdl). */
  readonly batchDecodePdl?: boolean;
  /**
   * Fused decode steps over a quantized KV cache (FP8 / INT8) that do not run decode_attention_batch2 take one
   * decode_attention_{fp8kv|int8kv} launch per attention (RoPE + quantized KV write + split attention + merge)
   * instead of rope_kv_write_* + paged_attention_decode_* + reduce.
   */
  readonly fp8DecodeAttention?: boolean;
  /**
   * A bf16 layer of the KV cache's shape ((numBlocks + 1) blocks), set when prefill and mixed steps over a quantized
   * cache run the bf16 flash prefill kernels (fp8FlashPrefill): kv_dequant_{fp8kv|int8kv}_bf16 fills the blocks the step
   * attends before each such attention.
   */
  readonly kvShadow?: bigint;
  /** int32 [decodeCap × numKvHeads × ceil(G / 8)], zeroed once: decode_attention's split counters. */
  readonly decodeCounters?: bigint;
  /**
   * Fused decode steps: a quantized GEMV with a residual epilogue whose add_rmsnorm feeds another quantized GEMV
   * writes that norm's input times its weight and per-tile sums of squares (quant_gemv_fused_addnorm_*), and the next
   * GEMV scales its sums by the rms they give (quant_gemv_fused_rs_*; decode_fusion.ts tailNorm / rowScale), instead
   * of an RMSNorm prologue in each of its blocks. Needs quantNormScratch.
   */
  readonly quantTailNorm?: boolean;
  /** NVFP4 linears that fit the tiles on kernels/nvfp4_mma.cu (CudaFlags.nvfp4Mma; their weights uploaded tiled). */
  readonly nvfp4Mma?: boolean;
  /** Most blocks of nvfp4_gemv_mma's persistent grid (lowbit_launch.ts nvfp4GemvGrid). Unset: one block per row tile. */
  readonly nvfp4GemvBlocks?: number;
  /** With nvfp4Mma: one-row NVFP4 GEMVs on nvfp4_gemv_k32x (CudaFlags.nvfp4GemvK32; an NVFP4 lm_head's logits too, not with batchInvariant). */
  readonly nvfp4GemvK32?: boolean;
  /** With nvfp4Mma: the NVFP4 norm + act producers as nvfp4_rmsnorm_act_fast_bf16 (CudaFlags.nvfp4NormFast). */
  readonly nvfp4NormFast?: boolean;
  /** With nvfp4GemvK32: no _act GEMV form; nvfp4_act_mma + the plain GEMV (CudaFlags.nvfp4ActLaunch). */
  readonly nvfp4ActLaunch?: boolean;
  /**
   * Decode steps on decode_attention_batch4 over an FP8 cache write a static-scale FP8 o_proj's e4m3 input from the
   * attention (CudaFlags.fp8DecodeAttnQuant).
   */
  readonly fp8DecodeAttnQuant?: boolean;
  /** flash_prefill_wg's entry points with the block-wide query-tile lookup (flash_prefill_wgt_*; CudaFlags.prefillTileScan). */
  readonly prefillTileScan?: boolean;
  /** f32 [GEMV_MAX_ROWS, hiddenSize / 16]: quant_gemv_fused_addnorm's tile sums of squares, read by quant_gemv_fused_rs. */
  readonly quantNormScratch?: bigint;
  /** The 16-row quantized GEMVs run as quant_gemv_fast* (CudaSessionOptions.quantGemvFast). */
  readonly quantGemvFast?: boolean;
  /** With quantGemvFast: tailNorm pairs of two uint4 linears as quant_gemv_fastx* (CudaSessionOptions.quantGemvPairX). */
  readonly quantGemvPairX?: boolean;
  /** With quantGemvPairX: a uint4 gate_up → down pair as quant_gemv_fastxx* (CudaSessionOptions.quantGemvPairDown). */
  readonly quantGemvPairDown?: boolean;
  /**
   * Programmatic dependent launch (Hopper+): the fused decode step's launches of PDL_KERNELS get
   * `pdl` (each starts streaming its weights while the previous kernel finishes). @default false
   */
  readonly pdl?: boolean;
  /** With `pdl`: the quantized decode GEMVs (quant_gemv_fused*) take it too. @default false */
  readonly quantPdl?: boolean;
  /** bf16 [N, K] scratch of the largest quantized linear: prefill dequantizes into it, then cuBLASLt reads it. */
  readonly quantScratch?: bigint;
  /**
   * Decode steps of more than 8 rows (up to quantGemmMaxRows) run uint4/uint8 linears on quant_gemm_* (tensor-core
   * GEMM reading the packed weights; quant_gemm_plan.ts) instead of dequantize + cuBLASLt. @default false
   */
  readonly quantGemm?: boolean;
  /** FP8 linears' prefill scratch: quantized rows, then row scales (fp8_launch.ts fp8ScratchLayout). */
  readonly fp8Scratch?: bigint;
  /** int8 / int4 / NVFP4 linears' activation scratch: quantized rows as bf16, then row scales (lowbit_launch.ts lowbitScratchLayout). */
  readonly lowbitScratch?: bigint;
  /**
   * A quantized KV cache (`plan.attributes.kvCache`: FP8 e4m3 or INT8 bytes): its f32 scales
   * [numLayers, 2, numKvHeads] on the device (the launches get layer l's [2, numKvHeads] at kvScales + l × 8 × numKvHeads).
   */
  readonly kvScales?: bigint;
  /**
   * Last-layer pruning (last_layer_rows.ts): the plan's pruning and a device scratch of its scratchBytes. Steps
   * with StepShape.pruneRows then run the last layer past its KV write over the logits rows only.
   */
  readonly lastLayerRows?: { readonly plan: LastLayerRows; readonly scratch: bigint };
}

/** Least row elements a gemv_fused_ks warp streams (doubling the warps per row stops below it). */
export const GEMV_KS_MIN_ELEMS = 3072;

/**
 * Warps per weight row of a fused decode GEMV of `n` output rows and `k` inputs (gemv_fused_ks, LaunchEnv.gemvSplitK):
 * doubled (up to 4) while each warp keeps at least GEMV_KS_MIN_ELEMS of the row and (k / 8) % ks == 0 — long rows
 * only. H200, one GEMV at m = 1 (session 7 r1): llama-3.2-1b down (k 8192) 14.5 → 12.1 µs with 2 warps; llama-3.1-8b
 * down (k 14336) 42.2 → 37.0 µs with 4; rows of 2048 / 4096 (qkv, o_proj, gate_up) were as fast or slower split.
 * Session 11: o_proj on 2 warps a row was ~2% faster per o_proj chain on llama-3.1-8b but not end to end (graph step
 * 4283 → 4315 µs), so not taken.
 * A shape's choice, never a step's (batch invariance).
 *
 * @example
 * ```ts
 * gemvSplitRows(2048, 8192); // 2 (llama-3.2-1b down_proj)
 * gemvSplitRows(16384, 2048); // 1 (gate_up)
 * ```
 */
export function gemvSplitRows(_n: number, k: number): number {
  let ks = 1;
  while (ks < 4 && k / (2 * ks) >= GEMV_KS_MIN_ELEMS && (k / 8) % (2 * ks) === 0) ks *= 2;
  return ks;
}

/** Most rows the skinny-GEMM kernel takes (its instantiations: 1, 2, 4, 8). */
export const GEMV_MAX_ROWS = 8;

/** How a step runs attention. */
export type AttentionChoice =
  | {
    readonly kind: "decode";
    readonly numSplits: number;
    readonly splitSize: number;
    /** decode_attention_sk's geometry (decodeSkGeometry: grid z, split target), set when the session runs it (decodeSplitK). */
    readonly sk?: { readonly numSplits: number; readonly target: number };
  }
  | { readonly kind: "prefill" }
  | { readonly kind: "generic" };

/** The shape of one step: packed tokens, sequences, logits rows, attention path, whether to sample. */
export interface StepShape {
  readonly numTokens: number;
  readonly numSeqs: number;
  readonly numRows: number;
  readonly attention: AttentionChoice;
  readonly sample: boolean;
  /**
   * Tokens read KV other tokens of the step write (StepInputs.readsStepKv): a fused decode step keeps
   * rope_kv_write's own launch before decode_attention, which then finds every earlier key in the cache.
   */
  readonly writeKvFirst?: boolean;
  /**
   * The step's logits rows are strictly increasing (so each sequence's rows are contiguous in logitSeqStarts):
   * with LaunchEnv.lastLayerRows, a prefill / mixed step with fewer logits rows than tokens prunes its last layer.
   */
  readonly pruneRows?: boolean;
  /** Every sequence's first token of the step is at position 0: nothing of theirs is cached before the step. */
  readonly freshPrompts?: boolean;
  /** The most tokens a sequence brings to the step (prefillTileScan: flash_prefill_wg's grid covers no more query tiles). */
  readonly maxSeqTokens?: number;
  /**
   * An eager decode step that a decode graph of this many rows (its bucket) would serve: its per-M tuned GEMMs choose their
   * cuBLASLt algorithms as that graph's do (GemmLaunch.pickM; CudaFlags.eagerBucketGemm), so eager rows round as the graph's.
   */
  readonly gemmPickRows?: number;
}

export interface KernelLaunch {
  readonly kind: "kernel";
  /** Index of the plan op it implements. */
  readonly op: number;
  readonly kernel: string;
  readonly grid: readonly [number, number, number];
  readonly block: number;
  readonly args: readonly (bigint | number)[];
  /**
   * Launch with programmatic dependent launch: the kernel may start before the previous launch ends
   * (its code waits with griddepcontrol.wait before touching that launch's memory; PDL_KERNELS).
   */
  readonly pdl?: boolean;
  /**
   * Dynamic shared memory of the launch, bytes (default 0). Above 48 KiB the session raises the
   * kernel's limit (cuFuncSetAttribute) before its first such launch.
   */
  readonly sharedBytes?: number;
}

export interface GemmLaunch {
  readonly kind: "gemm";
  readonly op: number;
  /** D[m, n] = A[m, k] · B[n, k]ᵀ (+ bias[n]). */
  readonly m: number;
  readonly n: number;
  readonly k: number;
  readonly dtype: "bf16" | "fp32" | "fp8e4m3";
  readonly outDtype: "bf16" | "fp32";
  readonly a: bigint;
  readonly b: bigint;
  readonly d: bigint;
  readonly bias: bigint | null;
  /** Batch-invariant call: one pinned non-split-K algorithm for every m (CublasLtGemm). */
  readonly invariant: boolean;
  /** fp8e4m3: device f32 scales cuBLASLt multiplies A / B by (absent: 1). */
  readonly aScale?: bigint;
  readonly bScale?: bigint;
  /** fp8e4m3: cuBLASLt fast accumulation (GemmArgs.fastAccum). */
  readonly fastAccum?: boolean;
  /** D = alpha · A · Bᵀ (+ bias) (GemmArgs.alpha; lowbit linears' static scales). @default 1 */
  readonly alpha?: number;
  /** D = A · Bᵀ + C (beta 1; GemmArgs.c): the residual add in the epilogue (LaunchEnv.gemmResidual; c = d). */
  readonly c?: bigint;
  /** Not invariant: the algorithm of a call of this many rows (GemmArgs.pickM; StepShape.gemmPickRows). @default m */
  readonly pickM?: number;
}

export type Launch = KernelLaunch | GemmLaunch;

/**
 * Tensor parallelism: an `all_reduce` op rides as a launch of this name (args: buffer address,
 * element count); the CUDA session issues it through its NCCL communicator on the same stream, so
 * decode graphs capture it between the kernels.
 */
export const NCCL_ALL_REDUCE = "nccl_all_reduce";
