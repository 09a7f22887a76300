// Quantized KV cache → bf16 shadow (issue 14, `fp8FlashPrefill`): before a prefill / mixed step's attention over an
// e4m3 (fp8kv) or int8 (int8kv) cache, every cache block the step's sequences attend is written, dequantized, into
// the same block of a bf16 layer (the shadow), which the bf16 flash prefill kernels then read with the step's block
// tables. The values are bf16(decode(q) · s), exactly what paged_attention_prefill_mma_{fp8kv|int8kv} stages.
//
// extern "C" __global__ void kv_dequant_{fp8kv|int8kv}_bf16(const {u8|i8}* kvCache, bf16_t* shadow, const int* positions,
//     const int* seqStarts, const int* blockTables, int numSeqs, int numKvHeads, int headDim, int tokensPerBlock,
//     int maxBlocksPerSeq, const float* kvScales)
//   kvCache one layer [numBlocks, 2, tokensPerBlock, numKvHeads, headDim] bytes; shadow the same shape in bf16;
//   kvScales [2, numKvHeads] (K heads, then V). grid (maxBlocksPerSeq, numSeqs, Z)   block (256, 1, 1)   any Z >= 1
//   CTAs (j, s, *) convert block table[s][j] (its K and V; CTA z its z-th share) when j · tokensPerBlock <= the largest
//   position of sequence s's tokens (positions of tokens seqStarts[s] .. seqStarts[s + 1]); other blocks are left as
//   they are.
#include "kv_fp8.cuh"

#ifndef KD_U
#define KD_U 8  // loads in flight per thread
#endif

__device__ __forceinline__ int kdWarpMax(int v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = max(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

template <typename KT, bool PREFIX = false>
__device__ __forceinline__ void kvDequantImpl(const KT* kv, bf16_t* shadow, const int* positions, const int* seqStarts,
    const int* blockTables, int numKvHeads, int headDim, int tokensPerBlock, int maxBlocksPerSeq, const float* kvScales) {
  __shared__ int red[8], redMin[8];
  const int s = blockIdx.y, j = blockIdx.x, tid = threadIdx.x;
  const int t0 = seqStarts[s], t1 = seqStarts[s + 1];
  int mx = -1, mn = 0x7fffffff;
  for (int t = t0 + tid; t < t1; t += blockDim.x) {
    mx = max(mx, positions[t]);
    if (PREFIX) mn = min(mn, positions[t]);
  }
  mx = kdWarpMax(mx);
  if (PREFIX) mn = -kdWarpMax(-mn);
  if ((tid & 31) == 0) {
    red[tid >> 5] = mx;
    redMin[tid >> 5] = mn;
  }
  __syncthreads();
  if (tid < 32) {
    int v = tid < (int)(blockDim.x >> 5) ? red[tid] : -1;
    v = kdWarpMax(v);
    if (tid == 0) red[0] = v;
    if (PREFIX) {
      int w = tid < (int)(blockDim.x >> 5) ? redMin[tid] : 0x7fffffff;
      w = -kdWarpMax(-w);
      if (tid == 0) redMin[0] = w;
    }
  }
  __syncthreads();
  if (j * tokensPerBlock > red[0]) return;
  // PREFIX: rows of positions in [mn, mx] were written by rope_kv_write_shadow_* (the step's tokens): skip them, and the
  // block when it holds no other row.
  const int rLo = PREFIX ? redMin[0] - j * tokensPerBlock : 0, rHi = PREFIX ? red[0] - j * tokensPerBlock : -1;
  if (PREFIX && rLo <= 0 && rHi >= tokensPerBlock - 1) return;
  const int b = blockTables[(long long)s * maxBlocksPerSeq + j];
  const int row = numKvHeads * headDim, half = tokensPerBlock * row;  // elements of K (then V) of a block
  const long long base = (long long)b * 2 * half;
  const uint2* src = reinterpret_cast<const uint2*>(kv + base);
  uint4* dst = reinterpret_cast<uint4*>(shadow + base);
  // This CTA's share (grid z) of the block's 8-element vectors, KD_U loads in flight per thread.
  const int nvec = 2 * half / 8, per = (nvec + gridDim.z - 1) / gridDim.z;
  const int v1 = min(nvec, ((int)blockIdx.z + 1) * per);
  for (int v0 = blockIdx.z * per + tid; v0 < v1; v0 += blockDim.x * KD_U) {
    uint2 w[KD_U];
#pragma unroll
    for (int u = 0; u < KD_U; u++) {
      const int v = v0 + u * blockDim.x;
      w[u] = v < v1 ? src[v] : uint2{0u, 0u};
    }
#pragma unroll
    for (int u = 0; u < KD_U; u++) {
      const int v = v0 + u * blockDim.x, e = v * 8;  // 8 elements of one head (headDim % 8 == 0)
      const int r = (e % half) / row;                  // the row (token slot) of the block
      if (v < v1 && !(PREFIX && r >= rLo && r <= rHi)) dst[v] = kvDecode8<KT>(w[u], kvScales[(e >= half ? numKvHeads : 0) + (e % row) / headDim]);
    }
  }
}

#define KV_DEQUANT(NAME, KT)                                                                                           \
  extern "C" __global__ void __launch_bounds__(256) NAME(const KT* kvCache, bf16_t* shadow, const int* positions,        \
      const int* seqStarts, const int* blockTables, int numSeqs, int numKvHeads, int headDim, int tokensPerBlock,        \
      int maxBlocksPerSeq, const float* kvScales) {                                                                     \
    if ((int)blockIdx.y >= numSeqs) return;                                                                             \
    kvDequantImpl<KT>(kvCache, shadow, positions, seqStarts, blockTables, numKvHeads, headDim, tokensPerBlock,          \
                      maxBlocksPerSeq, kvScales);                                                                       \
  }
#if LLMRT_KERNEL(kv_dequant_fp8kv_bf16)
KV_DEQUANT(kv_dequant_fp8kv_bf16, u8)
#endif
#if LLMRT_KERNEL(kv_dequant_int8kv_bf16)
KV_DEQUANT(kv_dequant_int8kv_bf16, i8)
#endif

// Session 10 (`fp8ShadowRope`): kv_dequant_prefix_{fp8kv|int8kv}_bf16 (the same parameters and grid) converts the same
// blocks but leaves out the rows of positions from the smallest to the largest of the step's tokens of the sequence —
// rope_kv_write_shadow_* wrote those (the step's tokens of a sequence are consecutive positions) — and skips blocks that
// hold no other row. The shadow then holds kv_dequant_*'s values everywhere the step attends.
#define KV_DEQUANT_PREFIX(NAME, KT)                                                                                    \
  extern "C" __global__ void __launch_bounds__(256) NAME(const KT* kvCache, bf16_t* shadow, const int* positions,        \
      const int* seqStarts, const int* blockTables, int numSeqs, int numKvHeads, int headDim, int tokensPerBlock,        \
      int maxBlocksPerSeq, const float* kvScales) {                                                                     \
    if ((int)blockIdx.y >= numSeqs) return;                                                                             \
    kvDequantImpl<KT, true>(kvCache, shadow, positions, seqStarts, blockTables, numKvHeads, headDim, tokensPerBlock,    \
                            maxBlocksPerSeq, kvScales);                                                                 \
  }
#if LLMRT_KERNEL(kv_dequant_prefix_fp8kv_bf16)
KV_DEQUANT_PREFIX(kv_dequant_prefix_fp8kv_bf16, u8)
#endif
#if LLMRT_KERNEL(kv_dequant_prefix_int8kv_bf16)
KV_DEQUANT_PREFIX(kv_dequant_prefix_int8kv_bf16, i8)
#endif
