// CPU stand-ins for the device helpers of kernels/flash_prefill_wg.cu (built with -DLLMRT_EMU, after cuda_emu.h):
// shared memory is one 1024-byte-aligned arena whose byte offsets are the "shared addresses"; cp.async copies at
// once; wgmma runs at issue from the PTX layouts as this file models them (128-byte swizzle: 16-byte chunk bits 4-6
// XOR address bits 7-9; K-major rows 128 bytes apart, 8-row groups SBO apart; MN-major (transposed B) K rows 128
// bytes apart, 8-row groups SBO apart, 64-column blocks LBO apart; accumulators and register A in the mma.sync
// fragment layout of each warp's 16 rows). It checks the kernel's index math against that model, not the hardware.
#pragma once
#include <thread>

alignas(1024) inline unsigned char llmrtEmuArena[256 * 1024];
inline unsigned char* llmrtEmuDynSmem() { return llmrtEmuArena; }
__device__ __forceinline__ u32 fwSmem(const void* p) { return (u32)((const unsigned char*)p - llmrtEmuArena); }
__device__ __forceinline__ void fwCpAsync16(u32 dst, const void* src, int bytes) {
  if (bytes) memcpy(llmrtEmuArena + dst, src, 16);
  else memset(llmrtEmuArena + dst, 0, 16);
}
__device__ __forceinline__ void fwCommit() {}
template <int N>
__device__ __forceinline__ void fwWait() {}
__device__ __forceinline__ void fwFenceProxy() {}
__device__ __forceinline__ void wgFence() {}
__device__ __forceinline__ void wgCommit() {}
template <int N>
__device__ __forceinline__ void wgWait() {}
template <int N>
__device__ __forceinline__ void wgFenceRegs(float (&)[N]) {}
template <int N>
__device__ __forceinline__ void wgFenceRegs(u32 (&)[N][4]) {}
inline float llmrtEmuBfAt(u32 addr) {
  addr ^= ((addr >> 7) & 7) << 4;
  unsigned short b;
  memcpy(&b, llmrtEmuArena + addr, 2);
  return __uint_as_float((u32)b << 16);
}
inline u32 llmrtEmuStart(u64 d) { return (u32)(d & 0x3FFF) << 4; }
inline u32 llmrtEmuLbo(u64 d) { return (u32)((d >> 16) & 0x3FFF) << 4; }
inline u32 llmrtEmuSbo(u64 d) { return (u32)((d >> 32) & 0x3FFF) << 4; }
/** Element (r, k) of a K-major operand (r: M or N index, k < 16). */
inline float llmrtEmuKMajor(u64 d, int r, int k) { return llmrtEmuBfAt(llmrtEmuStart(d) + (r >> 3) * llmrtEmuSbo(d) + (r & 7) * 128 + k * 2); }
/** Element (k, n) of an MN-major (transposed) B operand (k < 16). */
inline float llmrtEmuMnMajor(u64 d, int k, int n) {
  return llmrtEmuBfAt(llmrtEmuStart(d) + (k >> 3) * llmrtEmuSbo(d) + (k & 7) * 128 + (n >> 6) * llmrtEmuLbo(d) + (n & 63) * 2);
}
/** Row and column of accumulator register i of this thread (m64nN: warp w of the warpgroup owns rows 16w ..). */
inline void llmrtEmuAcc(int i, int* row, int* col) {
  const int w = emuWarp & 3, g = emuLane >> 2, c = emuLane & 3;
  *row = 16 * w + g + 8 * ((i >> 1) & 1);
  *col = 8 * (i >> 2) + 2 * c + (i & 1);
}
template <int NR>
inline void llmrtEmuSS(float (&d)[NR], u64 da, u64 db, int scaleD) {
  for (int i = 0; i < NR; i++) {
    int r, n;
    llmrtEmuAcc(i, &r, &n);
    float acc = scaleD ? d[i] : 0.f;
    for (int k = 0; k < 16; k++) acc += llmrtEmuKMajor(da, r, k) * llmrtEmuKMajor(db, n, k);
    d[i] = acc;
  }
  emuBlk->wgBar[emuWarp >> 2]->arrive_and_wait();  // warpgroup-collective
}
template <int NR>
inline void llmrtEmuRS(float (&d)[NR], const u32 (&a)[4], u64 db) {
  uint64_t* mine = emuBlk->aux[emuWarp][emuLane];
  for (int j = 0; j < 4; j++) mine[j] = a[j];
  emuBlk->wgBar[emuWarp >> 2]->arrive_and_wait();
  float A[64][16];
  const int w0 = emuWarp & ~3;
  for (int w = 0; w < 4; w++) {
    for (int l = 0; l < 32; l++) {
      const uint64_t* f = emuBlk->aux[w0 + w][l];
      const int g = l >> 2, c = l & 3;
      for (int e = 0; e < 2; e++) {
        A[16 * w + g][2 * c + e] = emuBf((uint32_t)f[0], e);
        A[16 * w + g + 8][2 * c + e] = emuBf((uint32_t)f[1], e);
        A[16 * w + g][8 + 2 * c + e] = emuBf((uint32_t)f[2], e);
        A[16 * w + g + 8][8 + 2 * c + e] = emuBf((uint32_t)f[3], e);
      }
    }
  }
  emuBlk->wgBar[emuWarp >> 2]->arrive_and_wait();
  for (int i = 0; i < NR; i++) {
    int r, n;
    llmrtEmuAcc(i, &r, &n);
    float acc = d[i];
    for (int k = 0; k < 16; k++) acc += A[r][k] * llmrtEmuMnMajor(db, k, n);
    d[i] = acc;
  }
}
__device__ __forceinline__ void wgSS64(float (&d)[32], u64 da, u64 db, int s) { llmrtEmuSS(d, da, db, s); }
__device__ __forceinline__ void wgSS128(float (&d)[64], u64 da, u64 db, int s) { llmrtEmuSS(d, da, db, s); }
__device__ __forceinline__ void wgRS64(float (&d)[32], const u32 (&a)[4], u64 db) { llmrtEmuRS(d, a, db); }
__device__ __forceinline__ void wgRS128(float (&d)[64], const u32 (&a)[4], u64 db) { llmrtEmuRS(d, a, db); }
__device__ __forceinline__ void wgSS64z(float (&d)[32], u64 da, u64 db) { llmrtEmuSS(d, da, db, 0); }
__device__ __forceinline__ void wgSS128z(float (&d)[64], u64 da, u64 db) { llmrtEmuSS(d, da, db, 0); }
// mbarriers (flash_prefill_ws): the 8 bytes at the shared address hold the expected count (bits 0-15), the pending
// count (16-31) and the current phase's parity (bit 32), under one mutex; cp.async has already copied at issue, so
// its arrive is an arrive now. Waits spin (every thread of the block is an OS thread).
inline std::mutex llmrtEmuMbarMutex;
__device__ __forceinline__ void fwMbarInit(u32 bar, u32 count) {
  std::lock_guard<std::mutex> g(llmrtEmuMbarMutex);
  const u64 v = (u64)count | ((u64)count << 16);
  memcpy(llmrtEmuArena + bar, &v, 8);
}
__device__ __forceinline__ void fwMbarArrive(u32 bar) {
  std::lock_guard<std::mutex> g(llmrtEmuMbarMutex);
  u64 v;
  memcpy(&v, llmrtEmuArena + bar, 8);
  const u64 expected = v & 0xffff, phase = (v >> 32) & 1;
  u64 pending = ((v >> 16) & 0xffff) - 1;
  if (pending == 0) v = expected | (expected << 16) | ((phase ^ 1) << 32);
  else v = expected | (pending << 16) | (phase << 32);
  memcpy(llmrtEmuArena + bar, &v, 8);
}
__device__ __forceinline__ void fwMbarArriveCpAsync(u32 bar) { fwMbarArrive(bar); }
__device__ __forceinline__ void fwMbarWait(u32 bar, u32 parity) {
  for (;;) {
    {
      std::lock_guard<std::mutex> g(llmrtEmuMbarMutex);
      u64 v;
      memcpy(&v, llmrtEmuArena + bar, 8);
      if (((v >> 32) & 1) != parity) return;  // the phase of that parity has completed
    }
    std::this_thread::yield();
  }
}
template <int R>
__device__ __forceinline__ void fwRegsDec() {}
template <int R>
__device__ __forceinline__ void fwRegsInc() {}
__device__ __forceinline__ void fwCpAsyncWaitAll() {}
// Named barriers (bar.sync / bar.arrive id, n): a generation counter per id under the mbarrier mutex; a phase completes
// when n threads arrived (syncing or not); syncing threads wait for it. One block runs at a time.
struct LlmrtEmuNamedBar {
  int count = 0;
  long gen = 0;
};
inline LlmrtEmuNamedBar llmrtEmuNamedBars[16];
inline void llmrtEmuBar(int id, int n, bool wait) {
  long mine;
  {
    std::lock_guard<std::mutex> g(llmrtEmuMbarMutex);
    LlmrtEmuNamedBar& b = llmrtEmuNamedBars[id];
    mine = b.gen;
    if (++b.count == n) {
      b.count = 0;
      b.gen++;
      return;
    }
  }
  while (wait) {
    {
      std::lock_guard<std::mutex> g(llmrtEmuMbarMutex);
      if (llmrtEmuNamedBars[id].gen != mine) return;
    }
    std::this_thread::yield();
  }
}
__device__ __forceinline__ void fwBarSync(int id, int n) { llmrtEmuBar(id, n, true); }
__device__ __forceinline__ void fwBarArrive(int id, int n) { llmrtEmuBar(id, n, false); }
__device__ __forceinline__ u32 fwPack(float lo, float hi) {
  auto rne = [](float f) -> u32 {
    u32 u = __float_as_uint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return 0x7fc0u;
    return (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
  };
  return rne(lo) | (rne(hi) << 16);
}
__device__ __forceinline__ float fwExp2(float x) { return exp2f(x); }
__device__ __forceinline__ int fwWarpMin(int v) {
  for (int o = 16; o > 0; o >>= 1) v = min(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}
__device__ __forceinline__ int fwWarpMax(int v) {
  for (int o = 16; o > 0; o >>= 1) v = max(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}
