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
  /** @default the legacy default stream */
  readonly stream?: Stream | null;
  /** This call's rows must not depend on M (see GemmOptions.batchInvariant). @default the GEMM's batchInvariant */
  readonly batchInvariant?: boolean;
}

/** Options of `CublasLtGemm`. */
export interface GemmOptions {
  /** Workspace bytes offered to cuBLASLt (Hopper wants 32 MiB). @default 33554432 */
  readonly workspaceBytes?: number;
  /**
   * Time the heuristic's candidate algorithms on the first call of each shape and keep the fastest,
   * remembered in a timing cache on disk keyed by GPU, driver and cuBLASLt version (off: the
   * heuristic's first choice). @default false
   */
  readonly tune?: boolean;
  /** Folder of the timing cache; `null` keeps it in memory only. @default `$LLMRT_CACHE_DIR/gemm` */
  readonly timingCacheDir?: string | null;
  /**
   * Pin one non-split-K algorithm per (n, k, dtypes, transB, bias, alignment) for every M, so that a
   * row of D is bitwise the same whatever the number of rows (see the file comment; such calls are
   * not tuned). A call's `batchInvariant` overrides it. @default false
   */
  readonly batchInvariant?: boolean;
  /** Batch-invariant mode: the M for which each (n, k)'s pinned algorithm is chosen. @default INVARIANT_REF_M */
  readonly invariantRefM?: number;
}

/** Heuristic candidates considered when tuning. */
const TUNE_CANDIDATES = 8;
/** Heuristic candidates searched for a non-split-K algorithm (batch-invariant mode). */
const INVARIANT_CANDIDATES = 24;
/** The M for which the batch-invariant algorithm of an (n, k) is chosen (a prefill-sized batch). */
export const INVARIANT_REF_M = 256;

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
  readonly batchInvariant: boolean;
  readonly #refM: number;
  /** Batch-invariant mode: M-free plan key → the pinned algorithm (null: the heuristic had no non-split-K one). */
  readonly #pinned = new Map<string, Uint8Array | null>();
  /** Batch-invariant plans that could not use the pinned algorithm (heuristic per M instead). */
  numInvariantFallbacks = 0;
  /** Timing cache: plan key → index of the fastest heuristic candidate. */
  readonly #timing: Map<string, number>;
  readonly #timingPath: string | null;
  /** Shapes tuned by timing in this process (not served from the cache). */
  numTuned = 0;

  constructor(device: CudaDevice, options: GemmOptions = {}) {
    const wsBytes = options.workspaceBytes ?? 32 * 1024 * 1024;
    this.batchInvariant = options.batchInvariant ?? false;
    this.#tune = options.tune ?? false;
    this.#refM = options.invariantRefM ?? INVARIANT_REF_M;
    if (!Number.isSafeInteger(this.#refM) || this.#refM <= 0) {
      throw new ValidationError(`GemmOptions.invariantRefM: expected a positive integer, got ${this.#refM}`, "invariantRefM", this.#refM);
    }
    const dir = options.timingCacheDir === undefined ? join(llmrtCacheDir(), "gemm") : options.timingCacheDir;
    this.#timingPath = dir === null
      ? null
      : join(dir, `timing-${sha256Hex(device.name, String(device.driverVersion), String(CublasLtGemm.version())).slice(0, 16)}.json`);
    this.#timing = new Map();
    if (this.#tune && this.#timingPath && existsSync(this.#timingPath)) {
      try {
        for (const [k, v] of Object.entries(JSON.parse(readFileSync(this.#timingPath, "utf8")) as Record<string, number>)) this.#timing.set(k, v);
      } catch {
        // A damaged cache is re-measured.
      }
    }
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
    const key = `${invariant ? "inv:" : ""}${dtype}>${outDtype}|${m}x${n}x${k}|${transB ? "T" : "N"}|${bias ? "bias" : ""}|${align}`;
    bindContext(this.#ctx);
    let plan = this.#plans.get(key);
    if (!plan) {
      plan = this.#makePlan(m, n, k, dtype, outDtype, transB, bias, align, key, invariant, args.c ? null : { a, b, d, stream: args.stream ?? null });
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
   * Index of the fastest of `candidates` (heuristic results) for this call: each runs once to warm
   * up, then 3 times between events. A candidate that fails is skipped; any other failure throws.
   */
  #timeCandidates(
    desc: bigint,
    layoutA: bigint,
    layoutB: bigint,
    layoutD: bigint,
    candidates: { algo: Uint8Array; ws: number }[],
    io: { a: bigint; b: bigint; d: bigint; stream: Stream | null },
  ): number {
    const lt = cublasLt();
    const stream = io.stream ? io.stream.handle : 0n;
    this.#alpha[0] = 1;
    this.#beta[0] = 0;
    const call = (c: { algo: Uint8Array; ws: number }): number =>
      lt.cublasLtMatmul(
        this.#handle,
        desc,
        this.#alpha,
        io.b,
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
    let best = 0, bestMs = Infinity;
    using start = this.device.createEvent();
    using end = this.device.createEvent();
    candidates.forEach((c, i) => {
      // A candidate cuBLASLt refuses for this problem (a non-success status) is skipped; event and
      // stream failures are real errors and propagate.
      if (call(c) !== 0) return;
      start.record(io.stream);
      for (let r = 0; r < 3; r++) if (call(c) !== 0) return;
      end.record(io.stream);
      end.synchronize();
      const ms = end.elapsedSince(start);
      if (ms < bestMs) {
        bestMs = ms;
        best = i;
      }
    });
    return best;
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
        let pinned = this.#pinned.get(pinKey);
        if (pinned === undefined) {
          // The algorithm is chosen for #refM rows (INVARIANT_REF_M by default), whatever M asked first.
          const refB = layout(inT, k, this.#refM, k);
          const refD = layout(outT, n, this.#refM, n);
          try {
            const found = this.#heuristic(desc, layoutA, refB, refD, INVARIANT_CANDIDATES, `${what} (reference m=${this.#refM})`).find((c) =>
              this.#isNonSplit(c.algo)
            );
            pinned = found ? found.algo : null;
          } catch (e) {
            made.splice(made.length - 2, 2);
            noteCleanupFailures(e, [
              ["cublasLt", "cublasLtMatrixLayoutDestroy", lt.cublasLtMatrixLayoutDestroy(refB)],
              ["cublasLt", "cublasLtMatrixLayoutDestroy", lt.cublasLtMatrixLayoutDestroy(refD)],
            ]);
            throw e;
          }
          made.splice(made.length - 2, 2);
          checkCublas(lt.cublasLtMatrixLayoutDestroy(refB), "cublasLtMatrixLayoutDestroy");
          checkCublas(lt.cublasLtMatrixLayoutDestroy(refD), "cublasLtMatrixLayoutDestroy");
          this.#pinned.set(pinKey, pinned);
        }
        if (pinned) {
          const check = new Uint8Array(LT.HEURISTIC_RESULT_BYTES);
          if (lt.cublasLtMatmulAlgoCheck(this.#handle, desc, layoutA, layoutB, layoutD, layoutD, pinned, check) === 0) {
            const ws = Number(new DataView(check.buffer).getBigUint64(LT.HEURISTIC_WORKSPACE_OFFSET, true));
            if (ws <= this.workspace.byteLength) {
              return { desc, layoutA, layoutB, layoutD, algo: pinned, workspaceSize: ws, lastBias: bias, lastAScale: 0n, lastBScale: 0n };
            }
          }
        }
        this.numInvariantFallbacks++;
      }
      let candidates = this.#heuristic(desc, layoutA, layoutB, layoutD, invariant ? INVARIANT_CANDIDATES : TUNE_CANDIDATES, what);
      if (invariant) {
        const nonSplit = candidates.filter((c) => this.#isNonSplit(c.algo));
        if (nonSplit.length > 0) candidates = nonSplit;
      }
      if (candidates.length > 0) {
        let pick = 0;
        if (this.#tune && !invariant && candidates.length > 1 && io) {
          const cached = this.#timing.get(key);
          if (cached !== undefined && cached < candidates.length) {
            pick = cached;
          } else {
            pick = this.#timeCandidates(desc, layoutA, layoutB, layoutD, candidates, io);
            this.numTuned++;
            this.#timing.set(key, pick);
            if (this.#timingPath) {
              try {
                writeFileAtomic(this.#timingPath, JSON.stringify(Object.fromEntries(this.#timing), null, 0));
              } catch {
                // The cache is an optimisation; an unwritable folder only costs re-timing.
              }
            }
          }
        }
        return {
          desc,
          layoutA,
          layoutB,
          layoutD,
          algo: candidates[pick].algo,
          workspaceSize: candidates[pick].ws,
          lastBias: bias,
          lastAScale: 0n,
          lastBScale: 0n,
        };
      }
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
