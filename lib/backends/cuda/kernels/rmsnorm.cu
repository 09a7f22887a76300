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
//
// extern "C" __global__ void rmsnorm_warp_bf16(const bf16_t* x, const bf16_t* weight, bf16_t* out, int rows, int hidden, float eps)
//   rmsnorm_bf16's parameters and bits (as launched with 256 threads), one warp a row (session option prefillNormWarp):
//   grid (ceil(rows / 4), 1, 1)   block (128, 1, 1)   shared 0. hidden % 256 == 0, hidden <= 4096, pointers 16-byte
//   aligned (out may alias x: a warp reads its whole row first). A lane holds its row's 16-byte vectors lane, lane + 32, ... in registers (up to 16
//   loads in flight, no block barrier); the sum of squares is rmsnorm_bf16's: thread t of its 256 sums vectors t,
//   t + 256, ... in order, each warp's sums by warpSum, then the 8 warp sums by warpSum's tree. May be launched with PDL.
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

// One warp a row: lane l holds vectors r * 32 + l (r < vpl = hidden / 256); rmsnorm_bf16's thread t = (r % 8) * 32 + l
// summed the same vectors in the same order, so part[j] (j = r % 8) is its warp j's lane l partial.
extern "C" __global__ void __launch_bounds__(128) rmsnorm_warp_bf16(const bf16_t* x, const bf16_t* weight, bf16_t* out, int rows, int hidden, float eps) {
  pdlWait();  // x is the previous kernel's (prefillPdl; a no-op without PDL)
  pdlLaunchDependents();
  const int row = (int)blockIdx.x * 4 + ((int)threadIdx.x >> 5), lane = threadIdx.x & 31;
  if (row >= rows) return;
  const int vpl = hidden >> 8;
  const bf16_t* xr = x + (long long)row * hidden;
  uint4 v[16];
#pragma unroll
  for (int r = 0; r < 16; r++) {
    if (r < vpl) v[r] = *reinterpret_cast<const uint4*>(xr + (r * 32 + lane) * 8);
  }
  float part[8];
#pragma unroll
  for (int j = 0; j < 8; j++) part[j] = 0.f;
#pragma unroll
  for (int r = 0; r < 16; r++) {
    if (r < vpl) {
      const u32 w[4] = {v[r].x, v[r].y, v[r].z, v[r].w};
      float a[8];
#pragma unroll
      for (int i = 0; i < 4; i++) {
        a[2 * i] = __uint_as_float(w[i] << 16);
        a[2 * i + 1] = __uint_as_float(w[i] & 0xffff0000u);
      }
#pragma unroll
      for (int e = 0; e < 8; e++) part[r & 7] += a[e] * a[e];
    }
  }
#pragma unroll
  for (int j = 0; j < 8; j++) part[j] = warpSum(part[j]);
  // blockSum's second warpSum over (part[0..7], 0, ..., 0): ((p0 + p4) + (p2 + p6)) + ((p1 + p5) + (p3 + p7)).
  const float ss = ((part[0] + part[4]) + (part[2] + part[6])) + ((part[1] + part[5]) + (part[3] + part[7]));
  const float inv = rsqrtf(ss / (float)hidden + eps);
  bf16_t* orow = out + (long long)row * hidden;
#pragma unroll
  for (int r = 0; r < 16; r++) {
    if (r < vpl) {
      const int i = (r * 32 + lane) * 8;
      const u32 w[4] = {v[r].x, v[r].y, v[r].z, v[r].w};
      float a[8], g[8];
      load16(weight + i, g);
#pragma unroll
      for (int k = 0; k < 4; k++) {
        a[2 * k] = __uint_as_float(w[k] << 16);
        a[2 * k + 1] = __uint_as_float(w[k] & 0xffff0000u);
      }
#pragma unroll
      for (int e = 0; e < 8; e++) a[e] = a[e] * inv * g[e];
      store16(orow + i, a);
    }
  }
}
