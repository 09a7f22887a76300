// In-place residual add: out[i] += x[i] (the `add` op left unfused), fp32 math, one rounding.
//
// extern "C" __global__ void add_inplace_bf16(const bf16_t* x, bf16_t* out, long long n)
// extern "C" __global__ void add_inplace_f32 (const float*  x, float*  out, long long n)
//   x, out [n]   grid (min(ceil(n / (256 * V)), 8192), 1, 1) with V = 16 / sizeof(elem)   block (256, 1, 1)   shared 0
//   (grid-stride loop: any grid size is correct). 16-byte vectors when both pointers are 16-byte aligned.
#include "common.cuh"

template <typename T>
__device__ __forceinline__ void addImpl(const T* x, T* out, long long n) {
  constexpr int N = Vec16<T>::N;
  const long long stride = (long long)gridDim.x * blockDim.x;
  const long long tid = (long long)blockIdx.x * blockDim.x + threadIdx.x;
  if (aligned16(x) && aligned16(out)) {
    const long long nv = n / N;
    for (long long v = tid; v < nv; v += stride) {
      float a[N], b[N];
      load16(x + v * N, a);
      load16(out + v * N, b);
#pragma unroll
      for (int e = 0; e < N; e++) b[e] += a[e];
      store16(out + v * N, b);
    }
    for (long long i = nv * N + tid; i < n; i += stride) out[i] = fromF<T>(toF(out[i]) + toF(x[i]));
  } else {
    for (long long i = tid; i < n; i += stride) out[i] = fromF<T>(toF(out[i]) + toF(x[i]));
  }
}

extern "C" __global__ void __launch_bounds__(256) add_inplace_bf16(const bf16_t* x, bf16_t* out, long long n) { addImpl<bf16_t>(x, out, n); }
extern "C" __global__ void __launch_bounds__(256) add_inplace_f32(const float* x, float* out, long long n) { addImpl<float>(x, out, n); }
