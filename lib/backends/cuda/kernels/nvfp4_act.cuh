// NVFP4 activation quantization of kernels/nvfp4_mma.cu (shared with session 15's decode_attention_sk q4 entry points
// until nvfp4AttnAct was removed): a 16-value block's e4m3 scale and doubled e2m1 codes as lib/util/e2m1.ts computes
// them, in the int8 B-fragment layout nvfp4_mma.cu's GEMVs read (its header describes the layout).
#pragma once
#include "common.cuh"

typedef unsigned char u8;

/** The value of an e4m3 byte (NaN bytes are never produced by the quantizers here). */
__device__ __forceinline__ float nvE4m3(u32 b) {
  const u32 e = (b >> 3) & 15u, m = b & 7u;
  const float v = e ? __uint_as_float(((e + 120u) << 23) | (m << 20)) : (float)m * 0.001953125f;
  return (b & 0x80u) ? -v : v;
}

/** The e4m3 byte of a float (round to nearest even, saturating to ±448). */
__device__ __forceinline__ u32 nvE4m3Byte(float v) {
  unsigned short h;
  asm("cvt.rn.satfinite.e4m3x2.f32 %0, %1, %2;" : "=h"(h) : "f"(0.f), "f"(v));
  return h & 0xffu;
}

/** Twice the e2m1 value nearest to v (RNE, saturating to ±6; NaN → +6), as lib/util/e2m1.ts, as an int. */
__device__ __forceinline__ int nvE2m1x2(float v) {
  if (v != v) return 12;
  const float a = fabsf(v);
  const int r = a <= 0.25f ? 0 : a < 0.75f ? 1 : a <= 1.25f ? 2 : a < 1.75f ? 3 : a <= 2.5f ? 4 : a < 3.5f ? 6 : a <= 5.f ? 8 : 12;
  return (__float_as_uint(v) >> 31) ? -r : r;
}

/**
 * Values i..i+3 (i % 4 == 0) of a row, one lane's quarter of a 16-value block whose other quarters the lane's quad
 * holds (lanes 4j..4j+3, every lane of the warp calling; `active` false: past the row, no values): the block quantized
 * as lib/util/e2m1.ts does under the global scale a (six = f32(6a)) — the doubled codes of these 4 values into xp / xn
 * (the row's, in the B fragment order: slice t = (i / 4) % 4 of the block) and the block's e4m3 scale into sxr[i / 16].
 */
__device__ __forceinline__ void nvActQuad(const float (&f)[4], bool active, int i, float a, float six, u8* xp, u8* xn, float* sxr) {
  float amax = active ? fmaxf(fmaxf(fabsf(f[0]), fabsf(f[1])), fmaxf(fabsf(f[2]), fabsf(f[3]))) : 0.f;
  amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, 1));
  amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, 2));
  if (!active) return;
  const float sb = amax > 0.f ? nvE4m3(nvE4m3Byte(__fdiv_rn(amax, six))) : 1.f;
  const float div = __fmul_rn(sb, a);
  const int blk = i / 16, q = blk / 4, b = blk % 4, t = (i / 4) % 4;
  u32 p = 0, n = 0;
#pragma unroll
  for (int e = 0; e < 4; e++) {
    const int c = div > 0.f ? nvE2m1x2(__fdiv_rn(f[e], div)) : 0;
    p |= ((u32)c & 0xffu) << (8 * e);
    n |= ((u32)(-c) & 0xffu) << (8 * e);
  }
  const long long o = (long long)q * 64 + t * 16 + b * 4;
  *reinterpret_cast<u32*>(xp + o) = p;
  *reinterpret_cast<u32*>(xn + o) = n;
  if (t == 0) sxr[blk] = sb;
}
