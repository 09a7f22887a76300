#!/usr/bin/env python3
"""CPU desk check of sample_split_f32 (kernels/sampling.cu, CudaSessionOptions.sampleSplit) through the CUDA emulation in
emu/: the same ids as sample_f32 for greedy rows and temperature / top-k / top-p / min-p rows, rows with ties, -inf and
all-NaN, vocabularies that are and are not a multiple of 4, 1 / 3 / 16 blocks a row; the counters left zero. No GPU.

  python3 tools/cuda-kernel-check/sample_split_emu.py
"""
import ctypes
import os
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from decode_sk_emu import EMU, KDIR, ptr  # noqa: E402


def build(out="/tmp/smpemu"):
    os.makedirs(out, exist_ok=True)
    so = os.path.join(out, "sample_emu.so")
    subprocess.check_call(["g++", "-std=c++20", "-O1", "-fPIC", "-pthread", "-w", f"-I{KDIR}", f"-I{EMU}", "-include", os.path.join(EMU, "sk_emu.h"),
                           "-x", "c++", "-c", os.path.join(KDIR, "sampling.cu"), "-o", os.path.join(out, "s.o")])
    subprocess.check_call(["g++", "-std=c++20", "-O1", "-fPIC", "-pthread", "-w", f"-I{EMU}", "-c", os.path.join(EMU, "emu_launch.cpp"), "-o", os.path.join(out, "launch.o")])
    subprocess.check_call(["g++", "-shared", "-pthread", "-o", so, os.path.join(out, "s.o"), os.path.join(out, "launch.o")])
    return so


def main():
    lib = ctypes.CDLL(build())
    lib.emu_launch.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_uint64), ctypes.POINTER(ctypes.c_float)] + [ctypes.c_int] * 6
    fn = lambda name: ctypes.cast(getattr(lib, name), ctypes.c_void_p).value  # noqa: E731
    rng = np.random.default_rng(7)
    bad = n = 0
    R = 4
    # row parameters: greedy, greedy via top-k 1, temperature, temperature + top-k + top-p + min-p
    temp = np.array([0.0, 0.7, 0.8, 1.3], np.float32)
    topk = np.array([0, 1, 0, 40], np.int32)
    topp = np.array([1.0, 1.0, 1.0, 0.9], np.float32)
    minp = np.array([0.0, 0.0, 0.0, 0.02], np.float32)
    seed = rng.integers(0, 2**32, 2 * R, dtype=np.uint64).astype(np.uint32)
    stepc = np.array([3, 4, 5, 6], np.int32)
    for V in (1000, 1003, 4096):
        for kind in ("random", "ties", "neginf", "nan"):
            x = (rng.standard_normal((R, V)) * 3).astype(np.float32)
            if kind == "ties":
                x = np.round(x).astype(np.float32)  # many equal maxima: the lowest index must win
            elif kind == "neginf":
                x[:, : V // 2] = -np.inf
                x[0, :] = -np.inf
            elif kind == "nan":
                x[0, :] = np.nan
                x[1, ::3] = np.nan
            ids = {}
            for G in (0, 1, 3, 16):
                out = np.full(R, -7, np.int32)
                pv = np.zeros(R * max(G, 1), np.float32)
                pi = np.zeros(R * max(G, 1), np.int32)
                ctr = np.zeros(R, np.int32)
                base = [ptr(x), V, ptr(temp), ptr(topk), ptr(topp), ptr(minp), ptr(seed), ptr(stepc), ptr(out)]
                if G == 0:
                    iv = (ctypes.c_uint64 * 20)(*base + [0] * 11)
                    lib.emu_launch(fn("sample_f32"), iv, (ctypes.c_float * 8)(), R, 1, 1, 128, 1, 1)
                else:
                    iv = (ctypes.c_uint64 * 20)(*base + [ptr(pv), ptr(pi), ptr(ctr)] + [0] * 8)
                    lib.emu_launch(fn("sample_split_f32"), iv, (ctypes.c_float * 8)(), R, G, 1, 128, 1, 1)
                ids[G] = out.copy()
                if G:
                    ok = np.array_equal(out, ids[0]) and not ctr.any()
                    # greedy rows: numpy's argmax with NaN skipped (all NaN: 0)
                    for r in (0,):
                        row = np.where(np.isnan(x[r]), -np.inf, x[r])
                        want = 0 if np.isnan(x[r]).all() else int(np.argmax(row))
                        ok = ok and int(out[r]) == want
                    n += 1
                    bad += not ok
                    print(f"{'ok  ' if ok else 'FAIL'} V={V} {kind:7s} G={G:2d} ids {out.tolist()} (sample_f32 {ids[0].tolist()}) counters {ctr.tolist()}", flush=True)
    print(f"== {n} cases, {bad} failed")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
