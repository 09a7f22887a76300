// NVFP4 (W4A4: e2m1 weights and activations, e4m3 block scales per 16, global scales) linears of bfloat16
// engines on the integer tensor cores — the decode GEMV and its activation quantizer, and the prefill dequantizer of
// the same device layout (CudaFlags.nvfp4Mma; the public layout kernels are lowbit.cu's lowbit_*_nvfp4*).
//
// Doubled e2m1 values (2·e2m1 ∈ {0, ±1, ±2, ±3, ±4, ±6, ±8, ±12}) are int8, so a block's Σ x·w is an exact int32 sum
// of an s8 · s8 mma (m16n8k16: one NVFP4 block along k) that is 4 × the CPU's block dot product exactly.
// Weights are never converted to floats: a byte permute (prmt) looks up four codes at once in an 8-byte table
// {0, 1, 2, 3, 4, 6, 8, 12}; a selector nibble with its high (sign) bit set returns the sign of a table byte, 0, so
// prmt(codes) is the positive weights (negatives 0) and prmt(codes ^ 0x8888) the magnitudes of the negative ones,
// multiplied with −x by a second mma into the same int32 accumulators. Those start from the bits of 1.5 · 2^23, so a
// block's sum reads as a float with one subtraction; it is scaled by e4m3(w scale) · e4m3(x scale) (exact products)
// and added in fp32 — the CPU's Σ_b sx·sw·dot (lib/backends/cpu/lowbit_linear.ts) up to the fp32 sum's rounding.
//
// Device layout of the weights (lib/backends/cuda/nvfp4_tiles.ts; the engine keeps the public one): tiles of 16 rows ×
// 64 columns (512 bytes, row tiles in order, each row tile's k tiles in order); lane l = 4g + t of a warp holds 16
// bytes = 4 words, word b (block b of the tile): nibbles 0..3 row g, columns 16b + 4t + 0..3, nibbles 4..7 row g + 8,
// the same columns (the mma's A fragment: a0 = rows g, a1 = row g + 8). Block scales: 64 bytes a tile, at 8g the
// e4m3 scales of row g for blocks 0..3 then those of row g + 8.
// Activations (nvfp4_act_mma_bf16, the quantization of lowbit_act_nvfp4_bf16): for m rows, int8 doubled codes
// xp [m, k] in the B fragment's order (row r, k tile q: 64 bytes, lane slice t: 16 bytes = blocks 0..3 of the tile,
// columns 4t..4t+3 each), their negations xn [m, k] after them, and the block scales sx f32 [m, k / 16].
//
// extern "C" __global__ void nvfp4_act_mma_bf16(const bf16_t* x, u8* xq, float* sx, int rows, int k, float a)
//   grid (ceil(k / 1024), rows, 1)   block (256, 1, 1); k % 64 == 0
// extern "C" __global__ void nvfp4_gemv_mma_bf16_m{1,8}(const u8* xq, const u8* W, const u8* S, const float* sx,
//     const bf16_t* bias, bf16_t* y, int m, int n, int k, int unused, float alpha)
//   y[r, j] = alpha / 4 · Σ_b e4m3(S[j, b]) · sx[r, b] · Σ_{i∈b} xp·w + bias[j]   (alpha = a · g); m <= 8 (_m1: m = 1)
// extern "C" __global__ void nvfp4_gemv_mma_w16_bf16_m{1,8}(...the same parameters...)
//   the same with 16 warps a block (block (512, 1, 1); other sums): for few row tiles (lowbit_launch.ts).
//   grid (n / 16, 1, 1), or fewer blocks when (k / 64) % (NW · NV_U) == 0 (a persistent grid)   block (256, 1, 1): a
//   block takes 16-row tiles blockIdx.x, + gridDim.x, …; its NW = 8 warps take k tiles w, w + 8, … and add up in
//   shared memory (the same bits for any grid); n % 16 == 0, k % 64 == 0.
// extern "C" __global__ void nvfp4_dequant_mma_bf16(const u8* W, const u8* S, bf16_t* out, int n, int k, int unused)
//   out [n, k] bf16 = e2m1 · e4m3 (exact) from the tiled layout.   grid (ceil(n · k / 8 / 256), 1, 1)   block (256, 1, 1)
#include "nvfp4_act.cuh"

#ifndef NV_U
#define NV_U 4  // k tiles (16-byte weight loads) a lane keeps in flight (tuning knob)
#endif
#ifndef NV_LDNC
#define NV_LDNC 1  // 1: weight loads through the non-coherent path without L1 allocation; 0: __ldg (tuning knob)
#endif
#ifndef NV_ZC
#define NV_ZC 0  // 1: each block's first mma from zero accumulators, 1.5 · 2^23 added to the used sums only; 0: from 1.5 · 2^23 (same bits; H200 r2/r3: 0 ~3% faster)
#endif
#ifndef NV_K32_MINB
#define NV_K32_MINB 4  // nvfp4_gemv_k32x (8 warps): __launch_bounds__ minimum blocks per SM (4: <= 64 registers)
#endif
#ifndef NV_K32X_XPF
#define NV_K32X_XPF 1  // nvfp4_gemv_k32x: items ahead whose activation word and scale a lane keeps in registers
#endif
#ifndef NV_K32X_UNROLL
#define NV_K32X_UNROLL 1  // nvfp4_gemv_k32x: items an unrolled loop step (2: two items' chains interleaved)
#endif
#ifndef NV_K32X_SLIM
#define NV_K32X_SLIM 0  // nvfp4_gemv_k32x: 1: 576-byte ring slots (a tile's scales copied once, read after a warp barrier)
#endif
#ifndef NV_K32X_CONTIG
#define NV_K32X_CONTIG 0  // nvfp4_gemv_k32x timing probe (wrong sums): a warp's items from contiguous k tiles
#endif
#ifndef NV_K32X_RING
#define NV_K32X_RING 6  // nvfp4_gemv_k32x: its cp.async ring's tiles a warp (16 warps: half; 37 KB a block at 6)
#endif
#ifndef NV_MINB
#define NV_MINB 1  // __launch_bounds__ minimum blocks per SM of the GEMV (tuning knob: 3 caps registers at 85)
#endif

/** The value of e2m1 code c (0..15). */
__device__ __forceinline__ float nvE2m1(u32 c) {
  const u32 e = (c >> 1) & 3u, m = c & 1u;
  const float v = e ? __uint_as_float(((126u + e) << 23) | (m << 22)) : 0.5f * (float)m;
  return (c & 8u) ? -v : v;
}

__device__ __forceinline__ u32 prmt(u32 a, u32 b, u32 s) {
  u32 d;
  asm("prmt.b32 %0, %1, %2, %3;" : "=r"(d) : "r"(a), "r"(b), "r"(s));
  return d;
}

__device__ __forceinline__ void mmaS8(int (&c)[4], u32 a0, u32 a1, u32 b) {
  asm volatile("mma.sync.aligned.m16n8k16.row.col.s32.s8.s8.s32 {%0,%1,%2,%3}, {%4,%5}, {%6}, {%0,%1,%2,%3};"
               : "+r"(c[0]), "+r"(c[1]), "+r"(c[2]), "+r"(c[3])
               : "r"(a0), "r"(a1), "r"(b));
}

/** d = A · B (s8, k = 16) from zero accumulators. */
__device__ __forceinline__ void mmaS8z(int (&d)[4], u32 a0, u32 a1, u32 b) {
  asm volatile("mma.sync.aligned.m16n8k16.row.col.s32.s8.s8.s32 {%0,%1,%2,%3}, {%4,%5}, {%6}, {%7,%7,%7,%7};"
               : "=r"(d[0]), "=r"(d[1]), "=r"(d[2]), "=r"(d[3])
               : "r"(a0), "r"(a1), "r"(b), "r"(0));
}

/** Two e4m3 bytes (low, high) → floats. */
__device__ __forceinline__ float2 e4m3Pair(u32 v) {
  u32 h;
  asm("cvt.rn.f16x2.e4m3x2 %0, %1;" : "=r"(h) : "h"((unsigned short)v));
  float lo, hi;
  asm("cvt.f32.f16 %0, %1;" : "=f"(lo) : "h"((unsigned short)(h & 0xffffu)));
  asm("cvt.f32.f16 %0, %1;" : "=f"(hi) : "h"((unsigned short)(h >> 16)));
  return make_float2(lo, hi);
}

#define NV_MAGIC 0x4B400000  // 1.5 · 2^23: an int32 sum s added to these bits reads as the float 1.5 · 2^23 + s

// ---- activation quantization -----------------------------------------------------------------------

/** 4 bf16 values (8 bytes) as floats. */
__device__ __forceinline__ void nvLoad4(const bf16_t* p, float (&f)[4]) {
  const uint2 v = *reinterpret_cast<const uint2*>(p);
  f[0] = __uint_as_float(v.x << 16);
  f[1] = __uint_as_float(v.x & 0xffff0000u);
  f[2] = __uint_as_float(v.y << 16);
  f[3] = __uint_as_float(v.y & 0xffff0000u);
}

#if LLMRT_KERNEL(nvfp4_act_mma_bf16)
extern "C" __global__ void __launch_bounds__(256) nvfp4_act_mma_bf16(const bf16_t* x, u8* xq, float* sx, int rows, int k, float a) {
  pdlWait();  // x is the previous kernel's (a PDL launch in fused decode steps)
  pdlLaunchDependents();
  const int r = blockIdx.y;
  if (r >= rows) return;
  const int i = (blockIdx.x * blockDim.x + threadIdx.x) * 4;
  const bool active = i < k;
  float f[4] = {0.f, 0.f, 0.f, 0.f};
  if (active) nvLoad4(x + (long long)r * k + i, f);
  nvActQuad(f, active, i, a, __fmul_rn(6.f, a), xq + (long long)r * k, xq + (long long)rows * k + (long long)r * k, sx + (long long)r * (k / 16));
}
#endif

// The act quantization folded into the op producing the linear's input (CudaFlags.nvfp4Mma; lowbit_launch.ts
// nvfp4ActProducers): the bf16-rounded values rmsnorm_bf16 / add_rmsnorm_bf16 / silu_mul_bf16 would store (same sums
// in the same order), quantized as nvfp4_act_mma_bf16 quantizes them; the bf16 output itself is not written.
// extern "C" __global__ void nvfp4_rmsnorm_act_bf16(const bf16_t* x, bf16_t* residual, const bf16_t* weight, u8* xq,
//     float* sx, int rows, int hidden, float eps, float a, int add)
//   add 1: residual += x (stored rounded), the norm of the residual.   grid (rows, 1, 1)   block (256, 1, 1); hidden % 64 == 0
// extern "C" __global__ void nvfp4_silu_mul_act_bf16(const bf16_t* gateUp, u8* xq, float* sx, int numTokens, int inter, float a)
//   grid (ceil(inter / 1024), numTokens, 1)   block (256, 1, 1); inter % 64 == 0
// (nvfp4_act_mma_bf16: grid (ceil(k / 1024), rows, 1)   block (256, 1, 1); k % 64 == 0.)

#if LLMRT_KERNEL(nvfp4_rmsnorm_act_bf16)
extern "C" __global__ void __launch_bounds__(256) nvfp4_rmsnorm_act_bf16(const bf16_t* x, bf16_t* residual, const bf16_t* weight, u8* xq,
    float* sx, int rows, int hidden, float eps, float a, int add) {
  pdlWait();
  pdlLaunchDependents();
  __shared__ float sh[32];
  const long long row = blockIdx.x;
  if (row >= rows) return;
  const bf16_t* xr = x + row * hidden;
  bf16_t* rr = add ? residual + row * hidden : nullptr;
  // Pass 1 as rmsnorm_bf16 / add_rmsnorm_bf16 (fp8_rmsnorm_quant_bf16's copy): sum of squares in the same order.
  float ss = 0.f;
  for (int i = threadIdx.x * 8; i < hidden; i += blockDim.x * 8) {
    float v[8];
    load16(xr + i, v);
    if (add) {
      float b[8];
      load16(rr + i, b);
#pragma unroll
      for (int e = 0; e < 8; e++) v[e] = toF(fromF<bf16_t>(v[e] + b[e]));
      store16(rr + i, v);
    }
#pragma unroll
    for (int e = 0; e < 8; e++) ss += v[e] * v[e];
  }
  ss = blockSum(ss, sh);  // its barriers also publish the residual rows written above
  const float inv = rsqrtf(ss / (float)hidden + eps);
  const bf16_t* src = add ? rr : xr;
  u8* xp = xq + row * hidden;
  u8* xn = xq + (long long)rows * hidden + row * hidden;
  const float six = __fmul_rn(6.f, a);
  for (int base = 0; base < hidden; base += blockDim.x * 4) {  // block-uniform: every lane reaches the shuffles
    const int i = base + threadIdx.x * 4;
    const bool active = i < hidden;
    float f[4] = {0.f, 0.f, 0.f, 0.f}, w[4];
    if (active) {
      nvLoad4(src + i, f);
      nvLoad4(weight + i, w);
#pragma unroll
      for (int e = 0; e < 4; e++) f[e] = toF(fromF<bf16_t>(f[e] * inv * w[e]));
    }
    nvActQuad(f, active, i, a, six, xp, xn, sx + row * (hidden / 16));
  }
}
#endif

// extern "C" __global__ void nvfp4_rmsnorm_act_fast_bf16(...nvfp4_rmsnorm_act_bf16's parameters...)   (CudaFlags.nvfp4NormFast)
//   The same bytes as nvfp4_rmsnorm_act_bf16 (its threads 0..255 sum the squares in the same order; the others add
//   zeros to blockSum, which leaves the sum's bits alone), with less latency on its one block's path: the norm weight is
//   loaded before pdlWait, the row (x, or the residual after the add) is kept in shared memory from pass 1, and 1024
//   threads quantize 4 values each (hidden <= NV_FAST_H: one round for 4096).   grid (rows, 1, 1)   block (1024, 1, 1)
#define NV_FAST_H 8192

#if LLMRT_KERNEL(nvfp4_rmsnorm_act_fast_bf16)
extern "C" __global__ void __launch_bounds__(1024) nvfp4_rmsnorm_act_fast_bf16(const bf16_t* x, bf16_t* residual, const bf16_t* weight, u8* xq,
    float* sx, int rows, int hidden, float eps, float a, int add) {
  __shared__ float sh[32];
  __shared__ __align__(16) bf16_t xs[NV_FAST_H];
  constexpr int R = NV_FAST_H / 4096;  // pass-2 rounds of 1024 threads x 4 values
  uint2 wv[R];                         // this thread's norm weights of each round (constant: read before the wait)
#pragma unroll
  for (int r = 0; r < R; r++) {
    const int i = r * 4096 + (int)threadIdx.x * 4;
    if (i < hidden) wv[r] = *reinterpret_cast<const uint2*>(weight + i);
  }
  pdlWait();
  pdlLaunchDependents();
  const long long row = blockIdx.x;
  if (row >= rows) return;
  const bf16_t* xr = x + row * hidden;
  bf16_t* rr = add ? residual + row * hidden : nullptr;
  // Pass 1 by threads 0..255 exactly as nvfp4_rmsnorm_act_bf16 (the same chunks, sums and residual stores); the values
  // the norm reads (x, or the stored residual) kept in shared memory.
  float ss = 0.f;
  if (threadIdx.x < 256) {
    for (int i = threadIdx.x * 8; i < hidden; i += 256 * 8) {
      float v[8];
      load16(xr + i, v);
      if (add) {
        float b[8];
        load16(rr + i, b);
#pragma unroll
        for (int e = 0; e < 8; e++) v[e] = toF(fromF<bf16_t>(v[e] + b[e]));
        store16(rr + i, v);
      }
      store16(xs + i, v);
#pragma unroll
      for (int e = 0; e < 8; e++) ss += v[e] * v[e];
    }
  }
  ss = blockSum(ss, sh);  // its barriers also publish xs
  const float inv = rsqrtf(ss / (float)hidden + eps);
  u8* xp = xq + row * hidden;
  u8* xn = xq + (long long)rows * hidden + row * hidden;
  const float six = __fmul_rn(6.f, a);
#pragma unroll
  for (int r = 0; r < R; r++) {
    const int base = r * 4096;
    if (base >= hidden) break;  // block-uniform: every lane reaches the shuffles
    const int i = base + (int)threadIdx.x * 4;
    const bool active = i < hidden;
    float f[4] = {0.f, 0.f, 0.f, 0.f};
    if (active) {
      nvLoad4(xs + i, f);
      const float w[4] = {__uint_as_float(wv[r].x << 16), __uint_as_float(wv[r].x & 0xffff0000u), __uint_as_float(wv[r].y << 16),
          __uint_as_float(wv[r].y & 0xffff0000u)};
#pragma unroll
      for (int e = 0; e < 4; e++) f[e] = toF(fromF<bf16_t>(f[e] * inv * w[e]));
    }
    nvActQuad(f, active, i, a, six, xp, xn, sx + row * (hidden / 16));
  }
}
#endif

__device__ __forceinline__ float nvSilu(float g) { return g / (1.f + expf(-g)); }  // silu_mul.cu's silu

#if LLMRT_KERNEL(nvfp4_silu_mul_act_bf16)
extern "C" __global__ void __launch_bounds__(256) nvfp4_silu_mul_act_bf16(const bf16_t* gateUp, u8* xq, float* sx, int numTokens, int inter, float a) {
  pdlWait();
  pdlLaunchDependents();
  const long long t = blockIdx.y;
  if (t >= numTokens) return;
  const int i = (blockIdx.x * blockDim.x + threadIdx.x) * 4;
  const bool active = i < inter;
  float f[4] = {0.f, 0.f, 0.f, 0.f};
  if (active) {
    float b[4];
    nvLoad4(gateUp + t * 2 * inter + i, f);
    nvLoad4(gateUp + t * 2 * inter + inter + i, b);
#pragma unroll
    for (int e = 0; e < 4; e++) f[e] = toF(fromF<bf16_t>(nvSilu(f[e]) * b[e]));
  }
  nvActQuad(f, active, i, a, __fmul_rn(6.f, a), xq + t * inter, xq + (long long)numTokens * inter + t * inter, sx + t * (inter / 16));
}
#endif

// ---- decode GEMV -----------------------------------------------------------------------------------

/** The weight tile (16 bytes a lane) and block scales (8 bytes a lane) of row tile rt, k tile q. */
__device__ __forceinline__ void nvLoadTile(const u8* __restrict__ W, const u8* __restrict__ S, int rt, int q, int KT, int lane, uint4& w, uint2& s) {
  const long long tile = (long long)rt * KT + q;
#if NV_LDNC
  // Read once: not allocated in L1, which keeps the activation codes every tile reads.
  asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
               : "=r"(w.x), "=r"(w.y), "=r"(w.z), "=r"(w.w)
               : "l"(W + tile * 512 + lane * 16));
  asm volatile("ld.global.nc.L1::no_allocate.v2.u32 {%0, %1}, [%2];" : "=r"(s.x), "=r"(s.y) : "l"(S + tile * 64 + (lane >> 2) * 8));
#else
  w = __ldg(reinterpret_cast<const uint4*>(W + tile * 512) + lane);
  s = __ldg(reinterpret_cast<const uint2*>(S + tile * 64) + (lane >> 2));
#endif
}

template <int M, int NW>
__device__ __forceinline__ void nvfp4MmaGemv(const u8* __restrict__ xq, const u8* __restrict__ W, const u8* __restrict__ S,
    const float* __restrict__ sx, const bf16_t* __restrict__ bias, bf16_t* __restrict__ y, int m, int n, int k, float alpha) {
  constexpr int NA = M == 1 ? 2 : 4;  // accumulators a lane keeps: (row g, col 2t), (row g + 8, col 2t) [, col 2t + 1]
  __shared__ float red[NW][16][M == 1 ? 1 : 8];
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
  const int KT = k / 64, RT = n / 16;
  // This warp's k tiles of every row tile (NW warps a block): q = warp + NW·j, j < cnt. A grid smaller than RT (a persistent grid: each
  // block takes row tiles blockIdx.x, + gridDim.x, ...) needs KT % (8 · NV_U) == 0: then every warp has cnt items a
  // row tile, whole rounds of NV_U, and the loads run on into the next row tile while this one is summed.
  const int cnt = (KT - warp + NW - 1) / NW;
  const u32 T0 = 0x03020100u, T1 = 0x0C080604u;  // 2 · e2m1 magnitudes
  uint4 nw[NV_U];
  uint2 ns[NV_U];
  int rt = blockIdx.x;
#pragma unroll
  for (int u = 0; u < NV_U; u++) {
    if (u < cnt && rt < RT) nvLoadTile(W, S, rt, warp + NW * u, KT, lane, nw[u], ns[u]);
  }
  pdlWait();
  pdlLaunchDependents();
  const bool hasX = g < m;
  const uint4* xpr = reinterpret_cast<const uint4*>(xq + (long long)g * k) + t;  // k tile q: xpr[4 q]
  const uint4* xnr = reinterpret_cast<const uint4*>(xq + (long long)m * k + (long long)g * k) + t;
  const int c0 = 2 * t, c1 = 2 * t + 1;
  const float4* sx0 = reinterpret_cast<const float4*>(sx + (long long)c0 * (k / 16));
  const float4* sx1 = reinterpret_cast<const float4*>(sx + (long long)c1 * (k / 16));
  for (; rt < RT; rt += gridDim.x) {
    float acc[NA];
#pragma unroll
    for (int i = 0; i < NA; i++) acc[i] = 0.f;
    for (int j0 = 0; j0 < cnt; j0 += NV_U) {
      uint4 wv[NV_U];
      uint2 sv[NV_U];
#pragma unroll
      for (int u = 0; u < NV_U; u++) {
        wv[u] = nw[u];
        sv[u] = ns[u];
      }
#pragma unroll
      for (int u = 0; u < NV_U; u++) {
        int j = j0 + NV_U + u, r2 = rt;
        if (j >= cnt) {  // the next row tile's items (persistent grids)
          j -= cnt;
          r2 += gridDim.x;
        }
        if (j < cnt && r2 < RT) nvLoadTile(W, S, r2, warp + NW * j, KT, lane, nw[u], ns[u]);
      }
#pragma unroll
      for (int u = 0; u < NV_U; u++) {
        if (j0 + u >= cnt) break;
        const int q = warp + NW * (j0 + u);
        const uint4 xp = hasX ? __ldg(xpr + 4 * q) : make_uint4(0, 0, 0, 0);
        const uint4 xn = hasX ? __ldg(xnr + 4 * q) : make_uint4(0, 0, 0, 0);
        const float4 s0 = c0 < m ? __ldg(sx0 + q) : make_float4(0.f, 0.f, 0.f, 0.f);
        float4 s1 = make_float4(0.f, 0.f, 0.f, 0.f);
        if (M > 1 && c1 < m) s1 = __ldg(sx1 + q);
        const float2 wa = e4m3Pair(sv[u].x & 0xffffu), wb = e4m3Pair(sv[u].x >> 16);  // row g, blocks 0..3
        const float2 wc = e4m3Pair(sv[u].y & 0xffffu), wd = e4m3Pair(sv[u].y >> 16);  // row g + 8
        const float swg[4] = {wa.x, wa.y, wb.x, wb.y}, swh[4] = {wc.x, wc.y, wd.x, wd.y};
        const float sxa[4] = {s0.x, s0.y, s0.z, s0.w}, sxb[4] = {s1.x, s1.y, s1.z, s1.w};
        const u32 ww[4] = {wv[u].x, wv[u].y, wv[u].z, wv[u].w};
        const u32 xpw[4] = {xp.x, xp.y, xp.z, xp.w}, xnw[4] = {xn.x, xn.y, xn.z, xn.w};
#pragma unroll
        for (int b = 0; b < 4; b++) {
          const u32 w = ww[b], xw = w ^ 0x88888888u;
#if NV_ZC
          int c[4];
          mmaS8z(c, prmt(T0, T1, w), prmt(T0, T1, w >> 16), xpw[b]);
          constexpr int MG = NV_MAGIC;
#else
          int c[4] = {NV_MAGIC, NV_MAGIC, NV_MAGIC, NV_MAGIC};
          mmaS8(c, prmt(T0, T1, w), prmt(T0, T1, w >> 16), xpw[b]);
          constexpr int MG = 0;
#endif
          mmaS8(c, prmt(T0, T1, xw), prmt(T0, T1, xw >> 16), xnw[b]);
          // The block sums (|s| <= 16 · 144) as floats, exactly: 1.5 · 2^23 + s read as a float, minus 1.5 · 2^23.
          acc[0] = fmaf(__int_as_float(c[0] + MG) - 12582912.f, swg[b] * sxa[b], acc[0]);
          acc[1] = fmaf(__int_as_float(c[2] + MG) - 12582912.f, swh[b] * sxa[b], acc[1]);
          if constexpr (M > 1) {
            acc[2] = fmaf(__int_as_float(c[1] + MG) - 12582912.f, swg[b] * sxb[b], acc[2]);
            acc[3] = fmaf(__int_as_float(c[3] + MG) - 12582912.f, swh[b] * sxb[b], acc[3]);
          }
        }
      }
    }
    // The 8 warps' sums in a fixed order (any grid: the same bits).
    if constexpr (M == 1) {
      if (t == 0) {
        red[warp][g][0] = acc[0];
        red[warp][g + 8][0] = acc[1];
      }
    } else {
      red[warp][g][c0] = acc[0];
      red[warp][g + 8][c0] = acc[1];
      red[warp][g][c1] = acc[2];
      red[warp][g + 8][c1] = acc[3];
    }
    __syncthreads();
    const int row = threadIdx.x & 15, col = threadIdx.x >> 4;
    if (col < m && col < M) {
      float v = 0.f;
#pragma unroll
      for (int w = 0; w < NW; w++) v += red[w][row][M == 1 ? 0 : col];
      const int j = rt * 16 + row;
      float o = v * (0.25f * alpha);
      if (bias) o += toF(bias[j]);
      y[(long long)col * n + j] = fromF<bf16_t>(o);
    }
    __syncthreads();  // red is rewritten by the next row tile
  }
}

#define NVFP4_MMA_GEMV(NAME, M, NW)                                                                                              \
  extern "C" __global__ void __launch_bounds__(NW * 32, NW == 8 ? NV_MINB : 1) NAME(const u8* xq, const u8* W, const u8* S, const float* sx, \
      const bf16_t* bias, bf16_t* y, int m, int n, int k, int unused, float alpha) {                                             \
    nvfp4MmaGemv<M, NW>(xq, W, S, sx, bias, y, m, n, k, alpha);                                                                      \
  }

#if LLMRT_KERNEL(nvfp4_gemv_mma_bf16_m1)
NVFP4_MMA_GEMV(nvfp4_gemv_mma_bf16_m1, 1, 8)
#endif
#if LLMRT_KERNEL(nvfp4_gemv_mma_bf16_m8)
NVFP4_MMA_GEMV(nvfp4_gemv_mma_bf16_m8, 8, 8)
#endif
#if LLMRT_KERNEL(nvfp4_gemv_mma_w16_bf16_m1)
NVFP4_MMA_GEMV(nvfp4_gemv_mma_w16_bf16_m1, 1, 16)
#endif
#if LLMRT_KERNEL(nvfp4_gemv_mma_w16_bf16_m8)
NVFP4_MMA_GEMV(nvfp4_gemv_mma_w16_bf16_m8, 8, 16)
#endif

// ---- decode GEMV at m = 1, two blocks an mma (CudaFlags.nvfp4GemvK32) ----------------------------------------------
// extern "C" __global__ void nvfp4_gemv_k32x_bf16_m1(...nvfp4_gemv_mma_bf16_m1's parameters...)   (m = 1)
// extern "C" __global__ void nvfp4_gemv_k32x_w16_bf16_m1(...)   16 warps a block (block (512, 1, 1))
// extern "C" __global__ void nvfp4_gemv_k32x_logits_bf16_m1(...)   y is float* (an NVFP4 lm_head's fp32 logits)
//   The same weights, activation codes and grid as nvfp4_gemv_mma_bf16_m1 (the same tiles, k tiles per warp, persistent
//   grids and warp sums), but m16n8k32 mmas: a k tile's blocks 0, 1 in B's columns 0, 2 of one pair of mmas (positive
//   weights · x into one accumulator chain, negative weights' magnitudes · x into another, subtracted at the end: the
//   codes' negations are not read), blocks 2, 3 in columns 4, 6 of another pair, so lane 4g + t's accumulators c0 / c2
//   end as block t's sums of rows g / g + 8. Each lane then scales and adds one block of two rows a k tile (the 16-row
//   mma kernel's lanes each add four blocks of two rows, of which only a quarter are used at m = 1), and a k tile takes
//   4 mmas, not 8; under 64 registers (NV_K32_MINB 4), so 4 blocks fit an SM: this GEMV is latency-bound, more resident
//   warps is what speeds it up. The block terms are the same exact floats, every lane adding its quad's four in block
//   order: nvfp4_gemv_mma's fma chain, the same bits as it (batch-invariant with the m8 kernel).
//   Named k32x: session 14's lean loop (CudaFlags.nvfp4K32X, the default since) of the session-11/12 k32 GEMV, with the
//   same items, mmas and sums (the same bits); session 15 removed the k32 loop and the switch.

/** d = A · B + {c, c, c, c} (s8, m16n8k32). */
__device__ __forceinline__ void mmaK32c(int (&d)[4], u32 a0, u32 a1, u32 a2, u32 a3, u32 b0, u32 b1, int c) {
  asm volatile("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%10,%10,%10,%10};"
               : "=r"(d[0]), "=r"(d[1]), "=r"(d[2]), "=r"(d[3])
               : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1), "r"(c));
}

/** d += A · B (s8, m16n8k32). */
__device__ __forceinline__ void mmaK32(int (&d)[4], u32 a0, u32 a1, u32 a2, u32 a3, u32 b0, u32 b1) {
  asm volatile("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
               : "+r"(d[0]), "+r"(d[1]), "+r"(d[2]), "+r"(d[3])
               : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

/** Shared-memory address of p (for cp.async). */
__device__ __forceinline__ u32 nvSmemAddr(const void* p) {
  unsigned long long g;
  asm("cvta.to.shared.u64 %0, %1;" : "=l"(g) : "l"(p));
  return (u32)g;
}

// ---- the k32 GEMV's loop (session 14's lean form) ------------------------------------------------------------------
// nvfp4K32xGemv: fewer instructions an item than session 12's k32 loop (which issued ~150 a 576-byte tile, near the SMs'
// issue rate at the copy's bandwidth): a per-warp cp.async ring in shared memory holds the weight tiles in flight (the
// bytes take shared memory, not registers); its cp.async addresses advance by pointer increments (no 64-bit tile
// products, no generic-to-shared conversion an item), the ring slot is read at a 32-bit shared address, and each lane's
// activation word and block scale are loaded NV_K32X_XPF items ahead into registers, so an item's mmas never wait on
// that load (an L2 round trip for a row tile's first reader), and one barrier a row tile (the warp sums alternate
// between two halves of red). Its ring: NV_K32X_RING tiles a warp (16 warps: half).

/** dst (a shared address) <- 16 / 8 bytes at src, asynchronously (cp.async; .cg: not allocated in L1). */
__device__ __forceinline__ void nvCp16(u32 dst, const void* src) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" ::"r"(dst), "l"(src) : "memory");
}
__device__ __forceinline__ void nvCp8(u32 dst, const void* src) {
  asm volatile("cp.async.ca.shared.global [%0], [%1], 8;" ::"r"(dst), "l"(src) : "memory");
}

// ACT false: the row's codes and scales are in xq / sx (a producer or nvfp4_act_mma wrote them). ACT true: xq is the
// linear's bf16 input row, quantized by every block into shared memory (nvActQuad, as nvfp4_act_mma_bf16 quantizes it:
// the same codes and scales) after the first weight loads are issued, instead of a separate act launch.
template <int NW, bool LOGITS, bool ACT>
__device__ __forceinline__ void nvfp4K32xGemv(const u8* __restrict__ xq, const u8* __restrict__ W, const u8* __restrict__ S,
    const float* __restrict__ sx, const bf16_t* __restrict__ bias, void* __restrict__ y, int n, int k, float alpha, float a = 0.f) {
  __shared__ float red[2][NW][16];  // row tiles alternate halves: one barrier a row tile
  extern __shared__ __align__(16) u8 nvSmem[];  // ACT: codes [k], their negations [k] (unread), block scales f32 [k / 16]
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
  const int KT = k / 64, RT = n / 16;
  const int cnt = (KT - warp + NW - 1) / NW;  // k tiles warp, warp + NW, ... of every row tile
  const u32 T0 = 0x03020100u, T1 = 0x0C080604u;  // 2 · e2m1 magnitudes
  constexpr int RD = NW == 16 ? (NV_K32X_RING / 2 > 0 ? NV_K32X_RING / 2 : 1) : NV_K32X_RING;
  // A slot: a tile's 512 weight bytes, then 8 scale bytes a lane (NV_K32X_SLIM: the tile's 64 scale bytes, 4 copied by
  // each of lanes 0..15 and read by the others after a warp barrier).
  constexpr u32 SLOT = NV_K32X_SLIM ? 576 : 768, RING = RD * SLOT;
  __shared__ __align__(16) u8 ring[NW][RD][SLOT];
  int rt = blockIdx.x;
  // The ring: items j < cnt of row tiles blockIdx.x, + gridDim.x, ...; a lane copies its 16 weight bytes
  // and its row pair's 8 scale bytes and reads back only those. wp / sp: the next item's sources; io: its slot's offset.
  const u32 wDst = nvSmemAddr(ring[warp][0] + 16 * lane);
  const u32 sDst = nvSmemAddr(ring[warp][0] + 512 + (NV_K32X_SLIM ? 4 * (lane & 15) : 8 * lane));  // the copy's destination
  const u32 sSrc = NV_K32X_SLIM ? nvSmemAddr(ring[warp][0] + 512 + 8 * g) : sDst;                   // this lane's 8 bytes
  // NV_K32X_CONTIG (a timing probe, wrong sums): the warp's items of a row tile from k tiles warp · cnt, + 1, ...
  // (contiguous runs; KT % NW == 0), not warp, + NW, ... — the DRAM stream a warp-major tile order at upload would give.
  constexpr int QS = NV_K32X_CONTIG ? 1 : NW;  // k tiles between a warp's items
  const long long tile0 = (long long)rt * KT + (NV_K32X_CONTIG ? warp * cnt : warp);
  const u8* wp = W + tile0 * 512 + lane * 16;
  const u8* sp = S + tile0 * 64 + (NV_K32X_SLIM ? 4 * (lane & 15) : (lane >> 2) * 8);
  const long long wrap = (long long)gridDim.x * KT - (long long)QS * (cnt - 1);  // tiles from a row tile's last item to the next one's first
  int fr = rt, fj = 0;
  u32 io = 0;
  const auto issueNext = [&]() {
    if (cnt > 0 && fr < RT) {
      nvCp16(wDst + io, wp);
      if (!NV_K32X_SLIM) {
        nvCp8(sDst + io, sp);
      } else if (lane < 16) {
        asm volatile("cp.async.ca.shared.global [%0], [%1], 4;" ::"r"(sDst + io), "l"(sp) : "memory");
      }
    }
    asm volatile("cp.async.commit_group;" ::: "memory");  // also when nothing is copied: every lane's group count in step
    io = io + SLOT == RING ? 0u : io + SLOT;
    if (++fj >= cnt) {
      fj = 0;
      fr += gridDim.x;
      wp += wrap * 512;
      sp += wrap * 64;
    } else {
      wp += QS * 512;
      sp += QS * 64;
    }
  };
#pragma unroll
  for (int u = 0; u < RD; u++) issueNext();
  pdlWait();
  pdlLaunchDependents();
  if constexpr (ACT) {
    const bf16_t* x = reinterpret_cast<const bf16_t*>(xq);
    const float six = __fmul_rn(6.f, a);
    for (int base = 0; base < k; base += NW * 32 * 4) {  // block-uniform: every lane reaches nvActQuad's shuffles
      const int i = base + (int)threadIdx.x * 4;
      const bool active = i < k;
      float f[4] = {0.f, 0.f, 0.f, 0.f};
      if (active) nvLoad4(x + i, f);
      nvActQuad(f, active, i, a, six, nvSmem, nvSmem + k, reinterpret_cast<float*>(nvSmem + 2 * k));
    }
    __syncthreads();
    xq = nvSmem;
    sx = reinterpret_cast<const float*>(nvSmem + 2 * k);
  }
  // Lanes g = 0, 2, 4, 6 hold B's columns 0, 2, 4, 6: block g / 2 of the k tile, slice t (4 codes; the act layout's
  // word 16 q + 4 t + b); the first pair of mmas takes columns 0 (b0) and 2 (b1), the second 4 (b0) and 6 (b1). Every
  // lane loads the word of its slice (g odd: an in-bounds word it never uses: p0..p3 below take it only at g = 0, 2, 4, 6).
  const u32* xpw = reinterpret_cast<const u32*>(xq) + 4 * t + (g >> 1);  // k tile q: xpw[16 q]
  const float* sxt = sx + t;                                              // block 4 q + t's activation scale: sxt[4 q]
  const u32 ssel = (u32)t | ((u32)(t + 4) << 4);  // prmt of the scale words: (row g, block t), (row g + 8, block t)
  // The activation word and scale of the item XD ahead (xv / xs [0]: the current item's). Items' k tiles run warp,
  // warp + NW, ... < KT, then warp again for the next row tile: every address loaded is in bounds (cnt > 0).
  constexpr int XD = NV_K32X_XPF, XU = NV_K32X_UNROLL;
  u32 xv[XD];
  float xs[XD];
  int xqf = warp;  // the k tile of the next item to load
  const auto loadX = [&](u32& v, float& s) {
    if constexpr (ACT) {
      v = xpw[16 * xqf];
      s = sxt[4 * xqf];
    } else {
      v = __ldg(xpw + 16 * xqf);
      s = __ldg(sxt + 4 * xqf);
    }
    xqf += NW;
    if (xqf >= KT) xqf = warp;
  };
  if (cnt > 0) {
#pragma unroll
    for (int d = 0; d < XD; d++) loadX(xv[d], xs[d]);
  }
  for (int par = 0; rt < RT; rt += gridDim.x, par ^= 1) {
    float acc0 = 0.f, acc1 = 0.f;
#pragma unroll(XU)
    for (int j = 0; j < cnt; j++) {
      // The oldest of the RD groups in flight is this item's; it sits in slot io (refilled below with the item RD ahead).
      asm volatile("cp.async.wait_group %0;" ::"n"(RD - 1) : "memory");
      if (NV_K32X_SLIM) __syncwarp();  // the scale bytes other lanes copied
      uint4 wt;
      uint2 st;
      asm volatile("ld.shared.v4.u32 {%0, %1, %2, %3}, [%4];" : "=r"(wt.x), "=r"(wt.y), "=r"(wt.z), "=r"(wt.w) : "r"(wDst + io));
      asm volatile("ld.shared.v2.u32 {%0, %1}, [%2];" : "=r"(st.x), "=r"(st.y) : "r"(sSrc + io));
      const u32 v = xv[0];
      const float sxv = xs[0];
#pragma unroll
      for (int d = 0; d + 1 < XD; d++) {
        xv[d] = xv[d + 1];
        xs[d] = xs[d + 1];
      }
      loadX(xv[XD - 1], xs[XD - 1]);
      const u32 p0 = g == 0 ? v : 0u, p1 = g == 2 ? v : 0u, p2 = g == 4 ? v : 0u, p3 = g == 6 ? v : 0u;
      const u32 w0 = wt.x, w1 = wt.y, w2 = wt.z, w3 = wt.w;
      const u32 x0 = w0 ^ 0x88888888u, x1 = w1 ^ 0x88888888u, x2 = w2 ^ 0x88888888u, x3 = w3 ^ 0x88888888u;
      // Positive weights · x from 1.5 · 2^23, negative weights' magnitudes · x from 0 (two chains), subtracted after.
      int cp[4], cn[4];
      mmaK32c(cp, prmt(T0, T1, w0), prmt(T0, T1, w0 >> 16), prmt(T0, T1, w1), prmt(T0, T1, w1 >> 16), p0, p1, NV_MAGIC);
      mmaK32c(cn, prmt(T0, T1, x0), prmt(T0, T1, x0 >> 16), prmt(T0, T1, x1), prmt(T0, T1, x1 >> 16), p0, p1, 0);
      mmaK32(cp, prmt(T0, T1, w2), prmt(T0, T1, w2 >> 16), prmt(T0, T1, w3), prmt(T0, T1, w3 >> 16), p2, p3);
      mmaK32(cn, prmt(T0, T1, x2), prmt(T0, T1, x2 >> 16), prmt(T0, T1, x3), prmt(T0, T1, x3 >> 16), p2, p3);
      const float2 sw = e4m3Pair(prmt(st.x, st.y, ssel));  // row g, row g + 8 (block t)
      issueNext();  // wt / st consumed: the slot takes the item RD ahead
      // Block t's terms (sum · scale product: exact in fp32, at most 12 + 8 significant bits) of the quad's lanes added in
      // block order 0..3 by every lane — nvfp4_gemv_mma's fma chain, so the same bits as it (and its m8 kernel).
      const float q0 = (__int_as_float(cp[0] - cn[0]) - 12582912.f) * (sw.x * sxv);
      const float q1 = (__int_as_float(cp[2] - cn[2]) - 12582912.f) * (sw.y * sxv);
#pragma unroll
      for (int b = 0; b < 4; b++) {
        acc0 += __shfl_sync(0xffffffffu, q0, (lane & ~3) | b);
        acc1 += __shfl_sync(0xffffffffu, q1, (lane & ~3) | b);
      }
    }
    if (t == 0) {
      red[par][warp][g] = acc0;
      red[par][warp][g + 8] = acc1;
    }
    __syncthreads();  // (a half is rewritten two row tiles on, after the next barrier: its readers are done by then)
    if (threadIdx.x < 16) {
      const int row = threadIdx.x;
      float v = 0.f;
#pragma unroll
      for (int w = 0; w < NW; w++) v += red[par][w][row];
      const int j = rt * 16 + row;
      float o = v * (0.25f * alpha);
      if (bias) o += toF(bias[j]);
      if constexpr (LOGITS) {
        reinterpret_cast<float*>(y)[j] = o;
      } else {
        reinterpret_cast<bf16_t*>(y)[j] = fromF<bf16_t>(o);
      }
    }
  }
}

// The k32 GEMV's entry points (nvfp4K32xGemv above).
#define NVFP4_K32_GEMV(NAME, NW, LOGITS)                                                                                                     \
  extern "C" __global__ void __launch_bounds__(NW * 32, NW == 8 ? NV_K32_MINB : 1) NAME(const u8* xq, const u8* W, const u8* S, const float* sx, \
      const bf16_t* bias, void* y, int m, int n, int k, int unused, float alpha) {                                                  \
    nvfp4K32xGemv<NW, LOGITS, false>(xq, W, S, sx, bias, y, n, k, alpha);                                                            \
  }

// extern "C" __global__ void nvfp4_gemv_k32x_act[_w16|_logits]_bf16_m1(const bf16_t* x, const u8* W, const u8* S,
//     const bf16_t* bias, void* y, int n, int k, float a, float alpha)
//   nvfp4_act_mma_bf16 + nvfp4_gemv_k32x[_w16|_logits]_bf16_m1 in one launch (the same bits): every block quantizes x
//   into dynamic shared memory (2 k + k / 4 bytes).
#define NVFP4_K32_ACT_GEMV(NAME, NW, LOGITS)                                                                                          \
  extern "C" __global__ void __launch_bounds__(NW * 32, NW == 8 ? NV_K32_MINB : 1) NAME(const bf16_t* x, const u8* W, const u8* S,     \
      const bf16_t* bias, void* y, int n, int k, float a, float alpha) {                                                           \
    nvfp4K32xGemv<NW, LOGITS, true>(reinterpret_cast<const u8*>(x), W, S, nullptr, bias, y, n, k, alpha, a);                       \
  }

#if LLMRT_KERNEL(nvfp4_gemv_k32x_bf16_m1)
NVFP4_K32_GEMV(nvfp4_gemv_k32x_bf16_m1, 8, false)
#endif
#if LLMRT_KERNEL(nvfp4_gemv_k32x_w16_bf16_m1)
NVFP4_K32_GEMV(nvfp4_gemv_k32x_w16_bf16_m1, 16, false)
#endif
#if LLMRT_KERNEL(nvfp4_gemv_k32x_logits_bf16_m1)
NVFP4_K32_GEMV(nvfp4_gemv_k32x_logits_bf16_m1, 8, true)
#endif
#if LLMRT_KERNEL(nvfp4_gemv_k32x_act_bf16_m1)
NVFP4_K32_ACT_GEMV(nvfp4_gemv_k32x_act_bf16_m1, 8, false)
#endif
#if LLMRT_KERNEL(nvfp4_gemv_k32x_act_w16_bf16_m1)
NVFP4_K32_ACT_GEMV(nvfp4_gemv_k32x_act_w16_bf16_m1, 16, false)
#endif
#if LLMRT_KERNEL(nvfp4_gemv_k32x_act_logits_bf16_m1)
NVFP4_K32_ACT_GEMV(nvfp4_gemv_k32x_act_logits_bf16_m1, 8, true)
#endif

// ---- weight dequantization (prefill) ---------------------------------------------------------------

#if LLMRT_KERNEL(nvfp4_dequant_mma_bf16)
extern "C" __global__ void __launch_bounds__(256) nvfp4_dequant_mma_bf16(const u8* W, const u8* S, bf16_t* out, int n, int k, int unused) {
  const long long wi = (long long)blockIdx.x * blockDim.x + threadIdx.x;  // one word: 4 values of 2 rows
  if (wi >= (long long)n * k / 8) return;
  const long long tile = wi / 128;
  const int lane = (int)(wi % 128) / 4, b = (int)(wi % 4), g = lane >> 2, t = lane & 3, KT = k / 64;
  const long long rt = tile / KT, q = tile % KT;
  const u32 w = reinterpret_cast<const u32*>(W)[wi];
  const float sg = nvE4m3(S[tile * 64 + g * 8 + b]), sh = nvE4m3(S[tile * 64 + g * 8 + 4 + b]);
  const long long col = q * 64 + 16 * b + 4 * t;
  bf16_t* og = out + (rt * 16 + g) * k + col;
  bf16_t* oh = out + (rt * 16 + g + 8) * k + col;
#pragma unroll
  for (int e = 0; e < 4; e++) {
    og[e] = fromF<bf16_t>(nvE2m1((w >> (4 * e)) & 15u) * sg);
    oh[e] = fromF<bf16_t>(nvE2m1((w >> (16 + 4 * e)) & 15u) * sh);
  }
}
#endif
