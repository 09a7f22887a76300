/**
 * Kernel compile units and their parallel compilation (issue 16, first-run compile).
 *
 * A unit is one kernel file of lib/backends/cuda/kernels, or only the entry points of it that a
 * session needs: files whose entry points carry `#if LLMRT_KERNEL(name)` guards (common.cuh) compile
 * one unit per kernel, with `-DLLMRT_SELECT=1 -DLLMRT_K_<name>=1`, so a needed kernel does not drag
 * the rest of its file through NVRTC; other (small) files compile whole.
 *
 * NVRTC blocks its thread for the whole compile, so `compileKernelUnits` hands the units missing from
 * the disk cache to Web Workers (Bun and Deno): each dlopens NVRTC, claims units off a shared counter
 * until none is left and writes each CUBIN to its cache file; the calling thread waits on the shared
 * counters (Atomics.wait, so the API stays synchronous like the session constructor that calls it)
 * and reads the CUBINs back. A unit no worker compiled — or every unit, when no worker starts — is
 * compiled on the calling thread, which raises NVRTC's error with its log.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { writeFileAtomic } from "../../../ffi/cache.ts";
import {
  type CompiledCubin,
  type CompileOptions,
  compileProgram,
  kernelsDir,
  kernelSource,
  readCachedCubin,
  resolveCompile,
  type ResolvedCompile,
  unitArch,
} from "./compiler.ts";

/** One NVRTC program: a kernel file, or some of its entry points. */
export interface KernelUnit {
  /** File under lib/backends/cuda/kernels. */
  readonly file: string;
  /** The entry points selected through the file's LLMRT_KERNEL guards; null: the whole file. */
  readonly kernels: readonly string[] | null;
}

const selectableCache = new Map<string, boolean>();

/** Whether `file`'s entry points carry LLMRT_KERNEL guards (one unit per kernel). */
export function isSelectable(file: string): boolean {
  let s = selectableCache.get(file);
  if (s === undefined) {
    s = /^#if LLMRT_KERNEL\(/m.test(kernelSource(file));
    selectableCache.set(file, s);
  }
  return s;
}

/**
 * The compile units of the kernels `names` (`fileOf` maps a kernel to its file): one per kernel of a
 * guarded file, one per other file. Each unit lists the kernels it is meant for in `forKernels`.
 */
export function kernelUnits(names: Iterable<string>, fileOf: (name: string) => string): { unit: KernelUnit; forKernels: string[] }[] {
  const whole = new Map<string, string[]>();
  const out: { unit: KernelUnit; forKernels: string[] }[] = [];
  for (const name of [...new Set(names)].sort()) {
    const file = fileOf(name);
    if (isSelectable(file)) out.push({ unit: { file, kernels: [name] }, forKernels: [name] });
    else whole.set(file, [...(whole.get(file) ?? []), name]);
  }
  for (const [file, ks] of whole) out.push({ unit: { file, kernels: null }, forKernels: ks });
  return out;
}

/** Program name of a unit in logs and cache file names, e.g. "gemv.cu:gemv_bf16_m1". */
export function unitName(u: KernelUnit): string {
  return u.kernels ? `${u.file}:${u.kernels.join("+")}` : u.file;
}

let harnessDefines: ReadonlyMap<string, readonly string[]> = new Map();

/**
 * Tuning / measurement aid (benches only, e.g. bench/decode_gaps.ts): extra NVRTC options (`-D...`) for the units of
 * the kernel files named in `byFile`, used by every unit resolved from now on (sessions created after the call; their
 * CUBINs cache under their own keys). An empty map restores the plain builds. The engine never calls it.
 */
export function setHarnessDefines(byFile: ReadonlyMap<string, readonly string[]>): void {
  harnessDefines = new Map(byFile);
}

/** Resolves a unit's compile (source, NVRTC options, cache file) for `arch`. */
export function resolveUnit(u: KernelUnit, arch: string, cacheDir?: string | null): { source: string; resolved: ResolvedCompile } {
  const source = kernelSource(u.file);
  const select = u.kernels ? ["-DLLMRT_SELECT=1", ...u.kernels.map((k) => `-DLLMRT_K_${k}=1`)] : [];
  const extra = harnessDefines.get(u.file) ?? [];
  const opts: CompileOptions = { arch: unitArch(u.file, arch), name: unitName(u), includeDirs: [kernelsDir], options: [...select, ...extra], cacheDir };
  return { source, resolved: resolveCompile(source, opts) };
}

/** How a `compileKernelUnits` call went. */
export interface CompileStats {
  readonly units: number;
  /** Units read from the disk cache. */
  readonly cacheHits: number;
  /** Units compiled by workers. */
  readonly compiledInWorkers: number;
  /** Units compiled on the calling thread (no workers, or a worker's failure). */
  readonly compiledHere: number;
  /** Workers started (0: none were needed or allowed). */
  readonly workers: number;
  /** Wall time of the call (ms). */
  readonly wallMs: number;
}

/** Options of `compileKernelUnits`. */
export interface CompileUnitsOptions {
  /** Cache root; `null` compiles every unit (workers then hand CUBINs back through a temporary folder). */
  readonly cacheDir?: string | null;
  /**
   * Most compile workers; 0 or 1 compiles on the calling thread.
   * @default min(16, the machine's hardware threads)
   */
  readonly workers?: number;
  /** Give up on the workers after this long without a unit finishing (ms); the rest compile here. @default 120000 */
  readonly stallMs?: number;
}

/** A unit a worker compiles: everything resolved, plus where the CUBIN goes. */
interface Job {
  readonly source: string;
  readonly name: string;
  readonly options: readonly string[];
  readonly outPath: string;
}

// Shared control words: [next job, jobs finished, workers booted, workers that failed to boot, status per job...].
const NEXT = 0, DONE = 1, BOOTED = 2, BOOT_FAILED = 3, STATUS = 4;
const OK = 1, FAILED = 2;

function defaultWorkers(): number {
  const n = (globalThis.navigator as { hardwareConcurrency?: number } | undefined)?.hardwareConcurrency ?? 1;
  return Math.max(1, Math.min(16, n));
}

let workerUrlCache: string | undefined;
function compileWorkerUrl(): string {
  if (workerUrlCache) return workerUrlCache;
  // A Blob of plain JavaScript with no static imports (as tp_worker.js): Deno would type-check a worker's
  // static import graph each time one starts; the module it loads comes in the message.
  const src = readFileSync(fileURLToPath(new URL("./compile_worker.js", import.meta.url).href), "utf8");
  workerUrlCache = URL.createObjectURL(new Blob([src], { type: "text/javascript" }));
  return workerUrlCache;
}

/**
 * Worker side: claims jobs off the shared counter until none is left, compiling each to its
 * `outPath`. Called by compile_worker.js; not for direct use.
 */
export function runCompileJobs(jobs: readonly Job[], control: SharedArrayBuffer): void {
  const ctl = new Int32Array(control);
  for (;;) {
    const i = Atomics.add(ctl, NEXT, 1);
    if (i >= jobs.length) return;
    let status = OK;
    try {
      const { cubin } = compileProgram(jobs[i].source, jobs[i].name, jobs[i].options);
      writeFileAtomic(jobs[i].outPath, cubin);
    } catch {
      status = FAILED; // the calling thread compiles it again and raises the error
    }
    Atomics.store(ctl, STATUS + i, status);
    Atomics.add(ctl, DONE, 1);
    Atomics.notify(ctl, DONE);
  }
}

/** Workers compiling `jobs` (started by `startWorkers`), waited for by `waitWorkers`. */
interface WorkerRun {
  readonly workers: Worker[];
  readonly jobs: readonly Job[];
  readonly ctl: Int32Array;
  readonly t0: number;
}

/** Starts up to `max` workers on `jobs`; null when none can start here. Jobs left unfinished keep status 0. */
function startWorkers(jobs: readonly Job[], max: number, ctl: Int32Array): WorkerRun | null {
  const n = Math.min(max, jobs.length);
  const workers: Worker[] = [];
  try {
    for (let w = 0; w < n; w++) {
      let worker: Worker;
      try {
        worker = new Worker(compileWorkerUrl(), { type: "module" });
      } catch (e) {
        if (w === 0) return null; // no workers here (e.g. a runtime without nested workers): compile on this thread
        throw e;
      }
      worker.postMessage({ module: import.meta.url, jobs, control: ctl.buffer });
      workers.push(worker);
    }
  } catch (e) {
    for (const w of workers) w.terminate();
    throw e;
  }
  return { workers, jobs, ctl, t0: performance.now() };
}

/** Waits until `run`'s jobs are done, its workers all failed to boot, or nothing finished for `stallMs`; then stops them. */
function waitWorkers(run: WorkerRun, stallMs: number): void {
  const { workers, jobs, ctl, t0 } = run;
  try {
    let done = Atomics.load(ctl, DONE), last = performance.now();
    while (done < jobs.length && Atomics.load(ctl, BOOT_FAILED) < workers.length) {
      if (Atomics.load(ctl, BOOTED) === 0 && performance.now() - t0 > Math.min(stallMs, 30_000)) break; // no worker runs here
      Atomics.wait(ctl, DONE, done, 1000);
      const now = Atomics.load(ctl, DONE);
      if (now !== done) [done, last] = [now, performance.now()];
      else if (performance.now() - last > stallMs) break;
    }
  } finally {
    for (const w of workers) w.terminate();
  }
}

/** A compile started by `startKernelUnits`: `finish()` waits for it and returns what `compileKernelUnits` returns. */
export interface PendingCompile {
  /** Waits for the workers (compiling on this thread what they did not), once; later calls return the same result. */
  finish(): { cubins: CompiledCubin[]; stats: CompileStats };
}

/**
 * Compiles (or reads from the disk cache) every unit for `arch`, in parallel on Web Workers, and
 * returns the CUBINs in `units` order with what happened. Same cache files and keys as compileCuda.
 *
 * @example
 * ```ts
 * const units = kernelUnits(["rmsnorm_bf16", "gemv_bf16_m1"], (k) => kernelSignature(k).file);
 * const { cubins, stats } = compileKernelUnits(units.map((u) => u.unit), device.arch);
 * const modules = cubins.map((c) => device.loadModule(c.cubin));
 * ```
 */
export function compileKernelUnits(
  units: readonly KernelUnit[],
  arch: string,
  options: CompileUnitsOptions = {},
): { cubins: CompiledCubin[]; stats: CompileStats } {
  return startKernelUnits(units, arch, options).finish();
}

/**
 * `compileKernelUnits` in two halves: reads the cached CUBINs and starts the workers on the missing
 * units now, and returns at once; `finish()` waits for them. Work done on this thread between the two
 * (a session's weight upload) overlaps the compiles, which run on other cores.
 *
 * @example
 * ```ts
 * const pending = startKernelUnits(units.map((u) => u.unit), device.arch);
 * uploadEverything(); // meanwhile NVRTC runs on the workers
 * const { cubins, stats } = pending.finish();
 * ```
 */
export function startKernelUnits(
  units: readonly KernelUnit[],
  arch: string,
  options: CompileUnitsOptions = {},
): PendingCompile {
  const t0 = performance.now();
  const resolved = units.map((u) => resolveUnit(u, arch, options.cacheDir));
  const cubins: (CompiledCubin | null)[] = resolved.map((r) => readCachedCubin(r.resolved));
  const missing = cubins.flatMap((c, i) => (c ? [] : [i]));
  const max = options.workers ?? defaultWorkers();
  let run: WorkerRun | null = null, jobs: Job[] = [], tmp: string | null = null;
  if (missing.length > 1 && max > 1 && typeof Worker === "function" && typeof SharedArrayBuffer === "function") {
    tmp = options.cacheDir === null ? mkdtempSync(join(tmpdir(), "llmrt-cubin-")) : null;
    jobs = missing.map((i, j) => {
      const r = resolved[i];
      return { source: r.source, name: r.resolved.name, options: r.resolved.nvrtcOptions, outPath: r.resolved.cachePath ?? join(tmp!, `${j}.cubin`) };
    });
    try {
      run = startWorkers(jobs, max, new Int32Array(new SharedArrayBuffer((STATUS + jobs.length) * 4)));
    } catch (e) {
      if (tmp) rmSync(tmp, { recursive: true, force: true });
      throw e;
    }
  }
  let result: { cubins: CompiledCubin[]; stats: CompileStats } | null = null;
  return {
    finish() {
      if (result) return result;
      let inWorkers = 0;
      try {
        if (run) {
          waitWorkers(run, options.stallMs ?? 120_000);
          jobs.forEach((job, j) => {
            if (Atomics.load(run!.ctl, STATUS + j) !== OK) return;
            const r = resolved[missing[j]].resolved;
            const cubin = new Uint8Array(readFileSync(job.outPath));
            if (cubin.byteLength === 0) return;
            cubins[missing[j]] = { cubin, arch: r.arch, key: r.key, fromCache: false, cachePath: r.cachePath, log: "" };
            inWorkers++;
          });
        }
      } finally {
        if (tmp) rmSync(tmp, { recursive: true, force: true });
      }
      let here = 0;
      for (const i of missing) {
        if (cubins[i]) continue;
        const r = resolved[i].resolved;
        const { cubin, log } = compileProgram(resolved[i].source, r.name, r.nvrtcOptions);
        if (r.cachePath) writeFileAtomic(r.cachePath, cubin);
        cubins[i] = { cubin, arch: r.arch, key: r.key, fromCache: false, cachePath: r.cachePath, log };
        here++;
      }
      const stats: CompileStats = {
        units: units.length,
        cacheHits: units.length - missing.length,
        compiledInWorkers: inWorkers,
        compiledHere: here,
        workers: run?.workers.length ?? 0,
        wallMs: performance.now() - t0,
      };
      result = { cubins: cubins as CompiledCubin[], stats };
      return result;
    },
  };
}
