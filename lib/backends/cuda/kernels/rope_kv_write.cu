// RoPE (HF rotate_half: pairs i, i + headDim/2) on q and k of each packed token, rotated q to the q
// buffer, rotated k and raw v written into the layer's paged KV cache at the token's position.
// cos/sin are computed in double from double inverse frequencies (exact for long positions), then
// multiplied by attnScaling and rounded to float.
//
// extern "C" __global__ void rope_kv_write_bf16(const bf16_t* qkv, bf16_t* q, bf16_t* kvCache,
//     const int* positions, const int* seqStarts, const int* blockTables, const double* invFreq, float attnScaling,
//     int numTokens, int numSeqs, int numHeads, int numKvHeads, int headDim, int tokensPerBlock, int maxBlocksPerSeq)
// extern "C" __global__ void rope_kv_write_f32 (const float* qkv, float* q, float* kvCache, ...same...)
//   qkv       [numTokens, (numHeads + 2 * numKvHeads) * headDim]   (q heads | k heads | v heads)
//   q         [numTokens, numHeads * headDim]                        (output)
//   kvCache   one layer: [numBlocks, 2 (k, v), tokensPerBlock, numKvHeads, headDim]   (output, same element type)
//   positions [numTokens]   seqStarts [numSeqs + 1]   blockTables [numSeqs, maxBlocksPerSeq]   invFreq [headDim / 2] float64
//   grid (numTokens, 1, 1)   block (128, 1, 1)   shared: headDim * 4 B static (headDim <= 256)
//   May be launched with PDL (prefillPdl): every block waits for the previous kernel first.
// extern "C" __global__ void rope_kv_write_pdl_bf16(...rope_kv_write_bf16's parameters...)
//   The same results; for a programmatic dependent launch: the step inputs' part (position, block table, cos/sin) runs
//   before the wait for the previous kernel.
//
// Quantized KV cache (issue 14, kv_fp8.cuh): the same with the cache in bytes and the layer's scales appended:
// extern "C" __global__ void rope_kv_write_{fp8kv|int8kv}_bf16(const bf16_t* qkv, bf16_t* q, {u8|i8}* kvCache, ...same...,
//     const float* kvScales)
//   k stored as encode(float(rotated k) / kScale[head]) (the float a bf16 cache would round), v as encode(v / vScale[head]);
//   encode: e4m3 (fp8kv) or rne clamped to ±127 (int8kv).
#include "kv_fp8.cuh"

/** cs[i] / sn[i] = cos / sin(invFreq[i] · pos) · attnScaling (in double, stored as float), i < half, over the block's threads. */
__device__ __forceinline__ void ropeTables(float* cs, float* sn, const double* invFreq, int pos, int half, float attnScaling) {
  for (int i = threadIdx.x; i < half; i += blockDim.x) {
    double sv, cv;
    sincos(invFreq[i] * (double)pos, &sv, &cv);
    cs[i] = (float)(cv * (double)attnScaling);
    sn[i] = (float)(sv * (double)attnScaling);
  }
}

template <typename T>
__device__ __forceinline__ void ropeKvWriteImpl(const T* qkv, T* q, T* kvCache, const int* positions, const int* seqStarts,
    const int* blockTables, const double* invFreq, float attnScaling, int numSeqs, int numHeads, int numKvHeads, int headDim,
    int tokensPerBlock, int maxBlocksPerSeq) {
  __shared__ float cs[128], sn[128];
  const int t = blockIdx.x;
  const int half = headDim >> 1;
  const int pos = positions[t];
  const int s = seqOfToken(seqStarts, numSeqs, t);
  ropeTables(cs, sn, invFreq, pos, half, attnScaling);
  __syncthreads();
  const int rowWidth = numKvHeads * headDim;
  const T* row = qkv + (long long)t * (numHeads + 2 * numKvHeads) * headDim;
  const int* table = blockTables + (long long)s * maxBlocksPerSeq;
  const long long kOff = kvCacheOffset(table, pos, 0, tokensPerBlock, rowWidth);
  const long long vOff = kvCacheOffset(table, pos, 1, tokensPerBlock, rowWidth);
  T* qRow = q + (long long)t * numHeads * headDim;
  for (int idx = threadIdx.x; idx < (numHeads + numKvHeads) * half; idx += blockDim.x) {
    const int h = idx / half, i = idx - h * half;
    const float a = toF(row[h * headDim + i]), b = toF(row[h * headDim + half + i]);
    const float c = cs[i], sn_ = sn[i];
    T* dst = h < numHeads ? qRow + h * headDim : kvCache + kOff + (h - numHeads) * headDim;
    dst[i] = fromF<T>(a * c - b * sn_);
    dst[half + i] = fromF<T>(b * c + a * sn_);
  }
  const T* v = row + (numHeads + numKvHeads) * headDim;
  for (int i = threadIdx.x; i < rowWidth; i += blockDim.x) kvCache[vOff + i] = v[i];
}

/** A task's 8 rotation pairs (bf16, va / vb) rotated by the tables at i0, as ropeKvWriteImpl rotates them. */
__device__ __forceinline__ void ropeRotate8(const uint4& va, const uint4& vb, const float* cs, const float* sn, int i0, float (&x0)[8],
    float (&x1)[8]) {
  const u32 wa[4] = {va.x, va.y, va.z, va.w}, wb[4] = {vb.x, vb.y, vb.z, vb.w};
#pragma unroll
  for (int e = 0; e < 8; e++) {
    const float a = __uint_as_float(e & 1 ? wa[e >> 1] & 0xffff0000u : wa[e >> 1] << 16);
    const float b = __uint_as_float(e & 1 ? wb[e >> 1] & 0xffff0000u : wb[e >> 1] << 16);
    const float c = cs[i0 + e], sn_ = sn[i0 + e];
    x0[e] = a * c - b * sn_;
    x1[e] = b * c + a * sn_;
  }
}

// bf16, headDim % 16 == 0 (16-byte rows: every q / k / v head starts on a 16-byte boundary): the same values as
// ropeKvWriteImpl (same expressions, same rounding) with 16-byte accesses — a task is 8 rotation pairs (two 16-byte
// loads and stores) or 8 v elements — and each thread's loads of a pass issued before the cos/sin tables are
// computed, so the global-load latency overlaps the double-precision sincos.
// EARLY (rope_kv_write_pdl_bf16, launched with PDL): the position, block-table lookups and cos/sin tables (step inputs
// only) are computed before waiting for the previous kernel (the qkv GEMM), then the loads; the same values.
template <bool EARLY = false>
__device__ __forceinline__ void ropeKvWriteVecBf16(const bf16_t* qkv, bf16_t* q, bf16_t* kvCache, const int* positions,
    const int* seqStarts, const int* blockTables, const double* invFreq, float attnScaling, int numSeqs, int numHeads,
    int numKvHeads, int headDim, int tokensPerBlock, int maxBlocksPerSeq) {
  constexpr int PER = 4;  // tasks a thread holds in registers per pass
  __shared__ float cs[128], sn[128];
  const int t = blockIdx.x;
  const int half = headDim >> 1, nv = half >> 3;
  const int pos = positions[t];
  const int s = seqOfToken(seqStarts, numSeqs, t);
  const int rowWidth = numKvHeads * headDim;
  const bf16_t* row = qkv + (long long)t * (numHeads + 2 * numKvHeads) * headDim;
  const int* table = blockTables + (long long)s * maxBlocksPerSeq;
  const long long kOff = kvCacheOffset(table, pos, 0, tokensPerBlock, rowWidth);
  const long long vOff = kvCacheOffset(table, pos, 1, tokensPerBlock, rowWidth);
  bf16_t* qRow = q + (long long)t * numHeads * headDim;
  const int rotTasks = (numHeads + numKvHeads) * nv, tasks = rotTasks + (rowWidth >> 3);
  bool tablesReady = false;
  if (EARLY) {
    ropeTables(cs, sn, invFreq, pos, half, attnScaling);
    __syncthreads();
    tablesReady = true;
    pdlWait();  // qkv is the previous kernel's
    pdlLaunchDependents();
  }
  for (int base = 0; base < tasks; base += PER * (int)blockDim.x) {
    uint4 va[PER], vb[PER];
#pragma unroll
    for (int u = 0; u < PER; u++) {
      const int k = base + u * (int)blockDim.x + (int)threadIdx.x;
      if (k < rotTasks) {
        const int h = k / nv, i0 = (k - h * nv) << 3;
        va[u] = *reinterpret_cast<const uint4*>(row + h * headDim + i0);
        vb[u] = *reinterpret_cast<const uint4*>(row + h * headDim + half + i0);
      } else if (k < tasks) {
        va[u] = *reinterpret_cast<const uint4*>(row + (numHeads + numKvHeads) * headDim + ((k - rotTasks) << 3));
      }
    }
    if (!tablesReady) {
      ropeTables(cs, sn, invFreq, pos, half, attnScaling);
      __syncthreads();
      tablesReady = true;
    }
#pragma unroll
    for (int u = 0; u < PER; u++) {
      const int k = base + u * (int)blockDim.x + (int)threadIdx.x;
      if (k < rotTasks) {
        const int h = k / nv, i0 = (k - h * nv) << 3;
        float x0[8], x1[8];
        ropeRotate8(va[u], vb[u], cs, sn, i0, x0, x1);
        bf16_t* dst = h < numHeads ? qRow + h * headDim : kvCache + kOff + (h - numHeads) * headDim;
        store16(dst + i0, x0);
        store16(dst + half + i0, x1);
      } else if (k < tasks) {
        *reinterpret_cast<uint4*>(kvCache + vOff + ((k - rotTasks) << 3)) = va[u];
      }
    }
  }
}

#if LLMRT_KERNEL(rope_kv_write_bf16)
extern "C" __global__ void __launch_bounds__(128) rope_kv_write_bf16(const bf16_t* qkv, bf16_t* q, bf16_t* kvCache,
    const int* positions, const int* seqStarts, const int* blockTables, const double* invFreq, float attnScaling,
    int numTokens, int numSeqs, int numHeads, int numKvHeads, int headDim, int tokensPerBlock, int maxBlocksPerSeq) {
  pdlWait();  // qkv is the previous kernel's (prefillPdl; a no-op without PDL)
  pdlLaunchDependents();
  if ((int)blockIdx.x >= numTokens) return;
#ifndef LLMRT_ROPE_SCALAR  // the scalar path below for every call (tools/cuda-kernel-check/prefill_small.py compares them)
  if ((headDim & 15) == 0 && headDim <= 256 && aligned16(qkv) && aligned16(q) && aligned16(kvCache)) {
    ropeKvWriteVecBf16(qkv, q, kvCache, positions, seqStarts, blockTables, invFreq, attnScaling, numSeqs, numHeads,
                       numKvHeads, headDim, tokensPerBlock, maxBlocksPerSeq);
    return;
  }
#endif
  ropeKvWriteImpl<bf16_t>(qkv, q, kvCache, positions, seqStarts, blockTables, invFreq, attnScaling, numSeqs, numHeads,
                          numKvHeads, headDim, tokensPerBlock, maxBlocksPerSeq);
}
#endif
// rope_kv_write_bf16 for a programmatic dependent launch (prefillPdl): the step-input part before the wait.
#if LLMRT_KERNEL(rope_kv_write_pdl_bf16)
extern "C" __global__ void __launch_bounds__(128) rope_kv_write_pdl_bf16(const bf16_t* qkv, bf16_t* q, bf16_t* kvCache,
    const int* positions, const int* seqStarts, const int* blockTables, const double* invFreq, float attnScaling,
    int numTokens, int numSeqs, int numHeads, int numKvHeads, int headDim, int tokensPerBlock, int maxBlocksPerSeq) {
  if ((int)blockIdx.x < numTokens && (headDim & 15) == 0 && headDim <= 256 && aligned16(qkv) && aligned16(q) && aligned16(kvCache)) {
    ropeKvWriteVecBf16<true>(qkv, q, kvCache, positions, seqStarts, blockTables, invFreq, attnScaling, numSeqs, numHeads,
                             numKvHeads, headDim, tokensPerBlock, maxBlocksPerSeq);
    return;
  }
  pdlWait();
  pdlLaunchDependents();
  if ((int)blockIdx.x >= numTokens) return;
  ropeKvWriteImpl<bf16_t>(qkv, q, kvCache, positions, seqStarts, blockTables, invFreq, attnScaling, numSeqs, numHeads,
                          numKvHeads, headDim, tokensPerBlock, maxBlocksPerSeq);
}
#endif
#if LLMRT_KERNEL(rope_kv_write_f32)
extern "C" __global__ void __launch_bounds__(128) rope_kv_write_f32(const float* qkv, float* q, float* kvCache,
    const int* positions, const int* seqStarts, const int* blockTables, const double* invFreq, float attnScaling,
    int numTokens, int numSeqs, int numHeads, int numKvHeads, int headDim, int tokensPerBlock, int maxBlocksPerSeq) {
  pdlWait();  // qkv is the previous kernel's (prefillPdl; a no-op without PDL)
  pdlLaunchDependents();
  if ((int)blockIdx.x >= numTokens) return;
  ropeKvWriteImpl<float>(qkv, q, kvCache, positions, seqStarts, blockTables, invFreq, attnScaling, numSeqs, numHeads,
                         numKvHeads, headDim, tokensPerBlock, maxBlocksPerSeq);
}
#endif

// Quantized KV caches: u8 (e4m3, sm_89+ conversions) or i8 (int8); guarded like every entry point here, so
// each is compiled only for engines that use it.
template <typename KT>
__device__ __forceinline__ void ropeKvWriteQuantImpl(const bf16_t* qkv, bf16_t* q, KT* kvCache, const int* positions, const int* seqStarts,
    const int* blockTables, const double* invFreq, float attnScaling, int numSeqs, int numHeads, int numKvHeads, int headDim,
    int tokensPerBlock, int maxBlocksPerSeq, const float* kvScales) {
  __shared__ float cs[128], sn[128];
  const int t = blockIdx.x;
  const int half = headDim >> 1;
  const int pos = positions[t];
  const int s = seqOfToken(seqStarts, numSeqs, t);
  ropeTables(cs, sn, invFreq, pos, half, attnScaling);
  __syncthreads();
  const int rowWidth = numKvHeads * headDim;
  const bf16_t* row = qkv + (long long)t * (numHeads + 2 * numKvHeads) * headDim;
  const int* table = blockTables + (long long)s * maxBlocksPerSeq;
  const long long kOff = kvCacheOffset(table, pos, 0, tokensPerBlock, rowWidth);
  const long long vOff = kvCacheOffset(table, pos, 1, tokensPerBlock, rowWidth);
  bf16_t* qRow = q + (long long)t * numHeads * headDim;
  for (int idx = threadIdx.x; idx < (numHeads + numKvHeads) * half; idx += blockDim.x) {
    const int h = idx / half, i = idx - h * half;
    const float a = toF(row[h * headDim + i]), b = toF(row[h * headDim + half + i]);
    const float x0 = a * cs[i] - b * sn[i], x1 = b * cs[i] + a * sn[i];
    if (h < numHeads) {
      qRow[h * headDim + i] = fromF<bf16_t>(x0);
      qRow[h * headDim + half + i] = fromF<bf16_t>(x1);
    } else {
      const int kh = h - numHeads;
      const float ks = kvScales[kh];
      KT* dst = kvCache + kOff + kh * headDim;
      dst[i] = kvEncode<KT>(x0, ks);
      dst[half + i] = kvEncode<KT>(x1, ks);
    }
  }
  const bf16_t* v = row + (numHeads + numKvHeads) * headDim;
  for (int i = threadIdx.x; i < rowWidth; i += blockDim.x) kvCache[vOff + i] = kvEncode<KT>(toF(v[i]), kvScales[numKvHeads + i / headDim]);
}

// headDim % 16 == 0 (16-byte q / k / v heads): the same values and bytes as ropeKvWriteQuantImpl (same expressions) with
// ropeKvWriteVecBf16's 16-byte loads — a task is 8 rotation pairs or 8 v elements, a thread's loads of a pass issued
// before the cos/sin tables are computed — and 8-byte stores of 8 encoded k / v elements.
// shadow (rope_kv_write_shadow_*, session 10 `fp8ShadowRope`; 0 = none): each k / v byte also as bf16(decode(byte) · s)
// at the same element of the bf16 shadow layer, the value kv_dequant_* writes there.
template <typename KT>
__device__ __forceinline__ void ropeKvWriteVecQuant(const bf16_t* qkv, bf16_t* q, KT* kvCache, const int* positions,
    const int* seqStarts, const int* blockTables, const double* invFreq, float attnScaling, int numSeqs, int numHeads,
    int numKvHeads, int headDim, int tokensPerBlock, int maxBlocksPerSeq, const float* kvScales, bf16_t* shadow = nullptr) {
  constexpr int PER = 4;  // tasks a thread holds in registers per pass
  __shared__ float cs[128], sn[128];
  const int t = blockIdx.x;
  const int half = headDim >> 1, nv = half >> 3;
  const int pos = positions[t];
  const int s = seqOfToken(seqStarts, numSeqs, t);
  const int rowWidth = numKvHeads * headDim;
  const bf16_t* row = qkv + (long long)t * (numHeads + 2 * numKvHeads) * headDim;
  const int* table = blockTables + (long long)s * maxBlocksPerSeq;
  const long long kOff = kvCacheOffset(table, pos, 0, tokensPerBlock, rowWidth);
  const long long vOff = kvCacheOffset(table, pos, 1, tokensPerBlock, rowWidth);
  bf16_t* qRow = q + (long long)t * numHeads * headDim;
  const int rotTasks = (numHeads + numKvHeads) * nv, tasks = rotTasks + (rowWidth >> 3);
  bool tablesReady = false;
  auto enc8 = [&](const float (&x)[8], float sc) {
    uint2 r;
    r.x = r.y = 0u;
#pragma unroll
    for (int e = 0; e < 8; e++) {
      const u32 byte = (u32)(unsigned char)kvEncode<KT>(x[e], sc);
      if (e < 4) r.x |= byte << (8 * e);
      else r.y |= byte << (8 * (e - 4));
    }
    return r;
  };
  for (int base = 0; base < tasks; base += PER * (int)blockDim.x) {
    uint4 va[PER], vb[PER];
#pragma unroll
    for (int u = 0; u < PER; u++) {
      const int k = base + u * (int)blockDim.x + (int)threadIdx.x;
      if (k < rotTasks) {
        const int h = k / nv, i0 = (k - h * nv) << 3;
        va[u] = *reinterpret_cast<const uint4*>(row + h * headDim + i0);
        vb[u] = *reinterpret_cast<const uint4*>(row + h * headDim + half + i0);
      } else if (k < tasks) {
        va[u] = *reinterpret_cast<const uint4*>(row + (numHeads + numKvHeads) * headDim + ((k - rotTasks) << 3));
      }
    }
    if (!tablesReady) {
      ropeTables(cs, sn, invFreq, pos, half, attnScaling);
      __syncthreads();
      tablesReady = true;
    }
#pragma unroll
    for (int u = 0; u < PER; u++) {
      const int k = base + u * (int)blockDim.x + (int)threadIdx.x;
      if (k < rotTasks) {
        const int h = k / nv, i0 = (k - h * nv) << 3;
        float x0[8], x1[8];
        ropeRotate8(va[u], vb[u], cs, sn, i0, x0, x1);
        if (h < numHeads) {
          store16(qRow + h * headDim + i0, x0);
          store16(qRow + h * headDim + half + i0, x1);
        } else {
          const float ks = kvScales[h - numHeads];
          KT* dst = kvCache + kOff + (h - numHeads) * headDim;
          const uint2 e0 = enc8(x0, ks), e1 = enc8(x1, ks);
          *reinterpret_cast<uint2*>(dst + i0) = e0;
          *reinterpret_cast<uint2*>(dst + half + i0) = e1;
          if (shadow) {
            bf16_t* sd = shadow + kOff + (h - numHeads) * headDim;
            *reinterpret_cast<uint4*>(sd + i0) = kvDecode8<KT>(e0, ks);
            *reinterpret_cast<uint4*>(sd + half + i0) = kvDecode8<KT>(e1, ks);
          }
        }
      } else if (k < tasks) {
        const int e0 = (k - rotTasks) << 3;
        const u32 w[4] = {va[u].x, va[u].y, va[u].z, va[u].w};
        float x[8];
#pragma unroll
        for (int e = 0; e < 8; e++) x[e] = __uint_as_float(e & 1 ? w[e >> 1] & 0xffff0000u : w[e >> 1] << 16);
        const float vs = kvScales[numKvHeads + e0 / headDim];
        const uint2 ev = enc8(x, vs);
        *reinterpret_cast<uint2*>(kvCache + vOff + e0) = ev;
        if (shadow) *reinterpret_cast<uint4*>(shadow + vOff + e0) = kvDecode8<KT>(ev, vs);
      }
    }
  }
}

#ifndef LLMRT_ROPE_QUANT_SCALAR
#define LLMRT_ROPE_QUANT_VEC(KT, ...)                                                                                   \
  if ((headDim & 15) == 0 && headDim <= 256 && aligned16(qkv) && aligned16(q) && ((unsigned long long)kvCache & 7) == 0) { \
    ropeKvWriteVecQuant<KT>(__VA_ARGS__);                                                                               \
    return;                                                                                                             \
  }
#else
#define LLMRT_ROPE_QUANT_VEC(KT, ...)
#endif

#define ROPE_KV_QUANT(NAME, KT)                                                                                         \
  extern "C" __global__ void __launch_bounds__(128) NAME(const bf16_t* qkv, bf16_t* q, KT* kvCache, const int* positions, \
      const int* seqStarts, const int* blockTables, const double* invFreq, float attnScaling, int numTokens, int numSeqs,  \
      int numHeads, int numKvHeads, int headDim, int tokensPerBlock, int maxBlocksPerSeq, const float* kvScales) {        \
    pdlWait(); /* qkv is the previous kernel's (PDL in fused decode steps) */                                           \
    pdlLaunchDependents();                                                                                              \
    if ((int)blockIdx.x >= numTokens) return;                                                                           \
    LLMRT_ROPE_QUANT_VEC(KT, qkv, q, kvCache, positions, seqStarts, blockTables, invFreq, attnScaling, numSeqs, numHeads, \
                         numKvHeads, headDim, tokensPerBlock, maxBlocksPerSeq, kvScales)                                \
    ropeKvWriteQuantImpl<KT>(qkv, q, kvCache, positions, seqStarts, blockTables, invFreq, attnScaling, numSeqs, numHeads, \
                             numKvHeads, headDim, tokensPerBlock, maxBlocksPerSeq, kvScales);                           \
  }
#if LLMRT_KERNEL(rope_kv_write_fp8kv_bf16)
ROPE_KV_QUANT(rope_kv_write_fp8kv_bf16, u8)
#endif

// Session 10 (`fp8ShadowRope`): the vectorized quantized write that also fills the bf16 shadow layer of the flash prefill
// path at the rows it writes (so kv_dequant_prefix_* converts only the rows the step did not write):
// extern "C" __global__ void rope_kv_write_shadow_{fp8kv|int8kv}_bf16(...rope_kv_write_{fp8kv|int8kv}_bf16's parameters...,
//     bf16_t* shadow)
//   shadow: one bf16 layer of the cache's shape; k / v element e of the token also as bf16(decode(byte) · s) at element e.
//   Needs the vectorized path (headDim % 16 == 0, <= 256, 16-byte aligned qkv / q, 8-byte aligned cache): else it traps.
#define ROPE_KV_SHADOW(NAME, KT)                                                                                        \
  extern "C" __global__ void __launch_bounds__(128) NAME(const bf16_t* qkv, bf16_t* q, KT* kvCache, const int* positions, \
      const int* seqStarts, const int* blockTables, const double* invFreq, float attnScaling, int numTokens, int numSeqs,  \
      int numHeads, int numKvHeads, int headDim, int tokensPerBlock, int maxBlocksPerSeq, const float* kvScales,         \
      bf16_t* shadow) {                                                                                                 \
    pdlWait();                                                                                                          \
    pdlLaunchDependents();                                                                                              \
    if ((int)blockIdx.x >= numTokens) return;                                                                           \
    if (!((headDim & 15) == 0 && headDim <= 256 && aligned16(qkv) && aligned16(q) && ((unsigned long long)kvCache & 7) == 0)) \
      asm volatile("trap;");                                                                                            \
    ropeKvWriteVecQuant<KT>(qkv, q, kvCache, positions, seqStarts, blockTables, invFreq, attnScaling, numSeqs, numHeads, \
                            numKvHeads, headDim, tokensPerBlock, maxBlocksPerSeq, kvScales, shadow);                   \
  }
#if LLMRT_KERNEL(rope_kv_write_shadow_fp8kv_bf16)
ROPE_KV_SHADOW(rope_kv_write_shadow_fp8kv_bf16, u8)
#endif
#if LLMRT_KERNEL(rope_kv_write_shadow_int8kv_bf16)
ROPE_KV_SHADOW(rope_kv_write_shadow_int8kv_bf16, i8)
#endif
#if LLMRT_KERNEL(rope_kv_write_int8kv_bf16)
ROPE_KV_QUANT(rope_kv_write_int8kv_bf16, i8)
#endif
