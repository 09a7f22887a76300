/**
 * Launches of one paged-attention op (launch_plan.ts planLaunches): the generic kernel for untiled head dims,
 * fused decode attention (decode_attention / _g4 / _sk, decode_attention_batch / batch2 for steps of more than 8
 * sequences), split decode + reduce, flash prefill (wgmma on Hopper where chosen, mma.sync otherwise), or the
 * tiled prefill kernels; quantized KV caches through their _fp8kv_ / _int8kv_ entry points.
 */
import type { Op } from "../../ir/network.ts";
import { InternalError } from "../../util/errors.ts";
import {
  BATCH2_WIDE_MIN_ROWS,
  BATCH4_WIDE_MIN_ROWS,
  BATCH_ATTENTION4_ROWS,
  BATCH_ATTENTION_ROWS,
  batchAttention2Threads,
  batchAttention4Threads,
  DECODE_ATTENTION_MIN_SPLIT,
  DECODE_SK_FP8_SMEM,
  DECODE_SK_SMEM,
  decodeSkSplitArg,
  flashPrefillGeometry,
  flashPrefillWgGeometry,
  FP8_DECODE_SK_SMALL_SPLIT,
  hasTiledAttention,
} from "./attention_choice.ts";
import { GEMV_MAX_ROWS, type LaunchEnv, type StepShape } from "./launch_types.ts";
import type { StepCtx } from "./step_ctx.ts";

const cdiv = (a: number, b: number): number => Math.ceil(a / b);

/** CTAs per cache block of kv_dequant (its grid z): 4 × the attended blocks, for a prompt of 2048 tokens 256 CTAs. */
const KV_DEQUANT_SPLITS = 4;

/**
 * fp8ShadowRope: whether a step's quantized-KV write of head dim `headDim` also fills the bf16 shadow layer
 * (rope_kv_write_shadow_*) and its prefill attention converts only the other rows (kv_dequant_prefix_*): the steps whose
 * attention runs the flash kernels over the shadow.
 */
export function shadowRope(c: StepCtx, headDim: number): boolean {
  const { env, shape, kvFp8 } = c;
  return kvFp8 && !!env.fp8ShadowRope && !!env.kvShadow && env.elem === "bf16" && shape.attention.kind === "prefill" &&
    hasTiledAttention(headDim) && flashPrefillGeometry(headDim) !== undefined && headDim % 16 === 0;
}

/**
 * Whether a step's paged attention of head dim `headDim` runs flash_prefill_wg (planAttention's prefill branch with
 * wgmmaPrefill; a quantized cache through its bf16 shadow).
 */
export function prefillOnFlashWg(env: LaunchEnv, shape: StepShape, kvFp8: boolean, headDim: number): boolean {
  return shape.attention.kind === "prefill" && hasTiledAttention(headDim) && env.elem === "bf16" && (!kvFp8 || !!env.kvShadow) &&
    flashPrefillGeometry(headDim) !== undefined && !!env.wgmmaPrefill && flashPrefillWgGeometry(headDim) !== undefined;
}

/**
 * Whether a decode step's paged attention (head dim `headDim`, its RoPE fused in: `attnQkv`) runs
 * decode_attention_batch4 over an e4m3 cache (planAttention's decode branch) with `fp8DecodeAttnQuant`: it may then
 * write the next static-scale FP8 linear's e4m3 input itself (decode_attention_batch4_q8_fp8kv_bf16_hd*).
 */
export function decodeAttnQuantFits(env: LaunchEnv, shape: StepShape, kvTag: string | undefined, headDim: number, attnQkv: boolean): boolean {
  return !!env.fp8DecodeAttnQuant && shape.attention.kind === "decode" && attnQkv && env.elem === "bf16" && kvTag === "fp8kv_" &&
    hasTiledAttention(headDim) && (headDim === 64 || headDim === 128) && !!env.batchAttention && !!env.batchAttention2 && !!env.batchAttention4 &&
    shape.numTokens > GEMV_MAX_ROWS;
}

/**
 * Plans paged-attention op `i` of the step into `c.out`. `q8` (fp8AttnQuant; only where prefillOnFlashWg holds, or with
 * fp8DecodeAttnQuant where decodeAttnQuantFits holds): the next FP8 linear's e4m3 rows, row scales and static scale,
 * written by flash_prefill_wg_q8_bf16_hd* / decode_attention_batch4_q8_fp8kv_bf16_hd* instead of the output.
 */
export function planAttention(c: StepCtx, op: Extract<Op, { type: "paged_attention" }>, i: number, q8?: readonly [bigint, bigint, number]): void {
  const { env, shape, T, S, R, buf, kvLayer, kvFp8, kvTag, kvScalesOf, fuse, out, k } = c;
  const a = env.plan.attributes, elem = env.elem, io = env.io;
  const pruned = c.pruned();
  // Pruned: each logits row is a one-token chunk past its cached prefix (staged positions / sequence starts).
  const geo = [
    buf(op.q),
    buf(op.out),
    kvLayer(op.layer),
    pruned ? io.logitPositions : io.positions,
    pruned ? io.logitSeqStarts : io.seqStarts,
    io.blockTables,
  ] as const;
  const Tq = pruned ? R : T;
  // The prefill kernels' arguments after the geometry: query rows, sequences, heads, cache layout, scale, window.
  const prefillArgs = [Tq, S, op.numHeads, op.numKvHeads, env.tokensPerBlock, env.blockStride, op.scale, op.window] as const;
  const att = shape.attention;
  if (kvFp8 && (att.kind === "generic" || !hasTiledAttention(op.headDim))) {
    throw new InternalError(`launch plan: a quantized KV cache needs head dim 32, 64 or 128, got ${op.headDim}`);
  }
  if (att.kind === "generic" || !hasTiledAttention(op.headDim)) {
    k(i, `paged_attention_generic_${elem}`, [cdiv(op.numHeads, 4), Tq, 1], 128, [
      ...geo,
      Tq,
      S,
      op.numHeads,
      op.numKvHeads,
      op.headDim,
      env.tokensPerBlock,
      env.blockStride,
      op.scale,
      op.window,
    ]);
  } else if (att.kind === "decode" && fuse?.attnQkv.has(i)) {
    const group = op.numHeads / op.numKvHeads;
    // More than GEMV_MAX_ROWS sequences: the tensor-core kernel (16 query heads per block; hd128 2 warps);
    // GQA groups of ≤ 4 heads: the _g4 instantiation (half the per-head registers, same sums).
    // batchAttention2: decode_attention_batch2 (per-warp K/V streams; FP8 caches: its _fp8kv_ entry point).
    // A quantized cache elsewhere (fp8DecodeAttention): decode_attention's _fp8kv_ / _int8kv_ entry points.
    const batch = !!env.batchAttention && T > GEMV_MAX_ROWS && (!kvFp8 || (kvTag === "fp8kv_" && !!env.batchAttention2));
    const batch2 = batch && !!env.batchAttention2;
    // batchAttention4: decode_attention_batch4 (keys on the mma rows, 8 query heads a block; other bits than batch2, so every
    // such step takes it, whatever its size).
    const batch4 = batch2 && !!env.batchAttention4 && (op.headDim === 64 || op.headDim === 128);
    // batchAttention2Wide: decode_attention_batch2w for steps of hundreds of sequences (bf16 cache, head dim 128; batch2's bits).
    const wide = batch2 && !batch4 && !kvFp8 && op.headDim === 128 && !!env.batchAttention2Wide && T >= BATCH2_WIDE_MIN_ROWS;
    if (kvFp8 && !batch2 && !env.fp8DecodeAttention) {
      throw new InternalError("launch plan: a fused decode attention over a quantized KV cache needs batchAttention2 or fp8DecodeAttention");
    }
    // decodeSplitK: split-K flash decoding (att from decodeSkGeometry: z = the grid's splits, splitSize = the split target); bf16
    // caches, and e4m3 caches with fp8DecodeSk (decode_attention_sk_fp8kv).
    const sk = !batch && (!kvFp8 || (!!env.fp8DecodeSk && kvTag === "fp8kv_")) && !!env.decodeSplitK && att.sk !== undefined;
    // Steps of BATCH4_WIDE_MIN_ROWS+ sequences over a bf16 cache at head dim 128: batch4w (the same bits, more blocks an SM).
    const wide4 = batch4 && !kvFp8 && op.headDim === 128 && T >= BATCH4_WIDE_MIN_ROWS;
    // fp8DecodeAttnQuant (decodeAttnQuantFits): batch4 over an e4m3 cache writes o_proj's e4m3 rows (q8) instead of out.
    if (q8 && !(batch4 && !wide4 && kvFp8 && kvTag === "fp8kv_")) {
      throw new InternalError(`launch plan: op ${i}: an FP8-output decode attention needs decode_attention_batch4 over an e4m3 cache`);
    }
    const name = batch4
      ? `decode_attention_batch4${wide4 ? "w" : env.batchAttention4X ? "x" : ""}_${q8 ? "q8_" : ""}${kvFp8 ? "fp8kv_" : ""}bf16_hd${op.headDim}`
      : wide
      ? `decode_attention_batch2w_bf16_hd${op.headDim}`
      : batch2
      ? `decode_attention_batch2_${kvFp8 ? "fp8kv_" : ""}bf16_hd${op.headDim}`
      : batch
      ? `decode_attention_batch_bf16_hd${op.headDim}`
      : sk
      ? `decode_attention_sk_${kvFp8 ? kvTag : ""}bf16_hd${op.headDim}`
      : `decode_attention_${group <= 4 ? "g4_" : ""}${kvFp8 ? kvTag : ""}bf16_hd${op.headDim}`;
    const grid = [
      op.numKvHeads * cdiv(group, batch4 ? BATCH_ATTENTION4_ROWS : batch ? BATCH_ATTENTION_ROWS : 8),
      T,
      sk ? att.sk!.numSplits : att.numSplits,
    ] as const;
    const threads = batch4
      ? batchAttention4Threads(op.headDim, kvFp8)
      : batch2
      ? batchAttention2Threads(op.headDim, kvFp8)
      : batch && op.headDim === 128
      ? 64
      : 128;
    k(i, name, grid, threads, [
      buf(fuse.attnQkv.get(i)!),
      q8 ? q8[0] : buf(op.out),
      kvLayer(op.layer),
      io.positions,
      io.seqStarts,
      io.blockTables,
      env.invFreq,
      a.rope.attentionScaling,
      env.partialO,
      env.partialML,
      env.decodeCounters!,
      T,
      S,
      op.numHeads,
      op.numKvHeads,
      env.tokensPerBlock,
      env.blockStride,
      op.scale,
      op.window,
      // decode_attention: the least keys per split (each token sizes its own splits from its span, daSplitKeys);
      // decode_attention_batch: the split size.
      // decode_attention_sk: the split target (each token's partition depends on its span and this only); over an e4m3
      // cache with fp8DecodeSkSmall, splits of at least 64 keys instead of 128.
      batch
        ? att.splitSize
        : sk
        ? decodeSkSplitArg(att.sk!.target, kvFp8 && env.fp8DecodeSkSmall ? FP8_DECODE_SK_SMALL_SPLIT : undefined)
        : Math.min(att.splitSize, DECODE_ATTENTION_MIN_SPLIT),
      0n,
      0n,
      ...(kvFp8 ? [kvScalesOf(op.layer)] : []),
      ...(q8 ? [q8[1], q8[2]] : []),
    ], sk ? (kvFp8 ? DECODE_SK_FP8_SMEM : DECODE_SK_SMEM) : 0);
  } else if (att.kind === "decode") {
    const group = op.numHeads / op.numKvHeads;
    k(i, `paged_attention_decode_${kvFp8 ? kvTag : ""}${elem}_hd${op.headDim}`, [op.numKvHeads * cdiv(group, 8), T, att.numSplits], 128, [
      ...geo,
      env.partialO,
      env.partialML,
      T,
      S,
      op.numHeads,
      op.numKvHeads,
      env.tokensPerBlock,
      env.blockStride,
      op.scale,
      op.window,
      att.splitSize,
      ...(kvFp8 ? [kvScalesOf(op.layer)] : []),
    ]);
    if (att.numSplits > 1) {
      k(i, `paged_attention_decode_reduce_${elem}`, [op.numHeads, T, 1], op.headDim, [
        env.partialO,
        env.partialML,
        buf(op.out),
        T,
        op.numHeads,
        op.headDim,
        att.numSplits,
      ]);
    }
  } else if (elem === "bf16" && (!kvFp8 || env.kvShadow) && flashPrefillGeometry(op.headDim)) {
    // A quantized cache (fp8FlashPrefill): the blocks the step attends dequantized into the bf16 shadow layer first
    // (every token's KV write of this layer is in by now), then the bf16 kernels read the shadow.
    let g = geo;
    const shadowed = kvFp8 && shadowRope(c, op.headDim);
    // fp8FreshPrompt: a new prompt's rows are all the step's own (rope_kv_write_shadow_* wrote them): nothing to convert.
    if (kvFp8 && !(shadowed && env.fp8FreshPrompt && shape.freshPrompts)) {
      k(i, `kv_dequant_${shadowed ? "prefix_" : ""}${kvTag}bf16`, [env.blockStride, S, KV_DEQUANT_SPLITS], 256, [
        kvLayer(op.layer),
        env.kvShadow!,
        io.positions,
        io.seqStarts,
        io.blockTables,
        S,
        op.numKvHeads,
        op.headDim,
        env.tokensPerBlock,
        env.blockStride,
        kvScalesOf(op.layer),
      ]);
    }
    if (kvFp8) g = [geo[0], geo[1], env.kvShadow!, geo[3], geo[4], geo[5]] as const;
    const wg = env.wgmmaPrefill ? flashPrefillWgGeometry(op.headDim) : undefined;
    if (q8 && !wg) throw new InternalError(`launch plan: op ${i}: an FP8-output attention needs flash_prefill_wg`);
    if (wg) {
      out.push({
        kind: "kernel",
        op: i,
        kernel: `flash_prefill_wg${env.prefillTileScan ? "t" : ""}_${q8 ? "q8_" : ""}bf16_hd${op.headDim}`,
        // prefillTileScan: at most S query tiles of the step's longest sequence each (StepShape.maxSeqTokens; not past a
        // pruned step's cut, whose query rows are the logits rows), the kernel's bound otherwise; spare blocks exit.
        grid: [
          op.numHeads,
          Math.min(cdiv(Tq, wg.rows) + S, env.prefillTileScan && !pruned && shape.maxSeqTokens ? S * cdiv(shape.maxSeqTokens, wg.rows) : Infinity),
          1,
        ],
        block: wg.threads,
        args: [...g, ...prefillArgs, ...(q8 ?? [])],
        sharedBytes: wg.sharedMem,
      });
    } else {
      const fg = flashPrefillGeometry(op.headDim)!;
      k(i, `flash_prefill_bf16_hd${op.headDim}`, [op.numHeads, cdiv(Tq, fg.rows) + S, 1], fg.threads, [...g, ...prefillArgs]);
    }
  } else {
    const mma = elem === "bf16";
    const tileRows = mma ? 64 : 16;
    k(
      i,
      mma ? `paged_attention_prefill_mma_${kvFp8 ? kvTag : ""}bf16_hd${op.headDim}` : `paged_attention_prefill_f32_hd${op.headDim}`,
      [cdiv(Tq, tileRows) + S, op.numHeads, 1],
      128,
      [...geo, ...prefillArgs, ...(kvFp8 ? [kvScalesOf(op.layer)] : [])],
    );
  }
}
