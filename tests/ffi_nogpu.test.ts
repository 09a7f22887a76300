/**
 * The native layer's pieces that need no GPU: symbol-table translation and widths, library-search
 * errors (every path tried + the override variable), importing without CUDA, the C shim and its
 * launch packet (against a fake cuLaunchKernel), C strings, tracing, and the ownership contract.
 */
import process from "node:process";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { assert, isBun, isDeno, test } from "./harness.ts";
import { CU, cudaLibrarySpec, cudaSymbols } from "../ffi/cuda.ts";
import { cublasLtLibrarySpec, cublasLtSymbols, LT } from "../ffi/cublaslt.ts";
import { CudaError, NativeLibraryError } from "../ffi/errors.ts";
import { nvrtcLibrarySpec, nvrtcSymbols } from "../ffi/nvrtc.ts";
import {
  addressOf,
  cString,
  CStringArray,
  type LibrarySpec,
  type NativeArg,
  nativeView,
  openLibrary,
  openPath,
  readCString,
  searchPaths,
  type SymbolTable,
  toBunSymbols,
  toDenoSymbols,
} from "../ffi/runtime.ts";
import { buildShimWithSystemCompiler, LAUNCH_PDL, LaunchPacket, MAX_KERNEL_ARGS, shim, SHIM_ABI, shimSymbols } from "../ffi/shim.ts";
import { formatArg, wrapForTrace } from "../ffi/trace.ts";
import { Release, ReleaseSet } from "../lib/cuda/owner.ts";
import { compileCuda, cubinCacheKey, includedHeaders } from "../lib/backends/cuda/compiler.ts";
import { ValidationError } from "../lib/util/errors.ts";

const tables: Record<string, SymbolTable> = { cuda: cudaSymbols, nvrtc: nvrtcSymbols, cublasLt: cublasLtSymbols, shim: shimSymbols };

/** True when a system C compiler is on PATH (Deno builds the shim with it). */
const hasCc = ["cc", "gcc", "clang"].some((c) => spawnSync(c, ["--version"]).status === 0);
/** True when libcuda can be opened here (then the "absent" tests do not apply). */
const hasLibcuda = (() => {
  try {
    openLibrary(cudaLibrarySpec).close();
    return true;
  } catch {
    return false;
  }
})();

function withEnv<T>(name: string, value: string | undefined, fn: () => T): T {
  const old = process.env[name];
  if (value === undefined) delete process.env[name];
  else process.env[name] = value;
  try {
    return fn();
  } finally {
    if (old === undefined) delete process.env[name];
    else process.env[name] = old;
  }
}

test("tables translate to bun:ffi and Deno.dlopen with exact C widths", () => {
  const bun = toBunSymbols(cudaSymbols), deno = toDenoSymbols(cudaSymbols);
  // CUresult cuMemAlloc_v2(CUdeviceptr* dptr, size_t bytesize)
  assert.deepEqual(bun.cuMemAlloc_v2, { args: ["ptr", "u64"], returns: "i32" });
  assert.deepEqual(deno.cuMemAlloc_v2, { parameters: ["buffer", "usize"], result: "i32" });
  // CUresult cuMemsetD8_v2(CUdeviceptr, unsigned char, size_t)
  assert.deepEqual(bun.cuMemsetD8_v2.args, ["u64", "u8", "u64"]);
  // cuLaunchKernel: f, 3 grid, 3 block, shared, stream, params, extra
  assert.deepEqual(deno.cuLaunchKernel.parameters, ["u64", "u32", "u32", "u32", "u32", "u32", "u32", "u32", "u64", "buffer", "buffer"]);
  assert.equal(deno.cuEventElapsedTime_v2.optional, true);
  assert.equal("optional" in deno.cuMemAlloc_v2, false);
  // const char* nvrtcGetErrorString(nvrtcResult): a pointer-sized result.
  assert.deepEqual(toBunSymbols(nvrtcSymbols).nvrtcGetErrorString, { args: ["i32"], returns: "u64" });
  // cublasLtMatrixLayoutCreate(layout*, cudaDataType, uint64 rows, uint64 cols, int64 ld)
  assert.deepEqual(toDenoSymbols(cublasLtSymbols).cublasLtMatrixLayoutCreate.parameters, ["buffer", "i32", "u64", "u64", "i64"]);
  assert.equal(toBunSymbols(cublasLtSymbols).cublasLtMatmul.args.length, 16);
});

test("every status-returning symbol returns i32 and every kind is known", () => {
  const kinds = new Set<NativeArg>(["i8", "u8", "i16", "u16", "i32", "u32", "i64", "u64", "usize", "f32", "f64", "handle", "buf"]);
  for (const [lib, table] of Object.entries(tables)) {
    for (const [name, def] of Object.entries(table)) {
      for (const a of def.args) assert.ok(kinds.has(a), `${lib}.${name}: unknown kind ${a}`);
      assert.notEqual(def.returns, "void", `${lib}.${name} returns a status, never void`);
      const statusApi = !/GetErrorString|GetStatusName|GetVersion|shim_abi/.test(name);
      if (statusApi) assert.equal(def.returns, "i32", `${lib}.${name} returns a status code (i32)`);
    }
  }
  // Versioned driver exports (CUDA 13 cuda.h maps the plain names to these).
  for (
    const n of [
      "cuMemAlloc_v2",
      "cuMemFree_v2",
      "cuMemGetInfo_v2",
      "cuMemcpyHtoD_v2",
      "cuStreamBeginCapture_v2",
      "cuDevicePrimaryCtxRelease_v2",
      "cuGraphInstantiateWithFlags",
      "cuStreamDestroy_v2",
      "cuEventDestroy_v2",
    ]
  ) {
    assert.ok(n in cudaSymbols, n);
  }
  assert.equal(LT.HEURISTIC_RESULT_BYTES, 64 + 8 + 4 + 4 + 16);
  assert.equal(CU.ERROR_OUT_OF_MEMORY, 2);
});

test("a missing library error lists every path tried and the override variable", () => {
  const spec = {
    ...cudaLibrarySpec,
    envVar: "LLMRT_TEST_NO_SUCH_LIB",
    candidates: () => ["libllmrt-not-here.so.1", "/nonexistent/dir/libllmrt-not-here.so.1"],
  };
  const err = withEnv("LLMRT_TEST_NO_SUCH_LIB", undefined, () => {
    try {
      openLibrary(spec);
    } catch (e) {
      return e;
    }
    return null;
  });
  assert.ok(err instanceof NativeLibraryError);
  assert.equal(err.envVar, "LLMRT_TEST_NO_SUCH_LIB");
  assert.deepEqual(err.attempts.map((a) => a.path), ["libllmrt-not-here.so.1", "/nonexistent/dir/libllmrt-not-here.so.1", "$LLMRT_TEST_NO_SUCH_LIB"]);
  assert.equal(err.attempts[1].reason, "no such file");
  assert.match(err.message, /libllmrt-not-here\.so\.1:/);
  assert.match(err.message, /Set LLMRT_TEST_NO_SUCH_LIB/);
});

test("the override variable, when set, is the only path tried and is named in the error", () => {
  const specs: LibrarySpec<SymbolTable>[] = [cudaLibrarySpec, nvrtcLibrarySpec, cublasLtLibrarySpec];
  for (const spec of specs) {
    const bogus = "/nonexistent/llmrt/override.so";
    withEnv(spec.envVar, bogus, () => {
      assert.deepEqual(searchPaths(spec), { paths: [bogus], fromEnv: true });
      assert.throws(() => openLibrary(spec), (e: unknown) => {
        assert.ok(e instanceof NativeLibraryError);
        assert.equal(e.attempts.length, 1);
        assert.equal(e.attempts[0].path, `${bogus} (from ${spec.envVar})`);
        assert.match(e.message, new RegExp(spec.envVar));
        return true;
      });
    });
  }
});

test.skipIf("libcuda is present on this machine", hasLibcuda)(
  "without libcuda the CUDA error names libcuda.so.1, the system paths and LLMRT_CUDA_LIB",
  async () => {
    const { CudaDevice } = await import("../lib/cuda/device.ts");
    const probe = CudaDevice.probe();
    assert.equal(probe.ok, false);
    assert.match(probe.ok ? "" : probe.reason, /LLMRT_CUDA_LIB/);
    const err = withEnv("LLMRT_CUDA_LIB", undefined, () => {
      try {
        openLibrary(cudaLibrarySpec);
      } catch (e) {
        return e;
      }
      return null;
    });
    assert.ok(err instanceof NativeLibraryError);
    const paths = err.attempts.map((a) => a.path);
    assert.ok(paths.includes("libcuda.so.1"));
    assert.ok(paths.includes("/usr/lib/x86_64-linux-gnu/libcuda.so.1"));
    assert.ok(paths.includes("$LLMRT_CUDA_LIB"));
    assert.throws(() => CudaDevice.open(0), NativeLibraryError);
  },
);

test("importing the CUDA runtime opens no native library", () => {
  const root = fileURLToPath(new URL("../", import.meta.url).href);
  const code = `
    const { cuda } = await import(${JSON.stringify(join(root, "ffi/cuda.ts"))});
    const { nvrtc } = await import(${JSON.stringify(join(root, "ffi/nvrtc.ts"))});
    const { cublasLt } = await import(${JSON.stringify(join(root, "ffi/cublaslt.ts"))});
    await import(${JSON.stringify(join(root, "lib/cuda/device.ts"))});
    await import(${JSON.stringify(join(root, "lib/backends/cuda/gemm.ts"))});
    await import(${JSON.stringify(join(root, "lib/backends/cuda/compiler.ts"))});
    console.log(JSON.stringify([cuda.isOpen, nvrtc.isOpen, cublasLt.isOpen]));`;
  const args = isDeno ? ["eval", "--quiet", code] : ["-e", code];
  const r = spawnSync(process.execPath, args, { encoding: "utf8", env: { ...process.env, LLMRT_CUDA_LIB: "/nonexistent/libcuda.so.1" } });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout.trim().split("\n").pop(), "[false,false,false]");
});

test("C strings are NUL-terminated UTF-8 and read back through their address", () => {
  const s = cString("héllo");
  assert.equal(s.length, 7); // 6 UTF-8 bytes + NUL, not 5 + 1
  assert.equal(s[6], 0);
  assert.equal(readCString(addressOf(s)), "héllo");
  assert.equal(readCString(0n), "");
  const arr = new CStringArray(["--gpu-architecture=sm_90", "-std=c++17"]);
  assert.equal(arr.length, 2);
  assert.equal(readCString(arr.pointers[1]), "-std=c++17");
  const js = new Uint8Array([1, 2, 3, 4]);
  const view = new Uint8Array(nativeView(addressOf(js), 4));
  assert.deepEqual([...view], [1, 2, 3, 4]);
});

test("launch packet: header, aligned argument offsets, values", () => {
  const p = new LaunchPacket(["ptr", "i32", "f64", "u32", "f32", "u64"]);
  // header 48 + 6 offsets * 4 = 72 -> args from 72: ptr@72, i32@80, f64@88, u32@96, f32@100, u64@104
  assert.deepEqual(p.offsets, [72, 80, 88, 96, 100, 104]);
  assert.equal(p.bytes.byteLength, 112);
  p.setLaunch(0x1234n, 0x5678n, [2, 3, 4], [128, 1, 1], 1024);
  p.setArg(0, 0xdead_beef_0000n);
  p.setArg(1, -5);
  p.setArg(2, 0.1);
  p.setArg(3, 4_000_000_000);
  p.setArg(4, 1.5);
  p.setArg(5, 2n ** 63n);
  const v = new DataView(p.bytes.buffer);
  assert.equal(v.getBigUint64(0, true), 0x1234n);
  assert.equal(v.getBigUint64(8, true), 0x5678n);
  assert.deepEqual([16, 20, 24, 28, 32, 36, 40, 44].map((o) => v.getUint32(o, true)), [2, 3, 4, 128, 1, 1, 1024, 6]);
  assert.equal(v.getUint32(48, true), 72);
  assert.equal(v.getBigUint64(72, true), 0xdead_beef_0000n);
  assert.equal(v.getInt32(80, true), -5);
  assert.equal(v.getFloat64(88, true), 0.1);
  assert.equal(v.getUint32(96, true), 4_000_000_000);
  assert.equal(v.getFloat32(100, true), 1.5);
  assert.equal(v.getBigUint64(104, true), 2n ** 63n);
  assert.throws(() => new LaunchPacket(new Array(MAX_KERNEL_ARGS + 1).fill("i32")), RangeError);
  assert.equal(new LaunchPacket([]).bytes.byteLength, 48);
});

test.skipIf("Deno builds the shim with a system C compiler and none is installed", isDeno && !hasCc)(
  "the C shim builds at first use and reports its ABI",
  () => {
    const s = shim();
    assert.equal(s.symbols.llmrt_shim_abi(), SHIM_ABI);
    assert.equal(s.how, isBun ? "bun-cc" : s.how);
    // A NULL launch function is refused, not called.
    assert.equal(s.symbols.llmrt_launch(0n, new LaunchPacket([]).bytes), 1);
  },
);

test.skipIf("no system C compiler to build the fake driver", !hasCc)("the shim passes the packet to cuLaunchKernel as void** (fake driver)", () => {
  const dir = mkdtempSync(join(tmpdir(), "llmrt-fake-"));
  try {
    const src = join(dir, "fake.c");
    writeFileSync(
      src,
      `
      typedef unsigned int u32; typedef unsigned long long u64;
      static u64 rec[16]; static unsigned char vals[8 * 8]; static int nargs = 0;
      static int fake_launch(void* f, u32 gx, u32 gy, u32 gz, u32 bx, u32 by, u32 bz, u32 sh, void* st, void** params, void** extra) {
        rec[0] = (u64)f; rec[1] = gx; rec[2] = gy; rec[3] = gz; rec[4] = bx; rec[5] = by; rec[6] = bz; rec[7] = sh;
        rec[8] = (u64)st; rec[9] = (u64)extra;
        for (int i = 0; i < nargs; i++) for (int b = 0; b < 8; b++) vals[i * 8 + b] = ((unsigned char*)params[i])[b];
        return 0;
      }
      u64 fake_address(int n) { nargs = n; return (u64)&fake_launch; }
      void fake_read(u64* out, unsigned char* args) { for (int i = 0; i < 10; i++) out[i] = rec[i]; for (int i = 0; i < 64; i++) args[i] = vals[i]; }
    `,
    );
    const so = join(dir, "fake.so");
    const cc = spawnSync("cc", ["-shared", "-fPIC", "-O1", "-o", so, src], { encoding: "utf8" });
    assert.equal(cc.status, 0, cc.stderr);
    const fake = openPath(
      so,
      {
        fake_address: { args: ["i32"], returns: "handle" },
        fake_read: { args: ["buf", "buf"], returns: "i32" },
      } as const,
    );
    const packet = new LaunchPacket(["ptr", "f32", "u32", "f64"]);
    packet.setLaunch(0xabcn, 0xdefn, [7, 8, 9], [32, 4, 2], 4096);
    packet.setArg(0, 0x7000_0000_1000n);
    packet.setArg(1, -2.5);
    packet.setArg(2, 99);
    packet.setArg(3, Math.PI);
    const code = shim().symbols.llmrt_launch(fake.symbols.fake_address(4), packet.bytes);
    assert.equal(code, 0);
    const rec = new BigUint64Array(10), args = new Uint8Array(64);
    fake.symbols.fake_read(rec, args);
    assert.deepEqual([...rec], [0xabcn, 7n, 8n, 9n, 32n, 4n, 2n, 4096n, 0xdefn, 0n]);
    const av = new DataView(args.buffer);
    assert.equal(av.getBigUint64(0, true), 0x7000_0000_1000n);
    assert.equal(av.getFloat32(8, true), -2.5);
    assert.equal(av.getUint32(16, true), 99);
    assert.equal(av.getFloat64(24, true), Math.PI);
    fake.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.skipIf("no system C compiler to build the fake driver", !hasCc)(
  "llmrt_launch_ex fills cuLaunchKernelEx's config and the PDL attribute (fake driver, cuda.h layout)",
  () => {
    const dir = mkdtempSync(join(tmpdir(), "llmrt-fake-ex-"));
    try {
      const src = join(dir, "fake_ex.c");
      // The layout of cuda.h's CUlaunchConfig / CUlaunchAttribute (CUDA 12-13), written out here independently of the shim.
      writeFileSync(
        src,
        `
      typedef unsigned int u32; typedef unsigned long long u64;
      typedef struct { u32 id; char pad[4]; union { char pad[64]; int programmaticStreamSerializationAllowed; } value; } Attr;
      typedef struct { u32 gx, gy, gz, bx, by, bz, sh; void* stream; Attr* attrs; u32 numAttrs; } Config;
      static u64 rec[16]; static unsigned char vals[16];
      static int fake_ex(const Config* c, void* f, void** params, void** extra) {
        rec[0] = (u64)f; rec[1] = c->gx; rec[2] = c->gy; rec[3] = c->gz; rec[4] = c->bx; rec[5] = c->by; rec[6] = c->bz;
        rec[7] = c->sh; rec[8] = (u64)c->stream; rec[9] = c->numAttrs; rec[10] = (u64)extra;
        rec[11] = c->numAttrs ? c->attrs[0].id : 99; rec[12] = c->numAttrs ? (u64)c->attrs[0].value.programmaticStreamSerializationAllowed : 99;
        for (int i = 0; i < 2; i++) for (int b = 0; b < 8; b++) vals[i * 8 + b] = ((unsigned char*)params[i])[b];
        return 0;
      }
      u64 fake_ex_address(void) { return (u64)&fake_ex; }
      void fake_ex_read(u64* out, unsigned char* args) { for (int i = 0; i < 13; i++) out[i] = rec[i]; for (int i = 0; i < 16; i++) args[i] = vals[i]; }
    `,
      );
      const so = join(dir, "fake_ex.so");
      const cc = spawnSync("cc", ["-shared", "-fPIC", "-O1", "-o", so, src], { encoding: "utf8" });
      assert.equal(cc.status, 0, cc.stderr);
      const fake = openPath(so, { fake_ex_address: { args: [], returns: "handle" }, fake_ex_read: { args: ["buf", "buf"], returns: "i32" } } as const);
      const packet = new LaunchPacket(["ptr", "i32"]);
      packet.setLaunch(0x1234n, 0x5678n, [66, 2, 3], [256, 1, 1], 512);
      packet.setArg(0, 0x7000_0000_2000n);
      packet.setArg(1, -7);
      const rec = new BigUint64Array(13), args = new Uint8Array(16);
      for (const flags of [LAUNCH_PDL, 0]) {
        assert.equal(shim().symbols.llmrt_launch_ex(fake.symbols.fake_ex_address(), packet.bytes, flags), 0);
        fake.symbols.fake_ex_read(rec, args);
        const attr = flags ? [1n, 6n, 1n] : [0n, 99n, 99n]; // numAttrs; CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION = 6, allowed = 1
        assert.deepEqual([...rec], [0x1234n, 66n, 2n, 3n, 256n, 1n, 1n, 512n, 0x5678n, attr[0], 0n, attr[1], attr[2]], `flags ${flags}`);
        const av = new DataView(args.buffer);
        assert.equal(av.getBigUint64(0, true), 0x7000_0000_2000n);
        assert.equal(av.getInt32(8, true), -7);
      }
      // A NULL cuLaunchKernelEx is refused, not called.
      assert.equal(shim().symbols.llmrt_launch_ex(0n, packet.bytes, LAUNCH_PDL), 1);
      fake.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
);

test.skipIf("no system C compiler", !hasCc)("the system-compiler shim build is cached by source hash", () => {
  const dir = mkdtempSync(join(tmpdir(), "llmrt-shim-cache-"));
  try {
    const first = buildShimWithSystemCompiler(dir);
    assert.equal(first.how, "compiled");
    const again = buildShimWithSystemCompiler(dir);
    assert.deepEqual(again, { path: first.path, how: "cache" });
    const lib = openPath(first.path, shimSymbols);
    assert.equal(lib.symbols.llmrt_shim_abi(), SHIM_ABI);
    lib.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("no C compiler gives one clear error naming the compilers tried", () => {
  const dir = mkdtempSync(join(tmpdir(), "llmrt-shim-nocc-"));
  try {
    withEnv("PATH", "/nonexistent-bin", () =>
      withEnv("CC", "/nonexistent-bin/cc", () => {
        assert.throws(() => buildShimWithSystemCompiler(dir), (e: unknown) => {
          assert.ok(e instanceof NativeLibraryError);
          assert.match(e.message, /no C compiler found/);
          assert.match(e.message, /\/nonexistent-bin\/cc/);
          assert.match(e.message, /LLMRT_SHIM_LIB/);
          return true;
        });
      }));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("CudaError carries library, api, code and the library's name for it", () => {
  const e = new CudaError("cuda", "cuMemAlloc", 2, "CUDA_ERROR_OUT_OF_MEMORY", "1 TiB");
  assert.equal(e.name, "CudaError");
  assert.equal(e.message, "cuMemAlloc failed: CUDA_ERROR_OUT_OF_MEMORY (cuda status 2): 1 TiB");
  const c = new CudaError("nvrtc", "nvrtcCompileProgram", 6, "NVRTC_ERROR_COMPILATION", "k.cu", "k.cu(3): error: x");
  assert.match(c.message, /\nk\.cu\(3\): error: x$/);
  assert.equal(c.log, "k.cu(3): error: x");
});

test("compileCuda rejects a non-CUBIN architecture before touching NVRTC", () => {
  assert.throws(() => compileCuda("", { arch: "compute_90" }), ValidationError);
  assert.throws(() => compileCuda("", { arch: "90" }), /CompileOptions\.arch/);
});

test("CUBIN cache keys cover included headers, transitively", () => {
  const dir = mkdtempSync(join(tmpdir(), "llmrt-inc-"));
  try {
    writeFileSync(join(dir, "a.cuh"), '#pragma once\n#include "b.cuh"\n');
    writeFileSync(join(dir, "b.cuh"), "// b v1\n");
    const src = '#include "a.cuh"\n  #  include "a.cuh"\n#include <cuda_bf16.h>\n#include "not_here.cuh"\nextern "C" __global__ void k() {}';
    const headers = includedHeaders(src, [dir]);
    assert.deepEqual(headers.map(([p]) => p), [join(dir, "a.cuh"), join(dir, "b.cuh")]);
    const v = { major: 13, minor: 0 };
    const k1 = cubinCacheKey(src, "sm_90", v, ["-std=c++17"], headers);
    writeFileSync(join(dir, "b.cuh"), "// b v2\n");
    const k2 = cubinCacheKey(src, "sm_90", v, ["-std=c++17"], includedHeaders(src, [dir]));
    assert.notEqual(k1, k2);
    assert.notEqual(cubinCacheKey(src, "sm_90", v, []), cubinCacheKey(src, "sm_89", v, []));
    assert.notEqual(cubinCacheKey(src, "sm_90", v, []), cubinCacheKey(src, "sm_90", { major: 13, minor: 1 }, []));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("LLMRT_TRACE_FFI wrappers log calls or count them", () => {
  assert.equal(formatArg(255n), "0xff");
  assert.equal(formatArg(new Uint8Array(12)), "buf[12]");
  assert.equal(formatArg(null), "NULL");
  const calls: unknown[][] = [];
  const fns = { f: (...a: unknown[]) => (calls.push(a), 7), g: undefined };
  const lines: string[] = [];
  const write = process.stderr.write;
  (process.stderr as unknown as { write: (s: string) => boolean }).write = (s: string) => (lines.push(s), true);
  try {
    const wrapped = wrapForTrace("test", fns, "log");
    assert.equal(wrapped.f?.(1n, 2), 7);
    assert.equal(wrapped.g, undefined);
  } finally {
    (process.stderr as unknown as { write: typeof write }).write = write;
  }
  assert.deepEqual(calls, [[1n, 2]]);
  assert.match(lines.join(""), /\[llmrt ffi\] f\(0x1, 2\) -> 7/);
  const timed = wrapForTrace("test", fns, "time");
  assert.equal(timed.f?.(3), 7);
});

test("ownership: releases run once, children newest first, errors collected", () => {
  const order: string[] = [];
  const set = new ReleaseSet();
  const a = new Release("a", () => order.push("a"), set);
  new Release("b", () => order.push("b"), set);
  new Release("c", () => {
    order.push("c");
    throw new Error("c failed");
  }, set);
  a.run();
  a.run();
  assert.equal(a.done, true);
  assert.equal(set.size, 2);
  const errors = set.releaseAll();
  assert.deepEqual(order, ["a", "c", "b"]);
  assert.equal(errors.length, 1);
  assert.equal(set.size, 0);
});
