// Batched multi-LoRA (issue 15): after a linear's out = x · Wᵀ, each token row adds its sequence's
// adapter delta scaling · (x · Aᵀ) · Bᵀ on the output columns of each target module (a fused linear
// such as QKV or gate/up has several segments). Two launches per linear:
//   lora_shrink: one block per (token row, segment): tmp[row, k, r] = scaling · x[row] · A[r] (one warp
//                per rank row, float accumulation);
//   lora_expand: one thread per (output column, token row): out += Σ_r tmp[row, k, r] · Bᵀ[r, o] over the
//                segment k holding column o (coalesced reads of Bᵀ), rounded once to the output type.
//
// extern "C" __global__ void lora_shrink_{bf16,f32}(const T* x, int rows, int inF, const int* tokenSlot,
//     const LoraEntry* table, int K, float* tmp, int rankStride)
//   grid (rows, K, 1)   block (256, 1, 1)
// extern "C" __global__ void lora_expand_{bf16,f32}(T* out, int rows, int outF, const int* tokenSlot,
//     const LoraEntry* table, int K, const float* tmp, int rankStride)
//   grid (ceil(outF / 256), rows, 1)   block (256, 1, 1)
//   x [rows, inF], out [rows, outF]; tokenSlot [rows] adapter slot of each token row (-1: none);
//   table [slots, K] LoraEntry { const T* a [rank, inF]; const T* b [rank, outFeatures] (lora_B
//   transposed); int rank; int outOffset; int outFeatures; float scaling } (rank 0: no segment);
//   tmp f32 [rows, K, rankStride], rank <= rankStride.
#include "common.cuh"

struct LoraEntry {
  const void* a;
  const void* b;
  int rank;
  int outOffset;
  int outFeatures;
  float scaling;
};

template <typename T>
__device__ __forceinline__ void shrinkImpl(const T* x, int rows, int inF, const int* tokenSlot, const LoraEntry* table, int K, float* tmp, int rankStride) {
  const int row = blockIdx.x, k = blockIdx.y;
  if (row >= rows) return;
  const int slot = tokenSlot[row];
  if (slot < 0) return;
  const LoraEntry e = table[slot * K + k];
  if (e.rank <= 0) return;
  const T* a = (const T*)e.a;
  const T* xr = x + (long long)row * inF;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
  for (int r = warp; r < e.rank; r += nw) {
    const T* ar = a + (long long)r * inF;
    float acc = 0.f;
    for (int i = lane; i < inF; i += 32) acc += toF(xr[i]) * toF(ar[i]);
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, o);
    if (lane == 0) tmp[((long long)row * K + k) * rankStride + r] = acc * e.scaling;
  }
}

template <typename T>
__device__ __forceinline__ void expandImpl(T* out, int rows, int outF, const int* tokenSlot, const LoraEntry* table, int K, const float* tmp, int rankStride) {
  const int row = blockIdx.y, o = blockIdx.x * blockDim.x + threadIdx.x;
  if (row >= rows || o >= outF) return;
  const int slot = tokenSlot[row];
  if (slot < 0) return;
  for (int k = 0; k < K; k++) {
    const LoraEntry e = table[slot * K + k];
    const int c = o - e.outOffset;
    if (e.rank <= 0 || c < 0 || c >= e.outFeatures) continue;
    const T* b = (const T*)e.b;
    const float* t = tmp + ((long long)row * K + k) * rankStride;
    float acc = 0.f;
    for (int r = 0; r < e.rank; r++) acc += t[r] * toF(b[(long long)r * e.outFeatures + c]);
    T* y = out + (long long)row * outF + o;
    *y = fromF<T>(toF(*y) + acc);
    return;
  }
}

extern "C" __global__ void __launch_bounds__(256) lora_shrink_bf16(const bf16_t* x, int rows, int inF, const int* tokenSlot, const LoraEntry* table, int K,
    float* tmp, int rankStride) {
  shrinkImpl<bf16_t>(x, rows, inF, tokenSlot, table, K, tmp, rankStride);
}
extern "C" __global__ void __launch_bounds__(256) lora_shrink_f32(const float* x, int rows, int inF, const int* tokenSlot, const LoraEntry* table, int K,
    float* tmp, int rankStride) {
  shrinkImpl<float>(x, rows, inF, tokenSlot, table, K, tmp, rankStride);
}
extern "C" __global__ void __launch_bounds__(256) lora_expand_bf16(bf16_t* out, int rows, int outF, const int* tokenSlot, const LoraEntry* table, int K,
    const float* tmp, int rankStride) {
  expandImpl<bf16_t>(out, rows, outF, tokenSlot, table, K, tmp, rankStride);
}
extern "C" __global__ void __launch_bounds__(256) lora_expand_f32(float* out, int rows, int outF, const int* tokenSlot, const LoraEntry* table, int K,
    const float* tmp, int rankStride) {
  expandImpl<float>(out, rows, outF, tokenSlot, table, K, tmp, rankStride);
}
