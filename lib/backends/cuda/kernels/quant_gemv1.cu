// One-token weight-only quantized decode GEMV (issue 12, session 10; CUDA flag quantGemv1), llmrt's packed layout
// (lib/quantization/packed.ts, as quant_gemv.cu):
//   W [n, k·bits/8] u8: uint4 two per byte (element 2j in the low nibble of byte j), or uint8
//   scales [n, k/G] f32;  zeros [n, k/G] u8, or 0 (= none: zero point 2^(bits-1));  w[j, i] = (q[j, i] - z) · s
//
// extern "C" __global__ void quant_gemv1_u{4|8}(const bf16_t* x, const u8* W, const float* scales, const u8* zeros,
//     const bf16_t* bias, void* y, const bf16_t* normW, float eps, int m, int n, int k, int group, int mode)
// extern "C" __global__ void quant_gemv1_norm_u{4|8}(...same parameters...)
//   quant_gemv_fused{,_norm}_u{4|8}'s parameters, modes and roundings with m == 1 (mode 0 y = x Wᵀ + bias; 1 y += bf16(..);
//   2 gate rows [0, n/2), up rows [n/2, n): y [n/2] = bf16(silu(bf16(gate)) · bf16(up)); 3 fp32), the same exact
//   (q - z) · x products on the tensor cores, fp32 group sums scaled by the group's fp32 scale, summed in another order.
//   _norm: x is first replaced by rmsnorm(x) · normW rounded to bf16 (rmsnorm_bf16's sums in its order: the same bits).
//   Needs k % 2048 (u4) / 1024 (u8) == 0 (an even number of "segments": 512 bytes of a row), group % 128 (u4) / 64 (u8) == 0, n even,
//   k <= 16384 (_norm: 8192), blocks of 256 threads, 16-byte aligned x and W.
//   The fp8_gemv1 form (kernels/fp8_gemv.cu): any grid (the launcher: a persistent one, Q1_MINB blocks per SM, fewer
//   when there are few rows). Work units are row pairs (mode 2: gate row u and up row n/2 + u; else rows 2p, 2p + 1),
//   split evenly over all the grid's warps: each warp streams a contiguous run of pairs, segment by segment (lane l:
//   bytes [16l, 16l + 16) of both rows' segment) through a register ring of Q1_D slots (a slot: both rows' 16 bytes,
//   their group scales and zero points), the first Q1_D issued before the PDL wait, each group of G slots refilled
//   as soon as consumed. x is staged once per block in shared memory, permuted so that lane l's x of word u of
//   segment s is one conflict-free 16-byte load.
//   A segment is 8 (u4) / 4 (u8) mma m16n8k16 with A rows g / g + 8 = the two rows' weights of lanes (g, 0..3) and
//   B column g = those lanes' x values: D[g][g] / D[g + 8][g] are the two rows' dot products over quad g's columns —
//   one quantization group (u4: 128 columns, u8: 64), scaled in fp32 by its scale. At a pair's end a warp sum over g.
//   grid (any, 1, 1)   block (256, 1, 1)   shared 32.1 KiB static
#include "common.cuh"

typedef unsigned char u8;

#ifndef Q1_D
#define Q1_D 8  // ring slots per lane (each: 2 × 16 bytes of weights in flight), in groups of G segments
#endif
#ifndef Q1_MINB
#define Q1_MINB 2  // __launch_bounds__ min blocks per SM (2: <= 128 registers; the launcher's QUANT_GEMV1_BLOCKS_PER_SM)
#endif
#ifndef Q1_GMAX
#define Q1_GMAX 2  // segments of a branch-free group of the main loop (2, or 4 where k allows; at least 2 groups in the ring)
#endif
#ifndef Q1_NOSCALE
#define Q1_NOSCALE 0  // 1: no scale / zero-point loads (scale 1, the default zero point): a timing ceiling only, wrong sums
#endif
#define Q1_XS 16384  // most in-features (bf16 x staged in shared memory)
#define Q1_XSN 8192  // most in-features of the _norm entry points (x and normW held in registers by the prologue)

#ifndef LLMRT_EMU
__device__ __forceinline__ u32 q1Fma2(u32 a, u32 b, u32 c) {
  u32 d;
  asm("fma.rn.bf16x2 %0, %1, %2, %3;" : "=r"(d) : "r"(a), "r"(b), "r"(c));
  return d;
}
__device__ __forceinline__ u32 q1Nib(u32 w) {  // (w & 0x000F000F) | 0x43004300: bf16x2 128 + q
  u32 d;
  asm("lop3.b32 %0, %1, %2, %3, 0xEA;" : "=r"(d) : "r"(w), "r"(0x000F000Fu), "r"(0x43004300u));
  return d;
}
__device__ __forceinline__ u32 q1Prmt(u32 a, u32 b, u32 sel) {
  u32 d;
  asm("prmt.b32 %0, %1, %2, %3;" : "=r"(d) : "r"(a), "r"(b), "r"(sel));
  return d;
}
__device__ __forceinline__ void q1Mma(float (&c)[4], u32 a0, u32 a1, u32 a2, u32 a3, u32 b0, u32 b1) {
  asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
               : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
               : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}
/** A streamed 16-byte weight load (read once: no L1 allocation). */
__device__ __forceinline__ uint4 q1Ld(const u8* p) {
  uint4 v;
  asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];" : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w) : "l"(p));
  return v;
}
#else  // CPU emulation (tools/cuda-kernel-check/quant_gemv1_emu.py): the same operations in C
inline u32 q1Prmt(u32 a, u32 b, u32 sel) {
  const unsigned long long v = (unsigned long long)a | ((unsigned long long)b << 32);
  u32 d = 0;
  for (int i = 0; i < 4; i++) d |= (u32)((v >> (8 * ((sel >> (4 * i)) & 7))) & 0xFF) << (8 * i);
  return d;
}
inline u32 q1BfRn(float f) {
  const u32 u = __float_as_uint(f);
  return (u + 0x7FFFu + ((u >> 16) & 1u)) >> 16;
}
inline u32 q1Fma2(u32 a, u32 b, u32 c) {
  u32 d = 0;
  for (int h = 0; h < 2; h++) {
    const float x = __uint_as_float(((a >> (16 * h)) & 0xFFFFu) << 16), y = __uint_as_float(((b >> (16 * h)) & 0xFFFFu) << 16);
    const float z = __uint_as_float(((c >> (16 * h)) & 0xFFFFu) << 16);
    d |= q1BfRn((float)((double)x * y + z)) << (16 * h);
  }
  return d;
}
inline u32 q1Nib(u32 w) { return (w & 0x000F000Fu) | 0x43004300u; }
inline void q1Mma(float (&c)[4], u32 a0, u32 a1, u32 a2, u32 a3, u32 b0, u32 b1) {
  const uint32_t a[4] = {a0, a1, a2, a3};
  llmrtEmuMma(c, a, b0, b1);
}
inline uint4 q1Ld(const u8* p) { return *reinterpret_cast<const uint4*>(p); }
template <typename T>
inline T __ldg(const T* p) { return *p; }
inline uint4 make_uint4(u32 x, u32 y, u32 z, u32 w) { return uint4{x, y, z, w}; }
#endif
__device__ __forceinline__ float q1Silu(float g) { return g / (1.f + expf(-g)); }

template <int BITS>
struct Q1 {
  static constexpr int SEGW = BITS == 4 ? 1024 : 512;  // weights per row per 512-byte segment
  static constexpr int QW = SEGW / 8;                  // columns of a lane quad (one mma column g)
  static constexpr int CPL = BITS == 4 ? 4 : 2;        // 8-element x chunks per lane per segment
};

/** One ring slot: the lane's 16 bytes of both rows of a segment. */
struct Q1Slot {
  uint4 a, b;
};
/**
 * The scales and zero points of a group of G segments: lane (g, t) holds those of quad g in the group's segment t % G
 * (both rows), so a group costs 4 small loads (u4 g128, G = 4: 128 contiguous bytes of scales a row) instead of 4 a slot;
 * segment j's come from lane 4g + j by shuffles.
 */
struct Q1Scale {
  float sa, sb;
  u32 za, zb;
};

/** A segment's two diagonal sums (rows A, B over quad g's columns), unscaled: d[g & 1], d[2 + (g & 1)] of lane t = g / 2. */
template <int BITS>
__device__ __forceinline__ void q1Segment(const Q1Slot& v, u32 za, u32 zb, const uint4* xs, float (&d)[4]) {
  d[0] = d[1] = d[2] = d[3] = 0.f;
  const u32 A[4] = {v.a.x, v.a.y, v.a.z, v.a.w}, B[4] = {v.b.x, v.b.y, v.b.z, v.b.w};
  if (BITS == 4) {
    const u32 one2 = 0x3F803F80u;
    const u32 nza = (0xC300u | za) * 0x10001u, nzb = (0xC300u | zb) * 0x10001u;  // -(128 + z), bf16x2
#pragma unroll
    for (int u = 0; u < 4; u++) {
      const uint4 xv = xs[32 * u];  // x of the word's 8 columns, staged as the pairs (0, 4), (1, 5), (2, 6), (3, 7)
      const u32 x04 = xv.x, x15 = xv.y, x26 = xv.z, x37 = xv.w;
      const u32 a0 = q1Fma2(q1Nib(A[u]), one2, nza), a1 = q1Fma2(q1Nib(A[u] >> 4), one2, nza);
      const u32 a2 = q1Fma2(q1Nib(A[u] >> 8), one2, nza), a3 = q1Fma2(q1Nib(A[u] >> 12), one2, nza);
      const u32 b0 = q1Fma2(q1Nib(B[u]), one2, nzb), b1 = q1Fma2(q1Nib(B[u] >> 4), one2, nzb);
      const u32 b2 = q1Fma2(q1Nib(B[u] >> 8), one2, nzb), b3 = q1Fma2(q1Nib(B[u] >> 12), one2, nzb);
      q1Mma(d, a0, b0, a1, b1, x04, x15);  // pairs (e0, e4), (e1, e5)
      q1Mma(d, a2, b2, a3, b3, x26, x37);  // pairs (e2, e6), (e3, e7)
    }
  } else {
    const float zfa = 8388608.f + (float)za, zfb = 8388608.f + (float)zb;
    const uint4 x0 = xs[0], x1 = xs[32];
    const u32 X[8] = {x0.x, x0.y, x0.z, x0.w, x1.x, x1.y, x1.z, x1.w};
#pragma unroll
    for (int u = 0; u < 4; u++) {
      float fa[4], fb[4];
#pragma unroll
      for (int i = 0; i < 4; i++) {
        fa[i] = __uint_as_float(q1Prmt(A[u], 0x4B000000u, 0x7540 + i)) - zfa;
        fb[i] = __uint_as_float(q1Prmt(B[u], 0x4B000000u, 0x7540 + i)) - zfb;
      }
      const u32 a0 = q1Prmt(__float_as_uint(fa[0]), __float_as_uint(fa[1]), 0x7632), a1 = q1Prmt(__float_as_uint(fa[2]), __float_as_uint(fa[3]), 0x7632);
      const u32 b0 = q1Prmt(__float_as_uint(fb[0]), __float_as_uint(fb[1]), 0x7632), b1 = q1Prmt(__float_as_uint(fb[2]), __float_as_uint(fb[3]), 0x7632);
      q1Mma(d, a0, b0, a1, b1, X[2 * u], X[2 * u + 1]);  // pairs (e0, e1), (e2, e3)
    }
  }
}

/** The stream state of a warp: the next (unit, segment) to load. */
struct Q1Issue {
  int unit, seg;
};

template <int BITS>
struct Q1Ctx {
  const u8* W;
  const float* scales;
  const u8* zeros;
  int n, k, group, mode, S, ng;
  __device__ __forceinline__ int rowA(int u) const { return mode == 2 ? u : 2 * u; }
  __device__ __forceinline__ int rowB(int u) const { return mode == 2 ? (n >> 1) + u : 2 * u + 1; }
  /** Slots v[0..G) ← segments s..s + G of unit u, sc ← their scales and zero points (lane (g, t): segment s + t % G, quad g). */
  template <int G>
  __device__ __forceinline__ void load(Q1Slot* v, Q1Scale& sc, int u, int s, int lane) const {
    const int ra = rowA(u), rb = rowB(u), rowBytes = k * BITS / 8;
    const u8* pa = W + (long long)ra * rowBytes + (long long)s * 512 + lane * 16;
    const u8* pb = W + (long long)rb * rowBytes + (long long)s * 512 + lane * 16;
#pragma unroll
    for (int j = 0; j < G; j++) {
      v[j].a = q1Ld(pa + j * 512);
      v[j].b = q1Ld(pb + j * 512);
    }
    const u32 zdef = 1u << (BITS - 1);
#if Q1_NOSCALE
    sc.sa = sc.sb = 1.f;
    sc.za = sc.zb = zdef;
#else
    const int gi = ((s + (lane & 3) % G) * Q1<BITS>::SEGW + (lane >> 2) * Q1<BITS>::QW) / group;
    sc.sa = __ldg(scales + (long long)ra * ng + gi);
    sc.sb = __ldg(scales + (long long)rb * ng + gi);
    sc.za = zeros ? (u32)__ldg(zeros + (long long)ra * ng + gi) : zdef;
    sc.zb = zeros ? (u32)__ldg(zeros + (long long)rb * ng + gi) : zdef;
#endif
  }
};

/**
 * Stages x (NORM: rmsnorm(x) · normW rounded to bf16 with rmsnormStage's sums in its order) into xs, permuted:
 * chunk c (x[8c .. 8c + 8)) of segment s = c / (32 CPL), lane l = (c % (32 CPL)) / CPL, word u = c % CPL goes to
 * 16-byte slot s · 32 CPL + u · 32 + l (u4: as the bf16 pairs (0, 4), (1, 5), (2, 6), (3, 7) the mmas take). The x loads (and normW's: weights, before the PDL wait) all in flight at once.
 */
template <int BITS, bool NORM, int XB>
__device__ __forceinline__ void q1Stage(const bf16_t* x, const uint4 (&nw)[XB], float eps, int k, uint4* xs, float* sh) {
  constexpr int CPL = Q1<BITS>::CPL, PER = 32 * CPL;
  const int kv = k >> 3, tid = threadIdx.x, nt = blockDim.x;
  uint4 r[XB];  // k <= 8 XB · 256: at most XB chunks a thread (256 threads)
#pragma unroll
  for (int i = 0; i < XB; i++) {
    const int c = tid + i * nt;
    r[i] = c < kv ? *reinterpret_cast<const uint4*>(x + (long long)c * 8) : make_uint4(0u, 0u, 0u, 0u);
  }
  if constexpr (NORM) {
    float ss = 0.f;
#pragma unroll
    for (int i = 0; i < XB; i++) {
      if (tid + i * nt < kv) {
        const u32 w[4] = {r[i].x, r[i].y, r[i].z, r[i].w};
#pragma unroll
        for (int e = 0; e < 8; e++) {
          const float a = __uint_as_float(e & 1 ? w[e >> 1] & 0xFFFF0000u : w[e >> 1] << 16);
          ss += a * a;
        }
      }
    }
    ss = blockSum(ss, sh);
    const float inv = rsqrtf(ss / (float)k + eps);
#pragma unroll
    for (int i = 0; i < XB; i++) {
      const u32 w[4] = {r[i].x, r[i].y, r[i].z, r[i].w}, q[4] = {nw[i].x, nw[i].y, nw[i].z, nw[i].w};
      u32 o[4];
#pragma unroll
      for (int e = 0; e < 4; e++) {
        const float a0 = __uint_as_float(w[e] << 16) * inv * __uint_as_float(q[e] << 16);
        const float a1 = __uint_as_float(w[e] & 0xFFFF0000u) * inv * __uint_as_float(q[e] & 0xFFFF0000u);
        o[e] = (u32)fromF<bf16_t>(a0) | ((u32)fromF<bf16_t>(a1) << 16);
      }
      r[i] = make_uint4(o[0], o[1], o[2], o[3]);
    }
  }
#pragma unroll
  for (int i = 0; i < XB; i++) {
    const int c = tid + i * nt;
    if (c < kv) {
      const int s = c / PER, cc = c % PER;
      uint4 v = r[i];
      if (BITS == 4) v = make_uint4(q1Prmt(v.x, v.z, 0x5410), q1Prmt(v.x, v.z, 0x7632), q1Prmt(v.y, v.w, 0x5410), q1Prmt(v.y, v.w, 0x7632));
      xs[s * PER + (cc % CPL) * 32 + cc / CPL] = v;
    }
  }
  __syncthreads();
}

/** The epilogue's extra inputs / outputs: _rs's 1 / rms, _addnorm's norm weight, xw and pair sums of squares. */
struct Q1Tail {
  float inv;            // RS: the sums' factor (1 otherwise)
  const bf16_t* normW;  // TAIL
  bf16_t* xw;           // TAIL: [n] bf16(new residual · normW)
  float* pairSq;        // TAIL: [n / 2] vA² + vB² of pair p (rows 2p, 2p + 1)
};

/** The main loop with G segments a group (S % G == 0, Q1_D % G == 0): loads, mmas and refills of a group without a branch. */
template <int BITS, int G, int D, bool RS, bool TAIL>
__device__ __forceinline__ void q1Main(Q1Slot (&v)[D], Q1Scale (&sc)[D / G], const Q1Ctx<BITS>& c, const uint4* xl, const bf16_t* bias,
                                       void* y, int U0, int U1, Q1Issue& is, const Q1Tail& tl) {
  constexpr int PER = 32 * Q1<BITS>::CPL;  // 16-byte x slots per segment
  const int lane = threadIdx.x & 31, g = lane >> 2;
  const int S = c.S, mode = c.mode;
  int cU = U0, cS = 0;
  float accA = 0.f, accB = 0.f;
  const int groups = (U1 - U0) * (S / G);
  for (int base = 0; base < groups; base += D / G) {
#pragma unroll
    for (int gi = 0; gi < D / G; gi++) {
      if (base + gi < groups) {
#pragma unroll
        for (int j = 0; j < G; j++) {
          const int src = (lane & 28) | j;  // lane (g, j): quad g's scales and zero points of segment j
          const float sa = G > 1 ? __shfl_sync(0xffffffffu, sc[gi].sa, src) : sc[gi].sa;
          const float sb = G > 1 ? __shfl_sync(0xffffffffu, sc[gi].sb, src) : sc[gi].sb;
          const u32 za = G > 1 ? __shfl_sync(0xffffffffu, sc[gi].za, src) : sc[gi].za;
          const u32 zb = G > 1 ? __shfl_sync(0xffffffffu, sc[gi].zb, src) : sc[gi].zb;
          float d[4];
          q1Segment<BITS>(v[gi * G + j], za, zb, xl + (cS + j) * PER, d);
          accA = fmaf((g & 1) ? d[1] : d[0], sa, accA);
          accB = fmaf((g & 1) ? d[3] : d[2], sb, accB);
        }
        if (is.unit < U1) {  // refill the group's slots: the group D / G ahead
          c.template load<G>(&v[gi * G], sc[gi], is.unit, is.seg, lane);
          is.seg += G;
          if (is.seg == S) {
            is.seg = 0;
            ++is.unit;
          }
        }
        cS += G;
        if (cS == S) {
          // Pair cU done. Quad g's sum (groups g, g + 8, ...: quant_gemv_fused's warp g) sits in lane 4g + g / 2; added
          // in g order from 0 as quant_gemv_fused adds its warps: the same bits.
          float sa = 0.f, sb = 0.f;
#pragma unroll
          for (int q = 0; q < 8; q++) {
            sa += __shfl_sync(0xffffffffu, accA, 4 * q + (q >> 1));
            sb += __shfl_sync(0xffffffffu, accB, 4 * q + (q >> 1));
          }
          const int ra = c.rowA(cU), rb = c.rowB(cU);
          if (lane == 0) {
            float va = sa, vb = sb;
            if (RS) {
              va *= tl.inv;
              vb *= tl.inv;
            }
            if (bias) {
              va += toF(bias[ra]);
              vb += toF(bias[rb]);
            }
            if (mode == 2) {
              ((bf16_t*)y)[cU] = fromF<bf16_t>(q1Silu(toF(fromF<bf16_t>(va))) * toF(fromF<bf16_t>(vb)));
            } else if (mode == 0) {
              ((bf16_t*)y)[ra] = fromF<bf16_t>(va);
              ((bf16_t*)y)[rb] = fromF<bf16_t>(vb);
            } else if (mode == 1) {
              bf16_t* yb = (bf16_t*)y;
              const bf16_t na = fromF<bf16_t>(toF(fromF<bf16_t>(va)) + toF(yb[ra])), nb = fromF<bf16_t>(toF(fromF<bf16_t>(vb)) + toF(yb[rb]));
              yb[ra] = na;
              yb[rb] = nb;
              if (TAIL) {
                const float fa = toF(na), fb = toF(nb);
                tl.xw[ra] = fromF<bf16_t>(fa * toF(tl.normW[ra]));
                tl.xw[rb] = fromF<bf16_t>(fb * toF(tl.normW[rb]));
                tl.pairSq[cU] = fa * fa + fb * fb;
              }
            } else {
              ((float*)y)[ra] = va;
              ((float*)y)[rb] = vb;
            }
          }
          accA = accB = 0.f;
          cS = 0;
          ++cU;
        }
      }
    }
  }
}

/**
 * _rs: 1 / rms of x from an _addnorm launch's pair sums of squares [k / 2] — warp 0 computes it as
 * quant_gemv_fused_rs does from the 16-row kernel's tile sums: tile t = ((P0 + P1) + P2) + P3 with Pw = pair 8t + 2w's
 * sum + pair 8t + 2w + 1's (quant_gemv_fused_addnorm's shuffle order, so the same float), lane-strided over t, then
 * warpSum. The same bits as quant_gemv_fused_rs on the tile sums of quant_gemv_fused_addnorm.
 */
__device__ __forceinline__ float q1Rms(const float* pairSq, int k, float eps) {
  const int lane = threadIdx.x & 31;
  float ss = 0.f;
  for (int t = lane; t < (k >> 4); t += 32) {
    const float4 a = *reinterpret_cast<const float4*>(pairSq + 8 * t), b = *reinterpret_cast<const float4*>(pairSq + 8 * t + 4);
    ss += (((a.x + a.y) + (a.z + a.w)) + (b.x + b.y)) + (b.z + b.w);
  }
  ss = warpSum(ss);
  return rsqrtf(ss / (float)k + eps);
}

template <int BITS, bool NORM, bool RS, bool TAIL, int G, int D>
__device__ __forceinline__ void q1Run(const bf16_t* x, const Q1Ctx<BITS>& c, const bf16_t* bias, void* y, const bf16_t* normW, float eps,
                                      bf16_t* xw, float* pairSq, int U0, int U1, uint4* xs, float* sh) {
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, k = c.k, S = c.S;
  // The first D slots (weights, scales, zero points only) before the wait: they stream under the previous kernel's tail.
  Q1Issue is = {U0, 0};
  Q1Slot v[D];
  Q1Scale sc[D / G];
#pragma unroll
  for (int gi = 0; gi < D / G; gi++) {
    if (is.unit < U1) {
      c.template load<G>(&v[gi * G], sc[gi], is.unit, is.seg, lane);
      is.seg += G;
      if (is.seg == S) {
        is.seg = 0;
        ++is.unit;
      }
    }
  }
  constexpr int XB = NORM ? Q1_XSN / 2048 : Q1_XS / 2048;  // x chunks a thread stages (256 threads)
  uint4 nwr[XB];  // NORM: this thread's chunks of normW (a weight: loaded ahead of the wait)
  if constexpr (NORM) {
#pragma unroll
    for (int i = 0; i < XB; i++) {
      const int ch = tid + i * (int)blockDim.x;
      nwr[i] = ch < (k >> 3) ? *reinterpret_cast<const uint4*>(normW + (long long)ch * 8) : make_uint4(0u, 0u, 0u, 0u);
    }
  }
  pdlWait();  // x and y are the previous kernels' outputs
  pdlLaunchDependents();
  __shared__ float invSh;
  if (RS && warp == 0) {
    const float inv = q1Rms(reinterpret_cast<const float*>(normW), k, eps);
    if (lane == 0) invSh = inv;
  }
  q1Stage<BITS, NORM, XB>(x, nwr, eps, k, xs, sh);  // (its barrier publishes invSh)
  const Q1Tail tl = {RS ? invSh : 1.f, normW, xw, pairSq};
  if (U0 >= U1) return;
  q1Main<BITS, G, D, RS, TAIL>(v, sc, c, xs + lane, bias, y, U0, U1, is, tl);
}

template <int BITS, bool NORM, bool RS = false, bool TAIL = false>
__device__ __forceinline__ void quantGemv1Impl(const bf16_t* x, const u8* W, const float* scales, const u8* zeros, const bf16_t* bias, void* y,
                                               const bf16_t* normW, float eps, int n, int k, int group, int mode, bf16_t* xw = nullptr,
                                               float* pairSq = nullptr) {
  __shared__ uint4 xs[Q1_XS / 8];
  __shared__ float sh[32];
  const int warp = threadIdx.x >> 5;
  const int nw = blockDim.x >> 5;
  const Q1Ctx<BITS> c = {W, scales, zeros, n, k, group, mode, k / Q1<BITS>::SEGW, k / group};
  const int S = c.S;
  // This warp's units [U0, U1): n / 2 row pairs split evenly over all the grid's warps.
  const int units = n >> 1;
  const long long totalWarps = (long long)gridDim.x * nw, gw = (long long)blockIdx.x * nw + warp;
  const int U0 = (int)(units * gw / totalWarps), U1 = (int)(units * (gw + 1) / totalWarps);
  // G: segments a group (S % G == 0; at least two groups in the ring).
  // Each G is a copy of the main loop (compile time): groups of 2 (S even, as the launcher requires), 4 with Q1_GMAX=4.
  static_assert(Q1_D % 2 == 0 && Q1_D >= 4, "Q1_D: even, at least two groups of 2");
#if Q1_GMAX >= 4
  if (Q1_D % 4 == 0 && Q1_D >= 8 && S % 4 == 0) {
    q1Run<BITS, NORM, RS, TAIL, 4, Q1_D>(x, c, bias, y, normW, eps, xw, pairSq, U0, U1, xs, sh);
    return;
  }
#endif
  q1Run<BITS, NORM, RS, TAIL, 2, Q1_D>(x, c, bias, y, normW, eps, xw, pairSq, U0, U1, xs, sh);
}

#define QUANT_GEMV1(NAME, BITS, NORM)                                                                                      \
  extern "C" __global__ void __launch_bounds__(256, Q1_MINB) NAME(const bf16_t* x, const u8* W, const float* scales, const u8* zeros, \
      const bf16_t* bias, void* y, const bf16_t* normW, float eps, int m, int n, int k, int group, int mode) {                     \
    quantGemv1Impl<BITS, NORM>(x, W, scales, zeros, bias, y, normW, eps, n, k, group, mode);                                     \
  }
#if LLMRT_KERNEL(quant_gemv1_u4)
QUANT_GEMV1(quant_gemv1_u4, 4, false)
#endif
#if LLMRT_KERNEL(quant_gemv1_u8)
QUANT_GEMV1(quant_gemv1_u8, 8, false)
#endif
#if LLMRT_KERNEL(quant_gemv1_norm_u4)
QUANT_GEMV1(quant_gemv1_norm_u4, 4, true)
#endif
#if LLMRT_KERNEL(quant_gemv1_norm_u8)
QUANT_GEMV1(quant_gemv1_norm_u8, 8, true)
#endif

// quant_gemv1_addnorm_u{4|8}(x, W, scales, zeros, bias, y, normW, eps, m, n, k, group, mode, bf16_t* xw, float* pairSq):
//   mode 1 (the residual add) that also writes xw [n] = bf16(new residual · normW) and pairSq [n / 2] = vA² + vB² of each
//   row pair (2p, 2p + 1): quant_gemv_fused_addnorm's outputs with the sums of squares per pair instead of per 16-row tile.
// quant_gemv1_rs_u{4|8}(xw, W, scales, zeros, bias, y, (const bf16_t*) pairSq, eps, m, n, k, group, mode):
//   the plain kernel on x = xw whose sums are multiplied by rsqrt(Σ / k + eps) (q1Rms: quant_gemv_fused_rs's bits) before
//   the bias and the epilogue of `mode`. The pair (LaunchEnv.quantTailNorm with quantGemv1) gives the bits of
//   quant_gemv_fused_addnorm + quant_gemv_fused_rs at m = 1.
#define QUANT_GEMV1_ADDNORM(NAME, BITS)                                                                                    \
  extern "C" __global__ void __launch_bounds__(256, Q1_MINB) NAME(const bf16_t* x, const u8* W, const float* scales, const u8* zeros, \
      const bf16_t* bias, void* y, const bf16_t* normW, float eps, int m, int n, int k, int group, int mode, bf16_t* xw, float* pairSq) { \
    quantGemv1Impl<BITS, false, false, true>(x, W, scales, zeros, bias, y, normW, eps, n, k, group, mode, xw, pairSq);           \
  }
#define QUANT_GEMV1_RS(NAME, BITS)                                                                                         \
  extern "C" __global__ void __launch_bounds__(256, Q1_MINB) NAME(const bf16_t* x, const u8* W, const float* scales, const u8* zeros, \
      const bf16_t* bias, void* y, const bf16_t* normW, float eps, int m, int n, int k, int group, int mode) {                     \
    quantGemv1Impl<BITS, false, true>(x, W, scales, zeros, bias, y, normW, eps, n, k, group, mode);                              \
  }
#if LLMRT_KERNEL(quant_gemv1_addnorm_u4)
QUANT_GEMV1_ADDNORM(quant_gemv1_addnorm_u4, 4)
#endif
#if LLMRT_KERNEL(quant_gemv1_addnorm_u8)
QUANT_GEMV1_ADDNORM(quant_gemv1_addnorm_u8, 8)
#endif
#if LLMRT_KERNEL(quant_gemv1_rs_u4)
QUANT_GEMV1_RS(quant_gemv1_rs_u4, 4)
#endif
#if LLMRT_KERNEL(quant_gemv1_rs_u8)
QUANT_GEMV1_RS(quant_gemv1_rs_u8, 8)
#endif
