// Persistent decode layers (issue 16 item 1, session 9 prototype): a chain of llama-style bf16 decoder
// layers for ONE token (batch 1) in ONE launch. One block per SM, all resident; each block owns a fixed
// slice of every weight matrix, and a producer warp streams the block's whole weight sequence (layer after
// layer: qkv rows, o_proj rows, gate+up rows, down rows) into a shared-memory ring with TMA bulk copies
// (cp.async.bulk + mbarrier), never waiting on activations: the weight stream stays in flight while the
// eight consumer warps wait for the previous phase (global counters, release/acquire), run attention, or
// reduce. Phases per layer:
//   0 qkv     = rmsnorm(resid) * ln1 @ Wqkv^T              (every block: rows of Wqkv)
//   1 attn    RoPE q/k, own k/v into the paged cache, softmax(q K^T) V   (blocks h S + z: q head h, key split z)
//   2 o_proj  resid += bf16(attn @ Wo^T)                   (every block: rows of Wo)
//   3 gate_up act = silu(g) * u of rmsnorm(resid) * ln2     (every block: 4 gate + 4 up rows per chunk)
//   4 down    resid += bf16(act @ Wdown^T)                  (every block: 2 rows per chunk, 4 warps per row)
// The GEMV sums are gemv_fused_bf16_m1's (qkv, o_proj, gate_up) and gemv_fused_ks_bf16_m1's with ks = 4 (down),
// and the RMSNorm prologue rmsnormStage's, in the same order (bitwise the same given the same inputs; the engine's
// down runs with ks = 2); attention (scores staged in shared memory in chunks of DP_MAXCTX keys, online softmax across
// chunks and splits) differs from decode_attention by rounding only. So the kernel is not batch invariant with the
// batched steps' kernels (the session takes it only with batchInvariant off).
// Measured (H200, session 9, bench/RESULTS.md): 43.8 us a layer at 128 keys vs 54.7 for the 5 per-layer launches
// without PDL; llama-3.2-1b batch-1 decode 1039 -> 1138 / 1054 -> 1116 tok/s (two runs); slower
// than the per-layer launches at >= 512 keys (the DP_ATT_KV variant is not, in isolation). A block that cannot become resident would never arrive
// (all blocks must be co-resident: grid = SM count, one block per SM; launched on the session's own stream): the spin
// waits trap after ~2^22 polls instead of hanging.
//
// extern "C" __global__ void decode_persistent_bf16(const DpLayer* layers, int numLayers, bf16_t* kvBase, long long kvLayerBytes,
//     bf16_t* resid, bf16_t* qkvBuf, bf16_t* attnBuf, bf16_t* actBuf, const int* positions, const int* blockTable,
//     const double* invFreq, float attnScaling, float eps, float scale, int tokensPerBlock, int* counters, float* attnPart)
//   layers [numLayers] in device memory (DpLayer: 6 device pointers: ln1, wqkv, wo, ln2, wgu, wdown); layer l's paged
//   cache [blocks, 2, tpb, NKV, HD] at kvBase + l * kvLayerBytes (bytes); resid [H] in/out (the residual stream);
//   qkvBuf [(NH + 2 NKV) HD], attnBuf [NH HD], actBuf [I] scratch; positions [1] (this token's position; keys
//   0..pos-1 already in the cache); blockTable: the sequence's blocks; counters int
//   [numLayers * 5 + 1] ZERO before the first launch (the kernel leaves them zero); attnPart f32 [NH, DP_MAXS, HD + 2]
//   scratch (attention split partials). Attention: S = clamp(floor((pos + DP_SPLITK) / DP_SPLITK), 1, min(DP_MAXS,
//   grid / NH)) key splits per q head (block h S + z); S > 1: each split's unnormalized output and (max, sum) go to
//   attnPart and every block merges them in its o_proj prologue. (Variant DP_ATT_KV, not used by the engine: counters
//   [numLayers * (5 + NKV) + 1], attnPart [NH, 16, HD + 2].)
//   grid (number of SMs)   block (288: 8 consumer warps + 1 producer warp)   shared DP_SMEM bytes (dynamic: DP_NSLOT x 32 KB + max(4 DP_MAXCTX, 2 H))
// Shapes are compile-time (llama-3.2-1b: H 2048, I 8192, 32 q heads, 8 kv heads, head dim 64).
#include "common.cuh"

#ifndef DP_H
#define DP_H 2048
#endif
#ifndef DP_I
#define DP_I 8192
#endif
#ifndef DP_NH
#define DP_NH 32
#endif
#ifndef DP_NKV
#define DP_NKV 8
#endif
#define DP_HD 64
#ifndef DP_NSLOT
#define DP_NSLOT 5  // ring slots of DP_SLOT bytes
#endif
#define DP_SLOT 32768
#ifndef DP_MAXCTX
#define DP_MAXCTX 4096  // keys per attention chunk (scores staged in shared memory)
#endif
#define DP_NCW 8  // consumer warps
#ifndef DP_MAXS
#define DP_MAXS 4  // most key splits per q head (blocks h * S + z)
#endif
#ifndef DP_SPLITK
#define DP_SPLITK 256  // keys per split the split count aims at
#endif
#ifndef DP_PF
#define DP_PF 0  // chunks the producer pulls into L2 ahead of the ring (cp.async.bulk.prefetch.L2; 0 = none)
#endif
#ifndef DP_ATT_ILP
#define DP_ATT_ILP 2  // attention: keys per thread whose K rows are loaded before any score is computed
#endif
#ifndef DP_PV_UNROLL
#define DP_PV_UNROLL 16  // attention: V rows in flight per thread in the PV loop (16, else 8)
#endif
#ifndef DP_ACC
#define DP_ACC 1  // > 1: the GEMV dots in DP_ACC accumulators (shorter FMA chains; not gemv_fused's sums bit for bit)
#endif
#ifndef DP_ATT_KV
#define DP_ATT_KV 0  // 1 (variant): attention blocks per (kv head, key split), up to DP_MAXS2 splits, last split merges
#endif
#define DP_MAXS2 16
#ifndef DP_SPLITK2
#define DP_SPLITK2 64
#endif
#define DP_MAXG 128  // most gate rows per block (grids of >= 64 blocks)
#define DP_MAXD 32   // most down rows per block
#define DP_NT ((DP_NCW + 1) * 32)
#define DP_XBYTES (DP_MAXCTX * 4 > DP_H * 2 ? DP_MAXCTX * 4 : DP_H * 2)  // scores / staged x
#define DP_SMEM (DP_NSLOT * DP_SLOT + DP_XBYTES)

struct DpLayer {
  const bf16_t* ln1;
  const bf16_t* wqkv;  // [(NH + 2 NKV) HD, H]
  const bf16_t* wo;    // [H, NH HD]
  const bf16_t* ln2;
  const bf16_t* wgu;   // [2 I, H] gate rows then up rows
  const bf16_t* wdown; // [H, I]
};

__device__ __forceinline__ u32 dpSmem(const void* p) {
  u64 g;
  asm("cvta.to.shared.u64 %0, %1;" : "=l"(g) : "l"(p));
  return (u32)g;
}
__device__ __forceinline__ void mbInit(u32 bar, u32 count) { asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(bar), "r"(count) : "memory"); }
/** Waits for the phase of parity `parity` to complete; traps after ~2^22 polls (seconds) (a hang becomes an error). */
__device__ __forceinline__ void mbWait(u32 bar, u32 parity) {
  for (u32 n = 0;; n++) {
    u32 ok;
    asm volatile(
        "{ .reg .pred p;\n"
        "mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n"
        "selp.u32 %0, 1, 0, p;\n}" : "=r"(ok) : "r"(bar), "r"(parity) : "memory");
    if (ok) return;
    if (n > (1u << 22)) asm volatile("trap;");
  }
}
__device__ __forceinline__ void mbArrive(u32 bar) { asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];" ::"r"(bar) : "memory"); }
__device__ __forceinline__ void mbExpect(u32 bar, u32 bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(bar), "r"(bytes) : "memory");
}
__device__ __forceinline__ void bulkLoad(u32 dst, const void* src, u32 bytes, u32 bar) {
  asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];" ::"r"(dst), "l"(src), "r"(bytes), "r"(bar)
               : "memory");
}
/** Named barrier of the 8 consumer warps (the producer warp never joins). */
__device__ __forceinline__ void consumerSync() { asm volatile("bar.sync 1, 256;" ::: "memory"); }
__device__ __forceinline__ int ldAcquire(const int* p) {
  int v;
  asm volatile("ld.acquire.gpu.global.b32 %0, [%1];" : "=r"(v) : "l"(p) : "memory");
  return v;
}
__device__ __forceinline__ uint4 ldcg16(const void* p) {
  uint4 v;
  asm volatile("ld.global.cg.v4.u32 {%0, %1, %2, %3}, [%4];" : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w) : "l"(p));
  return v;
}
__device__ __forceinline__ float dpLdcgF(const float* p) {
  float v;
  asm volatile("ld.global.cg.f32 %0, [%1];" : "=f"(v) : "l"(p));
  return v;
}
__device__ __forceinline__ bf16_t ldcgBf(const bf16_t* p) {
  unsigned short v;
  asm volatile("ld.global.cg.u16 %0, [%1];" : "=h"(v) : "l"(p));
  return v;
}
__device__ __forceinline__ void dpUnpack8(const uint4& v, float (&f)[8]) {
  const u32 w[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
  for (int i = 0; i < 4; i++) {
    f[2 * i] = __uint_as_float(w[i] << 16);
    f[2 * i + 1] = __uint_as_float(w[i] & 0xffff0000u);
  }
}

/** Balanced share [lo, hi) of n items for block b of g. */
__device__ __forceinline__ void dpShare(int n, int b, int g, int& lo, int& hi) {
  lo = (int)((long long)n * b / g);
  hi = (int)((long long)n * (b + 1) / g);
}

// Phase geometry (chunks of a block's slice), shared by the producer and the consumers.
#define DP_NQKV ((DP_NH + 2 * DP_NKV) * DP_HD)
#define DP_RK 8         // rows per chunk at k = H (8 x 4 KB)
#define DP_RD 2         // down rows per chunk (2 x 16 KB)

/** The consumers' wait for `target` arrivals on counter c; then the phase's inputs are visible. */
__device__ __forceinline__ void dpWaitCounter(const int* c, int target) {
#ifndef DP_NOWAIT  // DP_NOWAIT: timing diagnostic only (wrong results): the weight stream and the math without the waits
  if (threadIdx.x == 0) {
    for (u32 n = 0; ldAcquire(c) < target; n++)
      if (n > (1u << 22)) asm volatile("trap;");
  }
#endif
  consumerSync();
}
/** The consumers' arrival after a phase (their global writes before it are released). */
__device__ __forceinline__ void dpSignal(int* c) {
  consumerSync();
  if (threadIdx.x == 0) {
    __threadfence();
    atomicAdd(c, 1);
  }
}

/** xs <- rmsnorm(x) * w (H elements, bf16 rounding as rmsnormStage with 256 threads). */
__device__ __forceinline__ void dpNorm(const bf16_t* x, const bf16_t* w, float eps, bf16_t* xs, float* red) {
  const int tid = threadIdx.x;  // < 256
  static_assert(DP_H == 2048, "one 16-byte vector per consumer thread");
  float a[8];
  dpUnpack8(ldcg16(x + tid * 8), a);
  float ss = 0.f;
#pragma unroll
  for (int e = 0; e < 8; e++) ss += a[e] * a[e];
  ss = warpSum(ss);
  consumerSync();
  if ((tid & 31) == 0) red[tid >> 5] = ss;
  consumerSync();
  ss = (tid & 31) < DP_NCW ? red[tid & 31] : 0.f;
  ss = warpSum(ss);
  const float inv = rsqrtf(ss / (float)DP_H + eps);
  float w8[8];
  load16(w + tid * 8, w8);
#pragma unroll
  for (int e = 0; e < 8; e++) a[e] = a[e] * inv * w8[e];
  store16(xs + tid * 8, a);
  consumerSync();
}

/** A warp's x vectors for one phase (vectors lane + 32 u, u < 8, of a 256-vector row slice staged in xs), unpacked. */
__device__ __forceinline__ void dpLoadX(const bf16_t* xs, int lane, float (&xf)[8][8]) {
#pragma unroll
  for (int u = 0; u < 8; u++) load16(xs + (lane + 32 * u) * 8, xf[u]);
}

/** One warp's dot of a 256-vector weight row slice in shared memory with its x vectors (in registers); lane
 *  order and FMA order as gemv_fused's gfRow (vector lane + 32 u, increasing u), then warpSum. */
__device__ __forceinline__ float dpDot(const bf16_t* w, const float (&xf)[8][8], int lane) {
#ifdef DP_NOMATH  // timing diagnostic only (wrong results): the ring without the dot products
  return 0.f;
#endif
  uint4 wv[8];
#pragma unroll
  for (int u = 0; u < 8; u++) wv[u] = *reinterpret_cast<const uint4*>(w + (lane + 32 * u) * 8);
#if DP_ACC > 1
  float accs[DP_ACC];
#pragma unroll
  for (int i = 0; i < DP_ACC; i++) accs[i] = 0.f;
#pragma unroll
  for (int u = 0; u < 8; u++) {
    float wf[8];
    dpUnpack8(wv[u], wf);
#pragma unroll
    for (int e = 0; e < 8; e++) accs[e % DP_ACC] = fmaf(wf[e], xf[u][e], accs[e % DP_ACC]);
  }
#pragma unroll
  for (int i = 1; i < DP_ACC; i++) accs[0] += accs[i];
  return warpSum(accs[0]);
#else
  float acc = 0.f;
#pragma unroll
  for (int u = 0; u < 8; u++) {
    float wf[8];
    dpUnpack8(wv[u], wf);
#pragma unroll
    for (int e = 0; e < 8; e++) acc = fmaf(wf[e], xf[u][e], acc);
  }
  return warpSum(acc);
#endif
}

__device__ __forceinline__ float dpSilu(float g) { return g / (1.f + expf(-g)); }

extern "C" __global__ void __launch_bounds__(DP_NT, 1) decode_persistent_bf16(const DpLayer* layers, int numLayers, bf16_t* kvBase,
    long long kvLayerBytes, bf16_t* resid, bf16_t* qkvBuf, bf16_t* attnBuf, bf16_t* actBuf, const int* positions, const int* blockTable,
    const double* invFreq, float attnScaling, float eps, float scale, int tokensPerBlock, int* counters, float* attnPart) {
  extern __shared__ __align__(128) unsigned char dsm[];
  __shared__ __align__(8) u64 fullB[DP_NSLOT], emptyB[DP_NSLOT];
  __shared__ float red[32];
  __shared__ float guS[2][DP_MAXG];       // gate_up: this block's gate / up row sums (bf16-rounded)
  __shared__ float dS[DP_MAXD][4];         // down: quarter-row sums of this block's rows
  __shared__ float qf[DP_HD];
  __shared__ float cs[DP_HD / 2], sn[DP_HD / 2];
  __shared__ __align__(16) bf16_t kself[DP_HD], vself[DP_HD];
  __shared__ float pvr[32 * DP_HD];
#if DP_ATT_KV
  __shared__ float qf4[DP_NH / DP_NKV * DP_HD];
  __shared__ int amLast;
#endif
  unsigned char* ring = dsm;
  float* sc = reinterpret_cast<float*>(dsm + DP_NSLOT * DP_SLOT);                     // attention scores
  bf16_t* xs = reinterpret_cast<bf16_t*>(dsm + DP_NSLOT * DP_SLOT);                   // GEMV input (aliases sc)
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  const int b = blockIdx.x, G = gridDim.x;
  if (tid == 0) {
    for (int s = 0; s < DP_NSLOT; s++) {
      mbInit(dpSmem(&fullB[s]), 1);
      mbInit(dpSmem(&emptyB[s]), DP_NCW);
    }
    asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
  }
  __syncthreads();
  int qLo, qHi, oLo, oHi, gLo, gHi, dLo, dHi;
  dpShare(DP_NQKV, b, G, qLo, qHi);
  dpShare(DP_H, b, G, oLo, oHi);
  dpShare(DP_I / 4, b, G, gLo, gHi);  // groups of 4 gate rows (+ their 4 up rows)
  dpShare(DP_H, b, G, dLo, dHi);
  gLo *= 4;
  gHi *= 4;
  if (gHi - gLo > DP_MAXG || dHi - dLo > DP_MAXD || G < DP_NH) asm volatile("trap;");  // grids of >= 64 blocks only

  if (warp == DP_NCW) {  // ---------------- producer: the block's weight stream, layer after layer
    if (lane != 0) return;
    // Chunk j of the block's stream: layer j / per, then its qkv, o_proj, gate+up and down chunks in order. A chunk is
    // one or two contiguous byte ranges (gate_up: 4 gate rows, then their 4 up rows at +16 KB in the slot).
    const int nq = (qHi - qLo + DP_RK - 1) / DP_RK, no = (oHi - oLo + DP_RK - 1) / DP_RK, ng = (gHi - gLo) / 4;
    const int nd = (dHi - dLo + DP_RD - 1) / DP_RD, per = nq + no + ng + nd, total = numLayers * per;
    auto chunk = [&](int j, const bf16_t*& a, const bf16_t*& b2, u32& bytes) {
      const DpLayer* ly = layers + j / per;
      int k = j % per;
      b2 = nullptr;
      if (k < nq) {
        const int r = qLo + k * DP_RK, n = min(DP_RK, qHi - r);
        a = ly->wqkv + (long long)r * DP_H, bytes = n * DP_H * 2;
      } else if ((k -= nq) < no) {
        const int r = oLo + k * DP_RK, n = min(DP_RK, oHi - r);
        a = ly->wo + (long long)r * DP_H, bytes = n * DP_H * 2;
      } else if ((k -= no) < ng) {
        const int r = gLo + k * 4;
        a = ly->wgu + (long long)r * DP_H, b2 = ly->wgu + (long long)(DP_I + r) * DP_H, bytes = 4 * DP_H * 2;
      } else {
        k -= ng;
        const int r = dLo + k * DP_RD, n = min(DP_RD, dHi - r);
        a = ly->wdown + (long long)r * DP_I, bytes = n * DP_I * 2;
      }
    };
    for (int j = 0; j < total; j++) {
      const bf16_t *a, *b2;
      u32 bytes;
#if DP_PF > 0  // the chunk DP_PF ahead of this one into L2 (no shared memory held): HBM stays busy through the waits
      if (j + DP_PF < total) {
        chunk(j + DP_PF, a, b2, bytes);
        asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;" ::"l"(a), "r"(bytes) : "memory");
        if (b2) asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;" ::"l"(b2), "r"(bytes) : "memory");
      }
#endif
      chunk(j, a, b2, bytes);
      const u32 s = j % DP_NSLOT, ph = (j / DP_NSLOT) & 1;
      mbWait(dpSmem(&emptyB[s]), ph ^ 1);  // the consumers are done with the slot's previous chunk
      mbExpect(dpSmem(&fullB[s]), b2 ? 2 * bytes : bytes);
      bulkLoad(dpSmem(ring + s * DP_SLOT), a, bytes, dpSmem(&fullB[s]));
      if (b2) bulkLoad(dpSmem(ring + s * DP_SLOT + 4 * DP_H * 2), b2, bytes, dpSmem(&fullB[s]));
    }
    return;
  }

  // ---------------- consumers (8 warps)
  u32 it = 0;
  auto take = [&]() -> const bf16_t* {
    const u32 s = it % DP_NSLOT, ph = (it / DP_NSLOT) & 1;
    mbWait(dpSmem(&fullB[s]), ph);
    return reinterpret_cast<const bf16_t*>(ring + s * DP_SLOT);
  };
  auto release = [&]() {
    const u32 s = it % DP_NSLOT;
    __syncwarp();
    if (lane == 0) mbArrive(dpSmem(&emptyB[s]));
    it++;
  };
  const int pos = positions[0];
  const int rowWidth = DP_NKV * DP_HD;
  // Attention: S key splits per q head (blocks h * S + z), S from the context so each block takes ~DP_SPLITK keys.
  const int S = max(1, min(min(DP_MAXS, G / DP_NH), (pos + DP_SPLITK) / DP_SPLITK));
  const int keysPer = (pos + 1 + S - 1) / S;
#if DP_ATT_KV
  const int S2 = max(1, min(min(DP_MAXS2, G / DP_NKV), (pos + DP_SPLITK2) / DP_SPLITK2));
  const int keysPer2 = (pos + 1 + S2 - 1) / S2;
#endif
  float xf[8][8];  // this warp's x vectors of the current GEMV phase
  static_assert(DP_H / 8 == 256 && DP_I / 8 / 4 == 256, "256 vectors per warp row slice");
  for (int L = 0; L < numLayers; L++) {
    const DpLayer ly = layers[L];
    bf16_t* kvc = (bf16_t*)((char*)kvBase + (long long)L * kvLayerBytes);  // this layer's paged cache
    int* ctr = counters + L * 5;
    // ---- 0: qkv
    if (L > 0) dpWaitCounter(ctr - 1, G);
    dpNorm(resid, ly.ln1, eps, xs, red);
    dpLoadX(xs, lane, xf);
    for (int r = qLo; r < qHi; r += DP_RK) {
      const int n = min(DP_RK, qHi - r);
      const bf16_t* w = take();
      if (warp < n) {
        const float s = dpDot(w + warp * DP_H, xf, lane);
        if (lane == 0) qkvBuf[r + warp] = fromF<bf16_t>(s);
      }
      release();
    }
    dpSignal(ctr + 0);
#if !DP_ATT_KV
    // ---- 1: attention (block h * S + z: q head h, keys [z keysPer, (z + 1) keysPer))
    if (b < DP_NH * S) {
      dpWaitCounter(ctr + 0, G);
      const int h = b / S, z = b - h * S, kvh = h / (DP_NH / DP_NKV);
      const int kLo = z * keysPer, kHi = min(pos + 1, kLo + keysPer);
      const float qscale = scale * LLMRT_LOG2E;
      if (tid < DP_HD / 2) {
        double sv, cv;
        sincos(invFreq[tid] * (double)pos, &sv, &cv);
        cs[tid] = (float)(cv * (double)attnScaling);
        sn[tid] = (float)(sv * (double)attnScaling);
      }
      consumerSync();
      if (tid < DP_HD / 2) {
        const int i = tid;
        const float a = toF(ldcgBf(qkvBuf + h * DP_HD + i)), c = toF(ldcgBf(qkvBuf + h * DP_HD + DP_HD / 2 + i));
        qf[i] = toF(fromF<bf16_t>(a * cs[i] - c * sn[i])) * qscale;
        qf[DP_HD / 2 + i] = toF(fromF<bf16_t>(c * cs[i] + a * sn[i])) * qscale;
        const bf16_t* kr = qkvBuf + (DP_NH + kvh) * DP_HD;
        const float ka = toF(ldcgBf(kr + i)), kb = toF(ldcgBf(kr + DP_HD / 2 + i));
        kself[i] = fromF<bf16_t>(ka * cs[i] - kb * sn[i]);
        kself[DP_HD / 2 + i] = fromF<bf16_t>(kb * cs[i] + ka * sn[i]);
      } else if (tid < DP_HD / 2 + DP_HD) {
        const int i = tid - DP_HD / 2;
        vself[i] = ldcgBf(qkvBuf + (DP_NH + DP_NKV + kvh) * DP_HD + i);
      }
      consumerSync();
      if (h % (DP_NH / DP_NKV) == 0 && z == 0 && tid < DP_HD) {  // the token's k and v into the cache (one block per kv head)
        kvc[kvCacheOffset(blockTable, pos, 0, tokensPerBlock, rowWidth) + kvh * DP_HD + tid] = kself[tid];
        kvc[kvCacheOffset(blockTable, pos, 1, tokensPerBlock, rowWidth) + kvh * DP_HD + tid] = vself[tid];
      }
      // Keys in chunks of DP_MAXCTX (scores staged in shared memory), online softmax across chunks.
      const int dc = tid & 7, kg = tid >> 3;  // PV: thread (key group kg of 32, dim chunk dc of 8)
      float acc[8];
#pragma unroll
      for (int e = 0; e < 8; e++) acc[e] = 0.f;
      float m = -LLMRT_INF, l = 0.f;
      for (int c0 = kLo; c0 < kHi; c0 += DP_MAXCTX) {
        const int c1 = min(kHi, c0 + DP_MAXCTX);
        if (c0 > kLo) consumerSync();  // the previous chunk's reads of sc (PV) and red are done
        float mx = -LLMRT_INF;
        // Scores: one key per thread; DP_ATT_ILP keys' rows in flight per thread before any is used.
        for (int j0 = c0 + tid; j0 < c1; j0 += 256 * DP_ATT_ILP) {
          uint4 kr[DP_ATT_ILP][8];
#pragma unroll
          for (int u = 0; u < DP_ATT_ILP; u++) {
            const int j = j0 + 256 * u;
            const bf16_t* kp = j == pos ? kself : kvc + kvCacheOffset(blockTable, j < c1 ? j : j0, 0, tokensPerBlock, rowWidth) + kvh * DP_HD;
#pragma unroll
            for (int c = 0; c < 8; c++) kr[u][c] = *reinterpret_cast<const uint4*>(kp + c * 8);
          }
#pragma unroll
          for (int u = 0; u < DP_ATT_ILP; u++) {
            const int j = j0 + 256 * u;
            float d = 0.f;
#pragma unroll
            for (int c = 0; c < 8; c++) {
              float kf[8];
              dpUnpack8(kr[u][c], kf);
#pragma unroll
              for (int e = 0; e < 8; e++) d = fmaf(qf[c * 8 + e], kf[e], d);
            }
            if (j < c1) {
              sc[j - c0] = d;
              mx = fmaxf(mx, d);
            }
          }
        }
        mx = warpMax(mx);
        if (lane == 0) red[warp] = mx;
        consumerSync();
#pragma unroll
        for (int w = 0; w < DP_NCW; w++) mx = fmaxf(mx, red[w]);
        const float mNew = fmaxf(m, mx), alpha = exp2f(m - mNew);  // alpha 0 on the first chunk
        float sum = 0.f;
        for (int j = c0 + tid; j < c1; j += 256) {
          const float p = exp2f(sc[j - c0] - mNew);
          sc[j - c0] = p;
          sum += p;
        }
        sum = warpSum(sum);
        consumerSync();  // red (max) read by all before reuse
        if (lane == 0) red[warp] = sum;
        consumerSync();  // sc and red visible
        float cs_ = 0.f;
#pragma unroll
        for (int w = 0; w < DP_NCW; w++) cs_ += red[w];
        l = l * alpha + cs_;
        m = mNew;
#pragma unroll
        for (int e = 0; e < 8; e++) acc[e] *= alpha;
#if DP_PV_UNROLL >= 16
#pragma unroll 16
#else
#pragma unroll 8
#endif
        for (int j = c0 + kg; j < c1; j += 32) {
          const bf16_t* vp = j == pos ? vself : kvc + kvCacheOffset(blockTable, j, 1, tokensPerBlock, rowWidth) + kvh * DP_HD;
          float vf[8];
          dpUnpack8(*reinterpret_cast<const uint4*>(vp + dc * 8), vf);
          const float p = sc[j - c0];
#pragma unroll
          for (int e = 0; e < 8; e++) acc[e] = fmaf(p, vf[e], acc[e]);
        }
      }
#pragma unroll
      for (int e = 0; e < 8; e++) pvr[kg * DP_HD + dc * 8 + e] = acc[e];
      consumerSync();
      if (tid < DP_HD) {
        float o = 0.f;
        for (int g = 0; g < 32; g++) o += pvr[g * DP_HD + tid];
        if (S == 1) {
          attnBuf[h * DP_HD + tid] = fromF<bf16_t>(o / l);
        } else {  // this split's unnormalized output and (m, l), merged in the o_proj prologue
          float* pp = attnPart + (h * DP_MAXS + z) * (DP_HD + 2);
          pp[tid] = o;
          if (tid == 0) { pp[DP_HD] = m; pp[DP_HD + 1] = l; }
        }
      }
      dpSignal(ctr + 1);
    }
    // ---- 2: o_proj (+ residual)
    dpWaitCounter(ctr + 1, DP_NH * S);
    if (S == 1) {
      *reinterpret_cast<uint4*>(xs + tid * 8) = ldcg16(attnBuf + tid * 8);
    } else {  // merge the splits: thread tid makes attention outputs 8 tid .. 8 tid + 7 (head tid / 8)
      const int h = tid >> 3, d0 = (tid & 7) * 8;
      const float* pp = attnPart + h * DP_MAXS * (DP_HD + 2);
      float mz[DP_MAXS], lz[DP_MAXS], M = -LLMRT_INF;
#pragma unroll
      for (int zz = 0; zz < DP_MAXS; zz++) {
        if (zz < S) {
          mz[zz] = dpLdcgF(pp + zz * (DP_HD + 2) + DP_HD);
          lz[zz] = dpLdcgF(pp + zz * (DP_HD + 2) + DP_HD + 1);
          M = fmaxf(M, mz[zz]);
        }
      }
      float o8[8], L_ = 0.f;
#pragma unroll
      for (int e = 0; e < 8; e++) o8[e] = 0.f;
#pragma unroll
      for (int zz = 0; zz < DP_MAXS; zz++) {
        if (zz < S) {
          const float wz = exp2f(mz[zz] - M);
          L_ += lz[zz] * wz;
#pragma unroll
          for (int e = 0; e < 8; e++) o8[e] = fmaf(dpLdcgF(pp + zz * (DP_HD + 2) + d0 + e), wz, o8[e]);
        }
      }
#pragma unroll
      for (int e = 0; e < 8; e++) o8[e] /= L_;
      store16(xs + tid * 8, o8);
    }
#else  // DP_ATT_KV: block kvh * S2 + z takes the GQ q heads of kv head kvh over keys [z keysPer2, (z + 1) keysPer2) (K/V read
       // once for the group); each split writes its partials, the last split of a kv head to finish merges them into attnBuf
    if (b < DP_NKV * S2) {
      dpWaitCounter(ctr + 0, G);
      constexpr int GQ = DP_NH / DP_NKV;
      constexpr int CH = DP_MAXCTX / GQ;  // keys per score chunk (GQ heads' scores staged)
      const int kvh = b / S2, z = b - kvh * S2;
      const int kLo = z * keysPer2, kHi = min(pos + 1, kLo + keysPer2);
      const float qscale = scale * LLMRT_LOG2E;
      if (tid < DP_HD / 2) {
        double sv, cv;
        sincos(invFreq[tid] * (double)pos, &sv, &cv);
        cs[tid] = (float)(cv * (double)attnScaling);
        sn[tid] = (float)(sv * (double)attnScaling);
      }
      consumerSync();
      if (tid < GQ * 32) {
        const int g = tid >> 5, i = tid & 31, h = kvh * GQ + g;
        const float a = toF(ldcgBf(qkvBuf + h * DP_HD + i)), c = toF(ldcgBf(qkvBuf + h * DP_HD + DP_HD / 2 + i));
        qf4[g * DP_HD + i] = toF(fromF<bf16_t>(a * cs[i] - c * sn[i])) * qscale;
        qf4[g * DP_HD + DP_HD / 2 + i] = toF(fromF<bf16_t>(c * cs[i] + a * sn[i])) * qscale;
      } else if (tid < GQ * 32 + DP_HD / 2) {
        const int i = tid - GQ * 32;
        const bf16_t* kr = qkvBuf + (DP_NH + kvh) * DP_HD;
        const float ka = toF(ldcgBf(kr + i)), kb = toF(ldcgBf(kr + DP_HD / 2 + i));
        kself[i] = fromF<bf16_t>(ka * cs[i] - kb * sn[i]);
        kself[DP_HD / 2 + i] = fromF<bf16_t>(kb * cs[i] + ka * sn[i]);
      } else if (tid < GQ * 32 + DP_HD / 2 + DP_HD) {
        const int i = tid - GQ * 32 - DP_HD / 2;
        vself[i] = ldcgBf(qkvBuf + (DP_NH + DP_NKV + kvh) * DP_HD + i);
      }
      consumerSync();
      if (z == 0 && tid < DP_HD) {
        kvc[kvCacheOffset(blockTable, pos, 0, tokensPerBlock, rowWidth) + kvh * DP_HD + tid] = kself[tid];
        kvc[kvCacheOffset(blockTable, pos, 1, tokensPerBlock, rowWidth) + kvh * DP_HD + tid] = vself[tid];
      }
      const int dc = tid & 7, kg = tid >> 3;
      float acc[GQ][8], m[GQ], l[GQ];
#pragma unroll
      for (int g = 0; g < GQ; g++) {
        m[g] = -LLMRT_INF;
        l[g] = 0.f;
#pragma unroll
        for (int e = 0; e < 8; e++) acc[g][e] = 0.f;
      }
      for (int c0 = kLo; c0 < kHi; c0 += CH) {
        const int c1 = min(kHi, c0 + CH);
        if (c0 > kLo) consumerSync();
        float mx[GQ];
#pragma unroll
        for (int g = 0; g < GQ; g++) mx[g] = -LLMRT_INF;
        for (int j = c0 + tid; j < c1; j += 256) {
          const bf16_t* kp = j == pos ? kself : kvc + kvCacheOffset(blockTable, j, 0, tokensPerBlock, rowWidth) + kvh * DP_HD;
          uint4 kr[8];
#pragma unroll
          for (int c = 0; c < 8; c++) kr[c] = *reinterpret_cast<const uint4*>(kp + c * 8);
          float d[GQ];
#pragma unroll
          for (int g = 0; g < GQ; g++) d[g] = 0.f;
#pragma unroll
          for (int c = 0; c < 8; c++) {
            float kf[8];
            dpUnpack8(kr[c], kf);
#pragma unroll
            for (int g = 0; g < GQ; g++)
#pragma unroll
              for (int e = 0; e < 8; e++) d[g] = fmaf(qf4[g * DP_HD + c * 8 + e], kf[e], d[g]);
          }
#pragma unroll
          for (int g = 0; g < GQ; g++) {
            sc[g * CH + j - c0] = d[g];
            mx[g] = fmaxf(mx[g], d[g]);
          }
        }
#pragma unroll
        for (int g = 0; g < GQ; g++) {
          mx[g] = warpMax(mx[g]);
          if (lane == 0) red[g * DP_NCW + warp] = mx[g];
        }
        consumerSync();
        float mNew[GQ], alpha[GQ], sum[GQ];
#pragma unroll
        for (int g = 0; g < GQ; g++) {
          float t = red[g * DP_NCW];
#pragma unroll
          for (int w = 1; w < DP_NCW; w++) t = fmaxf(t, red[g * DP_NCW + w]);
          mNew[g] = fmaxf(m[g], t);
          alpha[g] = exp2f(m[g] - mNew[g]);
          sum[g] = 0.f;
        }
        for (int j = c0 + tid; j < c1; j += 256) {
#pragma unroll
          for (int g = 0; g < GQ; g++) {
            const float p = exp2f(sc[g * CH + j - c0] - mNew[g]);
            sc[g * CH + j - c0] = p;
            sum[g] += p;
          }
        }
#pragma unroll
        for (int g = 0; g < GQ; g++) sum[g] = warpSum(sum[g]);
        consumerSync();
        if (lane == 0) {
#pragma unroll
          for (int g = 0; g < GQ; g++) red[g * DP_NCW + warp] = sum[g];
        }
        consumerSync();
#pragma unroll
        for (int g = 0; g < GQ; g++) {
          float t = 0.f;
#pragma unroll
          for (int w = 0; w < DP_NCW; w++) t += red[g * DP_NCW + w];
          l[g] = l[g] * alpha[g] + t;
          m[g] = mNew[g];
#pragma unroll
          for (int e = 0; e < 8; e++) acc[g][e] *= alpha[g];
        }
#pragma unroll 8
        for (int j = c0 + kg; j < c1; j += 32) {
          const bf16_t* vp = j == pos ? vself : kvc + kvCacheOffset(blockTable, j, 1, tokensPerBlock, rowWidth) + kvh * DP_HD;
          float vf[8];
          dpUnpack8(*reinterpret_cast<const uint4*>(vp + dc * 8), vf);
#pragma unroll
          for (int g = 0; g < GQ; g++) {
            const float p = sc[g * CH + j - c0];
#pragma unroll
            for (int e = 0; e < 8; e++) acc[g][e] = fmaf(p, vf[e], acc[g][e]);
          }
        }
      }
      // Sum over the 32 key groups, one head at a time; this split's partials to attnPart.
#pragma unroll
      for (int g = 0; g < GQ; g++) {
#pragma unroll
        for (int e = 0; e < 8; e++) pvr[kg * DP_HD + dc * 8 + e] = acc[g][e];
        consumerSync();
        if (tid < DP_HD) {
          float o = 0.f;
          for (int k = 0; k < 32; k++) o += pvr[k * DP_HD + tid];
          float* pp = attnPart + ((kvh * GQ + g) * DP_MAXS2 + z) * (DP_HD + 2);
          pp[tid] = o;
          if (tid == 0) {
            pp[DP_HD] = m[g];
            pp[DP_HD + 1] = l[g];
          }
        }
        consumerSync();
      }
      int* kc = counters + numLayers * 5 + 1 + L * DP_NKV + kvh;
      if (tid == 0) {
        __threadfence();
        amLast = atomicAdd(kc, 1) == S2 - 1;
      }
      consumerSync();
      if (amLast) {  // the kv head's last split: merge its GQ heads into attnBuf (thread: head tid / 64, dim tid % 64)
        __threadfence();
        const int g = tid / DP_HD, d = tid % DP_HD, h = kvh * GQ + g;
        const float* pp = attnPart + h * DP_MAXS2 * (DP_HD + 2);
        float M = -LLMRT_INF;
        for (int zz = 0; zz < S2; zz++) M = fmaxf(M, dpLdcgF(pp + zz * (DP_HD + 2) + DP_HD));
        float o = 0.f, L_ = 0.f;
        for (int zz = 0; zz < S2; zz++) {
          const float wz = exp2f(dpLdcgF(pp + zz * (DP_HD + 2) + DP_HD) - M);
          L_ += dpLdcgF(pp + zz * (DP_HD + 2) + DP_HD + 1) * wz;
          o = fmaf(dpLdcgF(pp + zz * (DP_HD + 2) + d), wz, o);
        }
        attnBuf[h * DP_HD + d] = fromF<bf16_t>(o / L_);
        if (tid == 0) *kc = 0;  // zero for the next launch (every split has counted in)
        dpSignal(ctr + 1);
      }
    }
    // ---- 2: o_proj (+ residual)
    dpWaitCounter(ctr + 1, DP_NKV);
    *reinterpret_cast<uint4*>(xs + tid * 8) = ldcg16(attnBuf + tid * 8);
#endif
    consumerSync();
    dpLoadX(xs, lane, xf);
    for (int r = oLo; r < oHi; r += DP_RK) {
      const int n = min(DP_RK, oHi - r);
      const bf16_t* w = take();
      if (warp < n) {
        const float s = dpDot(w + warp * DP_H, xf, lane);
        if (lane == 0) {
          bf16_t* yb = resid + r + warp;
          *yb = fromF<bf16_t>(toF(fromF<bf16_t>(s)) + toF(ldcgBf(yb)));
        }
      }
      release();
    }
    dpSignal(ctr + 2);
    // ---- 3: gate_up + silu * mul (sums kept in shared memory, combined once at the end of the phase)
    dpWaitCounter(ctr + 2, G);
    dpNorm(resid, ly.ln2, eps, xs, red);
    dpLoadX(xs, lane, xf);
    for (int r = gLo; r < gHi; r += 4) {
      const int n = min(4, gHi - r);
      const bf16_t* w = take();
      const int gi = warp & 3;
      if (gi < n) {
        const float s = dpDot(w + warp * DP_H, xf, lane);  // warps 0-3 gate rows, 4-7 up rows
        if (lane == 0) guS[warp >> 2][r - gLo + gi] = toF(fromF<bf16_t>(s));
      }
      release();
    }
    consumerSync();
    if (tid < gHi - gLo) actBuf[gLo + tid] = fromF<bf16_t>(dpSilu(guS[0][tid]) * guS[1][tid]);
    dpSignal(ctr + 3);
    // ---- 4: down (+ residual), 4 warps per row (quarter sums in shared memory, combined at the end of the phase)
    dpWaitCounter(ctr + 3, G);
    constexpr int QV = DP_I / 8 / 4;  // vectors per quarter row
    {  // this warp's quarter of act straight into registers (L2)
      uint4 av[8];
#pragma unroll
      for (int u = 0; u < 8; u++) av[u] = ldcg16(actBuf + ((warp & 3) * QV + lane + 32 * u) * 8);
#pragma unroll
      for (int u = 0; u < 8; u++) dpUnpack8(av[u], xf[u]);
    }
    for (int r = dLo; r < dHi; r += DP_RD) {
      const int n = min(DP_RD, dHi - r);
      const bf16_t* w = take();
      const int ri = warp >> 2, q = warp & 3;
      if (ri < n) {
        const float s = dpDot(w + ri * DP_I + q * QV * 8, xf, lane);
        if (lane == 0) dS[r - dLo + ri][q] = s;
      }
      release();
    }
    consumerSync();
    if (tid < dHi - dLo) {
      const float t = dS[tid][0] + dS[tid][1] + dS[tid][2] + dS[tid][3];
      bf16_t* yb = resid + dLo + tid;
      *yb = fromF<bf16_t>(toF(fromF<bf16_t>(t)) + toF(ldcgBf(yb)));
    }
    dpSignal(ctr + 4);
  }
  // Self-reset: the last block out zeroes every counter (all blocks are past their last wait when they
  // count out), so the next launch finds them zero with no memset in the graph.
  if (tid == 0) {
    int* exitCtr = counters + numLayers * 5;
    if (atomicAdd(exitCtr, 1) == G - 1) {
      for (int i = 0; i <= numLayers * 5; i++) counters[i] = 0;
      __threadfence();
    }
  }
}
