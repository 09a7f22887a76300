#!/usr/bin/env python3
"""Checks and times the llmrt CUDA kernels (lib/backends/cuda/kernels/*.cu).

Every kernel is compiled with NVRTC (through CuPy's NVRTC binding, the same options the TypeScript
runtime uses: -std=c++17 --gpu-architecture=sm_XX --include-path=<kernels>) and compared with a float64
NumPy reference on fresh random inputs: ||out - ref|| / ||ref|| < 1e-5 (f32) or 1e-2 (bf16), outputs
poisoned with NaN first (a NaN left anywhere fails). The sampler must pick exactly the token a Python
port of sampleRow + uniformFor picks. Then decode / prefill attention and the sampler are timed
against the device-copy bandwidth ceiling and torch's scaled_dot_product_attention.

  python3 check_kernels.py            # on a GPU host (cupy-cuda13x, torch for the SDPA baseline)
  python3 check_kernels.py --emu      # CPU emulation (tools/cuda-kernel-check/emu), tiny shapes, no timing

Each check runs in its own try/except; a summary table is printed last.
"""
import argparse
import ctypes
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import traceback

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
KDIR = os.path.join(REPO, "lib", "backends", "cuda", "kernels")
FILES = ["embedding", "rmsnorm", "add", "silu_mul", "gather_rows", "qk_norm", "rope_kv_write", "paged_attention", "sampling", "gemv"]
TOL = {"f32": 1e-5, "bf16": 1e-2}
VEC = {"f32": 4, "bf16": 8}

# ------------------------------------------------------------------------------------------------
# bf16 storage (uint16 bits, round to nearest even)
# ------------------------------------------------------------------------------------------------


def bf16_bits(a):
    u = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32)
    nan = (u & 0x7FFFFFFF) > 0x7F800000
    r = ((u + np.uint32(0x7FFF) + ((u >> 16) & np.uint32(1))) >> 16).astype(np.uint16)
    r[nan] = 0x7FC0
    return r


def bf16_float(b):
    return (np.ascontiguousarray(b).astype(np.uint32) << 16).view(np.float32)


def store(a, dt):
    """Host array in the kernel's storage type."""
    return bf16_bits(a) if dt == "bf16" else np.ascontiguousarray(a, dtype=np.float32)


def quant(a, dt):
    """The float64 values the kernel sees after storing `a` as dt."""
    return (bf16_float(bf16_bits(a)) if dt == "bf16" else np.asarray(a, dtype=np.float32)).astype(np.float64)


def load(a, dt):
    return (bf16_float(a) if dt == "bf16" else a).astype(np.float64)


def I32(v):
    return ("i32", int(v))


def I64(v):
    return ("i64", int(v))


def F32(v):
    return ("f32", float(v))


def cdiv(a, b):
    return (a + b - 1) // b


# ------------------------------------------------------------------------------------------------
# Backends
# ------------------------------------------------------------------------------------------------


def import_nvrtc():
    try:
        from cupy_backends.cuda.libs import nvrtc  # cupy >= 10
        return nvrtc
    except ImportError:
        from cupy.cuda import nvrtc
        return nvrtc


class GpuBackend:
    emu = False

    def __init__(self):
        import cupy as cp
        self.cp = cp
        self.dev = cp.cuda.Device()
        cc = self.dev.compute_capability
        self.arch = f"sm_{cc}"
        props = cp.cuda.runtime.getDeviceProperties(self.dev.id)
        self.gpu_name = props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"])
        self.sms = props["multiProcessorCount"]
        self.mods = {}
        self.funcs = {}
        self.stream = None  # None = current stream

    def compile(self, fname):
        src = open(os.path.join(KDIR, fname + ".cu")).read()
        opts = ("-std=c++17", f"--gpu-architecture={self.arch}", f"--include-path={KDIR}", "-lineinfo")
        try:
            nvrtc = import_nvrtc()
        except Exception as e:  # no low-level binding: let CuPy drive NVRTC (it picks the arch itself)
            print(f"  (low-level NVRTC binding unavailable: {e}; using cupy.RawModule(code=...))")
            self.mods[fname] = self.cp.RawModule(code=src, options=("-std=c++17", f"-I{KDIR}"))
            self.mods[fname].get_function  # noqa: B018
            return "via cupy.RawModule"
        prog = nvrtc.createProgram(src, fname + ".cu", (), ())
        try:
            try:
                nvrtc.compileProgram(prog, opts)
            except Exception as e:
                raise RuntimeError(f"NVRTC {fname}.cu: {e}\n{nvrtc.getProgramLog(prog)}")
            log = nvrtc.getProgramLog(prog)
            cubin = nvrtc.getCUBIN(prog)
        finally:
            nvrtc.destroyProgram(prog)
        path = os.path.join(tempfile.gettempdir(), f"llmrt_{fname}.cubin")
        with open(path, "wb") as f:
            f.write(cubin)
        self.mods[fname] = self.cp.RawModule(path=path)
        return log

    def fn(self, fname, name):
        key = (fname, name)
        if key not in self.funcs:
            self.funcs[key] = self.mods[fname].get_function(name)
        return self.funcs[key]

    def to_dev(self, a):
        return self.cp.asarray(np.ascontiguousarray(a))

    def empty(self, shape, dtype):
        return self.cp.empty(shape, dtype=dtype)

    def to_host(self, d):
        return self.cp.asnumpy(d)

    def ptr(self, d):
        return d.data.ptr

    def launch(self, fname, name, grid, block, args):
        conv = []
        for a in args:
            if isinstance(a, tuple):
                kind, v = a
                conv.append(np.int32(v) if kind == "i32" else np.int64(v) if kind == "i64" else np.float32(v))
            elif a is None:
                conv.append(np.uint64(0))
            else:
                conv.append(np.uint64(self.ptr(a)))
        self.fn(fname, name)(tuple(grid), tuple(block), tuple(conv))

    def sync(self):
        self.cp.cuda.runtime.deviceSynchronize()


class EmuBackend:
    emu = True
    gpu_name = "CPU emulation"
    sms = 4

    def __init__(self):
        so = os.environ.get("LLMRT_EMU_SO") or os.path.join(HERE, "emu", "build", "llmrt_kernels_emu.so")
        srcs = [os.path.join(KDIR, f + ".cu") for f in FILES] + [os.path.join(KDIR, "common.cuh")]
        srcs += [os.path.join(HERE, "emu", n) for n in ("cuda_emu.h", "emu_launch.cpp", "build.sh")]
        stale = not os.path.exists(so) or os.path.getmtime(so) < max(os.path.getmtime(s) for s in srcs)
        if stale and not os.environ.get("LLMRT_EMU_SO"):
            subprocess.check_call([os.path.join(HERE, "emu", "build.sh")])
        self.lib = ctypes.CDLL(so)
        self.lib.emu_launch.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_uint64), ctypes.POINTER(ctypes.c_float)] + [ctypes.c_int] * 6
        self.keep = []

    def compile(self, fname):
        return ""

    def to_dev(self, a):
        a = np.ascontiguousarray(a)
        d = self.empty(a.shape, a.dtype)
        d[...] = a
        return d

    def empty(self, shape, dtype):
        dtype = np.dtype(dtype)
        n = int(np.prod(shape)) * dtype.itemsize
        buf = np.empty(n + 64, np.uint8)
        off = (-buf.ctypes.data) % 64
        return buf[off:off + n].view(dtype).reshape(shape)

    def to_host(self, d):
        return np.array(d, copy=True)

    def ptr(self, d):
        return d.ctypes.data

    def launch(self, fname, name, grid, block, args):
        ints, floats = [], []
        for a in args:
            if isinstance(a, tuple):
                kind, v = a
                (floats if kind == "f32" else ints).append(v if kind == "f32" else v & 0xFFFFFFFFFFFFFFFF)
            elif a is None:
                ints.append(0)
            else:
                ints.append(self.ptr(a))
        assert len(ints) <= 20 and len(floats) <= 8, name
        iv = (ctypes.c_uint64 * 20)(*(ints + [0] * (20 - len(ints))))
        fv = (ctypes.c_float * 8)(*(floats + [0.0] * (8 - len(floats))))
        fn = ctypes.cast(getattr(self.lib, name), ctypes.c_void_p).value
        g = list(grid) + [1] * (3 - len(grid))
        b = list(block) + [1] * (3 - len(block))
        self.lib.emu_launch(fn, iv, fv, g[0], g[1], g[2], b[0], b[1], b[2])

    def sync(self):
        pass


def nan_buf(B, shape, dt):
    if dt == "bf16":
        return B.to_dev(np.full(shape, 0x7FC0, np.uint16))
    if dt == "f32":
        return B.to_dev(np.full(shape, np.nan, np.float32))
    if dt == "f64":
        return B.to_dev(np.full(shape, np.nan, np.float64))
    return B.to_dev(np.full(shape, -1, np.int32))


# ------------------------------------------------------------------------------------------------
# Results
# ------------------------------------------------------------------------------------------------
RESULTS = []  # (kernel, case, err, tol, ok, note)


def record(kernel, case, err, tol, ok, note=""):
    RESULTS.append((kernel, case, err, tol, ok, note))
    e = "" if err is None else f"err={err:.2e}"
    print(f"{'PASS' if ok else 'FAIL'}  {kernel:44s} {case:58s} {e:14s} {note}", flush=True)


def relerr(out, ref):
    out = np.asarray(out, np.float64)
    ref = np.asarray(ref, np.float64)
    if out.shape != ref.shape:
        raise ValueError(f"shape {out.shape} != {ref.shape}")
    if not np.all(np.isfinite(out)):
        return math.inf
    return float(np.linalg.norm((out - ref).ravel()) / max(np.linalg.norm(ref.ravel()), 1e-300))


def check(kernel, case, out, ref, dt, extra_ok=True, note=""):
    e = relerr(out, ref)
    if e == math.inf:
        note = (note + " NaN/unwritten").strip()
    record(kernel, case, e, TOL[dt], e < TOL[dt] and extra_ok, note)
    return e


def guarded(name, fn, *a):
    try:
        fn(*a)
    except Exception as e:  # one failure must not hide the rest
        traceback.print_exc()
        record(name, "exception", None, None, False, f"{type(e).__name__}: {str(e).splitlines()[0][:150] if str(e) else ''}")


# ------------------------------------------------------------------------------------------------
# Elementwise / normalisation kernels
# ------------------------------------------------------------------------------------------------


def t_embedding(B, rng, cfg):
    for dt in ("f32", "bf16"):
        for T in cfg.Ts:
            for H in cfg.widths:
                vocab = 1000
                table = rng.standard_normal((vocab, H)).astype(np.float32)
                ids = rng.integers(0, vocab, T).astype(np.int32)
                ids[0] = vocab - 1
                if T > 1:
                    ids[-1] = 0
                d_out = nan_buf(B, (T, H), dt)
                d_err = B.to_dev(np.zeros(1, np.int32))
                B.launch("embedding", f"embedding_{dt}", (T,), (256,), [B.to_dev(ids), B.to_dev(store(table, dt)), d_out, I32(T), I32(H), I32(vocab), d_err])
                err = int(B.to_host(d_err)[0])
                check(f"embedding_{dt}", f"T={T} H={H}", load(B.to_host(d_out), dt), quant(table, dt)[ids], dt, err == 0, f"errFlag={err}" if err else "")
        # An id outside the vocabulary: zero row and errFlag = t + 1.
        H, vocab = cfg.widths[0], 50
        table = rng.standard_normal((vocab, H)).astype(np.float32)
        ids = np.array([3, vocab, 7], np.int32)
        d_out = nan_buf(B, (3, H), dt)
        d_err = B.to_dev(np.zeros(1, np.int32))
        B.launch("embedding", f"embedding_{dt}", (3,), (256,), [B.to_dev(ids), B.to_dev(store(table, dt)), d_out, I32(3), I32(H), I32(vocab), d_err])
        ref = quant(table, dt)[[3, 0, 7]]
        ref[1] = 0
        err = int(B.to_host(d_err)[0])
        check(f"embedding_{dt}", "id out of range -> zero row + errFlag", load(B.to_host(d_out), dt), ref, dt, err == 2, f"errFlag={err}")


def rms_ref(x, w, eps):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w


def t_rmsnorm(B, rng, cfg):
    eps = 1e-5
    for dt in ("f32", "bf16"):
        for rows in cfg.Ts:
            for H in cfg.norm_widths:
                x = rng.standard_normal((rows, H)).astype(np.float32)
                w = (1 + 0.1 * rng.standard_normal(H)).astype(np.float32)
                xq, wq = quant(x, dt), quant(w, dt)
                d_out = nan_buf(B, (rows, H), dt)
                B.launch("rmsnorm", f"rmsnorm_{dt}", (rows,), (cfg.norm_block,), [B.to_dev(store(x, dt)), B.to_dev(store(w, dt)), d_out, I32(rows), I32(H), F32(eps)])
                check(f"rmsnorm_{dt}", f"rows={rows} H={H}", load(B.to_host(d_out), dt), rms_ref(xq, wq, eps), dt)
                res = rng.standard_normal((rows, H)).astype(np.float32)
                d_res = B.to_dev(store(res, dt))
                d_out = nan_buf(B, (rows, H), dt)
                B.launch("rmsnorm", f"add_rmsnorm_{dt}", (rows,), (cfg.norm_block,), [B.to_dev(store(x, dt)), d_res, B.to_dev(store(w, dt)), d_out, I32(rows), I32(H), F32(eps)])
                rsum = quant(res, dt) + xq
                check(f"add_rmsnorm_{dt}", f"rows={rows} H={H} (out)", load(B.to_host(d_out), dt), rms_ref(rsum, wq, eps), dt)
                check(f"add_rmsnorm_{dt}", f"rows={rows} H={H} (residual)", load(B.to_host(d_res), dt), rsum, dt)


def t_silu_mul(B, rng, cfg):
    for dt in ("f32", "bf16"):
        for T in cfg.Ts:
            for I in cfg.inter_widths:
                gu = (2 * rng.standard_normal((T, 2 * I))).astype(np.float32)
                d_out = nan_buf(B, (T, I), dt)
                B.launch("silu_mul", f"silu_mul_{dt}", (cdiv(I, 256 * VEC[dt]), T), (256,), [B.to_dev(store(gu, dt)), d_out, I32(T), I32(I)])
                q = quant(gu, dt)
                g, u = q[:, :I], q[:, I:]
                check(f"silu_mul_{dt}", f"T={T} I={I}", load(B.to_host(d_out), dt), g / (1 + np.exp(-g)) * u, dt)


def t_gather_add(B, rng, cfg):
    for dt in ("f32", "bf16"):
        for R in cfg.Ts:
            for W in cfg.widths:
                src_rows = 130
                x = rng.standard_normal((src_rows, W)).astype(np.float32)
                rows = rng.integers(0, src_rows, R).astype(np.int32)
                d_out = nan_buf(B, (R, W), dt)
                B.launch("gather_rows", f"gather_rows_{dt}", (R,), (256,), [B.to_dev(store(x, dt)), B.to_dev(rows), d_out, I32(R), I32(W)])
                check(f"gather_rows_{dt}", f"rows={R} W={W}", load(B.to_host(d_out), dt), quant(x, dt)[rows], dt)
        for n in cfg.add_sizes:
            x = rng.standard_normal(n).astype(np.float32)
            o = rng.standard_normal(n).astype(np.float32)
            d_o = B.to_dev(store(o, dt))
            B.launch("add", f"add_inplace_{dt}", (min(cdiv(n, 256 * VEC[dt]), 8192),), (256,), [B.to_dev(store(x, dt)), d_o, I64(n)])
            check(f"add_inplace_{dt}", f"n={n}", load(B.to_host(d_o), dt), quant(x, dt) + quant(o, dt), dt)


def t_qk_norm(B, rng, cfg):
    eps = 1e-6
    for dt in ("f32", "bf16"):
        for T in cfg.Ts:
            for nH, nKV, hd in cfg.qk_shapes:
                W = (nH + 2 * nKV) * hd
                qkv = rng.standard_normal((T, W)).astype(np.float32)
                qw = (1 + 0.1 * rng.standard_normal(hd)).astype(np.float32)
                kw = (1 + 0.1 * rng.standard_normal(hd)).astype(np.float32)
                d = B.to_dev(store(qkv, dt))
                B.launch("qk_norm", f"qk_norm_{dt}", (cdiv(nH + nKV, 4), T), (128,), [d, B.to_dev(store(qw, dt)), B.to_dev(store(kw, dt)), I32(T), I32(nH), I32(nKV), I32(hd), F32(eps)])
                q = quant(qkv, dt).reshape(T, nH + 2 * nKV, hd)
                ref = q.copy()
                ref[:, :nH] = rms_ref(q[:, :nH], quant(qw, dt), eps)
                ref[:, nH:nH + nKV] = rms_ref(q[:, nH:nH + nKV], quant(kw, dt), eps)
                out = load(B.to_host(d), dt).reshape(T, nH + 2 * nKV, hd)
                v_same = bool(np.array_equal(out[:, nH + nKV:], q[:, nH + nKV:]))
                check(f"qk_norm_{dt}", f"T={T} heads={nH}/{nKV} hd={hd}", out, ref, dt, v_same, "" if v_same else "v changed")


# ------------------------------------------------------------------------------------------------
# Paged KV geometry
# ------------------------------------------------------------------------------------------------


class Geom:
    """Sequences (ctxLen, newLen): this step's tokens sit at positions ctx .. ctx + new - 1.
    Dense: every slot up to the last position has a unique block (shuffled); sparse: only the slots of
    this step's positions do. Other table entries point at a spare block that stays NaN."""

    def __init__(self, rng, seqs, bs, sparse=False):
        self.seqs, self.bs, self.S = seqs, bs, len(seqs)
        news = [n for _, n in seqs]
        self.T = sum(news)
        self.seqStarts = np.concatenate([[0], np.cumsum(news)]).astype(np.int32)
        self.positions = np.concatenate([np.arange(c, c + n) for c, n in seqs]).astype(np.int32)
        self.maxBlocks = max(cdiv(c + n, bs) for c, n in seqs)
        need = []
        for s, (c, n) in enumerate(seqs):
            slots = range(c // bs, cdiv(c + n, bs)) if sparse else range(cdiv(c + n, bs))
            need += [(s, k) for k in slots]
        self.numBlocks = len(need) + 2
        perm = rng.permutation(self.numBlocks)
        self.spare = int(perm[-1])
        self.table = np.full((self.S, self.maxBlocks), self.spare, np.int32)
        for i, (s, k) in enumerate(need):
            self.table[s, k] = perm[i]
        self.seq_of_token = np.repeat(np.arange(self.S), news)

    def slot(self, s, p):
        return self.table[s, p // self.bs], p % self.bs


def make_cache(rng, g, nKV, hd, dt, scale=1.0):
    """Random K/V at every position < ctx + new of each sequence, NaN elsewhere; returns (stored, float64 view)."""
    cache = np.full((g.numBlocks, 2, g.bs, nKV, hd), np.nan, np.float32)
    for s, (c, n) in enumerate(g.seqs):
        L = c + n
        for k in range(cdiv(L, g.bs)):
            blk = g.table[s, k]
            m = min(g.bs, L - k * g.bs)
            cache[blk, :, :m] = scale * rng.standard_normal((2, m, nKV, hd))
    return store(cache, dt), quant(cache, dt)


def attn_ref(q, cq, g, nH, nKV, hd, scale, window):
    """q [T, nH, hd] float64; cq the float64 cache. Returns [T, nH, hd]."""
    G = nH // nKV
    out = np.zeros((g.T, nH, hd))
    for s, (c, n) in enumerate(g.seqs):
        L = c + n
        blocks = g.table[s, np.arange(L) // g.bs]
        offs = np.arange(L) % g.bs
        K = cq[blocks, 0, offs]  # [L, nKV, hd]
        V = cq[blocks, 1, offs]
        a, b = g.seqStarts[s], g.seqStarts[s + 1]
        pos = g.positions[a:b]
        lo = np.maximum(0, pos + 1 - window) if window > 0 else np.zeros_like(pos)
        kp = np.arange(L)
        mask = (kp[None, :] >= lo[:, None]) & (kp[None, :] <= pos[:, None])  # [n, L]
        Q = q[a:b].reshape(n, nKV, G, hd).transpose(1, 2, 0, 3).reshape(nKV, G * n, hd)
        sc = np.matmul(Q, K.transpose(1, 2, 0)) * scale  # [nKV, G*n, L]
        sc = sc.reshape(nKV, G, n, L)
        sc = np.where(mask[None, None], sc, -np.inf)
        sc -= sc.max(axis=-1, keepdims=True)
        p = np.exp(sc)
        p /= p.sum(axis=-1, keepdims=True)
        o = np.matmul(p.reshape(nKV, G * n, L), V.transpose(1, 0, 2))  # [nKV, G*n, hd]
        out[a:b] = o.reshape(nKV, G, n, hd).transpose(2, 0, 1, 3).reshape(n, nH, hd)
    return out


def t_rope(B, rng, cfg):
    theta = 500000.0
    for dt in ("f32", "bf16"):
        for bs in cfg.block_sizes:
            for nH, nKV, hd in cfg.rope_shapes:
                for seqs in cfg.rope_geoms:
                    for scaling in (1.0, 1.25):
                        g = Geom(rng, seqs, bs, sparse=True)
                        T = g.T
                        W = (nH + 2 * nKV) * hd
                        half = hd // 2
                        inv = (1.0 / theta ** (np.arange(half) * 2.0 / hd)).astype(np.float64)
                        qkv = rng.standard_normal((T, W)).astype(np.float32)
                        cache_nan = np.full((g.numBlocks, 2, bs, nKV, hd), np.nan, np.float32)
                        d_cache = B.to_dev(store(cache_nan, dt))
                        d_q = nan_buf(B, (T, nH * hd), dt)
                        B.launch("rope_kv_write", f"rope_kv_write_{dt}", (T,), (128,), [
                            B.to_dev(store(qkv, dt)), d_q, d_cache, B.to_dev(g.positions), B.to_dev(g.seqStarts), B.to_dev(g.table),
                            B.to_dev(inv), F32(scaling), I32(T), I32(g.S), I32(nH), I32(nKV), I32(hd), I32(bs), I32(g.maxBlocks)])
                        x = quant(qkv, dt).reshape(T, nH + 2 * nKV, hd)
                        ang = g.positions[:, None].astype(np.float64) * inv[None, :]
                        cos, sin = np.cos(ang) * scaling, np.sin(ang) * scaling
                        a, b = x[:, :, :half], x[:, :, half:]
                        rot = np.concatenate([a * cos[:, None] - b * sin[:, None], b * cos[:, None] + a * sin[:, None]], axis=-1)
                        ref_cache = np.full((g.numBlocks, 2, bs, nKV, hd), np.nan)
                        for t in range(T):
                            blk, off = g.slot(g.seq_of_token[t], g.positions[t])
                            ref_cache[blk, 0, off] = rot[t, nH:nH + nKV]
                            ref_cache[blk, 1, off] = x[t, nH + nKV:]
                        out_cache = load(B.to_host(d_cache), dt)
                        written = ~np.isnan(ref_cache)
                        stray = int(np.count_nonzero(~np.isnan(out_cache) & ~written))
                        case = f"T={T} S={g.S} maxpos={g.positions.max()} {nH}/{nKV}x{hd} bs={bs} scale={scaling}"
                        check(f"rope_kv_write_{dt}", case + " q", load(B.to_host(d_q), dt), rot[:, :nH].reshape(T, nH * hd), dt)
                        check(f"rope_kv_write_{dt}", case + " kv", out_cache[written], ref_cache[written], dt, stray == 0, f"stray writes={stray}" if stray else "")


# ------------------------------------------------------------------------------------------------
# Attention
# ------------------------------------------------------------------------------------------------


def choose_split(T, nKV, G, max_len, tile, sms):
    """numSplits / splitSize heuristic (mirror it in the TypeScript launcher): >= 4 blocks per SM."""
    blocks = T * nKV * cdiv(G, 8)
    want = max(1, cdiv(4 * sms, blocks))
    splits = min(want, cdiv(max_len, tile))
    split_size = cdiv(cdiv(max_len, splits), tile) * tile
    return cdiv(max_len, split_size), split_size


class Attn:
    """Device buffers of one attention problem."""

    def __init__(self, B, rng, g, nH, nKV, hd, dt, window):
        self.B, self.g, self.nH, self.nKV, self.hd, self.dt, self.window = B, g, nH, nKV, hd, dt, window
        self.scale = 1.0 / math.sqrt(hd)
        q = rng.standard_normal((g.T, nH, hd)).astype(np.float32)
        cache, cq = make_cache(rng, g, nKV, hd, dt)
        self.ref = attn_ref(quant(q, dt), cq, g, nH, nKV, hd, self.scale, window)
        self.d_q, self.d_cache = B.to_dev(store(q, dt)), B.to_dev(cache)
        self.d_pos, self.d_starts, self.d_table = B.to_dev(g.positions), B.to_dev(g.seqStarts), B.to_dev(g.table)
        self.max_len = int(max(min(p + 1, window) if window > 0 else p + 1 for p in g.positions))

    def geo_args(self):
        g = self
        return [g.d_pos, g.d_starts, g.d_table]

    def run_decode(self, splits, split_size, out):
        B, g, dt = self.B, self.g, self.dt
        G = self.nH // self.nKV
        pO = B.empty((g.T, self.nH, splits, self.hd), np.float32) if splits > 1 else None
        pML = B.empty((g.T, self.nH, splits, 2), np.float32) if splits > 1 else None
        B.launch("paged_attention", f"paged_attention_decode_{dt}_hd{self.hd}", (self.nKV * cdiv(G, 8), g.T, splits), (128,),
                 [self.d_q, out, self.d_cache] + self.geo_args() + [pO, pML, I32(g.T), I32(g.S), I32(self.nH), I32(self.nKV), I32(g.bs),
                  I32(g.maxBlocks), F32(self.scale), I32(self.window), I32(split_size)])
        if splits > 1:
            B.launch("paged_attention", f"paged_attention_decode_reduce_{dt}", (self.nH, g.T), (self.hd,), [pO, pML, out, I32(g.T), I32(self.nH), I32(self.hd), I32(splits)])

    def run_prefill(self, kind, out):
        B, g = self.B, self.g
        bm = 64 if kind == "mma" else 16
        name = f"paged_attention_prefill_mma_bf16_hd{self.hd}" if kind == "mma" else f"paged_attention_prefill_{self.dt}_hd{self.hd}"
        B.launch("paged_attention", name, (cdiv(g.T, bm) + g.S, self.nH), (128,),
                 [self.d_q, out, self.d_cache] + self.geo_args() + [I32(g.T), I32(g.S), I32(self.nH), I32(self.nKV), I32(g.bs),
                  I32(g.maxBlocks), F32(self.scale), I32(self.window)])


def t_attention_decode(B, rng, cfg):
    for dt in ("f32", "bf16"):
        tile = 64 if dt == "bf16" else 32
        for nH, nKV, hd in cfg.attn_shapes:
            for bs in cfg.block_sizes:
                for window in (0, cfg.window):
                    lens = cfg.decode_lens(rng)
                    g = Geom(rng, [(L - 1, 1) for L in lens], bs)
                    A = Attn(B, rng, g, nH, nKV, hd, dt, window)
                    plans = {"1 split": (1, cdiv(A.max_len, tile) * tile),
                             "heuristic": choose_split(g.T, nKV, nH // nKV, A.max_len, tile, B.sms),
                             f"split {2 * tile}": (cdiv(A.max_len, 2 * tile), 2 * tile)}
                    for label, (splits, ssz) in plans.items():
                        out = nan_buf(B, (g.T, nH, hd), dt)
                        A.run_decode(splits, ssz, out)
                        check(f"paged_attention_decode_{dt}_hd{hd}", f"S={g.S} maxlen={max(lens)} {nH}/{nKV} bs={bs} win={window} {label}={splits}x{ssz}",
                              load(B.to_host(out), dt).reshape(A.ref.shape), A.ref, dt)


def t_attention_prefill(B, rng, cfg):
    for nH, nKV, hd in cfg.attn_shapes:
        for bs in cfg.block_sizes:
            for seqs in cfg.prefill_geoms:
                g = Geom(rng, seqs, bs)
                for window in (0, cfg.window):
                    for dt in ("f32", "bf16"):
                        A = Attn(B, rng, g, nH, nKV, hd, dt, window)
                        case = f"T={g.T} seqs={seqs} {nH}/{nKV} bs={bs} win={window}"
                        kinds = ["simt", "decode"] + (["mma"] if dt == "bf16" else [])
                        for kind in kinds:
                            out = nan_buf(B, (g.T, nH, hd), dt)
                            if kind == "decode":
                                tile = 64 if dt == "bf16" else 32
                                A.run_decode(*choose_split(g.T, nKV, nH // nKV, A.max_len, tile, B.sms), out)
                                name = f"paged_attention_decode_{dt}_hd{hd} (prefill)"
                            else:
                                A.run_prefill(kind, out)
                                name = f"paged_attention_prefill_mma_bf16_hd{hd}" if kind == "mma" else f"paged_attention_prefill_{dt}_hd{hd}"
                            check(name, case, load(B.to_host(out), dt).reshape(A.ref.shape), A.ref, dt)


def t_gemv(B, rng, cfg):
    """gemv_bf16_m*: y = x W^T (+ bias) for a few rows (decode linears)."""
    for M in (1, 2, 4, 8):
        for m in sorted({1, max(1, M // 2 + 1), M}):
            for n, k in cfg.gemv_shapes:
                for with_bias in (False, True):
                    x = rng.standard_normal((m, k)).astype(np.float32)
                    w = (rng.standard_normal((n, k)) / math.sqrt(k)).astype(np.float32)
                    b = rng.standard_normal(n).astype(np.float32)
                    y = nan_buf(B, (m, n), "bf16")
                    B.launch("gemv", f"gemv_bf16_m{M}", (cdiv(n, 8),), (256,),
                             [B.to_dev(store(x, "bf16")), B.to_dev(store(w, "bf16")), B.to_dev(store(b, "bf16")) if with_bias else None, y, I32(m), I32(n), I32(k)])
                    ref = quant(x, "bf16") @ quant(w, "bf16").T + (quant(b, "bf16")[None, :] if with_bias else 0)
                    check(f"gemv_bf16_m{M}", f"m={m} n={n} k={k} bias={with_bias}", load(B.to_host(y), "bf16"), ref, "bf16")


def t_attention_generic(B, rng, cfg):
    """paged_attention_generic_*: any even head dim (the small-model path), decode and prefill geometries."""
    for nH, nKV, hd in cfg.generic_shapes:
        for bs in cfg.block_sizes:
            geoms = [[(L - 1, 1) for L in cfg.decode_lens(rng)]] + cfg.prefill_geoms
            for seqs in geoms:
                g = Geom(rng, seqs, bs)
                for window in (0, cfg.window):
                    for dt in ("f32", "bf16"):
                        A = Attn(B, rng, g, nH, nKV, hd, dt, window)
                        out = nan_buf(B, (g.T, nH, hd), dt)
                        B.launch("paged_attention", f"paged_attention_generic_{dt}", (cdiv(nH, 4), g.T), (128,),
                                 [A.d_q, out, A.d_cache] + A.geo_args() + [I32(g.T), I32(g.S), I32(nH), I32(nKV), I32(hd), I32(bs),
                                  I32(g.maxBlocks), F32(A.scale), I32(window)])
                        check(f"paged_attention_generic_{dt}", f"hd={hd} T={g.T} S={g.S} {nH}/{nKV} bs={bs} win={window}",
                              load(B.to_host(out), dt).reshape(A.ref.shape), A.ref, dt)


# ------------------------------------------------------------------------------------------------
# Sampling: Python port of lib/backends/cpu/sampling.ts
# ------------------------------------------------------------------------------------------------
M32 = 0xFFFFFFFF


def mix32(h):
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & M32
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & M32
    h ^= h >> 16
    return h


def uniform_for(lo, hi, step):
    h = mix32(mix32(mix32((lo ^ 0x9E3779B9) & M32) ^ hi) ^ (((step + 1) * 0x632BE5AB) & M32))
    return (h + 0.5) / 4294967296


def argmax_ref(l):
    best, bv = 0, l[0]
    for i in range(1, len(l)):
        if l[i] > bv:
            bv, best = l[i], i
    return best


def sample_row_ref(l, temp, top_k, top_p, min_p, lo, hi, step, diag=None):
    """sampleRow; l: list of Python floats (the float32 logits). Sequential float64 sums, as in JS."""
    V = len(l)
    if not (temp > 0) or top_k == 1:
        return argmax_ref(l)
    idx = sorted(range(V), key=lambda i: (-l[i], i))
    if 0 < top_k < V:
        idx = idx[:top_k]
    mx = l[idx[0]]
    probs = [math.exp((l[i] - mx) / temp) for i in idx]
    s = 0.0
    for p in probs:
        s += p
    keep = len(probs)
    if top_p < 1:
        cum = 0.0
        for j, p in enumerate(probs):
            cum += p / s
            if diag is not None:  # how close the top-p cut came to the other side (summation order decides there)
                diag["pmargin"] = min(diag.get("pmargin", math.inf), abs(cum - top_p))
            if cum >= top_p:
                keep = j + 1
                break
    if min_p > 0:
        floor = min_p * (probs[0] / s)
        j = 1
        while j < keep and probs[j] / s >= floor:
            j += 1
        keep = j
    s = 0.0
    for j in range(keep):
        s += probs[j]
    u = uniform_for(lo, hi, step) * s
    cum = 0.0
    if diag is not None:
        diag["u"], diag["sum"], diag["bounds"] = u, s, []
    for j in range(keep):
        cum += probs[j]
        if diag is not None:
            diag["bounds"].append(cum)
        if u < cum:
            return idx[j]
    return idx[keep - 1]


def make_sampling_rows(rng, n, V, big=False):
    rows, params = [], []
    temps = [0.0, 0.3, 0.7, 1.0, 1.5]
    ks = [0, 0, 0, 1, 2, 5, 50, V - 1, V, V + 5]
    ps = [1.0, 1.0, 0.95, 0.9, 0.5, 0.1, 0.0]
    mps = [0.0, 0.0, 0.01, 0.1, 0.5, 1.0]
    for r in range(n):
        kind = r % 6
        x = rng.standard_normal(V) * (3 if kind != 1 else 8)
        if kind == 1:
            x = np.round(x, 0)  # many exact ties
        if kind == 2:
            x[rng.random(V) < 0.3] = -np.inf  # masked vocabulary
        if kind == 3:
            x = np.zeros(V)
            x[rng.integers(0, V, 3)] = -0.0  # all ties, signed zeros
            x[::7] = -0.0
        if kind == 4:
            x = bf16_float(bf16_bits(x.astype(np.float32))).astype(np.float64)
        if kind == 5:
            x[rng.integers(0, V)] += 12.0  # one dominant token
        rows.append(x.astype(np.float32))
        t = temps[r % 5] if not big else [0.0, 0.7, 1.0][r % 3]
        params.append((np.float32(t), int(ks[rng.integers(0, len(ks))]), np.float32(ps[rng.integers(0, len(ps))]),
                       np.float32(mps[rng.integers(0, len(mps))]), int(rng.integers(0, 2**32)), int(rng.integers(0, 2**32)), int(rng.integers(0, 100000))))
    return np.stack(rows), params


def run_sampler(B, dt, logits, params, block):
    R, V = logits.shape
    temp = np.array([p[0] for p in params], np.float32)
    topk = np.array([p[1] for p in params], np.int32)
    topp = np.array([p[2] for p in params], np.float32)
    minp = np.array([p[3] for p in params], np.float32)
    seed = np.array([[p[4], p[5]] for p in params], np.uint32).ravel()
    step = np.array([p[6] for p in params], np.int32)
    d_out = nan_buf(B, (R,), "i32")
    B.launch("sampling", f"sample_{dt}", (R,), (block,), [B.to_dev(store(logits, dt)), I32(V), B.to_dev(temp), B.to_dev(topk), B.to_dev(topp),
                                                         B.to_dev(minp), B.to_dev(seed), B.to_dev(step), d_out])
    return B.to_host(d_out)


def t_sampling(B, rng, cfg):
    # The uniform itself, bit for bit.
    n = 4096
    seed = rng.integers(0, 2**32, 2 * n, dtype=np.uint64).astype(np.uint32)
    step = rng.integers(0, 2**31 - 1, n).astype(np.int32)
    step[:3] = [0, 1, 2**31 - 2]
    d_u = nan_buf(B, (n,), "f64")
    B.launch("sampling", "sample_uniform", (cdiv(n, 128),), (128,), [B.to_dev(seed), B.to_dev(step), d_u, I32(n)])
    got = B.to_host(d_u)
    ref = np.array([uniform_for(int(seed[2 * i]), int(seed[2 * i + 1]), int(step[i])) for i in range(n)])
    bad = int(np.count_nonzero(got != ref))
    record("sample_uniform", f"{n} (seed, step) pairs, exact float64", None, None, bad == 0, f"mismatches={bad}")
    for dt in ("f32", "bf16"):
        for (nrows, V, big) in cfg.sample_sets:
            logits, params = make_sampling_rows(rng, nrows, V, big)
            if dt == "bf16":
                logits = bf16_float(bf16_bits(logits))
            got = run_sampler(B, dt, logits, params, cfg.sample_block)
            mism, near = 0, 0
            notes = []
            for r in range(nrows):
                l = [float(v) for v in logits[r]]
                t, k, p, mp, lo, hi, st = params[r]
                diag = {}
                want = sample_row_ref(l, float(t), k, float(p), float(mp), lo, hi, st, diag)
                if int(got[r]) != want:
                    mism += 1
                    margin = min((abs(diag["u"] - b) / diag["sum"] for b in diag.get("bounds", [])), default=math.inf)
                    # The pick or the top-p cut at a float64 rounding boundary: the kernel's parallel sums and the
                    # sequential reference may round either way there (e.g. all-tie rows where top-p * count is exact).
                    margin = min(margin, diag.get("pmargin", math.inf))
                    near += margin < 1e-12
                    if len(notes) < 3:
                        notes.append(f"row{r}(T={float(t)},k={k},p={float(p)},minp={float(mp)}): got {int(got[r])} want {want} margin={margin:.1e}")
            record(f"sample_{dt}", f"{nrows} rows V={V} exact token match (but at float64 boundaries)", None, None, mism == near,
                   f"mismatches={mism} (at float64 boundary: {near}) " + "; ".join(notes))


# ------------------------------------------------------------------------------------------------
# Timing (GPU only)
# ------------------------------------------------------------------------------------------------
TIMINGS = []


def gpu_time(B, fn, iters=30, warmup=3, graph=True):
    """Median ms per call. Captures `iters` calls into a CUDA graph when possible (no launch gaps)."""
    cp = B.cp
    for _ in range(warmup):
        fn(0)
    B.sync()
    if graph:
        s = cp.cuda.Stream(non_blocking=True)
        try:
            with s:
                s.begin_capture()
                for i in range(iters):
                    fn(i)
                gr = s.end_capture()
            gr.launch(s)
            s.synchronize()
            ts = []
            for _ in range(5):
                e0, e1 = cp.cuda.Event(), cp.cuda.Event()
                e0.record(s)
                gr.launch(s)
                e1.record(s)
                e1.synchronize()
                ts.append(cp.cuda.get_elapsed_time(e0, e1) / iters)
            return float(np.median(ts)), "graph"
        except Exception as e:
            print(f"  (graph capture failed: {type(e).__name__}: {e}; timing plain launches)")
            try:
                if s.is_capturing():
                    s.end_capture()
            except Exception:
                pass
    ts = []
    for i in range(iters):
        e0, e1 = cp.cuda.Event(), cp.cuda.Event()
        e0.record()
        fn(i)
        e1.record()
        e1.synchronize()
        ts.append(cp.cuda.get_elapsed_time(e0, e1))
    return float(np.median(ts)), "events"


def torch_time(fn, iters=30, warmup=3):
    import torch
    for _ in range(warmup):
        fn(0)
    torch.cuda.synchronize()
    try:
        g = torch.cuda.CUDAGraph()
        with torch.cuda.graph(g):
            for i in range(iters):
                fn(i)
        g.replay()
        torch.cuda.synchronize()
        ts = []
        for _ in range(5):
            e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            e0.record()
            g.replay()
            e1.record()
            e1.synchronize()
            ts.append(e0.elapsed_time(e1) / iters)
        return float(np.median(ts)), "graph"
    except Exception as e:
        print(f"  (torch graph capture failed: {type(e).__name__}: {e})")
        ts = []
        for i in range(iters):
            e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            e0.record()
            fn(i)
            e1.record()
            e1.synchronize()
            ts.append(e0.elapsed_time(e1))
        return float(np.median(ts)), "events"


def bench_bandwidth(B):
    cp = B.cp
    n = 1 << 30
    a = cp.ones(n // 4, cp.float32)
    b = cp.empty_like(a)

    def f(_):
        cp.cuda.runtime.memcpyAsync(b.data.ptr, a.data.ptr, n, cp.cuda.runtime.memcpyDeviceToDevice, cp.cuda.get_current_stream().ptr)
    ms, how = gpu_time(B, f, iters=10, graph=False)
    bw = 2 * n / (ms * 1e-3) / 1e9
    TIMINGS.append(("device copy 1 GiB (read + write)", f"{ms * 1e3:.0f} us", f"{bw:.0f} GB/s", "ceiling", how))
    a = b = None
    return bw


def bench_decode(B, rng, ceiling):
    import torch
    import torch.nn.functional as F
    nH, nKV, hd, bs, dt = 32, 8, 64, 32, "bf16"
    G = nH // nKV
    scale = 1 / math.sqrt(hd)
    for S in (1, 32):
        for ctx in (512, 4096):
            kv_bytes = S * ctx * nKV * hd * 2 * 2
            rot = max(1, min(8, (400 << 20) // kv_bytes))  # rotate inputs past L2 (50 MB)
            per = cdiv(ctx, bs)
            numBlocks = S * per * rot
            cache = B.cp.asarray(bf16_bits(rng.standard_normal((numBlocks, 2, bs, nKV, hd)).astype(np.float32) * 0.5)) if numBlocks * bs * nKV * hd * 2 < (1 << 24) else None
            if cache is None:  # big: random on device
                cache = (B.cp.random.standard_normal((numBlocks, 2, bs, nKV, hd), dtype=B.cp.float32) * 0.5).astype(B.cp.float32)
                cache = B.cp.asarray(cache.view(B.cp.uint32) >> 16).astype(B.cp.uint16)
            perm = rng.permutation(numBlocks).astype(np.int32).reshape(rot, S, per)
            tables = [B.to_dev(perm[r]) for r in range(rot)]
            pos = B.to_dev(np.full(S, ctx - 1, np.int32))
            starts = B.to_dev(np.arange(S + 1, dtype=np.int32))
            q = B.to_dev(bf16_bits(rng.standard_normal((S, nH, hd)).astype(np.float32)))
            out = B.empty((S, nH, hd), np.uint16)
            splits, ssz = choose_split(S, nKV, G, ctx, 64, B.sms)
            pO = B.empty((S, nH, splits, hd), np.float32)
            pML = B.empty((S, nH, splits, 2), np.float32)
            fd = B.fn("paged_attention", f"paged_attention_decode_bf16_hd{hd}")
            fr = B.fn("paged_attention", "paged_attention_decode_reduce_bf16")
            ptr = lambda x: np.uint64(B.ptr(x))

            def run(i):
                fd((nKV * cdiv(G, 8), S, splits), (128,), (ptr(q), ptr(out), ptr(cache), ptr(pos), ptr(starts), ptr(tables[i % rot]), ptr(pO), ptr(pML),
                   np.int32(S), np.int32(S), np.int32(nH), np.int32(nKV), np.int32(bs), np.int32(per), np.float32(scale), np.int32(0), np.int32(ssz)))
                if splits > 1:
                    fr((nH, S), (hd,), (ptr(pO), ptr(pML), ptr(out), np.int32(S), np.int32(nH), np.int32(hd), np.int32(splits)))
            # validate this exact configuration before timing (rotation 0)
            run(0)
            B.sync()
            c0 = B.to_host(cache)
            t0 = B.to_host(tables[0])
            cq = bf16_float(c0).astype(np.float64)
            qq = bf16_float(B.to_host(q)).astype(np.float64)
            ref = np.zeros((S, nH, hd))
            for s in range(S):
                blk = t0[s, np.arange(ctx) // bs]
                K = cq[blk, 0, np.arange(ctx) % bs]
                Vv = cq[blk, 1, np.arange(ctx) % bs]
                for kvh in range(nKV):
                    qs = qq[s, kvh * G:(kvh + 1) * G]
                    sc = qs @ K[:, kvh].T * scale
                    sc -= sc.max(-1, keepdims=True)
                    p = np.exp(sc)
                    p /= p.sum(-1, keepdims=True)
                    ref[s, kvh * G:(kvh + 1) * G] = p @ Vv[:, kvh]
            e = check("paged_attention_decode_bf16_hd64", f"bench config S={S} ctx={ctx} splits={splits}x{ssz}", bf16_float(B.to_host(out)).reshape(ref.shape), ref, "bf16")
            ms, how = gpu_time(B, run)
            byts = kv_bytes + 2 * S * nH * hd * 2
            bw = byts / (ms * 1e-3) / 1e9
            # torch SDPA on contiguous K/V (no paging), GQA
            qt = [torch.randn(S, nH, 1, hd, device="cuda", dtype=torch.bfloat16) for _ in range(rot)]
            kt = [torch.randn(S, nKV, ctx, hd, device="cuda", dtype=torch.bfloat16) for _ in range(rot)]
            vt = [torch.randn(S, nKV, ctx, hd, device="cuda", dtype=torch.bfloat16) for _ in range(rot)]
            tms, thow = torch_time(lambda i: F.scaled_dot_product_attention(qt[i % rot], kt[i % rot], vt[i % rot], enable_gqa=True))
            TIMINGS.append((f"decode attn S={S} ctx={ctx} (32/8 hd64 bs32, {splits} splits)", f"{ms * 1e3:.1f} us", f"{bw:.0f} GB/s = {100 * bw / ceiling:.0f}% of copy",
                            f"torch SDPA {tms * 1e3:.1f} us ({byts / (tms * 1e-3) / 1e9:.0f} GB/s)", how + "/" + thow))
            cache = qt = kt = vt = None


def bench_prefill(B, rng):
    import torch
    import torch.nn.functional as F
    nH, nKV, hd, bs, T = 32, 8, 64, 32, 2048
    g = Geom(rng, [(0, T)], bs)
    A = Attn(B, rng, g, nH, nKV, hd, "bf16", 0)
    flops = 4 * nH * hd * (T * (T + 1) / 2)
    for kind in ("mma", "simt"):
        out = nan_buf(B, (T, nH, hd), "bf16")
        A.run_prefill(kind, out)
        name = f"paged_attention_prefill_mma_bf16_hd{hd}" if kind == "mma" else f"paged_attention_prefill_bf16_hd{hd}"
        check(name, f"bench config T={T} 32/8 bs=32", load(B.to_host(out), "bf16").reshape(A.ref.shape), A.ref, "bf16")
        ms, how = gpu_time(B, lambda i: A.run_prefill(kind, out), iters=10)
        TIMINGS.append((f"prefill attn T={T} causal ({kind})", f"{ms * 1e3:.0f} us", f"{flops / (ms * 1e-3) / 1e12:.1f} TFLOP/s", "", how))
    q = torch.randn(1, nH, T, hd, device="cuda", dtype=torch.bfloat16)
    k = torch.randn(1, nKV, T, hd, device="cuda", dtype=torch.bfloat16)
    v = torch.randn(1, nKV, T, hd, device="cuda", dtype=torch.bfloat16)
    tms, thow = torch_time(lambda i: F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True), iters=10)
    TIMINGS.append((f"prefill attn T={T} causal (torch SDPA, contiguous)", f"{tms * 1e3:.0f} us", f"{flops / (tms * 1e-3) / 1e12:.1f} TFLOP/s", "", thow))


def bench_sampling(B, rng):
    V, R = 128256, 32
    for label, (t, k, p) in {"greedy": (0.0, 0, 1.0), "T=0.7 top-k 50 top-p 0.9": (0.7, 50, 0.9), "T=1.0 full vocab": (1.0, 0, 1.0),
                             "T=0.8 top-p 0.95": (0.8, 0, 0.95)}.items():
        logits = (rng.standard_normal((R, V)) * 3).astype(np.float32)
        params = [(np.float32(t), k, np.float32(p), np.float32(0.0), int(rng.integers(0, 2**32)), 0, r) for r in range(R)]
        got = run_sampler(B, "f32", logits, params, 512)
        ok = all(int(got[r]) == sample_row_ref([float(v) for v in logits[r]], float(t), k, float(p), 0.0, params[r][4], 0, r) for r in range(4))
        record("sample_f32", f"bench config {label} (first 4 rows)", None, None, ok)
        d_l = B.to_dev(logits)
        args = [B.to_dev(np.array([x[i] for x in params], dt)) for i, dt in ((0, np.float32), (1, np.int32), (2, np.float32), (3, np.float32))]
        seed = B.to_dev(np.array([[x[4], x[5]] for x in params], np.uint32).ravel())
        step = B.to_dev(np.arange(R, dtype=np.int32))
        out = B.empty((R,), np.int32)
        f = B.fn("sampling", "sample_f32")
        ptr = lambda x: np.uint64(B.ptr(x))
        ms, how = gpu_time(B, lambda i: f((R,), (512,), (ptr(d_l), np.int32(V), ptr(args[0]), ptr(args[1]), ptr(args[2]), ptr(args[3]), ptr(seed), ptr(step), ptr(out))), iters=10)
        TIMINGS.append((f"sample_f32 {R} rows x V={V}: {label}", f"{ms * 1e3:.0f} us", f"{R * V * 4 / (ms * 1e-3) / 1e9:.0f} GB/s logits", "", how))


NVCC = shutil.which("nvcc") or "/usr/local/cuda/bin/nvcc"


def resource_usage_start():
    procs = {}
    for f in FILES:
        try:
            procs[f] = subprocess.Popen([NVCC, "-arch=sm_90", "-std=c++17", "-cubin", "--resource-usage", f"-I{KDIR}", "-o", os.path.join(tempfile.gettempdir(), f"ru_{f}.cubin"),
                                         os.path.join(KDIR, f + ".cu")], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        except OSError as e:
            print(f"nvcc not available: {e}")
            return {}
    return procs


def resource_usage_report(procs, outdir):
    rows, raw = [], []
    for f, p in procs.items():
        out, _ = p.communicate(timeout=300)
        raw.append(f"==== {f}.cu (rc={p.returncode})\n{out}")
        fn = None
        info = {}
        for line in out.splitlines():
            m = re.search(r"(?:Compiling entry function|Function properties for) '?([A-Za-z_0-9]+)'?", line)
            if m:
                fn = m.group(1)
                info.setdefault(fn, {})
            m = re.search(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads", line)
            if m and fn:
                info[fn].update(stack=int(m.group(1)), spill_st=int(m.group(2)), spill_ld=int(m.group(3)))
            m = re.search(r"Used (\d+) registers", line)
            if m and fn:
                info[fn]["regs"] = int(m.group(1))
                m2 = re.search(r"(\d+) bytes smem", line)
                info[fn]["smem"] = int(m2.group(1)) if m2 else 0
        for k, v in info.items():
            if "regs" in v:
                rows.append((k, v.get("regs"), v.get("smem", 0), v.get("stack", 0), v.get("spill_st", 0), v.get("spill_ld", 0)))
        if p.returncode != 0:
            record(f"nvcc {f}.cu", "compile", None, None, False, out.strip().splitlines()[-1][:150] if out.strip() else "")
    if outdir:
        with open(os.path.join(outdir, "resource_usage.txt"), "w") as fh:
            fh.write("\n".join(raw))
    print("\n== nvcc -arch=sm_90 --resource-usage (registers, static smem bytes, stack, spill st/ld bytes)")
    for r in sorted(rows):
        flag = "  <-- spills" if r[4] or r[5] else ""
        print(f"  {r[0]:48s} regs={r[1]:4d} smem={r[2]:6d} stack={r[3]:4d} spill={r[4]}/{r[5]}{flag}")


# ------------------------------------------------------------------------------------------------
# Main
# ------------------------------------------------------------------------------------------------


class Cfg:
    pass


def gpu_cfg():
    c = Cfg()
    c.Ts = [1, 7, 130]
    c.widths = [576, 100, 99]
    c.norm_widths = [2048, 100, 99]
    c.norm_block = 256
    c.inter_widths = [8192, 100, 99]
    c.add_sizes = [1, 7, 130 * 2048 + 3]
    c.qk_shapes = [(16, 8, 128), (14, 2, 64)]
    c.rope_shapes = [(32, 8, 64), (16, 2, 128)]
    c.rope_geoms = [[(0, 1)], [(0, 7)], [(37, 60), (0, 1), (500, 69)], [(65530, 3), (3000, 1)]]
    c.block_sizes = [16, 32]
    c.attn_shapes = [(32, 8, 64), (16, 2, 128), (14, 2, 64), (16, 1, 128), (8, 4, 32), (8, 2, 32)]
    c.generic_shapes = [(8, 4, 8), (4, 2, 16), (8, 4, 32), (4, 1, 256), (6, 3, 40)]
    c.gemv_shapes = [(2048, 2048), (3072, 2048), (2048, 8192), (1000, 264), (13, 8)]
    c.window = 100
    c.decode_lens = lambda rng: [1, 3000, 64, 65] + [int(x) for x in rng.integers(2, 3001, 4)]
    c.prefill_geoms = [[(0, 1)], [(0, 7)], [(0, 130)], [(37, 60), (0, 1), (500, 69)]]
    c.sample_sets = [(1200, 1000, False), (6, 128256, True), (60, 77, False)]
    c.sample_block = 512
    return c


def emu_cfg():
    c = Cfg()
    c.Ts = [1, 7]
    c.widths = [40, 12, 11]
    c.norm_widths = [80, 12, 11]
    c.norm_block = 64
    c.inter_widths = [40, 11]
    c.add_sizes = [1, 7, 300]
    c.qk_shapes = [(2, 1, 64), (3, 1, 128)]
    c.rope_shapes = [(2, 1, 64), (2, 2, 128)]
    c.rope_geoms = [[(0, 1)], [(5, 3), (0, 1), (40, 2)], [(65530, 3)]]
    c.block_sizes = [16]
    c.attn_shapes = [(4, 2, 64), (3, 1, 128), (16, 1, 64), (4, 2, 32)]
    c.generic_shapes = [(4, 2, 8), (2, 1, 16), (2, 2, 32), (2, 1, 256), (3, 3, 40)]
    c.gemv_shapes = [(20, 264), (13, 8), (9, 1032)]
    c.window = 13
    c.decode_lens = lambda rng: [1, 150, 64, 33]
    c.prefill_geoms = [[(0, 1)], [(0, 7)], [(5, 20), (0, 1), (70, 9)]]
    c.sample_sets = [(40, 300, False), (12, 40, False)]
    c.sample_block = 128
    return c


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--emu", action="store_true", help="CPU emulation, tiny shapes, no timing")
    ap.add_argument("--only", default="", help="comma list of check names to run")
    ap.add_argument("--no-bench", action="store_true")
    ap.add_argument("--head-dims", default="", help="comma list: keep only attention shapes with these head dims")
    ap.add_argument("--out", default=os.environ.get("OUT", ""), help="folder for logs (resource usage)")
    args = ap.parse_args()
    t_start = time.time()
    procs = {} if args.emu else resource_usage_start()
    B = EmuBackend() if args.emu else GpuBackend()
    cfg = emu_cfg() if args.emu else gpu_cfg()
    if args.head_dims:
        keep = set(int(x) for x in args.head_dims.split(","))
        cfg.attn_shapes = [x for x in cfg.attn_shapes if x[2] in keep]
        cfg.generic_shapes = [x for x in cfg.generic_shapes if x[2] in keep]
    print(f"device: {B.gpu_name} ({B.sms} SMs)", flush=True)
    for f in FILES:
        t0 = time.time()
        try:
            log = B.compile(f)
            record(f"compile {f}.cu", "NVRTC" if not args.emu else "emu", None, None, True, f"{time.time() - t0:.1f}s" + (f" log: {log.strip()[:200]}" if log and log.strip() else ""))
        except Exception as e:
            record(f"compile {f}.cu", "NVRTC", None, None, False, str(e)[:300])
            print(str(e))
    rng = np.random.default_rng(1234)
    checks = [("embedding", t_embedding), ("rmsnorm", t_rmsnorm), ("silu_mul", t_silu_mul), ("gather_add", t_gather_add), ("qk_norm", t_qk_norm),
              ("rope", t_rope), ("attention_decode", t_attention_decode), ("attention_prefill", t_attention_prefill), ("attention_generic", t_attention_generic), ("gemv", t_gemv), ("sampling", t_sampling)]
    only = set(x for x in args.only.split(",") if x)
    for name, fn in checks:
        if only and name not in only:
            continue
        t0 = time.time()
        guarded(name, fn, B, rng, cfg)
        print(f"-- {name}: {time.time() - t0:.1f}s", flush=True)
    if not args.emu and not args.no_bench:
        ceiling = None
        for name, fn, a in [("bandwidth", bench_bandwidth, ()), ("bench_decode", bench_decode, (rng,)), ("bench_prefill", bench_prefill, (rng,)), ("bench_sampling", bench_sampling, (rng,))]:
            if only and name not in only:
                continue
            t0 = time.time()
            try:
                if name == "bandwidth":
                    ceiling = fn(B)
                elif name == "bench_decode":
                    fn(B, *a, ceiling or 3000.0)
                else:
                    fn(B, *a)
            except Exception as e:
                traceback.print_exc()
                record(name, "exception", None, None, False, f"{type(e).__name__}: {str(e)[:150]}")
            print(f"-- {name}: {time.time() - t0:.1f}s", flush=True)
    if procs:
        try:
            resource_usage_report(procs, args.out)
        except Exception as e:
            print(f"resource usage failed: {e}")

    # Summary
    print("\n== SUMMARY (" + B.gpu_name + ")")
    by = {}
    for k, case, err, tol, ok, note in RESULTS:
        d = by.setdefault(k, [0, 0, 0.0, []])
        d[0] += 1
        d[1] += 0 if ok else 1
        if err is not None and err != math.inf:
            d[2] = max(d[2], err)
        elif err == math.inf:
            d[2] = math.inf
        if not ok:
            d[3].append(case + " " + note)
    for k, (n, nf, worst, fails) in by.items():
        print(f"  {'PASS' if nf == 0 else 'FAIL'}  {k:46s} cases={n:4d} failed={nf:3d} worst_err={worst:.2e}")
        for f in fails[:3]:
            print(f"         - {f[:160]}")
    if TIMINGS:
        print("\n== TIMINGS (median; " + B.gpu_name + ")")
        for row in TIMINGS:
            print("  " + " | ".join(row))
    nfail = sum(1 for r in RESULTS if not r[4])
    print(f"\n{len(RESULTS)} checks, {nfail} failed, {time.time() - t_start:.0f}s")
    return 1 if nfail else 0


if __name__ == "__main__":
    sys.exit(main())
