// Split-K flash decoding for decode steps (issue 16 item 1, session 7): decode_attention's fused step
// (RoPE of q and k, the KV-cache write of the step's token, attention, the split merge in ONE launch)
// with K/V streamed through a per-warp cp.async pipeline, so every SM keeps several chunks in flight
// while it computes, and with a key partition that depends on the token's own span only.
//
// extern "C" __global__ void decode_attention_sk_bf16_hd{64|128}(...decode_attention's parameters...)
//   The same parameters, layouts and outputs as decode_attention_bf16_hd* (decode_attention.cu), except:
//   - `splitSize` is the split TARGET TS (1..64) in bits 0..7; bits 8..15 may carry a span U / 64 up to which a token
//     takes one split (`decodeSkOneSplit`); bits 16 and up (when not 0) the least keys a split MK / 64 (MK = DS_MINK when
//     0; an MK below DS_MINK only while it gives <= (TS + 1) / 2 splits; `fp8DecodeSkSmall`): a token attending
//     `span` > U keys takes splits of sz = max(MK, roundUp64(ceil(span / TS))) keys (dsSplitKeys), nz = ceil(span / sz) <= TS of
//     them. The partition depends on the span and TS only (TS from the model and the device:
//     attention_choice.ts decodeSplitTarget), never on the grid or the other tokens of the step, so a
//     sequence's attention rounds the same in any step (batch invariance at every bucket).
//   - grid (numKvHeads * ceil(G / 8), numTokens, Z), any Z >= 1: block z takes splits z, z + Z, ... < nz
//     (Z >= the largest nz runs them all at once: decodeSplitGrid); blocks with no split exit at once.
//   - dynamic shared memory DS_SMEM bytes (4 warps x DS_NS stages x 8 KB = 96 KB at DS_NS 3): the launch
//     sets it (cuFuncSetAttribute MAX_DYNAMIC_SHARED_SIZE_BYTES first).
//   - partialO f32 [numTokens, numHeads, 64, hd], partialML [.., 64, 2] (split stride 64 =
//     MAX_DECODE_SPLITS whatever Z is); counters as decode_attention (zero between launches).
//   - prefetch / prefetchBytes are unused (pass 0).
// Block (128): 4 warps split the block's keys in chunks of 32 keys (hd64) / 16 keys (hd128) = 8 KB of
// K + V each, round robin; each warp streams its chunks through DS_NS cp.async stages of its own
// (zero-filled past the span, swizzled rows), keeps its own online softmax and P·V accumulators (no
// block barrier in the loop), and the 4 warps merge in a fixed order at the end.
// DS_MMA 1 (session 9): tensor cores (mma.sync m16n8k16, bf16 in, f32 sums). Scores S = Q K^T: the block's
// 8 heads are rows 0..7 of the m16 tile (rows 8..15 zero), K rows by ldmatrix; the online softmax runs on
// the S fragments (a head's keys over the 4 lanes of a quad); p rounded to bf16 (DS_PLO 1: + its bf16
// remainder) and O^T += V^T P^T (V^T by ldmatrix.trans, the S fragments are the P^T operand as they are;
// the 8 heads are n). Results differ from DS_MMA 0 by the bf16 rounding of p; batch invariance is
// unchanged (the same partition and merge order). ~7x fewer instructions per key than DS_MMA 0.
// DS_MMA 0 (session 7): scores one key per lane (hd64) or per lane pair (hd128, 64 dims each); P·V: each
// lane owns hd / 32 dims of every head (scalar FMAs).
// One split (nz == 1): that block writes out. Otherwise each split writes (m, l, O) and the last of
// the token's splits to finish (a counter per (token, kv group)) merges them in split order, 16 splits'
// (m, l, O) in flight per thread and round, with a running maximum.
// PDL: the first split's first DS_NS - 1 chunks (earlier keys of the cache) and the RoPE tables are
// issued before pdlWait (qkv is the previous kernel's output).
#include "common.cuh"
#ifndef LLMRT_EMU
#include "kv_fp8.cuh"
#endif

#ifndef DS_NS
#define DS_NS 3  // cp.async stages per warp (>= 2; attention_choice.ts DECODE_SK_STAGES; 2: llama-3.2-1b 32k steps 5% slower)
#endif
#ifndef DS_MINK
#define DS_MINK 128  // least keys per split (attention_choice.ts DECODE_SK_MIN_SPLIT)
#endif
#ifndef DS_MMA
#define DS_MMA 1  // 1: q·k and p·v on tensor cores (mma.sync m16n8k16, bf16 in, f32 sums); 0: the session 7 scalar loops
#endif
#ifndef DS_PLO
#define DS_PLO 0  // 1 (DS_MMA >= 1): p·v as (p_hi + p_lo)·v, p_lo = bf16(p - p_hi): p to ~16 bits instead of bf16's 8
#endif
#define DS_NW 4
#define DS_NT (DS_NW * 32)
#define DS_MG 8        // q heads per block
#define DS_MAXZ 64     // split stride of the partials (MAX_DECODE_SPLITS)
#ifndef DS_MB
#define DS_MB 16  // partial-O float4 loads in flight per thread in the split merge
#endif
#ifndef DS_QPRE
#define DS_QPRE 1  // 1: the step's q / k / v values a thread rotates read right after pdlWait in one round trip (0: loop by loop)
#endif
#ifndef DS_QPRE_FP8
#define DS_QPRE_FP8 0  // 1: DS_QPRE in the FP8-KV entry points too (not measured on the GPU; the CPU emulation agrees)
#endif
#ifndef DS_MINB
#define DS_MINB 2  // __launch_bounds__ min blocks per SM (a tuning knob for the harness)
#endif
#define DS_STAGE_U4 512  // uint4 per stage: 8 KB (K rows, then V rows)
#define DS_SMEM (DS_NW * DS_NS * DS_STAGE_U4 * 16)

#ifndef LLMRT_EMU
typedef u32 dsaddr;  // a shared-memory address
__device__ __forceinline__ dsaddr dsSmem(const void* p) {
  u64 g;
  asm("cvta.to.shared.u64 %0, %1;" : "=l"(g) : "l"(p));
  return (u32)g;
}
__device__ __forceinline__ void dsCpAsync16(dsaddr dst, const void* src, int bytes) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(bytes) : "memory");
}
__device__ __forceinline__ void dsCommit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
__device__ __forceinline__ void dsWait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(DS_NS - 1) : "memory"); }
__device__ __forceinline__ float dsLdcg(const float* p) {
  float v;
  asm volatile("ld.global.cg.f32 %0, [%1];" : "=f"(v) : "l"(p));
  return v;
}
__device__ __forceinline__ float4 dsLdcg4(const float* p) {
  float4 v;
  asm volatile("ld.global.cg.v4.f32 {%0, %1, %2, %3}, [%4];" : "=f"(v.x), "=f"(v.y), "=f"(v.z), "=f"(v.w) : "l"(p));
  return v;
}
#define DS_DYNAMIC_SMEM extern __shared__ __align__(16) uint4 dsm[]
#else  // CPU emulation (tools/cuda-kernel-check/decode_sk_emu.py): synchronous copies, plain loads
typedef u64 dsaddr;
inline dsaddr dsSmem(const void* p) { return (u64)p; }
inline void dsCpAsync16(dsaddr dst, const void* src, int bytes) {
  if (bytes) memcpy((void*)dst, src, 16);
  else memset((void*)dst, 0, 16);
}
inline void dsCommit() {}
inline void dsWait() {}
inline float dsLdcg(const float* p) { return *p; }
inline float4 dsLdcg4(const float* p) { return *reinterpret_cast<const float4*>(p); }
#define DS_DYNAMIC_SMEM static __align__(16) uint4 dsm[DS_SMEM / 16]
#endif

#ifndef LLMRT_EMU
__device__ __forceinline__ void dsMma(float (&d)[4], u32 a0, u32 a2, u32 b0, u32 b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a0), "r"(0u), "r"(a2), "r"(0u), "r"(b0), "r"(b1));
}
__device__ __forceinline__ void dsMma4(float (&d)[4], const u32 (&a)[4], u32 b0, u32 b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
/** dsMma / dsMma4 with f16 operands (the FP8-KV entry point: e4m3 K / V and q, p converted to f16). */
__device__ __forceinline__ void dsMmaH(float (&d)[4], u32 a0, u32 a2, u32 b0, u32 b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a0), "r"(0u), "r"(a2), "r"(0u), "r"(b0), "r"(b1));
}
__device__ __forceinline__ void dsMma4H(float (&d)[4], const u32 (&a)[4], u32 b0, u32 b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
/** Two e4m3 bytes (low byte first) → f16x2 (exact). */
__device__ __forceinline__ u32 dsE4m3x2(u32 w16) {
  u32 h;
  asm("cvt.rn.f16x2.e4m3x2 %0, %1;" : "=r"(h) : "h"((unsigned short)w16));
  return h;
}
/** (lo, hi) → f16x2, round to nearest even. */
__device__ __forceinline__ u32 dsPackH(float lo, float hi) {
  u32 h;
  asm("cvt.rn.f16x2.f32 %0, %1, %2;" : "=r"(h) : "f"(hi), "f"(lo));
  return h;
}
/** ldmatrix x4 (TRANS: .trans): lane l gives the address of row l % 8 of 8x8 matrix l / 8. */
template <bool TRANS>
__device__ __forceinline__ void dsLdsm(u32 (&r)[4], dsaddr a) {
  if (TRANS)
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(a) : "memory");
  else
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(a) : "memory");
}
#else  // CPU emulation: the PTX fragment layouts (cuda_emu.h llmrtEmuMma)
inline void dsMma(float (&d)[4], u32 a0, u32 a2, u32 b0, u32 b1) {
  const u32 a[4] = {a0, 0u, a2, 0u};
  llmrtEmuMma(d, a, b0, b1);
}
inline void dsMma4(float (&d)[4], const u32 (&a)[4], u32 b0, u32 b1) { llmrtEmuMma(d, a, b0, b1); }
/** f16 bits → float (exact). */
inline float emuH2F(u32 h) {
  const u32 e = (h >> 10) & 31u, m = h & 1023u;
  const float v = e == 0 ? std::ldexp((float)m, -24) : e == 31 ? (m ? NAN : INFINITY) : std::ldexp(1.f + m / 1024.f, (int)e - 15);
  return (h & 0x8000u) ? -v : v;
}
/** float → f16 bits, round to nearest even (finite inputs in range). */
inline u32 emuF2H(float f) {
  const u32 sign = std::signbit(f) ? 0x8000u : 0u;
  double a = std::fabs((double)f);
  if (a == 0.0) return sign;
  if (a >= 65520.0) return sign | 0x7c00u;
  int e = std::ilogb(a);
  if (e < -14) return sign | (u32)std::nearbyint(a / std::ldexp(1.0, -24));  // subnormal (rounds up into the normals exactly)
  double r = std::nearbyint(a / std::ldexp(1.0, e - 10));  // 1024..2048
  if (r >= 2048.0) { r /= 2.0; e++; }
  return sign | ((u32)(e + 15) << 10) | ((u32)r - 1024u);
}
/** mma.sync m16n8k16 f32 += f16 x f16 from the PTX fragment layout (llmrtEmuMma with f16 halves). */
inline void emuMmaH(float (&d)[4], const u32 (&a)[4], u32 b0, u32 b1) {
  uint64_t* mine = emuBlk->aux[emuWarp][emuLane];
  mine[0] = a[0]; mine[1] = a[1]; mine[2] = a[2]; mine[3] = a[3]; mine[4] = b0; mine[5] = b1;
  __syncwarp();
  float A[16][16], B[16][8];
  for (int l = 0; l < 32; l++) {
    const uint64_t* f = emuBlk->aux[emuWarp][l];
    const int g = l >> 2, c = l & 3;
    for (int e = 0; e < 2; e++) {
      auto h = [&](int j) { return emuH2F(e ? (u32)f[j] >> 16 : (u32)f[j] & 0xffffu); };
      A[g][2 * c + e] = h(0);
      A[g + 8][2 * c + e] = h(1);
      A[g][8 + 2 * c + e] = h(2);
      A[g + 8][8 + 2 * c + e] = h(3);
      B[2 * c + e][g] = h(4);
      B[8 + 2 * c + e][g] = h(5);
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
inline void dsMmaH(float (&d)[4], u32 a0, u32 a2, u32 b0, u32 b1) {
  const u32 a[4] = {a0, 0u, a2, 0u};
  emuMmaH(d, a, b0, b1);
}
inline void dsMma4H(float (&d)[4], const u32 (&a)[4], u32 b0, u32 b1) { emuMmaH(d, a, b0, b1); }
inline u32 emuE4m3ToH(u32 b) {
  const u32 e = (b >> 3) & 15u, m = b & 7u;
  const float v = e == 0 ? std::ldexp((float)m, -9) : std::ldexp(1.f + m / 8.f, (int)e - 7);
  return emuF2H((b & 0x80u) ? -v : v);
}
inline u32 dsE4m3x2(u32 w16) { return emuE4m3ToH(w16 & 0xffu) | (emuE4m3ToH((w16 >> 8) & 0xffu) << 16); }
inline u32 dsPackH(float lo, float hi) { return emuF2H(lo) | (emuF2H(hi) << 16); }
inline uint4 make_uint4(u32 x, u32 y, u32 z, u32 w) { return uint4{x, y, z, w}; }
typedef unsigned char u8;
/** float → e4m3 byte, round to nearest even, saturating to ±448 (cvt.rn.satfinite.e4m3x2.f32). */
inline u8 emuE4m3(float f) {
  if (std::isnan(f)) return 0x7f;
  const unsigned sign = std::signbit(f) ? 0x80u : 0u;
  const double a = std::fabs((double)f);
  if (a >= 448.0) return sign | 0x7e;
  if (a == 0.0) return sign;
  const int e = std::ilogb(a);
  const double q = e < -6 ? std::ldexp(1.0, -9) : std::ldexp(1.0, e - 3);
  const double r = std::nearbyint(a / q) * q;
  if (r >= 448.0) return sign | 0x7e;
  if (r == 0.0) return sign;
  const int re = std::ilogb(r);
  if (re < -6) return sign | (unsigned)std::lround(r / std::ldexp(1.0, -9));
  return sign | ((unsigned)(re + 7) << 3) | ((unsigned)std::lround(r / std::ldexp(1.0, re) * 8.0) - 8u);
}
template <typename KT> inline KT kvEncode(float x, float s);
template <> inline u8 kvEncode<u8>(float x, float s) { return emuE4m3(x / s); }
template <bool TRANS>
inline void dsLdsm(u32 (&r)[4], dsaddr a) {
  emuBlk->slots[emuWarp][emuLane] = a;
  __syncwarp();
  const int g = emuLane >> 2, c = emuLane & 3;
  for (int j = 0; j < 4; j++) {
    u32 w = 0;
    for (int e = 0; e < 2; e++) {
      // non-trans: row g, column 2c + e of matrix j; trans: row 2c + e, column g
      const int row = TRANS ? 2 * c + e : g, col = TRANS ? g : 2 * c + e;
      const unsigned short* rp = reinterpret_cast<const unsigned short*>(emuBlk->slots[emuWarp][8 * j + row]);
      w |= (u32)rp[col] << (16 * e);
    }
    r[j] = w;
  }
  __syncwarp();
}
#endif
__device__ __forceinline__ u32 dsPack(float lo, float hi) { return (u32)fromF<bf16_t>(lo) | ((u32)fromF<bf16_t>(hi) << 16); }
__device__ __forceinline__ void dsUnpack8(const uint4& v, float (&f)[8]) {
  const u32 w[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
  for (int i = 0; i < 4; i++) {
    f[2 * i] = __uint_as_float(w[i] << 16);
    f[2 * i + 1] = __uint_as_float(w[i] & 0xffff0000u);
  }
}

/**
 * Keys per split of a token attending `span` keys (attention_choice.ts decodeSkSplitKeys). `target` packs the split
 * target TS (bits 0..7, clamped to 1..DS_MAXZ), in bits 8..15 a span U / 64 up to which a token attends in one split (0:
 * none; the session's `decodeSkOneSplit` sends 4, U = 256 keys), and in bits 16 and up a least keys a split MK / 64 (0:
 * DS_MINK). An MK below DS_MINK (`fp8DecodeSkSmall`: 64) holds only while it gives at most (TS + 1) / 2 splits; longer
 * spans take DS_MINK's partition (so a graph's grid of min(TS, maxLen / DS_MINK) splits still runs them at once).
 */
__device__ __forceinline__ int dsSplitKeys(int span, int target) {
  const int ts = min(max(target & 0xff, 1), DS_MAXZ);
  if (span <= ((target >> 8) & 0xff) * 64) return (span + 63) & ~63;  // one split, no merge
  const int even = ((span + ts - 1) / ts + 63) & ~63;
  const int minKeys = (target >> 16) > 0 ? (target >> 16) * 64 : DS_MINK;
  const int sz = max(minKeys, even);
  return minKeys < DS_MINK && (span + sz - 1) / sz > (ts + 1) / 2 ? max(DS_MINK, even) : sz;
}

/** Swizzled 16-byte column of row r (rows of 8 or 16 vectors): conflict-free one-row-per-lane reads. */
__device__ __forceinline__ int dsSwz(int r, int col) { return (col & ~7) | ((col ^ r) & 7); }

template <int HD, typename KT = bf16_t>
__device__ __forceinline__ void decodeSkImpl(const bf16_t* qkv, bf16_t* out, KT* kv, const int* positions,
    const int* seqStarts, const int* blockTables, const double* invFreq, float attnScaling, float* partialO,
    float* partialML, int* counters, int numSeqs, int numHeads, int numKvHeads, int tokensPerBlock,
    int maxBlocksPerSeq, float scale, int window, int target, const float* kvScales = nullptr) {
  // Q8 (the _fp8kv_ entry point, session 10): an e4m3 cache. A chunk's raw K / V rows (half a bf16 stage) stream
  // through the warp's cp.async stages, are converted to f16 (exact) into one bf16-stage-sized buffer of the warp
  // in the bf16 layout, and the tensor-core loop runs on f16 operands: q (rotated, rounded to bf16, · 2^-8: exact,
  // in f16's range) and p in f16; kScale · 2^8 folds into the score scale, vScale into the output (the exact
  // e4m3 values otherwise, as decode_attention_fp8kv's DA_QFOLD 1).
  LLMRT_STAMP_SCOPE(sizeof(KT) == 1 ? 0x31u : 0x30u, kv);  // harness builds only (common.cuh)
  constexpr bool Q8 = sizeof(KT) == 1;
#if !DS_MMA
  static_assert(!Q8, "the FP8-KV entry point needs DS_MMA 1");
#endif
  constexpr int NT = DS_NT, NW = DS_NW, NS = DS_NS, MG = DS_MG, HALF = HD / 2;
  constexpr int LPK = HD / 64;         // lanes per key in the score phase
  constexpr int CK = 32 / LPK;         // keys per chunk
  constexpr int RV = HD / 8;           // 16-byte vectors per K / V row
  constexpr int ROWS_U4 = CK * RV;     // vectors of one chunk's K (or V) rows: 256
  [[maybe_unused]] constexpr int DPL = HD / 32;  // dims per lane in the P·V phase (DS_MMA 0)
  static_assert(2 * ROWS_U4 == DS_STAGE_U4, "a stage is 8 KB");
  constexpr int RR = HD / 16;           // Q8: 16-byte vectors of a raw (e4m3) K / V row
  constexpr int RAW_U4 = 2 * CK * RR;   // Q8: a raw stage (K rows, then V rows): 4 KB
  static_assert(!Q8 || NW * MG * HD * 4 <= NW * (DS_NS * RAW_U4 + DS_STAGE_U4) * 16, "Q8: the warps' merge fits its shared memory");
  DS_DYNAMIC_SMEM;  // [NW][NS][K rows | V rows]; reused by the merges
#if DS_MMA
  __shared__ __align__(16) bf16_t qs[MG * HD];  // rotated q rounded to bf16 (not prescaled)
#else
  __shared__ __align__(16) float qs[MG * HD];
  __shared__ __align__(16) float ps[NW][CK][MG];
#endif
  __shared__ __align__(16) bf16_t kself[HD];
  __shared__ __align__(16) bf16_t vself[HD];
  __shared__ float cs[HALF], sn[HALF];
  __shared__ float wm[NW][MG], wl[NW][MG];
  __shared__ int amLast;

  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  const int t = blockIdx.y, Z = gridDim.z;
  const int G = numHeads / numKvHeads;
  const int chunks = (G + MG - 1) / MG;
  const int kvh = blockIdx.x / chunks, chunk = blockIdx.x - kvh * chunks;
  const int h0 = kvh * G + chunk * MG;
  const int Gb = min(MG, G - chunk * MG);
  const int s = seqOfToken(seqStarts, numSeqs, t);
  const int pos = positions[t];
  const int lo = window > 0 ? max(0, pos + 1 - window) : 0;
  const int span = pos + 1 - lo;
  const int sz = dsSplitKeys(span, target);
  const int nz = (span + sz - 1) / sz;
  if ((int)blockIdx.z >= nz) return;  // no split for this block (before pdlWait: it touched nothing)
  const bool direct = nz == 1;
  const int rowWidth = numKvHeads * HD;
  const int* table = blockTables + (long long)s * maxBlocksPerSeq;
  const bf16_t* row = qkv + (long long)t * (numHeads + 2 * numKvHeads) * HD;
  const float qscale0 = scale * LLMRT_LOG2E;
  float kS = 1.f, vS = 1.f;
  if constexpr (Q8) {  // static: read before pdlWait
    kS = kvScales[kvh];
    vS = kvScales[numKvHeads + kvh];
  }
  const float qscale = Q8 ? qscale0 * kS * 256.f : qscale0;  // Q8: q was scaled by 2^-8 into f16
  const long long vStride = (long long)tokensPerBlock * rowWidth;  // V row = K row + this
  const bool pow2 = (tokensPerBlock & (tokensPerBlock - 1)) == 0;
  const int tsh = __ffs(tokensPerBlock) - 1;
  // The warp's share of the dynamic shared memory: NS bf16 stages (Q8: NS raw stages and one f16 buffer; 80 KB in all,
  // attention_choice.ts DECODE_SK_FP8_SMEM).
  uint4* wstage = dsm + warp * (Q8 ? NS * RAW_U4 + DS_STAGE_U4 : NS * DS_STAGE_U4);
  const dsaddr wstageS = dsSmem(wstage);

  // Split geometry of split zz: keys [sLo, sHi); this warp's chunks w, w + NW, ... of CK keys.
  int sLo = 0, sHi = 0, nMine = 0;
  auto setSplit = [&](int zz) {
    sLo = lo + zz * sz;
    sHi = min(pos + 1, sLo + sz);
    const int nC = (sHi - sLo + CK - 1) / CK;
    nMine = warp < nC ? (nC - warp + NW - 1) / NW : 0;
  };
  // cp.async of this warp's i-th chunk into stage i % NS: 8 rows per lane (K and V), zero past the split
  // and at the step's own position (patched from kself / vself before use).
  auto issue = [&](int i) {
    if (Q8 && i < nMine) {  // raw e4m3 rows, linear (4 KB): lane's vectors lane + 32 u of K, then of V
      const int k0 = sLo + (warp + NW * i) * CK;
      const dsaddr st = wstageS + (dsaddr)((i % NS) * RAW_U4 * 16);
      constexpr int U = CK * RR / 32;
      int blk[U];
#pragma unroll
      for (int u = 0; u < U; u++) {
        const int key = min(k0 + (lane + 32 * u) / RR, pos);
        blk[u] = table[pow2 ? key >> tsh : key / tokensPerBlock];
      }
#pragma unroll
      for (int u = 0; u < U; u++) {
        const int idx = lane + 32 * u, r = idx / RR, col = idx - r * RR;
        const int key = k0 + r;
        const bool ok = key < sHi && key != pos;
        const int o = key - (pow2 ? (key >> tsh) << tsh : (key / tokensPerBlock) * tokensPerBlock);
        const KT* src = ok ? kv + ((long long)blk[u] * 2 * tokensPerBlock + o) * rowWidth + kvh * HD + col * 16 : kv;
        const dsaddr dst = st + (dsaddr)(idx * 16);
        dsCpAsync16(dst, src, ok ? 16 : 0);
        dsCpAsync16(dst + CK * RR * 16, ok ? src + vStride : kv, ok ? 16 : 0);
      }
    } else if (!Q8 && i < nMine) {
      const int k0 = sLo + (warp + NW * i) * CK;
      const dsaddr st = wstageS + (dsaddr)((i % NS) * DS_STAGE_U4 * 16);
      // Every row's block-table entry first (independent loads, one latency), then the copies: a table load
      // between two cp.async (asm with a memory clobber) would wait for the one before (~8 latencies a chunk).
      constexpr int U = ROWS_U4 / 32;
      int blk[U];
#pragma unroll
      for (int u = 0; u < U; u++) {
        const int key = min(k0 + (lane + 32 * u) / RV, pos);
        blk[u] = table[pow2 ? key >> tsh : key / tokensPerBlock];
      }
#pragma unroll
      for (int u = 0; u < U; u++) {
        const int idx = lane + 32 * u, r = idx / RV, col = idx - r * RV;
        const int key = k0 + r;
        const bool ok = key < sHi && key != pos;
        const int o = key - (pow2 ? (key >> tsh) << tsh : (key / tokensPerBlock) * tokensPerBlock);
        const KT* src = ok ? kv + ((long long)blk[u] * 2 * tokensPerBlock + o) * rowWidth + kvh * HD + col * 8 : kv;
        const dsaddr dst = st + (dsaddr)((r * RV + dsSwz(r, col)) * 16);
        dsCpAsync16(dst, src, ok ? 16 : 0);
        dsCpAsync16(dst + ROWS_U4 * 16, ok ? src + vStride : kv, ok ? 16 : 0);
      }
    }
    dsCommit();  // one group per chunk slot, empty or not (wait_group counts them)
  };

  int zz = blockIdx.z;
  setSplit(zz);
#pragma unroll
  for (int i = 0; i < NS - 1; i++) issue(i);  // in flight while RoPE runs and the previous kernel ends
  for (int i = tid; i < HALF; i += NT) {
    double sv, cv;
    sincos(invFreq[i] * (double)pos, &sv, &cv);
    cs[i] = (float)(cv * (double)attnScaling);
    sn[i] = (float)(sv * (double)attnScaling);
  }
  // Everything above read only the step's inputs and earlier positions of the cache (PDL).
  pdlWait();
  pdlLaunchDependents();
  // QP (DS_QPRE): this thread's q pairs, k pair and v value of the step (qkv: the previous kernel's output) in one round
  // trip; else each loop below reads its own (the k / v loads after the q loop, the v loads after the cache stores of k).
  constexpr bool QP = DS_QPRE && (!Q8 || DS_QPRE_FP8);
  constexpr int QI = MG * HALF / NT;  // q pairs a thread rotates
  static_assert(QI * NT == MG * HALF && HALF <= NT && HD <= NT, "one pass over q, k and v");
  const bf16_t zb = fromF<bf16_t>(0.f);
  bf16_t qpa[QI], qpb[QI], kpa = zb, kpb = zb, vp = zb;
  if constexpr (QP) {
#pragma unroll
    for (int u = 0; u < QI; u++) {
      const int idx = tid + u * NT, g = idx / HALF, i = idx - g * HALF;
      qpa[u] = qpb[u] = zb;
      if (g < Gb) {
        qpa[u] = row[(h0 + g) * HD + i];
        qpb[u] = row[(h0 + g) * HD + HALF + i];
      }
    }
    if ((pos - lo) / sz % Z == (int)blockIdx.z) {  // zOwn's block (below)
      if (tid < HALF) { kpa = row[(numHeads + kvh) * HD + tid]; kpb = row[(numHeads + kvh) * HD + HALF + tid]; }
      if (tid < HD) vp = row[(numHeads + numKvHeads + kvh) * HD + tid];
    }
  }
#define DS_QV(pre, ref) (QP ? (pre) : (ref))
  __syncthreads();
#pragma unroll
  for (int u = 0; u < QI; u++) {  // rotated q, rounded to bf16, prescaled; zero rows past Gb
    const int idx = tid + u * NT, g = idx / HALF, i = idx - g * HALF;
#if DS_MMA
    bf16_t qa = fromF<bf16_t>(0.f), qb = qa;
    if (g < Gb) {
      const float a = toF(DS_QV(qpa[u], row[(h0 + g) * HD + i])), b = toF(DS_QV(qpb[u], row[(h0 + g) * HD + HALF + i]));
      qa = fromF<bf16_t>(a * cs[i] - b * sn[i]);
      qb = fromF<bf16_t>(b * cs[i] + a * sn[i]);
    }
    if constexpr (Q8) {  // f16 of the bf16 value · 2^-8 (exact unless it falls below f16's normal range)
      const u32 h = dsPackH(toF(qa) * 0.00390625f, toF(qb) * 0.00390625f);
      qa = (bf16_t)(h & 0xffffu);
      qb = (bf16_t)(h >> 16);
    }
#else
    float qa = 0.f, qb = 0.f;
    if (g < Gb) {
      const float a = toF(DS_QV(qpa[u], row[(h0 + g) * HD + i])), b = toF(DS_QV(qpb[u], row[(h0 + g) * HD + HALF + i]));
      qa = toF(fromF<bf16_t>(a * cs[i] - b * sn[i])) * qscale;
      qb = toF(fromF<bf16_t>(b * cs[i] + a * sn[i])) * qscale;
    }
#endif
    qs[g * HD + i] = qa;
    qs[g * HD + HALF + i] = qb;
  }
  // The step's own key / value (rotated k, raw v) in shared memory, and (one block per kv head) into the
  // cache: in the same phase as q, by the block that will take the split holding it (zOwn).
  const int zOwn = (pos - lo) / sz;
  if (Q8 && zOwn % Z == (int)blockIdx.z) {  // the stored bytes (as rope_kv_write_fp8kv_bf16): k / kScale, v / vScale
    const bf16_t* kr = row + (numHeads + kvh) * HD;
    const bf16_t* vr = row + (numHeads + numKvHeads + kvh) * HD;
    const long long kOff = kvCacheOffset(table, pos, 0, tokensPerBlock, rowWidth) + kvh * HD;
    u8* k8 = reinterpret_cast<u8*>(kself);
    u8* v8 = reinterpret_cast<u8*>(vself);
    for (int i = tid; i < HALF; i += NT) {  // one pass (HALF <= NT): QP's kpa / kpb are element tid
      const float a = toF(DS_QV(kpa, kr[i])), b = toF(DS_QV(kpb, kr[HALF + i]));
      const u8 ka = kvEncode<u8>(a * cs[i] - b * sn[i], kS), kb = kvEncode<u8>(b * cs[i] + a * sn[i], kS);
      k8[i] = ka;
      k8[HALF + i] = kb;
      if (chunk == 0) { kv[kOff + i] = (KT)ka; kv[kOff + HALF + i] = (KT)kb; }
    }
    for (int i = tid; i < HD; i += NT) {
      const u8 v = kvEncode<u8>(toF(DS_QV(vp, vr[i])), vS);  // one pass (HD <= NT)
      v8[i] = v;
      if (chunk == 0) kv[kOff + vStride + i] = (KT)v;
    }
  } else if (!Q8 && zOwn % Z == (int)blockIdx.z) {
    const bf16_t* kr = row + (numHeads + kvh) * HD;
    const bf16_t* vr = row + (numHeads + numKvHeads + kvh) * HD;
    const long long kOff = kvCacheOffset(table, pos, 0, tokensPerBlock, rowWidth) + kvh * HD;
    for (int i = tid; i < HALF; i += NT) {  // one pass (HALF <= NT): QP's kpa / kpb are element tid
      const float a = toF(DS_QV(kpa, kr[i])), b = toF(DS_QV(kpb, kr[HALF + i]));
      const bf16_t ka = fromF<bf16_t>(a * cs[i] - b * sn[i]), kb = fromF<bf16_t>(b * cs[i] + a * sn[i]);
      kself[i] = ka;
      kself[HALF + i] = kb;
      if (chunk == 0) { kv[kOff + i] = (KT)ka; kv[kOff + HALF + i] = (KT)kb; }
    }
    for (int i = tid; i < HD; i += NT) {
      const bf16_t v = DS_QV(vp, vr[i]);  // one pass (HD <= NT)
      vself[i] = v;
      if (chunk == 0) kv[kOff + vStride + i] = (KT)v;
    }
  }
#undef DS_QV
  int done = 0;

  for (;;) {
    __syncthreads();  // qs, kself / vself ready

#if DS_MMA
    // Tensor cores: S = Q K^T per chunk (rows g4 = this block's heads, rows 8..15 of the m16 tile zero), online
    // softmax on the S fragments (row g4 spread over the 4 lanes of a quad), O^T += V^T P^T with P rounded to bf16.
    constexpr int KSQ = HD / 16;  // k-steps of q·k
    constexpr int NB8 = CK / 8;   // 8-key n-tiles of a chunk
    const int g4 = lane >> 2, c4 = lane & 3, mi = lane >> 3;
    u32 qa[KSQ][2];  // A fragment of q: row g4, dims 16 kk + 2 c4 (+1) and + 8
#pragma unroll
    for (int kk = 0; kk < KSQ; kk++) {
      qa[kk][0] = *reinterpret_cast<const u32*>(qs + g4 * HD + kk * 16 + 2 * c4);
      qa[kk][1] = *reinterpret_cast<const u32*>(qs + g4 * HD + kk * 16 + 8 + 2 * c4);
    }
    constexpr int OT = HD / 16;  // O^T tiles: dims 16 t + g4 (+ 8), heads 2 c4, 2 c4 + 1
    float o[OT][4];
#pragma unroll
    for (int d = 0; d < OT; d++) o[d][0] = o[d][1] = o[d][2] = o[d][3] = 0.f;
    float m0 = -LLMRT_INF, l0 = 0.f;  // row g4: running max, this lane's share of the sum
    for (int i = 0; i < nMine; i++) {
      issue(i + NS - 1);
      dsWait();
      __syncwarp();
      uint4* Ks = Q8 ? wstage + NS * RAW_U4 : wstage + (i % NS) * DS_STAGE_U4;
      uint4* Vs = Ks + ROWS_U4;
      const int k0 = sLo + (warp + NW * i) * CK;
      if constexpr (Q8) {
        uint4* raw = wstage + (i % NS) * RAW_U4;  // [K rows | V rows] of CK x RR vectors
        if (k0 <= pos && pos < k0 + CK) {  // the own key / value bytes from shared memory
          const int r = pos - k0;
          if (lane < RR) {
            raw[r * RR + lane] = reinterpret_cast<const uint4*>(kself)[lane];
            raw[CK * RR + r * RR + lane] = reinterpret_cast<const uint4*>(vself)[lane];
          }
          __syncwarp();
        }
        // 16 e4m3 → two 8-element f16 vectors (columns 2 col, 2 col + 1 of the bf16 layout).
#pragma unroll
        for (int u = 0; u < CK * RR / 32; u++) {
          const int idx = lane + 32 * u, r = idx / RR, col = idx - r * RR;
#pragma unroll
          for (int kv2 = 0; kv2 < 2; kv2++) {
            const uint4 w = raw[kv2 * CK * RR + idx];
            uint4* dst = kv2 ? Vs : Ks;
            dst[r * RV + dsSwz(r, 2 * col)] = make_uint4(dsE4m3x2(w.x & 0xffffu), dsE4m3x2(w.x >> 16), dsE4m3x2(w.y & 0xffffu), dsE4m3x2(w.y >> 16));
            dst[r * RV + dsSwz(r, 2 * col + 1)] = make_uint4(dsE4m3x2(w.z & 0xffffu), dsE4m3x2(w.z >> 16), dsE4m3x2(w.w & 0xffffu), dsE4m3x2(w.w >> 16));
          }
        }
        __syncwarp();
      } else if (k0 <= pos && pos < k0 + CK) {  // the own key / value from shared memory
        const int r = pos - k0;
        if (lane < RV) {
          Ks[r * RV + dsSwz(r, lane)] = reinterpret_cast<const uint4*>(kself)[lane];
          Vs[r * RV + dsSwz(r, lane)] = reinterpret_cast<const uint4*>(vself)[lane];
        }
        __syncwarp();
      }
      const dsaddr ksA = dsSmem(Ks), vsA = dsSmem(Vs);
      float sc[NB8][4];
#pragma unroll
      for (int j = 0; j < NB8; j++) sc[j][0] = sc[j][1] = sc[j][2] = sc[j][3] = 0.f;
#pragma unroll
      for (int kk = 0; kk < KSQ; kk++) {
#pragma unroll
        for (int jp = 0; jp < NB8 / 2; jp++) {  // keys 16 jp .. + 15: matrices (keys +0..7 | +8..15) x (dims lo | hi)
          const int r = jp * 16 + (mi >> 1) * 8 + (lane & 7), col = 2 * kk + (mi & 1);
          u32 b[4];
          dsLdsm<false>(b, ksA + (dsaddr)((r * RV + dsSwz(r, col)) * 16));
          if constexpr (Q8) {
            dsMmaH(sc[2 * jp], qa[kk][0], qa[kk][1], b[0], b[1]);
            dsMmaH(sc[2 * jp + 1], qa[kk][0], qa[kk][1], b[2], b[3]);
          } else {
            dsMma(sc[2 * jp], qa[kk][0], qa[kk][1], b[0], b[1]);
            dsMma(sc[2 * jp + 1], qa[kk][0], qa[kk][1], b[2], b[3]);
          }
        }
      }
      float mx = -LLMRT_INF;
#pragma unroll
      for (int j = 0; j < NB8; j++)
#pragma unroll
        for (int e = 0; e < 2; e++) {
          const bool valid = k0 + j * 8 + 2 * c4 + e < sHi;
          sc[j][e] = valid ? sc[j][e] * qscale : -LLMRT_INF;
          mx = fmaxf(mx, sc[j][e]);
        }
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
      const float mNew = fmaxf(m0, mx);  // finite: every chunk holds a key of the split
      const float al = exp2f(m0 - mNew);  // m0 = -inf on the first chunk: 0
      m0 = mNew;
      float sum = 0.f;
      u32 pa[NB8][1 + DS_PLO];  // bf16 pairs of p: n-tile j, row g4, keys 2 c4, 2 c4 + 1 (DS_PLO: [1] the remainders)
#pragma unroll
      for (int j = 0; j < NB8; j++) {
        const float p0 = exp2f(sc[j][0] - mNew), p1 = exp2f(sc[j][1] - mNew);
        sum += p0 + p1;
        pa[j][0] = Q8 ? dsPackH(p0, p1) : dsPack(p0, p1);
#if DS_PLO
        if constexpr (!Q8) pa[j][1] = dsPack(p0 - __uint_as_float(pa[j][0] << 16), p1 - __uint_as_float(pa[j][0] & 0xffff0000u));
#endif
      }
      l0 = fmaf(l0, al, sum);
      {
        const float aA = __shfl_sync(0xffffffffu, al, 8 * c4), aB = __shfl_sync(0xffffffffu, al, 8 * c4 + 4);  // heads 2 c4, 2 c4 + 1
#pragma unroll
        for (int d = 0; d < OT; d++) { o[d][0] *= aA; o[d][1] *= aB; o[d][2] *= aA; o[d][3] *= aB; }
      }
#pragma unroll
      for (int kt = 0; kt < CK / 16; kt++) {  // keys 16 kt .. + 15; B = P^T: the S fragments of n-tiles 2 kt, 2 kt + 1
#pragma unroll
        for (int d = 0; d < OT; d++) {  // A = V^T (dims 16 d ..): matrices (keys +0..7 | +8..15) x (dims lo | hi), transposed
          const int r = kt * 16 + (mi >> 1) * 8 + (lane & 7), col = 2 * d + (mi & 1);
          u32 a[4];
          dsLdsm<true>(a, vsA + (dsaddr)((r * RV + dsSwz(r, col)) * 16));
          if constexpr (Q8) {
            dsMma4H(o[d], a, pa[2 * kt][0], pa[2 * kt + 1][0]);
          } else {
            dsMma4(o[d], a, pa[2 * kt][0], pa[2 * kt + 1][0]);
#if DS_PLO
            dsMma4(o[d], a, pa[2 * kt][1], pa[2 * kt + 1][1]);
#endif
          }
        }
      }
      __syncwarp();  // this stage is rewritten next
    }

    // Merge the 4 warps (fixed order) through shared memory (the stages are free once every warp is here).
    l0 += __shfl_xor_sync(0xffffffffu, l0, 1);
    l0 += __shfl_xor_sync(0xffffffffu, l0, 2);
    __syncthreads();
    float* mo = reinterpret_cast<float*>(dsm);  // [NW][MG][HD]
#pragma unroll
    for (int e = 0; e < 2; e++) {
      if (2 * c4 + e < Gb) {
#pragma unroll
        for (int d = 0; d < OT; d++) {
          mo[(warp * MG + 2 * c4 + e) * HD + d * 16 + g4] = o[d][e];
          mo[(warp * MG + 2 * c4 + e) * HD + d * 16 + 8 + g4] = o[d][2 + e];
        }
      }
    }
    if (c4 == 0) { wm[warp][g4] = m0; wl[warp][g4] = l0; }
#else
    float m[MG], lp[MG], acc[MG][DPL];
#pragma unroll
    for (int g = 0; g < MG; g++) {
      m[g] = -LLMRT_INF;
      lp[g] = 0.f;
#pragma unroll
      for (int e = 0; e < DPL; e++) acc[g][e] = 0.f;
    }
    const int kk = lane % CK, hh = lane / CK;
    for (int i = 0; i < nMine; i++) {
      issue(i + NS - 1);
      dsWait();
      __syncwarp();
      uint4* Ks = wstage + (i % NS) * DS_STAGE_U4;
      uint4* Vs = Ks + ROWS_U4;
      const int k0 = sLo + (warp + NW * i) * CK;
      if (k0 <= pos && pos < k0 + CK) {  // the own key / value from shared memory
        const int r = pos - k0;
        if (lane < RV) {
          Ks[r * RV + dsSwz(r, lane)] = reinterpret_cast<const uint4*>(kself)[lane];
          Vs[r * RV + dsSwz(r, lane)] = reinterpret_cast<const uint4*>(vself)[lane];
        }
        __syncwarp();
      }
      // Scores: lane (kk, hh) takes dims hh * 64 .. + 64 of key k0 + kk.
      float sc[MG];
#pragma unroll
      for (int g = 0; g < MG; g++) sc[g] = 0.f;
#pragma unroll
      for (int c = 0; c < 8; c++) {
        float kf[8];
        dsUnpack8(Ks[kk * RV + hh * 8 + ((c ^ kk) & 7)], kf);
#pragma unroll
        for (int g = 0; g < MG; g++) {
          if (g < Gb) {
            const float4 qa = *reinterpret_cast<const float4*>(qs + g * HD + hh * 64 + c * 8);
            const float4 qb = *reinterpret_cast<const float4*>(qs + g * HD + hh * 64 + c * 8 + 4);
            float a = sc[g];
            a = fmaf(qa.x, kf[0], a);
            a = fmaf(qa.y, kf[1], a);
            a = fmaf(qa.z, kf[2], a);
            a = fmaf(qa.w, kf[3], a);
            a = fmaf(qb.x, kf[4], a);
            a = fmaf(qb.y, kf[5], a);
            a = fmaf(qb.z, kf[6], a);
            a = fmaf(qb.w, kf[7], a);
            sc[g] = a;
          }
        }
      }
      const bool valid = k0 + kk < sHi;
#pragma unroll
      for (int g = 0; g < MG; g++) {
        if (g < Gb) {
          float v = sc[g];
          if constexpr (LPK == 2) v += __shfl_xor_sync(0xffffffffu, v, 16);
          v = valid ? v : -LLMRT_INF;
          float mx = v;
#pragma unroll
          for (int o = CK / 2; o > 0; o >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
          const float mNew = fmaxf(m[g], mx);  // finite: every chunk holds a key of the split
          const float p = exp2f(v - mNew);
          const float a = exp2f(m[g] - mNew);  // m = -inf on the first chunk: 0
          m[g] = mNew;
          lp[g] = fmaf(lp[g], a, hh == 0 ? p : 0.f);
#pragma unroll
          for (int e = 0; e < DPL; e++) acc[g][e] *= a;
          if (hh == 0) ps[warp][kk][g] = p;
        }
      }
      __syncwarp();
      // P·V: lane owns dims lane * DPL .. + DPL of every head.
#pragma unroll 4
      for (int j = 0; j < CK; j++) {
        float vf[DPL];
        const int col = (lane * DPL) >> 3;
        const char* vp = reinterpret_cast<const char*>(Vs + j * RV + dsSwz(j, col)) + ((lane * DPL * 2) & 15);
        if constexpr (DPL == 2) {
          const u32 w = *reinterpret_cast<const u32*>(vp);
          vf[0] = __uint_as_float(w << 16);
          vf[1] = __uint_as_float(w & 0xffff0000u);
        } else {
          const uint2 w = *reinterpret_cast<const uint2*>(vp);
          vf[0] = __uint_as_float(w.x << 16);
          vf[1] = __uint_as_float(w.x & 0xffff0000u);
          vf[2] = __uint_as_float(w.y << 16);
          vf[3] = __uint_as_float(w.y & 0xffff0000u);
        }
        const float4 pa = *reinterpret_cast<const float4*>(&ps[warp][j][0]);
        const float4 pb = *reinterpret_cast<const float4*>(&ps[warp][j][4]);
        const float pv[8] = {pa.x, pa.y, pa.z, pa.w, pb.x, pb.y, pb.z, pb.w};
#pragma unroll
        for (int g = 0; g < MG; g++)
          if (g < Gb)
#pragma unroll
            for (int e = 0; e < DPL; e++) acc[g][e] = fmaf(pv[g], vf[e], acc[g][e]);
      }
      __syncwarp();  // ps and this stage are rewritten next
    }

    // Merge the 4 warps (fixed order) through shared memory (the stages are free once every warp is here).
#pragma unroll
    for (int g = 0; g < MG; g++) {
      float l = lp[g];
#pragma unroll
      for (int o = 16; o > 0; o >>= 1) l += __shfl_xor_sync(0xffffffffu, l, o);
      lp[g] = l;
    }
    __syncthreads();
    float* mo = reinterpret_cast<float*>(dsm);  // [NW][MG][HD]
#pragma unroll
    for (int g = 0; g < MG; g++) {
      if (g < Gb) {
#pragma unroll
        for (int e = 0; e < DPL; e++) mo[(warp * MG + g) * HD + lane * DPL + e] = acc[g][e];
      }
    }
#pragma unroll
    for (int g = 0; g < MG; g++)
      if (lane == 0) { wm[warp][g] = m[g]; wl[warp][g] = lp[g]; }
#endif
    __syncthreads();
    for (int i = tid; i < Gb * HD; i += NT) {
      const int g = i / HD, d = i - g * HD;
      float M = -LLMRT_INF;
#pragma unroll
      for (int w = 0; w < NW; w++) M = fmaxf(M, wm[w][g]);
      float O = 0.f, L = 0.f;
#pragma unroll
      for (int w = 0; w < NW; w++) {
        const float a = exp2f(wm[w][g] - M);  // a warp with no chunk: m = -inf, 0
        O = fmaf(a, mo[(w * MG + g) * HD + d], O);
        L = fmaf(a, wl[w][g], L);
      }
      if constexpr (Q8) O *= vS;  // the exact e4m3 values were summed: vScale once here
      const long long th = (long long)t * numHeads + h0 + g;
      if (direct) {
        out[th * HD + d] = fromF<bf16_t>(O / L);
      } else {
        partialO[(th * DS_MAXZ + zz) * HD + d] = O;
        if (d == 0) {
          partialML[(th * DS_MAXZ + zz) * 2] = M;
          partialML[(th * DS_MAXZ + zz) * 2 + 1] = L;
        }
      }
    }
    done++;
    zz += Z;
    if (direct || zz >= nz) break;
    __syncthreads();  // mo (the stages) read by every thread before the next split streams into them
    setSplit(zz);
#pragma unroll
    for (int i = 0; i < NS - 1; i++) issue(i);
  }
  if (direct) return;

  // The last block of this (token, kv group) to finish merges the nz splits in split order.
  __threadfence();
  __syncthreads();
  int* ctr = counters + (long long)t * gridDim.x + blockIdx.x;
  if (tid == 0) amLast = atomicAdd(ctr, done) + done == nz;
  __syncthreads();
  if (!amLast) return;
  __threadfence();
  // Each thread merges 4 dims of one head over the nz splits in split order, DS_MB splits' (m, l) and partial O
  // loaded at once per round, with a running maximum (the same sums for a given nz, whatever the launch).
  const long long th0 = (long long)t * numHeads + h0;
  constexpr int Q = HD / 4;
  for (int it = tid; it < Gb * Q; it += NT) {
    const int g = it / Q, d4 = it - g * Q;
    const float* mlg = partialML + (th0 + g) * DS_MAXZ * 2;
    const float* po = partialO + (th0 + g) * DS_MAXZ * HD + d4 * 4;
    float M = -LLMRT_INF, L = 0.f, O[4] = {0.f, 0.f, 0.f, 0.f};
    for (int z0 = 0; z0 < nz; z0 += DS_MB) {
      float4 v[DS_MB];
      float mz[DS_MB], lz[DS_MB];
#pragma unroll
      for (int j = 0; j < DS_MB; j++) {
        const bool ok = z0 + j < nz;
        v[j] = ok ? dsLdcg4(po + (long long)(z0 + j) * HD) : make_float4(0.f, 0.f, 0.f, 0.f);
        mz[j] = ok ? dsLdcg(mlg + (z0 + j) * 2) : -LLMRT_INF;
        lz[j] = ok ? dsLdcg(mlg + (z0 + j) * 2 + 1) : 0.f;
      }
      float Mn = M;
#pragma unroll
      for (int j = 0; j < DS_MB; j++) Mn = fmaxf(Mn, mz[j]);
      const float a = exp2f(M - Mn);  // M = -inf on the first round: 0
#pragma unroll
      for (int e = 0; e < 4; e++) O[e] *= a;
      L *= a;
#pragma unroll
      for (int j = 0; j < DS_MB; j++) {
        const float w = exp2f(mz[j] - Mn);  // splits past nz: 0
        O[0] = fmaf(w, v[j].x, O[0]);
        O[1] = fmaf(w, v[j].y, O[1]);
        O[2] = fmaf(w, v[j].z, O[2]);
        O[3] = fmaf(w, v[j].w, O[3]);
        L = fmaf(w, lz[j], L);
      }
      M = Mn;
    }
    bf16_t* o = out + (th0 + g) * HD + d4 * 4;
#pragma unroll
    for (int e = 0; e < 4; e++) o[e] = fromF<bf16_t>(O[e] / L);
  }
  if (tid == 0) *ctr = 0;
}

#define DECODE_SK(NAME, HD)                                                                                            \
  extern "C" __global__ void __launch_bounds__(DS_NT, DS_MINB) NAME(const bf16_t* qkv, bf16_t* out, bf16_t* kvCache,          \
      const int* positions, const int* seqStarts, const int* blockTables, const double* invFreq, float attnScaling,     \
      float* partialO, float* partialML, int* counters, int numTokens, int numSeqs, int numHeads, int numKvHeads,       \
      int tokensPerBlock, int maxBlocksPerSeq, float scale, int window, int splitTarget, const void* prefetch,          \
      long long prefetchBytes) {                                                                                        \
    (void)prefetch;                                                                                                     \
    (void)prefetchBytes;                                                                                                \
    if ((int)blockIdx.y >= numTokens) return;                                                                           \
    decodeSkImpl<HD>(qkv, out, kvCache, positions, seqStarts, blockTables, invFreq, attnScaling, partialO, partialML,   \
                     counters, numSeqs, numHeads, numKvHeads, tokensPerBlock, maxBlocksPerSeq, scale, window,           \
                     splitTarget);                                                                                      \
  }
#if LLMRT_KERNEL(decode_attention_sk_bf16_hd64)
DECODE_SK(decode_attention_sk_bf16_hd64, 64)
#endif
#if LLMRT_KERNEL(decode_attention_sk_bf16_hd128)
DECODE_SK(decode_attention_sk_bf16_hd128, 128)
#endif

// FP8 (e4m3) KV cache (session 10, CudaSessionOptions.fp8DecodeSk): decode_attention_sk with decode_attention_fp8kv's
// extra parameter and cache (kernels/decode_attention.cu): the step's own k / v stored as rope_kv_write_fp8kv_bf16
// stores them and attended as those bytes; keys / values the exact e4m3 values in f16, kScale (· 2^8) folded into the
// score scale and vScale into the output (as DA_QFOLD 1); q rotated, rounded to bf16, then to f16 · 2^-8; p in f16.
// extern "C" __global__ void decode_attention_sk_fp8kv_bf16_hd{64|128}(...decode_attention_sk's parameters...,
//     const float* kvScales)
// sm_89+ (e4m3 conversions): the entry points do not exist below.
#if !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 890
#define DECODE_SK_FP8(NAME, HD)                                                                                        \
  extern "C" __global__ void __launch_bounds__(DS_NT, DS_MINB) NAME(const bf16_t* qkv, bf16_t* out, u8* kvCache,      \
      const int* positions, const int* seqStarts, const int* blockTables, const double* invFreq, float attnScaling,     \
      float* partialO, float* partialML, int* counters, int numTokens, int numSeqs, int numHeads, int numKvHeads,       \
      int tokensPerBlock, int maxBlocksPerSeq, float scale, int window, int splitTarget, const void* prefetch,          \
      long long prefetchBytes, const float* kvScales) {                                                                 \
    (void)prefetch;                                                                                                     \
    (void)prefetchBytes;                                                                                                \
    if ((int)blockIdx.y >= numTokens) return;                                                                           \
    decodeSkImpl<HD, u8>(qkv, out, kvCache, positions, seqStarts, blockTables, invFreq, attnScaling, partialO,          \
                         partialML, counters, numSeqs, numHeads, numKvHeads, tokensPerBlock, maxBlocksPerSeq, scale,    \
                         window, splitTarget, kvScales);                                                                \
  }
#if LLMRT_KERNEL(decode_attention_sk_fp8kv_bf16_hd64)
DECODE_SK_FP8(decode_attention_sk_fp8kv_bf16_hd64, 64)
#endif
#if LLMRT_KERNEL(decode_attention_sk_fp8kv_bf16_hd128)
DECODE_SK_FP8(decode_attention_sk_fp8kv_bf16_hd128, 128)
#endif
#endif
