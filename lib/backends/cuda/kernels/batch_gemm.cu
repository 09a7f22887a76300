// bf16 GEMM of batched decode steps (issue 16 item 3: 9..64 rows; session option batchGemm): the weight bytes are
// what a step of M <= 64 rows costs, so the kernel is built to stream them near the copy bandwidth.
//
// extern "C" __global__ void batch_gemm_s{S}_m{16|32|64}(const bf16_t* x, const bf16_t* W, const bf16_t* bias,
//     void* y, int m, int n, int k, int mode)
//   y [m, n] = x [m, k] bf16 · W [n, k]ᵀ (+ bias [n] bf16; 0 = none), fp32 sums on mma.sync m16n8k16; y bf16
//   (mode 0) or fp32 (mode 1: the lm_head's logits); mode 2 (a fused gate/up weight, n = 2·I, gate rows first): y
//   [m, I] bf16 = silu(g)·u with g, u the bf16-rounded outputs of gate row j and up row I + j (silu_mul.cu's math on
//   what mode 0 would have written: the same bits as mode 0 then silu_mul). The weight is the mma's A operand (16
//   weight rows per tile), the x rows its B columns (MT = 16 / 32 / 64 rows: 2 / 4 / 8 n-tiles of 8).
//   Block: 8 warps, BG_WT 16-row weight tiles each: BN = 128 · BG_WT weight rows × all MT x rows (mode 2: BN / 2
//   gate rows and their BN / 2 up rows; grid.x = ceil(I / (BN / 2))). Weight and x tiles
//   of BG_KC columns (64: 128 bytes a row) stream through a BG_NS-stage cp.async ring in dynamic shared memory
//   (16-byte chunks XOR-swizzled by row % 8: conflict-free ldmatrix, and at BG_KC 64 the 128-byte-swizzled K-major
//   layout of wgmma descriptors), BG_NS - 1 stages in flight; the first stages' weight loads are issued before pdlWait
//   (x is the previous kernel's output). Products: compiled for sm_90a (compiler.ts unitArch) with BG_WGMMA, each
//   warpgroup's 64 weight rows × MT x rows by wgmma.m64n{MT}k16 from shared memory (no ldmatrix, no register
//   fragments); elsewhere mma.sync m16n8k16 on ldmatrix fragments (both: the mma.sync C layout, the same epilogue).
//   Split-K across a thread-block cluster: grid (ceil(n / BN), S, 1), cluster (1, S, 1) (compiled in); block z of a
//   cluster takes k chunks [z·P, min(K/KC, (z+1)·P)), P = ceil(K / KC / S). Each block parks its fp32 tile in its
//   shared memory; after a cluster barrier block z sums the S tiles of its ceil(BN / S) columns in split order z' = 0, 1,
//   ... through distributed shared memory, adds the bias and writes y. No workspace, no second launch, no atomics.
//   The split count and every sum's order depend on (n, k) only, never on m or on the row tile: a row's outputs
//   are bitwise the same in any step of 1..64 rows this kernel serves (batch invariance).
//   Dynamic shared memory: batchGemmSmem (lib/backends/cuda/batch_gemm_plan.ts) = max(BG_NS·(BN + MT)·KC·2,
//   MT·(BN + 4)·4) bytes. Needs k % KC == 0, 16-byte aligned x and W, sm_90 (clusters).
#include "common.cuh"

#ifndef BG_NS
#define BG_NS 4  // ring stages (BG_NS - 1 in flight while one is read)
#endif
#ifndef BG_WT
#define BG_WT 1  // 16-row weight tiles per warp (BN = 128 · BG_WT)
#endif
#ifndef BG_EVICT
#define BG_EVICT 1  // 1: weight loads carry an L2 evict-first policy (read once; x and the outputs stay in L2)
#endif
#ifndef BG_KC
#define BG_KC 64  // k columns per stage (BG_KC · 2 bytes of each weight row)
#endif
#ifndef BG_WGMMA
#define BG_WGMMA 1  // 1: warpgroup MMAs where compiled for sm_90a (BG_KC 64, BG_WT 1); else mma.sync + ldmatrix
#endif
#if BG_WGMMA && defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define BG_WG 1
#else
#define BG_WG 0
#endif
#define BG_BN (128 * BG_WT)
#define BG_PAD 4  // fp32 tile row padding (conflict-free fragment stores)

__device__ __forceinline__ u32 bgSmem(const void* p) {
  u64 g;
  asm("cvta.to.shared.u64 %0, %1;" : "=l"(g) : "l"(p));
  return (u32)g;
}
__device__ __forceinline__ void bgCp16(u32 dst, const void* src) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" ::"r"(dst), "l"(src) : "memory");
}
__device__ __forceinline__ void bgCp16Evict(u32 dst, const void* src, u64 pol) {
  asm volatile("cp.async.cg.shared.global.L2::cache_hint [%0], [%1], 16, %2;" ::"r"(dst), "l"(src), "l"(pol) : "memory");
}
__device__ __forceinline__ void bgCommit() { asm volatile("cp.async.commit_group;" ::: "memory"); }
template <int N>
__device__ __forceinline__ void bgWait() { asm volatile("cp.async.wait_group %0;" ::"n"(N) : "memory"); }
__device__ __forceinline__ void bgLdsm(u32 (&r)[4], u32 a) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];" : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(a) : "memory");
}
__device__ __forceinline__ void bgMma(float (&c)[4], const u32 (&a)[4], u32 b0, u32 b1) {
  asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
               : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
#if BG_WG
// Hopper warpgroup MMAs (BG_WGMMA on sm_90a): the weight tile (A, 64 rows a warpgroup) and the x tile (B, MT rows)
// read by the tensor cores from the ring (K-major, 128-byte swizzle: the layout bgSwz writes at BG_KC 64).
/** wgmma shared-memory descriptor, 128-byte swizzle: start address, leading / stride byte offsets. */
__device__ __forceinline__ u64 bgDesc(u32 addr, u32 lbo, u32 sbo) {
  return (u64)((addr & 0x3FFFFu) >> 4) | ((u64)((lbo >> 4) & 0x3FFFu) << 16) | ((u64)((sbo >> 4) & 0x3FFFu) << 32) | (1ull << 62);
}
__device__ __forceinline__ void bgFenceProxy() { asm volatile("fence.proxy.async.shared::cta;" ::: "memory"); }
__device__ __forceinline__ void bgWgFence() { asm volatile("wgmma.fence.sync.aligned;" ::: "memory"); }
__device__ __forceinline__ void bgWgCommit() { asm volatile("wgmma.commit_group.sync.aligned;" ::: "memory"); }
__device__ __forceinline__ void bgWgWait0() { asm volatile("wgmma.wait_group.sync.aligned 0;" ::: "memory"); }
template <int N>
__device__ __forceinline__ void bgFenceRegs(float (&d)[N]) {
#pragma unroll
  for (int i = 0; i < N; i++) asm volatile("" : "+f"(d[i])::"memory");
}
__device__ __forceinline__ void bgWg16(float (&d)[8], u64 descA, u64 descB) {
  asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %10, 0;\nwgmma.mma_async.sync.aligned.m64n16k16.f32.bf16.bf16 {%0, %1, %2, %3, %4, %5, %6, %7}, %8, %9, p, 1, 1, 0, 0;\n}\n"
               : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7])
               : "l"(descA), "l"(descB), "r"(1));
}
__device__ __forceinline__ void bgWg32(float (&d)[16], u64 descA, u64 descB) {
  asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %18, 0;\nwgmma.mma_async.sync.aligned.m64n32k16.f32.bf16.bf16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15}, %16, %17, p, 1, 1, 0, 0;\n}\n"
               : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15])
               : "l"(descA), "l"(descB), "r"(1));
}
__device__ __forceinline__ void bgWg64(float (&d)[32], u64 descA, u64 descB) {
  asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\nwgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, %32, %33, p, 1, 1, 0, 0;\n}\n"
               : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
               : "l"(descA), "l"(descB), "r"(1));
}
template <int NT>
__device__ __forceinline__ void bgWgmma(float (&d)[NT * 4], u64 descA, u64 descB) {
  if constexpr (NT == 2) bgWg16(d, descA, descB);
  else if constexpr (NT == 4) bgWg32(d, descA, descB);
  else bgWg64(d, descA, descB);
}
#endif
__device__ __forceinline__ void bgClusterSync() {
  asm volatile("barrier.cluster.arrive.release.aligned;\nbarrier.cluster.wait.acquire.aligned;" ::: "memory");
}
/** fp32 at shared address `a` of cluster block `rank`. */
__device__ __forceinline__ float bgLdCluster(u32 a, int rank) {
  u32 r;
  float v;
  asm volatile("mapa.shared::cluster.u32 %0, %1, %2;" : "=r"(r) : "r"(a), "r"(rank));
  asm volatile("ld.shared::cluster.f32 %0, [%1];" : "=f"(v) : "r"(r));
  return v;
}
/** Byte offset of 16-byte chunk c of row r in a [rows, BG_KC · 2 B] tile (the low 3 bits of c XOR row % 8). */
__device__ __forceinline__ u32 bgSwz(int r, int c) { return (u32)(r * (BG_KC * 2) + ((c ^ (r & 7)) << 4)); }

template <int NT, int S>
__device__ __forceinline__ void batchGemmImpl(const bf16_t* __restrict__ x, const bf16_t* __restrict__ W, const bf16_t* __restrict__ bias,
                                              void* __restrict__ y, int m, int n, int k, int mode) {
  constexpr int MT = NT * 8, BN = BG_BN, WT = BG_WT, NS = BG_NS;
  constexpr int CPR = BG_KC / 8;  // 16-byte chunks of a row per stage
  constexpr u32 WBYTES = BN * BG_KC * 2, STAGE = (BN + MT) * BG_KC * 2;
  extern __shared__ __align__(128) unsigned char bgsm[];
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g = lane >> 2, tq = lane & 3;
  const int z = blockIdx.y;
  // Mode 2: tile rows [0, BN/2) are gate rows n0 + r, [BN/2, BN) up rows half + n0 + r - BN/2 (n0 in gate rows).
  const bool silu = mode == 2;
  const int half = n >> 1, n0 = blockIdx.x * (silu ? BN / 2 : BN);
  const int KCH = k / BG_KC, per = (KCH + S - 1) / S;
  const int c0 = min(KCH, z * per), c1 = min(KCH, c0 + per), nc = c1 - c0;
  // The ring starts at a 1024-byte boundary (the 128-byte swizzle's atom; batchGemmSmem adds 1024 bytes).
  const u32 sbase = (bgSmem(bgsm) + 1023u) & ~1023u;
#if BG_EVICT
  u64 pol;
  asm volatile("createpolicy.fractional.L2::evict_first.b64 %0, 1.0;" : "=l"(pol));
#endif
  // Stage loads: BN weight rows (then MT x rows) × 8 chunks; thread t takes chunks t, t + 256, ... (8 threads a row).
  auto loadW = [&](int i) {
    const int slot = i % NS;
    const u32 st = sbase + slot * STAGE;
    const long long col = (long long)(c0 + i) * BG_KC;
#pragma unroll
    for (int j = 0; j < BN * CPR / 256; j++) {
      const int e = tid + 256 * j, r = e / CPR, c = e % CPR;
      const int wr = silu ? (r < BN / 2 ? min(n0 + r, half - 1) : half + min(n0 + r - BN / 2, half - 1)) : min(n0 + r, n - 1);
      const bf16_t* src = W + (long long)wr * k + col + c * 8;
#if BG_EVICT
      bgCp16Evict(st + bgSwz(r, c), src, pol);
#else
      bgCp16(st + bgSwz(r, c), src);
#endif
    }
  };
  auto loadX = [&](int i) {
    const int slot = i % NS;
    const u32 st = sbase + slot * STAGE + WBYTES;
    const long long col = (long long)(c0 + i) * BG_KC;
#pragma unroll
    for (int j = 0; j < (MT * CPR + 255) / 256; j++) {
      const int e = tid + 256 * j, r = e / CPR, c = e % CPR;
      if (MT * CPR % 256 == 0 || e < MT * CPR) bgCp16(st + bgSwz(r, c), x + (long long)min(r, m - 1) * k + col + c * 8);
    }
  };
  // Prologue: the first NS - 1 stages' weights (one group each), then, past pdlWait, their x (one group each).
  // Waiting for "at most NS - 2 groups pending" at stage i then covers weights and x of stage i (groups are in order).
#pragma unroll
  for (int i = 0; i < NS - 1; i++) {
    if (i < nc) loadW(i);
    bgCommit();
  }
  pdlWait();
#pragma unroll
  for (int i = 0; i < NS - 1; i++) {
    if (i < nc) loadX(i);
    bgCommit();
  }
  float acc[WT][NT][4];
#pragma unroll
  for (int a = 0; a < WT; a++)
#pragma unroll
    for (int b = 0; b < NT; b++) acc[a][b][0] = acc[a][b][1] = acc[a][b][2] = acc[a][b][3] = 0.f;
  // ldmatrix lanes. A (weights, x4 = rows 0-7 / 8-15 × chunk 2kk / 2kk + 1): row wr0 + (lane & 15), chunk + (lane >> 4).
  // B (x rows, x4 = two n-tiles × chunks 2kk / 2kk + 1): row (lane & 7) + 8·(lane >> 4), chunk + ((lane >> 3) & 1).
  const int wr0 = warp * 16 * WT;
  const int aRow = lane & 15, aCh = lane >> 4;
  const int bRow = (lane & 7) + ((lane >> 4) << 3), bCh = (lane >> 3) & 1;
#if BG_WG
  static_assert(BG_KC == 64 && WT == 1, "BG_WGMMA: 128-byte rows, one 64-row weight tile a warpgroup");
  (void)aRow, (void)aCh, (void)bRow, (void)bCh;
  float(&accv)[NT * 4] = reinterpret_cast<float(&)[NT * 4]>(acc[0]);
  const u32 wgA = (u32)((warp >> 2) * 64 * 128);
  for (int i = 0; i < nc; i++) {
    bgWait<NS - 2>();
    bgFenceProxy();   // this thread's cp.async writes of stage i, visible to the tensor cores' async proxy
    __syncthreads();  // stage i is in for every thread; the wgmmas of stage i - 1 are done (waited below)
    if (i + NS - 1 < nc) {
      loadW(i + NS - 1);
      loadX(i + NS - 1);
    }
    bgCommit();
    const u32 st = sbase + (i % NS) * STAGE, xs = st + WBYTES;
    bgWgFence();
#pragma unroll
    for (int kk = 0; kk < 4; kk++) bgWgmma<NT>(accv, bgDesc(st + wgA + kk * 32, 16, 1024), bgDesc(xs + kk * 32, 16, 1024));
    bgWgCommit();
    bgWgWait0();
    bgFenceRegs(accv);
  }
#else
  for (int i = 0; i < nc; i++) {
    bgWait<NS - 2>();
    __syncthreads();  // stage i is in for every thread; every warp is done with stage i - 1, whose slot is refilled now
    if (i + NS - 1 < nc) {
      loadW(i + NS - 1);
      loadX(i + NS - 1);
    }
    bgCommit();
    const u32 st = sbase + (i % NS) * STAGE, xs = st + WBYTES;
    // 64 columns at a time: every fragment first (their shared-memory latencies overlap), then their mmas.
#pragma unroll
    for (int k0 = 0; k0 < BG_KC / 16; k0 += 4) {
      u32 af[4][WT][4], bf[4][NT / 2][4];
#pragma unroll
      for (int kk = 0; kk < 4; kk++) {
#pragma unroll
        for (int a = 0; a < WT; a++) bgLdsm(af[kk][a], st + bgSwz(wr0 + 16 * a + aRow, 2 * (k0 + kk) + aCh));
#pragma unroll
        for (int bp = 0; bp < NT / 2; bp++) bgLdsm(bf[kk][bp], xs + bgSwz(16 * bp + bRow, 2 * (k0 + kk) + bCh));
      }
#pragma unroll
      for (int kk = 0; kk < 4; kk++)
#pragma unroll
        for (int bp = 0; bp < NT / 2; bp++)
#pragma unroll
          for (int a = 0; a < WT; a++) {
            bgMma(acc[a][2 * bp], af[kk][a], bf[kk][bp][0], bf[kk][bp][1]);
            bgMma(acc[a][2 * bp + 1], af[kk][a], bf[kk][bp][2], bf[kk][bp][3]);
          }
    }
  }
#endif
  bgWait<0>();
  pdlLaunchDependents();
  __syncthreads();  // every warp is done reading the ring: it becomes the fp32 tile red [MT][BN + BG_PAD]
  float* red = reinterpret_cast<float*>(bgsm);
  constexpr int RS = BN + BG_PAD;
  // Fragment: acc[a][b][0|1] = (weight row 16a + g, x rows 8b + 2tq, +1), [2|3] the same for weight row 16a + g + 8.
#pragma unroll
  for (int a = 0; a < WT; a++)
#pragma unroll
    for (int b = 0; b < NT; b++)
#pragma unroll
      for (int e = 0; e < 4; e++) red[(8 * b + 2 * tq + (e & 1)) * RS + wr0 + 16 * a + g + 8 * (e >> 1)] = acc[a][b][e];
  if (S > 1) bgClusterSync();
  else __syncthreads();
  // Block z of the cluster: columns [z·CW, (z+1)·CW) of the tile (mode 2: of its gate half, with their up columns),
  // consecutive threads on consecutive columns; each value the sum of the S tiles in split order.
  constexpr int CW = (BN + S - 1) / S, CW2 = (BN / 2 + S - 1) / S;  // the last block's share may be short
  const int rows = min(m, MT);
  // The S tiles' values are all loaded before the first add (their distributed-shared-memory latencies overlap).
  auto tileSum = [&](int r, int c) -> float {
    if (S == 1) return red[r * RS + c];
    const u32 a = bgSmem(red + r * RS + c);
    float t[S];
#pragma unroll
    for (int p = 0; p < S; p++) t[p] = bgLdCluster(a, p);
    float v = t[0];
#pragma unroll
    for (int p = 1; p < S; p++) v += t[p];
    return v;
  };
  if (silu) {
    const int cz0 = z * CW2;
    for (int e = tid; e < rows * CW2; e += 256) {
      const int r = e / CW2, c = cz0 + e % CW2, col = n0 + c;
      if (col >= half || c >= BN / 2) continue;
      float gv = tileSum(r, c), uv = tileSum(r, BN / 2 + c);
      if (bias) gv += toF(bias[col]), uv += toF(bias[half + col]);
      const float g = toF(fromF<bf16_t>(gv)), u = toF(fromF<bf16_t>(uv));
      reinterpret_cast<bf16_t*>(y)[(long long)r * half + col] = fromF<bf16_t>(g / (1.f + expf(-g)) * u);
    }
  } else {
    const int cz0 = z * CW;
    for (int e = tid; e < rows * CW; e += 256) {
      const int r = e / CW, c = cz0 + e % CW, col = n0 + c;
      if (col >= n || c >= BN) continue;
      float v = tileSum(r, c);
      if (bias) v += toF(bias[col]);
      if (mode == 1) reinterpret_cast<float*>(y)[(long long)r * n + col] = v;
      else reinterpret_cast<bf16_t*>(y)[(long long)r * n + col] = fromF<bf16_t>(v);
    }
  }
  if (S > 1) bgClusterSync();  // the peers' tiles stay alive until every block of the cluster has read them
}

// S == 1: no cluster (a plain launch); S > 1: clusters of the S blocks of a column tile.
#define BG_CLUSTER_1
#define BG_CLUSTER_N(S) __cluster_dims__(1, S, 1)
#define BATCH_GEMM(S, MT, NT, CL)                                                                                         \
  extern "C" __global__ void CL __launch_bounds__(256, 1) batch_gemm_s##S##_m##MT(                                       \
      const bf16_t* x, const bf16_t* W, const bf16_t* bias, void* y, int m, int n, int k, int mode) {                     \
    batchGemmImpl<NT, S>(x, W, bias, y, m, n, k, mode);                                                                   \
  }
#if LLMRT_KERNEL(batch_gemm_s1_m16)
BATCH_GEMM(1, 16, 2, BG_CLUSTER_1)
#endif
#if LLMRT_KERNEL(batch_gemm_s1_m32)
BATCH_GEMM(1, 32, 4, BG_CLUSTER_1)
#endif
#if LLMRT_KERNEL(batch_gemm_s1_m64)
BATCH_GEMM(1, 64, 8, BG_CLUSTER_1)
#endif
#if LLMRT_KERNEL(batch_gemm_s2_m16)
BATCH_GEMM(2, 16, 2, BG_CLUSTER_N(2))
#endif
#if LLMRT_KERNEL(batch_gemm_s2_m32)
BATCH_GEMM(2, 32, 4, BG_CLUSTER_N(2))
#endif
#if LLMRT_KERNEL(batch_gemm_s2_m64)
BATCH_GEMM(2, 64, 8, BG_CLUSTER_N(2))
#endif
#if LLMRT_KERNEL(batch_gemm_s3_m16)
BATCH_GEMM(3, 16, 2, BG_CLUSTER_N(3))
#endif
#if LLMRT_KERNEL(batch_gemm_s3_m32)
BATCH_GEMM(3, 32, 4, BG_CLUSTER_N(3))
#endif
#if LLMRT_KERNEL(batch_gemm_s3_m64)
BATCH_GEMM(3, 64, 8, BG_CLUSTER_N(3))
#endif
#if LLMRT_KERNEL(batch_gemm_s4_m16)
BATCH_GEMM(4, 16, 2, BG_CLUSTER_N(4))
#endif
#if LLMRT_KERNEL(batch_gemm_s4_m32)
BATCH_GEMM(4, 32, 4, BG_CLUSTER_N(4))
#endif
#if LLMRT_KERNEL(batch_gemm_s4_m64)
BATCH_GEMM(4, 64, 8, BG_CLUSTER_N(4))
#endif
#if LLMRT_KERNEL(batch_gemm_s5_m16)
BATCH_GEMM(5, 16, 2, BG_CLUSTER_N(5))
#endif
#if LLMRT_KERNEL(batch_gemm_s5_m32)
BATCH_GEMM(5, 32, 4, BG_CLUSTER_N(5))
#endif
#if LLMRT_KERNEL(batch_gemm_s5_m64)
BATCH_GEMM(5, 64, 8, BG_CLUSTER_N(5))
#endif
#if LLMRT_KERNEL(batch_gemm_s6_m16)
BATCH_GEMM(6, 16, 2, BG_CLUSTER_N(6))
#endif
#if LLMRT_KERNEL(batch_gemm_s6_m32)
BATCH_GEMM(6, 32, 4, BG_CLUSTER_N(6))
#endif
#if LLMRT_KERNEL(batch_gemm_s6_m64)
BATCH_GEMM(6, 64, 8, BG_CLUSTER_N(6))
#endif
#if LLMRT_KERNEL(batch_gemm_s7_m16)
BATCH_GEMM(7, 16, 2, BG_CLUSTER_N(7))
#endif
#if LLMRT_KERNEL(batch_gemm_s7_m32)
BATCH_GEMM(7, 32, 4, BG_CLUSTER_N(7))
#endif
#if LLMRT_KERNEL(batch_gemm_s7_m64)
BATCH_GEMM(7, 64, 8, BG_CLUSTER_N(7))
#endif
#if LLMRT_KERNEL(batch_gemm_s8_m16)
BATCH_GEMM(8, 16, 2, BG_CLUSTER_N(8))
#endif
#if LLMRT_KERNEL(batch_gemm_s8_m32)
BATCH_GEMM(8, 32, 4, BG_CLUSTER_N(8))
#endif
#if LLMRT_KERNEL(batch_gemm_s8_m64)
BATCH_GEMM(8, 64, 8, BG_CLUSTER_N(8))
#endif
