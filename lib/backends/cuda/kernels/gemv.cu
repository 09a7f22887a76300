// Skinny GEMM for decode (a few rows): y[r, j] = sum_i x[r, i] * W[j, i] (+ bias[j]) for r < m <= M,
// W [n, k] row-major (a linear layer's weight), x [m, k], y [m, n], bf16 in and out, fp32 accumulation.
// One warp per output column j: the warp streams W's row j once with 16-byte loads and dots it with
// every x row (x is small and stays in L1/L2), so each weight byte is read once per step.
//
// extern "C" __global__ void gemv_bf16_m{1|2|4|8}(const bf16_t* x, const bf16_t* W, const bf16_t* bias,
//     bf16_t* y, int m, int n, int k)
//   bias optional (0 = none). Needs k % 8 == 0 and 16-byte aligned x and W (the launcher checks).
//   grid (ceil(n / 8), 1, 1)   block (256, 1, 1)   shared 0
#include "common.cuh"

__device__ __forceinline__ void unpack8(const uint4& v, float (&f)[8]) {
  const u32 w[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
  for (int i = 0; i < 4; i++) {
    f[2 * i] = __uint_as_float(w[i] << 16);
    f[2 * i + 1] = __uint_as_float(w[i] & 0xffff0000u);
  }
}

template <int M>
__device__ __forceinline__ void gemvAccum(const uint4& wv, const bf16_t* x, int m, int k, int c, float (&acc)[M]) {
  float wf[8];
  unpack8(wv, wf);
#pragma unroll
  for (int r = 0; r < M; r++) {
    if (r < m) {
      float xf[8];
      load16(x + (long long)r * k + c * 8, xf);
#pragma unroll
      for (int e = 0; e < 8; e++) acc[r] = fmaf(wf[e], xf[e], acc[r]);
    }
  }
}

template <int M>
__device__ __forceinline__ void gemvImpl(const bf16_t* x, const bf16_t* W, const bf16_t* bias, bf16_t* y, int m, int n, int k) {
  constexpr int U = 8;  // 16-byte weight loads issued per lane before any is used (k = 2048: the whole row at once)
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int j = blockIdx.x * (blockDim.x >> 5) + warp;
  if (j >= n) return;  // whole warp leaves; no block barrier below
  const bf16_t* w = W + (long long)j * k;
  const int kv = k >> 3;  // 16-byte vectors per row
  float acc[M];
#pragma unroll
  for (int r = 0; r < M; r++) acc[r] = 0.f;
  int c = lane;
  for (; c + 32 * (U - 1) < kv; c += 32 * U) {
    uint4 wv[U];
#pragma unroll
    for (int u = 0; u < U; u++) wv[u] = *reinterpret_cast<const uint4*>(w + (c + 32 * u) * 8);
#pragma unroll
    for (int u = 0; u < U; u++) gemvAccum<M>(wv[u], x, m, k, c + 32 * u, acc);
  }
  for (; c < kv; c += 32) gemvAccum<M>(*reinterpret_cast<const uint4*>(w + c * 8), x, m, k, c, acc);
  const float b = bias ? toF(bias[j]) : 0.f;
#pragma unroll
  for (int r = 0; r < M; r++) {
    const float s = warpSum(acc[r]);
    if (lane == 0 && r < m) y[(long long)r * n + j] = fromF<bf16_t>(s + b);
  }
}

#define GEMV(NAME, M)                                                                                                   \
  extern "C" __global__ void __launch_bounds__(256) NAME(const bf16_t* x, const bf16_t* W, const bf16_t* bias, bf16_t* y, \
      int m, int n, int k) {                                                                                           \
    gemvImpl<M>(x, W, bias, y, m, n, k);                                                                               \
  }
GEMV(gemv_bf16_m1, 1)
GEMV(gemv_bf16_m2, 2)
GEMV(gemv_bf16_m4, 4)
GEMV(gemv_bf16_m8, 8)
