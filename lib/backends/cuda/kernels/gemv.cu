// Skinny GEMM for decode (a few rows): y[r, j] = sum_i x[r, i] * W[j, i] (+ bias[j]) for r < m <= M,
// W [n, k] row-major (a linear layer's weight), x [m, k], y [m, n], bf16 in and out, fp32 accumulation.
// One warp per output column j: the warp streams W's row j once with 16-byte loads and dots it with
// every x row (x is small and stays in L1/L2), so each weight byte is read once per step.
//
// extern "C" __global__ void gemv_bf16_m{1|2|4|8}(const bf16_t* x, const bf16_t* W, const bf16_t* bias,
//     bf16_t* y, int m, int n, int k)
//   bias optional (0 = none). Needs k % 8 == 0 and 16-byte aligned x and W (the launcher checks).
//   grid (ceil(n / 8), 1, 1)   block (256, 1, 1)   shared 0
#include "common.cuh"

__device__ __forceinline__ void unpack8(const uint4& v, float (&f)[8]) {
  const u32 w[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
  for (int i = 0; i < 4; i++) {
    f[2 * i] = __uint_as_float(w[i] << 16);
    f[2 * i + 1] = __uint_as_float(w[i] & 0xffff0000u);
  }
}

/**
 * The M x vectors at vector c, all loaded before any is used so the loads overlap (rows past m re-read
 * row 0; their sums are never stored). Unpacked as load16 does, so each row's FMAs are unchanged: the
 * M >= 4 instantiations take this path, M <= 2 keep one load per row (bitwise the same sums either way).
 */
template <int M>
__device__ __forceinline__ void loadX(const bf16_t* x, int m, int k, int c, uint4 (&xv)[M]) {
#pragma unroll
  for (int r = 0; r < M; r++) xv[r] = *reinterpret_cast<const uint4*>(x + (long long)(r < m ? r : 0) * k + c * 8);
}

template <int M>
__device__ __forceinline__ void gemvAccum(const uint4& wv, const bf16_t* x, int m, int k, int c, float (&acc)[M]) {
  if constexpr (M >= 4) {  // H200, llama-3.2-1b decode step: m4 2.35 -> 2.03 ms, m8 3.58 -> 2.68 ms; m2 was slower (1.27 -> 1.41)
    uint4 xv[M];
    loadX<M>(x, m, k, c, xv);
    float wf[8];
    unpack8(wv, wf);
#pragma unroll
    for (int r = 0; r < M; r++) {
      if (r < m) {
        float xf[8];
        unpack8(xv[r], xf);
#pragma unroll
        for (int e = 0; e < 8; e++) acc[r] = fmaf(wf[e], xf[e], acc[r]);
      }
    }
  } else {
    float wf[8];
    unpack8(wv, wf);
#pragma unroll
    for (int r = 0; r < M; r++) {
      if (r < m) {
        float xf[8];
        load16(x + (long long)r * k + c * 8, xf);
#pragma unroll
        for (int e = 0; e < 8; e++) acc[r] = fmaf(wf[e], xf[e], acc[r]);
      }
    }
  }
}

template <int M>
__device__ __forceinline__ void gemvImpl(const bf16_t* x, const bf16_t* W, const bf16_t* bias, bf16_t* y, int m, int n, int k) {
  constexpr int U = 8;  // 16-byte weight loads issued per lane before any is used (k = 2048: the whole row at once)
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int j = blockIdx.x * (blockDim.x >> 5) + warp;
  if (j >= n) return;  // whole warp leaves; no block barrier below
  const bf16_t* w = W + (long long)j * k;
  const int kv = k >> 3;  // 16-byte vectors per row
  float acc[M];
#pragma unroll
  for (int r = 0; r < M; r++) acc[r] = 0.f;
  int c = lane;
  for (; c + 32 * (U - 1) < kv; c += 32 * U) {
    uint4 wv[U];
#pragma unroll
    for (int u = 0; u < U; u++) wv[u] = *reinterpret_cast<const uint4*>(w + (c + 32 * u) * 8);
#pragma unroll
    for (int u = 0; u < U; u++) gemvAccum<M>(wv[u], x, m, k, c + 32 * u, acc);
  }
  for (; c < kv; c += 32) gemvAccum<M>(*reinterpret_cast<const uint4*>(w + c * 8), x, m, k, c, acc);
  const float b = bias ? toF(bias[j]) : 0.f;
#pragma unroll
  for (int r = 0; r < M; r++) {
    const float s = warpSum(acc[r]);
    if (lane == 0 && r < m) y[(long long)r * n + j] = fromF<bf16_t>(s + b);
  }
}

#define GEMV(NAME, M)                                                                                                   \
  extern "C" __global__ void __launch_bounds__(256) NAME(const bf16_t* x, const bf16_t* W, const bf16_t* bias, bf16_t* y, \
      int m, int n, int k) {                                                                                           \
    gemvImpl<M>(x, W, bias, y, m, n, k);                                                                               \
  }
#if LLMRT_KERNEL(gemv_bf16_m1)
GEMV(gemv_bf16_m1, 1)
#endif
#if LLMRT_KERNEL(gemv_bf16_m2)
GEMV(gemv_bf16_m2, 2)
#endif
#if LLMRT_KERNEL(gemv_bf16_m4)
GEMV(gemv_bf16_m4, 4)
#endif
#if LLMRT_KERNEL(gemv_bf16_m8)
GEMV(gemv_bf16_m8, 8)
#endif

// ------------------------------------------------------------------------------------------------
// Fused decode GEMV (issue 16): the skinny GEMM with the RMSNorm that precedes it folded into its
// prologue and the op that follows it folded into its epilogue, so a decode layer is 4 GEMV launches
// + 1 attention launch instead of 10 launches.
//
// extern "C" __global__ void gemv_fused_bf16_m{1|2|4|8}(const bf16_t* x, const bf16_t* W, const bf16_t* bias,
//     void* y, const bf16_t* normW, float eps, int m, int n, int k, int mode, const void* prefetch, long long prefetchBytes)
// extern "C" __global__ void gemv_fused_norm_bf16_m{1|2|4|8}(...same parameters...)
//   x [m, k] bf16 (m <= M), W [n, k] bf16, bias [n] (0 = none), k % 8 == 0, x/W 16-byte aligned.
//   _norm: x is first replaced by rmsnorm(x) * normW per row, rounded to bf16 bitwise like rmsnorm_bf16
//     (same sums in the same order), staged in shared memory: needs m * k <= 8192. The plain entry points
//     ignore normW, read x through L1 and use no shared memory (but 32 B for mode 2).
//   mode 0 (plain):    y bf16 [m, n] = x W^T + bias
//   mode 1 (residual): y bf16 [m, n] += bf16(x W^T + bias)  (y is the residual stream, updated in place;
//                      the sum is rounded like add_rmsnorm's residual)
//   mode 2 (silu·mul): n even, rows [0, n/2) gate and [n/2, n) up (the fused gate_up weight);
//                      y bf16 [m, n/2] = bf16(silu(bf16(gate)) * bf16(up)), as gemv + silu_mul_bf16 round
//   mode 3 (f32 out):  y f32 [m, n] = x W^T + bias (lm_head logits)
//   prefetch (0 = none): [prefetch, prefetch + prefetchBytes) (16-byte aligned) is pulled into L2 with
//     bulk prefetches spread over the grid (measured slower for o_proj's weight from attention, and in session 10 for
//     16 MB of gate_up's from o_proj before its wait: 809 -> 1009 us a llama-3.2-1b step; unused).
//   One output row per warp, 8 warps per block; mode 2: block b holds gate rows 4b..4b+3 (warps 0-3) and
//   the matching up rows (warps 4-7), which meet in shared memory. A lane accumulates its 16-byte vectors
//   in increasing order (gemv_bf16's order), so a row's sum does not depend on m (batch
//   invariant). The first GF_U weight vectors per lane are loaded before the prologue.
//   grid mode 2: (ceil(n / 2 / 4), 1, 1), else (ceil(n / 8), 1, 1)   block (256, 1, 1)
//   shared: 16.5 KB static (_norm), 32 B x M (plain)
// ------------------------------------------------------------------------------------------------
#define GF_XS 8192  // bf16 elements of staged x (16 KB): m * k for a prologue RMSNorm
#ifndef GF_MINB
#define GF_MINB 1    // __launch_bounds__ min blocks per SM (a tuning knob for the harness)
#endif
#ifndef GF_U
#define GF_U 4       // 16-byte weight loads per lane issued before use (4 beat 8 on H200: decode step 1.011 vs 1.048 ms)
#endif

/** A weight vector: a plain 16-byte global load, as gemv_bf16 (which reached 89% of the copy bandwidth on
 *  gate_up; the L1::no_allocate / L2::256B-hinted form measured slower here). */
__device__ __forceinline__ uint4 ldStream16(const bf16_t* p) { return *reinterpret_cast<const uint4*>(p); }

/** Each thread of the grid bulk-prefetches 16 KB slices of [base, base + bytes) into L2. */
__device__ __forceinline__ void prefetchL2Slices(const void* base, long long bytes) {
  if (base == nullptr || bytes <= 0) return;
  constexpr long long SLICE = 16384;
  const long long nSlices = (bytes + SLICE - 1) / SLICE;
  const long long nThreads = (long long)gridDim.x * gridDim.y * gridDim.z * blockDim.x;
  const long long gtid = ((long long)(blockIdx.z * gridDim.y + blockIdx.y) * gridDim.x + blockIdx.x) * blockDim.x + threadIdx.x;
  for (long long s = gtid; s < nSlices; s += nThreads) {
    const long long off = s * SLICE;
    long long sz = bytes - off < SLICE ? bytes - off : SLICE;
    sz &= ~15ll;
    if (sz > 0) {
      const char* p = (const char*)base + off;
#ifndef LLMRT_EMU
      asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;" ::"l"(p), "r"((u32)sz) : "memory");
#else
      (void)p;
#endif
    }
  }
}

__device__ __forceinline__ float gfSilu(float g) { return g / (1.f + expf(-g)); }

/** Issues one chunk (U 16-byte vectors per lane) of weight row w starting at vector c. */
template <int U>
__device__ __forceinline__ void gfIssue(const bf16_t* w, int c, int kv, uint4 (&v)[U]) {
#pragma unroll
  for (int u = 0; u < U; u++)
    if (c + 32 * u < kv) v[u] = ldStream16(w + (c + 32 * u) * 8);
}

#ifndef GF_PIPE
#define GF_PIPE 0  // 1: two chunk buffers a lane, the next chunk's loads in flight while one is summed (the second issued before pdlWait)
#endif
#ifndef GF_XPRE
#define GF_XPRE 0  // 1 (M <= 2): a chunk's x vectors are loaded with its weight vectors, not after they land
#endif
// Session 12 tuning knobs (bench/gemv_tune.ts; all measured slower or equal on the H200, bench/RESULTS.md session 12):
#ifndef GF_TMA
#define GF_TMA 0  // 1: each warp's weight row slice (or its GF_TMA_HEAD chunks) bulk-copied (cp.async.bulk) into dynamic shared memory before pdlWait
#endif
#ifndef GF_PFL2
#define GF_PFL2 0  // 1: each lane prefetches the rest of its row slice into L2 (prefetch.global.L2) before pdlWait
#endif

/**
 * GF_TMA: warp `warp`'s weight slice (kvs 16-byte vectors from w) is copied by one bulk copy into its slot of the
 * dynamic shared memory (8 slots of kvs vectors), completing on its mbarrier; no registers hold bytes in flight, so a
 * warp has its whole slice in flight before pdlWait instead of one chunk. The caller waits with gfTmaWait before
 * reading the slot. Launch with 8 * kvs * 16 bytes of dynamic shared memory.
 */
#ifndef LLMRT_EMU
__device__ __forceinline__ u32 gfSmemAddr(const void* p) { return (u32)__cvta_generic_to_shared(p); }
#endif
__device__ __forceinline__ void gfTmaIssue(bf16_t* slot, const bf16_t* w, int kvs, unsigned long long* bar, int lane) {
#ifndef LLMRT_EMU
  if (lane == 0) {
    const u32 b = gfSmemAddr(bar);
    asm volatile("mbarrier.init.shared::cta.b64 [%0], 1;" ::"r"(b) : "memory");
    asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(b), "r"((u32)kvs * 16u) : "memory");
    asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];" ::"r"(gfSmemAddr(slot)), "l"(w),
                 "r"((u32)kvs * 16u), "r"(b)
                 : "memory");
  }
  __syncwarp();
#else
  for (int i = lane; i < kvs; i += 32) reinterpret_cast<uint4*>(slot)[i] = reinterpret_cast<const uint4*>(w)[i];
  __syncwarp();
#endif
}
/** GF_TMA: warp `warp`'s slot (kvs 16-byte vectors) of the dynamic shared memory and its mbarrier (used only by TMA
 *  instantiations, so the other entry points keep their static shared memory). */
__device__ __forceinline__ const bf16_t* gfTmaSlot(int warp, int kvs) {
#ifndef LLMRT_EMU
  extern __shared__ __align__(16) unsigned char gfDyn[];
#else
  alignas(16) static unsigned char gfDyn[8 * 16384 * 2];  // the CPU emulation runs one block at a time
#endif
  return reinterpret_cast<const bf16_t*>(gfDyn) + (long long)warp * kvs * 8;
}
__device__ __forceinline__ unsigned long long* gfTmaBar(int warp) {
  __shared__ __align__(8) unsigned long long bars[8];
  return &bars[warp];
}
/** Waits until the slot's bulk copy has landed (phase 0 of its mbarrier); traps after ~2^26 polls (a hang becomes an error). */
__device__ __forceinline__ void gfTmaWait(unsigned long long* bar) {
#ifndef LLMRT_EMU
  const u32 b = gfSmemAddr(bar);
  for (u32 n = 0;; n++) {
    u32 ok;
    asm volatile(
        "{ .reg .pred p;\n"
        "mbarrier.try_wait.parity.shared::cta.b64 p, [%1], 0;\n"
        "selp.u32 %0, 1, 0, p;\n}" : "=r"(ok) : "r"(b) : "memory");
    if (ok) return;
    if (n > (1u << 26)) asm volatile("trap;");
  }
#else
  (void)bar;
#endif
}
/** GF_PFL2: the lane's vectors of the slice past its first chunk, pulled into L2 (weights only: before pdlWait). */
template <int U>
__device__ __forceinline__ void gfPrefetchRest(const bf16_t* w, int lane, int kvs) {
#ifndef LLMRT_EMU
  for (int c = lane + 32 * U; c < kvs; c += 32) asm volatile("prefetch.global.L2 [%0];" ::"l"(w + c * 8));
#else
  (void)w, (void)lane, (void)kvs;
#endif
}

/** acc[r] += the 8 products of weight vector wv and x vector xv[r] (gemvAccum's FMAs in its order). */
template <int M>
__device__ __forceinline__ void gemvAccumX(const uint4& wv, const uint4 (&xv)[M], int m, float (&acc)[M]) {
  float wf[8];
  unpack8(wv, wf);
#pragma unroll
  for (int r = 0; r < M; r++) {
    if (r < m) {
      float xf[8];
      unpack8(xv[r], xf);
#pragma unroll
      for (int e = 0; e < 8; e++) acc[r] = fmaf(wf[e], xf[e], acc[r]);
    }
  }
}

/** The x vectors (rows < M; rows past m re-read row 0) of one chunk starting at vector c of the slice. */
template <int M, int U>
__device__ __forceinline__ void gfIssueX(const bf16_t* xb, int m, int k, int c, int kvs, uint4 (&xv)[U][M]) {
#pragma unroll
  for (int u = 0; u < U; u++)
    if (c + 32 * u < kvs) loadX<M>(xb, m, k, c + 32 * u, xv[u]);
}

/** acc += the products of one chunk (vectors c + 32u of the slice) held in wv, with x from xv (XP) or read from xb. */
template <int M, int U, bool XP, int XM>
__device__ __forceinline__ void gfSum(const uint4 (&wv)[U], const uint4 (&xv)[U][XM], const bf16_t* __restrict__ xb, int m, int k, int kvs, int c,
                                      float (&acc)[M]) {
#pragma unroll
  for (int u = 0; u < U; u++)
    if (c + 32 * u < kvs) {
      if constexpr (XP) gemvAccumX<M>(wv[u], xv[u], m, acc);
      else gemvAccum<M>(wv[u], xb, m, k, c + 32 * u, acc);
    }
}

/**
 * One warp's dot products of a weight row slice of kvs 16-byte vectors (w and xb already offset to the slice) with
 * the m rows of xb; the first chunk (U vectors a lane) is already in v (PIPE: the second in v2, both issued by the
 * caller, before pdlWait). PIPE: two chunk buffers in turn, the one just summed refilled with the chunk two ahead
 * before the other is summed, so two chunks a lane stay in flight. A lane adds its vectors in increasing order
 * whatever PIPE / XPRE: the same sums, bitwise.
 */
template <int M, int U, bool PIPE = GF_PIPE, bool XPRE = GF_XPRE>
__device__ __forceinline__ void gfRowN(const bf16_t* __restrict__ xb, const bf16_t* w, int m, int k, int kvs, int lane, uint4 (&v)[U],
                                       uint4 (&v2)[U], float (&acc)[M]) {
  constexpr bool XP = XPRE && M <= 2;
  constexpr int XM = XP ? M : 1;
#pragma unroll
  for (int r = 0; r < M; r++) acc[r] = 0.f;
  int c = lane;
  uint4 xv[U][XM], xv2[U][XM];  // XP: the x vectors of the chunks in v / v2 (unused otherwise)
  if constexpr (XP) gfIssueX<XM, U>(xb, m, k, c, kvs, xv);
  if constexpr (PIPE) {
    if constexpr (XP) gfIssueX<XM, U>(xb, m, k, c + 32 * U, kvs, xv2);
    for (;;) {
      gfSum<M, U, XP, XM>(v, xv, xb, m, k, kvs, c, acc);
      c += 32 * U;
      if (c >= kvs) break;
      if (c + 32 * U < kvs) {  // v's next chunk: two ahead of the one just summed
        gfIssue<U>(w, c + 32 * U, kvs, v);
        if constexpr (XP) gfIssueX<XM, U>(xb, m, k, c + 32 * U, kvs, xv);
      }
      gfSum<M, U, XP, XM>(v2, xv2, xb, m, k, kvs, c, acc);
      c += 32 * U;
      if (c >= kvs) break;
      if (c + 32 * U < kvs) {
        gfIssue<U>(w, c + 32 * U, kvs, v2);
        if constexpr (XP) gfIssueX<XM, U>(xb, m, k, c + 32 * U, kvs, xv2);
      }
    }
  } else {
    for (;;) {
      gfSum<M, U, XP, XM>(v, xv, xb, m, k, kvs, c, acc);
      c += 32 * U;
      if (c >= kvs) break;
      gfIssue<U>(w, c, kvs, v);
      if constexpr (XP) gfIssueX<XM, U>(xb, m, k, c, kvs, xv);
    }
  }
#pragma unroll
  for (int r = 0; r < M; r++) acc[r] = warpSum(acc[r]);
}

template <int M, int U, bool PIPE = GF_PIPE, bool XPRE = GF_XPRE>
__device__ __forceinline__ void gfRow(const bf16_t* __restrict__ xb, const bf16_t* w, int m, int k, int lane, uint4 (&v)[U], uint4 (&v2)[U],
                                      float (&acc)[M]) {
  gfRowN<M, U, PIPE, XPRE>(xb, w, m, k, k >> 3, lane, v, v2, acc);
}

#ifndef GF_NWPF
#define GF_NWPF 0  // 1: the RMSNorm prologue's normW vectors prefetched into L1 before pdlWait (its second pass: L1 hits only)
#endif
/** GF_NWPF: this thread's normW vectors (rmsnormStage's second pass) into L1 (a weight: before pdlWait). */
__device__ __forceinline__ void gfPrefetchNormW(const bf16_t* normW, int k) {
#ifndef LLMRT_EMU
  for (int c = threadIdx.x; c < (k >> 3); c += blockDim.x) asm volatile("prefetch.global.L1 [%0];" ::"l"(normW + c * 8));
#else
  (void)normW, (void)k;
#endif
}
#ifndef GF_TMA_HEAD
#define GF_TMA_HEAD 0  // TMA: chunks (32 * U vectors) of a warp's slice bulk-copied into shared memory (0: the whole slice)
#endif
/** TMA: vectors of a kvs-vector slice held in shared memory (the head; the rest streams through registers). */
template <int U, int HEAD>
__device__ __forceinline__ int gfHeadVec(int kvs) { return HEAD > 0 && HEAD * 32 * U < kvs ? HEAD * 32 * U : kvs; }

/**
 * TMA: gfRowN's sums of a slice whose first headVec vectors (a multiple of 32 * U, or all) are in shared memory at ws
 * (landed) and the rest in global memory at w, its first chunk already in v (issued before pdlWait). The head is read
 * one vector at a time from shared memory (x, XP: a chunk's vectors loaded first), then the tail chunk by chunk as gfRowN
 * does: a lane adds the same vectors in the same (increasing) order, so the same sums, bitwise.
 */
template <int M, int U, bool XPRE>
__device__ __forceinline__ void gfRowHead(const bf16_t* __restrict__ xb, const bf16_t* ws, const bf16_t* w, int m, int k, int kvs, int headVec, int lane,
                                          uint4 (&v)[U], float (&acc)[M]) {
  constexpr bool XP = XPRE && M <= 2;
  constexpr int XM = XP ? M : 1;
#pragma unroll
  for (int r = 0; r < M; r++) acc[r] = 0.f;
  uint4 xv[U][XM];
  int c = lane;
  for (; c < headVec; c += 32 * U) {
    if constexpr (XP) gfIssueX<XM, U>(xb, m, k, c, kvs, xv);
#pragma unroll
    for (int u = 0; u < U; u++)
      if (c + 32 * u < kvs) {
        const uint4 hw = *reinterpret_cast<const uint4*>(ws + (c + 32 * u) * 8);
        if constexpr (XP) gemvAccumX<M>(hw, xv[u], m, acc);
        else gemvAccum<M>(hw, xb, m, k, c + 32 * u, acc);
      }
  }
  if (c < kvs) {
    if constexpr (XP) gfIssueX<XM, U>(xb, m, k, c, kvs, xv);
    for (;;) {
      gfSum<M, U, XP, XM>(v, xv, xb, m, k, kvs, c, acc);
      c += 32 * U;
      if (c >= kvs) break;
      gfIssue<U>(w, c, kvs, v);
      if constexpr (XP) gfIssueX<XM, U>(xb, m, k, c, kvs, xv);
    }
  }
#pragma unroll
  for (int r = 0; r < M; r++) acc[r] = warpSum(acc[r]);
}

/**
 * A fused GEMV warp's first weight loads of its row slice w (kv 16-byte vectors), issued before the prologue (live
 * warps only): the first chunk into v (PIPE: the second into v2); TMA: the slice's first headVec vectors bulk-copied
 * into the warp's slot of the dynamic shared memory (returned; else w) and the tail's first chunk into v.
 */
template <int U, bool PIPE, bool TMA>
__device__ __forceinline__ const bf16_t* gfIssueFirst(const bf16_t* w, int kv, int headVec, int warp, int lane, bool live,
    uint4 (&v)[U], uint4 (&v2)[U]) {
  const bf16_t* ws = w;
  if constexpr (TMA) {
    ws = gfTmaSlot(warp, headVec);
    if (live) {
      gfTmaIssue(const_cast<bf16_t*>(ws), w, headVec, gfTmaBar(warp), lane);
      if (headVec < kv) gfIssue<U>(w, lane + headVec, kv, v);  // the tail's first chunk through registers
    }
  } else {
    if (live) {
      gfIssue<U>(w, lane, kv, v);
      if constexpr (PIPE) gfIssue<U>(w, lane + 32 * U, kv, v2);
#if GF_PFL2
      gfPrefetchRest<U>(w, lane, kv);
#endif
    }
  }
  return ws;
}

/**
 * The fused GEMVs' store of t, row r's output `row`: mode 0 bf16 y[r, row]; mode 1 added to the bf16 residual y[r, row]
 * in place (t rounded to bf16 first); mode 3 fp32 (mode 2, SiLU·mul, stores in its kernel).
 */
__device__ __forceinline__ void gfStore(void* y, float t, int r, int n, int row, int mode) {
  if (mode == 0) ((bf16_t*)y)[(long long)r * n + row] = fromF<bf16_t>(t);
  else if (mode == 1) {
    bf16_t* yb = (bf16_t*)y + (long long)r * n + row;
    *yb = fromF<bf16_t>(toF(fromF<bf16_t>(t)) + toF(*yb));
  } else ((float*)y)[(long long)r * n + row] = t;
}

template <int M, bool NORM, int U = GF_U, bool PIPE = GF_PIPE, bool XPRE = GF_XPRE, bool TMA = GF_TMA, int HEAD = GF_TMA_HEAD>
__device__ __forceinline__ void gemvFusedImpl(const bf16_t* x, const bf16_t* W, const bf16_t* bias, void* y, const bf16_t* normW,
    float eps, int m, int n, int k, int mode, const void* prefetch, long long prefetchBytes) {
  LLMRT_STAMP_SCOPE(0x10u | (NORM ? 8u : 0u) | (unsigned)(mode & 7), W);  // harness builds only (common.cuh)
  __shared__ float upS[8][M];
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, nw = blockDim.x >> 5;  // nw == 8
  const int kv = k >> 3;
  // One output row of W per warp. Mode 2: block b owns gate rows 4b..4b+3 (warps 0-3) and the matching
  // up rows half + 4b.. (warps 4-7); the up sums meet the gate sums through shared memory.
  const int half = n >> 1;
  const int row = mode == 2 ? (warp < 4 ? blockIdx.x * 4 + warp : half + blockIdx.x * 4 + warp - 4) : blockIdx.x * nw + warp;
  const bool live = mode == 2 ? blockIdx.x * 4 + (warp & 3) < half : row < n;
  const bf16_t* w = W + (long long)(live ? row : 0) * k;
  // The first chunk of the weight row is issued before the prologue, so the weight stream (the
  // kernel's real work) overlaps the RMSNorm and the x staging, and under PDL (pdlWait) the previous
  // kernel's tail. (Also pulling the rest of each row into L2 with a bulk prefetch here cost 88 us per
  // llama-3.2-1b step on an H200; keeping normW and x in registers for the RMSNorm gained nothing.)
  uint4 v[U], v2[U];  // v2: PIPE's second chunk (unused otherwise)
  const int headVec = TMA ? gfHeadVec<U, HEAD>(kv) : 0;  // TMA: the slice's vectors bulk-copied into shared memory
  const bf16_t* ws = gfIssueFirst<U, PIPE, TMA>(w, kv, headVec, warp, lane, live, v, v2);  // TMA: the warp's slot
  if constexpr (NORM && GF_NWPF) gfPrefetchNormW(normW, k);
  pdlWait();  // x and y are the previous kernels' (weights and prefetches above only)
  pdlLaunchDependents();
  prefetchL2Slices(prefetch, prefetchBytes);
  float acc[M];
  if constexpr (NORM) {  // x <- rmsnorm(x) * normW, staged in shared memory (the launcher guarantees m * k <= GF_XS)
    __shared__ __align__(16) bf16_t xs[GF_XS];
    __shared__ float red[32];
    rmsnormStage(x, normW, eps, m, k, xs, red);
    if constexpr (TMA) {  // the head's bytes (landing while x was staged), then the row
      if (live) {
        gfTmaWait(gfTmaBar(warp));
        gfRowHead<M, U, XPRE>(xs, ws, w, m, k, kv, headVec, lane, v, acc);
      }
    } else if (live) gfRow<M, U, PIPE, XPRE>(xs, w, m, k, lane, v, v2, acc);
  } else {
    if constexpr (TMA) {
      if (live) {
        gfTmaWait(gfTmaBar(warp));
        gfRowHead<M, U, XPRE>(x, ws, w, m, k, kv, headVec, lane, v, acc);
      }
    } else if (live) gfRow<M, U, PIPE, XPRE>(x, w, m, k, lane, v, v2, acc);
  }
  const float b = (live && bias) ? toF(bias[row]) : 0.f;
  if (mode == 2) {
    if (warp >= 4 && live && lane == 0) {
#pragma unroll
      for (int r = 0; r < M; r++) upS[warp - 4][r] = toF(fromF<bf16_t>(acc[r] + b));
    }
    __syncthreads();
    if (warp < 4 && live && lane == 0) {
#pragma unroll
      for (int r = 0; r < M; r++)
        if (r < m) {
          const float g = toF(fromF<bf16_t>(acc[r] + b));
          ((bf16_t*)y)[(long long)r * half + row] = fromF<bf16_t>(gfSilu(g) * upS[warp][r]);
        }
    }
    return;
  }
  if (!live || lane != 0) return;
#pragma unroll
  for (int r = 0; r < M; r++)
    if (r < m) gfStore(y, acc[r] + b, r, n, row, mode);
}

#define GEMV_FUSED(NAME, M, NORM)                                                                                       \
  extern "C" __global__ void __launch_bounds__(256, GF_MINB) NAME(const bf16_t* x, const bf16_t* W, const bf16_t* bias, void* y,\
      const bf16_t* normW, float eps, int m, int n, int k, int mode, const void* prefetch, long long prefetchBytes) {  \
    gemvFusedImpl<M, NORM>(x, W, bias, y, normW, eps, m, n, k, mode, prefetch, prefetchBytes);                        \
  }
#if LLMRT_KERNEL(gemv_fused_bf16_m1)
GEMV_FUSED(gemv_fused_bf16_m1, 1, false)
#endif
#if LLMRT_KERNEL(gemv_fused_bf16_m2)
GEMV_FUSED(gemv_fused_bf16_m2, 2, false)
#endif
#if LLMRT_KERNEL(gemv_fused_bf16_m4)
GEMV_FUSED(gemv_fused_bf16_m4, 4, false)
#endif
#if LLMRT_KERNEL(gemv_fused_bf16_m8)
GEMV_FUSED(gemv_fused_bf16_m8, 8, false)
#endif
#if LLMRT_KERNEL(gemv_fused_norm_bf16_m1)
GEMV_FUSED(gemv_fused_norm_bf16_m1, 1, true)
#endif
#if LLMRT_KERNEL(gemv_fused_norm_bf16_m2)
GEMV_FUSED(gemv_fused_norm_bf16_m2, 2, true)
#endif
#if LLMRT_KERNEL(gemv_fused_norm_bf16_m4)
GEMV_FUSED(gemv_fused_norm_bf16_m4, 4, true)
#endif
#if LLMRT_KERNEL(gemv_fused_norm_bf16_m8)
GEMV_FUSED(gemv_fused_norm_bf16_m8, 8, true)
#endif

// ------------------------------------------------------------------------------------------------
// Split-row fused GEMV (session 7): gemv_fused with each weight row streamed by KS warps of the block
// (KS = mode >> 4, 2 or 4; mode & 15 as gemv_fused), each over a contiguous 1/KS of the row; their
// sums meet in shared memory and add in warp order. For skinny layers (llama-3.2-1b's qkv, o_proj and
// down: 2048-3072 rows, 16-24 warps per SM) it puts KS times the warps, and the loads in flight, on
// each SM. A row's sum depends on (k, KS) only, never on m (batch invariant); the launcher picks KS
// from the layer's shape. Needs (k / 8) % KS == 0.
//
// extern "C" __global__ void gemv_fused_ks_bf16_m{1|2|4|8}(...gemv_fused's parameters...)
// extern "C" __global__ void gemv_fused_norm_ks_bf16_m{1|2|4|8}(...)
//   grid mode 2: (ceil(n / 2 / (4 / KS))), else (ceil(n / (8 / KS)))   block (256)   shared as gemv_fused + 160 B x M
// ------------------------------------------------------------------------------------------------
template <int M, bool NORM, int U = GF_U, bool PIPE = GF_PIPE, bool XPRE = GF_XPRE, bool TMA = GF_TMA, int HEAD = GF_TMA_HEAD>
__device__ __forceinline__ void gemvFusedKsImpl(const bf16_t* x, const bf16_t* W, const bf16_t* bias, void* y, const bf16_t* normW,
    float eps, int m, int n, int k, int modeKs) {
  LLMRT_STAMP_SCOPE(0x20u | (NORM ? 8u : 0u) | (unsigned)(modeKs & 7), W);  // harness builds only (common.cuh)
  __shared__ float part[8][M];
  __shared__ float upS[4][M];
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  const int mode = modeKs & 15;
  const int ks = (modeKs >> 4) >= 4 ? 4 : (modeKs >> 4) >= 2 ? 2 : 1;
  const int rpb = 8 / ks;  // row slots per block
  const int slot = warp / ks, wk = warp - slot * ks;
  const int half = n >> 1, gpb = rpb / 2;  // mode 2: gate rows per block (their up rows are slots gpb..)
  int row;
  bool live;
  if (mode == 2) {
    const int gi = slot < gpb ? slot : slot - gpb;
    live = blockIdx.x * gpb + gi < half;
    row = (slot < gpb ? 0 : half) + blockIdx.x * gpb + gi;
  } else {
    row = blockIdx.x * rpb + slot;
    live = row < n;
  }
  const int kvs = (k >> 3) / ks, c0 = wk * kvs;
  const bf16_t* w = W + (long long)(live ? row : 0) * k + c0 * 8;
  uint4 v[U], v2[U];
  const int headVec = TMA ? gfHeadVec<U, HEAD>(kvs) : 0;  // TMA: the slice's vectors bulk-copied into shared memory
  const bf16_t* ws = gfIssueFirst<U, PIPE, TMA>(w, kvs, headVec, warp, lane, live, v, v2);  // TMA: the warp's slot
  if constexpr (NORM && GF_NWPF) gfPrefetchNormW(normW, k);
  pdlWait();
  pdlLaunchDependents();
  float acc[M];
  if constexpr (NORM) {
    __shared__ __align__(16) bf16_t xs[GF_XS];
    __shared__ float red[32];
    rmsnormStage(x, normW, eps, m, k, xs, red);
    if constexpr (TMA) {  // the head's bytes (landing while x was staged), then the slice
      if (live) {
        gfTmaWait(gfTmaBar(warp));
        gfRowHead<M, U, XPRE>(xs + c0 * 8, ws, w, m, k, kvs, headVec, lane, v, acc);
      }
    } else if (live) gfRowN<M, U, PIPE, XPRE>(xs + c0 * 8, w, m, k, kvs, lane, v, v2, acc);
  } else {
    if constexpr (TMA) {
      if (live) {
        gfTmaWait(gfTmaBar(warp));
        gfRowHead<M, U, XPRE>(x + c0 * 8, ws, w, m, k, kvs, headVec, lane, v, acc);
      }
    } else if (live) gfRowN<M, U, PIPE, XPRE>(x + c0 * 8, w, m, k, kvs, lane, v, v2, acc);
  }
  if (live && lane == 0) {
#pragma unroll
    for (int r = 0; r < M; r++) part[warp][r] = acc[r];
  }
  __syncthreads();
  const bool lead = live && lane == 0 && wk == 0;
  float s[M];
#pragma unroll
  for (int r = 0; r < M; r++) {
    s[r] = part[warp][r];
    for (int j = 1; j < ks; j++) s[r] += part[warp + j][r];
  }
  const float b = (live && bias) ? toF(bias[row]) : 0.f;
  if (mode == 2) {
    if (lead && slot >= gpb) {
#pragma unroll
      for (int r = 0; r < M; r++) upS[slot - gpb][r] = toF(fromF<bf16_t>(s[r] + b));
    }
    __syncthreads();
    if (lead && slot < gpb) {
#pragma unroll
      for (int r = 0; r < M; r++)
        if (r < m) {
          const float g = toF(fromF<bf16_t>(s[r] + b));
          ((bf16_t*)y)[(long long)r * half + row] = fromF<bf16_t>(gfSilu(g) * upS[slot][r]);
        }
    }
    return;
  }
  if (!lead) return;
#pragma unroll
  for (int r = 0; r < M; r++)
    if (r < m) gfStore(y, s[r] + b, r, n, row, mode);
}

#define GEMV_FUSED_KS(NAME, M, NORM)                                                                                    \
  extern "C" __global__ void __launch_bounds__(256, GF_MINB) NAME(const bf16_t* x, const bf16_t* W, const bf16_t* bias, void* y,\
      const bf16_t* normW, float eps, int m, int n, int k, int mode, const void* prefetch, long long prefetchBytes) {  \
    (void)prefetch;                                                                                                     \
    (void)prefetchBytes;                                                                                                \
    gemvFusedKsImpl<M, NORM>(x, W, bias, y, normW, eps, m, n, k, mode);                                                \
  }
#if LLMRT_KERNEL(gemv_fused_ks_bf16_m1)
GEMV_FUSED_KS(gemv_fused_ks_bf16_m1, 1, false)
#endif
#if LLMRT_KERNEL(gemv_fused_ks_bf16_m2)
GEMV_FUSED_KS(gemv_fused_ks_bf16_m2, 2, false)
#endif
#if LLMRT_KERNEL(gemv_fused_ks_bf16_m4)
GEMV_FUSED_KS(gemv_fused_ks_bf16_m4, 4, false)
#endif
#if LLMRT_KERNEL(gemv_fused_ks_bf16_m8)
GEMV_FUSED_KS(gemv_fused_ks_bf16_m8, 8, false)
#endif
#if LLMRT_KERNEL(gemv_fused_norm_ks_bf16_m1)
GEMV_FUSED_KS(gemv_fused_norm_ks_bf16_m1, 1, true)
#endif
#if LLMRT_KERNEL(gemv_fused_norm_ks_bf16_m2)
GEMV_FUSED_KS(gemv_fused_norm_ks_bf16_m2, 2, true)
#endif
#if LLMRT_KERNEL(gemv_fused_norm_ks_bf16_m4)
GEMV_FUSED_KS(gemv_fused_norm_ks_bf16_m4, 4, true)
#endif
#if LLMRT_KERNEL(gemv_fused_norm_ks_bf16_m8)
GEMV_FUSED_KS(gemv_fused_norm_ks_bf16_m8, 8, true)
#endif


// ------------------------------------------------------------------------------------------------
// Fused decode GEMVs with x loaded ahead (session 11, CudaSessionOptions.gemvXPre): gemv_fused / gemv_fused_ks of up to
// 2 rows with a chunk's x vectors loaded together with its weight vectors (XPRE; gemv_fused loads them after the weights
// land: a second, dependent round trip to L1 / L2 a chunk in the entry points that read x from global memory) and
// GF_PIPE_E (a tuning knob, 0: two chunk buffers a lane in turn). A lane adds its vectors in the same order: the same
// sums, bitwise (gemv_ks_emu.py).
//
// extern "C" __global__ void gemv_fused{_norm}{_ks}_xpre_bf16_m{1|2}(...gemv_fused's parameters...)
// ------------------------------------------------------------------------------------------------
#ifndef GF_PIPE_E
#define GF_PIPE_E 0
#endif
#define GEMV_FUSED_XPRE(NAME, M, NORM)                                                                                  \
  extern "C" __global__ void __launch_bounds__(256, GF_MINB) NAME(const bf16_t* x, const bf16_t* W, const bf16_t* bias, void* y,\
      const bf16_t* normW, float eps, int m, int n, int k, int mode, const void* prefetch, long long prefetchBytes) {  \
    gemvFusedImpl<M, NORM, GF_U, GF_PIPE_E, true>(x, W, bias, y, normW, eps, m, n, k, mode, prefetch, prefetchBytes); \
  }
#define GEMV_FUSED_KS_XPRE(NAME, M, NORM)                                                                               \
  extern "C" __global__ void __launch_bounds__(256, GF_MINB) NAME(const bf16_t* x, const bf16_t* W, const bf16_t* bias, void* y,\
      const bf16_t* normW, float eps, int m, int n, int k, int mode, const void* prefetch, long long prefetchBytes) {  \
    (void)prefetch;                                                                                                     \
    (void)prefetchBytes;                                                                                                \
    gemvFusedKsImpl<M, NORM, GF_U, GF_PIPE_E, true>(x, W, bias, y, normW, eps, m, n, k, mode);                    \
  }
#if LLMRT_KERNEL(gemv_fused_xpre_bf16_m1)
GEMV_FUSED_XPRE(gemv_fused_xpre_bf16_m1, 1, false)
#endif
#if LLMRT_KERNEL(gemv_fused_xpre_bf16_m2)
GEMV_FUSED_XPRE(gemv_fused_xpre_bf16_m2, 2, false)
#endif
#if LLMRT_KERNEL(gemv_fused_norm_xpre_bf16_m1)
GEMV_FUSED_XPRE(gemv_fused_norm_xpre_bf16_m1, 1, true)
#endif
#if LLMRT_KERNEL(gemv_fused_norm_xpre_bf16_m2)
GEMV_FUSED_XPRE(gemv_fused_norm_xpre_bf16_m2, 2, true)
#endif
#if LLMRT_KERNEL(gemv_fused_ks_xpre_bf16_m1)
GEMV_FUSED_KS_XPRE(gemv_fused_ks_xpre_bf16_m1, 1, false)
#endif
#if LLMRT_KERNEL(gemv_fused_ks_xpre_bf16_m2)
GEMV_FUSED_KS_XPRE(gemv_fused_ks_xpre_bf16_m2, 2, false)
#endif
#if LLMRT_KERNEL(gemv_fused_norm_ks_xpre_bf16_m1)
GEMV_FUSED_KS_XPRE(gemv_fused_norm_ks_xpre_bf16_m1, 1, true)
#endif
#if LLMRT_KERNEL(gemv_fused_norm_ks_xpre_bf16_m2)
GEMV_FUSED_KS_XPRE(gemv_fused_norm_ks_xpre_bf16_m2, 2, true)
#endif

