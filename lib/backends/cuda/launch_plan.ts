/**
 * The CUDA launch plan of an engine step: every op of the engine plan turned into a kernel launch
 * (name, grid, block, arguments with resolved device addresses) or a cuBLASLt GEMM. Pure data and
 * arithmetic — no FFI — so the table can be built and checked on a machine without a GPU; the CUDA
 * session executes it eagerly (prefill, mixed steps) or captures it into a graph (decode buckets).
 * Kernel ABIs: lib/backends/cuda/kernels/README.md.
 */
import type { KernelParamKind } from "../../../ffi/shim.ts";
import type { Op } from "../../ir/network.ts";
import type { EnginePlan } from "../../ir/plan.ts";
import { planDecodeFusion } from "./decode_fusion.ts";
import { planQuantLinear } from "./quant_launch.ts";
import { InternalError } from "../../util/errors.ts";

/** Activation element type of a CUDA engine. */
export type ElemType = "bf16" | "f32";

/** Most decode-attention splits per token (sizes the split-K workspace). */
export const MAX_DECODE_SPLITS = 64;

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
  paged_attention_decode: { file: "paged_attention.cu", params: [P, P, P, P, P, P, P, P, I, I, I, I, I, I, F, I, I] },
  paged_attention_decode_reduce: { file: "paged_attention.cu", params: [P, P, P, I, I, I, I] },
  paged_attention_prefill: { file: "paged_attention.cu", params: [P, P, P, P, P, P, I, I, I, I, I, I, F, I] },
  paged_attention_prefill_mma: { file: "paged_attention.cu", params: [P, P, P, P, P, P, I, I, I, I, I, I, F, I] },
  paged_attention_generic: { file: "paged_attention.cu", params: [P, P, P, P, P, P, I, I, I, I, I, I, I, F, I] },
  sample: { file: "sampling.cu", params: [P, I, P, P, P, P, P, P, P] },
  gemv: { file: "gemv.cu", params: [P, P, P, P, I, I, I] },
  gemv_fused: { file: "gemv.cu", params: [P, P, P, P, P, F, I, I, I, I, P, L] },
  gemv_fused_norm: { file: "gemv.cu", params: [P, P, P, P, P, F, I, I, I, I, P, L] },
  quant_gemv_u4: { file: "quant_gemv.cu", params: [P, P, P, P, P, P, I, I, I, I] },
  quant_gemv_u8: { file: "quant_gemv.cu", params: [P, P, P, P, P, P, I, I, I, I] },
  quant_dequant_u4: { file: "quant_gemv.cu", params: [P, P, P, P, I, I, I] },
  quant_dequant_u8: { file: "quant_gemv.cu", params: [P, P, P, P, I, I, I] },
  decode_attention: { file: "decode_attention.cu", params: [P, P, P, P, P, P, P, F, P, P, P, I, I, I, I, I, I, F, I, I, P, L] },
};

/** File and parameter kinds of a kernel entry point, e.g. "paged_attention_decode_bf16_hd64". */
export function kernelSignature(name: string): { readonly file: string; readonly params: readonly KernelParamKind[] } {
  const family = name.replace(/_(hd|m)\d+$/, "").replace(/_(bf16|f32)$/, "");
  const sig = FAMILIES[family];
  if (!sig) throw new InternalError(`launch plan: unknown kernel ${JSON.stringify(name)}`);
  return sig;
}

/** Device addresses of the step's input/output segments (see step_staging.ts). */
export interface StepIoPointers {
  readonly sampledIds: bigint;
  readonly temperature: bigint;
  readonly topK: bigint;
  readonly topP: bigint;
  readonly minP: bigint;
  readonly seed: bigint;
  readonly step: bigint;
  readonly logitRows: bigint;
  readonly seqStarts: bigint;
  readonly tokenIds: bigint;
  readonly positions: bigint;
  readonly blockTables: bigint;
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
  /** int32 [decodeCap × numKvHeads × ceil(G / 8)], zeroed once: decode_attention's split counters. */
  readonly decodeCounters?: bigint;
  /** bf16 [N, K] scratch of the largest quantized linear: prefill dequantizes into it, then cuBLASLt reads it. */
  readonly quantScratch?: bigint;
}

/** Most rows the skinny-GEMM kernel takes (its instantiations: 1, 2, 4, 8). */
export const GEMV_MAX_ROWS = 8;

/** How a step runs attention. */
export type AttentionChoice =
  | { readonly kind: "decode"; readonly numSplits: number; readonly splitSize: number }
  | { readonly kind: "prefill" }
  | { readonly kind: "generic" };

/** The shape of one step: packed tokens, sequences, logits rows, attention path, whether to sample. */
export interface StepShape {
  readonly numTokens: number;
  readonly numSeqs: number;
  readonly numRows: number;
  readonly attention: AttentionChoice;
  readonly sample: boolean;
}

export interface KernelLaunch {
  readonly kind: "kernel";
  /** Index of the plan op it implements. */
  readonly op: number;
  readonly kernel: string;
  readonly grid: readonly [number, number, number];
  readonly block: number;
  readonly args: readonly (bigint | number)[];
}

export interface GemmLaunch {
  readonly kind: "gemm";
  readonly op: number;
  /** D[m, n] = A[m, k] · B[n, k]ᵀ (+ bias[n]). */
  readonly m: number;
  readonly n: number;
  readonly k: number;
  readonly dtype: "bf16" | "fp32";
  readonly outDtype: "bf16" | "fp32";
  readonly a: bigint;
  readonly b: bigint;
  readonly d: bigint;
  readonly bias: bigint | null;
  /** Batch-invariant call: one pinned non-split-K algorithm for every m (CublasLtGemm). */
  readonly invariant: boolean;
}

export type Launch = KernelLaunch | GemmLaunch;

/**
 * Tensor parallelism: an `all_reduce` op rides as a launch of this name (args: buffer address,
 * element count); the CUDA session issues it through its NCCL communicator on the same stream, so
 * decode graphs capture it between the kernels.
 */
export const NCCL_ALL_REDUCE = "nccl_all_reduce";

const cdiv = (a: number, b: number): number => Math.ceil(a / b);

/** Head dims with tiled attention kernels (decode split-K, prefill mma/SIMT); others take the generic kernel. */
export function hasTiledAttention(headDim: number): boolean {
  return headDim === 32 || headDim === 64 || headDim === 128;
}

/** Keys per decode tile (splits are multiples of it). */
function decodeTile(elem: ElemType): number {
  return elem === "bf16" ? 64 : 32;
}

/**
 * Split-K geometry of decode attention for a step whose longest attended span is `maxLen`: at least
 * ~4 blocks per SM (kernels/README.md `choose_split`), at most MAX_DECODE_SPLITS splits.
 */
export function decodeSplit(numTokens: number, numKvHeads: number, group: number, maxLen: number, elem: ElemType, smCount: number): { numSplits: number; splitSize: number } {
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
export function graphDecodeSplit(bucket: number, numKvHeads: number, group: number, maxSeqLen: number, elem: ElemType, smCount: number): { numSplits: number; splitSize: number } {
  const tile = decodeTile(elem);
  const blocks = bucket * numKvHeads * cdiv(group, 8);
  const splits = Math.min(Math.max(1, cdiv(4 * smCount, blocks)), MAX_DECODE_SPLITS);
  const splitSize = Math.max(128, cdiv(cdiv(maxSeqLen, splits), tile) * tile);
  return { numSplits: cdiv(maxSeqLen, splitSize), splitSize };
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
  plan: EnginePlan, elem: ElemType, numTokens: number, numSeqs: number, maxAttended: number, decodeCap: number, smCount: number,
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

/** Activations an op reads (undefined: an op the decode fusion does not know; it then stays off). */
/**
 * Every launch of one step, in op order. Rows: "tokens" activations have `numTokens` rows, "seqs"
 * activations (and logits) `numRows`.
 */
export function planLaunches(env: LaunchEnv, shape: StepShape): Launch[] {
  const { plan, elem } = env;
  const a = plan.attributes;
  const T = shape.numTokens, S = shape.numSeqs, R = shape.numRows;
  const V = elem === "bf16" ? 8 : 4; // elements per 16-byte vector
  const gemmType = elem === "bf16" ? "bf16" : "fp32";
  const buf = (name: string): bigint => {
    const b = plan.buffers[name];
    if (!b) throw new InternalError(`launch plan: activation '${name}' has no buffer in the plan`);
    return env.arena + BigInt(b.offset);
  };
  const rowsOf = (name: string): number => (plan.buffers[name].rows === "tokens" ? T : R);
  const widthOf = (name: string): number => plan.buffers[name].width;
  const kvLayer = (l: number): bigint => env.kvBase + BigInt(l) * BigInt(env.kvLayerBytes);
  const io = env.io;
  const out: Launch[] = [];
  const k = (op: number, kernel: string, grid: readonly [number, number, number], block: number, args: (bigint | number)[]): void => {
    out.push({ kind: "kernel", op, kernel, grid, block, args });
  };
  // Decode steps of up to 8 sequences (one token each) fold norms, epilogues and RoPE into fewer launches.
  const fuse = !!env.fusedDecode && env.gemv && elem === "bf16" && T === S && T === R && shape.attention.kind === "decode" && env.decodeCounters !== undefined
    ? planDecodeFusion(plan, T, shape.attention.kind === "decode", (n) => n === a.logits, GEMV_MAX_ROWS)
    : undefined;
  plan.ops.forEach((op, i) => {
    if (fuse?.skip.has(i)) return;
    // A step with no logits rows (a prefill chunk that does not end its prompt) skips the row ops.
    if (R === 0 && (op.type === "gather_rows" || op.type === "sample" || ((op.type === "rmsnorm" || op.type === "linear" || op.type === "add") && rowsOf(op.x) === 0))) return;
    switch (op.type) {
      case "embedding":
        k(i, `embedding_${elem}`, [T, 1, 1], 256, [io.tokenIds, env.weight(op.table), buf(op.out), T, a.hiddenSize, a.vocabSize, 0n]);
        break;
      case "rmsnorm": {
        const rows = rowsOf(op.x);
        k(i, `rmsnorm_${elem}`, [rows, 1, 1], 256, [buf(op.x), env.weight(op.weight), buf(op.out), rows, widthOf(op.x), op.eps]);
        break;
      }
      case "add_rmsnorm": {
        const rows = rowsOf(op.x);
        if (fuse?.normOnly.has(i)) {
          k(i, `rmsnorm_${elem}`, [rows, 1, 1], 256, [buf(op.residual), env.weight(op.weight), buf(op.out), rows, widthOf(op.x), op.eps]);
          break;
        }
        k(i, `add_rmsnorm_${elem}`, [rows, 1, 1], 256, [buf(op.x), buf(op.residual), env.weight(op.weight), buf(op.out), rows, widthOf(op.x), op.eps]);
        break;
      }
      case "linear": {
        const rows = rowsOf(op.x);
        const isLogits = op.out === a.logits;
        const nrm = fuse?.norm.get(i), epi = fuse?.epilogue.get(i);
        // Fused decode: the lm_head also streams through gemv_fused (fp32 logits, mode 3): ~95% of the copy
        // bandwidth on llama-3.2-1b, where the pinned batch-invariant cuBLASLt algorithm took 2x longer.
        const logitsGemv = !!fuse && isLogits && !op.weightFormat && !op.lora && op.inFeatures % 8 === 0 && rows <= GEMV_MAX_ROWS;
        if (op.weightFormat) {
          planQuantLinear(op, i, rows, isLogits, env, T === S, buf, k, out, gemmType, GEMV_MAX_ROWS);
          break;
        }
        if (nrm || epi || logitsGemv) {
          const M = rows <= 1 ? 1 : rows <= 2 ? 2 : rows <= 4 ? 4 : 8;
          const mode = logitsGemv ? 3 : epi?.mode ?? 0;
          // One output row per warp, 8 warps per block (mode 2: 4 gate rows + their 4 up rows per block).
          const blocks = mode === 2 ? cdiv(op.outFeatures / 2, 4) : cdiv(op.outFeatures, 8);
          k(i, `${nrm ? "gemv_fused_norm" : "gemv_fused"}_bf16_m${M}`, [blocks, 1, 1], 256, [
            buf(nrm ? nrm.x : op.x), env.weight(op.weight), op.bias ? env.weight(op.bias) : 0n, logitsGemv ? env.logits : buf(epi ? epi.into : op.out),
            nrm ? env.weight(nrm.weight) : 0n, nrm ? nrm.eps : 0, rows, op.outFeatures, op.inFeatures, mode, 0n, 0n,
          ]);
          break;
        }
        // Decode-sized bf16 linears: one warp per output column streams the weight row once (the lm_head,
        // fp32 out, stays on cuBLASLt, which reaches the copy bandwidth on it).
        if (env.gemv && elem === "bf16" && !isLogits && rows <= GEMV_MAX_ROWS && op.inFeatures % 8 === 0 && (!env.batchInvariant || T === S)) {
          const M = rows <= 1 ? 1 : rows <= 2 ? 2 : rows <= 4 ? 4 : 8;
          k(i, `gemv_bf16_m${M}`, [cdiv(op.outFeatures, 8), 1, 1], 256, [buf(op.x), env.weight(op.weight), op.bias ? env.weight(op.bias) : 0n, buf(op.out), rows, op.outFeatures, op.inFeatures]);
          break;
        }
        // Batch-invariant: pinned non-split-K cuBLASLt algorithms, except decode steps too big for the
        // skinny-GEMM kernel (> 8 sequences), which keep the per-M heuristic (split-K) for throughput.
        const invariant = !!env.batchInvariant && !(T === S && T > GEMV_MAX_ROWS && !isLogits);
        out.push({
          kind: "gemm", op: i, m: rows, n: op.outFeatures, k: op.inFeatures, dtype: gemmType, outDtype: isLogits ? "fp32" : gemmType, invariant,
          a: buf(op.x), b: env.weight(op.weight), d: isLogits ? env.logits : buf(op.out), bias: op.bias ? env.weight(op.bias) : null,
        });
        break;
      }
      case "qk_norm":
        k(i, `qk_norm_${elem}`, [cdiv(op.numHeads + op.numKvHeads, 4), T, 1], 128, [
          buf(op.qkv), env.weight(op.qWeight), env.weight(op.kWeight), T, op.numHeads, op.numKvHeads, op.headDim, op.eps,
        ]);
        break;
      case "rope_kv_write":
        k(i, `rope_kv_write_${elem}`, [T, 1, 1], 128, [
          buf(op.qkv), buf(op.q), kvLayer(op.layer), io.positions, io.seqStarts, io.blockTables, env.invFreq, a.rope.attentionScaling,
          T, S, op.numHeads, op.numKvHeads, op.headDim, env.tokensPerBlock, env.blockStride,
        ]);
        break;
      case "paged_attention": {
        const geo = [buf(op.q), buf(op.out), kvLayer(op.layer), io.positions, io.seqStarts, io.blockTables] as const;
        const att = shape.attention;
        if (att.kind === "generic" || !hasTiledAttention(op.headDim)) {
          k(i, `paged_attention_generic_${elem}`, [cdiv(op.numHeads, 4), T, 1], 128, [
            ...geo, T, S, op.numHeads, op.numKvHeads, op.headDim, env.tokensPerBlock, env.blockStride, op.scale, op.window,
          ]);
        } else if (att.kind === "decode" && fuse?.attnQkv.has(i)) {
          const group = op.numHeads / op.numKvHeads;
          k(i, `decode_attention_bf16_hd${op.headDim}`, [op.numKvHeads * cdiv(group, 8), T, att.numSplits], 128, [
            buf(fuse.attnQkv.get(i)!), buf(op.out), kvLayer(op.layer), io.positions, io.seqStarts, io.blockTables, env.invFreq, a.rope.attentionScaling,
            env.partialO, env.partialML, env.decodeCounters!, T, S, op.numHeads, op.numKvHeads, env.tokensPerBlock, env.blockStride, op.scale, op.window,
            att.splitSize, 0n, 0n,
          ]);
        } else if (att.kind === "decode") {
          const group = op.numHeads / op.numKvHeads;
          k(i, `paged_attention_decode_${elem}_hd${op.headDim}`, [op.numKvHeads * cdiv(group, 8), T, att.numSplits], 128, [
            ...geo, env.partialO, env.partialML, T, S, op.numHeads, op.numKvHeads, env.tokensPerBlock, env.blockStride, op.scale, op.window, att.splitSize,
          ]);
          if (att.numSplits > 1) {
            k(i, `paged_attention_decode_reduce_${elem}`, [op.numHeads, T, 1], op.headDim, [env.partialO, env.partialML, buf(op.out), T, op.numHeads, op.headDim, att.numSplits]);
          }
        } else {
          const mma = elem === "bf16";
          const tileRows = mma ? 64 : 16;
          k(i, mma ? `paged_attention_prefill_mma_bf16_hd${op.headDim}` : `paged_attention_prefill_f32_hd${op.headDim}`, [cdiv(T, tileRows) + S, op.numHeads, 1], 128, [
            ...geo, T, S, op.numHeads, op.numKvHeads, env.tokensPerBlock, env.blockStride, op.scale, op.window,
          ]);
        }
        break;
      }
      case "silu_mul":
        k(i, `silu_mul_${elem}`, [cdiv(op.width, 256 * V), T, 1], 256, [buf(op.gateUp), buf(op.out), T, op.width]);
        break;
      case "add": {
        const n = rowsOf(op.x) * widthOf(op.x);
        k(i, `add_inplace_${elem}`, [Math.max(1, Math.min(cdiv(n, 256 * V), 8192)), 1, 1], 256, [buf(op.x), buf(op.out), BigInt(n)]);
        break;
      }
      case "all_reduce":
        k(i, NCCL_ALL_REDUCE, [1, 1, 1], 1, [buf(op.x), rowsOf(op.x) * plan.buffers[op.x].width]);
        break;
      case "gather_rows":
        k(i, `gather_rows_${elem}`, [R, 1, 1], 256, [buf(op.x), io.logitRows, buf(op.out), R, widthOf(op.x)]);
        break;
      case "sample":
        if (shape.sample) {
          k(i, "sample_f32", [R, 1, 1], 512, [env.logits, a.vocabSize, io.temperature, io.topK, io.topP, io.minP, io.seed, io.step, io.sampledIds]);
        }
        break;
    }
  });
  return out;
}
