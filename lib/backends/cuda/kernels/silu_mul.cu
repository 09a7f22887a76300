// SwiGLU activation: out[t, i] = silu(gateUp[t, i]) * gateUp[t, I + i]   (gate first, then up), fp32 math.
//
// extern "C" __global__ void silu_mul_bf16(const bf16_t* gateUp, bf16_t* out, int numTokens, int inter)
// extern "C" __global__ void silu_mul_f32 (const float*  gateUp, float*  out, int numTokens, int inter)
//   gateUp [numTokens, 2 * inter]   out [numTokens, inter]
//   grid (ceil(inter / (256 * V)), numTokens, 1) with V = 16 / sizeof(elem) (8 bf16, 4 f32)   block (256, 1, 1)   shared 0
//   (numTokens <= 65535: grid.y). 16-byte vectors when inter * sizeof(elem) % 16 == 0 and pointers are aligned;
//   otherwise each block handles 256 * V consecutive elements one at a time. May be launched with PDL (prefillPdl).
#include "common.cuh"

__device__ __forceinline__ float silu(float g) { return g / (1.f + expf(-g)); }

template <typename T>
__device__ __forceinline__ void siluMulImpl(const T* gateUp, T* out, int inter) {
  constexpr int N = Vec16<T>::N;
  const long long t = blockIdx.y;
  const T* g = gateUp + t * 2 * inter;
  const T* u = g + inter;
  T* o = out + t * inter;
  const int i0 = (blockIdx.x * blockDim.x + threadIdx.x) * N;
  if (inter % N == 0 && aligned16(gateUp) && aligned16(out)) {
    if (i0 < inter) {
      float a[N], b[N];
      load16(g + i0, a);
      load16(u + i0, b);
#pragma unroll
      for (int e = 0; e < N; e++) a[e] = silu(a[e]) * b[e];
      store16(o + i0, a);
    }
  } else {
    const int base = blockIdx.x * blockDim.x * N;
    for (int k = 0; k < N; k++) {
      const int i = base + k * blockDim.x + threadIdx.x;
      if (i < inter) o[i] = fromF<T>(silu(toF(g[i])) * toF(u[i]));
    }
  }
}

extern "C" __global__ void __launch_bounds__(256) silu_mul_bf16(const bf16_t* gateUp, bf16_t* out, int numTokens, int inter) {
  pdlWait();  // gateUp is the previous kernel's (prefillPdl; a no-op without PDL)
  pdlLaunchDependents();
  if ((int)blockIdx.y >= numTokens) return;
  siluMulImpl<bf16_t>(gateUp, out, inter);
}
extern "C" __global__ void __launch_bounds__(256) silu_mul_f32(const float* gateUp, float* out, int numTokens, int inter) {
  pdlWait();  // gateUp is the previous kernel's (prefillPdl; a no-op without PDL)
  pdlLaunchDependents();
  if ((int)blockIdx.y >= numTokens) return;
  siluMulImpl<float>(gateUp, out, inter);
}
