// Session 11 (issues 16 / 14): decode_attention_batch4 — decode_attention_batch2's fused step (RoPE of q and k, the
// KV-cache write of the step's token, split-K attention, the split merge in one launch) with the score tile
// transposed: S^T = K · Q^T puts 16 keys on the mma m16 rows and the G <= 8 query heads of a kv group on the n8
// columns (batch2 puts the heads on the m16 rows, of which GQA's 4 heads use 4). Per 16 keys at head dim 128:
// 8 mma.sync for q·k and 8 for p·v (batch2: 16 and 16), P^T handed to the p·v mma by two movmatrix.trans (the
// score accumulator of S^T is, per 8x8 block, the transpose of p·v's B fragment), 4 exp2 a lane (batch2: 8), o in
// 32 registers (batch2: 64); O^T = V^T · P^T with V^T fragments from ldmatrix.trans.
// Blocks, splits, the per-warp K/V rings (each warp owns every NW-th tile of KT x 16 keys of its split, cp.async,
// ST stages) and the merges are batch2's; a block takes up to 8 query heads (grid x = numKvHeads * ceil(G / 8)).
// _fp8kv_: an e4m3 cache (kv_fp8.cuh scales) streamed as bytes into rows padded to HD + 16 bytes and converted
// straight into f16 mma fragments (cvt.rn.f16x2.e4m3x2; no f16 copy in shared memory). K's fragments take each
// lane's 2 x 4 consecutive bytes of a row as its k slots (the head dims permuted the same way in q's fragments);
// V^T's rows (head dims) are permuted so a lane's dims are one run of HD / 8 bytes of a key row (prmt pairs two keys'
// bytes), and o is written back through the same permutation. q = bf16(rotated q) · scale · log2e · kScale as f16,
// p as f16, o · vScale at the end (batch2's numerics; the sums run in another order, so the bits differ from batch2's).
//
// extern "C" __global__ void decode_attention_batch4_bf16_hd{64|128}(decode_attention_batch_bf16_hd*'s parameters)
// extern "C" __global__ void decode_attention_batch4_fp8kv_bf16_hd{64|128}(the same, then const float* kvScales)
// extern "C" __global__ void decode_attention_batch4_q8_fp8kv_bf16_hd{64|128}(the same, then float* rowScale, float actScale)
//   (session 12, fp8DecodeAttnQuant) out is the next FP8 linear's e4m3 input [numTokens, numHeads * HD] instead of bf16:
//   each value is rounded to bf16 as the plain kernel writes it, then quantized as fp8_quantize_bf16's quant8 does
//   (x / actScale by the reciprocal and one FMA, round to nearest even, saturating), and rowScale[t] = actScale: the bytes
//   fp8_quantize_flat_bf16 writes from the plain kernel's output.
//   grid (numKvHeads * ceil(G / 8), numTokens, numSplits)   block DB4_NW * 32 threads (attention_choice.ts
//   batchAttention4Threads); counters int [numTokens * gridDim.x]; otherwise as decode_attention_batch.
#include "common.cuh"
#include "kv_fp8.cuh"
#include "mma_tile.cuh"

#define DB4_ROWS 8  // query heads per block: the n8 columns
#define COMMA_SCALES , const float* kvScales

#ifndef DB4_NW128
#define DB4_NW128 2
#endif
#ifndef DB4_ST128
#define DB4_ST128 2
#endif
#ifndef DB4_KT128
#define DB4_KT128 1
#endif
#ifndef DB4_MINB128
#define DB4_MINB128 6
#endif
#ifndef DB4_NW64
#define DB4_NW64 2
#endif
#ifndef DB4_ST64
#define DB4_ST64 2
#endif
#ifndef DB4_KT64
#define DB4_KT64 1
#endif
#ifndef DB4_MINB64
#define DB4_MINB64 8
#endif
#ifndef DB4_FNW128
#define DB4_FNW128 2
#endif
#ifndef DB4_FST128
#define DB4_FST128 2
#endif
#ifndef DB4_FKT128
#define DB4_FKT128 1
#endif
#ifndef DB4_FMINB128
#define DB4_FMINB128 8
#endif
#ifndef DB4_FNW64
#define DB4_FNW64 2
#endif
#ifndef DB4_FST64
#define DB4_FST64 2
#endif
#ifndef DB4_FKT64
#define DB4_FKT64 1
#endif
#ifndef DB4_FMINB64
#define DB4_FMINB64 8
#endif
#ifndef DB4_TMA128
#define DB4_TMA128 0  // 1: K / V rows by cp.async.bulk (one row a lane, an mbarrier a stage), rows padded instead of swizzled
#endif
#ifndef DB4_TMA64
#define DB4_TMA64 0
#endif
#ifndef DB4_FTMA128
#define DB4_FTMA128 0
#endif
#ifndef DB4_FTMA64
#define DB4_FTMA64 0
#endif
// SER > 1 (harness only): a block takes SER of a token's items in turn through one ring that runs ahead across them (the
// same bits). H200 session 11, 8B 512 seqs at 128..256 keys: SER 4 139.8 us vs 115.6 at SER 1 (bf16), 115.5 vs 90.0
// (e4m3); SER 2 123.1 / 99.6 — fewer, longer blocks lose more than the shared prologue saves, so no entry point uses it.
#ifndef DB4_SER128
#define DB4_SER128 1  // items a block takes in turn (SERMAX; the grid's x is nKV · ceil(G / 8) / SER)
#endif
#ifndef DB4_SER64
#define DB4_SER64 1
#endif
#ifndef DB4_FSER128
#define DB4_FSER128 1
#endif
#ifndef DB4_FSER64
#define DB4_FSER64 1
#endif
#ifndef DB4_FAST
#define DB4_FAST 1  // whole tiles (every key valid, one cache block, not the own key) issued without per-row checks (H200
                    // session 11: 8B 512 seqs bf16 127.8 -> 115.6 us, e4m3 102.3 -> 90.0; the same bytes, so the same bits)
#endif
#ifndef DB4_PF
#define DB4_PF 0  // 1 (harness): the entry points above with decodeBatch4Impl's PF (the first tiles' table entries prefetched)
#endif
#ifndef DB4_EARLY
#define DB4_EARLY 0  // 1 (harness): the e4m3 scales and the own key's block-table entry loaded with the position (same bits)
#endif
#ifndef DB4_OUTV
#define DB4_OUTV 0  // 1 (harness): warp 0's bf16 output rows staged in its ring, written as 16-byte stores (same bits)
#endif
#ifndef DB4_SPLITM
#define DB4_SPLITM 0  // 1 (harness): the end's merge and output split over the 2 warps by head parity (same bits)
#endif
#ifndef DB4_RCP
#define DB4_RCP 0  // 1 (harness): o / l as o · rcp.rn(l) plus one remainder FMA (Markstein), x / l below 2^-60
#endif
#ifndef DB4_OWNP
#define DB4_OWNP 0  // 1 (harness, e4m3 caches): the own key / value encoded one element a thread (all threads, not HD / 16), same bytes
#endif
#ifndef DB4_SWZ
#define DB4_SWZ 0  // 1 (harness; session 19; e4m3 hd128): K / V rows unpadded, 16-byte chunks XOR-swizzled by row (2 KB less shared
                   // memory a block); the same bytes, so the same bits
#endif
#ifndef DB4_HALFEND
#define DB4_HALFEND 0  // 1 (harness; session 19; with SPLITM): G <= 4 — the end's merge and output of a head's run over two lanes
                       // (lane c4 + 2 takes the upper m tiles of lane c4's head, its values by shuffles): half the lane's work
#endif
// The knobs above as decodeBatch4Impl's XF bits (decode_attention_batch4x_* take DB4_XSEL): 1 EARLY, 2 RCP, 4 OUTV, 8 SPLITM,
// 16 OWNP, 256 SWZ, 512 HALFEND (session 19 measured and removed 32 OWNL, 64 PF, 128 QSPLIT: bench/RESULTS.md).
#define DB4_XF ((DB4_EARLY ? 1 : 0) | (DB4_RCP ? 2 : 0) | (DB4_OUTV ? 4 : 0) | (DB4_SPLITM ? 8 : 0) | (DB4_OWNP ? 16 : 0) | \
                (DB4_SWZ ? 256 : 0) | (DB4_HALFEND ? 512 : 0))
#define DB4_CFG(P, HD, Q8) ((Q8) ? ((HD) == 128 ? DB4_F##P##128 : DB4_F##P##64) : ((HD) == 128 ? DB4_##P##128 : DB4_##P##64))

template <bool Q8>
__device__ __forceinline__ void db4Mma(float (&d)[4], const u32 (&a)[4], u32 b0, u32 b1) {
  if (Q8) mmaF16(d, a, b0, b1);
  else mmaBf16(d, a, b0, b1);
}

/** The transpose of an 8x8 b16 matrix in mma fragment layout (lane: row lane / 4, columns 2 (lane % 4) + {0, 1}). */
__device__ __forceinline__ u32 db4Trans(u32 x) {
  u32 r;
  asm volatile("movmatrix.sync.aligned.m8n8.trans.b16 %0, %1;\n" : "=r"(r) : "r"(x));
  return r;
}

__device__ __forceinline__ u32 db4Prmt(u32 a, u32 b, u32 sel) {
  u32 r;
  asm("prmt.b32 %0, %1, %2, %3;" : "=r"(r) : "r"(a), "r"(b), "r"(sel));
  return r;
}
__device__ __forceinline__ void db4MbInit(u32 bar, u32 count) { asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(bar), "r"(count) : "memory"); }
/** Waits for phase `parity` of an mbarrier; traps after ~2^26 polls (a hang becomes an error). */
__device__ __forceinline__ void db4MbWait(u32 bar, u32 parity) {
  for (u32 n = 0;; n++) {
    u32 ok;
    asm volatile(
        "{ .reg .pred p;\n"
        "mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n"
        "selp.u32 %0, 1, 0, p;\n}" : "=r"(ok) : "r"(bar), "r"(parity) : "memory");
    if (ok) return;
    if (n > (1u << 26)) asm volatile("trap;");
  }
}
__device__ __forceinline__ void db4MbExpect(u32 bar, u32 bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(bar), "r"(bytes) : "memory");
}
__device__ __forceinline__ void db4Bulk(u32 dst, const void* src, u32 bytes, u32 bar) {
  asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];" ::"r"(dst), "l"(src), "r"(bytes), "r"(bar)
               : "memory");
}

/**
 * Head dim of o[mt][2 * hi + e]'s rows for this lane (g4 = lane / 4): bf16 dims 16 mt + g4 (+ 8); e4m3 (the
 * permuted V^T rows) HD / 8 · g4 + 2 mt (+ 1).
 */
template <int HD, bool Q8>
__device__ __forceinline__ int db4Dim(int g4, int mt, int hi) { return Q8 ? (HD / 8) * g4 + 2 * mt + hi : 16 * mt + g4 + 8 * hi; }

/**
 * The step for items bx0 .. bx0 + SER - 1 (item = (kv head, chunk of up to 8 query heads) of token t, split z; SER =
 * nKV · ceil(G / 8) / gridDim.x <= SERMAX, the host makes it divide). One block, NW warps; each warp streams its tiles of
 * every item in turn (item j's tiles warp, warp + NW, ... of KEYS keys) through ONE cp.async ring that runs ahead across
 * item boundaries, so an item's first tiles are in flight while the previous item ends. Each item's keys, sums and merge
 * are those of SER = 1, so the bits do not depend on SER (nor on the step's other tokens).
 */
/** QO: v rounded to bf16, then / s as fp8_gemv.cu's divBy (the reciprocal product and one FMA of the exact remainder). */
__device__ __forceinline__ float db4QDiv(float v, float s, float inv) {
  const float x = toF(fromF<bf16_t>(v));
  const float q = x * inv;
  return fmaf(fmaf(-q, s, x), inv, q);
}
/** Two floats -> two e4m3 bytes (lo in the low byte), round to nearest even, saturating to +-448 (fp8_gemv.cu's e4m3x4). */
__device__ __forceinline__ u32 db4E4m3x2(float lo, float hi) {
  unsigned short r;
  asm("cvt.rn.satfinite.e4m3x2.f32 %0, %1, %2;" : "=h"(r) : "f"(hi), "f"(lo));
  return (u32)r;
}

// DB4_TRACE (harness only, tools/cuda-kernel-check/decode_attention_batch4.py --trace): thread 0 of each block stamps
// db4Trace[block * 16 + ...]: 0 globaltimer at entry, 1 globaltimer at the end, 2 clock64 at entry, 8 after the first
// tiles' issue, 9 after the RoPE table, 10 after the first barrier, 11 after q's rotation, 3 after the prologue (own key
// written), 4 after warp 0's first tile landed, 5 after its last tile landed, 12 after its last tile's sums, 13 after the
// park barrier, 14 after warp 0's output, 6 at the end, 7 the SM id (bit 32: an empty split's block). No entry point the
// engine runs is built with it.
#ifdef DB4_TRACE
__device__ unsigned long long db4Trace[16384 * 16];
__device__ __forceinline__ unsigned long long db4Gt() {
  unsigned long long t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  return t;
}
__device__ __forceinline__ unsigned db4Smid() {
  unsigned r;
  asm volatile("mov.u32 %0, %%smid;" : "=r"(r));
  return r;
}
#define DB4_TR_BLOCK ((blockIdx.z * gridDim.y + blockIdx.y) * gridDim.x + blockIdx.x)
#define DB4_TR(K, V) \
  if (threadIdx.x == 0 && DB4_TR_BLOCK < 16384) db4Trace[DB4_TR_BLOCK * 16 + (K)] = (V)
#else
#define DB4_TR(K, V)
#endif

template <int HD, int NW, int ST, int KT, bool Q8, bool TMA, int SERMAX, bool QO = false, bool PF = false, int XF = DB4_XF>
__device__ __forceinline__ void decodeBatch4Impl(const bf16_t* qkv, bf16_t* out, void* kvv, const int* positions,
    const int* seqStarts, const int* blockTables, const double* invFreq, float attnScaling, float* partialO,
    float* partialML, int* counters, int numSeqs, int numHeads, int numKvHeads, int tokensPerBlock,
    int maxBlocksPerSeq, float scale, int window, int splitSize, const float* kvScales, float* rowScale = nullptr, float actScale = 0.f) {
  constexpr bool EARLY = XF & 1, RCP = XF & 2, OUTV = XF & 4, SPLITM = XF & 8;  // the DB4_* knobs of the same names
  constexpr bool OWNP = Q8 && SERMAX == 1 && (XF & 16);
  constexpr bool HALFEND = SPLITM && (XF & 512);
  static_assert(!QO || Q8, "QO: the e4m3-cache entry points only (o's head dims one run of HD / 8 a lane)");
  constexpr int EB = Q8 ? 1 : 2;              // cache bytes per element
  constexpr int ROWB = HD * EB;               // one key's row (one kv head) in bytes
  constexpr bool SWZ = Q8 && HD == 128 && !TMA && (XF & 256);  // e4m3 rows unpadded, chunks XOR-swizzled as bf16's
  constexpr bool PAD = (Q8 || TMA) && !SWZ;   // rows padded by 16 bytes (else chunks XOR-swizzled)
  constexpr int RS = PAD ? ROWB + 16 : ROWB;  // shared row stride
  constexpr int CPR = ROWB / 16;              // 16-byte chunks per row
  constexpr int KEYS = 16 * KT;               // keys of one warp tile
  constexpr int TILEB = KEYS * RS;            // K (or V) of a warp tile
  constexpr int STAGEB = 2 * TILEB;
  constexpr int HALF = HD / 2, KSTEPS = HD / 16, MT = HD / 16, NT = NW * 32;
  constexpr int MW = MT * 4 + 4;              // floats a lane parks for the merge: o, then mA, mB, lA, lB
  static_assert((KEYS * CPR) % 32 == 0, "whole chunks per lane");
  __shared__ __align__(16) unsigned char ring[NW * ST * STAGEB];
  // Warps 1.. park (m, l, o) for warp 0 at an item's end: SERMAX 1 in their own ring (no tile in flight then), else here
  // by item parity (the ring streams the next item's tiles meanwhile).
  static_assert(SERMAX > 1 || MW * 32 * 4 <= ST * STAGEB, "a warp's ring holds its parked results");
  __shared__ __align__(16) float parkBuf[SERMAX > 1 ? 2 * (NW > 1 ? NW - 1 : 1) * MW * 32 : 4];
  __shared__ __align__(16) bf16_t qsm[SERMAX][DB4_ROWS * HD];  // bf16 (Q8: f16) q rows of each item, swizzled
  __shared__ __align__(16) unsigned char kself[SERMAX][ROWB];
  __shared__ __align__(16) unsigned char vself[SERMAX][ROWB];
  __shared__ float cs[HALF], sn[HALF];
  __shared__ int amLast;
  __shared__ __align__(8) unsigned long long bars[TMA ? NW * ST : 1];  // TMA: one mbarrier a warp stage
  // Byte offset of 16-byte chunk c of row r in a K / V tile.
  auto rb = [](int r, int c) { return PAD ? r * RS + c * 16 : SWZ ? r * RS + ((c ^ (r & 7)) << 4) : swizzle16<HD>(r, c) * 2; };

  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g4 = lane >> 2, c4 = lane & 3;
  const int t = blockIdx.y, z = (int)blockIdx.z, numSplits = (int)gridDim.z;
  DB4_TR(0, db4Gt());
  DB4_TR(2, clock64());
  DB4_TR(7, db4Smid());
  if (QO && blockIdx.x == 0 && z == 0 && threadIdx.x == 0) rowScale[t] = actScale;  // fp8_quantize_flat_bf16's row scale
  const float qoInv = QO ? 1.f / actScale : 0.f;
  const int G = numHeads / numKvHeads;
  const int chunks = (G + DB4_ROWS - 1) / DB4_ROWS, nBx = numKvHeads * chunks;
  const int SER = SERMAX == 1 ? 1 : nBx / (int)gridDim.x, bx0 = blockIdx.x * SER;
  auto kvhOf = [&](int j) { return (bx0 + j) / chunks; };
  auto h0Of = [&](int j) { const int bx = bx0 + j, kh = bx / chunks; return kh * G + (bx - kh * chunks) * DB4_ROWS; };
  auto gbOf = [&](int j) { const int bx = bx0 + j; return min(DB4_ROWS, G - (bx - bx / chunks * chunks) * DB4_ROWS); };
  // The last block of item j's splits merges them (nzT: the token's non-empty splits).
  auto splitMerge = [&](int j, int nzT) {
    __threadfence();
    __syncthreads();
    int* ctr = counters + (long long)t * nBx + bx0 + j;
    if (tid == 0) amLast = atomicAdd(ctr, 1) == numSplits - 1;
    __syncthreads();
    if (amLast) {
      __threadfence();
      const int Gb = gbOf(j), h0 = h0Of(j);
      for (int i = tid; i < Gb * HD; i += NT) {
        const int g = i / HD, d = i - g * HD;
        const long long th = (long long)t * numHeads + h0 + g;
        const float* mlh = partialML + th * numSplits * 2;
        float M = -LLMRT_INF;
        for (int zz = 0; zz < nzT; zz++) M = fmaxf(M, ldcgF32(mlh + zz * 2));
        float O = 0.f, L = 0.f;
        for (int zz = 0; zz < nzT; zz++) {
          const float w = exp2f(ldcgF32(mlh + zz * 2) - M);
          O = fmaf(w, ldcgF32(partialO + (th * numSplits + zz) * HD + d), O);
          L = fmaf(w, ldcgF32(mlh + zz * 2 + 1), L);
        }
        if constexpr (QO) reinterpret_cast<unsigned char*>(out)[th * HD + d] = (unsigned char)db4E4m3x2(db4QDiv(O / L, actScale, qoInv), 0.f);
        else out[th * HD + d] = fromF<bf16_t>(O / L);
      }
      if (tid == 0) *ctr = 0;
    }
    __syncthreads();  // amLast is reused by the next item
  };
  // An empty split (split z > 0 starting past the token): l = 0 for the merge, which skips it.
  if (z > 0) {
    const int p0 = positions[t];
    const int lo0 = window > 0 ? max(0, p0 + 1 - window) : 0;
    if (lo0 + z * splitSize > p0) {
      const int nz0 = min(numSplits, (p0 + 1 - lo0 + splitSize - 1) / splitSize);
      DB4_TR(7, db4Smid() | (1ull << 32));
      DB4_TR(1, db4Gt());
      if (nz0 == 1) return;
      for (int j = 0; j < SER; j++) {
        const int Gb = gbOf(j), h0 = h0Of(j);
        for (int g = tid; g < Gb; g += NT) {
          float* ml = partialML + (((long long)t * numHeads + h0 + g) * numSplits + z) * 2;
          ml[0] = -LLMRT_INF;
          ml[1] = 0.f;
        }
        splitMerge(j, nz0);
      }
      return;
    }
  }
  // The token's loads first, together: position, sequence, inverse frequencies, the q rows of the items' heads, k / v.
  constexpr int HC = HALF / 8;                    // 16-byte chunks of half a head
  constexpr int QP = SERMAX * DB4_ROWS * HC;      // (item, q row, chunk) triples
  constexpr int QPT = (QP + NT - 1) / NT, FPT = (HALF + NT - 1) / NT;
  const bf16_t* row = qkv + (long long)t * (numHeads + 2 * numKvHeads) * HD;
  // PF (harness knob DB4_PF; session 14, no gain end to end): the block-table entries of the warp's first ST tiles load with the position, on the
  // guess that token t is sequence t with no window (decode steps): one dependent load less before the first cp.async. The
  // same addresses, so the same bits; a wrong guess (s != t) falls back to the table walk.
  static_assert(!PF || SERMAX == 1, "PF: one item a block");
  int pfb[ST];
  if constexpr (PF) {
#pragma unroll
    for (int i = 0; i < ST; i++) {
      const int kb = (z * splitSize + (warp + i * NW) * KEYS) / tokensPerBlock;
      pfb[i] = window == 0 && t < numSeqs && kb < maxBlocksPerSeq ? blockTables[(long long)t * maxBlocksPerSeq + kb] : -1;
    }
  }
  const int pos = positions[t];
  float kScE[SERMAX], vScE[SERMAX];  // EARLY: item j's k / v scales
#pragma unroll
  for (int j = 0; j < SERMAX; j++) kScE[j] = vScE[j] = 1.f;
  if (EARLY && Q8) {
#pragma unroll
    for (int j = 0; j < SERMAX; j++)
      if (j < SER) { kScE[j] = kvScales[kvhOf(j)]; vScE[j] = kvScales[numKvHeads + kvhOf(j)]; }
  }
  const int st0 = t < numSeqs ? seqStarts[t] : -1, st1 = t < numSeqs ? seqStarts[t + 1] : -1;
  double ifq[FPT];
#pragma unroll
  for (int j = 0; j < FPT; j++) ifq[j] = tid + j * NT < HALF ? invFreq[tid + j * NT] : 0.0;
  uint4 qA[QPT], qB[QPT];
  const uint4 zero4 = {0u, 0u, 0u, 0u};
#pragma unroll
  for (int j = 0; j < QPT; j++) {
    const int pq = tid + j * NT, it = pq / (DB4_ROWS * HC), g = (pq / HC) % DB4_ROWS, c = pq % HC;
    qA[j] = qB[j] = zero4;
    if (pq < QP && it < SER && g < gbOf(it)) {
      const bf16_t* src = row + (h0Of(it) + g) * HD + c * 8;
      qA[j] = *reinterpret_cast<const uint4*>(src);
      qB[j] = *reinterpret_cast<const uint4*>(src + HALF);
    }
  }
  constexpr int KPT = (SERMAX * HC + NT - 1) / NT;  // (item, chunk) pairs of the own k / v a thread takes
  uint4 kA[KPT], kB[KPT], vC[KPT], vD[KPT];
#pragma unroll
  for (int j = 0; j < KPT; j++) {  // chunk c of both halves of item it's k and v
    const int pk = tid + j * NT, it = pk / HC, c = pk % HC;
    kA[j] = kB[j] = vC[j] = vD[j] = zero4;
    if (pk < SERMAX * HC && it < SER && !OWNP) {
      const bf16_t* kr = row + (numHeads + kvhOf(it)) * HD + c * 8;
      const bf16_t* vr = row + (numHeads + numKvHeads + kvhOf(it)) * HD + c * 8;
      kA[j] = *reinterpret_cast<const uint4*>(kr);
      kB[j] = *reinterpret_cast<const uint4*>(kr + HALF);
      vC[j] = *reinterpret_cast<const uint4*>(vr);
      vD[j] = *reinterpret_cast<const uint4*>(vr + HALF);
    }
  }
  // OWNP: element i = tid + j NT of both halves of the own k and v (raw bf16, as floats).
  constexpr int OPT = (HALF + NT - 1) / NT;
  float okA[OPT], okB[OPT], ovA[OPT], ovB[OPT];
  if constexpr (OWNP) {
    const bf16_t* kr = row + (numHeads + kvhOf(0)) * HD;
    const bf16_t* vr = row + (numHeads + numKvHeads + kvhOf(0)) * HD;
#pragma unroll
    for (int j = 0; j < OPT; j++) {
      const int i = tid + j * NT;
      okA[j] = okB[j] = ovA[j] = ovB[j] = 0.f;
      if (i < HALF) { okA[j] = toF(kr[i]); okB[j] = toF(kr[HALF + i]); ovA[j] = toF(vr[i]); ovB[j] = toF(vr[HALF + i]); }
    }
  }
  const int s = st0 == t && st1 == t + 1 ? t : seqOfToken(seqStarts, numSeqs, t);
  const int lo = window > 0 ? max(0, pos + 1 - window) : 0;
  const int sLo = lo + z * splitSize;
  const int sHi = min(pos + 1, sLo + splitSize);
  const bool own = sLo <= pos && pos < sHi;
  const int nz = min(numSplits, (pos + 1 - lo + splitSize - 1) / splitSize);
  const bool direct = nz == 1;
  const int rowWidth = numKvHeads * HD;
  const long long vStepB = (long long)tokensPerBlock * rowWidth * EB;  // V of a key sits this many bytes past its K
  const int* table = blockTables + (long long)s * maxBlocksPerSeq;
  unsigned char* kv = reinterpret_cast<unsigned char*>(kvv);
  const int ownBlk = EARLY && own ? table[pos / tokensPerBlock] : 0;  // EARLY: loaded beside the first tiles' entries

  if (sLo < sHi) {
    const int nT = (sHi - sLo + KEYS - 1) / KEYS;  // warp tiles of an item's split
    const int nW = (nT - warp + NW - 1) / NW;      // this warp's of each item: tiles warp, warp + NW, ...
    const int nI = SER * nW;                       // this warp's stream: item 0's tiles, then item 1's, ...
    unsigned char* myRing = ring + warp * ST * STAGEB;
    // Stream tile i (item i / nW, keys k0 .. k0 + KEYS) into ring stage i % ST; keys past the split read nothing (zeros);
    // the step's own key is skipped (patched from kself / vself before use). Always commits a group.
    auto issue = [&](int i, int pre) {
      if (i < nI) {
        const int it = i / nW, ti = i - it * nW;
        const int k0 = sLo + (warp + ti * NW) * KEYS;
        const int slot0 = k0 % tokensPerBlock;
        const int blk0 = PF && pre >= 0 ? pre : table[k0 / tokensPerBlock];
        const unsigned char* base0 = kv + ((long long)blk0 * 2 * tokensPerBlock * rowWidth + kvhOf(it) * HD) * EB;
        unsigned char* ks = myRing + (i % ST) * STAGEB;
        if constexpr (TMA) {
          // Row idx = lane + 32 j: K (idx < KEYS) or V row r = idx % KEYS. Keys past the split are zeroed here (their p
          // is 0, and 0 · garbage could be NaN); the own key is patched in before use.
          const u32 bar = smemAddr(&bars[warp * ST + i % ST]);
          u32 bytes = 0;
#pragma unroll
          for (int j = 0; j < 2 * KEYS / 32; j++) {
            const int idx = lane + j * 32, r = idx % KEYS, key = k0 + r;
            bytes += __popc(__ballot_sync(0xffffffffu, key < sHi && key != pos)) * ROWB;
          }
          asm volatile("fence.proxy.async.shared::cta;" ::: "memory");  // this stage's earlier generic accesses before the bulk writes
          if (lane == 0) db4MbExpect(bar, bytes);
#pragma unroll
          for (int j = 0; j < 2 * KEYS / 32; j++) {
            const int idx = lane + j * 32, w = idx / KEYS, r = idx % KEYS, key = k0 + r;
            unsigned char* dst = ks + w * TILEB + r * RS;
            if (key >= sHi) {
              for (int c = 0; c < CPR; c++) *reinterpret_cast<uint4*>(dst + c * 16) = uint4{0u, 0u, 0u, 0u};
            } else if (key != pos) {
              const unsigned char* src = slot0 + r < tokensPerBlock ? base0 + (long long)(slot0 + r) * rowWidth * EB
                                                                    : kv + (kvCacheOffset(table, key, 0, tokensPerBlock, rowWidth) + kvhOf(it) * HD) * EB;
              db4Bulk(smemAddr(dst), w ? src + vStepB : src, ROWB, bar);
            }
          }
        } else if (DB4_FAST && slot0 + KEYS <= tokensPerBlock && k0 + KEYS <= sHi && (pos < k0 || pos >= k0 + KEYS)) {
          // The common tile (warp-uniform): every key valid, in one cache block, none the own key — rows a stride apart.
          constexpr int RPJ = 32 / CPR;  // rows a pass of the warp
          const int r0 = lane / CPR, c = lane % CPR;
          const unsigned char* src = base0 + (long long)(slot0 + r0) * rowWidth * EB + c * 16;
          const long long rstep = (long long)RPJ * rowWidth * EB;
#pragma unroll
          for (int j = 0; j < KEYS / RPJ; j++, src += rstep) {
            const int o = rb(r0 + RPJ * j, c);
            asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(smemAddr(ks + o)), "l"(src) : "memory");
            asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(smemAddr(ks + TILEB + o)), "l"(src + vStepB) : "memory");
          }
        } else {
#pragma unroll
          for (int j = 0; j < KEYS * CPR / 32; j++) {
            const int idx = lane + j * 32, r = idx / CPR, c = idx - r * CPR, key = k0 + r;
            if (key == pos && key < sHi) continue;
            const bool ok = key < sHi;
            const unsigned char* src = !ok ? kv
                : slot0 + r < tokensPerBlock ? base0 + (long long)(slot0 + r) * rowWidth * EB + c * 16
                : kv + (kvCacheOffset(table, key, 0, tokensPerBlock, rowWidth) + kvhOf(it) * HD) * EB + c * 16;
            const int o = rb(r, c);
            asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smemAddr(ks + o)), "l"(src), "r"(ok ? 16 : 0) : "memory");
            asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smemAddr(ks + TILEB + o)), "l"(ok ? src + vStepB : src), "r"(ok ? 16 : 0) : "memory");
          }
        }
      }
      if (!TMA) asm volatile("cp.async.commit_group;\n" ::: "memory");
    };
    if (TMA) {
      if (lane == 0) {
        for (int j = 0; j < ST; j++) db4MbInit(smemAddr(&bars[warp * ST + j]), 1);
        asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
      }
      __syncwarp();
    }
#pragma unroll
    for (int i = 0; i < ST; i++) issue(i, PF && s == t ? pfb[i] : -1);  // in flight while RoPE runs
    DB4_TR(8, clock64());
#pragma unroll
    for (int j = 0; j < FPT; j++) {
      const int i = tid + j * NT;
      if (i < HALF) {
        double sv, cv;
        sincos(ifq[j] * (double)pos, &sv, &cv);
        cs[i] = (float)(cv * (double)attnScaling);
        sn[i] = (float)(sv * (double)attnScaling);
      }
    }
    const float qscale = scale * LLMRT_LOG2E;
    DB4_TR(9, clock64());
    __syncthreads();
    DB4_TR(10, clock64());
    // Rotated q rounded to bf16 (the unfused q buffer's bits); Q8: times qscale · kScale, as f16. Rows past Gb zero.
#pragma unroll
    for (int j = 0; j < QPT; j++) {
      const int pq = tid + j * NT, it = pq / (DB4_ROWS * HC), g = (pq / HC) % DB4_ROWS, c = pq % HC;
      if (pq < QP && it < SER) {
        const bool live = g < gbOf(it);
        const float f = qscale * (Q8 ? (EARLY ? kScE[it] : kvScales[kvhOf(it)]) : 1.f);
        const u32 wa[4] = {qA[j].x, qA[j].y, qA[j].z, qA[j].w}, wb[4] = {qB[j].x, qB[j].y, qB[j].z, qB[j].w};
        u32 ra[4], rb2[4];
#pragma unroll
        for (int e = 0; e < 8; e++) {
          const int i = c * 8 + e;
          const float a = toF((bf16_t)(wa[e >> 1] >> (16 * (e & 1)))), b = toF((bf16_t)(wb[e >> 1] >> (16 * (e & 1))));
          bf16_t x0 = fromF<bf16_t>(a * cs[i] - b * sn[i]), x1 = fromF<bf16_t>(b * cs[i] + a * sn[i]);
          if (!live) x0 = x1 = 0;
          if (Q8) {
            x0 = f16Bits(fminf(fmaxf(toF(x0) * f, -65504.f), 65504.f));
            x1 = f16Bits(fminf(fmaxf(toF(x1) * f, -65504.f), 65504.f));
          }
          if (e & 1) { ra[e >> 1] |= (u32)x0 << 16; rb2[e >> 1] |= (u32)x1 << 16; }
          else { ra[e >> 1] = x0; rb2[e >> 1] = x1; }
        }
        *reinterpret_cast<uint4*>(qsm[it] + swizzle16<HD>(g, c)) = uint4{ra[0], ra[1], ra[2], ra[3]};
        *reinterpret_cast<uint4*>(qsm[it] + swizzle16<HD>(g, HC + c)) = uint4{rb2[0], rb2[1], rb2[2], rb2[3]};
      }
    }
    DB4_TR(11, clock64());
#pragma unroll
    for (int j = 0; j < KPT; j++) {  // the step's own key / value: rotate k, keep both in shared, and (chunk 0) write the cache
      const int pk = tid + j * NT, it = pk / HC, c = pk % HC;
      if (!own || OWNP || pk >= SERMAX * HC || it >= SER) continue;
      const int kh = kvhOf(it);
      const bool writer = (bx0 + it) % chunks == 0;
      const long long kOff = ((EARLY ? ((long long)ownBlk * 2 * tokensPerBlock + pos % tokensPerBlock) * rowWidth
                                          : kvCacheOffset(table, pos, 0, tokensPerBlock, rowWidth)) + kh * HD) * EB;
      const u32 wa[4] = {kA[j].x, kA[j].y, kA[j].z, kA[j].w}, wb[4] = {kB[j].x, kB[j].y, kB[j].z, kB[j].w};
      const u32 wc[4] = {vC[j].x, vC[j].y, vC[j].z, vC[j].w}, wd[4] = {vD[j].x, vD[j].y, vD[j].z, vD[j].w};
      if (Q8) {
        const float kS = EARLY ? kScE[it] : kvScales[kh], vS = EARLY ? vScE[it] : kvScales[numKvHeads + kh];
        u32 ka[2] = {0u, 0u}, kb[2] = {0u, 0u}, va[2] = {0u, 0u}, vb[2] = {0u, 0u};
#pragma unroll
        for (int e = 0; e < 8; e++) {
          const int i = c * 8 + e, sh = 8 * (e & 3);
          const float a = toF((bf16_t)(wa[e >> 1] >> (16 * (e & 1)))), b = toF((bf16_t)(wb[e >> 1] >> (16 * (e & 1))));
          ka[e >> 2] |= (u32)kvEncodeE4m3(a * cs[i] - b * sn[i], kS) << sh;
          kb[e >> 2] |= (u32)kvEncodeE4m3(b * cs[i] + a * sn[i], kS) << sh;
          va[e >> 2] |= (u32)kvEncodeE4m3(toF((bf16_t)(wc[e >> 1] >> (16 * (e & 1)))), vS) << sh;
          vb[e >> 2] |= (u32)kvEncodeE4m3(toF((bf16_t)(wd[e >> 1] >> (16 * (e & 1)))), vS) << sh;
        }
        *reinterpret_cast<uint2*>(kself[it] + c * 8) = uint2{ka[0], ka[1]};
        *reinterpret_cast<uint2*>(kself[it] + HALF + c * 8) = uint2{kb[0], kb[1]};
        *reinterpret_cast<uint2*>(vself[it] + c * 8) = uint2{va[0], va[1]};
        *reinterpret_cast<uint2*>(vself[it] + HALF + c * 8) = uint2{vb[0], vb[1]};
        if (writer) {
          *reinterpret_cast<uint2*>(kv + kOff + c * 8) = uint2{ka[0], ka[1]};
          *reinterpret_cast<uint2*>(kv + kOff + HALF + c * 8) = uint2{kb[0], kb[1]};
          *reinterpret_cast<uint2*>(kv + kOff + vStepB + c * 8) = uint2{va[0], va[1]};
          *reinterpret_cast<uint2*>(kv + kOff + vStepB + HALF + c * 8) = uint2{vb[0], vb[1]};
        }
      } else {
        u32 ra[4], rb2[4];
#pragma unroll
        for (int e = 0; e < 8; e++) {
          const int i = c * 8 + e;
          const float a = toF((bf16_t)(wa[e >> 1] >> (16 * (e & 1)))), b = toF((bf16_t)(wb[e >> 1] >> (16 * (e & 1))));
          const u32 x0 = fromF<bf16_t>(a * cs[i] - b * sn[i]), x1 = fromF<bf16_t>(b * cs[i] + a * sn[i]);
          if (e & 1) { ra[e >> 1] |= x0 << 16; rb2[e >> 1] |= x1 << 16; }
          else { ra[e >> 1] = x0; rb2[e >> 1] = x1; }
        }
        const uint4 k0v = uint4{ra[0], ra[1], ra[2], ra[3]}, k1v = uint4{rb2[0], rb2[1], rb2[2], rb2[3]};
        *reinterpret_cast<uint4*>(kself[it] + c * 16) = k0v;
        *reinterpret_cast<uint4*>(kself[it] + HALF * 2 + c * 16) = k1v;
        *reinterpret_cast<uint4*>(vself[it] + c * 16) = vC[j];
        *reinterpret_cast<uint4*>(vself[it] + HALF * 2 + c * 16) = vD[j];
        if (writer) {
          *reinterpret_cast<uint4*>(kv + kOff + c * 16) = k0v;
          *reinterpret_cast<uint4*>(kv + kOff + HALF * 2 + c * 16) = k1v;
          *reinterpret_cast<uint4*>(kv + kOff + vStepB + c * 16) = vC[j];
          *reinterpret_cast<uint4*>(kv + kOff + vStepB + HALF * 2 + c * 16) = vD[j];
        }
      }
    }
    if constexpr (OWNP) {
      if (own) {
        const int kh = kvhOf(0);
        const float kS = EARLY ? kScE[0] : kvScales[kh], vS = EARLY ? vScE[0] : kvScales[numKvHeads + kh];
#pragma unroll
        for (int j = 0; j < OPT; j++) {
          const int i = tid + j * NT;
          if (i >= HALF) continue;
          const float a = okA[j], b = okB[j];
          kself[0][i] = kvEncodeE4m3(a * cs[i] - b * sn[i], kS);
          kself[0][HALF + i] = kvEncodeE4m3(b * cs[i] + a * sn[i], kS);
          vself[0][i] = kvEncodeE4m3(ovA[j], vS);
          vself[0][HALF + i] = kvEncodeE4m3(ovB[j], vS);
        }
      }
    }
    __syncthreads();
    if constexpr (OWNP) {
      if (own && bx0 % chunks == 0) {  // the writer item: the cache row from kself / vself
        const long long kOff = ((EARLY ? ((long long)ownBlk * 2 * tokensPerBlock + pos % tokensPerBlock) * rowWidth
                                            : kvCacheOffset(table, pos, 0, tokensPerBlock, rowWidth)) + kvhOf(0) * HD) * EB;
        for (int c = tid; c < 2 * CPR; c += NT) {
          const bool isV = c >= CPR;
          const int cc = isV ? c - CPR : c;
          *reinterpret_cast<uint4*>(kv + kOff + (isV ? vStepB : 0) + cc * 16) = *reinterpret_cast<const uint4*>((isV ? vself[0] : kself[0]) + cc * 16);
        }
      }
    }
    const int mi = lane >> 3;
    DB4_TR(3, clock64());
    for (int it = 0; it < SER; it++) {
      // q^T as the B operand (k = head dims, n = the 8 heads): b0 = q[g4][slots 2c4, 2c4 + 1], b1 = slots 2c4 + 8, + 9 of
      // k step kk. bf16: slot j of step kk is dim 16 kk + j; e4m3: the slots of lane c4 are dims c4 · HD / 4 + 4 kk + 0..3.
      u32 qb[KSTEPS][2];
#pragma unroll
      for (int kk = 0; kk < KSTEPS; kk++) {
        const int d0 = Q8 ? c4 * (HD / 4) + 4 * kk : 16 * kk + 2 * c4, d1 = Q8 ? d0 + 2 : d0 + 8;
        qb[kk][0] = *reinterpret_cast<const u32*>(qsm[it] + swizzle16<HD>(g4, d0 >> 3) + (d0 & 7));
        qb[kk][1] = *reinterpret_cast<const u32*>(qsm[it] + swizzle16<HD>(g4, d1 >> 3) + (d1 & 7));
      }
      float o[MT][4];
#pragma unroll
      for (int mt = 0; mt < MT; mt++) o[mt][0] = o[mt][1] = o[mt][2] = o[mt][3] = 0.f;
      // Heads 2 c4 (A) and 2 c4 + 1 (B): running max (the warp's, the same in every lane) and this lane's part of l.
      float mA = -LLMRT_INF, mB = -LLMRT_INF, lA = 0.f, lB = 0.f;
      for (int ti = 0; ti < nW; ti++) {
        const int i = it * nW + ti;
        if (TMA) db4MbWait(smemAddr(&bars[warp * ST + i % ST]), (i / ST) & 1);
        else asm volatile("cp.async.wait_group %0;\n" ::"n"(ST - 1) : "memory");  // tile i landed (ST + i groups committed)
        __syncwarp();
        if (i == 0) DB4_TR(4, clock64());
        if (i == nI - 1) DB4_TR(5, clock64());
        const int k0 = sLo + (warp + ti * NW) * KEYS;
        unsigned char* st = myRing + (i % ST) * STAGEB;
        if (own && pos >= k0 && pos < k0 + KEYS) {  // patch the own key / value in
          const int r = pos - k0;
          for (int c = lane; c < CPR; c += 32) {
            const int o2 = rb(r, c);
            *reinterpret_cast<uint4*>(st + o2) = *reinterpret_cast<const uint4*>(kself[it] + c * 16);
            *reinterpret_cast<uint4*>(st + TILEB + o2) = *reinterpret_cast<const uint4*>(vself[it] + c * 16);
          }
          __syncwarp();
        }
        const unsigned char* ks = st;
        const unsigned char* vs = st + TILEB;
        // S^T = K · q^T: rows keys g4, g4 + 8 of each 16-key sub-tile, columns heads 2 c4, 2 c4 + 1.
        float sc[KT][4];
#pragma unroll
        for (int u = 0; u < KT; u++) {
          sc[u][0] = sc[u][1] = sc[u][2] = sc[u][3] = 0.f;
          if (Q8) {
            // Lane's K bytes: rows g4 and g4 + 8, bytes c4 · HD / 4 .. + HD / 4 (4 a k step).
            constexpr int LB = HD / 4;
            u32 w0[LB / 4], w1[LB / 4];
#pragma unroll
            for (int h = 0; h < LB / 16; h++) {
              const int kx = SWZ ? rb(u * 16 + g4, c4 * (LB / 16) + h) : (u * 16 + g4) * RS + c4 * LB + 16 * h;
              const int ky = SWZ ? rb(u * 16 + g4 + 8, c4 * (LB / 16) + h) : (u * 16 + g4 + 8) * RS + c4 * LB + 16 * h;
              const uint4 x = *reinterpret_cast<const uint4*>(ks + kx);
              const uint4 y = *reinterpret_cast<const uint4*>(ks + ky);
              w0[4 * h] = x.x; w0[4 * h + 1] = x.y; w0[4 * h + 2] = x.z; w0[4 * h + 3] = x.w;
              w1[4 * h] = y.x; w1[4 * h + 1] = y.y; w1[4 * h + 2] = y.z; w1[4 * h + 3] = y.w;
            }
#pragma unroll
            for (int kk = 0; kk < KSTEPS; kk++) {
              const u32 a[4] = {e4m3x2ToF16x2(w0[kk]), e4m3x2ToF16x2(w1[kk]), e4m3x2ToF16x2(w0[kk] >> 16), e4m3x2ToF16x2(w1[kk] >> 16)};
              db4Mma<true>(sc[u], a, qb[kk][0], qb[kk][1]);
            }
          } else {
            const int r = u * 16 + (mi & 1) * 8 + (lane & 7);
#pragma unroll
            for (int kk = 0; kk < KSTEPS; kk++) {
              u32 a[4];
              ldsmX4<false>(a, ks + rb(r, 2 * kk + (mi >> 1)));
              db4Mma<false>(sc[u], a, qb[kk][0], qb[kk][1]);
            }
          }
        }
        float mxA = -LLMRT_INF, mxB = -LLMRT_INF;
#pragma unroll
        for (int u = 0; u < KT; u++)
#pragma unroll
          for (int hi = 0; hi < 2; hi++) {
            const bool valid = k0 + u * 16 + g4 + 8 * hi < sHi;
            const float f = Q8 ? 1.f : qscale;
            sc[u][2 * hi] = valid ? sc[u][2 * hi] * f : -LLMRT_INF;
            sc[u][2 * hi + 1] = valid ? sc[u][2 * hi + 1] * f : -LLMRT_INF;
            mxA = fmaxf(mxA, sc[u][2 * hi]);
            mxB = fmaxf(mxB, sc[u][2 * hi + 1]);
          }
#pragma unroll
        for (int x = 4; x < 32; x <<= 1) {
          mxA = fmaxf(mxA, __shfl_xor_sync(0xffffffffu, mxA, x));
          mxB = fmaxf(mxB, __shfl_xor_sync(0xffffffffu, mxB, x));
        }
        const float nA = fmaxf(mA, mxA), nB = fmaxf(mB, mxB);  // finite: a warp tile's first key is valid
        const float aA = exp2f(mA - nA), aB = exp2f(mB - nB);  // 0 on the first tile (m = -inf)
        mA = nA;
        mB = nB;
        u32 pb[KT][2];
        float sA = 0.f, sB = 0.f;
#pragma unroll
        for (int u = 0; u < KT; u++) {
          const float p0 = exp2f(sc[u][0] - nA), p1 = exp2f(sc[u][1] - nB), p2 = exp2f(sc[u][2] - nA), p3 = exp2f(sc[u][3] - nB);
          sA += p0 + p2;
          sB += p1 + p3;
          pb[u][0] = db4Trans(Q8 ? packF16(p0, p1) : packBf16(p0, p1));  // keys 2 c4, + 1 of head g4
          pb[u][1] = db4Trans(Q8 ? packF16(p2, p3) : packBf16(p2, p3));  // keys 8 + 2 c4, + 1
        }
        lA = lA * aA + sA;
        lB = lB * aB + sB;
        if (!__all_sync(0xffffffffu, aA == 1.f && aB == 1.f)) {  // the max moved for some head (else o · 1: the same bits)
#pragma unroll
          for (int mt = 0; mt < MT; mt++) {
            o[mt][0] *= aA;
            o[mt][1] *= aB;
            o[mt][2] *= aA;
            o[mt][3] *= aB;
          }
        }
        // O^T += V^T · P^T: rows head dims (16 an m tile), k the sub-tile's 16 keys, columns heads.
#pragma unroll
        for (int u = 0; u < KT; u++) {
          if (Q8) {
            // Lane's V bytes: keys 2 c4, 2 c4 + 1, 2 c4 + 8, 2 c4 + 9, bytes HD / 8 · g4 .. + HD / 8 (2 an m tile).
            constexpr int LB = HD / 8;
            u32 w[4][LB / 4];
#pragma unroll
            for (int q = 0; q < 4; q++) {
              const int vr = u * 16 + 2 * c4 + (q & 1) + 8 * (q >> 1);
              const unsigned char* src = vs + (SWZ ? rb(vr, g4 * LB >> 4) + (g4 * LB & 15) : vr * RS + g4 * LB);
              if constexpr (LB == 16) {
                const uint4 x = *reinterpret_cast<const uint4*>(src);
                w[q][0] = x.x; w[q][1] = x.y; w[q][2] = x.z; w[q][3] = x.w;
              } else {
                const uint2 x = *reinterpret_cast<const uint2*>(src);
                w[q][0] = x.x; w[q][1] = x.y;
              }
            }
#pragma unroll
            for (int j = 0; j < LB / 4; j++) {
              // Word j holds dims 4j .. 4j + 3 of the lane's run: m tiles 2j (dims 4j, 4j + 1) and 2j + 1 (4j + 2, 4j + 3).
              const u32 lo01 = db4Prmt(w[0][j], w[1][j], 0x5140), hi01 = db4Prmt(w[0][j], w[1][j], 0x7362);
              const u32 lo89 = db4Prmt(w[2][j], w[3][j], 0x5140), hi89 = db4Prmt(w[2][j], w[3][j], 0x7362);
              const u32 a0[4] = {e4m3x2ToF16x2(lo01), e4m3x2ToF16x2(lo01 >> 16), e4m3x2ToF16x2(lo89), e4m3x2ToF16x2(lo89 >> 16)};
              const u32 a1[4] = {e4m3x2ToF16x2(hi01), e4m3x2ToF16x2(hi01 >> 16), e4m3x2ToF16x2(hi89), e4m3x2ToF16x2(hi89 >> 16)};
              db4Mma<true>(o[2 * j], a0, pb[u][0], pb[u][1]);
              db4Mma<true>(o[2 * j + 1], a1, pb[u][0], pb[u][1]);
            }
          } else {
            const int r = u * 16 + (lane & 7) + ((lane >> 4) << 3);
#pragma unroll
            for (int mt = 0; mt < MT; mt++) {
              u32 a[4];
              ldsmX4<true>(a, vs + rb(r, 2 * mt + (mi & 1)));
              db4Mma<false>(o[mt], a, pb[u][0], pb[u][1]);
            }
          }
        }
        __syncwarp();  // the stage is refilled next
        issue(i + ST, -1);
      }
      DB4_TR(12, clock64());
      // Item it done: l over the lanes of each head; warps 1.. park (m, l, o) lane by lane, warp 0 merges them in order
      // (a warp with no keys: m = -inf, weight 0) and writes the item's heads.
#pragma unroll
      for (int x = 4; x < 32; x <<= 1) {
        lA += __shfl_xor_sync(0xffffffffu, lA, x);
        lB += __shfl_xor_sync(0xffffffffu, lB, x);
      }
      if constexpr (SPLITM) {
        // DB4_SPLITM: warp 0 merges and writes heads 2 c4 (A), warp 1 heads 2 c4 + 1 (B); each parks the other's half in
        // its own ring (free: its last tile landed). The same operations in the same order as warp 0's merge: the same bits.
        static_assert(!SPLITM || (NW == 2 && SERMAX == 1), "DB4_SPLITM: two warps, one item a block");
        constexpr int PKB = (2 * MT + 2) * 32 * 4;  // bytes a warp parks
        static_assert(!SPLITM || PKB + DB4_ROWS / 2 * HD * 2 <= ST * STAGEB, "a warp's ring holds its park and output stage");
        const int me = warp;  // my element: A = o[mt][0 / 2], B = o[mt][1 / 3]
        float* park = reinterpret_cast<float*>(ring + warp * ST * STAGEB) + lane;
#pragma unroll
        for (int mt = 0; mt < MT; mt++) {
          park[(2 * mt) * 32] = o[mt][1 - me];
          park[(2 * mt + 1) * 32] = o[mt][3 - me];
        }
        park[(2 * MT) * 32] = me ? mA : mB;
        park[(2 * MT + 1) * 32] = me ? lA : lB;
        __syncthreads();
        DB4_TR(13, clock64());
        const int Gb = gbOf(it), h0 = h0Of(it);
        // HALFEND (G <= 4: lanes c4 >= 2 hold absent heads): lane c4 + 2 takes m tiles MT / 2 .. of lane c4's head (its
        // own values by shuffles, the parked ones from lane c4's slots), so each lane merges and writes half a head's run.
        const bool half = HALFEND && Gb <= 4;  // block-uniform
        const bool hiL = half && c4 >= 2;
        const int vc4 = half ? (c4 & 1) : c4, mOff = hiL ? MT / 2 : 0;  // the head / m tiles this lane takes
        const float* oth = reinterpret_cast<const float*>(ring + (1 - warp) * ST * STAGEB) + (hiL ? lane ^ 2 : lane);
        float mOwn = me ? mB : mA, lOwn = me ? lB : lA;
        float ov[MT][2];  // my own elements of m tiles mOff + j
#pragma unroll
        for (int j = 0; j < MT; j++)
#pragma unroll
          for (int hi = 0; hi < 2; hi++) ov[j][hi] = o[j][2 * hi + me];
        if (half) {
#pragma unroll
          for (int j = 0; j < MT / 2; j++)
#pragma unroll
            for (int hi = 0; hi < 2; hi++) {
              const float x = __shfl_xor_sync(0xffffffffu, o[j + MT / 2][2 * hi + me], 2);
              if (hiL) ov[j][hi] = x;
            }
          const float x = __shfl_xor_sync(0xffffffffu, mOwn, 2), y = __shfl_xor_sync(0xffffffffu, lOwn, 2);
          if (hiL) { mOwn = x; lOwn = y; }
        }
        const float mOth = oth[(2 * MT) * 32], lOth = oth[(2 * MT + 1) * 32];
        // Warp 0's values first, then warp 1's (warp 0's merge order).
        const float mF = me ? mOth : mOwn, lF = me ? lOth : lOwn, mS = me ? mOwn : mOth, lS = me ? lOwn : lOth;
        const float M = fmaxf(fmaxf(-LLMRT_INF, mF), mS);
        const float w0 = exp2f(mF - M);
        float L = fmaf(w0, lF, 0.f);
        float r[MT][2];
#pragma unroll
        for (int j = 0; j < MT; j++)
#pragma unroll
          for (int hi = 0; hi < 2; hi++)
            if (!half || j < MT / 2) r[j][hi] = fmaf(w0, me ? oth[(2 * (j + mOff) + hi) * 32] : ov[j][hi], 0.f);
        const float w1 = exp2f(mS - M);
        L = fmaf(w1, lS, L);
#pragma unroll
        for (int j = 0; j < MT; j++)
#pragma unroll
          for (int hi = 0; hi < 2; hi++)
            if (!half || j < MT / 2) r[j][hi] = fmaf(w1, me ? ov[j][hi] : oth[(2 * (j + mOff) + hi) * 32], r[j][hi]);
        const float vS = Q8 ? (EARLY ? vScE[it] : kvScales[numKvHeads + kvhOf(it)]) : 1.f;
        const long long th = (long long)t * numHeads + h0 + 2 * vc4 + me;
        const bool ok = 2 * vc4 + me < Gb;
        const float rL = RCP ? __frcp_rn(L) : 0.f;
        auto odiv = [&](float x) {
          if (!RCP) return x / L;
          const float q = x * rL;
          const float q2 = fmaf(fmaf(-q, L, x), rL, q);
          return fabsf(x) < 0x1p-60f ? x / L : q2;
        };
        if (QO && direct) {
          u32 w[MT / 2];
#pragma unroll
          for (int mt = 0; mt < MT; mt += 2) {
            w[mt / 2] = 0u;
            if (half && mt >= MT / 2) continue;
            float a[4];
#pragma unroll
            for (int e = 0; e < 4; e++) a[e] = db4QDiv(odiv(r[mt + e / 2][e % 2] * vS), actScale, qoInv);
            w[mt / 2] = db4E4m3x2(a[0], a[1]) | (db4E4m3x2(a[2], a[3]) << 16);
          }
          unsigned char* o8 = reinterpret_cast<unsigned char*>(out) + th * HD + db4Dim<HD, Q8>(g4, mOff, 0);
          if constexpr (MT == 8) {
            if (ok && half) *reinterpret_cast<uint2*>(o8) = make_uint2(w[0], w[1]);
            else if (ok) *reinterpret_cast<uint4*>(o8) = make_uint4(w[0], w[1], w[2], w[3]);
          } else {
            if (ok && half) *reinterpret_cast<u32*>(o8) = w[0];
            else if (ok) *reinterpret_cast<uint2*>(o8) = make_uint2(w[0], w[1]);
          }
        }
        bf16_t* oStage = reinterpret_cast<bf16_t*>(ring + warp * ST * STAGEB + PKB);  // OUTV: my 4 heads' rows
#pragma unroll
        for (int j = 0; j < MT; j++)
#pragma unroll
          for (int hi = 0; hi < 2; hi++) {
            if (half && j >= MT / 2) continue;
            const int d = db4Dim<HD, Q8>(g4, j + mOff, hi);
            const float O = r[j][hi] * vS;
            if (direct && !QO && OUTV) oStage[vc4 * HD + d] = fromF<bf16_t>(odiv(O));
            else if (direct && !QO) { if (ok) out[th * HD + d] = fromF<bf16_t>(odiv(O)); }
            else if (!direct) { if (ok) partialO[(th * numSplits + z) * HD + d] = O; }
          }
        if (OUTV && direct && !QO) {
          __syncwarp();
          const long long th0 = (long long)t * numHeads + h0;
          for (int idx = lane; idx < DB4_ROWS / 2 * (HD / 8); idx += 32) {
            const int gi = idx / (HD / 8), c = idx - gi * (HD / 8), g = 2 * gi + me;
            if (g < Gb) *reinterpret_cast<uint4*>(out + (th0 + g) * HD + c * 8) = *reinterpret_cast<const uint4*>(oStage + gi * HD + c * 8);
          }
        }
        if (!direct && g4 == 0 && ok && !hiL) {
          partialML[(th * numSplits + z) * 2] = M;
          partialML[(th * numSplits + z) * 2 + 1] = L;
        }
      } else {
      // Warp w's parked value v of this lane: pk(w)[v * 32 + lane].
      auto pk = [&](int w) {
        return SERMAX > 1 ? parkBuf + ((it & 1) * (NW - 1) + w - 1) * MW * 32 : reinterpret_cast<float*>(ring + w * ST * STAGEB);
      };
      if (warp > 0) {
        float* p = pk(warp) + lane;
#pragma unroll
        for (int mt = 0; mt < MT; mt++)
#pragma unroll
          for (int e = 0; e < 4; e++) p[(mt * 4 + e) * 32] = o[mt][e];
        p[MT * 4 * 32] = mA;
        p[(MT * 4 + 1) * 32] = mB;
        p[(MT * 4 + 2) * 32] = lA;
        p[(MT * 4 + 3) * 32] = lB;
      }
      __syncthreads();
      DB4_TR(13, clock64());
      if (warp == 0) {
        float MA = fmaxf(-LLMRT_INF, mA), MB = fmaxf(-LLMRT_INF, mB);
#pragma unroll
        for (int w = 1; w < NW; w++) {
          MA = fmaxf(MA, pk(w)[MT * 4 * 32 + lane]);
          MB = fmaxf(MB, pk(w)[(MT * 4 + 1) * 32 + lane]);
        }
        const float wA0 = exp2f(mA - MA), wB0 = exp2f(mB - MB);
        float LA = fmaf(wA0, lA, 0.f), LB = fmaf(wB0, lB, 0.f);
#pragma unroll
        for (int mt = 0; mt < MT; mt++) {
          o[mt][0] = fmaf(wA0, o[mt][0], 0.f);
          o[mt][1] = fmaf(wB0, o[mt][1], 0.f);
          o[mt][2] = fmaf(wA0, o[mt][2], 0.f);
          o[mt][3] = fmaf(wB0, o[mt][3], 0.f);
        }
#pragma unroll
        for (int w = 1; w < NW; w++) {
          const float* p = pk(w) + lane;
          const float wA = exp2f(p[MT * 4 * 32] - MA), wB = exp2f(p[(MT * 4 + 1) * 32] - MB);
          LA = fmaf(wA, p[(MT * 4 + 2) * 32], LA);
          LB = fmaf(wB, p[(MT * 4 + 3) * 32], LB);
#pragma unroll
          for (int mt = 0; mt < MT; mt++) {
            o[mt][0] = fmaf(wA, p[(mt * 4) * 32], o[mt][0]);
            o[mt][1] = fmaf(wB, p[(mt * 4 + 1) * 32], o[mt][1]);
            o[mt][2] = fmaf(wA, p[(mt * 4 + 2) * 32], o[mt][2]);
            o[mt][3] = fmaf(wB, p[(mt * 4 + 3) * 32], o[mt][3]);
          }
        }
        const int Gb = gbOf(it), h0 = h0Of(it);
        const float vS = Q8 ? (EARLY ? vScE[it] : kvScales[numKvHeads + kvhOf(it)]) : 1.f;
        const long long thA = (long long)t * numHeads + h0 + 2 * c4;  // head 2 c4 (B: + 1)
        const bool okA = 2 * c4 < Gb, okB = 2 * c4 + 1 < Gb;
        const float rA = RCP ? __frcp_rn(LA) : 0.f, rB = RCP ? __frcp_rn(LB) : 0.f;
        auto odiv = [&](float x, float l, float r) {
          if (!RCP) return x / l;
          const float q = x * r;
          const float q2 = fmaf(fmaf(-q, l, x), r, q);
          return fabsf(x) < 0x1p-60f ? x / l : q2;
        };
        if (QO && direct) {
          // Head dims (HD / 8) g4 + 2 mt + hi: one run of 2 MT bytes a head (8 / 16 bytes), in (mt, hi) order.
          u32 wa[MT / 2], wb[MT / 2];
#pragma unroll
          for (int mt = 0; mt < MT; mt += 2) {
            float a[4], b[4];
#pragma unroll
            for (int e = 0; e < 4; e++) {
              const int m2 = mt + e / 2, hi = e % 2;
              a[e] = db4QDiv(odiv(o[m2][2 * hi] * vS, LA, rA), actScale, qoInv);
              b[e] = db4QDiv(odiv(o[m2][2 * hi + 1] * vS, LB, rB), actScale, qoInv);
            }
            wa[mt / 2] = db4E4m3x2(a[0], a[1]) | (db4E4m3x2(a[2], a[3]) << 16);
            wb[mt / 2] = db4E4m3x2(b[0], b[1]) | (db4E4m3x2(b[2], b[3]) << 16);
          }
          unsigned char* o8 = reinterpret_cast<unsigned char*>(out);
          const int d0 = db4Dim<HD, Q8>(g4, 0, 0);
          if constexpr (MT == 8) {
            if (okA) *reinterpret_cast<uint4*>(o8 + thA * HD + d0) = make_uint4(wa[0], wa[1], wa[2], wa[3]);
            if (okB) *reinterpret_cast<uint4*>(o8 + (thA + 1) * HD + d0) = make_uint4(wb[0], wb[1], wb[2], wb[3]);
          } else {
            if (okA) *reinterpret_cast<uint2*>(o8 + thA * HD + d0) = make_uint2(wa[0], wa[1]);
            if (okB) *reinterpret_cast<uint2*>(o8 + (thA + 1) * HD + d0) = make_uint2(wb[0], wb[1]);
          }
        }
        static_assert(!OUTV || SERMAX == 1, "OUTV stages the output in warp 0's ring (free at the end with one item)");
        bf16_t* oStage = reinterpret_cast<bf16_t*>(ring);  // OUTV: [8 heads][HD] bf16
#pragma unroll
        for (int mt = 0; mt < MT; mt++)
#pragma unroll
          for (int hi = 0; hi < 2; hi++) {
            const int d = db4Dim<HD, Q8>(g4, mt, hi);
            const float OA = o[mt][2 * hi] * vS, OB = o[mt][2 * hi + 1] * vS;
            if (direct && !QO && OUTV) {
              oStage[(2 * c4) * HD + d] = fromF<bf16_t>(odiv(OA, LA, rA));
              oStage[(2 * c4 + 1) * HD + d] = fromF<bf16_t>(odiv(OB, LB, rB));
            } else if (direct && !QO) {
              if (okA) out[thA * HD + d] = fromF<bf16_t>(odiv(OA, LA, rA));
              if (okB) out[(thA + 1) * HD + d] = fromF<bf16_t>(odiv(OB, LB, rB));
            } else if (!direct) {
              if (okA) partialO[(thA * numSplits + z) * HD + d] = OA;
              if (okB) partialO[((thA + 1) * numSplits + z) * HD + d] = OB;
            }
          }
        if (OUTV && direct && !QO) {
          __syncwarp();
          const long long th0 = (long long)t * numHeads + h0;
          for (int idx = lane; idx < Gb * (HD / 8); idx += 32) {
            const int g = idx / (HD / 8), c = idx - g * (HD / 8);
            *reinterpret_cast<uint4*>(out + (th0 + g) * HD + c * 8) = *reinterpret_cast<const uint4*>(oStage + g * HD + c * 8);
          }
        }
        if (!direct && g4 == 0) {
          if (okA) { partialML[(thA * numSplits + z) * 2] = MA; partialML[(thA * numSplits + z) * 2 + 1] = LA; }
          if (okB) { partialML[((thA + 1) * numSplits + z) * 2] = MB; partialML[((thA + 1) * numSplits + z) * 2 + 1] = LB; }
        }
      }
      }  // !SPLITM
      DB4_TR(14, clock64());
      if (!direct) splitMerge(it, nz);
    }
    if (!TMA) asm volatile("cp.async.wait_group 0;\n" ::: "memory");  // empty trailing groups
  }
  DB4_TR(6, clock64());
  DB4_TR(1, db4Gt());
}

#define DB4_ARGS_HEAD                                                                                                     \
  const bf16_t *qkv, bf16_t *out, void *kvCache, const int *positions, const int *seqStarts, const int *blockTables,      \
      const double *invFreq, float attnScaling, float *partialO, float *partialML, int *counters, int numTokens,         \
      int numSeqs, int numHeads, int numKvHeads, int tokensPerBlock, int maxBlocksPerSeq, float scale, int window,       \
      int splitSize, const void *prefetch, long long prefetchBytes
#define DECODE_BATCH4Q(HD, Q8, QO, NAME, EXTRA, TAIL)                                                                     \
  extern "C" __global__ void __launch_bounds__(DB4_CFG(NW, HD, Q8) * 32, DB4_CFG(MINB, HD, Q8)) NAME(DB4_ARGS_HEAD EXTRA) { \
    if ((int)blockIdx.y >= numTokens) return;                                                                             \
    decodeBatch4Impl<HD, DB4_CFG(NW, HD, Q8), DB4_CFG(ST, HD, Q8), DB4_CFG(KT, HD, Q8), Q8, DB4_CFG(TMA, HD, Q8) != 0, DB4_CFG(SER, HD, Q8), QO, DB4_PF != 0>(qkv, out, kvCache, positions, \
        seqStarts, blockTables, invFreq, attnScaling, partialO, partialML, counters, numSeqs, numHeads, numKvHeads,       \
        tokensPerBlock, maxBlocksPerSeq, scale, window, splitSize, TAIL);                                                 \
  }
#define DECODE_BATCH4(HD, Q8, NAME, EXTRA, SCALES)                                                                        \
  extern "C" __global__ void __launch_bounds__(DB4_CFG(NW, HD, Q8) * 32, DB4_CFG(MINB, HD, Q8)) NAME(DB4_ARGS_HEAD EXTRA) { \
    if ((int)blockIdx.y >= numTokens) return;                                                                             \
    decodeBatch4Impl<HD, DB4_CFG(NW, HD, Q8), DB4_CFG(ST, HD, Q8), DB4_CFG(KT, HD, Q8), Q8, DB4_CFG(TMA, HD, Q8) != 0, DB4_CFG(SER, HD, Q8), false, DB4_PF != 0>(qkv, out, kvCache, positions, \
        seqStarts, blockTables, invFreq, attnScaling, partialO, partialML, counters, numSeqs, numHeads, numKvHeads,       \
        tokensPerBlock, maxBlocksPerSeq, scale, window, splitSize, SCALES);                                               \
  }
#define COMMA_Q8OUT , const float* kvScales, float* rowScale, float actScale
#define DB4_Q8TAIL kvScales, rowScale, actScale
#if LLMRT_KERNEL(decode_attention_batch4_bf16_hd64)
DECODE_BATCH4(64, false, decode_attention_batch4_bf16_hd64, , nullptr)
#endif
#if LLMRT_KERNEL(decode_attention_batch4_bf16_hd128)
DECODE_BATCH4(128, false, decode_attention_batch4_bf16_hd128, , nullptr)
#endif
#if LLMRT_KERNEL(decode_attention_batch4_fp8kv_bf16_hd64)
DECODE_BATCH4(64, true, decode_attention_batch4_fp8kv_bf16_hd64, COMMA_SCALES, kvScales)
#endif
#if LLMRT_KERNEL(decode_attention_batch4_fp8kv_bf16_hd128)
DECODE_BATCH4(128, true, decode_attention_batch4_fp8kv_bf16_hd128, COMMA_SCALES, kvScales)
#endif
#if LLMRT_KERNEL(decode_attention_batch4_q8_fp8kv_bf16_hd64)
DECODE_BATCH4Q(64, true, true, decode_attention_batch4_q8_fp8kv_bf16_hd64, COMMA_Q8OUT, DB4_Q8TAIL)
#endif
#if LLMRT_KERNEL(decode_attention_batch4_q8_fp8kv_bf16_hd128)
DECODE_BATCH4Q(128, true, true, decode_attention_batch4_q8_fp8kv_bf16_hd128, COMMA_Q8OUT, DB4_Q8TAIL)
#endif

// decode_attention_batch4x_{,fp8kv_,q8_fp8kv_}bf16_hd{64|128} (session 17, batchAttention4X): batch4's entry points with the
// XF knobs DB4_XSEL (the same tiles, sums and bits, a shorter prologue and end): session 17's 15 = EARLY / RCP / OUTV / SPLITM;
// session 19's 783 adds SWZ (e4m3 hd128) and HALFEND (H200, 8B 512 seqs e4m3 q8, one job: 86.7 µs default / 85.2 at 15 /
// 80.9 at 783; tools/gpu/results/s19-battn/r3).
#ifndef DB4_XSEL
#define DB4_XSEL 783
#endif
#define DECODE_BATCH4X(HD, Q8, QO, NAME, EXTRA, TAIL)                                                                     \
  extern "C" __global__ void __launch_bounds__(DB4_CFG(NW, HD, Q8) * 32, DB4_CFG(MINB, HD, Q8)) NAME(DB4_ARGS_HEAD EXTRA) { \
    if ((int)blockIdx.y >= numTokens) return;                                                                             \
    decodeBatch4Impl<HD, DB4_CFG(NW, HD, Q8), DB4_CFG(ST, HD, Q8), DB4_CFG(KT, HD, Q8), Q8, DB4_CFG(TMA, HD, Q8) != 0, 1, QO, false, DB4_XSEL>( \
        qkv, out, kvCache, positions, seqStarts, blockTables, invFreq, attnScaling, partialO, partialML, counters, numSeqs,    \
        numHeads, numKvHeads, tokensPerBlock, maxBlocksPerSeq, scale, window, splitSize, TAIL);                             \
  }
#if LLMRT_KERNEL(decode_attention_batch4x_bf16_hd64)
DECODE_BATCH4X(64, false, false, decode_attention_batch4x_bf16_hd64, , nullptr)
#endif
#if LLMRT_KERNEL(decode_attention_batch4x_bf16_hd128)
DECODE_BATCH4X(128, false, false, decode_attention_batch4x_bf16_hd128, , nullptr)
#endif
#if LLMRT_KERNEL(decode_attention_batch4x_fp8kv_bf16_hd64)
DECODE_BATCH4X(64, true, false, decode_attention_batch4x_fp8kv_bf16_hd64, COMMA_SCALES, kvScales)
#endif
#if LLMRT_KERNEL(decode_attention_batch4x_fp8kv_bf16_hd128)
DECODE_BATCH4X(128, true, false, decode_attention_batch4x_fp8kv_bf16_hd128, COMMA_SCALES, kvScales)
#endif
#if LLMRT_KERNEL(decode_attention_batch4x_q8_fp8kv_bf16_hd64)
DECODE_BATCH4X(64, true, true, decode_attention_batch4x_q8_fp8kv_bf16_hd64, COMMA_Q8OUT, DB4_Q8TAIL)
#endif
#if LLMRT_KERNEL(decode_attention_batch4x_q8_fp8kv_bf16_hd128)
DECODE_BATCH4X(128, true, true, decode_attention_batch4x_q8_fp8kv_bf16_hd128, COMMA_Q8OUT, DB4_Q8TAIL)
#endif

// decode_attention_batch4w_bf16_hd128: the bf16 hd128 kernel with 1 cp.async stage a warp and registers capped for 8 blocks
// per SM (the same warps and tiles, so the same bits) for steps of at least BATCH4_WIDE_MIN_ROWS sequences (H200 session 11,
// 8B layer at 128..256 keys, r1 before the fast issue: 112.4 vs 120.3 us at 512 seqs, 34.5 vs 40.2 at 128, 24.3 vs 21.2 at 64).
#if LLMRT_KERNEL(decode_attention_batch4w_bf16_hd128)
extern "C" __global__ void __launch_bounds__(64, 8) decode_attention_batch4w_bf16_hd128(DB4_ARGS_HEAD) {
  static_assert(DB4_NW128 == 2, "decode_attention_batch4w takes batch4's 2 warps (the same tiles, the same bits)");
  if ((int)blockIdx.y >= numTokens) return;
  decodeBatch4Impl<128, 2, 1, DB4_KT128, false, false, 1>(qkv, out, kvCache, positions, seqStarts, blockTables, invFreq,
      attnScaling, partialO, partialML, counters, numSeqs, numHeads, numKvHeads, tokensPerBlock, maxBlocksPerSeq, scale, window,
      splitSize, nullptr);
}
#endif
