// Decode attention for many sequences (issue 16 item 3): decode_attention.cu's fused step (RoPE of q and k,
// the KV-cache write of the step's token, split-K attention, the split merge in one launch) with tensor
// cores. One block per (token, kv head, group chunk of up to 16 query heads, split): the group's heads are
// the 16 rows of an mma.sync m16n8k16 tile (rows past the group are zero), so each K/V byte is read once per
// kv head. K and V tiles stream into shared memory with cp.async (two stages); each warp takes 16 keys of a
// tile with its own online softmax, and the warps merge at the end. Meant for decode steps of more than 8
// sequences, where decode_attention's scalar loops (one shared-memory load per FMA, 180 registers) made a
// 64-sequence step 0.66 ms of attention for ~0.1 ms of KV bytes.
//
// extern "C" __global__ void decode_attention_batch_bf16_hd{64|128}(the parameters of decode_attention_bf16_hd*)
//   grid (numKvHeads * ceil(G / 16), numTokens, numSplits)   block (DB_WARPS(HD) * 32): 128 (hd64), 64 (hd128)
//   Everything else as decode_attention (kernels/README.md): one token per sequence, its key written to the
//   cache bit-identical to rope_kv_write_bf16, splits of any splitSize >= 1, numSplits == 1 or a token whose
//   keys all fall in split 0 writes out directly; otherwise partialO f32 [numTokens, numHeads, numSplits, hd],
//   partialML f32 [.., numSplits, 2] and counters int [numTokens * gridDim.x] (zero before, left zero).
//   prefetch / prefetchBytes are accepted for the ABI and ignored.
//   Numerics: q rotated and rounded to bf16 as the unfused q buffer; q·k and p·v on tensor cores (bf16
//   inputs, fp32 accumulation), p rounded to bf16 for p·v (the softmax sum keeps fp32 p), so results differ
//   from decode_attention's fp32 scalar sums by bf16 rounding (not batch-invariant across the two kernels).
//   shared static 36 KB; no spills (nvcc 13, sm_90).
#include "common.cuh"
#include "mma_tile.cuh"

#define DB_ROWS 16  // query heads per block: one m16 tile
#define DB_WARPS(HD) ((HD) == 128 ? 2 : 4)

/**
 * One 16-key tile's online-softmax step of a lane's m16n8 score fragments sc[j][e] / sc[j][2 + e] (rows g / g + 8, key
 * k0 + j · 8 + 2 · c4 + e, k0 the tile's first key, c4 = lane & 3): keys at or past sHi masked to -inf, the rest scaled by
 * f; p = exp2(s - the new maxima), a0 / a1 = exp2(old - new maxima) (0 on the first tile, m = -inf) for the caller's p·v
 * and its output's rescale. Returns the running maxima (over the lane's quad) and sums, updated: (m0, m1, l0, l1). The
 * tile's first key must be valid (finite maxima). (The state passes by value: by reference, nvcc 13 orders the loop's
 * registers otherwise, and the kernels' code is not the same.)
 */
__device__ __forceinline__ float4 dbSoftmaxTile(float (&sc)[2][4], int k0, int c4, int sHi, float f, float m0, float m1, float l0,
    float l1, float (&p)[2][4], float& a0, float& a1) {
  float mx0 = -LLMRT_INF, mx1 = -LLMRT_INF;
#pragma unroll
  for (int j = 0; j < 2; j++)
#pragma unroll
    for (int e = 0; e < 2; e++) {
      const bool valid = k0 + j * 8 + 2 * c4 + e < sHi;
      sc[j][e] = valid ? sc[j][e] * f : -LLMRT_INF;
      sc[j][2 + e] = valid ? sc[j][2 + e] * f : -LLMRT_INF;
      mx0 = fmaxf(mx0, sc[j][e]);
      mx1 = fmaxf(mx1, sc[j][2 + e]);
    }
  mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 1));
  mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 2));
  mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 1));
  mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 2));
  const float n0 = fmaxf(m0, mx0), n1 = fmaxf(m1, mx1);
  a0 = exp2f(m0 - n0);
  a1 = exp2f(m1 - n1);
  float s0 = 0.f, s1 = 0.f;
#pragma unroll
  for (int j = 0; j < 2; j++)
#pragma unroll
    for (int e = 0; e < 2; e++) {
      p[j][e] = exp2f(sc[j][e] - n0);
      p[j][2 + e] = exp2f(sc[j][2 + e] - n1);
      s0 += p[j][e];
      s1 += p[j][2 + e];
    }
  return make_float4(n0, n1, l0 * a0 + s0, l1 * a1 + s1);
}

template <int HD>
__device__ __forceinline__ void decodeBatchImpl(const bf16_t* qkv, bf16_t* out, bf16_t* kv, const int* positions,
    const int* seqStarts, const int* blockTables, const double* invFreq, float attnScaling, float* partialO,
    float* partialML, int* counters, int numSeqs, int numHeads, int numKvHeads, int tokensPerBlock,
    int maxBlocksPerSeq, float scale, int window, int splitSize) {
  constexpr int NW = DB_WARPS(HD), NT = NW * 32, TK = NW * 16, CPR = HD / 8, HALF = HD / 2, KSTEPS = HD / 16, DT = HD / 8;
  // Two stages of [K tile, V tile], each [TK, HD] bf16; after the loop the per-warp results reuse them.
  __shared__ __align__(16) bf16_t kvs[2 * 2 * TK * HD];
  __shared__ __align__(16) bf16_t qsm[DB_ROWS * HD];
  __shared__ __align__(16) bf16_t kself[HD];
  __shared__ __align__(16) bf16_t vself[HD];
  __shared__ float cs[HALF], sn[HALF];
  __shared__ float mw[NW][DB_ROWS], lw[NW][DB_ROWS];
  __shared__ int amLast;
  static_assert(NW * DB_ROWS * HD * 4 <= 2 * 2 * TK * HD * 2, "merge buffer fits the stages");

  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g4 = lane >> 2, c4 = lane & 3;
  const int t = blockIdx.y, z = blockIdx.z, numSplits = gridDim.z;
  const int G = numHeads / numKvHeads;
  const int chunks = (G + DB_ROWS - 1) / DB_ROWS;
  const int kvh = blockIdx.x / chunks, chunk = blockIdx.x - kvh * chunks;
  const int h0 = kvh * G + chunk * DB_ROWS;
  const int Gb = min(DB_ROWS, G - chunk * DB_ROWS);
  const int s = seqOfToken(seqStarts, numSeqs, t);
  const int pos = positions[t];
  const int lo = window > 0 ? max(0, pos + 1 - window) : 0;
  const int sLo = lo + z * splitSize;
  const int sHi = min(pos + 1, sLo + splitSize);
  const bool own = sLo <= pos && pos < sHi;
  const int nz = min(numSplits, (pos + 1 - lo + splitSize - 1) / splitSize);
  const bool direct = nz == 1;
  const int rowWidth = numKvHeads * HD;
  const long long vStep = (long long)tokensPerBlock * rowWidth;  // V of a key sits this far past its K
  const int* table = blockTables + (long long)s * maxBlocksPerSeq;
  const bf16_t* row = qkv + (long long)t * (numHeads + 2 * numKvHeads) * HD;

  if (sLo < sHi) {
    // K/V rows of keys k0 .. k0 + TK into stage st; keys past the split read nothing (zeros). The step's own
    // key is never read from the cache: `self` copies it from kself / vself (ready only after the prologue).
    auto issue = [&](int k0, int st, bool self) {
      bf16_t* ks = kvs + st * 2 * TK * HD;
      bf16_t* vs = ks + TK * HD;
#pragma unroll
      for (int j = 0; j < TK * CPR / NT; j++) {
        const int i = tid + j * NT, r = i / CPR, c = i - r * CPR, key = k0 + r, o = swizzle16<HD>(r, c);
        if (key == pos) {
          if (self) {
            *reinterpret_cast<uint4*>(ks + o) = *reinterpret_cast<const uint4*>(kself + c * 8);
            *reinterpret_cast<uint4*>(vs + o) = *reinterpret_cast<const uint4*>(vself + c * 8);
          }
          continue;
        }
        const bool ok = key < sHi;
        const bf16_t* src = ok ? kv + kvCacheOffset(table, key, 0, tokensPerBlock, rowWidth) + kvh * HD + c * 8 : kv;
        cpAsync16(ks + o, src, ok ? 16 : 0);
        cpAsync16(vs + o, ok ? src + vStep : kv, ok ? 16 : 0);
      }
      cpAsyncCommit();
    };
    issue(sLo, 0, false);  // in flight while RoPE runs
    for (int i = tid; i < HALF; i += NT) {
      double sv, cv;
      sincos(invFreq[i] * (double)pos, &sv, &cv);
      cs[i] = (float)(cv * (double)attnScaling);
      sn[i] = (float)(sv * (double)attnScaling);
    }
    __syncthreads();
    // Rotated q rounded to bf16 (the unfused q buffer's bits); rows past Gb zero.
    for (int idx = tid; idx < DB_ROWS * HALF; idx += NT) {
      const int g = idx / HALF, i = idx - g * HALF;
      bf16_t qa = 0, qb = 0;
      if (g < Gb) {
        const float a = toF(row[(h0 + g) * HD + i]), b = toF(row[(h0 + g) * HD + HALF + i]);
        qa = fromF<bf16_t>(a * cs[i] - b * sn[i]);
        qb = fromF<bf16_t>(b * cs[i] + a * sn[i]);
      }
      qsm[swizzle16<HD>(g, i >> 3) + (i & 7)] = qa;
      qsm[swizzle16<HD>(g, (HALF + i) >> 3) + (i & 7)] = qb;
    }
    if (own) {  // the step's own key / value: rotate k, keep both in shared, and (chunk 0) write the cache
      const bf16_t* kr = row + (numHeads + kvh) * HD;
      const bf16_t* vr = row + (numHeads + numKvHeads + kvh) * HD;
      const long long kOff = kvCacheOffset(table, pos, 0, tokensPerBlock, rowWidth) + kvh * HD;
      for (int i = tid; i < HALF; i += NT) {
        const float a = toF(kr[i]), b = toF(kr[HALF + i]);
        const bf16_t ka = fromF<bf16_t>(a * cs[i] - b * sn[i]), kb = fromF<bf16_t>(b * cs[i] + a * sn[i]);
        kself[i] = ka;
        kself[HALF + i] = kb;
        if (chunk == 0) { kv[kOff + i] = ka; kv[kOff + HALF + i] = kb; }
      }
      for (int i = tid; i < HD; i += NT) {
        const bf16_t v = vr[i];
        vself[i] = v;
        if (chunk == 0) kv[kOff + vStep + i] = v;
      }
    }
    __syncthreads();
    if (own && pos < sLo + TK) {  // patch the own key into the first tile (skipped by its issue)
      const int r = pos - sLo;
      for (int c = tid; c < CPR; c += NT) {
        *reinterpret_cast<uint4*>(kvs + swizzle16<HD>(r, c)) = *reinterpret_cast<const uint4*>(kself + c * 8);
        *reinterpret_cast<uint4*>(kvs + TK * HD + swizzle16<HD>(r, c)) = *reinterpret_cast<const uint4*>(vself + c * 8);
      }
    }
    // q as the A operand (16 heads x HD), loaded once.
    u32 qa[KSTEPS][4];
    {
      const int mi = lane >> 3, r = (mi & 1) * 8 + (lane & 7);
#pragma unroll
      for (int kk = 0; kk < KSTEPS; kk++) ldsmX4<false>(qa[kk], qsm + swizzle16<HD>(r, 2 * kk + (mi >> 1)));
    }
    const float qscale = scale * LLMRT_LOG2E;
    float o[DT][4];
#pragma unroll
    for (int d = 0; d < DT; d++) o[d][0] = o[d][1] = o[d][2] = o[d][3] = 0.f;
    float m0 = -LLMRT_INF, m1 = -LLMRT_INF, l0 = 0.f, l1 = 0.f;  // rows g4 and g4 + 8 (l: this lane's columns)
    const int nTiles = (sHi - sLo + TK - 1) / TK;
    for (int it = 0; it < nTiles; it++) {
      const int st = it & 1;
      if (it + 1 < nTiles) {
        issue(sLo + (it + 1) * TK, st ^ 1, true);
        cpAsyncWait<1>();
      } else {
        cpAsyncWait<0>();
      }
      __syncthreads();
      const int kb = sLo + it * TK + warp * 16;  // this warp's first key
      if (kb < sHi) {
        const bf16_t* ks = kvs + st * 2 * TK * HD;
        const bf16_t* vs = ks + TK * HD;
        const int mi = lane >> 3;
        float sc[2][4] = {{0.f, 0.f, 0.f, 0.f}, {0.f, 0.f, 0.f, 0.f}};
        {
          const int r = warp * 16 + (mi >> 1) * 8 + (lane & 7);
#pragma unroll
          for (int kk = 0; kk < KSTEPS; kk++) {
            u32 b[4];
            ldsmX4<false>(b, ks + swizzle16<HD>(r, 2 * kk + (mi & 1)));
            mmaBf16(sc[0], qa[kk], b[0], b[1]);
            mmaBf16(sc[1], qa[kk], b[2], b[3]);
          }
        }
        float p[2][4], a0, a1;  // finite maxima: the warp's first key is valid
        const float4 ml = dbSoftmaxTile(sc, kb, c4, sHi, qscale, m0, m1, l0, l1, p, a0, a1);
        m0 = ml.x;
        m1 = ml.y;
        l0 = ml.z;
        l1 = ml.w;
        const u32 pa[4] = {packBf16(p[0][0], p[0][1]), packBf16(p[0][2], p[0][3]), packBf16(p[1][0], p[1][1]), packBf16(p[1][2], p[1][3])};
        const int r = warp * 16 + (mi & 1) * 8 + (lane & 7);
#pragma unroll
        for (int d = 0; d < DT; d += 2) {
          u32 b[4];
          ldsmX4<true>(b, vs + swizzle16<HD>(r, d + (mi >> 1)));
          o[d][0] *= a0;
          o[d][1] *= a0;
          o[d][2] *= a1;
          o[d][3] *= a1;
          o[d + 1][0] *= a0;
          o[d + 1][1] *= a0;
          o[d + 1][2] *= a1;
          o[d + 1][3] *= a1;
          mmaBf16(o[d], pa, b[0], b[1]);
          mmaBf16(o[d + 1], pa, b[2], b[3]);
        }
      }
      __syncthreads();  // the stage is refilled by the next iteration
    }
    // Merge the warps: per-warp (m, l, o) of rows < Gb into shared memory (the stages are free now).
    l0 += __shfl_xor_sync(0xffffffffu, l0, 1);
    l0 += __shfl_xor_sync(0xffffffffu, l0, 2);
    l1 += __shfl_xor_sync(0xffffffffu, l1, 1);
    l1 += __shfl_xor_sync(0xffffffffu, l1, 2);
    float* ow = reinterpret_cast<float*>(kvs) + warp * DB_ROWS * HD;
    if (c4 == 0) {
      mw[warp][g4] = m0;
      lw[warp][g4] = l0;
      mw[warp][g4 + 8] = m1;
      lw[warp][g4 + 8] = l1;
    }
#pragma unroll
    for (int d = 0; d < DT; d++) {
      if (g4 < Gb) { ow[g4 * HD + d * 8 + 2 * c4] = o[d][0]; ow[g4 * HD + d * 8 + 2 * c4 + 1] = o[d][1]; }
      if (g4 + 8 < Gb) { ow[(g4 + 8) * HD + d * 8 + 2 * c4] = o[d][2]; ow[(g4 + 8) * HD + d * 8 + 2 * c4 + 1] = o[d][3]; }
    }
    __syncthreads();
    const float* ow0 = reinterpret_cast<const float*>(kvs);
    for (int i = tid; i < Gb * HD; i += NT) {
      const int g = i / HD, d = i - g * HD;
      float M = -LLMRT_INF;
#pragma unroll
      for (int w = 0; w < NW; w++) M = fmaxf(M, mw[w][g]);
      float O = 0.f, L = 0.f;
#pragma unroll
      for (int w = 0; w < NW; w++) {
        const float wt = exp2f(mw[w][g] - M);  // a warp with no keys: m = -inf, weight 0
        O = fmaf(wt, ow0[(w * DB_ROWS + g) * HD + d], O);
        L = fmaf(wt, lw[w][g], L);
      }
      const long long th = (long long)t * numHeads + h0 + g;
      if (direct) out[th * HD + d] = fromF<bf16_t>(O / L);
      else partialO[(th * numSplits + z) * HD + d] = O;
      if (!direct && d == 0) {
        float* ml = partialML + (th * numSplits + z) * 2;
        ml[0] = M;
        ml[1] = L;
      }
    }
    if (direct) return;
  } else {  // empty split (a short sequence in a graph sized for long ones): l = 0, skipped by the merge
    if (direct) return;
    for (int g = tid; g < Gb; g += NT) {
      float* ml = partialML + (((long long)t * numHeads + h0 + g) * numSplits + z) * 2;
      ml[0] = -LLMRT_INF;
      ml[1] = 0.f;
    }
  }
  // Last block of this (token, kv group chunk) merges the splits.
  __threadfence();
  __syncthreads();
  int* ctr = counters + (long long)t * gridDim.x + blockIdx.x;
  if (tid == 0) amLast = atomicAdd(ctr, 1) == numSplits - 1;
  __syncthreads();
  if (!amLast) return;
  __threadfence();
  for (int i = tid; i < Gb * HD; i += NT) {
    const int g = i / HD, d = i - g * HD;
    const long long th = (long long)t * numHeads + h0 + g;
    const float* mlh = partialML + th * numSplits * 2;
    float M = -LLMRT_INF;
    for (int zz = 0; zz < nz; zz++) M = fmaxf(M, ldcgF32(mlh + zz * 2));
    float O = 0.f, L = 0.f;
    for (int zz = 0; zz < nz; zz++) {
      const float w = exp2f(ldcgF32(mlh + zz * 2) - M);
      O = fmaf(w, ldcgF32(partialO + (th * numSplits + zz) * HD + d), O);
      L = fmaf(w, ldcgF32(mlh + zz * 2 + 1), L);
    }
    out[th * HD + d] = fromF<bf16_t>(O / L);
  }
  if (tid == 0) *ctr = 0;
}

#define DECODE_BATCH(HD)                                                                                                  \
  extern "C" __global__ void __launch_bounds__(DB_WARPS(HD) * 32) decode_attention_batch_bf16_hd##HD(                   \
      const bf16_t* qkv, bf16_t* out, bf16_t* kvCache, const int* positions, const int* seqStarts,                        \
      const int* blockTables, const double* invFreq, float attnScaling, float* partialO, float* partialML, int* counters, \
      int numTokens, int numSeqs, int numHeads, int numKvHeads, int tokensPerBlock, int maxBlocksPerSeq, float scale,     \
      int window, int splitSize, const void* prefetch, long long prefetchBytes) {                                         \
    if ((int)blockIdx.y >= numTokens) return;                                                                             \
    decodeBatchImpl<HD>(qkv, out, kvCache, positions, seqStarts, blockTables, invFreq, attnScaling, partialO, partialML,  \
                        counters, numSeqs, numHeads, numKvHeads, tokensPerBlock, maxBlocksPerSeq, scale, window,          \
                        splitSize);                                                                                       \
  }
#if LLMRT_KERNEL(decode_attention_batch_bf16_hd64)
DECODE_BATCH(64)
#endif
#if LLMRT_KERNEL(decode_attention_batch_bf16_hd128)
DECODE_BATCH(128)
#endif

// ------------------------------------------------------------------------------------------------------------------
// Session 7 (issue 16 item 3): decode_attention_batch2 — the same step with per-warp K/V streams. Each warp owns
// every NW-th 16-key tile of the block's split and keeps ST tiles in flight in its own cp.async ring (no block-wide
// barrier in the key loop; a stage is refilled as soon as its tile is used); the first ST tiles are issued before
// RoPE, so the KV reads overlap the prologue. One block-table read per 16-key tile.
// The token's sequence is found with two loads when seqStarts[t] == t (decode steps) instead of a binary search.
// _fp8kv_: an e4m3 cache (kv_fp8.cuh: per-(layer, k | v, kv head) scales kvScales [2, numKvHeads]) streamed as bytes
// (half the bytes of bf16), each tile converted to f16 in shared memory (exact: e4m3 ⊂ f16) and multiplied on
// f16 tensor cores: q·k̂ with q = bf16(rotated q) · scale · log2e · kScale rounded to f16 (clamped to ±65504),
// p rounded to f16, o · vScale at the end. The step's own key / value are written as rope_kv_write_fp8kv_bf16
// writes them (encode(float / scale)) and read back as those bytes.
//
// extern "C" __global__ void decode_attention_batch2_bf16_hd{64|128}(decode_attention_batch_bf16_hd*'s parameters)
// extern "C" __global__ void decode_attention_batch2_fp8kv_bf16_hd{64|128}(the same with const u8* kvCache, then
//     const float* kvScales)
//   grid as decode_attention_batch; block DB2_NW*32 threads (below; attention_choice.ts batchAttentionThreads).
// ------------------------------------------------------------------------------------------------------------------
#include "kv_fp8.cuh"

#ifndef DB2_NW64
#define DB2_NW64 4
#endif
#ifndef DB2_ST64
#define DB2_ST64 2
#endif
#ifndef DB2_NW128
#define DB2_NW128 2
#endif
#ifndef DB2_ST128
#define DB2_ST128 2
#endif
#ifndef DB2_FNW64
#define DB2_FNW64 4
#endif
#ifndef DB2_FST64
#define DB2_FST64 2
#endif
#ifndef DB2_FNW128
#define DB2_FNW128 2
#endif
#ifndef DB2_FST128
#define DB2_FST128 2
#endif
#ifndef DB2_MINB64
#define DB2_MINB64 5  // __launch_bounds__ min blocks per SM: registers for 5 blocks of 4 warps (smem allows 6)
#endif
#ifndef DB2_MINB128
#define DB2_MINB128 1
#endif
#define DB2_MINB(HD) ((HD) == 128 ? DB2_MINB128 : DB2_MINB64)
#define DB2_NW(HD, Q8) ((Q8) ? ((HD) == 128 ? DB2_FNW128 : DB2_FNW64) : ((HD) == 128 ? DB2_NW128 : DB2_NW64))
#define DB2_ST(HD, Q8) ((Q8) ? ((HD) == 128 ? DB2_FST128 : DB2_FST64) : ((HD) == 128 ? DB2_ST128 : DB2_ST64))

/** The token's sequence: t itself when seqStarts says so (decode steps: two loads), else the binary search. */
__device__ __forceinline__ int db2SeqOf(const int* seqStarts, int numSeqs, int t) {
  if (t < numSeqs && seqStarts[t] == t && seqStarts[t + 1] == t + 1) return t;
  return seqOfToken(seqStarts, numSeqs, t);
}

template <int HD, int NW, int ST, bool Q8>
__device__ __forceinline__ void decodeBatch2Impl(const bf16_t* qkv, bf16_t* out, void* kvv, const int* positions,
    const int* seqStarts, const int* blockTables, const double* invFreq, float attnScaling, float* partialO,
    float* partialML, int* counters, int numSeqs, int numHeads, int numKvHeads, int tokensPerBlock,
    int maxBlocksPerSeq, float scale, int window, int splitSize, const float* kvScales) {
  constexpr int EB = Q8 ? 1 : 2;          // cache bytes per element
  constexpr int ROWB = HD * EB;           // one key's row (one kv head) in bytes
  constexpr int CPR = ROWB / 16;          // 16-byte chunks per row
  constexpr int TILEB = 16 * ROWB;        // 16 keys of K (or V)
  constexpr int STAGEB = 2 * TILEB;       // K tile, then V tile
  constexpr int RINGB = NW * ST * STAGEB;  // every warp's ring
  constexpr int CONVB = Q8 ? NW * 2 * 16 * HD * 2 : 16;  // fp8: each warp's f16 K and V tile
  constexpr int HALF = HD / 2, KSTEPS = HD / 16, DT = HD / 8, NT = NW * 32;
  static_assert(NW * DB_ROWS * HD * 4 <= RINGB, "merge buffer fits the rings");
  static_assert((16 * CPR) % 32 == 0, "whole chunks per lane");
  __shared__ __align__(16) unsigned char ring[RINGB];
  __shared__ __align__(16) unsigned char conv[CONVB];
  __shared__ __align__(16) bf16_t qsm[DB_ROWS * HD];  // bf16 (Q8: f16) q rows, swizzled
  __shared__ __align__(16) unsigned char kself[ROWB];
  __shared__ __align__(16) unsigned char vself[ROWB];
  __shared__ float cs[HALF], sn[HALF];
  __shared__ float mw[NW][DB_ROWS], lw[NW][DB_ROWS];
  __shared__ int amLast;

  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g4 = lane >> 2, c4 = lane & 3;
  const int t = blockIdx.y, z = blockIdx.z, numSplits = gridDim.z;
  const int G = numHeads / numKvHeads;
  const int chunks = (G + DB_ROWS - 1) / DB_ROWS;
  const int kvh = blockIdx.x / chunks, chunk = blockIdx.x - kvh * chunks;
  const int h0 = kvh * G + chunk * DB_ROWS;
  const int Gb = min(DB_ROWS, G - chunk * DB_ROWS);
  // Last block of this (token, kv group chunk) merges the splits (nzT: the token's non-empty splits).
  auto splitMerge = [&](int nzT) {
    __threadfence();
    __syncthreads();
    int* ctr = counters + (long long)t * gridDim.x + blockIdx.x;
    if (tid == 0) amLast = atomicAdd(ctr, 1) == numSplits - 1;
    __syncthreads();
    if (!amLast) return;
    __threadfence();
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
      out[th * HD + d] = fromF<bf16_t>(O / L);
    }
    if (tid == 0) *ctr = 0;
  };
  // An empty split (a short sequence in a graph sized for long ones: split z > 0 starts past the token) needs only its
  // position: l = 0 for the merge, which skips it; its blocks read nothing else. Split 0 never is.
  if (z > 0) {
    const int p0 = positions[t];
    const int lo0 = window > 0 ? max(0, p0 + 1 - window) : 0;
    if (lo0 + z * splitSize > p0) {
      const int nz0 = min(numSplits, (p0 + 1 - lo0 + splitSize - 1) / splitSize);
      if (nz0 == 1) return;
      for (int g = tid; g < Gb; g += NT) {
        float* ml = partialML + (((long long)t * numHeads + h0 + g) * numSplits + z) * 2;
        ml[0] = -LLMRT_INF;
        ml[1] = 0.f;
      }
      splitMerge(nz0);
      return;
    }
  }
  // Every load that depends on the block's token alone is issued first, together: its position and sequence, the
  // inverse frequencies, the q rows of its heads and its k / v (16-byte chunks into registers; RoPE needs pos).
  constexpr int HC = HALF / 8;                    // 16-byte chunks of half a head
  constexpr int QP = DB_ROWS * HC;                // (q row, chunk) pairs: chunk c of the first half and of the second
  constexpr int QPT = (QP + NT - 1) / NT, FPT = (HALF + NT - 1) / NT;
  const bf16_t* row = qkv + (long long)t * (numHeads + 2 * numKvHeads) * HD;
  const int pos = positions[t];
  const int st0 = t < numSeqs ? seqStarts[t] : -1, st1 = t < numSeqs ? seqStarts[t + 1] : -1;
  double ifq[FPT];
#pragma unroll
  for (int j = 0; j < FPT; j++) ifq[j] = tid + j * NT < HALF ? invFreq[tid + j * NT] : 0.0;
  uint4 qA[QPT], qB[QPT], kA = {0u, 0u, 0u, 0u}, kB = {0u, 0u, 0u, 0u}, vC = {0u, 0u, 0u, 0u}, vD = {0u, 0u, 0u, 0u};
#pragma unroll
  for (int j = 0; j < QPT; j++) {
    const int pq = tid + j * NT, g = pq / HC, c = pq - g * HC;
    qA[j] = qB[j] = kA;
    if (pq < QP && g < Gb) {
      const bf16_t* src = row + (h0 + g) * HD + c * 8;
      qA[j] = *reinterpret_cast<const uint4*>(src);
      qB[j] = *reinterpret_cast<const uint4*>(src + HALF);
    }
  }
  if (tid < HC) {  // thread c: chunk c of both halves of k, chunks c and HC + c of v
    const bf16_t* kr = row + (numHeads + kvh) * HD + tid * 8;
    const bf16_t* vr = row + (numHeads + numKvHeads + kvh) * HD + tid * 8;
    kA = *reinterpret_cast<const uint4*>(kr);
    kB = *reinterpret_cast<const uint4*>(kr + HALF);
    vC = *reinterpret_cast<const uint4*>(vr);
    vD = *reinterpret_cast<const uint4*>(vr + HALF);
  }
  const float kS = Q8 ? kvScales[kvh] : 1.f, vS = Q8 ? kvScales[numKvHeads + kvh] : 1.f;
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

  if (sLo < sHi) {
    const int nT = (sHi - sLo + 15) >> 4;              // 16-key tiles of the split
    const int nW = (nT - warp + NW - 1) / NW;          // this warp's: tiles warp, warp + NW, ...
    unsigned char* myRing = ring + warp * ST * STAGEB;
    // Tile i of this warp (keys k0 .. k0 + 15) into its ring stage i % ST; keys past the split read nothing
    // (zeros); the step's own key is skipped (patched from kself / vself before use). Always commits a group.
    // The tile's first key's cache block serves every key of the tile in the same block (all of them when
    // tokensPerBlock is a multiple of 16 and the split starts on a multiple of 16: no window).
    auto issue = [&](int i) {
      if (i < nW) {
        const int k0 = sLo + (warp + i * NW) * 16;
        const int slot0 = k0 % tokensPerBlock;
        const unsigned char* base0 = kv + ((long long)table[k0 / tokensPerBlock] * 2 * tokensPerBlock * rowWidth + kvh * HD) * EB;
        unsigned char* ks = myRing + (i % ST) * STAGEB;
#pragma unroll
        for (int j = 0; j < 16 * CPR / 32; j++) {
          const int idx = lane + j * 32, r = idx / CPR, c = idx - r * CPR, key = k0 + r;
          if (key == pos && key < sHi) continue;
          const bool ok = key < sHi;
          const unsigned char* src = !ok ? kv
              : slot0 + r < tokensPerBlock ? base0 + (long long)(slot0 + r) * rowWidth * EB + c * 16
              : kv + (kvCacheOffset(table, key, 0, tokensPerBlock, rowWidth) + kvh * HD) * EB + c * 16;
          const int o = Q8 ? r * ROWB + c * 16 : swizzle16<HD>(r, c) * 2;
          asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smemAddr(ks + o)), "l"(src), "r"(ok ? 16 : 0) : "memory");
          asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smemAddr(ks + TILEB + o)), "l"(ok ? src + vStepB : src), "r"(ok ? 16 : 0) : "memory");
        }
      }
      cpAsyncCommit();
    };
#pragma unroll
    for (int i = 0; i < ST; i++) issue(i);  // in flight while RoPE runs
    const long long kOff = own ? (kvCacheOffset(table, pos, 0, tokensPerBlock, rowWidth) + kvh * HD) * EB : 0;
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
    __syncthreads();
    // Rotated q rounded to bf16 (the unfused q buffer's bits); Q8: times qscale · kScale, as f16. Rows past Gb zero.
#pragma unroll
    for (int j = 0; j < QPT; j++) {
      const int pq = tid + j * NT, g = pq / HC, c = pq - g * HC;
      if (pq < QP) {
        const u32 wa[4] = {qA[j].x, qA[j].y, qA[j].z, qA[j].w}, wb[4] = {qB[j].x, qB[j].y, qB[j].z, qB[j].w};
        u32 ra[4], rb[4];
#pragma unroll
        for (int e = 0; e < 8; e++) {
          const int i = c * 8 + e;
          const float a = toF((bf16_t)(wa[e >> 1] >> (16 * (e & 1)))), b = toF((bf16_t)(wb[e >> 1] >> (16 * (e & 1))));
          bf16_t x0 = fromF<bf16_t>(a * cs[i] - b * sn[i]), x1 = fromF<bf16_t>(b * cs[i] + a * sn[i]);
          if (g >= Gb) x0 = x1 = 0;
          if (Q8) {
            const float f = qscale * kS;
            x0 = f16Bits(fminf(fmaxf(toF(x0) * f, -65504.f), 65504.f));
            x1 = f16Bits(fminf(fmaxf(toF(x1) * f, -65504.f), 65504.f));
          }
          if (e & 1) { ra[e >> 1] |= (u32)x0 << 16; rb[e >> 1] |= (u32)x1 << 16; }
          else { ra[e >> 1] = x0; rb[e >> 1] = x1; }
        }
        *reinterpret_cast<uint4*>(qsm + swizzle16<HD>(g, c)) = uint4{ra[0], ra[1], ra[2], ra[3]};
        *reinterpret_cast<uint4*>(qsm + swizzle16<HD>(g, HC + c)) = uint4{rb[0], rb[1], rb[2], rb[3]};
      }
    }
    if (own && tid < HC) {  // the step's own key / value: rotate k, keep both in shared, and (chunk 0) write the cache
      const u32 wa[4] = {kA.x, kA.y, kA.z, kA.w}, wb[4] = {kB.x, kB.y, kB.z, kB.w};
      const u32 wc[4] = {vC.x, vC.y, vC.z, vC.w}, wd[4] = {vD.x, vD.y, vD.z, vD.w};
      if (Q8) {
        u32 ka[2] = {0u, 0u}, kb[2] = {0u, 0u}, va[2] = {0u, 0u}, vb[2] = {0u, 0u};
#pragma unroll
        for (int e = 0; e < 8; e++) {
          const int i = tid * 8 + e, sh = 8 * (e & 3);
          const float a = toF((bf16_t)(wa[e >> 1] >> (16 * (e & 1)))), b = toF((bf16_t)(wb[e >> 1] >> (16 * (e & 1))));
          ka[e >> 2] |= (u32)kvEncodeE4m3(a * cs[i] - b * sn[i], kS) << sh;
          kb[e >> 2] |= (u32)kvEncodeE4m3(b * cs[i] + a * sn[i], kS) << sh;
          va[e >> 2] |= (u32)kvEncodeE4m3(toF((bf16_t)(wc[e >> 1] >> (16 * (e & 1)))), vS) << sh;
          vb[e >> 2] |= (u32)kvEncodeE4m3(toF((bf16_t)(wd[e >> 1] >> (16 * (e & 1)))), vS) << sh;
        }
        *reinterpret_cast<uint2*>(kself + tid * 8) = uint2{ka[0], ka[1]};
        *reinterpret_cast<uint2*>(kself + HALF + tid * 8) = uint2{kb[0], kb[1]};
        *reinterpret_cast<uint2*>(vself + tid * 8) = uint2{va[0], va[1]};
        *reinterpret_cast<uint2*>(vself + HALF + tid * 8) = uint2{vb[0], vb[1]};
        if (chunk == 0) {
          *reinterpret_cast<uint2*>(kv + kOff + tid * 8) = uint2{ka[0], ka[1]};
          *reinterpret_cast<uint2*>(kv + kOff + HALF + tid * 8) = uint2{kb[0], kb[1]};
          *reinterpret_cast<uint2*>(kv + kOff + vStepB + tid * 8) = uint2{va[0], va[1]};
          *reinterpret_cast<uint2*>(kv + kOff + vStepB + HALF + tid * 8) = uint2{vb[0], vb[1]};
        }
      } else {
        u32 ra[4], rb[4];
#pragma unroll
        for (int e = 0; e < 8; e++) {
          const int i = tid * 8 + e;
          const float a = toF((bf16_t)(wa[e >> 1] >> (16 * (e & 1)))), b = toF((bf16_t)(wb[e >> 1] >> (16 * (e & 1))));
          const u32 x0 = fromF<bf16_t>(a * cs[i] - b * sn[i]), x1 = fromF<bf16_t>(b * cs[i] + a * sn[i]);
          if (e & 1) { ra[e >> 1] |= x0 << 16; rb[e >> 1] |= x1 << 16; }
          else { ra[e >> 1] = x0; rb[e >> 1] = x1; }
        }
        const uint4 k0v = uint4{ra[0], ra[1], ra[2], ra[3]}, k1v = uint4{rb[0], rb[1], rb[2], rb[3]};
        *reinterpret_cast<uint4*>(kself + tid * 16) = k0v;
        *reinterpret_cast<uint4*>(kself + HALF * 2 + tid * 16) = k1v;
        *reinterpret_cast<uint4*>(vself + tid * 16) = vC;
        *reinterpret_cast<uint4*>(vself + HALF * 2 + tid * 16) = vD;
        if (chunk == 0) {
          *reinterpret_cast<uint4*>(kv + kOff + tid * 16) = k0v;
          *reinterpret_cast<uint4*>(kv + kOff + HALF * 2 + tid * 16) = k1v;
          *reinterpret_cast<uint4*>(kv + kOff + vStepB + tid * 16) = vC;
          *reinterpret_cast<uint4*>(kv + kOff + vStepB + HALF * 2 + tid * 16) = vD;
        }
      }
    }
    __syncthreads();
    u32 qa[KSTEPS][4];
    {
      const int mi = lane >> 3, r = (mi & 1) * 8 + (lane & 7);
#pragma unroll
      for (int kk = 0; kk < KSTEPS; kk++) ldsmX4<false>(qa[kk], qsm + swizzle16<HD>(r, 2 * kk + (mi >> 1)));
    }
    float o[DT][4];
#pragma unroll
    for (int d = 0; d < DT; d++) o[d][0] = o[d][1] = o[d][2] = o[d][3] = 0.f;
    float m0 = -LLMRT_INF, m1 = -LLMRT_INF, l0 = 0.f, l1 = 0.f;  // rows g4 and g4 + 8 (l: this lane's columns)
    bf16_t* cvk = reinterpret_cast<bf16_t*>(conv) + (Q8 ? warp * 2 * 16 * HD : 0);
    const int mi = lane >> 3;
    for (int i = 0; i < nW; i++) {
      cpAsyncWait<ST - 1>();  // tile i landed (ST + i groups committed)
      __syncwarp();
      const int k0 = sLo + (warp + i * NW) * 16;
      unsigned char* st = myRing + (i % ST) * STAGEB;
      if (own && pos >= k0 && pos < k0 + 16) {  // patch the own key / value in
        const int r = pos - k0;
        for (int c = lane; c < CPR; c += 32) {
          const int o2 = Q8 ? r * ROWB + c * 16 : swizzle16<HD>(r, c) * 2;
          *reinterpret_cast<uint4*>(st + o2) = *reinterpret_cast<const uint4*>(kself + c * 16);
          *reinterpret_cast<uint4*>(st + TILEB + o2) = *reinterpret_cast<const uint4*>(vself + c * 16);
        }
        __syncwarp();
      }
      const bf16_t* ks;
      if (Q8) {  // e4m3 K / V tiles → f16 (swizzled as the bf16 tiles)
#pragma unroll
        for (int j = 0; j < 2 * 16 * CPR / 32; j++) {
          const int idx = lane + j * 32, w = idx / (16 * CPR), rem = idx - w * 16 * CPR, r = rem / CPR, c = rem - r * CPR;
          const uint4 b = *reinterpret_cast<const uint4*>(st + w * TILEB + r * ROWB + c * 16);
          uint4 h0v, h1v;
          h0v.x = e4m3x2ToF16x2(b.x & 0xffffu); h0v.y = e4m3x2ToF16x2(b.x >> 16);
          h0v.z = e4m3x2ToF16x2(b.y & 0xffffu); h0v.w = e4m3x2ToF16x2(b.y >> 16);
          h1v.x = e4m3x2ToF16x2(b.z & 0xffffu); h1v.y = e4m3x2ToF16x2(b.z >> 16);
          h1v.z = e4m3x2ToF16x2(b.w & 0xffffu); h1v.w = e4m3x2ToF16x2(b.w >> 16);
          bf16_t* dst = cvk + w * 16 * HD;
          *reinterpret_cast<uint4*>(dst + swizzle16<HD>(r, 2 * c)) = h0v;
          *reinterpret_cast<uint4*>(dst + swizzle16<HD>(r, 2 * c + 1)) = h1v;
        }
        __syncwarp();
        ks = cvk;
      } else {
        ks = reinterpret_cast<const bf16_t*>(st);
      }
      const bf16_t* vs = ks + 16 * HD;
      float sc[2][4] = {{0.f, 0.f, 0.f, 0.f}, {0.f, 0.f, 0.f, 0.f}};
      {
        const int r = (mi >> 1) * 8 + (lane & 7);
#pragma unroll
        for (int kk = 0; kk < KSTEPS; kk++) {
          u32 b[4];
          ldsmX4<false>(b, ks + swizzle16<HD>(r, 2 * kk + (mi & 1)));
          if (Q8) {
            mmaF16(sc[0], qa[kk], b[0], b[1]);
            mmaF16(sc[1], qa[kk], b[2], b[3]);
          } else {
            mmaBf16(sc[0], qa[kk], b[0], b[1]);
            mmaBf16(sc[1], qa[kk], b[2], b[3]);
          }
        }
      }
      float p[2][4], a0, a1;  // finite maxima: a tile's first key is valid
      const float4 ml = dbSoftmaxTile(sc, k0, c4, sHi, Q8 ? 1.f : qscale, m0, m1, l0, l1, p, a0, a1);
      m0 = ml.x;
      m1 = ml.y;
      l0 = ml.z;
      l1 = ml.w;
      u32 pa[4];
      if (Q8) {
        pa[0] = packF16(p[0][0], p[0][1]); pa[1] = packF16(p[0][2], p[0][3]);
        pa[2] = packF16(p[1][0], p[1][1]); pa[3] = packF16(p[1][2], p[1][3]);
      } else {
        pa[0] = packBf16(p[0][0], p[0][1]); pa[1] = packBf16(p[0][2], p[0][3]);
        pa[2] = packBf16(p[1][0], p[1][1]); pa[3] = packBf16(p[1][2], p[1][3]);
      }
      const int r = (mi & 1) * 8 + (lane & 7);
#pragma unroll
      for (int d = 0; d < DT; d += 2) {
        u32 b[4];
        ldsmX4<true>(b, vs + swizzle16<HD>(r, d + (mi >> 1)));
        o[d][0] *= a0;
        o[d][1] *= a0;
        o[d][2] *= a1;
        o[d][3] *= a1;
        o[d + 1][0] *= a0;
        o[d + 1][1] *= a0;
        o[d + 1][2] *= a1;
        o[d + 1][3] *= a1;
        if (Q8) {
          mmaF16(o[d], pa, b[0], b[1]);
          mmaF16(o[d + 1], pa, b[2], b[3]);
        } else {
          mmaBf16(o[d], pa, b[0], b[1]);
          mmaBf16(o[d + 1], pa, b[2], b[3]);
        }
      }
      __syncwarp();  // the stage (and the f16 tile) are refilled next
      issue(i + ST);
    }
    cpAsyncWait<0>();  // empty trailing groups
    // Merge the warps: per-warp (m, l, o) of rows < Gb into shared memory (the rings are free once all warps are here).
    l0 += __shfl_xor_sync(0xffffffffu, l0, 1);
    l0 += __shfl_xor_sync(0xffffffffu, l0, 2);
    l1 += __shfl_xor_sync(0xffffffffu, l1, 1);
    l1 += __shfl_xor_sync(0xffffffffu, l1, 2);
    __syncthreads();
    float* ow = reinterpret_cast<float*>(ring) + warp * DB_ROWS * HD;
    if (c4 == 0) {
      mw[warp][g4] = m0;
      lw[warp][g4] = l0;
      mw[warp][g4 + 8] = m1;
      lw[warp][g4 + 8] = l1;
    }
#pragma unroll
    for (int d = 0; d < DT; d++) {
      if (g4 < Gb) { ow[g4 * HD + d * 8 + 2 * c4] = o[d][0]; ow[g4 * HD + d * 8 + 2 * c4 + 1] = o[d][1]; }
      if (g4 + 8 < Gb) { ow[(g4 + 8) * HD + d * 8 + 2 * c4] = o[d][2]; ow[(g4 + 8) * HD + d * 8 + 2 * c4 + 1] = o[d][3]; }
    }
    __syncthreads();
    const float* ow0 = reinterpret_cast<const float*>(ring);
    for (int i = tid; i < Gb * HD; i += NT) {
      const int g = i / HD, d = i - g * HD;
      float M = -LLMRT_INF;
#pragma unroll
      for (int w = 0; w < NW; w++) M = fmaxf(M, mw[w][g]);
      float O = 0.f, L = 0.f;
#pragma unroll
      for (int w = 0; w < NW; w++) {
        const float wt = exp2f(mw[w][g] - M);  // a warp with no keys: m = -inf, weight 0
        O = fmaf(wt, ow0[(w * DB_ROWS + g) * HD + d], O);
        L = fmaf(wt, lw[w][g], L);
      }
      O *= vS;
      const long long th = (long long)t * numHeads + h0 + g;
      if (direct) out[th * HD + d] = fromF<bf16_t>(O / L);
      else partialO[(th * numSplits + z) * HD + d] = O;
      if (!direct && d == 0) {
        float* ml = partialML + (th * numSplits + z) * 2;
        ml[0] = M;
        ml[1] = L;
      }
    }
    if (direct) return;
  }
  splitMerge(nz);
}

#define DECODE_BATCH2(HD)                                                                                                  \
  extern "C" __global__ void __launch_bounds__(DB2_NW(HD, false) * 32, DB2_MINB(HD)) decode_attention_batch2_bf16_hd##HD(              \
      const bf16_t* qkv, bf16_t* out, bf16_t* kvCache, const int* positions, const int* seqStarts,                        \
      const int* blockTables, const double* invFreq, float attnScaling, float* partialO, float* partialML, int* counters, \
      int numTokens, int numSeqs, int numHeads, int numKvHeads, int tokensPerBlock, int maxBlocksPerSeq, float scale,     \
      int window, int splitSize, const void* prefetch, long long prefetchBytes) {                                         \
    if ((int)blockIdx.y >= numTokens) return;                                                                             \
    decodeBatch2Impl<HD, DB2_NW(HD, false), DB2_ST(HD, false), false>(qkv, out, kvCache, positions, seqStarts,           \
        blockTables, invFreq, attnScaling, partialO, partialML, counters, numSeqs, numHeads, numKvHeads, tokensPerBlock,   \
        maxBlocksPerSeq, scale, window, splitSize, nullptr);                                                              \
  }
#define DECODE_BATCH2_FP8(HD)                                                                                              \
  extern "C" __global__ void __launch_bounds__(DB2_NW(HD, true) * 32, DB2_MINB(HD)) decode_attention_batch2_fp8kv_bf16_hd##HD(         \
      const bf16_t* qkv, bf16_t* out, u8* kvCache, const int* positions, const int* seqStarts,                            \
      const int* blockTables, const double* invFreq, float attnScaling, float* partialO, float* partialML, int* counters, \
      int numTokens, int numSeqs, int numHeads, int numKvHeads, int tokensPerBlock, int maxBlocksPerSeq, float scale,     \
      int window, int splitSize, const void* prefetch, long long prefetchBytes, const float* kvScales) {                  \
    if ((int)blockIdx.y >= numTokens) return;                                                                             \
    decodeBatch2Impl<HD, DB2_NW(HD, true), DB2_ST(HD, true), true>(qkv, out, kvCache, positions, seqStarts,              \
        blockTables, invFreq, attnScaling, partialO, partialML, counters, numSeqs, numHeads, numKvHeads, tokensPerBlock,   \
        maxBlocksPerSeq, scale, window, splitSize, kvScales);                                                             \
  }
#if LLMRT_KERNEL(decode_attention_batch2_bf16_hd64)
DECODE_BATCH2(64)
#endif
#if LLMRT_KERNEL(decode_attention_batch2_bf16_hd128)
DECODE_BATCH2(128)
#endif
#if LLMRT_KERNEL(decode_attention_batch2_fp8kv_bf16_hd64)
DECODE_BATCH2_FP8(64)
#endif
#if LLMRT_KERNEL(decode_attention_batch2_fp8kv_bf16_hd128)
DECODE_BATCH2_FP8(128)
#endif

// ------------------------------------------------------------------------------------------------------------------
// Session 10: decode_attention_batch2w_bf16_hd128 — decode_attention_batch2_bf16_hd128 for steps of hundreds of
// sequences: the same 2 warps (so the same keys per warp, sums and merge: the same bits), 1 cp.async stage each and
// registers capped for 8 blocks per SM (16 KB of ring a block), so twice the blocks hide each other's prologues.
// H200, 8B layer at 128..256 keys: 136.8 vs 159.3 us (512 seqs), 74.2 vs 83.6 (256), 40.3 vs 44.1 (128), but 29.3 vs
// 25.0 at 64; attention_choice.ts BATCH2_WIDE_MIN_ROWS (128) picks it by the step's size.
// ------------------------------------------------------------------------------------------------------------------
#if LLMRT_KERNEL(decode_attention_batch2w_bf16_hd128)
extern "C" __global__ void __launch_bounds__(64, 8) decode_attention_batch2w_bf16_hd128(const bf16_t* qkv, bf16_t* out,
    bf16_t* kvCache, const int* positions, const int* seqStarts, const int* blockTables, const double* invFreq,
    float attnScaling, float* partialO, float* partialML, int* counters, int numTokens, int numSeqs, int numHeads,
    int numKvHeads, int tokensPerBlock, int maxBlocksPerSeq, float scale, int window, int splitSize, const void* prefetch,
    long long prefetchBytes) {
  if ((int)blockIdx.y >= numTokens) return;
  decodeBatch2Impl<128, 2, 1, false>(qkv, out, kvCache, positions, seqStarts, blockTables, invFreq, attnScaling, partialO,
      partialML, counters, numSeqs, numHeads, numKvHeads, tokensPerBlock, maxBlocksPerSeq, scale, window, splitSize, nullptr);
}
#endif
