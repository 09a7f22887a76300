/**
 * cuBLASLt (libcublasLt.so.13 / .12) symbol table. cublasStatus_t is i32, size_t usize, every
 * descriptor and handle a pointer (`handle`), device pointers u64 (bigint). Attribute values are
 * passed by address with their byte size, so their C type is noted beside each enum value.
 */
import { cudaToolkitLibDirs } from "./cuda.ts";
import { type LazyLibrary, lazyLibrary, type LibrarySpec, type SymbolTable } from "./runtime.ts";

export const cublasLtSymbols = {
  cublasLtGetVersion: { args: [], returns: "usize" }, // size_t
  cublasLtGetStatusName: {
    args: [
      "i32", //    cublasStatus_t status
    ],
    returns: "handle",
  }, // const char*
  cublasLtCreate: {
    args: [
      "buf", //    cublasLtHandle_t* lightHandle
    ],
    returns: "i32",
  },
  cublasLtDestroy: {
    args: [
      "handle", // cublasLtHandle_t lightHandle
    ],
    returns: "i32",
  },
  cublasLtMatmulDescCreate: {
    args: [
      "buf", //    cublasLtMatmulDesc_t* matmulDesc
      "i32", //    cublasComputeType_t computeType
      "i32", //    cudaDataType_t scaleType
    ],
    returns: "i32",
  },
  cublasLtMatmulDescDestroy: {
    args: [
      "handle", // cublasLtMatmulDesc_t matmulDesc
    ],
    returns: "i32",
  },
  cublasLtMatmulDescSetAttribute: {
    args: [
      "handle", // cublasLtMatmulDesc_t matmulDesc
      "i32", //    cublasLtMatmulDescAttributes_t attr
      "buf", //    const void* buf
      "usize", //  size_t sizeInBytes
    ],
    returns: "i32",
  },
  cublasLtMatrixLayoutCreate: {
    args: [
      "buf", //    cublasLtMatrixLayout_t* matLayout
      "i32", //    cudaDataType type
      "u64", //    uint64_t rows
      "u64", //    uint64_t cols
      "i64", //    int64_t ld
    ],
    returns: "i32",
  },
  cublasLtMatrixLayoutDestroy: {
    args: [
      "handle", // cublasLtMatrixLayout_t matLayout
    ],
    returns: "i32",
  },
  cublasLtMatrixLayoutSetAttribute: {
    args: [
      "handle", // cublasLtMatrixLayout_t matLayout
      "i32", //    cublasLtMatrixLayoutAttribute_t attr
      "buf", //    const void* buf
      "usize", //  size_t sizeInBytes
    ],
    returns: "i32",
  },
  cublasLtMatmulPreferenceCreate: {
    args: [
      "buf", //    cublasLtMatmulPreference_t* pref
    ],
    returns: "i32",
  },
  cublasLtMatmulPreferenceDestroy: {
    args: [
      "handle", // cublasLtMatmulPreference_t pref
    ],
    returns: "i32",
  },
  cublasLtMatmulPreferenceSetAttribute: {
    args: [
      "handle", // cublasLtMatmulPreference_t pref
      "i32", //    cublasLtMatmulPreferenceAttributes_t attr
      "buf", //    const void* buf
      "usize", //  size_t sizeInBytes
    ],
    returns: "i32",
  },
  cublasLtMatmulAlgoGetHeuristic: {
    args: [
      "handle", // cublasLtHandle_t lightHandle
      "handle", // cublasLtMatmulDesc_t operationDesc
      "handle", // cublasLtMatrixLayout_t Adesc
      "handle", // cublasLtMatrixLayout_t Bdesc
      "handle", // cublasLtMatrixLayout_t Cdesc
      "handle", // cublasLtMatrixLayout_t Ddesc
      "handle", // cublasLtMatmulPreference_t preference
      "i32", //    int requestedAlgoCount
      "buf", //    cublasLtMatmulHeuristicResult_t heuristicResultsArray[] (96 bytes each)
      "buf", //    int* returnAlgoCount
    ],
    returns: "i32",
  },
  cublasLtMatmulAlgoConfigGetAttribute: {
    args: [
      "buf", //    const cublasLtMatmulAlgo_t* algo
      "i32", //    cublasLtMatmulAlgoConfigAttributes_t attr
      "buf", //    void* buf
      "usize", //  size_t sizeInBytes
      "buf", //    size_t* sizeWritten
    ],
    returns: "i32",
  },
  cublasLtMatmulAlgoCapGetAttribute: {
    args: [
      "buf", //    const cublasLtMatmulAlgo_t* algo
      "i32", //    cublasLtMatmulAlgoCapAttributes_t attr
      "buf", //    void* buf
      "usize", //  size_t sizeInBytes
      "buf", //    size_t* sizeWritten
    ],
    returns: "i32",
  },
  cublasLtMatmulAlgoConfigSetAttribute: {
    args: [
      "buf", //    cublasLtMatmulAlgo_t* algo
      "i32", //    cublasLtMatmulAlgoConfigAttributes_t attr
      "buf", //    const void* buf
      "usize", //  size_t sizeInBytes
    ],
    returns: "i32",
  },
  cublasLtMatmulAlgoCheck: {
    args: [
      "handle", // cublasLtHandle_t lightHandle
      "handle", // cublasLtMatmulDesc_t operationDesc
      "handle", // cublasLtMatrixLayout_t Adesc
      "handle", // cublasLtMatrixLayout_t Bdesc
      "handle", // cublasLtMatrixLayout_t Cdesc
      "handle", // cublasLtMatrixLayout_t Ddesc
      "buf", //    const cublasLtMatmulAlgo_t* algo
      "buf", //    cublasLtMatmulHeuristicResult_t* result (96 bytes)
    ],
    returns: "i32",
  },
  cublasLtMatmul: {
    args: [
      "handle", // cublasLtHandle_t lightHandle
      "handle", // cublasLtMatmulDesc_t computeDesc
      "buf", //    const void* alpha (host, scale type)
      "u64", //    const void* A (device)
      "handle", // cublasLtMatrixLayout_t Adesc
      "u64", //    const void* B (device)
      "handle", // cublasLtMatrixLayout_t Bdesc
      "buf", //    const void* beta (host, scale type)
      "u64", //    const void* C (device)
      "handle", // cublasLtMatrixLayout_t Cdesc
      "u64", //    void* D (device)
      "handle", // cublasLtMatrixLayout_t Ddesc
      "buf", //    const cublasLtMatmulAlgo_t* algo (64 bytes)
      "u64", //    void* workspace (device)
      "usize", //  size_t workspaceSizeInBytes
      "handle", // cudaStream_t stream
    ],
    returns: "i32",
  },
} as const satisfies SymbolTable;

/** cuBLAS / cuBLASLt enum values used by llmrt (CUDA 12/13 `cublasLt.h`, `library_types.h`). */
export const LT = {
  // cudaDataType_t
  R_32F: 0,
  R_64F: 1,
  R_16F: 2,
  R_16BF: 14,
  R_8F_E4M3: 28,
  R_8F_E5M2: 29,
  // cublasComputeType_t
  COMPUTE_16F: 64,
  COMPUTE_32F: 68,
  COMPUTE_32F_FAST_TF32: 77,
  COMPUTE_64F: 70,
  // cublasOperation_t
  OP_N: 0,
  OP_T: 1,
  // cublasLtMatmulDescAttributes_t (value type)
  MATMUL_DESC_TRANSA: 3, // int32_t
  MATMUL_DESC_TRANSB: 4, // int32_t
  MATMUL_DESC_EPILOGUE: 7, // uint32_t
  MATMUL_DESC_BIAS_POINTER: 8, // void*
  MATMUL_DESC_A_SCALE_POINTER: 17, // void* (float, device)
  MATMUL_DESC_B_SCALE_POINTER: 18, // void* (float, device)
  MATMUL_DESC_FAST_ACCUM: 25, // int8_t (fp8: accumulate in the tensor cores' own precision, no periodic fp32 promotion)
  // cublasLtMatmulAlgoConfigAttributes_t (value type)
  ALGO_CONFIG_ID: 0, // int32_t
  ALGO_CONFIG_TILE_ID: 1, // uint32_t
  ALGO_CONFIG_SPLITK_NUM: 2, // uint32_t (1: no split)
  ALGO_CONFIG_REDUCTION_SCHEME: 3, // uint32_t (cublasLtReductionScheme_t, 0: none)
  ALGO_CONFIG_CTA_SWIZZLING: 4, // uint32_t
  ALGO_CONFIG_CUSTOM_OPTION: 5, // uint32_t
  ALGO_CONFIG_STAGES_ID: 6, // uint32_t
  ALGO_CONFIG_CLUSTER_SHAPE_ID: 8, // uint16_t (0: auto)
  // cublasLtMatmulAlgoCapAttributes_t (value type)
  ALGO_CAP_TILE_IDS: 6, // uint32_t[] (cublasLtMatmulTile_t)
  ALGO_CAP_STAGES_IDS: 13, // uint32_t[] (cublasLtMatmulStages_t)
  // cublasLtEpilogue_t
  EPILOGUE_DEFAULT: 1,
  EPILOGUE_BIAS: 4,
  // cublasLtMatmulPreferenceAttributes_t (value type)
  PREF_MAX_WORKSPACE_BYTES: 1, // uint64_t
  PREF_MIN_ALIGNMENT_A_BYTES: 5, // uint32_t
  PREF_MIN_ALIGNMENT_B_BYTES: 6, // uint32_t
  PREF_MIN_ALIGNMENT_C_BYTES: 7, // uint32_t
  PREF_MIN_ALIGNMENT_D_BYTES: 8, // uint32_t
  /** sizeof(cublasLtMatmulHeuristicResult_t): algo (uint64_t[8]) + size_t + status + float + int[4]. */
  HEURISTIC_RESULT_BYTES: 96,
  /** offsetof(cublasLtMatmulHeuristicResult_t, workspaceSize) / state. */
  HEURISTIC_WORKSPACE_OFFSET: 64,
  HEURISTIC_STATE_OFFSET: 72,
  /** sizeof(cublasLtMatmulAlgo_t). */
  ALGO_BYTES: 64,
} as const;

/** cublasStatus_t names, used when cublasLtGetStatusName cannot be called. */
export const CUBLAS_STATUS_NAMES: Readonly<Record<number, string>> = {
  0: "CUBLAS_STATUS_SUCCESS",
  1: "CUBLAS_STATUS_NOT_INITIALIZED",
  3: "CUBLAS_STATUS_ALLOC_FAILED",
  7: "CUBLAS_STATUS_INVALID_VALUE",
  8: "CUBLAS_STATUS_ARCH_MISMATCH",
  11: "CUBLAS_STATUS_MAPPING_ERROR",
  13: "CUBLAS_STATUS_EXECUTION_FAILED",
  14: "CUBLAS_STATUS_INTERNAL_ERROR",
  15: "CUBLAS_STATUS_NOT_SUPPORTED",
  16: "CUBLAS_STATUS_LICENSE_ERROR",
};

/** Where cublasLt is searched for (also used by tests of the error path). */
export const cublasLtLibrarySpec: LibrarySpec<typeof cublasLtSymbols> = {
  library: "cuBLASLt (libcublasLt)",
  envVar: "LLMRT_CUBLASLT_LIB",
  candidates: () => [
    "libcublasLt.so.13",
    "libcublasLt.so.12",
    "libcublasLt.so",
    ...cudaToolkitLibDirs().flatMap((d) => [`${d}/libcublasLt.so.13`, `${d}/libcublasLt.so.12`]),
  ],
  symbols: cublasLtSymbols,
};

/** cuBLASLt, opened on first use. Override the search with `LLMRT_CUBLASLT_LIB`. */
export const cublasLt: LazyLibrary<typeof cublasLtSymbols> = lazyLibrary(cublasLtLibrarySpec);
