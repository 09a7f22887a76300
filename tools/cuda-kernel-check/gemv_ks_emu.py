#!/usr/bin/env python3
"""CPU desk check of gemv_fused_ks (kernels/gemv.cu) through the CUDA emulation in emu/: every mode, norm or not,
m 1 / 2 / 3, KS 2 / 4 vs a float64 reference, and KS 1 bitwise equal to gemv_fused; at m 1 / 2 the x-ahead entry points
(`_xpre`, gemvXPre) bitwise equal
to their GF_U forms. Tiny shapes. No GPU.
--defines "-DGF_PIPE=1 -DGF_XPRE=1": the same cases built again with those defines, every output bitwise equal to the
default build's.

  python3 tools/cuda-kernel-check/gemv_ks_emu.py [--defines "-DX=1 ..."]
"""
import ctypes
import math
import os
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from decode_sk_emu import EMU, KDIR, bf16_round, bf16_to_f, ptr  # noqa: E402


def build(out="/tmp/skemu", defines=()):
    os.makedirs(out, exist_ok=True)
    so = os.path.join(out, "gemv_emu.so")
    subprocess.check_call(["g++", "-std=c++20", "-O1", "-fPIC", "-pthread", "-w", f"-I{KDIR}", f"-I{EMU}", "-include", os.path.join(EMU, "sk_emu.h"),
                           *defines, "-x", "c++", "-c", os.path.join(KDIR, "gemv.cu"), "-o", os.path.join(out, "gemv.o")])
    subprocess.check_call(["g++", "-std=c++20", "-O1", "-fPIC", "-pthread", "-w", f"-I{EMU}", "-c", os.path.join(EMU, "emu_launch.cpp"), "-o", os.path.join(out, "launch.o")])
    subprocess.check_call(["g++", "-shared", "-pthread", "-o", so, os.path.join(out, "gemv.o"), os.path.join(out, "launch.o")])
    return so


def main():
    defines = sys.argv[sys.argv.index("--defines") + 1].split() if "--defines" in sys.argv else []
    outs0, bad0 = run(build())
    if not defines:
        sys.exit(1 if bad0 else 0)
    outs1, bad1 = run(build("/tmp/skemu-defs", defines))
    diff = [k for k in outs0 if not np.array_equal(outs0[k].view(np.uint8), outs1[k].view(np.uint8))]
    print(f"== {' '.join(defines)}: {len(outs0) - len(diff)} / {len(outs0)} outputs bitwise equal to the default build's", *diff[:5])
    sys.exit(1 if bad0 or bad1 or diff else 0)


def run(so):
    lib = ctypes.CDLL(so)
    lib.emu_launch.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_uint64), ctypes.POINTER(ctypes.c_float)] + [ctypes.c_int] * 6
    fn = lambda name: ctypes.cast(getattr(lib, name), ctypes.c_void_p).value  # noqa: E731
    rng = np.random.default_rng(5)
    bad = n = 0
    every = {}
    for (N, K) in [(24, 1024), (40, 2048), (16, 7168)]:
        W = bf16_round(rng.standard_normal((N, K)).astype(np.float32) * 0.05)
        for m in (1, 2, 3):
            M = m if m <= 2 else 4
            x = bf16_round(rng.standard_normal((m, K)).astype(np.float32))
            nw = bf16_round(1 + 0.1 * rng.standard_normal(K).astype(np.float32))
            bias = bf16_round(0.1 * rng.standard_normal(N).astype(np.float32))
            for mode in (0, 1, 2, 3):
                for norm in ((False, True) if m * K <= 8192 else (False,)):
                    y0 = bf16_round(rng.standard_normal((m, N)).astype(np.float32))
                    outs = {}
                    cases = [(0, False, 0), (1, False, 0), (2, False, 0), (4, False, 0)]
                    cases += [(ks, d, 0) for d in ("_xpre",) for ks in (0, 2, 4)] if M <= 2 else []
                    for ks, variant, _ in cases:
                        if ks and (K // 8) % ks:
                            continue
                        if mode == 3:
                            y = np.full((m, N), np.nan, np.float32)
                        elif mode == 2:
                            y = np.full((m, N // 2), 0x7FC0, np.uint16)
                        elif mode == 1:
                            y = y0.copy()
                        else:
                            y = np.full((m, N), 0x7FC0, np.uint16)
                        name = f"gemv_fused{'_norm' if norm else ''}{'_ks' if ks else ''}{variant or ''}_bf16_m{M}"
                        rpb = 8 // max(ks, 1)
                        grid = math.ceil(N / 2 / (rpb // 2)) if mode == 2 else math.ceil(N / rpb)
                        b = bias if mode in (0, 2) else None
                        ints = [ptr(x), ptr(W), ptr(b) if b is not None else 0, ptr(y), ptr(nw) if norm else 0, m, N, K, mode | (ks << 4 if ks else 0), 0, 0]
                        iv = (ctypes.c_uint64 * 20)(*ints + [0] * 9)
                        fv = (ctypes.c_float * 8)(*([1e-5] + [0.0] * 7))
                        lib.emu_launch(fn(name), iv, fv, grid, 1, 1, 256, 1, 1)
                        outs[(ks, variant, 0)] = y
                        every[(N, K, m, mode, norm, ks, variant)] = y
                    xf = bf16_to_f(x).astype(np.float64)
                    if norm:
                        xf32 = bf16_to_f(x)
                        inv = 1 / np.sqrt((xf32.astype(np.float64) ** 2).mean(-1, keepdims=True) + 1e-5)
                        xf = bf16_to_f(bf16_round((xf32 * inv * bf16_to_f(nw)).astype(np.float32))).astype(np.float64)
                    lin = xf @ bf16_to_f(W).astype(np.float64).T + (bf16_to_f(bias).astype(np.float64) if mode in (0, 2) else 0)
                    if mode == 0:
                        ref = lin
                    elif mode == 1:
                        ref = bf16_to_f(bf16_round(lin.astype(np.float32))).astype(np.float64) + bf16_to_f(y0)
                    elif mode == 2:
                        g = bf16_to_f(bf16_round(lin[:, : N // 2].astype(np.float32))).astype(np.float64)
                        u = bf16_to_f(bf16_round(lin[:, N // 2:].astype(np.float32))).astype(np.float64)
                        ref = g / (1 + np.exp(-g)) * u
                    else:
                        ref = lin
                    bits = lambda a: a.view(np.uint32) if mode == 3 else a  # noqa: E731
                    for (ks, variant, _), y in outs.items():
                        got = y.astype(np.float64) if mode == 3 else bf16_to_f(y).astype(np.float64)
                        e = np.linalg.norm(got - ref) / np.linalg.norm(ref)
                        # KS 1 == gemv_fused; an _xpre form == its GF_U form (KS 0 / 1: gemv_fused); 
                        twin = (0, False, 0) if ks == 1 or (variant and ks == 0) else (ks, False, 0) if variant else None
                        same = twin is None or np.array_equal(bits(y), bits(outs[twin]))
                        ok = e < (2e-5 if mode == 3 else 1e-2) and same
                        n += 1
                        bad += not ok
                        print(f"{'ok  ' if ok else 'FAIL'} N={N} K={K} m={m} mode={mode} norm={int(norm)} KS={ks}{' ' + variant[1:] if variant else ''} rel={e:.2e} bitwise twin {same}",
                              flush=True)
    print(f"== {n} cases, {bad} failed")
    return every, bad


if __name__ == "__main__":
    main()
