// Prefill attention on Hopper warpgroup MMAs (issue 16 item 2; sm_90a: compile with --gpu-architecture=sm_90a).
// Same semantics and parameters as flash_prefill_bf16_hd* (flash_prefill.cu) and paged_attention_prefill_mma_bf16_hd*:
// packed token t of sequence s (seqStarts) at position p = positions[t] attends to the cached keys of positions
// max(0, p + 1 - window) .. p of its own sequence (window 0 = unlimited); query head h reads kv head
// h / (numHeads / numKvHeads); softmax(q.k * scale) in fp32. q, out [numTokens, numHeads, headDim] bf16; the cache
// [numBlocks, 2 (k, v), tokensPerBlock, numKvHeads, headDim] bf16 must already hold every attended key.
//
// extern "C" __global__ void flash_prefill_wg_bf16_hd{64|128}(
//     const bf16_t* q, bf16_t* out, const bf16_t* kvCache, const int* positions, const int* seqStarts,
//     const int* blockTables, int numTokens, int numSeqs, int numHeads, int numKvHeads,
//     int tokensPerBlock, int maxBlocksPerSeq, float scale, int window)
//   grid (numHeads, ceil(numTokens / BM) + numSeqs, 1) (blocks past the last query tile exit), block 128 NWG threads,
//   dynamic shared memory FW_SMEM(HD, NWG, BN, NS) bytes (over 48 KB: cuFuncSetAttribute MAX_DYNAMIC_SHARED_SIZE_BYTES).
//   The entry points' (NWG, BN, NS) are in the FW_ENTRY lines at the end (attention_choice.ts mirrors them).
//
// A block takes BM = 64 NWG query rows of one head: warpgroup w owns rows 64w .. 64w + 63 (each warp 16 of them, as
// in an mma.sync m16 tile). Per key tile of BN keys: S = Q K^T by wgmma.m64nBNk16 with Q and K read by the tensor
// cores from shared memory (descriptors), then the online softmax in registers (the accumulator layout is the
// mma.sync C layout per n8 column tile), then O += P V by wgmma.m64nHDk16 with P from registers (the S accumulators
// rounded to bf16 are already the A fragments) and V from shared memory (transposed operand). Shared tiles use the
// 128-byte swizzle: a row of 64 bf16 is 128 bytes whose 16-byte chunk c sits at c ^ (row & 7); a head dim of 128 is
// two such 64-column blocks, one after the other. K/V tiles come from the paged cache by cp.async into an NS-stage
// ring (tile j + NS - 1 loads while tile j computes; one barrier per tile); generic-proxy writes are made visible
// to the tensor cores' async proxy by fence.proxy.async before the barrier. Rows past the sequence end and keys
// past the attended range are zero-filled (cp.async src-size 0), so NaN in unused cache blocks is never read.
// Masking (causal / window) only on key tiles that cross a warpgroup's row limits; tiles none of a warpgroup's rows
// attends are skipped by that warpgroup. Query tiles are numbered sequence by sequence, the last (longest) first;
// heads vary fastest (a kv group's heads share K/V through L2).
#include "common.cuh"

#define FW_INT_MAX 0x7fffffff
#define FW_SMEM(HD, NWG, BN, NS) ((64 * (NWG) + 2 * (NS) * (BN)) * (HD) * 2 + 1024)

/** wgmma shared-memory descriptor, 128-byte swizzle: start address, leading / stride byte offsets. */
__device__ __forceinline__ u64 wgDesc(u32 addr, u32 lbo, u32 sbo) {
  return (u64)((addr & 0x3FFFFu) >> 4) | ((u64)((lbo >> 4) & 0x3FFFu) << 16) | ((u64)((sbo >> 4) & 0x3FFFu) << 32) | (1ull << 62);
}
/** Byte offset of 16-byte chunk c (0 .. HD/8 - 1) of row r in a swizzled tile of R rows (R % 8 == 0). */
__device__ __forceinline__ u32 fwSw(int R, int r, int c) {
  return (u32)((c >> 3) * R * 128 + r * 128 + (((c & 7) ^ (r & 7)) << 4));
}
// Device helpers (inline PTX); tools/cuda-kernel-check/emu/wgmma_emu.h has CPU stand-ins for the emulation build.
#ifndef LLMRT_EMU
__device__ __forceinline__ u32 fwSmem(const void* p) {
  u64 g;
  asm("cvta.to.shared.u64 %0, %1;" : "=l"(g) : "l"(p));
  return (u32)g;
}
__device__ __forceinline__ void fwCpAsync16(u32 dst, const void* src, int bytes) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(bytes) : "memory");
}
__device__ __forceinline__ void fwCommit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int N>
__device__ __forceinline__ void fwWait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory"); }
/** Orders this thread's generic-proxy shared-memory writes (cp.async) before later async-proxy reads (wgmma). */
__device__ __forceinline__ void fwFenceProxy() { asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory"); }
__device__ __forceinline__ void wgFence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wgCommit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
template <int N>
__device__ __forceinline__ void wgWait() { asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory"); }
/** Pins accumulator registers in place around wgmma issue / wait (no reads or writes move across). */
template <int N>
__device__ __forceinline__ void wgFenceRegs(float (&d)[N]) {
#pragma unroll
  for (int i = 0; i < N; i++) asm volatile("" : "+f"(d[i])::"memory");
}
template <int N>
__device__ __forceinline__ void wgFenceRegs(u32 (&a)[N][4]) {
#pragma unroll
  for (int i = 0; i < N; i++) asm volatile("" : "+r"(a[i][0]), "+r"(a[i][1]), "+r"(a[i][2]), "+r"(a[i][3])::"memory");
}
/** Two floats -> packed bf16 (lo in the low half), round to nearest even. */
__device__ __forceinline__ u32 fwPack(float lo, float hi) {
  u32 r;
  asm("cvt.rn.bf16x2.f32 %0, %1, %2;\n" : "=r"(r) : "f"(hi), "f"(lo));
  return r;
}
__device__ __forceinline__ float fwExp2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
  return y;
}
__device__ __forceinline__ int fwWarpMin(int v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = min(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}
__device__ __forceinline__ int fwWarpMax(int v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = max(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}
// Generated wrappers (one per shape used): wgmma.mma_async m64nNk16, bf16 inputs, f32 accumulators.
/** D (+)= A B: A [64 x 16] from a shared-memory descriptor (K-major), B [64 x 16] from one (K-major); scaleD 0: D = A B. */
__device__ __forceinline__ void wgSS64(float (&d)[32], u64 descA, u64 descB, int scaleD) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, %32, %33, p, 1, 1, 0, 0;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
      : "l"(descA), "l"(descB), "r"(scaleD));
}

/** D (+)= A B: A [64 x 16] from a shared-memory descriptor (K-major), B [128 x 16] from one (K-major); scaleD 0: D = A B. */
__device__ __forceinline__ void wgSS128(float (&d)[64], u64 descA, u64 descB, int scaleD) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, %64, %65, p, 1, 1, 0, 0;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
      : "l"(descA), "l"(descB), "r"(scaleD));
}

/** D += A B: A [64 x 16] bf16 from registers (the mma.sync A fragment of each warp's 16 rows), B [16 x 64] from a
 * shared-memory descriptor, MN-major (transposed: rows of 16 keys, 64 contiguous columns). */
__device__ __forceinline__ void wgRS64(float (&d)[32], const u32 (&a)[4], u64 descB) {
  asm volatile(
      "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, {%32, %33, %34, %35}, %36, 1, 1, 1, 1;\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(descB));
}

/** D += A B: A [64 x 16] bf16 from registers (the mma.sync A fragment of each warp's 16 rows), B [16 x 128] from a
 * shared-memory descriptor, MN-major (transposed: rows of 16 keys, 128 contiguous columns). */
__device__ __forceinline__ void wgRS128(float (&d)[64], const u32 (&a)[4], u64 descB) {
  asm volatile(
      "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, {%64, %65, %66, %67}, %68, 1, 1, 1, 1;\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(descB));
}


#else
#include "wgmma_emu.h"
#endif

/** Query tile -> (sequence, token range); tiles are numbered sequence by sequence. */
__device__ __forceinline__ bool fwQueryTile(const int* seqStarts, int numSeqs, int tile, int BM, int* seq, int* qStart, int* qEnd) {
  int b = tile;
  for (int i = 0; i < numSeqs; i++) {
    const int a = seqStarts[i], e = seqStarts[i + 1];
    const int nt = (e - a + BM - 1) / BM;
    if (b < nt) {
      *seq = i;
      *qStart = a + b * BM;
      *qEnd = min(e, *qStart + BM);
      return true;
    }
    b -= nt;
  }
  return false;
}

/**
 * fwQueryTile's answer found by the whole block (session 12, `prefillTileScan`): NT threads take NT sequences a round, a
 * block-wide prefix sum of their tile counts, and the thread whose sequence holds `tile` publishes it. One round of loads
 * (numSeqs <= NT) instead of fwQueryTile's walk of up to numSeqs dependent iterations by every thread; the same mapping.
 * Every thread of the block must call it (it synchronizes).
 */
template <int NT>
__device__ __forceinline__ bool fwQueryTileBlock(const int* seqStarts, int numSeqs, int tile, int BM, int* seq, int* qStart, int* qEnd) {
  constexpr int NW = NT / 32;
  __shared__ int wsum[NW];
  __shared__ int found[3];
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  if (numSeqs <= 0) return false;  // block-uniform; found[] is only read after a barrier below
  if (tid == 0) found[0] = -1;
  int base = 0;  // tiles of the sequences of earlier rounds
  for (int r0 = 0; r0 < numSeqs; r0 += NT) {
    const int i = r0 + tid;
    int nt = 0, a = 0, e = 0;
    if (i < numSeqs) {
      a = seqStarts[i];
      e = seqStarts[i + 1];
      nt = (e - a + BM - 1) / BM;
    }
    int x = nt;  // inclusive scan over the warp
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
      const int y = __shfl_up_sync(0xffffffffu, x, o);
      if (lane >= o) x += y;
    }
    if (lane == 31) wsum[warp] = x;
    __syncthreads();
    int before = 0, total = 0;
#pragma unroll
    for (int w = 0; w < NW; w++) {
      const int v = wsum[w];
      before += w < warp ? v : 0;
      total += v;
    }
    const int hi = base + before + x, lo = hi - nt;  // this sequence's tiles [lo, hi)
    if (i < numSeqs && tile >= lo && tile < hi) {
      found[0] = i;
      found[1] = a + (tile - lo) * BM;
      found[2] = min(e, a + (tile - lo) * BM + BM);
    }
    __syncthreads();
    if (found[0] >= 0) break;  // block-uniform
    base += total;
  }
  if (found[0] < 0) return false;
  *seq = found[0];
  *qStart = found[1];
  *qEnd = found[2];
  return true;
}

/**
 * cp.async of keys [k0, k0 + BN) of K (kOff) and of V (vOff) into the swizzled tiles at dst and dst + BN * HD * 2; zero
 * past kHi. Each 16-byte chunk's cache address (block table lookup, row offset) is computed once for both.
 */
template <int HD, int BN, int NT>
__device__ __forceinline__ void fwLoadKV(u32 dst, const bf16_t* kv, const int* table, int k0, int kHi, long long kOff, long long vOff,
                                         int tokensPerBlock, int tpbShift, int rowWidth, int tid) {
  constexpr int CPR = HD / 8, NLD = (BN * CPR + NT - 1) / NT;
  constexpr u32 KV_BYTES = BN * HD * 2;
#pragma unroll
  for (int u = 0; u < NLD; u++) {
    const int v = tid + u * NT;
    if (BN * CPR % NT != 0 && v >= BN * CPR) break;
    const int j = v / CPR, c = v - j * CPR, kp = k0 + j;
    const bf16_t* src = kv;
    long long dv = 0;
    int bytes = 0;
    if (kp < kHi) {
      const int bi = tpbShift >= 0 ? kp >> tpbShift : kp / tokensPerBlock;
      const int off = kp - bi * tokensPerBlock;
      src = kv + ((long long)table[bi] * 2 * tokensPerBlock + off) * rowWidth + kOff + c * 8;
      dv = vOff - kOff;
      bytes = 16;
    }
    const u32 d = dst + fwSw(BN, j, c);
    fwCpAsync16(d, src, bytes);
    fwCpAsync16(d + KV_BYTES, src + dv, bytes);
  }
}

/**
 * Mask (unless `full`) and online softmax of one key tile's scores S (accumulator layout: this thread's rows g and
 * g + 8, columns 8 nt + 2 c + e) on unscaled scores (scale > 0): row max over the quad, p = 2^(s qscale - m qscale);
 * updates m and l (this thread's columns; the quad sums at the end), returns each row's rescale factor of O in cf and
 * P rounded to bf16 as the A fragments of the P V MMA (16 keys each) in pa.
 */
template <int BN>
__device__ __forceinline__ void fwSoftmaxTile(const float (&sacc)[BN / 2], u32 (&pa)[BN / 16][4], float (&m)[2], float (&l)[2], float (&cf)[2],
                                              int k0, bool full, const int (&pr)[2], const int (&lr)[2], int c, float qscale) {
  // sacc is only read (its registers may be the inputs of a wgmma still in flight: ptxas serializes wgmma when other
  // instructions write them); masked scores and probabilities live in sv.
  constexpr int NNT = BN / 8;
  float sv[BN / 2];
  if (full) {  // warpgroup-uniform: most tiles need no per-element compares
#pragma unroll
    for (int i = 0; i < BN / 2; i++) sv[i] = sacc[i];
  } else {
#pragma unroll
    for (int nt = 0; nt < NNT; nt++) {
#pragma unroll
      for (int e = 0; e < 4; e++) {
        const int kp = k0 + nt * 8 + 2 * c + (e & 1), hf = e >> 1;
        sv[4 * nt + e] = kp < lr[hf] || kp > pr[hf] ? -LLMRT_INF : sacc[4 * nt + e];
      }
    }
  }
#pragma unroll
  for (int hf = 0; hf < 2; hf++) {
    float mx = -LLMRT_INF;
#pragma unroll
    for (int nt = 0; nt < NNT; nt++) mx = fmaxf(mx, fmaxf(sv[4 * nt + 2 * hf], sv[4 * nt + 2 * hf + 1]));
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
    const float mn = fmaxf(m[hf], mx);
    const float ms = mn == -LLMRT_INF ? 0.f : mn * qscale;
    cf[hf] = fwExp2(m[hf] * qscale - ms);  // 0 while the row had no key (m = -inf)
    m[hf] = mn;
    float rs = 0.f;
#pragma unroll
    for (int nt = 0; nt < NNT; nt++) {
#pragma unroll
      for (int e = 0; e < 2; e++) {
        const float p = fwExp2(fmaf(sv[4 * nt + 2 * hf + e], qscale, -ms));
        sv[4 * nt + 2 * hf + e] = p;
        rs += p;
      }
    }
    l[hf] = l[hf] * cf[hf] + rs;
  }
#pragma unroll
  for (int kc = 0; kc < BN / 16; kc++) {
    pa[kc][0] = fwPack(sv[8 * kc + 0], sv[8 * kc + 1]);
    pa[kc][1] = fwPack(sv[8 * kc + 2], sv[8 * kc + 3]);
    pa[kc][2] = fwPack(sv[8 * kc + 4], sv[8 * kc + 5]);
    pa[kc][3] = fwPack(sv[8 * kc + 6], sv[8 * kc + 7]);
  }
}

/**
 * O *= the rows' rescale factors (rows g: cf[0], g + 8: cf[1]). SKIP: not when every row of the warp keeps its max (all
 * factors exactly 1 = ex2(0): the product would be the same bits); a warp-uniform branch, no wgmma inside. Not in the
 * OVL schedule: there the branch makes ptxas serialize the wgmma pipeline (C7513).
 */
template <int NDT, bool SKIP>
__device__ __forceinline__ void fwRescale(float (&o)[4 * NDT], const float (&cf)[2]) {
  if (SKIP && !__any_sync(0xffffffffu, cf[0] != 1.f || cf[1] != 1.f)) return;
#pragma unroll
  for (int dt = 0; dt < NDT; dt++) {
    o[4 * dt] *= cf[0];
    o[4 * dt + 1] *= cf[0];
    o[4 * dt + 2] *= cf[1];
    o[4 * dt + 3] *= cf[1];
  }
}

/** x / s from inv = 1 / s: the product, corrected by one FMA of the exact remainder (fp8_gemv.cu divBy). */
__device__ __forceinline__ float fwDivBy(float x, float s, float inv) {
  const float q = x * inv;
  return fmaf(fmaf(-q, s, x), inv, q);
}
/**
 * Two packed bf16 (lo in the low half) → two e4m3 bytes (lo in the low byte) of v / s: the bytes fp8_quantize_bf16 writes
 * for these bf16 values (divBy, round to nearest even, saturating to ±448).
 */
__device__ __forceinline__ unsigned short fwE4m3Pair(u32 p, float s, float inv) {
  const float lo = fwDivBy(__uint_as_float(p << 16), s, inv), hi = fwDivBy(__uint_as_float(p & 0xffff0000u), s, inv);
#ifndef LLMRT_EMU
  unsigned short r;
  asm("cvt.rn.satfinite.e4m3x2.f32 %0, %1, %2;" : "=h"(r) : "f"(hi), "f"(lo));
  return r;
#else
  auto e4m3 = [](float x) -> unsigned {  // lowbit_emu.h's llmrtEmuE4m3
    if (x != x) return 0x7f;
    const unsigned sign = (__float_as_uint(x) >> 31) ? 0x80u : 0u;
    const double a = fabs((double)x);
    if (a >= 448.0) return sign | 0x7eu;
    auto rne = [](double v) { const double f = floor(v), d = v - f; return d > 0.5 ? f + 1 : d < 0.5 ? f : (fmod(f, 2.0) == 0 ? f : f + 1); };
    if (a < 0.015625) return sign | (unsigned)rne(a * 512.0);
    int e = 0;
    frexp(a, &e);
    e -= 1;
    const double qv = rne(a * ldexp(1.0, 3 - e));
    return sign | (unsigned)(((e + 7) << 3) + (int)qv - 8);
  };
  return (unsigned short)(e4m3(lo) | (e4m3(hi) << 8));
#endif
}

// HD head dim (64 / 128), NWG warpgroups (BM = 64 NWG query rows), BN keys per tile (64 / 128), NS cp.async stages
// (>= 2).
// OVL (NS >= 3): each warpgroup issues S(j + 1) = Q K(j + 1)^T and O += P(j) V(j) back to back and runs the softmax of
// tile j + 1 while the tensor cores do P(j) V(j); tile j + NS - 2 loads while tile j computes (OVL off: tile j + NS - 1,
// no overlap inside a warpgroup, tiles none of a warpgroup's rows attends skipped).
// xq (session 11, the _q8 entry points; nullptr: out as usual): out is not written; instead the bf16-rounded output rows
// as e4m3 bytes of v / actScale into xq [numTokens, numHeads * HD] and actScale into xqScale[t] (fwE4m3Pair).
template <int HD, int NWG, int BN, int NS, bool OVL = false, bool FT = false>
__device__ __forceinline__ void flashWgImpl(const bf16_t* q, bf16_t* out, const bf16_t* kv, const int* positions,
    const int* seqStarts, const int* blockTables, int numSeqs, int numHeads, int numKvHeads, int tokensPerBlock,
    int maxBlocksPerSeq, float scale, int window, unsigned char* smemRaw, unsigned char* xq = nullptr, float* xqScale = nullptr,
    float actScale = 0.f) {
  constexpr int NT = 128 * NWG, BM = 64 * NWG, CPR = HD / 8, NDT = HD / 8;
  constexpr u32 Q_BYTES = BM * HD * 2, KV_BYTES = BN * HD * 2;
  static_assert(NS >= 2 && (BN == 64 || BN == 128) && (HD == 64 || HD == 128) && (!OVL || NS >= 3), "tiling");
  // [0 .. 1]: the block's key range; then per warpgroup: min p, max p, min lo, max lo.
  __shared__ int ranges[2 + 4 * NWG];

  int s, qStart, qEnd;
  // FT (the _t entry points, prefillTileScan): the block finds its tile together (fwQueryTileBlock); the same tile.
  if (FT ? !fwQueryTileBlock<NT>(seqStarts, numSeqs, gridDim.y - 1 - blockIdx.y, BM, &s, &qStart, &qEnd)
         : !fwQueryTile(seqStarts, numSeqs, gridDim.y - 1 - blockIdx.y, BM, &s, &qStart, &qEnd)) {
    return;
  }
  const int h = blockIdx.x;
  const int kvh = h / (numHeads / numKvHeads);
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g = lane >> 2, c = lane & 3;
  const int wg = warp >> 2;
  const int rowWidth = numKvHeads * HD;
  const int* table = blockTables + (long long)s * maxBlocksPerSeq;
  const float qscale = scale * LLMRT_LOG2E;
  const int tpbShift = (tokensPerBlock & (tokensPerBlock - 1)) == 0 ? __ffs(tokensPerBlock) - 1 : -1;
  const u32 sQ = (fwSmem(smemRaw) + 1023u) & ~1023u;
  const u32 sKV = sQ + Q_BYTES;

  if (tid < 2 + 4 * NWG) ranges[tid] = (tid < 2) ? (tid == 0 ? FW_INT_MAX : 0) : ((tid - 2) % 4 == 0 || (tid - 2) % 4 == 2 ? FW_INT_MAX : ((tid - 2) % 4 == 1 ? -1 : 0));
  // Q rows (zero past qEnd) into the swizzled Q tile: part of the first cp.async group.
#pragma unroll
  for (int u = 0; u < BM * CPR / NT; u++) {  // BM * CPR = 512 NWG (hd 64) / 1024 NWG: a multiple of NT
    const int v = tid + u * NT;
    const int r = v / CPR, cc = v - r * CPR, t = qStart + r;
    fwCpAsync16(sQ + fwSw(BM, r, cc), q + ((long long)(t < qEnd ? t : qStart) * numHeads + h) * HD + cc * 8, t < qEnd ? 16 : 0);
  }
  __syncthreads();
  // This thread's rows: g and g + 8 of its warp's 16.
  int pr[2], lr[2];
  {
    int mnP = FW_INT_MAX, mxP = -1, mnLo = FW_INT_MAX, mxLo = 0;
#pragma unroll
    for (int hf = 0; hf < 2; hf++) {
      const int t = qStart + warp * 16 + g + 8 * hf;
      const bool v = t < qEnd;
      const int p = v ? positions[t] : -1;
      const int lo = window > 0 ? max(0, p + 1 - window) : 0;
      pr[hf] = p;
      lr[hf] = lo;
      if (v) {
        mnP = min(mnP, p);
        mxP = max(mxP, p);
        mnLo = min(mnLo, lo);
        mxLo = max(mxLo, lo);
      }
    }
    mnP = fwWarpMin(mnP);
    mxP = fwWarpMax(mxP);
    mnLo = fwWarpMin(mnLo);
    mxLo = fwWarpMax(mxLo);
    if (lane == 0) {
      int* w = ranges + 2 + 4 * wg;
      atomicMin(&w[0], mnP);
      atomicMax(&w[1], mxP);
      atomicMin(&w[2], mnLo);
      atomicMax(&w[3], mxLo);
      if (mxP >= 0) {
        atomicMin(&ranges[0], mnLo);
        atomicMax(&ranges[1], mxP + 1);
      }
    }
  }
  __syncthreads();
  const int kvLo = ranges[0], kvHi = ranges[1];
  const int wgMinP = ranges[2 + 4 * wg], wgMaxP = ranges[3 + 4 * wg], wgMinLo = ranges[4 + 4 * wg], wgMaxLo = ranges[5 + 4 * wg];

  float o[HD / 2];
#pragma unroll
  for (int i = 0; i < HD / 2; i++) o[i] = 0.f;
  float m[2] = {-LLMRT_INF, -LLMRT_INF}, l[2] = {0.f, 0.f};

  const long long kOff = (long long)kvh * HD, vOff = kOff + (long long)tokensPerBlock * rowWidth;
  constexpr u32 STAGE = 2 * KV_BYTES;
  // Prologue: tiles 0 .. PRE - 1 (one cp.async group each; Q is in the first).
  constexpr int PRE = OVL ? NS - 2 : NS - 1;
#pragma unroll
  for (int j = 0; j < PRE; j++) {
    const int k0 = kvLo + j * BN;
    if (k0 < kvHi) {
      fwLoadKV<HD, BN, NT>(sKV + j * STAGE, kv, table, k0, kvHi, kOff, vOff, tokensPerBlock, tpbShift, rowWidth, tid);
    }
    fwCommit();
  }
  const u32 qRows = sQ + (u32)(wg * 64 * 128);
  // Warpgroup-uniform: skip a tile none of the warpgroup's rows attends; mask only tiles that cross a row's limits.
  auto active = [&](int k) { return k <= wgMaxP && k + BN - 1 >= wgMinLo; };
  auto fullTile = [&](int k) { return k >= wgMaxLo && k + BN - 1 <= wgMinP; };
  auto issueS = [&](float (&sacc)[BN / 2], u32 sK) {
#pragma unroll
    for (int kk = 0; kk < HD / 16; kk++) {
      const u64 da = wgDesc(qRows + (u32)((kk >> 2) * BM * 128 + (kk & 3) * 32), 16, 1024);
      const u64 db = wgDesc(sK + (u32)((kk >> 2) * BN * 128 + (kk & 3) * 32), 16, 1024);
      if constexpr (BN == 128) wgSS128(sacc, da, db, kk > 0);
      else wgSS64(sacc, da, db, kk > 0);
    }
  };
  auto issuePV = [&](const u32 (&pa)[BN / 16][4], u32 sV) {
#pragma unroll
    for (int kc = 0; kc < BN / 16; kc++) {
      // Transposed (MN-major) B: 16 keys = two 8-row groups, the stride byte offset (1024) apart; the 64-column blocks
      // of V the leading byte offset (BN * 128) apart (the exchanged offsets fault on the H200).
      const u64 dv = wgDesc(sV + (u32)(kc * 2048), BN * 128, 1024);
      if constexpr (HD == 128) wgRS128(o, pa[kc], dv);
      else wgRS64(o, pa[kc], dv);
    }
  };
  if constexpr (OVL) {
    // Barrier point of tile b (key k): its cp.async group landed and is visible to every thread and the tensor cores,
    // every warpgroup is done with tile b - 2 (its P V was waited for), so tile b + NS - 2 loads into that stage.
    auto barrierPoint = [&](int b, int k) {
      fwWait<NS - 3>();
      fwFenceProxy();
      __syncthreads();
      const int kn = k + (NS - 2) * BN, sn = (b + NS - 2) % NS;
      if (kn < kvHi) {
        fwLoadKV<HD, BN, NT>(sKV + sn * STAGE, kv, table, kn, kvHi, kOff, vOff, tokensPerBlock, tpbShift, rowWidth, tid);
      }
      fwCommit();
    };
    // Every tile runs on both warpgroups (a tile none of a warpgroup's rows attends is fully masked: p = 0, cf = 1),
    // so no wgmma sits in a branch (ptxas would serialize them); P(j) is copied from pn once P(j) V(j) is done.
    float sacc[BN / 2];
    u32 pa[BN / 16][4], pn[BN / 16][4];
    int k0 = kvLo, j = 0, st0 = 0;
    barrierPoint(0, k0);
    wgFence();
    issueS(sacc, sKV);
    wgCommit();
    wgWait<0>();
    wgFenceRegs(sacc);
    {
      float cf[2];
      fwSoftmaxTile<BN>(sacc, pa, m, l, cf, k0, fullTile(k0), pr, lr, c, qscale);  // O is still 0
    }
    wgFenceRegs(pa);
    while (k0 + BN < kvHi) {
      const int k1 = k0 + BN, st1 = st0 + 1 == NS ? 0 : st0 + 1;
      barrierPoint(j + 1, k1);
      wgFenceRegs(o);
      wgFence();
      issueS(sacc, sKV + st1 * STAGE);
      wgCommit();
      issuePV(pa, sKV + st0 * STAGE + KV_BYTES);
      wgCommit();
      wgWait<1>();  // S(j + 1) done; P(j) V(j) may still run
      wgFenceRegs(sacc);
      float cf[2];
      fwSoftmaxTile<BN>(sacc, pn, m, l, cf, k1, fullTile(k1), pr, lr, c, qscale);
      wgWait<0>();
      wgFenceRegs(o);
      wgFenceRegs(pa);  // P(j) stays allocated until P(j) V(j) is done
      fwRescale<NDT, false>(o, cf);
#pragma unroll
      for (int kc = 0; kc < BN / 16; kc++) {
#pragma unroll
        for (int e = 0; e < 4; e++) pa[kc][e] = pn[kc][e];
      }
      wgFenceRegs(pa);  // the copies happen here, before the next stage's wgmma
      k0 = k1;
      st0 = st1;
      j++;
    }
    wgFenceRegs(o);
    wgFence();
    issuePV(pa, sKV + st0 * STAGE + KV_BYTES);
    wgCommit();
    wgWait<0>();
    wgFenceRegs(o);
  } else {
    int st = 0;
    for (int k0 = kvLo; k0 < kvHi; k0 += BN) {
      fwWait<NS - 2>();
      fwFenceProxy();
      // Tile k0 visible to every thread (and to the tensor cores); every warpgroup is past the previous tile.
      __syncthreads();
      {
        const int kn = k0 + (NS - 1) * BN;
        const int sn = st == 0 ? NS - 1 : st - 1;
        if (kn < kvHi) {
          fwLoadKV<HD, BN, NT>(sKV + sn * STAGE, kv, table, kn, kvHi, kOff, vOff, tokensPerBlock, tpbShift, rowWidth, tid);
        }
        fwCommit();
      }
      const u32 sK = sKV + st * STAGE;
      st = st == NS - 1 ? 0 : st + 1;
      if (!active(k0)) continue;
      float sacc[BN / 2];
      wgFence();
      issueS(sacc, sK);
      wgCommit();
      wgWait<0>();
      wgFenceRegs(sacc);
      float cf[2];
      u32 pa[BN / 16][4];
      fwSoftmaxTile<BN>(sacc, pa, m, l, cf, k0, fullTile(k0), pr, lr, c, qscale);
      fwRescale<NDT, true>(o, cf);
      wgFenceRegs(o);
      wgFence();
      issuePV(pa, sK + KV_BYTES);
      wgCommit();
      wgWait<0>();
      wgFenceRegs(o);
    }
  }
  fwWait<0>();  // the last (empty) groups

#pragma unroll
  for (int hf = 0; hf < 2; hf++) {
    float ls = l[hf];
    ls += __shfl_xor_sync(0xffffffffu, ls, 1);
    ls += __shfl_xor_sync(0xffffffffu, ls, 2);
    const float inv = ls > 0.f ? 1.f / ls : 0.f;
    const int t = qStart + warp * 16 + g + 8 * hf;
    if (t < qEnd && xq) {
      unsigned char* qrow = xq + ((long long)t * numHeads + h) * HD + 2 * c;
      const float sinv = 1.f / actScale;
#pragma unroll
      for (int dt = 0; dt < NDT; dt++) {
        *reinterpret_cast<unsigned short*>(qrow + dt * 8) = fwE4m3Pair(fwPack(o[4 * dt + 2 * hf] * inv, o[4 * dt + 2 * hf + 1] * inv), actScale, sinv);
      }
      if (h == 0 && c == 0) xqScale[t] = actScale;
    } else if (t < qEnd) {
      bf16_t* orow = out + ((long long)t * numHeads + h) * HD + 2 * c;
#pragma unroll
      for (int dt = 0; dt < NDT; dt++) *reinterpret_cast<u32*>(orow + dt * 8) = fwPack(o[4 * dt + 2 * hf] * inv, o[4 * dt + 2 * hf + 1] * inv);
    }
  }
}

#ifndef LLMRT_EMU
#define FW_DYN_SMEM(NAME) extern __shared__ __align__(1024) unsigned char NAME[]
#else
#define FW_DYN_SMEM(NAME) unsigned char* NAME = llmrtEmuDynSmem()
#endif
// FW_ENTRY(name, head dim, warpgroups, keys per tile, stages, OVL); 128 threads a warpgroup. FW_ENTRY_MB: with a minimum of
// MB resident blocks per SM (__launch_bounds__: registers capped at 65536 / (128 NWG MB)). FW_ENTRY_OF: the one shape of
// every entry point; FT: the block-wide query-tile lookup (prefillTileScan); PRE runs first (FW_PDL or nothing),
// EXTRA_PARAMS / EXTRA_ARGS append parameters (each led by a comma).
#define FW_ENTRY_OF(NAME, HD, NWG, BN, NS, OVL, MB, FT, PRE, EXTRA_PARAMS, EXTRA_ARGS)                              \
  extern "C" __global__ void __launch_bounds__(128 * NWG, MB) NAME(const bf16_t* q, bf16_t* out, const bf16_t* kvCache, \
      const int* positions, const int* seqStarts, const int* blockTables, int numTokens, int numSeqs, int numHeads,  \
      int numKvHeads, int tokensPerBlock, int maxBlocksPerSeq, float scale, int window EXTRA_PARAMS) {               \
    FW_DYN_SMEM(fwDyn);                                                                                               \
    (void)numTokens;                                                                                                 \
    PRE                                                                                                              \
    flashWgImpl<HD, NWG, BN, NS, OVL, FT>(q, out, kvCache, positions, seqStarts, blockTables, numSeqs, numHeads,    \
                                            numKvHeads, tokensPerBlock, maxBlocksPerSeq, scale, window, fwDyn EXTRA_ARGS); \
  }
// q / the KV cache are the previous kernel's (prefillPdl; a no-op without PDL).
#define FW_PDL pdlWait(); pdlLaunchDependents();
#define FW_ENTRY_MB(NAME, HD, NWG, BN, NS, OVL, MB) FW_ENTRY_MBT(NAME, HD, NWG, BN, NS, OVL, MB, false)
#define FW_ENTRY_MBT(NAME, HD, NWG, BN, NS, OVL, MB, FT) FW_ENTRY_OF(NAME, HD, NWG, BN, NS, OVL, MB, FT, FW_PDL, , )
#define FW_ENTRY(NAME, HD, NWG, BN, NS, OVL) FW_ENTRY_MB(NAME, HD, NWG, BN, NS, OVL, 1)
#if LLMRT_KERNEL(flash_prefill_wg_bf16_hd64)
FW_ENTRY(flash_prefill_wg_bf16_hd64, 64, 2, 64, 3, false)
#endif
#if LLMRT_KERNEL(flash_prefill_wg_bf16_hd128)
FW_ENTRY(flash_prefill_wg_bf16_hd128, 128, 3, 64, 3, true)
#endif
// Session 11 (`fp8AttnQuant`): the entry points' tilings writing the next FP8 linear's input instead of out (flashWgImpl's
// xq): extern "C" __global__ void flash_prefill_wg_q8_bf16_hd{64|128}(...flash_prefill_wg_bf16_hd*'s parameters (out not
// written)..., unsigned char* xq, float* xqScale, float actScale): the e4m3 bytes and row scales fp8_quantize_bf16 writes
// from the entry point's output with a static scale actScale.
#define FW_XQ_PARAMS , unsigned char *xq, float *xqScale, float actScale
#define FW_XQ_ARGS , xq, xqScale, actScale
// Not in kernel_signatures.ts PREFILL_PDL_FAMILIES (never a programmatic dependent launch): no pdlWait.
#define FW_ENTRY_Q8(NAME, HD, NWG, BN, NS, OVL) FW_ENTRY_Q8T(NAME, HD, NWG, BN, NS, OVL, false)
#define FW_ENTRY_Q8T(NAME, HD, NWG, BN, NS, OVL, FT) FW_ENTRY_OF(NAME, HD, NWG, BN, NS, OVL, 1, FT, , FW_XQ_PARAMS, FW_XQ_ARGS)
#if LLMRT_KERNEL(flash_prefill_wg_q8_bf16_hd64)
FW_ENTRY_Q8(flash_prefill_wg_q8_bf16_hd64, 64, 2, 64, 3, false)
#endif
#if LLMRT_KERNEL(flash_prefill_wg_q8_bf16_hd128)
FW_ENTRY_Q8(flash_prefill_wg_q8_bf16_hd128, 128, 3, 64, 3, true)
#endif
// Session 12 (`prefillTileScan`): the four entry points above with the block-wide tile lookup (fwQueryTileBlock), the
// same tiles and bits: flash_prefill_wgt_bf16_hd{64|128}, flash_prefill_wgt_q8_bf16_hd{64|128}.
#if LLMRT_KERNEL(flash_prefill_wgt_bf16_hd64)
FW_ENTRY_MBT(flash_prefill_wgt_bf16_hd64, 64, 2, 64, 3, false, 1, true)
#endif
#if LLMRT_KERNEL(flash_prefill_wgt_bf16_hd128)
FW_ENTRY_MBT(flash_prefill_wgt_bf16_hd128, 128, 3, 64, 3, true, 1, true)
#endif
#if LLMRT_KERNEL(flash_prefill_wgt_q8_bf16_hd64)
FW_ENTRY_Q8T(flash_prefill_wgt_q8_bf16_hd64, 64, 2, 64, 3, false, true)
#endif
#if LLMRT_KERNEL(flash_prefill_wgt_q8_bf16_hd128)
FW_ENTRY_Q8T(flash_prefill_wgt_q8_bf16_hd128, 128, 3, 64, 3, true, true)
#endif

#ifdef LLMRT_FLASH_VARIANTS
// Other tilings for the check harnesses (tools/cuda-kernel-check/flash_prefill.py, flash_tile_time.py):
// flash_prefill_wgv_hd{HD}_g{warpgroups}n{keys per tile}s{stages}[o: OVL][b{MB}: MB blocks per SM]. Each is its own
// LLMRT_SELECT unit (a build that selects one compiles one).
#define FW_V(HD, W, N, S) FW_ENTRY(flash_prefill_wgv_hd##HD##_g##W##n##N##s##S, HD, W, N, S, false)
#define FW_VO(HD, W, N, S) FW_ENTRY(flash_prefill_wgv_hd##HD##_g##W##n##N##s##S##o, HD, W, N, S, true)
#define FW_VB(HD, W, N, S, B) FW_ENTRY_MB(flash_prefill_wgv_hd##HD##_g##W##n##N##s##S##b##B, HD, W, N, S, false, B)
#define FW_VOB(HD, W, N, S, B) FW_ENTRY_MB(flash_prefill_wgv_hd##HD##_g##W##n##N##s##S##o##b##B, HD, W, N, S, true, B)
// Session 14 (fp8 helper): the tilings with the block-wide tile lookup (FT, prefillTileScan's), suffix t, for many short
// prompts (the 8B FP8 512-request run's 256 × 128-token prefill steps).
#define FW_VBT(HD, W, N, S, B) FW_ENTRY_MBT(flash_prefill_wgv_hd##HD##_g##W##n##N##s##S##b##B##t, HD, W, N, S, false, B, true)
#define FW_VOBT(HD, W, N, S, B) FW_ENTRY_MBT(flash_prefill_wgv_hd##HD##_g##W##n##N##s##S##o##b##B##t, HD, W, N, S, true, B, true)
#if LLMRT_KERNEL(flash_prefill_wgv_hd128_g1n64s3ob1t)
FW_VOBT(128, 1, 64, 3, 1)
#endif
#if LLMRT_KERNEL(flash_prefill_wgv_hd128_g2n64s3ob1t)
FW_VOBT(128, 2, 64, 3, 1)
#endif
#if LLMRT_KERNEL(flash_prefill_wgv_hd128_g1n64s2b2t)
FW_VBT(128, 1, 64, 2, 2)
#endif
#if LLMRT_KERNEL(flash_prefill_wgv_hd128_g2n64s2b2t)
FW_VBT(128, 2, 64, 2, 2)
#endif
#if LLMRT_KERNEL(flash_prefill_wgv_hd64_g2n64s3)
FW_V(64, 2, 64, 3)
#endif
#if LLMRT_KERNEL(flash_prefill_wgv_hd64_g3n128s2)
FW_V(64, 3, 128, 2)
#endif
#if LLMRT_KERNEL(flash_prefill_wgv_hd64_g2n128s3)
FW_V(64, 2, 128, 3)
#endif
#if LLMRT_KERNEL(flash_prefill_wgv_hd128_g2n64s3)
FW_V(128, 2, 64, 3)
#endif
#if LLMRT_KERNEL(flash_prefill_wgv_hd128_g3n64s2)
FW_V(128, 3, 64, 2)
#endif
#if LLMRT_KERNEL(flash_prefill_wgv_hd128_g2n128s3)
FW_V(128, 2, 128, 3)
#endif
#if LLMRT_KERNEL(flash_prefill_wgv_hd64_g2n128s3o)
FW_VO(64, 2, 128, 3)
#endif
#if LLMRT_KERNEL(flash_prefill_wgv_hd64_g2n64s4o)
FW_VO(64, 2, 64, 4)
#endif
#if LLMRT_KERNEL(flash_prefill_wgv_hd128_g2n64s3o)
FW_VO(128, 2, 64, 3)
#endif
#if LLMRT_KERNEL(flash_prefill_wgv_hd128_g2n64s4o)
FW_VO(128, 2, 64, 4)
#endif
#if LLMRT_KERNEL(flash_prefill_wgv_hd64_g3n64s3o)
FW_VO(64, 3, 64, 3)
#endif
#if LLMRT_KERNEL(flash_prefill_wgv_hd128_g3n64s3o)
FW_VO(128, 3, 64, 3)
#endif
// Session 10: deeper K/V lookahead for the 3-warpgroup hd 128 kernel; several resident blocks per SM (blocks on one SM
// do not meet at each other's barriers, so one block's softmax can overlap another's MMAs).
#if LLMRT_KERNEL(flash_prefill_wgv_hd128_g3n64s4o)
FW_VO(128, 3, 64, 4)
#endif
// Session 11 (fp8 helper): hd 128 with two resident blocks an SM (128 registers: ptxas spills 112 bytes), for short prompts (T 2048: at most 11 key tiles a block,
// so one block's prologue / epilogue is not hidden by another's MMAs on its SM).
#if LLMRT_KERNEL(flash_prefill_wgv_hd128_g2n64s2b2)
FW_VB(128, 2, 64, 2, 2)
#endif
#if LLMRT_KERNEL(flash_prefill_wgv_hd128_g3n64s5o)
FW_VO(128, 3, 64, 5)
#endif
#if LLMRT_KERNEL(flash_prefill_wgv_hd128_g1n64s2b2)
FW_VB(128, 1, 64, 2, 2)
#endif
#if LLMRT_KERNEL(flash_prefill_wgv_hd64_g2n64s3b2)
FW_VB(64, 2, 64, 3, 2)
#endif
#if LLMRT_KERNEL(flash_prefill_wgv_hd64_g2n64s3ob2)
FW_VOB(64, 2, 64, 3, 2)
#endif
#if LLMRT_KERNEL(flash_prefill_wgv_hd64_g1n64s3ob3)
FW_VOB(64, 1, 64, 3, 3)
#endif
#if LLMRT_KERNEL(flash_prefill_wgv_hd64_g1n64s4ob2)
FW_VOB(64, 1, 64, 4, 2)
#endif
#if LLMRT_KERNEL(flash_prefill_wgv_hd64_g1n128s3ob2)
FW_VOB(64, 1, 128, 3, 2)
#endif
// Session 12 (prefill helper): more hd 64 tilings for the llama-3.2-1b 2048-token step (non-OVL 3 / 4 warpgroups, a
// deeper ring, smaller rings with 2 / 4 resident blocks an SM, OVL with 3 / 5 stages). H200 alone at T 2048 (r2 / r3):
// g2n64s4o 63.7 / 62.8 µs, g2n64s3ob2 65.1, g2n64s5o 63.9, g2n64s3o 64.4 vs the entry point's 68.5 / 66.9; in the
// 1B step g2n64s4o (session 12's prefillWgOvl, dropped) took as long as the entry point and lost 3% of TTFT at 128 tokens.
#if LLMRT_KERNEL(flash_prefill_wgv_hd64_g3n64s3)
FW_V(64, 3, 64, 3)
#endif
#if LLMRT_KERNEL(flash_prefill_wgv_hd64_g4n64s3)
FW_V(64, 4, 64, 3)
#endif
#if LLMRT_KERNEL(flash_prefill_wgv_hd64_g2n64s4)
FW_V(64, 2, 64, 4)
#endif
#if LLMRT_KERNEL(flash_prefill_wgv_hd64_g2n64s2b2)
FW_VB(64, 2, 64, 2, 2)
#endif
#if LLMRT_KERNEL(flash_prefill_wgv_hd64_g1n64s2b4)
FW_VB(64, 1, 64, 2, 4)
#endif
#if LLMRT_KERNEL(flash_prefill_wgv_hd64_g3n64s4o)
FW_VO(64, 3, 64, 4)
#endif
#if LLMRT_KERNEL(flash_prefill_wgv_hd64_g2n64s3o)
FW_VO(64, 2, 64, 3)
#endif
#if LLMRT_KERNEL(flash_prefill_wgv_hd64_g2n64s5o)
FW_VO(64, 2, 64, 5)
#endif
#endif
