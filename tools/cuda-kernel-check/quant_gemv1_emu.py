#!/usr/bin/env python3
"""CPU desk check of quant_gemv1{,_norm}_u{4,8} (kernels/quant_gemv1.cu) through the CUDA emulation in emu/ (threads,
barriers and warp shuffles real; mma.sync m16n8k16 from the PTX fragment layout, prmt / lop3 / bf16x2 FMA in C): u4
g128 + zero points, u4 g256, u8 per channel, u8 g64 + zero points; modes 0-3, with and without bias and the RMSNorm
prologue; several grids (the kernel takes any: 1 block, 3 blocks, the launcher's), vs a float64 reference of
dequantize-then-matmul (x rmsnorm'd and rounded to bf16 as rmsnorm_bf16 does). Tiny shapes. No GPU.

  python3 tools/cuda-kernel-check/quant_gemv1_emu.py [--defines Q1_D=6,Q1_GMAX=2]
"""
import argparse
import ctypes
import os
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
KDIR = os.path.abspath(os.path.join(HERE, "..", "..", "lib", "backends", "cuda", "kernels"))
EMU = os.path.join(HERE, "emu")


def build(defines=(), out="/tmp/qgemv1_emu"):
    os.makedirs(out, exist_ok=True)
    so = os.path.join(out, "qgemv1_emu.so")
    cc = ["g++", "-std=c++20", "-O1", "-fPIC", "-pthread", "-w"]
    subprocess.check_call(cc + ["-DLLMRT_EMU"] + [f"-D{d}" for d in defines] + [f"-I{KDIR}", f"-I{EMU}", "-include", os.path.join(EMU, "cuda_emu.h"), "-x", "c++", "-c",
                                os.path.join(KDIR, "quant_gemv1.cu"), "-o", os.path.join(out, "q1.o")])
    subprocess.check_call(cc + [f"-I{EMU}", "-c", os.path.join(EMU, "emu_launch.cpp"), "-o", os.path.join(out, "launch.o")])
    subprocess.check_call(["g++", "-shared", "-pthread", "-o", so, os.path.join(out, "q1.o"), os.path.join(out, "launch.o")])
    return so


def bf16_round(x):
    u = np.asarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)


def bf16_to_f(b):
    return (np.asarray(b, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--defines", default="", help="kernel knobs, e.g. Q1_D=6,Q1_GMAX=2")
    a = ap.parse_args()
    defs = tuple(d for d in a.defines.split(",") if d)
    lib = ctypes.CDLL(build(defs))
    lib.emu_launch.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_uint64), ctypes.POINTER(ctypes.c_float)] + [ctypes.c_int] * 6
    fn = lambda name: ctypes.cast(getattr(lib, name), ctypes.c_void_p).value  # noqa: E731
    rng = np.random.default_rng(11)
    bad = n = 0
    # (bits, group (0: per channel), zero points, K, N)
    for bits, group, zp, K, N in [(4, 128, True, 2048, 48), (4, 128, True, 4096, 32), (4, 256, False, 6144, 16), (8, 0, False, 2048, 32), (8, 64, True, 1024, 48)]:
        g = group or K
        q = rng.integers(0, 1 << bits, (N, K), dtype=np.uint8)
        packed = np.ascontiguousarray((q[:, 0::2] | (q[:, 1::2] << 4)).astype(np.uint8) if bits == 4 else q.copy())
        scales = (rng.random((N, K // g)) * 0.02 + 1e-3).astype(np.float32)
        zeros = rng.integers(0, 1 << bits, (N, K // g), dtype=np.uint8) if zp else None
        z = zeros.astype(np.float64) if zeros is not None else np.full(scales.shape, float(1 << (bits - 1)))
        wref = (q.astype(np.float64) - np.repeat(z, g, axis=1)) * np.repeat(scales.astype(np.float64), g, axis=1)
        bias = bf16_round(rng.standard_normal(N).astype(np.float32) * 0.1)
        nw = bf16_round(1 + 0.1 * rng.standard_normal(K))
        x = bf16_round(rng.standard_normal(K).astype(np.float32))
        u = "u4" if bits == 4 else "u8"
        for norm in (False, True):
            xf = bf16_to_f(x)
            if norm:
                # rmsnorm_bf16: per-thread sums of chunk tid, tid + 256, ... (order aside, float32), then x · inv · w rounded.
                inv = np.float32(1 / np.sqrt(np.float32(np.sum(xf.astype(np.float64) ** 2) / K) + np.float32(1e-5)))
                xf = bf16_to_f(bf16_round(xf * inv * bf16_to_f(nw)))
            lin0 = wref @ xf.astype(np.float64)
            for mode in (0, 1, 2, 3):
                for has_bias in (False, True):
                    lin = lin0 + (bf16_to_f(bias).astype(np.float64) if has_bias else 0)
                    y0 = bf16_round(rng.standard_normal(N))
                    if mode == 1:
                        ref = bf16_to_f(bf16_round(lin)).astype(np.float64) + bf16_to_f(y0)
                    elif mode == 2:
                        gte = bf16_to_f(bf16_round(lin[: N // 2])).astype(np.float64)
                        up = bf16_to_f(bf16_round(lin[N // 2:])).astype(np.float64)
                        ref = gte / (1 + np.exp(-gte)) * up
                    else:
                        ref = lin
                    for grid in (1, 3, max(1, N // 2 // 8)):
                        if mode == 3:
                            y = np.full(N, np.nan, np.float32)
                        elif mode == 2:
                            y = np.full(N // 2, 0x7FC0, np.uint16)
                        elif mode == 1:
                            y = y0.copy()
                        else:
                            y = np.full(N, 0x7FC0, np.uint16)
                        ints = [x.ctypes.data, packed.ctypes.data, scales.ctypes.data, zeros.ctypes.data if zeros is not None else 0,
                                bias.ctypes.data if has_bias else 0, y.ctypes.data, nw.ctypes.data if norm else 0, 1, N, K, g, mode]
                        iv = (ctypes.c_uint64 * 20)(*ints + [0] * (20 - len(ints)))
                        fv = (ctypes.c_float * 8)(*([1e-5] + [0.0] * 7))
                        lib.emu_launch(fn(f"quant_gemv1{'_norm' if norm else ''}_{u}"), iv, fv, grid, 1, 1, 256, 1, 1)
                        got = y.astype(np.float64) if mode == 3 else bf16_to_f(y).astype(np.float64)
                        err = float(np.linalg.norm(got - ref) / np.linalg.norm(ref)) if not np.isnan(got).any() else float("nan")
                        # bf16 outputs: rounding (2^-9 relative) plus the bf16 x of the norm; fp32: the sums' order only.
                        ok = err < (1e-6 if mode == 3 and not norm else 4e-3)
                        n += 1
                        bad += not ok
                        if not ok or (mode == 0 and grid == 1 and not has_bias):
                            print(f"{'ok  ' if ok else 'FAIL'} {u} g{group or 'K'}{' zp' if zp else ''} K={K} N={N} norm={norm} mode={mode} bias={has_bias} grid={grid}: "
                                  f"rel err {err:.2e}", flush=True)
        # _addnorm (mode 1: the residual, xw = bf16(new · normW), pair sums of squares) then _rs on x = xw.
        nwN = bf16_round(1 + 0.1 * rng.standard_normal(N))
        y0 = bf16_round(rng.standard_normal(N))
        for grid in (1, 3):
            y = y0.copy()
            xw = np.full(N, 0x7FC0, np.uint16)
            psq = np.full(N // 2, np.nan, np.float32)
            ints = [x.ctypes.data, packed.ctypes.data, scales.ctypes.data, zeros.ctypes.data if zeros is not None else 0, 0, y.ctypes.data,
                    nwN.ctypes.data, 1, N, K, g, 1, xw.ctypes.data, psq.ctypes.data]
            lib.emu_launch(fn(f"quant_gemv1_addnorm_{u}"), (ctypes.c_uint64 * 20)(*ints + [0] * (20 - len(ints))), (ctypes.c_float * 8)(*([1e-5] + [0.0] * 7)),
                           grid, 1, 1, 256, 1, 1)
            ref = bf16_to_f(bf16_round(wref @ bf16_to_f(x).astype(np.float64))).astype(np.float64) + bf16_to_f(y0)
            yn = bf16_to_f(y).astype(np.float64)
            e1 = float(np.linalg.norm(yn - ref) / np.linalg.norm(ref))
            xw_ok = np.array_equal(xw, bf16_round(bf16_to_f(y) * bf16_to_f(nwN)))
            sq = bf16_to_f(y).astype(np.float32) ** 2
            psq_ok = np.array_equal(psq, (sq[0::2] + sq[1::2]).astype(np.float32))
            ok = e1 < 4e-3 and xw_ok and psq_ok
            n += 1
            bad += not ok
            print(f"{'ok  ' if ok else 'FAIL'} {u} addnorm grid={grid}: residual rel err {e1:.2e}, xw {'exact' if xw_ok else 'WRONG'}, pair sums {'exact' if psq_ok else 'WRONG'}")
        # _rs: a weight of N in-features (K' = N must be a whole number of segments: reuse the first N columns' layout).
        Kr = 2048 if bits == 4 else 1024
        Nr = 32
        qr = rng.integers(0, 1 << bits, (Nr, Kr), dtype=np.uint8)
        pr = np.ascontiguousarray((qr[:, 0::2] | (qr[:, 1::2] << 4)).astype(np.uint8) if bits == 4 else qr.copy())
        gr = 128 if bits == 4 else Kr
        sr = (rng.random((Nr, Kr // gr)) * 0.02 + 1e-3).astype(np.float32)
        wr = (qr.astype(np.float64) - (1 << (bits - 1))) * np.repeat(sr.astype(np.float64), gr, axis=1)
        xr = bf16_round(rng.standard_normal(Kr))
        ps = (rng.random(Kr // 2) * 2).astype(np.float32)
        inv = 1 / np.sqrt(ps.astype(np.float64).sum() / Kr + 1e-5)
        for mode in (0, 2, 3):
            lin = inv * (wr @ bf16_to_f(xr).astype(np.float64))
            if mode == 2:
                gte = bf16_to_f(bf16_round(lin[: Nr // 2])).astype(np.float64)
                up = bf16_to_f(bf16_round(lin[Nr // 2:])).astype(np.float64)
                ref = gte / (1 + np.exp(-gte)) * up
                y = np.full(Nr // 2, 0x7FC0, np.uint16)
            elif mode == 3:
                ref, y = lin, np.full(Nr, np.nan, np.float32)
            else:
                ref, y = lin, np.full(Nr, 0x7FC0, np.uint16)
            ints = [xr.ctypes.data, pr.ctypes.data, sr.ctypes.data, 0, 0, y.ctypes.data, ps.ctypes.data, 1, Nr, Kr, gr, mode]
            lib.emu_launch(fn(f"quant_gemv1_rs_{u}"), (ctypes.c_uint64 * 20)(*ints + [0] * (20 - len(ints))), (ctypes.c_float * 8)(*([1e-5] + [0.0] * 7)),
                           2, 1, 1, 256, 1, 1)
            got = y.astype(np.float64) if mode == 3 else bf16_to_f(y).astype(np.float64)
            err = float(np.linalg.norm(got - ref) / np.linalg.norm(ref))
            ok = err < (1e-5 if mode == 3 else 4e-3)
            n += 1
            bad += not ok
            print(f"{'ok  ' if ok else 'FAIL'} {u} rs mode={mode}: rel err {err:.2e}")
    print(f"{n - bad}/{n} ok")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
