// Per-head RMSNorm of q and k inside packed qkv rows (Qwen3), in place; fp32 statistics.
//
// extern "C" __global__ void qk_norm_bf16(bf16_t* qkv, const bf16_t* qWeight, const bf16_t* kWeight,
//                                         int numTokens, int numHeads, int numKvHeads, int headDim, float eps)
// extern "C" __global__ void qk_norm_f32 (float*  qkv, const float*  qWeight, const float*  kWeight,
//                                         int numTokens, int numHeads, int numKvHeads, int headDim, float eps)
//   qkv [numTokens, (numHeads + 2 * numKvHeads) * headDim] = [q heads | k heads | v heads]; v untouched
//   qWeight, kWeight [headDim]
//   one warp per (token, head): grid (ceil((numHeads + numKvHeads) / 4), numTokens, 1)   block (128, 1, 1)   shared 0
//   (numTokens <= 65535: grid.y)
#include "common.cuh"

template <typename T>
__device__ __forceinline__ void qkNormImpl(T* qkv, const T* qWeight, const T* kWeight, int numHeads, int numKvHeads, int headDim, float eps) {
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int h = blockIdx.x * (blockDim.x >> 5) + warp;
  if (h >= numHeads + numKvHeads) return;  // whole warp leaves; no block barrier below
  const long long width = (long long)(numHeads + 2 * numKvHeads) * headDim;
  T* x = qkv + (long long)blockIdx.y * width + (long long)h * headDim;
  const T* w = h < numHeads ? qWeight : kWeight;
  float ss = 0.f;
  for (int i = lane; i < headDim; i += 32) {
    const float a = toF(x[i]);
    ss += a * a;
  }
  ss = warpSum(ss);
  const float inv = rsqrtf(ss / (float)headDim + eps);
  for (int i = lane; i < headDim; i += 32) x[i] = fromF<T>(toF(x[i]) * inv * toF(w[i]));
}

extern "C" __global__ void __launch_bounds__(128) qk_norm_bf16(bf16_t* qkv, const bf16_t* qWeight, const bf16_t* kWeight, int numTokens, int numHeads, int numKvHeads, int headDim, float eps) {
  if ((int)blockIdx.y >= numTokens) return;
  qkNormImpl<bf16_t>(qkv, qWeight, kWeight, numHeads, numKvHeads, headDim, eps);
}
extern "C" __global__ void __launch_bounds__(128) qk_norm_f32(float* qkv, const float* qWeight, const float* kWeight, int numTokens, int numHeads, int numKvHeads, int headDim, float eps) {
  if ((int)blockIdx.y >= numTokens) return;
  qkNormImpl<float>(qkv, qWeight, kWeight, numHeads, numKvHeads, headDim, eps);
}
