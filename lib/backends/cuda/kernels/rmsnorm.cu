// RMSNorm and the fused residual add + RMSNorm. fp32 statistics; bf16 results rounded once.
//
// extern "C" __global__ void rmsnorm_bf16(const bf16_t* x, const bf16_t* weight, bf16_t* out, int rows, int hidden, float eps)
// extern "C" __global__ void rmsnorm_f32 (const float*  x, const float*  weight, float*  out, int rows, int hidden, float eps)
//   out[r, :] = x[r, :] * rsqrt(mean(x[r, :]^2) + eps) * weight          x, out [rows, hidden]; weight [hidden]
//   (out may alias x)
//
// extern "C" __global__ void add_rmsnorm_bf16(const bf16_t* x, bf16_t* residual, const bf16_t* weight, bf16_t* out, int rows, int hidden, float eps)
// extern "C" __global__ void add_rmsnorm_f32 (const float*  x, float*  residual, const float*  weight, float*  out, int rows, int hidden, float eps)
//   residual[r, :] += x[r, :] (stored, rounded to the element type); out[r, :] = rmsnorm(residual[r, :]) * weight,
//   the norm taken over the rounded residual (as HF computes it in bf16).
//
//   grid (rows, 1, 1)   block (256, 1, 1) (any multiple of 32 up to 1024)   shared: 128 B static
//   May be launched with PDL (prefillPdl): every block waits for the previous kernel first.
//   16-byte vectors when hidden * sizeof(elem) % 16 == 0 and pointers are 16-byte aligned.
#include "common.cuh"

template <typename T, bool ADD>
__device__ __forceinline__ void rmsnormImpl(const T* x, T* residual, const T* weight, T* out, int hidden, float eps) {
  __shared__ float sh[32];
  const long long row = blockIdx.x;
  const T* xr = x + row * hidden;
  T* rr = ADD ? residual + row * hidden : nullptr;
  T* orow = out + row * hidden;
  constexpr int N = Vec16<T>::N;
  const bool vec = hidden % N == 0 && aligned16(x) && aligned16(weight) && aligned16(out) && (!ADD || aligned16(residual));
  float ss = 0.f;
  // Pass 1: (residual add and store,) sum of squares. Each thread re-reads only what it wrote.
  if (vec) {
    for (int i = threadIdx.x * N; i < hidden; i += blockDim.x * N) {
      float a[N];
      load16(xr + i, a);
      if (ADD) {
        float b[N];
        load16(rr + i, b);
#pragma unroll
        for (int e = 0; e < N; e++) a[e] = toF(fromF<T>(a[e] + b[e]));
        store16(rr + i, a);
      }
#pragma unroll
      for (int e = 0; e < N; e++) ss += a[e] * a[e];
    }
  } else {
    for (int i = threadIdx.x; i < hidden; i += blockDim.x) {
      float a = toF(xr[i]);
      if (ADD) {
        const T r = fromF<T>(a + toF(rr[i]));
        rr[i] = r;
        a = toF(r);
      }
      ss += a * a;
    }
  }
  ss = blockSum(ss, sh);
  const float inv = rsqrtf(ss / (float)hidden + eps);
  const T* src = ADD ? rr : xr;
  if (vec) {
    for (int i = threadIdx.x * N; i < hidden; i += blockDim.x * N) {
      float a[N], w[N];
      load16(src + i, a);
      load16(weight + i, w);
#pragma unroll
      for (int e = 0; e < N; e++) a[e] = a[e] * inv * w[e];
      store16(orow + i, a);
    }
  } else {
    for (int i = threadIdx.x; i < hidden; i += blockDim.x) orow[i] = fromF<T>(toF(src[i]) * inv * toF(weight[i]));
  }
}

extern "C" __global__ void __launch_bounds__(1024) rmsnorm_bf16(const bf16_t* x, const bf16_t* weight, bf16_t* out, int rows, int hidden, float eps) {
  pdlWait();  // x / residual are the previous kernel's (prefillPdl; a no-op without PDL)
  pdlLaunchDependents();
  if ((int)blockIdx.x >= rows) return;
  rmsnormImpl<bf16_t, false>(x, nullptr, weight, out, hidden, eps);
}
extern "C" __global__ void __launch_bounds__(1024) rmsnorm_f32(const float* x, const float* weight, float* out, int rows, int hidden, float eps) {
  pdlWait();  // x / residual are the previous kernel's (prefillPdl; a no-op without PDL)
  pdlLaunchDependents();
  if ((int)blockIdx.x >= rows) return;
  rmsnormImpl<float, false>(x, nullptr, weight, out, hidden, eps);
}
extern "C" __global__ void __launch_bounds__(1024) add_rmsnorm_bf16(const bf16_t* x, bf16_t* residual, const bf16_t* weight, bf16_t* out, int rows, int hidden, float eps) {
  pdlWait();  // x / residual are the previous kernel's (prefillPdl; a no-op without PDL)
  pdlLaunchDependents();
  if ((int)blockIdx.x >= rows) return;
  rmsnormImpl<bf16_t, true>(x, residual, weight, out, hidden, eps);
}
extern "C" __global__ void __launch_bounds__(1024) add_rmsnorm_f32(const float* x, float* residual, const float* weight, float* out, int rows, int hidden, float eps) {
  pdlWait();  // x / residual are the previous kernel's (prefillPdl; a no-op without PDL)
  pdlLaunchDependents();
  if ((int)blockIdx.x >= rows) return;
  rmsnormImpl<float, true>(x, residual, weight, out, hidden, eps);
}
