#!/usr/bin/env python3
"""CPU desk check of the 16-row tensor-core quantized GEMVs (kernels/quant_gemv.cu quant_gemv_fused{,_norm,_addnorm,_rs}_u{4,8})
through the CUDA emulation in emu/ (threads, barriers and warp shuffles real; mma.sync m16n8k16 from the PTX fragment
layout, prmt / lop3 / bf16x2 FMA in C), for each compile-time variant given: vs a float64 dequantize-then-matmul
reference, and against the first variant's output bits (the same bits, or the largest difference in bf16 units).
Tiny shapes (two 16-row tiles), m = 1 and 3 x rows (5 at K = 4096, 8 at K = 1152), modes 0-3. No GPU.

  python3 tools/cuda-kernel-check/quant_gemv_emu.py [--variants ",QG_CONTIG=1"]
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


def build(defines, out):
    os.makedirs(out, exist_ok=True)
    so = os.path.join(out, "qgemv_emu.so")
    cc = ["g++", "-std=c++20", "-O1", "-fPIC", "-pthread", "-w"]
    subprocess.check_call(cc + ["-DLLMRT_EMU"] + [f"-D{d}" for d in defines] + [f"-I{KDIR}", f"-I{EMU}", "-include", os.path.join(EMU, "cuda_emu.h"),
                                "-x", "c++", "-c", os.path.join(KDIR, "quant_gemv.cu"), "-o", os.path.join(out, "q.o")])
    subprocess.check_call(cc + [f"-I{EMU}", "-c", os.path.join(EMU, "emu_launch.cpp"), "-o", os.path.join(out, "launch.o")])
    subprocess.check_call(["g++", "-shared", "-pthread", "-o", so, os.path.join(out, "q.o"), os.path.join(out, "launch.o")])
    return so


def bf16_round(x):
    u = np.asarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)


def bf16_to_f(b):
    return (np.asarray(b, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--variants", default=",QG_CONTIG=1", help="';'-separated variants, each a comma list of defines ('' = default)")
    ap.add_argument("--xscales", default="1", help="comma list of factors x is multiplied by (QG_F16's per-row 2^e: e.g. 1,1e6,1e-9)")
    a = ap.parse_args()
    variants = a.variants.split(";")
    libs = []
    for i, v in enumerate(variants):
        # GRID=n (not a define): at most n blocks (a persistent grid: QG_LOOP / QG_RING_SC loop over the tiles).
        lib = ctypes.CDLL(build(tuple(d for d in v.split(",") if d and not d.startswith("GRID=")), f"/tmp/qgemv-emu-{os.getpid()}/{i}"))
        lib.grid_cap = next((int(d[5:]) for d in v.split(",") if d.startswith("GRID=")), 1 << 30)
        lib.emu_launch.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_uint64), ctypes.POINTER(ctypes.c_float)] + [ctypes.c_int] * 6
        libs.append(lib)
    rng = np.random.default_rng(12)
    bad = n = 0
    first = {}
    # (bits, group (0: per channel), zero points, K): K 2560 is 20 u4 superchunks (not a multiple of the 8 warps). QG_CONTIG's
    # (quantGemvFast's) runs: u8 g64 K 1024 pairs its scale / zero-point loads (S 16, runs of 2); K 2176 17 superchunks (odd
    # runs of 3, the last warp's shorter); K 640 / 384 fewer superchunks than warps (empty runs); u8 g128 two superchunks a group.
    for bits, group, zp, K in [(4, 128, True, 2048), (4, 128, True, 2560), (4, 256, False, 4096), (8, 0, False, 1024), (8, 64, True, 1536),
                               (8, 64, True, 1024), (4, 128, True, 2176), (4, 128, False, 640), (4, 0, True, 384), (8, 128, True, 1152)]:
        N = 32
        g = group or K
        q = rng.integers(0, 1 << bits, (N, K), dtype=np.uint8)
        packed = np.ascontiguousarray((q[:, 0::2] | (q[:, 1::2] << 4)).astype(np.uint8) if bits == 4 else q.copy())
        scales = (rng.random((N, K // g)) * 0.02 + 1e-3).astype(np.float32)
        zeros = rng.integers(0, 1 << bits, (N, K // g), dtype=np.uint8) if zp else None
        z = zeros.astype(np.float64) if zeros is not None else np.full(scales.shape, float(1 << (bits - 1)))
        wref = (q.astype(np.float64) - np.repeat(z, g, axis=1)) * np.repeat(scales.astype(np.float64), g, axis=1)
        bias = bf16_round(rng.standard_normal(N).astype(np.float32) * 0.1)
        u = "u4" if bits == 4 else "u8"
        # m = 5 at K = 4096: 20480 x values, past the 16384 a block stages (QG_XP): the fallback through global memory.
        for m, xscale in [(m, float(xs)) for m in ((1, 3, 5) if K == 4096 else (1, 8) if K == 1152 else (1, 3)) for xs in a.xscales.split(",")]:
            x = bf16_round(rng.standard_normal((m, K)).astype(np.float32) * np.float32(xscale))
            y0 = bf16_round(rng.standard_normal((m, N)))
            nwN = bf16_round(1 + 0.1 * rng.standard_normal(N))
            ssqIn = (rng.random((m, K // 16)) * 2).astype(np.float32)
            for form in ("", "_rs", "_addnorm"):
                for mode in ((1,) if form == "_addnorm" else (0, 1, 2, 3)):
                    for has_bias in (False, True):
                        xf = bf16_to_f(x).astype(np.float64)
                        lin = xf @ wref.T
                        if form == "_rs":  # the sums times 1 / rms, then the bias
                            lin = lin * (1 / np.sqrt(ssqIn.astype(np.float64).sum(axis=1) / K + 1e-5))[:, None]
                        lin = lin + (bf16_to_f(bias).astype(np.float64) if has_bias else 0)
                        if mode == 1:
                            ref = bf16_to_f(bf16_round(lin)).astype(np.float64) + bf16_to_f(y0)
                        elif mode == 2:
                            gte = bf16_to_f(bf16_round(lin[:, : N // 2])).astype(np.float64)
                            up = bf16_to_f(bf16_round(lin[:, N // 2:])).astype(np.float64)
                            ref = gte / (1 + np.exp(-gte)) * up
                        else:
                            ref = lin
                        outs = []
                        for lib in libs:
                            if mode == 3:
                                y = np.full((m, N), np.nan, np.float32)
                            elif mode == 2:
                                y = np.full((m, N // 2), 0x7FC0, np.uint16)
                            elif mode == 1:
                                y = y0.copy()
                            else:
                                y = np.full((m, N), 0x7FC0, np.uint16)
                            xw = np.full((m, N), 0x7FC0, np.uint16)
                            ssq = np.full((m, N // 16), np.nan, np.float32)
                            nw = nwN.ctypes.data if form == "_addnorm" else ssqIn.ctypes.data if form == "_rs" else 0
                            ints = [x.ctypes.data, packed.ctypes.data, scales.ctypes.data, zeros.ctypes.data if zeros is not None else 0,
                                    bias.ctypes.data if has_bias else 0, y.ctypes.data, nw, m, N, K, g, mode]
                            if form == "_addnorm":
                                ints += [xw.ctypes.data, ssq.ctypes.data]
                            iv = (ctypes.c_uint64 * 20)(*ints + [0] * (20 - len(ints)))
                            fv = (ctypes.c_float * 8)(*([1e-5] + [0.0] * 7))
                            fn = ctypes.cast(getattr(lib, f"quant_gemv_fused{form}_{u}"), ctypes.c_void_p).value
                            lib.emu_launch(fn, iv, fv, min((N // 2 // 8) if mode == 2 else N // 16, lib.grid_cap), 1, 1, 256, 1, 1)
                            outs.append((y, xw, ssq))
                        key = f"{u} g{group or 'K'}{' zp' if zp else ''} K={K} m={m}{f' x*{xscale:g}' if xscale != 1 else ''} {form or 'plain'} mode={mode} bias={has_bias}"
                        for vi, (y, xw, ssq) in enumerate(outs):
                            got = y.astype(np.float64) if mode == 3 else bf16_to_f(y).astype(np.float64)
                            err = float(np.linalg.norm(got - ref) / np.linalg.norm(ref)) if not np.isnan(got).any() else float("nan")
                            ok = err < (1e-5 if mode == 3 else 4e-3)
                            extra = ""
                            if form == "_addnorm":
                                xw_ok = np.array_equal(xw, bf16_round(bf16_to_f(y) * bf16_to_f(nwN)))
                                sq = (bf16_to_f(y).astype(np.float32) ** 2).reshape(m, N // 16, 16)
                                ssq_ok = np.allclose(ssq, sq.sum(axis=2), rtol=1e-6)
                                ok = ok and xw_ok and ssq_ok
                                extra = f", xw {'exact' if xw_ok else 'WRONG'}, ssq {'ok' if ssq_ok else 'WRONG'}"
                            if vi > 0:
                                y1 = outs[0][0]
                                if np.array_equal(y.view(np.uint8), y1.view(np.uint8)):
                                    extra += "; same bits as the first variant"
                                elif mode == 3:
                                    extra += f"; vs the first variant max |diff| / max |y| {np.abs(y - y1).max() / np.abs(y1).max():.2e}"
                                else:
                                    units = np.abs(y.astype(np.int32) - y1.astype(np.int32)).max()
                                    extra += f"; vs the first variant up to {units} bf16 units"
                            n += 1
                            bad += not ok
                            if not ok or vi > 0 or (mode == 0 and not has_bias):
                                print(f"{'ok  ' if ok else 'FAIL'} [{variants[vi] or 'default'}] {key}: rel err {err:.2e}{extra}", flush=True)
    print(f"{n - bad}/{n} ok")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
