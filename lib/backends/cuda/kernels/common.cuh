// Helpers shared by every llmrt kernel file. Self-contained: no CUDA headers, so NVRTC needs only
// `--include-path=<this folder>` (plus `-std=c++17 --gpu-architecture=sm_XX`).
//
// bf16 is carried as raw 16-bit storage (`bf16_t`, bit-identical to __nv_bfloat16): a kernel
// parameter `const bf16_t*` is an ordinary device pointer (u64) on the launch side.
#pragma once

typedef unsigned short bf16_t;   // bfloat16 bits
typedef unsigned int u32;
typedef unsigned long long u64;

// Kernel selection (issue 16, first-run compile): a compile unit that needs only some entry points of a
// file is compiled with LLMRT_SELECT and LLMRT_K_<name> defined to 1 for each of them
// (lib/backends/cuda/compiler.ts kernelUnit); an entry point wrapped in `#if LLMRT_KERNEL(name)` is
// left out unless selected (an undefined LLMRT_K_<name> reads 0 in #if). Without LLMRT_SELECT every
// entry point compiles, as before.
#ifdef LLMRT_SELECT
#define LLMRT_KERNEL(NAME) LLMRT_K_##NAME
#else
#define LLMRT_KERNEL(NAME) 1
#endif

#define LLMRT_INF (__int_as_float(0x7f800000))
#define LLMRT_LOG2E 1.4426950408889634f

// Programmatic dependent launch (PDL, Hopper+; LaunchOptions.pdl): a kernel launched with it may start
// while the previous kernel on the stream still runs. Before pdlWait() it may only read memory no
// earlier launch of the step writes (weights, the step's inputs, earlier steps' KV cache) and write
// nothing; pdlWait() returns once the previous kernel has completed and its writes are visible (at
// once when the kernel was launched without PDL, so the same code serves both launches). A kernel
// calls pdlLaunchDependents() after its pdlWait(), so the next kernel's pre-wait part (streaming its
// weights) overlaps this kernel's main work, never an older kernel's.
#ifndef LLMRT_PDL_EARLY
#define LLMRT_PDL_EARLY 0  // 1: trigger the dependents before waiting (deeper overlap; a tuning knob)
#endif

// LLMRT_STAMP (harness only, bench/decode_gaps.ts; no build the engine runs by default defines it): the device address
// of a u64 buffer [0] = records written, [8 + 4 i ..] = record i. A kernel that opens LLMRT_STAMP_SCOPE(tag, key) writes
// one record a block when its last warp's lane 0 leaves: globaltimer at the block's entry (thread 0), when thread 0
// passed pdlWait (0: never waited), at the end, and tag << 56 | smid << 48 | (linear block index & 0xffff) << 32 |
// (key >> 8) & 0xffffffff (key: a pointer naming the launch, e.g. its weight). LLMRT_STAMP_CAP records at most.
#ifdef LLMRT_STAMP
#ifndef LLMRT_STAMP_CAP
#define LLMRT_STAMP_CAP 2000000ull
#endif
__shared__ unsigned long long llmrtStT0, llmrtStT1;
__shared__ unsigned llmrtStOut;
__device__ __forceinline__ unsigned long long llmrtGt() {
  unsigned long long t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  return t;
}
struct LlmrtStampScope {
  unsigned long long meta;
  __device__ LlmrtStampScope(unsigned tag, const void* key) {
    unsigned sm;
    asm volatile("mov.u32 %0, %%smid;" : "=r"(sm));
    const unsigned long long b = ((unsigned long long)blockIdx.z * gridDim.y + blockIdx.y) * gridDim.x + blockIdx.x;
    meta = (unsigned long long)(tag & 0xff) << 56 | (unsigned long long)(sm & 0xff) << 48 | (b & 0xffff) << 32 |
           (((unsigned long long)key >> 8) & 0xffffffffull);
    if (threadIdx.x == 0) {
      llmrtStT0 = llmrtGt();
      llmrtStT1 = 0;
      llmrtStOut = 0;
    }
  }
  __device__ ~LlmrtStampScope() {
    if ((threadIdx.x & 31) != 0) return;
    __threadfence_block();
    const unsigned nw = (blockDim.x * blockDim.y * blockDim.z + 31) >> 5;
    if (atomicAdd(&llmrtStOut, 1u) != nw - 1) return;  // the block's last warp out writes the record
    const unsigned long long t2 = llmrtGt();
    unsigned long long* buf = (unsigned long long*)(LLMRT_STAMP);
    const unsigned long long i = atomicAdd(buf, 1ull);
    if (i >= LLMRT_STAMP_CAP) return;
    unsigned long long* r = buf + 8 + 4 * i;
    r[0] = llmrtStT0;
    r[1] = llmrtStT1;
    r[2] = t2;
    r[3] = meta;
  }
};
#define LLMRT_STAMP_SCOPE(TAG, KEY) LlmrtStampScope llmrtStampScope_((TAG), (KEY))
#define LLMRT_STAMP_WAITED() \
  if (threadIdx.x == 0) llmrtStT1 = llmrtGt()
#else
#define LLMRT_STAMP_SCOPE(TAG, KEY)
#define LLMRT_STAMP_WAITED()
#endif

__device__ __forceinline__ void pdlWait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
#if LLMRT_PDL_EARLY
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
  LLMRT_STAMP_WAITED();
}
__device__ __forceinline__ void pdlLaunchDependents() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

__device__ __forceinline__ float toF(float x) { return x; }
__device__ __forceinline__ float toF(bf16_t x) { return __uint_as_float(((u32)x) << 16); }

template <typename T> __device__ __forceinline__ T fromF(float f);
template <> __device__ __forceinline__ float fromF<float>(float f) { return f; }
/** float -> bf16, round to nearest even (as __float2bfloat16_rn); NaN stays NaN. */
template <> __device__ __forceinline__ bf16_t fromF<bf16_t>(float f) {
  u32 u = __float_as_uint(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return (bf16_t)0x7fc0u;
  u += 0x7fffu + ((u >> 16) & 1u);
  return (bf16_t)(u >> 16);
}

/** Elements of T in one 16-byte vector. */
template <typename T> struct Vec16 { static constexpr int N = 16 / (int)sizeof(T); };

__device__ __forceinline__ void load16(const float* p, float (&f)[4]) {
  float4 v = *reinterpret_cast<const float4*>(p);
  f[0] = v.x; f[1] = v.y; f[2] = v.z; f[3] = v.w;
}
__device__ __forceinline__ void load16(const bf16_t* p, float (&f)[8]) {
  uint4 v = *reinterpret_cast<const uint4*>(p);
  const u32 w[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
  for (int i = 0; i < 4; i++) {
    f[2 * i] = __uint_as_float(w[i] << 16);
    f[2 * i + 1] = __uint_as_float(w[i] & 0xffff0000u);
  }
}
__device__ __forceinline__ void store16(float* p, const float (&f)[4]) {
  float4 v;
  v.x = f[0]; v.y = f[1]; v.z = f[2]; v.w = f[3];
  *reinterpret_cast<float4*>(p) = v;
}
__device__ __forceinline__ void store16(bf16_t* p, const float (&f)[8]) {
  u32 w[4];
#pragma unroll
  for (int i = 0; i < 4; i++) w[i] = (u32)fromF<bf16_t>(f[2 * i]) | ((u32)fromF<bf16_t>(f[2 * i + 1]) << 16);
  uint4 v;
  v.x = w[0]; v.y = w[1]; v.z = w[2]; v.w = w[3];
  *reinterpret_cast<uint4*>(p) = v;
}

__device__ __forceinline__ bool aligned16(const void* p) { return (((u64)p) & 15ull) == 0; }

__device__ __forceinline__ float warpSum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ float warpMax(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

/** Sum over the block (blockDim.x a multiple of 32, <= 1024); every thread gets the total. `sh`: 32 floats of shared memory. */
__device__ __forceinline__ float blockSum(float v, float* sh) {
  v = warpSum(v);
  const int w = threadIdx.x >> 5, l = threadIdx.x & 31, nw = blockDim.x >> 5;
  __syncthreads();  // a previous call may still be reading sh
  if (l == 0) sh[w] = v;
  __syncthreads();
  v = l < nw ? sh[l] : 0.f;
  return warpSum(v);
}

/**
 * The RMSNorm prologue of the fused GEMVs: x <- rmsnorm(x) * normW for each of the m rows of k (a
 * multiple of 8) bf16 values, rounded to bf16 as rmsnorm_bf16 rounds it, staged in `xs` (shared
 * memory, m * k elements). `red`: 32 floats of shared memory for blockSum. Every thread of the block
 * calls it; it ends with __syncthreads(), so xs is ready to read.
 */
__device__ __forceinline__ void rmsnormStage(const bf16_t* x, const bf16_t* normW, float eps, int m, int k, bf16_t* xs, float* red) {
  const int tid = threadIdx.x, kv = k >> 3;
  for (int r = 0; r < m; r++) {
    const bf16_t* xr = x + (long long)r * k;
    bf16_t* xsr = xs + r * k;
    float ss = 0.f;
    for (int c = tid; c < kv; c += blockDim.x) {
      float a[8];
      load16(xr + c * 8, a);
#pragma unroll
      for (int e = 0; e < 8; e++) ss += a[e] * a[e];
    }
    ss = blockSum(ss, red);
    const float inv = rsqrtf(ss / (float)k + eps);
    for (int c = tid; c < kv; c += blockDim.x) {
      float a[8], w8[8];
      load16(xr + c * 8, a);
      load16(normW + c * 8, w8);
#pragma unroll
      for (int e = 0; e < 8; e++) a[e] = a[e] * inv * w8[e];
      store16(xsr + c * 8, a);
    }
  }
  __syncthreads();
}

/** The sequence holding packed token t: the largest s with seqStarts[s] <= t (empty sequences skipped). */
__device__ __forceinline__ int seqOfToken(const int* seqStarts, int numSeqs, int t) {
  int lo = 0, hi = numSeqs;  // seqStarts[lo] <= t < seqStarts[hi]
  while (hi - lo > 1) {
    const int mid = (lo + hi) >> 1;
    if (seqStarts[mid] <= t) lo = mid; else hi = mid;
  }
  return lo;
}

/**
 * Element offset of (position pos, kv head 0) of K (which = 0) or V (which = 1) in one layer's paged
 * cache [numBlocks, 2, tokensPerBlock, numKvHeads, headDim]; add kvHead * headDim.
 */
__device__ __forceinline__ long long kvCacheOffset(const int* blockTable, int pos, int which, int tokensPerBlock, int rowWidth) {
  const long long blk = blockTable[pos / tokensPerBlock];
  return ((blk * 2 + which) * tokensPerBlock + (pos % tokensPerBlock)) * (long long)rowWidth;
}
