// Launcher for the CPU emulation: emu_launch(kernel, integer-class args, float args, grid, block).
// x86-64 SysV: integer/pointer arguments fill rdi.. then the stack in order, float arguments fill
// xmm0..7 independently, so one cast with 24 integer and 8 float slots calls any llmrt kernel (emu_launch passes
// 20 of them, emu_launch24 all 24).
#include "cuda_emu.h"
#include <thread>
#include <vector>

thread_local dim3 threadIdx, blockIdx;
dim3 blockDim, gridDim;
thread_local int emuLane, emuWarp;
thread_local EmuBlock* emuBlk;
std::mutex emuAtomicMutex;

typedef uint64_t U;
typedef void (*AnyKernel)(U, U, U, U, U, U, U, U, U, U, U, U, U, U, U, U, U, U, U, U, U, U, U, U, float, float, float, float, float, float,
                          float, float);

static int emuRun(void* fn, const U* iv, const float* fv, int gx, int gy, int gz, int bx, int by, int bz);
extern "C" int emu_launch(void* fn, const U* iv20, const float* fv, int gx, int gy, int gz, int bx, int by, int bz) {
  U iv[24] = {0};
  for (int i = 0; i < 20; i++) iv[i] = iv20[i];
  return emuRun(fn, iv, fv, gx, gy, gz, bx, by, bz);
}
extern "C" int emu_launch24(void* fn, const U* iv24, const float* fv, int gx, int gy, int gz, int bx, int by, int bz) {
  U iv[24];
  for (int i = 0; i < 24; i++) iv[i] = iv24[i];
  return emuRun(fn, iv, fv, gx, gy, gz, bx, by, bz);
}
static int emuRun(void* fn, const U* ivp, const float* fv, int gx, int gy, int gz, int bx, int by, int bz) {
  const U* iv = ivp;
  gridDim = {(unsigned)gx, (unsigned)gy, (unsigned)gz};
  blockDim = {(unsigned)bx, (unsigned)by, (unsigned)bz};
  const int nt = bx * by * bz;
  const AnyKernel k = (AnyKernel)fn;
  for (int z = 0; z < gz; z++)
    for (int y = 0; y < gy; y++)
      for (int x = 0; x < gx; x++) {
        EmuBlock* blk = new EmuBlock();
        blk->bar = new std::barrier<>(nt);
        const int nw = (nt + 31) / 32;
        for (int w = 0; w < nw; w++) blk->warpBar[w] = new std::barrier<>(std::min(32, nt - 32 * w));
        const int ng = (nt + 127) / 128;
        for (int w = 0; w < ng; w++) blk->wgBar[w] = new std::barrier<>(std::min(128, nt - 128 * w));
        std::vector<std::thread> th;
        th.reserve(nt);
        for (int t = 0; t < nt; t++) {
          th.emplace_back([=]() {
            threadIdx = {(unsigned)(t % bx), (unsigned)((t / bx) % by), (unsigned)(t / (bx * by))};
            blockIdx = {(unsigned)x, (unsigned)y, (unsigned)z};
            emuLane = t & 31;
            emuWarp = t >> 5;
            emuBlk = blk;
            k(iv[0], iv[1], iv[2], iv[3], iv[4], iv[5], iv[6], iv[7], iv[8], iv[9], iv[10], iv[11], iv[12], iv[13], iv[14],
              iv[15], iv[16], iv[17], iv[18], iv[19], iv[20], iv[21], iv[22], iv[23], fv[0], fv[1], fv[2], fv[3], fv[4], fv[5], fv[6], fv[7]);
            blk->bar->arrive_and_drop();
            blk->warpBar[emuWarp]->arrive_and_drop();
            blk->wgBar[emuWarp >> 2]->arrive_and_drop();
          });
        }
        for (auto& t : th) t.join();
        delete blk->bar;
        for (int w = 0; w < nw; w++) delete blk->warpBar[w];
        for (int w = 0; w < ng; w++) delete blk->wgBar[w];
        delete blk;
      }
  return 0;
}
