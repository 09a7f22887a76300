#!/usr/bin/env python3
"""CPU desk check of the one-token FP8 GEMVs fp8_gemv1_fused{,_norm}_bf16 and fp8_gemvr_fused{,_norm}_bf16 (session 16: one
row a warp, modes 0 / 1 / 3; must equal fp8_gemv1 bit for bit) (kernels/fp8_gemv.cu) through the CUDA
emulation in emu/ (threads, barriers and warp shuffles real; the e4m3 conversions and the m16n8k32 e4m3 mma emulated
from the PTX definitions): every mode, norm or not, static and per-token activation scales, several grids (the kernel
takes any grid), against a float64 reference of the same e4m3 bytes and against fp8_gemv_fused_bf16 (the 16-row kernel;
a bf16 rounding step apart at most: the same products summed in another order). Tiny shapes. No GPU.

  python3 tools/cuda-kernel-check/fp8_gemv1_emu.py
"""
import ctypes
import os
import re
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
KDIR = os.path.abspath(os.path.join(HERE, "..", "..", "lib", "backends", "cuda", "kernels"))
EMU = os.path.join(HERE, "emu")

SHIM = r'''
#include "cuda_emu.h"
inline uint4 make_uint4(unsigned x, unsigned y, unsigned z, unsigned w) { return uint4{x, y, z, w}; }
// fp8_silu_mul_quant_fast's intrinsics (not checked here; only so the file compiles).
inline float __expf(float x) { return std::exp(x); }
inline float __fdividef(float a, float b) { return a / b; }
/** float -> e4m3 byte, round to nearest even, saturating to +-448 (cvt.rn.satfinite.e4m3x2.f32). */
inline unsigned emuE4m3(float f) {
  if (std::isnan(f)) return 0x7f;
  const unsigned sign = std::signbit(f) ? 0x80u : 0u;
  double a = std::fabs((double)f);
  if (a >= 448.0) return sign | 0x7e;
  if (a == 0.0) return sign;
  const int e = std::ilogb(a);
  const double q = e < -6 ? std::ldexp(1.0, -9) : std::ldexp(1.0, e - 3);
  const double r = std::nearbyint(a / q) * q;
  if (r >= 448.0) return sign | 0x7e;
  if (r == 0.0) return sign;
  const int re = std::ilogb(r);
  if (re < -6) return sign | (unsigned)std::lround(r / std::ldexp(1.0, -9));
  const unsigned mant = (unsigned)std::lround(r / std::ldexp(1.0, re) * 8.0) - 8u;
  return sign | ((unsigned)(re + 7) << 3) | mant;
}
inline float emuE4m3ToF(unsigned b) {
  const unsigned e = (b >> 3) & 15u, m = b & 7u;
  const double v = e == 0 ? std::ldexp((double)m, -9) : std::ldexp(1.0 + m / 8.0, (int)e - 7);
  return (float)((b & 0x80u) ? -v : v);
}
/** mma.sync.m16n8k32.row.col.f32.e4m3.e4m3.f32 from the PTX fragment layout (exact products, float sums). */
inline void emuMmaE4m3(float (&d)[4], unsigned a0, unsigned a1, unsigned a2, unsigned a3, unsigned b0, unsigned b1, const float (&c)[4]) {
  uint64_t* mine = emuBlk->aux[emuWarp][emuLane];
  mine[0] = a0; mine[1] = a1; mine[2] = a2; mine[3] = a3; mine[4] = b0; mine[5] = b1;
  __syncwarp();
  float A[16][32], B[32][8];
  for (int l = 0; l < 32; l++) {
    const uint64_t* f = emuBlk->aux[emuWarp][l];
    const int g = l >> 2, t = l & 3;
    for (int i = 0; i < 4; i++) {
      A[g][4 * t + i] = emuE4m3ToF(((uint32_t)f[0] >> (8 * i)) & 255u);
      A[g + 8][4 * t + i] = emuE4m3ToF(((uint32_t)f[1] >> (8 * i)) & 255u);
      A[g][16 + 4 * t + i] = emuE4m3ToF(((uint32_t)f[2] >> (8 * i)) & 255u);
      A[g + 8][16 + 4 * t + i] = emuE4m3ToF(((uint32_t)f[3] >> (8 * i)) & 255u);
      B[4 * t + i][g] = emuE4m3ToF(((uint32_t)f[4] >> (8 * i)) & 255u);
      B[16 + 4 * t + i][g] = emuE4m3ToF(((uint32_t)f[5] >> (8 * i)) & 255u);
    }
  }
  __syncwarp();
  const int g = emuLane >> 2, t = emuLane & 3;
  float out[4];
  for (int e = 0; e < 4; e++) {
    const int row = g + (e >= 2 ? 8 : 0), col = 2 * t + (e & 1);
    float acc = c[e];
    for (int k = 0; k < 32; k++) acc += A[row][k] * B[k][col];
    out[e] = acc;
  }
  for (int e = 0; e < 4; e++) d[e] = out[e];
}
'''


def build(out="/tmp/fp8emu"):
    os.makedirs(out, exist_ok=True)
    src = open(os.path.join(KDIR, "fp8_gemv.cu")).read()
    # The PTX conversions and the mma become the emulated ones.
    src, n1 = re.subn(r'asm\("cvt\.rn\.satfinite\.e4m3x2\.f32 %0, %1, %2;" : "=h"\((\w+)\) : "f"\((\w+)\), "f"\((\w+)\)\);',
                      r'\1 = (unsigned short)(emuE4m3(\3) | (emuE4m3(\2) << 8));', src)
    src, n2 = re.subn(r'asm volatile\(\s*"mma\.sync\.aligned\.m16n8k32[^;]*;"\s*:[^;]*\);', 'emuMmaE4m3(d, a0, a1, a2, a3, b0, b1, c);', src, flags=re.S)
    assert n1 == 2 and n2 == 1, (n1, n2)
    cpp = os.path.join(out, "fp8_gemv.cpp")
    open(cpp, "w").write(SHIM + src)
    so = os.path.join(out, "fp8_emu.so")
    flags = ["-std=c++20", "-O1", "-fPIC", "-pthread", "-w", f"-I{KDIR}", f"-I{EMU}", "-DFG_LDNC=0"]
    subprocess.check_call(["g++", *flags, "-c", cpp, "-o", os.path.join(out, "fp8.o")])
    subprocess.check_call(["g++", "-std=c++20", "-O1", "-fPIC", "-pthread", "-w", f"-I{EMU}", "-c", os.path.join(EMU, "emu_launch.cpp"), "-o", os.path.join(out, "launch.o")])
    subprocess.check_call(["g++", "-shared", "-pthread", "-o", so, os.path.join(out, "fp8.o"), os.path.join(out, "launch.o")])
    return so


def bf16_round(x):
    u = np.asarray(x, np.float32).view(np.uint32).astype(np.uint64)
    u = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
    return u.astype(np.uint16)


def bf16_to_f(b):
    return (np.asarray(b, np.uint16).astype(np.uint32) << 16).view(np.float32)


def e4m3_table():
    t = np.zeros(256, np.float64)
    for b in range(256):
        e, m = (b >> 3) & 15, b & 7
        v = m * 2.0**-9 if e == 0 else (1 + m / 8) * 2.0 ** (e - 7)
        t[b] = -v if b & 0x80 else v
    t[0x7F] = t[0xFF] = np.nan
    return t


E4 = e4m3_table()
FIN = np.array([b for b in range(256) if not np.isnan(E4[b])])


def quant_e4m3(v):
    """float32 array -> e4m3 bytes, round to nearest even, saturating (by nearest-value search; ties to the even byte)."""
    vals = E4[FIN]
    out = np.empty(v.shape, np.int64)
    flat = v.astype(np.float64).ravel()
    for i, f in enumerate(flat):
        f = min(max(f, -448.0), 448.0)
        dist = np.abs(vals - f)
        best = np.flatnonzero(dist == dist.min())
        cand = FIN[best]
        if len(cand) > 1:  # a tie: the even mantissa (or +0 over -0)
            even = [c for c in cand if (c & 1) == 0 and not (c == 0x80)]
            cand = even or cand
        out.ravel()[i] = cand[0]
    return out.astype(np.uint8)


def ptr(a):
    return a.ctypes.data


def main():
    lib = ctypes.CDLL(build())
    lib.emu_launch.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_uint64), ctypes.POINTER(ctypes.c_float)] + [ctypes.c_int] * 6
    fn = lambda name: ctypes.cast(getattr(lib, name), ctypes.c_void_p).value  # noqa: E731
    rng = np.random.default_rng(7)
    bad = cases = 0
    for (N, K) in [(32, 2048), (48, 1024), (16, 1536), (32, 5120)]:
        Wb = rng.integers(0, 256, (N, K)).astype(np.uint8)
        Wb[(Wb & 0x7F) == 0x7F] = 0x3C  # no NaN bytes
        Wb[(Wb & 0x78) >= 0x60] &= 0x4F  # keep most weights moderate
        ws = (rng.random(N).astype(np.float32) * 0.01 + 0.001).astype(np.float32)
        bias = bf16_round(0.1 * rng.standard_normal(N))
        nw = bf16_round(1 + 0.1 * rng.standard_normal(K))
        x = bf16_round(rng.standard_normal(K) * 2)
        for norm in (False, True):
            xf = bf16_to_f(x)
            if norm:  # rmsnorm_bf16's value, rounded to bf16
                inv = np.float32(1 / np.sqrt(np.mean(xf.astype(np.float64) ** 2) + 1e-5))
                xf = bf16_to_f(bf16_round(xf * inv * bf16_to_f(nw)))
            for act in (0.0, 0.02):
                s = np.float32(act) if act > 0 else np.float32(np.abs(xf).max()) / np.float32(448.0)
                xq = quant_e4m3((xf.astype(np.float64) / s).astype(np.float32))
                dot = (E4[Wb] * E4[xq][None, :]).sum(axis=1)
                for mode in (0, 1, 2, 3):
                    for hasBias in (False, True):
                        lin = dot * s * ws.astype(np.float64) + (bf16_to_f(bias).astype(np.float64) if hasBias else 0)
                        y0 = bf16_round(rng.standard_normal(N))
                        if mode == 0:
                            ref = lin
                        elif mode == 1:
                            ref = bf16_to_f(bf16_round(lin)).astype(np.float64) + bf16_to_f(y0)
                        elif mode == 2:
                            gte = bf16_to_f(bf16_round(lin[: N // 2])).astype(np.float64)
                            up = bf16_to_f(bf16_round(lin[N // 2:])).astype(np.float64)
                            ref = gte / (1 + np.exp(-gte)) * up
                        else:
                            ref = lin
                        outs = {}
                        units = N // 2 if mode == 2 else N
                        kerns = [("fp8_gemv_fused", N // 16), ("fp8_gemv1", 1), ("fp8_gemv1", 2), ("fp8_gemv1", 5), ("fp8_gemv1", -(-units // 8))]
                        if mode != 2:  # fp8_gemvr: one row a warp (K 5120: 10 segments, the ring past its first 8)
                            kerns.append(("fp8_gemvr", -(-N // 8)))
                        for kern, grid in kerns:
                            if mode == 3:
                                y = np.full(N, np.nan, np.float32)
                            elif mode == 2:
                                y = np.full(N // 2, 0x7FC0, np.uint16)
                            elif mode == 1:
                                y = y0.copy()
                            else:
                                y = np.full(N, 0x7FC0, np.uint16)
                            name = f"{kern}_fused{'_norm' if norm else ''}_bf16" if kern != "fp8_gemv_fused" else f"fp8_gemv_fused{'_norm' if norm else ''}_bf16"
                            ints = [ptr(x), ptr(Wb), ptr(ws), ptr(bias) if hasBias else 0, ptr(y), ptr(nw) if norm else 0, 1, N, K, mode]
                            iv = (ctypes.c_uint64 * 20)(*ints + [0] * 10)
                            fv = (ctypes.c_float * 8)(*([1e-5, act] + [0.0] * 6))
                            lib.emu_launch(fn(name), iv, fv, grid, 1, 1, 256, 1, 1)
                            got = y.astype(np.float64) if mode == 3 else bf16_to_f(y).astype(np.float64)
                            outs[(kern, grid)] = got
                        base = outs[("fp8_gemv_fused", N // 16)]
                        for key, got in outs.items():
                            e = np.linalg.norm(got - ref) / np.linalg.norm(ref)
                            # vs the 16-row kernel: within one bf16 rounding (mode 3: fp32 sums, 1e-5 of the row scale)
                            tol = np.maximum(np.abs(base) * 2.0**-7, 1e-6) if mode != 3 else 1e-5 * np.abs(base).max()
                            near = bool(np.all(np.abs(got - base) <= tol + 1e-12)) and not np.any(np.isnan(got))
                            if key[0] == "fp8_gemvr":  # fp8_gemv1's bits (its grid 1)
                                near = near and bool(np.array_equal(got, outs[("fp8_gemv1", 1)]))
                            ok = e < (2e-6 if mode == 3 else 8e-3) and near
                            cases += 1
                            bad += not ok
                            if not ok or key[0] != "fp8_gemv_fused":
                                print(f"{'ok  ' if ok else 'FAIL'} N={N} K={K} norm={int(norm)} act={act} mode={mode} bias={int(hasBias)} {key[0]} grid={key[1]} rel={e:.2e} near16row={near}", flush=True)
    print(f"== {cases} cases, {bad} failed")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
