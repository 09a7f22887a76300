// Token sampling, one block per logits row: greedy argmax (lowest index on ties) or temperature /
// top-k / top-p / min-p sampling that picks the token lib/backends/cpu/sampling.ts `sampleRow` picks
// for the same uniform, with the same counter-based hash (`uniformFor`).
//
// sampleRow sorts by (logit desc, index asc), keeps the top-k, then the shortest prefix whose
// renormalised mass reaches top-p, then the prefix with p / sum >= minP * p_max / sum, and walks the
// cumulative sum of exp((logit - max) / T) to u * sum. Every one of those cuts is a prefix of the sorted
// order, so no sort is needed: each cut is a "crossing" (the first element, in sorted order, where the
// running count or mass reaches a target), found by a most-significant-digit radix search over the
// 64-bit key (orderedLogitBits << ib | (2^ib - 1 - index)) whose descending order IS sampleRow's order.
// Probabilities and sums are float64 like the TypeScript; only summation order differs, so a token can
// differ only when u * sum lies within float64 rounding (~1e-16 relative) of a cumulative boundary.
//
// extern "C" __global__ void sample_bf16(const bf16_t* logits, int vocab, const float* temperature, const int* topK,
//     const float* topP, const float* minP, const unsigned* seed, const int* step, int* outIds)
// extern "C" __global__ void sample_f32 (const float*  logits, ...same...)
//   logits [rows, vocab]; per row: temperature (0 = greedy), topK (0 = off), topP (1 = off), minP (0 = off),
//   seed [rows * 2] (lo, hi u32 words), step [rows] (draw counter); outIds [rows] int32.
//   grid (rows, 1, 1)   block (512, 1, 1) (a multiple of 32, at most 512)   shared ~42 KB static
//
// extern "C" __global__ void sample_uniform(const unsigned* seed, const int* step, double* out, int rows)
//   out[r] = uniformFor(seed[2r], seed[2r + 1], step[r]) (float64, bit-exact); grid (ceil(rows / 128))  block (128)
//
// extern "C" __global__ void apply_token_mask(float* logits, int vocab, const unsigned* masks, int words, const int* maskIndex)
//   Guided decoding: row r with m = maskIndex[r] >= 0 gets logits[r, i] = -inf wherever bit (i % 32) of
//   masks[m * words + i / 32] is 0 (xgrammar's packed bitmask); rows with m < 0 are untouched. Runs before
//   sample_f32.   grid (ceil(vocab / 256), rows, 1)   block (256)
#include "common.cuh"

#define SAMPLE_RADIX_BITS 8
#define SAMPLE_MAX_WARPS 16   // blockDim.x <= 512
#ifndef SAMPLE_LIST_CAP
#define SAMPLE_LIST_CAP 2048  // candidates kept in shared memory once a cut leaves this few
#endif

__device__ __forceinline__ u32 mix32(u32 h) {
  h ^= h >> 16;
  h *= 0x85ebca6bu;
  h ^= h >> 13;
  h *= 0xc2b2ae35u;
  h ^= h >> 16;
  return h;
}

/** The uniform in (0, 1) for (seed, step); bit-identical to uniformFor in lib/backends/cpu/sampling.ts. */
__device__ __forceinline__ double uniformFor(u32 seedLo, u32 seedHi, int step) {
  const u32 h = mix32(mix32(mix32(seedLo ^ 0x9e3779b9u) ^ seedHi) ^ (((u32)step + 1u) * 0x632be5abu));
  return ((double)h + 0.5) / 4294967296.0;
}

/** Sort key: larger = earlier in sampleRow's order (logit desc, then index asc). -0 ties with +0. */
__device__ __forceinline__ u64 sampleKey(float v, int i, int ib, u32 imask) {
  u32 u = __float_as_uint(v);
  if ((u << 1) == 0u) u = 0u;
  const u32 k = (u & 0x80000000u) ? ~u : (u | 0x80000000u);
  return ((u64)k << ib) | (u64)(imask - (u32)i);
}

struct SampleShared {
  double hist[SAMPLE_MAX_WARPS][1 << SAMPLE_RADIX_BITS];  // per-warp partial histograms: no atomics, fixed merge order
  int list[SAMPLE_LIST_CAP];                              // compacted candidate indices
  double redD[32];
  u64 redU[32];
  float redF[32];
  int redI[32];
  u64 prefix;
  double above;
  int found;
  int listN;
};

template <typename T>
struct RowView {
  const T* x;
  int V, ib;
  u32 imask;
  double maxL, invT;
  u64 lo;        // kept set so far: keys >= lo (a prefix of the sorted order)
  bool minPOn;
  u64 rmax;      // key of the first element (always kept)
  double sum1, floor;
};

/** Whether element (v, R) is in the kept set; *p = exp((v - max) / T). */
template <typename T>
__device__ __forceinline__ bool keepElem(const RowView<T>& rv, float v, u64 R, double* p) {
  if (R < rv.lo) return false;
  *p = exp(((double)v - rv.maxL) * rv.invT);
  if (rv.minPOn && R != rv.rmax && !(*p / rv.sum1 >= rv.floor)) return false;
  return true;
}

__device__ __forceinline__ double blockSumD(double v, double* sh) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  const int w = threadIdx.x >> 5, l = threadIdx.x & 31, nw = blockDim.x >> 5;
  __syncthreads();
  if (l == 0) sh[w] = v;
  __syncthreads();
  double s = 0.0;
  for (int i = 0; i < nw; i++) s += sh[i];  // same order in every thread
  return s;
}

__device__ __forceinline__ u64 blockMinU64(u64 v, u64* sh) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const u64 y = __shfl_xor_sync(0xffffffffu, v, o);
    v = y < v ? y : v;
  }
  const int w = threadIdx.x >> 5, l = threadIdx.x & 31, nw = blockDim.x >> 5;
  __syncthreads();
  if (l == 0) sh[w] = v;
  __syncthreads();
  u64 m = sh[0];
  for (int i = 1; i < nw; i++) m = sh[i] < m ? sh[i] : m;
  return m;
}

/**
 * Replaces sm.list with the indices whose key has `prefix` above bit `shift` (shift = 64: any) and is >= lo,
 * when at most SAMPLE_LIST_CAP of them exist. Returns whether the list holds them all. Warp-aggregated slots.
 */
template <typename T>
__device__ bool buildList(const RowView<T>& rv, int shift, u64 prefix, SampleShared& sm) {
  const int tid = threadIdx.x, lane = tid & 31, NT = blockDim.x;
  __syncthreads();  // earlier readers of sm.list / sm.listN are done
  if (tid == 0) sm.listN = 0;
  __syncthreads();
  for (int i0 = 0; i0 < rv.V; i0 += NT) {
    const int i = i0 + tid;
    bool in = false;
    if (i < rv.V) {
      const u64 R = sampleKey(toF(rv.x[i]), i, rv.ib, rv.imask);
      in = (shift >= 64 || (R >> shift) == prefix) && R >= rv.lo;
    }
    const unsigned bal = __ballot_sync(0xffffffffu, in);
    if (bal) {
      int base = 0;
      if (lane == __ffs(bal) - 1) base = atomicAdd(&sm.listN, __popc(bal));
      base = __shfl_sync(0xffffffffu, base, __ffs(bal) - 1);
      const int slot = base + __popc(bal & ((1u << lane) - 1u));
      if (in && slot < SAMPLE_LIST_CAP) sm.list[slot] = i;
    }
  }
  __syncthreads();
  return sm.listN <= SAMPLE_LIST_CAP;
}

/**
 * The first element in sorted order at which the running count (countMode) or mass of kept elements
 * reaches target (>= target, or > target when strict). Returns false when the total stays short of it.
 * Radix digits of SAMPLE_RADIX_BITS from the top; per digit a histogram of count/mass per bucket among
 * elements matching the prefix chosen so far, then warp 0 walks the buckets from the top. Elements come
 * from sm.list when useList (the caller's kept set), else from the whole row; after the first digit the
 * chosen bucket's elements move to sm.list when they fit, so later digits skip the row scan.
 */
template <typename T>
__device__ bool radixCross(const RowView<T>& rv, bool countMode, double target, bool strict, bool useList, SampleShared& sm, u64* out) {
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, NT = blockDim.x, nw = NT >> 5;
  const int NB = 32 + rv.ib;
  u64 P = 0;
  bool list = useList;
  __syncthreads();
  if (tid == 0) sm.above = 0.0;
  int hiShift = NB;
  while (hiShift > 0) {
    const int width = min(SAMPLE_RADIX_BITS, hiShift), shift = hiShift - width, bins = 1 << width;
    for (int b = tid; b < nw * bins; b += NT) sm.hist[b / bins][b % bins] = 0.0;
    __syncthreads();
    const int n = list ? sm.listN : rv.V;
    for (int k0 = 0; k0 < n; k0 += NT) {
      const int k = k0 + tid;
      int bucket = -1;
      double mass = 0.0;
      if (k < n) {
        const int i = list ? sm.list[k] : k;
        const float v = toF(rv.x[i]);
        const u64 R = sampleKey(v, i, rv.ib, rv.imask);
        double p = 1.0;
        if ((R >> hiShift) == P && (countMode ? R >= rv.lo : keepElem(rv, v, R, &p))) {
          bucket = (int)((R >> shift) & (u64)(bins - 1));
          mass = p;
        }
      }
      if (__any_sync(0xffffffffu, bucket >= 0)) {
        // One writer per bucket per warp (the lowest lane of its peers) into the warp's own histogram.
        const unsigned peers = __match_any_sync(0xffffffffu, bucket);
        double sum = mass;
        if (countMode) {
          sum = (double)__popc(peers);
        } else if (!__all_sync(0xffffffffu, bucket < 0 || peers == (1u << lane))) {
          sum = 0.0;
          for (int l = 0; l < 32; l++) {
            const double m = __shfl_sync(0xffffffffu, mass, l);
            if ((peers >> l) & 1u) sum += m;
          }
        }
        if (bucket >= 0 && lane == __ffs(peers) - 1) sm.hist[warp][bucket] += sum;
        __syncwarp();
      }
    }
    __syncthreads();
    for (int b = tid; b < bins; b += NT) {  // merge the warps' histograms, fixed order
      double t = sm.hist[0][b];
      for (int w = 1; w < nw; w++) t += sm.hist[w][b];
      sm.hist[0][b] = t;
    }
    __syncthreads();
    if (warp == 0) {
      // Lane L owns bins [hiB - chunk + 1, hiB], lane 0 the top ones; inclusive scan from the top.
      const int chunk = (bins + 31) >> 5;
      const int hiB = bins - 1 - lane * chunk;
      const int loB = max(0, hiB - chunk + 1);
      double s = 0.0;
      for (int b = hiB; b >= loB; b--) s += sm.hist[0][b];
      double incl = s;
#pragma unroll
      for (int o = 1; o < 32; o <<= 1) {
        const double y = __shfl_up_sync(0xffffffffu, incl, o);
        if (lane >= o) incl += y;
      }
      const double above = sm.above;
      // Only a lane holding mass can hold the crossing (a target <= 0 is reached at the first element).
      const bool cross = s > 0.0 && (strict ? (above + incl > target) : (above + incl >= target));
      const unsigned bal = __ballot_sync(0xffffffffu, cross);
      if (bal == 0u) {
        if (lane == 0) sm.found = 0;
      } else if (lane == __ffs(bal) - 1) {
        double run = above + (incl - s);
        int pick = -1, lastNZ = -1;
        double runAtPick = 0.0, runAtLast = 0.0;
        for (int b = hiB; b >= loB; b--) {
          const double hb = sm.hist[0][b];
          if (hb > 0.0) {
            lastNZ = b;
            runAtLast = run;
            if (strict ? (run + hb > target) : (run + hb >= target)) { pick = b; runAtPick = run; break; }
            run += hb;
          }
        }
        if (pick < 0) { pick = lastNZ; runAtPick = runAtLast; }  // the lane sum crossed only by rounding
        sm.found = pick >= 0 ? 1 : 0;
        sm.prefix = (P << width) | (u64)(pick < 0 ? 0 : pick);
        sm.above = runAtPick;
      }
    }
    __syncthreads();
    if (!sm.found) return false;
    P = sm.prefix;
    hiShift = shift;
    if (!list && hiShift > 0) list = buildList(rv, hiShift, P, sm);
  }
  *out = P;
  return true;
}

#ifndef SAMPLE_U
#define SAMPLE_U 16  // 16-byte f32 logits loads in flight per thread in the argmax (bf16: half as many)
#endif

/**
 * Argmax of elements [e0, e1) of row x (lowest index on ties; NaN never wins; all NaN: index 0x7fffffff, value -inf),
 * the block's result in every thread. 16-byte loads, SAMPLE_U of them in flight per thread (4 running maxima): a
 * batch-1 row of 128K logits read by one SM is bound by the loads in flight (4 loads: ~16 us for llama's 513 KB of
 * f32 logits on an H200). e0 and e1 multiples of Vec16<T>::N when x is 16-byte aligned and V % N == 0.
 */
template <typename T>
__device__ __forceinline__ void rowArgmax(const T* x, int V, int e0, int e1, SampleShared& sm, float& outV, int& outI) {
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, NT = blockDim.x, nw = NT >> 5;
  // (value desc, index asc) is a total order, so the partial maxima can be merged in any order.
  float bv = -LLMRT_INF;
  int bi = 0x7fffffff;
  constexpr int N = Vec16<T>::N;
  if (V % N == 0 && aligned16(x)) {
    float pv[4];
    int pi[4];
#pragma unroll
    for (int u = 0; u < 4; u++) { pv[u] = -LLMRT_INF; pi[u] = 0x7fffffff; }
    const int nv = e1 / N;
    int j = e0 / N + tid;
    constexpr int U = SAMPLE_U * 4 / N;  // the same bytes in flight for bf16 and f32 logits
    for (; j + (U - 1) * NT < nv; j += U * NT) {
      float f[U][N];
#pragma unroll
      for (int u = 0; u < U; u++) load16(x + (long long)(j + u * NT) * N, f[u]);
#pragma unroll
      for (int u = 0; u < U; u++)
#pragma unroll
        for (int e = 0; e < N; e++) {
          const int i = (j + u * NT) * N + e;
          if (f[u][e] > pv[u & 3] || (f[u][e] == pv[u & 3] && i < pi[u & 3])) { pv[u & 3] = f[u][e]; pi[u & 3] = i; }
        }
    }
    for (; j < nv; j += NT) {
      float f[N];
      load16(x + (long long)j * N, f);
#pragma unroll
      for (int e = 0; e < N; e++) {
        const int i = j * N + e;
        if (f[e] > pv[0] || (f[e] == pv[0] && i < pi[0])) { pv[0] = f[e]; pi[0] = i; }
      }
    }
#pragma unroll
    for (int u = 0; u < 4; u++)
      if (pv[u] > bv || (pv[u] == bv && pi[u] < bi)) { bv = pv[u]; bi = pi[u]; }
  } else {
    for (int i = e0 + tid; i < e1; i += NT) {
      const float v = toF(x[i]);
      if (v > bv || (v == bv && i < bi)) { bv = v; bi = i; }
    }
  }
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const float ov = __shfl_xor_sync(0xffffffffu, bv, o);
    const int oi = __shfl_xor_sync(0xffffffffu, bi, o);
    if (ov > bv || (ov == bv && oi < bi)) { bv = ov; bi = oi; }
  }
  __syncthreads();  // earlier readers of sm.redF / sm.redI are done
  if (lane == 0) { sm.redF[warp] = bv; sm.redI[warp] = bi; }
  __syncthreads();
  bv = sm.redF[0];
  bi = sm.redI[0];
  for (int w = 1; w < nw; w++) {
    const float ov = sm.redF[w];
    const int oi = sm.redI[w];
    if (ov > bv || (ov == bv && oi < bi)) { bv = ov; bi = oi; }
  }
  outV = bv;
  outI = bi;
}

template <typename T>
__device__ __forceinline__ void sampleRest(const T* x, int V, int r, float bv, int bi, const float* temperature, const int* topK, const float* topP,
    const float* minP, const u32* seed, const int* step, int* outIds, SampleShared& sm);

template <typename T>
__device__ __forceinline__ void sampleImpl(const T* logits, int V, const float* temperature, const int* topK, const float* topP,
    const float* minP, const u32* seed, const int* step, int* outIds) {
  __shared__ SampleShared sm;
  const int r = blockIdx.x;
  const T* x = logits + (long long)r * V;
  float bv;
  int bi;
  rowArgmax<T>(x, V, 0, V, sm, bv, bi);
  sampleRest<T>(x, V, r, bv, bi, temperature, topK, topP, minP, seed, step, outIds, sm);
}

template <typename T>
__device__ __forceinline__ void sampleRest(const T* x, int V, int r, float bv, int bi, const float* temperature, const int* topK, const float* topP,
    const float* minP, const u32* seed, const int* step, int* outIds, SampleShared& sm) {
  const int tid = threadIdx.x, NT = blockDim.x;
  if (bi == 0x7fffffff) bi = 0;  // all NaN: index 0, as the TypeScript does

  const float temp = temperature[r];
  const int k = topK[r];
  if (!(temp > 0.f) || k == 1) {
    if (tid == 0) outIds[r] = bi;
    return;
  }
  RowView<T> rv;
  rv.x = x;
  rv.V = V;
  rv.ib = V > 1 ? 32 - __clz(V - 1) : 1;
  rv.imask = rv.ib >= 32 ? 0xffffffffu : ((1u << rv.ib) - 1u);
  rv.maxL = (double)bv;
  rv.invT = 1.0 / (double)temp;
  rv.lo = 0;
  rv.minPOn = false;
  rv.rmax = sampleKey(bv, bi, rv.ib, rv.imask);
  rv.sum1 = 1.0;
  rv.floor = 0.0;

  // top-k: the k-th element in sorted order bounds the kept set; keep its k indices in shared memory.
  u64 c;
  bool keptList = false;  // sm.list holds every kept index (and possibly dropped ones, filtered by keepElem)
  if (k > 0 && k < V && radixCross(rv, true, (double)k, false, false, sm, &c)) {
    rv.lo = c;
    keptList = buildList(rv, 64, 0, sm);
  }
  // Mass (and last key) of the top-k set: sampleRow's `sum` for top-p and min-p.
  double s1 = 0.0;
  u64 rmin = ~0ull;
  {
    const int n = keptList ? sm.listN : V;
    for (int kk = tid; kk < n; kk += NT) {
      const int i = keptList ? sm.list[kk] : kk;
      const float v = toF(x[i]);
      const u64 R = sampleKey(v, i, rv.ib, rv.imask);
      double p;
      if (keepElem(rv, v, R, &p)) {
        s1 += p;
        rmin = R < rmin ? R : rmin;
      }
    }
  }
  s1 = blockSumD(s1, sm.redD);
  rmin = blockMinU64(rmin, sm.redU);
  rv.sum1 = s1;
  double s2 = s1;
  // top-p: the first element where the cumulative mass reaches topP * sum.
  const float tp = topP[r];
  const float mp = minP[r];
  if (tp < 1.f) {
    if (radixCross(rv, false, (double)tp * s1, false, keptList, sm, &c)) rv.lo = c;
    if (!keptList) keptList = buildList(rv, 64, 0, sm);
  }
  // min-p: keep p / sum >= minP * (p_max / sum), p_max = exp(0) = 1.
  if (mp > 0.f) {
    rv.minPOn = true;
    rv.floor = (double)mp * (1.0 / s1);
  }
  if (tp < 1.f || mp > 0.f) {
    // Final mass and the last kept element (the fallback when u * sum is not crossed by rounding).
    s2 = 0.0;
    rmin = ~0ull;
    const int n = keptList ? sm.listN : V;
    for (int kk = tid; kk < n; kk += NT) {
      const int i = keptList ? sm.list[kk] : kk;
      const float v = toF(x[i]);
      const u64 R = sampleKey(v, i, rv.ib, rv.imask);
      double p;
      if (keepElem(rv, v, R, &p)) {
        s2 += p;
        rmin = R < rmin ? R : rmin;
      }
    }
    s2 = blockSumD(s2, sm.redD);
    rmin = blockMinU64(rmin, sm.redU);
  }
  const double u = uniformFor(seed[2 * r], seed[2 * r + 1], step[r]);
  const u64 pick = radixCross(rv, false, u * s2, true, keptList, sm, &c) ? c : rmin;
  if (tid == 0) outIds[r] = (int)(rv.imask - (u32)(pick & (u64)rv.imask));
}

#if LLMRT_KERNEL(sample_bf16)
extern "C" __global__ void __launch_bounds__(512) sample_bf16(const bf16_t* logits, int vocab, const float* temperature, const int* topK,
    const float* topP, const float* minP, const u32* seed, const int* step, int* outIds) {
  pdlWait();  // the logits are the previous kernel's (a no-op without PDL)
  pdlLaunchDependents();
  sampleImpl<bf16_t>(logits, vocab, temperature, topK, topP, minP, seed, step, outIds);
}
#endif
#if LLMRT_KERNEL(sample_f32)
extern "C" __global__ void __launch_bounds__(512) sample_f32(const float* logits, int vocab, const float* temperature, const int* topK,
    const float* topP, const float* minP, const u32* seed, const int* step, int* outIds) {
  pdlWait();  // the logits are the previous kernel's (a no-op without PDL)
  pdlLaunchDependents();
  sampleImpl<float>(logits, vocab, temperature, topK, topP, minP, seed, step, outIds);
}
#endif
#if LLMRT_KERNEL(sample_uniform)
extern "C" __global__ void sample_uniform(const u32* seed, const int* step, double* out, int rows) {
  const int r = blockIdx.x * blockDim.x + threadIdx.x;
  if (r < rows) out[r] = uniformFor(seed[2 * r], seed[2 * r + 1], step[r]);
}
#endif
#if LLMRT_KERNEL(apply_token_mask)
extern "C" __global__ void apply_token_mask(float* logits, int vocab, const u32* masks, int words, const int* maskIndex) {
  const int m = maskIndex[blockIdx.y];
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (m < 0 || i >= vocab) return;
  const u32 w = masks[(long long)m * words + (i >> 5)];  // one word per 32 lanes: a broadcast load
  if (!((w >> (i & 31)) & 1u)) logits[(long long)blockIdx.y * vocab + i] = -LLMRT_INF;
}
#endif
