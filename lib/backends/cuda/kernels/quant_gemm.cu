// Weight-only quantized GEMM for batched decode steps (issue 12 deliverable 4): 9..64 rows per x tile,
// llmrt's packed layout (lib/quantization/packed.ts; quant_gemv.cu's header):
//   W [n, k·bits/8] u8 (uint4 two per byte, element 2j low), scales [n, k/G] f32, zeros [n, k/G] u8 or 0
//   w[j, i] = (q[j, i] - z[j, i/G]) * s[j, i/G]
//
// extern "C" __global__ void quant_gemm_u{4|8}_m{16|32|64}(const bf16_t* x, const u8* W, const float* scales,
//     const u8* zeros, const bf16_t* bias, bf16_t* y, float* ws, int m, int n, int k, int group)
//   y [m, n] bf16 = x [m, k] bf16 · Wᵀ + bias (bias 0 = none), fp32 accumulation on mma.sync m16n8k16
//   (bf16). The weight is the mma's A operand (16 weight rows), x rows its B columns (8 per n-tile), so a
//   dequantized weight fragment serves every x row of the tile (MT = 16 / 32 / 64 rows: 2 / 4 / 8 n-tiles).
//   Block: 8 warps = QM_NWN along n × QM_NWK along k (defaults 8 × 1); a warp owns WT 16-row weight tiles (the
//   block BN = QM_NWN·16·WT weight rows, 128 by default, 256 for MT 64) and every QM_NWK-th "superchunk" (64 bytes of each weight row:
//   u4 128, u8 64 weights) of the block's k range. Lane (g = lane / 4, t = lane % 4) loads 16 bytes of rows
//   g and g + 8 of each tile per superchunk straight into registers (QM_U superchunks in flight), dequantizes
//   them as quant_gemv_fused does (u4: lop3 + bf16x2 FMA, no int→float; u8: byte permute into fp32), and
//   reads its x fragments (8 consecutive bf16, byte-permuted to the weights' k order) from a cp.async
//   shared-memory ring of QM_NS superchunk stages filled by the whole block (QM_XSMEM; 0: through L1).
//   Scales: group % E == 0 (E = u4 128 / u8 64): each superchunk's fp32 tile is scaled by its fp32 group
//   scale (exact); smaller groups (u4 g32/g64, u8 g16/g32): the scale multiplies the dequantized weights
//   before the mma, the fp32 product rounded to bf16 once (the weights of the dequantize + cuBLASLt path); the
//   MT 64 tiles do that for every group (QM_SA64: two weight tiles a warp leave no registers for fp32 tile sums).
//   grid (ceil(m / MT), ceil(n / BN), S)   block (256, 1, 1)   static shared ≤ 48 KB (x stages: MT·E·2 B each)
//   blockIdx.z splits k: block z takes superchunks [z·P, min(S_k, (z+1)·P)), P = ceil(S_k / S). S == 1: the
//   block writes y (+ bias); S > 1: it writes its fp32 partial into ws [S][m][n] (every row < m, every
//   column of its tiles) and quant_gemm_reduce sums the S partials in split order (deterministic: no atomics).
//   Needs k % E == 0, group % 32 (u4) / 16 (u8) == 0, k % group == 0, n % 16 == 0, 16-byte aligned x and W.
//
// extern "C" __global__ void quant_gemm_reduce(const float* ws, const bf16_t* bias, bf16_t* y, int m, int n, int splits)
//   y [m, n] = bf16(Σ_z ws[z] + bias), summed z = 0, 1, ... .   grid (ceil(m·n / 4 / 256), 1, 1)  block (256, 1, 1)
#include "common.cuh"

typedef unsigned char u8;

#ifndef QM_WT
#define QM_WT 1  // 16-row weight tiles per warp
#endif
#ifndef QM_U
#define QM_U 2  // superchunks per warp whose weight loads are in flight together (m16, m32)
#endif
#ifndef QM_U64
#define QM_U64 1  // the same for m64 (its accumulators and x fragments leave fewer registers)
#endif
#ifndef QM_WT64
#define QM_WT64 2  // the same for the m64 tiles (with QM_SA64 1; H200 session 9: 8B layer m64 u4 352 -> 234 us, u8 402 -> 232 us)
#endif
#ifndef QM_SA64
#define QM_SA64 1  // QM_SA_ALL for the m64 tiles
#endif
#ifndef QM_SA_ALL
#define QM_SA_ALL 0  // 1: every group scales the weights before the mma (bf16-rounded products, no fp32 tile temporaries)
#endif
#ifndef QM_XSMEM
#define QM_XSMEM 1  // 1: x through a cp.async shared-memory ring of QM_NS superchunk stages shared by the block (needs QM_NWN 8)
#endif
#ifndef QM_NS
#define QM_NS 3  // x stages (fewer where QM_NS stages would pass 48 KB: m64 u4 keeps 3 × 16 KB)
#endif
#ifndef QM_L2PF
#define QM_L2PF 0  // > 0: every QM_L2PF superchunks, each tile row's next QM_L2PF · 64 bytes are prefetched into L2 in one request
#endif
#ifndef QM_NWN
#define QM_NWN 8  // warps along n (QM_NWK = 8 / QM_NWN along k)
#endif
#define QM_NWK (8 / QM_NWN)
// Weight rows per block: QM_NWN · 16 · WT (WT = QM_WT, m64 QM_WT64): 128 with the defaults, 256 for the m64 tiles.

#ifndef LLMRT_EMU
__device__ __forceinline__ u32 qmPrmt(u32 a, u32 b, u32 sel) {
  u32 d;
  asm("prmt.b32 %0, %1, %2, %3;" : "=r"(d) : "r"(a), "r"(b), "r"(sel));
  return d;
}
__device__ __forceinline__ u32 qmFma2(u32 a, u32 b, u32 c) {
  u32 d;
  asm("fma.rn.bf16x2 %0, %1, %2, %3;" : "=r"(d) : "r"(a), "r"(b), "r"(c));
  return d;
}
__device__ __forceinline__ u32 qmNib(u32 w) {  // (w & 0x000F000F) | 0x43004300: bf16x2 128 + q
  u32 d;
  asm("lop3.b32 %0, %1, %2, %3, 0xEA;" : "=r"(d) : "r"(w), "r"(0x000F000Fu), "r"(0x43004300u));
  return d;
}
__device__ __forceinline__ u32 qmPackRn(float lo, float hi) {  // bf16x2, round to nearest even
  u32 d;
  asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(d) : "f"(hi), "f"(lo));
  return d;
}
__device__ __forceinline__ void qmMma(float (&c)[4], u32 a0, u32 a1, u32 a2, u32 a3, u32 b0, u32 b1) {
  asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
               : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
               : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}
#else  // CPU emulation (tools/cuda-kernel-check/quant_gemm_emu.py): the same operations in C
inline u32 qmPrmt(u32 a, u32 b, u32 sel) {
  const unsigned long long v = (unsigned long long)a | ((unsigned long long)b << 32);
  u32 d = 0;
  for (int i = 0; i < 4; i++) d |= (u32)((v >> (8 * ((sel >> (4 * i)) & 7))) & 0xFF) << (8 * i);
  return d;
}
inline u32 qmBfRn(float f) {
  const u32 u = __float_as_uint(f);
  return (u + 0x7FFFu + ((u >> 16) & 1u)) >> 16;
}
inline u32 qmFma2(u32 a, u32 b, u32 c) {
  u32 d = 0;
  for (int h = 0; h < 2; h++) {
    const float x = __uint_as_float(((a >> (16 * h)) & 0xFFFFu) << 16), y = __uint_as_float(((b >> (16 * h)) & 0xFFFFu) << 16);
    const float z = __uint_as_float(((c >> (16 * h)) & 0xFFFFu) << 16);
    d |= qmBfRn((float)((double)x * y + z)) << (16 * h);
  }
  return d;
}
inline u32 qmNib(u32 w) { return (w & 0x000F000Fu) | 0x43004300u; }
inline u32 qmPackRn(float lo, float hi) { return qmBfRn(lo) | (qmBfRn(hi) << 16); }
inline void qmMma(float (&c)[4], u32 a0, u32 a1, u32 a2, u32 a3, u32 b0, u32 b1) {
  const uint32_t a[4] = {a0, a1, a2, a3};
  llmrtEmuMma(c, a, b0, b1);
}
#endif

/**
 * u4 word → bf16x2 pairs (e0,e4), (e1,e5), (e2,e6), (e3,e7) of q - z (exact), or, SA, of (q - z)·s: the fp32 product
 * rounded once (as quant_dequant_u4_bf16 rounds). negZ2: -(128 + z) in both halves.
 */
template <bool SA>
__device__ __forceinline__ void qmDeqU4(u32 w, u32 negZ2, float s, u32 (&d)[4]) {
  const u32 one2 = 0x3F803F80u;  // bf16x2 1.0
#pragma unroll
  for (int i = 0; i < 4; i++) {
    d[i] = qmFma2(qmNib(w >> (4 * i)), one2, negZ2);
    if (SA) d[i] = qmPackRn(__uint_as_float(d[i] << 16) * s, __uint_as_float(d[i] & 0xFFFF0000u) * s);
  }
}
/** u8 word → bf16x2 pairs (e0,e1), (e2,e3) of q - z (exact), or of (q - z)·s rounded once when SA. zf: 2^23 + z. */
template <bool SA>
__device__ __forceinline__ void qmDeqU8(u32 w, float zf, float s, u32 (&d)[2]) {
  float f[4];
#pragma unroll
  for (int i = 0; i < 4; i++) f[i] = __uint_as_float(qmPrmt(w, 0x4B000000u, 0x7540 + i)) - zf;
  if (SA) {
    d[0] = qmPackRn(f[0] * s, f[1] * s);
    d[1] = qmPackRn(f[2] * s, f[3] * s);
  } else {
    d[0] = qmPrmt(__float_as_uint(f[0]), __float_as_uint(f[1]), 0x7632);
    d[1] = qmPrmt(__float_as_uint(f[2]), __float_as_uint(f[3]), 0x7632);
  }
}

/**
 * One superchunk of the warp's WT tiles against NT n-tiles of x. SA: scales folded into the weights
 * and the products go straight into acc; else each tile's fp32 sums are scaled by sc after the superchunk.
 * wv[wt][0|1]: rows g / g + 8 of tile wt; xs[nt]: x row of n-tile nt at this superchunk's first column.
 */
template <int BITS, int NT, int WT, bool SA, class XF>
__device__ __forceinline__ void qmSuper(const uint4 (&wv)[WT][2], const float (&sc)[WT][2], const u32 (&zz)[WT][2],
                                        const XF& xf, float (&acc)[WT][NT][4]) {
  float t[SA ? 1 : WT][SA ? 1 : NT][4];
  if (!SA) {
#pragma unroll
    for (int a = 0; a < WT; a++)
#pragma unroll
      for (int b = 0; b < NT; b++) t[a][b][0] = t[a][b][1] = t[a][b][2] = t[a][b][3] = 0.f;
  }
  if (BITS == 4) {
    u32 nz[WT][2];
#pragma unroll
    for (int a = 0; a < WT; a++) nz[a][0] = (0xC300u | zz[a][0]) * 0x10001u, nz[a][1] = (0xC300u | zz[a][1]) * 0x10001u;
#pragma unroll
    for (int u = 0; u < 4; u++) {
      u32 da[WT][4], db[WT][4];
#pragma unroll
      for (int a = 0; a < WT; a++) {
        const u32 wa = u == 0 ? wv[a][0].x : u == 1 ? wv[a][0].y : u == 2 ? wv[a][0].z : wv[a][0].w;
        const u32 wb = u == 0 ? wv[a][1].x : u == 1 ? wv[a][1].y : u == 2 ? wv[a][1].z : wv[a][1].w;
        qmDeqU4<SA>(wa, nz[a][0], sc[a][0], da[a]);
        qmDeqU4<SA>(wb, nz[a][1], sc[a][1], db[a]);
      }
#pragma unroll
      for (int b = 0; b < NT; b++) {
        const uint4 xv = xf(b, u);
        const u32 x04 = qmPrmt(xv.x, xv.z, 0x5410), x15 = qmPrmt(xv.x, xv.z, 0x7632);
        const u32 x26 = qmPrmt(xv.y, xv.w, 0x5410), x37 = qmPrmt(xv.y, xv.w, 0x7632);
#pragma unroll
        for (int a = 0; a < WT; a++) {
          float(&c)[4] = SA ? acc[a][b] : t[SA ? 0 : a][SA ? 0 : b];
          qmMma(c, da[a][0], db[a][0], da[a][1], db[a][1], x04, x15);
          qmMma(c, da[a][2], db[a][2], da[a][3], db[a][3], x26, x37);
        }
      }
    }
  } else {
    float zf[WT][2];
#pragma unroll
    for (int a = 0; a < WT; a++) zf[a][0] = 8388608.f + (float)zz[a][0], zf[a][1] = 8388608.f + (float)zz[a][1];
#pragma unroll
    for (int u = 0; u < 4; u++) {
      u32 da[WT][2], db[WT][2];
#pragma unroll
      for (int a = 0; a < WT; a++) {
        const u32 wa = u == 0 ? wv[a][0].x : u == 1 ? wv[a][0].y : u == 2 ? wv[a][0].z : wv[a][0].w;
        const u32 wb = u == 0 ? wv[a][1].x : u == 1 ? wv[a][1].y : u == 2 ? wv[a][1].z : wv[a][1].w;
        qmDeqU8<SA>(wa, zf[a][0], sc[a][0], da[a]);
        qmDeqU8<SA>(wb, zf[a][1], sc[a][1], db[a]);
      }
#pragma unroll
      for (int b = 0; b < NT; b++) {
        // Columns 16·tq + 4u .. +3 of the superchunk (chunk u / 2 of the lane's two): x pairs as stored.
        const uint4 xv = xf(b, u >> 1);
        const u32 x0 = (u & 1) ? xv.z : xv.x, x1 = (u & 1) ? xv.w : xv.y;
#pragma unroll
        for (int a = 0; a < WT; a++) {
          float(&c)[4] = SA ? acc[a][b] : t[SA ? 0 : a][SA ? 0 : b];
          qmMma(c, da[a][0], db[a][0], da[a][1], db[a][1], x0, x1);
        }
      }
    }
  }
  if (!SA) {
#pragma unroll
    for (int a = 0; a < WT; a++)
#pragma unroll
      for (int b = 0; b < NT; b++) {
        acc[a][b][0] = fmaf(t[a][b][0], sc[a][0], acc[a][b][0]);
        acc[a][b][1] = fmaf(t[a][b][1], sc[a][0], acc[a][b][1]);
        acc[a][b][2] = fmaf(t[a][b][2], sc[a][1], acc[a][b][2]);
        acc[a][b][3] = fmaf(t[a][b][3], sc[a][1], acc[a][b][3]);
      }
  }
}

/** x fragments straight from global memory (through L1): chunk c of the lane's 16-byte x chunks of n-tile b. */
template <int BITS, int NT>
struct QmXGlobal {
  const bf16_t* xr[NT];  // x row of n-tile b at the superchunk's first column
  int tq;
  __device__ __forceinline__ uint4 operator()(int b, int c) const {
    return *reinterpret_cast<const uint4*>(xr[b] + (BITS == 4 ? 32 * tq : 16 * tq) + 8 * c);
  }
};

/**
 * Slot of 16-byte x chunk c of stage row r (QM_XSMEM): u4 rows hold 16 chunks, read by a quarter warp as chunks
 * 4t + u of rows r, r + 1 (t = 0..3): the 4 × 4 transpose spreads t over banks, bit 2 flips on odd rows; u8 rows hold
 * 8, read as chunks 2t + h: bit 0 flips on odd rows. Every quarter warp's 8 loads hit 8 distinct bank groups.
 */
template <int BITS>
__device__ __forceinline__ int qmXSlot(int r, int c) {
  return BITS == 4 ? ((((c & 3) << 2) | (c >> 2)) ^ ((r & 1) << 2)) : (c ^ (r & 1));
}

/** x fragments from a shared-memory stage (QM_XSMEM): [MT rows][E / 8 chunks] in qmXSlot order. */
template <int BITS, int NT>
struct QmXShared {
  const unsigned char* st;
  int g, tq;
  __device__ __forceinline__ uint4 operator()(int b, int c) const {
    constexpr int CH = BITS == 4 ? 16 : 8;
    const int r = 8 * b + g, cc = BITS == 4 ? 4 * tq + c : 2 * tq + c;
    return *reinterpret_cast<const uint4*>(st + (r * CH + qmXSlot<BITS>(r, cc)) * 16);
  }
};

#ifndef LLMRT_EMU
__device__ __forceinline__ void qmCpAsync16(void* smem, const void* gmem) {
  asm volatile("{ .reg .u64 s; cvta.to.shared.u64 s, %0; cp.async.cg.shared.global [s], [%1], 16; }" ::"l"(smem), "l"(gmem) : "memory");
}
__device__ __forceinline__ void qmCommit() { asm volatile("cp.async.commit_group;" ::: "memory"); }
template <int N>
__device__ __forceinline__ void qmWait() { asm volatile("cp.async.wait_group %0;" ::"n"(N) : "memory"); }
__device__ __forceinline__ void qmPrefetchL2(const void* p, int bytes) {
  asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;" ::"l"(p), "r"(bytes) : "memory");
}
#else
inline void qmCpAsync16(void* smem, const void* gmem) { memcpy(smem, gmem, 16); }
inline void qmCommit() {}
template <int N>
inline void qmWait() {}
inline void qmPrefetchL2(const void*, int) {}
#endif

template <int BITS, int NT>
__device__ __forceinline__ void quantGemmImpl(const bf16_t* x, const u8* W, const float* scales, const u8* zeros, const bf16_t* bias,
                                              bf16_t* y, float* ws, int m, int n, int k, int group) {
  constexpr int E = BITS == 4 ? 128 : 64, MT = NT * 8, U = NT == 8 ? QM_U64 : QM_U, LC = BITS == 4 ? 32 : 16, CH = E / 8;
  // m64 tiles: 2 weight tiles per warp (each x fragment feeds twice the mmas) with the scales folded into the weights
  // (no fp32 tile temporaries, so the accumulators fit); m16 / m32: QM_WT tiles, exact fp32 scaling.
  constexpr int WT = NT == 8 ? QM_WT64 : QM_WT, BN = QM_NWN * 16 * WT;
  constexpr bool SA_ALL = NT == 8 ? QM_SA64 : QM_SA_ALL;
#if QM_XSMEM
  static_assert(QM_NWK == 1, "QM_XSMEM: every warp of a block takes the same superchunks (QM_NWN 8)");
  constexpr int XSTAGE = MT * CH * 16, NS = QM_NS * XSTAGE <= 49152 ? QM_NS : 49152 / XSTAGE;
  static_assert(NS >= 2, "QM_XSMEM: two x stages at least");
  __shared__ __align__(128) unsigned char xsm[NS * XSTAGE];
#endif
#if QM_NWK > 1
  __shared__ float red[QM_NWN][WT * 16][MT + 1];
#endif
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g = lane >> 2, tq = lane & 3;
  const int wn = warp % QM_NWN, wk = warp / QM_NWN;
  const int r0 = blockIdx.x * MT;
  const int row0 = blockIdx.y * BN + wn * 16 * WT;
  const int S = k / E, per = (S + gridDim.z - 1) / gridDim.z;
  const int s0 = min(S, blockIdx.z * per), s1 = min(S, s0 + per);
  const int rowBytes = k * BITS / 8, ng = k / group;
  const u32 zdef = 1u << (BITS - 1);
  const bool sa = SA_ALL || group % E != 0;
  (void)tid;
  // Weight rows of this lane (clamped into the matrix: a tile past n computes garbage it never stores).
  int rows[WT][2];
  const u8* wp[WT][2];
#pragma unroll
  for (int a = 0; a < WT; a++)
#pragma unroll
    for (int h = 0; h < 2; h++) {
      rows[a][h] = min(row0 + 16 * a + 8 * h + g, n - 1);
      wp[a][h] = W + (long long)rows[a][h] * rowBytes + tq * 16;
    }
  float acc[WT][NT][4];
#pragma unroll
  for (int a = 0; a < WT; a++)
#pragma unroll
    for (int b = 0; b < NT; b++) acc[a][b][0] = acc[a][b][1] = acc[a][b][2] = acc[a][b][3] = 0.f;
  // A ring of U register slots: superchunk i's loads are issued U superchunks (of this warp) ahead.
  uint4 wv[U][WT][2];
  float sc[U][WT][2];
  u32 zz[U][WT][2];
  auto load = [&](int slot, int s) {
    const int gi = (s * E + LC * tq) / group;
#pragma unroll
    for (int a = 0; a < WT; a++)
#pragma unroll
      for (int h = 0; h < 2; h++) {
        wv[slot][a][h] = *reinterpret_cast<const uint4*>(wp[a][h] + (long long)s * 64);
        sc[slot][a][h] = scales[(long long)rows[a][h] * ng + gi];
        zz[slot][a][h] = zeros ? (u32)zeros[(long long)rows[a][h] * ng + gi] : zdef;
      }
  };
  // QM_L2PF: lanes 0-15 pull their tile rows' next QM_L2PF superchunks into L2 in one contiguous request each.
  auto prefetch = [&](int s) {
#if QM_L2PF
    // At s0 superchunks [s0, s0 + 2P), then at s0 + jP the next [s + P, s + 2P): P = QM_L2PF ahead of use.
    const int from = s == s0 ? s0 : s + QM_L2PF;
    if ((s - s0) % QM_L2PF == 0 && lane < 16 && from < s1) {
      const int cnt = min(s + 2 * QM_L2PF, s1) - from;
#pragma unroll
      for (int a = 0; a < WT; a++)
        qmPrefetchL2(W + (long long)min(row0 + 16 * a + lane, n - 1) * rowBytes + (long long)from * 64, cnt * 64);
    }
#else
    (void)s;
#endif
  };
  auto compute = [&](const uint4 (&w)[WT][2], const float (&c)[WT][2], const u32 (&z)[WT][2], int s) {
#if QM_XSMEM
    const QmXShared<BITS, NT> xf{xsm + ((s - s0) % NS) * XSTAGE, g, tq};
#else
    QmXGlobal<BITS, NT> xf;
#pragma unroll
    for (int b = 0; b < NT; b++) xf.xr[b] = x + (long long)min(r0 + 8 * b + g, m - 1) * k + s * E;
    xf.tq = tq;
#endif
    if (sa) qmSuper<BITS, NT, WT, true>(w, c, z, xf, acc);
    else qmSuper<BITS, NT, WT, false>(w, c, z, xf, acc);
  };
#if QM_XSMEM
  // x stages: superchunk s of the block's MT rows into stage (s - s0) % NS by cp.async, NS - 1 ahead.
  auto copyX = [&](int s) {
    unsigned char* st = xsm + ((s - s0) % NS) * XSTAGE;
    for (int i = tid; i < MT * CH; i += 256) {
      const int r = i / CH, c = i % CH;
      qmCpAsync16(st + (r * CH + qmXSlot<BITS>(r, c)) * 16, x + (long long)min(r0 + r, m - 1) * k + s * E + c * 8);
    }
  };
#pragma unroll
  for (int i = 0; i < NS - 1; i++) {
    if (s0 + i < s1) copyX(s0 + i);
    qmCommit();
  }
#endif
  constexpr int STEP = QM_NWK * U;
#pragma unroll
  for (int u = 0; u < U; u++)
    if (s0 + wk + QM_NWK * u < s1) load(u, s0 + wk + QM_NWK * u);
  for (int base = s0 + wk; base < s1; base += STEP) {
#pragma unroll
    for (int u = 0; u < U; u++) {
      const int s = base + QM_NWK * u;
      if (s < s1) {  // QM_XSMEM: uniform over the block (QM_NWK 1), so the barrier below is safe
#if QM_XSMEM
        qmWait<NS - 2>();
        __syncthreads();  // stage s is in; every warp is past superchunk s - 1, whose stage the next copy refills
        if (s + NS - 1 < s1) copyX(s + NS - 1);
        qmCommit();
#endif
        uint4 w[WT][2];
        float c[WT][2];
        u32 z[WT][2];
#pragma unroll
        for (int a = 0; a < WT; a++)
#pragma unroll
          for (int h = 0; h < 2; h++) w[a][h] = wv[u][a][h], c[a][h] = sc[u][a][h], z[a][h] = zz[u][a][h];
        if (s + STEP < s1) load(u, s + STEP);
        prefetch(s);
        compute(w, c, z, s);
      }
    }
  }
#if QM_XSMEM
  qmWait<0>();
#endif
  // Fragment: acc[a][b][0|1] = (weight row 16a + g, x rows 8b + 2tq, +1), [2|3] the same for row 16a + g + 8.
  const int split = gridDim.z > 1;
#if QM_NWK == 1
  // One warp holds each output tile whole: stores straight from the fragments (8 consecutive columns per x row).
#pragma unroll
  for (int a = 0; a < WT; a++)
#pragma unroll
    for (int h = 0; h < 2; h++) {
      const int col = row0 + 16 * a + 8 * h + g;
      if (col >= n) continue;
      const float bv = (!split && bias) ? toF(bias[col]) : 0.f;
#pragma unroll
      for (int b = 0; b < NT; b++)
#pragma unroll
        for (int e = 0; e < 2; e++) {
          const int r = r0 + 8 * b + 2 * tq + e;
          if (r >= m) continue;
          const float v = acc[a][b][2 * h + e];
          if (split) ws[((long long)blockIdx.z * m + r) * n + col] = v;
          else y[(long long)r * n + col] = fromF<bf16_t>(v + bv);
        }
    }
#else
  // The k-warps' tiles meet in shared memory, summed in warp order (wk = 0, 1, ...).
  for (int w = QM_NWK - 1; w >= 0; w--) {
    if (wk == w) {
#pragma unroll
      for (int a = 0; a < WT; a++)
#pragma unroll
        for (int b = 0; b < NT; b++)
#pragma unroll
          for (int i = 0; i < 4; i++) {
            float& r = red[wn][16 * a + g + 8 * (i >> 1)][8 * b + 2 * tq + (i & 1)];
            r = w == QM_NWK - 1 ? acc[a][b][i] : acc[a][b][i] + r;
          }
    }
    __syncthreads();
  }
  // red [QM_NWN][rows][MT] → y rows r0.. (x rows), columns blockIdx.y·BN + ... (weight rows): thread j
  // of 256 writes columns (j % BN) for x rows j / BN, j / BN + 256 / BN, ... (consecutive threads: consecutive columns).
  constexpr int RSTEP = 256 / BN;
  const int cb = tid % BN, rb = tid / BN;
  const int col = blockIdx.y * BN + cb;
  if (col < n) {
    const float bv = (!split && bias) ? toF(bias[col]) : 0.f;
    const float* src = &red[cb / (16 * WT)][cb % (16 * WT)][0];
    for (int r = rb; r < MT && r0 + r < m; r += RSTEP) {
      const float v = src[r];
      if (split) ws[((long long)blockIdx.z * m + r0 + r) * n + col] = v;
      else y[(long long)(r0 + r) * n + col] = fromF<bf16_t>(v + bv);
    }
  }
#endif
}

#define QUANT_GEMM(NAME, BITS, NT)                                                                                         \
  extern "C" __global__ void __launch_bounds__(256, 1) NAME(const bf16_t* x, const u8* W, const float* scales, const u8* zeros, \
      const bf16_t* bias, bf16_t* y, float* ws, int m, int n, int k, int group) {                                         \
    quantGemmImpl<BITS, NT>(x, W, scales, zeros, bias, y, ws, m, n, k, group);                                            \
  }
#if LLMRT_KERNEL(quant_gemm_u4_m16)
QUANT_GEMM(quant_gemm_u4_m16, 4, 2)
#endif
#if LLMRT_KERNEL(quant_gemm_u4_m32)
QUANT_GEMM(quant_gemm_u4_m32, 4, 4)
#endif
#if LLMRT_KERNEL(quant_gemm_u4_m64)
QUANT_GEMM(quant_gemm_u4_m64, 4, 8)
#endif
#if LLMRT_KERNEL(quant_gemm_u8_m16)
QUANT_GEMM(quant_gemm_u8_m16, 8, 2)
#endif
#if LLMRT_KERNEL(quant_gemm_u8_m32)
QUANT_GEMM(quant_gemm_u8_m32, 8, 4)
#endif
#if LLMRT_KERNEL(quant_gemm_u8_m64)
QUANT_GEMM(quant_gemm_u8_m64, 8, 8)
#endif

#if LLMRT_KERNEL(quant_gemm_reduce)
extern "C" __global__ void __launch_bounds__(256) quant_gemm_reduce(const float* ws, const bf16_t* bias, bf16_t* y, int m, int n, int splits) {
  const long long i = ((long long)blockIdx.x * 256 + threadIdx.x) * 4, total = (long long)m * n;
  if (i >= total) return;
  float4 s = *reinterpret_cast<const float4*>(ws + i);
  for (int z = 1; z < splits; z++) {
    const float4 v = *reinterpret_cast<const float4*>(ws + (long long)z * total + i);
    s.x += v.x, s.y += v.y, s.z += v.z, s.w += v.w;
  }
  if (bias) {
    const int c = (int)(i % n);
    s.x += toF(bias[c]), s.y += toF(bias[c + 1]), s.z += toF(bias[c + 2]), s.w += toF(bias[c + 3]);
  }
  const u32 lo = (u32)fromF<bf16_t>(s.x) | ((u32)fromF<bf16_t>(s.y) << 16), hi = (u32)fromF<bf16_t>(s.z) | ((u32)fromF<bf16_t>(s.w) << 16);
  uint2 o;
  o.x = lo, o.y = hi;
  *reinterpret_cast<uint2*>(y + i) = o;
}
#endif
