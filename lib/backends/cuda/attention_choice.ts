/**
 * Attention kernel choice and split-K geometry of a step (decode splits, graph buckets), shared by
 * the launch plan and the CUDA session.
 */
import type { Op } from "../../ir/network.ts";
import type { EnginePlan } from "../../ir/plan.ts";
import type { AttentionChoice, ElemType } from "./launch_types.ts";
import { GEMV_MAX_ROWS, MAX_DECODE_SPLITS } from "./launch_types.ts";

const cdiv = (a: number, b: number): number => Math.ceil(a / b);

/** Head dims with tiled attention kernels (decode split-K, prefill mma/SIMT); others take the generic kernel. */
export function hasTiledAttention(headDim: number): boolean {
  return headDim === 32 || headDim === 64 || headDim === 128;
}

/**
 * Launch geometry of the FlashAttention-2-style prefill kernel `flash_prefill_bf16_hd{64,128}`
 * (kernels/flash_prefill.cu; bf16 engines with a bf16 KV cache): query rows per block and threads per
 * block; `undefined` for head dims it does not cover (the `paged_attention_prefill_mma` kernel runs those).
 * The grid is (numHeads, ceil(numTokens / rows) + numSeqs).
 *
 * @example
 * ```ts
 * flashPrefillGeometry(64); // { rows: 256, threads: 256 }
 * ```
 */
export function flashPrefillGeometry(headDim: number): { readonly rows: number; readonly threads: number } | undefined {
  if (headDim === 64) return { rows: 256, threads: 256 };
  if (headDim === 128) return { rows: 128, threads: 128 };
  return undefined;
}

/**
 * Launch geometry of the Hopper warpgroup-MMA prefill kernel `flash_prefill_wg_bf16_hd{64,128}`
 * (kernels/flash_prefill_wg.cu, compiled for sm_90a; its FW_ENTRY lines): query rows per block (64 per
 * warpgroup), threads (128 per warpgroup) and dynamic shared memory (FW_SMEM: the Q tile, `stages` K and V
 * tiles of `keys` keys, 1 KiB for alignment); `undefined` for other head dims. The grid is
 * (numHeads, ceil(numTokens / rows) + numSeqs).
 *
 * @example
 * ```ts
 * flashPrefillWgGeometry(128); // { rows: 192, threads: 384, sharedMem: 148480 }
 * ```
 */
export function flashPrefillWgGeometry(headDim: number): { readonly rows: number; readonly threads: number; readonly sharedMem: number } | undefined {
  const t = WG_TILING[headDim];
  if (!t) return undefined;
  return { rows: 64 * t.warpgroups, threads: 128 * t.warpgroups, sharedMem: (64 * t.warpgroups + 2 * t.stages * t.keys) * headDim * 2 + 1024 };
}

/** The FW_ENTRY tilings of flash_prefill_wg_bf16_hd{64,128}: warpgroups, keys per K/V tile, cp.async stages. */
const WG_TILING: Readonly<Record<number, { readonly warpgroups: number; readonly keys: number; readonly stages: number }>> = {
  64: { warpgroups: 2, keys: 64, stages: 3 }, // H200 session 10: 68.0 µs at T 2048 (253 TFLOP/s) vs flash_prefill's 86.2
  128: { warpgroups: 3, keys: 64, stages: 3 }, // with OVL in FW_ENTRY: session 10 412 TFLOP/s at T 32000 (flash_prefill 231)
};

/** Keys per decode tile (splits are multiples of it). */
function decodeTile(elem: ElemType): number {
  return elem === "bf16" ? 64 : 32;
}

/**
 * Split-K geometry of decode attention for a step whose longest attended span is `maxLen`: at least
 * ~4 blocks per SM (kernels/README.md `choose_split`), at most MAX_DECODE_SPLITS splits.
 */
export function decodeSplit(
  numTokens: number,
  numKvHeads: number,
  group: number,
  maxLen: number,
  elem: ElemType,
  smCount: number,
): { numSplits: number; splitSize: number } {
  const tile = decodeTile(elem);
  const blocks = numTokens * numKvHeads * cdiv(group, 8);
  const splits = Math.min(Math.max(1, cdiv(4 * smCount, blocks)), cdiv(maxLen, tile), MAX_DECODE_SPLITS);
  const splitSize = cdiv(cdiv(maxLen, splits), tile) * tile;
  return { numSplits: cdiv(maxLen, splitSize), splitSize };
}

/**
 * Split-K geometry fixed for a captured decode graph of `bucket` tokens: it must cover any context up
 * to `maxSeqLen` (splits past a sequence's end exit at once). Splits of at least 128 keys.
 */
export function graphDecodeSplit(
  bucket: number,
  numKvHeads: number,
  group: number,
  maxSeqLen: number,
  elem: ElemType,
  smCount: number,
): { numSplits: number; splitSize: number } {
  const tile = decodeTile(elem);
  const blocks = bucket * numKvHeads * cdiv(group, 8);
  const splits = Math.min(Math.max(1, cdiv(4 * smCount, blocks)), MAX_DECODE_SPLITS);
  const splitSize = Math.max(128, cdiv(cdiv(maxSeqLen, splits), tile) * tile);
  return { numSplits: cdiv(maxSeqLen, splitSize), splitSize };
}

/**
 * Least keys per split of the fused decode attention (decode_attention.cu): a token splits its keys
 * over the launch's splits only as far as this allows, so a short context runs as one block per kv
 * group with no merge, however many splits the graph was captured with.
 */
export const DECODE_ATTENTION_MIN_SPLIT = 128;

/**
 * Keys per split of one token in decode_attention (its `daSplitKeys`): at least `minKeys`, enough for
 * `numSplits` splits to cover `span` keys, a multiple of 64. Depends on the token's own span only.
 */
export function decodeSplitKeys(span: number, minKeys: number, numSplits: number): number {
  return Math.max(minKeys, Math.ceil(Math.ceil(span / numSplits) / 64) * 64);
}

/**
 * Least keys per split of decode_attention_sk (kernels/decode_attention_sk.cu DS_MINK): spans up to this
 * run as one block per kv group with no merge.
 */
export const DECODE_SK_MIN_SPLIT = 128;

/** cp.async stages per warp of decode_attention_sk (DS_NS); its dynamic shared memory is 4 warps × stages × 8 KB. */
export const DECODE_SK_STAGES = 3;

/** Dynamic shared memory of a decode_attention_sk launch, bytes. */
export const DECODE_SK_SMEM = 4 * DECODE_SK_STAGES * 8192;

/**
 * Dynamic shared memory of a decode_attention_sk_fp8kv launch (fp8DecodeSk): per warp the stages of raw e4m3 chunks
 * (4 KB) and one 8 KB f16 buffer — 80 KB, so two fp8_gemv1s blocks of o_proj fit beside it on an SM.
 */
export const DECODE_SK_FP8_SMEM = 4 * (DECODE_SK_STAGES * 4096 + 8192);

/**
 * Split target of decode_attention_sk: about two blocks per SM for one sequence (numKvHeads × ceil(G / 8)
 * kv groups), at most MAX_DECODE_SPLITS. It depends on the model and the device only, never on a step.
 *
 * @example
 * ```ts
 * decodeSplitTarget(8, 4, 132); // 33
 * ```
 */
export function decodeSplitTarget(numKvHeads: number, group: number, smCount: number): number {
  return Math.max(1, Math.min(MAX_DECODE_SPLITS, cdiv(2 * smCount, numKvHeads * cdiv(group, 8))));
}

/**
 * Keys per split of a token attending `span` keys in decode_attention_sk (its dsSplitKeys): at least
 * DECODE_SK_MIN_SPLIT, enough for `target` splits to cover the span, a multiple of 64 — or one split covering
 * the span when it is at most 64 × `target`'s bits 8..15 (decodeSkGeometry's oneSplitKeys). Its splits:
 * ceil(span / keys) <= target. The span and the target only: a sequence's key partition is the same
 * in every step, whatever the grid or the other sequences (batch invariance).
 */
export function decodeSkSplitKeys(span: number, target: number): number {
  if (span <= ((target >> 8) & 0xff) * 64) return Math.ceil(span / 64) * 64; // one split (decodeSkGeometry's oneSplitKeys)
  const ts = Math.min(Math.max(target & 0xff, 1), MAX_DECODE_SPLITS);
  const even = Math.ceil(Math.ceil(span / ts) / 64) * 64;
  // Bits 16 and up: a least keys a split (decodeSkSplitArg); below DS_MINK (fp8DecodeSkSmall) only while it gives at most
  // (ts + 1) / 2 splits (dsSplitKeys).
  const minKeys = target >> 16 ? (target >> 16) * 64 : DECODE_SK_MIN_SPLIT, sz = Math.max(minKeys, even);
  return minKeys < DECODE_SK_MIN_SPLIT && Math.ceil(span / sz) > (ts + 1) >> 1 ? Math.max(DECODE_SK_MIN_SPLIT, even) : sz;
}

/**
 * Least keys a split of decode_attention_sk_fp8kv with `fp8DecodeSkSmall` (a multiple of 64), while a span takes at most
 * (target + 1) / 2 such splits (llama-3.1-8b on an H200: spans up to 17 · 64 = 1,088 keys); longer spans keep the 128-key
 * partition (session 16 r3: 64-key splits at 1,536 / 2,048 keys on the graph's 17-split grid, two a block, 7.6 → 10.1 µs).
 */
export const FP8_DECODE_SK_SMALL_SPLIT = 64;

/**
 * decode_attention_sk's `splitSize` argument: `target` (the split target, with decodeSkGeometry's one-split bits 8..15),
 * with `minKeys` (a multiple of 64, other than the kernel's DS_MINK) as minKeys / 64 in bits 16 and up; the inverse is
 * {@link decodeSkSplitOf}.
 */
export function decodeSkSplitArg(target: number, minKeys = DECODE_SK_MIN_SPLIT): number {
  return minKeys === DECODE_SK_MIN_SPLIT ? target : target | ((minKeys / 64) << 16);
}

/** The split target (bits 0..15) and least keys a split (bits 16+) of a decode_attention_sk `splitSize` argument. */
export function decodeSkSplitOf(arg: number): { target: number; minKeys: number } {
  return { target: arg & 0xffff, minKeys: arg >> 16 ? (arg >> 16) * 64 : DECODE_SK_MIN_SPLIT };
}

/** Spans up to which decode_attention_sk attends in one split under the session's `decodeSkOneSplit` (no merge). */
export const DECODE_SK_ONE_SPLIT = 256;

/**
 * decode_attention_sk's launch geometry for spans up to `maxLen` (eager: the longest attended span;
 * graphs: maxSeqLen): `numSplits` is the grid's z (enough blocks for every split of any span up to
 * maxLen to run at once), `splitSize` carries the split target (the kernel's `splitSize` parameter) and,
 * in bits 8..15, `oneSplitKeys` / 64: spans up to it attend in one split (0: the DECODE_SK_MIN_SPLIT
 * partition for every span).
 *
 * @example
 * ```ts
 * decodeSkGeometry(4096, 8, 4, 132); // { numSplits: 32, splitSize: 33 }
 * decodeSkGeometry(4096, 8, 4, 132, 256); // { numSplits: 32, splitSize: 33 + (4 << 8) }
 * ```
 */
export function decodeSkGeometry(
  maxLen: number,
  numKvHeads: number,
  group: number,
  smCount: number,
  oneSplitKeys = 0,
  minKeys = DECODE_SK_MIN_SPLIT,
): { numSplits: number; splitSize: number } {
  if (oneSplitKeys % 64 !== 0 || oneSplitKeys < 0 || oneSplitKeys > 255 * 64) {
    throw new RangeError(`decodeSkGeometry: oneSplitKeys ${oneSplitKeys} is not a multiple of 64 in [0, 16320]`);
  }
  const target = decodeSplitTarget(numKvHeads, group, smCount);
  const z = Math.min(target, cdiv(maxLen, DECODE_SK_MIN_SPLIT));
  // minKeys below DS_MINK (fp8DecodeSkSmall, carried by decodeSkSplitArg): up to (target + 1) / 2 splits of minKeys.
  const small = minKeys < DECODE_SK_MIN_SPLIT ? Math.min((target + 1) >> 1, cdiv(maxLen, minKeys)) : 0;
  return { numSplits: Math.max(1, z, small), splitSize: target | ((oneSplitKeys / 64) << 8) };
}

/** Query heads one decode_attention_batch block takes (the rows of one mma tile). */
export const BATCH_ATTENTION_ROWS = 16;

/**
 * Split-K geometry of decode_attention_batch (decode steps of more than GEMV_MAX_ROWS sequences) for
 * spans up to `maxLen`: splits only while the step has fewer than ~2 blocks per SM, each at least 256
 * keys (a multiple of 64). Used for eager steps (maxLen = the longest attended span) and graph buckets
 * (maxLen = maxSeqLen: splits past a sequence's end exit at once).
 */
export function batchDecodeSplit(
  numTokens: number,
  numKvHeads: number,
  group: number,
  maxLen: number,
  smCount: number,
): { numSplits: number; splitSize: number } {
  const blocks = numTokens * numKvHeads * cdiv(group, BATCH_ATTENTION_ROWS);
  const splits = Math.min(Math.max(1, cdiv(2 * smCount, blocks)), MAX_DECODE_SPLITS);
  const splitSize = Math.max(256, cdiv(cdiv(maxLen, splits), 64) * 64);
  return { numSplits: cdiv(maxLen, splitSize), splitSize };
}

/**
 * decode_attention_batch's split geometry for a step of `numTokens` sequences whose longest attended span
 * is `maxLen` (a graph bucket: maxSeqLen). Batch-invariant sessions split every such step at the key ranges
 * of a (GEMV_MAX_ROWS + 1)-sequence step covering `maxSeqLen`: a sequence's keys fall into the same splits,
 * merged in the same order (a span within one split is written directly), whatever else the step holds —
 * eager or graph, any bucket. Otherwise batchDecodeSplit sizes the splits for the step itself.
 *
 * @example
 * ```ts
 * batchAttentionSplit(64, 8, 4, 288, 288, 132, true); // { numSplits: 2, splitSize: 256 }, as for 9 or 512 sequences
 * ```
 */
export function batchAttentionSplit(
  numTokens: number,
  numKvHeads: number,
  group: number,
  maxLen: number,
  maxSeqLen: number,
  smCount: number,
  invariant: boolean,
): { numSplits: number; splitSize: number } {
  if (!invariant) return batchDecodeSplit(numTokens, numKvHeads, group, maxLen, smCount);
  const { splitSize } = batchDecodeSplit(GEMV_MAX_ROWS + 1, numKvHeads, group, maxSeqLen, smCount);
  return { numSplits: Math.max(1, cdiv(maxLen, splitSize)), splitSize };
}

/**
 * Threads per block of decode_attention_batch2 (32 × the DB2_*NW* warps of kernels/decode_attention_batch.cu):
 * hd64 4 warps, hd128 2 warps, for a bf16 and an e4m3 cache alike.
 */
export function batchAttention2Threads(headDim: number, _fp8: boolean): number {
  return headDim === 128 ? 64 : 128;
}

/** Query heads one decode_attention_batch4 block takes (the n8 columns of its mma tiles). */
export const BATCH_ATTENTION4_ROWS = 8;

/**
 * Threads per block of decode_attention_batch4 (32 × the DB4_*NW* warps of kernels/decode_attention_batch4.cu).
 */
export function batchAttention4Threads(_headDim: number, _fp8: boolean): number {
  return 64;
}

/**
 * Least sequences of a decode step that runs decode_attention_batch4w instead of batch4 (LaunchEnv.batchAttention4; bf16
 * cache, head dim 128): the same warps and tiles with 1 cp.async stage and 8 blocks per SM, so the same bits. H200 session
 * 11 (r1, before the fast cp.async issue), llama-3.1-8b one layer at 128..256 keys, batch4w / batch4 = 0.934 (512 seqs),
 * 0.953 (256), 0.858 (128), 1.146 (64).
 */
export const BATCH4_WIDE_MIN_ROWS = 128;

/**
 * Least sequences of a decode step that runs decode_attention_batch2w instead of batch2 (LaunchEnv.batchAttention2Wide;
 * bf16 cache, head dim 128). The two round alike, so the threshold is a speed choice only: H200 session 10, llama-3.1-8b
 * one layer at 128..256 keys, batch2w / batch2 = 0.859 (512 seqs), 0.887 (256), 0.915 (128), 1.172 (64).
 */
export const BATCH2_WIDE_MIN_ROWS = 128;

/**
 * Whether a decode step (or graph bucket) of `rows` sequences runs decode_attention_batch, planLaunches'
 * choice in the fused decode plan (`gemv` on, no LoRA): bf16 with a bf16 KV cache (with `batchAttention2`
 * an FP8 one too), head dim 64 or 128, more than `gemvMaxRows` sequences, `batchAttention` on. Such steps
 * take batchDecodeSplit's geometry.
 */
export function usesBatchAttention(
  plan: EnginePlan,
  elem: ElemType,
  rows: number,
  o: {
    readonly batchAttention: boolean;
    readonly batchAttention2?: boolean;
    readonly gemv: boolean;
    readonly lora: boolean;
    readonly gemvMaxRows: number;
  },
): boolean {
  const hd = plan.attributes.headDim;
  const kv = plan.attributes.kvCache;
  const cacheOk = !kv || (!!o.batchAttention2 && kv.quantAlgo === "FP8");
  return o.batchAttention && o.gemv && !o.lora && elem === "bf16" && cacheOk && (hd === 64 || hd === 128) && rows > o.gemvMaxRows;
}

/** Decode-graph buckets: 1, 2, 4, … below `cap`, then `cap`. */
export function decodeBuckets(cap: number): number[] {
  const out: number[] = [];
  for (let b = 1; b < cap; b *= 2) out.push(b);
  out.push(cap);
  return out;
}

/** The smallest bucket holding `n` tokens. */
export function bucketFor(n: number, buckets: readonly number[]): number {
  for (const b of buckets) if (b >= n) return b;
  throw new RangeError(`no decode bucket holds ${n} tokens (largest ${buckets[buckets.length - 1]})`);
}

/**
 * The attention path of an eager step: split-K decode when every sequence brings one token (and the
 * workspace holds them), the tiled prefill kernel otherwise, the generic kernel for other head dims.
 */
export function chooseAttention(
  plan: EnginePlan,
  elem: ElemType,
  numTokens: number,
  numSeqs: number,
  maxAttended: number,
  decodeCap: number,
  smCount: number,
): AttentionChoice {
  const a = plan.attributes;
  if (!hasTiledAttention(a.headDim)) return { kind: "generic" };
  if (numTokens === numSeqs && numTokens <= decodeCap) {
    const op = plan.ops.find((o) => o.type === "paged_attention") as Extract<Op, { type: "paged_attention" }> | undefined;
    const group = op ? op.numHeads / op.numKvHeads : 1;
    return { kind: "decode", ...decodeSplit(numTokens, a.numKvHeads, group, Math.max(1, maxAttended), elem, smCount) };
  }
  return { kind: "prefill" };
}
