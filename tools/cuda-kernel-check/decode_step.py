#!/usr/bin/env python3
"""Issue 16: checks and times the fused decode kernels (gemv_fused_*, decode_attention_*) and a whole
llama-3.2-1b-shaped bf16 batch-1 decode step built from them, beside the unfused kernels the engine
used before (embedding, add_rmsnorm, gemv_bf16_m1, rope_kv_write, paged_attention_decode + reduce,
silu_mul, cuBLAS lm_head) and the device-copy ceiling, all in one process on one GPU.

  python3 tools/cuda-kernel-check/decode_step.py [--out DIR] [--ctx 128] [--quick]

Kernels are compiled with NVRTC (CuPy's binding; the runtime's options) and launched with CuPy on
torch's current stream, so torch.cuda.CUDAGraph captures them. Every kernel is checked against a
float64 reference before anything is timed. Prints a summary; writes decode_step.json into --out.
"""
import argparse
import json
import math
import os
import sys
import tempfile
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
KDIR = os.path.join(REPO, "lib", "backends", "cuda", "kernels")

import cupy as cp  # noqa: E402

RESULTS = []  # (name, ok, detail)
TIMES = {}


def log(*a):
    print(*a, flush=True)


def record(name, ok, detail):
    RESULTS.append((name, bool(ok), detail))
    log(f"  {'ok  ' if ok else 'FAIL'} {name}: {detail}")


# ------------------------------------------------------------------------------------------------
# NVRTC + launches on torch's stream
# ------------------------------------------------------------------------------------------------
_mods = {}


def module(fname, defines=(), arch_suffix=""):
    """NVRTC-compiled module of kernels/<fname>.cu; arch_suffix "a" targets sm_90a (wgmma) instead of sm_90."""
    key = (fname, tuple(defines), arch_suffix)
    if key in _mods:
        return _mods[key]
    try:
        from cupy_backends.cuda.libs import nvrtc
    except ImportError:
        from cupy.cuda import nvrtc
    src = open(os.path.join(KDIR, fname + ".cu")).read()
    cc = torch.cuda.get_device_capability()
    opts = ("-std=c++17", f"--gpu-architecture=sm_{cc[0]}{cc[1]}{arch_suffix}", f"--include-path={KDIR}") + tuple(f"-D{d}" for d in defines)
    prog = nvrtc.createProgram(src, fname + ".cu", (), ())
    try:
        try:
            nvrtc.compileProgram(prog, opts)
        except Exception as e:
            raise RuntimeError(f"NVRTC {fname}.cu: {e}\n{nvrtc.getProgramLog(prog)}")
        cubin = nvrtc.getCUBIN(prog)
    finally:
        nvrtc.destroyProgram(prog)
    tag = '_'.join(defines)
    if len(tag) > 120:  # long define lists (LLMRT_SELECT units): a digest keeps the file name legal
        import hashlib
        tag = hashlib.sha1(tag.encode()).hexdigest()
    path = os.path.join(tempfile.gettempdir(), f"llmrt16_{fname}_{tag}{arch_suffix}.cubin")
    with open(path, "wb") as f:
        f.write(cubin)
    _mods[key] = cp.RawModule(path=path)
    return _mods[key]


def P(t):
    return np.uint64(0 if t is None else (t if isinstance(t, int) else t.data_ptr()))


def I(v):
    return np.int32(v)


def L(v):
    return np.int64(v)


def F(v):
    return np.float32(v)


_streams = {}


def _ext_stream():
    h = torch.cuda.current_stream().cuda_stream
    if h not in _streams:
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _streams[h] = cp.cuda.ExternalStream(h)
    return _streams[h]


_smem_set = {}


def launch(fname, name, grid, block, args, defines=(), shared_mem=0, arch_suffix=""):
    f = module(fname, defines, arch_suffix).get_function(name)
    stream = _ext_stream()
    g = tuple(grid) + (1,) * (3 - len(grid))
    if shared_mem > 48 * 1024 and _smem_set.get((fname, name, defines, arch_suffix), 0) < shared_mem:
        try:
            f.max_dynamic_shared_size_bytes = shared_mem
        except Exception:  # noqa: BLE001 (older CuPy: the driver call itself; 8 = MAX_DYNAMIC_SHARED_SIZE_BYTES)
            cp.cuda.driver.funcSetAttribute(f.ptr, 8, shared_mem)
        _smem_set[(fname, name, defines, arch_suffix)] = shared_mem
    if shared_mem:
        f(g, (block, 1, 1), tuple(args), stream=stream, shared_mem=shared_mem)
    else:
        f(g, (block, 1, 1), tuple(args), stream=stream)


def graph_time(fn, iters=20, reps=5):
    """Median ms of one fn() call, fn captured `iters` times into a torch CUDA graph."""
    fn()
    torch.cuda.synchronize()
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        for _ in range(iters):
            fn()
    g.replay()
    torch.cuda.synchronize()
    ts = []
    for _ in range(reps):
        e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        e0.record()
        g.replay()
        e1.record()
        e1.synchronize()
        ts.append(e0.elapsed_time(e1) / iters)
    del g
    return float(np.median(ts))


def copy_bandwidth():
    n = 1 << 30
    a = torch.ones(n // 4, device="cuda")
    b = torch.empty_like(a)
    for _ in range(3):
        b.copy_(a)
    torch.cuda.synchronize()
    ts = []
    for _ in range(10):
        e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        e0.record()
        b.copy_(a)
        e1.record()
        e1.synchronize()
        ts.append(e0.elapsed_time(e1))
    del a, b
    return 2 * n / (float(np.median(ts)) * 1e-3)


def bf(t):
    return t.to(torch.bfloat16)


def relerr(out, ref):
    out = out.double()
    ref = ref.double()
    if torch.isnan(out).any():
        return float("nan")
    return float((out - ref).norm() / max(ref.norm(), 1e-30))


# ------------------------------------------------------------------------------------------------
# gemv_fused
# ------------------------------------------------------------------------------------------------
def gemv_fused(x, W, y, m, n, k, mode, normW=None, bias=None, eps=1e-5, grid=None, pf=None, pfBytes=0, M=None, defines=()):
    M = M or (1 if m <= 1 else 2 if m <= 2 else 4 if m <= 4 else 8)
    grid = math.ceil(n / 2 / 4) if mode == 2 else math.ceil(n / 8)  # one output row per warp (mode 2: 4 gate + 4 up rows per block)
    launch("gemv", f"gemv_fused{'_norm' if normW is not None else ''}_bf16_m{M}", (grid,), 256,
           (P(x), P(W), P(bias), P(y), P(normW), F(eps), I(m), I(n), I(k), I(mode), P(pf), L(pfBytes)), defines)


def rms_ref(x, w, eps):
    x = x.double()
    inv = torch.rsqrt((x * x).mean(-1, keepdim=True) + eps)
    return bf(x * inv * w.double()).double()


def check_gemv():
    log("== gemv_fused vs float64")
    g = torch.Generator(device="cuda").manual_seed(1)
    cases = [(3072, 2048), (2048, 8192), (1000, 2048), (1001, 512), (64, 4096), (16384, 2048)]
    for (n, k) in cases:
        W = bf(torch.randn(n, k, device="cuda", generator=g) * 0.02)
        for m in (1, 2, 3, 5, 8):
            if n == 16384 and m not in (1, 8):
                continue
            x = bf(torch.randn(m, k, device="cuda", generator=g))
            nw = bf(1 + 0.1 * torch.randn(k, device="cuda", generator=g))
            bias = bf(torch.randn(n, device="cuda", generator=g) * 0.1)
            for mode in (0, 1, 2, 3):
                if mode == 2 and n % 2:
                    continue
                for use_norm in ((False, True) if m * k <= 8192 else (False,)):
                    for use_bias in (False, True):
                        if use_bias and mode not in (0, 2):
                            continue
                        xin = rms_ref(x, nw, 1e-5) if use_norm else x.double()
                        lin = xin @ W.double().T + (bias.double() if use_bias else 0)
                        if mode == 0:
                            ref = lin
                            y = torch.full((m, n), float("nan"), device="cuda", dtype=torch.bfloat16)
                        elif mode == 1:
                            y0 = bf(torch.randn(m, n, device="cuda", generator=g))
                            y = y0.clone()
                            ref = bf(lin).double() + y0.double()
                        elif mode == 2:
                            gt, up = bf(lin[:, : n // 2]).double(), bf(lin[:, n // 2:]).double()
                            ref = gt / (1 + torch.exp(-gt)) * up
                            y = torch.full((m, n // 2), float("nan"), device="cuda", dtype=torch.bfloat16)
                        else:
                            ref = lin
                            y = torch.full((m, n), float("nan"), device="cuda", dtype=torch.float32)
                        gemv_fused(x, W, y, m, n, k, mode, nw if use_norm else None, bias if use_bias else None)
                        torch.cuda.synchronize()
                        e = relerr(y, ref)
                        tol = 2e-5 if mode == 3 else 1e-2
                        record("gemv_fused", e < tol, f"n={n} k={k} m={m} mode={mode} norm={int(use_norm)} bias={int(use_bias)} rel={e:.2e}")
        # batch invariance: row r of an m-row call == the same row alone (bitwise), norm on when it fits
        m = 8
        x = bf(torch.randn(m, k, device="cuda", generator=g))
        nw = bf(1 + 0.1 * torch.randn(k, device="cuda", generator=g))
        use = nw if m * k <= 8192 else None
        yb = torch.empty(m, n, device="cuda", dtype=torch.bfloat16)
        gemv_fused(x, W, yb, m, n, k, 0, use)
        same = True
        for r in range(m):
            y1 = torch.empty(1, n, device="cuda", dtype=torch.bfloat16)
            gemv_fused(x[r:r + 1].contiguous(), W, y1, 1, n, k, 0, use)
            torch.cuda.synchronize()
            same &= bool(torch.equal(y1[0], yb[r]))
        record("gemv_fused batch-invariance", same, f"n={n} k={k}: 8-row call == 8 one-row calls bitwise: {same}")


# ------------------------------------------------------------------------------------------------
# decode attention (fused) vs float64 and vs rope_kv_write + paged_attention_decode
# ------------------------------------------------------------------------------------------------
def rope_tables(hd, theta=500000.0):
    inv = 1.0 / (theta ** (np.arange(0, hd, 2, dtype=np.float64) / hd))
    return torch.tensor(inv, device="cuda", dtype=torch.float64)


def rope_ref(x, pos, invf, scaling=1.0):
    """x [..., hd] float64 (bf16 values), rotate_half, then bf16 rounding (as the kernels store)."""
    hd = x.shape[-1]
    ang = invf.double() * pos
    c, s = torch.cos(ang) * scaling, torch.sin(ang) * scaling
    c, s = c.float().double(), s.float().double()
    a, b = x[..., : hd // 2], x[..., hd // 2:]
    return bf(torch.cat([a * c - b * s, b * c + a * s], -1)).double()


class Cache:
    """One layer's paged cache [numBlocks, 2, tpb, nKV, hd] with shuffled blocks; unused blocks NaN."""

    def __init__(self, seqs_len, nKV, hd, tpb, gen, layers=1):
        self.tpb, self.nKV, self.hd = tpb, nKV, hd
        need = [math.ceil((l + 1) / tpb) for l in seqs_len]
        self.maxBlocks = max(need)
        nb = sum(need) + 2
        perm = torch.randperm(nb, generator=torch.Generator().manual_seed(7)).tolist()
        self.table = torch.zeros(len(seqs_len), self.maxBlocks, dtype=torch.int32)
        it = iter(perm)
        for s, n in enumerate(need):
            for j in range(n):
                self.table[s, j] = next(it)
        spare = next(it)
        for s, n in enumerate(need):
            for j in range(n, self.maxBlocks):
                self.table[s, j] = spare
        self.table = self.table.cuda()
        self.data = torch.full((layers, nb, 2, tpb, nKV, hd), float("nan"), device="cuda", dtype=torch.bfloat16)
        for s, l in enumerate(seqs_len):
            for p in range(l):  # filled history
                blk = int(self.table[s, p // tpb])
                self.data[:, blk, :, p % tpb] = bf(torch.randn(layers, 2, nKV, hd, device="cuda", generator=gen))
        for s, n in enumerate(need):  # the slot of the step's position: poisoned until written
            pass

    def kv(self, s, upto, layer=0):
        """float64 K, V [upto, nKV, hd] of sequence s."""
        idx = torch.arange(upto)
        blk = self.table[s, (idx // self.tpb).cuda()].long()
        off = (idx % self.tpb).cuda()
        K = self.data[layer, blk, 0, off].double()
        V = self.data[layer, blk, 1, off].double()
        return K, V


def attn_ref(q, K, V, G, scale, window, pos):
    """q [nH, hd], K/V [pos+1, nKV, hd] float64 -> [nH, hd]."""
    nH, hd = q.shape
    lo = max(0, pos + 1 - window) if window > 0 else 0
    out = torch.empty(nH, hd, dtype=torch.float64, device=q.device)
    for h in range(nH):
        kk, vv = K[lo:pos + 1, h // G], V[lo:pos + 1, h // G]
        sc = (kk @ q[h]) * scale
        p = torch.softmax(sc, 0)
        out[h] = p @ vv
    return out


def decode_fused(qkv, out, kvc, positions, seqStarts, table, invf, scaling, pO, pML, ctr, T, S, nH, nKV, hd, tpb, maxB, scale, window, splitSize, numSplits, pf=None, pfBytes=0, g4=False):
    G = nH // nKV
    launch("decode_attention", f"decode_attention_{'g4_' if g4 else ''}bf16_hd{hd}", (nKV * math.ceil(G / 8), T, numSplits), 128,
           (P(qkv), P(out), P(kvc), P(positions), P(seqStarts), P(table), P(invf), F(scaling), P(pO), P(pML), P(ctr),
            I(T), I(S), I(nH), I(nKV), I(tpb), I(maxB), F(scale), I(window), I(splitSize), P(pf), L(pfBytes)))


def old_decode(qkv, qbuf, out, kvc, positions, seqStarts, table, invf, scaling, pO, pML, T, S, nH, nKV, hd, tpb, maxB, scale, window, splitSize, numSplits):
    G = nH // nKV
    launch("rope_kv_write", "rope_kv_write_bf16", (T,), 128,
           (P(qkv), P(qbuf), P(kvc), P(positions), P(seqStarts), P(table), P(invf), F(scaling), I(T), I(S), I(nH), I(nKV), I(hd), I(tpb), I(maxB)))
    launch("paged_attention", f"paged_attention_decode_bf16_hd{hd}", (nKV * math.ceil(G / 8), T, numSplits), 128,
           (P(qbuf), P(out), P(kvc), P(positions), P(seqStarts), P(table), P(pO), P(pML), I(T), I(S), I(nH), I(nKV), I(tpb), I(maxB), F(scale), I(window), I(splitSize)))
    if numSplits > 1:
        launch("paged_attention", "paged_attention_decode_reduce_bf16", (nH, T), hd, (P(pO), P(pML), P(out), I(T), I(nH), I(hd), I(numSplits)))


def check_attention():
    log("== decode_attention vs float64 and vs rope_kv_write (cache bits)")
    gen = torch.Generator(device="cuda").manual_seed(2)
    shapes = [(32, 8, 64), (32, 8, 128), (14, 2, 64), (16, 1, 128)]
    for (nH, nKV, hd) in shapes:
        G = nH // nKV
        invf = rope_tables(hd)
        for tpb in (16, 32):
            for lens, window in (([0], 0), ([5], 0), ([127], 0), ([128], 0), ([1000], 0), ([3000, 7, 300], 0), ([500, 64], 100)):
                if tpb == 16 and len(lens) == 1 and lens[0] not in (5, 1000):
                    continue
                T = S = len(lens)
                cache = Cache(lens, nKV, hd, tpb, gen)
                positions = torch.tensor(lens, dtype=torch.int32, device="cuda")
                seqStarts = torch.arange(S + 1, dtype=torch.int32, device="cuda")
                qkv = bf(torch.randn(T, (nH + 2 * nKV) * hd, device="cuda", generator=gen))
                scale = 1 / math.sqrt(hd)
                maxLen = max(min(l + 1, window) if window else l + 1 for l in lens)
                for splitSize in sorted({32, 128, 512, maxLen}):
                    numSplits = math.ceil(maxLen / splitSize)
                    for extra in ((0, 3) if numSplits > 1 else (0,)):
                        ns = numSplits + extra
                        if ns > 64:
                            continue
                        kvc = cache.data[0].clone()
                        kvo = cache.data[0].clone()
                        out = torch.full((T, nH * hd), float("nan"), device="cuda", dtype=torch.bfloat16)
                        pO = torch.full((T, nH, ns, hd), float("nan"), device="cuda")
                        pML = torch.full((T, nH, ns, 2), float("nan"), device="cuda")
                        ctr = torch.zeros(T * nKV * math.ceil(G / 8), dtype=torch.int32, device="cuda")
                        decode_fused(qkv, out, kvc, positions, seqStarts, cache.table, invf, 1.0, pO, pML, ctr, T, S, nH, nKV, hd, tpb, cache.maxBlocks, scale, window, splitSize, ns)
                        # unfused: rope_kv_write + decode(+reduce) on a second copy
                        qb = torch.empty(T, nH * hd, device="cuda", dtype=torch.bfloat16)
                        out2 = torch.full((T, nH * hd), float("nan"), device="cuda", dtype=torch.bfloat16)
                        sso = max(64, math.ceil(splitSize / 64) * 64)
                        nso = math.ceil(maxLen / sso)
                        pO2 = torch.empty(T, nH, nso, hd, device="cuda")
                        pML2 = torch.empty(T, nH, nso, 2, device="cuda")
                        old_decode(qkv, qb, out2, kvo, positions, seqStarts, cache.table, invf, 1.0, pO2, pML2, T, S, nH, nKV, hd, tpb, cache.maxBlocks, scale, window, sso, nso)
                        torch.cuda.synchronize()
                        worst = 0.0
                        for t, p in enumerate(lens):
                            row = qkv[t].double()
                            q = rope_ref(row[: nH * hd].view(nH, hd), p, invf)
                            # cache after the step (from the fused kernel): history + own key
                            K, V = Cache.kv(type("c", (), {"table": cache.table, "tpb": tpb, "data": kvc.unsqueeze(0)})(), t, p + 1)
                            ref = attn_ref(q, K, V, G, scale, window, p)
                            worst = max(worst, relerr(out[t].view(nH, hd), ref))
                        cache_same = torch.equal(kvc.view(torch.int16), kvo.view(torch.int16))
                        ctr_zero = int(ctr.abs().sum()) == 0
                        e_old = relerr(out, out2)
                        finite = bool(torch.isfinite(out.float()).all())  # max() above drops a NaN error
                        ok = worst < 1e-2 and cache_same and ctr_zero and finite
                        if G <= 4:  # the _g4 instantiation (the engine's for groups <= 4): the same bits
                            kv4 = cache.data[0].clone()
                            out4 = torch.full_like(out, float("nan"))
                            ctr4 = torch.zeros_like(ctr)
                            decode_fused(qkv, out4, kv4, positions, seqStarts, cache.table, invf, 1.0, pO, pML, ctr4, T, S, nH, nKV, hd, tpb, cache.maxBlocks, scale, window, splitSize, ns, g4=True)
                            torch.cuda.synchronize()
                            g4same = torch.equal(out4.view(torch.int16), out.view(torch.int16)) and torch.equal(kv4.view(torch.int16), kvc.view(torch.int16)) and int(ctr4.abs().sum()) == 0
                            record("decode_attention_g4 == decode_attention", g4same, f"nH={nH} nKV={nKV} hd={hd} tpb={tpb} pos={lens} win={window} split={splitSize}x{ns}: bitwise {g4same}")
                        record("decode_attention", ok, f"nH={nH} nKV={nKV} hd={hd} tpb={tpb} pos={lens} win={window} split={splitSize}x{ns}: rel={worst:.2e} finite={finite} vs-unfused={e_old:.2e} cache-bits-equal={cache_same} counters-reset={ctr_zero}")


# ------------------------------------------------------------------------------------------------
# prefill attention: paged_attention_prefill_mma2 (ldmatrix fragments) vs mma vs float64 / SDPA
# ------------------------------------------------------------------------------------------------
def prefill(kind, q, out, kvc, positions, seqStarts, table, T, S, nH, nKV, hd, tpb, maxB, scale, window):
    launch("paged_attention", f"paged_attention_prefill_{kind}_bf16_hd{hd}", (math.ceil(T / 64) + S, nH), 128,
           (P(q), P(out), P(kvc), P(positions), P(seqStarts), P(table), I(T), I(S), I(nH), I(nKV), I(tpb), I(maxB), F(scale), I(window)),
           ("LLMRT_PREFILL_LDM",))


def prefill_ref(q, cache, seqs, nH, nKV, hd, scale, window):
    """q [T, nH*hd] bf16; seqs [(start position, tokens)] -> float64 [T, nH, hd]."""
    G = nH // nKV
    outs = []
    t = 0
    for s, (p0, n) in enumerate(seqs):
        K, V = cache.kv(s, p0 + n)  # [L, nKV, hd]
        qq = q[t:t + n].double().view(n, nH, hd).transpose(0, 1)  # [nH, n, hd]
        Kh = K.transpose(0, 1).repeat_interleave(G, 0)  # [nH, L, hd]
        Vh = V.transpose(0, 1).repeat_interleave(G, 0)
        sc = qq @ Kh.transpose(1, 2) * scale  # [nH, n, L]
        pos = torch.arange(p0, p0 + n, device="cuda")[:, None]
        key = torch.arange(p0 + n, device="cuda")[None, :]
        ok = key <= pos
        if window > 0:
            ok &= key >= pos + 1 - window
        sc = sc.masked_fill(~ok[None], float("-inf"))
        outs.append((torch.softmax(sc, -1) @ Vh).transpose(0, 1))
        t += n
    return torch.cat(outs, 0)


def check_prefill(timing=True):
    log("== prefill attention: mma2 (ldmatrix) vs float64 and vs mma")
    gen = torch.Generator(device="cuda").manual_seed(4)
    cases = [((32, 8, 64), [(0, 300)], 0, 32), ((32, 8, 64), [(0, 100), (40, 1), (7, 257)], 0, 16),
             ((16, 2, 128), [(0, 130), (64, 65)], 0, 32), ((14, 2, 64), [(0, 90), (3, 33)], 0, 16),
             ((32, 8, 64), [(0, 200), (50, 70)], 100, 32), ((8, 8, 32), [(0, 77)], 0, 16), ((16, 1, 128), [(0, 64)], 0, 16)]
    for (nH, nKV, hd), seqs, window, tpb in cases:
        T, S = sum(n for _, n in seqs), len(seqs)
        cache = Cache([p0 + n for p0, n in seqs], nKV, hd, tpb, gen)
        positions = torch.tensor([p0 + i for p0, n in seqs for i in range(n)], dtype=torch.int32, device="cuda")
        starts = [0]
        for _, n in seqs:
            starts.append(starts[-1] + n)
        seqStarts = torch.tensor(starts, dtype=torch.int32, device="cuda")
        q = bf(torch.randn(T, nH * hd, device="cuda", generator=gen))
        scale = 1 / math.sqrt(hd)
        ref = prefill_ref(q, cache, seqs, nH, nKV, hd, scale, window)
        outs = {}
        for kind in ("mma", "mma2"):
            o = torch.full((T, nH * hd), float("nan"), device="cuda", dtype=torch.bfloat16)
            prefill(kind, q, o, cache.data[0], positions, seqStarts, cache.table, T, S, nH, nKV, hd, tpb, cache.maxBlocks, scale, window)
            torch.cuda.synchronize()
            outs[kind] = o
        e = relerr(outs["mma2"].view(T, nH, hd), ref)
        same = torch.equal(outs["mma2"].view(torch.int16), outs["mma"].view(torch.int16))
        record("prefill_mma2", e < 1e-2, f"nH={nH} nKV={nKV} hd={hd} seqs={seqs} win={window} tpb={tpb}: rel={e:.2e} (mma {relerr(outs['mma'].view(T, nH, hd), ref):.2e}) bitwise-equal-to-mma={same}")
    if not timing:
        return
    # 2048-token causal prefill, llama-3.2-1b heads: TFLOP/s of the causal half (4 * T^2/2 * hd * nH)
    nH, nKV, hd, T = 32, 8, 64, 2048
    cache = Cache([T], nKV, hd, 32, gen)
    positions = torch.arange(T, dtype=torch.int32, device="cuda")
    seqStarts = torch.tensor([0, T], dtype=torch.int32, device="cuda")
    q = bf(torch.randn(T, nH * hd, device="cuda", generator=gen))
    o = torch.empty(T, nH * hd, device="cuda", dtype=torch.bfloat16)
    flops = 4 * T * T / 2 * hd * nH
    res = {}
    for kind in ("mma", "mma2"):
        ms = graph_time(lambda: prefill(kind, q, o, cache.data[0], positions, seqStarts, cache.table, T, 1, nH, nKV, hd, 32, cache.maxBlocks, 0.125, 0), iters=10)
        res[kind] = ms
    K, V = cache.kv(0, T)
    qq = q.view(1, T, nH, hd).transpose(1, 2)
    Kc = bf(K).transpose(0, 1)[None].contiguous()
    Vc = bf(V).transpose(0, 1)[None].contiguous()
    try:
        res["sdpa"] = graph_time(lambda: torch.nn.functional.scaled_dot_product_attention(qq, Kc, Vc, is_causal=True, enable_gqa=True), iters=10)
    except Exception as ex:  # noqa: BLE001
        log(f"  sdpa failed: {ex}")
    for k_, ms in res.items():
        log(f"  prefill 2048 causal, 32/8 heads hd64: {k_:5s} {ms * 1e3:7.1f} us = {flops / (ms * 1e-3) / 1e12:6.1f} TFLOP/s")
    TIMES["prefill_2048"] = res


# ------------------------------------------------------------------------------------------------
# llama-3.2-1b decode step: fused vs unfused, vs float reference
# ------------------------------------------------------------------------------------------------
class Model:
    def __init__(self, cfg, ctx, gen):
        self.cfg = cfg
        H, Iw, nH, nKV, hd, V, Ls = cfg["hidden"], cfg["inter"], cfg["heads"], cfg["kv"], cfg["hd"], cfg["vocab"], cfg["layers"]
        s = 0.02
        self.emb = bf(torch.randn(V, H, device="cuda", generator=gen) * s * 10)
        self.layers = []
        for _ in range(Ls):
            self.layers.append(dict(
                ln1=bf(1 + 0.1 * torch.randn(H, device="cuda", generator=gen)),
                qkv=bf(torch.randn((nH + 2 * nKV) * hd, H, device="cuda", generator=gen) * s),
                o=bf(torch.randn(H, nH * hd, device="cuda", generator=gen) * s),
                ln2=bf(1 + 0.1 * torch.randn(H, device="cuda", generator=gen)),
                gu=bf(torch.randn(2 * Iw, H, device="cuda", generator=gen) * s),
                down=bf(torch.randn(H, Iw, device="cuda", generator=gen) * s)))
        self.lnf = bf(1 + 0.1 * torch.randn(H, device="cuda", generator=gen))
        self.weight_bytes = (self.emb.numel() + sum(sum(v.numel() for v in l.values()) for l in self.layers) + H) * 2
        self.invf = rope_tables(hd)
        self.tpb = 32
        self.ctx = ctx
        self.cache = Cache([ctx], nKV, hd, self.tpb, gen, layers=Ls)
        self.maxSeq = 8192  # graph split geometry covers this context (as the engine's graphs do)
        # buffers
        self.ids = torch.tensor([123], dtype=torch.int32, device="cuda")
        self.positions = torch.tensor([ctx], dtype=torch.int32, device="cuda")
        self.seqStarts = torch.tensor([0, 1], dtype=torch.int32, device="cuda")
        d = lambda *sh, dt=torch.bfloat16: torch.zeros(*sh, device="cuda", dtype=dt)  # noqa: E731
        self.res, self.xn, self.qkvb, self.qb, self.attn = d(1, H), d(1, H), d(1, (nH + 2 * nKV) * hd), d(1, nH * hd), d(1, nH * hd)
        self.ob, self.gub, self.act, self.db = d(1, H), d(1, 2 * Iw), d(1, Iw), d(1, H)
        self.logits = d(1, V, dt=torch.float32)
        self.logits_bf = d(1, V)
        self.pO = torch.zeros(1, nH, 64, hd, device="cuda")
        self.pML = torch.zeros(1, nH, 64, 2, device="cuda")
        self.ctr = torch.zeros(64, dtype=torch.int32, device="cuda")
        self.sample_in = dict(temp=torch.zeros(1, device="cuda"), topk=torch.zeros(1, dtype=torch.int32, device="cuda"),
                              topp=torch.ones(1, device="cuda"), minp=torch.zeros(1, device="cuda"),
                              seed=torch.zeros(1, dtype=torch.int32, device="cuda"), step=torch.zeros(1, dtype=torch.int32, device="cuda"))
        self.out_id = torch.zeros(1, dtype=torch.int32, device="cuda")

    def sample(self, logits, dt):
        si = self.sample_in
        launch("sampling", f"sample_{dt}", (1,), 512, (P(logits), I(self.cfg["vocab"]), P(si["temp"]), P(si["topk"]), P(si["topp"]), P(si["minp"]), P(si["seed"]), P(si["step"]), P(self.out_id)))

    def split_geometry(self, splitMin):
        c = self.cfg
        blocks = c["kv"]
        splits = min(max(1, math.ceil(4 * SMS / blocks)), 64)
        splitSize = max(splitMin, math.ceil(math.ceil(self.maxSeq / splits) / 64) * 64)
        return math.ceil(self.maxSeq / splitSize), splitSize

    def step_unfused(self):
        c = self.cfg
        H, Iw, nH, nKV, hd, V = c["hidden"], c["inter"], c["heads"], c["kv"], c["hd"], c["vocab"]
        eps = 1e-5
        ns, ss = self.split_geometry(128)
        launch("embedding", "embedding_bf16", (1,), 256, (P(self.ids), P(self.emb), P(self.res), I(1), I(H), I(V), P(None)))
        launch("rmsnorm", "rmsnorm_bf16", (1,), 256, (P(self.res), P(self.layers[0]["ln1"]), P(self.xn), I(1), I(H), F(eps)))
        for li, l in enumerate(self.layers):
            kvc = self.cache.data[li]
            if li > 0:
                launch("rmsnorm", "add_rmsnorm_bf16", (1,), 256, (P(self.db), P(self.res), P(l["ln1"]), P(self.xn), I(1), I(H), F(eps)))
            gemv_old(self.xn, l["qkv"], self.qkvb, (nH + 2 * nKV) * hd, H)
            old_decode(self.qkvb, self.qb, self.attn, kvc, self.positions, self.seqStarts, self.cache.table, self.invf, 1.0, self.pO, self.pML,
                       1, 1, nH, nKV, hd, self.tpb, self.cache.maxBlocks, 1 / math.sqrt(hd), 0, ss, ns)
            gemv_old(self.attn, l["o"], self.ob, H, nH * hd)
            launch("rmsnorm", "add_rmsnorm_bf16", (1,), 256, (P(self.ob), P(self.res), P(l["ln2"]), P(self.xn), I(1), I(H), F(eps)))
            gemv_old(self.xn, l["gu"], self.gub, 2 * Iw, H)
            launch("silu_mul", "silu_mul_bf16", (math.ceil(Iw / 2048), 1), 256, (P(self.gub), P(self.act), I(1), I(Iw)))
            gemv_old(self.act, l["down"], self.db, H, Iw)
        launch("rmsnorm", "add_rmsnorm_bf16", (1,), 256, (P(self.db), P(self.res), P(self.lnf), P(self.xn), I(1), I(H), F(eps)))
        torch.matmul(self.xn, self.emb.T, out=self.logits_bf)
        self.sample(self.logits_bf, "bf16")

    def step_fused(self, splitMin=128, prefetch=False, grid_mult=4, defines=()):
        c = self.cfg
        H, Iw, nH, nKV, hd, V = c["hidden"], c["inter"], c["heads"], c["kv"], c["hd"], c["vocab"]
        eps = 1e-5
        ns, ss = self.split_geometry(splitMin)
        gm = lambda n: min(math.ceil(n / 8), SMS * grid_mult)  # noqa: E731
        launch("embedding", "embedding_bf16", (1,), 256, (P(self.ids), P(self.emb), P(self.res), I(1), I(H), I(V), P(None)))
        for li, l in enumerate(self.layers):
            kvc = self.cache.data[li]
            nq = (nH + 2 * nKV) * hd
            gemv_fused(self.res, l["qkv"], self.qkvb, 1, nq, H, 0, normW=l["ln1"], grid=gm((nq + 1) // 2), defines=defines)
            pf = l["o"] if prefetch else None
            decode_fused(self.qkvb, self.attn, kvc, self.positions, self.seqStarts, self.cache.table, self.invf, 1.0, self.pO, self.pML, self.ctr,
                         1, 1, nH, nKV, hd, self.tpb, self.cache.maxBlocks, 1 / math.sqrt(hd), 0, ss, ns, pf, l["o"].numel() * 2 if prefetch else 0)
            gemv_fused(self.attn, l["o"], self.res, 1, H, nH * hd, 1, grid=gm(H // 2), defines=defines)
            gemv_fused(self.res, l["gu"], self.act, 1, 2 * Iw, H, 2, normW=l["ln2"], grid=gm(Iw), defines=defines)
            gemv_fused(self.act, l["down"], self.res, 1, H, Iw, 1, grid=gm(H // 2), defines=defines)
        gemv_fused(self.res, self.emb, self.logits, 1, V, H, 3, normW=self.lnf, grid=gm((V + 1) // 2), defines=defines)
        self.sample(self.logits, "f32")

    def reference_logits(self, history_cache):
        """float64-free float32 torch forward of the same step (bf16 weights, bf16 rounding at op outputs)."""
        c = self.cfg
        H, nH, nKV, hd = c["hidden"], c["heads"], c["kv"], c["hd"]
        G = nH // nKV
        eps = 1e-5
        f = lambda t: t.float()  # noqa: E731
        r = lambda t: t.to(torch.bfloat16).float()  # noqa: E731

        def norm(x, w):
            return r(x * torch.rsqrt((x * x).mean(-1, keepdim=True) + eps) * f(w))
        x = f(self.emb[int(self.ids[0])]).unsqueeze(0)
        pos = self.ctx
        for li, l in enumerate(self.layers):
            qkv = r(norm(x, l["ln1"]) @ f(l["qkv"]).T)[0]
            q = rope_ref(qkv[: nH * hd].view(nH, hd).double(), pos, self.invf).float()
            k = rope_ref(qkv[nH * hd:(nH + nKV) * hd].view(nKV, hd).double(), pos, self.invf).float()
            v = qkv[(nH + nKV) * hd:].view(nKV, hd)
            Kh, Vh = history_cache(li)
            K = torch.cat([Kh.float(), k.unsqueeze(0)], 0)
            Vv = torch.cat([Vh.float(), v.unsqueeze(0)], 0)
            att = torch.empty(nH, hd, device="cuda")
            for h in range(nH):
                p = torch.softmax((K[:, h // G] @ q[h]) / math.sqrt(hd), 0)
                att[h] = p @ Vv[:, h // G]
            o = r(r(att.view(1, -1)) @ f(l["o"]).T)
            x = r(x + o)
            gu = r(norm(x, l["ln2"]) @ f(l["gu"]).T)
            Iw = gu.shape[1] // 2
            a = r(torch.nn.functional.silu(gu[:, :Iw]) * gu[:, Iw:])
            d = r(a @ f(l["down"]).T)
            x = r(x + d)
        return (norm(x, self.lnf) @ f(self.emb).T)[0]


def gemv_old(x, W, y, n, k):
    launch("gemv", "gemv_bf16_m1", (math.ceil(n / 8),), 256, (P(x), P(W), P(None), P(y), I(1), I(n), I(k)))


def run_model(quick, ctx, out_json):
    log(f"== llama-3.2-1b-shaped decode step (random bf16 weights, batch 1, context {ctx})")
    cfg = dict(hidden=2048, inter=8192, heads=32, kv=8, hd=64, vocab=128256, layers=16)
    gen = torch.Generator(device="cuda").manual_seed(3)
    m = Model(cfg, ctx, gen)
    hist0 = m.cache.data.clone()

    def hist(li):
        idx = torch.arange(ctx)
        blk = m.cache.table[0, (idx // m.tpb).cuda()].long()
        off = (idx % m.tpb).cuda()
        return hist0[li, blk, 0, off].double(), hist0[li, blk, 1, off].double()
    ref = m.reference_logits(hist)
    res = {}
    for name, fn in (("unfused", m.step_unfused), ("fused", m.step_fused)):
        m.cache.data.copy_(hist0)
        fn()
        torch.cuda.synchronize()
        lg = m.logits_bf.float()[0] if name == "unfused" else m.logits[0].clone()
        e = relerr(lg, ref)
        am = int(lg.argmax()) == int(ref.argmax())
        top5 = len(set(lg.topk(5).indices.tolist()) & set(ref.topk(5).indices.tolist()))
        record(f"decode step {name} vs float32 reference", e < 5e-2 and am, f"logits rel L2 {e:.2e}, argmax equal {am}, top-5 overlap {top5}/5, sampled id {int(m.out_id[0])} (ref argmax {int(ref.argmax())})")
        res[name] = dict(rel=e, argmax=am, logits=lg)
    e_fu = relerr(res["fused"].pop("logits"), res["unfused"].pop("logits"))
    record("decode step fused vs unfused logits", e_fu < 2e-2, f"rel L2 {e_fu:.2e}")
    bw = copy_bandwidth()
    wb = m.weight_bytes
    ceil_ms = wb / bw * 1e3
    log(f"copy bandwidth {bw / 1e12:.3f} TB/s; weights {wb / 1e9:.3f} GB -> ceiling {ceil_ms:.3f} ms/step = {1e3 / ceil_ms:.0f} tok/s")
    out = dict(copy_Bps=bw, weight_bytes=wb, ceiling_ms=ceil_ms, ctx=ctx)
    variants = [("unfused (engine before: 10 launches/layer)", m.step_unfused), ("fused (5 launches/layer), grid 4/SM", lambda: m.step_fused())]
    if not quick:
        variants += [
            ("fused, o_proj prefetched into L2 by attention", lambda: m.step_fused(prefetch=True)),
            ("fused, splits>=64", lambda: m.step_fused(splitMin=64)),
            ("fused, GF_U=8", lambda: m.step_fused(defines=("GF_U=8",))),
            ("fused, GF_U=2", lambda: m.step_fused(defines=("GF_U=2",))),
        ]
    out["steps"] = {}
    for name, fn in variants:
        try:
            ms = graph_time(fn, iters=10, reps=5)
            m.cache.data.copy_(hist0)
            out["steps"][name] = ms
            log(f"  {name:48s} {ms:.3f} ms/step = {1e3 / ms:7.1f} tok/s = {100 * ceil_ms / ms:5.1f}% of copy ceiling")
        except Exception as e:  # noqa: BLE001
            log(f"  {name}: failed {type(e).__name__}: {e}")
    # per-kernel timings (graph of 20 calls; weights of 8 layers rotated so they come from HBM)
    log("== per-kernel (CUDA graph, weights rotated over layers)")
    H, Iw, nH, nKV, hd = 2048, 8192, 32, 8, 64
    nq = (nH + 2 * nKV) * hd
    kern = {}
    ctr = [0]

    def rot():
        ctr[0] = (ctr[0] + 1) % len(m.layers)
        return m.layers[ctr[0]]
    shapes = [("qkv", nq, H, "qkv", 0, True), ("o_proj", H, nH * hd, "o", 1, False), ("gate_up+silu", 2 * Iw, H, "gu", 2, True), ("down", H, Iw, "down", 1, False)]
    for (nm, n, k, key, mode, norm) in shapes:
        wbytes = n * k * 2
        xin = {H: m.res, Iw: m.act}[k] if k != nH * hd or nm != "o_proj" else m.attn
        yold = {nq: m.qkvb, H: m.ob, 2 * Iw: m.gub}[n]
        ynew = m.act if mode == 2 else yold
        half = n // 2 if mode == 2 else (n + 1) // 2
        t_old = graph_time(lambda: gemv_old(xin, rot()[key], yold, n, k), iters=16)
        t_new = graph_time(lambda: gemv_fused(xin, rot()[key], ynew, 1, n, k, mode, normW=m.lnf if norm else None, grid=min(math.ceil(half / 8), SMS * 4)), iters=16)
        t_new1 = graph_time(lambda: gemv_fused(xin, rot()[key], ynew, 1, n, k, mode, normW=m.lnf if norm else None, defines=("GF_U=8",)), iters=16)
        t_cub = graph_time(lambda: torch.matmul(xin, rot()[key].T), iters=16)
        kern[nm] = dict(old=t_old, fused=t_new, fused_u8=t_new1, cublas=t_cub, bytes=wbytes)
        pc = lambda t: wbytes / (t * 1e-3) / bw * 100  # noqa: E731
        log(f"  {nm:14s} {wbytes / 1e6:6.1f} MB  gemv_bf16_m1 {t_old * 1e3:6.1f} us ({pc(t_old):5.1f}%)  gemv_fused {t_new * 1e3:6.1f} us ({pc(t_new):5.1f}%) / GF_U=8 {t_new1 * 1e3:6.1f} us ({pc(t_new1):5.1f}%)  cuBLAS {t_cub * 1e3:6.1f} us ({pc(t_cub):5.1f}%)   (% of copy bw)")
    V = cfg["vocab"]
    t_lm = graph_time(lambda: gemv_fused(m.res, m.emb, m.logits, 1, V, H, 3, normW=m.lnf, grid=SMS * 4), iters=10)
    t_lmc = graph_time(lambda: torch.matmul(m.xn, m.emb.T, out=m.logits_bf), iters=10)
    lmb = V * H * 2
    kern["lm_head"] = dict(fused=t_lm, cublas=t_lmc, bytes=lmb)
    log(f"  lm_head        {lmb / 1e6:6.1f} MB  gemv_fused f32+norm {t_lm * 1e3:6.1f} us ({lmb / (t_lm * 1e-3) / bw * 100:5.1f}%)  cuBLAS bf16 {t_lmc * 1e3:6.1f} us ({lmb / (t_lmc * 1e-3) / bw * 100:5.1f}%)")
    t_emb = graph_time(lambda: launch("embedding", "embedding_bf16", (1,), 256, (P(m.ids), P(m.emb), P(m.res), I(1), I(H), I(V), P(None))), iters=20)
    kern["embedding_1row"] = t_emb
    t_s = graph_time(lambda: m.sample(m.logits, "f32"), iters=20)
    kern["sample_f32_greedy_1row"] = t_s
    log(f"  sample_f32 greedy, 1 row x {V}: {t_s * 1e3:.2f} us")
    log(f"  embedding_bf16 1 row: {t_emb * 1e3:.2f} us")
    # attention alone at several contexts
    for c in ((128, 4096) if quick else (128, 512, 4096)):
        gen2 = torch.Generator(device="cuda").manual_seed(5)
        cache = Cache([c], nKV, hd, 32, gen2)
        pos = torch.tensor([c], dtype=torch.int32, device="cuda")
        kv0 = cache.data[0]
        for (label, ns, ss) in (("graph geometry (maxSeq 8192)",) + m.split_geometry(128), ("exact split for ctx",) + choose_split(c)):
            t_o = graph_time(lambda: old_decode(m.qkvb, m.qb, m.attn, kv0, pos, m.seqStarts, cache.table, m.invf, 1.0, m.pO, m.pML, 1, 1, nH, nKV, hd, 32, cache.maxBlocks, 0.125, 0, max(64, ss), math.ceil(max(ns * ss, c + 1) / max(64, ss))), iters=20)
            t_n = graph_time(lambda: decode_fused(m.qkvb, m.attn, kv0, pos, m.seqStarts, cache.table, m.invf, 1.0, m.pO, m.pML, m.ctr, 1, 1, nH, nKV, hd, 32, cache.maxBlocks, 0.125, 0, ss, ns), iters=20)
            kvb = (c + 1) * nKV * hd * 2 * 2
            kern[f"attn ctx {c} {label}"] = dict(old=t_o, fused=t_n, splits=ns, splitSize=ss)
            log(f"  attention ctx {c:5d} {label:30s} splits {ns:2d}x{ss:4d}: rope_kv_write+decode+reduce {t_o * 1e3:6.1f} us, fused {t_n * 1e3:6.1f} us ({kvb / (t_n * 1e-3) / bw * 100:5.1f}% of copy bw for {kvb / 1e3:.0f} KB)")
    out["kernels"] = kern
    out["check"] = res
    if out_json:
        json.dump(out, open(out_json, "w"), indent=1)


def choose_split(c):
    splits = min(max(1, math.ceil(4 * SMS / 8)), math.ceil((c + 1) / 64), 64)
    ss = math.ceil(math.ceil((c + 1) / splits) / 64) * 64
    return math.ceil((c + 1) / ss), ss


def main():
    global SMS
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.environ.get("OUT", ""))
    ap.add_argument("--ctx", type=int, default=128)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", default="checks,prefill,model")
    a = ap.parse_args()
    props = torch.cuda.get_device_properties(0)
    SMS = props.multi_processor_count
    log(f"GPU {props.name}, {SMS} SMs, torch {torch.__version__}, cupy {cp.__version__}")
    t0 = time.time()
    for nm, fn in (("checks", lambda: (check_gemv(), check_attention())), ("prefill", lambda: check_prefill()), ("model", lambda: run_model(a.quick, a.ctx, os.path.join(a.out, "decode_step.json") if a.out else None))):
        if nm in a.only:
            try:
                fn()
            except Exception as e:  # noqa: BLE001
                import traceback
                traceback.print_exc()
                record(nm, False, f"{type(e).__name__}: {e}")
    bad = [r for r in RESULTS if not r[1]]
    log(f"== SUMMARY: {len(RESULTS)} checks, {len(bad)} failed ({time.time() - t0:.0f} s)")
    for r in bad[:30]:
        log(f"  FAIL {r[0]}: {r[2]}")
    sys.exit(1 if bad else 0)


SMS = 132
if __name__ == "__main__":
    main()
