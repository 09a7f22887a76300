/**
 * Row-major GEMM on cuBLASLt: `D[m,n] = alpha · A[m,k] · op(B) + beta · C[m,n] (+ bias[n])`, with
 * B stored `[k, n]`, or `[n, k]` (a linear layer's weight) when `transB`. bf16, fp16 and fp32
 * inputs accumulate in fp32; fp8 e4m3 inputs (sm_89+, `transB` only) write bf16/fp16/fp32.
 *
 * cuBLASLt is column-major, and a row-major matrix is its transpose seen column-major, so
 * `D = A·B` (row-major) is computed as `Dᵀ = Bᵀ·Aᵀ` (column-major): cuBLAS's A operand is our B and
 * its B operand our A, with no copies. Descriptors, layouts and the heuristic's algorithm are made
 * once per (shape, dtypes, transB, bias, alignment) and cached; the workspace is owned.
 *
 * Batch invariance (`batchInvariant`): cuBLASLt's heuristic picks another algorithm for another M, and
 * split-K / stream-K ones reduce over K in another order, so a row of D would round differently when
 * the same row is computed inside a bigger batch. With the option, one algorithm is pinned per
 * (n, k, dtypes, transB, bias, alignment) for every M: the heuristic's first candidate for a fixed
 * reference M whose SPLITK_NUM is 1 and REDUCTION_SCHEME none (checked with cublasLtMatmulAlgoCheck
 * for each M). One kernel, one tile, one K loop: each output element's reduction order no longer
 * depends on M.
 *
 * M buckets (`invariantBuckets`, on by default): an algorithm picked for a small M (256) runs a 2048-row
 * prefill ~35% slower than the heuristic's pick for 2048 rows, and vice versa. So a plan of M rows may
 * use the non-split-K pick for its bucket (the power of two ≤ M, 16 … 16384) — but only once that
 * algorithm was shown, on this device, to round every row bitwise as the reference-M algorithm does:
 * both run over the same random rows against the layer's own weight and the outputs are compared byte
 * for byte (once per (n, k, …, algorithm); bf16/fp16 in, bf16/fp16 or fp32 out). Non-split-K algorithms that agree
 * there agree for every M, since neither's per-element reduction depends on M; one that disagrees (another
 * instruction shape, another K order) is never used, and its bucket keeps the reference algorithm.
 *
 * Another M's pick (`GemmArgs.pickM`, per-M tuned calls only): a decode graph of a 16-row bucket runs its GEMMs at M = 16,
 * while an eager decode step of 12 sequences runs them at M = 12, and the two M are tuned apart (the heuristic's
 * candidates for each M, the fastest kept), so under load one may take a split-K algorithm the other does not and round
 * the same rows differently. With `pickM` the call takes the algorithm a call of pickM rows takes: the heuristic over the
 * pickM-row layouts, that call's own timing-cache entry (timed at pickM rows into scratch rows when missing, so the graph's
 * entry is reused, or timed once for both), then cublasLtMatmulAlgoCheck at the call's own M (rejected: the call's own
 * pick, counted in `numPickFallbacks`). A row of D then rounds as in the pickM-row call wherever cuBLASLt's per-row results
 * of one algorithm do not depend on M (its tile and K split do not).
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { llmrtCacheDir, sha256Hex, writeFileAtomic } from "../../../ffi/cache.ts";
import { checkCublas, noteCleanupFailures } from "../../../ffi/check.ts";
import { cublasLt, LT } from "../../../ffi/cublaslt.ts";
import { CudaError } from "../../../ffi/errors.ts";
import type { CudaDevice } from "../../cuda/device.ts";
import type { DeviceBuffer } from "../../cuda/memory.ts";
import { armFinalizer, disarmFinalizer, DisposedError, type Release } from "../../cuda/owner.ts";
import type { Stream } from "../../cuda/stream.ts";
import { bindContext } from "../../cuda/driver.ts";
import { ValidationError } from "../../util/errors.ts";

/** Element types the GEMM takes. */
export type GemmDtype = "fp32" | "fp16" | "bf16" | "fp8e4m3";

const DTYPES: Readonly<Record<GemmDtype, { readonly cuda: number; readonly bytes: number }>> = {
  fp32: { cuda: LT.R_32F, bytes: 4 },
  fp16: { cuda: LT.R_16F, bytes: 2 },
  bf16: { cuda: LT.R_16BF, bytes: 2 },
  fp8e4m3: { cuda: LT.R_8F_E4M3, bytes: 1 },
};

/** A device address: a buffer (its start) or a bigint. */
export type DevicePtr = DeviceBuffer | bigint;

/** One GEMM call. Shapes are row-major. */
export interface GemmArgs {
  readonly m: number;
  readonly n: number;
  readonly k: number;
  /** Type of A and B. */
  readonly dtype: GemmDtype;
  /** Type of D (and C and bias). @default dtype, or "bf16" for fp8e4m3 */
  readonly outDtype?: Exclude<GemmDtype, "fp8e4m3">;
  /** [m, k] */
  readonly a: DevicePtr;
  /** [k, n], or [n, k] when transB */
  readonly b: DevicePtr;
  /** [m, n] output */
  readonly d: DevicePtr;
  /** B is stored [n, k] (nn.Linear weight layout). @default false */
  readonly transB?: boolean;
  /** [n] added to every row (cuBLASLt bias epilogue). */
  readonly bias?: DevicePtr | null;
  /** [m, n] added with weight `beta` (may be `d` itself for an in-place residual add). */
  readonly c?: DevicePtr | null;
  /** @default 1 */
  readonly alpha?: number;
  /** @default 1 when `c` is given, else 0 */
  readonly beta?: number;
  /** fp8 only: device f32 scale of A / B (dequantization factors). @default 1 */
  readonly aScale?: DevicePtr | null;
  readonly bScale?: DevicePtr | null;
  /**
   * fp8 only: cuBLASLt's fast accumulation (CUBLASLT_MATMUL_DESC_FAST_ACCUM): the tensor cores' partial sums are
   * not promoted to fp32 every few k-steps. Faster on Hopper, less exact over long k. @default false
   */
  readonly fastAccum?: boolean;
  /** @default the legacy default stream */
  readonly stream?: Stream | null;
  /** This call's rows must not depend on M (see GemmOptions.batchInvariant). @default the GEMM's batchInvariant */
  readonly batchInvariant?: boolean;
  /**
   * Per-M tuned calls (not batch-invariant): choose the algorithm as a call of `pickM` rows would, run `m` (see the file
   * comment; an eager decode step takes its graph bucket's picks). Ignored by batch-invariant calls. @default m
   */
  readonly pickM?: number;
}

/** Options of `CublasLtGemm`. */
export interface GemmOptions {
  /** Workspace bytes offered to cuBLASLt (Hopper wants 32 MiB). @default 33554432 */
  readonly workspaceBytes?: number;
  /**
   * Time the heuristic's candidate algorithms on the first call of each shape and keep the fastest,
   * remembered in a timing cache on disk keyed by GPU, driver and cuBLASLt version (off: the
   * heuristic's first choice). Batch-invariant calls (with `invariantBuckets`) in buckets of 512 rows or more
   * take the fastest non-split-K candidate for the bucket's M that passes the bucket algorithms' bitwise check
   * (timed once per shape and bucket). @default false
   */
  readonly tune?: boolean;
  /**
   * Batch-invariant tuning: how many of the heuristic's non-split-K candidates for a bucket are timed (a count other
   * than the default keys its own timing-cache entries). @default 8
   */
  readonly tuneCandidates?: number;
  /**
   * Tuning of calls that are not batch-invariant (decode steps of more than 8 sequences): time the heuristic's first
   * COLD_CANDIDATES candidates (not TUNE_CANDIDATES) with B read from copies that together exceed the L2 cache, as a
   * decode step reads each layer's weight once from DRAM; otherwise a weight of a few MB is timed from L2 after its
   * first call. Kept under their own timing-cache keys. H200 session 11 (bench/decode_gemm.ts): no faster pick for
   * llama-3.2-1b's linears at M = 64 (within 1%), so the engine does not use it. @default false
   */
  readonly tuneCold?: boolean;
  /**
   * With `tuneCold`: each heuristic candidate is also timed as split-K variants (2, 4, 8 or 16 slices of K, each
   * reduction scheme cuBLASLt accepts for the problem), so skinny-N decode GEMMs can spread over every SM (H200 session
   * 11: the llama-3.2-1b set at M = 64 0.870 → 0.861 ms, not used by the engine). @default false
   */
  readonly tuneSplitK?: boolean;
  /** Folder of the timing cache; `null` keeps it in memory only. @default `$LLMRT_CACHE_DIR/gemm` */
  readonly timingCacheDir?: string | null;
  /**
   * Pin one non-split-K algorithm per (n, k, dtypes, transB, bias, alignment) for every M, so that a
   * row of D is bitwise the same whatever the number of rows (see the file comment; with `tune`, only among
   * algorithms shown to round rows as the pinned one does). A call's `batchInvariant` overrides it. @default false
   */
  readonly batchInvariant?: boolean;
  /** Batch-invariant mode: the M for which each (n, k)'s pinned algorithm is chosen. @default INVARIANT_REF_M */
  readonly invariantRefM?: number;
  /**
   * Batch-invariant mode: plans of M rows may use the pick for M's power-of-two bucket once it was shown
   * bitwise equal to the reference-M algorithm on this device (see the file comment); false: the
   * reference-M algorithm for every M. @default true
   */
  readonly invariantBuckets?: boolean;
  /**
   * Batch-invariant mode: fp8 e4m3 GEMMs with bf16 output take the bucket picks too (with the same bitwise check
   * on random e4m3 rows); false: the reference-M algorithm for every M, as before. @default false
   */
  readonly invariantFp8Buckets?: boolean;
  /**
   * Batch-invariant mode: bf16 / fp16 GEMMs with fp32 output (the lm_head's logits) take the bucket picks too, with
   * the same bitwise check over their fp32 outputs; false: the reference-M algorithm for every M. @default true
   */
  readonly invariantF32OutBuckets?: boolean;
}

/** Outcome of the bucket algorithms' bitwise checks (batch-invariant mode), one count per (shape, algorithm). */
export interface InvariantBucketStats {
  /** Algorithms shown to round every row as the reference-M one does (their buckets use them). */
  verified: number;
  /** Algorithms whose rows differed (or that could not run the check): their buckets keep the reference one. */
  rejected: number;
  /**
   * Shapes none of whose non-split-K reference candidates rounds a row alike at every probed M (STABLE_ROWS): they keep
   * the heuristic's first, and batch invariance does not hold for them across those M.
   */
  unstableReferences: number;
}

/** One algorithm of CublasLtGemm.surveyAlgorithms: its configuration, time and rounding against the reference. */
export interface GemmAlgoSurveyRow {
  /** cublasLtMatmulAlgoConfigAttributes_t values. */
  readonly id: number;
  readonly tile: number;
  readonly stages: number;
  readonly splitK: number;
  readonly reduction: number;
  readonly swizzle: number;
  readonly custom: number;
  readonly cluster: number;
  /** Index in the heuristic's list; -1 a split-K variant of a heuristic candidate, -2 a re-configured one. */
  readonly heuristicRank: number;
  /** Workspace bytes. */
  readonly ws: number;
  /** Milliseconds a call (warm). */
  readonly ms: number;
  /** Rows bitwise equal to the batch-invariant reference algorithm's on the probe; null: not checked. */
  readonly sameRowsAsRef: boolean | null;
  /** This is the reference algorithm itself. */
  readonly isRef: boolean;
}

/** An algorithm's configuration attributes (-1 where unreadable). */
function surveyConfig(algo: Uint8Array): Omit<GemmAlgoSurveyRow, "heuristicRank" | "ws" | "ms" | "sameRowsAsRef" | "isRef"> {
  const lt = cublasLt();
  const written = new BigUint64Array(1);
  const get = (attr: number, bytes: 2 | 4): number => {
    const v = bytes === 2 ? new Uint16Array(1) : new Uint32Array(1);
    return lt.cublasLtMatmulAlgoConfigGetAttribute(algo, attr, v, bytes, written) === 0 ? v[0] : -1;
  };
  return {
    id: get(LT.ALGO_CONFIG_ID, 4),
    tile: get(LT.ALGO_CONFIG_TILE_ID, 4),
    stages: get(LT.ALGO_CONFIG_STAGES_ID, 4),
    splitK: get(LT.ALGO_CONFIG_SPLITK_NUM, 4),
    reduction: get(LT.ALGO_CONFIG_REDUCTION_SCHEME, 4),
    swizzle: get(LT.ALGO_CONFIG_CTA_SWIZZLING, 4),
    custom: get(LT.ALGO_CONFIG_CUSTOM_OPTION, 4),
    cluster: Math.max(get(LT.ALGO_CONFIG_CLUSTER_SHAPE_ID, 2), get(LT.ALGO_CONFIG_CLUSTER_SHAPE_ID, 4)),
  };
}

/** An algorithm's capability list `attr` (uint32 ids: tile ids, stage ids); empty when unreadable. */
function capIds(algo: Uint8Array, attr: number): number[] {
  const lt = cublasLt();
  const written = new BigUint64Array(1);
  if (lt.cublasLtMatmulAlgoCapGetAttribute(algo, attr, null, 0, written) !== 0) return [];
  const count = Number(written[0]) / 4;
  if (count <= 0) return [];
  const v = new Uint32Array(count);
  if (lt.cublasLtMatmulAlgoCapGetAttribute(algo, attr, v, count * 4, written) !== 0) return [];
  return Array.from(v);
}

/** Heuristic candidates considered when tuning. */
const TUNE_CANDIDATES = 8;
/** Cluster shape ids tried by re-configuration (cublasLtClusterShape_t: 0 auto, 2 1x1x1, 3 2x1x1, … 10 4x4x1). */
const CLUSTER_IDS_MAX = 10;
/** Heuristic candidates considered by cold tuning (GemmOptions.tuneCold). */
const COLD_CANDIDATES = 32;
/** Split-K slice counts tried per candidate (GemmOptions.tuneSplitK). */
const SPLIT_K_SLICES = [2, 4, 8, 16];
/** cublasLtReductionScheme_t CUBLASLT_REDUCTION_SCHEME_INPLACE: split-K partial sums reduced in the output buffer. */
const LT_REDUCTION_INPLACE = 1;
/** Cold tuning: bytes of B copies cycled through (over twice a Hopper L2); weights at least half this big use B itself. */
const COLD_RING_BYTES = 128 * 1024 * 1024;
/** Smallest bucket whose batch-invariant algorithm is tuned (smaller GEMMs take the bucket's heuristic pick). */
const TUNE_MIN_BUCKET = 512;
/** Heuristic candidates searched for a non-split-K algorithm (batch-invariant mode). */
const INVARIANT_CANDIDATES = 24;
/** The M for which the batch-invariant algorithm of an (n, k) is chosen (a prefill-sized batch). */
export const INVARIANT_REF_M = 256;
/** Smallest and largest bucket M (batch-invariant mode): plans of M rows use the pick for the power of two ≤ M in between. */
const BUCKET_MIN = 16, BUCKET_MAX = 16384;
/** Rows of the bitwise check of a bucket algorithm (at most). */
const PROBE_ROWS = 256;
/**
 * Row counts at which a batch-invariant reference algorithm must round its first rows alike (session 16: a down
 * projection of 256 × 8192's heuristic reference rounded rows at M 300 / 400 otherwise than at M 1200, a
 * decomposition by the tile count that a same-M comparison of two algorithms cannot see).
 */
const STABLE_ROWS = [16, 64, 300, 1200, 2048];

/** The bucket of M: the power of two ≤ M, clamped to [BUCKET_MIN, BUCKET_MAX]. */
export function invariantBucket(m: number): number {
  let b = BUCKET_MIN;
  while (b * 2 <= m && b < BUCKET_MAX) b *= 2;
  return b;
}

const sameAlgo = (x: Uint8Array, y: Uint8Array): boolean => x.length === y.length && x.every((v, i) => v === y[i]);

interface Plan {
  readonly desc: bigint;
  readonly layoutA: bigint; // cuBLAS A = our B
  readonly layoutB: bigint; // cuBLAS B = our A
  readonly layoutD: bigint; // C and D
  readonly algo: Uint8Array; // cublasLtMatmulAlgo_t
  readonly workspaceSize: number;
  lastBias: bigint;
  lastAScale: bigint;
  lastBScale: bigint;
}

const addr = (p: DevicePtr): bigint => typeof p === "bigint" ? p : p.ptr;
const alignOf = (p: bigint): number => (p === 0n ? 256 : Math.min(256, Number(p & -p)));

function destroyPlan(p: Plan): void {
  const lt = cublasLt();
  checkCublas(lt.cublasLtMatrixLayoutDestroy(p.layoutA), "cublasLtMatrixLayoutDestroy");
  checkCublas(lt.cublasLtMatrixLayoutDestroy(p.layoutB), "cublasLtMatrixLayoutDestroy");
  checkCublas(lt.cublasLtMatrixLayoutDestroy(p.layoutD), "cublasLtMatrixLayoutDestroy");
  checkCublas(lt.cublasLtMatmulDescDestroy(p.desc), "cublasLtMatmulDescDestroy");
}

function positiveInt(field: string, v: number): void {
  if (!Number.isSafeInteger(v) || v <= 0) throw new ValidationError(`GemmArgs.${field}: expected a positive integer, got ${v}`, field, v);
}

/**
 * The timing caches of this process, by file: every CublasLtGemm with that file (each CUDA session has one) reads and
 * writes the same picks, so sessions of one engine time a shape once and run the same algorithm, the same bits. (Each
 * used to load the file when created and time its misses itself, so two sessions created together could time one
 * decode GEMM of more than 8 rows apart under load and round its rows differently.) Across processes the file is read
 * again before a shape is timed and before it is written.
 */
const SHARED_TIMING = new Map<string, Map<string, number>>();

/** The timing cache file of `device` in `dir` (GemmOptions.timingCacheDir; default `$LLMRT_CACHE_DIR/gemm`). */
export function timingCacheFile(device: CudaDevice, dir: string = join(llmrtCacheDir(), "gemm")): string {
  return join(dir, `timing-${sha256Hex(device.name, String(device.driverVersion), String(CublasLtGemm.version())).slice(0, 16)}.json`);
}

/** This process's timing picks of the cache file `path` (plan key → candidate index), as tuned GEMMs read them. */
export function timingPicks(path: string): ReadonlyMap<string, number> {
  return sharedTiming(path);
}

/**
 * Tests: makes `picks` (plan key → candidate index; undefined: none) this process's timing picks of the cache file
 * `path`, as if timed (the file is left alone; plans made before keep their algorithms).
 */
export function setTimingPicks(path: string, picks: Readonly<Record<string, number | undefined>>): void {
  const m = sharedTiming(path);
  for (const [k, v] of Object.entries(picks)) {
    if (v === undefined) m.delete(k);
    else m.set(k, v);
  }
}

function sharedTiming(path: string): Map<string, number> {
  let m = SHARED_TIMING.get(path);
  if (!m) {
    m = new Map();
    SHARED_TIMING.set(path, m);
    mergeTimingFile(path, m);
  }
  return m;
}

/** Adds the file's picks for keys `m` does not hold (its own picks win); a missing or damaged file adds nothing. */
function mergeTimingFile(path: string, m: Map<string, number>): void {
  if (!existsSync(path)) return;
  try {
    for (const [k, v] of Object.entries(JSON.parse(readFileSync(path, "utf8")) as Record<string, number>)) if (!m.has(k)) m.set(k, v);
  } catch {
    // A damaged cache is re-measured.
  }
}

/**
 * A cuBLASLt handle with its workspace and a cache of per-shape plans, owned by a device.
 *
 * @example
 * ```ts
 * using gemm = new CublasLtGemm(device);
 * // y[m, n] = x[m, k] · Wᵀ + bias, W stored [n, k] bf16
 * gemm.run({ m, n, k, dtype: "bf16", a: x, b: w, d: y, transB: true, bias, stream });
 * ```
 */
export class CublasLtGemm {
  readonly device: CudaDevice;
  readonly workspace: DeviceBuffer;
  readonly #handle: bigint;
  readonly #pref: bigint;
  readonly #ctx: bigint;
  readonly #plans = new Map<string, Plan>();
  readonly #release: Release;
  readonly #alpha = new Float32Array(1);
  readonly #beta = new Float32Array(1);
  readonly #ptrCell = new BigUint64Array(1);
  readonly #tune: boolean;
  readonly #tuneCold: boolean;
  readonly #tuneSplitK: boolean;
  readonly #tuneCandidates: number;
  readonly batchInvariant: boolean;
  readonly #refM: number;
  readonly #buckets: boolean;
  readonly #fp8Buckets: boolean;
  readonly #f32OutBuckets: boolean;
  /** Batch-invariant mode: M-free plan key @ reference M → the pinned algorithm (null: the heuristic had no non-split-K one). */
  readonly #pinned = new Map<string, Uint8Array | null>();
  /** Batch-invariant mode: M-free plan key # bucket algorithm → whether it rounds rows as the reference one does. */
  readonly #sameRows = new Map<string, boolean>();
  /** Batch-invariant tuning: pinKey@tune<bucket> → the bucket's tuned algorithm (null: none qualified). */
  readonly #tuned = new Map<string, Uint8Array | null>();
  /** Random rows of the bitwise checks (grown as needed). */
  #probe = new Uint16Array(0);
  /** Batch-invariant mode: the bucket algorithms' bitwise checks so far. */
  readonly invariantBucketStats: InvariantBucketStats = { verified: 0, rejected: 0, unstableReferences: 0 };
  /** Batch-invariant plans that could not use the pinned algorithm (heuristic per M instead). */
  numInvariantFallbacks = 0;
  /** `pickM` plans whose pickM-row algorithm cublasLtMatmulAlgoCheck refused at the call's M (the call's own pick instead). */
  numPickFallbacks = 0;
  /** Timing cache: plan key → index of the fastest heuristic candidate. */
  readonly #timing: Map<string, number>;
  readonly #timingPath: string | null;
  /** Shapes tuned by timing in this process (not served from the cache). */
  numTuned = 0;

  constructor(device: CudaDevice, options: GemmOptions = {}) {
    const wsBytes = options.workspaceBytes ?? 32 * 1024 * 1024;
    this.batchInvariant = options.batchInvariant ?? false;
    this.#tune = options.tune ?? false;
    this.#tuneCold = options.tuneCold ?? false;
    this.#tuneSplitK = options.tuneSplitK ?? false;
    this.#tuneCandidates = options.tuneCandidates ?? TUNE_CANDIDATES;
    positiveInt("tuneCandidates", this.#tuneCandidates);
    this.#refM = options.invariantRefM ?? INVARIANT_REF_M;
    this.#buckets = options.invariantBuckets ?? true;
    this.#fp8Buckets = options.invariantFp8Buckets ?? false;
    this.#f32OutBuckets = options.invariantF32OutBuckets ?? true;
    if (!Number.isSafeInteger(this.#refM) || this.#refM <= 0) {
      throw new ValidationError(`GemmOptions.invariantRefM: expected a positive integer, got ${this.#refM}`, "invariantRefM", this.#refM);
    }
    const dir = options.timingCacheDir === undefined ? join(llmrtCacheDir(), "gemm") : options.timingCacheDir;
    this.#timingPath = dir === null ? null : timingCacheFile(device, dir);
    this.#timing = this.#tune && this.#timingPath ? sharedTiming(this.#timingPath) : new Map();
    positiveInt("workspaceBytes", wsBytes);
    device.bind();
    const lt = cublasLt();
    const cell = new BigUint64Array(1);
    checkCublas(lt.cublasLtCreate(cell), "cublasLtCreate");
    const handle = cell[0];
    const prefCode = lt.cublasLtMatmulPreferenceCreate(cell);
    if (prefCode !== 0) {
      const destroyed = lt.cublasLtDestroy(handle);
      try {
        checkCublas(prefCode, "cublasLtMatmulPreferenceCreate");
      } catch (e) {
        noteCleanupFailures(e, [["cublasLt", "cublasLtDestroy", destroyed]]);
        throw e;
      }
    }
    const pref = cell[0];
    const ws = new BigUint64Array([BigInt(wsBytes)]);
    checkCublas(lt.cublasLtMatmulPreferenceSetAttribute(pref, LT.PREF_MAX_WORKSPACE_BYTES, ws, 8), "cublasLtMatmulPreferenceSetAttribute");
    const ctx = device.context;
    this.device = device;
    this.#handle = handle;
    this.#pref = pref;
    this.#ctx = ctx;
    this.workspace = device.alloc(wsBytes);
    const plans = this.#plans;
    this.#release = device.adopt("CublasLtGemm", () => {
      bindContext(ctx);
      const errors: unknown[] = [];
      for (const p of plans.values()) {
        try {
          destroyPlan(p);
        } catch (e) {
          errors.push(e);
        }
      }
      plans.clear();
      const a = cublasLt().cublasLtMatmulPreferenceDestroy(pref);
      const b = cublasLt().cublasLtDestroy(handle);
      if (errors.length) throw errors[0];
      checkCublas(a, "cublasLtMatmulPreferenceDestroy");
      checkCublas(b, "cublasLtDestroy");
    });
    armFinalizer(this, this.#release);
  }

  /** cuBLASLt's version, e.g. 130000 + patch. */
  static version(): number {
    return Number(cublasLt().cublasLtGetVersion());
  }

  /** Number of cached (shape, dtype) plans. */
  get numPlans(): number {
    return this.#plans.size;
  }

  get isDisposed(): boolean {
    return this.#release.done;
  }

  /** Enqueues one GEMM. Validates shapes and types; the first call per shape picks the algorithm. */
  run(args: GemmArgs): void {
    if (this.#release.done) throw new DisposedError("CublasLtGemm");
    const { m, n, k, dtype } = args;
    positiveInt("m", m);
    positiveInt("n", n);
    positiveInt("k", k);
    if (!(dtype in DTYPES)) throw new ValidationError(`GemmArgs.dtype: expected one of ${Object.keys(DTYPES).join(", ")}, got ${dtype}`, "dtype", dtype);
    const outDtype: GemmDtype = args.outDtype ?? (dtype === "fp8e4m3" ? "bf16" : dtype);
    if ((outDtype as string) === "fp8e4m3" || !(outDtype in DTYPES)) {
      throw new ValidationError(`GemmArgs.outDtype: expected fp32, fp16 or bf16, got ${outDtype}`, "outDtype", outDtype);
    }
    const transB = args.transB ?? false;
    if (dtype === "fp8e4m3") {
      const cc = this.device.computeCapability;
      if (cc.major * 10 + cc.minor < 89) {
        throw new ValidationError(`GemmArgs.dtype: fp8e4m3 needs compute capability 8.9+, ${this.device.name} is ${cc.major}.${cc.minor}`, "dtype", dtype);
      }
      if (!transB) throw new ValidationError("GemmArgs.transB: fp8e4m3 needs B stored [n, k] (transB: true)", "transB", transB);
    } else if (outDtype !== dtype && !(outDtype === "fp32" && dtype !== "fp32")) {
      throw new ValidationError(`GemmArgs.outDtype: ${dtype} inputs write ${dtype} or fp32, got ${outDtype}`, "outDtype", outDtype);
    }
    if (args.beta !== undefined && args.beta !== 0 && !args.c) {
      throw new ValidationError(`GemmArgs.beta: ${args.beta} needs c`, "beta", args.beta);
    }
    const a = addr(args.a), b = addr(args.b), d = addr(args.d);
    const c = args.c ? addr(args.c) : d;
    const bias = args.bias ? addr(args.bias) : 0n;
    const align = Math.min(alignOf(a), alignOf(b), alignOf(c), alignOf(d));
    const invariant = args.batchInvariant ?? this.batchInvariant;
    const fastAccum = dtype === "fp8e4m3" && !!args.fastAccum;
    // A per-M tuned call that adds into C in place (gemmResidual's residual epilogue without batch invariance) plans apart:
    // no split-K algorithm that reduces in the output buffer, timed with beta 1.
    const inPlace = !!args.c && c === d && !invariant;
    if (args.pickM !== undefined) positiveInt("pickM", args.pickM);
    // Another M's algorithm (GemmArgs.pickM): per-M tuned calls only (a batch-invariant one has one algorithm for every M).
    const pickM = !invariant && args.pickM !== undefined && args.pickM !== m ? args.pickM : 0;
    const keyAt = (rows: number): string =>
      `${invariant ? "inv:" : ""}${dtype}${fastAccum ? "+fast" : ""}>${outDtype}|${rows}x${n}x${k}|${transB ? "T" : "N"}|${bias ? "bias" : ""}|${align}${
        inPlace ? "|c" : ""
      }`;
    const key = pickM ? `${keyAt(m)}|pick${pickM}` : keyAt(m);
    bindContext(this.#ctx);
    let plan = this.#plans.get(key);
    if (!plan) {
      const stream = args.stream ?? null;
      const timing = this.#tune && !(stream?.isCapturing ?? false);
      // Timing candidates writes D: a call that adds into C (the residual) is timed into a scratch of its shape; a pickM
      // call reads and writes zeroed scratch rows (pickM of them, never past the call's own m-row buffers).
      const rows = Math.max(m, pickM);
      using scratchA = pickM > 0 && timing ? this.device.alloc(rows * k * DTYPES[dtype].bytes) : null;
      using scratch = (!!args.c || pickM > 0) && timing ? this.device.alloc(rows * n * DTYPES[outDtype].bytes) : null;
      if (scratchA && scratch) {
        scratchA.fill(0, { stream });
        scratch.fill(0, { stream });
      }
      const io = pickM > 0 || args.c ? (scratch ? { a: scratchA ? scratchA.ptr : a, b, d: scratch.ptr, stream } : null) : { a, b, d, stream };
      const pick = pickM ? { rows: pickM, key: keyAt(pickM) } : null;
      plan = this.#makePlan(m, n, k, dtype, outDtype, transB, bias, align, keyAt(m), invariant, io, { b, stream }, fastAccum, inPlace, pick);
      this.#plans.set(key, plan);
    }
    const lt = cublasLt();
    if (bias && plan.lastBias !== bias) {
      this.#ptrCell[0] = bias;
      checkCublas(lt.cublasLtMatmulDescSetAttribute(plan.desc, LT.MATMUL_DESC_BIAS_POINTER, this.#ptrCell, 8), "cublasLtMatmulDescSetAttribute", "bias");
      plan.lastBias = bias;
    }
    if (dtype === "fp8e4m3") {
      const as = args.aScale ? addr(args.aScale) : 0n;
      const bs = args.bScale ? addr(args.bScale) : 0n;
      // cuBLAS's A is our B and its B our A: the scales swap too.
      if (plan.lastAScale !== bs) {
        this.#ptrCell[0] = bs;
        checkCublas(
          lt.cublasLtMatmulDescSetAttribute(plan.desc, LT.MATMUL_DESC_A_SCALE_POINTER, this.#ptrCell, 8),
          "cublasLtMatmulDescSetAttribute",
          "A scale",
        );
        plan.lastAScale = bs;
      }
      if (plan.lastBScale !== as) {
        this.#ptrCell[0] = as;
        checkCublas(
          lt.cublasLtMatmulDescSetAttribute(plan.desc, LT.MATMUL_DESC_B_SCALE_POINTER, this.#ptrCell, 8),
          "cublasLtMatmulDescSetAttribute",
          "B scale",
        );
        plan.lastBScale = as;
      }
    }
    this.#alpha[0] = args.alpha ?? 1;
    this.#beta[0] = args.beta ?? (args.c ? 1 : 0);
    const code = lt.cublasLtMatmul(
      this.#handle,
      plan.desc,
      this.#alpha,
      b,
      plan.layoutA,
      a,
      plan.layoutB,
      this.#beta,
      c,
      plan.layoutD,
      d,
      plan.layoutD,
      plan.algo,
      this.workspace.ptr,
      plan.workspaceSize,
      args.stream ? args.stream.handle : 0n,
    );
    if (code !== 0) checkCublas(code, "cublasLtMatmul", `${key}`);
  }

  /**
   * The timing cache's pick for `key`; on a miss the file is read again first (another process may have timed the
   * shape since this one loaded it).
   */
  #cachedPick(key: string): number | undefined {
    const hit = this.#timing.get(key);
    if (hit !== undefined || !this.#timingPath) return hit;
    mergeTimingFile(this.#timingPath, this.#timing);
    return this.#timing.get(key);
  }

  /** Writes the timing cache, with what other processes wrote meanwhile (an unwritable folder only costs re-timing). */
  #saveTiming(): void {
    if (!this.#timingPath) return;
    mergeTimingFile(this.#timingPath, this.#timing);
    try {
      writeFileAtomic(this.#timingPath, JSON.stringify(Object.fromEntries(this.#timing), null, 0));
    } catch {
      // The cache is an optimisation.
    }
  }

  /**
   * Batch-invariant tuning of one (shape, bucket): the fastest of the heuristic's first TUNE_CANDIDATES non-split-K
   * algorithms for `bucket` rows for which `ok` holds (rows rounded as the reference algorithm's), timed on the
   * call's first `bucket` rows (bucket ≤ M); its index kept in the timing cache. Null when none qualifies.
   */
  #tunedBucket(
    pinKey: string,
    bucket: number,
    desc: bigint,
    layoutA: bigint,
    inT: number,
    outT: number,
    n: number,
    k: number,
    what: string,
    io: { a: bigint; b: bigint; d: bigint; stream: Stream | null },
    ok: (algo: Uint8Array) => boolean,
  ): Uint8Array | null {
    const memo = `${pinKey}@tune${bucket}${this.#tuneCandidates === TUNE_CANDIDATES ? "" : `c${this.#tuneCandidates}`}`;
    const known = this.#tuned.get(memo);
    if (known !== undefined) return known;
    const lt = cublasLt();
    const cell = new BigUint64Array(1);
    const layouts: bigint[] = [];
    let chosen: Uint8Array | null = null;
    try {
      checkCublas(lt.cublasLtMatrixLayoutCreate(cell, inT, k, bucket, k), "cublasLtMatrixLayoutCreate", `${k}x${bucket}`);
      layouts.push(cell[0]);
      checkCublas(lt.cublasLtMatrixLayoutCreate(cell, outT, n, bucket, n), "cublasLtMatrixLayoutCreate", `${n}x${bucket}`);
      layouts.push(cell[0]);
      const [lb, ld] = layouts;
      const cands = this.#heuristic(desc, layoutA, lb, ld, Math.max(INVARIANT_CANDIDATES, 2 * this.#tuneCandidates), `${what} (tuning m=${bucket})`)
        .filter((c) => this.#isNonSplit(c.algo)).slice(0, this.#tuneCandidates);
      const cached = this.#cachedPick(memo);
      if (cached !== undefined && cached < cands.length && ok(cands[cached].algo)) {
        chosen = cands[cached].algo;
      } else if (cands.length > 0) {
        const order = cands.length > 1 ? this.#timeCandidates(desc, layoutA, lb, ld, cands, io) : [0];
        this.numTuned++;
        const i = order.find((j) => ok(cands[j].algo));
        if (i !== undefined) {
          chosen = cands[i].algo;
          this.#timing.set(memo, i);
          this.#saveTiming();
        }
      }
    } finally {
      for (const l of layouts) checkCublas(lt.cublasLtMatrixLayoutDestroy(l), "cublasLtMatrixLayoutDestroy");
    }
    this.#tuned.set(memo, chosen);
    return chosen;
  }

  /**
   * Indices of `candidates` (heuristic results) for this call, fastest first: each runs once to warm
   * up, then 3 times between events (24 times where 3 took under 0.3 ms). A candidate that fails is left out; any other failure throws.
   * `coldBytes` (B's size, cold tuning): each call reads B from the next of a ring of copies larger than the L2 cache.
   */
  #timeCandidates(
    desc: bigint,
    layoutA: bigint,
    layoutB: bigint,
    layoutD: bigint,
    candidates: { algo: Uint8Array; ws: number }[],
    io: { a: bigint; b: bigint; d: bigint; stream: Stream | null },
    coldBytes = 0,
    beta = 0,
  ): number[] {
    return this.#timeCandidatesMs(desc, layoutA, layoutB, layoutD, candidates, io, coldBytes, beta).map(([i]) => i);
  }

  /** #timeCandidates with each candidate's milliseconds a call: [index, ms] pairs, fastest first. */
  #timeCandidatesMs(
    desc: bigint,
    layoutA: bigint,
    layoutB: bigint,
    layoutD: bigint,
    candidates: { algo: Uint8Array; ws: number }[],
    io: { a: bigint; b: bigint; d: bigint; stream: Stream | null },
    coldBytes = 0,
    beta = 0,
  ): [number, number][] {
    const lt = cublasLt();
    const stream = io.stream ? io.stream.handle : 0n;
    this.#alpha[0] = 1;
    this.#beta[0] = beta;
    // Cold timing: B cycles through zeroed copies (values do not change a GEMM's speed) spanning COLD_RING_BYTES.
    const slots = coldBytes > 0 && coldBytes * 2 <= COLD_RING_BYTES ? Math.ceil(COLD_RING_BYTES / coldBytes) : 0;
    using ring = slots > 0 ? this.device.alloc(slots * coldBytes) : null;
    ring?.fill(0, { stream: io.stream });
    let nextSlot = 0;
    const bOf = (): bigint => ring ? ring.ptr + BigInt((nextSlot++ % slots) * coldBytes) : io.b;
    const call = (c: { algo: Uint8Array; ws: number }): number =>
      lt.cublasLtMatmul(
        this.#handle,
        desc,
        this.#alpha,
        bOf(),
        layoutA,
        io.a,
        layoutB,
        this.#beta,
        io.d,
        layoutD,
        io.d,
        layoutD,
        c.algo,
        this.workspace.ptr,
        c.ws,
        stream,
      );
    const times: [number, number][] = [];
    using start = this.device.createEvent();
    using end = this.device.createEvent();
    candidates.forEach((c, i) => {
      // A candidate cuBLASLt refuses for this problem (a non-success status) is skipped; event and
      // stream failures are real errors and propagate.
      if (call(c) !== 0) return;
      // 3 calls, or 24 where those took under 0.3 ms (short GEMMs: launch jitter would pick at random).
      let ms = Infinity;
      for (const reps of [3, 24]) {
        start.record(io.stream);
        for (let r = 0; r < reps; r++) if (call(c) !== 0) return;
        end.record(io.stream);
        end.synchronize();
        ms = end.elapsedSince(start) / reps;
        if (ms * reps >= 0.3) break;
      }
      times.push([i, ms]);
    });
    return times.sort((x, y) => x[1] - y[1]);
  }

  #makePlan(
    m: number,
    n: number,
    k: number,
    dtype: GemmDtype,
    outDtype: GemmDtype,
    transB: boolean,
    bias: bigint,
    align: number,
    key: string,
    invariant: boolean,
    io: { a: bigint; b: bigint; d: bigint; stream: Stream | null } | null,
    weight: { b: bigint; stream: Stream | null },
    fastAccum = false,
    inPlace = false,
    pick: { readonly rows: number; readonly key: string } | null = null,
  ): Plan {
    const lt = cublasLt();
    const cell = new BigUint64Array(1);
    const i32 = new Int32Array(1);
    const made: bigint[] = [];
    const layout = (type: number, rows: number, cols: number, ld: number): bigint => {
      checkCublas(lt.cublasLtMatrixLayoutCreate(cell, type, rows, cols, ld), "cublasLtMatrixLayoutCreate", `${rows}x${cols} ld ${ld}`);
      made.push(cell[0]);
      return cell[0];
    };
    checkCublas(lt.cublasLtMatmulDescCreate(cell, LT.COMPUTE_32F, LT.R_32F), "cublasLtMatmulDescCreate");
    const desc = cell[0];
    try {
      i32[0] = transB ? LT.OP_T : LT.OP_N;
      checkCublas(lt.cublasLtMatmulDescSetAttribute(desc, LT.MATMUL_DESC_TRANSA, i32, 4), "cublasLtMatmulDescSetAttribute", "TRANSA");
      i32[0] = LT.OP_N;
      checkCublas(lt.cublasLtMatmulDescSetAttribute(desc, LT.MATMUL_DESC_TRANSB, i32, 4), "cublasLtMatmulDescSetAttribute", "TRANSB");
      if (fastAccum) {
        checkCublas(lt.cublasLtMatmulDescSetAttribute(desc, LT.MATMUL_DESC_FAST_ACCUM, new Int8Array([1]), 1), "cublasLtMatmulDescSetAttribute", "FAST_ACCUM");
      }
      if (bias) {
        const epi = new Uint32Array([LT.EPILOGUE_BIAS]);
        checkCublas(lt.cublasLtMatmulDescSetAttribute(desc, LT.MATMUL_DESC_EPILOGUE, epi, 4), "cublasLtMatmulDescSetAttribute", "EPILOGUE");
        cell[0] = bias;
        checkCublas(lt.cublasLtMatmulDescSetAttribute(desc, LT.MATMUL_DESC_BIAS_POINTER, cell, 8), "cublasLtMatmulDescSetAttribute", "BIAS_POINTER");
      }
      const inT = DTYPES[dtype].cuda, outT = DTYPES[outDtype].cuda;
      // Column-major views of the row-major buffers (see the file comment).
      const layoutA = transB ? layout(inT, k, n, k) : layout(inT, n, k, n);
      const layoutB = layout(inT, k, m, k);
      const layoutD = layout(outT, n, m, n);
      const al = new Uint32Array([align]);
      for (const attr of [LT.PREF_MIN_ALIGNMENT_A_BYTES, LT.PREF_MIN_ALIGNMENT_B_BYTES, LT.PREF_MIN_ALIGNMENT_C_BYTES, LT.PREF_MIN_ALIGNMENT_D_BYTES]) {
        checkCublas(lt.cublasLtMatmulPreferenceSetAttribute(this.#pref, attr, al, 4), "cublasLtMatmulPreferenceSetAttribute", "alignment");
      }
      const what = `${dtype}->${outDtype} m=${m} n=${n} k=${k} transB=${transB}`;
      if (invariant) {
        const pinKey = key.replace(/\|\d+x/, "|");
        const capturing = weight.stream?.isCapturing ?? false;
        // The reference: the heuristic's first non-split-K candidate for INVARIANT_REF_M rows whose first rows round
        // alike at every STABLE_ROWS count (checked once per shape on the layer's weight, never during a capture).
        const stable = (algo: Uint8Array): boolean => {
          // Outputs of at most ~64 MB a run (the fp32 lm_head of a 128k vocabulary: up to 130 rows; its prefill M is
          // the logits rows, a few).
          const cap = Math.max(64, Math.floor((64 << 20) / (n * (outDtype === "fp32" ? 4 : 2))));
          const runs = [...new Set(STABLE_ROWS.map((r) => Math.min(r, cap)))].map((rows) => ({ algo, rows }));
          return this.#checkSameRows(desc, layoutA, inT, outT, n, k, dtype, outDtype, weight, algo, null, 0, runs);
        };
        const base = this.#pin(pinKey, this.#refM, desc, layoutA, inT, outT, n, k, what, capturing || dtype === "fp32" ? undefined : stable);
        const tries: Uint8Array[] = [];
        const bucket = invariantBucket(m);
        const bucketable = dtype === outDtype
          ? dtype === "bf16" || dtype === "fp16"
          : dtype === "fp8e4m3"
          ? this.#fp8Buckets && outDtype === "bf16"
          : this.#f32OutBuckets && (dtype === "bf16" || dtype === "fp16") && outDtype === "fp32";
        // Whether an algorithm rounds every row as the reference one does (checked once per (shape, algorithm)).
        const verified = (algo: Uint8Array): boolean => {
          if (!base) return false;
          if (sameAlgo(algo, base)) return true;
          const sameKey = `${pinKey}#${Array.from(algo).join(",")}`;
          let same = this.#sameRows.get(sameKey);
          if (same === undefined && !capturing) {
            // The same rows as the reference at the probe's M, and at the largest M of the bucket too (its own
            // decomposition by M).
            const cap = Math.max(64, Math.floor((64 << 20) / (n * (outDtype === "fp32" ? 4 : 2))));
            const probe = Math.max(64, Math.min(bucket, PROBE_ROWS)), top = Math.max(probe, Math.min(2 * bucket - 1, 2048, cap));
            const runs = [{ algo: base, rows: probe }, { algo, rows: probe }, { algo, rows: top }];
            same = this.#checkSameRows(desc, layoutA, inT, outT, n, k, dtype, outDtype, weight, base, algo, probe, runs);
            this.#sameRows.set(sameKey, same);
            if (same) this.invariantBucketStats.verified++;
            else this.invariantBucketStats.rejected++;
          }
          return same === true;
        };
        if (base && this.#buckets && bucket !== this.#refM && bucketable) {
          const pick = this.#pin(pinKey, bucket, desc, layoutA, inT, outT, n, k, what);
          if (pick && !sameAlgo(pick, base) && verified(pick)) tries.push(pick);
        }
        // Tuning (GemmOptions.tune), prefill-sized buckets: the fastest of the heuristic's non-split-K candidates for
        // the bucket's M among those that round rows as the reference algorithm does (timed once per (shape, bucket)
        // on the call's first `bucket` rows, kept in the timing cache), for every M of the bucket.
        if (base && this.#tune && this.#buckets && bucketable && bucket >= TUNE_MIN_BUCKET && io && !(weight.stream?.isCapturing ?? false)) {
          const fast = this.#tunedBucket(pinKey, bucket, desc, layoutA, inT, outT, n, k, what, io, verified);
          if (fast) tries.unshift(fast);
        }
        if (base) tries.push(base);
        for (const algo of tries) {
          const check = new Uint8Array(LT.HEURISTIC_RESULT_BYTES);
          if (lt.cublasLtMatmulAlgoCheck(this.#handle, desc, layoutA, layoutB, layoutD, layoutD, algo, check) === 0) {
            const ws = Number(new DataView(check.buffer).getBigUint64(LT.HEURISTIC_WORKSPACE_OFFSET, true));
            if (ws <= this.workspace.byteLength) {
              return { desc, layoutA, layoutB, layoutD, algo, workspaceSize: ws, lastBias: bias, lastAScale: 0n, lastBScale: 0n };
            }
          }
        }
        this.numInvariantFallbacks++;
      }
      const coldBytes = n * k * DTYPES[dtype].bytes;
      const plan = (algo: Uint8Array, ws: number): Plan => ({
        desc,
        layoutA,
        layoutB,
        layoutD,
        algo,
        workspaceSize: ws,
        lastBias: bias,
        lastAScale: 0n,
        lastBScale: 0n,
      });
      if (pick && !invariant) {
        // GemmArgs.pickM: the pickM-row call's pick (its candidates, its timing entry), if it runs at this call's M.
        const lb = layout(inT, k, pick.rows, k), ld = layout(outT, n, pick.rows, n);
        try {
          const chosen = this.#perMPick(desc, layoutA, lb, ld, pick.key, false, inPlace, io, coldBytes, `${what} (as m=${pick.rows})`);
          const check = new Uint8Array(LT.HEURISTIC_RESULT_BYTES);
          if (chosen && lt.cublasLtMatmulAlgoCheck(this.#handle, desc, layoutA, layoutB, layoutD, layoutD, chosen.algo, check) === 0) {
            const ws = Number(new DataView(check.buffer).getBigUint64(LT.HEURISTIC_WORKSPACE_OFFSET, true));
            if (ws <= this.workspace.byteLength) return plan(chosen.algo, ws);
          }
        } finally {
          made.splice(made.length - 2, 2);
          checkCublas(lt.cublasLtMatrixLayoutDestroy(lb), "cublasLtMatrixLayoutDestroy");
          checkCublas(lt.cublasLtMatrixLayoutDestroy(ld), "cublasLtMatrixLayoutDestroy");
        }
        this.numPickFallbacks++;
      }
      const own = this.#perMPick(desc, layoutA, layoutB, layoutD, key, invariant, inPlace, io, coldBytes, what);
      if (own) return plan(own.algo, own.ws);
      throw new CudaError(
        "cublasLt",
        "cublasLtMatmulAlgoGetHeuristic",
        15,
        "CUBLAS_STATUS_NOT_SUPPORTED",
        `no algorithm for ${dtype}->${outDtype} m=${m} n=${n} k=${k} transB=${transB} bias=${!!bias} alignment=${align}`,
      );
    } catch (e) {
      noteCleanupFailures(e, [
        ...made.map((l) => ["cublasLt", "cublasLtMatrixLayoutDestroy", lt.cublasLtMatrixLayoutDestroy(l)] as const),
        ["cublasLt", "cublasLtMatmulDescDestroy", lt.cublasLtMatmulDescDestroy(desc)],
      ]);
      throw e;
    }
  }

  /**
   * The heuristic's pick for the problem of `layoutB` / `layoutD` (null: no candidate): invariant calls its first non-split-K
   * candidate; per-M tuned ones (GemmOptions.tune) the fastest candidate, kept in the timing cache under `key` (timed on
   * `io` on a miss; the cold / split-K variants under keys of their own).
   */
  #perMPick(
    desc: bigint,
    layoutA: bigint,
    layoutB: bigint,
    layoutD: bigint,
    key: string,
    invariant: boolean,
    inPlace: boolean,
    io: { a: bigint; b: bigint; d: bigint; stream: Stream | null } | null,
    coldBytes: number,
    what: string,
  ): { algo: Uint8Array; ws: number } | null {
    const cold = this.#tune && this.#tuneCold && !invariant;
    let candidates = this.#heuristic(desc, layoutA, layoutB, layoutD, invariant ? INVARIANT_CANDIDATES : cold ? COLD_CANDIDATES : TUNE_CANDIDATES, what);
    if (invariant) {
      const nonSplit = candidates.filter((c) => this.#isNonSplit(c.algo));
      if (nonSplit.length > 0) candidates = nonSplit;
    }
    // In place (D = C, beta 1): no split-K algorithm whose partial sums go through the output buffer.
    if (inPlace) candidates = candidates.filter((c) => this.#reductionScheme(c.algo) !== LT_REDUCTION_INPLACE);
    if (candidates.length === 0) return null;
    let pick = 0;
    const splitK = cold && this.#tuneSplitK && io !== null;
    if (splitK) candidates = this.#splitVariants(desc, layoutA, layoutB, layoutD, candidates);
    if (this.#tune && !invariant && candidates.length > 1 && io) {
      const timingKey = cold ? `${key}|cold${COLD_CANDIDATES}${splitK ? "sk" : ""}` : key;
      const cached = this.#cachedPick(timingKey);
      if (cached !== undefined && cached < candidates.length) {
        pick = cached;
      } else {
        pick = this.#timeCandidates(desc, layoutA, layoutB, layoutD, candidates, io, cold ? coldBytes : 0, inPlace ? 1 : 0)[0] ?? 0;
        this.numTuned++;
        this.#timing.set(timingKey, pick);
        this.#saveTiming();
      }
    }
    return candidates[pick];
  }

  /**
   * The batch-invariant algorithm of an M-free plan key for `refM` rows: the heuristic's first non-split-K
   * candidate for that M (null: none), cached.
   */
  #pin(
    pinKey: string,
    refM: number,
    desc: bigint,
    layoutA: bigint,
    inT: number,
    outT: number,
    n: number,
    k: number,
    what: string,
    ok?: (algo: Uint8Array) => boolean,
  ): Uint8Array | null {
    const cacheKey = `${pinKey}@${refM}`;
    const known = this.#pinned.get(cacheKey);
    if (known !== undefined) return known;
    const lt = cublasLt();
    const cell = new BigUint64Array(1);
    checkCublas(lt.cublasLtMatrixLayoutCreate(cell, inT, k, refM, k), "cublasLtMatrixLayoutCreate", `${k}x${refM}`);
    const refB = cell[0];
    const made = lt.cublasLtMatrixLayoutCreate(cell, outT, n, refM, n);
    if (made !== 0) {
      const destroyed = lt.cublasLtMatrixLayoutDestroy(refB);
      try {
        checkCublas(made, "cublasLtMatrixLayoutCreate", `${n}x${refM}`);
      } catch (e) {
        noteCleanupFailures(e, [["cublasLt", "cublasLtMatrixLayoutDestroy", destroyed]]);
        throw e;
      }
    }
    const refD = cell[0];
    let pinned: Uint8Array | null;
    try {
      const cands = this.#heuristic(desc, layoutA, refB, refD, INVARIANT_CANDIDATES, `${what} (reference m=${refM})`).filter((c) => this.#isNonSplit(c.algo));
      // With `ok` (the reference of a batch-invariant shape): the first candidate whose rows round alike at every M.
      const found = ok ? cands.find((c) => ok(c.algo)) : cands[0];
      if (ok && !found && cands.length > 0) this.invariantBucketStats.unstableReferences++;
      pinned = (found ?? cands[0])?.algo ?? null;
    } catch (e) {
      noteCleanupFailures(e, [
        ["cublasLt", "cublasLtMatrixLayoutDestroy", lt.cublasLtMatrixLayoutDestroy(refB)],
        ["cublasLt", "cublasLtMatrixLayoutDestroy", lt.cublasLtMatrixLayoutDestroy(refD)],
      ]);
      throw e;
    }
    checkCublas(lt.cublasLtMatrixLayoutDestroy(refB), "cublasLtMatrixLayoutDestroy");
    checkCublas(lt.cublasLtMatrixLayoutDestroy(refD), "cublasLtMatrixLayoutDestroy");
    this.#pinned.set(cacheKey, pinned);
    return pinned;
  }

  /**
   * Whether `pick` rounds every row as `base` does: both run over the same `rows` random rows (16-bit
   * floats of magnitude 1/8 … 2, either sign) against the call's own B (the layer's weight) on the call's
   * stream, and the outputs are compared byte for byte (at least one finite non-zero value required).
   * Synchronizes the stream; false when either algorithm cannot run the check. `runs` instead: each
   * (algorithm, row count) runs over the first rows of the same random rows, and every row of each run
   * must equal the same row of the run with the most rows — one algorithm at several M shows whether its
   * rows (a partial last tile included) round alike whatever M (a decomposition by the tile count does not).
   * 16-bit and e4m3 inputs only (the probe's element types).
   */
  #checkSameRows(
    desc: bigint,
    layoutA: bigint,
    inT: number,
    outT: number,
    n: number,
    k: number,
    dtype: GemmDtype,
    outDtype: GemmDtype,
    weight: { b: bigint; stream: Stream | null },
    base: Uint8Array,
    pick: Uint8Array | null,
    rows: number,
    runs: readonly { algo: Uint8Array; rows: number }[] = [{ algo: base, rows }, { algo: pick ?? base, rows }],
  ): boolean {
    const lt = cublasLt();
    const cell = new BigUint64Array(1);
    const layouts: bigint[] = [];
    const bufs: DeviceBuffer[] = [];
    if (dtype === "fp32") return false;
    // The run with the most rows first: the others are compared with its rows.
    runs = [...runs].sort((x, y) => y.rows - x.rows);
    try {
      const maxRows = runs[0].rows;
      const lbs: bigint[] = [], lds: bigint[] = [];
      const ws: number[] = [];
      for (const run of runs) {
        checkCublas(lt.cublasLtMatrixLayoutCreate(cell, inT, k, run.rows, k), "cublasLtMatrixLayoutCreate", `${k}x${run.rows}`);
        layouts.push(cell[0]);
        lbs.push(cell[0]);
        checkCublas(lt.cublasLtMatrixLayoutCreate(cell, outT, n, run.rows, n), "cublasLtMatrixLayoutCreate", `${n}x${run.rows}`);
        layouts.push(cell[0]);
        lds.push(cell[0]);
        const check = new Uint8Array(LT.HEURISTIC_RESULT_BYTES);
        if (lt.cublasLtMatmulAlgoCheck(this.#handle, desc, layoutA, lbs[lbs.length - 1], cell[0], cell[0], run.algo, check) !== 0) return false;
        ws.push(Number(new DataView(check.buffer).getBigUint64(LT.HEURISTIC_WORKSPACE_OFFSET, true)));
        if (ws[ws.length - 1] > this.workspace.byteLength) return false;
      }
      const len = maxRows * k;
      const fp8 = dtype === "fp8e4m3";
      if (this.#probe.length < len) {
        // 16-bit floats with exponent 2^-3 … 2^0, random mantissa and sign (bf16: 8 exponent bits, fp16: 5).
        this.#probe = new Uint16Array(len);
        let s = 0x9e3779b9;
        for (let i = 0; i < len; i++) {
          s ^= s << 13;
          s ^= s >>> 17;
          s ^= s << 5;
          this.#probe[i] = s & 0xffff;
        }
      }
      // fp8: e4m3 bytes with exponent field 5 … 8 (2^-2 … 2^1), random mantissa and sign; the output is bf16.
      const host = fp8 ? new Uint8Array(len) : new Uint16Array(len);
      const bf = dtype === "bf16" || fp8;
      for (let i = 0; i < len; i++) {
        const r = this.#probe[i];
        host[i] = fp8
          ? ((r >>> 8) & 0x80) | ((5 + (r & 3)) << 3) | ((r >>> 2) & 7)
          : (r & 0x8000) | (bf ? ((124 + (r & 3)) << 7) | ((r >>> 2) & 0x7f) : ((12 + (r & 3)) << 10) | ((r >>> 2) & 0x3ff));
      }
      const a = this.device.alloc(len * (fp8 ? 1 : 2));
      bufs.push(a);
      const f32Out = outDtype === "fp32";
      // One output buffer for every run (each run's prefix read back before the next overwrites it).
      const out = this.device.alloc(maxRows * n * (f32Out ? 4 : 2));
      bufs.push(out);
      const stream = weight.stream;
      a.copyFromHost(host, { stream });
      this.#alpha[0] = 1;
      this.#beta[0] = 0;
      // Every run's rows against the same rows of the first (largest) run (row-major [rows, n]: a prefix).
      let x: Uint32Array | Uint16Array | null = null;
      for (let i = 0; i < runs.length; i++) {
        const { algo, rows: m } = runs[i], d = out.ptr, lb = lbs[i], ld = lds[i];
        checkCublas(
          lt.cublasLtMatmul(
            this.#handle,
            desc,
            this.#alpha,
            weight.b,
            layoutA,
            a.ptr,
            lb,
            this.#beta,
            d,
            ld,
            d,
            ld,
            algo,
            this.workspace.ptr,
            ws[i],
            stream ? stream.handle : 0n,
          ),
          "cublasLtMatmul",
          `bitwise check of a bucket algorithm, n=${n} k=${k} rows=${m}`,
        );
        if (stream) stream.synchronize();
        else this.device.synchronize();
        const y = f32Out ? new Uint32Array(m * n) : new Uint16Array(m * n);
        out.copyToHost(y); // this run's rows only
        if (x === null) x = y;
        else for (let j = 0; j < y.length; j++) if (x[j] !== y[j]) return false;
      }
      if (x === null) return false;
      const words = x.length;
      let informative = false;
      const expMask = f32Out ? 0x7f800000 : bf ? 0x7f80 : 0x7c00, absMask = f32Out ? 0x7fffffff : 0x7fff;
      for (let i = 0; i < words && !informative; i++) informative = (x[i] & absMask) !== 0 && (x[i] & expMask) !== expMask;
      return informative;
    } finally {
      for (const b of bufs) b.dispose();
      for (const l of layouts) checkCublas(lt.cublasLtMatrixLayoutDestroy(l), "cublasLtMatrixLayoutDestroy");
    }
  }

  /** The heuristic's usable candidates (state success), best first. */
  #heuristic(desc: bigint, layoutA: bigint, layoutB: bigint, layoutD: bigint, count: number, what: string): { algo: Uint8Array; ws: number }[] {
    const i32 = new Int32Array(1);
    const results = new Uint8Array(LT.HEURISTIC_RESULT_BYTES * count);
    checkCublas(
      cublasLt().cublasLtMatmulAlgoGetHeuristic(this.#handle, desc, layoutA, layoutB, layoutD, layoutD, this.#pref, count, results, i32),
      "cublasLtMatmulAlgoGetHeuristic",
      what,
    );
    const view = new DataView(results.buffer);
    const candidates: { algo: Uint8Array; ws: number }[] = [];
    for (let i = 0; i < i32[0]; i++) {
      const base = i * LT.HEURISTIC_RESULT_BYTES;
      if (view.getInt32(base + LT.HEURISTIC_STATE_OFFSET, true) !== 0) continue;
      candidates.push({ algo: results.slice(base, base + LT.ALGO_BYTES), ws: Number(view.getBigUint64(base + LT.HEURISTIC_WORKSPACE_OFFSET, true)) });
    }
    return candidates;
  }

  /**
   * `cands` and, after each, its split-K variants (SPLIT_K_SLICES × reduction schemes in-place / compute type /
   * output type) that cublasLtMatmulAlgoCheck accepts for this problem within the workspace; duplicates dropped.
   */
  #splitVariants(
    desc: bigint,
    layoutA: bigint,
    layoutB: bigint,
    layoutD: bigint,
    cands: { algo: Uint8Array; ws: number }[],
  ): { algo: Uint8Array; ws: number }[] {
    const lt = cublasLt();
    const out: { algo: Uint8Array; ws: number }[] = [];
    const seen = new Set<string>();
    const add = (c: { algo: Uint8Array; ws: number }): void => {
      const k = c.algo.join(",");
      if (!seen.has(k)) {
        seen.add(k);
        out.push(c);
      }
    };
    const u32 = new Uint32Array(1);
    for (const c of cands) {
      add(c);
      for (const slices of SPLIT_K_SLICES) {
        for (const scheme of [1, 2, 4]) {
          const algo = c.algo.slice();
          u32[0] = slices;
          if (lt.cublasLtMatmulAlgoConfigSetAttribute(algo, LT.ALGO_CONFIG_SPLITK_NUM, u32, 4) !== 0) continue;
          u32[0] = scheme;
          if (lt.cublasLtMatmulAlgoConfigSetAttribute(algo, LT.ALGO_CONFIG_REDUCTION_SCHEME, u32, 4) !== 0) continue;
          const check = new Uint8Array(LT.HEURISTIC_RESULT_BYTES);
          if (lt.cublasLtMatmulAlgoCheck(this.#handle, desc, layoutA, layoutB, layoutD, layoutD, algo, check) !== 0) continue;
          const ws = Number(new DataView(check.buffer).getBigUint64(LT.HEURISTIC_WORKSPACE_OFFSET, true));
          if (ws <= this.workspace.byteLength) add({ algo, ws });
        }
      }
    }
    return out;
  }

  /**
   * Re-configurations of the heuristic's non-split-K algorithm ids (`heur`) for this problem, not already in `have`: each
   * id's first candidate over its tile ids (cublasLtMatmulAlgoCapGetAttribute) × the stage ids the heuristic paired with
   * that id × cluster shape ids 0…CLUSTER_IDS_MAX, those cublasLtMatmulAlgoCheck accepts within the workspace, in that
   * order (deterministic for a given cuBLASLt, device and problem: tuning indices stay valid in the timing cache).
   */
  #reconfigured(
    desc: bigint,
    layoutA: bigint,
    layoutB: bigint,
    layoutD: bigint,
    heur: readonly { algo: Uint8Array; ws: number }[],
    have: readonly { algo: Uint8Array }[],
  ): { algo: Uint8Array; ws: number }[] {
    const lt = cublasLt();
    const seen = new Set(have.map((c) => c.algo.join(",")));
    const out: { algo: Uint8Array; ws: number }[] = [];
    const configs = heur.map((c) => ({ c, cfg: surveyConfig(c.algo) }));
    const ids = new Map<number, Uint8Array>();
    for (const { c, cfg } of configs) if (!ids.has(cfg.id) && this.#isNonSplit(c.algo)) ids.set(cfg.id, c.algo);
    const u32 = new Uint32Array(1), u16 = new Uint16Array(1);
    for (const [id, algo0] of ids) {
      const tiles = capIds(algo0, LT.ALGO_CAP_TILE_IDS);
      // Stage ids: those the heuristic paired with this algorithm id (a full stage sweep multiplies the checks ~40x).
      const stages = new Set(configs.filter((x) => x.cfg.id === id).map((x) => x.cfg.stages));
      for (const tile of tiles.length ? tiles : [surveyConfig(algo0).tile]) {
        for (const stage of stages) {
          for (let cluster = 0; cluster <= CLUSTER_IDS_MAX; cluster++) {
            const algo = algo0.slice();
            u32[0] = tile;
            if (lt.cublasLtMatmulAlgoConfigSetAttribute(algo, LT.ALGO_CONFIG_TILE_ID, u32, 4) !== 0) continue;
            u32[0] = stage;
            if (lt.cublasLtMatmulAlgoConfigSetAttribute(algo, LT.ALGO_CONFIG_STAGES_ID, u32, 4) !== 0) continue;
            // uint16_t in cuBLASLt 12 / 13's header; a 4-byte attribute is tried where the 2-byte one is refused.
            u16[0] = cluster;
            u32[0] = cluster;
            if (
              lt.cublasLtMatmulAlgoConfigSetAttribute(algo, LT.ALGO_CONFIG_CLUSTER_SHAPE_ID, u16, 2) !== 0 &&
              lt.cublasLtMatmulAlgoConfigSetAttribute(algo, LT.ALGO_CONFIG_CLUSTER_SHAPE_ID, u32, 4) !== 0
            ) continue;
            const key = algo.join(",");
            if (seen.has(key)) continue;
            seen.add(key);
            const check = new Uint8Array(LT.HEURISTIC_RESULT_BYTES);
            if (lt.cublasLtMatmulAlgoCheck(this.#handle, desc, layoutA, layoutB, layoutD, layoutD, algo, check) !== 0) continue;
            const ws = Number(new DataView(check.buffer).getBigUint64(LT.HEURISTIC_WORKSPACE_OFFSET, true));
            if (ws <= this.workspace.byteLength) out.push({ algo, ws });
          }
        }
      }
    }
    return out;
  }

  /** An algorithm's split-K reduction scheme (0: none; LT_REDUCTION_INPLACE: in the output buffer); -1 when unreadable. */
  #reductionScheme(algo: Uint8Array): number {
    const v = new Uint32Array(1);
    const written = new BigUint64Array(1);
    if (cublasLt().cublasLtMatmulAlgoConfigGetAttribute(algo, LT.ALGO_CONFIG_REDUCTION_SCHEME, v, 4, written) !== 0) return -1;
    return v[0];
  }

  /** Whether an algorithm reduces over K in one pass: SPLITK_NUM 1 (or unset) and no reduction scheme. */
  #isNonSplit(algo: Uint8Array): boolean {
    const lt = cublasLt();
    const v = new Uint32Array(1);
    const written = new BigUint64Array(1);
    if (lt.cublasLtMatmulAlgoConfigGetAttribute(algo, LT.ALGO_CONFIG_SPLITK_NUM, v, 4, written) !== 0) return false;
    if (v[0] > 1) return false;
    v[0] = 0;
    if (lt.cublasLtMatmulAlgoConfigGetAttribute(algo, LT.ALGO_CONFIG_REDUCTION_SCHEME, v, 4, written) !== 0) return false;
    return v[0] === 0;
  }

  /**
   * A tuning aid (bench/prefill_gemm_algos.ts), not used by the engine: every cuBLASLt algorithm on the table for one
   * bf16 linear `D[m, n] = A[m, k] · Bᵀ` (B stored [n, k]) — the heuristic's first `heuristicCount` candidates (split-K
   * ones included), the split-K variants of its first 4 non-split ones, and with `variants` each heuristic algorithm id
   * re-configured over its tile ids × the heuristic's stage ids for it × cluster shapes 0–10 (those cublasLtMatmulAlgoCheck
   * accepts) — each timed on
   * the call's buffers (warm, as #timeCandidates times), the fastest `checkFastest` also checked bitwise against the
   * batch-invariant reference algorithm (the heuristic's first non-split-K pick for `invariantRefM` rows) on 256 random
   * rows. Synchronizes the stream. Rows fastest first.
   */
  surveyAlgorithms(
    args: { m: number; n: number; k: number; a: DevicePtr; b: DevicePtr; d: DevicePtr; stream?: Stream | null },
    opts: { heuristicCount?: number; variants?: boolean; maxTimed?: number; checkFastest?: number } = {},
  ): GemmAlgoSurveyRow[] {
    if (this.#release.done) throw new DisposedError("CublasLtGemm");
    const { m, n, k } = args;
    positiveInt("m", m);
    positiveInt("n", n);
    positiveInt("k", k);
    const lt = cublasLt();
    bindContext(this.#ctx);
    const cell = new BigUint64Array(1);
    const i32 = new Int32Array(1);
    const made: bigint[] = [];
    const layout = (rows: number, cols: number, ld: number): bigint => {
      checkCublas(lt.cublasLtMatrixLayoutCreate(cell, LT.R_16BF, rows, cols, ld), "cublasLtMatrixLayoutCreate", `${rows}x${cols} ld ${ld}`);
      made.push(cell[0]);
      return cell[0];
    };
    checkCublas(lt.cublasLtMatmulDescCreate(cell, LT.COMPUTE_32F, LT.R_32F), "cublasLtMatmulDescCreate");
    const desc = cell[0];
    try {
      i32[0] = LT.OP_T;
      checkCublas(lt.cublasLtMatmulDescSetAttribute(desc, LT.MATMUL_DESC_TRANSA, i32, 4), "cublasLtMatmulDescSetAttribute", "TRANSA");
      i32[0] = LT.OP_N;
      checkCublas(lt.cublasLtMatmulDescSetAttribute(desc, LT.MATMUL_DESC_TRANSB, i32, 4), "cublasLtMatmulDescSetAttribute", "TRANSB");
      const a = addr(args.a), b = addr(args.b), d = addr(args.d);
      const al = new Uint32Array([Math.min(alignOf(a), alignOf(b), alignOf(d))]);
      for (const attr of [LT.PREF_MIN_ALIGNMENT_A_BYTES, LT.PREF_MIN_ALIGNMENT_B_BYTES, LT.PREF_MIN_ALIGNMENT_C_BYTES, LT.PREF_MIN_ALIGNMENT_D_BYTES]) {
        checkCublas(lt.cublasLtMatmulPreferenceSetAttribute(this.#pref, attr, al, 4), "cublasLtMatmulPreferenceSetAttribute", "alignment");
      }
      const layoutA = layout(k, n, k), layoutB = layout(k, m, k), layoutD = layout(n, m, n);
      const what = `survey bf16 m=${m} n=${n} k=${k}`;
      const heur = this.#heuristic(desc, layoutA, layoutB, layoutD, opts.heuristicCount ?? 64, what);
      const cands: { algo: Uint8Array; ws: number; rank: number }[] = [];
      const seen = new Set<string>();
      const add = (c: { algo: Uint8Array; ws: number }, rank: number): void => {
        const key = c.algo.join(",");
        if (seen.has(key)) return;
        seen.add(key);
        cands.push({ ...c, rank });
      };
      heur.forEach((c, i) => add(c, i));
      for (const c of this.#splitVariants(desc, layoutA, layoutB, layoutD, heur.filter((c) => this.#isNonSplit(c.algo)).slice(0, 4))) add(c, -1);
      if (opts.variants) { for (const c of this.#reconfigured(desc, layoutA, layoutB, layoutD, heur, cands)) add(c, -2); }
      const timed = cands.slice(0, opts.maxTimed ?? 400);
      const stream = args.stream ?? null;
      const times = this.#timeCandidatesMs(desc, layoutA, layoutB, layoutD, timed, { a, b, d, stream });
      const ref = this.#pin(`survey|${n}x${k}|${al[0]}`, this.#refM, desc, layoutA, LT.R_16BF, LT.R_16BF, n, k, what);
      const rows: GemmAlgoSurveyRow[] = [];
      const checked = opts.checkFastest ?? 40;
      times.forEach(([i, ms], order) => {
        const c = timed[i];
        const isRef = !!ref && sameAlgo(c.algo, ref);
        const same = isRef
          ? true
          : ref && order < checked
          ? this.#checkSameRows(desc, layoutA, LT.R_16BF, LT.R_16BF, n, k, "bf16", "bf16", { b, stream }, ref, c.algo, Math.min(PROBE_ROWS, m))
          : null;
        rows.push({ ...surveyConfig(c.algo), heuristicRank: c.rank, ws: c.ws, ms, sameRowsAsRef: same, isRef });
      });
      return rows;
    } finally {
      for (const l of made) checkCublas(lt.cublasLtMatrixLayoutDestroy(l), "cublasLtMatrixLayoutDestroy");
      checkCublas(lt.cublasLtMatmulDescDestroy(desc), "cublasLtMatmulDescDestroy");
    }
  }

  /** Destroys every cached plan (descriptors and layouts); the next run of a shape plans again. */
  clearPlans(): void {
    bindContext(this.#ctx);
    for (const p of this.#plans.values()) destroyPlan(p);
    this.#plans.clear();
  }

  /** Destroys plans, preference and handle, then frees the workspace. Idempotent. */
  dispose(): void {
    if (this.#release.done) return;
    disarmFinalizer(this.#release);
    try {
      this.#release.run();
    } finally {
      this.workspace.dispose();
    }
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}
