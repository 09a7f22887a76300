// Fused decode attention (issue 16): RoPE of q and k, the KV-cache write of the step's token, split-K
// flash decoding and the split reduce in ONE launch (the last block of each (token, kv group) to
// finish merges the splits, found with a counter), replacing rope_kv_write + paged_attention_decode +
// paged_attention_decode_reduce. bf16 only; for decode steps: each sequence brings exactly ONE token
// (a sequence's earlier keys must already be in the cache; its own key is taken from qkv directly).
//
// extern "C" __global__ void decode_attention_bf16_hd{64|128}(const bf16_t* qkv, bf16_t* out, bf16_t* kvCache, const int* positions, const int* seqStarts,
//     const int* blockTables, const double* invFreq, float attnScaling, float* partialO, float* partialML,
//     int* counters, int numTokens, int numSeqs, int numHeads, int numKvHeads, int tokensPerBlock,
//     int maxBlocksPerSeq, float scale, int window, int splitSize, const void* prefetch, long long prefetchBytes)
//   qkv [numTokens, (numHeads + 2 numKvHeads) * hd] (the QKV linear's output, before RoPE); out
//   [numTokens, numHeads * hd]; kvCache one layer [numBlocks, 2, tokensPerBlock, numKvHeads, hd]: the
//   rotated k and raw v of token t are written at positions[t] (bit-identical to rope_kv_write_bf16);
//   invFreq [hd / 2] f64 and attnScaling as rope_kv_write. scale / window as paged_attention_decode.
//   grid (numKvHeads * ceil(G / 8), numTokens, numSplits), G = numHeads / numKvHeads   block (128, 1, 1)
//   Split z of a token attending span keys covers keys [lo + z * sz, lo + (z + 1) * sz) with
//   sz = max(splitSize, roundUp64(ceil(span / numSplits))) (daSplitKeys: splitSize is the least keys per
//   split, any >= 1; splits past a token's last key are empty and exit before pdlWait).
//   numSplits == 1, or a token whose keys all fall in split 0: out written directly by that split's block
//   (partials and counters untouched; with numSplits == 1 they may be 0).
//   Otherwise: partialO f32 [numTokens, numHeads, numSplits, hd], partialML f32 [.., numSplits, 2],
//     counters int [numTokens * gridDim.x] ZERO before the first launch (each launch leaves them zero).
//   prefetch: as gemv_fused (0 = none; pulling o_proj's weight into L2 here measured slower).
//   shared static 39.5 KB (hd64) / 42 KB (hd128); 192 / 254 registers (nvcc 13, sm_90)
// extern "C" __global__ void decode_attention_g4_bf16_hd{64|128}(...the same parameters...)
//   The same kernel for G <= 4 (4 q heads per block instead of 8): the same bits, 20 / 21.5 KB shared,
//   128 registers at hd 64 (4 blocks per SM; 192 before) / 221 at hd 128.
// PDL: the first K/V tile, the RoPE tables and the empty splits' exit come before pdlWait (qkv is the
// previous kernel's output).
// The numSplits of a launch are at most 64 (MAX_DECODE_SPLITS; the merge stages (m, l) in shared memory).
#include "kv_fp8.cuh"

#define DA_MAXG 8
#define DA_NT 128
#define DA_TILE 128  // keys per tile: one key per thread in the score phase
#define DA_MB 8      // loads in flight per thread in the split merge

__device__ __forceinline__ void unpack8(const uint4& v, float (&f)[8]) {
  const u32 w[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
  for (int i = 0; i < 4; i++) {
    f[2 * i] = __uint_as_float(w[i] << 16);
    f[2 * i + 1] = __uint_as_float(w[i] & 0xffff0000u);
  }
}

__device__ __forceinline__ float ldcgF(const float* p) {
  float v;
  asm volatile("ld.global.cg.f32 %0, [%1];" : "=f"(v) : "l"(p));
  return v;
}

__device__ __forceinline__ void daPrefetchL2(const void* base, long long bytes) {
  if (base == nullptr || bytes <= 0) return;
  constexpr long long SLICE = 16384;
  const long long nSlices = (bytes + SLICE - 1) / SLICE;
  const long long nThreads = (long long)gridDim.x * gridDim.y * gridDim.z * blockDim.x;
  const long long gtid = ((long long)(blockIdx.z * gridDim.y + blockIdx.y) * gridDim.x + blockIdx.x) * blockDim.x + threadIdx.x;
  for (long long s = gtid; s < nSlices; s += nThreads) {
    const long long off = s * SLICE;
    long long sz = bytes - off < SLICE ? bytes - off : SLICE;
    sz &= ~15ll;
    if (sz > 0) asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;" ::"l"((const char*)base + off), "r"((u32)sz) : "memory");
  }
}

/**
 * Keys per split of a token attending `span` keys: at least `minKeys`, and enough that `numSplits`
 * splits cover the span (a multiple of 64). A short context takes one split (one block per kv group,
 * no merge), a long one spreads over every split; it depends on the token's own span only, so a
 * sequence's splits are the same whatever else the step holds (batch invariance).
 * attention_choice.ts decodeSplitKeys is the same rule.
 */
__device__ __forceinline__ int daSplitKeys(int span, int minKeys, int numSplits) {
  const int even = ((span + numSplits - 1) / numSplits + 63) & ~63;
  return max(minKeys, even);
}

/** Pulls one K/V row (HD cache elements of KT) into L2: the next tile's, while this tile computes. */
template <int HD, typename KT>
__device__ __forceinline__ void daPrefetchRow(const KT* p) {
#pragma unroll
  for (int b = 0; b < HD * (int)sizeof(KT); b += 128) asm volatile("prefetch.global.L2 [%0];" ::"l"((const char*)p + b));
}

// Quantized caches: 1 (default) = the exact decode(q) in fp32 with kScale folded into q and vScale into the output
// (≈ 12 instructions per 8 elements; within bf16 rounding of the unfused path); 0 = keys / values dequantized to
// bf16(decode(q) · s), the values paged_attention_decode_*kv stages (the unfused path's bits, ≈ 70 instructions per 8
// elements). H200, llama-3.1-8b shape, µs a layer: batch 1 at 265 keys 17.3 (0) → 13.2 (1) (bf16 cache 12.9); batch 8
// at 4096 keys 139.0 → 101.4.
#ifndef DA_QFOLD
#define DA_QFOLD 1
#endif

/** 8 quantized cache bytes → decode(q) exactly (w.x: elements 0..3). */
template <typename KT>
__device__ __forceinline__ void daDecodeExact8(const uint2& w, float (&f)[8]) {
  if constexpr ((KT)(-1) < (KT)0) {
#pragma unroll
    for (int e = 0; e < 4; e++) {
      f[e] = (float)(int)(signed char)((w.x >> (8 * e)) & 0xffu);
      f[4 + e] = (float)(int)(signed char)((w.y >> (8 * e)) & 0xffu);
    }
  } else {
    e4m3x2ToF32((unsigned short)(w.x & 0xffffu), f[0], f[1]);
    e4m3x2ToF32((unsigned short)(w.x >> 16), f[2], f[3]);
    e4m3x2ToF32((unsigned short)(w.y & 0xffffu), f[4], f[5]);
    e4m3x2ToF32((unsigned short)(w.y >> 16), f[6], f[7]);
  }
}

/** 8 cache elements of KT as one load: 16 bytes of bf16, 8 bytes of a quantized (u8 e4m3 / i8) cache. */
template <typename KT> struct DaVec { typedef uint2 T; };
template <> struct DaVec<bf16_t> { typedef uint4 T; };

/** 8 cache elements → 8 floats: bf16 as they are; quantized: bf16(decode(q) · s) (the unfused paged_attention_decode_{fp8kv|int8kv}'s values). */
template <typename KT>
__device__ __forceinline__ void daLoad8(const typename DaVec<KT>::T& v, float s, float (&f)[8]) {
  if constexpr (sizeof(KT) == 2) unpack8(v, f);
  else if constexpr (DA_QFOLD) daDecodeExact8<KT>(v, f);  // s folded into q / the output
  else unpack8(kvDecode8<KT>(v, s), f);
}

// KT: the cache element (bf16_t; u8: e4m3, i8: int8 with kvScales [2, numKvHeads] of the layer, kv_fp8.cuh).
template <int HD, int MG, typename KT = bf16_t>  // MG: most q heads per block (8; 4 for GQA groups of <= 4: fewer registers, same sums)
__device__ __forceinline__ void decodeFusedImpl(const bf16_t* qkv, bf16_t* out, KT* kv, const int* positions,
    const int* seqStarts, const int* blockTables, const double* invFreq, float attnScaling, float* partialO,
    float* partialML, int* counters, int numSeqs, int numHeads, int numKvHeads, int tokensPerBlock,
    int maxBlocksPerSeq, float scale, int window, int splitSize, const float* kvScales = nullptr) {
  constexpr bool Q8 = sizeof(KT) == 1;
  constexpr bool FOLD = Q8 && DA_QFOLD;
  typedef typename DaVec<KT>::T VT;
  constexpr int NT = DA_NT, TILE = DA_TILE, HALF = HD / 2;
  constexpr int VPR = HD / 8;     // 8-element vectors per K/V row (16 bytes bf16, 8 bytes quantized)
  constexpr int KG = NT / VPR;    // key groups in the PV phase (16 for hd64, 8 for hd128)
  constexpr int KPG = TILE / KG;  // keys per group per tile
  __shared__ float qs[MG * HD];
  __shared__ float sc[MG * TILE];
  __shared__ float red[KG * MG * HD];
  __shared__ __align__(16) KT kself[HD];  // the step's own k / v as the cache holds them (quantized: the stored bytes)
  __shared__ __align__(16) KT vself[HD];
  __shared__ float cs[HALF], sn[HALF];
  __shared__ float ms[MG], ls[MG], al[MG];
  __shared__ int amLast;

  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  const int t = blockIdx.y, z = blockIdx.z, numSplits = gridDim.z;
  const int G = numHeads / numKvHeads;
  const int chunks = (G + MG - 1) / MG;
  const int kvh = blockIdx.x / chunks, chunk = blockIdx.x - kvh * chunks;
  const int h0 = kvh * G + chunk * MG;
  const int Gb = min(MG, G - chunk * MG);
  const int s = seqOfToken(seqStarts, numSeqs, t);
  const int pos = positions[t];
  const int lo = window > 0 ? max(0, pos + 1 - window) : 0;
  const int sz = daSplitKeys(pos + 1 - lo, splitSize, numSplits);  // this token's keys per split
  const int sLo = lo + z * sz;
  const int sHi = min(pos + 1, sLo + sz);
  const bool own = sLo <= pos && pos < sHi;  // this split holds the step's own key
  const int nz = (pos + 1 - lo + sz - 1) / sz;  // non-empty splits of this token (<= numSplits)
  const bool direct = nz == 1;  // one split holds every key: it writes out itself (no partials, no counter)
  const int rowWidth = numKvHeads * HD;
  const int* table = blockTables + (long long)s * maxBlocksPerSeq;
  const bf16_t* row = qkv + (long long)t * (numHeads + 2 * numKvHeads) * HD;
  const float qscale = scale * LLMRT_LOG2E;
  const float kS = Q8 ? kvScales[kvh] : 1.f, vS = Q8 ? kvScales[numKvHeads + kvh] : 1.f;  // static: read before pdlWait
  const float qf = FOLD ? qscale * kS : qscale;  // q's factor (FOLD: kScale too)
  const float of = FOLD ? vS : 1.f;              // the output's (FOLD: vScale)

  if (sLo < sHi) {
  const int pvChunk = tid % VPR, pvGroup = tid / VPR;
  // K row of key k0 + tid (score phase) and V vectors of keys k0 + pvGroup + KG j (PV phase) of one tile,
  // straight from the cache (the step's own position is patched from shared memory later; keys past
  // the split read a valid row and are masked / zeroed).
  VT kreg[VPR], vreg[KPG];
  auto issueTile = [&](int k0) {
    const int kp = k0 + tid;
    const int kq = kp < sHi && kp != pos ? kp : sLo;
    const KT* kptr = kv + kvCacheOffset(table, kq, 0, tokensPerBlock, rowWidth) + kvh * HD;
#pragma unroll
    for (int c = 0; c < VPR; c++) kreg[c] = *reinterpret_cast<const VT*>(kptr + c * 8);
#pragma unroll
    for (int j = 0; j < KPG; j++) {
      const int key = k0 + pvGroup + KG * j;
      vreg[j] = VT{};
      if (key < sHi && key != pos) vreg[j] = *reinterpret_cast<const VT*>(kv + kvCacheOffset(table, key, 1, tokensPerBlock, rowWidth) + kvh * HD + pvChunk * 8);
    }
  };
  issueTile(sLo);  // in flight while RoPE runs
  // RoPE tables for this position (double, as rope_kv_write).
  for (int i = tid; i < HALF; i += NT) {
    double sv, cv;
    sincos(invFreq[i] * (double)pos, &sv, &cv);
    cs[i] = (float)(cv * (double)attnScaling);
    sn[i] = (float)(sv * (double)attnScaling);
  }
  if (tid < MG) { ms[tid] = -LLMRT_INF; ls[tid] = 0.f; }
  // Everything above read only the step's inputs and earlier positions of the cache; qkv is the
  // previous kernel's output (PDL: the first tile's loads and the RoPE tables overlap its tail).
  pdlWait();
  pdlLaunchDependents();
  __syncthreads();
  // Rotated q (rounded to bf16 as the unfused q buffer, then prescaled), zero rows past Gb.
  for (int idx = tid; idx < MG * HALF; idx += NT) {
    const int g = idx / HALF, i = idx - g * HALF;
    float qa = 0.f, qb = 0.f;
    if (g < Gb) {
      const float a = toF(row[(h0 + g) * HD + i]), b = toF(row[(h0 + g) * HD + HALF + i]);
      qa = toF(fromF<bf16_t>(a * cs[i] - b * sn[i])) * qf;
      qb = toF(fromF<bf16_t>(b * cs[i] + a * sn[i])) * qf;
    }
    qs[g * HD + i] = qa;
    qs[g * HD + HALF + i] = qb;
  }
  if (own) {  // the step's own key/value: rotate k, keep both in shared, and (one block per kv head) write the cache
    const bf16_t* kr = row + (numHeads + kvh) * HD;
    const bf16_t* vr = row + (numHeads + numKvHeads + kvh) * HD;
    const long long kOff = kvCacheOffset(table, pos, 0, tokensPerBlock, rowWidth) + kvh * HD;
    const long long vOff = kvCacheOffset(table, pos, 1, tokensPerBlock, rowWidth) + kvh * HD;
    for (int i = tid; i < HALF; i += NT) {
      const float a = toF(kr[i]), b = toF(kr[HALF + i]);
      KT ka, kb;
      if constexpr (Q8) {  // as rope_kv_write_{fp8kv|int8kv}_bf16: encode(float(rotated k) / kScale)
        ka = kvEncode<KT>(a * cs[i] - b * sn[i], kS);
        kb = kvEncode<KT>(b * cs[i] + a * sn[i], kS);
      } else {
        ka = fromF<bf16_t>(a * cs[i] - b * sn[i]);
        kb = fromF<bf16_t>(b * cs[i] + a * sn[i]);
      }
      kself[i] = ka;
      kself[HALF + i] = kb;
      if (chunk == 0) { kv[kOff + i] = ka; kv[kOff + HALF + i] = kb; }
    }
    for (int i = tid; i < HD; i += NT) {
      KT v;
      if constexpr (Q8) v = kvEncode<KT>(toF(vr[i]), vS);
      else v = vr[i];
      vself[i] = v;
      if (chunk == 0) kv[vOff + i] = v;
    }
  }
  __syncthreads();

  float acc[MG][8];
#pragma unroll
  for (int g = 0; g < MG; g++)
#pragma unroll
    for (int e = 0; e < 8; e++) acc[g][e] = 0.f;

  for (int k0 = sLo; k0 < sHi; k0 += TILE) {
    const int kp = k0 + tid;
    if (k0 != sLo) issueTile(k0);
    if (kp + TILE < sHi) {  // the next tile's K and V rows (one key per thread) head for L2 while this one computes
      daPrefetchRow<HD, KT>(kv + kvCacheOffset(table, kp + TILE, 0, tokensPerBlock, rowWidth) + kvh * HD);
      daPrefetchRow<HD, KT>(kv + kvCacheOffset(table, kp + TILE, 1, tokensPerBlock, rowWidth) + kvh * HD);
    }
    // The step's own key / value come from shared memory (rotated above), not from the cache.
    // Only in the split that holds it: a split shorter than a tile may see pos past its end inside its
    // tile, where kself / vself were never written (p = 0 times garbage V made NaN before).
    if (own && kp == pos) {
#pragma unroll
      for (int c = 0; c < VPR; c++) kreg[c] = *reinterpret_cast<const VT*>(kself + c * 8);
    }
#pragma unroll
    for (int j = 0; j < KPG; j++)
      if (own && k0 + pvGroup + KG * j == pos) vreg[j] = *reinterpret_cast<const VT*>(vself + pvChunk * 8);
    // Scores.
    {
      float part[MG];
#pragma unroll
      for (int g = 0; g < MG; g++) part[g] = 0.f;
#pragma unroll
      for (int c = 0; c < VPR; c++) {
        float kf[8];
        daLoad8<KT>(kreg[c], kS, kf);
#pragma unroll
        for (int g = 0; g < MG; g++) {
          if (g < Gb) {
#pragma unroll
            for (int e = 0; e < 8; e++) part[g] = fmaf(qs[g * HD + c * 8 + e], kf[e], part[g]);
          }
        }
      }
      const bool valid = kp < sHi;
#pragma unroll
      for (int g = 0; g < MG; g++)
        if (g < Gb) sc[g * TILE + tid] = valid ? part[g] : -LLMRT_INF;
    }
    __syncthreads();
    // Online softmax: warp w owns heads w, w + 4.
    for (int g = warp; g < Gb; g += NT / 32) {
      float mx = -LLMRT_INF;
      for (int j = lane; j < TILE; j += 32) mx = fmaxf(mx, sc[g * TILE + j]);
      mx = warpMax(mx);
      const float mOld = ms[g];
      const float mNew = fmaxf(mOld, mx);
      float sum = 0.f;
      for (int j = lane; j < TILE; j += 32) {
        const float p = exp2f(sc[g * TILE + j] - mNew);
        sc[g * TILE + j] = p;
        sum += p;
      }
      sum = warpSum(sum);
      __syncwarp();
      if (lane == 0) {
        const float a = exp2f(mOld - mNew);  // mOld = -inf on the first tile: 0
        al[g] = a;
        ms[g] = mNew;
        ls[g] = ls[g] * a + sum;
      }
    }
    __syncthreads();
    // P·V: thread owns dims pvChunk*8 .. +8 of keys pvGroup + KG j.
#pragma unroll
    for (int g = 0; g < MG; g++) {
      if (g < Gb) {
        const float a = al[g];
#pragma unroll
        for (int e = 0; e < 8; e++) acc[g][e] *= a;
      }
    }
#pragma unroll
    for (int j = 0; j < KPG; j++) {
      float vf[8];
      daLoad8<KT>(vreg[j], vS, vf);
      const int key = pvGroup + KG * j;
#pragma unroll
      for (int g = 0; g < MG; g++) {
        if (g < Gb) {
          const float p = sc[g * TILE + key];
#pragma unroll
          for (int e = 0; e < 8; e++) acc[g][e] = fmaf(p, vf[e], acc[g][e]);
        }
      }
    }
    __syncthreads();  // sc is rewritten by the next tile
  }

  // Merge the key groups.
#pragma unroll
  for (int g = 0; g < MG; g++)
    if (g < Gb)
#pragma unroll
      for (int e = 0; e < 8; e++) red[(pvGroup * MG + g) * HD + pvChunk * 8 + e] = acc[g][e];
  __syncthreads();
  for (int i = tid; i < Gb * HD; i += NT) {
    const int g = i / HD, d = i - g * HD;
    float o = 0.f;
#pragma unroll
    for (int grp = 0; grp < KG; grp++) o += red[(grp * MG + g) * HD + d];
    if (FOLD) o *= of;
    const long long th = (long long)t * numHeads + h0 + g;
    if (direct) out[th * HD + d] = fromF<bf16_t>(o / ls[g]);
    else partialO[(th * numSplits + z) * HD + d] = o;
  }
  if (direct) return;
  if (tid < Gb) {
    float* ml = partialML + (((long long)t * numHeads + h0 + tid) * numSplits + z) * 2;
    ml[0] = ms[tid];
    ml[1] = ls[tid];
  }
  } else {  // empty split (a short sequence in a graph sized for long ones): l = 0, skipped by the merge
    if (direct) return;  // nothing to write (also before pdlWait: it touched nothing)
    pdlWait();
    pdlLaunchDependents();
    if (tid < Gb) {
    float* ml = partialML + (((long long)t * numHeads + h0 + tid) * numSplits + z) * 2;
    ml[0] = -LLMRT_INF;
    ml[1] = 0.f;
    }
  }
  // Last block of this (token, kv group) merges the splits.
  __threadfence();
  __syncthreads();
  int* ctr = counters + (long long)t * gridDim.x + blockIdx.x;
  if (tid == 0) amLast = atomicAdd(ctr, 1) == numSplits - 1;
  __syncthreads();
  if (!amLast) return;
  __threadfence();
  // The splits' (m, l) of this block's heads into shared memory (sc is free: every tile loop is done),
  // DA_MB loads in flight per thread; then each output sums its splits' partial O in split order with
  // DA_MB loads in flight (a loop of one dependent load per split was ~0.3 us per split at 33-57 splits).
  // The same sums in the same order as one split at a time.
  float* mlS = sc;  // [Gb][nz][2]
  const int nml = Gb * nz * 2;
  const bool staged = nml <= MG * TILE;  // nz <= 64 (MAX_DECODE_SPLITS); more splits read (m, l) from global
  for (int i0 = 0; staged && i0 < nml; i0 += NT * DA_MB) {
    float v[DA_MB];
#pragma unroll
    for (int j = 0; j < DA_MB; j++) {
      const int i = i0 + j * NT + tid, g = i / (nz * 2);
      v[j] = i < nml ? ldcgF(partialML + ((long long)t * numHeads + h0 + g) * numSplits * 2 + (i - g * nz * 2)) : 0.f;
    }
#pragma unroll
    for (int j = 0; j < DA_MB; j++)
      if (i0 + j * NT + tid < nml) mlS[i0 + j * NT + tid] = v[j];
  }
  __syncthreads();
  for (int i = tid; i < Gb * HD; i += NT) {
    const int g = i / HD, d = i - g * HD;
    const long long th = (long long)t * numHeads + h0 + g;
    // (m, l) of split zz: staged, or from global past L1 (other blocks wrote it; L1 may hold an older layer's line)
    const float* mlG = partialML + th * numSplits * 2;
    auto ml = [&](int j) { return staged ? mlS[g * nz * 2 + j] : ldcgF(mlG + j); };
    float M = -LLMRT_INF;
    for (int zz = 0; zz < nz; zz++) M = fmaxf(M, ml(zz * 2));
    float O = 0.f, L = 0.f;
    for (int z0 = 0; z0 < nz; z0 += DA_MB) {
      float po[DA_MB];
#pragma unroll
      for (int j = 0; j < DA_MB; j++) po[j] = z0 + j < nz ? ldcgF(partialO + (th * numSplits + z0 + j) * HD + d) : 0.f;
#pragma unroll
      for (int j = 0; j < DA_MB; j++) {
        if (z0 + j < nz) {
          const float w = exp2f(ml((z0 + j) * 2) - M);
          O = fmaf(w, po[j], O);
          L = fmaf(w, ml((z0 + j) * 2 + 1), L);
        }
      }
    }
    out[th * HD + d] = fromF<bf16_t>(O / L);
  }
  if (tid == 0) *ctr = 0;
}

#define DECODE_FUSED(NAME, HD, MG, MINB)                                                                                \
  extern "C" __global__ void __launch_bounds__(DA_NT, MINB) NAME(const bf16_t* qkv, bf16_t* out,                             \
      bf16_t* kvCache, const int* positions, const int* seqStarts, const int* blockTables, const double* invFreq,      \
      float attnScaling, float* partialO, float* partialML, int* counters, int numTokens, int numSeqs, int numHeads,   \
      int numKvHeads, int tokensPerBlock, int maxBlocksPerSeq, float scale, int window, int splitSize,                 \
      const void* prefetch, long long prefetchBytes) {                                                                 \
    daPrefetchL2(prefetch, prefetchBytes);                                                                             \
    if ((int)blockIdx.y >= numTokens) return;                                                                          \
    decodeFusedImpl<HD, MG>(qkv, out, kvCache, positions, seqStarts, blockTables, invFreq, attnScaling, partialO,      \
                            partialML, counters, numSeqs, numHeads, numKvHeads, tokensPerBlock, maxBlocksPerSeq, scale, \
                            window, splitSize);                                                                        \
  }
#if LLMRT_KERNEL(decode_attention_bf16_hd64)
DECODE_FUSED(decode_attention_bf16_hd64, 64, DA_MAXG, 1)
#endif
#if LLMRT_KERNEL(decode_attention_bf16_hd128)
DECODE_FUSED(decode_attention_bf16_hd128, 128, DA_MAXG, 1)
#endif
#if LLMRT_KERNEL(decode_attention_g4_bf16_hd64)
DECODE_FUSED(decode_attention_g4_bf16_hd64, 64, 4, 4)  // 128 registers (4 blocks per SM), no spills
#endif
#if LLMRT_KERNEL(decode_attention_g4_bf16_hd128)
DECODE_FUSED(decode_attention_g4_bf16_hd128, 128, 4, 1)  // 220 registers; 3 blocks per SM spilled
#endif

// Quantized KV cache (issue 14, kv_fp8.cuh): the same fused step over an e4m3 (fp8kv) or int8 (int8kv) cache, the
// layer's scales appended, for decode steps of up to 8 sequences (`fp8DecodeAttention`; the unfused path is
// rope_kv_write_{fp8kv|int8kv} + paged_attention_decode_{fp8kv|int8kv} + reduce):
// extern "C" __global__ void decode_attention{_g4|}_{fp8kv|int8kv}_bf16_hd{64|128}(...decode_attention's parameters...,
//     const float* kvScales)
//   kvCache one layer of bytes [numBlocks, 2, tokensPerBlock, numKvHeads, hd]; kvScales [2, numKvHeads] (K heads, then V).
//   The step's own k / v are written as rope_kv_write_{fp8kv|int8kv}_bf16 writes them (encode(float(rotated k) / kScale),
//   encode(v / vScale)) and attended as those bytes; every key / value is decoded in registers: DA_QFOLD 1 (default)
//   the exact decode(q) with q · kScale (q rotated and rounded to bf16, then · scale · log2e · kScale in fp32) and the
//   output · vScale; DA_QFOLD 0 bf16(decode(q) · s), the values paged_attention_decode_{fp8kv|int8kv} stages; then the
//   bf16 kernel's fp32 sums.
//   Geometry, splits, partials, counters and PDL as decode_attention (K/V loads of 8 bytes instead of 16).
#define DECODE_FUSED_Q(NAME, HD, MG, MINB, KT)                                                                         \
  extern "C" __global__ void __launch_bounds__(DA_NT, MINB) NAME(const bf16_t* qkv, bf16_t* out,                       \
      KT* kvCache, const int* positions, const int* seqStarts, const int* blockTables, const double* invFreq,          \
      float attnScaling, float* partialO, float* partialML, int* counters, int numTokens, int numSeqs, int numHeads,   \
      int numKvHeads, int tokensPerBlock, int maxBlocksPerSeq, float scale, int window, int splitSize,                 \
      const void* prefetch, long long prefetchBytes, const float* kvScales) {                                          \
    daPrefetchL2(prefetch, prefetchBytes);                                                                             \
    if ((int)blockIdx.y >= numTokens) return;                                                                          \
    decodeFusedImpl<HD, MG, KT>(qkv, out, kvCache, positions, seqStarts, blockTables, invFreq, attnScaling, partialO,  \
                                partialML, counters, numSeqs, numHeads, numKvHeads, tokensPerBlock, maxBlocksPerSeq,   \
                                scale, window, splitSize, kvScales);                                                   \
  }
#if LLMRT_KERNEL(decode_attention_fp8kv_bf16_hd64)
DECODE_FUSED_Q(decode_attention_fp8kv_bf16_hd64, 64, DA_MAXG, 1, u8)
#endif
#if LLMRT_KERNEL(decode_attention_fp8kv_bf16_hd128)
DECODE_FUSED_Q(decode_attention_fp8kv_bf16_hd128, 128, DA_MAXG, 1, u8)
#endif
#if LLMRT_KERNEL(decode_attention_g4_fp8kv_bf16_hd64)
DECODE_FUSED_Q(decode_attention_g4_fp8kv_bf16_hd64, 64, 4, 4, u8)
#endif
#if LLMRT_KERNEL(decode_attention_g4_fp8kv_bf16_hd128)
DECODE_FUSED_Q(decode_attention_g4_fp8kv_bf16_hd128, 128, 4, 1, u8)
#endif
#if LLMRT_KERNEL(decode_attention_int8kv_bf16_hd64)
DECODE_FUSED_Q(decode_attention_int8kv_bf16_hd64, 64, DA_MAXG, 1, i8)
#endif
#if LLMRT_KERNEL(decode_attention_int8kv_bf16_hd128)
DECODE_FUSED_Q(decode_attention_int8kv_bf16_hd128, 128, DA_MAXG, 1, i8)
#endif
#if LLMRT_KERNEL(decode_attention_g4_int8kv_bf16_hd64)
DECODE_FUSED_Q(decode_attention_g4_int8kv_bf16_hd64, 64, 4, 4, i8)
#endif
#if LLMRT_KERNEL(decode_attention_g4_int8kv_bf16_hd128)
DECODE_FUSED_Q(decode_attention_g4_int8kv_bf16_hd128, 128, 4, 1, i8)
#endif
