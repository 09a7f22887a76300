#!/usr/bin/env python3
"""CPU desk check of decode_attention_sk (kernels/decode_attention_sk.cu) through the CUDA emulation in emu/
(every CUDA thread an OS thread, blocks one after another): float64 reference, the cache bits of the step's own
key, counters left zero, no NaN read (poisoned unused slots), and bitwise batch invariance across grids and
batches. Tiny shapes only (thousands of threads per second). No GPU, no CUDA; needs g++ >= 11 and numpy.

  python3 tools/cuda-kernel-check/decode_sk_emu.py [--defines DS_MINK=64,DS_NS=2] [--fp8]

--fp8: decode_attention_sk_fp8kv_bf16_hd* (session 10) over an e4m3 cache with per-kv-head scales: the own key / value
bytes against a numpy encoder (encode(float(rotated k) / kScale), encode(v / vScale)), outputs against a float64
attention over decode(byte) · scale, NaN bytes in every unused slot, counters, Z invariance.
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


def build(defines, out):
    os.makedirs(out, exist_ok=True)
    so = os.path.join(out, "sk_emu.so")
    flags = [f"-D{d}" for d in defines]
    subprocess.check_call(["g++", "-std=c++20", "-O1", "-fPIC", "-pthread", "-w", *flags, f"-I{KDIR}", f"-I{EMU}", "-include", os.path.join(EMU, "sk_emu.h"),
                           "-x", "c++", "-c", os.path.join(KDIR, "decode_attention_sk.cu"), "-o", os.path.join(out, "sk.o")])
    subprocess.check_call(["g++", "-std=c++20", "-O1", "-fPIC", "-pthread", "-w", f"-I{EMU}", "-c", os.path.join(EMU, "emu_launch.cpp"), "-o", os.path.join(out, "launch.o")])
    subprocess.check_call(["g++", "-shared", "-pthread", "-o", so, os.path.join(out, "sk.o"), os.path.join(out, "launch.o")])
    return so


def bf16_round(x):
    """float32 -> bf16 bits (round to nearest even), as uint16."""
    u = np.asarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    nan = (u & 0x7FFFFFFF) > 0x7F800000
    r = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)
    r[nan] = 0x7FC0
    return r


def bf16_to_f(b):
    return (np.asarray(b, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)


class Emu:
    def __init__(self, so):
        self.lib = ctypes.CDLL(so)
        self.lib.emu_launch.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_uint64), ctypes.POINTER(ctypes.c_float)] + [ctypes.c_int] * 6
        self.lib.emu_launch24.argtypes = self.lib.emu_launch.argtypes
        self.fns = {hd: ctypes.cast(getattr(self.lib, f"decode_attention_sk_bf16_hd{hd}"), ctypes.c_void_p).value for hd in (64, 128)}
        self.fns8 = {hd: ctypes.cast(getattr(self.lib, f"decode_attention_sk_fp8kv_bf16_hd{hd}"), ctypes.c_void_p).value for hd in (64, 128)}

    def launch(self, hd, grid, ints, floats, fp8=False):
        iv = (ctypes.c_uint64 * 24)(*[int(v) & 0xFFFFFFFFFFFFFFFF for v in ints] + [0] * (24 - len(ints)))
        fv = (ctypes.c_float * 8)(*floats + [0.0] * (8 - len(floats)))
        (self.lib.emu_launch24 if fp8 else self.lib.emu_launch)(self.fns8[hd] if fp8 else self.fns[hd], iv, fv, grid[0], grid[1], grid[2], 128, 1, 1)


def ptr(a):
    return a.ctypes.data


E4 = np.array([(-1 if b & 0x80 else 1) * ((b & 7) * 2.0 ** -9 if (b >> 3) & 15 == 0 else (1 + (b & 7) / 8) * 2.0 ** (((b >> 3) & 15) - 7))
               for b in range(256)])
E4[0x7F] = E4[0xFF] = np.nan
_POS = np.arange(0x7F)  # bytes 0..0x7e: the finite non-negative values, increasing


def e4m3_encode(x):
    """float32 array -> e4m3 bytes, round to nearest even, saturating to +-448 (as cvt.rn.satfinite.e4m3x2.f32)."""
    x = np.asarray(x, np.float64)
    a = np.minimum(np.abs(x), 448.0)
    vals = E4[_POS]
    hi = np.clip(np.searchsorted(vals, a), 0, 0x7E)
    lo = np.maximum(hi - 1, 0)
    dlo, dhi = a - vals[lo], vals[hi] - a
    pick = np.where(dlo < dhi, lo, np.where(dhi < dlo, hi, np.where(lo % 2 == 0, lo, hi)))
    return (pick | np.where(np.signbit(x), 0x80, 0)).astype(np.uint8)


def run_case(emu, nH, nKV, hd, tpb, lens, window, target, Z, mink, rng, cache=None, qkv=None, fp8=False):
    G = nH // nKV
    T = len(lens)
    need = [math.ceil((p + 1) / tpb) for p in lens]
    maxB = max(need)
    if cache is None:
        nb = sum(need) + 1
        perm = rng.permutation(nb)
        tab = np.zeros((T, maxB), np.int32)
        it = iter(perm)
        for s, n in enumerate(need):
            for j in range(n):
                tab[s, j] = next(it)
        spare = next(it)
        for s, n in enumerate(need):
            tab[s, n:] = spare
        if fp8:  # e4m3 bytes (scales below), NaN bytes where nothing may be read
            data = e4m3_encode(rng.standard_normal((nb, 2, tpb, nKV, hd)) * 40)
            data[spare] = 0x7F
            for s, p in enumerate(lens):
                data[tab[s, p // tpb], :, p % tpb:] = 0x7F
        else:
            data = bf16_round(rng.standard_normal((nb, 2, tpb, nKV, hd)).astype(np.float32))
            data[spare] = 0x7FC0
            for s, p in enumerate(lens):
                data[tab[s, p // tpb], :, p % tpb:] = 0x7FC0  # own slot and later: NaN
        cache = (data, tab)
    data0, tab = cache
    scales = np.concatenate([0.02 + 0.03 * np.arange(nKV), 0.05 + 0.01 * np.arange(nKV)]).astype(np.float32)  # [2, nKV]
    data = data0.copy()
    if qkv is None:
        qkv = bf16_round(rng.standard_normal((T, (nH + 2 * nKV) * hd)).astype(np.float32))
    positions = np.array(lens, np.int32)
    starts = np.arange(T + 1, dtype=np.int32)
    inv = 1.0 / (10000.0 ** (np.arange(0, hd, 2, dtype=np.float64) / hd))
    out = np.full((T, nH * hd), 0x7FC0, np.uint16)
    pO = np.full((T, nH, 64, hd), np.nan, np.float32)
    pML = np.full((T, nH, 64, 2), np.nan, np.float32)
    ctr = np.zeros(T * nKV * math.ceil(G / 8), np.int32)
    scale = 1 / math.sqrt(hd)
    tabc = np.ascontiguousarray(tab)
    ints = [ptr(qkv), ptr(out), ptr(data), ptr(positions), ptr(starts), ptr(tabc), ptr(inv), ptr(pO), ptr(pML), ptr(ctr),
            T, T, nH, nKV, tpb, maxB, window, target, 0, 0] + ([ptr(scales)] if fp8 else [])
    emu.launch(hd, (nKV * math.ceil(G / 8), T, Z), ints, [1.0, scale], fp8)
    # reference: rope (float cs/sn from double, bf16 rounding) and float64 attention over the cache after the step
    errs = []
    own_ok = True
    for t, p in enumerate(lens):
        ang = inv * p
        cs, sn = np.cos(ang).astype(np.float32), np.sin(ang).astype(np.float32)
        row = bf16_to_f(qkv[t])
        kvo = (nH) * hd
        for h in range(nKV):
            k = row[kvo + h * hd: kvo + (h + 1) * hd]
            a, b = k[: hd // 2], k[hd // 2:]
            blk, off = tab[t, p // tpb], p % tpb
            if fp8:  # encode(float(rotated k) / kScale), encode(v / vScale) (float32 quotients)
                kf = np.concatenate([(a * cs - b * sn).astype(np.float32), (b * cs + a * sn).astype(np.float32)])
                own_ok &= np.array_equal(data[blk, 0, off, h], e4m3_encode(kf / scales[h]))
                vf = row[(nH + nKV + h) * hd:(nH + nKV + h + 1) * hd]
                own_ok &= np.array_equal(data[blk, 1, off, h], e4m3_encode(vf / scales[nKV + h]))
                continue
            kr = np.concatenate([bf16_round(a * cs - b * sn), bf16_round(b * cs + a * sn)])
            own_ok &= np.array_equal(data[blk, 0, off, h], kr)
            own_ok &= np.array_equal(data[blk, 1, off, h], qkv[t][(nH + nKV + h) * hd:(nH + nKV + h + 1) * hd])
        lo = max(0, p + 1 - window) if window else 0
        idx = np.arange(lo, p + 1)
        if fp8:
            K = E4[data[tab[t, idx // tpb], 0, idx % tpb]] * scales[None, :nKV, None].astype(np.float64)
            V = E4[data[tab[t, idx // tpb], 1, idx % tpb]] * scales[None, nKV:, None].astype(np.float64)
        else:
            K = bf16_to_f(data[tab[t, idx // tpb], 0, idx % tpb]).astype(np.float64)  # [n, nKV, hd]
            V = bf16_to_f(data[tab[t, idx // tpb], 1, idx % tpb]).astype(np.float64)
        o = bf16_to_f(out[t]).astype(np.float64).reshape(nH, hd)
        refs = np.empty((nH, hd))
        for hq in range(nH):
            q = row[hq * hd:(hq + 1) * hd]
            a, b = q[: hd // 2], q[hd // 2:]
            qr = bf16_to_f(np.concatenate([bf16_round(a * cs - b * sn), bf16_round(b * cs + a * sn)])).astype(np.float64)
            sc = K[:, hq // G] @ qr * scale
            w = np.exp(sc - sc.max())
            refs[hq] = (w / w.sum()) @ V[:, hq // G]
        errs.append(np.linalg.norm(o - refs) / np.linalg.norm(refs) if np.isfinite(o).all() else float("nan"))
    return out, errs, own_ok, int(np.abs(ctr).sum()) == 0, cache, qkv


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--defines", default="DS_MINK=64")
    ap.add_argument("--out", default="/tmp/skemu")
    ap.add_argument("--fp8", action="store_true")
    # --small: the split argument carries 64 least keys a split in bits 16+ (fp8DecodeSkSmall, session 16; run with the
    # default DS_MINK: --defines ""); 64-key splits only while they number at most (TS + 1) / 2.
    ap.add_argument("--small", action="store_true")
    a = ap.parse_args()
    defines = [d for d in a.defines.split(",") if d]
    mink = 128
    for d in defines:
        if d.startswith("DS_MINK="):
            mink = int(d.split("=")[1])
    emu = Emu(build(defines, a.out))
    rng = np.random.default_rng(3)
    bad = 0
    n = 0

    def nz_of(span, target):
        even = math.ceil(math.ceil(span / target) / 64) * 64
        sz = max(64 if a.small else mink, even)
        if a.small and math.ceil(span / sz) > (target + 1) // 2:
            sz = max(mink, even)
        return math.ceil(span / sz)

    shapes = [(8, 2, 128), (4, 1, 64), (8, 1, 128)] if a.fp8 else [(8, 2, 64), (4, 1, 128), (16, 1, 64), (7, 1, 64)]
    for (nH, nKV, hd) in shapes:
        for tpb in ((32,) if a.fp8 else (16, 32)):
            for lens, window in (([0], 0), ([5], 0), ([63], 0), ([64], 0), ([200], 0), ([300, 7, 130], 0), ([250, 40], 100)):
                for target in ((3, 64) if a.fp8 else (1, 3, 64)):
                    zmax = max(nz_of((min(p + 1, window) if window else p + 1), target) for p in lens)
                    first = None
                    cache = qkv = None
                    for Z in sorted({1, 2, zmax, zmax + 1}):
                        arg = target | (1 << 16) if a.small else target
                        out, errs, own_ok, ctr_ok, cache, qkv = run_case(emu, nH, nKV, hd, tpb, lens, window, arg, Z, mink, rng, cache, qkv, a.fp8)
                        same = first is None or np.array_equal(first, out)
                        first = out if first is None else first
                        ok = all(e < 1e-2 for e in errs) and own_ok and ctr_ok and same
                        n += 1
                        bad += not ok
                        print(f"{'ok  ' if ok else 'FAIL'} {'fp8 ' if a.fp8 else ''}nH={nH} nKV={nKV} hd={hd} tpb={tpb} pos={lens} win={window} TS={target} Z={Z} "
                              f"nz={[nz_of(min(p + 1, window) if window else p + 1, target) for p in lens]}: rel={max(errs):.2e} own-bits={own_ok} ctr0={ctr_ok} Z-invariant={same}", flush=True)
    # batch invariance: sequence 0 alone vs in a batch of 3 (other spans), same cache rows
    print(f"== {n} cases, {bad} failed")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
