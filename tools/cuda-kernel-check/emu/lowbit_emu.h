// Extra shims for the CPU emulation of kernels/lowbit.cu (tools/cuda-kernel-check/lowbit_emu.ts), on top of cuda_emu.h:
// the read-only loads, the IEEE-rounded intrinsics (the host's float arithmetic rounds to nearest even) and
// cvt.rn.satfinite.e4m3x2.f32 (round to nearest even, saturating to ±448, NaN → 0x7F), as lib/util/e4m3.ts.
#pragma once
#include "cuda_emu.h"
#define LLMRT_EMU 1
template <class T> inline T __ldg(const T* p) { return *p; }
inline float __fdiv_rn(float a, float b) { return a / b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline unsigned llmrtEmuE4m3(float x) {
  if (x != x) return 0x7f;
  const unsigned sign = (__float_as_uint(x) >> 31) ? 0x80u : 0u;
  const double a = fabs((double)x);
  if (a >= 448.0) return sign | 0x7eu;
  auto rne = [](double v) { const double f = floor(v), d = v - f; return d > 0.5 ? f + 1 : d < 0.5 ? f : (fmod(f, 2.0) == 0 ? f : f + 1); };
  if (a < 0.015625) return sign | (unsigned)rne(a * 512.0);  // subnormals: steps of 2^-9
  int e = 0;
  frexp(a, &e);
  e -= 1;  // a in [2^e, 2^(e+1))
  const double q = rne(a * ldexp(1.0, 3 - e));  // 8 .. 16
  return sign | (unsigned)(((e + 7) << 3) + (int)q - 8);
}
