// Weight-and-activation formats below FP8 on bfloat16 engines (issue 14 item 3; engine records:
// lib/quantization/lowbit_engine.ts; the bit-exact CPU reference: lib/backends/cpu/lowbit_linear.ts):
//   int8  (W8A8_SQ_PER_CHANNEL): W [n, k] int8, scales [n] f32, optional preQuantScale [k] f32 (SmoothQuant's 1/s)
//   int4  (W4A8_AWQ):            W [n, k/2] two's complement nibbles (element 2j low), scales [n, k/G] f32,
//                                static FP8 activation scale a
//   nvfp4 (NVFP4):               W [n, k/2] e2m1 codes (element 2j low), scales [n, k/16] e4m3 bytes, weight global
//                                scale g, static activation global scale a
// The H200 (Hopper) has no FP4 tensor cores and cuBLASLt no int4 / e2m1 types: these formats are storage
// formats. Each linear first quantizes its activation rows exactly as the CPU does and writes the
// quantized VALUES (not scaled) as bf16 — exact: integers of |v| <= 127, e4m3 values, e2m1 · e4m3 products
// (at most 5 significant bits) — into the lowbit scratch (lowbit_launch.ts lowbitScratchLayout):
// Programmatic dependent launch (fused decode steps, SessionOptions.pdl): the act kernels pdlWait before they
// read x; the GEMV issues its first weight loads, then pdlWait, then reads xq.
// extern "C" __global__ void lowbit_act_int8_bf16(const bf16_t* x, const float* pre, bf16_t* xq, float* rowScale, int rows, int k, int swz)
//   xs = f32(x · pre) (pre 0 = none); a = f32(amax|xs| / 127) (1 for an all-zero row) → rowScale[r];
//   xq = clamp(rne(xs / a), ±127) (IEEE division).   grid (rows, 1, 1)   block (256, 1, 1); k % 16 == 0
// extern "C" __global__ void lowbit_act_e4m3_bf16(const bf16_t* x, bf16_t* xq, int rows, int k, float a, int swz)
//   xq = e4m3(x / a) (IEEE division; round to nearest even, saturating to ±448) as its value.
//   grid (rows, 1, 1)   block (256, 1, 1); k % 32 == 0
// extern "C" __global__ void lowbit_act_nvfp4_bf16(const bf16_t* x, bf16_t* xq, int rows, int k, float a, int swz)
//   per 16 values: sb = e4m3(amax / f32(6a)) (1.0 for an all-zero block), code = e2m1(x / f32(sb·a)) (RNE,
//   saturating to ±6; codes 0 when sb·a is 0); xq = e2m1 value · sb (the global scale a stays out).
//   grid (rows, 1, 1)   block (256, 1, 1); k % 32 == 0
//   swz 0: xq [rows, k] row-major (the GEMM's A); 1: each row's 8-value segments in the GEMV's order (segSlot).
//
// Then either the decode GEMV (m <= 8; one warp per output row, 16-byte weight loads (2 · LOWBIT_UNROLL in
// flight per lane, double-buffered), weights decoded in registers (NVFP4 through a 16-entry shared table), the swizzled activation
// segments read coalesced; sums in fp32 — the CPU's exact block sums are exact here too, the sum over blocks rounds):
// extern "C" __global__ void lowbit_gemv_{int8|int4|nvfp4}_bf16_m{1,2,4,8}(const bf16_t* xq, const u8* W,
//     const void* scales, const float* rowScale, const bf16_t* bias, bf16_t* y, int m, int n, int k, int group, float alpha)
//   int8:  y = (Σ xq·q) · rowScale[r] · scales[j] + bias[j]
//   int4:  y = (Σ_g scales[j, g] · Σ_{k∈g} xq·q) · alpha + bias[j]   (alpha = a; group % 32 == 0)
//   nvfp4: y = (Σ_b e4m3(scales[j, b]) · Σ_{k∈b} xq·e2m1) · alpha + bias[j]   (alpha = a · g)
//   k % 32 == 0 (int8: % 16).   grid (ceil(n / 8), 1, 1)   block (256, 1, 1)
// or (any m, and the fp32 logits) the weights dequantized into the bf16 [n, k] quant scratch and cuBLASLt:
// extern "C" __global__ void lowbit_dequant_{int8|int4|nvfp4}_bf16(const u8* W, const void* scales, bf16_t* out, int n, int k, int group)
//   int8: q (exact); int4: bf16(q · scales[j, g]) (one rounding); nvfp4: e2m1 · e4m3(scales[j, b]) (exact).
//   grid (ceil(n · k / 8 / 256), 1, 1)   block (256, 1, 1); k % 8 == 0 (nvfp4 % 16, int4: group % 8 == 0)
// followed by the GEMM xq · outᵀ with alpha (int4: a, nvfp4: a · g) and the bias epilogue, or for int8 the
// unscaled GEMM then fp8_gemv.cu's fp8_scale_{bf16|f32} (rowScale, scales, bias) in place.
#include "common.cuh"

typedef unsigned char u8;

/** The value of an e4m3 byte (NaN bytes are never produced by the quantizers here). */
__device__ __forceinline__ float e4m3Value(u32 b) {
  const u32 e = (b >> 3) & 15u, m = b & 7u;
  const float v = e ? __uint_as_float(((e + 120u) << 23) | (m << 20)) : (float)m * 0.001953125f;
  return (b & 0x80u) ? -v : v;
}

/** The e4m3 byte of a float (round to nearest even, saturating to ±448). */
__device__ __forceinline__ u32 e4m3Byte(float v) {
#ifdef LLMRT_EMU
  return llmrtEmuE4m3(v);  // tools/cuda-kernel-check/emu/lowbit_emu.h (the CPU emulation)
#else
  unsigned short h;
  asm("cvt.rn.satfinite.e4m3x2.f32 %0, %1, %2;" : "=h"(h) : "f"(0.f), "f"(v));
  return h & 0xffu;
#endif
}

/** The e2m1 value nearest to v (round to nearest, ties to even, saturating to ±6; NaN → +6), as lib/util/e2m1.ts. */
__device__ __forceinline__ float e2m1Round(float v) {
  if (v != v) return 6.f;
  const float a = fabsf(v);
  // Ties: 0.25 → 0, 0.75 → 1, 1.25 → 1, 1.75 → 2, 2.5 → 2, 3.5 → 4, 5 → 4 (the even mantissa).
  const float r = a <= 0.25f ? 0.f
      : a < 0.75f  ? 0.5f
      : a <= 1.25f ? 1.f
      : a < 1.75f  ? 1.5f
      : a <= 2.5f  ? 2.f
      : a < 3.5f   ? 3.f
      : a <= 5.f   ? 4.f
                   : 6.f;
  return (__float_as_uint(v) >> 31) ? -r : r;
}

/** The value of e2m1 code c (0..15). */
__device__ __forceinline__ float e2m1Value(u32 c) {
  const u32 e = (c >> 1) & 3u, m = c & 1u;
  const float v = e ? __uint_as_float(((126u + e) << 23) | (m << 22)) : 0.5f * (float)m;
  return (c & 8u) ? -v : v;
}

/** Block-wide max of non-negative v (every thread gets it). */
__device__ __forceinline__ float blockMax(float v, float* sh) {
  v = warpMax(v);
  if ((threadIdx.x & 31) == 0) sh[threadIdx.x >> 5] = v;
  __syncthreads();
  float r = 0.f;
  for (int w = 0; w < (int)(blockDim.x >> 5); w++) r = fmaxf(r, sh[w]);
  return r;
}

/**
 * Where segment s (values 8s..8s+7) of a quantized row goes: row-major (swz 0, cuBLASLt's A), or for the
 * GEMV (swz 1) slot q · chunks + c, c = s / SPC the 16-byte weight chunk holding those values and q = s % SPC
 * (SPC = segments per chunk: 2 for int8, 4 for 4-bit weights), so that the lanes of a warp, each on its own
 * chunk, read consecutive 16 bytes.
 */
template <int SPC>
__device__ __forceinline__ int segSlot(int s, int chunks, int swz) {
  return swz ? (s % SPC) * chunks + s / SPC : s;
}

// ---- activation quantization ---------------------------------------------------------------------

#if LLMRT_KERNEL(lowbit_act_int8_bf16)
extern "C" __global__ void __launch_bounds__(256) lowbit_act_int8_bf16(const bf16_t* x, const float* pre, bf16_t* xq, float* rowScale, int rows, int k,
    int swz) {
  pdlWait();  // x is the previous kernel's (a PDL launch in fused decode steps)
  pdlLaunchDependents();
  __shared__ float sh[32];
  const int r = blockIdx.x;
  if (r >= rows) return;
  const bf16_t* xr = x + (long long)r * k;
  float amax = 0.f;
  for (int i = threadIdx.x * 8; i < k; i += blockDim.x * 8) {
    float f[8];
    load16(xr + i, f);
#pragma unroll
    for (int e = 0; e < 8; e++) amax = fmaxf(amax, fabsf(pre ? __fmul_rn(f[e], pre[i + e]) : f[e]));
  }
  amax = blockMax(amax, sh);
  const float a = amax > 0.f ? __fdiv_rn(amax, 127.f) : 1.f;
  if (threadIdx.x == 0) rowScale[r] = a;
  bf16_t* qr = xq + (long long)r * k;
  for (int i = threadIdx.x * 8; i < k; i += blockDim.x * 8) {
    float f[8];
    load16(xr + i, f);
#pragma unroll
    for (int e = 0; e < 8; e++) {
      const float xs = pre ? __fmul_rn(f[e], pre[i + e]) : f[e];
      f[e] = fminf(127.f, fmaxf(-127.f, rintf(__fdiv_rn(xs, a))));
    }
    store16(qr + 8 * segSlot<2>(i / 8, k / 16, swz), f);
  }
}
#endif

#if LLMRT_KERNEL(lowbit_act_e4m3_bf16)
extern "C" __global__ void __launch_bounds__(256) lowbit_act_e4m3_bf16(const bf16_t* x, bf16_t* xq, int rows, int k, float a, int swz) {
  pdlWait();  // x is the previous kernel's (a PDL launch in fused decode steps)
  pdlLaunchDependents();
  const int r = blockIdx.x;
  if (r >= rows) return;
  const bf16_t* xr = x + (long long)r * k;
  bf16_t* qr = xq + (long long)r * k;
  for (int i = threadIdx.x * 8; i < k; i += blockDim.x * 8) {
    float f[8];
    load16(xr + i, f);
#pragma unroll
    for (int e = 0; e < 8; e++) f[e] = e4m3Value(e4m3Byte(__fdiv_rn(f[e], a)));
    store16(qr + 8 * segSlot<4>(i / 8, k / 32, swz), f);
  }
}
#endif

#if LLMRT_KERNEL(lowbit_act_nvfp4_bf16)
extern "C" __global__ void __launch_bounds__(256) lowbit_act_nvfp4_bf16(const bf16_t* x, bf16_t* xq, int rows, int k, float a, int swz) {
  pdlWait();  // x is the previous kernel's (a PDL launch in fused decode steps)
  pdlLaunchDependents();
  const int r = blockIdx.x;
  if (r >= rows) return;
  const bf16_t* xr = x + (long long)r * k;
  bf16_t* qr = xq + (long long)r * k;
  const float six = __fmul_rn(6.f, a);
  for (int i = threadIdx.x * 16; i < k; i += blockDim.x * 16) {
    float f[16];
    load16(xr + i, *reinterpret_cast<float(*)[8]>(&f[0]));
    load16(xr + i + 8, *reinterpret_cast<float(*)[8]>(&f[8]));
    float amax = 0.f;
#pragma unroll
    for (int e = 0; e < 16; e++) amax = fmaxf(amax, fabsf(f[e]));
    const float sb = amax > 0.f ? e4m3Value(e4m3Byte(__fdiv_rn(amax, six))) : 1.f;
    const float div = __fmul_rn(sb, a);
#pragma unroll
    for (int e = 0; e < 16; e++) f[e] = div > 0.f ? e2m1Round(__fdiv_rn(f[e], div)) * sb : 0.f;
    store16(qr + 8 * segSlot<4>(i / 8, k / 32, swz), *reinterpret_cast<float(*)[8]>(&f[0]));
    store16(qr + 8 * segSlot<4>(i / 8 + 1, k / 32, swz), *reinterpret_cast<float(*)[8]>(&f[8]));
  }
}
#endif

// ---- weight dequantization (prefill) ---------------------------------------------------------------

#if LLMRT_KERNEL(lowbit_dequant_int8_bf16)
extern "C" __global__ void __launch_bounds__(256) lowbit_dequant_int8_bf16(const u8* W, const void* scales, bf16_t* out, int n, int k, int group) {
  const long long e = ((long long)blockIdx.x * blockDim.x + threadIdx.x) * 8;
  if (e >= (long long)n * k) return;
  const uint2 v = *reinterpret_cast<const uint2*>(W + e);
  float f[8];
#pragma unroll
  for (int i = 0; i < 4; i++) {
    f[i] = (float)(signed char)((v.x >> (8 * i)) & 0xffu);
    f[4 + i] = (float)(signed char)((v.y >> (8 * i)) & 0xffu);
  }
  store16(out + e, f);
}
#endif

#if LLMRT_KERNEL(lowbit_dequant_int4_bf16)
extern "C" __global__ void __launch_bounds__(256) lowbit_dequant_int4_bf16(const u8* W, const void* scales, bf16_t* out, int n, int k, int group) {
  const long long e = ((long long)blockIdx.x * blockDim.x + threadIdx.x) * 8;
  if (e >= (long long)n * k) return;
  const long long row = e / k;
  const int col = (int)(e - row * k);
  const float s = reinterpret_cast<const float*>(scales)[row * (k / group) + col / group];
  const u32 v = *reinterpret_cast<const u32*>(W + e / 2);
  float f[8];
#pragma unroll
  for (int i = 0; i < 8; i++) f[i] = (float)((int)(v << (28 - 4 * i)) >> 28) * s;
  store16(out + e, f);
}
#endif

#if LLMRT_KERNEL(lowbit_dequant_nvfp4_bf16)
extern "C" __global__ void __launch_bounds__(256) lowbit_dequant_nvfp4_bf16(const u8* W, const void* scales, bf16_t* out, int n, int k, int group) {
  const long long e = ((long long)blockIdx.x * blockDim.x + threadIdx.x) * 8;
  if (e >= (long long)n * k) return;
  const float s = e4m3Value(reinterpret_cast<const u8*>(scales)[e / 16]);
  const u32 v = *reinterpret_cast<const u32*>(W + e / 2);
  float f[8];
#pragma unroll
  for (int i = 0; i < 8; i++) f[i] = e2m1Value((v >> (4 * i)) & 15u) * s;
  store16(out + e, f);
}
#endif

// ---- decode GEMV -----------------------------------------------------------------------------------

enum LowbitFmt { FMT_INT8 = 0, FMT_INT4 = 1, FMT_NVFP4 = 2 };

#ifndef LOWBIT_UNROLL
#define LOWBIT_UNROLL 4  // 16-byte weight loads a lane issues before it computes (tuning knob)
#endif

/** 8 bf16 values of a 16-byte load. */
__device__ __forceinline__ void bf8(const uint4 v, float (&f)[8]) {
  const u32 w[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
  for (int i = 0; i < 4; i++) {
    f[2 * i] = __uint_as_float(w[i] << 16);
    f[2 * i + 1] = __uint_as_float(w[i] & 0xffff0000u);
  }
}

template <int FMT, int M>
__device__ __forceinline__ void lowbitGemv(const bf16_t* __restrict__ xq, const u8* __restrict__ W, const void* __restrict__ scales,
    const float* __restrict__ rowScale, const bf16_t* __restrict__ bias, bf16_t* __restrict__ y, int m, int n, int k, int group, float alpha) {
  constexpr int VPC = FMT == FMT_INT8 ? 16 : 32;  // values per 16-byte weight chunk
  constexpr int U = LOWBIT_UNROLL;
  __shared__ float lut[16];
  if constexpr (FMT == FMT_NVFP4) {
    if (threadIdx.x < 16) lut[threadIdx.x] = e2m1Value(threadIdx.x);
    __syncthreads();
  }
  const int lane = threadIdx.x & 31;
  const int j = blockIdx.x * 8 + (threadIdx.x >> 5);
  if (j >= n) return;
  const long long rowBytes = FMT == FMT_INT8 ? (long long)k : (long long)k / 2;
  const uint4* wr = reinterpret_cast<const uint4*>(W + (long long)j * rowBytes);
  const uint4* xs = reinterpret_cast<const uint4*>(xq);  // row r: segments from r · k / 8, swizzled (segSlot)
  const int chunks = k / VPC;
  float acc[M];
#pragma unroll
  for (int r = 0; r < M; r++) acc[r] = 0.f;
  // Double-buffered: the next U chunks' loads are in flight while these are computed; the first ones are
  // issued before pdlWait (weights only), xq and y are touched after it.
  uint4 nxt[U];
#pragma unroll
  for (int u = 0; u < U; u++) {
    if (lane + 32 * u < chunks) nxt[u] = __ldg(wr + lane + 32 * u);
  }
  pdlWait();
  pdlLaunchDependents();
  for (int c0 = lane; c0 < chunks; c0 += 32 * U) {
    uint4 wv[U];
#pragma unroll
    for (int u = 0; u < U; u++) wv[u] = nxt[u];
#pragma unroll
    for (int u = 0; u < U; u++) {
      if (c0 + 32 * (U + u) < chunks) nxt[u] = __ldg(wr + c0 + 32 * (U + u));
    }
#pragma unroll
    for (int u = 0; u < U; u++) {
      const int c = c0 + 32 * u;
      if (c >= chunks) break;
      const u32 ww[4] = {wv[u].x, wv[u].y, wv[u].z, wv[u].w};
      float w[VPC];
      if constexpr (FMT == FMT_INT8) {
#pragma unroll
        for (int i = 0; i < 16; i++) w[i] = (float)(signed char)((ww[i / 4] >> (8 * (i % 4))) & 0xffu);
      } else if constexpr (FMT == FMT_INT4) {
        // Two's complement nibble q: (q ^ 8) is q + 8; 2^23 + (q + 8) as float bits, minus 2^23 + 8.
#pragma unroll
        for (int i = 0; i < 32; i++) w[i] = __uint_as_float((((ww[i / 8] ^ 0x88888888u) >> (4 * (i % 8))) & 15u) | 0x4b000000u) - 8388616.f;
      } else {
#pragma unroll
        for (int i = 0; i < 32; i++) w[i] = lut[(ww[i / 8] >> (4 * (i % 8))) & 15u];
      }
      // The weight scales of this chunk: int4 one group (group % 32 == 0), nvfp4 two blocks of 16.
      float s0 = 1.f, s1 = 1.f;
      if constexpr (FMT == FMT_INT4) {
        s0 = __ldg(reinterpret_cast<const float*>(scales) + (long long)j * (k / group) + (c * 32) / group);
      } else if constexpr (FMT == FMT_NVFP4) {
        const unsigned short sb = __ldg(reinterpret_cast<const unsigned short*>(scales) + ((long long)j * (k / 16)) / 2 + c);
        s0 = e4m3Value(sb & 0xffu);
        s1 = e4m3Value(sb >> 8);
      }
#pragma unroll
      for (int r = 0; r < M; r++) {
        if (r >= m) break;
        const uint4* xr = xs + (long long)r * (k / 8);
        if constexpr (FMT == FMT_INT8) {
          float a[8], b[8];
          bf8(__ldg(xr + c), a);
          bf8(__ldg(xr + chunks + c), b);
          float d = 0.f;
#pragma unroll
          for (int i = 0; i < 8; i++) d = fmaf(a[i], w[i], d);
#pragma unroll
          for (int i = 0; i < 8; i++) d = fmaf(b[i], w[8 + i], d);
          acc[r] += d;
        } else {
          float d0 = 0.f, d1 = 0.f;
#pragma unroll
          for (int q = 0; q < 2; q++) {
            float a[8], b[8];
            bf8(__ldg(xr + (2 * q) * chunks + c), a);
            bf8(__ldg(xr + (2 * q + 1) * chunks + c), b);
            float d = 0.f;
#pragma unroll
            for (int i = 0; i < 8; i++) d = fmaf(a[i], w[16 * q + i], d);
#pragma unroll
            for (int i = 0; i < 8; i++) d = fmaf(b[i], w[16 * q + 8 + i], d);
            if (q == 0) d0 = d;
            else d1 = d;
          }
          if constexpr (FMT == FMT_INT4) acc[r] = fmaf(d0 + d1, s0, acc[r]);
          else acc[r] = fmaf(d1, s1, fmaf(d0, s0, acc[r]));
        }
      }
    }
  }
#pragma unroll
  for (int r = 0; r < M; r++) {
    if (r >= m) break;
    const float v = warpSum(acc[r]);
    if (lane == 0) {
      float o = FMT == FMT_INT8 ? v * rowScale[r] * reinterpret_cast<const float*>(scales)[j] : v * alpha;
      if (bias) o += toF(bias[j]);
      y[(long long)r * n + j] = fromF<bf16_t>(o);
    }
  }
}

#define LOWBIT_GEMV(NAME, FMT, M)                                                                                                  \
  extern "C" __global__ void __launch_bounds__(256) NAME(const bf16_t* xq, const u8* W, const void* scales, const float* rowScale,  \
      const bf16_t* bias, bf16_t* y, int m, int n, int k, int group, float alpha) {                                               \
    lowbitGemv<FMT, M>(xq, W, scales, rowScale, bias, y, m, n, k, group, alpha);                                                    \
  }

#if LLMRT_KERNEL(lowbit_gemv_int8_bf16_m1)
LOWBIT_GEMV(lowbit_gemv_int8_bf16_m1, FMT_INT8, 1)
#endif
#if LLMRT_KERNEL(lowbit_gemv_int8_bf16_m2)
LOWBIT_GEMV(lowbit_gemv_int8_bf16_m2, FMT_INT8, 2)
#endif
#if LLMRT_KERNEL(lowbit_gemv_int8_bf16_m4)
LOWBIT_GEMV(lowbit_gemv_int8_bf16_m4, FMT_INT8, 4)
#endif
#if LLMRT_KERNEL(lowbit_gemv_int8_bf16_m8)
LOWBIT_GEMV(lowbit_gemv_int8_bf16_m8, FMT_INT8, 8)
#endif
#if LLMRT_KERNEL(lowbit_gemv_int4_bf16_m1)
LOWBIT_GEMV(lowbit_gemv_int4_bf16_m1, FMT_INT4, 1)
#endif
#if LLMRT_KERNEL(lowbit_gemv_int4_bf16_m2)
LOWBIT_GEMV(lowbit_gemv_int4_bf16_m2, FMT_INT4, 2)
#endif
#if LLMRT_KERNEL(lowbit_gemv_int4_bf16_m4)
LOWBIT_GEMV(lowbit_gemv_int4_bf16_m4, FMT_INT4, 4)
#endif
#if LLMRT_KERNEL(lowbit_gemv_int4_bf16_m8)
LOWBIT_GEMV(lowbit_gemv_int4_bf16_m8, FMT_INT4, 8)
#endif
#if LLMRT_KERNEL(lowbit_gemv_nvfp4_bf16_m1)
LOWBIT_GEMV(lowbit_gemv_nvfp4_bf16_m1, FMT_NVFP4, 1)
#endif
#if LLMRT_KERNEL(lowbit_gemv_nvfp4_bf16_m2)
LOWBIT_GEMV(lowbit_gemv_nvfp4_bf16_m2, FMT_NVFP4, 2)
#endif
#if LLMRT_KERNEL(lowbit_gemv_nvfp4_bf16_m4)
LOWBIT_GEMV(lowbit_gemv_nvfp4_bf16_m4, FMT_NVFP4, 4)
#endif
#if LLMRT_KERNEL(lowbit_gemv_nvfp4_bf16_m8)
LOWBIT_GEMV(lowbit_gemv_nvfp4_bf16_m8, FMT_NVFP4, 8)
#endif
