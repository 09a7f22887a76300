/**
 * One neutral FFI symbol-table form, translated to `bun:ffi` `dlopen` or `Deno.dlopen`, plus the
 * pointer, out-parameter and C-string helpers both runtimes need.
 *
 * Neutral argument kinds (C widths matched exactly; x86-64 / aarch64 LP64):
 * - `i8 u8 i16 u16 i32 u32 f32 f64`: JS numbers.
 * - `i64 u64 usize`: 64-bit integers (`size_t` is `usize`); accept number or bigint, return bigint.
 * - `handle`: any pointer-sized value JS never dereferences (CUstream, CUdeviceptr, `void*` of native
 *   memory, function pointers). Passed and returned as `bigint` (declared u64: same register class
 *   and width as a pointer), so device pointers and handles are plain bigint arithmetic.
 * - `buf`: JS-owned memory (a typed array or DataView, or null) passed by address: out-parameters,
 *   host copy sources/targets, strings. Bun `ptr`, Deno `buffer`.
 *
 * Libraries open lazily (first use, never at import) and a failure lists every path tried and the
 * environment variable that overrides the search.
 */
import process from "node:process";
import { existsSync } from "node:fs";
import { type LoadAttempt, NativeLibraryError } from "./errors.ts";
import { traceMode, wrapForTrace } from "./trace.ts";
import { UnsupportedError } from "../lib/util/errors.ts";

/** Argument kinds of the neutral table. */
export type NativeArg = "i8" | "u8" | "i16" | "u16" | "i32" | "u32" | "i64" | "u64" | "usize" | "f32" | "f64" | "handle" | "buf";
/** Result kinds of the neutral table. */
export type NativeResult = Exclude<NativeArg, "buf"> | "void";

/** One C function: argument kinds in order, result kind, and whether older libraries may lack it. */
export interface SymbolDef {
  readonly args: readonly NativeArg[];
  readonly returns: NativeResult;
  /** Only newer library versions export it: missing is `undefined`, not a load failure. */
  readonly optional?: boolean;
}

/** A neutral symbol table: C export name → signature. */
export type SymbolTable = Readonly<Record<string, SymbolDef>>;

/** JS memory passed by address (`buf` arguments). */
export type HostBuffer = ArrayBufferView;

type ArgValue<T> = T extends "buf" ? HostBuffer | null
  : T extends "handle" ? bigint
  : T extends "i64" | "u64" | "usize" ? number | bigint
  : number;
type ResultValue<T> = T extends "void" ? void : T extends "handle" | "i64" | "u64" | "usize" ? bigint : number;

type ArgValues<A extends readonly NativeArg[]> = { -readonly [I in keyof A]: ArgValue<A[I]> };

/** The JS function type of one neutral symbol. */
export type NativeFn<D extends SymbolDef> = (...args: ArgValues<D["args"]>) => ResultValue<D["returns"]>;

/** A table's functions bound to an opened library; optional symbols may be `undefined`. */
export type Bound<T extends SymbolTable> = {
  readonly [K in keyof T]: T[K]["optional"] extends true ? NativeFn<T[K]> | undefined : NativeFn<T[K]>;
};

/** Which JS runtime executes this process. */
export const runtimeKind: "bun" | "deno" | "other" = "Bun" in globalThis ? "bun" : "Deno" in globalThis ? "deno" : "other";

// ---- the two runtimes' FFI surfaces, typed by what we use of them ----------------------------

type AnyFn = (...args: unknown[]) => unknown;

interface BunFfi {
  dlopen(path: string, symbols: Record<string, BunSymbolDef>): { symbols: Record<string, AnyFn>; close(): void };
  cc(options: { source: string; symbols: Record<string, BunSymbolDef>; flags?: string | string[] }): {
    symbols: Record<string, AnyFn>;
    close(): void;
  };
  ptr(view: ArrayBufferView): number;
  toArrayBuffer(ptr: number, byteOffset: number, byteLength: number): ArrayBuffer;
  CString: new (ptr: number) => string;
}
interface BunSymbolDef {
  args: string[];
  returns: string;
}

/** The part of `Deno` this module uses (exported for `pinLibraryDeno`'s signature). */
export interface DenoFfi {
  dlopen(path: string, symbols: Record<string, DenoSymbolDef>): { symbols: Record<string, AnyFn | null>; close(): void };
  UnsafePointer: {
    of(view: ArrayBufferView): unknown;
    value(p: unknown): bigint | number;
    create(v: bigint): unknown;
  };
  UnsafePointerView: {
    getCString(p: unknown, offset?: number): string;
    getArrayBuffer(p: unknown, byteLength: number, offset?: number): ArrayBuffer;
  };
}
interface DenoSymbolDef {
  parameters: string[];
  result: string;
  optional?: boolean;
}

const bunSpecifier = "bun:ffi";
/** `bun:ffi`, imported through a computed specifier so `deno check` never resolves it. */
export const bunFfi: BunFfi | null = runtimeKind === "bun" ? (await import(bunSpecifier)) as unknown as BunFfi : null;
const denoFfi: DenoFfi | null = runtimeKind === "deno" ? (globalThis as unknown as { Deno: DenoFfi }).Deno : null;

// ---- table translation -----------------------------------------------------------------------

const BUN_TYPE: Readonly<Record<NativeArg | "void", string>> = {
  i8: "i8",
  u8: "u8",
  i16: "i16",
  u16: "u16",
  i32: "i32",
  u32: "u32",
  i64: "i64",
  u64: "u64",
  usize: "u64",
  f32: "f32",
  f64: "f64",
  handle: "u64",
  buf: "ptr",
  void: "void",
};
const DENO_TYPE: Readonly<Record<NativeArg | "void", string>> = {
  i8: "i8",
  u8: "u8",
  i16: "i16",
  u16: "u16",
  i32: "i32",
  u32: "u32",
  i64: "i64",
  u64: "u64",
  usize: "usize",
  f32: "f32",
  f64: "f64",
  handle: "u64",
  buf: "buffer",
  void: "void",
};

/** Translates a neutral table to `bun:ffi` declarations (optional symbols included). */
export function toBunSymbols(table: SymbolTable): Record<string, BunSymbolDef> {
  const out: Record<string, BunSymbolDef> = {};
  for (const [name, def] of Object.entries(table)) {
    out[name] = { args: def.args.map((a) => BUN_TYPE[a]), returns: BUN_TYPE[def.returns] };
  }
  return out;
}

/** Translates a neutral table to `Deno.dlopen` declarations. */
export function toDenoSymbols(table: SymbolTable): Record<string, DenoSymbolDef> {
  const out: Record<string, DenoSymbolDef> = {};
  for (const [name, def] of Object.entries(table)) {
    out[name] = { parameters: def.args.map((a) => DENO_TYPE[a]), result: DENO_TYPE[def.returns] };
    if (def.optional) out[name].optional = true;
  }
  return out;
}

// ---- opening libraries -------------------------------------------------------------------------

/** Where to look for one native library. */
export interface LibrarySpec<T extends SymbolTable> {
  /** Human name used in errors, e.g. "the CUDA driver (libcuda)". */
  readonly library: string;
  /** Environment variable holding an explicit path; when set, only that path is tried. */
  readonly envVar: string;
  /** Names or paths tried in order when the variable is unset. */
  readonly candidates: () => readonly string[];
  readonly symbols: T;
}

/** An opened library: the path that worked and its bound functions. */
export interface OpenedLibrary<T extends SymbolTable> {
  readonly path: string;
  readonly symbols: Bound<T>;
  close(): void;
}

function errorText(e: unknown): string {
  return (e instanceof Error ? e.message : String(e)).replace(/\s+/g, " ").trim();
}

function openWithBun<T extends SymbolTable>(bun: BunFfi, path: string, table: T): OpenedLibrary<T> {
  const required: Record<string, SymbolDef> = {};
  const optional: string[] = [];
  for (const [name, def] of Object.entries(table)) def.optional ? optional.push(name) : (required[name] = def);
  const main = bun.dlopen(path, toBunSymbols(required));
  const fns: Record<string, AnyFn | undefined> = { ...main.symbols };
  const extra: { close(): void }[] = [];
  // bun:ffi has no optional symbols: probe each alone so a missing one leaves the rest usable.
  for (const name of optional) {
    try {
      const one = bun.dlopen(path, toBunSymbols({ [name]: table[name] }));
      fns[name] = one.symbols[name];
      extra.push(one);
    } catch {
      fns[name] = undefined;
    }
  }
  return {
    path,
    symbols: fns as unknown as Bound<T>,
    close: () => {
      for (const l of extra) l.close();
      main.close();
    },
  };
}

/** glibc's `dlopen` flags (dlfcn.h). */
const RTLD_NOW = 0x2, RTLD_NOLOAD = 0x4, RTLD_NODELETE = 0x1000;
let libcDlopen: ((path: Uint8Array, flags: number) => unknown) | null | undefined;

/** glibc's own `dlopen` through Deno's FFI (null where libc.so.6 is not glibc's or cannot be opened). */
function denoLibcDlopen(deno: DenoFfi): ((path: Uint8Array, flags: number) => unknown) | null {
  if (libcDlopen !== undefined) return libcDlopen;
  try {
    const libc = deno.dlopen("libc.so.6", { dlopen: { parameters: ["buffer", "i32"], result: "pointer" } });
    libcDlopen = libc.symbols.dlopen as (path: Uint8Array, flags: number) => unknown;
  } catch {
    libcDlopen = null;
  }
  return libcDlopen;
}

/**
 * Marks a library this process has loaded as never to be unloaded (`dlopen(path, RTLD_NOW |
 * RTLD_NODELETE)`). Deno closes the libraries a Web Worker opened when the worker ends, and a library
 * that started threads of its own (NCCL's proxy threads, started by `ncclCommInitRank` inside a
 * tensor-parallel rank worker) then leaves them running unmapped code: the process segfaults later.
 * Bun keeps libraries mapped, as this makes Deno do. Exported for the test.
 */
export function pinLibraryDeno(deno: DenoFfi, path: string): boolean {
  const open = denoLibcDlopen(deno);
  return open !== null && open(cString(path), RTLD_NOW | RTLD_NODELETE) !== null;
}

/** Whether `path` is loaded in this process now (glibc `RTLD_NOLOAD`; Deno only; null when unknown). Test helper. */
export function isLibraryLoadedDeno(path: string): boolean | null {
  const open = denoFfi ? denoLibcDlopen(denoFfi) : null;
  return open ? open(cString(path), RTLD_NOW | RTLD_NOLOAD) !== null : null;
}

function openWithDeno<T extends SymbolTable>(deno: DenoFfi, path: string, table: T): OpenedLibrary<T> {
  const lib = deno.dlopen(path, toDenoSymbols(table));
  pinLibraryDeno(deno, path);
  const fns: Record<string, AnyFn | undefined> = {};
  for (const name of Object.keys(table)) fns[name] = lib.symbols[name] ?? undefined;
  return { path, symbols: fns as unknown as Bound<T>, close: () => lib.close() };
}

/** Opens one path with this runtime's FFI (no search). Throws what the runtime throws. */
export function openPath<T extends SymbolTable>(path: string, table: T): OpenedLibrary<T> {
  if (bunFfi) return openWithBun(bunFfi, path, table);
  if (denoFfi) return openWithDeno(denoFfi, path, table);
  throw new UnsupportedError("native libraries need Bun or Deno (no FFI in this runtime)");
}

/** The list of paths `openLibrary` would try for `spec`, the override first when it is set. */
export function searchPaths(spec: LibrarySpec<SymbolTable>): { paths: string[]; fromEnv: boolean } {
  const override = process.env[spec.envVar];
  if (override) return { paths: [override], fromEnv: true };
  return { paths: [...new Set(spec.candidates())], fromEnv: false };
}

/**
 * Opens the first loadable candidate. Throws `NativeLibraryError` listing every path tried, each
 * with the reason it failed, and naming `spec.envVar`.
 */
export function openLibrary<T extends SymbolTable>(spec: LibrarySpec<T>): OpenedLibrary<T> {
  const { paths, fromEnv } = searchPaths(spec);
  const attempts: LoadAttempt[] = [];
  for (const path of paths) {
    const label = fromEnv ? `${path} (from ${spec.envVar})` : path;
    if (path.includes("/") && !existsSync(path)) {
      attempts.push({ path: label, reason: "no such file" });
      continue;
    }
    try {
      const lib = openPath(path, spec.symbols);
      const mode = traceMode();
      if (mode === "off") return lib;
      const short = /\((\w+)\)$/.exec(spec.library)?.[1] ?? spec.library;
      return { ...lib, symbols: wrapForTrace(short, lib.symbols as unknown as Record<string, AnyFn | undefined>, mode) as unknown as Bound<T> };
    } catch (e) {
      attempts.push({ path: label, reason: errorText(e) });
    }
  }
  if (!fromEnv) attempts.push({ path: `$${spec.envVar}`, reason: "not set" });
  throw new NativeLibraryError(spec.library, spec.envVar, attempts, `cannot load ${spec.library} (runtime: ${runtimeKind})`);
}

/** A library opened on first call and kept; a failure is remembered and rethrown. */
export interface LazyLibrary<T extends SymbolTable> {
  (): Bound<T>;
  /** The opened library's path, or null when not opened (yet). */
  readonly path: string | null;
  /** True once opened; never opens. */
  readonly isOpen: boolean;
}

/** Returns an accessor that opens `spec` on first use (never at import). */
export function lazyLibrary<T extends SymbolTable>(spec: LibrarySpec<T>): LazyLibrary<T> {
  let lib: OpenedLibrary<T> | null = null;
  let failure: unknown = null;
  const get = (): Bound<T> => {
    if (lib) return lib.symbols;
    if (failure) throw failure;
    try {
      lib = openLibrary(spec);
      return lib.symbols;
    } catch (e) {
      failure = e;
      throw e;
    }
  };
  Object.defineProperty(get, "path", { get: () => lib?.path ?? null });
  Object.defineProperty(get, "isOpen", { get: () => lib !== null });
  return get as LazyLibrary<T>;
}

// ---- pointers, strings, out-parameters -----------------------------------------------------------

const encoder = new TextEncoder();

/** A NUL-terminated UTF-8 copy of `s` (sized by UTF-8 bytes, not UTF-16 length). */
export function cString(s: string): Uint8Array {
  const bytes = encoder.encode(s);
  const out = new Uint8Array(bytes.length + 1);
  out.set(bytes);
  return out;
}

/** The native address of JS memory (valid while `view` is referenced). */
export function addressOf(view: ArrayBufferView): bigint {
  if (bunFfi) return BigInt(bunFfi.ptr(view));
  if (denoFfi) return BigInt(denoFfi.UnsafePointer.value(denoFfi.UnsafePointer.of(view)));
  throw new UnsupportedError("addressOf needs Bun or Deno");
}

/** Reads the NUL-terminated C string at native address `addr` ("" for NULL). */
export function readCString(addr: bigint): string {
  if (addr === 0n) return "";
  if (bunFfi) return String(new bunFfi.CString(Number(addr)));
  if (denoFfi) return denoFfi.UnsafePointerView.getCString(denoFfi.UnsafePointer.create(addr));
  throw new UnsupportedError("readCString needs Bun or Deno");
}

/** An ArrayBuffer over `byteLength` bytes of native memory at `addr`; it must not outlive that memory. */
export function nativeView(addr: bigint, byteLength: number): ArrayBuffer {
  if (byteLength === 0) return new ArrayBuffer(0);
  if (bunFfi) return bunFfi.toArrayBuffer(Number(addr), 0, byteLength);
  if (denoFfi) return denoFfi.UnsafePointerView.getArrayBuffer(denoFfi.UnsafePointer.create(addr), byteLength);
  throw new UnsupportedError("nativeView needs Bun or Deno");
}

/**
 * A `const char* const*` array: NUL-terminated UTF-8 copies of `strings` and a pointer array to
 * them. Keep the object referenced until the native call returns.
 */
export class CStringArray {
  readonly #strings: Uint8Array[];
  /** `char*[length]`: addresses of the copies; pass as a `buf` argument. */
  readonly pointers: BigUint64Array;
  constructor(strings: readonly string[]) {
    this.#strings = strings.map(cString);
    this.pointers = new BigUint64Array(Math.max(1, strings.length));
    this.#strings.forEach((s, i) => (this.pointers[i] = addressOf(s)));
  }
  get length(): number {
    return this.#strings.length;
  }
}

/** Out-parameter cells, one call at a time (FFI calls are synchronous and JS single-threaded). */
export const out: {
  readonly u64: BigUint64Array;
  readonly i64: BigInt64Array;
  readonly i32: Int32Array;
  readonly u32: Uint32Array;
  readonly f32: Float32Array;
} = {
  u64: new BigUint64Array(2),
  i64: new BigInt64Array(2),
  i32: new Int32Array(2),
  u32: new Uint32Array(2),
  f32: new Float32Array(2),
};
