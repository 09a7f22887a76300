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
#include "common.cuh"

template <typename T>
__device__ __forceinline__ void ropeKvWriteImpl(const T* qkv, T* q, T* kvCache, const int* positions, const int* seqStarts,
    const int* blockTables, const double* invFreq, float attnScaling, int numSeqs, int numHeads, int numKvHeads, int headDim,
    int tokensPerBlock, int maxBlocksPerSeq) {
  __shared__ float cs[128], sn[128];
  const int t = blockIdx.x;
  const int half = headDim >> 1;
  const int pos = positions[t];
  const int s = seqOfToken(seqStarts, numSeqs, t);
  for (int i = threadIdx.x; i < half; i += blockDim.x) {
    double sv, cv;
    sincos(invFreq[i] * (double)pos, &sv, &cv);
    cs[i] = (float)(cv * (double)attnScaling);
    sn[i] = (float)(sv * (double)attnScaling);
  }
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

extern "C" __global__ void __launch_bounds__(128) rope_kv_write_bf16(const bf16_t* qkv, bf16_t* q, bf16_t* kvCache,
    const int* positions, const int* seqStarts, const int* blockTables, const double* invFreq, float attnScaling,
    int numTokens, int numSeqs, int numHeads, int numKvHeads, int headDim, int tokensPerBlock, int maxBlocksPerSeq) {
  if ((int)blockIdx.x >= numTokens) return;
  ropeKvWriteImpl<bf16_t>(qkv, q, kvCache, positions, seqStarts, blockTables, invFreq, attnScaling, numSeqs, numHeads,
                          numKvHeads, headDim, tokensPerBlock, maxBlocksPerSeq);
}
extern "C" __global__ void __launch_bounds__(128) rope_kv_write_f32(const float* qkv, float* q, float* kvCache,
    const int* positions, const int* seqStarts, const int* blockTables, const double* invFreq, float attnScaling,
    int numTokens, int numSeqs, int numHeads, int numKvHeads, int headDim, int tokensPerBlock, int maxBlocksPerSeq) {
  if ((int)blockIdx.x >= numTokens) return;
  ropeKvWriteImpl<float>(qkv, q, kvCache, positions, seqStarts, blockTables, invFreq, attnScaling, numSeqs, numHeads,
                         numKvHeads, headDim, tokensPerBlock, maxBlocksPerSeq);
}
