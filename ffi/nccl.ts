/**
 * NCCL (libnccl.so.2) symbol table: communicator setup and the collectives tensor parallelism
 * uses. ncclResult_t is i32, size_t usize, ncclComm_t / cudaStream_t / device buffers `handle`.
 *
 * `ncclCommInitRank` takes `ncclUniqueId` (a 128-byte struct) BY VALUE, which no FFI can declare.
 * The C ABIs say where such a struct goes, and the table declares exactly that:
 * - x86-64 System V: a struct over 16 bytes is class MEMORY, copied onto the stack in the argument
 *   area; the integer arguments still take rdi, rsi, rdx. Declared as (comm, nranks, rank, three
 *   unused register words, then the id as 16 u64 words): the three unused words fill rcx, r8, r9,
 *   so the 16 words land on the stack exactly where the callee reads the struct.
 * - aarch64 (AAPCS64): a composite over 16 bytes is copied by the caller and passed by address in
 *   the next register: (comm, nranks, &id, rank).
 */
import process from "node:process";
import { existsSync, readdirSync } from "node:fs";
import { cudaToolkitLibDirs } from "./cuda.ts";
import { type LazyLibrary, lazyLibrary, type LibrarySpec, type SymbolTable } from "./runtime.ts";

/** Bytes of an ncclUniqueId (NCCL_UNIQUE_ID_BYTES). */
export const NCCL_UNIQUE_ID_BYTES = 128;

const u64x16 = Array.from({ length: 16 }, () => "u64" as const);

export const ncclSymbols = {
  ncclGetVersion: {
    args: [
      "buf", //    int* version
    ],
    returns: "i32",
  },
  ncclGetErrorString: {
    args: [
      "i32", //    ncclResult_t result
    ],
    returns: "handle",
  }, // const char*
  ncclGetLastError: {
    args: [
      "handle", // ncclComm_t comm (may be NULL)
    ],
    returns: "handle",
    optional: true,
  }, // const char*
  ncclGetUniqueId: {
    args: [
      "buf", //    ncclUniqueId* uniqueId (128 bytes)
    ],
    returns: "i32",
  },
  /** x86-64 form (see the file comment): the id's 16 words go on the stack. */
  ncclCommInitRank: {
    args: [
      "buf", //    ncclComm_t* comm
      "i32", //    int nranks
      "i32", //    int rank
      "u64", //    (rcx: unused)
      "u64", //    (r8: unused)
      "u64", //    (r9: unused)
      ...u64x16, // ncclUniqueId commId (by value: 128 bytes on the stack)
    ],
    returns: "i32",
  },
  ncclCommDestroy: {
    args: [
      "handle", // ncclComm_t comm
    ],
    returns: "i32",
  },
  ncclCommAbort: {
    args: [
      "handle", // ncclComm_t comm
    ],
    returns: "i32",
  },
  ncclCommGetAsyncError: {
    args: [
      "handle", // ncclComm_t comm
      "buf", //    ncclResult_t* asyncError
    ],
    returns: "i32",
  },
  ncclCommCount: {
    args: [
      "handle", // const ncclComm_t comm
      "buf", //    int* count
    ],
    returns: "i32",
  },
  ncclCommUserRank: {
    args: [
      "handle", // const ncclComm_t comm
      "buf", //    int* rank
    ],
    returns: "i32",
  },
  ncclAllReduce: {
    args: [
      "handle", // const void* sendbuff (device)
      "handle", // void* recvbuff (device)
      "usize", //  size_t count
      "i32", //    ncclDataType_t datatype
      "i32", //    ncclRedOp_t op
      "handle", // ncclComm_t comm
      "handle", // cudaStream_t stream
    ],
    returns: "i32",
  },
  ncclAllGather: {
    args: [
      "handle", // const void* sendbuff (device)
      "handle", // void* recvbuff (device, nranks * sendcount elements)
      "usize", //  size_t sendcount
      "i32", //    ncclDataType_t datatype
      "handle", // ncclComm_t comm
      "handle", // cudaStream_t stream
    ],
    returns: "i32",
  },
  ncclBroadcast: {
    args: [
      "handle", // const void* sendbuff (device; read on root only)
      "handle", // void* recvbuff (device)
      "usize", //  size_t count
      "i32", //    ncclDataType_t datatype
      "i32", //    int root
      "handle", // ncclComm_t comm
      "handle", // cudaStream_t stream
    ],
    returns: "i32",
  },
  ncclGroupStart: { args: [], returns: "i32" },
  ncclGroupEnd: { args: [], returns: "i32" },
} as const satisfies SymbolTable;

/** The aarch64 form of ncclCommInitRank (the id passed by address; see the file comment). */
export const ncclInitRankArm64 = {
  ncclCommInitRank: {
    args: [
      "buf", //    ncclComm_t* comm
      "i32", //    int nranks
      "buf", //    ncclUniqueId commId (a copy, by address)
      "i32", //    int rank
    ],
    returns: "i32",
  },
} as const satisfies SymbolTable;

/** ncclDataType_t values (nccl.h). */
export const NCCL_DTYPE = {
  int8: 0,
  uint8: 1,
  int32: 2,
  uint32: 3,
  int64: 4,
  uint64: 5,
  float16: 6,
  float32: 7,
  float64: 8,
  bfloat16: 9,
} as const;

/** ncclRedOp_t values used by llmrt. */
export const NCCL_OP = { sum: 0 } as const;

/** Names for ncclResult_t codes when the library cannot be asked. */
export const NCCL_RESULT_NAMES: Readonly<Record<number, string>> = {
  0: "ncclSuccess",
  1: "ncclUnhandledCudaError",
  2: "ncclSystemError",
  3: "ncclInternalError",
  4: "ncclInvalidArgument",
  5: "ncclInvalidUsage",
  6: "ncclRemoteError",
  7: "ncclInProgress",
};

/** Python wheels (nvidia-nccl-cu13 / -cu12) put libnccl.so.2 under site-packages/nvidia/nccl/lib. */
function pythonNcclDirs(): string[] {
  const roots = ["/usr/local/lib", "/usr/lib", "/opt/conda/lib", `${process.env.HOME ?? "/root"}/.local/lib`];
  const dirs: string[] = [];
  for (const root of roots) {
    let entries: string[] = [];
    try {
      entries = readdirSync(root).filter((e) => /^python3\.\d+$/.test(e));
    } catch {
      continue;
    }
    for (const py of entries) {
      for (const site of ["dist-packages", "site-packages"]) {
        const d = `${root}/${py}/${site}/nvidia/nccl/lib`;
        if (existsSync(d)) dirs.push(d);
      }
    }
  }
  return dirs;
}

/** Where NCCL is searched for (also used by tests of the error path). */
export const ncclLibrarySpec: LibrarySpec<typeof ncclSymbols> = {
  library: "NCCL (libnccl)",
  envVar: "LLMRT_NCCL_LIB",
  candidates: () => [
    "libnccl.so.2",
    "libnccl.so",
    ...cudaToolkitLibDirs().map((d) => `${d}/libnccl.so.2`),
    ...pythonNcclDirs().map((d) => `${d}/libnccl.so.2`),
  ],
  // On aarch64 the by-value id is passed by address: same table, that one symbol replaced.
  symbols: (process.arch === "arm64" ? { ...ncclSymbols, ...ncclInitRankArm64 } : ncclSymbols) as typeof ncclSymbols,
};

/** NCCL, opened on first use. Override the search with `LLMRT_NCCL_LIB`. */
export const nccl: LazyLibrary<typeof ncclSymbols> = lazyLibrary(ncclLibrarySpec);
