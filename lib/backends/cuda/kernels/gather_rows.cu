// Row gather (last token of each sequence -> logits rows): out[r, :] = x[rows[r], :].
//
// extern "C" __global__ void gather_rows_bf16(const bf16_t* x, const int* rows, bf16_t* out, int numRows, int width)
// extern "C" __global__ void gather_rows_f32 (const float*  x, const int* rows, float*  out, int numRows, int width)
//   x [*, width]   rows [numRows] int32 (the host guarantees 0 <= rows[r] < rows of x)   out [numRows, width]
//   grid (numRows, 1, 1)   block (256, 1, 1)   shared 0
//   16-byte vectors when width * sizeof(elem) % 16 == 0 and pointers are aligned.
#include "common.cuh"

template <typename T>
__device__ __forceinline__ void gatherRowsImpl(const T* x, const int* rows, T* out, int width) {
  const long long r = blockIdx.x;
  const T* src = x + (long long)rows[r] * width;
  T* dst = out + r * width;
  constexpr int N = Vec16<T>::N;
  if (width % N == 0 && aligned16(src) && aligned16(dst)) {
    for (int i = threadIdx.x * N; i < width; i += blockDim.x * N)
      *reinterpret_cast<uint4*>(dst + i) = *reinterpret_cast<const uint4*>(src + i);
  } else {
    for (int i = threadIdx.x; i < width; i += blockDim.x) dst[i] = src[i];
  }
}

extern "C" __global__ void __launch_bounds__(256) gather_rows_bf16(const bf16_t* x, const int* rows, bf16_t* out, int numRows, int width) {
  pdlWait();  // x is the previous kernel's (a no-op without PDL)
  pdlLaunchDependents();
  if ((int)blockIdx.x >= numRows) return;
  gatherRowsImpl<bf16_t>(x, rows, out, width);
}
extern "C" __global__ void __launch_bounds__(256) gather_rows_f32(const float* x, const int* rows, float* out, int numRows, int width) {
  pdlWait();  // x is the previous kernel's (a no-op without PDL)
  pdlLaunchDependents();
  if ((int)blockIdx.x >= numRows) return;
  gatherRowsImpl<float>(x, rows, out, width);
}
