/**
 * `CudaSession`: runs an engine plan on one GPU — the CUDA mirror of CpuSession. At creation the
 * weights are uploaded once (one allocation, 256-byte aligned tensors), the activation arena is one
 * allocation, and the step's inputs live in one staging region (pinned on the host, mirrored on the
 * device). A step packs its inputs, sends them with one host→device copy, runs the launch plan
 * (lib/backends/cuda/launch_plan.ts) and returns the sampled ids with one device→host copy; logits
 * come back only when asked for. Decode steps (one token per sequence) are padded to a batch-size
 * bucket and replayed as a captured CUDA graph — no JavaScript inside the kernel sequence. Speculative
 * verify steps are decode steps too (the executor packs a sequence's tokens as one-token sequences,
 * StepInputs.readsStepKv: those graphs write the step's KV ahead of the fused decode attention).
 * `CudaKvCache` is the paged KV cache: one allocation for every layer, plus a scratch block the
 * bucket's dummy tokens write to.
 */
import process from "node:process";
import { rmSync } from "node:fs";
import { lowbitScratchLayout, NVFP4_GEMV_BLOCKS_PER_SM } from "./lowbit_launch.ts";
import { nvfp4Tiles, nvfp4TilesFit } from "./nvfp4_tiles.ts";
import { CublasLtGemm } from "./gemm.ts";
import { FP8_GEMV1_BLOCKS_PER_SM, fp8ScratchLayout } from "./fp8_launch.ts";
import { compileKernelUnits, type CompileStats, kernelUnits, type PendingCompile, startKernelUnits, unitName } from "./compile_pool.ts";
import { plannedKernels } from "./kernel_set.ts";
import {
  type AttentionChoice,
  batchAttentionSplit,
  bucketFor,
  chooseAttention,
  DECODE_SK_ONE_SPLIT,
  decodeBuckets,
  decodeSkGeometry,
  type ElemType,
  flashPrefillGeometry,
  FP8_DECODE_SK_SMALL_SPLIT,
  GEMV_MAX_ROWS,
  graphDecodeSplit,
  hasTiledAttention,
  kernelSignature,
  type Launch,
  type LaunchEnv,
  MAX_DECODE_SPLITS,
  NCCL_ALL_REDUCE,
  planLaunches,
  sampleLaunches,
  type StepShape,
  usesBatchAttention,
} from "./launch_plan.ts";
import { freshPrompts, isDecodeStep, logitRowsIncreasing, maxSeqTokens, packStep, type StagingLayout, stagingLayout, stagingPointers } from "./step_staging.ts";
import { type LastLayerRows, planLastLayerRows } from "./last_layer_rows.ts";
import { type StagingSlot, StagingSlots } from "./step_slots.ts";
import { packForwardRows, stageInLaunch, stageOutLaunch } from "./stage_launch.ts";
import { maxVerifyTokens } from "./verify_cap.ts";
import { engineMaxSeqLen, type EngineView, type SessionBackend } from "../../ir/backend.ts";
import type { Op } from "../../ir/network.ts";
import type { EnginePlan } from "../../ir/plan.ts";
import { f32ToBf16 } from "../../util/dtype.ts";
import { DisposedError, FormatError, UnsupportedError, ValidationError } from "../../util/errors.ts";
import { CudaDevice } from "../../cuda/device.ts";
import { NcclCommunicator } from "../../cuda/nccl.ts";
import type { CudaGraph } from "../../cuda/graph.ts";
import type { DeviceBuffer, PinnedHostBuffer } from "../../cuda/memory.ts";
import type { CudaModule, Kernel } from "../../cuda/module.ts";
import type { Stream } from "../../cuda/stream.ts";
import { bytesPerBlock, type KvCache, type KvCacheGeometry } from "../../ir/kv_cache.ts";
import type { TokenMasks } from "../../ir/sampling.ts";
import { CudaLoraTables } from "./lora_tables.ts";
import { LaunchCache } from "./launch_cache.ts";
import { uploadWeights, type WeightUploadStats } from "./weight_upload.ts";
import { type CudaFlagInput, resolveCudaFlags } from "./session_flags.ts";
import { type ForwardedTokens, type PendingStep, type StepInputs, type StepOutputs, validateStep } from "../../ir/step_io.ts";

/**
 * Options of a CUDA session: the device, tensor-parallel membership, and the on/off switches of `CUDA_FLAGS`
 * (session_flags.ts: each documented there; a switch left out takes the table's default — the runtime's
 * session options apply the environment variables first, lib/runtime/session_options.ts).
 */
export interface CudaSessionOptions extends CudaFlagInput {
  /** Device ordinal. */
  readonly device: number;
  /** Tensor parallelism: this session is `rank` of a group joined through NCCL (the plan's all_reduce ops). */
  readonly nccl?: { readonly uniqueId: Uint8Array; readonly rank: number; readonly worldSize: number; readonly abortCell?: SharedArrayBuffer };
}

/** The defaults (what `Session` passes when nothing is set). */
export const DEFAULT_CUDA_SESSION_OPTIONS: CudaSessionOptions = Object.freeze({ device: 0 });

const ALIGN = 256;
/** prefillPlanCache: launch lists kept (prompt lengths / chunk shapes a serving process sees again). */
const LAUNCH_CACHE_LISTS = 16;
const alignUp = (n: number): number => Math.ceil(n / ALIGN) * ALIGN;

/**
 * A paged KV cache on the device: `[numLayers, numBlocks + 1, 2 (k, v), tokensPerBlock, numKvHeads,
 * headDim]` in the engine's activation type, in one allocation. Block `numBlocks` is the session's
 * scratch block (dummy decode tokens); `geometry.numBlocks` counts only the usable ones.
 */
/** Bytes of one block of the bf16 shadow layer (k and v; fp8FlashPrefill). */
function shadowBlockBytes(g: Omit<KvCacheGeometry, "numBlocks">): number {
  return 2 * g.tokensPerBlock * g.numKvHeads * g.headDim * 2;
}

export class CudaKvCache implements KvCache {
  /** Usable blocks, tokens per block, heads, and the element size (2 for bf16, 4 for f32). */
  readonly geometry: KvCacheGeometry;
  /** Bytes of one block across all layers. */
  readonly bytesPerBlock: number;
  /** The whole cache (every layer). */
  readonly buffer: DeviceBuffer;
  /** Bytes of one layer (numBlocks + 1 blocks). */
  readonly layerBytes: number;
  /** Bytes of one block of one layer (k and v). */
  readonly blockBytes: number;
  /** The block dummy tokens of a padded decode step write to. */
  readonly scratchBlock: number;
  /** A bf16 layer of the cache's shape (fp8FlashPrefill over a quantized cache: the dequantized blocks a prefill attends), or null. */
  readonly shadow: DeviceBuffer | null;
  readonly #stream: Stream;

  /** Use `session.createKvCache(numBlocks)`. `shadow`: also allocate a bf16 layer of the cache's shape. */
  constructor(device: CudaDevice, stream: Stream, geometry: KvCacheGeometry, shadow = false) {
    const g = geometry;
    this.geometry = Object.freeze({ ...g });
    this.blockBytes = 2 * g.tokensPerBlock * g.numKvHeads * g.headDim * g.elementBytes;
    this.bytesPerBlock = bytesPerBlock(g) + (shadow ? shadowBlockBytes(g) : 0);
    this.layerBytes = (g.numBlocks + 1) * this.blockBytes;
    this.scratchBlock = g.numBlocks;
    this.#stream = stream;
    this.buffer = device.alloc(g.numLayers * this.layerBytes);
    this.buffer.fill(0, { stream });
    this.shadow = shadow ? device.alloc((g.numBlocks + 1) * shadowBlockBytes(g)) : null;
  }

  /** Device bytes held. */
  get bytes(): number {
    return this.buffer.byteLength + (this.shadow?.byteLength ?? 0);
  }

  /** Copies the KV of each `src` block into its `dst` block in every layer (copy-on-write), on the session's stream. */
  copyBlocks(copies: readonly (readonly [number, number])[]): void {
    const n = this.geometry.numBlocks;
    for (const [src, dst] of copies) {
      if (!(src >= 0 && src < n && dst >= 0 && dst < n)) {
        throw new ValidationError(`CudaKvCache.copyBlocks: block copy ${src} → ${dst} outside [0, ${n})`, "copies", [src, dst]);
      }
      for (let l = 0; l < this.geometry.numLayers; l++) {
        const base = l * this.layerBytes;
        this.buffer.copyFromDevice(this.buffer, this.blockBytes, {
          srcOffset: base + src * this.blockBytes,
          dstOffset: base + dst * this.blockBytes,
          stream: this.#stream,
        });
      }
    }
  }

  /** Frees the device memory. Idempotent. */
  dispose(): void {
    this.buffer.dispose();
    this.shadow?.dispose();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}

/** CUDA's limit on a launch's grid y (and z) dimension: the most tokens one step's row kernels take. */
export const MAX_GRID_Y = 65535;

/** A kernel load in progress: the units of the kernels asked for, those not loaded yet, and their compile. */
interface KernelLoad {
  readonly all: ReturnType<typeof kernelUnits>;
  readonly units: ReturnType<typeof kernelUnits>;
  readonly pending: PendingCompile;
}

/**
 * One engine on one GPU. Built by `Session.fromSerializedEngine(engine, { backend: "cuda" })`.
 *
 * @example
 * ```ts
 * using session = Session.fromSerializedEngine(engine, { backend: "cuda" });
 * const kv = session.createKvCache(256);
 * session.run(inputs, { sampledIds }, kv);
 * ```
 */
export class CudaSession implements SessionBackend {
  readonly backend = "cuda" as const;
  readonly plan: EnginePlan;
  readonly maxSeqLen: number;
  readonly tokensPerBlock: number;
  readonly elem: ElemType;
  readonly device: CudaDevice;
  /** Largest pure-decode step (sequences) the split-K workspace and the decode graphs serve. */
  readonly decodeCap: number;
  /** Decode-graph batch-size buckets. */
  readonly buckets: readonly number[];
  readonly cudaGraphs: boolean;
  readonly gemv: boolean;
  readonly batchInvariant: boolean;
  /** Fused decode steps launch their kernels with programmatic dependent launch (asked for and supported). */
  readonly pdl: boolean;
  readonly quantPdl: boolean;
  /** CudaSessionOptions.batchAttention. */
  readonly batchAttention: boolean;
  /** CudaSessionOptions.batchAttention2. */
  readonly batchAttention2: boolean;
  /** CudaSessionOptions.batchAttention2Wide (with batchAttention2). */
  readonly batchAttention2Wide: boolean;
  /** CudaSessionOptions.batchAttention4 (with batchAttention2). */
  readonly batchAttention4: boolean;
  /** CudaSessionOptions.batchAttention4X (with batchAttention4). */
  readonly batchAttention4X: boolean;
  /** CudaSessionOptions.fp8FastAccum. */
  readonly fp8FastAccum: boolean;
  /** CudaSessionOptions.fp8FusedQuant. */
  readonly fp8FusedQuant: boolean;
  /** CudaSessionOptions.fp8Pdl. */
  readonly fp8Pdl: boolean;
  /** CudaSessionOptions.fp8Gemv1. */
  readonly fp8Gemv1: boolean;
  /** CudaSessionOptions.fp8GemvRow / fp8GemvRowNorm. */
  readonly fp8GemvRow: boolean;
  readonly fp8GemvRowNorm: boolean;
  /** CudaSessionOptions.fp8DecodeSkSmall. */
  readonly fp8DecodeSkSmall: boolean;
  /** CudaSessionOptions.fp8DecodeSk. */
  readonly fp8DecodeSk: boolean;
  /** CudaSessionOptions.fp8ShadowRope. */
  readonly fp8ShadowRope: boolean;
  /** CudaSessionOptions.fp8GemmResidual. */
  readonly fp8GemmResidual: boolean;
  /** CudaSessionOptions.fp8FreshPrompt. */
  readonly fp8FreshPrompt: boolean;
  /** CudaSessionOptions.fp8FlatQuant. */
  readonly fp8FlatQuant: boolean;
  /** CudaSessionOptions.fp8AttnQuant. */
  readonly fp8AttnQuant: boolean;
  /** CudaSessionOptions.fp8FastSilu. */
  readonly fp8FastSilu: boolean;
  /** CudaSessionOptions.wgmmaPrefill, on an sm_90 device. */
  readonly wgmmaPrefill: boolean;
  /** CudaSessionOptions.decodeSplitK. */
  readonly decodeSplitK: boolean;
  /** CudaSessionOptions.fp8DecodeAttention. */
  readonly fp8DecodeAttention: boolean;
  /** CudaSessionOptions.fp8FlashPrefill, for an engine with a quantized KV cache and head dim 64 / 128 (its caches hold a bf16 shadow layer). */
  readonly fp8FlashPrefill: boolean;
  /** CudaSessionOptions.gemvSplitK. */
  readonly gemvSplitK: boolean;
  /** CudaSessionOptions.decodeLogitsTuned. */
  readonly decodeLogitsTuned: boolean;
  /** CudaSessionOptions.pruneLastLayer, where the plan allows it (planLastLayerRows). */
  readonly pruneLastLayer: boolean;
  /** CudaSessionOptions.quantGemm. */
  readonly quantGemm: boolean;
  /** CudaSessionOptions.graphSplits. */
  readonly graphSplits: boolean;
  /** CudaSessionOptions.decodeSkOneSplit (off for a quantized KV cache). */
  readonly decodeSkOneSplit: boolean;
  /** CudaSessionOptions.quantTailNorm. */
  readonly quantTailNorm: boolean;
  /** CudaSessionOptions.nvfp4Mma. */
  readonly nvfp4Mma: boolean;
  /** CudaSessionOptions.nvfp4GemvK32. */
  readonly nvfp4GemvK32: boolean;
  /** CudaSessionOptions.nvfp4NormFast. */
  readonly nvfp4NormFast: boolean;
  /** CudaSessionOptions.nvfp4ActLaunch. */
  readonly nvfp4ActLaunch: boolean;
  /** CudaSessionOptions.fp8DecodeAttnQuant. */
  readonly fp8DecodeAttnQuant: boolean;
  /** CudaSessionOptions.prefillTileScan. */
  readonly prefillTileScan: boolean;
  /** CudaSessionOptions.eagerBucketGemm. */
  readonly eagerBucketGemm: boolean;
  /** CudaSessionOptions.zeroCopyStaging (stage_launch.ts). */
  readonly zeroCopyStaging: boolean;
  /** CudaSessionOptions.prefillPlanCache: eager steps' launch lists by shape (null: off). */
  readonly #launchCache: LaunchCache | null;
  /**
   * CudaSessionOptions.prefillGraphs: the CUDA graph of each cached eager (prefill / mixed) launch list, least recently
   * used first; null: the list was run once, not captured yet. Null map: off.
   */
  readonly #prefillGraphs: Map<readonly Launch[], CudaGraph | null> | null;
  /** CudaSessionOptions.gemmResidual. */
  readonly gemmResidual: boolean;
  /** CudaSessionOptions.gemvXPre. */
  readonly gemvXPre: boolean;
  /** CudaSessionOptions.prefillPdl. */
  readonly prefillPdl: boolean;
  /** CudaSessionOptions.batchDecodePdl. */
  readonly batchDecodePdl: boolean;
  /** CudaSessionOptions.quantGemvFast. */
  readonly quantGemvFast: boolean;
  /** CudaSessionOptions.quantGemvPairX. */
  readonly quantGemvPairX: boolean;
  /** CudaSessionOptions.quantGemvPairDown. */
  readonly quantGemvPairDown: boolean;
  /** How the planned kernels were compiled at creation (units, cache hits, workers, wall time). */
  readonly kernelCompile: CompileStats;

  readonly #stream: Stream;
  readonly #gemm: CublasLtGemm;
  /** Tensor parallelism: this rank's NCCL communicator on #stream (null for one rank). */
  #comm: NcclCommunicator | null = null;
  readonly #modules = new Map<string, CudaModule>();
  readonly #kernels = new Map<string, Kernel>();
  /** Dynamic shared memory each kernel has been allowed above the 48 KiB default (cuFuncSetAttribute). */
  readonly #sharedAllowed = new Map<string, number>();
  readonly #weights: DeviceBuffer;
  /** How the weights went up (bytes, ms, pinned staging or not): LLM.loadStats reports it. */
  readonly weightUpload: WeightUploadStats;
  readonly #weightOffsets = new Map<string, number>();
  /** Quantized linears' packed weights, zero points and f32 scales: uploaded as stored (no dtype conversion). */
  readonly #rawWeights = new Set<string>();
  /** nvfp4Mma: NVFP4 codes and block scales uploaded in the tiled layout (by either tensor's name). */
  readonly #nvfp4Tiled = new Map<string, { readonly weight: string; readonly scales: string; readonly n: number; readonly k: number }>();
  /** The tiled bytes of a pair's other tensor, made with the first one. */
  readonly #nvfp4TiledBytes = new Map<string, Uint8Array>();
  /** bf16 [N, K] of the largest quantized linear (prefill dequantizes into it); null without quantized linears. */
  #quantScratch: DeviceBuffer | null = null;
  /** FP8 linears' prefill scratch (quantized rows + row scales, fp8_launch.ts); null without FP8 linears. */
  #fp8Scratch: DeviceBuffer | null = null;
  #lowbitScratch: DeviceBuffer | null = null;
  /** Last-layer pruning: the plan's and its gather scratch (pruneLastLayer); null when off. */
  #lastRows: { readonly plan: LastLayerRows; readonly scratch: DeviceBuffer } | null = null;
  readonly #arena: DeviceBuffer;
  readonly #logits: DeviceBuffer; // [maxSeqs, vocab] f32
  readonly #invFreq: DeviceBuffer; // [headDim / 2] f64
  /** A quantized KV cache's f32 scales [numLayers, 2, numKvHeads] (plan.attributes.kvCache); null for a bf16/f32 cache. */
  #kvScales: DeviceBuffer | null = null;
  readonly #partialO: DeviceBuffer;
  readonly #partialML: DeviceBuffer;
  readonly #decodeCounters: DeviceBuffer; // int32 split counters of decode_attention (zero between launches)
  /** Byte offset in #decodeCounters of quant_gemv_fused_addnorm's sums of squares (LaunchEnv.quantNormScratch). */
  #normScratchOffset = 0;
  readonly #layout: StagingLayout;
  /** Pinned staging, two slots (a step packs while the one launched before it runs); #io mirrors it on the device. */
  readonly #slots: StagingSlots;
  readonly #io: DeviceBuffer;
  /** The step `launch` enqueued last (forwardedTokens may read its sampled ids); null after a `run`. */
  #launched: PendingStep | null = null;
  /** Logits rows of #launched. */
  #launchedRows = 0;
  /** Decode graphs by graphKey(bucket, with the sampler (not masked steps), speculative verify step). */
  readonly #graphs = new Map<number, CudaGraph>();
  /** Token masks of guided decoding, [maxSeqs, ceil(vocab / 32)] u32, pinned and on the device: allocated on first use. */
  #maskHost: PinnedHostBuffer | null = null;
  /** Resident LoRA adapters on the device (made on the first step with adapters). */
  #lora: CudaLoraTables | null = null;
  /** Decode graphs of LoRA steps (unfused, with lora_shrink / lora_expand), made for the tables of generation #loraGraphsOf. */
  readonly #loraGraphs = new Map<number, CudaGraph>();
  #loraGraphsOf = -1;
  #maskDev: DeviceBuffer | null = null;
  #graphKv: CudaKvCache | null = null;
  readonly #attn: Extract<Op, { type: "paged_attention" }> | undefined;
  #disposed = false;

  constructor(readonly engine: EngineView, options: CudaSessionOptions = DEFAULT_CUDA_SESSION_OPTIONS) {
    const plan = engine.plan;
    this.plan = plan;
    if (plan.elementBytes === 4) this.elem = "f32";
    else if (plan.elementBytes === 2 && engine.config.dtype === "bfloat16") this.elem = "bf16";
    else {
      throw new ValidationError(
        `Session: the CUDA backend runs float32 and bfloat16 engines; this one is ${engine.config.dtype} with ${plan.elementBytes}-byte activations`,
        "dtype",
        engine.config.dtype,
      );
    }
    if (plan.maxTokens > MAX_GRID_Y) {
      // silu_mul, qk_norm, the generic attention and others launch one block row per token (grid y).
      throw new ValidationError(
        `Session: a CUDA engine runs at most ${MAX_GRID_Y} tokens per step (one block row per token; CUDA's grid y limit), ` +
          `this engine was built with maxNumTokens ${plan.maxTokens}: rebuild with BuildConfig.maxNumTokens ≤ ${MAX_GRID_Y}`,
        "BuildConfig.maxNumTokens",
        plan.maxTokens,
      );
    }
    this.maxSeqLen = engineMaxSeqLen(engine);
    this.tokensPerBlock = engine.config.build.tokensPerBlock;
    const build = engine.config.build;
    this.decodeCap = Math.min(plan.maxTokens, plan.maxSeqs, build.maxBatchSize * build.maxBeamWidth);
    this.buckets = decodeBuckets(this.decodeCap);
    const f = resolveCudaFlags(options);
    this.cudaGraphs = f.cudaGraphs;
    this.gemv = f.gemv;
    this.batchInvariant = f.batchInvariant;
    this.batchAttention = f.batchAttention;
    this.batchAttention2 = f.batchAttention2;
    this.batchAttention2Wide = f.batchAttention2Wide && f.batchAttention2;
    this.batchAttention4 = f.batchAttention4 && f.batchAttention2;
    this.batchAttention4X = f.batchAttention4X && this.batchAttention4;
    this.fp8FastAccum = f.fp8FastAccum;
    this.fp8FusedQuant = f.fp8FusedQuant;
    this.fp8Pdl = f.fp8Pdl;
    this.fp8Gemv1 = f.fp8Gemv1;
    this.fp8GemvRow = f.fp8GemvRow;
    this.fp8GemvRowNorm = f.fp8GemvRowNorm;
    this.fp8DecodeSkSmall = f.fp8DecodeSkSmall;
    this.fp8DecodeSk = f.fp8DecodeSk;
    this.fp8ShadowRope = f.fp8ShadowRope;
    this.fp8GemmResidual = f.fp8GemmResidual;
    this.fp8FreshPrompt = f.fp8FreshPrompt;
    this.fp8FlatQuant = f.fp8FlatQuant;
    this.fp8AttnQuant = f.fp8AttnQuant;
    this.fp8FastSilu = f.fp8FastSilu;
    this.decodeSplitK = f.decodeSplitK;
    this.fp8DecodeAttention = f.fp8DecodeAttention;
    this.fp8FlashPrefill = f.fp8FlashPrefill && !!plan.attributes.kvCache && flashPrefillGeometry(plan.attributes.headDim) !== undefined;
    this.gemvSplitK = f.gemvSplitK;
    this.decodeLogitsTuned = f.decodeLogitsTuned;
    this.quantGemm = f.quantGemm;
    this.graphSplits = f.graphSplits;
    this.decodeSkOneSplit = f.decodeSkOneSplit && !plan.attributes.kvCache;
    this.quantTailNorm = f.quantTailNorm;
    this.nvfp4Mma = f.nvfp4Mma;
    this.nvfp4GemvK32 = f.nvfp4GemvK32;
    this.nvfp4NormFast = f.nvfp4NormFast;
    this.nvfp4ActLaunch = f.nvfp4ActLaunch;
    this.fp8DecodeAttnQuant = f.fp8DecodeAttnQuant;
    this.prefillTileScan = f.prefillTileScan;
    this.eagerBucketGemm = f.eagerBucketGemm;
    this.zeroCopyStaging = f.zeroCopyStaging;
    this.#launchCache = f.prefillPlanCache ? new LaunchCache(LAUNCH_CACHE_LISTS) : null;
    // Graphs need the cache's stable lists (a list's identity is its graph's key) and sessions that use graphs at all.
    this.#prefillGraphs = f.prefillGraphs && f.prefillPlanCache && f.cudaGraphs ? new Map() : null;
    this.gemmResidual = f.gemmResidual;
    this.gemvXPre = f.gemvXPre;
    this.quantGemvFast = f.quantGemvFast;
    this.quantGemvPairX = f.quantGemvPairX;
    this.quantGemvPairDown = f.quantGemvPairDown;
    this.#attn = plan.ops.find((o) => o.type === "paged_attention") as Extract<Op, { type: "paged_attention" }> | undefined;
    const a = plan.attributes;
    if (a.headDim % 2 !== 0 || a.headDim > 256) {
      throw new ValidationError(`Session: the CUDA kernels take even head dims up to 256, got ${a.headDim}`, "headDim", a.headDim);
    }

    this.device = CudaDevice.open(options.device);
    try {
      const d = this.device;
      this.pdl = f.pdl && d.supportsPdl;
      this.quantPdl = this.pdl && f.quantPdl;
      this.prefillPdl = f.prefillPdl && d.supportsPdl;
      this.batchDecodePdl = f.batchDecodePdl && d.supportsPdl;
      this.wgmmaPrefill = (f.wgmmaPrefill ?? (this.#attn?.headDim === 64 || this.#attn?.headDim === 128)) && d.arch === "sm_90";
      this.#stream = d.createStream();
      if (plan.ops.some((o) => o.type === "all_reduce" || o.type === "all_gather") && !options.nccl) {
        throw new ValidationError(
          "Session: this engine is one rank of a tensor-parallel engine; run it through the tensor-parallel session (NCCL is needed)",
          "nccl",
        );
      }
      if (plan.ops.some((o) => o.type === "all_gather")) {
        throw new ValidationError(
          'Session: the CUDA backend takes tensor-parallel engines with a replicated LM head (build them with backend "cuda")',
          "backend",
        );
      }
      if (options.nccl) this.#comm = NcclCommunicator.init(d, this.#stream, { ...options.nccl, dtype: this.elem === "bf16" ? "bfloat16" : "float32" });
      // cuBLASLt algorithms: batch-invariant (one non-split-K algorithm per (n, k) for every M), or else
      // timed per shape on first use, kept in the on-disk timing cache (GPU + driver + cuBLASLt).
      this.#gemm = new CublasLtGemm(d, {
        tune: f.gemmTune,
        ...(f.gemmTuneWide ? { tuneCandidates: 32 } : {}),
        batchInvariant: this.batchInvariant,
        invariantFp8Buckets: f.fp8InvariantBuckets,
        invariantFixedGemm: f.invariantFixedGemm,
        invariantWideSearch: f.invariantWideSearch,
      });
      // Quantized linears (issue 12): packed weights, zero points and f32 scales stay as stored; the
      // largest one's bf16 [N, K] is the prefill scratch (dequantize, then cuBLASLt).
      let scratchBytes = 0;
      for (const o of plan.ops) {
        if (o.type !== "linear" || !o.weightFormat) continue;
        if (this.elem !== "bf16") {
          throw new ValidationError(
            `Session: quantized linears run on the CUDA backend in bfloat16 engines only; this one is ${engine.config.dtype}`,
            "dtype",
            engine.config.dtype,
          );
        }
        for (const t of [o.weight, o.weightFormat.scales, o.weightFormat.zeros, o.weightFormat.preQuantScale]) if (t) this.#rawWeights.add(t);
        if (this.nvfp4Mma && o.weightFormat.format === "nvfp4" && nvfp4TilesFit(o.outFeatures, o.inFeatures)) {
          const pair = { weight: o.weight, scales: o.weightFormat.scales, n: o.outFeatures, k: o.inFeatures };
          this.#nvfp4Tiled.set(o.weight, pair).set(o.weightFormat.scales, pair);
        }
        if (o.weightFormat.format !== "fp8_e4m3") scratchBytes = Math.max(scratchBytes, o.outFeatures * o.inFeatures * 2);
      }
      if (scratchBytes > 0) this.#quantScratch = d.alloc(scratchBytes);
      const lowbit = lowbitScratchLayout(plan); // int8 / int4 / NVFP4 linears: quantized activation rows (lowbit_launch.ts)
      if (lowbit) this.#lowbitScratch = d.alloc(lowbit.bytes);
      const fp8 = fp8ScratchLayout(plan);
      if (fp8) {
        const cc = d.computeCapability;
        if (cc.major * 10 + cc.minor < 89) {
          throw new ValidationError(
            `Session: FP8 engines need compute capability 8.9+ (FP8 tensor cores); ${d.name} is ${cc.major}.${cc.minor}`,
            "device",
            d.name,
          );
        }
        this.#fp8Scratch = d.alloc(fp8.bytes);
      }
      // Weights: one allocation, each tensor 256-byte aligned, converted to the activation type.
      const names = engine.tensorNames();
      let total = 0;
      for (const n of names) {
        this.#weightOffsets.set(n, total);
        total += alignUp(this.#elementsOf(n) * (this.#rawWeights.has(n) ? (engine.tensorInfo(n).dtype === "float32" ? 4 : 1) : plan.elementBytes));
      }
      this.#weights = d.alloc(Math.max(total, ALIGN));
      const want = this.elem === "bf16" ? "bfloat16" : "float32";
      const slices = names.map((n) => ({
        name: n,
        offset: this.#weightOffsets.get(n)!,
        direct: !this.#nvfp4Tiled.has(n) && (this.#rawWeights.has(n) || engine.tensorInfo(n).dtype === want),
      }));
      this.#arena = d.alloc(Math.max(plan.arenaBytes, ALIGN)); // the plan's activations
      this.#logits = d.alloc(plan.maxSeqs * a.vocabSize * 4); // [maxSeqs, vocab] f32
      this.#invFreq = d.alloc(Math.max(8 * a.rope.invFreq.length, 8)); // [headDim / 2] f64
      this.#invFreq.copyFromHost(Float64Array.from(a.rope.invFreq));
      if (a.kvCache) {
        // Quantized KV cache (issue 14): FP8 / INT8 bytes written by rope_kv_write_{fp8kv|int8kv}, read by the
        // _fp8kv / _int8kv attention kernels.
        const why = this.elem !== "bf16"
          ? `a ${a.kvCache.quantAlgo} KV cache needs a bfloat16 engine (this one is ${engine.config.dtype})`
          : !hasTiledAttention(a.headDim)
          ? `a ${a.kvCache.quantAlgo} KV cache needs head dim 32, 64 or 128 (this engine's is ${a.headDim})`
          : null;
        if (why) throw new UnsupportedError(`Session: ${why}`, "kvCacheQuantAlgo", a.kvCache.quantAlgo);
        this.#kvScales = d.alloc(a.kvCache.scales.length * 4);
        this.#kvScales.copyFromHost(Float32Array.from(a.kvCache.scales)); // checked by the plan's validation
      }
      // Split-K workspace of decode attention: f32 [decodeCap, numHeads, MAX_DECODE_SPLITS, headDim] and [..., 2].
      const nH = this.#attn?.numHeads ?? 1;
      const tiled = hasTiledAttention(a.headDim);
      this.#partialO = d.alloc(tiled ? this.decodeCap * nH * MAX_DECODE_SPLITS * a.headDim * 4 : ALIGN);
      this.#partialML = d.alloc(tiled ? this.decodeCap * nH * MAX_DECODE_SPLITS * 2 * 4 : ALIGN);
      const nKV = this.#attn?.numKvHeads ?? 1;
      // + past them (at #normScratchOffset): quant_gemv_fused_addnorm's tile sums of squares, f32 [8, hiddenSize / 16].
      this.#normScratchOffset = Math.ceil((this.decodeCap * nKV * Math.ceil(nH / nKV / 8) * 4) / 256) * 256;
      this.#decodeCounters = d.alloc(Math.max(this.#normScratchOffset + GEMV_MAX_ROWS * Math.ceil(a.hiddenSize / 16) * 4, ALIGN));
      this.#decodeCounters.fill(0);
      this.#layout = stagingLayout(plan.maxTokens, plan.maxSeqs, Math.ceil(this.maxSeqLen / this.tokensPerBlock));
      const pruning = f.pruneLastLayer ? planLastLayerRows(plan, plan.maxSeqs, f.fp8PruneLastLayer) : undefined;
      if (pruning) this.#lastRows = { plan: pruning, scratch: d.alloc(pruning.scratchBytes) };
      this.pruneLastLayer = this.#lastRows !== null;
      this.#slots = new StagingSlots(d, this.#layout.hostWords);
      this.#io = d.alloc(this.#layout.words * 4);
      // Every kernel the launch plans can use, compiled now (in parallel, or read from the disk cache): the
      // NVRTC workers start first and compile on other cores while this thread uploads the weights.
      // (fp8FlashPrefill: a stand-in shadow address, so the prefill plans name kv_dequant and the flash kernels.)
      const planned = plannedKernels({ ...this.#env(0n, 0), ...(this.fp8FlashPrefill ? { kvShadow: 1n } : {}) }, this.decodeCap);
      const compiling = this.#startKernels(this.zeroCopyStaging ? [...planned, "stage_in", "stage_out"] : planned);
      this.weightUpload = uploadWeights(d, this.#stream, this.#weights, engine, slices, (n) => this.#weightBytes(n)); // pinned, double-buffered
      this.kernelCompile = this.#finishKernels(compiling);
      if (process.stderr.isTTY && this.kernelCompile.units > this.kernelCompile.cacheHits) {
        process.stderr.write(`llmrt: ${describeCompile(this.kernelCompile)}\n`);
      }
      this.#stream.synchronize();
    } catch (e) {
      this.device.dispose();
      throw e;
    }
  }

  #elementsOf(name: string): number {
    return this.engine.tensorInfo(name).shape.reduce((x, y) => x * y, 1);
  }

  /** A weight's bytes in the activation type (raw when the engine stores it so). */
  #weightBytes(name: string): Uint8Array {
    const tiled = this.#nvfp4Tiled.get(name);
    if (tiled) {
      // nvfp4Mma: codes and block scales re-tiled together (nvfp4_tiles.ts); the sibling's bytes kept until asked for.
      const done = this.#nvfp4TiledBytes.get(name);
      if (done) {
        this.#nvfp4TiledBytes.delete(name);
        return done;
      }
      const t = nvfp4Tiles(this.engine.readTensor(tiled.weight), this.engine.readTensor(tiled.scales), tiled.n, tiled.k);
      this.#nvfp4TiledBytes.set(name === tiled.weight ? tiled.scales : tiled.weight, name === tiled.weight ? t.scales : t.codes);
      return name === tiled.weight ? t.codes : t.scales;
    }
    if (this.#rawWeights.has(name)) return this.engine.readTensor(name);
    const want = this.elem === "bf16" ? "bfloat16" : "float32";
    if (this.engine.tensorInfo(name).dtype === want) return this.engine.readTensor(name);
    const f = this.engine.readFloat32(name);
    const v = this.elem === "bf16" ? f32ToBf16(f) : f;
    return new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
  }

  /** Bytes one KV block takes (all layers, k and v). */
  kvBytesPerBlock(): number {
    const g = this.kvGeometry();
    return bytesPerBlock(g) + (this.fp8FlashPrefill ? shadowBlockBytes(g) : 0);
  }

  /** KV geometry: elements in the activation type. */
  kvGeometry(): Omit<KvCacheGeometry, "numBlocks"> {
    const a = this.plan.attributes;
    const g = { numLayers: a.numLayers, tokensPerBlock: this.tokensPerBlock, numKvHeads: a.numKvHeads, headDim: a.headDim };
    return a.kvCache ? { ...g, elementBytes: 1, quantAlgo: a.kvCache.quantAlgo } : { ...g, elementBytes: this.plan.elementBytes };
  }

  /** Free device memory now (bytes): what a KV cache may be sized from. */
  freeMemoryBytes(): number {
    return this.device.memInfo().free;
  }

  /** Allocates a KV cache of `numBlocks` usable blocks (plus the scratch block). */
  createKvCache(numBlocks: number): CudaKvCache {
    this.#live();
    if (!Number.isInteger(numBlocks) || numBlocks <= 0) {
      throw new ValidationError(`Session.createKvCache: expected a positive integer block count, got ${numBlocks}`, "numBlocks", numBlocks);
    }
    return new CudaKvCache(this.device, this.#stream, { ...this.kvGeometry(), numBlocks }, this.fp8FlashPrefill);
  }

  /** The addresses the launch plan needs, for `kv`. */
  launchEnv(kv: CudaKvCache): LaunchEnv {
    const env = this.#env(kv.buffer.ptr, kv.layerBytes);
    return kv.shadow ? { ...env, kvShadow: kv.shadow.ptr } : env;
  }

  #env(kvBase: bigint, kvLayerBytes: number): LaunchEnv {
    return {
      plan: this.plan,
      elem: this.elem,
      arena: this.#arena.ptr,
      weight: (name) => this.#weightPtr(name),
      logits: this.#logits.ptr,
      io: stagingPointers(this.#layout, this.#io.ptr),
      tokenMasks: this.#maskDev?.ptr ?? 0n,
      invFreq: this.#invFreq.ptr,
      kvBase,
      kvLayerBytes,
      partialO: this.#partialO.ptr,
      quantScratch: this.#quantScratch?.ptr ?? 0n,
      fp8Scratch: this.#fp8Scratch?.ptr ?? 0n,
      lowbitScratch: this.#lowbitScratch?.ptr ?? 0n,
      ...(this.#kvScales ? { kvScales: this.#kvScales.ptr } : {}),
      partialML: this.#partialML.ptr,
      tokensPerBlock: this.tokensPerBlock,
      blockStride: this.#layout.blockStride,
      gemv: this.gemv,
      batchInvariant: this.batchInvariant,
      fusedDecode: this.gemv,
      batchAttention: this.batchAttention,
      batchAttention2: this.batchAttention2,
      batchAttention2Wide: this.batchAttention2Wide,
      batchAttention4: this.batchAttention4,
      ...(this.batchAttention4X ? { batchAttention4X: true } : {}),
      fp8FastAccum: this.fp8FastAccum,
      fp8FusedQuant: this.fp8FusedQuant,
      fp8Pdl: this.fp8Pdl,
      fp8Gemv1: this.fp8Gemv1,
      ...(this.fp8GemvRow ? { fp8GemvRow: true } : {}),
      ...(this.fp8GemvRowNorm ? { fp8GemvRowNorm: true } : {}),
      ...(this.fp8DecodeSkSmall ? { fp8DecodeSkSmall: true } : {}),
      fp8DecodeSk: this.fp8DecodeSk,
      fp8ShadowRope: this.fp8ShadowRope,
      fp8GemmResidual: this.fp8GemmResidual,
      fp8FreshPrompt: this.fp8FreshPrompt,
      fp8FlatQuant: this.fp8FlatQuant,
      fp8AttnQuant: this.fp8AttnQuant,
      fp8FastSilu: this.fp8FastSilu,
      fp8Gemv1Blocks: FP8_GEMV1_BLOCKS_PER_SM * this.device.smCount,
      quantGemvFast: this.quantGemvFast,
      ...(this.quantGemvFast && this.quantGemvPairX ? { quantGemvPairX: true, quantGemvPairDown: this.quantGemvPairDown } : {}),
      wgmmaPrefill: this.wgmmaPrefill,
      decodeSplitK: this.decodeSplitK,
      fp8DecodeAttention: this.fp8DecodeAttention,
      gemvSplitK: this.gemvSplitK,
      ...(this.decodeLogitsTuned ? { decodeLogitsTuned: true } : {}),
      gemmResidual: this.gemmResidual,
      ...(this.gemvXPre ? { gemvXPre: true } : {}),
      prefillPdl: this.prefillPdl,
      ...(this.batchDecodePdl ? { batchDecodePdl: true } : {}),
      quantGemm: this.quantGemm,
      decodeCounters: this.#decodeCounters.ptr,
      ...(this.quantTailNorm ? { quantTailNorm: true, quantNormScratch: this.#decodeCounters.ptr + BigInt(this.#normScratchOffset) } : {}),
      pdl: this.pdl,
      quantPdl: this.quantPdl,
      nvfp4Mma: this.nvfp4Mma,
      nvfp4GemvBlocks: NVFP4_GEMV_BLOCKS_PER_SM * this.device.smCount,
      nvfp4GemvK32: this.nvfp4GemvK32,
      nvfp4NormFast: this.nvfp4NormFast,
      ...(this.nvfp4ActLaunch ? { nvfp4ActLaunch: true } : {}),
      ...(this.fp8DecodeAttnQuant ? { fp8DecodeAttnQuant: true } : {}),
      ...(this.prefillTileScan ? { prefillTileScan: true } : {}),
      ...(this.#lastRows ? { lastLayerRows: { plan: this.#lastRows.plan, scratch: this.#lastRows.scratch.ptr } } : {}),
    };
  }

  /** The device address of engine weight `name`. */
  #weightPtr(name: string): bigint {
    const off = this.#weightOffsets.get(name);
    if (off === undefined) throw new FormatError(`Session: weight '${name}' missing from the engine`);
    return this.#weights.ptr + BigInt(off);
  }

  /** One forward pass over a packed batch; writes the requested outputs. */
  run(inp: StepInputs, out: StepOutputs, kv: KvCache): void {
    this.#live();
    if (!(kv instanceof CudaKvCache)) throw new ValidationError("Session.run: a CUDA session needs a KV cache from its createKvCache()", "kvCache");
    if (inp.forwardedTokens) throw new ValidationError("Session.run: inputs.forwardedTokens needs Session.launch", "forwardedTokens");
    this.#launched = null;
    this.#slots.next();
    this.#step(inp, out, kv);
    this.#finish(out, inp.logitRows.length);
  }

  /**
   * Enqueues a step (sampled ids only: no logits, no token masks) and returns without waiting: the host
   * packs and launches the next step while this one runs. `inp.forwardedTokens` takes token ids from the
   * step launched just before, copied on the device (SessionBackend.launch).
   */
  launch(inp: StepInputs, out: StepOutputs, kv: KvCache): PendingStep {
    this.#live();
    if (!(kv instanceof CudaKvCache)) throw new ValidationError("Session.launch: a CUDA session needs a KV cache from its createKvCache()", "kvCache");
    const f = inp.forwardedTokens;
    if (f && (f.from !== this.#launched || f.rows.length !== inp.tokenIds.length)) {
      throw new ValidationError(
        f.from !== this.#launched
          ? "Session.launch: inputs.forwardedTokens.from is not the step launched last on this session"
          : `Session.launch: inputs.forwardedTokens.rows has ${f.rows.length} entries for ${inp.tokenIds.length} tokens`,
        "forwardedTokens",
      );
    }
    if (!out.sampledIds || out.logits || (inp.sampling?.tokenMasks?.count ?? 0) > 0) {
      throw new ValidationError("Session.launch: sampled ids only (no logits, no token masks)", "outputs");
    }
    const slot = this.#slots.next();
    this.#step(inp, out, kv, f);
    const R = inp.logitRows.length, ids = out.sampledIds;
    this.#sendIds(slot, R);
    this.#launched = this.#slots.finishLaunch(this.#stream, (i32) => ids.set(i32.subarray(0, R)));
    this.#launchedRows = R;
    return this.#launched;
  }

  /** Validates and enqueues one step (graph or eager) on the current staging slot. */
  #step(inp: StepInputs, out: StepOutputs, kv: CudaKvCache, fwd?: ForwardedTokens): void {
    validateStep(this.plan, inp, kv.geometry.numBlocks, this.tokensPerBlock, this.maxSeqLen);
    const T = inp.tokenIds.length, S = inp.seqStarts.length - 1, R = inp.logitRows.length;
    const V = this.plan.attributes.vocabSize;
    for (let t = 0; t < T; t++) {
      const id = inp.tokenIds[t];
      if (!(id >= 0 && id < V)) throw new ValidationError(`embedding: token id ${id} at position ${t} is outside the vocabulary [0, ${V})`, "tokenIds", id);
    }
    if (S > this.#layout.capSeqs) {
      throw new ValidationError(`Session.run: inputs.seqStarts: ${S} sequences exceed the engine's ${this.#layout.capSeqs} per step`, "seqStarts", S);
    }
    if (out.sampledIds && !inp.sampling) throw new ValidationError("Session.run: outputs.sampledIds needs inputs.sampling", "sampling");
    // Guided decoding: the forward is enqueued first; the masks are computed on the host while it runs.
    const masks = out.sampledIds && inp.sampling?.tokenMasks && inp.sampling.tokenMasks.count > 0 ? inp.sampling.tokenMasks : null;
    if (masks) this.#checkMasks(masks, R);
    // Multi-LoRA steps run unfused: each token-row linear adds its rows' adapter deltas (lora_shrink, lora_expand).
    const graphable = this.cudaGraphs && T <= this.decodeCap && isDecodeStep(inp);
    const lora = inp.adapterIds ? this.#loraEnv(inp, S, graphable ? bucketFor(T, this.buckets) : T) : undefined;
    if (graphable) this.#runGraph(inp, kv, T, !masks, lora, fwd);
    else this.#runEager(inp, out, kv, T, S, R, !masks, lora, fwd);
    if (masks) this.#sampleMasked(masks, kv, R);
  }

  /**
   * Packs a step into the current slot and sends it (every word but the sampled ids, which stay on the
   * device for forwarded tokens); then copies forwarded token ids from those sampled ids, one copy per
   * run of consecutive rows. Returns nothing; the device staging is ready for the step's launches.
   */
  #stage(inp: StepInputs, pad: { bucket: number; scratchBlock: number } | null, fwd?: ForwardedTokens): void {
    const slot = this.#slots.current, o = this.#layout.offsets;
    const words = packStep(this.#layout, slot.i32, slot.f32, slot.u32, inp, pad);
    if (this.zeroCopyStaging) {
      const T = pad ? pad.bucket : inp.tokenIds.length;
      if (fwd) packForwardRows(this.#layout, slot.i32, fwd.rows, T, this.#launchedRows);
      this.#exec([stageInLaunch(this.#layout, slot.pinned.address, this.#io.ptr, words, !!fwd, T)]);
      return;
    }
    const from = o.temperature * 4;
    this.#io.copyFromHost(slot.pinned.bytes.subarray(from, words * 4), { stream: this.#stream, offset: from });
    if (!fwd) return;
    const rows = fwd.rows, T = rows.length;
    for (let t = 0; t < T;) {
      if (rows[t] < 0) {
        t++;
        continue;
      }
      let n = 1;
      while (t + n < T && rows[t + n] === rows[t] + n) n++;
      if (rows[t] + n > this.#launchedRows) {
        throw new ValidationError(`Session.launch: inputs.forwardedTokens.rows[${t}] is ${rows[t]}`, "forwardedTokens.rows", rows[t]);
      }
      this.#io.copyFromDevice(this.#io, n * 4, { srcOffset: (o.sampledIds + rows[t]) * 4, dstOffset: (o.tokenIds + t) * 4, stream: this.#stream });
      t += n;
    }
  }

  /** The adapters' tables for this step; token rows up to `padTokens` (a graph bucket's dummy rows) get no adapter. */
  #loraEnv(inp: StepInputs, S: number, padTokens: number): LaunchEnv["lora"] {
    if (!inp.loraSlots) throw new ValidationError("Session.run: inputs.adapterIds needs inputs.loraSlots", "loraSlots");
    if (inp.adapterIds!.length !== S) {
      throw new ValidationError(
        `Session.run: inputs.adapterIds has ${inp.adapterIds!.length} entries for ${S} sequences`,
        "adapterIds",
        inp.adapterIds!.length,
      );
    }
    this.#lora ??= new CudaLoraTables((n) => this.device.alloc(n), this.#stream, this.elem, this.#layout.capTokens);
    return this.#lora.prepare(inp.loraSlots, inp.adapterIds!, inp.seqStarts, padTokens);
  }

  #runEager(
    inp: StepInputs,
    out: StepOutputs,
    kv: CudaKvCache,
    T: number,
    S: number,
    R: number,
    sample: boolean,
    lora?: LaunchEnv["lora"],
    fwd?: ForwardedTokens,
  ): void {
    const launches = this.#eagerLaunches(inp, out, kv, T, S, R, sample, lora, fwd);
    const graphs = this.#prefillGraphs;
    if (graphs && !lora && !isDecodeStep(inp) && !this.#stream.isCapturing) {
      // prefillGraphs: a list's first step runs eagerly (GEMM plans and tuning happen there); the next one captures the
      // same launches into a graph, which that step and later ones replay (the inputs are staged before the launches).
      let graph = graphs.get(launches);
      if (graph === undefined) {
        this.#keepPrefillGraph(launches, null);
      } else {
        if (graph === null) {
          graph = this.#stream.capture((st) => this.#exec(launches, st));
          graph.upload(this.#stream);
        }
        this.#keepPrefillGraph(launches, graph);
        graph.launch(this.#stream);
        return;
      }
    }
    this.#exec(launches);
  }

  /** prefillGraphs: `launches`' entry made the most recent; the least recent past LAUNCH_CACHE_LISTS dropped (disposed). */
  #keepPrefillGraph(launches: readonly Launch[], graph: CudaGraph | null): void {
    const graphs = this.#prefillGraphs!;
    graphs.delete(launches);
    graphs.set(launches, graph);
    if (graphs.size > LAUNCH_CACHE_LISTS) {
      const [oldest, g] = graphs.entries().next().value!;
      graphs.delete(oldest);
      g?.dispose();
    }
  }

  /** Stages a step's inputs (token ids forwarded from the step launched before, `fwd`) and returns its launches (eager path). */
  #eagerLaunches(
    inp: StepInputs,
    out: StepOutputs,
    kv: CudaKvCache,
    T: number,
    S: number,
    R: number,
    sample: boolean,
    lora?: LaunchEnv["lora"],
    fwd?: ForwardedTokens,
  ): readonly Launch[] {
    this.#stage(inp, null, fwd);
    // eagerBucketGemm: a decode step a graph would serve takes its bucket's GEMM algorithms (graphs = eager, bit for bit).
    const gemmPickRows = this.eagerBucketGemm && T <= this.decodeCap && isDecodeStep(inp) ? bucketFor(T, this.buckets) : T;
    const window = this.#attn?.window ?? 0;
    let maxAttended = 1;
    for (let t = 0; t < T; t++) {
      const p = inp.positions[t] + 1;
      maxAttended = Math.max(maxAttended, window > 0 ? Math.min(p, window) : p);
    }
    let attention = chooseAttention(this.plan, this.elem, T, S, maxAttended, this.decodeCap, this.device.smCount);
    if (attention.kind === "decode" && this.#batchAttention(T, !!lora)) {
      const a = this.plan.attributes;
      attention = {
        kind: "decode",
        ...batchAttentionSplit(T, a.numKvHeads, this.#group(), maxAttended, this.maxSeqLen, this.device.smCount, this.batchInvariant),
      };
    } else if (this.batchInvariant && attention.kind === "decode") {
      // Batch-invariant: the graphs' split-K geometry (fixed key ranges per split) whatever the step holds.
      attention = this.#graphAttention(1);
    }
    if (attention.kind === "decode" && this.decodeSplitK && !this.#batchAttention(T, !!lora)) {
      // decode_attention_sk (where the plan fuses attention): a grid for this step's longest span; the key partition is the span's own.
      attention = { ...attention, sk: this.#skGeometry(maxAttended) };
    }
    const shape: StepShape = {
      numTokens: T,
      numSeqs: S,
      numRows: R,
      attention,
      sample: sample && !!out.sampledIds,
      writeKvFirst: inp.readsStepKv,
      pruneRows: this.pruneLastLayer && R < T && logitRowsIncreasing(inp),
      freshPrompts: freshPrompts(inp),
      maxSeqTokens: maxSeqTokens(inp),
      ...(gemmPickRows !== T ? { gemmPickRows } : {}),
    };
    if (lora) return planLaunches({ ...this.launchEnv(kv), lora, fusedDecode: false }, shape);
    if (this.#launchCache) return this.#launchCache.get(kv, shape, () => planLaunches(this.launchEnv(kv), shape));
    return planLaunches(this.launchEnv(kv), shape);
  }

  /**
   * Where an eager step's GPU time goes (a tuning aid, e.g. a prefill): runs `inp` once (kernel loads, GEMM
   * plans), then its launches twice more, the second time with an event after each (the first keeps the GPU ahead). No LoRA, no token masks. `hostPlanMs`: the host's
   * staging + planning before the first launch (validation not included).
   */
  profileEagerStep(inp: StepInputs, kv: CudaKvCache): { launches: { name: string; op: number; ms: number }[]; hostPlanMs: number } {
    this.#live();
    const T = inp.tokenIds.length, S = inp.seqStarts.length - 1, R = inp.logitRows.length;
    this.run(inp, { sampledIds: new Int32Array(R) }, kv);
    this.#stream.synchronize();
    const t0 = performance.now();
    const launches = this.#eagerLaunches(inp, { sampledIds: new Int32Array(R) }, kv, T, S, R, true);
    const hostPlanMs = performance.now() - t0; // staging + planning: host time before an eager step's first launch
    const events = Array.from({ length: launches.length + 1 }, () => this.device.createEvent());
    try {
      // The same launches once before the timed ones keep the GPU busy while the host enqueues them, so the first
      // launch's time does not include the host catching up (the embedding read 70–85 µs for 2048 rows without this).
      this.#exec(launches);
      events[0].record(this.#stream);
      launches.forEach((l, i) => {
        this.#exec([l]);
        events[i + 1].record(this.#stream);
      });
      this.#stream.synchronize();
      return {
        hostPlanMs,
        launches: launches.map((l, i) => ({
          name: l.kind === "gemm" ? `gemm ${l.m}x${l.n}x${l.k}${l.outDtype === "fp32" ? " f32 out" : ""}` : l.kernel,
          op: l.op,
          ms: events[i + 1].elapsedSince(events[i]),
        })),
      };
    } finally {
      for (const e of events) e.dispose();
    }
  }

  /**
   * Graph replay time of a subset of an eager (prefill / mixed) step's launches (a measuring aid; a step missing
   * launches computes garbage): runs `inp` once, passes its launch list to `select` (e.g. only the GEMMs), captures
   * what it returns in a throwaway graph and returns the mean of `reps` replays in ms (after 3 warm-up replays), with
   * the host's costs of the subset on an idle stream: enqueueing it eagerly, capturing + instantiating it, uploading it.
   */
  timeEagerLaunches(
    inp: StepInputs,
    kv: CudaKvCache,
    select: (launches: readonly Launch[]) => Launch[],
    reps = 20,
  ): { ms: number; enqueueMs: number; captureMs: number; uploadMs: number } {
    this.#live();
    const T = inp.tokenIds.length, S = inp.seqStarts.length - 1, R = inp.logitRows.length;
    this.run(inp, { sampledIds: new Int32Array(R) }, kv);
    const launches = select(this.#eagerLaunches(inp, { sampledIds: new Int32Array(R) }, kv, T, S, R, true));
    if (launches.length === 0) return { ms: 0, enqueueMs: 0, captureMs: 0, uploadMs: 0 };
    this.#stream.synchronize();
    const t0 = performance.now();
    this.#exec(launches);
    const t1 = performance.now();
    this.#stream.synchronize();
    const t2 = performance.now();
    using graph = this.#stream.capture((s) => this.#exec(launches, s));
    const t3 = performance.now();
    graph.upload(this.#stream);
    this.#stream.synchronize();
    const t4 = performance.now();
    using start = this.device.createEvent();
    using end = this.device.createEvent();
    for (let i = 0; i < 3; i++) graph.launch(this.#stream);
    start.record(this.#stream);
    for (let i = 0; i < reps; i++) graph.launch(this.#stream);
    end.record(this.#stream);
    end.synchronize();
    return { ms: end.elapsedSince(start) / reps, enqueueMs: t1 - t0, captureMs: t3 - t2, uploadMs: t4 - t3 };
  }

  /**
   * The attention path of a decode graph of `bucket` tokens (fixed split-K covering maxSeqLen).
   * Batch-invariant sessions use bucket 1's geometry for every bucket: a sequence's keys fall into the
   * same splits, reduced in the same order, whatever the batch (later, empty splits add nothing).
   */
  #graphAttention(bucket: number, lora = false): AttentionChoice {
    const a = this.plan.attributes;
    if (!hasTiledAttention(a.headDim) || !this.#attn) return { kind: "generic" };
    // Steps of more than 8 sequences: decode_attention_batch (batch-invariant: one split geometry for all of them).
    if (this.#batchAttention(bucket, lora)) {
      return {
        kind: "decode",
        ...batchAttentionSplit(bucket, a.numKvHeads, this.#group(), this.maxSeqLen, this.maxSeqLen, this.device.smCount, this.batchInvariant),
      };
    }
    return {
      kind: "decode",
      ...(this.decodeSplitK ? { sk: this.#skGeometry(this.maxSeqLen) } : {}),
      ...graphDecodeSplit(
        this.batchInvariant ? 1 : bucket,
        a.numKvHeads,
        this.#attn.numHeads / this.#attn.numKvHeads,
        this.maxSeqLen,
        this.elem,
        this.device.smCount,
      ),
    };
  }

  /** decode_attention_sk's grid z and split target for spans up to `maxLen`. */
  #skGeometry(maxLen: number): { numSplits: number; target: number } {
    // decodeSkOneSplit (bf16 / f32 caches): spans up to DECODE_SK_ONE_SPLIT in one split. fp8DecodeSkSmall (an e4m3 cache
    // on decode_attention_sk_fp8kv): a grid for its shorter splits too.
    const one = this.decodeSkOneSplit ? DECODE_SK_ONE_SPLIT : 0;
    const small = this.fp8DecodeSk && this.fp8DecodeSkSmall && this.plan.attributes.kvCache?.quantAlgo === "FP8";
    const g = decodeSkGeometry(
      Math.max(1, maxLen),
      this.plan.attributes.numKvHeads,
      this.#group(),
      this.device.smCount,
      one,
      small ? FP8_DECODE_SK_SMALL_SPLIT : undefined,
    );
    return { numSplits: g.numSplits, target: g.splitSize };
  }

  /** Query heads per kv head. */
  #group(): number {
    return this.#attn ? this.#attn.numHeads / this.#attn.numKvHeads : 1;
  }

  /** Whether a decode step of `T` sequences runs decode_attention_batch (and its split geometry). */
  #batchAttention(T: number, lora: boolean): boolean {
    return usesBatchAttention(this.plan, this.elem, T, {
      batchAttention: this.batchAttention,
      batchAttention2: this.batchAttention2,
      gemv: this.gemv,
      lora,
      gemvMaxRows: GEMV_MAX_ROWS,
    });
  }

  #runGraph(inp: StepInputs, kv: CudaKvCache, T: number, sample: boolean, lora?: LaunchEnv["lora"], fwd?: ForwardedTokens): void {
    const bucket = bucketFor(T, this.buckets);
    const drop = (m: Map<number, CudaGraph>): void => {
      for (const g of m.values()) g.dispose();
      m.clear();
    };
    if (this.#graphKv !== kv) {
      // Graphs hold the cache's addresses: a different cache needs new graphs.
      drop(this.#graphs);
      drop(this.#loraGraphs);
      this.#graphKv = kv;
    }
    // LoRA graphs hold the adapter tables' addresses and launch two LoRA kernels per table: new tables, new graphs.
    if (lora && this.#loraGraphsOf !== this.#lora!.generation) {
      drop(this.#loraGraphs);
      this.#loraGraphsOf = this.#lora!.generation;
    }
    const graphs = lora ? this.#loraGraphs : this.#graphs;
    this.#stage(inp, { bucket, scratchBlock: kv.scratchBlock }, fwd);
    const writeKvFirst = inp.readsStepKv === true;
    const attention = this.#graphAttention(bucket, !!lora);
    const splits = this.graphSplits && this.#batchAttention(bucket, !!lora) ? this.#splitsFor(inp, T, attention) : 0;
    const key = graphKey(bucket, sample, writeKvFirst, splits);
    let graph = graphs.get(key);
    if (!graph) {
      const launches = planLaunches(lora ? { ...this.launchEnv(kv), lora, fusedDecode: false } : this.launchEnv(kv), {
        numTokens: bucket,
        numSeqs: bucket,
        numRows: bucket,
        attention: splits > 0 && attention.kind === "decode" ? { ...attention, numSplits: splits } : attention,
        sample,
        writeKvFirst,
      });
      // Run the step once eagerly (loads kernels, makes the GEMM plans; the step is idempotent), then capture it.
      this.#exec(launches);
      graph = this.#stream.capture((s) => this.#exec(launches, s));
      graph.upload(this.#stream);
      graphs.set(key, graph);
    }
    graph.launch(this.#stream);
  }

  /**
   * CudaSessionOptions.graphSplits: the split count of the graph variant for a decode step on decode_attention_batch
   * (fixed `splitSize` key ranges) — the power of two covering the step's longest attended span, 0 (the graph
   * covering maxSeqLen) when that is all of the bucket's splits.
   */
  #splitsFor(inp: StepInputs, T: number, attention: AttentionChoice): number {
    if (attention.kind !== "decode" || attention.sk || attention.numSplits <= 1) return 0;
    const window = this.#attn?.window ?? 0;
    let span = 1;
    for (let t = 0; t < T; t++) {
      const p = inp.positions[t] + 1;
      span = Math.max(span, window > 0 ? Math.min(p, window) : p);
    }
    const need = Math.ceil(span / attention.splitSize);
    let s = 1;
    while (s < need) s *= 2;
    return s < attention.numSplits ? s : 0;
  }

  #checkMasks(m: TokenMasks, R: number): void {
    const words = Math.ceil(this.plan.attributes.vocabSize / 32);
    if (m.words !== words) {
      throw new ValidationError(`Session.run: sampling.tokenMasks.words is ${m.words}; this vocabulary needs ${words}`, "tokenMasks.words", m.words);
    }
    if (!(m.count <= this.#layout.capSeqs)) {
      throw new ValidationError(
        `Session.run: sampling.tokenMasks.count ${m.count} exceeds the engine's ${this.#layout.capSeqs} rows`,
        "tokenMasks.count",
        m.count,
      );
    }
    if (m.rowMask.length < R) {
      throw new ValidationError(
        `Session.run: sampling.tokenMasks.rowMask has ${m.rowMask.length} entries for ${R} rows`,
        "tokenMasks.rowMask",
        m.rowMask.length,
      );
    }
    for (let r = 0; r < R; r++) {
      const i = m.rowMask[r];
      if (!(i >= -1 && i < m.count)) {
        throw new ValidationError(`Session.run: sampling.tokenMasks.rowMask[${r}] is ${i}, outside [-1, ${m.count})`, "tokenMasks.rowMask", i);
      }
    }
  }

  /** The masks (computed now, while the forward runs), uploaded, applied to the logits, then the sampler. */
  #sampleMasked(m: TokenMasks, kv: CudaKvCache, R: number): void {
    const n = m.count * m.words;
    if (!this.#maskDev) {
      const bytes = this.#layout.capSeqs * m.words * 4;
      this.#maskHost = this.device.allocHost(bytes);
      this.#maskDev = this.device.alloc(bytes);
      this.#launchCache?.clear(); // launchEnv's tokenMasks changed (only masked sampling reads it: not a cached list)
    }
    const view = new Int32Array(this.#maskHost!.buffer, 0, n);
    if (typeof m.masks === "function") m.masks(view);
    else view.set(m.masks.subarray(0, n));
    this.#maskDev.copyFromHost(this.#maskHost!.bytes.subarray(0, n * 4), { stream: this.#stream });
    this.#exec(sampleLaunches(this.launchEnv(kv), R, true));
  }

  /** Sampled ids back with one small copy; logits only when asked for. */
  #finish(out: StepOutputs, R: number): void {
    const slot = this.#slots.current;
    if (out.sampledIds) this.#sendIds(slot, R);
    this.#stream.synchronize();
    if (out.sampledIds) out.sampledIds.set(slot.i32.subarray(0, R));
    if (out.logits) this.#logits.copyToHost(out.logits.subarray(0, R * this.plan.attributes.vocabSize));
  }

  /** The step's R sampled ids (device staging words [0, R)) into the slot's words [0, R): a copy, or zeroCopyStaging's stage_out. */
  #sendIds(slot: StagingSlot, R: number): void {
    if (this.zeroCopyStaging) this.#exec([stageOutLaunch(this.#layout, slot.pinned.address, this.#io.ptr, R)]);
    else this.#io.copyToHost(slot.pinned.bytes.subarray(0, R * 4), { stream: this.#stream });
  }

  #exec(launches: readonly Launch[], stream: Stream = this.#stream): void {
    try {
      this.#execAll(launches, stream);
    } catch (e) {
      // Which launch failed (with CUDA_LAUNCH_BLOCKING=1, the kernel that faulted): the launch loop keeps no index.
      const l = this.#issuing;
      if (e instanceof Error && l) e.message += ` (while launching ${l.kind === "gemm" ? `gemm ${l.m}x${l.n}x${l.k}` : l.kernel} of op ${l.op})`;
      throw e;
    }
  }

  /** The launch `#execAll` is issuing (error messages name it). */
  #issuing: Launch | null = null;

  #execAll(launches: readonly Launch[], stream: Stream): void {
    for (const l of launches) {
      this.#issuing = l;
      if (l.kind === "kernel" && l.kernel === NCCL_ALL_REDUCE) {
        if (!this.#comm || stream !== this.#stream) {
          throw new ValidationError("Session: an all_reduce runs on the session's stream with its NCCL communicator", "nccl");
        }
        this.#comm.allReduceSum(l.args[0] as bigint, l.args[0] as bigint, l.args[1] as number);
      } else if (l.kind === "gemm") {
        this.#gemm.run({
          m: l.m,
          n: l.n,
          k: l.k,
          dtype: l.dtype,
          outDtype: l.outDtype,
          a: l.a,
          b: l.b,
          d: l.d,
          transB: true,
          bias: l.bias,
          ...(l.c !== undefined ? { c: l.c } : {}),
          stream,
          batchInvariant: l.invariant,
          aScale: l.aScale ?? null,
          bScale: l.bScale ?? null,
          ...(l.fastAccum ? { fastAccum: true } : {}),
          ...(l.alpha !== undefined ? { alpha: l.alpha } : {}),
          ...(l.pickM !== undefined ? { pickM: l.pickM } : {}),
        });
      } else {
        const kern = this.#kernel(l.kernel);
        const shared = l.sharedBytes ?? 0;
        if (shared === 0) {
          kern.launch(l.grid, l.block, l.args, l.pdl ? { stream, pdl: true } : { stream }); // the common case: no lookups, one object
          continue;
        }
        // Set on a kernel's first launch with dynamic shared memory, whatever its size: a kernel with static shared
        // memory too (nvfp4_gemv_k32x's cp.async ring) gets only 48 KB - static by default.
        if (shared > (this.#sharedAllowed.get(l.kernel) ?? 0)) {
          kern.setMaxDynamicSharedMemory(shared);
          this.#sharedAllowed.set(l.kernel, shared);
        }
        kern.launch(l.grid, l.block, l.args, { stream, sharedMemBytes: shared, ...(l.pdl ? { pdl: true } : {}) });
      }
    }
  }

  #kernel(name: string): Kernel {
    let k = this.#kernels.get(name);
    if (!k) {
      // Not in the planned set (kernel_set.ts): its unit now, on this thread.
      this.#loadKernels([name]);
      k = this.#kernels.get(name)!;
    }
    return k;
  }

  /** Compiles (in parallel) or reads from the cache the units of kernels `names`, loads them and registers the kernels. */
  #loadKernels(names: readonly string[]): CompileStats {
    return this.#finishKernels(this.#startKernels(names));
  }

  /** Starts `#loadKernels(names)`: cached CUBINs read, compile workers started on the rest; `#finishKernels` completes it. */
  #startKernels(names: readonly string[]): KernelLoad {
    const all = kernelUnits(names, (n) => kernelSignature(n).file);
    const units = all.filter((u) => !this.#modules.has(unitName(u.unit))); // a whole-file unit may be loaded already
    return { all, units, pending: startKernelUnits(units.map((u) => u.unit), this.device.arch) };
  }

  /** Waits for a `#startKernels` compile, loads its modules and registers the kernels. */
  #finishKernels({ all, units, pending }: KernelLoad): CompileStats {
    const { cubins, stats } = pending.finish();
    units.forEach(({ unit }, i) => {
      let mod: CudaModule;
      try {
        mod = this.device.loadModule(cubins[i].cubin);
      } catch (e) {
        // A cached CUBIN the driver rejects is deleted and compiled again once.
        if (!cubins[i].fromCache || !cubins[i].cachePath) throw e;
        rmSync(cubins[i].cachePath!, { force: true });
        mod = this.device.loadModule(compileKernelUnits([unit], this.device.arch, { workers: 1 }).cubins[0].cubin);
      }
      this.#modules.set(unitName(unit), mod);
    });
    for (const { unit, forKernels } of all) {
      const mod = this.#modules.get(unitName(unit))!;
      for (const n of forKernels) if (!this.#kernels.has(n)) this.#kernels.set(n, mod.kernel(n, kernelSignature(n).params));
    }
    return stats;
  }

  /**
   * Where a decode step's GPU time goes (a tuning aid, not for serving): runs `inp` (a decode step)
   * once so its bucket's graph exists, times `reps` graph replays between events, then runs the same
   * launches eagerly with an event after each, enqueued behind 3 graph replays so the host stays ahead
   * of the GPU (eager times of tiny kernels can still include launch gaps).
   */
  profileDecodeStep(inp: StepInputs, kv: CudaKvCache, reps = 20): { bucket: number; graphMs: number; launches: { name: string; op: number; ms: number }[] } {
    this.#live();
    const T = inp.tokenIds.length;
    if (!isDecodeStep(inp) || T > this.decodeCap) throw new ValidationError("profileDecodeStep: expects a decode step (one token per sequence)", "inputs");
    this.run(inp, { sampledIds: new Int32Array(T) }, kv);
    const bucket = bucketFor(T, this.buckets);
    const d = this.device;
    const graph = this.#graphs.get(graphKey(bucket, true, false));
    const launches = planLaunches(this.launchEnv(kv), {
      numTokens: bucket,
      numSeqs: bucket,
      numRows: bucket,
      attention: this.#graphAttention(bucket),
      sample: true,
    });
    const events = Array.from({ length: launches.length + 1 }, () => d.createEvent());
    try {
      let graphMs = NaN;
      if (graph) {
        events[0].record(this.#stream);
        for (let i = 0; i < reps; i++) graph.launch(this.#stream);
        events[1].record(this.#stream);
        events[1].synchronize();
        graphMs = events[1].elapsedSince(events[0]) / reps;
      }
      // Keep the GPU busy (graph replays) while the host enqueues the eager launches, so no launch's time
      // includes the host catching up (the first launch read ~100 µs for a 2 µs kernel without this).
      if (graph) { for (let i = 0; i < 3; i++) graph.launch(this.#stream); }
      events[0].record(this.#stream);
      launches.forEach((l, i) => {
        this.#exec([l]);
        events[i + 1].record(this.#stream);
      });
      this.#stream.synchronize();
      return {
        bucket,
        graphMs,
        launches: launches.map((l, i) => ({
          name: l.kind === "gemm" ? `gemm ${l.m}x${l.n}x${l.k}${l.outDtype === "fp32" ? " f32 out" : ""}` : l.kernel,
          op: l.op,
          ms: events[i + 1].elapsedSince(events[i]),
        })),
      };
    } finally {
      for (const e of events) e.dispose();
    }
  }

  /**
   * Graph replay time of a subset of a decode step's launches (a tuning aid; a step missing launches computes
   * garbage): runs `inp` once (kernels, GEMM plans), plans the bucket's launches as its graph does (with graphSplits,
   * the split variant `inp` replays), passes them
   * to `select` (which may drop or change them, e.g. clear `pdl`), captures what it returns in a throwaway graph
   * and returns the mean of `reps` replays in ms (after 3 warm-up replays).
   */
  timeDecodeLaunches(inp: StepInputs, kv: CudaKvCache, select: (launches: readonly Launch[]) => Launch[], reps = 20): number {
    this.#live();
    const T = inp.tokenIds.length;
    if (!isDecodeStep(inp) || T > this.decodeCap) throw new ValidationError("timeDecodeLaunches: expects a decode step (one token per sequence)", "inputs");
    this.run(inp, { sampledIds: new Int32Array(T) }, kv);
    const bucket = bucketFor(T, this.buckets);
    // The graph the step replays: with graphSplits, the variant of the splits its longest span needs (#runGraph).
    const full = this.#graphAttention(bucket);
    const splits = this.graphSplits && this.#batchAttention(bucket, false) ? this.#splitsFor(inp, T, full) : 0;
    const attention = splits > 0 && full.kind === "decode" ? { ...full, numSplits: splits } : full;
    const launches = select(planLaunches(this.launchEnv(kv), { numTokens: bucket, numSeqs: bucket, numRows: bucket, attention, sample: true }));
    if (launches.length === 0) return 0;
    using graph = this.#stream.capture((s) => this.#exec(launches, s));
    graph.upload(this.#stream);
    using start = this.device.createEvent();
    using end = this.device.createEvent();
    for (let i = 0; i < 3; i++) graph.launch(this.#stream);
    start.record(this.#stream);
    for (let i = 0; i < reps; i++) graph.launch(this.#stream);
    end.record(this.#stream);
    end.synchronize();
    return end.elapsedSince(start) / reps;
  }

  /**
   * What a launched decode step's stream copies add to its graph (a tuning aid, bench/step_loop.ts): runs `inp` once
   * so its bucket's graph exists, then times `reps` replays back to back alone and with each copy `launch` enqueues
   * beside it (the staging upload before, the forwarded token's device copy before, the sampled ids' download after;
   * then all three; `zeroCopy`: zeroCopyStaging's stage_in / stage_out kernels instead of the three), ms a step between events.
   */
  timeDecodeStepCopies(inp: StepInputs, kv: CudaKvCache, reps = 50): Record<"graph" | "upload" | "forward" | "download" | "all" | "zeroCopy", number> {
    this.#live();
    const T = inp.tokenIds.length;
    if (!isDecodeStep(inp) || T > this.decodeCap) throw new ValidationError("timeDecodeStepCopies: expects a decode step (one token per sequence)", "inputs");
    this.run(inp, { sampledIds: new Int32Array(T) }, kv);
    const bucket = bucketFor(T, this.buckets);
    const graph = this.#graphs.get(graphKey(bucket, true, false));
    if (!graph) throw new ValidationError("timeDecodeStepCopies: the step did not run a graph (cudaGraphs off, or graphSplits)", "inputs");
    const slot = this.#slots.current, o = this.#layout.offsets, io = this.#io, stream = this.#stream;
    const words = packStep(this.#layout, slot.i32, slot.f32, slot.u32, inp, { bucket, scratchBlock: kv.scratchBlock });
    const from = o.temperature * 4;
    const upload = (): void => io.copyFromHost(slot.pinned.bytes.subarray(from, words * 4), { stream, offset: from });
    const forward = (): void => io.copyFromDevice(io, 4, { srcOffset: o.sampledIds * 4, dstOffset: o.tokenIds * 4, stream });
    const download = (): void => io.copyToHost(slot.pinned.bytes.subarray(0, T * 4), { stream });
    const stageIn = (): void => this.#exec([stageInLaunch(this.#layout, slot.pinned.address, io.ptr, words, false, bucket)], stream);
    const stageOut = (): void => this.#exec([stageOutLaunch(this.#layout, slot.pinned.address, io.ptr, T)], stream);
    using start = this.device.createEvent();
    using end = this.device.createEvent();
    const time = (before: (() => void)[], after: (() => void)[]): number => {
      const one = (): void => {
        for (const f of before) f();
        graph.launch(stream);
        for (const f of after) f();
      };
      for (let i = 0; i < 3; i++) one();
      start.record(stream);
      for (let i = 0; i < reps; i++) one();
      end.record(stream);
      end.synchronize();
      return end.elapsedSince(start) / reps;
    };
    return {
      graph: time([], []),
      upload: time([upload], []),
      forward: time([forward], []),
      download: time([], [download]),
      all: time([upload, forward], [download]),
      zeroCopy: time([stageIn], [stageOut]),
    };
  }

  /** GEMM shapes timed in this session (the rest came from the timing cache or had one candidate). */
  get numGemmShapesTuned(): number {
    return this.#gemm.numTuned;
  }

  /** eagerBucketGemm: eager GEMMs that could not run their graph bucket's algorithm (CublasLtGemm.numPickFallbacks). */
  get numGemmPickFallbacks(): number {
    return this.#gemm.numPickFallbacks;
  }

  #maxVerifyTokens = 0;
  /** Most tokens of a speculative verify step whose rows round as one-token decode steps do (verify_cap.ts). */
  get maxVerifyTokens(): number {
    if (this.#maxVerifyTokens === 0) this.#maxVerifyTokens = maxVerifyTokens(this.#env(0n, 0), this.buckets, (b) => this.#graphAttention(b));
    return this.#maxVerifyTokens;
  }

  /** Number of decode graphs captured so far. */
  get numGraphs(): number {
    return this.#graphs.size + this.#loraGraphs.size;
  }

  /** prefillGraphs: eager-step graphs captured and kept so far. */
  get numPrefillGraphs(): number {
    let n = 0;
    for (const g of this.#prefillGraphs?.values() ?? []) if (g) n++;
    return n;
  }

  /** Frees everything on the device (weights, arena, graphs, KV caches made here). Idempotent. */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    this.#graphs.clear();
    this.#prefillGraphs?.clear();
    this.device.dispose();
  }

  #live(): void {
    if (this.#disposed) throw new DisposedError("Session (CUDA)");
  }
}

/**
 * Decode-graph map key: one graph per bucket × sampler or not × KV written ahead of attention (verify steps) × split
 * count (CudaSessionOptions.graphSplits; 0: the grid covering maxSeqLen). Buckets stay below 2^16 (MAX_GRID_Y).
 */
function graphKey(bucket: number, sample: boolean, writeKvFirst: boolean, splits = 0): number {
  return 4 * bucket + (sample ? 1 : 0) + (writeKvFirst ? 2 : 0) + splits * 4 * 65536;
}

/** One line about a compile phase, e.g. "kernels: 24 units (20 compiled on 8 workers, 4 from the cache) in 1.21 s". */
export function describeCompile(s: CompileStats): string {
  const where = s.compiledHere > 0
    ? `${s.compiledInWorkers} compiled on ${s.workers} workers, ${s.compiledHere} on the main thread`
    : `${s.compiledInWorkers} compiled on ${s.workers} workers`;
  return `kernels: ${s.units} units (${where}, ${s.cacheHits} from the cache) in ${(s.wallMs / 1000).toFixed(2)} s`;
}
