/**
 * CUDA driver API (libcuda.so.1) symbol table. Export names are the versioned ones libcuda
 * exports (the header's `#define cuMemAlloc cuMemAlloc_v2` etc., CUDA 13 `cuda.h`); symbols that
 * only newer drivers have are `optional`. C types are commented per parameter.
 * CUresult is i32, size_t usize, CUdeviceptr u64 (a bigint), every handle a pointer (`handle`).
 */
import process from "node:process";
import { type LazyLibrary, lazyLibrary, type LibrarySpec, type SymbolTable } from "./runtime.ts";

export const cudaSymbols = {
  // ---- errors, init, version
  cuGetErrorName: {
    args: [
      "i32", //    CUresult error
      "buf", //    const char** pStr
    ],
    returns: "i32",
  },
  cuGetErrorString: {
    args: [
      "i32", //    CUresult error
      "buf", //    const char** pStr
    ],
    returns: "i32",
  },
  cuInit: {
    args: [
      "u32", //    unsigned int Flags (must be 0)
    ],
    returns: "i32",
  },
  cuDriverGetVersion: {
    args: [
      "buf", //    int* driverVersion
    ],
    returns: "i32",
  },
  cuGetProcAddress_v2: {
    args: [
      "buf", //    const char* symbol
      "buf", //    void** pfn
      "i32", //    int cudaVersion
      "u64", //    cuuint64_t flags
      "buf", //    CUdriverProcAddressQueryResult* symbolStatus (may be NULL)
    ],
    returns: "i32",
  },

  // ---- devices
  cuDeviceGetCount: {
    args: [
      "buf", //    int* count
    ],
    returns: "i32",
  },
  cuDeviceGet: {
    args: [
      "buf", //    CUdevice* device (int)
      "i32", //    int ordinal
    ],
    returns: "i32",
  },
  cuDeviceGetName: {
    args: [
      "buf", //    char* name
      "i32", //    int len
      "i32", //    CUdevice dev
    ],
    returns: "i32",
  },
  cuDeviceGetAttribute: {
    args: [
      "buf", //    int* pi
      "i32", //    CUdevice_attribute attrib
      "i32", //    CUdevice dev
    ],
    returns: "i32",
  },
  cuDeviceTotalMem_v2: {
    args: [
      "buf", //    size_t* bytes
      "i32", //    CUdevice dev
    ],
    returns: "i32",
  },

  // ---- primary context
  cuDevicePrimaryCtxRetain: {
    args: [
      "buf", //    CUcontext* pctx
      "i32", //    CUdevice dev
    ],
    returns: "i32",
  },
  cuDevicePrimaryCtxRelease_v2: {
    args: [
      "i32", //    CUdevice dev
    ],
    returns: "i32",
  },
  cuCtxSetCurrent: {
    args: [
      "handle", // CUcontext ctx
    ],
    returns: "i32",
  },
  cuCtxGetCurrent: {
    args: [
      "buf", //    CUcontext* pctx
    ],
    returns: "i32",
  },
  cuCtxSynchronize: { args: [], returns: "i32" },

  // ---- device memory
  cuMemGetInfo_v2: {
    args: [
      "buf", //    size_t* free
      "buf", //    size_t* total
    ],
    returns: "i32",
  },
  cuMemAlloc_v2: {
    args: [
      "buf", //    CUdeviceptr* dptr
      "usize", //  size_t bytesize
    ],
    returns: "i32",
  },
  cuMemFree_v2: {
    args: [
      "u64", //    CUdeviceptr dptr
    ],
    returns: "i32",
  },
  cuMemsetD8_v2: {
    args: [
      "u64", //    CUdeviceptr dstDevice
      "u8", //     unsigned char uc
      "usize", //  size_t N
    ],
    returns: "i32",
  },
  cuMemsetD32_v2: {
    args: [
      "u64", //    CUdeviceptr dstDevice
      "u32", //    unsigned int ui
      "usize", //  size_t N (count of 32-bit words)
    ],
    returns: "i32",
  },
  cuMemsetD8Async: {
    args: [
      "u64", //    CUdeviceptr dstDevice
      "u8", //     unsigned char uc
      "usize", //  size_t N
      "handle", // CUstream hStream
    ],
    returns: "i32",
  },
  cuMemsetD32Async: {
    args: [
      "u64", //    CUdeviceptr dstDevice
      "u32", //    unsigned int ui
      "usize", //  size_t N
      "handle", // CUstream hStream
    ],
    returns: "i32",
  },

  // ---- copies (synchronous and stream-ordered)
  cuMemcpyHtoD_v2: {
    args: [
      "u64", //    CUdeviceptr dstDevice
      "buf", //    const void* srcHost
      "usize", //  size_t ByteCount
    ],
    returns: "i32",
  },
  cuMemcpyDtoH_v2: {
    args: [
      "buf", //    void* dstHost
      "u64", //    CUdeviceptr srcDevice
      "usize", //  size_t ByteCount
    ],
    returns: "i32",
  },
  cuMemcpyDtoD_v2: {
    args: [
      "u64", //    CUdeviceptr dstDevice
      "u64", //    CUdeviceptr srcDevice
      "usize", //  size_t ByteCount
    ],
    returns: "i32",
  },
  cuMemcpyHtoDAsync_v2: {
    args: [
      "u64", //    CUdeviceptr dstDevice
      "buf", //    const void* srcHost
      "usize", //  size_t ByteCount
      "handle", // CUstream hStream
    ],
    returns: "i32",
  },
  cuMemcpyDtoHAsync_v2: {
    args: [
      "buf", //    void* dstHost
      "u64", //    CUdeviceptr srcDevice
      "usize", //  size_t ByteCount
      "handle", // CUstream hStream
    ],
    returns: "i32",
  },
  cuMemcpyDtoDAsync_v2: {
    args: [
      "u64", //    CUdeviceptr dstDevice
      "u64", //    CUdeviceptr srcDevice
      "usize", //  size_t ByteCount
      "handle", // CUstream hStream
    ],
    returns: "i32",
  },

  // ---- pinned host memory
  cuMemHostAlloc: {
    args: [
      "buf", //    void** pp
      "usize", //  size_t bytesize
      "u32", //    unsigned int Flags (CU_MEMHOSTALLOC_*)
    ],
    returns: "i32",
  },
  cuMemFreeHost: {
    args: [
      "handle", // void* p
    ],
    returns: "i32",
  },

  // ---- streams
  cuStreamCreate: {
    args: [
      "buf", //    CUstream* phStream
      "u32", //    unsigned int Flags (CU_STREAM_*)
    ],
    returns: "i32",
  },
  cuStreamDestroy_v2: {
    args: [
      "handle", // CUstream hStream
    ],
    returns: "i32",
  },
  cuStreamSynchronize: {
    args: [
      "handle", // CUstream hStream
    ],
    returns: "i32",
  },
  cuStreamQuery: {
    args: [
      "handle", // CUstream hStream
    ],
    returns: "i32",
  },
  cuStreamWaitEvent: {
    args: [
      "handle", // CUstream hStream
      "handle", // CUevent hEvent
      "u32", //    unsigned int Flags (0)
    ],
    returns: "i32",
  },

  // ---- events
  cuEventCreate: {
    args: [
      "buf", //    CUevent* phEvent
      "u32", //    unsigned int Flags (CU_EVENT_*)
    ],
    returns: "i32",
  },
  cuEventDestroy_v2: {
    args: [
      "handle", // CUevent hEvent
    ],
    returns: "i32",
  },
  cuEventRecord: {
    args: [
      "handle", // CUevent hEvent
      "handle", // CUstream hStream
    ],
    returns: "i32",
  },
  cuEventSynchronize: {
    args: [
      "handle", // CUevent hEvent
    ],
    returns: "i32",
  },
  cuEventQuery: {
    args: [
      "handle", // CUevent hEvent
    ],
    returns: "i32",
  },
  cuEventElapsedTime_v2: {
    optional: true,
    args: [ // CUDA 12.8+ drivers
      "buf", //    float* pMilliseconds
      "handle", // CUevent hStart
      "handle", // CUevent hEnd
    ],
    returns: "i32",
  },
  cuEventElapsedTime: {
    optional: true,
    args: [ // older drivers (the unversioned export)
      "buf", //    float* pMilliseconds
      "handle", // CUevent hStart
      "handle", // CUevent hEnd
    ],
    returns: "i32",
  },

  // ---- modules and kernels
  cuModuleLoadData: {
    args: [
      "buf", //    CUmodule* module
      "buf", //    const void* image (CUBIN, fatbin, or NUL-terminated PTX)
    ],
    returns: "i32",
  },
  cuModuleUnload: {
    args: [
      "handle", // CUmodule hmod
    ],
    returns: "i32",
  },
  cuModuleGetFunction: {
    args: [
      "buf", //    CUfunction* hfunc
      "handle", // CUmodule hmod
      "buf", //    const char* name
    ],
    returns: "i32",
  },
  cuFuncGetAttribute: {
    args: [
      "buf", //    int* pi
      "i32", //    CUfunction_attribute attrib
      "handle", // CUfunction hfunc
    ],
    returns: "i32",
  },
  cuFuncSetAttribute: {
    args: [
      "handle", // CUfunction hfunc
      "i32", //    CUfunction_attribute attrib
      "i32", //    int value
    ],
    returns: "i32",
  },
  cuLaunchKernel: {
    args: [
      "handle", // CUfunction f
      "u32", //    unsigned int gridDimX
      "u32", //    unsigned int gridDimY
      "u32", //    unsigned int gridDimZ
      "u32", //    unsigned int blockDimX
      "u32", //    unsigned int blockDimY
      "u32", //    unsigned int blockDimZ
      "u32", //    unsigned int sharedMemBytes
      "handle", // CUstream hStream
      "buf", //    void** kernelParams
      "buf", //    void** extra
    ],
    returns: "i32",
  },

  // ---- graphs (stream capture and replay)
  cuStreamBeginCapture_v2: {
    args: [
      "handle", // CUstream hStream
      "i32", //    CUstreamCaptureMode mode
    ],
    returns: "i32",
  },
  cuStreamEndCapture: {
    args: [
      "handle", // CUstream hStream
      "buf", //    CUgraph* phGraph
    ],
    returns: "i32",
  },
  cuStreamIsCapturing: {
    args: [
      "handle", // CUstream hStream
      "buf", //    CUstreamCaptureStatus* captureStatus (int)
    ],
    returns: "i32",
  },
  cuGraphInstantiateWithFlags: {
    args: [
      "buf", //    CUgraphExec* phGraphExec
      "handle", // CUgraph hGraph
      "u64", //    unsigned long long flags
    ],
    returns: "i32",
  },
  cuGraphLaunch: {
    args: [
      "handle", // CUgraphExec hGraphExec
      "handle", // CUstream hStream
    ],
    returns: "i32",
  },
  cuGraphUpload: {
    args: [
      "handle", // CUgraphExec hGraphExec
      "handle", // CUstream hStream
    ],
    returns: "i32",
  },
  cuGraphGetNodes: {
    args: [
      "handle", // CUgraph hGraph
      "buf", //    CUgraphNode* nodes (NULL: count only)
      "buf", //    size_t* numNodes
    ],
    returns: "i32",
  },
  cuGraphExecDestroy: {
    args: [
      "handle", // CUgraphExec hGraphExec
    ],
    returns: "i32",
  },
  cuGraphDestroy: {
    args: [
      "handle", // CUgraph hGraph
    ],
    returns: "i32",
  },
} as const satisfies SymbolTable;

/** CUDA driver constants used by llmrt (values from CUDA 13 `cuda.h`). */
export const CU = {
  SUCCESS: 0,
  ERROR_INVALID_VALUE: 1,
  ERROR_OUT_OF_MEMORY: 2,
  ERROR_NO_DEVICE: 100,
  ERROR_INVALID_IMAGE: 200,
  ERROR_NOT_FOUND: 500,
  ERROR_NOT_READY: 600,
  // CUdevice_attribute
  DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK: 1,
  DEVICE_ATTRIBUTE_WARP_SIZE: 10,
  DEVICE_ATTRIBUTE_CLOCK_RATE: 13, // kHz
  DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT: 16,
  DEVICE_ATTRIBUTE_MEMORY_CLOCK_RATE: 36, // kHz
  DEVICE_ATTRIBUTE_GLOBAL_MEMORY_BUS_WIDTH: 37, // bits
  DEVICE_ATTRIBUTE_L2_CACHE_SIZE: 38,
  DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR: 75,
  DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR: 76,
  DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_MULTIPROCESSOR: 81,
  DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN: 97,
  // CUfunction_attribute
  FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK: 0,
  FUNC_ATTRIBUTE_NUM_REGS: 4,
  FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES: 8,
  FUNC_ATTRIBUTE_PREFERRED_SHARED_MEMORY_CARVEOUT: 9,
  // flags
  STREAM_DEFAULT: 0x0,
  STREAM_NON_BLOCKING: 0x1,
  EVENT_DEFAULT: 0x0,
  EVENT_BLOCKING_SYNC: 0x1,
  EVENT_DISABLE_TIMING: 0x2,
  MEMHOSTALLOC_PORTABLE: 0x01,
  // CUstreamCaptureMode / CUstreamCaptureStatus
  STREAM_CAPTURE_MODE_GLOBAL: 0,
  STREAM_CAPTURE_MODE_THREAD_LOCAL: 1,
  STREAM_CAPTURE_MODE_RELAXED: 2,
  STREAM_CAPTURE_STATUS_NONE: 0,
  STREAM_CAPTURE_STATUS_ACTIVE: 1,
  STREAM_CAPTURE_STATUS_INVALIDATED: 2,
  GET_PROC_ADDRESS_DEFAULT: 0,
} as const;

/** Names for codes when the driver cannot be asked (it failed to load or cuGetErrorName failed). */
export const CU_ERROR_NAMES: Readonly<Record<number, string>> = {
  0: "CUDA_SUCCESS",
  1: "CUDA_ERROR_INVALID_VALUE",
  2: "CUDA_ERROR_OUT_OF_MEMORY",
  3: "CUDA_ERROR_NOT_INITIALIZED",
  4: "CUDA_ERROR_DEINITIALIZED",
  34: "CUDA_ERROR_STUB_LIBRARY",
  100: "CUDA_ERROR_NO_DEVICE",
  101: "CUDA_ERROR_INVALID_DEVICE",
  200: "CUDA_ERROR_INVALID_IMAGE",
  201: "CUDA_ERROR_INVALID_CONTEXT",
  209: "CUDA_ERROR_NO_BINARY_FOR_GPU",
  400: "CUDA_ERROR_INVALID_HANDLE",
  500: "CUDA_ERROR_NOT_FOUND",
  600: "CUDA_ERROR_NOT_READY",
  700: "CUDA_ERROR_ILLEGAL_ADDRESS",
  701: "CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES",
  719: "CUDA_ERROR_LAUNCH_FAILED",
  900: "CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED",
  901: "CUDA_ERROR_STREAM_CAPTURE_INVALIDATED",
};

function cudaCandidates(): string[] {
  const dirs = ["/usr/lib/x86_64-linux-gnu", "/usr/lib64", "/usr/local/nvidia/lib64", "/usr/lib/wsl/lib", "/usr/lib/aarch64-linux-gnu"];
  return ["libcuda.so.1", "libcuda.so", ...dirs.map((d) => `${d}/libcuda.so.1`)];
}

/** Folders of a CUDA toolkit's libraries under $CUDA_HOME, $CUDA_PATH and /usr/local/cuda. */
export function cudaToolkitLibDirs(): string[] {
  const roots = [...new Set([process.env.CUDA_HOME, process.env.CUDA_PATH, "/usr/local/cuda"].filter((r): r is string => !!r))];
  const target = process.arch === "arm64" ? "sbsa-linux" : "x86_64-linux";
  return roots.flatMap((r) => [`${r}/lib64`, `${r}/targets/${target}/lib`]);
}

/** Where cuda is searched for (also used by tests of the error path). */
export const cudaLibrarySpec: LibrarySpec<typeof cudaSymbols> = {
  library: "the CUDA driver (libcuda)",
  envVar: "LLMRT_CUDA_LIB",
  candidates: cudaCandidates,
  symbols: cudaSymbols,
};

/** The CUDA driver, opened on first use. Override the search with `LLMRT_CUDA_LIB`. */
export const cuda: LazyLibrary<typeof cudaSymbols> = lazyLibrary(cudaLibrarySpec);
