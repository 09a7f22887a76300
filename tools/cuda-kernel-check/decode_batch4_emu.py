#!/usr/bin/env python3
"""CPU desk check of decode_attention_batch4's e4m3-cache entry points (kernels/decode_attention_batch4.cu) through the CUDA
emulation in emu/ (threads, barriers, warp collectives real; mma.sync, movmatrix, prmt, the e4m3 / f16 conversions emulated
from the PTX definitions; cp.async copies synchronous): decode_attention_batch4_fp8kv_bf16_hd{64,128}'s bf16 rows against a
float64 attention over the decoded cache, decode_attention_batch4_q8_fp8kv_bf16_hd* (fp8DecodeAttnQuant: o_proj's e4m3 rows
and row scales) against those rows within e4m3 rounding, the same cache written by both, counters left zero — over 1, 2 and
3+ splits, a grid's splits past the tokens (a graph's), sliding windows, tokens of one step at different lengths. (Session 13
wrote it to check batchAttention4Serial's decode_attention_batch4s_* bit for bit against these; session 15 removed those.)
Tiny shapes (every CUDA thread an OS thread). No GPU.

  python3 tools/cuda-kernel-check/decode_batch4_emu.py
"""
import ctypes
import math
import os
import re
import shutil
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
KDIR = os.path.abspath(os.path.join(HERE, "..", "..", "lib", "backends", "cuda", "kernels"))
EMU = os.path.join(HERE, "emu")
KERNELS = [f"decode_attention_batch4_{q}fp8kv_bf16_hd{hd}" for q in ("", "q8_") for hd in (64, 128)]

SHIM = r'''
#include "cuda_emu.h"
#include <atomic>
#include <cstdlib>
inline uint4 make_uint4(unsigned x, unsigned y, unsigned z, unsigned w) { return uint4{x, y, z, w}; }
inline uint2 make_uint2(unsigned x, unsigned y) { return uint2{x, y}; }
inline void __threadfence() { std::atomic_thread_fence(std::memory_order_seq_cst); }
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
  if ((b & 0x7fu) == 0x7fu) return NAN;
  const unsigned e = (b >> 3) & 15u, m = b & 7u;
  const double v = e == 0 ? std::ldexp((double)m, -9) : std::ldexp(1.0 + m / 8.0, (int)e - 7);
  return (float)((b & 0x80u) ? -v : v);
}
inline unsigned emuE4m3x2ToF16x2(unsigned w) {
  return emuHalfBits(emuE4m3ToF(w & 255u)) | (emuHalfBits(emuE4m3ToF((w >> 8) & 255u)) << 16);
}
/** movmatrix.sync.aligned.m8n8.trans.b16: lane l holds row l / 4, columns 2 (l % 4) + {0, 1}; returns the transpose's. */
inline unsigned emuMovTrans(unsigned x) {
  emuBlk->slots[emuWarp][emuLane] = x;
  __syncwarp();
  const int r = emuLane >> 2, c0 = 2 * (emuLane & 3);
  unsigned out = 0;
  for (int e = 0; e < 2; e++) {
    const int c = c0 + e;  // T[r][c] = M[c][r]: lane 4 c + r / 2, half r % 2
    const unsigned w = (unsigned)emuBlk->slots[emuWarp][4 * c + r / 2];
    out |= ((w >> (16 * (r & 1))) & 0xffffu) << (16 * e);
  }
  __syncwarp();
  return out;
}
inline unsigned emuPrmt(unsigned a, unsigned b, unsigned sel) {
  const uint64_t x = (uint64_t)a | ((uint64_t)b << 32);
  unsigned r = 0;
  for (int i = 0; i < 4; i++) {
    const unsigned s = (sel >> (4 * i)) & 15u;
    if (s & 8u) abort();  // sign-replicate mode: unused
    r |= (unsigned)((x >> (8 * s)) & 255u) << (8 * i);
  }
  return r;
}
'''


def transform(src):
    """The PTX of decode_attention_batch4.cu and its headers as the emulation's calls (counts checked)."""
    subs = [
        # mma_tile.cuh
        (r'asm volatile\(\s*"mma\.sync\.aligned\.m16n8k16\.row\.col\.f32\.bf16[^;]*;\\n"\s*:[^;]*\);', 'llmrtEmuMma(d, a, b0, b1);'),
        (r'asm volatile\(\s*"mma\.sync\.aligned\.m16n8k16\.row\.col\.f32\.f16[^;]*;\\n"\s*:[^;]*\);', 'llmrtEmuMmaF16(d, a, b0, b1);'),
        (r'asm\("cvta\.to\.shared\.u64 %0, %1;" : "=l"\(g\) : "l"\(p\)\);', 'g = (u64)(uintptr_t)p;'),
        (r'asm volatile\("ldmatrix[^;]*;\\n"\s*:[^;]*\);', 'abort();'),
        (r'asm volatile\("cp\.async\.cg\.shared\.global \[%0\], \[%1\], 16, %2;\\n" ::"r"\(smemAddr\(dst\)\), "l"\(src\), "r"\(srcBytes\) : "memory"\);',
         'if (srcBytes) memcpy(dst, src, 16); else memset(dst, 0, 16);'),
        (r'asm volatile\("cp\.async\.commit_group;\\n" ::: "memory"\);', ';'),
        (r'asm volatile\("cp\.async\.wait_group %0;\\n" ::"n"\(\w+(?: - 1)?\) : "memory"\);', ';'),
        (r'asm volatile\("cp\.async\.wait_group 0;\\n" ::: "memory"\);', ';'),
        (r'asm volatile\("ld\.global\.cg\.f32 %0, \[%1\];" : "=f"\(v\) : "l"\(p\)\);', 'v = *p;'),
        (r'asm\("cvt\.rn\.f16x2\.f32 %0, %1, %2;" : "=r"\(r\) : "f"\(hi\), "f"\(lo\)\);', 'r = emuHalfBits(lo) | (emuHalfBits(hi) << 16);'),
        (r'asm\("cvt\.rn\.f16\.f32 %0, %1;" : "=h"\(h\) : "f"\(x\)\);', 'h = (unsigned short)emuHalfBits(x);'),
        (r'asm\("cvt\.rn\.f16x2\.e4m3x2 %0, %1;" : "=r"\(r\) : "h"\(\(unsigned short\)\(w & 0xffffu\)\)\);', 'r = emuE4m3x2ToF16x2(w & 0xffffu);'),
        # kv_fp8.cuh
        (r'asm\("cvt\.rn\.satfinite\.e4m3x2\.f32 %0, %1, %2;" : "=h"\(p\) : "f"\(0\.f\), "f"\(x / s\)\);', 'p = (unsigned short)emuE4m3(x / s);'),
        (r'asm\("cvt\.rn\.f16x2\.e4m3x2 %0, %1;" : "=r"\(h2\) : "h"\(w\)\);', 'h2 = emuE4m3x2ToF16x2(w);'),
        (r'asm\("cvt\.f32\.f16 %0, %1;" : "=f"\((\w+)\) : "h"\([^;]*\)\);', r'abort();'),
        (r'asm\("cvt\.rni\.s32\.f32 %0, %1;" : "=r"\(r\) : "f"\(x / s\)\);', 'abort();'),
        # decode_attention_batch4.cu
        (r'asm volatile\("movmatrix\.sync\.aligned\.m8n8\.trans\.b16 %0, %1;\\n" : "=r"\(r\) : "r"\(x\)\);', 'r = emuMovTrans(x);'),
        (r'asm\("prmt\.b32 %0, %1, %2, %3;" : "=r"\(r\) : "r"\(a\), "r"\(b\), "r"\(sel\)\);', 'r = emuPrmt(a, b, sel);'),
        (r'asm volatile\("mbarrier\.init[^;]*;" ::[^;]*\);', 'abort();'),
        (r'asm volatile\(\s*"\{ \.reg \.pred p;.*?: "memory"\);', 'ok = 1; abort();'),
        (r'if \(n > \(1u << 26\)\) asm volatile\("trap;"\);', ';'),
        (r'asm volatile\("mbarrier\.arrive\.expect_tx[^;]*;" ::[^;]*\);', 'abort();'),
        (r'asm volatile\("cp\.async\.bulk[^;]*;" ::[^;]*\s*: "memory"\);', 'abort();'),
        (r'asm\("cvt\.rn\.satfinite\.e4m3x2\.f32 %0, %1, %2;" : "=h"\(r\) : "f"\(hi\), "f"\(lo\)\);', 'r = (unsigned short)(emuE4m3(lo) | (emuE4m3(hi) << 8));'),
        (r'asm volatile\("fence\.proxy\.async\.shared::cta;" ::: "memory"\);', 'abort();'),
        (r'asm volatile\("fence\.mbarrier_init\.release\.cluster;" ::: "memory"\);', ';'),
        # DB4_TRACE's stamps (harness only; never built here)
        (r'asm volatile\("mov\.u64 %0, %%globaltimer;" : "=l"\(t\)\);', 't = 0;'),
        (r'asm volatile\("mov\.u32 %0, %%smid;" : "=r"\(r\)\);', 'r = 0;'),
        (r'asm volatile\("cp\.async\.cg\.shared\.global \[%0\], \[%1\], 16;\\n" ::"r"\(smemAddr\(([^;]*?)\)\), "l"\(([^;]*?)\) : "memory"\);',
         r'memcpy(\1, \2, 16);'),
        (r'asm volatile\("cp\.async\.cg\.shared\.global \[%0\], \[%1\], 16, %2;\\n" ::"r"\(smemAddr\(([^;]*?)\)\), "l"\(([^;]*?)\), "r"\(ok \? 16 : 0\) : "memory"\);',
         r'if (ok) memcpy(\1, \2, 16); else memset(\1, 0, 16);'),
    ]
    for pat, rep in subs:
        src = re.sub(pat, rep, src, flags=re.S)
    return src


def build(out="/tmp/b4emu"):
    os.makedirs(out, exist_ok=True)
    inc = os.path.join(out, "inc")
    shutil.rmtree(inc, ignore_errors=True)
    os.makedirs(inc)
    for f in ("common.cuh", "mma_tile.cuh", "kv_fp8.cuh", "decode_attention_batch4.cu"):
        src = transform(open(os.path.join(KDIR, f)).read())
        left = [ln for ln in src.splitlines() if re.search(r'\basm\b', ln) and "__CUDA_ARCH__" not in ln and "griddepcontrol" not in ln]
        assert not left, f"{f}: untranslated asm: {left}"
        open(os.path.join(inc, f), "w").write(src)
    cpp = os.path.join(out, "b4.cpp")
    open(cpp, "w").write(SHIM + '#include "decode_attention_batch4.cu"\n')
    sel = ["-DLLMRT_SELECT"] + [f"-DLLMRT_K_{k}=1" for k in KERNELS]
    # Every other kernel of the file off (LLMRT_SELECT: an undefined LLMRT_K_ name is 0 in #if).
    flags = ["-std=c++20", "-O1", "-fPIC", "-pthread", "-w", f"-I{inc}", f"-I{EMU}", *sel]
    subprocess.check_call(["g++", *flags, "-c", cpp, "-o", os.path.join(out, "b4.o")])
    subprocess.check_call(["g++", "-std=c++20", "-O1", "-fPIC", "-pthread", "-w", f"-I{EMU}", "-c", os.path.join(EMU, "emu_launch.cpp"), "-o", os.path.join(out, "launch.o")])
    so = os.path.join(out, "b4_emu.so")
    subprocess.check_call(["g++", "-shared", "-pthread", "-o", so, os.path.join(out, "b4.o"), os.path.join(out, "launch.o")])
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


def ptr(a):
    return a.ctypes.data


def main():
    lib = ctypes.CDLL(build())
    lib.emu_launch24.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_uint64), ctypes.POINTER(ctypes.c_float)] + [ctypes.c_int] * 6
    fn = lambda name: ctypes.cast(getattr(lib, name), ctypes.c_void_p).value  # noqa: E731
    rng = np.random.default_rng(13)
    bad = cases = 0
    # (heads, kv heads, head dim, tokens per block, positions of the step's tokens, split size, grid splits, window)
    shapes = [
        (8, 2, 64, 16, [5, 40, 77], 32, 3, 0),      # 1, 2 and 3 splits in one step
        (8, 2, 64, 16, [20, 31], 32, 4, 0),         # one split each, a graph's grid of 4
        (8, 2, 128, 16, [70, 9, 47], 32, 3, 0),
        (4, 1, 128, 32, [100, 63], 48, 4, 40),       # a window: the splits start at pos + 1 - 40
        (12, 2, 64, 16, [33], 16, 3, 0),            # G 6, three splits of 16
    ]
    for (nH, nKV, hd, tpb, positions, splitSize, ns, window) in shapes:
        T = S = len(positions)
        W = (nH + 2 * nKV) * hd
        maxB = max(p // tpb + 1 for p in positions) + 1
        nBlocks = S * maxB + 2
        perm = rng.permutation(nBlocks)[: S * maxB].astype(np.int32)  # shuffled block tables
        table = perm.reshape(S, maxB).copy()
        rowW = nKV * hd
        cache0 = rng.integers(0, 256, nBlocks * 2 * tpb * rowW).astype(np.uint8)
        cache0[(cache0 & 0x7F) == 0x7F] = 0x38
        cache0[(cache0 & 0x78) >= 0x58] &= 0x47  # moderate magnitudes
        qkv = bf16_round(rng.standard_normal(T * W).astype(np.float32))
        pos = np.array(positions, np.int32)
        starts = np.arange(S + 1, dtype=np.int32)
        invf = np.array([10000.0 ** (-2 * i / hd) for i in range(hd // 2)], np.float64)
        scales = (0.05 + 0.1 * rng.random(2 * nKV)).astype(np.float32)
        scale = 1 / math.sqrt(hd)
        G = nH // nKV
        nBx = nKV * -(-G // 8)
        res = {}
        for q8 in (False, True):
            cache = cache0.copy()
            out = np.full(T * nH * hd, 0xFF, np.uint8) if q8 else np.full(T * nH * hd, 0xFFFF, np.uint16)
            pO = np.full(T * nH * ns * hd, np.nan, np.float32)
            pML = np.full(T * nH * ns * 2, np.nan, np.float32)
            ctr = np.zeros(T * nBx, np.int32)
            rowScale = np.full(T, np.nan, np.float32)
            act = np.float32(0.02)
            iv = [ptr(qkv), ptr(out), ptr(cache), ptr(pos), ptr(starts), ptr(table), ptr(invf), ptr(pO), ptr(pML), ptr(ctr),
                  T, S, nH, nKV, tpb, maxB, window, splitSize, 0, 0, ptr(scales)]
            if q8:
                iv.append(ptr(rowScale))
            fv = [1.0, scale] + ([float(act)] if q8 else [])
            name = f"decode_attention_batch4_{'q8_' if q8 else ''}fp8kv_bf16_hd{hd}"
            ivc = (ctypes.c_uint64 * 24)(*(iv + [0] * (24 - len(iv))))
            fvc = (ctypes.c_float * 8)(*(fv + [0.0] * (8 - len(fv))))
            lib.emu_launch24(fn(name), ivc, fvc, nBx, T, ns, 64, 1, 1)
            res[q8] = (out.copy(), cache.copy(), ctr.copy(), rowScale.copy())
        (o0, c0, k0, _), (o1, c1, k1, r1) = res[False], res[True]
        zero = not k0.any() and not k1.any()
        sameCache = np.array_equal(c0, c1)
        # A float64 attention over the decoded cache (the own key from the written cache) vs the bf16 output.
        err = 0.0
        got = bf16_to_f(o0).astype(np.float64).reshape(T, nH, hd)
        for t in range(T):
            p = positions[t]
            lo = max(0, p + 1 - window) if window > 0 else 0
            cs = np.cos(invf * p)
            sn = np.sin(invf * p)
            for h in range(nH):
                kh = h // G
                x = bf16_to_f(qkv[t * W + h * hd: t * W + (h + 1) * hd]).astype(np.float64)
                a, b = x[: hd // 2], x[hd // 2:]
                q = np.concatenate([a * cs - b * sn, b * cs + a * sn])
                keys = np.arange(lo, p + 1)
                blk = table[t][keys // tpb]
                base = blk * 2 * tpb * rowW + (keys % tpb) * rowW + kh * hd
                K = E4[c0[base[:, None] + np.arange(hd)]] * scales[kh]
                V = E4[c0[base[:, None] + tpb * rowW + np.arange(hd)]] * scales[nKV + kh]
                s = K @ q * scale
                w = np.exp(s - s.max())
                ref = w @ V / w.sum()
                err = max(err, float(np.abs(got[t, h] - ref).max() / (np.abs(ref).max() + 1e-9)))
        # q8: the bf16 rows' values quantized under the static scale (e4m3: 3 mantissa bits), every row scale the static one.
        dq = E4[o1].reshape(T, nH, hd) * float(act)
        q8ok = bool(np.all(r1 == act)) and not np.isnan(dq).any() and bool(np.all(np.abs(dq - got) <= 0.07 * np.abs(got) + float(act) * 2.0**-9))
        ok = zero and sameCache and q8ok and err < 3e-2 and not np.isnan(got).any()
        cases += 1
        bad += not ok
        print(f"{'ok  ' if ok else 'FAIL'} nH={nH} nKV={nKV} hd={hd} tpb={tpb} pos={positions} split={splitSize}x{ns} win={window}: "
              f"rel err vs float64 {err:.1e}, q8 rows within e4m3 rounding {q8ok}, same cache {sameCache}, counters zero {zero}", flush=True)
    print(f"== {cases} cases, {bad} failed")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
