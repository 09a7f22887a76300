// Weight-only quantized linears (issue 12), llmrt's packed layout (lib/quantization/packed.ts):
//   W     [n, k·bits/8] u8: uint4 two per byte (element 2j in the low nibble of byte j), or uint8
//   scales [n, k/G] f32;  zeros [n, k/G] u8, or 0 (= none: zero point 2^(bits-1))
//   w[j, i] = (q[j, i] - z[j, i/G]) * s[j, i/G]
//
// Decode GEMV, dequantized in registers (no weight ever leaves the SM as a float). The tensor-core
// quant_gemv_fused_* below serve every linear whose shape they take (lib/backends/cuda/quant_launch.ts
// quantGemvFusable); these per-warp kernels are the fallback (e.g. groups of 32 or 64):
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
#if LLMRT_KERNEL(quant_gemv_u4_m1)
QUANT_GEMV(quant_gemv_u4_m1, 4, 1)
#endif
#if LLMRT_KERNEL(quant_gemv_u4_m2)
QUANT_GEMV(quant_gemv_u4_m2, 4, 2)
#endif
#if LLMRT_KERNEL(quant_gemv_u4_m4)
QUANT_GEMV(quant_gemv_u4_m4, 4, 4)
#endif
#if LLMRT_KERNEL(quant_gemv_u4_m8)
QUANT_GEMV(quant_gemv_u4_m8, 4, 8)
#endif
#if LLMRT_KERNEL(quant_gemv_u8_m1)
QUANT_GEMV(quant_gemv_u8_m1, 8, 1)
#endif
#if LLMRT_KERNEL(quant_gemv_u8_m2)
QUANT_GEMV(quant_gemv_u8_m2, 8, 2)
#endif
#if LLMRT_KERNEL(quant_gemv_u8_m4)
QUANT_GEMV(quant_gemv_u8_m4, 8, 4)
#endif
#if LLMRT_KERNEL(quant_gemv_u8_m8)
QUANT_GEMV(quant_gemv_u8_m8, 8, 8)
#endif

// ------------------------------------------------------------------------------------------------
// Tensor-core decode GEMV (session 4): the same product on mma.sync m16n8k16 (bf16 in, fp32 accumulate),
// with the RMSNorm prologue and the residual / SiLU·mul / fp32 epilogues of gemv_fused (gemv.cu).
//
// extern "C" __global__ void quant_gemv_fused_u{4|8}(const bf16_t* x, const u8* W, const float* scales,
//     const u8* zeros, const bf16_t* bias, void* y, const bf16_t* normW, float eps, int m, int n, int k,
//     int group, int mode)
// extern "C" __global__ void quant_gemv_fused_norm_u{4|8}(...same parameters...)
//   x [m, k] bf16 (m <= 8; one mma column per x row, so the cost does not grow with m), W/scales/zeros as
//   above. Needs k % QG_SC == 0 and group % QG_SC == 0 (QG_SC = 128 (u4) / 64 (u8) weights per row per
//   "superchunk"), n % 16 == 0 (mode 2: (n / 2) % 8 == 0), 16-byte aligned x and W.
//   _norm: x is first replaced by rmsnorm(x) * normW per row, rounded to bf16 as rmsnorm_bf16 does (same
//   sums in the same order), staged in shared memory: needs m * k <= 8192 (QG_XS).
//   mode 0 y bf16 [m, n] = x Wᵀ + bias; 1 y bf16 [m, n] += bf16(x Wᵀ + bias) (in place, rounded as
//   add_rmsnorm); 2 rows [0, n/2) gate, [n/2, n) up, y bf16 [m, n/2] = bf16(silu(bf16(gate)) · bf16(up));
//   3 y f32 [m, n] = x Wᵀ + bias. The roundings are gemv_fused's.
//   Block b computes a 16-row tile (mode 2: gate rows 8b..8b+7 and the matching up rows) for every x row;
//   its 8 warps split k by superchunks (warp w takes w, w + 8, ...), and the partial tiles meet in shared
//   memory, summed in warp order: a row's result does not depend on m (batch invariant).
//   Lane (g = lane / 4, t = lane % 4) streams 16 bytes of tile rows g and g + 8 per superchunk and
//   dequantizes them in registers without int→float conversions: u4 nibble pairs (e, e + 4) of a word
//   become bf16x2 (128 + q) by one AND/OR (0x4300 is bf16 128, ulp 1), minus (128 + z) by one bf16x2 FMA
//   (exact: small integers); u8 bytes become fp32 2^23 + q by a byte permute, minus 2^23 + z, then bf16
//   (exact up to ±255). The mma's k order is a permutation of the superchunk's columns, matched by the x
//   fragment (a byte permute of 8 consecutive x values). Each superchunk's fp32 tile is scaled by its
//   group's fp32 scale (no scale rounding to bf16).
//   Each warp keeps QG_U superchunks' loads in flight (QG_UN in _norm); __launch_bounds__(256, QG_MINB).
//   bench/quant_gemv_tune.ts swept U ∈ {1..4}, MINB ∈ {1..4}, cp.async through shared memory (QG_ASYNC)
//   and several tiles per block with double-buffered loads (an earlier form) on an H200: U=2, MINB=3 best
//   (llama-3.1-8b linears 50% of the copy bandwidth for u4, ~60% u8; bench/RESULTS.md, session 4).
//   grid mode 2: ((n / 2) / 8, 1, 1), else (n / 16, 1, 1)   block (256, 1, 1)
//   shared: 4 KB static (+16 KB _norm; + QG_U · 8 KB with QG_ASYNC)
// ------------------------------------------------------------------------------------------------
#define QG_XS 8192  // bf16 elements of staged x (16 KB) for the RMSNorm prologue
// Tuning knobs (bench/quant_gemv_tune.ts sweeps them on an H200):
#ifndef QG_U
#define QG_U 2      // superchunks per warp whose weight loads are in flight together
#endif
#ifndef QG_UN
#define QG_UN 2     // the same for the _norm entry points (their x staging takes 16 KB of shared memory)
#endif
#ifndef QG_MINB
#define QG_MINB 3   // __launch_bounds__ min blocks per SM (3: at most 85 registers, 3 blocks of 256 per SM)
#endif
#ifndef QG_NW
#define QG_NW 8     // warps per block splitting a tile's k (the launcher's block is 32 · QG_NW = 256; other values: bench only)
#endif
#ifndef QG_TILED
#define QG_TILED 0  // 1: W in 16-row tiles, each superchunk's 16 × 64 bytes contiguous (bench layout experiment only)
#endif
#ifndef QG_LOOP
#define QG_LOOP 0  // 1: block b computes tiles b, b + gridDim.x, ... (a persistent grid; the launcher caps it), the next
                   // tile's first loads in flight during a tile's reduction, the RMSNorm prologue once per block
#endif
#ifndef QG_RING
#define QG_RING 0  // 1: each slot is refilled right after its superchunk is consumed (0: all U slots after the last); same sums
#endif
#ifndef QG_FASTNORM
#define QG_FASTNORM 0  // _norm, m = 1: 1 = the single-pass prologue (int8 8B fused +6%, int4 1B fused -7% on an H200); 0 = rmsnormStage
#endif
#ifndef QG_XFIRST
#define QG_XFIRST 0 // QG_FASTNORM: 1 issues x's loads before the first weight loads (0: after)
#endif
// Ceiling experiments (bench/quant_gemv_tune.ts; timing only, the sums are wrong when either is 1):
#ifndef QG_NOSCALE
#define QG_NOSCALE 0  // 1: no scale / zero-point loads (scale 1, the default zero point): the weight stream alone
#endif
#ifndef QG_NOMATH
#define QG_NOMATH 0   // 1: no dequantization, x loads or mma: the loaded words are only xor-ed into the sums
#endif
#ifndef QG_CONTIG
#define QG_CONTIG 0   // 1: warp w takes a contiguous run of ceil(S / NW) superchunks instead of w, w + NW, ...; a slot
                      // pair's scales / zero points in one load per row (g128 u4, g64 u8). Sums in another order
#endif
#ifndef QG_ZFOLD
#define QG_ZFOLD 0    // 1: u4 weights enter the mma as 128 + q (one lop3 a pair, no FMA); (128 + z)·Σx comes off each superchunk,
                      // Σx from a second mma with a ones A. Sums in another order (not the same bits)
#endif
#define QG_V_CONTIG 1  // variant bits of quantGemvFusedImpl's V (the quant_gemv_fused* entry points: QG_V from the knobs above)
#define QG_V_ZFOLD 2
#define QG_V_XS 4      // u4 without a prologue: x staged per block in shared memory in the mma's pair order (m·k <= QG_XP)
#define QG_XP 16384    // bf16 elements of that stage (32 KB)
#ifndef QG_XSTAGE
#define QG_XSTAGE 0   // 1: QG_V_XS for the quant_gemv_fused* entry points (tuning knob)
#endif
#define QG_V_F16 8     // no prologue: the weights dequantized to f16 (u4: Marlin's magic-number form, one shift and four lop3 a
                       // word instead of three and four; u8: two byte permutes + two f16x2 FMAs instead of ten), x staged per
                       // block as f16 in the mma's pair order, scaled by 2^e per x row so its largest |value| is in
                       // [2^14, 2^15) (exact: bf16 values fit f16's significand), f16 mma; the row's sums times 2^-e at the end.
                       // The same products as the bf16 path; on an H200 the same bits (u4) — but slower (session 12: the 8B
                       // layer 54.1 -> 75.8 us, not staged 71.5; end to end 436.0 -> 375.9 tok/s): bench knob only
#ifndef QG_F16
#define QG_F16 0      // 1: QG_V_F16 for the quant_gemv_fused* entry points (tuning knob)
#endif
#define QG_V_HZ 16     // with QG_V_F16: no f16 FMA a pair — the mma takes 1024 + q (even elements) and 1024 + 16q against x/16 (odd
                       // elements) as the lop3s make them; per 128-column chunk and x row, P = 1024·Σ_even x' + 64·Σ_odd x' and
                       // S = Σ x' (x' = x·2^e, fp32, fixed order, once per block) come off after the chunk's mmas: t - P - z·S.
                       // Sums in another order with a 2^10 offset (not the same bits; k <= 16384)
#ifndef QG_HZ
#define QG_HZ 0       // 1: QG_V_HZ for the quant_gemv_fused* entry points (tuning knob; with QG_F16)
#endif
#define QG_PS 1024     // (P, S) pairs of QG_V_HZ: m · k / 128 <= 1024
#define QG_V_XALL 32   // lanes of mma columns past m load x row 0 too (never read) instead of zeros behind a predicate (QG_XALL)
#ifndef QG_XALL
#define QG_XALL 0     // 1: lanes of mma columns past m load x row 0 too (their columns are never read) instead of zeros behind a
                      // predicate: no zeroing / predication of the x fragments. The same bits; no faster (session 12, tuning knob)
#endif
#ifndef QG_F16NS
#define QG_F16NS 0    // 1: QG_V_F16 never stages x (converts it in the loop; tuning knob: the stage's cost)
#endif
#define QG_V_RING 64   // with QG_V_CONTIG, no prologue: a per-warp cp.async ring of QG_RD superchunks in shared memory, filled across
                       // tiles (bench knob QG_RING_SC; H200 session 14: one 8B int4 layer 55.1 -> 78.3 us, 8B e2e -30%: dropped)
#ifndef QG_RING_SC
#define QG_RING_SC 0  // 1: QG_V_RING for the quant_gemv_fused* entry points (tuning knob; the bench caps the grid with RB)
#endif
#ifndef QG_RD
#define QG_RD 4       // QG_V_RING: superchunks a warp keeps in flight (slots of QG_SLOT bytes: 8 warps · 4 · 1152 = 36 KB a block)
#endif
#define QG_V_ZS 128    // u4, not F16: 128 + q by one lop3 a pair (no FMA); (128 + z)·Σx off each superchunk, Σx of every x row's
                       // 128-column chunks summed once a block after the PDL wait (QG_ZS: the knob for the quant_gemv_fused* entry points).
                       // Within fp32 rounding of CONTIG (GPU tests passed as quant_gemv_fastz*), but H200 session 14: 8B int4 e2e
                       // 427.4 / 428.3 -> 363.6 / 361.9 tok/s (-15%): the Σx pass and barrier after the wait cost more than 32 FMAs
                       // a superchunk save. Dropped as a switch.
#ifndef QG_ZS
#define QG_ZS 0
#endif
// Session 19 (issue 12; bench/RESULTS.md session 19). Measured slower there, code in the history: 4 superchunks a warp
// in flight at 3 blocks an SM (one 8B int4 layer 54.7 -> 63.6-65.2 us, e2e -12%), one slot's scales / zero points a lane
// of a quad shuffled at use (68.0 us at U=2), two mma chains a superchunk (58.2 us).
#define QG_V_ZPK 512   // a slot pair's zero points kept packed (za[2i] = both bytes, extracted at use): other registers, the same sums
#define QG_V_XP 8192   // u4: _addnorm writes xw with each 8-element chunk in the mma's pair order (x0, x4, x1, x5, ..), and _rs reads its
                       // x (an _addnorm's xw) so, without permutes: a pair of such entry points only (the same sums)
#define QG_V_XPI 32768  // u4, no prologue: x (a pairOut SiLU·mul output) read in the mma's pair order, without permutes
#define QG_V_XPO 65536  // u4: mode 2's SiLU·mul output written with each 8-element chunk in the mma's pair order
#define QG_V_MH 16384  // u4: the dequantization's shifts as IMAD.HI (deqU4m): FMA-pipe work instead of ALU-pipe work; the same sums
#ifndef QG_ZPK
#define QG_ZPK 0
#endif
#ifndef QG_MH
#define QG_MH 0
#endif
#ifndef QG_XPK
#define QG_XPK 0
#endif
#define QG_SLOT 1152  // a ring slot: the 16 rows' 64 weight bytes (lane l: 16 l row g, 512 + 16 l row g + 8), 16 f32 scales, 16 zero-point words
#define QG_V ((QG_CONTIG ? QG_V_CONTIG : 0) | (QG_ZFOLD ? QG_V_ZFOLD : 0) | (QG_XSTAGE ? QG_V_XS : 0) | (QG_F16 ? QG_V_F16 : 0) | (QG_HZ ? QG_V_HZ : 0) | \
              (QG_RING_SC ? QG_V_RING : 0) | (QG_ZS ? QG_V_ZS : 0) | (QG_ZPK ? QG_V_ZPK : 0) | (QG_XPK ? QG_V_XP : 0) | \
              (QG_MH ? QG_V_MH : 0))
#ifndef QG_LDNC
#define QG_LDNC 0     // 1: weight loads as ld.global.nc.L1::no_allocate (fp8_gemv's ldStream); the same sums
#endif

// Programmatic dependent launch (the decode plan's LaunchOptions.pdl): before qgPdlWait a kernel reads only
// weights (packed W, scales, zero points) and writes nothing; griddepcontrol.wait returns at once when the
// kernel was launched without PDL. Local names, so this file does not depend on common.cuh's helpers.
__device__ __forceinline__ void qgPdlWait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}
__device__ __forceinline__ void qgPdlLaunchDependents() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

#ifndef LLMRT_EMU
/** A 16-byte weight load (QG_LDNC: through the non-coherent path, no L1 allocation). */
__device__ __forceinline__ uint4 qgLdW(const u8* p) {
#if QG_LDNC
  uint4 v;
  asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];" : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w) : "l"(p));
  return v;
#else
  return *reinterpret_cast<const uint4*>(p);
#endif
}
__device__ __forceinline__ u32 bf16x2Fma(u32 a, u32 b, u32 c) {
  u32 d;
  asm("fma.rn.bf16x2 %0, %1, %2, %3;" : "=r"(d) : "r"(a), "r"(b), "r"(c));
  return d;
}
__device__ __forceinline__ u32 lop3Nib(u32 w) {  // (w & 0x000F000F) | 0x43004300
  u32 d;
  asm("lop3.b32 %0, %1, %2, %3, 0xEA;" : "=r"(d) : "r"(w), "r"(0x000F000Fu), "r"(0x43004300u));
  return d;
}
__device__ __forceinline__ u32 prmt(u32 a, u32 b, u32 sel) {
  u32 d;
  asm("prmt.b32 %0, %1, %2, %3;" : "=r"(d) : "r"(a), "r"(b), "r"(sel));
  return d;
}
__device__ __forceinline__ u32 lop3Mask(u32 w, u32 mask, u32 magic) {  // (w & mask) | magic
  u32 d;
  asm("lop3.b32 %0, %1, %2, %3, 0xEA;" : "=r"(d) : "r"(w), "r"(mask), "r"(magic));
  return d;
}
__device__ __forceinline__ u32 f16x2Fma(u32 a, u32 b, u32 c) {
  u32 d;
  asm("fma.rn.f16x2 %0, %1, %2, %3;" : "=r"(d) : "r"(a), "r"(b), "r"(c));
  return d;
}
__device__ __forceinline__ u32 f16x2Of(float lo, float hi) {  // (f16(lo), f16(hi)), round to nearest even
  u32 d;
  asm("cvt.rn.f16x2.f32 %0, %1, %2;" : "=r"(d) : "f"(hi), "f"(lo));
  return d;
}
__device__ __forceinline__ void mma16816h(float (&c)[4], u32 a0, u32 a1, u32 a2, u32 a3, u32 b0, u32 b1) {
  asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
               : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
               : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}
__device__ __forceinline__ void cpAsync16(void* smem, const void* gmem) {
  asm volatile("{ .reg .u64 s; cvta.to.shared.u64 s, %0; cp.async.cg.shared.global [s], [%1], 16; }" ::"l"(smem), "l"(gmem) : "memory");
}
__device__ __forceinline__ void cpAsync4(void* smem, const void* gmem) {
  asm volatile("{ .reg .u64 s; cvta.to.shared.u64 s, %0; cp.async.ca.shared.global [s], [%1], 4; }" ::"l"(smem), "l"(gmem) : "memory");
}
__device__ __forceinline__ void cpAsyncCommit() { asm volatile("cp.async.commit_group;" ::: "memory"); }
template <int N>
__device__ __forceinline__ void cpAsyncWaitGroup() { asm volatile("cp.async.wait_group %0;" ::"n"(N) : "memory"); }
__device__ __forceinline__ void cpAsyncWaitAll() { asm volatile("cp.async.wait_group 0;" ::: "memory"); }
__device__ __forceinline__ void mma16816(float (&c)[4], u32 a0, u32 a1, u32 a2, u32 a3, u32 b0, u32 b1) {
  asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
               : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
               : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

#else  // CPU emulation (tools/cuda-kernel-check/quant_gemv_emu.py): the same operations in C
inline uint4 qgLdW(const u8* p) { return *reinterpret_cast<const uint4*>(p); }
inline u32 qgBfRn(float f) {
  const u32 u = __float_as_uint(f);
  return (u + 0x7FFFu + ((u >> 16) & 1u)) >> 16;
}
inline u32 bf16x2Fma(u32 a, u32 b, u32 c) {
  u32 d = 0;
  for (int h = 0; h < 2; h++) {
    const float x = __uint_as_float(((a >> (16 * h)) & 0xFFFFu) << 16), y = __uint_as_float(((b >> (16 * h)) & 0xFFFFu) << 16);
    const float z = __uint_as_float(((c >> (16 * h)) & 0xFFFFu) << 16);
    d |= qgBfRn((float)((double)x * y + z)) << (16 * h);
  }
  return d;
}
inline u32 lop3Nib(u32 w) { return (w & 0x000F000Fu) | 0x43004300u; }
inline u32 __umulhi(u32 a, u32 b) { return (u32)(((unsigned long long)a * b) >> 32); }
inline u32 prmt(u32 a, u32 b, u32 sel) {
  const unsigned long long v = (unsigned long long)a | ((unsigned long long)b << 32);
  u32 d = 0;
  for (int i = 0; i < 4; i++) d |= (u32)((v >> (8 * ((sel >> (4 * i)) & 7))) & 0xFF) << (8 * i);
  return d;
}
inline u32 lop3Mask(u32 w, u32 mask, u32 magic) { return (w & mask) | magic; }
inline u32 f16x2Fma(u32 a, u32 b, u32 c) {
  u32 d = 0;
  for (int h = 0; h < 2; h++) {
    const double v = (double)emuHalf(a, h) * emuHalf(b, h) + emuHalf(c, h);  // exact for f16 operands; one rounding
    d |= (u32)emuHalfBits(v) << (16 * h);
  }
  return d;
}
inline u32 f16x2Of(float lo, float hi) { return (u32)emuHalfBits(lo) | ((u32)emuHalfBits(hi) << 16); }
inline void mma16816h(float (&c)[4], u32 a0, u32 a1, u32 a2, u32 a3, u32 b0, u32 b1) {
  const uint32_t a[4] = {a0, a1, a2, a3};
  llmrtEmuMmaF16(c, a, b0, b1);
}
inline void cpAsync16(void* smem, const void* gmem) { memcpy(smem, gmem, 16); }
inline void cpAsync4(void* smem, const void* gmem) { memcpy(smem, gmem, 4); }
inline void cpAsyncCommit() {}
inline void cpAsyncWaitAll() {}
template <int N>
inline void cpAsyncWaitGroup() {}
inline void mma16816(float (&c)[4], u32 a0, u32 a1, u32 a2, u32 a3, u32 b0, u32 b1) {
  const uint32_t a[4] = {a0, a1, a2, a3};
  llmrtEmuMma(c, a, b0, b1);
}
struct float2 {
  float x, y;
};
inline float2 make_float2(float x, float y) { return {x, y}; }
inline uint4 make_uint4(unsigned x, unsigned y, unsigned z, unsigned w) { return {x, y, z, w}; }
inline void __trap() { abort(); }
#endif
/** u4 word → four bf16x2 (q - z) pairs: (e0,e4), (e1,e5), (e2,e6), (e3,e7). negZ2: -(128 + z) in both halves. */
__device__ __forceinline__ void deqU4(u32 w, u32 negZ2, u32 (&d)[4]) {
  const u32 one2 = 0x3F803F80u;
  d[0] = bf16x2Fma(lop3Nib(w), one2, negZ2);
  d[1] = bf16x2Fma(lop3Nib(w >> 4), one2, negZ2);
  d[2] = bf16x2Fma(lop3Nib(w >> 8), one2, negZ2);
  d[3] = bf16x2Fma(lop3Nib(w >> 12), one2, negZ2);
}
/**
 * deqU4 with the shifts by 4, 8, 12 as the high halves of products by 2^28, 2^24, 2^20 (QG_V_MH): IMAD.HI on the FMA pipe
 * instead of SHF on the ALU pipe, the busiest (Nsight, session 19). mh: those three factors, opaque to the compiler (else it
 * turns the products back into shifts). The same bits.
 */
__device__ __forceinline__ void deqU4m(u32 w, u32 negZ2, const u32 (&mh)[3], u32 (&d)[4]) {
  const u32 one2 = 0x3F803F80u;
  d[0] = bf16x2Fma(lop3Nib(w), one2, negZ2);
  d[1] = bf16x2Fma(lop3Nib(__umulhi(w, mh[0])), one2, negZ2);
  d[2] = bf16x2Fma(lop3Nib(__umulhi(w, mh[1])), one2, negZ2);
  d[3] = bf16x2Fma(lop3Nib(__umulhi(w, mh[2])), one2, negZ2);
}
/**
 * u4 word → four f16x2 (q - z) pairs in deqU4's order (e0,e4), (e1,e5), (e2,e6), (e3,e7): nibbles 0 / 4 (and 2 / 6 of
 * w >> 8) or'ed into f16 1024 give 1024 + q, nibbles 1 / 5 (3 / 7) in place give 1024 + 16q; one f16x2 FMA each takes
 * them to q - z exactly (nzLo = -(1024 + z), nzHi = -(64 + z) in both halves).
 */
__device__ __forceinline__ void deqU4h(u32 w, u32 nzLo, u32 nzHi, u32 (&d)[4]) {
  const u32 one2 = 0x3C003C00u, sixteenth2 = 0x2C002C00u, magic = 0x64006400u;
  const u32 w8 = w >> 8;
  d[0] = f16x2Fma(lop3Mask(w, 0x000F000Fu, magic), one2, nzLo);
  d[1] = f16x2Fma(lop3Mask(w, 0x00F000F0u, magic), sixteenth2, nzHi);
  d[2] = f16x2Fma(lop3Mask(w8, 0x000F000Fu, magic), one2, nzLo);
  d[3] = f16x2Fma(lop3Mask(w8, 0x00F000F0u, magic), sixteenth2, nzHi);
}
/** bf16x2 (lo, hi) → f16x2 of (lo·mul, hi·mul) (mul a power of two: exact within f16's range). */
__device__ __forceinline__ u32 bf16x2ToF16(u32 v, float mul) {
  return f16x2Of(__uint_as_float(v << 16) * mul, __uint_as_float(v & 0xFFFF0000u) * mul);
}
/** u8 word → two bf16x2 (q - z) pairs: (e0,e1), (e2,e3). zf: 2^23 + z. */
__device__ __forceinline__ void deqU8(u32 w, float zf, u32 (&d)[2]) {
  float f[4];
#pragma unroll
  for (int i = 0; i < 4; i++) f[i] = __uint_as_float(prmt(w, 0x4B000000u, 0x7540 + i)) - zf;
  d[0] = prmt(__float_as_uint(f[0]), __float_as_uint(f[1]), 0x7632);
  d[1] = prmt(__float_as_uint(f[2]), __float_as_uint(f[3]), 0x7632);
}

template <int BITS>
struct QgSuper {
  static constexpr int E = BITS == 4 ? 128 : 64;  // weights per row per superchunk (64 bytes)
};

/** One superchunk of the warp's tile: t[4] = its mma fragment sum (unscaled, fp32). */
// ZX (with ZF): the caller takes (128 + z)·Σx off (QG_V_ZS), no ones-row mma here.
// MH (QG_V_MH): u4 shifts as IMAD.HI by mh's factors (deqU4m).
template <int BITS, bool ZF = QG_ZFOLD, bool F16 = false, bool HZ = false, bool XA = QG_XALL, bool ZX = false, bool MH = false>
__device__ __forceinline__ void qgSuperchunk(const uint4& wa, const uint4& wb, u32 za, u32 zb, const bf16_t* xs, bool xLive, int lane, float (&t)[4],
                                             bool xPerm = false, float xMul = 1.f, const u32* mh = nullptr) {
  const int tq = lane & 3;
  t[0] = t[1] = t[2] = t[3] = 0.f;
  const u32 A[4] = {wa.x, wa.y, wa.z, wa.w}, B[4] = {wb.x, wb.y, wb.z, wb.w};
  if constexpr (BITS == 4 && F16) {
    // QG_V_F16: f16 weights (deqU4h) and x; xPerm: x staged as f16 pairs (x0,x4), (x1,x5), (x2,x6), (x3,x7), already times
    // 2^e; else bf16 x from global memory, permuted and converted here (times xMul = 2^e).
    const u32 nzLoA = (0xE400u | za) * 0x10001u, nzHiA = (0xD400u | (za << 4)) * 0x10001u;
    const u32 nzLoB = (0xE400u | zb) * 0x10001u, nzHiB = (0xD400u | (zb << 4)) * 0x10001u;
#pragma unroll
    for (int u = 0; u < 4; u++) {
      uint4 xv;
      xv.x = xv.y = xv.z = xv.w = 0u;
      if (xLive || XA) xv = *reinterpret_cast<const uint4*>(xs + 32 * tq + 8 * u);
      u32 x04 = xv.x, x15 = xv.y, x26 = xv.z, x37 = xv.w;
      if (!xPerm) {
        const float hiMul = HZ ? xMul * 0.0625f : xMul;  // HZ: odd elements' x / 16 (their weights enter as 1024 + 16q)
        x04 = bf16x2ToF16(prmt(xv.x, xv.z, 0x5410), xMul), x15 = bf16x2ToF16(prmt(xv.x, xv.z, 0x7632), hiMul);
        x26 = bf16x2ToF16(prmt(xv.y, xv.w, 0x5410), xMul), x37 = bf16x2ToF16(prmt(xv.y, xv.w, 0x7632), hiMul);
      }
      u32 da[4], db[4];
      if constexpr (HZ) {
        const u32 magic = 0x64006400u, a8 = A[u] >> 8, b8 = B[u] >> 8;
        da[0] = lop3Mask(A[u], 0x000F000Fu, magic), da[1] = lop3Mask(A[u], 0x00F000F0u, magic);
        da[2] = lop3Mask(a8, 0x000F000Fu, magic), da[3] = lop3Mask(a8, 0x00F000F0u, magic);
        db[0] = lop3Mask(B[u], 0x000F000Fu, magic), db[1] = lop3Mask(B[u], 0x00F000F0u, magic);
        db[2] = lop3Mask(b8, 0x000F000Fu, magic), db[3] = lop3Mask(b8, 0x00F000F0u, magic);
      } else {
        deqU4h(A[u], nzLoA, nzHiA, da);
        deqU4h(B[u], nzLoB, nzHiB, db);
      }
      mma16816h(t, da[0], db[0], da[1], db[1], x04, x15);
      mma16816h(t, da[2], db[2], da[3], db[3], x26, x37);
    }
  } else if (BITS == 4) {
    // Lane word u = columns 32·tq + 8u .. +7 of the superchunk, for mmas 2u (pairs (0,4), (1,5)) and 2u + 1 ((2,6), (3,7)).
    const u32 one2 = 0x3F803F80u;  // ZF: bf16x2 (1, 1), the ones-row A of Σx
    float sx[4] = {0.f, 0.f, 0.f, 0.f};
    const u32 nza = (0xC300u | za) * 0x10001u, nzb = (0xC300u | zb) * 0x10001u;  // -(128 + z), bf16x2
#pragma unroll
    for (int u = 0; u < 4; u++) {
      uint4 xv;
      xv.x = xv.y = xv.z = xv.w = 0u;
      if (xLive || XA) xv = *reinterpret_cast<const uint4*>(xs + 32 * tq + 8 * u);
      // xPerm: x staged by quantGemvFusedImpl (XS) already as (x0,x4), (x1,x5), (x2,x6), (x3,x7).
      const u32 x04 = xPerm ? xv.x : prmt(xv.x, xv.z, 0x5410), x15 = xPerm ? xv.y : prmt(xv.x, xv.z, 0x7632);
      const u32 x26 = xPerm ? xv.z : prmt(xv.y, xv.w, 0x5410), x37 = xPerm ? xv.w : prmt(xv.y, xv.w, 0x7632);
      u32 da[4], db[4];
      if constexpr (ZF) {
        // 128 + q by one lop3 a pair; the zero points come off after the loop, through Σx of a ones-row mma.
        da[0] = lop3Nib(A[u]), da[1] = lop3Nib(A[u] >> 4), da[2] = lop3Nib(A[u] >> 8), da[3] = lop3Nib(A[u] >> 12);
        db[0] = lop3Nib(B[u]), db[1] = lop3Nib(B[u] >> 4), db[2] = lop3Nib(B[u] >> 8), db[3] = lop3Nib(B[u] >> 12);
        if constexpr (!ZX) {
          mma16816(sx, one2, one2, one2, one2, x04, x15);
          mma16816(sx, one2, one2, one2, one2, x26, x37);
        }
      } else {
        if constexpr (MH) {
          const u32 m[3] = {mh[0], mh[1], mh[2]};
          deqU4m(A[u], nza, m, da);
          deqU4m(B[u], nzb, m, db);
        } else {
          deqU4(A[u], nza, da);
          deqU4(B[u], nzb, db);
        }
      }
      mma16816(t, da[0], db[0], da[1], db[1], x04, x15);
      mma16816(t, da[2], db[2], da[3], db[3], x26, x37);
    }
    if constexpr (ZF && !ZX) {
      // t = Σ (128 + q)·x; minus (128 + z)·Σx (sx[0] = sx[2] and sx[1] = sx[3]: Σx of x columns 2tq, 2tq + 1).
      const float fza = 128.f + (float)za, fzb = 128.f + (float)zb;
      t[0] = fmaf(-fza, sx[0], t[0]);
      t[1] = fmaf(-fza, sx[1], t[1]);
      t[2] = fmaf(-fzb, sx[2], t[2]);
      t[3] = fmaf(-fzb, sx[3], t[3]);
    }
  } else if constexpr (F16) {
    // u8, QG_V_F16: a byte permute puts bytes 0 / 2 (1 / 3) into f16 1024 + q pairs, one f16x2 FMA each takes them to
    // q - z; the mma pairs are (e0,e2), (e1,e3), matched by x staged (or converted here) as (x0,x2), (x1,x3).
    const u32 nza = (0xE400u + za) * 0x10001u, nzb = (0xE400u + zb) * 0x10001u, one2 = 0x3C003C00u;  // -(1024 + z)
    uint4 x0, x1;
    x0.x = x0.y = x0.z = x0.w = 0u;
    x1 = x0;
    if (xLive || XA) {
      x0 = *reinterpret_cast<const uint4*>(xs + 16 * tq);
      x1 = *reinterpret_cast<const uint4*>(xs + 16 * tq + 8);
    }
    u32 X[8] = {x0.x, x0.y, x0.z, x0.w, x1.x, x1.y, x1.z, x1.w};
    if (!xPerm) {
#pragma unroll
      for (int i = 0; i < 8; i += 2) {
        const u32 a = X[i], b = X[i + 1];
        X[i] = bf16x2ToF16(prmt(a, b, 0x5410), xMul), X[i + 1] = bf16x2ToF16(prmt(a, b, 0x7632), xMul);
      }
    }
#pragma unroll
    for (int u = 0; u < 4; u++) {
      const u32 da0 = f16x2Fma(prmt(A[u], 0x64646464u, 0x4240), one2, nza), da1 = f16x2Fma(prmt(A[u], 0x64646464u, 0x4341), one2, nza);
      const u32 db0 = f16x2Fma(prmt(B[u], 0x64646464u, 0x4240), one2, nzb), db1 = f16x2Fma(prmt(B[u], 0x64646464u, 0x4341), one2, nzb);
      mma16816h(t, da0, db0, da1, db1, X[2 * u], X[2 * u + 1]);
    }
  } else {
    // Lane word u = columns 16·tq + 4u .. +3, one mma each: pairs (0,1) and (2,3), x pairs as stored.
    const float zfa = 8388608.f + (float)za, zfb = 8388608.f + (float)zb;
    uint4 x0, x1;
    x0.x = x0.y = x0.z = x0.w = 0u;
    x1 = x0;
    if (xLive || XA) {
      x0 = *reinterpret_cast<const uint4*>(xs + 16 * tq);
      x1 = *reinterpret_cast<const uint4*>(xs + 16 * tq + 8);
    }
    const u32 X[8] = {x0.x, x0.y, x0.z, x0.w, x1.x, x1.y, x1.z, x1.w};
#pragma unroll
    for (int u = 0; u < 4; u++) {
      u32 da[2], db[2];
      deqU8(A[u], zfa, da);
      deqU8(B[u], zfb, db);
      mma16816(t, da[0], db[0], da[1], db[1], X[2 * u], X[2 * u + 1]);
    }
  }
}

__device__ __forceinline__ float qgSilu(float g) { return g / (1.f + expf(-g)); }

/**
 * The block's end: each warp's fragment (row g, cols 2tq, 2tq + 1) and (row g + 8, same cols) goes to
 * red [NW][16][8] (shared), then the partial tiles are summed in warp order and the epilogue of `mode`
 * writes y (see the header). Every thread of the block calls it.
 * `inv` (shared, or null): per x row c, the sums are first multiplied by inv[c] (_rs: x was rmsnorm'd but for its
 * 1 / rms). `tail` (mode 1, _addnorm): also xw [m, n] = bf16(new residual · normW) and ssq [m, n / 16] (this tile's
 * column) = the sum of the 16 new residual values' squares, in a fixed order.
 */
struct QgTail {
  const bf16_t* normW;
  bf16_t* xw;
  float* ssq;
};
template <int NW, bool LS = QG_LOOP, bool XPW = false, bool XPO = false>
__device__ __forceinline__ void qgFinish(float* red, const float (&acc)[4], const bf16_t* bias, void* y, int m, int n, int mode, int tile,
                                         const float* inv = nullptr, const QgTail* tail = nullptr, const float* pow2 = nullptr) {
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g = lane >> 2, tq = lane & 3;
  const int half = n >> 1;
  float* rw = red + warp * 128;
  if constexpr (LS) __syncthreads();  // a persistent grid: the previous tile's epilogue has read red
  rw[g * 8 + 2 * tq] = acc[0];
  rw[g * 8 + 2 * tq + 1] = acc[1];
  rw[(g + 8) * 8 + 2 * tq] = acc[2];
  rw[(g + 8) * 8 + 2 * tq + 1] = acc[3];
  __syncthreads();
  if constexpr (NW < 4) {
    // Fewer than 128 threads (bench knob QG_NW 1 / 2): thread tid takes outputs tid, tid + 32·NW, ... in the same sums
    // (no _addnorm tail here).
    if (tail) __trap();
    for (int o = tid; o < (mode == 2 ? 64 : 128); o += 32 * NW) {
      const int r = o >> 3, c = o & 7;
      if (c >= m) continue;
      float gs = 0.f, us = 0.f;
#pragma unroll
      for (int w = 0; w < NW; w++) {
        gs += red[w * 128 + r * 8 + c];
        if (mode == 2) us += red[w * 128 + (r + 8) * 8 + c];
      }
      if (inv) gs *= inv[c], us *= inv[c];
      if (pow2) gs *= pow2[c], us *= pow2[c];
      if (mode == 2) {
        const int gate = tile * 8 + r;
        if (bias) gs += toF(bias[gate]), us += toF(bias[half + gate]);
        const float gb = toF(fromF<bf16_t>(gs)), ub = toF(fromF<bf16_t>(us));
        ((bf16_t*)y)[(long long)c * half + gate] = fromF<bf16_t>(qgSilu(gb) * ub);
      } else {
        const int row = tile * 16 + r;
        if (bias) gs += toF(bias[row]);
        if (mode == 0) ((bf16_t*)y)[(long long)c * n + row] = fromF<bf16_t>(gs);
        else if (mode == 1) {
          bf16_t* yb = (bf16_t*)y + (long long)c * n + row;
          *yb = fromF<bf16_t>(toF(fromF<bf16_t>(gs)) + toF(*yb));
        } else ((float*)y)[(long long)c * n + row] = gs;
      }
    }
    return;
  }
  const int r = tid >> 3, c = tid & 7;
  if (mode == 2) {
    if (tid < 64 && c < m) {
      float gs = 0.f, us = 0.f;
#pragma unroll
      for (int w = 0; w < NW; w++) {
        gs += red[w * 128 + r * 8 + c];
        us += red[w * 128 + (r + 8) * 8 + c];
      }
      if (inv) {
        gs *= inv[c];
        us *= inv[c];
      }
      if (pow2) {  // QG_V_F16: 2^-e of x row c (exact: the same bits as the sums of unscaled x)
        gs *= pow2[c];
        us *= pow2[c];
      }
      const int gate = tile * 8 + r;
      if (bias) {
        gs += toF(bias[gate]);
        us += toF(bias[half + gate]);
      }
      const float gb = toF(fromF<bf16_t>(gs)), ub = toF(fromF<bf16_t>(us));
      // XPO (QG_V_XPO): gate's place in its 8-element chunk is the mma's pair order, (g & 3) · 2 + g / 4.
      const int col = XPO ? (gate & ~7) | ((gate & 3) << 1) | ((gate >> 2) & 1) : gate;
      ((bf16_t*)y)[(long long)c * half + col] = fromF<bf16_t>(qgSilu(gb) * ub);
    }
  } else {
    float sq = 0.f;
    if (tid < 128 && c < m) {
      float sum = 0.f;
#pragma unroll
      for (int w = 0; w < NW; w++) sum += red[w * 128 + r * 8 + c];
      if (inv) sum *= inv[c];
      if (pow2) sum *= pow2[c];
      const int row = tile * 16 + r;
      if (bias) sum += toF(bias[row]);
      if (mode == 0) ((bf16_t*)y)[(long long)c * n + row] = fromF<bf16_t>(sum);
      else if (mode == 1) {
        bf16_t* yb = (bf16_t*)y + (long long)c * n + row;
        const bf16_t nb = fromF<bf16_t>(toF(fromF<bf16_t>(sum)) + toF(*yb));
        *yb = nb;
        if (tail) {
          const float v = toF(nb);
          // XPW (QG_V_XP): row's place in its 8-row chunk is the mma's pair order, (r & 3) · 2 + r / 4.
          const int col = XPW ? (row & ~7) | ((row & 3) << 1) | ((row >> 2) & 1) : row;
          tail->xw[(long long)c * n + col] = fromF<bf16_t>(v * toF(tail->normW[row]));
          sq = v * v;
        }
      } else ((float*)y)[(long long)c * n + row] = sum;
    }
    if (tail) {
      // Σ over the tile's 16 rows for each x row c: lanes (r % 4, c) of warps 0..3, then the 4 warps in order.
      __shared__ float part[4][8];
      sq += __shfl_xor_sync(0xffffffffu, sq, 8);
      sq += __shfl_xor_sync(0xffffffffu, sq, 16);
      if (tid < 128 && lane < 8) part[warp][lane] = sq;
      __syncthreads();
      if (tid < m) tail->ssq[(long long)tid * (n >> 4) + tile] = ((part[0][tid] + part[1][tid]) + part[2][tid]) + part[3][tid];
    }
  }
}

// RS (_rs): normW is ssq [m, k / 16] of an _addnorm launch (x = bf16(residual · normW) there): each x row's sums are
// scaled by rsqrt(Σ ssq / k + eps). TAIL (_addnorm, mode 1): y's new rows also go to xw (bf16(· normW)) and ssq.
template <int BITS, bool NORM, bool TAIL = false, bool RS = false, int V = QG_V>
__device__ __forceinline__ void quantGemvFusedImpl(const bf16_t* x, const u8* W, const float* scales, const u8* zeros, const bf16_t* bias,
    void* y, const bf16_t* normW, float eps, int m, int n, int k, int group, int mode, bf16_t* xw = nullptr, float* ssq = nullptr) {
  constexpr int E = QgSuper<BITS>::E, NW = QG_NW;
  static_assert(NW == 8 || !QG_FASTNORM, "the one-pass prologue assumes 256 threads");
  __shared__ float red[NW][16][8];
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g = lane >> 2, tq = lane & 3;
  const int half = n >> 1, tiles = n >> 4;
  // Tile row r → weight row (mode 2: gate rows 8t.. then the matching up rows). QG_LOOP: block b takes tiles
  // b, b + gridDim.x, ...; else tile b only.
  int tile = blockIdx.x;
  int rowA = mode == 2 ? tile * 8 + g : tile * 16 + g;
  int rowB = mode == 2 ? half + tile * 8 + g : tile * 16 + 8 + g;
  const int rowBytes = k * BITS / 8, S = k / E, ng = k / group, kv = k >> 3;
#if QG_TILED
  constexpr int SSTRIDE = 1024;
  (void)tq;
  const u8* wa = W + (long long)blockIdx.x * 16 * rowBytes + lane * 16;
  const u8* wb = wa + 512;
#else
  constexpr int SSTRIDE = 64;
  const u8* wa = W + (long long)rowA * rowBytes + tq * 16;
  const u8* wb = W + (long long)rowB * rowBytes + tq * 16;
#endif
  (void)tiles;
  const u32 zdef = 1u << (BITS - 1);
  const bool xLive = g < m;
  float acc[4] = {0.f, 0.f, 0.f, 0.f};
  constexpr int U = NORM ? QG_UN : QG_U;
  uint4 va[U], vb[U];
  float sa[U], sb[U];
  // ZPK: slot u's zero point is byte u & 1 of za[u & ~1] (odd elements never used, so never allocated).
  constexpr bool ZPK = (V & QG_V_ZPK) != 0;
  u32 za[U], zb[U];
  const auto zput = [&](u32 (&z)[U], int u, u32 v) {
    if (!ZPK) z[u] = v;
    else if (u & 1) z[u & ~1] = (z[u & ~1] & 0xFFu) | (v << 8);
    else z[u] = (z[u] & 0xFF00u) | v;
  };
  const auto zget = [&](const u32 (&z)[U], int u) -> u32 { return ZPK ? (z[u & ~1] >> (8 * (u & 1))) & 0xFFu : z[u]; };
  if constexpr (ZPK) {
#pragma unroll
    for (int u = 0; u < U; u += 2) za[u] = zb[u] = 0u;
  }
  // Slot u ← superchunk s's weight words, scales and zero points (s < S).
  auto load1 = [&](int u, int s) {
    va[u] = qgLdW(wa + (long long)s * SSTRIDE);
    vb[u] = qgLdW(wb + (long long)s * SSTRIDE);
#if QG_NOSCALE
    sa[u] = sb[u] = 1.f;
    zput(za, u, zdef);
    zput(zb, u, zdef);
    return;
#endif
    const int gi = s * E / group;
    sa[u] = scales[(long long)rowA * ng + gi];
    sb[u] = scales[(long long)rowB * ng + gi];
    zput(za, u, zeros ? (u32)zeros[(long long)rowA * ng + gi] : zdef);
    zput(zb, u, zeros ? (u32)zeros[(long long)rowB * ng + gi] : zdef);
  };
  // The warp's superchunks: sBeg, sBeg + ST, ... below sEnd — strided (warp, warp + NW, ...: the default), or with
  // CONTIG the contiguous run [warp·Sw, min((warp + 1)·Sw, S)) of Sw = ceil(S / NW).
  constexpr bool CONTIG = (V & QG_V_CONTIG) != 0, ZF = (V & QG_V_ZFOLD) != 0;
  constexpr int ST = CONTIG ? 1 : NW;
  const int Sw = (S + NW - 1) / NW, sBeg = CONTIG ? warp * Sw : warp, sEnd = CONTIG ? min(sBeg + Sw, S) : S;
  // CONTIG with one group a superchunk and even runs: a slot pair's scales are one 8-byte load per row, its zero
  // points one 2-byte load (the slot pairs start at even superchunks).
  const bool vecSc = CONTIG && !QG_NOSCALE && group == E && (Sw & 1) == 0 && (S & 1) == 0 && (U & 1) == 0;
  auto issue = [&](int s0) {
    if (vecSc) {
#pragma unroll
      for (int u = 0; u < U; u += 2) {
        const int s = s0 + u;
        if (s < sEnd) {
          va[u] = qgLdW(wa + (long long)s * SSTRIDE);
          vb[u] = qgLdW(wb + (long long)s * SSTRIDE);
          va[u + 1] = qgLdW(wa + (long long)(s + 1) * SSTRIDE);
          vb[u + 1] = qgLdW(wb + (long long)(s + 1) * SSTRIDE);
          const float2 a2 = *reinterpret_cast<const float2*>(scales + (long long)rowA * ng + s);
          const float2 b2 = *reinterpret_cast<const float2*>(scales + (long long)rowB * ng + s);
          sa[u] = a2.x, sa[u + 1] = a2.y, sb[u] = b2.x, sb[u + 1] = b2.y;
          if (zeros) {
            const u32 z2a = *reinterpret_cast<const unsigned short*>(zeros + (long long)rowA * ng + s);
            const u32 z2b = *reinterpret_cast<const unsigned short*>(zeros + (long long)rowB * ng + s);
            if (ZPK) za[u] = z2a, zb[u] = z2b;
            else za[u] = z2a & 255u, za[u + 1] = z2a >> 8, zb[u] = z2b & 255u, zb[u + 1] = z2b >> 8;
          } else if (ZPK) za[u] = zb[u] = zdef * 0x101u;
          else za[u] = za[u + 1] = zb[u] = zb[u + 1] = zdef;
        }
      }
      return;
    }
#pragma unroll
    for (int u = 0; u < U; u++) {
      const int s = s0 + ST * u;
      if (s < sEnd) load1(u, s);
    }
  };
  // RING (QG_V_RING, with CONTIG, not _norm): the warp's items — its superchunks j < cnt of tiles blockIdx.x, + gridDim.x,
  // ... (a persistent grid when the launcher caps it) — go through a per-warp ring of QG_RD shared-memory slots that
  // cp.async fills QG_RD items ahead, across tile boundaries: the bytes in flight take shared memory, not registers, and the
  // first QG_RD items are requested before the PDL wait. One commit group an item (also when nothing is copied).
  constexpr bool RING = (V & QG_V_RING) != 0 && !NORM;
  static_assert(!RING || (CONTIG && (V & (QG_V_XS | QG_V_F16)) == 0), "QG_V_RING: CONTIG runs, no x stage");
  __shared__ __align__(16) u8 qring[RING ? NW * QG_RD * QG_SLOT : 16];
  const int cnt = max(sEnd - sBeg, 0);
  // Zero points as the aligned 4-byte word holding them (cp.async copies 4, 8 or 16 bytes); else read at use.
  const bool zw = zeros != nullptr && (ng & 3) == 0 && (reinterpret_cast<unsigned long long>(zeros) & 3) == 0;
  int fr = blockIdx.x, fj = 0;  // RING: the next item to issue
  auto ringIssue = [&](int slot) {
    u8* sl = qring + (warp * QG_RD + slot) * QG_SLOT;
    if (fr < tiles && fj < cnt) {
      const int s = sBeg + fj, gi = s * E / group, r = lane & 15;
      const int ra = mode == 2 ? fr * 8 + g : fr * 16 + g, rb = mode == 2 ? half + fr * 8 + g : fr * 16 + 8 + g;
      const int row = mode == 2 ? (r < 8 ? fr * 8 + r : half + fr * 8 + r - 8) : fr * 16 + r;  // lane's scale / zero-point row
      cpAsync16(sl + 16 * lane, W + (long long)ra * rowBytes + tq * 16 + (long long)s * 64);
      cpAsync16(sl + 512 + 16 * lane, W + (long long)rb * rowBytes + tq * 16 + (long long)s * 64);
      if (lane < 16) cpAsync4(sl + 1024 + 4 * r, scales + (long long)row * ng + gi);
      else if (zw) cpAsync4(sl + 1088 + 4 * r, zeros + (long long)row * ng + (gi & ~3));
      if (++fj >= cnt) fj = 0, fr += gridDim.x;
    }
    cpAsyncCommit();
  };
  const bf16_t* xsrc = x;
  if constexpr (NORM) {
    // x <- rmsnorm(x) * normW (as rmsnorm_bf16 rounds it), staged in shared memory. One row (batch-1
    // decode): a single pass — normW copied into the stage by cp.async (a weight: before the PDL wait),
    // x's chunks held in registers (chunk c = tid + 256 j, the sums of rmsnormStage in its order), its
    // loads issued before the weights' (QG_XFIRST), so the prologue does not queue behind the weight stream.
    __shared__ __align__(16) bf16_t xsh[QG_XS];
    __shared__ float sh[32];
    if (QG_FASTNORM && m == 1) {
      for (int c = tid; c < kv; c += 256) cpAsync16(xsh + c * 8, normW + c * 8);
      cpAsyncCommit();
      if (!QG_XFIRST) issue(sBeg);
      qgPdlWait();  // x and y are earlier launches' outputs
      qgPdlLaunchDependents();
      uint4 xr[QG_XS / 8 / 256];
#pragma unroll
      for (int j = 0; j < QG_XS / 8 / 256; j++) {
        if (tid + 256 * j < kv) xr[j] = *reinterpret_cast<const uint4*>(x + (tid + 256 * j) * 8);
      }
      if (QG_XFIRST) issue(sBeg);
      float ss = 0.f;
#pragma unroll
      for (int j = 0; j < QG_XS / 8 / 256; j++) {
        if (tid + 256 * j < kv) {
          const u32 xw[4] = {xr[j].x, xr[j].y, xr[j].z, xr[j].w};
#pragma unroll
          for (int e = 0; e < 8; e++) {
            const float a = __uint_as_float(e & 1 ? xw[e >> 1] & 0xFFFF0000u : xw[e >> 1] << 16);
            ss += a * a;
          }
        }
      }
      ss = blockSum(ss, sh);
      const float inv = rsqrtf(ss / (float)k + eps);
      cpAsyncWaitAll();  // this thread's own normW chunks
#pragma unroll
      for (int j = 0; j < QG_XS / 8 / 256; j++) {
        const int c = tid + 256 * j;
        if (c < kv) {
          const u32 xw[4] = {xr[j].x, xr[j].y, xr[j].z, xr[j].w};
          float a[8], w8[8];
          load16(xsh + c * 8, w8);
#pragma unroll
          for (int e = 0; e < 8; e++) a[e] = __uint_as_float(e & 1 ? xw[e >> 1] & 0xFFFF0000u : xw[e >> 1] << 16) * inv * w8[e];
          store16(xsh + c * 8, a);
        }
      }
      __syncthreads();
    } else {
      issue(sBeg);
      qgPdlWait();
      qgPdlLaunchDependents();
      rmsnormStage(x, normW, eps, m, k, xsh, sh);
    }
    xsrc = xsh;
  } else {
    // The first weight loads are in flight before anything else (the weight stream is the kernel's work).
    if constexpr (RING) {
#pragma unroll
      for (int u = 0; u < QG_RD; u++) ringIssue(u);
    } else {
      issue(sBeg);
    }
    qgPdlWait();
    qgPdlLaunchDependents();
  }
  __shared__ float invSh[8];
  if constexpr (RS) {
    // Warp c < m: the 1 / rms of x row c from the k / 16 tile sums of squares, added lane-strided then by a fixed tree.
    for (int r = warp; r < m; r += NW) {  // one pass at 8+ warps
      const float* sp = reinterpret_cast<const float*>(normW) + (long long)r * (k >> 4);
      float ss = 0.f;
      for (int t = lane; t < (k >> 4); t += 32) ss += sp[t];
      ss = warpSum(ss);
      if (lane == 0) invSh[r] = rsqrtf(ss / (float)k + eps);
    }
  }
  const QgTail tl = {normW, xw, ssq};
  // XS (u4, no prologue): x [m, k] staged once per block in shared memory, each 8-element chunk in the mma's pair order
  // (the weights' loads are in flight meanwhile), so the loop reads its x fragments without permutes.
  constexpr bool XS = (V & QG_V_XS) != 0 && BITS == 4 && !NORM;
  bool xPerm = false;
  // x is an XP _addnorm's xw (XP, _rs) or an XPO SiLU·mul output (XPI): already in pair order.
  constexpr bool XPR = BITS == 4 && !NORM && (((V & QG_V_XP) != 0 && RS) || (V & QG_V_XPI) != 0);
  if constexpr (XPR) xPerm = true;
  if constexpr (XS) {
    __shared__ __align__(16) bf16_t xp[QG_XP];
    if (m * k <= QG_XP) {
      for (int c = tid; c < (m * k) >> 3; c += 32 * NW) {
        const uint4 v = *reinterpret_cast<const uint4*>(x + (long long)c * 8);
        uint4 q;
        q.x = prmt(v.x, v.z, 0x5410), q.y = prmt(v.x, v.z, 0x7632), q.z = prmt(v.y, v.w, 0x5410), q.w = prmt(v.y, v.w, 0x7632);
        *reinterpret_cast<uint4*>(xp + c * 8) = q;
      }
      __syncthreads();
      xsrc = xp;
      xPerm = true;
    }
  }
  // F16 (QG_V_F16, u4, no prologue): x row r enters the f16 mma as x·2^e_r, e_r = 14 - floor(log2 max |x_r|) (so
  // max |x·2^e| < 2^15 and every bf16 value at least 2^-31 of the max is exact in f16); staged once per block as f16 in
  // the mma's pair order when m·k <= QG_XP, else converted in the loop. pow2Sh[r] = 2^-e_r scales the sums back.
  constexpr bool F16 = (V & QG_V_F16) != 0 && !NORM, HZ = F16 && BITS == 4 && (V & QG_V_HZ) != 0;
  constexpr bool XA = QG_XALL || (V & QG_V_XALL) != 0;
  __shared__ float pow2Sh[8];
  __shared__ float2 psSh[HZ ? QG_PS : 1];  // HZ: [m][k / 128] (P, S)
  float xMul = 1.f;
  if constexpr (F16) {
    __shared__ float amaxSh[NW][8];
    __shared__ float mulSh[8];
    __shared__ __align__(16) bf16_t xh[F16 ? QG_XP : 8];  // f16 bits
    constexpr int XR = QG_XP / 8 / (32 * NW);               // staged: the 16-byte x chunks a thread holds (8 at 8 warps)
    const int nc = (m * k) >> 3;
    const bool staged = !QG_F16NS && m * k <= QG_XP;
    if (HZ && m * (k >> 7) > QG_PS) __trap();  // the launcher keeps k <= 16384
    const auto cmax = [](const uint4& v) -> float {
      const u32 w4[4] = {v.x, v.y, v.z, v.w};
      float a = 0.f;
#pragma unroll
      for (int i = 0; i < 4; i++) a = fmaxf(a, fmaxf(fabsf(__uint_as_float(w4[i] << 16)), fabsf(__uint_as_float(w4[i] & 0xFFFF0000u))));
      return a;
    };
    uint4 xr[XR];
    if (staged) {
      // One pass over x: every chunk of the thread loaded at once (one round trip), the rows' maxima by warp trees.
      float am[8];
#pragma unroll
      for (int j = 0; j < XR; j++) {
        const int c = tid + 32 * NW * j;
        xr[j] = c < nc ? *reinterpret_cast<const uint4*>(x + (long long)c * 8) : make_uint4(0u, 0u, 0u, 0u);
      }
#pragma unroll
      for (int r = 0; r < 8; r++) am[r] = 0.f;
#pragma unroll
      for (int j = 0; j < XR; j++) {
        const int c = tid + 32 * NW * j, row = c / kv;
        const float a = cmax(xr[j]);
#pragma unroll
        for (int r = 0; r < 8; r++) am[r] = r == row ? fmaxf(am[r], a) : am[r];
      }
#pragma unroll
      for (int r = 0; r < 8; r++) {
        if (r < m) {
          float a = am[r];
#pragma unroll
          for (int o = 16; o > 0; o >>= 1) a = fmaxf(a, __shfl_xor_sync(0xffffffffu, a, o));
          if (lane == 0) amaxSh[warp][r] = a;
        }
      }
    } else {
      for (int r = 0; r < m; r++) {
        float a = 0.f;
        for (int c = tid; c < kv; c += 32 * NW) a = fmaxf(a, cmax(*reinterpret_cast<const uint4*>(x + (long long)r * k + c * 8)));
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) a = fmaxf(a, __shfl_xor_sync(0xffffffffu, a, o));
        if (lane == 0) amaxSh[warp][r] = a;
      }
    }
    __syncthreads();
    if (tid < m) {
      float a = 0.f;
#pragma unroll
      for (int w = 0; w < NW; w++) a = fmaxf(a, amaxSh[w][tid]);
      const int ex = a > 0.f ? (int)((__float_as_uint(a) >> 23) & 255u) - 127 : 0;  // floor(log2 a) (a normal; 0 and subnormals: e small)
      const int e = min(max(14 - ex, -120), 120);
      mulSh[tid] = __uint_as_float((u32)(127 + e) << 23);
      pow2Sh[tid] = __uint_as_float((u32)(127 - e) << 23);
    }
    __syncthreads();
    xMul = xLive ? mulSh[g] : 1.f;
    // Chunk c (v: its 8 bf16; every thread calls it alike, HZ shuffles): staged, its f16 pairs (HZ: odd elements / 16)
    // into xh; HZ: the (P, S) of each 128-column chunk and x row from x' = x·2^e — a chunk's even / odd sums, then the
    // 16 chunks of a 128-column chunk (16 consecutive lanes: the stride 32·NW is a multiple of 16, m·k / 8 too) added by
    // a fixed shuffle tree. The same code and order staged or not.
    const auto chunk = [&](int c, const uint4& v) {
      const bool live = c < nc;
      const float mul = live ? mulSh[c / kv] : 1.f;
      if (staged && live) {
        const float hiMul = HZ ? mul * 0.0625f : mul;
        uint4 q;
        if (BITS == 4) {  // (x0,x4), (x1,x5), (x2,x6), (x3,x7)
          q.x = bf16x2ToF16(prmt(v.x, v.z, 0x5410), mul), q.y = bf16x2ToF16(prmt(v.x, v.z, 0x7632), hiMul);
          q.z = bf16x2ToF16(prmt(v.y, v.w, 0x5410), mul), q.w = bf16x2ToF16(prmt(v.y, v.w, 0x7632), hiMul);
        } else {  // u8: (x0,x2), (x1,x3), (x4,x6), (x5,x7)
          q.x = bf16x2ToF16(prmt(v.x, v.y, 0x5410), mul), q.y = bf16x2ToF16(prmt(v.x, v.y, 0x7632), mul);
          q.z = bf16x2ToF16(prmt(v.z, v.w, 0x5410), mul), q.w = bf16x2ToF16(prmt(v.z, v.w, 0x7632), mul);
        }
        *reinterpret_cast<uint4*>(xh + c * 8) = q;
      }
      if (HZ) {
        const u32 w4[4] = {v.x, v.y, v.z, v.w};
        float ev = 0.f, od = 0.f;
#pragma unroll
        for (int i = 0; i < 4; i++) {
          ev += __uint_as_float(w4[i] << 16) * mul;
          od += __uint_as_float(w4[i] & 0xFFFF0000u) * mul;
        }
#pragma unroll
        for (int o = 8; o > 0; o >>= 1) {
          ev += __shfl_xor_sync(0xffffffffu, ev, o);
          od += __shfl_xor_sync(0xffffffffu, od, o);
        }
        if ((lane & 15) == 0 && live) psSh[c >> 4] = make_float2(fmaf(1024.f, ev, 64.f * od), ev + od);
      }
    };
    if (staged) {
#pragma unroll
      for (int j = 0; j < XR; j++) chunk(tid + 32 * NW * j, xr[j]);
    } else if (HZ) {
      for (int c0 = 0; c0 < nc; c0 += 32 * NW) {
        const int c = c0 + tid;
        chunk(c, c < nc ? *reinterpret_cast<const uint4*>(x + (long long)c * 8) : make_uint4(0u, 0u, 0u, 0u));
      }
    }
    __syncthreads();
    if (staged) {
      xsrc = xh;
      xPerm = true;
    }
  }
  // ZS (QG_V_ZS, u4, not F16): zsS [m][k / 128] = Σ of x row r's 128-column chunk (of xsrc: the staged / permuted x too) (8 values a thread, then 16 lanes by a fixed
  // shuffle tree; a row's sums do not depend on m).
  constexpr bool ZS = (V & QG_V_ZS) != 0 && BITS == 4 && !F16;
  __shared__ float zsS[ZS ? QG_PS : 1];
  if constexpr (ZS) {
    const int nc = (m * k) >> 3;
    if (nc > 8 * QG_PS) __trap();  // m · k / 128 <= QG_PS: the launcher keeps k <= 16384
    for (int c0 = 0; c0 < nc; c0 += 32 * NW) {  // block-uniform: every lane reaches the shuffles
      const int c = c0 + tid;
      float sum = 0.f;
      if (c < nc) {
        const uint4 v = *reinterpret_cast<const uint4*>(xsrc + (long long)c * 8);
        const u32 w4[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
        for (int i = 0; i < 4; i++) sum += __uint_as_float(w4[i] << 16) + __uint_as_float(w4[i] & 0xFFFF0000u);
      }
#pragma unroll
      for (int o = 8; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
      if ((lane & 15) == 0 && c < nc) zsS[c >> 4] = sum;
    }
    __syncthreads();
  }
  const bf16_t* xg = xsrc + (long long)(xLive ? g : 0) * k;
  // MH: 2^28, 2^24, 2^20 through k (never >= 2^31: the compiler cannot fold them into shifts).
  constexpr bool MH = (V & QG_V_MH) != 0 && BITS == 4 && !F16;
  const u32 mhs = (u32)k >> 31, mhf[3] = {0x10000000u << mhs, 0x1000000u << mhs, 0x100000u << mhs};
  // The tile's superchunks (P: x staged in pair order). Called with a constant on each side of a uniform branch, so
  // each inlined copy is specialized (no generic lambda: NVRTC compiles those as host functions).
  auto stream = [&](const bool P) {
    for (int s0 = sBeg; s0 < sEnd; s0 += ST * U) {
#pragma unroll
      for (int u = 0; u < U; u++) {
        const int s = s0 + ST * u;
        if (s < sEnd) {
          float t[4];
          const u32 zau = zget(za, u), zbu = zget(zb, u);
          const float sau = sa[u], sbu = sb[u];
#if QG_NOMATH
          t[0] = __uint_as_float(va[u].x ^ va[u].y ^ zau);
          t[1] = __uint_as_float(va[u].z ^ va[u].w);
          t[2] = __uint_as_float(vb[u].x ^ vb[u].y ^ zbu);
          t[3] = __uint_as_float(vb[u].z ^ vb[u].w);
#else
          qgSuperchunk<BITS, ZF || ZS, F16, HZ, XA, ZS, MH>(va[u], vb[u], zau, zbu, xg + (long long)s * E, xLive, lane, t, P, xMul, mhf);
          if constexpr (ZS) {
            // t = Σ (128 + q)·x for x rows 2tq (t[0], t[2]) and 2tq + 1 (t[1], t[3]); minus (128 + z)·Σx.
            const int c0 = 2 * tq, S128 = k >> 7;
            const float x0 = c0 < m ? zsS[c0 * S128 + s] : 0.f, x1 = c0 + 1 < m ? zsS[(c0 + 1) * S128 + s] : 0.f;
            const float fza = 128.f + (float)zau, fzb = 128.f + (float)zbu;
            t[0] = fmaf(-fza, x0, t[0]);
            t[1] = fmaf(-fza, x1, t[1]);
            t[2] = fmaf(-fzb, x0, t[2]);
            t[3] = fmaf(-fzb, x1, t[3]);
          }
          if constexpr (HZ) {
            // t - P - z·S for the x rows 2tq (t[0], t[2]) and 2tq + 1 (t[1], t[3]) of this chunk (rows past m: unused).
            const int c0 = 2 * tq, S128 = k >> 7;
            const float2 p0 = c0 < m ? psSh[c0 * S128 + s] : make_float2(0.f, 0.f), p1 = c0 + 1 < m ? psSh[(c0 + 1) * S128 + s] : make_float2(0.f, 0.f);
            const float fza = (float)zau, fzb = (float)zbu;
            t[0] = fmaf(-fza, p0.y, t[0] - p0.x);
            t[1] = fmaf(-fza, p1.y, t[1] - p1.x);
            t[2] = fmaf(-fzb, p0.y, t[2] - p0.x);
            t[3] = fmaf(-fzb, p1.y, t[3] - p1.x);
          }
#endif
          acc[0] = fmaf(t[0], sau, acc[0]);
          acc[1] = fmaf(t[1], sau, acc[1]);
          acc[2] = fmaf(t[2], sbu, acc[2]);
          acc[3] = fmaf(t[3], sbu, acc[3]);
#if QG_RING
          if (s + ST * U < sEnd) load1(u, s + ST * U);  // refill the slot just consumed: U loads stay in flight
#endif
        }
      }
#if !QG_RING
      if (s0 + ST * U < sEnd) issue(s0 + ST * U);
#endif
    }
  };
  if constexpr (RING) {
    int slot = 0;
    for (int t = blockIdx.x; t < tiles; t += gridDim.x) {
      for (int j = 0; j < cnt; j++) {
        // The oldest of the QG_RD groups in flight is this item's; the warp barrier makes the lanes' scale / zero-point
        // copies visible to each other, the second one keeps the slot until every lane has read it.
        cpAsyncWaitGroup<QG_RD - 1>();
        __syncwarp();
        const u8* sl = qring + (warp * QG_RD + slot) * QG_SLOT;
        const int s = sBeg + j, gi = s * E / group;
        const uint4 wa2 = *reinterpret_cast<const uint4*>(sl + 16 * lane), wb2 = *reinterpret_cast<const uint4*>(sl + 512 + 16 * lane);
        const float sa2 = *reinterpret_cast<const float*>(sl + 1024 + 4 * g), sb2 = *reinterpret_cast<const float*>(sl + 1024 + 32 + 4 * g);
        u32 za2 = zdef, zb2 = zdef;
        if (zw) {
          const int sh = (gi & 3) * 8;
          za2 = (*reinterpret_cast<const u32*>(sl + 1088 + 4 * g) >> sh) & 255u;
          zb2 = (*reinterpret_cast<const u32*>(sl + 1088 + 32 + 4 * g) >> sh) & 255u;
        } else if (zeros) {
          const int ra = mode == 2 ? t * 8 + g : t * 16 + g, rb = mode == 2 ? half + t * 8 + g : t * 16 + 8 + g;
          za2 = zeros[(long long)ra * ng + gi], zb2 = zeros[(long long)rb * ng + gi];
        }
        __syncwarp();
        ringIssue(slot);
        slot = slot + 1 == QG_RD ? 0 : slot + 1;
        float tt[4];
        qgSuperchunk<BITS, ZF || ZS, false, false, XA, ZS>(wa2, wb2, za2, zb2, xg + (long long)s * E, xLive, lane, tt, false, 1.f);
        if constexpr (ZS) {
          // tt = Σ (128 + q)·x for x rows 2tq (tt[0], tt[2]) and 2tq + 1 (tt[1], tt[3]); minus (128 + z)·Σx.
          const int c0 = 2 * tq, S128 = k >> 7;
          const float x0 = c0 < m ? zsS[c0 * S128 + s] : 0.f, x1 = c0 + 1 < m ? zsS[(c0 + 1) * S128 + s] : 0.f;
          const float fza = 128.f + (float)za2, fzb = 128.f + (float)zb2;
          tt[0] = fmaf(-fza, x0, tt[0]);
          tt[1] = fmaf(-fza, x1, tt[1]);
          tt[2] = fmaf(-fzb, x0, tt[2]);
          tt[3] = fmaf(-fzb, x1, tt[3]);
        }
        acc[0] = fmaf(tt[0], sa2, acc[0]);
        acc[1] = fmaf(tt[1], sa2, acc[1]);
        acc[2] = fmaf(tt[2], sb2, acc[2]);
        acc[3] = fmaf(tt[3], sb2, acc[3]);
      }
      qgFinish<NW, true>(&red[0][0][0], acc, bias, y, m, n, mode, t, RS ? invSh : nullptr, TAIL ? &tl : nullptr, nullptr);
      acc[0] = acc[1] = acc[2] = acc[3] = 0.f;
    }
  } else {
    for (;;) {
      if ((XS || F16 || XPR) && xPerm) stream(true);
      else stream(false);
#if QG_LOOP
      // The next tile's first loads fly during this one's reduction and epilogue (the prologue is not redone).
      const int done = tile;
      tile += gridDim.x;
      if (tile < tiles) {
        rowA = mode == 2 ? tile * 8 + g : tile * 16 + g;
        rowB = mode == 2 ? half + tile * 8 + g : tile * 16 + 8 + g;
        wa = W + (long long)rowA * rowBytes + tq * 16;
        wb = W + (long long)rowB * rowBytes + tq * 16;
        issue(sBeg);
      }
      qgFinish<NW>(&red[0][0][0], acc, bias, y, m, n, mode, done, RS ? invSh : nullptr, TAIL ? &tl : nullptr, F16 ? pow2Sh : nullptr);
      acc[0] = acc[1] = acc[2] = acc[3] = 0.f;
      if (tile >= tiles) break;
#else
      qgFinish<NW, QG_LOOP, (V & QG_V_XP) != 0 && BITS == 4, (V & QG_V_XPO) != 0 && BITS == 4>(&red[0][0][0], acc, bias, y, m, n, mode, tile,
                                                                                             RS ? invSh : nullptr, TAIL ? &tl : nullptr,
                                                              F16 ? pow2Sh : nullptr);
      break;
#endif
    }
  }
}

#define QUANT_GEMV_FUSED(NAME, BITS, NORM)                                                                                 \
  extern "C" __global__ void __launch_bounds__(32 * QG_NW, QG_MINB) NAME(const bf16_t* x, const u8* W, const float* scales, const u8* zeros, \
      const bf16_t* bias, void* y, const bf16_t* normW, float eps, int m, int n, int k, int group, int mode) {                     \
    quantGemvFusedImpl<BITS, NORM>(x, W, scales, zeros, bias, y, normW, eps, m, n, k, group, mode);                                \
  }
#if LLMRT_KERNEL(quant_gemv_fused_u4)
QUANT_GEMV_FUSED(quant_gemv_fused_u4, 4, false)
#endif
#if LLMRT_KERNEL(quant_gemv_fused_u8)
QUANT_GEMV_FUSED(quant_gemv_fused_u8, 8, false)
#endif
#if LLMRT_KERNEL(quant_gemv_fused_norm_u4)
QUANT_GEMV_FUSED(quant_gemv_fused_norm_u4, 4, true)
#endif
#if LLMRT_KERNEL(quant_gemv_fused_norm_u8)
QUANT_GEMV_FUSED(quant_gemv_fused_norm_u8, 8, true)
#endif

// quant_gemv_fused_addnorm_u{4|8}(x, W, scales, zeros, bias, y, normW, eps, m, n, k, group, mode, bf16_t* xw, float* ssq):
//   the plain kernel in mode 1 (y += x Wᵀ + bias, the residual) that also writes, for the RMSNorm after it, xw [m, n] =
//   bf16(y · normW) (the new residual rows times the norm weight, not yet divided by their rms) and ssq [m, n / 16]
//   (block b: column b = the sum of squares of its 16 new residual values per x row, fixed order).
// quant_gemv_fused_rs_u{4|8}(xw, W, scales, zeros, bias, y, (const bf16_t*) ssq, eps, m, n, k, group, mode):
//   the plain kernel on x = xw whose sums are multiplied by rsqrt(Σ_t ssq[r][t] / k + eps) per x row r (warp r adds
//   row r's k / 16 tile sums lane-strided, then a fixed tree) before the bias and the epilogue of `mode`.
//   The pair (LaunchEnv.quantTailNorm) replaces mode 1 + the next GEMV's RMSNorm prologue without a prologue in every
//   block: y = rsqrt(..)·(W·bf16(r·w)) instead of W·bf16(r·rsqrt(..)·w), within bf16 rounding of x of the fused path.
#define QUANT_GEMV_ADDNORM(NAME, BITS)                                                                                     \
  extern "C" __global__ void __launch_bounds__(32 * QG_NW, QG_MINB) NAME(const bf16_t* x, const u8* W, const float* scales, const u8* zeros, \
      const bf16_t* bias, void* y, const bf16_t* normW, float eps, int m, int n, int k, int group, int mode, bf16_t* xw, float* ssq) { \
    quantGemvFusedImpl<BITS, false, true>(x, W, scales, zeros, bias, y, normW, eps, m, n, k, group, mode, xw, ssq);              \
  }
#if LLMRT_KERNEL(quant_gemv_fused_addnorm_u4)
QUANT_GEMV_ADDNORM(quant_gemv_fused_addnorm_u4, 4)
#endif
#if LLMRT_KERNEL(quant_gemv_fused_addnorm_u8)
QUANT_GEMV_ADDNORM(quant_gemv_fused_addnorm_u8, 8)
#endif
#define QUANT_GEMV_RS(NAME, BITS)                                                                                          \
  extern "C" __global__ void __launch_bounds__(32 * QG_NW, QG_MINB) NAME(const bf16_t* x, const u8* W, const float* scales, const u8* zeros, \
      const bf16_t* bias, void* y, const bf16_t* normW, float eps, int m, int n, int k, int group, int mode) {                     \
    quantGemvFusedImpl<BITS, false, false, true>(x, W, scales, zeros, bias, y, normW, eps, m, n, k, group, mode);                \
  }
#if LLMRT_KERNEL(quant_gemv_fused_rs_u4)
QUANT_GEMV_RS(quant_gemv_fused_rs_u4, 4)
#endif
#if LLMRT_KERNEL(quant_gemv_fused_rs_u8)
QUANT_GEMV_RS(quant_gemv_fused_rs_u8, 8)
#endif

// Session 11 (CudaSessionOptions.quantGemvFast): quant_gemv_fast{,_norm,_addnorm,_rs}_u{4|8} — quant_gemv_fused's
// entry points, parameters, grids and epilogues with the variant QG_FAST of quantGemvFusedImpl: each warp streams a
// contiguous run of ceil(S / 8) superchunks of its tile (paired scale / zero-point loads where a group is one
// superchunk) instead of superchunks 8 apart. The same products, summed in another order: within fp32 rounding of
// quant_gemv_fused's sums (tools/cuda-kernel-check/quant_gemv_emu.py: the bf16 outputs the same bits there; H200
// session 11: tests/quant_cuda.test.ts passes for these entry points). Batch invariant as quant_gemv_fused. H200
// session 11, one llama-3.1-8b int4 layer in one process: 56.9 -> 54.0 us (down 16.2 -> 14.5, o 7.0 -> 6.6); staging x
// in the mma's pair order too (QG_V_XS) and the zero-point fold (QG_V_ZFOLD) measured slower (bench/RESULTS.md).
#ifndef QG_FAST
#define QG_FAST QG_V_CONTIG
#endif
#define QUANT_GEMV_FAST(NAME, BITS, NORM, TAIL, RS)                                                                         \
  extern "C" __global__ void __launch_bounds__(32 * QG_NW, QG_MINB) NAME(const bf16_t* x, const u8* W, const float* scales, const u8* zeros, \
      const bf16_t* bias, void* y, const bf16_t* normW, float eps, int m, int n, int k, int group, int mode) {                     \
    quantGemvFusedImpl<BITS, NORM, TAIL, RS, QG_FAST>(x, W, scales, zeros, bias, y, normW, eps, m, n, k, group, mode);         \
  }
#define QUANT_GEMV_FAST_ADDNORM(NAME, BITS)                                                                                 \
  extern "C" __global__ void __launch_bounds__(32 * QG_NW, QG_MINB) NAME(const bf16_t* x, const u8* W, const float* scales, const u8* zeros, \
      const bf16_t* bias, void* y, const bf16_t* normW, float eps, int m, int n, int k, int group, int mode, bf16_t* xw, float* ssq) { \
    quantGemvFusedImpl<BITS, false, true, false, QG_FAST>(x, W, scales, zeros, bias, y, normW, eps, m, n, k, group, mode, xw, ssq); \
  }
#if LLMRT_KERNEL(quant_gemv_fast_u4)
QUANT_GEMV_FAST(quant_gemv_fast_u4, 4, false, false, false)
#endif
#if LLMRT_KERNEL(quant_gemv_fast_u8)
QUANT_GEMV_FAST(quant_gemv_fast_u8, 8, false, false, false)
#endif
#if LLMRT_KERNEL(quant_gemv_fast_norm_u4)
QUANT_GEMV_FAST(quant_gemv_fast_norm_u4, 4, true, false, false)
#endif
#if LLMRT_KERNEL(quant_gemv_fast_norm_u8)
QUANT_GEMV_FAST(quant_gemv_fast_norm_u8, 8, true, false, false)
#endif
#if LLMRT_KERNEL(quant_gemv_fast_rs_u4)
QUANT_GEMV_FAST(quant_gemv_fast_rs_u4, 4, false, false, true)
#endif
#if LLMRT_KERNEL(quant_gemv_fast_rs_u8)
QUANT_GEMV_FAST(quant_gemv_fast_rs_u8, 8, false, false, true)
#endif
#if LLMRT_KERNEL(quant_gemv_fast_addnorm_u4)
QUANT_GEMV_FAST_ADDNORM(quant_gemv_fast_addnorm_u4, 4)
#endif
#if LLMRT_KERNEL(quant_gemv_fast_addnorm_u8)
QUANT_GEMV_FAST_ADDNORM(quant_gemv_fast_addnorm_u8, 8)
#endif

// Session 19 (CudaSessionOptions.quantGemvPairX): quant_gemv_fastx_addnorm_u4 / quant_gemv_fastx_rs_u4 — quant_gemv_fast's
// u4 tailNorm pair (parameters, grids, products and their order: the same sums) with QG_V_XP: _addnorm writes xw [m, n] with
// each 8-element chunk in the mma's pair order (x0, x4, x1, x5, x2, x6, x3, x7), and _rs reads its x (such an xw) without the
// 16 x permutes a superchunk; _rs also keeps its zero points packed (QG_V_ZPK). The launcher pairs them only between two
// uint4 linears (decode_fusion.ts u4Pair): xw has no other reader.
#ifndef QG_FASTX_RS
#define QG_FASTX_RS (QG_V_CONTIG | QG_V_XP | QG_V_ZPK)
#endif
#ifndef QG_FASTX_ADDNORM
#define QG_FASTX_ADDNORM (QG_V_CONTIG | QG_V_XP)
#endif
// quant_gemv_fastxx_rs_u4 / _addnorm_u4 / _u4 (quantGemvPairX, decode_fusion.ts pairOut / xPair): a uint4 gate_up (_rs,
// mode 2) writing its SiLU·mul output in the mma's pair order (QG_V_XPO) and the uint4 down reading it so (QG_V_XPI; its
// _addnorm form writing xw in pair order too, the plain one of the last layer not). The same sums.
#if LLMRT_KERNEL(quant_gemv_fastxx_rs_u4)
extern "C" __global__ void __launch_bounds__(32 * QG_NW, QG_MINB) quant_gemv_fastxx_rs_u4(const bf16_t* x, const u8* W, const float* scales,
    const u8* zeros, const bf16_t* bias, void* y, const bf16_t* normW, float eps, int m, int n, int k, int group, int mode) {
  quantGemvFusedImpl<4, false, false, true, QG_FASTX_RS | QG_V_XPO>(x, W, scales, zeros, bias, y, normW, eps, m, n, k, group, mode);
}
#endif
#if LLMRT_KERNEL(quant_gemv_fastxx_addnorm_u4)
extern "C" __global__ void __launch_bounds__(32 * QG_NW, QG_MINB) quant_gemv_fastxx_addnorm_u4(const bf16_t* x, const u8* W, const float* scales,
    const u8* zeros, const bf16_t* bias, void* y, const bf16_t* normW, float eps, int m, int n, int k, int group, int mode, bf16_t* xw, float* ssq) {
  quantGemvFusedImpl<4, false, true, false, QG_FASTX_ADDNORM | QG_V_XPI>(x, W, scales, zeros, bias, y, normW, eps, m, n, k, group, mode, xw, ssq);
}
#endif
#if LLMRT_KERNEL(quant_gemv_fastxx_u4)
extern "C" __global__ void __launch_bounds__(32 * QG_NW, QG_MINB) quant_gemv_fastxx_u4(const bf16_t* x, const u8* W, const float* scales,
    const u8* zeros, const bf16_t* bias, void* y, const bf16_t* normW, float eps, int m, int n, int k, int group, int mode) {
  quantGemvFusedImpl<4, false, false, false, QG_V_CONTIG | QG_V_XPI>(x, W, scales, zeros, bias, y, normW, eps, m, n, k, group, mode);
}
#endif
#if LLMRT_KERNEL(quant_gemv_fastx_addnorm_u4)
extern "C" __global__ void __launch_bounds__(32 * QG_NW, QG_MINB) quant_gemv_fastx_addnorm_u4(const bf16_t* x, const u8* W, const float* scales,
    const u8* zeros, const bf16_t* bias, void* y, const bf16_t* normW, float eps, int m, int n, int k, int group, int mode, bf16_t* xw, float* ssq) {
  quantGemvFusedImpl<4, false, true, false, QG_FASTX_ADDNORM>(x, W, scales, zeros, bias, y, normW, eps, m, n, k, group, mode, xw, ssq);
}
#endif
#if LLMRT_KERNEL(quant_gemv_fastx_rs_u4)
extern "C" __global__ void __launch_bounds__(32 * QG_NW, QG_MINB) quant_gemv_fastx_rs_u4(const bf16_t* x, const u8* W, const float* scales,
    const u8* zeros, const bf16_t* bias, void* y, const bf16_t* normW, float eps, int m, int n, int k, int group, int mode) {
  quantGemvFusedImpl<4, false, false, true, QG_FASTX_RS>(x, W, scales, zeros, bias, y, normW, eps, m, n, k, group, mode);
}
#endif

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

#if LLMRT_KERNEL(quant_dequant_u4_bf16)
extern "C" __global__ void __launch_bounds__(256) quant_dequant_u4_bf16(const u8* W, const float* scales, const u8* zeros, bf16_t* out, int n, int k, int group) {
  dequantImpl<4>(W, scales, zeros, out, n, k, group);
}
#endif
#if LLMRT_KERNEL(quant_dequant_u8_bf16)
extern "C" __global__ void __launch_bounds__(256) quant_dequant_u8_bf16(const u8* W, const float* scales, const u8* zeros, bf16_t* out, int n, int k, int group) {
  dequantImpl<8>(W, scales, zeros, out, n, k, group);
}
#endif

