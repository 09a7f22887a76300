// A tiny CPU emulation of the CUDA device subset the llmrt kernels use, for desk checks on machines
// with no GPU: every CUDA thread of a block is an OS thread; blocks run one after another, so
// `__shared__` becomes a function-local static. Barriers (__syncthreads, warp collectives) are real
// barriers, so missing barriers and divergent collectives show up as wrong results or hangs.
// mma.sync is emulated from the PTX fragment layout (llmrtEmuMma), so it checks index math against
// that layout, not the hardware. Speed: thousands of threads per second — tiny shapes only.
#pragma once
#include <algorithm>
#include <atomic>
#include <barrier>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <math.h>
#include <mutex>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__ static
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))

struct dim3 { unsigned x, y, z; };
struct alignas(8) uint2 { unsigned x, y; };
struct alignas(16) uint4 { unsigned x, y, z, w; };
struct alignas(16) float4 { float x, y, z, w; };

struct EmuBlock {
  std::barrier<>* bar;
  std::barrier<>* warpBar[32];
  std::barrier<>* wgBar[8];  // one per 128-thread warpgroup (wgmma emulation)
  uint64_t slots[32][32];
  uint64_t aux[32][32][8];
};
extern thread_local dim3 threadIdx, blockIdx;
extern dim3 blockDim, gridDim;
extern thread_local int emuLane, emuWarp;
extern thread_local EmuBlock* emuBlk;
extern std::mutex emuAtomicMutex;

inline void __syncthreads() { emuBlk->bar->arrive_and_wait(); }
inline void __syncwarp(unsigned = 0xffffffffu) { emuBlk->warpBar[emuWarp]->arrive_and_wait(); }

template <class T> inline T emuShfl(T v, int src) {
  static_assert(sizeof(T) <= 8, "shfl");
  uint64_t bits = 0;
  memcpy(&bits, &v, sizeof(T));
  emuBlk->slots[emuWarp][emuLane] = bits;
  __syncwarp();
  const uint64_t r = emuBlk->slots[emuWarp][src & 31];
  __syncwarp();
  T out;
  memcpy(&out, &r, sizeof(T));
  return out;
}
template <class T> inline T __shfl_xor_sync(unsigned, T v, int o) { return emuShfl(v, emuLane ^ o); }
template <class T> inline T __shfl_sync(unsigned, T v, int src) { return emuShfl(v, src); }
template <class T> inline T __shfl_up_sync(unsigned, T v, int d) { const int s = emuLane - d; return emuShfl(v, s < 0 ? emuLane : s); }
inline unsigned __ballot_sync(unsigned, int pred) {
  emuBlk->slots[emuWarp][emuLane] = pred ? 1 : 0;
  __syncwarp();
  unsigned m = 0;
  for (int l = 0; l < 32; l++) if (emuBlk->slots[emuWarp][l]) m |= 1u << l;
  __syncwarp();
  return m;
}
inline int __any_sync(unsigned mask, int pred) { return __ballot_sync(mask, pred) != 0; }
inline int __all_sync(unsigned mask, int pred) { return __ballot_sync(mask, pred) == 0xffffffffu; }
inline unsigned __match_any_sync(unsigned, int value) {
  emuBlk->slots[emuWarp][emuLane] = (uint64_t)(uint32_t)value;
  __syncwarp();
  unsigned m = 0;
  for (int l = 0; l < 32; l++) if (emuBlk->slots[emuWarp][l] == (uint64_t)(uint32_t)value) m |= 1u << l;
  __syncwarp();
  return m;
}

inline float __uint_as_float(unsigned u) { float f; memcpy(&f, &u, 4); return f; }
inline unsigned __float_as_uint(float f) { unsigned u; memcpy(&u, &f, 4); return u; }
inline float __int_as_float(int u) { float f; memcpy(&f, &u, 4); return f; }
inline int __clz(int x) { return x == 0 ? 32 : __builtin_clz((unsigned)x); }
inline int __ffs(int x) { return __builtin_ffs(x); }
inline int __ffs(unsigned x) { return __builtin_ffs((int)x); }
inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }

inline int atomicMax(int* p, int v) { std::lock_guard<std::mutex> g(emuAtomicMutex); int o = *p; if (v > o) *p = v; return o; }
inline int atomicMin(int* p, int v) { std::lock_guard<std::mutex> g(emuAtomicMutex); int o = *p; if (v < o) *p = v; return o; }
inline int atomicAdd(int* p, int v) { std::lock_guard<std::mutex> g(emuAtomicMutex); int o = *p; *p = o + v; return o; }
inline float atomicAdd(float* p, float v) { std::lock_guard<std::mutex> g(emuAtomicMutex); float o = *p; *p = o + v; return o; }
inline double atomicAdd(double* p, double v) { std::lock_guard<std::mutex> g(emuAtomicMutex); double o = *p; *p = o + v; return o; }

// mma.sync.m16n8k16 row.col f32 += bf16 x bf16, from the PTX fragment layout.
inline float emuBf(uint32_t w, int hi) { return __uint_as_float(hi ? (w & 0xffff0000u) : (w << 16)); }
inline void llmrtEmuMma(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  uint64_t* mine = emuBlk->aux[emuWarp][emuLane];
  mine[0] = a[0]; mine[1] = a[1]; mine[2] = a[2]; mine[3] = a[3]; mine[4] = b0; mine[5] = b1;
  __syncwarp();
  float A[16][16], B[16][8];
  for (int l = 0; l < 32; l++) {
    const uint64_t* f = emuBlk->aux[emuWarp][l];
    const int g = l >> 2, c = l & 3;
    for (int e = 0; e < 2; e++) {
      A[g][2 * c + e] = emuBf((uint32_t)f[0], e);
      A[g + 8][2 * c + e] = emuBf((uint32_t)f[1], e);
      A[g][8 + 2 * c + e] = emuBf((uint32_t)f[2], e);
      A[g + 8][8 + 2 * c + e] = emuBf((uint32_t)f[3], e);
      B[2 * c + e][g] = emuBf((uint32_t)f[4], e);
      B[8 + 2 * c + e][g] = emuBf((uint32_t)f[5], e);
    }
  }
  __syncwarp();
  const int g = emuLane >> 2, c = emuLane & 3;
  for (int e = 0; e < 4; e++) {
    const int row = g + (e >= 2 ? 8 : 0), col = 2 * c + (e & 1);
    float acc = d[e];
    for (int k = 0; k < 16; k++) acc += A[row][k] * B[k][col];
    d[e] = acc;
  }
}
// f16 (IEEE binary16) bits <-> values for the f16 mma / f16x2 FMA emulation (round to nearest even, subnormals, inf).
inline float emuHalf(uint32_t w, int hi) {
  const uint32_t h = (w >> (hi ? 16 : 0)) & 0xffffu;
  const int e = (h >> 10) & 31, f = h & 1023;
  const float v = e == 0 ? std::ldexp((float)f, -24) : e == 31 ? (f ? NAN : INFINITY) : std::ldexp((float)(1024 + f), e - 25);
  return (h & 0x8000u) ? -v : v;
}
inline uint32_t emuHalfBits(double v) {
  const uint32_t sign = std::signbit(v) ? 0x8000u : 0u;
  double a = std::fabs(v);
  if (std::isnan(a)) return 0x7e00u;
  if (a >= 65520.0) return sign | 0x7c00u;
  int e;
  std::frexp(a, &e);  // a = m·2^e, m in [0.5, 1)
  const int ex = std::max(e - 1, -14);  // unbiased exponent (subnormals share -14)
  const double q = std::nearbyint(std::ldexp(a, 10 - ex));  // significand in units of 2^(ex-10), rounded to even
  uint32_t bits = q >= 2048.0 ? (uint32_t)((ex + 16) << 10) : (q >= 1024.0 ? (uint32_t)((ex + 15) << 10) + (uint32_t)q - 1024u : (uint32_t)q);
  return sign | bits;
}
// mma.sync.m16n8k16 row.col f32 += f16 x f16, from the PTX fragment layout.
inline void llmrtEmuMmaF16(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  uint64_t* mine = emuBlk->aux[emuWarp][emuLane];
  mine[0] = a[0]; mine[1] = a[1]; mine[2] = a[2]; mine[3] = a[3]; mine[4] = b0; mine[5] = b1;
  __syncwarp();
  float A[16][16], B[16][8];
  for (int l = 0; l < 32; l++) {
    const uint64_t* f = emuBlk->aux[emuWarp][l];
    const int g = l >> 2, c = l & 3;
    for (int e = 0; e < 2; e++) {
      A[g][2 * c + e] = emuHalf((uint32_t)f[0], e);
      A[g + 8][2 * c + e] = emuHalf((uint32_t)f[1], e);
      A[g][8 + 2 * c + e] = emuHalf((uint32_t)f[2], e);
      A[g + 8][8 + 2 * c + e] = emuHalf((uint32_t)f[3], e);
      B[2 * c + e][g] = emuHalf((uint32_t)f[4], e);
      B[8 + 2 * c + e][g] = emuHalf((uint32_t)f[5], e);
    }
  }
  __syncwarp();
  const int g = emuLane >> 2, c = emuLane & 3;
  for (int e = 0; e < 4; e++) {
    const int row = g + (e >= 2 ? 8 : 0), col = 2 * c + (e & 1);
    float acc = d[e];
    for (int k = 0; k < 16; k++) acc += A[row][k] * B[k][col];
    d[e] = acc;
  }
}
