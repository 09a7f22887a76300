/**
 * NVRTC (libnvrtc.so.13 / .12) symbol table: runtime compilation of CUDA C to CUBIN or PTX.
 * nvrtcResult is i32, size_t usize, nvrtcProgram a pointer (`handle`).
 */
import { cudaToolkitLibDirs } from "./cuda.ts";
import { type LazyLibrary, lazyLibrary, type LibrarySpec, type SymbolTable } from "./runtime.ts";

export const nvrtcSymbols = {
  nvrtcGetErrorString: {
    args: [
      "i32", //    nvrtcResult result
    ],
    returns: "handle",
  }, // const char*
  nvrtcVersion: {
    args: [
      "buf", //    int* major
      "buf", //    int* minor
    ],
    returns: "i32",
  },
  nvrtcCreateProgram: {
    args: [
      "buf", //    nvrtcProgram* prog
      "buf", //    const char* src
      "buf", //    const char* name
      "i32", //    int numHeaders
      "buf", //    const char* const* headers
      "buf", //    const char* const* includeNames
    ],
    returns: "i32",
  },
  nvrtcDestroyProgram: {
    args: [
      "buf", //    nvrtcProgram* prog
    ],
    returns: "i32",
  },
  nvrtcCompileProgram: {
    args: [
      "handle", // nvrtcProgram prog
      "i32", //    int numOptions
      "buf", //    const char* const* options
    ],
    returns: "i32",
  },
  nvrtcGetProgramLogSize: {
    args: [
      "handle", // nvrtcProgram prog
      "buf", //    size_t* logSizeRet
    ],
    returns: "i32",
  },
  nvrtcGetProgramLog: {
    args: [
      "handle", // nvrtcProgram prog
      "buf", //    char* log
    ],
    returns: "i32",
  },
  nvrtcGetCUBINSize: {
    args: [
      "handle", // nvrtcProgram prog
      "buf", //    size_t* cubinSizeRet
    ],
    returns: "i32",
  },
  nvrtcGetCUBIN: {
    args: [
      "handle", // nvrtcProgram prog
      "buf", //    char* cubin
    ],
    returns: "i32",
  },
  nvrtcGetPTXSize: {
    args: [
      "handle", // nvrtcProgram prog
      "buf", //    size_t* ptxSizeRet
    ],
    returns: "i32",
  },
  nvrtcGetPTX: {
    args: [
      "handle", // nvrtcProgram prog
      "buf", //    char* ptx
    ],
    returns: "i32",
  },
} as const satisfies SymbolTable;

/** nvrtcResult values used by llmrt. */
export const NVRTC = {
  SUCCESS: 0,
  ERROR_COMPILATION: 6,
} as const;

/** Names for codes when the library cannot be asked. */
export const NVRTC_ERROR_NAMES: Readonly<Record<number, string>> = {
  0: "NVRTC_SUCCESS",
  1: "NVRTC_ERROR_OUT_OF_MEMORY",
  2: "NVRTC_ERROR_PROGRAM_CREATION_FAILURE",
  3: "NVRTC_ERROR_INVALID_INPUT",
  4: "NVRTC_ERROR_INVALID_PROGRAM",
  5: "NVRTC_ERROR_INVALID_OPTION",
  6: "NVRTC_ERROR_COMPILATION",
  7: "NVRTC_ERROR_BUILTIN_OPERATION_FAILURE",
  11: "NVRTC_ERROR_INTERNAL_ERROR",
};

/** Where nvrtc is searched for (also used by tests of the error path). */
export const nvrtcLibrarySpec: LibrarySpec<typeof nvrtcSymbols> = {
  library: "NVRTC (libnvrtc)",
  envVar: "LLMRT_NVRTC_LIB",
  candidates: () => [
    "libnvrtc.so.13",
    "libnvrtc.so.12",
    "libnvrtc.so",
    ...cudaToolkitLibDirs().flatMap((d) => [`${d}/libnvrtc.so.13`, `${d}/libnvrtc.so.12`]),
  ],
  symbols: nvrtcSymbols,
};

/** NVRTC, opened on first use. Override the search with `LLMRT_NVRTC_LIB`. */
export const nvrtc: LazyLibrary<typeof nvrtcSymbols> = lazyLibrary(nvrtcLibrarySpec);
