// FP8 (OCP e4m3) linears of bfloat16 engines (issue 14; quantized by lib/quantization/fp8.ts):
//   W [n, k] u8 e4m3 bytes, wScale [n] f32 (per-tensor FP8 repeats its scale on every row):
//   w[j, i] = e4m3(W[j, i]) · wScale[j]
// Activations are quantized as the CPU reference does (lib/backends/cpu/quant_linear.ts fp8Linear):
//   a = actScale (static per-tensor scale, > 0), or per token amax(|x|) / 448 (1 for an all-zero row)
//   when actScale == 0; xq = e4m3(x / a), round to nearest even, saturating to ±448 (cvt.rn.satfinite);
//   y = (Σ xq·wq) · a · wScale[j] + bias[j], the e4m3 products summed in fp32.
// x / a is the reciprocal product with one FMA correction: the correctly rounded quotient except in rare
// cases one f32 ulp away, which moves the e4m3 byte only on an exact rounding tie. Needs sm_89+.
//
// Decode GEMV on the tensor cores (mma.sync m16n8k32 e4m3 · e4m3 → f32; the weights are never converted):
// extern "C" __global__ void fp8_gemv_bf16(const bf16_t* x, const u8* W, const float* wScale, const bf16_t* bias,
//     bf16_t* y, int m, int n, int k, float actScale)
//   y [m, n] bf16 = x [m, k] bf16 · wᵀ (bias 0 = none), m <= 8. A block owns 16 output rows; its 8 warps
//   split k in 64-column chunks (warp w takes chunks w, w + 8, ...) and add up in shared memory. A lane
//   (group g = lane / 4, t = lane % 4) streams 16 bytes of rows g and g + 8 per chunk with 16-byte loads and
//   quantizes 16 activations of token g; the dot product is order-free, so the mma's k order is simply the
//   order of those bytes in both operands. Each pair of mmas starts from zero and is added in fp32 (the FP8
//   tensor-core accumulator is narrower than fp32). Needs k % 64 == 0, 16-byte aligned x and W.
//   grid (ceil(n / 16), 1, 1)   block (256, 1, 1)   shared 4.2 KiB static
//
// Fused decode forms (lib/backends/cuda/decode_fusion.ts), with gemv_fused's (gemv.cu) modes and roundings:
// extern "C" __global__ void fp8_gemv_fused_bf16(const bf16_t* x, const u8* W, const float* wScale, const bf16_t* bias,
//     void* y, const bf16_t* normW, float eps, int m, int n, int k, float actScale, int mode)
// extern "C" __global__ void fp8_gemv_fused_norm_bf16(...same parameters...)
//   v = the value fp8_gemv_bf16 computes (same sums in the same order, then · a · wScale[j] + bias[j]).
//   mode 0 y bf16 [m, n] = v; 1 y bf16 [m, n] = bf16(bf16(v) + y) (the residual add, in place); 2 rows [0, n/2)
//   gate, [n/2, n) up: y bf16 [m, n/2] = bf16(silu(bf16(v_gate)) · bf16(v_up)) (block b: gate rows 8b..8b+7 and
//   their up rows); 3 y f32 [m, n] = v (the logits). _norm: x is first replaced by rmsnorm(x) · normW rounded to
//   bf16 as rmsnorm_bf16 does (same sums, same order), staged in shared memory (m · k <= 8192); the
//   per-token activation scale is then the normed row's amax / 448. Needs n % 16 == 0 besides the above.
//   grid mode 2: (n / 16) as well (8 gate + 8 up rows per block)   block (256, 1, 1)   shared 4.2 KiB (+16 KiB _norm)
//
// Prefill (cuBLASLt FP8 GEMM, lib/backends/cuda/fp8_launch.ts): quantize the rows, then the GEMM, then (unless
// cuBLASLt applied per-tensor scales itself) the row/column scales in place:
// extern "C" __global__ void fp8_quantize_bf16(const bf16_t* x, u8* xq, float* rowScale, int rows, int k, float actScale)
//   xq [rows, k] e4m3 and rowScale [rows] f32 (= a of each row).   grid (rows, 1, 1)   block (256, 1, 1); k % 8 == 0
// extern "C" __global__ void fp8_scale_bf16(bf16_t* y, const float* rowScale, const float* colScale, const bf16_t* bias, int rows, int n)
// extern "C" __global__ void fp8_scale_f32(float* y, ...same...)
//   y[r, j] = y[r, j] · rowScale[r] · colScale[j] + bias[j] (bias 0 = none), in place.
//   grid (ceil(n / (256 · V)), rows, 1), V = 8 (bf16) / 4 (f32) columns per thread   block (256, 1, 1); n % V == 0
#include "common.cuh"

typedef unsigned char u8;

/** Four floats → four e4m3 bytes (a in the low byte), round to nearest even, saturating to ±448. */
__device__ __forceinline__ u32 e4m3x4(float a, float b, float c, float d) {
  unsigned short lo, hi;
  // cvt.e4m3x2.f32 d, hi, lo: the first source goes to the upper byte.
  asm("cvt.rn.satfinite.e4m3x2.f32 %0, %1, %2;" : "=h"(lo) : "f"(b), "f"(a));
  asm("cvt.rn.satfinite.e4m3x2.f32 %0, %1, %2;" : "=h"(hi) : "f"(d), "f"(c));
  return (u32)lo | ((u32)hi << 16);
}

/** x / s from inv = 1 / s: the product, corrected by one FMA of the exact remainder. */
__device__ __forceinline__ float divBy(float x, float s, float inv) {
  const float q = x * inv;
  return fmaf(fmaf(-q, s, x), inv, q);
}

/** 8 bf16 activations → 8 e4m3 bytes (two words) of x / s. */
__device__ __forceinline__ uint2 quant8(const bf16_t* p, float s, float inv) {
  float f[8];
  load16(p, f);
  uint2 r;
  r.x = e4m3x4(divBy(f[0], s, inv), divBy(f[1], s, inv), divBy(f[2], s, inv), divBy(f[3], s, inv));
  r.y = e4m3x4(divBy(f[4], s, inv), divBy(f[5], s, inv), divBy(f[6], s, inv), divBy(f[7], s, inv));
  return r;
}

#ifndef FG_CONTIG
#define FG_CONTIG 0  // 1: a lane's FG_U loads of a round are consecutive 64-byte chunks (256 contiguous bytes per row per warp) instead of chunks FG_WARPS apart (tuning knob; other sums)
#endif
#ifndef FG_LDNC
#define FG_LDNC 1  // 1: weight loads through the non-coherent path without L1 allocation; 0: plain 16-byte loads (tuning knob)
#endif
/** A streamed 16-byte weight load (read once: no L1 allocation). */
__device__ __forceinline__ uint4 ldStream(const u8* p) {
#if FG_LDNC
  uint4 v;
  asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];" : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w) : "l"(p));
  return v;
#else
  return *reinterpret_cast<const uint4*>(p);
#endif
}

/** d = A[16×32] · B[32×8] + c (e4m3 inputs, f32 accumulate), PTX fragment layout. */
__device__ __forceinline__ void mmaE4m3(float (&d)[4], u32 a0, u32 a1, u32 a2, u32 a3, u32 b0, u32 b1, const float (&c)[4]) {
  asm volatile(
      "mma.sync.aligned.m16n8k32.row.col.f32.e4m3.e4m3.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%10, %11, %12, %13};"
      : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
      : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1), "f"(c[0]), "f"(c[1]), "f"(c[2]), "f"(c[3]));
}

/** The per-token scale a of a row: amax / 448 (1 when zero), as fp8TokenScale on the CPU. */
__device__ __forceinline__ float tokenScale(float amax) { return amax > 0.f ? amax / 448.f : 1.f; }

#ifndef FG_U
#define FG_U 4  // 16-byte loads of each of a lane's two weight rows issued before use (a tuning knob: bench/fp8_gemv_tune.ts)
#endif
#ifndef FG_L2PF
#define FG_L2PF 0  // 1: the _pdl entry points also bulk-prefetch the block's weight rows into L2 up front (tuning knob)
#endif
#ifndef FG_MINB
#define FG_MINB 3  // __launch_bounds__ min blocks per SM of the _pdl entry points (3: <= 85 registers, as the plain ones; tuning knob)
#endif
constexpr int FG_ROWS = 16, FG_WARPS = 8;

/**
 * One 64-column chunk of a lane: weight bytes wa (row g) and wb (row g + 8), 16 quantized activations of
 * token g in q. Lane (g, t)'s A fragment of the first mma is {wa.x, wb.x, wa.y, wb.y} (rows g / g + 8, its
 * k slots 4t..4t+3 and 4t+16..4t+19) and its B fragment {q.x, q.y} (the same k slots of column g).
 */
__device__ __forceinline__ void chunkMma(const uint4& wa, const uint4& wb, const uint4& q, float (&acc)[4]) {
  const float z[4] = {0.f, 0.f, 0.f, 0.f};
  float d[4];
  mmaE4m3(d, wa.x, wb.x, wa.y, wb.y, q.x, q.y, z);
  mmaE4m3(d, wa.z, wb.z, wa.w, wb.w, q.z, q.w, d);
#pragma unroll
  for (int i = 0; i < 4; i++) acc[i] += d[i];
}

#define FG_XS 8192  // bf16 elements of staged x (16 KB) for the RMSNorm prologue of fp8_gemv_fused_norm_bf16

__device__ __forceinline__ float fgSilu(float g) { return g / (1.f + expf(-g)); }

/**
 * The decode GEMV and its fused forms (mode, NORM: see the header). Every mode computes each (row, token)
 * sum exactly as mode 0 does (same chunks per warp and lane, same mma and warp order), so a fused launch
 * gives the bits of fp8_gemv_bf16 followed by the separate norm / add / silu_mul launches.
 */
template <bool NORM, bool PRE>
__device__ __forceinline__ void fp8GemvImpl(const bf16_t* x, const u8* W, const float* wScale, const bf16_t* bias, void* y,
                                            const bf16_t* normW, float eps, int m, int n, int k, float actScale, int mode) {
  __shared__ float sScale[8], sInv[8];
  __shared__ float red[FG_WARPS][FG_ROWS * 8];
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g = lane >> 2, t = lane & 3;
  const int half = n >> 1;
  // Tile row g / g + 8 → weight rows (mode 2: gate rows 8b.. and the matching up rows).
  const int j0 = blockIdx.x * FG_ROWS;
  const int rowA = mode == 2 ? blockIdx.x * 8 + g : min(j0 + g, n - 1);
  const int rowB = mode == 2 ? half + blockIdx.x * 8 + g : min(j0 + g + 8, n - 1);
  const u8* wa = W + (long long)rowA * k + 16 * t;
  const u8* wb = W + (long long)rowB * k + 16 * t;
  const int chunks = k >> 6;
  // PRE (the _pdl entry points): the first round of weight loads is issued before anything that reads the
  // previous kernels' output, so the weight stream overlaps the prologue and, under PDL, the previous kernel's tail.
  uint4 va[FG_U], vb[FG_U];
#if FG_CONTIG
  // Round r of warp w: chunks FG_U·(w + FG_WARPS·r) + u; the chunks past the last whole round one by one after.
  const int rounds = chunks / (FG_WARPS * FG_U);
  if (PRE && rounds > 0) {
#pragma unroll
    for (int u = 0; u < FG_U; u++) {
      va[u] = ldStream(wa + (long long)(FG_U * warp + u) * 64);
      vb[u] = ldStream(wb + (long long)(FG_U * warp + u) * 64);
    }
  }
#else
  int c = warp;
  if (PRE && c + FG_WARPS * (FG_U - 1) < chunks) {
#pragma unroll
    for (int u = 0; u < FG_U; u++) {
      va[u] = ldStream(wa + (long long)(c + FG_WARPS * u) * 64);
      vb[u] = ldStream(wb + (long long)(c + FG_WARPS * u) * 64);
    }
  }
#endif
#if FG_L2PF
  if (PRE && tid < FG_ROWS) {  // thread r: the block's weight row r (16-byte multiples: k % 64 == 0)
    const int r = tid;
    const int row = mode == 2 ? (r < 8 ? blockIdx.x * 8 + r : half + blockIdx.x * 8 + r - 8) : min(j0 + r, n - 1);
    asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;" ::"l"(W + (long long)row * k), "r"((u32)k) : "memory");
  }
#endif
  if (PRE) {
    pdlWait();  // x and y are the previous kernels' (weights only above)
    pdlLaunchDependents();
  }
  const bf16_t* xs = x;
  if constexpr (NORM) {  // x <- rmsnorm(x) * normW (as rmsnorm_bf16 rounds it), staged in shared memory
    __shared__ __align__(16) bf16_t xsh[FG_XS];
    __shared__ float sh[32];
    rmsnormStage(x, normW, eps, m, k, xsh, sh);
    xs = xsh;
  }
  if (actScale > 0.f) {
    if (tid < 8) {
      sScale[tid] = actScale;
      sInv[tid] = 1.f / actScale;
    }
  } else if (warp < m) {  // dynamic: warp w finds token w's scale (of the normed row with NORM)
    const bf16_t* xr = xs + (long long)warp * k;
    float amax = 0.f;
    for (int i = lane * 8; i < k; i += 256) {
      float f[8];
      load16(xr + i, f);
#pragma unroll
      for (int e = 0; e < 8; e++) amax = fmaxf(amax, fabsf(f[e]));
    }
    amax = warpMax(amax);
    if (lane == 0) {
      const float s = tokenScale(amax);
      sScale[warp] = s;
      sInv[warp] = 1.f / s;
    }
  }
  __syncthreads();
  const bool hasX = g < m;
  const bf16_t* xr = xs + (long long)(hasX ? g : 0) * k + 16 * t;
  const float s = sScale[hasX ? g : 0], inv = sInv[hasX ? g : 0];
  float acc[4] = {0.f, 0.f, 0.f, 0.f};
  auto quant = [&](int c) -> uint4 {
    uint4 q = make_uint4(0u, 0u, 0u, 0u);
    if (hasX) {
      const uint2 lo = quant8(xr + c * 64, s, inv), hi = quant8(xr + c * 64 + 8, s, inv);
      q = make_uint4(lo.x, lo.y, hi.x, hi.y);
    }
    return q;
  };
#if FG_CONTIG
  for (int r = 0; r < rounds; r++) {
    const int c0 = FG_U * (warp + FG_WARPS * r);
    if (!PRE || r > 0) {  // PRE: the first round is in flight already
#pragma unroll
      for (int u = 0; u < FG_U; u++) {
        va[u] = ldStream(wa + (long long)(c0 + u) * 64);
        vb[u] = ldStream(wb + (long long)(c0 + u) * 64);
      }
    }
#pragma unroll
    for (int u = 0; u < FG_U; u++) chunkMma(va[u], vb[u], quant(c0 + u), acc);
  }
  for (int c = rounds * FG_WARPS * FG_U + warp; c < chunks; c += FG_WARPS)
    chunkMma(ldStream(wa + (long long)c * 64), ldStream(wb + (long long)c * 64), quant(c), acc);
#else
  for (; c + FG_WARPS * (FG_U - 1) < chunks; c += FG_WARPS * FG_U) {
    if (!PRE || c != warp) {  // PRE: the first round is in flight already
#pragma unroll
      for (int u = 0; u < FG_U; u++) {
        va[u] = ldStream(wa + (long long)(c + FG_WARPS * u) * 64);
        vb[u] = ldStream(wb + (long long)(c + FG_WARPS * u) * 64);
      }
    }
#pragma unroll
    for (int u = 0; u < FG_U; u++) chunkMma(va[u], vb[u], quant(c + FG_WARPS * u), acc);
  }
  for (; c < chunks; c += FG_WARPS) chunkMma(ldStream(wa + (long long)c * 64), ldStream(wb + (long long)c * 64), quant(c), acc);
#endif
  // acc: (row g, token 2t), (row g, token 2t + 1), (row g + 8, token 2t), (row g + 8, token 2t + 1).
  red[warp][g * 8 + 2 * t] = acc[0];
  red[warp][g * 8 + 2 * t + 1] = acc[1];
  red[warp][(g + 8) * 8 + 2 * t] = acc[2];
  red[warp][(g + 8) * 8 + 2 * t + 1] = acc[3];
  __syncthreads();
  if (mode == 2) {  // thread (r, tok): gate row 8b + r and its up row
    if (tid >= 64) return;
    const int r = tid >> 3, tok = tid & 7, gate = blockIdx.x * 8 + r;
    if (tok >= m) return;
    float gs = 0.f, us = 0.f;
#pragma unroll
    for (int w = 0; w < FG_WARPS; w++) {
      gs += red[w][r * 8 + tok];
      us += red[w][(r + 8) * 8 + tok];
    }
    float vg = gs * sScale[tok] * wScale[gate], vu = us * sScale[tok] * wScale[half + gate];
    if (bias) {
      vg += toF(bias[gate]);
      vu += toF(bias[half + gate]);
    }
    ((bf16_t*)y)[(long long)tok * half + gate] = fromF<bf16_t>(fgSilu(toF(fromF<bf16_t>(vg))) * toF(fromF<bf16_t>(vu)));
    return;
  }
  if (tid < FG_ROWS * 8) {
    const int row = tid >> 3, tok = tid & 7, j = j0 + row;
    if (tok < m && j < n) {
      float sum = 0.f;
#pragma unroll
      for (int w = 0; w < FG_WARPS; w++) sum += red[w][tid];
      float v = sum * sScale[tok] * wScale[j];
      if (bias) v += toF(bias[j]);
      const long long o = (long long)tok * n + j;
      if (mode == 0) ((bf16_t*)y)[o] = fromF<bf16_t>(v);
      else if (mode == 1) ((bf16_t*)y)[o] = fromF<bf16_t>(toF(fromF<bf16_t>(v)) + toF(((bf16_t*)y)[o]));
      else ((float*)y)[o] = v;
    }
  }
}

extern "C" __global__ void __launch_bounds__(256) fp8_gemv_bf16(const bf16_t* x, const u8* W, const float* wScale, const bf16_t* bias,
                                                                bf16_t* y, int m, int n, int k, float actScale) {
  fp8GemvImpl<false, false>(x, W, wScale, bias, y, nullptr, 0.f, m, n, k, actScale, 0);
}
extern "C" __global__ void __launch_bounds__(256) fp8_gemv_fused_bf16(const bf16_t* x, const u8* W, const float* wScale, const bf16_t* bias,
    void* y, const bf16_t* normW, float eps, int m, int n, int k, float actScale, int mode) {
  fp8GemvImpl<false, false>(x, W, wScale, bias, y, normW, eps, m, n, k, actScale, mode);
}
extern "C" __global__ void __launch_bounds__(256) fp8_gemv_fused_norm_bf16(const bf16_t* x, const u8* W, const float* wScale, const bf16_t* bias,
    void* y, const bf16_t* normW, float eps, int m, int n, int k, float actScale, int mode) {
  fp8GemvImpl<true, false>(x, W, wScale, bias, y, normW, eps, m, n, k, actScale, mode);
}
// The same GEMVs with the first weight loads ahead of pdlWait (SessionOptions.fp8Pdl: launched with PDL in fused steps).
extern "C" __global__ void __launch_bounds__(256, FG_MINB) fp8_gemv_fused_pdl_bf16(const bf16_t* x, const u8* W, const float* wScale,
    const bf16_t* bias, void* y, const bf16_t* normW, float eps, int m, int n, int k, float actScale, int mode) {
  fp8GemvImpl<false, true>(x, W, wScale, bias, y, normW, eps, m, n, k, actScale, mode);
}
extern "C" __global__ void __launch_bounds__(256, FG_MINB) fp8_gemv_fused_norm_pdl_bf16(const bf16_t* x, const u8* W, const float* wScale,
    const bf16_t* bias, void* y, const bf16_t* normW, float eps, int m, int n, int k, float actScale, int mode) {
  fp8GemvImpl<true, true>(x, W, wScale, bias, y, normW, eps, m, n, k, actScale, mode);
}

extern "C" __global__ void __launch_bounds__(256) fp8_quantize_bf16(const bf16_t* x, u8* xq, float* rowScale, int rows, int k, float actScale) {
  __shared__ float sh[32];
  const int r = blockIdx.x;
  if (r >= rows) return;
  const bf16_t* xr = x + (long long)r * k;
  float s = actScale;
  if (!(actScale > 0.f)) {
    float amax = 0.f;
    for (int i = threadIdx.x * 8; i < k; i += blockDim.x * 8) {
      float f[8];
      load16(xr + i, f);
#pragma unroll
      for (int e = 0; e < 8; e++) amax = fmaxf(amax, fabsf(f[e]));
    }
    amax = warpMax(amax);
    if ((threadIdx.x & 31) == 0) sh[threadIdx.x >> 5] = amax;
    __syncthreads();
    amax = 0.f;
    for (int w = 0; w < (int)(blockDim.x >> 5); w++) amax = fmaxf(amax, sh[w]);
    s = tokenScale(amax);
  }
  if (threadIdx.x == 0) rowScale[r] = s;
  const float inv = 1.f / s;
  u8* qr = xq + (long long)r * k;
  for (int i = threadIdx.x * 8; i < k; i += blockDim.x * 8) *reinterpret_cast<uint2*>(qr + i) = quant8(xr + i, s, inv);
}

template <typename T>
__device__ __forceinline__ void scaleImpl(T* y, const float* rowScale, const float* colScale, const bf16_t* bias, int rows, int n) {
  constexpr int V = Vec16<T>::N;
  const int r = blockIdx.y, j = (blockIdx.x * blockDim.x + threadIdx.x) * V;
  if (r >= rows || j >= n) return;
  T* p = y + (long long)r * n + j;
  float f[V];
  load16(p, f);
  const float a = rowScale[r];
#pragma unroll
  for (int e = 0; e < V; e++) {
    f[e] = f[e] * a * colScale[j + e];
    if (bias) f[e] += toF(bias[j + e]);
  }
  store16(p, f);
}

extern "C" __global__ void __launch_bounds__(256) fp8_scale_bf16(bf16_t* y, const float* rowScale, const float* colScale, const bf16_t* bias, int rows, int n) {
  scaleImpl<bf16_t>(y, rowScale, colScale, bias, rows, n);
}
extern "C" __global__ void __launch_bounds__(256) fp8_scale_f32(float* y, const float* rowScale, const float* colScale, const bf16_t* bias, int rows, int n) {
  scaleImpl<float>(y, rowScale, colScale, bias, rows, n);
}

// ------------------------------------------------------------------------------------------------
// The activation quantization of a prefill-sized FP8 linear folded into the op that produces its input
// (lib/backends/cuda/fp8_launch.ts fp8QuantProducer; CudaSessionOptions.fp8FusedQuant): the norm or SiLU·mul
// writes the e4m3 rows and row scales fp8_quantize_bf16 would write from its bf16 output, bit for bit (the
// bf16-rounded value v, then e4m3(divBy(v, a, 1 / a)); a = actScale, or per row tokenScale(amax |v|)).
//
// extern "C" __global__ void fp8_rmsnorm_quant_bf16(const bf16_t* x, bf16_t* residual, const bf16_t* weight, bf16_t* out,
//     u8* xq, float* rowScale, int rows, int hidden, float eps, float actScale, int add)
//   add 0: rmsnorm_bf16 of x; add 1: add_rmsnorm_bf16 (residual += x, stored rounded; the norm of the residual).
//   out (0 = not written): the bf16 normed rows; xq [rows, hidden] e4m3, rowScale [rows] f32.
//   grid (rows, 1, 1)   block (256, 1, 1)   hidden % 8 == 0, 16-byte aligned rows (the launcher's FP8 linears)
// extern "C" __global__ void fp8_silu_mul_quant_bf16(const bf16_t* gateUp, u8* xq, float* rowScale, int numTokens,
//     int inter, float actScale)
//   v = bf16(silu(gate) · up) as silu_mul_bf16 rounds it; xq [numTokens, inter] e4m3, rowScale [numTokens].
//   grid (numTokens, 1, 1)   block (256, 1, 1)   inter % 8 == 0, 16-byte aligned
// ------------------------------------------------------------------------------------------------

/** The block's max of per-thread values (order-free); every thread gets it. `sh`: 32 floats. */
__device__ __forceinline__ float blockMax(float v, float* sh) {
  v = warpMax(v);
  const int w = threadIdx.x >> 5, l = threadIdx.x & 31, nw = blockDim.x >> 5;
  __syncthreads();
  if (l == 0) sh[w] = v;
  __syncthreads();
  v = l < nw ? sh[l] : 0.f;
  return warpMax(v);
}

/** 8 bf16-rounded values → 8 e4m3 bytes of v / s. */
__device__ __forceinline__ uint2 quantF8(const float (&v)[8], float s, float inv) {
  uint2 r;
  r.x = e4m3x4(divBy(v[0], s, inv), divBy(v[1], s, inv), divBy(v[2], s, inv), divBy(v[3], s, inv));
  r.y = e4m3x4(divBy(v[4], s, inv), divBy(v[5], s, inv), divBy(v[6], s, inv), divBy(v[7], s, inv));
  return r;
}

/** Rounds 8 floats to bf16 and back (the value a bf16 store keeps). */
__device__ __forceinline__ void roundBf16x8(float (&v)[8]) {
#pragma unroll
  for (int e = 0; e < 8; e++) v[e] = toF(fromF<bf16_t>(v[e]));
}

extern "C" __global__ void __launch_bounds__(256) fp8_rmsnorm_quant_bf16(const bf16_t* x, bf16_t* residual, const bf16_t* weight, bf16_t* out,
    u8* xq, float* rowScale, int rows, int hidden, float eps, float actScale, int add) {
  __shared__ float sh[32];
  const long long row = blockIdx.x;
  if (row >= rows) return;
  const bf16_t* xr = x + row * hidden;
  bf16_t* rr = add ? residual + row * hidden : nullptr;
  // Pass 1 as rmsnormImpl's vector path: (residual add and store,) sum of squares in the same order.
  float ss = 0.f;
  for (int i = threadIdx.x * 8; i < hidden; i += blockDim.x * 8) {
    float a[8];
    load16(xr + i, a);
    if (add) {
      float b[8];
      load16(rr + i, b);
#pragma unroll
      for (int e = 0; e < 8; e++) a[e] = toF(fromF<bf16_t>(a[e] + b[e]));
      store16(rr + i, a);
    }
#pragma unroll
    for (int e = 0; e < 8; e++) ss += a[e] * a[e];
  }
  ss = blockSum(ss, sh);
  const float inv = rsqrtf(ss / (float)hidden + eps);
  const bf16_t* src = add ? rr : xr;
  bf16_t* orow = out ? out + row * hidden : nullptr;
  auto normed = [&](int i, float (&a)[8]) {
    float w[8];
    load16(src + i, a);
    load16(weight + i, w);
#pragma unroll
    for (int e = 0; e < 8; e++) a[e] = a[e] * inv * w[e];
    roundBf16x8(a);
  };
  float s = actScale;
  if (!(actScale > 0.f)) {  // per token: the amax of the rounded normed row first
    float amax = 0.f;
    for (int i = threadIdx.x * 8; i < hidden; i += blockDim.x * 8) {
      float a[8];
      normed(i, a);
#pragma unroll
      for (int e = 0; e < 8; e++) amax = fmaxf(amax, fabsf(a[e]));
    }
    s = tokenScale(blockMax(amax, sh));
  }
  if (threadIdx.x == 0) rowScale[row] = s;
  const float sinv = 1.f / s;
  u8* qr = xq + row * hidden;
  for (int i = threadIdx.x * 8; i < hidden; i += blockDim.x * 8) {
    float a[8];
    normed(i, a);
    if (orow) store16(orow + i, a);
    *reinterpret_cast<uint2*>(qr + i) = quantF8(a, s, sinv);
  }
}

extern "C" __global__ void __launch_bounds__(256) fp8_silu_mul_quant_bf16(const bf16_t* gateUp, u8* xq, float* rowScale, int numTokens, int inter,
    float actScale) {
  __shared__ float sh[32];
  const long long t = blockIdx.x;
  if (t >= numTokens) return;
  const bf16_t* g = gateUp + t * 2 * inter;
  const bf16_t* u = g + inter;
  auto value = [&](int i, float (&a)[8]) {
    float b[8];
    load16(g + i, a);
    load16(u + i, b);
#pragma unroll
    for (int e = 0; e < 8; e++) a[e] = fgSilu(a[e]) * b[e];
    roundBf16x8(a);
  };
  float s = actScale;
  if (!(actScale > 0.f)) {
    float amax = 0.f;
    for (int i = threadIdx.x * 8; i < inter; i += blockDim.x * 8) {
      float a[8];
      value(i, a);
#pragma unroll
      for (int e = 0; e < 8; e++) amax = fmaxf(amax, fabsf(a[e]));
    }
    s = tokenScale(blockMax(amax, sh));
  }
  if (threadIdx.x == 0) rowScale[t] = s;
  const float sinv = 1.f / s;
  u8* qr = xq + t * inter;
  for (int i = threadIdx.x * 8; i < inter; i += blockDim.x * 8) {
    float a[8];
    value(i, a);
    *reinterpret_cast<uint2*>(qr + i) = quantF8(a, s, sinv);
  }
}

// Session 11 (`fp8FlatQuant`): static activation scales only (actScale > 0, no row amax): the bytes and row scales of
// fp8_silu_mul_quant_bf16 / fp8_quantize_bf16 with one 8-element chunk a thread over a 2-D grid, as silu_mul_bf16 (no
// row loop: every load of a block in flight at once).
// extern "C" __global__ void fp8_silu_mul_quant_flat_bf16(const bf16_t* gateUp, u8* xq, float* rowScale, int numTokens,
//     int inter, float actScale)   grid (ceil(inter / 2048), numTokens, 1)   block (256, 1, 1)   inter % 8 == 0
// extern "C" __global__ void fp8_quantize_flat_bf16(const bf16_t* x, u8* xq, float* rowScale, int rows, int k,
//     float actScale)              grid (ceil(k / 2048), rows, 1)            block (256, 1, 1)   k % 8 == 0
// ------------------------------------------------------------------------------------------------
// FAST (fp8_silu_mul_quant_fast_bf16, `fp8FastSilu`): silu(g) = g / (1 + e^-g) with the hardware exponential and division
// (__expf, __fdividef: a few ulp of f32) — within bf16 rounding of silu_mul_bf16's value, not its bits. The accurate expf and
// IEEE division cost ~40 instructions an element: the flat kernel is ALU-bound at the 8B's 2048 × 14336.
template <bool FAST>
__device__ __forceinline__ void siluMulQuantFlat(const bf16_t* __restrict__ gateUp, u8* __restrict__ xq, float* __restrict__ rowScale,
    int numTokens, int inter, float actScale) {
  const long long t = blockIdx.y;
  if (t >= numTokens) return;
  if (blockIdx.x == 0 && threadIdx.x == 0) rowScale[t] = actScale;
  const int i = (blockIdx.x * blockDim.x + threadIdx.x) * 8;
  if (i >= inter) return;
  const bf16_t* g = gateUp + t * 2 * inter;
  float a[8], b[8];
  load16(g + i, a);
  load16(g + inter + i, b);
#pragma unroll
  for (int e = 0; e < 8; e++) a[e] = (FAST ? __fdividef(a[e], 1.f + __expf(-a[e])) : fgSilu(a[e])) * b[e];
  roundBf16x8(a);
  *reinterpret_cast<uint2*>(xq + t * inter + i) = quantF8(a, actScale, 1.f / actScale);
}

extern "C" __global__ void __launch_bounds__(256) fp8_silu_mul_quant_flat_bf16(const bf16_t* __restrict__ gateUp, u8* __restrict__ xq,
    float* __restrict__ rowScale, int numTokens, int inter, float actScale) {
  siluMulQuantFlat<false>(gateUp, xq, rowScale, numTokens, inter, actScale);
}
extern "C" __global__ void __launch_bounds__(256) fp8_silu_mul_quant_fast_bf16(const bf16_t* __restrict__ gateUp, u8* __restrict__ xq,
    float* __restrict__ rowScale, int numTokens, int inter, float actScale) {
  siluMulQuantFlat<true>(gateUp, xq, rowScale, numTokens, inter, actScale);
}

extern "C" __global__ void __launch_bounds__(256) fp8_quantize_flat_bf16(const bf16_t* __restrict__ x, u8* __restrict__ xq,
    float* __restrict__ rowScale, int rows, int k, float actScale) {
  const long long r = blockIdx.y;
  if (r >= rows) return;
  if (blockIdx.x == 0 && threadIdx.x == 0) rowScale[r] = actScale;
  const int i = (blockIdx.x * blockDim.x + threadIdx.x) * 8;
  if (i >= k) return;
  *reinterpret_cast<uint2*>(xq + r * k + i) = quant8(x + r * k + i, actScale, 1.f / actScale);
}

// ------------------------------------------------------------------------------------------------
// One-token decode GEMV (SessionOptions.fp8Gemv1; m = 1 only), session 8:
// extern "C" __global__ void fp8_gemv1_fused_bf16(const bf16_t* x, const u8* W, const float* wScale, const bf16_t* bias,
//     void* y, const bf16_t* normW, float eps, int m, int n, int k, float actScale, int mode)
// extern "C" __global__ void fp8_gemv1_fused_norm_bf16(...same parameters...)
//   fp8_gemv_fused{,_norm}_bf16's parameters, modes and roundings with m == 1, k % 512 == 0 and k <= FG1_XQ (_norm:
//   k <= FG_XS); the same e4m3 products summed in fp32 in another order. Any grid (the launcher: a persistent one,
//   FG1_MINB blocks per SM, or fewer when there are few rows): the n rows (mode 2: n / 2 units of a gate row and its up
//   row) are split evenly over all the grid's warps, so each warp owns a contiguous run of rows and streams their bytes
//   front to back in 512-byte segments (lane l: bytes [16l, 16l + 16) of a segment) through a ring of FG1_D 16-byte
//   loads per lane — the first FG1_D issued before pdlWait, each group of G <= 4 slots (G | k / 512) refilled as soon as
//   it is consumed, with no branch inside a group. The block quantizes x (after the RMSNorm with _norm: rmsnorm_bf16's
//   sums and roundings, x and normW from registers, every load of x in flight at once) once into shared memory as e4m3
//   bytes (the same bytes fp8_gemv_bf16 makes);
//   a segment is one mma pair m16n8k32 with A row g = the activation bytes of lanes (g, 0..3) and B column g = those
//   lanes' weight bytes: D[g][g] is the row's dot product over the segment's columns [64g, 64g + 64) (the rest of D is
//   unused). Each pair starts from zero and is added in fp32; at a row's end a warp sum over g gives the row.
//   grid (any, 1, 1)   block (256, 1, 1)   shared 16.3 KiB
// ------------------------------------------------------------------------------------------------
#ifndef FG1_D
#define FG1_D 8  // 16-byte weight loads in flight per lane (register ring; H200 r2: 8 beat 12 and 16 by 1-12% per 8B linear)
#endif
#ifndef FG1_MINB
#define FG1_MINB 2  // __launch_bounds__ min blocks per SM (the launcher's grid: FP8_GEMV1_BLOCKS_PER_SM per SM; tuning knob)
#endif
static_assert(FG1_D % 4 == 0, "FG1_D: a multiple of 4 (the main loop's groups of up to 4 segments)");
#ifndef FG1_GMAX
#define FG1_GMAX 4  // most segments a branch-free group of the main loop (4, 2 or 1; tuning knob)
#endif
#define FG1_XQ 16384  // most in-features: the block's quantized x in shared memory

/** The D[g][g] pair sum of one 512-byte segment: q = 16 activation bytes, v = 16 weight bytes of the lane. */
__device__ __forceinline__ void segMma(const uint4& q, const uint4& v, float& a0, float& a1) {
  const float z[4] = {0.f, 0.f, 0.f, 0.f};
  float d[4];
  mmaE4m3(d, q.x, 0u, q.y, 0u, v.x, v.y, z);
  mmaE4m3(d, q.z, 0u, q.w, 0u, v.z, v.w, d);
  a0 += d[0];
  a1 += d[1];
}

#define FG1_XB 4  // 16-byte x chunks per thread per batch of the prologue (256 threads: 8192 elements a batch)

/** 8 bf16 (a 16-byte vector) -> floats. */
__device__ __forceinline__ void unpack8(const uint4& v, float (&f)[8]) {
  const u32 w[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
  for (int i = 0; i < 4; i++) {
    f[2 * i] = __uint_as_float(w[i] << 16);
    f[2 * i + 1] = __uint_as_float(w[i] & 0xffff0000u);
  }
}
/** 8 floats -> 8 bf16 (round to nearest even) in a 16-byte vector. */
__device__ __forceinline__ uint4 pack8(const float (&f)[8]) {
  u32 w[4];
#pragma unroll
  for (int i = 0; i < 4; i++) w[i] = (u32)fromF<bf16_t>(f[2 * i]) | ((u32)fromF<bf16_t>(f[2 * i + 1]) << 16);
  return make_uint4(w[0], w[1], w[2], w[3]);
}
/** Chunks base + tid + i·blockDim (i < FG1_XB) of a bf16 row, 8 elements each; zero past kv chunks. All in flight at once. */
__device__ __forceinline__ void fg1Load(const bf16_t* p, int kv, int base, uint4 (&r)[FG1_XB]) {
#pragma unroll
  for (int i = 0; i < FG1_XB; i++) {
    const int c = base + (int)threadIdx.x + i * (int)blockDim.x;
    r[i] = c < kv ? *reinterpret_cast<const uint4*>(p + (long long)c * 8) : make_uint4(0u, 0u, 0u, 0u);
  }
}

/**
 * fp8_gemv1's prologue: x (with NORM: rmsnorm(x) · normW rounded to bf16, the sums of rmsnormStage in its order; the
 * caller loaded normW's chunks into nw before pdlWait) quantized into xq as fp8_gemv_bf16's quant8 quantizes it. Every
 * x load of a batch is in flight at once (NORM: k <= FG1_XB · 8 · blockDim, one batch). Returns the activation scale a.
 */
template <bool NORM>
__device__ __forceinline__ float fg1Stage(const bf16_t* x, const uint4 (&nw)[FG1_XB], float eps, int k, float actScale, u8* xq, float* sh) {
  const int kv = k >> 3, tid = threadIdx.x, nt = blockDim.x, batch = FG1_XB * nt;
  uint4 r[FG1_XB];
  fg1Load(x, kv, 0, r);
  if constexpr (NORM) {
    float ss = 0.f;
#pragma unroll
    for (int i = 0; i < FG1_XB; i++) {
      if (tid + i * nt < kv) {
        float a[8];
        unpack8(r[i], a);
#pragma unroll
        for (int e = 0; e < 8; e++) ss += a[e] * a[e];
      }
    }
    ss = blockSum(ss, sh);
    const float inv = rsqrtf(ss / (float)k + eps);
#pragma unroll
    for (int i = 0; i < FG1_XB; i++) {
      float a[8], w8[8];
      unpack8(r[i], a);
      unpack8(nw[i], w8);
#pragma unroll
      for (int e = 0; e < 8; e++) a[e] = a[e] * inv * w8[e];
      r[i] = pack8(a);
    }
  }
  float s = actScale;
  const bool dynamic = !(actScale > 0.f);
  if (dynamic) {  // per token: the amax of the (normed) row
    float amax = 0.f;
    for (int base = 0; base < kv; base += batch) {
      if (base > 0) fg1Load(x, kv, base, r);
#pragma unroll
      for (int i = 0; i < FG1_XB; i++) {
        float a[8];
        unpack8(r[i], a);
#pragma unroll
        for (int e = 0; e < 8; e++) amax = fmaxf(amax, fabsf(a[e]));
      }
    }
    s = tokenScale(blockMax(amax, sh));
  }
  const float inv = 1.f / s;
  for (int base = 0; base < kv; base += batch) {
    if (base > 0 || (dynamic && kv > batch)) fg1Load(x, kv, base, r);  // (NORM: one batch, r keeps the normed row)
#pragma unroll
    for (int i = 0; i < FG1_XB; i++) {
      const int c = base + tid + i * nt;
      if (c < kv) {
        float a[8];
        unpack8(r[i], a);
        *reinterpret_cast<uint2*>(xq + c * 8) = quantF8(a, s, inv);
      }
    }
  }
  __syncthreads();
  return s;
}

/**
 * fp8_gemv1's main loop with G segments a group (S % G == 0, FG1_D % G == 0): a group's loads, mma pairs and refills
 * have no branch between them (one basic block the compiler schedules as a whole); the row end is checked once a group.
 */
template <int G>
__device__ __forceinline__ void fg1Main(uint4 (&v)[FG1_D], const u8* xl, const u8* wl, const float* wScale, const bf16_t* bias, void* y,
                                        int n, int k, int S, int mode, int L0, int L1, int& iL, int& iS, const u8*& ip, float s) {
  const int half = n >> 1, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
  auto rowOf = [&](int L) -> int { return mode == 2 ? ((L & 1) ? half + (L >> 1) : (L >> 1)) : L; };
  int cL = L0, cS = 0;
  float a0 = 0.f, a1 = 0.f, gate = 0.f;
  float ws = wScale[rowOf(L0)], bs = bias ? toF(bias[rowOf(L0)]) : 0.f;
  float yOld = (mode == 1) ? toF(((const bf16_t*)y)[rowOf(L0)]) : 0.f;
  const bool diag = t == (g >> 1);
  const int groups = (L1 - L0) * (S / G);
  for (int base = 0; base < groups; base += FG1_D / G) {
#pragma unroll
    for (int gi = 0; gi < FG1_D / G; gi++) {
      if (base + gi < groups) {
#pragma unroll
        for (int j = 0; j < G; j++) segMma(*reinterpret_cast<const uint4*>(xl + (cS + j) * 512), v[gi * G + j], a0, a1);
        if (iL < L1) {  // refill the group's slots: the group FG1_D / G ahead
#pragma unroll
          for (int j = 0; j < G; j++) v[gi * G + j] = ldStream(ip + j * 512);
          ip += G * 512;
          iS += G;
          if (iS == S) {
            iS = 0;
            if (++iL < L1) ip = wl + (long long)rowOf(iL) * k;
          }
        }
        cS += G;
        if (cS == S) {  // row cL done: D[g][g] sits in lane (g, g / 2) at (g & 1); sum over g
          const float sum = warpSum(diag ? ((g & 1) ? a1 : a0) : 0.f);
          const int row = rowOf(cL);
          float val = sum * s * ws;  // as fp8GemvImpl: no bias add without a bias
          if (bias) val += bs;
          const float yPrev = yOld;
          if (++cL < L1) {  // the next row's scale, bias (and residual) while its segments stream
            const int nr = rowOf(cL);
            ws = wScale[nr];
            bs = bias ? toF(bias[nr]) : 0.f;
            if (mode == 1) yOld = toF(((const bf16_t*)y)[nr]);
          }
          if (mode == 2) {
            if ((cL & 1) == 1) gate = toF(fromF<bf16_t>(val));  // cL was even: a gate row
            else if (lane == 0) ((bf16_t*)y)[row - half] = fromF<bf16_t>(fgSilu(gate) * toF(fromF<bf16_t>(val)));
          } else if (lane == 0) {
            if (mode == 0) ((bf16_t*)y)[row] = fromF<bf16_t>(val);
            else if (mode == 1) ((bf16_t*)y)[row] = fromF<bf16_t>(toF(fromF<bf16_t>(val)) + yPrev);
            else ((float*)y)[row] = val;
          }
          a0 = a1 = 0.f;
          cS = 0;
        }
      }
    }
  }
}

template <bool NORM>
__device__ __forceinline__ void fp8Gemv1Impl(const bf16_t* x, const u8* W, const float* wScale, const bf16_t* bias, void* y,
                                             const bf16_t* normW, float eps, int n, int k, float actScale, int mode) {
  __shared__ __align__(16) u8 xq[FG1_XQ];
  __shared__ float sh[32];
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  const int nw = blockDim.x >> 5, half = n >> 1;
  const int S = k >> 9;  // segments per row
  // G: segments a group (4 when S allows it; the ring's issue side moves a group at a time too).
  const int G = FG1_GMAX >= 4 && S % 4 == 0 ? 4 : FG1_GMAX >= 2 && S % 2 == 0 ? 2 : 1;
  // This warp's logical rows [L0, L1): mode 2 unit u = logical rows 2u (gate row u) and 2u + 1 (up row half + u).
  const int R = mode == 2 ? 2 : 1, units = mode == 2 ? half : n;
  const long long totalWarps = (long long)gridDim.x * nw, gw = (long long)blockIdx.x * nw + warp;
  const int L0 = (int)(units * gw / totalWarps) * R, L1 = (int)(units * (gw + 1) / totalWarps) * R;
  auto rowOf = [&](int L) -> int { return mode == 2 ? ((L & 1) ? half + (L >> 1) : (L >> 1)) : L; };
  const u8* wl = W + lane * 16;
  // Issue side of the ring: the next (logical row, segment) to load and its address (FG1_D % 4 == 0, S % G == 0:
  // the first FG1_D loads end on a group boundary).
  int iL = L0, iS = 0;
  const u8* ip = wl + (long long)rowOf(L0) * k;
  uint4 v[FG1_D];
#pragma unroll
  for (int u = 0; u < FG1_D; u++) {
    if (iL < L1) {
      v[u] = ldStream(ip);
      ip += 512;
      if (++iS == S) {
        iS = 0;
        if (++iL < L1) ip = wl + (long long)rowOf(iL) * k;
      }
    }
  }
  uint4 nwr[FG1_XB];  // NORM: normW's chunks of this thread (a weight: loaded ahead of the wait)
  if constexpr (NORM) fg1Load(normW, k >> 3, 0, nwr);
  pdlWait();  // x and y are the previous kernels' (weights only above)
  pdlLaunchDependents();
  const float s = fg1Stage<NORM>(x, nwr, eps, k, actScale, xq, sh);
  if (L0 >= L1) return;
  const u8* xl = xq + lane * 16;
  if (G == 4) fg1Main<4>(v, xl, wl, wScale, bias, y, n, k, S, mode, L0, L1, iL, iS, ip, s);
  else if (G == 2) fg1Main<2>(v, xl, wl, wScale, bias, y, n, k, S, mode, L0, L1, iL, iS, ip, s);
  else fg1Main<1>(v, xl, wl, wScale, bias, y, n, k, S, mode, L0, L1, iL, iS, ip, s);
}

extern "C" __global__ void __launch_bounds__(256, FG1_MINB) fp8_gemv1_fused_bf16(const bf16_t* x, const u8* W, const float* wScale, const bf16_t* bias,
    void* y, const bf16_t* normW, float eps, int m, int n, int k, float actScale, int mode) {
  fp8Gemv1Impl<false>(x, W, wScale, bias, y, normW, eps, n, k, actScale, mode);
}
extern "C" __global__ void __launch_bounds__(256, FG1_MINB) fp8_gemv1_fused_norm_bf16(const bf16_t* x, const u8* W, const float* wScale,
    const bf16_t* bias, void* y, const bf16_t* normW, float eps, int m, int n, int k, float actScale, int mode) {
  fp8Gemv1Impl<true>(x, W, wScale, bias, y, normW, eps, n, k, actScale, mode);
}


// ------------------------------------------------------------------------------------------------
// One-token decode GEMV, one weight row a warp on short-lived blocks (SessionOptions.fp8GemvRow / fp8GemvRowNorm;
// m = 1 only), session 16:
// extern "C" __global__ void fp8_gemvr_fused_bf16(const bf16_t* x, const u8* W, const float* wScale, const bf16_t* bias,
//     void* y, const bf16_t* normW, float eps, int m, int n, int k, float actScale, int mode)
// extern "C" __global__ void fp8_gemvr_fused_norm_bf16(...same parameters...)
//   fp8_gemv1_fused{,_norm}_bf16's parameters, modes 0 / 1 / 3 (not 2) and bits, for k % 512 == 0 and k <= FGR_XQ: the
//   block quantizes x with fp8_gemv1's prologue (fg1Stage: the same e4m3 bytes and scale) and warp w owns the row
//   8 · blockIdx.x + w, summing its 512-byte segments front to back with fp8_gemv1's mma pair (lane l: bytes
//   [16l, 16l + 16) of each segment; pairs from zero added in fp32 in segment order) and its warp sum over the diagonal,
//   so every row's value is fp8_gemv1's whatever fp8_gemv1's grid. The first FGR_D segments of the row (all of it at
//   k <= 512 · FGR_D: the 8B's qkv and o_proj) plus its scale and bias are loaded before pdlWait; past those a ring of
//   FGR_D 16-byte loads a lane refills each slot as it is consumed. Blocks live one row a warp (not a persistent grid)
//   and fit FGR_MINB to an SM, so under PDL the next kernel (the decode attention, the next GEMV) can start beside
//   the last of them: the bf16 decode GEMVs' form (gemv_fused*_xpre).
//   grid (ceil(n / 8), 1, 1)   block (256, 1, 1)   shared 8.1 KiB
// ------------------------------------------------------------------------------------------------
#ifndef FGR_D
#define FGR_D 8  // 16-byte weight loads a lane issued ahead (a row's first FGR_D segments before pdlWait; tuning knob)
#endif
#ifndef FGR_MINB
#define FGR_MINB 3  // __launch_bounds__ min blocks per SM (3: <= 85 registers; tuning knob)
#endif
#define FGR_XQ 8192  // most in-features: the block's quantized x in shared memory

template <bool NORM>
__device__ __forceinline__ void fp8GemvRowImpl(const bf16_t* x, const u8* W, const float* wScale, const bf16_t* bias, void* y,
                                               const bf16_t* normW, float eps, int n, int k, float actScale, int mode) {
  __shared__ __align__(16) u8 xq[FGR_XQ];
  __shared__ float sh[32];
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g = lane >> 2, t = lane & 3;
  const int S = k >> 9;  // 512-byte segments a row
  const int row = blockIdx.x * (blockDim.x >> 5) + warp;
  const bool live = row < n;
  const u8* wl = W + (long long)(live ? row : 0) * k + lane * 16;
  uint4 v[FGR_D];
#pragma unroll
  for (int u = 0; u < FGR_D; u++)
    if (live && u < S) v[u] = ldStream(wl + (long long)u * 512);
  const float ws = live ? wScale[row] : 0.f, bs = bias && live ? toF(bias[row]) : 0.f;  // weights: before the wait
  uint4 nwr[FG1_XB];  // NORM: normW's chunks of this thread (a weight)
  if constexpr (NORM) fg1Load(normW, k >> 3, 0, nwr);
  pdlWait();  // x and y are the previous kernels' (weights only above)
  pdlLaunchDependents();
  const float s = fg1Stage<NORM>(x, nwr, eps, k, actScale, xq, sh);  // ends with __syncthreads: no barrier below
  if (!live) return;
  const float yOld = mode == 1 ? toF(((const bf16_t*)y)[row]) : 0.f;
  const u8* xl = xq + lane * 16;
  float a0 = 0.f, a1 = 0.f;
  for (int base = 0; base < S; base += FGR_D) {
#pragma unroll
    for (int u = 0; u < FGR_D; u++) {
      if (base + u < S) {
        segMma(*reinterpret_cast<const uint4*>(xl + (base + u) * 512), v[u], a0, a1);
        if (base + u + FGR_D < S) v[u] = ldStream(wl + (long long)(base + u + FGR_D) * 512);
      }
    }
  }
  // D[g][g] sits in lane (g, g / 2) at (g & 1): the warp sum over g, as fg1Main.
  const float sum = warpSum(t == (g >> 1) ? ((g & 1) ? a1 : a0) : 0.f);
  float val = sum * s * ws;  // as fp8_gemv1: no bias add without a bias
  if (bias) val += bs;
  if (lane == 0) {
    if (mode == 0) ((bf16_t*)y)[row] = fromF<bf16_t>(val);
    else if (mode == 1) ((bf16_t*)y)[row] = fromF<bf16_t>(toF(fromF<bf16_t>(val)) + yOld);
    else ((float*)y)[row] = val;
  }
}

extern "C" __global__ void __launch_bounds__(256, FGR_MINB) fp8_gemvr_fused_bf16(const bf16_t* x, const u8* W, const float* wScale, const bf16_t* bias,
    void* y, const bf16_t* normW, float eps, int m, int n, int k, float actScale, int mode) {
  fp8GemvRowImpl<false>(x, W, wScale, bias, y, normW, eps, n, k, actScale, mode);
}
extern "C" __global__ void __launch_bounds__(256, FGR_MINB) fp8_gemvr_fused_norm_bf16(const bf16_t* x, const u8* W, const float* wScale,
    const bf16_t* bias, void* y, const bf16_t* normW, float eps, int m, int n, int k, float actScale, int mode) {
  fp8GemvRowImpl<true>(x, W, wScale, bias, y, normW, eps, n, k, actScale, mode);
}
