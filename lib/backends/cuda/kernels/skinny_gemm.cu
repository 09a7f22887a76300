// Skinny tensor-core GEMM for decode steps of 9–64 sequences (issue 16 item 3): y = epilogue(x W^T + bias) with
// x [m, k] bf16 (m <= 16 * MT rows; rows past m read as zeros), W [n, k] bf16 (a linear's weight as stored), fp32
// accumulation on mma.sync m16n8k16. Each block computes a 64-column tile of y for all rows over one K range
// (split z of gridDim.y), streaming W and x tiles of 64 along K through shared memory with cp.async (3 stages),
// so each weight byte is read once; the splits of a tile are merged by the last block to finish (a counter per
// tile), in split order (deterministic). A row's result does not depend on m (same tiles, same order).
//
// extern "C" __global__ void skinny_gemm_bf16_m{16|32|64}(const bf16_t* x, const bf16_t* W, const bf16_t* bias,
//     void* y, int m, int n, int k, int mode, float* ws, int* counters, int kSplit)
//   modes as gemv_fused (gemv.cu): 0 y bf16 [m, n] = xW^T + b; 1 y bf16 [m, n] += bf16(xW^T + b) (residual);
//   2 y bf16 [m, n/2] = silu(bf16(gate)) * bf16(up) of the fused gate_up weight (rows [0, n/2) gate, [n/2, n)
//   up; a block holds 32 gate columns and their 32 up columns); 3 y f32 [m, n] = xW^T + b (logits).
//   k % 64 == 0, kSplit % 64 == 0, x and W 16-byte aligned. bias optional (0).
//   grid (mode 2 ? ceil(n / 2 / 32) : ceil(n / 64), ceil(k / kSplit))   block (128)
//   gridDim.y > 1: ws f32 [gridDim.y, m, n] scratch, counters int [gridDim.x] ZERO before (left zero).
//   shared static 48 KB; no spills (nvcc 13, sm_90).
#include "common.cuh"

#define SG_BK 64
#define SG_BN 64
#define SG_STAGES 3

__device__ __forceinline__ u32 sgSmem(const void* p) {
  u64 g;
  asm("cvta.to.shared.u64 %0, %1;" : "=l"(g) : "l"(p));
  return (u32)g;
}
__device__ __forceinline__ void sgLdsm(u32 (&r)[4], const bf16_t* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(sgSmem(p)) : "memory");
}
__device__ __forceinline__ void sgMma(float (&d)[4], const u32 (&a)[4], u32 b0, u32 b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
__device__ __forceinline__ void sgCp16(bf16_t* dst, const bf16_t* src, int srcBytes) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(sgSmem(dst)), "l"(src), "r"(srcBytes) : "memory");
}
__device__ __forceinline__ float sgLdcg(const float* p) {
  float v;
  asm volatile("ld.global.cg.f32 %0, [%1];" : "=f"(v) : "l"(p));
  return v;
}
__device__ __forceinline__ float sgSilu(float g) { return g / (1.f + expf(-g)); }
/** Element offset of 16-byte chunk c of row r in a [rows, 64] bf16 tile, chunks XOR-swizzled by r % 8. */
__device__ __forceinline__ int sgSw(int r, int c) { return r * SG_BK + ((c ^ (r & 7)) << 3); }

template <int MT>
__device__ __forceinline__ void skinnyGemmImpl(const bf16_t* x, const bf16_t* W, const bf16_t* bias, void* y, int m, int n, int k,
    int mode, float* ws, int* counters, int kSplit) {
  constexpr int ROWS = MT * 16, XT = ROWS * SG_BK, WT = SG_BN * SG_BK, ST = XT + WT, CS = SG_BN + 4;
  // Stages of [x tile ROWS x 64, W tile 64 x 64]; after the loop the fp32 result tile [ROWS, CS] reuses them.
  __shared__ __align__(16) bf16_t sm[SG_STAGES * ST];
  static_assert(ROWS * CS * 4 <= SG_STAGES * ST * 2, "result tile fits the stages");
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g4 = lane >> 2, c4 = lane & 3;
  const int half = n >> 1;
  const int j0 = mode == 2 ? blockIdx.x * (SG_BN / 2) : blockIdx.x * SG_BN;
  // W row of local column c (mode 2: 32 gate rows, then their 32 up rows) and whether it exists.
  auto wrow = [&](int c) { return mode == 2 ? (c < SG_BN / 2 ? j0 + c : half + j0 + c - SG_BN / 2) : j0 + c; };
  auto wlive = [&](int c) { return mode == 2 ? j0 + (c & (SG_BN / 2 - 1)) < half : j0 + c < n; };
  const int z = blockIdx.y, splits = gridDim.y;
  const int kBeg = z * kSplit, kEnd = min(k, kBeg + kSplit), nIter = (kEnd - kBeg) / SG_BK;

  auto issue = [&](int it) {
    if (it < nIter) {
      bf16_t* xs = sm + (it % SG_STAGES) * ST;
      bf16_t* wsm = xs + XT;
      const int k0 = kBeg + it * SG_BK;
#pragma unroll
      for (int j = 0; j < XT / 8 / 128; j++) {
        const int i = tid + j * 128, r = i >> 3, c = i & 7;
        const bool ok = r < m;
        sgCp16(xs + sgSw(r, c), ok ? x + (long long)r * k + k0 + c * 8 : x, ok ? 16 : 0);
      }
#pragma unroll
      for (int j = 0; j < WT / 8 / 128; j++) {
        const int i = tid + j * 128, r = i >> 3, c = i & 7;
        const bool ok = wlive(r);
        sgCp16(wsm + sgSw(r, c), ok ? W + (long long)wrow(r) * k + k0 + c * 8 : W, ok ? 16 : 0);
      }
    }
    asm volatile("cp.async.commit_group;\n" ::: "memory");
  };

  float acc[MT][2][4];
#pragma unroll
  for (int a = 0; a < MT; a++)
#pragma unroll
    for (int b = 0; b < 2; b++) acc[a][b][0] = acc[a][b][1] = acc[a][b][2] = acc[a][b][3] = 0.f;
#pragma unroll
  for (int s = 0; s < SG_STAGES - 1; s++) issue(s);
  const int mi = lane >> 3;
  for (int it = 0; it < nIter; it++) {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(SG_STAGES - 2) : "memory");
    __syncthreads();  // stage it is in; every warp is done with stage it - 1, which the next issue refills
    issue(it + SG_STAGES - 1);
    const bf16_t* xs = sm + (it % SG_STAGES) * ST;
    const bf16_t* wsm = xs + XT;
#pragma unroll
    for (int kk = 0; kk < SG_BK / 16; kk++) {
      u32 b[4];
      sgLdsm(b, wsm + sgSw(warp * 16 + (mi >> 1) * 8 + (lane & 7), 2 * kk + (mi & 1)));
#pragma unroll
      for (int a = 0; a < MT; a++) {
        u32 af[4];
        sgLdsm(af, xs + sgSw(a * 16 + (mi & 1) * 8 + (lane & 7), 2 * kk + (mi >> 1)));
        sgMma(acc[a][0], af, b[0], b[1]);
        sgMma(acc[a][1], af, b[2], b[3]);
      }
    }
  }
  asm volatile("cp.async.wait_group 0;\n" ::: "memory");
  __syncthreads();
  float* C = reinterpret_cast<float*>(sm);  // [ROWS, CS]: this split's sums
#pragma unroll
  for (int a = 0; a < MT; a++)
#pragma unroll
    for (int b = 0; b < 2; b++) {
      const int col = warp * 16 + b * 8 + 2 * c4, r = a * 16 + g4;
      C[r * CS + col] = acc[a][b][0];
      C[r * CS + col + 1] = acc[a][b][1];
      C[(r + 8) * CS + col] = acc[a][b][2];
      C[(r + 8) * CS + col + 1] = acc[a][b][3];
    }
  __syncthreads();
  if (splits > 1) {
    for (int i = tid; i < m * SG_BN; i += 128) {
      const int r = i / SG_BN, c = i - r * SG_BN;
      if (wlive(c)) ws[((long long)z * m + r) * n + wrow(c)] = C[r * CS + c];
    }
    __threadfence();
    __syncthreads();
    int last = 0;
    if (tid == 0) last = atomicAdd(counters + blockIdx.x, 1) == splits - 1;
    if (!__syncthreads_or(last)) return;
    __threadfence();
    for (int i = tid; i < m * SG_BN; i += 128) {
      const int r = i / SG_BN, c = i - r * SG_BN;
      if (!wlive(c)) continue;
      float s = 0.f;
      for (int zz = 0; zz < splits; zz++) s += sgLdcg(ws + ((long long)zz * m + r) * n + wrow(c));
      C[r * CS + c] = s;
    }
    if (tid == 0) counters[blockIdx.x] = 0;
    __syncthreads();
  }
  // Epilogue (rounding as gemv_fused).
  if (mode == 2) {
    constexpr int HB = SG_BN / 2;
    for (int i = tid; i < m * HB; i += 128) {
      const int r = i / HB, c = i - r * HB;
      if (j0 + c >= half) continue;
      const float bg = bias ? toF(bias[j0 + c]) : 0.f, bu = bias ? toF(bias[half + j0 + c]) : 0.f;
      const float g = toF(fromF<bf16_t>(C[r * CS + c] + bg)), u = toF(fromF<bf16_t>(C[r * CS + HB + c] + bu));
      ((bf16_t*)y)[(long long)r * half + j0 + c] = fromF<bf16_t>(sgSilu(g) * u);
    }
    return;
  }
  for (int i = tid; i < m * SG_BN; i += 128) {
    const int r = i / SG_BN, c = i - r * SG_BN, col = j0 + c;
    if (col >= n) continue;
    const float s = C[r * CS + c] + (bias ? toF(bias[col]) : 0.f);
    const long long o = (long long)r * n + col;
    if (mode == 0) ((bf16_t*)y)[o] = fromF<bf16_t>(s);
    else if (mode == 1) ((bf16_t*)y)[o] = fromF<bf16_t>(toF(fromF<bf16_t>(s)) + toF(((bf16_t*)y)[o]));
    else ((float*)y)[o] = s;
  }
}

#define SKINNY_GEMM(MT, ROWS)                                                                                        \
  extern "C" __global__ void __launch_bounds__(128) skinny_gemm_bf16_m##ROWS(const bf16_t* x, const bf16_t* W,     \
      const bf16_t* bias, void* y, int m, int n, int k, int mode, float* ws, int* counters, int kSplit) {           \
    skinnyGemmImpl<MT>(x, W, bias, y, m, n, k, mode, ws, counters, kSplit);                                         \
  }
#if LLMRT_KERNEL(skinny_gemm_bf16_m16)
SKINNY_GEMM(1, 16)
#endif
#if LLMRT_KERNEL(skinny_gemm_bf16_m32)
SKINNY_GEMM(2, 32)
#endif
#if LLMRT_KERNEL(skinny_gemm_bf16_m64)
SKINNY_GEMM(4, 64)
#endif
