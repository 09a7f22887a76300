/**
 * CUDA C → CUBIN with NVRTC, for the exact architecture of the device (sm_90 on H100/H200), cached
 * on disk under `$LLMRT_CACHE_DIR/cubin/` keyed by source hash + arch + NVRTC version + options.
 * A compile error is a CudaError (library "nvrtc") carrying the compile log.
 */
import { existsSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { llmrtCacheDir, sha256Hex, writeFileAtomic } from "../../../ffi/cache.ts";
import { checkNvrtc, noteCleanupFailures } from "../../../ffi/check.ts";
import { CudaError } from "../../../ffi/errors.ts";
import { nvrtc } from "../../../ffi/nvrtc.ts";
import { cString, CStringArray, out } from "../../../ffi/runtime.ts";
import type { CudaDevice } from "../../cuda/device.ts";
import type { CudaModule } from "../../cuda/module.ts";
import { ValidationError } from "../../util/errors.ts";

/** Folder of the project's CUDA C kernels. */
export const kernelsDir: string = fileURLToPath(new URL("./kernels/", import.meta.url).href);

/** Options of `compileCuda`. */
export interface CompileOptions {
  /** Target, e.g. "sm_90" (CUBIN). Use `device.arch`. */
  readonly arch: string;
  /** Extra NVRTC options, e.g. ["-DBLOCK=256", "--use_fast_math"]. Part of the cache key. */
  readonly options?: readonly string[];
  /** Program name shown in compile logs. @default "llmrt.cu" */
  readonly name?: string;
  /** Cache root; `null` disables the cache. @default llmrtCacheDir() */
  readonly cacheDir?: string | null;
  /**
   * Folders searched for `#include "..."` (NVRTC `--include-path`). The headers a source includes
   * from them (transitively) are part of the cache key, so editing a header recompiles.
   */
  readonly includeDirs?: readonly string[];
}

/** A compiled CUBIN and where it came from. */
export interface CompiledCubin {
  readonly cubin: Uint8Array;
  readonly arch: string;
  /** Hex cache key (source hash + arch + NVRTC version + options). */
  readonly key: string;
  /** True when read from the disk cache (no compile happened). */
  readonly fromCache: boolean;
  /** The file in the cache, or null when caching is off. */
  readonly cachePath: string | null;
  /** NVRTC's log (warnings), "" when read from the cache. */
  readonly log: string;
}

/**
 * The quoted `#include "name"` files `source` pulls in from `dirs`, transitively, as
 * [path, contents] pairs in first-seen order. Names not found in `dirs` are left to NVRTC.
 */
export function includedHeaders(source: string, dirs: readonly string[]): [string, string][] {
  const found = new Map<string, string>();
  const visit = (text: string): void => {
    for (const m of text.matchAll(/^[ \t]*#[ \t]*include[ \t]*"([^"]+)"/gm)) {
      const path = dirs.map((d) => join(d, m[1])).find((p) => existsSync(p));
      if (!path || found.has(path)) continue;
      const contents = readFileSync(path, "utf8");
      found.set(path, contents);
      visit(contents);
    }
  };
  visit(source);
  return [...found.entries()];
}

/** The CUBIN cache key: source, included headers, arch, NVRTC version and options. */
export function cubinCacheKey(
  source: string,
  arch: string,
  nvrtc: { major: number; minor: number },
  options: readonly string[],
  headers: readonly [string, string][] = [],
): string {
  return sha256Hex("llmrt-cubin-v1", source, arch, `${nvrtc.major}.${nvrtc.minor}`, options.join("\n"), ...headers.flatMap(([p, c]) => [p, c]));
}

/** NVRTC's version, e.g. `{ major: 13, minor: 0 }`. */
export function nvrtcVersion(): { major: number; minor: number } {
  const minor = new Int32Array(1);
  checkNvrtc(nvrtc().nvrtcVersion(out.i32, minor), "nvrtcVersion");
  return { major: out.i32[0], minor: minor[0] };
}

/** The CUDA toolkit include folder (for cuda_fp16.h / cuda_bf16.h), if one is installed. */
function toolkitInclude(): string | null {
  const roots = [process.env.CUDA_HOME, process.env.CUDA_PATH, "/usr/local/cuda"].filter((r): r is string => !!r);
  for (const r of roots) {
    for (const inc of [join(r, "include"), join(r, "targets", "x86_64-linux", "include")]) {
      if (existsSync(join(inc, "cuda_fp16.h"))) return inc;
    }
  }
  return null;
}

function readLog(prog: bigint): string {
  const size = new BigUint64Array(1);
  checkNvrtc(nvrtc().nvrtcGetProgramLogSize(prog, size), "nvrtcGetProgramLogSize");
  if (size[0] <= 1n) return "";
  const buf = new Uint8Array(Number(size[0]));
  checkNvrtc(nvrtc().nvrtcGetProgramLog(prog, buf), "nvrtcGetProgramLog");
  return new TextDecoder().decode(buf.subarray(0, buf.indexOf(0) < 0 ? buf.length : buf.indexOf(0))).trim();
}

/**
 * Compiles `source` with NVRTC now (no cache): the CUBIN and NVRTC's log. Blocks the calling thread
 * for the whole compile (compile_pool.ts runs it in Web Workers).
 */
export function compileProgram(source: string, name: string, options: readonly string[]): { cubin: Uint8Array; log: string } {
  const lib = nvrtc();
  const progCell = new BigUint64Array(1);
  checkNvrtc(lib.nvrtcCreateProgram(progCell, cString(source), cString(name), 0, null, null), "nvrtcCreateProgram", name);
  const prog = progCell[0];
  let compiled: { cubin: Uint8Array; log: string };
  try {
    const opts = new CStringArray(options);
    const code = lib.nvrtcCompileProgram(prog, opts.length, opts.pointers);
    const log = readLog(prog);
    checkNvrtc(code, "nvrtcCompileProgram", `${name} with ${options.join(" ")}`, log || undefined);
    const size = new BigUint64Array(1);
    checkNvrtc(lib.nvrtcGetCUBINSize(prog, size), "nvrtcGetCUBINSize");
    if (size[0] === 0n) {
      throw new CudaError("nvrtc", "nvrtcGetCUBINSize", -1, "NO_CUBIN", `${name}: no CUBIN produced (is the arch "sm_XX"?)`);
    }
    const cubin = new Uint8Array(Number(size[0]));
    checkNvrtc(lib.nvrtcGetCUBIN(prog, cubin), "nvrtcGetCUBIN");
    compiled = { cubin, log };
  } catch (e) {
    noteCleanupFailures(e, [["nvrtc", "nvrtcDestroyProgram", lib.nvrtcDestroyProgram(progCell)]]);
    throw e;
  }
  checkNvrtc(lib.nvrtcDestroyProgram(progCell), "nvrtcDestroyProgram");
  return compiled;
}

/** What compiling `source` with `options` means: program name, NVRTC's full option list, cache key and file. */
export interface ResolvedCompile {
  readonly name: string;
  readonly arch: string;
  readonly nvrtcOptions: readonly string[];
  readonly key: string;
  /** The CUBIN's file in the cache, or null when caching is off. */
  readonly cachePath: string | null;
}

/** Resolves the NVRTC options, cache key and cache file of a compile (checks the arch). */
export function resolveCompile(source: string, options: CompileOptions): ResolvedCompile {
  if (!/^sm_\d+[a-z]?$/.test(options.arch)) {
    throw new ValidationError(`CompileOptions.arch: expected "sm_<major><minor>" such as "sm_90", got ${JSON.stringify(options.arch)}`, "arch", options.arch);
  }
  const name = options.name ?? "llmrt.cu";
  const include = toolkitInclude();
  const includeDirs = options.includeDirs ?? [];
  const nvrtcOptions = [
    `--gpu-architecture=${options.arch}`,
    "-std=c++17",
    ...includeDirs.map((d) => `--include-path=${d}`),
    ...(include ? [`--include-path=${include}`] : []),
    ...(options.options ?? []),
  ];
  const key = cubinCacheKey(source, options.arch, nvrtcVersion(), nvrtcOptions, includedHeaders(source, includeDirs));
  const root = options.cacheDir === undefined ? llmrtCacheDir() : options.cacheDir;
  const cachePath = root === null ? null : join(root, "cubin", `${name.replace(/[^A-Za-z0-9_.-]/g, "_")}-${options.arch}-${key.slice(0, 32)}.cubin`);
  return { name, arch: options.arch, nvrtcOptions, key, cachePath };
}

/** The cached CUBIN of a resolved compile, or null when it is not in the cache. */
export function readCachedCubin(r: ResolvedCompile): CompiledCubin | null {
  if (!r.cachePath || !existsSync(r.cachePath)) return null;
  const cubin = new Uint8Array(readFileSync(r.cachePath));
  return cubin.byteLength > 0 ? { cubin, arch: r.arch, key: r.key, fromCache: true, cachePath: r.cachePath, log: "" } : null;
}

/**
 * Compiles CUDA C `source` to a CUBIN for `options.arch`, or returns the cached CUBIN for the same
 * source, arch, NVRTC version and options.
 *
 * @example
 * ```ts
 * const { cubin } = compileCuda(src, { arch: device.arch });
 * using mod = device.loadModule(cubin);
 * ```
 */
export function compileCuda(source: string, options: CompileOptions): CompiledCubin {
  const r = resolveCompile(source, options);
  const cached = readCachedCubin(r);
  if (cached) return cached;
  const { cubin, log } = compileProgram(source, r.name, r.nvrtcOptions);
  if (r.cachePath) writeFileAtomic(r.cachePath, cubin);
  return { cubin, arch: r.arch, key: r.key, fromCache: false, cachePath: r.cachePath, log };
}

/** Reads `lib/backends/cuda/kernels/<file>`. */
export function kernelSource(file: string): string {
  return readFileSync(join(kernelsDir, file), "utf8");
}

/** Kernel files that use architecture-specific instructions (wgmma): compiled for `sm_90a` on an sm_90 device. */
const ARCH_SPECIFIC_FILES: ReadonlySet<string> = new Set(["flash_prefill_wg.cu"]);

/**
 * The NVRTC target of kernel file `file` on a device of `arch`: `sm_90a` for the files that need it on an
 * sm_90 device (a CUBIN for sm_90a runs on sm_90 devices only), else `arch`.
 */
export function unitArch(file: string, arch: string): string {
  return ARCH_SPECIFIC_FILES.has(file) && arch === "sm_90" ? "sm_90a" : arch;
}

/**
 * Compiles `lib/backends/cuda/kernels/<file>` for `arch` (`unitArch`; cached), with the kernels folder on the
 * include path (for `#include "common.cuh"`).
 */
export function compileKernelFile(file: string, arch: string, options: Omit<CompileOptions, "arch" | "name"> = {}): CompiledCubin {
  return compileCuda(kernelSource(file), { ...options, arch: unitArch(file, arch), name: file, includeDirs: [kernelsDir, ...(options.includeDirs ?? [])] });
}

/**
 * Compiles `lib/backends/cuda/kernels/<file>` for `device` (cached) and loads it. A cached CUBIN the
 * driver rejects is deleted and compiled again once.
 */
export function loadKernelFile(device: CudaDevice, file: string, options: Omit<CompileOptions, "arch" | "name"> = {}): CudaModule {
  const compiled = compileKernelFile(file, device.arch, options);
  try {
    return device.loadModule(compiled.cubin);
  } catch (e) {
    if (!compiled.fromCache || !compiled.cachePath) throw e;
    rmSync(compiled.cachePath, { force: true });
    return device.loadModule(compileKernelFile(file, device.arch, options).cubin);
  }
}
