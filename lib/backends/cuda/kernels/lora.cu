// Batched multi-LoRA (issue 15): after a linear's out = x · Wᵀ, each token row adds its sequence's
// adapter delta scaling · (x · Aᵀ) · Bᵀ on the output columns of each target module (a fused linear
// such as QKV or gate/up has several segments). One block per (token row, segment): the shrink
// (rank dot products of length inF, one warp per rank row) into shared memory, then the expand over
// the segment's output columns, accumulated in float and added to out (bf16: rounded once).
//
// extern "C" __global__ void lora_apply_bf16(const bf16_t* x, bf16_t* out, int rows, int inF, int outF,
//     const int* tokenSlot, const LoraEntry* table, int K)
// extern "C" __global__ void lora_apply_f32 (const float* x, float* out, ...same...)
//   x [rows, inF], out [rows, outF]; tokenSlot [rows] adapter slot of each token row (-1: none);
//   table [slots, K] LoraEntry { const T* a [rank, inF]; const T* b [rank, outFeatures] (lora_B transposed, so the expand reads coalesced); int rank;
//   int outOffset; int outFeatures; float scaling } (rank 0: no segment). rank <= LORA_MAX_RANK.
//   grid (rows, K, 1)   block (256, 1, 1)   shared 4 KB
#include "common.cuh"

#define LORA_MAX_RANK 1024

struct LoraEntry {
  const void* a;
  const void* b;
  int rank;
  int outOffset;
  int outFeatures;
  float scaling;
};

template <typename T>
__device__ __forceinline__ void loraImpl(const T* x, T* out, int rows, int inF, int outF, const int* tokenSlot, const LoraEntry* table, int K) {
  __shared__ float t[LORA_MAX_RANK];
  const int row = blockIdx.x, k = blockIdx.y;
  if (row >= rows) return;
  const int slot = tokenSlot[row];
  if (slot < 0) return;
  const LoraEntry e = table[slot * K + k];
  if (e.rank <= 0) return;
  const T* a = (const T*)e.a;
  const T* b = (const T*)e.b;
  const T* xr = x + (long long)row * inF;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
  for (int r = warp; r < e.rank; r += nw) {
    const T* ar = a + (long long)r * inF;
    float acc = 0.f;
    for (int i = lane; i < inF; i += 32) acc += toF(xr[i]) * toF(ar[i]);
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, o);
    if (lane == 0) t[r] = acc * e.scaling;
  }
  __syncthreads();
  T* orow = out + (long long)row * outF + e.outOffset;
  for (int o = threadIdx.x; o < e.outFeatures; o += blockDim.x) {
    float acc = 0.f;
    for (int r = 0; r < e.rank; r++) acc += t[r] * toF(b[(long long)r * e.outFeatures + o]);
    orow[o] = fromF<T>(toF(orow[o]) + acc);
  }
}

extern "C" __global__ void __launch_bounds__(256) lora_apply_bf16(const bf16_t* x, bf16_t* out, int rows, int inF, int outF, const int* tokenSlot,
    const LoraEntry* table, int K) {
  loraImpl<bf16_t>(x, out, rows, inF, outF, tokenSlot, table, K);
}
extern "C" __global__ void __launch_bounds__(256) lora_apply_f32(const float* x, float* out, int rows, int inF, int outF, const int* tokenSlot,
    const LoraEntry* table, int K) {
  loraImpl<float>(x, out, rows, inF, outF, tokenSlot, table, K);
}
