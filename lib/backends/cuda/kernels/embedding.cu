// Token embedding lookup: out[t, :] = table[ids[t], :].
//
// extern "C" __global__ void embedding_bf16(const int* ids, const bf16_t* table, bf16_t* out,
//                                           int numTokens, int hidden, int vocab, int* errFlag)
// extern "C" __global__ void embedding_f32 (const int* ids, const float*  table, float*  out,
//                                           int numTokens, int hidden, int vocab, int* errFlag)
//   ids     [numTokens] int32          table [vocab, hidden]      out [numTokens, hidden]
//   errFlag optional (nullptr = none): an id outside [0, vocab) writes a zero row and sets
//           *errFlag = max(*errFlag, t + 1) for the offending token t (host reads it after the step).
//   grid  (numTokens, 1, 1)   block (256, 1, 1)   shared 0
//   16-byte loads/stores when hidden * sizeof(elem) % 16 == 0 and the pointers are 16-byte aligned.
#include "common.cuh"

template <typename T>
__device__ __forceinline__ void embeddingImpl(const int* ids, const T* table, T* out, int hidden, int vocab, int* errFlag) {
  const int t = blockIdx.x;
  const int id = ids[t];
  const bool ok = id >= 0 && id < vocab;
  if (!ok && threadIdx.x == 0 && errFlag) atomicMax(errFlag, t + 1);
  const T* src = table + (long long)(ok ? id : 0) * hidden;
  T* dst = out + (long long)t * hidden;
  constexpr int N = Vec16<T>::N;
  if (hidden % N == 0 && aligned16(src) && aligned16(dst)) {
    for (int i = threadIdx.x * N; i < hidden; i += blockDim.x * N) {
      uint4 v;
      if (ok) v = *reinterpret_cast<const uint4*>(src + i);
      else { v.x = 0u; v.y = 0u; v.z = 0u; v.w = 0u; }
      *reinterpret_cast<uint4*>(dst + i) = v;
    }
  } else {
    for (int i = threadIdx.x; i < hidden; i += blockDim.x) dst[i] = ok ? src[i] : fromF<T>(0.f);
  }
}

extern "C" __global__ void __launch_bounds__(256) embedding_bf16(const int* ids, const bf16_t* table, bf16_t* out, int numTokens, int hidden, int vocab, int* errFlag) {
  if ((int)blockIdx.x >= numTokens) return;
  embeddingImpl<bf16_t>(ids, table, out, hidden, vocab, errFlag);
}
extern "C" __global__ void __launch_bounds__(256) embedding_f32(const int* ids, const float* table, float* out, int numTokens, int hidden, int vocab, int* errFlag) {
  if ((int)blockIdx.x >= numTokens) return;
  embeddingImpl<float>(ids, table, out, hidden, vocab, errFlag);
}
