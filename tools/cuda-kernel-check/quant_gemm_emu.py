#!/usr/bin/env python3
"""CPU desk check of quant_gemm_* / quant_gemm_reduce (kernels/quant_gemm.cu) through the CUDA emulation in emu/
(mma.sync from the PTX fragment layout, prmt / lop3 / bf16x2 FMA in C): u4 g128 + zero points, u4 g64, u8 per
channel, u8 g32 + zero points, every row tile (m16 / m32 / m64, and two m64 tiles), a partial weight block, split k
1 / 2 / 3, vs a float64 reference of dequantize-then-matmul. Tiny shapes. No GPU.

  python3 tools/cuda-kernel-check/quant_gemm_emu.py [--quick]
"""
import argparse
import ctypes
import math
import os
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
KDIR = os.path.abspath(os.path.join(HERE, "..", "..", "lib", "backends", "cuda", "kernels"))
EMU = os.path.join(HERE, "emu")
BN = (128, 256)  # weight rows per block: m16 / m32, m64 (quant_gemm.cu defaults)


def build(defines=(), out="/tmp/qgemm_emu"):
    os.makedirs(out, exist_ok=True)
    so = os.path.join(out, "qgemm_emu.so")
    cc = ["g++", "-std=c++20", "-O1", "-fPIC", "-pthread", "-w"]
    subprocess.check_call(cc + ["-DLLMRT_EMU"] + [f"-D{d}" for d in defines] + [f"-I{KDIR}", f"-I{EMU}", "-include", os.path.join(EMU, "cuda_emu.h"), "-x", "c++", "-c",
                                os.path.join(KDIR, "quant_gemm.cu"), "-o", os.path.join(out, "qg.o")])
    subprocess.check_call(cc + [f"-I{EMU}", "-c", os.path.join(EMU, "emu_launch.cpp"), "-o", os.path.join(out, "launch.o")])
    subprocess.check_call(["g++", "-shared", "-pthread", "-o", so, os.path.join(out, "qg.o"), os.path.join(out, "launch.o")])
    return so


def bf16_round(x):
    u = np.asarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)


def bf16_to_f(b):
    return (np.asarray(b, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--defines", default="", help="kernel knobs, e.g. QM_XSMEM=0,QM_SA_ALL=1,QM_WT=2,QM_NWN=4")
    ap.add_argument("--k4", type=int, default=384, help="in-features of the u4 cases (u8: half)")
    a = ap.parse_args()
    global BN
    defs = tuple(d for d in a.defines.split(",") if d)
    dd = dict((d.split("=") + ["1"])[:2] for d in defs)
    BN = tuple(int(dd.get("QM_NWN", 8)) * 16 * int(dd.get(w, d)) for w, d in (("QM_WT", 1), ("QM_WT64", 2)))
    lib = ctypes.CDLL(build(defs))
    lib.emu_launch.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_uint64), ctypes.POINTER(ctypes.c_float)] + [ctypes.c_int] * 6
    fn = lambda name: ctypes.cast(getattr(lib, name), ctypes.c_void_p).value  # noqa: E731

    def launch(name, grid, ints):
        iv = (ctypes.c_uint64 * 20)(*[int(v) & 0xFFFFFFFFFFFFFFFF for v in ints] + [0] * (20 - len(ints)))
        fv = (ctypes.c_float * 8)(*[0.0] * 8)
        lib.emu_launch(fn(name), iv, fv, grid[0], grid[1], grid[2], 256, 1, 1)

    rng = np.random.default_rng(7)
    bad = n = 0
    fmts = [(4, 128, True), (4, 64, False), (8, 0, False), (8, 32, True)]
    cases = [(9, 1), (20, 2), (40, 3), (70, 2)] if not a.quick else [(9, 2), (40, 1)]
    for bits, group, zp in fmts:
        K = a.k4 if bits == 4 else a.k4 // 2
        N = 144
        g = group or K
        q = rng.integers(0, 1 << bits, (N, K), dtype=np.uint8)
        packed = (q[:, 0::2] | (q[:, 1::2] << 4)).astype(np.uint8) if bits == 4 else q.copy()
        packed = np.ascontiguousarray(packed)
        scales = (rng.random((N, K // g)) * 0.02 + 1e-3).astype(np.float16).astype(np.float32)
        zeros = rng.integers(0, 16, (N, K // g), dtype=np.uint8) if zp and bits == 4 else rng.integers(100, 156, (N, K // g), dtype=np.uint8) if zp else None
        z = zeros.astype(np.float64) if zeros is not None else np.full(scales.shape, float(1 << (bits - 1)))
        wref = (q.astype(np.float64) - np.repeat(z, g, axis=1)) * np.repeat(scales.astype(np.float64), g, axis=1)
        bias = bf16_round(rng.standard_normal(N).astype(np.float32) * 0.1)
        for m, splits in cases:
            mt = 16 if m <= 16 else 32 if m <= 32 else 64
            x = bf16_round(rng.standard_normal((m, K)).astype(np.float32))
            y = np.full((m, N), 0x7FC0, np.uint16)
            ws = np.full(splits * m * N, np.nan, np.float32)
            grid = (math.ceil(m / mt), math.ceil(N / BN[mt == 64]), splits)
            u = "u4" if bits == 4 else "u8"
            launch(f"quant_gemm_{u}_m{mt}", grid, [x.ctypes.data, packed.ctypes.data, scales.ctypes.data, zeros.ctypes.data if zeros is not None else 0,
                                                  bias.ctypes.data, y.ctypes.data, ws.ctypes.data if splits > 1 else 0, m, N, K, g])
            if splits > 1:
                launch("quant_gemm_reduce", (math.ceil(m * N / 4 / 256), 1, 1), [ws.ctypes.data, bias.ctypes.data, y.ctypes.data, m, N, splits])
            ref = bf16_to_f(x).astype(np.float64) @ wref.T + bf16_to_f(bias).astype(np.float64)
            out = bf16_to_f(y).astype(np.float64)
            err = float(np.linalg.norm(out - ref) / np.linalg.norm(ref)) if not np.isnan(out).any() else float("nan")
            ok = err < 6e-3
            n += 1
            bad += not ok
            print(f"{'ok  ' if ok else 'FAIL'} u{bits} g{group or 'K'}{' zp' if zp else ''} m{m} (m{mt} x{grid[0]}) splits {splits}: relerr {err:.2e}", flush=True)
    print(f"{n - bad}/{n} ok")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
