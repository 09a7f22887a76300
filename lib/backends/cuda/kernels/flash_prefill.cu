// Prefill attention, FlashAttention-2 style (issue 16 item 2): tensor cores (mma.sync m16n8k16 bf16 -> f32),
// K/V tiles staged with cp.async, fragments through ldmatrix, online softmax in registers, causal/window
// masking only on the key tiles that cross a row's limits, key tiles no row of a warp attends skipped.
// Same semantics and parameters as paged_attention_prefill_mma_bf16_hd* (paged_attention.cu): packed
// token t of sequence s (seqStarts) at position p = positions[t] attends to the cached keys of positions
// max(0, p + 1 - window) .. p of its own sequence (window 0 = unlimited) — any positions, so chunked
// prefill (a chunk's queries over a cached prefix) and mixed batches work; query head h reads kv head
// h / (numHeads / numKvHeads); softmax(q.k * scale) in fp32 (exp2 of log2e-prescaled scores). q, out
// [numTokens, numHeads, headDim] bf16; the cache [numBlocks, 2 (k, v), tokensPerBlock, numKvHeads, headDim]
// bf16 must already hold every attended key.
//
// extern "C" __global__ void flash_prefill_bf16_hd{64|128}(
//     const bf16_t* q, bf16_t* out, const bf16_t* kvCache, const int* positions, const int* seqStarts,
//     const int* blockTables, int numTokens, int numSeqs, int numHeads, int numKvHeads,
//     int tokensPerBlock, int maxBlocksPerSeq, float scale, int window)
//   grid (numHeads, ceil(numTokens / BM) + numSeqs, 1) (blocks past the last query tile exit)
//   block (threads, 1, 1); BM / threads / static shared memory per head dim (two (K, V) stages):
//     hd64:  BM 256 (8 warps x 2 m16 row tiles), 256 threads, key tiles of 64, 36.9 KB
//     hd128: BM 128 (4 warps x 2 m16 row tiles), 128 threads, key tiles of 32, 34.8 KB
//   (the fastest of the tilings timed on an H200, bench/RESULTS.md "Session 5 — prefill attention")
//   (the PA_FLASH lines at the end; attention_choice.ts flashPrefillGeometry mirrors them.)
//
// Query tiles are numbered sequence by sequence; grid row y takes tile gridDim.y - 1 - y, so the last
// (longest, causal) tiles start first. Heads vary fastest: the heads of one kv group run side by side and
// share their K/V tiles through L2.
//
// Pipeline per key tile, two (K, V) stages (ST = 2, the entry points): wait tile j; barrier; issue tile j + 1
// into the other stage; S = Q K(j)^T; mask + online softmax; O += P V(j). With one K and one V buffer (ST = 1,
// variant build only): wait K(j); barrier; issue V(j); S; barrier; issue K(j + 1); softmax; wait V(j); barrier; PV. Rows past the sequence end and keys
// past the attended range are zero-filled (cp.async src-size 0), so NaN in unused cache blocks is never read.
#include "common.cuh"

#define FP_INT_MAX 0x7fffffff

__device__ __forceinline__ u32 fpSmem(const void* p) {
  u64 g;
  asm("cvta.to.shared.u64 %0, %1;" : "=l"(g) : "l"(p));
  return (u32)g;
}
__device__ __forceinline__ void fpCpAsync16(u32 dst, const void* src, int bytes) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(bytes) : "memory");
}
__device__ __forceinline__ void fpCommit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int N>
__device__ __forceinline__ void fpWait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory"); }

__device__ __forceinline__ void fpMma(float (&d)[4], const u32 (&a)[4], u32 b0, u32 b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
/** ldmatrix x4 (lane l addresses row l % 8 of 8x8 tile l / 8), plain or transposed. */
template <bool TRANS>
__device__ __forceinline__ void fpLdsm(u32 (&r)[4], u32 addr) {
  if (TRANS)
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(addr) : "memory");
  else
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(addr) : "memory");
}
/** Two floats -> packed bf16 (lo in the low half), round to nearest even (as fromF<bf16_t>). */
__device__ __forceinline__ u32 fpPack(float lo, float hi) {
  u32 r;
  asm("cvt.rn.bf16x2.f32 %0, %1, %2;\n" : "=r"(r) : "f"(hi), "f"(lo));
  return r;
}
__device__ __forceinline__ float fpExp2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
  return y;
}
__device__ __forceinline__ int fpWarpMin(int v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = min(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}
__device__ __forceinline__ int fpWarpMax(int v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = max(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

/** Query tile -> (sequence, token range); tiles are numbered sequence by sequence. */
__device__ __forceinline__ bool fpQueryTile(const int* seqStarts, int numSeqs, int tile, int BM, int* seq, int* qStart, int* qEnd) {
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

/** cp.async of keys [k0, k0 + BN) of K (or V: kvOff includes the V offset) into a padded smem tile; zero past kHi. */
// tpbShift >= 0: tokensPerBlock = 1 << tpbShift (shifts instead of integer division).
template <int HD, int BN, int NT, int KS>
__device__ __forceinline__ void fpLoadTile(u32 dst, const bf16_t* kv, const int* table, int k0, int kHi, long long kvOff,
                                           int tokensPerBlock, int tpbShift, int rowWidth, int tid) {
  constexpr int VPR = HD / 8, NLD = BN * VPR / NT;
  static_assert(BN * VPR % NT == 0, "tile load split");
#pragma unroll
  for (int u = 0; u < NLD; u++) {
    const int v = tid + u * NT;
    const int j = v / VPR, c = v - j * VPR, kp = k0 + j;
    const bf16_t* src = kv;
    int bytes = 0;
    if (kp < kHi) {
      const int bi = tpbShift >= 0 ? kp >> tpbShift : kp / tokensPerBlock;
      const int off = kp - bi * tokensPerBlock;
      src = kv + ((long long)table[bi] * 2 * tokensPerBlock + off) * rowWidth + kvOff + c * 8;
      bytes = 16;
    }
    fpCpAsync16(dst + (u32)((j * KS + c * 8) * 2), src, bytes);
  }
}

/** fpLoadTile of K (kOff, into dstK) and of V (vOff, into dstV) together: each chunk's cache address computed once. */
template <int HD, int BN, int NT, int KS>
__device__ __forceinline__ void fpLoadKV(u32 dstK, u32 dstV, const bf16_t* kv, const int* table, int k0, int kHi, long long kOff,
                                         long long vOff, int tokensPerBlock, int tpbShift, int rowWidth, int tid) {
  constexpr int VPR = HD / 8, NLD = BN * VPR / NT;
  static_assert(BN * VPR % NT == 0, "tile load split");
#pragma unroll
  for (int u = 0; u < NLD; u++) {
    const int v = tid + u * NT;
    const int j = v / VPR, c = v - j * VPR, kp = k0 + j;
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
    const u32 o = (u32)((j * KS + c * 8) * 2);
    fpCpAsync16(dstK + o, src, bytes);
    fpCpAsync16(dstV + o, src + dv, bytes);
  }
}

// NW warps, MW m16 row tiles per warp (BM = 16 NW MW query rows), BN keys per tile. ST = 1: one K and one V
// buffer (the pipeline in the file comment); ST = 2: two (K, V) stages, tile j + 1 loads while tile j computes,
// one barrier per tile.
template <int HD, int NW, int MW, int BN, int ST = 1>
__device__ __forceinline__ void flashPrefillImpl(const bf16_t* q, bf16_t* out, const bf16_t* kv, const int* positions,
    const int* seqStarts, const int* blockTables, int numSeqs, int numHeads, int numKvHeads, int tokensPerBlock,
    int maxBlocksPerSeq, float scale, int window) {
  constexpr int NT = NW * 32, BM = 16 * NW * MW, KS = HD + 8, NKC = HD / 16, NDT = HD / 8, NNT = BN / 8;
  static_assert(NKC % 2 == 0 && NDT % 2 == 0 && BN % 16 == 0, "fragment pairs");
  static_assert(ST == 1 || ST == 2, "stages");
  __shared__ __align__(16) bf16_t Ks[ST * BN * KS];
  __shared__ __align__(16) bf16_t Vs[ST * BN * KS];
  __shared__ int kvRange[2];

  int s, qStart, qEnd;
  if (!fpQueryTile(seqStarts, numSeqs, gridDim.y - 1 - blockIdx.y, BM, &s, &qStart, &qEnd)) return;
  const int h = blockIdx.x;
  const int kvh = h / (numHeads / numKvHeads);
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g = lane >> 2, c = lane & 3;
  const int rowWidth = numKvHeads * HD;
  const int* table = blockTables + (long long)s * maxBlocksPerSeq;
  const float qscale = scale * LLMRT_LOG2E;
  const int tpbShift = (tokensPerBlock & (tokensPerBlock - 1)) == 0 ? __ffs(tokensPerBlock) - 1 : -1;

  if (tid == 0) { kvRange[0] = FP_INT_MAX; kvRange[1] = 0; }
  __syncthreads();
  for (int r = tid; r < BM; r += NT) {
    if (qStart + r < qEnd) {
      const int p = positions[qStart + r];
      atomicMin(&kvRange[0], window > 0 ? max(0, p + 1 - window) : 0);
      atomicMax(&kvRange[1], p + 1);
    }
  }
  // This thread's rows: g and g + 8 of each of the warp's MW row tiles.
  int pr[MW][2], lr[MW][2];
  int wMinP = FP_INT_MAX, wMaxP = -1, wMinLo = FP_INT_MAX, wMaxLo = 0;
  u32 qf[MW][NKC][4];
#pragma unroll
  for (int mt = 0; mt < MW; mt++) {
#pragma unroll
    for (int hf = 0; hf < 2; hf++) {
      const int t = qStart + (warp * MW + mt) * 16 + g + 8 * hf;
      const bool v = t < qEnd;
      const int p = v ? positions[t] : -1;
      const int lo = window > 0 ? max(0, p + 1 - window) : 0;
      pr[mt][hf] = p;
      lr[mt][hf] = lo;
      if (v) {
        wMinP = min(wMinP, p);
        wMaxP = max(wMaxP, p);
        wMinLo = min(wMinLo, lo);
        wMaxLo = max(wMaxLo, lo);
      }
      const bf16_t* qrow = q + ((long long)(v ? t : 0) * numHeads + h) * HD;
#pragma unroll
      for (int kc = 0; kc < NKC; kc++) {
        qf[mt][kc][hf] = v ? *reinterpret_cast<const u32*>(qrow + kc * 16 + 2 * c) : 0u;
        qf[mt][kc][2 + hf] = v ? *reinterpret_cast<const u32*>(qrow + kc * 16 + 8 + 2 * c) : 0u;
      }
    }
  }
  wMinP = fpWarpMin(wMinP);
  wMaxP = fpWarpMax(wMaxP);
  wMinLo = fpWarpMin(wMinLo);
  wMaxLo = fpWarpMax(wMaxLo);
  __syncthreads();
  const int kvLo = kvRange[0], kvHi = kvRange[1];

  float o[MW][NDT][4];
  float m[MW][2], l[MW][2];
#pragma unroll
  for (int mt = 0; mt < MW; mt++) {
    m[mt][0] = m[mt][1] = -LLMRT_INF;
    l[mt][0] = l[mt][1] = 0.f;
#pragma unroll
    for (int dt = 0; dt < NDT; dt++) o[mt][dt][0] = o[mt][dt][1] = o[mt][dt][2] = o[mt][dt][3] = 0.f;
  }

  const u32 sK = fpSmem(Ks), sV = fpSmem(Vs);
  const long long kOff = (long long)kvh * HD, vOff = kOff + (long long)tokensPerBlock * rowWidth;
  // ldmatrix lane addresses. K (non-transposed): tile rows = keys nt*8 + lane%8, 16-byte column (lane/8):
  // b0/b1 of dim chunk kc, then of kc + 1. V (.trans): keys kc2*16 + lane%8 + 8*((lane/8)%2), dims (lane/16)*8:
  // b0/b1 of dim tile dt, then of dt + 1.
  const u32 kLane = sK + (u32)(((lane & 7) * KS + (lane >> 3) * 8) * 2);
  const u32 vLane = sV + (u32)((((lane & 7) + ((lane >> 3) & 1) * 8) * KS + (lane >> 4) * 8) * 2);

  constexpr u32 STAGE_BYTES = BN * KS * 2;
  if (ST == 2) fpLoadKV<HD, BN, NT, KS>(sK, sV, kv, table, kvLo, kvHi, kOff, vOff, tokensPerBlock, tpbShift, rowWidth, tid);
  else fpLoadTile<HD, BN, NT, KS>(sK, kv, table, kvLo, kvHi, kOff, tokensPerBlock, tpbShift, rowWidth, tid);
  fpCommit();
  int stage = 0;
  for (int k0 = kvLo; k0 < kvHi; k0 += BN, stage ^= (ST - 1)) {
    const u32 kBase = kLane + stage * STAGE_BYTES, vBase = vLane + stage * STAGE_BYTES;
    fpWait<0>();
    // K(k0) (ST = 2: and V(k0)) visible; every warp is past the previous tile (its buffers are free).
    __syncthreads();
    if (ST == 1) {
      fpLoadTile<HD, BN, NT, KS>(sV, kv, table, k0, kvHi, vOff, tokensPerBlock, tpbShift, rowWidth, tid);
    } else if (k0 + BN < kvHi) {
      fpLoadKV<HD, BN, NT, KS>(sK + (stage ^ 1) * STAGE_BYTES, sV + (stage ^ 1) * STAGE_BYTES, kv, table, k0 + BN, kvHi, kOff, vOff, tokensPerBlock,
                               tpbShift, rowWidth, tid);
    }
    fpCommit();
    // A warp whose rows attend none of these keys skips the tile; one whose rows attend all of them skips the mask.
    const bool active = k0 <= wMaxP && k0 + BN - 1 >= wMinLo;
    const bool full = k0 >= wMaxLo && k0 + BN - 1 <= wMinP;
    float sacc[MW][NNT][4];
    if (active) {
#pragma unroll
      for (int nt = 0; nt < NNT; nt++) {
#pragma unroll
        for (int mt = 0; mt < MW; mt++) sacc[mt][nt][0] = sacc[mt][nt][1] = sacc[mt][nt][2] = sacc[mt][nt][3] = 0.f;
#pragma unroll
        for (int kc = 0; kc < NKC; kc += 2) {
          u32 b[4];
          fpLdsm<false>(b, kBase + (u32)((nt * 8 * KS + kc * 16) * 2));
#pragma unroll
          for (int mt = 0; mt < MW; mt++) {
            fpMma(sacc[mt][nt], qf[mt][kc], b[0], b[1]);
            fpMma(sacc[mt][nt], qf[mt][kc + 1], b[2], b[3]);
          }
        }
      }
    }
    if (ST == 1) {
      __syncthreads();  // every warp is done with K(k0)
      if (k0 + BN < kvHi) fpLoadTile<HD, BN, NT, KS>(sK, kv, table, k0 + BN, kvHi, kOff, tokensPerBlock, tpbShift, rowWidth, tid);
      fpCommit();
    }
    u32 pa[MW][BN / 16][4];
    if (active) {
#pragma unroll
      for (int mt = 0; mt < MW; mt++) {
        if (!full) {
#pragma unroll
          for (int nt = 0; nt < NNT; nt++) {
#pragma unroll
            for (int e = 0; e < 4; e++) {
              const int kp = k0 + nt * 8 + 2 * c + (e & 1), hf = e >> 1;
              if (kp < lr[mt][hf] || kp > pr[mt][hf]) sacc[mt][nt][e] = -LLMRT_INF;
            }
          }
        }
        // Online softmax on unscaled scores (scale > 0): row max over the quad, p = 2^(s qscale - m qscale).
#pragma unroll
        for (int hf = 0; hf < 2; hf++) {
          float mx = -LLMRT_INF;
#pragma unroll
          for (int nt = 0; nt < NNT; nt++) mx = fmaxf(mx, fmaxf(sacc[mt][nt][2 * hf], sacc[mt][nt][2 * hf + 1]));
          mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
          mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
          const float mn = fmaxf(m[mt][hf], mx);
          const float ms = mn == -LLMRT_INF ? 0.f : mn * qscale;
          const float cf = fpExp2(m[mt][hf] * qscale - ms);  // 0 while the row had no key (m = -inf)
          m[mt][hf] = mn;
          float rs = 0.f;
#pragma unroll
          for (int nt = 0; nt < NNT; nt++) {
#pragma unroll
            for (int e = 0; e < 2; e++) {
              const float p = fpExp2(fmaf(sacc[mt][nt][2 * hf + e], qscale, -ms));
              sacc[mt][nt][2 * hf + e] = p;
              rs += p;
            }
          }
          l[mt][hf] = l[mt][hf] * cf + rs;  // this thread's columns; the quad sums at the end
          // Skipped when no row of the warp's half-tile changed its max (cf exactly 1 = ex2(0): the same bits).
          if (__any_sync(0xffffffffu, cf != 1.f)) {
#pragma unroll
            for (int dt = 0; dt < NDT; dt++) {
              o[mt][dt][2 * hf] *= cf;
              o[mt][dt][2 * hf + 1] *= cf;
            }
          }
        }
#pragma unroll
        for (int kc2 = 0; kc2 < BN / 16; kc2++) {
          pa[mt][kc2][0] = fpPack(sacc[mt][2 * kc2][0], sacc[mt][2 * kc2][1]);
          pa[mt][kc2][1] = fpPack(sacc[mt][2 * kc2][2], sacc[mt][2 * kc2][3]);
          pa[mt][kc2][2] = fpPack(sacc[mt][2 * kc2 + 1][0], sacc[mt][2 * kc2 + 1][1]);
          pa[mt][kc2][3] = fpPack(sacc[mt][2 * kc2 + 1][2], sacc[mt][2 * kc2 + 1][3]);
        }
      }
    }
    if (ST == 1) {
      fpWait<1>();
      __syncthreads();  // V(k0) visible
    }
    if (active) {
#pragma unroll
      for (int kc2 = 0; kc2 < BN / 16; kc2++) {
#pragma unroll
        for (int dt = 0; dt < NDT; dt += 2) {
          u32 b[4];
          fpLdsm<true>(b, vBase + (u32)((kc2 * 16 * KS + dt * 8) * 2));
#pragma unroll
          for (int mt = 0; mt < MW; mt++) {
            fpMma(o[mt][dt], pa[mt][kc2], b[0], b[1]);
            fpMma(o[mt][dt + 1], pa[mt][kc2], b[2], b[3]);
          }
        }
      }
    }
  }
  fpWait<0>();  // the last (empty) group

#pragma unroll
  for (int mt = 0; mt < MW; mt++) {
#pragma unroll
    for (int hf = 0; hf < 2; hf++) {
      float ls = l[mt][hf];
      ls += __shfl_xor_sync(0xffffffffu, ls, 1);
      ls += __shfl_xor_sync(0xffffffffu, ls, 2);
      const float inv = ls > 0.f ? 1.f / ls : 0.f;
      const int t = qStart + (warp * MW + mt) * 16 + g + 8 * hf;
      if (t < qEnd) {
        bf16_t* orow = out + ((long long)t * numHeads + h) * HD + 2 * c;
#pragma unroll
        for (int dt = 0; dt < NDT; dt++) *reinterpret_cast<u32*>(orow + dt * 8) = fpPack(o[mt][dt][2 * hf] * inv, o[mt][dt][2 * hf + 1] * inv);
      }
    }
  }
}

// PA_FLASH(name, threads, head dim, warps, row tiles per warp, keys per tile); threads = 32 warps.
#define PA_FLASH(NAME, NT, ...)                                                                                         \
  extern "C" __global__ void __launch_bounds__(NT) NAME(const bf16_t* q, bf16_t* out, const bf16_t* kvCache,            \
      const int* positions, const int* seqStarts, const int* blockTables, int numTokens, int numSeqs, int numHeads,     \
      int numKvHeads, int tokensPerBlock, int maxBlocksPerSeq, float scale, int window) {                               \
    (void)numTokens;                                                                                                    \
    flashPrefillImpl<__VA_ARGS__>(q, out, kvCache, positions, seqStarts, blockTables, numSeqs, numHeads, numKvHeads,        \
                              tokensPerBlock, maxBlocksPerSeq, scale, window);                                          \
  }
#if LLMRT_KERNEL(flash_prefill_bf16_hd64)
PA_FLASH(flash_prefill_bf16_hd64, 256, 64, 8, 2, 64, 2)
#endif
#if LLMRT_KERNEL(flash_prefill_bf16_hd128)
PA_FLASH(flash_prefill_bf16_hd128, 128, 128, 4, 2, 32, 2)
#endif

#ifdef LLMRT_FLASH_VARIANTS
// Other tilings, for the check harness's timing sweep (tools/cuda-kernel-check/flash_prefill.py):
// flash_prefill_v_hd{HD}_w{warps}m{row tiles per warp}n{keys per tile}.
#define FP_V(HD, W, M, N) PA_FLASH(flash_prefill_v_hd##HD##_w##W##m##M##n##N, (W * 32), HD, W, M, N)
#define FP_V2(HD, W, M, N) PA_FLASH(flash_prefill_v_hd##HD##_w##W##m##M##n##N##s2, (W * 32), HD, W, M, N, 2)
FP_V2(64, 4, 2, 64)
FP_V2(64, 4, 1, 64)
FP_V2(64, 8, 2, 64)
FP_V2(64, 4, 2, 32)
FP_V2(128, 8, 1, 32)
FP_V2(128, 4, 1, 32)
FP_V2(128, 4, 2, 32)
FP_V(64, 4, 1, 64)
FP_V(64, 8, 1, 64)
FP_V(64, 4, 2, 64)
FP_V(64, 8, 2, 64)
FP_V(64, 4, 2, 32)
FP_V(64, 4, 1, 128)
FP_V(128, 4, 1, 64)
FP_V(128, 8, 1, 64)
FP_V(128, 4, 2, 32)
FP_V(128, 8, 1, 32)
#endif
