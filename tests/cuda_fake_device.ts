// A fake CUDA device for checking launch plans without a GPU: distinct address ranges backed by
// ArrayBuffers, and a TypeScript stand-in for every kernel of lib/backends/cuda/kernels that reads its
// inputs and writes its outputs only through the launch's arguments (pointers, ints, floats, grid), as
// the kernel would. float32 stand-ins run the CPU reference kernels (lib/backends/cpu/kernels.ts);
// bf16 stand-ins round every stored element to bf16 where the kernel does (the kernels' documented
// roundings), so a fused launch and the unfused chain it replaces give the same bits here. The bf16
// stand-ins of kernels whose blocks read memory other blocks write also check that the launch's output
// does not overlap its inputs (a data race on the GPU). Used by tests/cuda_launch_plan*.test.ts.
import * as K from "../lib/backends/cpu/kernels.ts";
import { resolveTokenMasks, sampleRow, type SamplingInputs } from "../lib/ir/sampling.ts";
import {
  batchAttention2Threads,
  batchAttention4Threads,
  batchAttentionSplit,
  bucketFor,
  chooseAttention,
  DECODE_SK_FP8_SMEM,
  DECODE_SK_MIN_SPLIT,
  DECODE_SK_ONE_SPLIT,
  DECODE_SK_SMEM,
  decodeBuckets,
  decodeSkGeometry,
  decodeSkSplitKeys,
  decodeSkSplitOf,
  decodeSplitKeys,
  flashPrefillGeometry,
  flashPrefillWgGeometry,
  FP8_DECODE_SK_SMALL_SPLIT,
  GEMV_MAX_ROWS,
  graphDecodeSplit,
  type KernelLaunch,
  kernelSignature,
  type Launch,
  type LaunchEnv,
  MAX_DECODE_SPLITS,
  planLaunches,
  sampleLaunches,
  usesBatchAttention,
} from "../lib/backends/cuda/launch_plan.ts";
import { NCCL_ALL_REDUCE } from "../lib/backends/cuda/launch_types.ts";
import { freshPrompts, isDecodeStep, logitRowsIncreasing, maxSeqTokens, packStep, stagingLayout, stagingPointers } from "../lib/backends/cuda/step_staging.ts";
import { planLastLayerRows } from "../lib/backends/cuda/last_layer_rows.ts";
import { CudaLoraTables } from "../lib/backends/cuda/lora_tables.ts";
import type { Engine } from "../lib/builder/engine.ts";
import type { EnginePlan } from "../lib/ir/plan.ts";
import { parsePretrainedConfig } from "../lib/models/config.ts";
import { LlamaForCausalLM, type WeightSource } from "../lib/models/llama.ts";
import type { StepInputs } from "../lib/ir/step_io.ts";
import { dequantize } from "../lib/quantization/packed.ts";
import { kvDecode, kvEncode } from "../lib/backends/cpu/kv_cache.ts";
import type { KvQuantAlgo } from "../lib/ir/kv_cache.ts";
import { bf16ToF32, f32ToBf16 } from "../lib/util/dtype.ts";
import { assert } from "./harness.ts";
import { fp8GemmStandIn, fp8KernelStandIn, quantizeRows } from "./cuda_fake_fp8.ts";
import { fp8ScratchLayout } from "../lib/backends/cuda/fp8_launch.ts";
import { lowbitScratchLayout } from "../lib/backends/cuda/lowbit_launch.ts";
import { lowbitKernelStandIn, nvfp4ActRows, nvfp4MmaKernelStandIn } from "./cuda_fake_lowbit.ts";
import { nvfp4Tiles, nvfp4TilesFit } from "../lib/backends/cuda/nvfp4_tiles.ts";

// ---- a fake device: regions at distinct addresses ----------------------------------------------

export class FakeMemory {
  readonly regions: { base: bigint; buf: ArrayBuffer }[] = [];
  /**
   * decode_attention's stand-in fails when a token reads a key another token of the same launch writes
   * and the cache did not hold it before (a race on the GPU: speculative verify steps must write their KV
   * first). Off by default: coverage tests give sequences overlapping block tables on purpose.
   */
  strictKvReads = false;
  #next = 1n << 32n;
  alloc(bytes: number): bigint {
    const base = this.#next;
    this.regions.push({ base, buf: new ArrayBuffer(Math.ceil(bytes / 8) * 8) });
    this.#next += BigInt(Math.ceil((bytes + 4096) / (1 << 20)) * (1 << 20));
    return base;
  }
  #find(p: bigint, bytes: number): { buf: ArrayBuffer; off: number } {
    for (const r of this.regions) {
      if (p >= r.base && p + BigInt(bytes) <= r.base + BigInt(r.buf.byteLength)) return { buf: r.buf, off: Number(p - r.base) };
    }
    throw new RangeError(`fake device: [${p.toString(16)}, +${bytes}) is outside every allocation`);
  }
  /** Bytes left in the region from `p` on. */
  left(p: bigint): number {
    for (const r of this.regions) if (p >= r.base && p < r.base + BigInt(r.buf.byteLength)) return r.buf.byteLength - Number(p - r.base);
    throw new RangeError(`fake device: ${p.toString(16)} is outside every allocation`);
  }
  f32(p: bigint, n: number): Float32Array {
    const { buf, off } = this.#find(p, n * 4);
    assert.equal(off % 4, 0, "f32 alignment");
    return new Float32Array(buf, off, n);
  }
  i32(p: bigint, n: number): Int32Array {
    const { buf, off } = this.#find(p, n * 4);
    return new Int32Array(buf, off, n);
  }
  u32(p: bigint, n: number): Uint32Array {
    const { buf, off } = this.#find(p, n * 4);
    return new Uint32Array(buf, off, n);
  }
  u16(p: bigint, n: number): Uint16Array {
    const { buf, off } = this.#find(p, n * 2);
    assert.equal(off % 2, 0, "bf16 alignment");
    return new Uint16Array(buf, off, n);
  }
  f64(p: bigint, n: number): Float64Array {
    const { buf, off } = this.#find(p, n * 8);
    return new Float64Array(buf, off, n);
  }
  u64(p: bigint, n: number): BigUint64Array {
    const { buf, off } = this.#find(p, n * 8);
    return new BigUint64Array(buf, off, n);
  }
  bytes(p: bigint, n: number): Uint8Array {
    const { buf, off } = this.#find(p, n);
    return new Uint8Array(buf, off, n);
  }
}

// ---- stand-ins for the kernels (float32 engines) -----------------------------------------------

/** Checks a launch against its kernel's signature: argument count and kinds, grid sanity. */
export function checkSignature(l: KernelLaunch): void {
  const sig = kernelSignature(l.kernel);
  assert.equal(l.args.length, sig.params.length, `${l.kernel}: ${l.args.length} args, signature has ${sig.params.length}`);
  l.args.forEach((a, i) => {
    const kind = sig.params[i];
    if (kind === "ptr" || kind === "i64") assert.equal(typeof a, "bigint", `${l.kernel} arg ${i} (${kind}) must be a bigint`);
    else assert.ok(typeof a === "number" && Number.isFinite(a), `${l.kernel} arg ${i} (${kind}) must be a finite number, got ${a}`);
    if (kind === "i32") assert.ok(Number.isInteger(a), `${l.kernel} arg ${i} (i32) must be an integer, got ${a}`);
  });
  for (const g of l.grid) assert.ok(Number.isInteger(g) && g >= 1 && g <= 65535 * 32768, `${l.kernel}: grid ${l.grid}`);
  assert.ok(l.grid[1] <= 65535 && l.grid[2] <= 65535, `${l.kernel}: grid y/z ${l.grid}`);
  assert.ok(l.block >= 32 && l.block <= 1024 && l.block % 32 === 0, `${l.kernel}: block ${l.block}`);
}

export interface Geo {
  S: number;
  T: number;
  starts: Int32Array;
  pos: Int32Array;
  tables: Int32Array;
  stride: number;
}

/** Runs a launch table on the fake device: every kernel by its stand-in (float32 or bf16 engines). */
export function runLaunches(mem: FakeMemory, launches: readonly Launch[], env: LaunchEnv): void {
  if (env.elem === "bf16") {
    runBf16Launches(mem, launches);
    return;
  }
  const a = env.plan.attributes;
  const geo = (pos: bigint, starts: bigint, tables: bigint, T: number, S: number, stride: number): Geo => ({
    S,
    T,
    stride,
    starts: mem.i32(starts, S + 1),
    pos: mem.i32(pos, T),
    tables: mem.i32(tables, S * stride),
  });
  const layer = (kv: bigint, bs: number, nKV: number, hd: number): K.LayerCache => ({
    data: mem.f32(kv, mem.left(kv) / 4),
    blockSize: bs,
    numKvHeads: nKV,
    headDim: hd,
  });
  // Per token, as the kernels do: its sequence is the largest s with seqStarts[s] <= t (seqOfToken).
  const perToken = (g: Geo, fn: (one: K.BatchGeometry) => void): void => {
    for (let t = 0; t < g.T; t++) {
      let lo = 0, hi = g.S;
      while (hi - lo > 1) {
        const mid = (lo + hi) >> 1;
        if (g.starts[mid] <= t) lo = mid;
        else hi = mid;
      }
      fn({
        numSeqs: 1,
        seqStarts: Int32Array.of(t, t + 1),
        positions: g.pos,
        blockTables: g.tables.subarray(lo * g.stride, (lo + 1) * g.stride),
        maxBlocksPerSeq: g.stride,
      });
    }
  };
  for (let li = 0; li < launches.length; li++) {
    const l = launches[li];
    if (l.kind === "gemm") {
      assert.equal(l.dtype, "fp32");
      const x = mem.f32(l.a, l.m * l.k), w = mem.f32(l.b, l.n * l.k), d = mem.f32(l.d, l.m * l.n);
      const cv = l.c !== undefined ? Float32Array.from(mem.f32(l.c, l.m * l.n)) : null;
      K.linear(x, w, l.bias ? mem.f32(l.bias, l.n) : null, l.m, l.n, l.k, d);
      if (cv) { for (let i = 0; i < cv.length; i++) d[i] = Math.fround(d[i] + cv[i]); // beta 1 (gemmResidual)
       }
      continue;
    }
    if (l.kernel === NCCL_ALL_REDUCE) continue; // one rank (the fakes run no others): the sum is the input
    checkSignature(l);
    const A = l.args as (bigint & number)[];
    const name = l.kernel.replace(/_hd\d+$/, "");
    switch (name) {
      case "embedding_f32": {
        const [ids, table, out, T, H, V] = A;
        assert.equal(l.grid[0], T);
        K.embedding(mem.i32(ids, T), T, mem.f32(table, V * H), H, V, mem.f32(out, T * H));
        break;
      }
      case "rmsnorm_f32": {
        const [x, w, out, rows, H, eps] = A;
        assert.equal(l.grid[0], rows);
        K.rmsnorm(mem.f32(x, rows * H), mem.f32(w, H), eps, rows, H, mem.f32(out, rows * H));
        break;
      }
      case "add_rmsnorm_f32": {
        const [x, res, w, out, rows, H, eps] = A;
        K.addRmsnorm(mem.f32(x, rows * H), mem.f32(res, rows * H), mem.f32(w, H), eps, rows, H, mem.f32(out, rows * H));
        break;
      }
      case "add_inplace_f32": {
        const [x, out, n] = A;
        const nn = Number(n);
        K.addInPlace(mem.f32(x, nn), mem.f32(out, nn), nn);
        break;
      }
      case "silu_mul_f32": {
        const [gu, out, T, I] = A;
        assert.equal(l.grid[1], T);
        assert.ok(l.grid[0] * 256 * 4 >= I, "silu_mul grid covers the width");
        K.siluMul(mem.f32(gu, T * 2 * I), mem.f32(out, T * I), T, I);
        break;
      }
      case "gather_rows_f32": {
        const [x, rows, out, R, width] = A;
        const r = mem.i32(rows, R);
        const xRows = Math.max(...r) + 1;
        K.gatherRows(mem.f32(x, xRows * width), r, R, width, mem.f32(out, R * width));
        break;
      }
      case "qk_norm_f32": {
        const [qkv, qw, kw, T, nH, nKV, hd, eps] = A;
        assert.equal(l.grid[1], T);
        assert.ok(l.grid[0] * 4 >= nH + nKV);
        K.qkNorm(mem.f32(qkv, T * (nH + 2 * nKV) * hd), mem.f32(qw, hd), mem.f32(kw, hd), eps, T, nH, nKV, hd);
        break;
      }
      case "rope_kv_write_f32": {
        const [qkv, q, kv, pos, starts, tables, invFreq, scaling, T, S, nH, nKV, hd, bs, stride] = A;
        assert.equal(l.grid[0], T);
        const g = geo(pos, starts, tables, T, S, stride);
        const x = mem.f32(qkv, T * (nH + 2 * nKV) * hd), qo = mem.f32(q, T * nH * hd), c = layer(kv, bs, nKV, hd), inv = Array.from(mem.f64(invFreq, hd / 2));
        perToken(g, (one) => K.ropeKvWrite(x, qo, c, one, inv, scaling, nH, nKV, hd));
        break;
      }
      case "paged_attention_decode_f32": {
        const [q, out, kv, pos, starts, tables, pO, pML, T, S, nH, nKV, bs, stride, scale, window, splitSize] = A;
        const hd = a.headDim;
        const g = geo(pos, starts, tables, T, S, stride);
        const numSplits = l.grid[2];
        for (let t = 0; t < T; t++) {
          const span = window > 0 ? Math.min(g.pos[t] + 1, window) : g.pos[t] + 1;
          assert.ok(numSplits * splitSize >= span, `decode splits ${numSplits} × ${splitSize} do not cover ${span} keys`);
        }
        assert.ok(numSplits <= MAX_DECODE_SPLITS);
        assert.equal(splitSize % 32, 0);
        if (numSplits > 1) {
          mem.f32(pO, T * nH * numSplits * hd); // the workspace must hold the step
          mem.f32(pML, T * nH * numSplits * 2);
          const next = launches[li + 1];
          assert.ok(next?.kind === "kernel" && next.kernel === "paged_attention_decode_reduce_f32", "split decode is followed by its reduce");
        }
        assert.equal(l.grid[0], nKV * Math.ceil(nH / nKV / 8));
        const qv = mem.f32(q, T * nH * hd), ov = mem.f32(out, T * nH * hd), c = layer(kv, bs, nKV, hd);
        perToken(g, (one) => K.pagedAttention(qv, ov, c, one, nH, nKV, hd, scale, window));
        break;
      }
      case "paged_attention_decode_reduce_f32": {
        const [, , out, T, nH, hd, splits] = A;
        assert.equal(l.block, hd);
        assert.equal(splits, (launches[li - 1] as KernelLaunch).grid[2]);
        mem.f32(out, T * nH * hd);
        break; // the stand-in decode wrote `out` already
      }
      case "paged_attention_prefill_f32":
      case "paged_attention_generic_f32": {
        const generic = name === "paged_attention_generic_f32";
        const [q, out, kv, pos, starts, tables, T, S, nH, nKV] = A;
        const hd = generic ? A[10] : a.headDim;
        const [bs, stride, scale, window] = generic ? A.slice(11) : A.slice(10);
        const g = geo(pos, starts, tables, T, S, stride);
        if (generic) assert.ok(l.grid[0] * 4 >= nH && l.grid[1] === T);
        else assert.ok(l.grid[0] >= Math.ceil(T / 16) + S && l.grid[1] === nH);
        const qv = mem.f32(q, T * nH * hd), ov = mem.f32(out, T * nH * hd), c = layer(kv, bs, nKV, hd);
        perToken(g, (one) => K.pagedAttention(qv, ov, c, one, nH, nKV, hd, scale, window));
        break;
      }
      case "sample_f32":
        sampleStandIn(mem, l);
        break;
      case "apply_token_mask":
        maskStandIn(mem, l);
        break;
      case "lora_shrink_f32":
        loraShrinkStandIn(mem, l);
        break;
      case "lora_expand_f32":
        loraExpandStandIn(mem, l);
        break;
      default:
        throw new Error(`no stand-in for kernel ${l.kernel}`);
    }
  }
}

// ---- a fake CUDA session: the session's control flow over the fake device ----------------------

/** Launch-plan options of a fake session (the CUDA session sets both from its options). */
export interface FakeSessionOptions {
  /** LaunchEnv.fusedDecode (the decode-fusion pass); decodeCounters are always allocated. */
  readonly fusedDecode?: boolean;
  /** LaunchEnv.batchInvariant, and decode steps take bucket 1's split geometry (as the session does). */
  readonly batchInvariant?: boolean;
  /** Runs this plan instead of the engine's (same ops and weights; e.g. other arena offsets). */
  readonly plan?: EnginePlan;
  /** LaunchEnv.batchAttention, and such steps take batchDecodeSplit's geometry (as the session does). */
  readonly batchAttention?: boolean;
  /** LaunchEnv.batchAttention2 (decode_attention_batch2, FP8 caches included). */
  readonly batchAttention2?: boolean;
  /** LaunchEnv.batchAttention2Wide (decode_attention_batch2w for steps of BATCH2_WIDE_MIN_ROWS+ sequences). */
  readonly batchAttention2Wide?: boolean;
  /** LaunchEnv.batchAttention4 (decode_attention_batch4 for every step of more than 8 sequences, with batchAttention2). */
  readonly batchAttention4?: boolean;
  /** LaunchEnv.batchAttention4X (decode_attention_batch4x_*: batch4's bits). */
  readonly batchAttention4X?: boolean;
  /** LaunchEnv.fp8FusedQuant. */
  readonly fp8FusedQuant?: boolean;
  /** LaunchEnv.fp8Gemv1. */
  readonly fp8Gemv1?: boolean;
  /** LaunchEnv.fp8GemvRow / fp8GemvRowNorm. */
  readonly fp8GemvRow?: boolean;
  readonly fp8GemvRowNorm?: boolean;
  /** LaunchEnv.fp8DecodeSkSmall. */
  readonly fp8DecodeSkSmall?: boolean;
  /** LaunchEnv.fp8DecodeSk (with decodeSplitK). */
  readonly fp8DecodeSk?: boolean;
  /** LaunchEnv.fp8ShadowRope (with fp8FlashPrefill). */
  readonly fp8ShadowRope?: boolean;
  /** LaunchEnv.fp8GemmResidual (with gemmResidual). */
  readonly fp8GemmResidual?: boolean;
  /** LaunchEnv.fp8FreshPrompt (with fp8ShadowRope). */
  readonly fp8FreshPrompt?: boolean;
  /** LaunchEnv.fp8FlatQuant. */
  readonly fp8FlatQuant?: boolean;
  /** LaunchEnv.fp8AttnQuant. */
  readonly fp8AttnQuant?: boolean;
  /** LaunchEnv.fp8DecodeAttnQuant. */
  readonly fp8DecodeAttnQuant?: boolean;
  /** LaunchEnv.prefillTileScan. */
  readonly prefillTileScan?: boolean;
  /** LaunchEnv.prefillPdl. */
  readonly prefillPdl?: boolean;
  /** LaunchEnv.batchDecodePdl. */
  readonly batchDecodePdl?: boolean;
  /** LaunchEnv.fp8FastSilu. */
  readonly fp8FastSilu?: boolean;
  /** With pruneLastLayer: FP8 plans prune their last layer too (CudaSessionOptions.fp8PruneLastLayer). */
  readonly fp8PruneLastLayer?: boolean;
  /** LaunchEnv.wgmmaPrefill (flash_prefill_wg for bf16 prefill at head dims 64 / 128). */
  readonly wgmmaPrefill?: boolean;
  /** LaunchEnv.decodeSplitK: fused decode steps of up to 8 sequences on decode_attention_sk (decodeSkGeometry, as the session does). */
  readonly decodeSplitK?: boolean;
  /** LaunchEnv.gemvSplitK: skinny fused decode GEMVs on gemv_fused_ks. */
  readonly gemvSplitK?: boolean;
  /** LaunchEnv.gemmResidual: prefill linears add into the residual in the GEMM (beta 1). */
  readonly gemmResidual?: boolean;
  /** LaunchEnv.gemvXPre: fused decode GEMVs of ≤ 2 rows on gemv_fused*_xpre. */
  readonly gemvXPre?: boolean;
  /** LaunchEnv.fp8DecodeAttention: fused decode steps over a quantized KV cache on decode_attention_{fp8kv|int8kv}. */
  readonly fp8DecodeAttention?: boolean;
  /** fp8FlashPrefill: a quantized cache gets a bf16 shadow layer (LaunchEnv.kvShadow) for the flash prefill kernels. */
  readonly fp8FlashPrefill?: boolean;
  /** Last-layer pruning (LaunchEnv.lastLayerRows, StepShape.pruneRows), as the CUDA session's pruneLastLayer. @default true */
  readonly pruneLastLayer?: boolean;
  /** LaunchEnv.quantGemm: quantized linears of decode steps of 9..128 rows on quant_gemm_*. */
  readonly quantGemm?: boolean;
  /** LaunchEnv.quantTailNorm (with its quantNormScratch, f32 [8, hiddenSize / 16]). */
  readonly quantTailNorm?: boolean;
  /** LaunchEnv.quantGemvFast (the 16-row quantized GEMVs as quant_gemv_fast*). */
  readonly quantGemvFast?: boolean;
  /** LaunchEnv.quantGemvPairX (with quantGemvFast: tailNorm pairs of two uint4 linears as quant_gemv_fastx*). */
  readonly quantGemvPairX?: boolean;
  /** LaunchEnv.quantGemvPairDown (with quantGemvPairX: a uint4 gate_up → down pair as quant_gemv_fastxx*). */
  readonly quantGemvPairDown?: boolean;
  /** LaunchEnv.nvfp4Mma: NVFP4 linears that fit uploaded tiled (nvfp4_tiles.ts) and run nvfp4_mma.cu's stand-ins. */
  readonly nvfp4Mma?: boolean;
  /** LaunchEnv.nvfp4GemvK32 (with nvfp4Mma): one-row NVFP4 GEMVs on nvfp4_gemv_k32x's stand-ins. */
  readonly nvfp4GemvK32?: boolean;
  /** LaunchEnv.nvfp4NormFast. */
  readonly nvfp4NormFast?: boolean;
  /** LaunchEnv.nvfp4ActLaunch. */
  readonly nvfp4ActLaunch?: boolean;
  /** CudaFlags.eagerBucketGemm: eager decode steps plan with StepShape.gemmPickRows (their graph bucket), as the session does. */
  readonly eagerBucketGemm?: boolean;
  /** The session's decodeSkOneSplit (spans up to DECODE_SK_ONE_SPLIT keys in one decode_attention_sk split). */
  readonly decodeSkOneSplit?: boolean;
}

export class FakeCudaSession {
  readonly mem = new FakeMemory();
  readonly env: LaunchEnv;
  readonly layout;
  readonly io: bigint;
  readonly decodeCap: number;
  readonly buckets: number[];
  readonly numBlocks: number;
  readonly maxSeqLen: number;
  graphSteps = 0;
  eagerSteps = 0;
  /** The launch table of the last step run. */
  lastLaunches: Launch[] = [];

  readonly #eagerBucketGemm: boolean;
  readonly #skOne: number;

  constructor(readonly engine: Engine, numBlocks: number, readonly sms = 132, planOnly = false, opts: FakeSessionOptions = {}) {
    this.#eagerBucketGemm = !!opts.eagerBucketGemm;
    this.#skOne = opts.decodeSkOneSplit && !engine.plan.attributes.kvCache ? DECODE_SK_ONE_SPLIT : 0;
    const plan = opts.plan ?? engine.plan;
    if (!planOnly) assert.ok(plan.elementBytes === 4 || plan.elementBytes === 2, "the stand-ins are float32 and bf16");
    const a = plan.attributes;
    const mem = this.mem;
    const offsets = new Map<string, bigint>();
    // Quantized linears (issue 12): packed weights, f32 scales and zero points stay as stored (as the
    // CUDA session uploads them); the largest one's bf16 [N, K] is the prefill scratch.
    const raw = new Set<string>();
    let scratch = 0;
    for (const o of plan.ops) {
      if (o.type !== "linear" || !o.weightFormat) continue;
      for (const t of [o.weight, o.weightFormat.scales, o.weightFormat.zeros, o.weightFormat.preQuantScale]) if (t) raw.add(t);
      scratch = Math.max(scratch, o.outFeatures * o.inFeatures * 2);
    }
    // nvfp4Mma: NVFP4 codes and block scales tiled, as the CUDA session uploads them.
    const tiled = new Map<string, Uint8Array>();
    for (const o of plan.ops) {
      if (!opts.nvfp4Mma || o.type !== "linear" || o.weightFormat?.format !== "nvfp4" || !nvfp4TilesFit(o.outFeatures, o.inFeatures)) continue;
      const t = nvfp4Tiles(engine.readTensor(o.weight), engine.readTensor(o.weightFormat.scales), o.outFeatures, o.inFeatures);
      tiled.set(o.weight, t.codes).set(o.weightFormat.scales, t.scales);
    }
    for (const n of engine.tensorNames()) {
      if (raw.has(n)) {
        const b = tiled.get(n) ?? engine.readTensor(n), p = mem.alloc(b.length);
        mem.bytes(p, b.length).set(b);
        offsets.set(n, p);
        continue;
      }
      const f = engine.readFloat32(n);
      // Weights in the activation type, as the CUDA session uploads them (bf16: round to nearest even).
      const p = mem.alloc(f.length * plan.elementBytes);
      if (plan.elementBytes === 2) mem.u16(p, f.length).set(f32ToBf16(f));
      else mem.f32(p, f.length).set(f);
      offsets.set(n, p);
    }
    const fp8 = fp8ScratchLayout(plan), lowbit = lowbitScratchLayout(plan);
    const build = engine.config.build;
    this.maxSeqLen = build.maxSeqLen!;
    this.decodeCap = Math.min(plan.maxTokens, plan.maxSeqs, build.maxBatchSize * build.maxBeamWidth);
    this.buckets = decodeBuckets(this.decodeCap);
    this.numBlocks = numBlocks;
    const bs = build.tokensPerBlock;
    this.layout = stagingLayout(plan.maxTokens, plan.maxSeqs, Math.ceil(this.maxSeqLen / bs));
    this.io = mem.alloc(this.layout.words * 4);
    const invFreq = mem.alloc(8 * a.rope.invFreq.length);
    mem.f64(invFreq, a.rope.invFreq.length).set(a.rope.invFreq);
    const layerBytes = (numBlocks + 1) * 2 * bs * a.numKvHeads * a.headDim * (a.kvCache ? 1 : plan.elementBytes); // a quantized KV cache: bytes
    const attn = plan.ops.find((o) => o.type === "paged_attention")!;
    const nH = attn.type === "paged_attention" ? attn.numHeads : 0;
    const nKV = attn.type === "paged_attention" ? attn.numKvHeads : 1;
    const pruning = (opts.pruneLastLayer ?? true) && !planOnly ? planLastLayerRows(plan, plan.maxSeqs, opts.fp8PruneLastLayer) : undefined;
    this.env = {
      plan,
      elem: plan.elementBytes === 2 ? "bf16" : "f32",
      arena: mem.alloc(plan.arenaBytes),
      weight: (n) => offsets.get(n)!,
      logits: mem.alloc(plan.maxSeqs * a.vocabSize * 4),
      io: stagingPointers(this.layout, this.io),
      tokenMasks: mem.alloc(plan.maxSeqs * Math.ceil(a.vocabSize / 32) * 4),
      invFreq,
      kvBase: mem.alloc(a.numLayers * layerBytes),
      kvLayerBytes: layerBytes,
      partialO: mem.alloc(this.decodeCap * nH * MAX_DECODE_SPLITS * a.headDim * 4),
      partialML: mem.alloc(this.decodeCap * nH * MAX_DECODE_SPLITS * 8),
      tokensPerBlock: bs,
      blockStride: this.layout.blockStride,
      gemv: true,
      batchInvariant: opts.batchInvariant,
      fusedDecode: opts.fusedDecode,
      batchAttention: opts.batchAttention,
      batchAttention2: opts.batchAttention2,
      batchAttention2Wide: opts.batchAttention2Wide,
      batchAttention4: opts.batchAttention4,
      batchAttention4X: opts.batchAttention4X,
      fp8FusedQuant: opts.fp8FusedQuant,
      fp8Gemv1: opts.fp8Gemv1,
      ...(opts.fp8GemvRow ? { fp8GemvRow: true } : {}),
      ...(opts.fp8GemvRowNorm ? { fp8GemvRowNorm: true } : {}),
      ...(opts.fp8DecodeSkSmall ? { fp8DecodeSkSmall: true } : {}),
      fp8DecodeSk: opts.fp8DecodeSk,
      fp8ShadowRope: opts.fp8ShadowRope,
      fp8GemmResidual: opts.fp8GemmResidual,
      fp8FreshPrompt: opts.fp8FreshPrompt,
      fp8FlatQuant: opts.fp8FlatQuant,
      fp8AttnQuant: opts.fp8AttnQuant,
      fp8DecodeAttnQuant: opts.fp8DecodeAttnQuant,
      prefillTileScan: opts.prefillTileScan,
      ...(opts.prefillPdl ? { prefillPdl: true } : {}),
      ...(opts.batchDecodePdl ? { batchDecodePdl: true } : {}),
      fp8FastSilu: opts.fp8FastSilu,
      nvfp4Mma: opts.nvfp4Mma,
      nvfp4GemvBlocks: opts.nvfp4Mma ? 2 * sms : undefined,
      nvfp4GemvK32: opts.nvfp4GemvK32,
      nvfp4NormFast: opts.nvfp4NormFast,
      nvfp4ActLaunch: opts.nvfp4ActLaunch,
      wgmmaPrefill: opts.wgmmaPrefill,
      decodeSplitK: opts.decodeSplitK,
      gemvSplitK: opts.gemvSplitK,
      gemmResidual: opts.gemmResidual,
      ...(opts.gemvXPre ? { gemvXPre: true } : {}),
      fp8DecodeAttention: opts.fp8DecodeAttention,
      // A bf16 layer of the cache's shape (as CudaKvCache.shadow).
      ...(opts.fp8FlashPrefill && a.kvCache ? { kvShadow: mem.alloc((numBlocks + 1) * 2 * bs * a.numKvHeads * a.headDim * 2) } : {}),
      quantGemm: opts.quantGemm,
      // int32 [decodeCap × numKvHeads × ceil(G / 8)], zero (as the session allocates them).
      decodeCounters: mem.alloc(this.decodeCap * nKV * Math.ceil(nH / nKV / 8) * 4),
      ...(opts.quantTailNorm ? { quantTailNorm: true, quantNormScratch: mem.alloc(8 * Math.ceil(a.hiddenSize / 16) * 4) } : {}),
      ...(opts.quantGemvFast ? { quantGemvFast: true } : {}),
      ...(opts.quantGemvPairX ? { quantGemvPairX: true, quantGemvPairDown: !!opts.quantGemvPairDown } : {}),
      quantScratch: scratch > 0 ? mem.alloc(scratch) : undefined,
      fp8Scratch: fp8 ? mem.alloc(fp8.bytes) : undefined,
      lowbitScratch: lowbit ? mem.alloc(lowbit.bytes) : undefined,
      kvScales: a.kvCache ? kvScalesPtr(mem, a.kvCache.scales) : undefined,
      ...(pruning ? { lastLayerRows: { plan: pruning, scratch: mem.alloc(pruning.scratchBytes) } } : {}),
    };
  }

  #lora: CudaLoraTables | null = null;
  #loraTables(): CudaLoraTables {
    const mem = this.mem;
    this.#lora ??= new CudaLoraTables(
      (n) => {
        const ptr = mem.alloc(n);
        return {
          ptr,
          copyFromHost: (src, o) => mem.bytes(ptr + BigInt(o.offset ?? 0), src.byteLength).set(new Uint8Array(src.buffer, src.byteOffset, src.byteLength)),
          dispose: () => {},
        };
      },
      null,
      this.env.elem,
      this.layout.capTokens,
    );
    return this.#lora;
  }

  #group(): number {
    const attn = this.env.plan.ops.find((o) => o.type === "paged_attention") as { numHeads: number; numKvHeads: number };
    return attn.numHeads / attn.numKvHeads;
  }

  /** decode_attention_sk's geometry for spans up to maxLen (as the session's #skGeometry), when decodeSplitK is on. */
  #sk(maxLen: number): { sk?: { numSplits: number; target: number } } {
    if (!this.env.decodeSplitK) return {};
    const small = !!this.env.fp8DecodeSk && !!this.env.fp8DecodeSkSmall && this.env.plan.attributes.kvCache?.quantAlgo === "FP8";
    const g = decodeSkGeometry(
      maxLen,
      this.env.plan.attributes.numKvHeads,
      this.#group(),
      this.sms,
      this.#skOne,
      small ? FP8_DECODE_SK_SMALL_SPLIT : undefined,
    );
    return { sk: { numSplits: g.numSplits, target: g.splitSize } };
  }

  #batch(rows: number, lora: boolean): boolean {
    return usesBatchAttention(this.env.plan, this.env.elem, rows, {
      batchAttention: !!this.env.batchAttention,
      batchAttention2: !!this.env.batchAttention2,
      gemv: true,
      lora,
      gemvMaxRows: GEMV_MAX_ROWS,
    });
  }

  run(inp: StepInputs, graphs = true): { ids: Int32Array; logits: Float32Array } {
    const T = inp.tokenIds.length, S = inp.seqStarts.length - 1, R = inp.logitRows.length;
    const masks = inp.sampling?.tokenMasks && inp.sampling.tokenMasks.count > 0 ? inp.sampling.tokenMasks : null;
    const host = new ArrayBuffer(this.layout.words * 4);
    const i32 = new Int32Array(host), f32 = new Float32Array(host), u32 = new Uint32Array(host);
    let launches: Launch[];
    const decode = graphs && T <= this.decodeCap && isDecodeStep(inp);
    // Multi-LoRA: as the CUDA session, an unfused step with the adapters' tables (bucket rows without adapter).
    const env = inp.adapterIds
      ? {
        ...this.env,
        fusedDecode: false,
        lora: this.#loraTables().prepare(inp.loraSlots!, inp.adapterIds, inp.seqStarts, decode ? bucketFor(T, this.buckets) : T),
      }
      : this.env;
    if (decode) {
      const bucket = bucketFor(T, this.buckets);
      const a = this.env.plan.attributes;
      const words = packStep(this.layout, i32, f32, u32, inp, { bucket, scratchBlock: this.numBlocks });
      this.mem.bytes(this.io, words * 4).set(new Uint8Array(host, 0, words * 4));
      const attn = this.env.plan.ops.find((o) => o.type === "paged_attention") as { numHeads: number; numKvHeads: number; headDim: number };
      const attention = this.#batch(bucket, !!inp.adapterIds)
        ? {
          kind: "decode" as const,
          ...batchAttentionSplit(bucket, a.numKvHeads, this.#group(), this.maxSeqLen, this.maxSeqLen, this.sms, !!this.env.batchInvariant),
        }
        : [32, 64, 128].includes(a.headDim)
        ? {
          kind: "decode" as const,
          ...graphDecodeSplit(this.env.batchInvariant ? 1 : bucket, a.numKvHeads, attn.numHeads / attn.numKvHeads, this.maxSeqLen, this.env.elem, this.sms),
          ...this.#sk(this.maxSeqLen),
        }
        : { kind: "generic" as const };
      launches = planLaunches(env, { numTokens: bucket, numSeqs: bucket, numRows: bucket, attention, sample: !masks, writeKvFirst: inp.readsStepKv });
      this.graphSteps++;
    } else {
      const words = packStep(this.layout, i32, f32, u32, inp, null);
      this.mem.bytes(this.io, words * 4).set(new Uint8Array(host, 0, words * 4));
      let maxAtt = 1;
      for (const p of inp.positions) maxAtt = Math.max(maxAtt, p + 1);
      let attention = chooseAttention(this.env.plan, this.env.elem, T, S, maxAtt, this.decodeCap, this.sms);
      if (attention.kind === "decode" && this.#batch(T, !!inp.adapterIds)) {
        attention = {
          kind: "decode",
          ...batchAttentionSplit(T, this.env.plan.attributes.numKvHeads, this.#group(), maxAtt, this.maxSeqLen, this.sms, !!this.env.batchInvariant),
        };
      } else if (this.env.batchInvariant && attention.kind === "decode") {
        // Batch-invariant sessions: the graphs' split geometry (bucket 1) for eager decode steps too.
        const a = this.env.plan.attributes;
        attention = { kind: "decode", ...graphDecodeSplit(1, a.numKvHeads, this.#group(), this.maxSeqLen, this.env.elem, this.sms) };
      }
      if (attention.kind === "decode" && !this.#batch(T, !!inp.adapterIds)) attention = { ...attention, ...this.#sk(maxAtt) };
      const pick = this.#eagerBucketGemm && T <= this.decodeCap && isDecodeStep(inp) ? bucketFor(T, this.buckets) : T;
      launches = planLaunches(env, {
        numTokens: T,
        numSeqs: S,
        numRows: R,
        attention,
        sample: !masks,
        writeKvFirst: inp.readsStepKv,
        pruneRows: R < T && logitRowsIncreasing(inp),
        freshPrompts: freshPrompts(inp),
        maxSeqTokens: maxSeqTokens(inp),
        ...(pick !== T ? { gemmPickRows: pick } : {}),
      });
      this.eagerSteps++;
    }
    if (masks) {
      // As the CUDA session: the forward, then the masks (written now), apply_token_mask and the sampler.
      runLaunches(this.mem, launches, this.env);
      const m = resolveTokenMasks(masks);
      this.mem.i32(this.env.tokenMasks!, m.length).set(m);
      launches = sampleLaunches(this.env, R, true);
    }
    this.lastLaunches = launches;
    runLaunches(this.mem, launches, this.env);
    const V = this.env.plan.attributes.vocabSize;
    return { ids: this.mem.i32(this.env.io.sampledIds, R).slice(), logits: this.mem.f32(this.env.logits, R * V).slice() };
  }
}

/** A quantized KV cache's scales [numLayers, 2, numKvHeads] as f32 on the fake device. */
function kvScalesPtr(mem: FakeMemory, scales: readonly number[]): bigint {
  const p = mem.alloc(scales.length * 4);
  mem.f32(p, scales.length).set(scales);
  return p;
}

// ---- bf16 stand-ins ------------------------------------------------------------------------------

const cvt = new Float32Array(1), cvtBits = new Uint32Array(cvt.buffer);
/** A number rounded to float, then to bf16 bits (round to nearest even: the kernels' fromF<bf16_t>). */
export function toBf16Bits(x: number): number {
  cvt[0] = x;
  const b = cvtBits[0];
  return (b + 0x7fff + ((b >>> 16) & 1)) >>> 16;
}
/** The float a bf16 bit pattern holds. */
export function fromBf16Bits(h: number): number {
  cvtBits[0] = h << 16;
  return cvt[0];
}
/** x rounded to bf16. */
const rbf = (x: number): number => fromBf16Bits(toBf16Bits(x));
/** bf16(a + b) with the sum taken in float (the residual adds: add_rmsnorm, add_inplace, gemv_fused mode 1). */
const addBf16 = (a: number, b: number): number => rbf(Math.fround(a + b));
const cdiv = (a: number, b: number): number => Math.ceil(a / b);

/** lora_shrink_f32 stand-in: tmp[row, k, r] = scaling · x[row] · A[r] for each segment k of the row's adapter. */
function loraShrinkStandIn(mem: FakeMemory, l: KernelLaunch): void {
  const [x, rows, inF, tokenSlot, table, K, tmp, stride] = l.args as (bigint & number)[];
  assert.deepEqual([l.grid[0], l.grid[1]], [rows, K], "lora_shrink grid (rows, K)");
  const xs = mem.f32(x, rows * inF), slots = mem.i32(tokenSlot, rows), t = mem.f32(tmp, rows * K * stride);
  for (let row = 0; row < rows; row++) {
    if (slots[row] < 0) continue;
    for (let k = 0; k < K; k++) {
      const e = loraEntry(mem, table, slots[row] * K + k);
      if (e.rank <= 0) continue;
      assert.ok(e.rank <= stride, "rank <= rankStride");
      const A = mem.f32(e.a, e.rank * inF);
      for (let r = 0; r < e.rank; r++) {
        let acc = 0;
        for (let i = 0; i < inF; i++) acc += xs[row * inF + i] * A[r * inF + i];
        t[(row * K + k) * stride + r] = acc * e.scaling;
      }
    }
  }
}

/** lora_expand_f32 stand-in: out[row, o] += Σ_r tmp[row, k, r] · Bᵀ[r, o - outOffset] for the segment k holding o. */
function loraExpandStandIn(mem: FakeMemory, l: KernelLaunch): void {
  const [out, rows, outF, tokenSlot, table, K, tmp, stride] = l.args as (bigint & number)[];
  assert.ok(l.grid[0] * l.block >= outF && l.grid[1] === rows, "lora_expand grid (ceil(outF / 256), rows)");
  const ys = mem.f32(out, rows * outF), slots = mem.i32(tokenSlot, rows), t = mem.f32(tmp, rows * K * stride);
  for (let row = 0; row < rows; row++) {
    if (slots[row] < 0) continue;
    for (let k = 0; k < K; k++) {
      const e = loraEntry(mem, table, slots[row] * K + k);
      if (e.rank <= 0) continue;
      assert.ok(e.outOffset + e.outFeatures <= outF, "segment inside the output");
      const B = mem.f32(e.b, e.rank * e.outFeatures);
      for (let c = 0; c < e.outFeatures; c++) {
        let acc = 0;
        for (let r = 0; r < e.rank; r++) acc += t[(row * K + k) * stride + r] * B[r * e.outFeatures + c];
        ys[row * outF + e.outOffset + c] += acc;
      }
    }
  }
}

function loraEntry(mem: FakeMemory, table: bigint, i: number): { a: bigint; b: bigint; rank: number; outOffset: number; outFeatures: number; scaling: number } {
  const off = table + BigInt(i * 32);
  const [a, b] = mem.u64(off, 2);
  const [rank, outOffset, outFeatures] = mem.i32(off + 16n, 3);
  return { a, b, rank, outOffset, outFeatures, scaling: mem.f32(off + 28n, 1)[0] };
}

/** apply_token_mask stand-in: a row with maskIndex >= 0 gets -inf wherever its mask bit is 0. */
function maskStandIn(mem: FakeMemory, l: KernelLaunch): void {
  const [logits, V, masks, words, maskIndex] = l.args as (bigint & number)[];
  const R = l.grid[1];
  assert.ok(l.grid[0] * l.block >= V, "apply_token_mask covers the vocabulary");
  const lg = mem.f32(logits, R * V), idx = mem.i32(maskIndex, R);
  for (let r = 0; r < R; r++) {
    if (idx[r] < 0) continue;
    const m = mem.i32(masks + BigInt(idx[r] * words * 4), words);
    for (let i = 0; i < V; i++) if (((m[i >> 5] >>> (i & 31)) & 1) === 0) lg[r * V + i] = -Infinity;
  }
}

/** Sampler stand-in (sample_f32: fp32 logits, the same kernel for both element types). */
function sampleStandIn(mem: FakeMemory, l: KernelLaunch): void {
  const [logits, V, temp, topK, topP, minP, seed, step, outIds] = l.args as (bigint & number)[];
  const R = l.grid[0];
  const p: SamplingInputs = {
    temperature: mem.f32(temp, R),
    topK: mem.i32(topK, R),
    topP: mem.f32(topP, R),
    minP: mem.f32(minP, R),
    seed: mem.u32(seed, 2 * R),
    step: mem.i32(step, R),
  };
  const lg = mem.f32(logits, R * V), ids = mem.i32(outIds, R);
  for (let r = 0; r < R; r++) ids[r] = sampleRow(lg, r * V, V, p, r);
}

/** Fails when [a, a + aBytes) and [b, b + bBytes) overlap: blocks of the launch read what others write. */
function disjoint(kernel: string, what: string, a: bigint, aBytes: number, b: bigint, bBytes: number): void {
  if (a < b + BigInt(bBytes) && b < a + BigInt(aBytes)) {
    assert.fail(`${kernel}: ${what} overlap ([0x${a.toString(16)}, +${aBytes}) and [0x${b.toString(16)}, +${bBytes})): a data race on the GPU`);
  }
}

/** rmsnorm rows of bf16 values, the result rounded to bf16 (rmsnorm_bf16 and gemv_fused_norm's prologue). */
function normBf16(x: Float32Array, w: Float32Array, eps: number, rows: number, H: number): Float32Array {
  const out = new Float32Array(rows * H);
  K.rmsnorm(x, w, eps, rows, H, out);
  for (let i = 0; i < out.length; i++) out[i] = rbf(out[i]);
  return out;
}

/** silu(gate) · up of bf16 values, rounded to bf16 (silu_mul_bf16 and gemv_fused mode 2). */
function siluMulBf16(gateUp: Float32Array, T: number, I: number): Float32Array {
  const out = new Float32Array(T * I);
  K.siluMul(gateUp, out, T, I);
  for (let i = 0; i < out.length; i++) out[i] = rbf(out[i]);
  return out;
}

/** RoPE tables of one position: float(cos · scaling), float(sin · scaling) from double (rope_kv_write, decode_attention). */
function ropeTables(invFreq: Float64Array, pos: number, scaling: number): { cs: Float32Array; sn: Float32Array } {
  const half = invFreq.length, cs = new Float32Array(half), sn = new Float32Array(half);
  for (let i = 0; i < half; i++) {
    cs[i] = Math.cos(invFreq[i] * pos) * scaling;
    sn[i] = Math.sin(invFreq[i] * pos) * scaling;
  }
  return { cs, sn };
}

/** One rotated head (bf16 bits) of src[off .. off + hd). */
function rotateBf16(src: Float32Array, off: number, cs: Float32Array, sn: Float32Array, dst: Uint16Array, d: number): void {
  const half = cs.length;
  for (let i = 0; i < half; i++) {
    const a = src[off + i], b = src[off + half + i];
    dst[d + i] = toBf16Bits(a * cs[i] - b * sn[i]);
    dst[d + half + i] = toBf16Bits(b * cs[i] + a * sn[i]);
  }
}

/** Element offset of (pos, kvh) of K (which 0) or V (1) in a bf16 layer cache (common.cuh kvCacheOffset). */
function cacheOff(cache: { readonly length: number }, table: Int32Array, pos: number, which: 0 | 1, bs: number, nKV: number, hd: number, kvh: number): number {
  const blk = table[Math.floor(pos / bs)];
  const rowWidth = nKV * hd;
  const off = ((blk * 2 + which) * bs + (pos % bs)) * rowWidth + kvh * hd;
  if (!(blk >= 0 && off + hd <= cache.length)) assert.fail(`KV cache: block ${blk} of position ${pos} is outside the layer`);
  return off;
}

/** Attention of one query head (bf16 values) over keys [lo, pos] of a bf16 cache, the output rounded to bf16. */
function attendBf16(
  q: Float32Array,
  qo: number,
  cache: Uint16Array,
  table: Int32Array,
  lo: number,
  pos: number,
  bs: number,
  nKV: number,
  hd: number,
  kvh: number,
  scale: number,
  out: Uint16Array,
  oo: number,
): void {
  const n = pos + 1 - lo, sc = new Float64Array(n), acc = new Float64Array(hd);
  let max = -Infinity;
  for (let j = 0; j < n; j++) {
    const ko = cacheOff(cache, table, lo + j, 0, bs, nKV, hd, kvh);
    let dot = 0;
    for (let i = 0; i < hd; i++) dot += q[qo + i] * fromBf16Bits(cache[ko + i]);
    sc[j] = dot * scale;
    max = Math.max(max, sc[j]);
  }
  let sum = 0;
  for (let j = 0; j < n; j++) {
    sc[j] = Math.exp(sc[j] - max);
    sum += sc[j];
  }
  for (let j = 0; j < n; j++) {
    const vo = cacheOff(cache, table, lo + j, 1, bs, nKV, hd, kvh);
    for (let i = 0; i < hd; i++) acc[i] += (sc[j] / sum) * fromBf16Bits(cache[vo + i]);
  }
  for (let i = 0; i < hd; i++) out[oo + i] = toBf16Bits(acc[i]);
}

/** The sequence of packed token t (common.cuh seqOfToken). */
function seqOf(starts: Int32Array, S: number, t: number): number {
  let lo = 0, hi = S;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (starts[mid] <= t) lo = mid;
    else hi = mid;
  }
  return lo;
}

function runBf16Launches(mem: FakeMemory, launches: readonly Launch[]): void {
  const ld = (p: bigint, n: number): Float32Array => {
    const h = mem.u16(p, n), bits = new Uint32Array(n);
    for (let i = 0; i < n; i++) bits[i] = h[i] << 16;
    return new Float32Array(bits.buffer);
  };
  const st = (p: bigint, v: ArrayLike<number>): void => {
    const h = mem.u16(p, v.length);
    for (let i = 0; i < v.length; i++) h[i] = toBf16Bits(v[i]);
  };
  const layerOf = (kv: bigint): Uint16Array => mem.u16(kv, Math.floor(mem.left(kv) / 2));
  const linear = (x: Float32Array, W: bigint, bias: bigint, m: number, n: number, k: number): Float32Array => {
    const s = new Float32Array(m * n);
    K.linear(x, ld(W, n * k), bias ? ld(bias, n) : null, m, n, k, s);
    return s;
  };
  /** A packed uint4/uint8 weight [n, k] (llmrt's layout) dequantized to float32. */
  const dequant = (bits: 4 | 8, W: bigint, sc: bigint, z: bigint, n: number, k: number, group: number): Float32Array => {
    const ng = k / group;
    const t = {
      bits,
      rows: n,
      cols: k,
      groupSize: group,
      packed: mem.bytes(W, (n * k * bits) / 8),
      scales: mem.f32(sc, n * ng),
      zeros: z ? mem.bytes(z, n * ng) : null,
    };
    return Float32Array.from(dequantize(t));
  };
  const qlinear = (x: Float32Array, w: Float32Array, bias: bigint, m: number, n: number, k: number): Float32Array => {
    const s = new Float32Array(m * n);
    K.linear(x, w, bias ? ld(bias, n) : null, m, n, k, s);
    return s;
  };
  /** Attention of packed tokens over the cache (every decode / prefill / generic kernel). */
  const attention = (
    q: bigint,
    out: bigint,
    kv: bigint,
    posP: bigint,
    startsP: bigint,
    tablesP: bigint,
    T: number,
    S: number,
    nH: number,
    nKV: number,
    hd: number,
    bs: number,
    stride: number,
    scale: number,
    window: number,
    kernel: string,
    view?: Uint16Array,
  ): void => {
    disjoint(kernel, "q and out", q, T * nH * hd * 2, out, T * nH * hd * 2);
    const qv = ld(q, T * nH * hd), o = new Uint16Array(T * nH * hd), cache = view ?? layerOf(kv);
    const pos = mem.i32(posP, T), starts = mem.i32(startsP, S + 1), tables = mem.i32(tablesP, S * stride);
    for (let t = 0; t < T; t++) {
      const s = seqOf(starts, S, t), table = tables.subarray(s * stride, (s + 1) * stride);
      const lo = window > 0 ? Math.max(0, pos[t] + 1 - window) : 0;
      for (let h = 0; h < nH; h++) {
        attendBf16(qv, (t * nH + h) * hd, cache, table, lo, pos[t], bs, nKV, hd, Math.floor(h / (nH / nKV)), scale, o, (t * nH + h) * hd);
      }
    }
    mem.u16(out, o.length).set(o);
  };
  /**
   * A quantized KV layer as the _fp8kv / _int8kv attention kernels stage it: every byte as bf16(decode(q) · s), s the
   * scale of its (k | v, kv head) in the layer's scales [2, nKV] (elements past the layer: never read).
   */
  const fp8View = (algo: KvQuantAlgo, kv: bigint, scalesP: bigint, bs: number, nKV: number, hd: number): Uint16Array => {
    const b = mem.bytes(kv, mem.left(kv)), sc = mem.f32(scalesP, 2 * nKV), out = new Uint16Array(b.length), row = nKV * hd;
    for (let e = 0; e < b.length; e++) {
      out[e] = toBf16Bits(Math.fround(kvDecode(algo, b[e]) * sc[(Math.floor(e / (bs * row)) % 2) * nKV + Math.floor((e % row) / hd)]));
    }
    return out;
  };
  const kvAlgoOf = (kernel: string): KvQuantAlgo | null => (kernel.includes("_int8kv_") ? "INT8" : kernel.includes("_fp8kv_") ? "FP8" : null);
  let stepTokens = Infinity; // the step's rows (the embedding's): no launch computes rows past them
  const rowsOk = (kernel: string, m: number): void => {
    if (!(m >= 1 && m <= stepTokens)) assert.fail(`${kernel}: ${m} rows in a step of ${stepTokens} tokens`);
  };
  for (let li = 0; li < launches.length; li++) {
    const l = launches[li];
    if (l.kind === "gemm") {
      rowsOk("gemm", l.m);
      if (l.dtype === "fp8e4m3") {
        fp8GemmStandIn(mem, l);
        continue;
      }
      assert.equal(l.dtype, "bf16");
      disjoint("gemm", "A and D", l.a, l.m * l.k * 2, l.d, l.m * l.n * (l.outDtype === "fp32" ? 4 : 2));
      // alpha (lowbit linears' static scales): D = float32(alpha · A·Bᵀ) + bias, as cuBLASLt's epilogue.
      const s = linear(ld(l.a, l.m * l.k), l.b, l.alpha === undefined ? l.bias ?? 0n : 0n, l.m, l.n, l.k);
      if (l.alpha !== undefined) {
        const b = l.bias ? ld(l.bias, l.n) : null;
        for (let i = 0; i < s.length; i++) s[i] = b ? Math.fround(Math.fround(l.alpha * s[i]) + b[i % l.n]) : Math.fround(l.alpha * s[i]);
      }
      if (l.c !== undefined) {
        // beta 1 (gemmResidual): D = round(A·Bᵀ + C) in one rounding, as cuBLASLt's epilogue.
        const cv = ld(l.c, l.m * l.n);
        for (let i = 0; i < s.length; i++) s[i] = Math.fround(s[i] + cv[i]);
      }
      if (l.outDtype === "fp32") mem.f32(l.d, l.m * l.n).set(s);
      else st(l.d, s);
      continue;
    }
    if (l.kernel === NCCL_ALL_REDUCE) continue; // one rank (the fakes run no others): the sum is the input
    checkSignature(l);
    const A = l.args as (bigint & number)[];
    // flash_prefill_wgt_* (prefillTileScan): flash_prefill_wg_*'s tiles and bits.
    const name = l.kernel.replace(/_(hd|m)\d+$/, "").replace(/^flash_prefill_wgt_/, "flash_prefill_wg_");
    const suffix = Number(/_(?:hd|m)(\d+)$/.exec(l.kernel)?.[1] ?? 0); // head dim or GEMV rows of the entry point
    switch (name) {
      case "embedding_bf16": {
        const [ids, table, out, T, H, V] = A;
        assert.equal(l.grid[0], T);
        stepTokens = T;
        const idv = mem.i32(ids, T), tb = mem.u16(table, V * H), o = mem.u16(out, T * H);
        for (let t = 0; t < T; t++) {
          assert.ok(idv[t] >= 0 && idv[t] < V, `embedding: id ${idv[t]}`);
          o.set(tb.subarray(idv[t] * H, idv[t] * H + H), t * H);
        }
        break;
      }
      case "rmsnorm_bf16": {
        const [x, w, out, rows, H, eps] = A;
        assert.equal(l.grid[0], rows);
        st(out, normBf16(ld(x, rows * H), ld(w, H), eps, rows, H));
        break;
      }
      case "add_rmsnorm_bf16": {
        const [x, res, w, out, rows, H, eps] = A;
        assert.equal(l.grid[0], rows);
        const xv = ld(x, rows * H), r = ld(res, rows * H);
        for (let i = 0; i < r.length; i++) r[i] = addBf16(xv[i], r[i]);
        st(res, r);
        st(out, normBf16(r, ld(w, H), eps, rows, H)); // the norm of the rounded residual
        break;
      }
      case "add_inplace_bf16": {
        const [x, out, n] = A;
        const nn = Number(n), xv = ld(x, nn), o = ld(out, nn);
        for (let i = 0; i < nn; i++) o[i] = addBf16(xv[i], o[i]);
        st(out, o);
        break;
      }
      case "silu_mul_bf16": {
        const [gu, out, T, I] = A;
        assert.equal(l.grid[1], T);
        assert.ok(l.grid[0] * 256 * 8 >= I, "silu_mul grid covers the width");
        st(out, siluMulBf16(ld(gu, T * 2 * I), T, I));
        break;
      }
      case "fp8_rmsnorm_quant_bf16": {
        // rmsnorm_bf16 / add_rmsnorm_bf16, then fp8_quantize_bf16 of the rounded result (out 0: not stored).
        const [x, res, w, out, xq, rs, rows, H, eps, actScale, add] = A;
        assert.equal(l.grid[0], rows);
        let src = ld(x, rows * H);
        if (add) {
          const r = ld(res, rows * H);
          for (let i = 0; i < r.length; i++) r[i] = addBf16(src[i], r[i]);
          st(res, r);
          src = r;
        }
        const v = normBf16(src, ld(w, H), eps, rows, H);
        if (out) st(out, v);
        const { q, a } = quantizeRows(v, rows, H, actScale);
        mem.bytes(xq, q.length).set(q);
        mem.f32(rs, rows).set(a);
        break;
      }
      case "nvfp4_rmsnorm_act_bf16":
      case "nvfp4_rmsnorm_act_fast_bf16": {
        // rmsnorm_bf16 / add_rmsnorm_bf16, then nvfp4_act_mma_bf16 of the rounded result (not stored).
        const [x, res, w, xq, sx, rows, H, eps, a, add] = A;
        assert.equal(l.grid[0], rows);
        assert.equal(l.block, name.includes("_fast") ? 1024 : 256, `${l.kernel}: block`);
        let src = ld(x, rows * H);
        if (add) {
          const r = ld(res, rows * H);
          for (let i = 0; i < r.length; i++) r[i] = addBf16(src[i], r[i]);
          st(res, r);
          src = r;
        }
        nvfp4ActRows(mem, normBf16(src, ld(w, H), eps, rows, H), rows, H, a, xq, sx);
        break;
      }
      case "nvfp4_silu_mul_act_bf16": {
        const [gu, xq, sx, T, I, a] = A;
        assert.ok(l.grid[1] === T && l.grid[0] * 1024 >= I, "nvfp4_silu_mul_act grid");
        nvfp4ActRows(mem, siluMulBf16(ld(gu, T * 2 * I), T, I), T, I, a, xq, sx);
        break;
      }
      case "fp8_silu_mul_quant_bf16":
      case "fp8_silu_mul_quant_fast_bf16":
      case "fp8_silu_mul_quant_flat_bf16": {
        const [gu, xq, rs, T, I, actScale] = A;
        // The flat entry point: static scales only, (ceil(I / 2048), T) blocks.
        if (l.kernel.includes("_flat") || l.kernel.includes("_fast")) {
          assert.ok(actScale > 0 && l.grid[1] === T && l.grid[0] * 2048 >= I, `${l.kernel}: grid ${l.grid}`);
        } else assert.equal(l.grid[0], T);
        const { q, a } = quantizeRows(siluMulBf16(ld(gu, T * 2 * I), T, I), T, I, actScale);
        mem.bytes(xq, q.length).set(q);
        mem.f32(rs, T).set(a);
        break;
      }
      case "gather_rows_bf16": {
        const [x, rows, out, R, width] = A;
        assert.equal(l.grid[0], R);
        const r = mem.i32(rows, R), xv = mem.u16(x, (Math.max(...r) + 1) * width), o = mem.u16(out, R * width);
        for (let i = 0; i < R; i++) o.set(xv.slice(r[i] * width, r[i] * width + width), i * width);
        break;
      }
      case "qk_norm_bf16": {
        const [qkv, qw, kw, T, nH, nKV, hd, eps] = A;
        assert.equal(l.grid[1], T);
        assert.ok(l.grid[0] * 4 >= nH + nKV);
        const f = ld(qkv, T * (nH + 2 * nKV) * hd);
        K.qkNorm(f, ld(qw, hd), ld(kw, hd), eps, T, nH, nKV, hd);
        st(qkv, f);
        break;
      }
      case "gemv_bf16": {
        const [x, W, bias, y, m, n, k] = A;
        assert.ok(m >= 1 && m <= suffix, `${l.kernel}: m ${m}`);
        rowsOk(l.kernel, m);
        assert.equal(k % 8, 0);
        assert.deepEqual([...l.grid, l.block], [cdiv(n, 8), 1, 1, 256], `${l.kernel}: grid`);
        disjoint(l.kernel, "x and y", x, m * k * 2, y, m * n * 2); // every warp reads all of x
        st(y, linear(ld(x, m * k), W, bias, m, n, k));
        break;
      }
      case "gemv_fused_xpre_bf16":
      case "gemv_fused_norm_xpre_bf16":
      case "gemv_fused_ks_xpre_bf16":
      case "gemv_fused_norm_ks_xpre_bf16":
      case "gemv_fused_ks_bf16":
      case "gemv_fused_norm_ks_bf16":
      case "gemv_fused_bf16":
      case "gemv_fused_norm_bf16": {
        // gemv.cu (_xpre: x loaded with the weights, the same sums; m ≤ 2 only): (x, W, bias, y, normW, eps, m, n, k, mode,
        // prefetch, prefetchBytes); _ks: mode | ks << 4 (ks 2 or 4
        // warps per weight row, (k / 8) % ks == 0), ks times the blocks.
        const [x, W, bias, y, normW, eps, m, n, k, modeKs, prefetch, prefetchBytes] = A;
        const ksName = name.includes("_ks_"), ks = ksName ? modeKs >> 4 : 1, mode = ksName ? modeKs & 15 : modeKs;
        assert.ok(ksName ? (ks === 2 || ks === 4) && (k / 8) % ks === 0 : true, `${l.kernel}: ks ${ks}, k ${k}`);
        const norm = name.startsWith("gemv_fused_norm");
        assert.ok(m >= 1 && m <= suffix, `${l.kernel}: m ${m}`);
        if (name.includes("_xpre")) assert.ok(suffix <= 2, `${l.kernel}: instantiated for m ≤ 2`);
        rowsOk(l.kernel, m);
        assert.ok(k % 8 === 0 && x % 16n === 0n && W % 16n === 0n, `${l.kernel}: k ${k} or x / W not 16-byte aligned`);
        assert.ok(mode === 0 || mode === 1 || mode === 2 || mode === 3, `${l.kernel}: mode ${mode}`);
        if (mode === 2) assert.equal(n % 2, 0, "mode 2: n even");
        assert.deepEqual([...l.grid, l.block], [mode === 2 ? cdiv(n / 2, 4 / ks) : cdiv(n, 8 / ks), 1, 1, 256], `${l.kernel} mode ${mode}: grid`);
        if (norm) assert.ok(m * k <= 8192, `${l.kernel}: m × k = ${m * k} exceeds the staged 8192`);
        if (prefetchBytes > 0n) mem.bytes(prefetch, Number(prefetchBytes));
        const yBytes = mode === 3 ? m * n * 4 : mode === 2 ? m * (n / 2) * 2 : m * n * 2;
        // Every warp reads all of x (and the weight): nothing it reads may be written by another block.
        disjoint(l.kernel, "x and y", x, m * k * 2, y, yBytes);
        disjoint(l.kernel, "W and y", W, n * k * 2, y, yBytes);
        let xv = ld(x, m * k);
        if (norm) xv = normBf16(xv, ld(normW, k), eps, m, k);
        const s = linear(xv, W, bias, m, n, k);
        if (mode === 0) st(y, s);
        else if (mode === 1) {
          const r = ld(y, m * n);
          for (let i = 0; i < r.length; i++) r[i] = addBf16(rbf(s[i]), r[i]);
          st(y, r);
        } else if (mode === 2) {
          for (let i = 0; i < s.length; i++) s[i] = rbf(s[i]); // gate and up rounded as gemv_bf16 stores them
          st(y, siluMulBf16(s, m, n / 2));
        } else mem.f32(y, m * n).set(s);
        break;
      }
      case "quant_gemv_u4":
      case "quant_gemv_u8": {
        // quant_gemv.cu: (x, W, scales, zeros, bias, y, m, n, k, group), one warp per output row.
        const [x, W, sc, z, bias, y, m, n, k, group] = A;
        const bits = name.endsWith("u4") ? 4 : 8;
        assert.ok(m >= 1 && m <= suffix, `${l.kernel}: m ${m}`);
        rowsOk(l.kernel, m);
        assert.ok(k % (bits === 4 ? 32 : 16) === 0 && group % (bits === 4 ? 32 : 16) === 0, `${l.kernel}: k ${k}, group ${group}`);
        assert.deepEqual([...l.grid, l.block], [cdiv(n, 8), 1, 1, 256], `${l.kernel}: grid`);
        disjoint(l.kernel, "x and y", x, m * k * 2, y, m * n * 2);
        st(y, qlinear(ld(x, m * k), dequant(bits, W, sc, z, n, k, group), bias, m, n, k));
        break;
      }
      case "quant_gemv_fused_u4":
      case "quant_gemv_fused_u8":
      case "quant_gemv_fused_norm_u4":
      case "quant_gemv_fused_norm_u8":
      case "quant_gemv_fused_addnorm_u4":
      case "quant_gemv_fused_addnorm_u8":
      case "quant_gemv_fused_rs_u4":
      case "quant_gemv_fused_rs_u8":
      case "quant_gemv_fast_u4":
      case "quant_gemv_fast_u8":
      case "quant_gemv_fast_norm_u4":
      case "quant_gemv_fast_norm_u8":
      case "quant_gemv_fast_addnorm_u4":
      case "quant_gemv_fast_addnorm_u8":
      case "quant_gemv_fast_rs_u4":
      case "quant_gemv_fast_rs_u8":
      case "quant_gemv_fastx_addnorm_u4":
      case "quant_gemv_fastx_rs_u4":
      case "quant_gemv_fastxx_u4":
      case "quant_gemv_fastxx_addnorm_u4":
      case "quant_gemv_fastxx_rs_u4": {
        // quant_gemv.cu: (x, W, scales, zeros, bias, y, normW, eps, m, n, k, group, mode); modes and roundings of gemv_fused.
        // _addnorm: mode 1, then (xw, ssq): xw = bf16(new y · normW), ssq [m, n / 16] = each 16-row tile's Σ y².
        // _rs: normW is such an ssq [m, k / 16]: row r's sums times rsqrt(Σ ssq[r] / k + eps) before the bias.
        const [x, W, sc, z, bias, y, normW, eps, m, n, k, group, mode, xw, ssq] = A;
        const bits = name.endsWith("u4") ? 4 : 8, sup = bits === 4 ? 128 : 64, norm = name.includes("_norm_");
        const tail = name.includes("_addnorm_"), rs = name.includes("_rs_");
        // fastx / fastxx: xw is written, and the _rs form's x read, with each 8-element chunk in the mma's pair order (0, 4, 1,
        // 5, ..); fastxx: the other forms' x read so too, the _rs form's SiLU·mul output (mode 2) written so.
        const fx = name.startsWith("quant_gemv_fastx_"), fxx = name.startsWith("quant_gemv_fastxx_");
        const pairAt = (i: number): number => fx || fxx ? (i & ~7) | ((i & 3) << 1) | ((i >> 2) & 1) : i;
        assert.equal(A.length, tail ? 15 : 13, `${l.kernel}: arity`);
        if (tail) {
          assert.equal(mode, 1, `${l.kernel}: mode ${mode}`);
          // Each block writes its rows of xw while the others still read x: xw may sit on neither x nor y.
          disjoint(l.kernel, "y and xw", y, m * n * 2, xw, m * n * 2);
          disjoint(l.kernel, "x and xw", x, m * k * 2, xw, m * n * 2);
          assert.ok(n % 16 === 0 && ssq !== 0n, `${l.kernel}: n ${n}, ssq`);
        }
        assert.ok(m >= 1 && m <= 8, `${l.kernel}: m ${m}`);
        rowsOk(l.kernel, m);
        assert.ok(k % sup === 0 && group % sup === 0 && n % 16 === 0, `${l.kernel}: k ${k}, group ${group}, n ${n}`);
        assert.ok(x % 16n === 0n && W % 16n === 0n, `${l.kernel}: x / W not 16-byte aligned`);
        assert.ok(mode === 0 || mode === 1 || mode === 2 || mode === 3, `${l.kernel}: mode ${mode}`);
        assert.deepEqual([...l.grid, l.block], [n / 16, 1, 1, 256], `${l.kernel} mode ${mode}: grid`);
        if (norm) assert.ok(m * k <= 8192, `${l.kernel}: m × k = ${m * k} exceeds the staged 8192`);
        const yBytes = mode === 3 ? m * n * 4 : mode === 2 ? m * (n / 2) * 2 : m * n * 2;
        disjoint(l.kernel, "x and y", x, m * k * 2, y, yBytes);
        let xv = ld(x, m * k);
        if (rs || fxx) xv = xv.map((_, i) => xv[pairAt(i)]);
        if (norm) xv = normBf16(xv, ld(normW, k), eps, m, k);
        const s = qlinear(xv, dequant(bits, W, sc, z, n, k, group), rs ? 0n : bias, m, n, k);
        if (rs) {
          const part = mem.f32(normW, m * (k / 16)), b = bias ? ld(bias, n) : null;
          for (let r = 0; r < m; r++) {
            let ss = 0;
            for (let t = 0; t < k / 16; t++) ss += part[r * (k / 16) + t];
            const inv = 1 / Math.sqrt(ss / k + eps);
            for (let j = 0; j < n; j++) s[r * n + j] = Math.fround(s[r * n + j] * inv + (b ? b[j] : 0));
          }
        }
        if (mode === 0) st(y, s);
        else if (mode === 1) {
          const r = ld(y, m * n);
          for (let i = 0; i < r.length; i++) r[i] = addBf16(rbf(s[i]), r[i]);
          st(y, r);
          if (tail) {
            const w = ld(normW, n), part = mem.f32(ssq, m * (n / 16)), o = new Float32Array(m * n);
            for (let i = 0; i < r.length; i++) o[pairAt(i)] = rbf(r[i] * w[i % n]);
            st(xw, o);
            for (let row = 0; row < m; row++) {
              for (let t = 0; t < n / 16; t++) {
                let acc = 0;
                for (let e = 0; e < 16; e++) acc += r[row * n + 16 * t + e] ** 2;
                part[row * (n / 16) + t] = acc;
              }
            }
          }
        } else if (mode === 2) {
          for (let i = 0; i < s.length; i++) s[i] = rbf(s[i]);
          const o = siluMulBf16(s, m, n / 2), p = new Float32Array(o.length);
          for (let i = 0; i < o.length; i++) p[fxx && rs ? pairAt(i) : i] = o[i];
          st(y, p);
        } else mem.f32(y, m * n).set(s);
        break;
      }
      case "quant_gemm_u4":
      case "quant_gemm_u8": {
        // quant_gemm.cu: (x, W, scales, zeros, bias, y, ws, m, n, k, group); grid (ceil(m / MT), ceil(n / BN), splits), BN 128
        // (MT 64: 256).
        // One split: y = bf16(x Wᵀ + bias). Several: split z's fp32 partial over its superchunks into ws [z][m][n], no bias.
        const [x, W, sc, z, bias, y, ws, m, n, k, group] = A;
        const bits = name.endsWith("u4") ? 4 : 8, E = bits === 4 ? 128 : 64, MT = suffix;
        assert.ok(MT === 16 || MT === 32 || MT === 64, `${l.kernel}: row tile ${MT}`);
        assert.ok(m >= 1, `${l.kernel}: m ${m}`);
        rowsOk(l.kernel, m);
        assert.ok(k % E === 0 && k % group === 0 && group % (bits === 4 ? 32 : 16) === 0 && n % 16 === 0, `${l.kernel}: k ${k}, group ${group}, n ${n}`);
        assert.ok(x % 16n === 0n && W % 16n === 0n, `${l.kernel}: x / W not 16-byte aligned`);
        const S = l.grid[2], superchunks = k / E, per = cdiv(superchunks, S);
        assert.deepEqual([l.grid[0], l.grid[1], l.block], [cdiv(m, MT), cdiv(n, MT === 64 ? 256 : 128), 256], `${l.kernel}: grid`);
        assert.ok(S >= 1 && S <= superchunks, `${l.kernel}: ${S} splits of ${superchunks} superchunks`);
        disjoint(l.kernel, "x and y", x, m * k * 2, y, m * n * 2);
        const xv = ld(x, m * k), w = dequant(bits, W, sc, z, n, k, group);
        if (group % E !== 0 || MT === 64) {
          // Groups smaller than a superchunk, and every group of the 64-row tiles (QM_SA64): the kernel scales the weights
          // before the mma, the fp32 product rounded to bf16 (as quant_dequant_*). Larger groups of the 16 / 32-row tiles
          // scale the fp32 sums (the exact weights here).
          for (let i = 0; i < w.length; i++) w[i] = rbf(w[i]);
        }
        if (S === 1) {
          st(y, qlinear(xv, w, bias, m, n, k));
          break;
        }
        assert.ok(ws !== 0n, `${l.kernel}: split without a workspace`);
        disjoint(l.kernel, "x and ws", x, m * k * 2, ws, S * m * n * 4);
        const part = mem.f32(ws, S * m * n);
        for (let zi = 0; zi < S; zi++) {
          const c0 = Math.min(k, zi * per * E), c1 = Math.min(k, (zi + 1) * per * E);
          for (let r = 0; r < m; r++) {
            for (let j = 0; j < n; j++) {
              let acc = 0;
              for (let c = c0; c < c1; c++) acc += xv[r * k + c] * w[j * k + c];
              part[(zi * m + r) * n + j] = Math.fround(acc);
            }
          }
        }
        break;
      }
      case "quant_gemm_reduce": {
        // quant_gemm.cu: (ws, bias, y, m, n, splits): y = bf16(Σ_z ws[z] + bias), z in order.
        const [ws, bias, y, m, n, S] = A;
        assert.deepEqual([...l.grid, l.block], [cdiv((m * n) / 4, 256), 1, 1, 256], `${l.kernel}: grid`);
        assert.ok(n % 4 === 0 && S >= 2, `${l.kernel}: n ${n}, splits ${S}`);
        rowsOk(l.kernel, m);
        const part = mem.f32(ws, S * m * n), b = bias ? ld(bias, n) : null, out = new Float32Array(m * n);
        for (let i = 0; i < m * n; i++) {
          let acc = part[i];
          for (let zi = 1; zi < S; zi++) acc = Math.fround(acc + part[zi * m * n + i]);
          out[i] = b ? Math.fround(acc + b[i % n]) : acc;
        }
        st(y, out);
        break;
      }
      case "quant_dequant_u4_bf16":
      case "quant_dequant_u8_bf16": {
        const [W, sc, z, out, n, k, group] = A;
        assert.deepEqual([...l.grid, l.block], [cdiv((n * k) / 8, 256), 1, 1, 256], `${l.kernel}: grid`);
        st(out, dequant(name.includes("u4") ? 4 : 8, W, sc, z, n, k, group));
        break;
      }
      case "rope_kv_write_int8kv_bf16":
      case "rope_kv_write_fp8kv_bf16":
      case "rope_kv_write_shadow_int8kv_bf16":
      case "rope_kv_write_shadow_fp8kv_bf16": {
        // rope_kv_write.cu: the bf16 kernel's q; k and v as encode(x / s) into a byte cache (the CPU's kvEncode);
        // _shadow_: each k / v element also as bf16(decode(byte) · s) at the same element of the bf16 shadow layer.
        const algo = kvAlgoOf(l.kernel)!;
        const [qkv, q, kv, posP, startsP, tablesP, invFreqP, scaling, T, S, nH, nKV, hd, bs, stride, scalesP, shadowP] = A;
        const sh = l.kernel.includes("_shadow_") ? layerOf(shadowP) : null;
        assert.equal(l.grid[0], T);
        const W = (nH + 2 * nKV) * hd;
        disjoint(l.kernel, "qkv and q", qkv, T * W * 2, q, T * nH * hd * 2);
        const x = ld(qkv, T * W), qo = new Uint16Array(T * nH * hd), inv = mem.f64(invFreqP, hd / 2);
        const cache = mem.bytes(kv, mem.left(kv)), sc = mem.f32(scalesP, 2 * nKV), half = hd / 2;
        const pos = mem.i32(posP, T), starts = mem.i32(startsP, S + 1), tables = mem.i32(tablesP, S * stride);
        const off = (table: Int32Array, p: number, which: 0 | 1, h: number): number => {
          const blk = table[Math.floor(p / bs)], o = ((blk * 2 + which) * bs + (p % bs)) * nKV * hd + h * hd;
          if (!(blk >= 0 && o + hd <= cache.length)) assert.fail(`KV cache: block ${blk} of position ${p} is outside the layer`);
          return o;
        };
        for (let t = 0; t < T; t++) {
          const s = seqOf(starts, S, t), table = tables.subarray(s * stride, (s + 1) * stride);
          const { cs, sn } = ropeTables(inv, pos[t], scaling);
          for (let h = 0; h < nH; h++) rotateBf16(x, t * W + h * hd, cs, sn, qo, (t * nH + h) * hd);
          for (let h = 0; h < nKV; h++) {
            const ko = off(table, pos[t], 0, h), vo = off(table, pos[t], 1, h), r = t * W + (nH + h) * hd;
            for (let i = 0; i < half; i++) {
              const a = x[r + i], b = x[r + half + i];
              cache[ko + i] = kvEncode(algo, Math.fround(a * cs[i] - b * sn[i]), sc[h]);
              cache[ko + half + i] = kvEncode(algo, Math.fround(b * cs[i] + a * sn[i]), sc[h]);
            }
            for (let i = 0; i < hd; i++) cache[vo + i] = kvEncode(algo, x[t * W + (nH + nKV + h) * hd + i], sc[nKV + h]);
            if (sh) {
              for (let i = 0; i < hd; i++) {
                sh[ko + i] = toBf16Bits(Math.fround(kvDecode(algo, cache[ko + i]) * sc[h]));
                sh[vo + i] = toBf16Bits(Math.fround(kvDecode(algo, cache[vo + i]) * sc[nKV + h]));
              }
            }
          }
        }
        mem.u16(q, qo.length).set(qo);
        break;
      }
      case "rope_kv_write_pdl_bf16": // prefillPdl: the same results
      case "rope_kv_write_bf16": {
        const [qkv, q, kv, posP, startsP, tablesP, invFreqP, scaling, T, S, nH, nKV, hd, bs, stride] = A;
        assert.equal(l.grid[0], T);
        const W = (nH + 2 * nKV) * hd;
        disjoint(l.kernel, "qkv and q", qkv, T * W * 2, q, T * nH * hd * 2);
        const x = ld(qkv, T * W), qo = new Uint16Array(T * nH * hd), cache = layerOf(kv), inv = mem.f64(invFreqP, hd / 2);
        const pos = mem.i32(posP, T), starts = mem.i32(startsP, S + 1), tables = mem.i32(tablesP, S * stride);
        for (let t = 0; t < T; t++) {
          const s = seqOf(starts, S, t), table = tables.subarray(s * stride, (s + 1) * stride);
          const { cs, sn } = ropeTables(inv, pos[t], scaling);
          for (let h = 0; h < nH; h++) rotateBf16(x, t * W + h * hd, cs, sn, qo, (t * nH + h) * hd);
          for (let h = 0; h < nKV; h++) {
            rotateBf16(x, t * W + (nH + h) * hd, cs, sn, cache, cacheOff(cache, table, pos[t], 0, bs, nKV, hd, h));
            const vo = cacheOff(cache, table, pos[t], 1, bs, nKV, hd, h);
            for (let i = 0; i < hd; i++) cache[vo + i] = toBf16Bits(x[t * W + (nH + nKV + h) * hd + i]);
          }
        }
        mem.u16(q, qo.length).set(qo);
        break;
      }
      case "paged_attention_decode_int8kv_bf16":
      case "paged_attention_decode_fp8kv_bf16":
      case "paged_attention_decode_bf16": {
        const [q, out, kv, pos, starts, tables, pO, pML, T, S, nH, nKV, bs, stride, scale, window, splitSize, scalesP] = A;
        const kvAlgo = kvAlgoOf(l.kernel);
        const hd = suffix, numSplits = l.grid[2], p = mem.i32(pos, T);
        for (let t = 0; t < T; t++) {
          const span = window > 0 ? Math.min(p[t] + 1, window) : p[t] + 1;
          assert.ok(numSplits * splitSize >= span, `decode splits ${numSplits} × ${splitSize} do not cover ${span} keys`);
        }
        assert.ok(numSplits <= MAX_DECODE_SPLITS && splitSize % 64 === 0, `bf16 decode: ${numSplits} splits of ${splitSize}`);
        assert.equal(l.grid[0], nKV * cdiv(nH / nKV, 8));
        if (numSplits > 1) {
          mem.f32(pO, T * nH * numSplits * hd);
          mem.f32(pML, T * nH * numSplits * 2);
          const next = launches[li + 1];
          assert.ok(next?.kind === "kernel" && next.kernel === "paged_attention_decode_reduce_bf16", "split decode is followed by its reduce");
        }
        const view = kvAlgo ? fp8View(kvAlgo, kv, scalesP, bs, nKV, hd) : undefined;
        attention(q, out, kv, pos, starts, tables, T, S, nH, nKV, hd, bs, stride, scale, window, l.kernel, view);
        break;
      }
      case "paged_attention_decode_reduce_bf16": {
        const [, , out, T, nH, hd, splits] = A;
        assert.equal(l.block, hd);
        assert.equal(splits, (launches[li - 1] as KernelLaunch).grid[2]);
        mem.u16(out, T * nH * hd);
        break; // the stand-in decode wrote `out` already
      }
      case "kv_dequant_int8kv_bf16":
      case "kv_dequant_fp8kv_bf16":
      case "kv_dequant_prefix_int8kv_bf16":
      case "kv_dequant_prefix_fp8kv_bf16": {
        // kv_dequant.cu: every block a sequence's tokens attend (block j while j · bs <= its largest position) into the
        // same block of the bf16 shadow as bf16(decode(q) · s); other shadow blocks are left as they are.
        const [kv, shadow, posP, startsP, tablesP, S, nKV, hd, bs, stride, scalesP] = A;
        assert.ok(l.grid[0] === stride && l.grid[1] === S && l.grid[2] >= 1 && l.block === 256, `${l.kernel}: grid ${l.grid} block ${l.block}`);
        const algo = kvAlgoOf(l.kernel)!, row = nKV * hd, blockElems = 2 * bs * row;
        const bytes = mem.bytes(kv, mem.left(kv)), sh = layerOf(shadow), sc = mem.f32(scalesP, 2 * nKV);
        const starts = mem.i32(startsP, S + 1), pos = mem.i32(posP, starts[S]), tables = mem.i32(tablesP, S * stride);
        // _prefix_: not the rows of positions min..max of the sequence's tokens (rope_kv_write_shadow_* wrote them).
        const prefix = l.kernel.includes("_prefix_");
        for (let s = 0; s < S; s++) {
          let mx = -1, mn = Infinity;
          for (let t = starts[s]; t < starts[s + 1]; t++) {
            mx = Math.max(mx, pos[t]);
            mn = Math.min(mn, pos[t]);
          }
          for (let j = 0; j < stride && j * bs <= mx; j++) {
            const b = tables[s * stride + j], base = b * blockElems;
            if (!(b >= 0 && base + blockElems <= sh.length && base + blockElems <= bytes.length)) assert.fail(`${l.kernel}: block ${b} outside the layer`);
            for (let e = 0; e < blockElems; e++) {
              const p = j * bs + Math.floor((e % (bs * row)) / row);
              if (prefix && p >= mn && p <= mx) continue;
              sh[base + e] = toBf16Bits(Math.fround(kvDecode(algo, bytes[base + e]) * sc[(e >= bs * row ? nKV : 0) + Math.floor((e % row) / hd)]));
            }
          }
        }
        break;
      }
      case "paged_attention_prefill_mma_int8kv_bf16":
      case "paged_attention_prefill_mma_fp8kv_bf16":
      case "paged_attention_prefill_mma_bf16":
      case "flash_prefill_bf16":
      case "flash_prefill_wg_bf16":
      case "flash_prefill_wg_q8_bf16":
      case "paged_attention_prefill_bf16":
      case "paged_attention_generic_bf16": {
        const generic = name === "paged_attention_generic_bf16", kvAlgo = kvAlgoOf(l.kernel);
        const [q, out, kv, pos, starts, tables, T, S, nH, nKV] = A;
        const hd = generic ? A[10] : suffix;
        const [bs, stride, scale, window, scalesP] = generic ? A.slice(11) : A.slice(10);
        if (generic) assert.ok(l.grid[0] * 4 >= nH && l.grid[1] === T);
        else if (name === "flash_prefill_bf16") {
          const fg = flashPrefillGeometry(hd)!;
          assert.ok(l.grid[0] === nH && l.grid[1] >= cdiv(T, fg.rows) + S && l.block === fg.threads, `${l.kernel}: grid ${l.grid} block ${l.block}`);
        } else if (name === "flash_prefill_wg_bf16" || name === "flash_prefill_wg_q8_bf16") {
          const fg = flashPrefillWgGeometry(hd)!;
          // Every query tile has a block (flash_prefill_wgt with StepShape.maxSeqTokens: no more than that).
          const st = mem.i32(A[4], S + 1);
          let tiles = 0;
          for (let s = 0; s < S; s++) tiles += cdiv(st[s + 1] - st[s], fg.rows);
          assert.ok(l.grid[0] === nH && l.grid[1] >= tiles && l.block === fg.threads, `${l.kernel}: grid ${l.grid} block ${l.block}, ${tiles} tiles`);
          assert.equal(l.sharedBytes, fg.sharedMem, `${l.kernel}: dynamic shared memory`);
        } else assert.ok(l.grid[0] >= cdiv(T, name === "paged_attention_prefill_bf16" ? 16 : 64) + S && l.grid[1] === nH);
        const view = kvAlgo ? fp8View(kvAlgo, kv, scalesP, bs, nKV, hd) : undefined;
        attention(q, out, kv, pos, starts, tables, T, S, nH, nKV, hd, bs, stride, scale, window, l.kernel, view);
        if (name === "flash_prefill_wg_q8_bf16") {
          // fp8AttnQuant: the output rows as the next FP8 linear's e4m3 input (fp8_quantize_bf16's bytes, static scale).
          const [xq, xs, actScale] = A.slice(14);
          assert.ok(actScale > 0, `${l.kernel}: a static scale`);
          const { q: bytes, a: scales } = quantizeRows(ld(out, T * nH * hd), T, nH * hd, actScale);
          mem.bytes(xq, bytes.length).set(bytes);
          mem.f32(xs, T).set(scales);
        }
        break;
      }
      case "decode_attention_batch4_bf16":
      case "decode_attention_batch4w_bf16":
      case "decode_attention_batch4_fp8kv_bf16":
      case "decode_attention_batch4_q8_fp8kv_bf16":
      case "decode_attention_batch4x_bf16":
      case "decode_attention_batch4x_fp8kv_bf16":
      case "decode_attention_batch4x_q8_fp8kv_bf16":
      case "decode_attention_batch2w_bf16":
      case "decode_attention_batch2_fp8kv_bf16":
      case "decode_attention_fp8kv_bf16":
      case "decode_attention_g4_fp8kv_bf16":
      case "decode_attention_int8kv_bf16":
      case "decode_attention_g4_int8kv_bf16":
      case "decode_attention_batch2_bf16":
      case "decode_attention_g4_bf16":
      case "decode_attention_sk_bf16":
      case "decode_attention_sk_fp8kv_bf16":
      case "decode_attention_batch_bf16":
      case "decode_attention_bf16": {
        // decode_attention.cu: (qkv, out, kvCache, positions, seqStarts, blockTables, invFreq, attnScaling, partialO, partialML,
        //   counters, numTokens, numSeqs, numHeads, numKvHeads, tokensPerBlock, maxBlocksPerSeq, scale, window, splitSize, prefetch, prefetchBytes)
        const [
          qkv,
          out,
          kv,
          posP,
          startsP,
          tablesP,
          invFreqP,
          scaling,
          pO,
          pML,
          counters,
          T,
          S,
          nH,
          nKV,
          bs,
          stride,
          scale,
          window,
          splitArg,
          prefetch,
          prefetchBytes,
          scalesP,
        ] = A;
        // decode_attention_sk: the split target, and the least keys a split in bits 16 and up (decodeSkSplitArg).
        const sk = name.startsWith("decode_attention_sk_");
        const { target: splitSize, minKeys: skMinKeys } = sk ? decodeSkSplitOf(splitArg) : { target: splitArg, minKeys: 0 };
        assert.ok(!sk || skMinKeys === DECODE_SK_MIN_SPLIT || kvAlgoOf(l.kernel), `${l.kernel}: least keys a split ${skMinKeys} on a bf16 cache`);
        const hd = suffix, G = nH / nKV, W = (nH + 2 * nKV) * hd;
        // decode_attention_sk.cu: splitSize is the split target (1..64; bits 8..15 a span / 64 up to which a token
        // takes one split; bits 16+ the least keys a split / 64); grid z any >= 1 (blocks loop over their splits); dynamic
        // shared memory DECODE_SK_SMEM; partials at a split stride of MAX_DECODE_SPLITS.
        if (sk) {
          assert.ok(
            l.sharedBytes === (kvAlgoOf(l.kernel) ? DECODE_SK_FP8_SMEM : DECODE_SK_SMEM) && (splitSize & 0xff) >= 1 &&
              (splitSize & 0xff) <= MAX_DECODE_SPLITS && splitSize >>> 16 === 0 && l.grid[2] >= 1,
            `${l.kernel}: ${l.sharedBytes} B, target ${splitSize}`,
          );
        } else assert.ok(!l.sharedBytes, `${l.kernel}: no dynamic shared memory`);
        const numSplits = sk ? MAX_DECODE_SPLITS : l.grid[2];
        // decode_attention_batch.cu: the same ABI; 16 query heads per block, 64 threads at head dim 128; splitSize
        // is the split size itself (decode_attention: the least keys per split, daSplitKeys). decode_attention_batch2:
        // batchAttention2Threads per block; _fp8kv_: an e4m3 cache (k / v written as rope_kv_write_fp8kv_bf16 writes
        // them, attention over bf16(decode(q) · s): the kernel's f16 products with the scales folded agree to rounding).
        // decode_attention{_g4}_{fp8kv,int8kv} (DA_QFOLD=1, the default): the exact decode(q) with the scales folded into
        // q and the output, likewise within rounding of this stand-in's bf16(decode(q) · s) (DA_QFOLD=0: the same values).
        const kvAlgo = kvAlgoOf(l.kernel);
        const batch2 = name.startsWith("decode_attention_batch2");
        // decode_attention_batch4: batch2's ABI, 8 query heads a block (grid x numKvHeads · ceil(G / 8)).
        const batch4 = name.startsWith("decode_attention_batch4");
        const batch = batch2 || batch4 || name === "decode_attention_batch_bf16";
        assert.ok(
          Number.isInteger(G) &&
            l.block ===
              (batch4 ? batchAttention4Threads(hd, !!kvAlgo) : batch2 ? batchAttention2Threads(hd, !!kvAlgo) : batch && hd === 128 ? 64 : 128) &&
            (G <= 4 || !name.includes("_g4")),
          `${l.kernel}: G ${G}, block ${l.block}`,
        );
        const nBx = nKV * cdiv(G, batch && !batch4 ? 16 : 8); // blocks per token and split
        assert.ok(l.grid[0] === nBx && l.grid[1] >= T, `${l.kernel}: grid ${l.grid}`);
        assert.ok(splitSize >= 1 && numSplits <= MAX_DECODE_SPLITS, `${l.kernel}: ${numSplits} splits of ${splitSize}`);
        if (prefetchBytes > 0n) mem.bytes(prefetch, Number(prefetchBytes));
        // Blocks read q, k and v of their token's qkv row and write their heads of out. The one overlap the
        // kernel tolerates: a single token with out at qkv's address (out head h is then q head h, read by the
        // blocks of its kv group before the last of them writes it; k and v lie past out).
        const qkvBytes = T * W * 2, outBytes = T * nH * hd * 2;
        if (qkv < out + BigInt(outBytes) && out < qkv + BigInt(qkvBytes) && !(T === 1 && qkv === out)) {
          disjoint(l.kernel, "qkv and out", qkv, qkvBytes, out, outBytes);
        }
        const pos = mem.i32(posP, T), starts = mem.i32(startsP, S + 1), tables = mem.i32(tablesP, S * stride);
        rowsOk(l.kernel, T);
        const nz = Array.from(pos, (p) => {
          const lo = window > 0 ? Math.max(0, p + 1 - window) : 0;
          // the token's keys per split (decode_attention_batch: splitSize; decode_attention: daSplitKeys; _sk: dsSplitKeys)
          const sz = batch ? splitSize : sk ? decodeSkSplitKeys(p + 1 - lo, splitArg) : decodeSplitKeys(p + 1 - lo, splitSize, numSplits);
          if (sk) assert.ok(cdiv(p + 1 - lo, sz) <= (splitSize & 0xff), `${l.kernel}: ${cdiv(p + 1 - lo, sz)} splits above the target ${splitSize & 0xff}`);
          assert.ok(numSplits * sz >= p + 1 - lo, `${l.kernel}: ${numSplits} splits of ${sz} do not cover ${p + 1 - lo} keys`);
          return cdiv(p + 1 - lo, sz); // non-empty splits of the token
        });
        if (nz.some((z) => z > 1)) {
          // Tokens of several splits go through partialO [T, nH, splits, hd] and partialML [.., 2] (f32) and the
          // int32 split counters [T, grid.x], zero before the launch (the merging block resets them).
          const oBytes = T * nH * numSplits * hd * 4, mlBytes = T * nH * numSplits * 8, cBytes = T * nBx * 4;
          for (const [w, p, b] of [["partialO", pO, oBytes], ["partialML", pML, mlBytes], ["counters", counters, cBytes]] as const) {
            disjoint(l.kernel, `qkv and ${w}`, qkv, qkvBytes, p, b);
            disjoint(l.kernel, `out and ${w}`, out, outBytes, p, b);
          }
          disjoint(l.kernel, "partialO and partialML", pO, oBytes, pML, mlBytes);
          disjoint(l.kernel, "partialO and counters", pO, oBytes, counters, cBytes);
          disjoint(l.kernel, "partialML and counters", pML, mlBytes, counters, cBytes);
          const c = mem.i32(counters, T * nBx), po = mem.f32(pO, T * nH * numSplits * hd), pml = mem.f32(pML, T * nH * numSplits * 2);
          assert.ok(c.every((v) => v === 0), `${l.kernel}: split counters not zero before the launch`);
          // The partials a split writes (here: its split number + 1, poisoning what a later read would expect).
          for (let t = 0; t < T; t++) {
            if (nz[t] < 2) continue;
            for (let h = 0; h < nH; h++) {
              for (let z = 0; z < nz[t]; z++) {
                const th = (t * nH + h) * numSplits + z;
                pml.fill(z + 1, th * 2, th * 2 + 2);
                po.fill(z + 1, th * hd, th * hd + hd);
              }
            }
          }
        }
        const x = ld(qkv, T * W), inv = mem.f64(invFreqP, hd / 2);
        const cache: Uint16Array | Uint8Array = kvAlgo ? mem.bytes(kv, mem.left(kv)) : layerOf(kv);
        const qo = new Uint16Array(T * nH * hd), o = new Uint16Array(T * nH * hd);
        const tableOf = (t: number): Int32Array => {
          const s = seqOf(starts, S, t);
          return tables.subarray(s * stride, (s + 1) * stride);
        };
        // A block takes its own key from qkv and every earlier key from the cache while other blocks write
        // theirs: a key another token of the launch writes must be in the cache already (readsStepKv steps).
        const before = mem.strictKvReads ? cache.slice() : cache, writer = new Map<number, number>();
        if (mem.strictKvReads) {
          for (let t = 0; t < T; t++) for (let h = 0; h < nKV; h++) writer.set(cacheOff(cache, tableOf(t), pos[t], 0, bs, nKV, hd, h), t);
        }
        // RoPE of q and k, the token's k and v into the cache (bits as rope_kv_write_bf16)...
        for (let t = 0; t < T; t++) {
          const { cs, sn } = ropeTables(inv, pos[t], scaling), table = tableOf(t);
          for (let h = 0; h < nH; h++) rotateBf16(x, t * W + h * hd, cs, sn, qo, (t * nH + h) * hd);
          for (let h = 0; h < nKV; h++) {
            const ko = cacheOff(cache, table, pos[t], 0, bs, nKV, hd, h), vo = cacheOff(cache, table, pos[t], 1, bs, nKV, hd, h);
            if (kvAlgo) {
              const sc = mem.f32(scalesP, 2 * nKV), half = hd / 2, r = t * W + (nH + h) * hd;
              for (let i = 0; i < half; i++) {
                const a = x[r + i], b = x[r + half + i];
                cache[ko + i] = kvEncode(kvAlgo, Math.fround(a * cs[i] - b * sn[i]), sc[h]);
                cache[ko + half + i] = kvEncode(kvAlgo, Math.fround(b * cs[i] + a * sn[i]), sc[h]);
              }
              for (let i = 0; i < hd; i++) cache[vo + i] = kvEncode(kvAlgo, x[t * W + (nH + nKV + h) * hd + i], sc[nKV + h]);
            } else {
              rotateBf16(x, t * W + (nH + h) * hd, cs, sn, cache as Uint16Array, ko);
              for (let i = 0; i < hd; i++) cache[vo + i] = toBf16Bits(x[t * W + (nH + nKV + h) * hd + i]);
            }
          }
        }
        for (let t = 0; t < T && writer.size > 0; t++) {
          const lo = window > 0 ? Math.max(0, pos[t] + 1 - window) : 0, table = tableOf(t);
          for (let p = lo; p < pos[t]; p++) {
            for (let h = 0; h < nKV; h++) {
              const ko = cacheOff(cache, table, p, 0, bs, nKV, hd, h), w = writer.get(ko), vo = cacheOff(cache, table, p, 1, bs, nKV, hd, h);
              if (w === undefined || w === t) continue;
              for (let i = 0; i < hd; i++) {
                assert.ok(
                  before[ko + i] === cache[ko + i] && before[vo + i] === cache[vo + i],
                  `${l.kernel}: token ${t} reads position ${p}, which token ${w} of the same launch writes (not in the cache before it)`,
                );
              }
            }
          }
        }
        // ... then attention of the bf16-rounded q over the window (split and merged on the GPU).
        const qf = new Float32Array(qo.length);
        for (let i = 0; i < qo.length; i++) qf[i] = fromBf16Bits(qo[i]);
        const keys = kvAlgo ? fp8View(kvAlgo, kv, scalesP, bs, nKV, hd) : cache as Uint16Array;
        for (let t = 0; t < T; t++) {
          const lo = window > 0 ? Math.max(0, pos[t] + 1 - window) : 0, table = tableOf(t);
          for (let h = 0; h < nH; h++) attendBf16(qf, (t * nH + h) * hd, keys, table, lo, pos[t], bs, nKV, hd, Math.floor(h / G), scale, o, (t * nH + h) * hd);
        }
        if (name === "decode_attention_batch4_q8_fp8kv_bf16" || name === "decode_attention_batch4x_q8_fp8kv_bf16") {
          // fp8DecodeAttnQuant: the output rows as the next FP8 linear's e4m3 input (fp8_quantize_bf16's bytes, static scale).
          const [xs, actScale] = A.slice(23);
          assert.ok(actScale > 0, `${l.kernel}: a static scale`);
          const { q: bytes, a: scales } = quantizeRows(Float32Array.from(o, fromBf16Bits), T, nH * hd, actScale);
          mem.bytes(out, bytes.length).set(bytes);
          mem.f32(xs, T).set(scales);
        } else mem.u16(out, o.length).set(o);
        break;
      }
      case "sample_f32":
        sampleStandIn(mem, l);
        break;
      case "apply_token_mask":
        maskStandIn(mem, l);
        break;
      default:
        if (fp8KernelStandIn(mem, l, stepTokens) || lowbitKernelStandIn(mem, l, stepTokens) || nvfp4MmaKernelStandIn(mem, l, stepTokens)) break;
        throw new Error(`no stand-in for kernel ${l.kernel}`);
    }
  }
}

// ---- models ------------------------------------------------------------------------------------

export function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return (s / 4294967296) * 2 - 1;
  };
}

/**
 * A random in-memory checkpoint of a small Llama-family config. `bf16Exact`: every weight is a bf16
 * value, so a bf16 engine holds exactly the float32 engine's weights. Weights are uniform in
 * ±weightScale (norm weights 1 ± 0.2).
 */
export function randomModel(raw: Record<string, unknown>, seed: number, bf16Exact = false, weightScale = 0.3): LlamaForCausalLM {
  const c = parsePretrainedConfig({
    hidden_act: "silu",
    rms_norm_eps: 1e-6,
    rope_theta: 10000,
    torch_dtype: "float32",
    bos_token_id: 1,
    eos_token_id: 2,
    ...raw,
  });
  const net = new LlamaForCausalLM(c, { has: () => false, readFloat32: () => new Float32Array(0), info: () => ({ shape: [] }), close() {} }).toNetwork();
  const r = rng(seed);
  const tensors = new Map<string, Float32Array>();
  const q = c.numAttentionHeads * c.headDim, kv = c.numKeyValueHeads * c.headDim;
  const shapes = new Map<string, number[]>();
  for (const w of net.weights.values()) {
    const cols = w.shape.length === 2 ? w.shape[1] : 1;
    for (const s of w.source) {
      if (tensors.has(s)) continue;
      // Rows of each fused part: q | k | v, gate | up; single sources take the whole shape.
      const rows = w.source.length === 1 ? w.shape[0] : /q_proj/.test(s) ? q : /[kv]_proj/.test(s) ? kv : c.intermediateSize;
      const norm = s.includes("norm");
      tensors.set(s, Float32Array.from({ length: rows * cols }, () => (norm ? 1 + 0.2 * r() : weightScale * r())));
      if (bf16Exact) tensors.set(s, bf16ToF32(f32ToBf16(tensors.get(s)!)));
      shapes.set(s, w.shape.length === 2 ? [rows, cols] : [rows]);
    }
  }
  const ws: WeightSource = {
    has: (n) => tensors.has(n),
    readFloat32: (n) => tensors.get(n)!,
    info: (n) => ({ shape: shapes.get(n)! }),
    close() {},
  };
  return new LlamaForCausalLM(c, ws);
}

/** A step of `seqs` = [(tokens, startPos)] with shuffled blocks; each sequence's last token is a logits row. */
export function step(seqs: { ids: number[]; pos: number; blocks: number[] }[], maxBlocks: number, sampling = true): StepInputs {
  const T = seqs.reduce((a, s) => a + s.ids.length, 0);
  const tokenIds = new Int32Array(T), positions = new Int32Array(T), seqStarts = new Int32Array(seqs.length + 1);
  const blockTables = new Int32Array(seqs.length * maxBlocks).fill(-7), logitRows = new Int32Array(seqs.length);
  let t = 0;
  seqs.forEach((s, i) => {
    seqStarts[i] = t;
    s.ids.forEach((id, j) => {
      tokenIds[t] = id;
      positions[t++] = s.pos + j;
    });
    logitRows[i] = t - 1;
    blockTables.set(s.blocks, i * maxBlocks);
  });
  seqStarts[seqs.length] = t;
  const R = seqs.length;
  const sp: SamplingInputs | undefined = sampling
    ? {
      temperature: Float32Array.from({ length: R }, (_, r) => (r % 2 ? 0.8 : 0)),
      topK: new Int32Array(R).fill(0),
      topP: new Float32Array(R).fill(0.9),
      minP: new Float32Array(R),
      seed: Uint32Array.from({ length: 2 * R }, (_, i) => i * 7 + 1),
      step: Int32Array.from({ length: R }, (_, r) => r),
    }
    : undefined;
  return { tokenIds, positions, seqStarts, blockTables, maxBlocksPerSeq: maxBlocks, logitRows, sampling: sp };
}

export function maxRelDiff(a: Float32Array, b: Float32Array): number {
  let d = 0, m = 0;
  for (let i = 0; i < a.length; i++) {
    d = Math.max(d, Math.abs(a[i] - b[i]));
    m = Math.max(m, Math.abs(b[i]));
  }
  return d / m;
}
