// Warp-level helpers of the tensor-core decode attention kernels (decode_attention_batch.cu: batch / batch2 / batch2w;
// decode_attention_batch4.cu): mma.sync m16n8k16 with f32 sums, ldmatrix x4, shared-memory addresses, 16-byte cp.async
// copies, L2-only loads, bf16 / f16 pairs and e4m3 pairs as mma fragments, and the XOR swizzle of 16-byte chunks.
// sm_80+ (the e4m3 conversion sm_89+). Fragment layouts (PTX ISA, m16n8k16): g = lane / 4, c = lane % 4;
//   A a0:(g, 2c..2c+1) a1:(g+8, 2c..) a2:(g, 8+2c..) a3:(g+8, 8+2c..);  B b0:(k 2c..2c+1, n g) b1:(k 8+2c.., n g);
//   C c0,c1:(g, 2c..2c+1) c2,c3:(g+8, 2c..). Lower 16 bits hold the lower column / k index.
#pragma once
#include "common.cuh"

/** d += A · B, bf16 inputs, f32 sums. */
__device__ __forceinline__ void mmaBf16(float (&d)[4], const u32 (&a)[4], u32 b0, u32 b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
/** d += A · B, f16 inputs, f32 sums. */
__device__ __forceinline__ void mmaF16(float (&d)[4], const u32 (&a)[4], u32 b0, u32 b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

/** The shared-state-space address of a pointer into shared memory. */
__device__ __forceinline__ u32 smemAddr(const void* p) {
  u64 g;
  asm("cvta.to.shared.u64 %0, %1;" : "=l"(g) : "l"(p));
  return (u32)g;
}

/** ldmatrix x4: lane l addresses row l % 8 of 8x8 matrix l / 8; plain or transposed. */
template <bool TRANS>
__device__ __forceinline__ void ldsmX4(u32 (&r)[4], const void* p) {
  const u32 a = smemAddr(p);
  if (TRANS)
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(a) : "memory");
  else
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(a) : "memory");
}

/** 16 bytes global -> shared, asynchronous; srcBytes 0 writes zeros and reads nothing. */
__device__ __forceinline__ void cpAsync16(void* dst, const void* src, int srcBytes) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smemAddr(dst)), "l"(src), "r"(srcBytes) : "memory");
}
__device__ __forceinline__ void cpAsyncCommit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
/** Waits until at most N committed cp.async groups are still in flight. */
template <int N>
__device__ __forceinline__ void cpAsyncWait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory"); }

/** A float loaded through L2 only (another block's partial results). */
__device__ __forceinline__ float ldcgF32(const float* p) {
  float v;
  asm volatile("ld.global.cg.f32 %0, [%1];" : "=f"(v) : "l"(p));
  return v;
}

/** Two floats → bf16x2 (round to nearest even; lo in the low half). */
__device__ __forceinline__ u32 packBf16(float lo, float hi) { return (u32)fromF<bf16_t>(lo) | ((u32)fromF<bf16_t>(hi) << 16); }
/** Two floats → f16x2 (round to nearest even; lo in the low half). */
__device__ __forceinline__ u32 packF16(float lo, float hi) {
  u32 r;
  asm("cvt.rn.f16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo));
  return r;
}
/** f16 bits of x (round to nearest even). */
__device__ __forceinline__ unsigned short f16Bits(float x) {
  unsigned short h;
  asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(x));
  return h;
}
/** The two e4m3 bytes in the low 16 bits of w (low byte first) → f16x2 (exact). */
__device__ __forceinline__ u32 e4m3x2ToF16x2(u32 w) {
  u32 r;
  asm("cvt.rn.f16x2.e4m3x2 %0, %1;" : "=r"(r) : "h"((unsigned short)(w & 0xffffu)));
  return r;
}

/** Element offset of 16-byte chunk c of row r in a [rows, HD] 16-bit tile, chunks XOR-swizzled by r % 8 (conflict-free ldmatrix). */
template <int HD>
__device__ __forceinline__ int swizzle16(int r, int c) { return r * HD + ((c ^ (r & 7)) << 3); }
