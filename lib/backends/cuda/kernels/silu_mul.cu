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

// decodeNormFold (lib/backends/cuda/norm_fold.ts): the SiLU·mul after a gate_up GEMM that read the residual stream x
// with W · diag(norm weight) instead of the RMSNorm's output. Row t's gate and up are first scaled by
// r = rsqrt(mean(x[t, :]^2) + eps) (fp32 sum over the bf16 residual row, as rmsnorm_bf16 takes it):
//   out[t, i] = silu(r · gateUp[t, i]) · (r · gateUp[t, I + i])
//
// extern "C" __global__ void silu_mul_rs_bf16(const bf16_t* gateUp, bf16_t* out, int numTokens, int inter,
//     const bf16_t* x, int hidden, float eps)
//   silu_mul_bf16's grid and block; x [numTokens, hidden] (every block of a row sums the row itself: 4 KB at hidden 2048).
extern "C" __global__ void __launch_bounds__(256) silu_mul_rs_bf16(const bf16_t* gateUp, bf16_t* out, int numTokens, int inter,
    const bf16_t* x, int hidden, float eps) {
  __shared__ float sh[32];
  if ((int)blockIdx.y >= numTokens) return;
  const long long t = blockIdx.y;
  const bf16_t* xr = x + t * hidden;
  const bf16_t* g = gateUp + t * 2 * inter;
  const bf16_t* u = g + inter;
  bf16_t* o = out + t * inter;
  const int i0 = (blockIdx.x * blockDim.x + threadIdx.x) * 8;
  const bool vec = inter % 8 == 0 && aligned16(gateUp) && aligned16(out);
  // gate / up first: their loads are in flight while the block sums the residual row.
  float a[8], b[8];
  if (vec && i0 < inter) {
    load16(g + i0, a);
    load16(u + i0, b);
  }
  float ss = 0.f;
  if (hidden % 8 == 0 && aligned16(x)) {
    for (int i = threadIdx.x * 8; i < hidden; i += blockDim.x * 8) {
      float a[8];
      load16(xr + i, a);
#pragma unroll
      for (int e = 0; e < 8; e++) ss += a[e] * a[e];
    }
  } else {
    for (int i = threadIdx.x; i < hidden; i += blockDim.x) ss += toF(xr[i]) * toF(xr[i]);
  }
  const float r = rsqrtf(blockSum(ss, sh) / (float)hidden + eps);
  if (vec) {
    if (i0 < inter) {
#pragma unroll
      for (int e = 0; e < 8; e++) a[e] = silu(r * a[e]) * (r * b[e]);
      store16(o + i0, a);
    }
  } else {
    const int base = blockIdx.x * blockDim.x * 8;
    for (int k = 0; k < 8; k++) {
      const int i = base + k * blockDim.x + threadIdx.x;
      if (i < inter) o[i] = fromF<bf16_t>(silu(r * toF(g[i])) * (r * toF(u[i])));
    }
  }
}

// decodeNormFold: a linear's folded weight, out[r, c] = bf16(W[r, c] · w[c]) (fp32 product, one rounding).
//
// extern "C" __global__ void scale_cols_bf16(const bf16_t* W, const bf16_t* w, bf16_t* out, long long rows, int cols)
//   W, out [rows, cols]; w [cols]   grid (min(ceil(rows · cols / 2048), 65535), 1, 1)   block 256 (grid-stride)
extern "C" __global__ void __launch_bounds__(256) scale_cols_bf16(const bf16_t* W, const bf16_t* w, bf16_t* out, long long rows, int cols) {
  const long long n = rows * cols;
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
    out[i] = fromF<bf16_t>(toF(W[i]) * toF(w[i % cols]));
  }
}
