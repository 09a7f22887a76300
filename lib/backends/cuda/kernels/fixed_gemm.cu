// Fixed-order GEMM of batch-invariant linears whose shape has no M-stable cuBLASLt algorithm (session 17, issue 16 item
// 5): D[m, n] = alpha · Σ_k A[m, k] · B[n, k] (+ beta · C[m, n]) (+ bias[n]), A [M, K] and B [N, K] row-major (a linear
// layer's weight), bf16 or f16 in, f32 sums, bf16 / f16 or f32 out.
//
// Why it exists: on some shapes (session 16: N 256 = one 256-wide tile column, K 8192) every non-split-K cuBLASLt
// algorithm the heuristic offers rounds a row differently at M 300 than at M 1200 — it decomposes K by the tile count.
// Here each output element's reduction order is the same whatever M and whichever block its row lands in: one block
// owns a 64 × 64 output tile for the whole K; K is walked in 32-wide tiles from 0 upwards, each as two mma.sync
// m16n8k16 steps accumulating into the same f32 registers. A row's products never meet another row's (rows past M load
// as zeros and are not stored), so a row's bits depend only on its own A row, B, K and the epilogue.
//
// 128 threads = 4 warps in 2 × 2, a warp 32 × 32 (2 m16 × 4 n8 tiles); A and B tiles in shared memory by 16-byte
// cp.async, two stages; ldmatrix x4 fragments (rows padded to 40 halves: conflict-free, 16-byte aligned). C may be D
// (in place): each element is read, then written, by one thread.
// Needs K % 8 == 0 and A, B 16-byte aligned (the launcher routes only such shapes here).
#include "mma_tile.cuh"

#define FG_BM 64
#define FG_BN 64
#define FG_BK 32
#define FG_LD (FG_BK + 8)

__device__ __forceinline__ float f16ToF(unsigned short h) {
  float f;
  asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
  return f;
}

template <typename O, bool F16IN>
__device__ __forceinline__ float loadOut(const O* p);
template <>
__device__ __forceinline__ float loadOut<float, false>(const float* p) { return *p; }
template <>
__device__ __forceinline__ float loadOut<float, true>(const float* p) { return *p; }
template <>
__device__ __forceinline__ float loadOut<bf16_t, false>(const bf16_t* p) { return toF(*p); }
template <>
__device__ __forceinline__ float loadOut<bf16_t, true>(const bf16_t* p) { return f16ToF(*p); }

template <typename O, bool F16IN>
__device__ __forceinline__ void storeOut(O* p, float v);
template <>
__device__ __forceinline__ void storeOut<float, false>(float* p, float v) { *p = v; }
template <>
__device__ __forceinline__ void storeOut<float, true>(float* p, float v) { *p = v; }
template <>
__device__ __forceinline__ void storeOut<bf16_t, false>(bf16_t* p, float v) { *p = fromF<bf16_t>(v); }
template <>
__device__ __forceinline__ void storeOut<bf16_t, true>(bf16_t* p, float v) { *p = f16Bits(v); }

// O: output / C / bias element (bf16_t also carries f16 bits when F16IN).
template <typename O, bool F16IN>
__device__ __forceinline__ void fixedGemm(O* D, const bf16_t* __restrict__ A, const bf16_t* __restrict__ B, const O* C,
                                          const O* __restrict__ bias, int M, int N, int K, float alpha, float beta) {
  __shared__ __align__(16) bf16_t sA[2][FG_BM][FG_LD];
  __shared__ __align__(16) bf16_t sB[2][FG_BN][FG_LD];
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int wm = (warp >> 1) * 32, wn = (warp & 1) * 32;
  const int row0 = blockIdx.y * FG_BM, col0 = blockIdx.x * FG_BN;
  const int KT = (K + FG_BK - 1) / FG_BK;

  // A stage: 64 rows × 4 chunks of 8 halves = 256 chunks, two a thread; B the same.
  auto load = [&](int stage, int kt) {
    const int k0 = kt * FG_BK;
#pragma unroll
    for (int i = 0; i < 2; i++) {
      const int c = tid + i * 128, r = c >> 2, kc = (c & 3) * 8, k = k0 + kc;
      const int ga = row0 + r, gb = col0 + r;
      const bool ka = k < K;
      const bf16_t* pa = A + (long long)(ga < M ? ga : 0) * K + (ka ? k : 0);
      const bf16_t* pb = B + (long long)(gb < N ? gb : 0) * K + (ka ? k : 0);
      cpAsync16(&sA[stage][r][kc], pa, (ga < M && ka) ? 16 : 0);
      cpAsync16(&sB[stage][r][kc], pb, (gb < N && ka) ? 16 : 0);
    }
    cpAsyncCommit();
  };

  float acc[2][4][4];
#pragma unroll
  for (int i = 0; i < 2; i++)
#pragma unroll
    for (int j = 0; j < 4; j++)
#pragma unroll
      for (int e = 0; e < 4; e++) acc[i][j][e] = 0.f;

  load(0, 0);
  for (int kt = 0; kt < KT; kt++) {
    const int st = kt & 1;
    if (kt + 1 < KT) {
      load(st ^ 1, kt + 1);
      cpAsyncWait<1>();
    } else {
      cpAsyncWait<0>();
    }
    __syncthreads();
#pragma unroll
    for (int ks = 0; ks < FG_BK; ks += 16) {
      u32 a[2][4], b[2][4];
#pragma unroll
      for (int i = 0; i < 2; i++) ldsmX4<false>(a[i], &sA[st][wm + i * 16 + (lane & 15)][ks + (lane >> 4) * 8]);
      // x4 over B [n][k]: matrices (n 0-7, k 0-7), (n 0-7, k 8-15), (n 8-15, k 0-7), (n 8-15, k 8-15).
#pragma unroll
      for (int j = 0; j < 2; j++) {
        ldsmX4<false>(b[j], &sB[st][wn + j * 16 + (lane & 7) + ((lane >> 4) << 3)][ks + ((lane >> 3) & 1) * 8]);
      }
#pragma unroll
      for (int i = 0; i < 2; i++)
#pragma unroll
        for (int j = 0; j < 4; j++) {
          const u32 b0 = b[j >> 1][(j & 1) * 2], b1 = b[j >> 1][(j & 1) * 2 + 1];
          if (F16IN)
            mmaF16(acc[i][j], a[i], b0, b1);
          else
            mmaBf16(acc[i][j], a[i], b0, b1);
        }
    }
    __syncthreads();
  }

  // Epilogue, per element: v = alpha · sum, then + beta · C, then + bias (the same order for every element).
  const int g = lane >> 2, c2 = (lane & 3) * 2;
#pragma unroll
  for (int i = 0; i < 2; i++)
#pragma unroll
    for (int j = 0; j < 4; j++)
#pragma unroll
      for (int e = 0; e < 4; e++) {
        const int r = row0 + wm + i * 16 + g + (e >> 1) * 8, n = col0 + wn + j * 8 + c2 + (e & 1);
        if (r >= M || n >= N) continue;
        const long long o = (long long)r * N + n;
        float v = alpha * acc[i][j][e];
        if (C) v = fmaf(beta, loadOut<O, F16IN>(C + o), v);
        if (bias) v += loadOut<O, F16IN>(bias + n);
        storeOut<O, F16IN>(D + o, v);
      }
}

extern "C" __global__ void __launch_bounds__(128) fixed_gemm_bf16(bf16_t* D, const bf16_t* A, const bf16_t* B, const bf16_t* C,
                                                                  const bf16_t* bias, int M, int N, int K, float alpha, float beta) {
  fixedGemm<bf16_t, false>(D, A, B, C, bias, M, N, K, alpha, beta);
}
extern "C" __global__ void __launch_bounds__(128) fixed_gemm_bf16_f32(float* D, const bf16_t* A, const bf16_t* B, const float* C,
                                                                      const float* bias, int M, int N, int K, float alpha, float beta) {
  fixedGemm<float, false>(D, A, B, C, bias, M, N, K, alpha, beta);
}
extern "C" __global__ void __launch_bounds__(128) fixed_gemm_f16(bf16_t* D, const bf16_t* A, const bf16_t* B, const bf16_t* C,
                                                                 const bf16_t* bias, int M, int N, int K, float alpha, float beta) {
  fixedGemm<bf16_t, true>(D, A, B, C, bias, M, N, K, alpha, beta);
}
extern "C" __global__ void __launch_bounds__(128) fixed_gemm_f16_f32(float* D, const bf16_t* A, const bf16_t* B, const float* C,
                                                                     const float* bias, int M, int N, int K, float alpha, float beta) {
  fixedGemm<float, true>(D, A, B, C, bias, M, N, K, alpha, beta);
}
