// decodeL2Prefetch (lib/backends/cuda/session_flags.ts): a kernel that leaves DRAM idle pulls the next linear's weight into L2.
#pragma once
#include "common.cuh"

/**
 * Each thread of the grid bulk-prefetches 16 KB slices of [base, base + bytes) into L2 (cp.async.bulk.prefetch.L2, sm_90+;
 * nothing when base is null or bytes <= 0). Issue only: no register waits on it, the bytes arrive while the kernel runs.
 */
__device__ __forceinline__ void prefetchL2Bulk(const void* base, long long bytes) {
  if (base == nullptr || bytes <= 0) return;
  constexpr long long SLICE = 16384;
  const long long nSlices = (bytes + SLICE - 1) / SLICE;
  const long long nThreads = (long long)gridDim.x * gridDim.y * gridDim.z * blockDim.x;
  const long long gtid = ((long long)(blockIdx.z * gridDim.y + blockIdx.y) * gridDim.x + blockIdx.x) * blockDim.x + threadIdx.x;
  for (long long s = gtid; s < nSlices; s += nThreads) {
    const long long off = s * SLICE;
    long long sz = bytes - off < SLICE ? bytes - off : SLICE;
    sz &= ~15ll;
#if !defined(LLMRT_EMU) && defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    if (sz > 0) asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;" ::"l"((const char*)base + off), "r"((u32)sz) : "memory");
#endif
  }
}
