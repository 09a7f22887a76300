/**
 * The C shim (shim-c/llmrt_shim.c): its symbol table, its lazy build, and the launch packet it
 * reads. Built at first use: under Bun with `bun:ffi` `cc` (TinyCC, in memory, milliseconds); under
 * Deno with the system C compiler (`$CC`, cc, gcc, clang: `-shared -fPIC -O2`) into the cache,
 * keyed by the source hash. `LLMRT_SHIM_LIB` names a prebuilt shim instead.
 */
import process from "node:process";
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { llmrtCacheDir, sha256Hex } from "./cache.ts";
import { type LoadAttempt, NativeLibraryError } from "./errors.ts";
import { type Bound, bunFfi, openPath, runtimeKind, type SymbolTable, toBunSymbols } from "./runtime.ts";
import { traceMode, wrapForTrace } from "./trace.ts";

export const shimSymbols = {
  llmrt_shim_abi: { args: [], returns: "i32" }, // int llmrt_shim_abi(void)
  llmrt_launch: {
    args: [
      "handle", // unsigned long long launch_fn (cuLaunchKernel's address)
      "buf", //    const unsigned char* packet (LaunchPacket.bytes)
    ],
    returns: "i32",
  }, // CUresult
  llmrt_launch_ex: {
    args: [
      "handle", // unsigned long long launch_ex_fn (cuLaunchKernelEx's address)
      "buf", //    const unsigned char* packet (LaunchPacket.bytes)
      "u32", //    unsigned int flags (LAUNCH_PDL: programmatic stream serialization)
    ],
    returns: "i32",
  }, // CUresult
} as const satisfies SymbolTable;

/** The packet layout version this file writes; must equal the shim's LLMRT_SHIM_ABI. */
export const SHIM_ABI = 2;
/** `llmrt_launch_ex` flag: programmatic dependent launch (CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION). */
export const LAUNCH_PDL = 1;
/** Most kernel arguments one packet carries (LLMRT_MAX_KERNEL_ARGS). */
export const MAX_KERNEL_ARGS = 64;
/** Path of the shim's C source. */
export const shimSourcePath: string = fileURLToPath(new URL("../shim-c/llmrt_shim.c", import.meta.url).href);

type AnyFn = (...args: unknown[]) => unknown;

/** A loaded shim: how it was obtained and its functions. */
export interface LoadedShim {
  /** "bun-cc", "cache" (a cached system-compiler build), "compiled" (built now) or "env". */
  readonly how: string;
  /** The shared library used, or the C source for bun-cc. */
  readonly path: string;
  readonly symbols: Bound<typeof shimSymbols>;
}

function findCompiler(attempts: LoadAttempt[]): string | null {
  const names = [process.env.CC, "cc", "gcc", "clang"].filter((c): c is string => !!c);
  for (const cc of [...new Set(names)]) {
    const r = spawnSync(cc, ["--version"], { encoding: "utf8" });
    if (r.status === 0) return cc;
    attempts.push({ path: `compiler "${cc}"`, reason: r.error ? r.error.message : `exit status ${r.status}` });
  }
  return null;
}

/** Compiles the shim with the system C compiler into `cacheRoot/shim/` (or reuses a cached build). */
export function buildShimWithSystemCompiler(cacheRoot: string = llmrtCacheDir()): { path: string; how: string } {
  const source = readFileSync(shimSourcePath, "utf8");
  const flags = ["-shared", "-fPIC", "-O2"];
  const key = sha256Hex("llmrt-shim", source, flags.join(" "), process.arch, process.platform).slice(0, 24);
  const dir = join(cacheRoot, "shim");
  const path = join(dir, `llmrt_shim-${key}.so`);
  if (existsSync(path)) return { path, how: "cache" };
  const attempts: LoadAttempt[] = [];
  const cc = findCompiler(attempts);
  if (!cc) {
    throw new NativeLibraryError(
      "the llmrt C shim",
      "CC",
      attempts,
      `no C compiler found to build ${shimSourcePath}`,
      "Install a C compiler (cc, gcc or clang), set CC to one, or set LLMRT_SHIM_LIB to a prebuilt shim.",
    );
  }
  mkdirSync(dir, { recursive: true });
  const tmp = `${path}.${process.pid}.tmp`;
  const r = spawnSync(cc, [...flags, "-o", tmp, shimSourcePath], { encoding: "utf8" });
  if (r.status !== 0) {
    rmSync(tmp, { force: true });
    const reason = (r.stderr || r.error?.message || `exit status ${r.status}`).trim();
    throw new NativeLibraryError(
      "the llmrt C shim",
      "CC",
      [{ path: `${cc} ${flags.join(" ")} -o ${tmp} ${shimSourcePath}`, reason }],
      "compiling the llmrt C shim failed",
      "Fix the error above, set CC to another compiler, or set LLMRT_SHIM_LIB to a prebuilt shim.",
    );
  }
  renameSync(tmp, path); // atomic: a concurrent process sees no file or a whole one
  return { path, how: "compiled" };
}

function loadShimNow(): LoadedShim {
  const fromEnv = process.env.LLMRT_SHIM_LIB;
  let loaded: { how: string; path: string; fns: Record<string, AnyFn | undefined> };
  if (fromEnv) {
    try {
      loaded = { how: "env", path: fromEnv, fns: openPath(fromEnv, shimSymbols).symbols as unknown as Record<string, AnyFn> };
    } catch (e) {
      throw new NativeLibraryError("the llmrt C shim", "LLMRT_SHIM_LIB", [{
        path: `${fromEnv} (from LLMRT_SHIM_LIB)`,
        reason: e instanceof Error ? e.message : String(e),
      }]);
    }
  } else if (runtimeKind === "bun" && bunFfi) {
    let bunError = "";
    try {
      const lib = bunFfi.cc({ source: shimSourcePath, symbols: toBunSymbols(shimSymbols) });
      loaded = { how: "bun-cc", path: shimSourcePath, fns: lib.symbols };
    } catch (e) {
      bunError = e instanceof Error ? e.message : String(e);
      // TinyCC unavailable: fall back to the system compiler, and say both failed if it fails too.
      try {
        const built = buildShimWithSystemCompiler();
        loaded = { ...built, fns: openPath(built.path, shimSymbols).symbols as unknown as Record<string, AnyFn> };
      } catch (e2) {
        const attempts = e2 instanceof NativeLibraryError ? [...e2.attempts] : [{ path: "system compiler", reason: String(e2) }];
        throw new NativeLibraryError(
          "the llmrt C shim",
          "CC",
          [{ path: "bun:ffi cc (TinyCC)", reason: bunError }, ...attempts],
          `cannot build the llmrt C shim (${shimSourcePath})`,
          "Install a C compiler (cc, gcc or clang), set CC to one, or set LLMRT_SHIM_LIB to a prebuilt shim.",
        );
      }
    }
  } else {
    const built = buildShimWithSystemCompiler();
    loaded = { ...built, fns: openPath(built.path, shimSymbols).symbols as unknown as Record<string, AnyFn> };
  }
  const abi = (loaded.fns.llmrt_shim_abi as () => number)();
  if (abi !== SHIM_ABI) {
    throw new NativeLibraryError(
      "the llmrt C shim",
      "LLMRT_SHIM_LIB",
      [{ path: loaded.path, reason: `shim ABI ${abi}, need ${SHIM_ABI}` }],
      "the llmrt C shim has the wrong packet version",
    );
  }
  const mode = traceMode();
  const fns = mode === "off" ? loaded.fns : wrapForTrace("shim", loaded.fns, mode);
  return { how: loaded.how, path: loaded.path, symbols: fns as unknown as Bound<typeof shimSymbols> };
}

let shimCache: LoadedShim | null = null;
let shimFailure: unknown = null;

/** The shim, built and opened on first use; a failure is remembered and rethrown. */
export function shim(): LoadedShim {
  if (shimCache) return shimCache;
  if (shimFailure) throw shimFailure;
  try {
    return (shimCache = loadShimNow());
  } catch (e) {
    shimFailure = e;
    throw e;
  }
}

// ---- the launch packet -------------------------------------------------------------------------

/** Kernel parameter kinds: `ptr` is a device pointer (bigint); the rest are C scalars. */
export type KernelParamKind = "ptr" | "i32" | "u32" | "i64" | "u64" | "f32" | "f64";

const PARAM_BYTES: Readonly<Record<KernelParamKind, number>> = { ptr: 8, i32: 4, u32: 4, i64: 8, u64: 8, f32: 4, f64: 8 };
const HEADER_BYTES = 48;

const align = (n: number, a: number): number => Math.ceil(n / a) * a;

/**
 * One reusable packet per kernel signature (layout in shim-c/llmrt_shim.c): the header, the
 * argument offsets (fixed at construction) and the argument values (rewritten per launch).
 *
 * @example
 * ```ts
 * const p = new LaunchPacket(["ptr", "f32", "u32"]);
 * p.setLaunch(fn, stream, [64, 1, 1], [256, 1, 1], 0);
 * p.setArg(0, 0x7f00_0000_0000n); p.setArg(1, 2.5); p.setArg(2, 1024);
 * shim().symbols.llmrt_launch(launchFn, p.bytes);
 * ```
 */
export class LaunchPacket {
  /** The packet; pass it to `llmrt_launch`. */
  readonly bytes: Uint8Array;
  readonly params: readonly KernelParamKind[];
  /** Byte offset of each argument value in `bytes`. */
  readonly offsets: readonly number[];
  readonly #view: DataView;

  constructor(params: readonly KernelParamKind[]) {
    if (params.length > MAX_KERNEL_ARGS) throw new RangeError(`a kernel takes at most ${MAX_KERNEL_ARGS} arguments, got ${params.length}`);
    let off = align(HEADER_BYTES + 4 * params.length, 8);
    const offsets: number[] = [];
    for (const p of params) {
      const size = PARAM_BYTES[p];
      if (size === undefined) throw new TypeError(`unknown kernel parameter kind ${JSON.stringify(p)}`);
      off = align(off, size);
      offsets.push(off);
      off += size;
    }
    this.params = [...params];
    this.offsets = offsets;
    this.bytes = new Uint8Array(align(Math.max(off, HEADER_BYTES), 8));
    this.#view = new DataView(this.bytes.buffer);
    this.#view.setUint32(44, params.length, true);
    offsets.forEach((o, i) => this.#view.setUint32(HEADER_BYTES + 4 * i, o, true));
  }

  /** Writes the function, stream, grid, block and dynamic shared memory size. */
  setLaunch(fn: bigint, stream: bigint, grid: readonly [number, number, number], block: readonly [number, number, number], sharedMemBytes: number): void {
    this.setLaunchDims(fn, stream, grid[0], grid[1], grid[2], block[0], block[1], block[2], sharedMemBytes);
  }

  /** `setLaunch` without arrays (the launch hot path). */
  setLaunchDims(fn: bigint, stream: bigint, gx: number, gy: number, gz: number, bx: number, by: number, bz: number, sharedMemBytes: number): void {
    const v = this.#view;
    v.setBigUint64(0, fn, true);
    v.setBigUint64(8, stream, true);
    v.setUint32(16, gx, true);
    v.setUint32(20, gy, true);
    v.setUint32(24, gz, true);
    v.setUint32(28, bx, true);
    v.setUint32(32, by, true);
    v.setUint32(36, bz, true);
    v.setUint32(40, sharedMemBytes, true);
  }

  /** Writes argument `i`; 64-bit kinds take bigint (or an integral number), the rest numbers. */
  setArg(i: number, value: number | bigint): void {
    const o = this.offsets[i];
    const v = this.#view;
    switch (this.params[i]) {
      case "ptr":
      case "u64":
        v.setBigUint64(o, typeof value === "bigint" ? value : BigInt(value), true);
        break;
      case "i64":
        v.setBigInt64(o, typeof value === "bigint" ? value : BigInt(value), true);
        break;
      case "i32":
        v.setInt32(o, Number(value), true);
        break;
      case "u32":
        v.setUint32(o, Number(value), true);
        break;
      case "f32":
        v.setFloat32(o, Number(value), true);
        break;
      case "f64":
        v.setFloat64(o, Number(value), true);
        break;
    }
  }
}
