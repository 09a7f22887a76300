// Weight-only quantized linears (issue 12), llmrt's packed layout (lib/quantization/packed.ts):
//   W     [n, k·bits/8] u8: uint4 two per byte (element 2j in the low nibble of byte j), or uint8
//   scales [n, k/G] f32;  zeros [n, k/G] u8, or 0 (= none: zero point 2^(bits-1))
//   w[j, i] = (q[j, i] - z[j, i/G]) * s[j, i/G]
//
// Decode GEMV, dequantized in registers (no weight ever leaves the SM as a float):
// extern "C" __global__ void quant_gemv_u4_m{1|2|4|8}(const bf16_t* x, const u8* W, const float* scales,
//     const u8* zeros, const bf16_t* bias, bf16_t* y, int m, int n, int k, int group)
// extern "C" __global__ void quant_gemv_u8_m{1|2|4|8}(...same...)
//   y [m, n] bf16 = x [m, k] bf16 · Wᵀ + bias (bias 0 = none), fp32 accumulation. One warp per output
//   row j streams its packed row once with 16-byte loads (u4: 32 weights, u8: 16 weights per load) and
//   dots it with every x row (x stays in L1/L2). Needs k % 256 == 0 (u4) / k % 128 == 0 (u8),
//   group % 32 == 0 (u4) / group % 16 == 0 (u8), 16-byte aligned x and W.
//   grid (ceil(n / 8), 1, 1)   block (256, 1, 1)   shared 0
//
// Prefill path (first step, honest: no tensor-core tiles yet): dequantize to a bf16 scratch, then the
// ordinary cuBLASLt GEMM.
// extern "C" __global__ void quant_dequant_u{4|8}_bf16(const u8* W, const float* scales, const u8* zeros,
//     bf16_t* out, int n, int k, int group)
//   out [n, k] bf16.   grid (ceil(n·k / 8 / 256), 1, 1)   block (256, 1, 1)
#include "common.cuh"

typedef unsigned char u8;

// 8 nibbles of a word → 8 floats q - z (nibble i = element i): the exponent trick makes each
// conversion one AND/OR and one subtraction (0x4B000000 | v is the float 2^23 + v).
__device__ __forceinline__ void nibbles8(u32 w, float zf, float (&f)[8]) {
#pragma unroll
  for (int i = 0; i < 8; i++) f[i] = __uint_as_float(0x4B000000u | ((w >> (4 * i)) & 15u)) - (8388608.f + zf);
}
__device__ __forceinline__ void bytes4(u32 w, float zf, float (&f)[4]) {
#pragma unroll
  for (int i = 0; i < 4; i++) f[i] = __uint_as_float(0x4B000000u | ((w >> (8 * i)) & 255u)) - (8388608.f + zf);
}

// BITS = 4: one 16-byte load holds 32 weights; BITS = 8: 16 weights.
template <int BITS, int M>
__device__ __forceinline__ void quantAccum(const uint4& wv, float s, float zf, const bf16_t* x, int m, int k, int e0, float (&acc)[M]) {
  constexpr int E = BITS == 4 ? 32 : 16;  // elements in this vector, starting at column e0
  float wf[E];
  const u32 w[4] = {wv.x, wv.y, wv.z, wv.w};
#pragma unroll
  for (int i = 0; i < 4; i++) {
    if (BITS == 4) {
      float t[8];
      nibbles8(w[i], zf, t);
#pragma unroll
      for (int e = 0; e < 8; e++) wf[i * 8 + e] = t[e];
    } else {
      float t[4];
      bytes4(w[i], zf, t);
#pragma unroll
      for (int e = 0; e < 4; e++) wf[i * 4 + e] = t[e];
    }
  }
#pragma unroll
  for (int r = 0; r < M; r++) {
    if (r < m) {
      float part = 0.f;
#pragma unroll
      for (int v = 0; v < E / 8; v++) {
        float xf[8];
        load16(x + (long long)r * k + e0 + v * 8, xf);
#pragma unroll
        for (int e = 0; e < 8; e++) part = fmaf(wf[v * 8 + e], xf[e], part);
      }
      acc[r] = fmaf(part, s, acc[r]);
    }
  }
}

template <int BITS, int M>
__device__ __forceinline__ void quantGemvImpl(const bf16_t* x, const u8* W, const float* scales, const u8* zeros, const bf16_t* bias,
                                              bf16_t* y, int m, int n, int k, int group) {
  constexpr int U = 4;                      // 16-byte weight loads in flight per lane
  constexpr int E = BITS == 4 ? 32 : 16;    // weights per 16-byte load
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int j = blockIdx.x * (blockDim.x >> 5) + warp;
  if (j >= n) return;
  const int rowBytes = k * BITS / 8, kv = rowBytes >> 4, ng = k / group;
  const u8* w = W + (long long)j * rowBytes;
  const float* sj = scales + (long long)j * ng;
  const u8* zj = zeros ? zeros + (long long)j * ng : nullptr;
  const float zdef = (float)(1 << (BITS - 1));
  float acc[M];
#pragma unroll
  for (int r = 0; r < M; r++) acc[r] = 0.f;
  int c = lane;
  for (; c + 32 * (U - 1) < kv; c += 32 * U) {
    uint4 wv[U];
#pragma unroll
    for (int u = 0; u < U; u++) wv[u] = *reinterpret_cast<const uint4*>(w + (long long)(c + 32 * u) * 16);
#pragma unroll
    for (int u = 0; u < U; u++) {
      const int e0 = (c + 32 * u) * E, g = e0 / group;
      quantAccum<BITS, M>(wv[u], sj[g], zj ? (float)zj[g] : zdef, x, m, k, e0, acc);
    }
  }
  for (; c < kv; c += 32) {
    const int e0 = c * E, g = e0 / group;
    quantAccum<BITS, M>(*reinterpret_cast<const uint4*>(w + (long long)c * 16), sj[g], zj ? (float)zj[g] : zdef, x, m, k, e0, acc);
  }
  const float b = bias ? toF(bias[j]) : 0.f;
#pragma unroll
  for (int r = 0; r < M; r++) {
    const float s = warpSum(acc[r]);
    if (lane == 0 && r < m) y[(long long)r * n + j] = fromF<bf16_t>(s + b);
  }
}

#define QUANT_GEMV(NAME, BITS, M)                                                                                          \
  extern "C" __global__ void __launch_bounds__(256) NAME(const bf16_t* x, const u8* W, const float* scales, const u8* zeros, \
      const bf16_t* bias, bf16_t* y, int m, int n, int k, int group) {                                                     \
    quantGemvImpl<BITS, M>(x, W, scales, zeros, bias, y, m, n, k, group);                                                 \
  }
QUANT_GEMV(quant_gemv_u4_m1, 4, 1)
QUANT_GEMV(quant_gemv_u4_m2, 4, 2)
QUANT_GEMV(quant_gemv_u4_m4, 4, 4)
QUANT_GEMV(quant_gemv_u4_m8, 4, 8)
QUANT_GEMV(quant_gemv_u8_m1, 8, 1)
QUANT_GEMV(quant_gemv_u8_m2, 8, 2)
QUANT_GEMV(quant_gemv_u8_m4, 8, 4)
QUANT_GEMV(quant_gemv_u8_m8, 8, 8)

// Each thread dequantizes 8 consecutive weights of one row into one 16-byte bf16 store.
template <int BITS>
__device__ __forceinline__ void dequantImpl(const u8* W, const float* scales, const u8* zeros, bf16_t* out, int n, int k, int group) {
  const long long t = (long long)blockIdx.x * blockDim.x + threadIdx.x;
  const long long total = (long long)n * k / 8;
  if (t >= total) return;
  const long long e0 = t * 8;
  const int j = (int)(e0 / k), i0 = (int)(e0 % k), g = i0 / group, ng = k / group;
  const float s = scales[(long long)j * ng + g];
  const float zf = zeros ? (float)zeros[(long long)j * ng + g] : (float)(1 << (BITS - 1));
  float f[8];
  if (BITS == 4) {
    const u32 w = *reinterpret_cast<const u32*>(W + (long long)j * (k / 2) + i0 / 2);
    nibbles8(w, zf, f);
  } else {
    const uint2 v = *reinterpret_cast<const uint2*>(W + (long long)j * k + i0);
    float a[4], b[4];
    bytes4(v.x, zf, a);
    bytes4(v.y, zf, b);
#pragma unroll
    for (int e = 0; e < 4; e++) { f[e] = a[e]; f[4 + e] = b[e]; }
  }
#pragma unroll
  for (int e = 0; e < 8; e++) f[e] *= s;
  store16(out + e0, f);
}

extern "C" __global__ void __launch_bounds__(256) quant_dequant_u4_bf16(const u8* W, const float* scales, const u8* zeros, bf16_t* out, int n, int k, int group) {
  dequantImpl<4>(W, scales, zeros, out, n, k, group);
}
extern "C" __global__ void __launch_bounds__(256) quant_dequant_u8_bf16(const u8* W, const float* scales, const u8* zeros, bf16_t* out, int n, int k, int group) {
  dequantImpl<8>(W, scales, zeros, out, n, k, group);
}
