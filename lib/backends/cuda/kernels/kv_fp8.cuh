// Quantized KV cache elements of bfloat16 engines (issue 14; the CPU backend's rule, lib/backends/cpu/kv_cache.ts):
// element x (the float a bf16 cache would round) is stored as q = encode(x / s) (IEEE quotient) and read as
// decode(q) · s, with s the float32 scale of its (layer, k | v, kv head): kvScales [2, numKvHeads] of the layer
// (K heads, then V heads). FP8 (u8 cache bytes): e4m3, round to nearest even, saturating to ±448 (sm_89+ cvt);
// INT8 (signed char cache bytes): round to nearest even, clamped to ±127, NaN → 0.
#pragma once
#include "common.cuh"

typedef unsigned char u8;
typedef signed char i8;

/** The stored e4m3 byte of x under scale s. */
static __device__ __forceinline__ u8 kvEncodeE4m3(float x, float s) {
  unsigned short p;
  asm("cvt.rn.satfinite.e4m3x2.f32 %0, %1, %2;" : "=h"(p) : "f"(0.f), "f"(x / s));  // second source → low byte
  return (u8)(p & 0xffu);
}

/** Two e4m3 bytes (low byte first) → two floats (exact: e4m3 ⊂ f16 ⊂ f32). */
static __device__ __forceinline__ void e4m3x2ToF32(unsigned short w, float& lo, float& hi) {
  u32 h2;
  asm("cvt.rn.f16x2.e4m3x2 %0, %1;" : "=r"(h2) : "h"(w));
  asm("cvt.f32.f16 %0, %1;" : "=f"(lo) : "h"((unsigned short)(h2 & 0xffffu)));
  asm("cvt.f32.f16 %0, %1;" : "=f"(hi) : "h"((unsigned short)(h2 >> 16)));
}

/** bf16(f[e] · s) for e = 0..7, as one 16-byte vector (element 0 lowest). */
static __device__ __forceinline__ uint4 bf16x8Scaled(const float (&f)[8], float s) {
  uint4 r;
  r.x = (u32)fromF<bf16_t>(f[0] * s) | ((u32)fromF<bf16_t>(f[1] * s) << 16);
  r.y = (u32)fromF<bf16_t>(f[2] * s) | ((u32)fromF<bf16_t>(f[3] * s) << 16);
  r.z = (u32)fromF<bf16_t>(f[4] * s) | ((u32)fromF<bf16_t>(f[5] * s) << 16);
  r.w = (u32)fromF<bf16_t>(f[6] * s) | ((u32)fromF<bf16_t>(f[7] * s) << 16);
  return r;
}

/** 8 e4m3 bytes (w.x: elements 0..3) → 8 bf16 of decode(q) · s, as one 16-byte vector (element 0 lowest). */
static __device__ __forceinline__ uint4 e4m3x8ToBf16(uint2 w, float s) {
  float f[8];
  e4m3x2ToF32((unsigned short)(w.x & 0xffffu), f[0], f[1]);
  e4m3x2ToF32((unsigned short)(w.x >> 16), f[2], f[3]);
  e4m3x2ToF32((unsigned short)(w.y & 0xffffu), f[4], f[5]);
  e4m3x2ToF32((unsigned short)(w.y >> 16), f[6], f[7]);
  return bf16x8Scaled(f, s);
}

/** The stored int8 of x under scale s: rne(x / s) clamped to ±127 (NaN → 0, as cvt.rni does). */
static __device__ __forceinline__ i8 kvEncodeI8(float x, float s) {
  int r;
  asm("cvt.rni.s32.f32 %0, %1;" : "=r"(r) : "f"(x / s));
  return (i8)max(-127, min(127, r));
}

/** 8 int8 (w.x: elements 0..3) → 8 bf16 of q · s, as one 16-byte vector (element 0 lowest). */
static __device__ __forceinline__ uint4 i8x8ToBf16(uint2 w, float s) {
  float f[8];
#pragma unroll
  for (int e = 0; e < 4; e++) {
    f[e] = (float)(int)(signed char)((w.x >> (8 * e)) & 0xffu);
    f[4 + e] = (float)(int)(signed char)((w.y >> (8 * e)) & 0xffu);
  }
  return bf16x8Scaled(f, s);
}

/** The stored byte of x under scale s in a cache of KT (u8: e4m3, i8: int8). */
template <typename KT>
__device__ __forceinline__ KT kvEncode(float x, float s);
template <> __device__ __forceinline__ u8 kvEncode<u8>(float x, float s) { return kvEncodeE4m3(x, s); }
template <> __device__ __forceinline__ i8 kvEncode<i8>(float x, float s) { return kvEncodeI8(x, s); }

/** 8 stored bytes → 8 bf16 of decode(q) · s (u8: e4m3, i8: int8). */
template <typename KT>
__device__ __forceinline__ uint4 kvDecode8(uint2 w, float s) {
  if constexpr (sizeof(KT) == 1 && (KT)(-1) < (KT)0) return i8x8ToBf16(w, s);
  else return e4m3x8ToBf16(w, s);
}
