#!/usr/bin/env python3
"""Desk check of kernels/flash_prefill_wg.cu on the CPU emulation (no GPU): builds the file with -DLLMRT_EMU
(emu/wgmma_emu.h models shared memory, cp.async and wgmma from the PTX layouts) into emu/build/flash_wg_emu.so and
runs every entry point and variant on small packed batches (chunks past a cached prefix, one-token sequences,
windows, GQA, shuffled block tables with NaN in unused slots, NaN-poisoned outputs) against a float64 reference; the
prefillTileScan entry points (flash_prefill_wgt_*: the block-wide tile lookup, on the planner's grid of S query tiles of
the longest sequence each) must give the default entry point's bits, also with more sequences than a block has threads.
It checks the kernel's index math against emu's model of the layouts, not the hardware's (the device check is
tools/cuda-kernel-check/flash_prefill.py).

  python3 tools/cuda-kernel-check/emu/flash_wg_emu.py [--quick]
"""
import ctypes
import math
import os
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
KDIR = os.path.abspath(os.path.join(HERE, "..", "..", "..", "lib", "backends", "cuda", "kernels"))
OUT = os.path.join(HERE, "build")
KERNELS = {64: [("flash_prefill_wg_bf16_hd64", 2), ("flash_prefill_wgv_hd64_g2n64s3", 2), ("flash_prefill_wgv_hd64_g3n128s2", 3), ("flash_prefill_wgv_hd64_g2n128s3", 2),
                ("flash_prefill_wgv_hd64_g2n128s3o", 2), ("flash_prefill_wgv_hd64_g2n64s4o", 2), ("flash_prefill_wgv_hd64_g3n64s3o", 3),
                ("flash_prefill_wgv_hd64_g2n64s3b2", 2), ("flash_prefill_wgv_hd64_g2n64s3ob2", 2), ("flash_prefill_wgv_hd64_g1n64s3ob3", 1),
                ("flash_prefill_wgv_hd64_g1n64s4ob2", 1), ("flash_prefill_wgv_hd64_g1n128s3ob2", 1)],
           128: [("flash_prefill_wg_bf16_hd128", 3), ("flash_prefill_wgv_hd128_g2n64s3", 2), ("flash_prefill_wgv_hd128_g3n64s2", 3), ("flash_prefill_wgv_hd128_g2n128s3", 2),
                 ("flash_prefill_wgv_hd128_g2n64s3o", 2), ("flash_prefill_wgv_hd128_g2n64s4o", 2), ("flash_prefill_wgv_hd128_g3n64s3o", 3),
                 ("flash_prefill_wgv_hd128_g3n64s4o", 3), ("flash_prefill_wgv_hd128_g3n64s5o", 3), ("flash_prefill_wgv_hd128_g1n64s2b2", 1)]}


def build():
    os.makedirs(OUT, exist_ok=True)
    so = os.path.join(OUT, "flash_wg_emu.so")
    srcs = [os.path.join(KDIR, "flash_prefill_wg.cu"), os.path.join(KDIR, "common.cuh")] + [os.path.join(HERE, n) for n in ("cuda_emu.h", "wgmma_emu.h", "emu_launch.cpp")]
    if os.path.exists(so) and os.path.getmtime(so) >= max(os.path.getmtime(s) for s in srcs):
        return so
    cpp = os.path.join(OUT, "flash_prefill_wg.cpp")
    open(cpp, "w").write(open(srcs[0]).read())
    flags = ["g++", "-std=c++20", "-O1", "-fPIC", "-pthread", "-w", "-DLLMRT_EMU", "-DLLMRT_FLASH_VARIANTS", f"-I{KDIR}", f"-I{HERE}", "-include", os.path.join(HERE, "cuda_emu.h")]
    subprocess.check_call(flags + ["-c", cpp, "-o", cpp + ".o"])
    subprocess.check_call(["g++", "-std=c++20", "-O1", "-fPIC", "-pthread", "-w", f"-I{HERE}", "-c", os.path.join(HERE, "emu_launch.cpp"), "-o", os.path.join(OUT, "emu_launch_wg.o")])
    subprocess.check_call(["g++", "-shared", "-pthread", "-o", so, cpp + ".o", os.path.join(OUT, "emu_launch_wg.o")])
    return so


def bf16(a):
    u = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32)
    r = ((u + np.uint32(0x7FFF) + ((u >> 16) & np.uint32(1))) >> 16).astype(np.uint16)
    r[(u & 0x7FFFFFFF) > 0x7F800000] = 0x7FC0
    return r


def f32(b):
    return (b.astype(np.uint32) << 16).view(np.float32)


def main():
    quick = "--quick" in sys.argv
    lib = ctypes.CDLL(build())
    lib.emu_launch.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_uint64), ctypes.POINTER(ctypes.c_float)] + [ctypes.c_int] * 6
    rng = np.random.default_rng(3)
    cases = [((4, 1, 64), [(0, 150)], 0, 16), ((4, 2, 128), [(0, 70), (40, 1), (7, 130)], 0, 16), ((6, 2, 64), [(0, 1), (300, 65)], 0, 32),
             ((2, 2, 128), [(0, 200), (5, 3)], 77, 16), ((4, 1, 64), [(100, 64), (0, 129)], 50, 32)]
    # prefillTileScan: more sequences than the block's threads (256 at hd 64, 384 at hd 128): several lookup rounds.
    many = [((2, 1, 64), [(i % 3, 1 + (i % 4 == 0)) for i in range(299)] + [(0, 130)], 0, 16),
            ((3, 1, 128), [(0, 0) if i % 50 == 7 else (i % 5, 1 + (i % 3 == 0)) for i in range(399)] + [(2, 200)], 0, 16)]
    if quick:
        cases, many = cases[:2], []  # the many-sequence cases take ~4 minutes
    cases = [(c, False) for c in cases] + [(c, True) for c in many]
    fails = 0
    for ((nH, nKV, hd), seqs, window, tpb), only_default in cases:
        T, S = sum(n for _, n in seqs), len(seqs)
        need = [max(1, math.ceil((p0 + n) / tpb)) + 1 for p0, n in seqs]
        maxB = max(need)
        nb = sum(need) + 1
        perm = rng.permutation(nb)
        table = np.zeros((S, maxB), np.int32)
        k = 0
        for s, n in enumerate(need):
            table[s, :n] = perm[k:k + n]
            table[s, n:] = perm[k + n - 1]
            k += n
        cache = rng.standard_normal((nb, 2, tpb, nKV, hd)).astype(np.float32)
        used = np.zeros((nb, tpb), bool)
        for s, (p0, n) in enumerate(seqs):
            for p in range(p0 + n):
                used[table[s, p // tpb], p % tpb] = True
        cache.transpose(0, 2, 1, 3, 4)[~used] = np.nan
        cb = bf16(cache)
        cq = f32(cb).astype(np.float64)
        q = rng.standard_normal((T, nH * hd)).astype(np.float32)
        qb = bf16(q)
        qq = f32(qb).astype(np.float64).reshape(T, nH, hd)
        pos = np.array([p0 + i for p0, n in seqs for i in range(n)], np.int32)
        starts = np.array([0] + list(np.cumsum([n for _, n in seqs])), np.int32)
        scale = 1 / math.sqrt(hd)
        ref = np.zeros((T, nH, hd))
        G = nH // nKV
        for s, (p0, n) in enumerate(seqs):
            if n == 0:
                continue
            L = p0 + n
            K = np.stack([cq[table[s, p // tpb], 0, p % tpb] for p in range(L)])
            V = np.stack([cq[table[s, p // tpb], 1, p % tpb] for p in range(L)])
            for i in range(n):
                t, p = starts[s] + i, p0 + i
                lo = max(0, p + 1 - window) if window > 0 else 0
                for h in range(nH):
                    sc = K[lo:p + 1, h // G] @ qq[t, h] * scale
                    w = np.exp(sc - sc.max())
                    ref[t, h] = (w / w.sum()) @ V[lo:p + 1, h // G]
        bits = None
        for name, nwg in (KERNELS[hd][:1] if only_default else KERNELS[hd]) + [(f"flash_prefill_wgt_bf16_hd{hd}", KERNELS[hd][0][1])]:
            out = np.full(T * nH * hd, 0x7FC0, np.uint16)
            bufs = [qb, out, cb, pos, starts, table]
            ints = [b.ctypes.data for b in bufs] + [T, S, nH, nKV, tpb, maxB, window]
            iv = (ctypes.c_uint64 * 20)(*(ints + [0] * (20 - len(ints))))
            fv = (ctypes.c_float * 8)(*([scale] + [0.0] * 7))
            fn = ctypes.cast(getattr(lib, name), ctypes.c_void_p).value
            scan = name.startswith("flash_prefill_wgt_")
            # attention_launch.ts: the scan entry points get min(ceil(T / BM) + S, S * ceil(longest / BM)) blocks.
            grid = min(math.ceil(T / (64 * nwg)) + S, S * math.ceil(max(n for _, n in seqs) / (64 * nwg))) if scan else math.ceil(T / (64 * nwg)) + S
            lib.emu_launch(fn, iv, fv, nH, grid, 1, 128 * nwg, 1, 1)
            o = f32(out).astype(np.float64).reshape(T, nH, hd)
            nan = int(np.isnan(o).sum())
            rel = float(np.sqrt(np.nansum((o - ref) ** 2) / np.sum(ref ** 2)))
            ok = nan == 0 and rel < 1e-2 and (not scan or np.array_equal(out, bits))
            if bits is None:
                bits = out
            fails += not ok
            print(f"{'ok  ' if ok else 'FAIL'} {name}: nH={nH} nKV={nKV} seqs={seqs if S < 8 else str(S) + ' sequences'} win={window} tpb={tpb}: rel {rel:.2e}, NaN {nan}", flush=True)
    print(f"SUMMARY flash_wg_emu: {fails} failed")
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
