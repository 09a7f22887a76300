#!/usr/bin/env python3
"""Session 7 (issue 16 item 1): checks and times decode_attention_sk (split-K flash decoding,
kernels/decode_attention_sk.cu) beside decode_attention (the engine's kernel) and the copy ceiling.

  python3 tools/cuda-kernel-check/decode_attention_sk.py [--only checks,time] [--out DIR] [--quick]

Checks (float64 reference): attention output, the cache bits of the step's own key vs rope_kv_write,
counters left zero, no NaN (unused cache blocks and the step's own slot are NaN-poisoned), and batch
invariance: a sequence's output row bitwise equal alone, in a batch of 8, with any grid Z (the split
partition depends on the span and the split target only). Variants compiled with -D (DS_MINK, DS_NS).
Timing: one layer's decode attention at batch 1 for llama-3.2-1b (32/8 heads, hd 64) and llama-3.1-8b
(32/8, hd 128) shapes at contexts 128 … 32768, graph-replayed over enough layer copies to defeat L2,
vs the KV bytes' time at the copy bandwidth measured in the same process (median of several copies).
"""
import argparse
import json
import math
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import decode_step as ds  # noqa: E402
from decode_step import I, L, F, P, bf, relerr, rope_tables, rope_ref, graph_time, module, log  # noqa: E402

RESULTS = ds.RESULTS
SMS = 132
WITH_OLD = True  # --no-old: leave decode_attention out of the timing
MAXZ = 64


def record(name, ok, detail):
    ds.record(name, ok, detail)


def sk_fn(hd, defines=()):
    f = module("decode_attention_sk", tuple(defines)).get_function(f"decode_attention_sk_bf16_hd{hd}")
    return f


def smem_bytes(defines=()):
    ns = 3
    for d in defines:
        if d.startswith("DS_NS="):
            ns = int(d.split("=")[1])
    return 4 * ns * 512 * 16


_attr_done = set()


def launch_sk(hd, grid, args, defines=()):
    f = sk_fn(hd, defines)
    sm = smem_bytes(defines)
    key = (hd, tuple(defines))
    if key not in _attr_done:
        try:
            f.max_dynamic_shared_size_bytes = sm
        except Exception:  # noqa: BLE001
            import cupy as cp
            cp.cuda.driver.funcSetAttribute(f.kernel.ptr, 8, sm)
        _attr_done.add(key)
    f(tuple(grid), (128, 1, 1), tuple(args), shared_mem=sm, stream=ds._ext_stream())


def split_target(nKV, G, sms=None):
    sms = sms or SMS
    return max(1, min(MAXZ, math.ceil(2 * sms / (nKV * math.ceil(G / 8)))))


def split_keys(span, target, mink):
    return max(mink, math.ceil(math.ceil(span / target) / 64) * 64)


def nz_of(span, target, mink):
    return math.ceil(span / split_keys(span, target, mink))


def grid_z(maxLen, target, mink):
    return max(1, min(target, math.ceil(maxLen / mink)))


def mink_of(defines):
    for d in defines:
        if d.startswith("DS_MINK="):
            return int(d.split("=")[1])
    return 128


def run_sk(qkv, out, kvc, positions, seqStarts, table, invf, pO, pML, ctr, T, S, nH, nKV, hd, tpb, maxB, scale, window, target, Z, defines=()):
    G = nH // nKV
    launch_sk(hd, (nKV * math.ceil(G / 8), T, Z),
              (P(qkv), P(out), P(kvc), P(positions), P(seqStarts), P(table), P(invf), F(1.0), P(pO), P(pML), P(ctr),
               I(T), I(S), I(nH), I(nKV), I(tpb), I(maxB), F(scale), I(window), I(target), P(None), L(0)), defines)


class Cache:
    """One (or `layers`) paged cache [nb, 2, tpb, nKV, hd], shuffled blocks, random history; unused
    blocks and each sequence's own slot NaN-poisoned."""

    def __init__(self, lens, nKV, hd, tpb, gen, layers=1, poison=True):
        self.tpb = tpb
        need = [math.ceil((p + 1) / tpb) for p in lens]
        self.maxBlocks = max(need)
        nb = sum(need) + 1
        perm = torch.randperm(nb, generator=torch.Generator().manual_seed(11)).tolist()
        tab = np.zeros((len(lens), self.maxBlocks), dtype=np.int32)
        it = iter(perm)
        for s, n in enumerate(need):
            for j in range(n):
                tab[s, j] = next(it)
        spare = next(it)
        for s, n in enumerate(need):
            tab[s, n:] = spare
        self.tab = tab
        self.table = torch.tensor(tab, device="cuda")
        self.data = bf(torch.randn(layers, nb, 2, tpb, nKV, hd, device="cuda", generator=gen))
        if poison:
            self.data[:, spare] = float("nan")
            for s, p in enumerate(lens):
                self.data[:, tab[s, p // tpb], :, p % tpb] = float("nan")
                # positions past p in its last block: NaN too (never attended)
                self.data[:, tab[s, p // tpb], :, p % tpb + 1:] = float("nan")

    def kv(self, data, s, upto):
        idx = np.arange(upto)
        blk = torch.tensor(self.tab[s, idx // self.tpb], device="cuda").long()
        off = torch.tensor(idx % self.tpb, device="cuda").long()
        return data[blk, 0, off].double(), data[blk, 1, off].double()


def attn_ref(q, K, V, G, scale, window, pos):
    """q [nH, hd], K/V [pos+1, nKV, hd] float64 -> [nH, hd] (all heads at once)."""
    lo = max(0, pos + 1 - window) if window > 0 else 0
    Kh = K[lo:pos + 1].repeat_interleave(G, dim=1)  # [n, nH, hd]
    Vh = V[lo:pos + 1].repeat_interleave(G, dim=1)
    sc = torch.einsum("nhd,hd->hn", Kh, q) * scale
    p = torch.softmax(sc, -1)
    return torch.einsum("hn,nhd->hd", p, Vh)


def check_case(nH, nKV, hd, tpb, lens, window, targets, zs, defines, gen, label):
    G = nH // nKV
    T = S = len(lens)
    invf = rope_tables(hd)
    cache = Cache(lens, nKV, hd, tpb, gen)
    positions = torch.tensor(lens, dtype=torch.int32, device="cuda")
    seqStarts = torch.arange(S + 1, dtype=torch.int32, device="cuda")
    qkv = bf(torch.randn(T, (nH + 2 * nKV) * hd, device="cuda", generator=gen))
    scale = 1 / math.sqrt(hd)
    mink = mink_of(defines)
    spans = [min(p + 1, window) if window else p + 1 for p in lens]
    # rope_kv_write on a copy: the cache bits the fused kernel must reproduce
    kvo = cache.data[0].clone()
    qb = torch.empty(T, nH * hd, device="cuda", dtype=torch.bfloat16)
    ds.launch("rope_kv_write", "rope_kv_write_bf16", (T,), 128,
              (P(qkv), P(qb), P(kvo), P(positions), P(seqStarts), P(cache.table), P(invf), F(1.0), I(T), I(S), I(nH), I(nKV), I(hd), I(tpb), I(cache.maxBlocks)))
    torch.cuda.synchronize()
    first = None
    for target in targets:
        zmax = max(nz_of(sp, target, mink) for sp in spans)
        for Z in sorted({max(1, z) for z in zs(zmax)}):
            kvc = cache.data[0].clone()
            out = torch.full((T, nH * hd), float("nan"), device="cuda", dtype=torch.bfloat16)
            pO = torch.full((T, nH, MAXZ, hd), float("nan"), device="cuda")
            pML = torch.full((T, nH, MAXZ, 2), float("nan"), device="cuda")
            ctr = torch.zeros(T * nKV * math.ceil(G / 8), dtype=torch.int32, device="cuda")
            run_sk(qkv, out, kvc, positions, seqStarts, cache.table, invf, pO, pML, ctr, T, S, nH, nKV, hd, tpb, cache.maxBlocks, scale, window, target, Z, defines)
            torch.cuda.synchronize()
            worst = 0.0
            for t, p in enumerate(lens):
                q = rope_ref(qkv[t].double()[: nH * hd].view(nH, hd), p, invf)
                K, V = cache.kv(kvc, t, p + 1)
                worst = max(worst, relerr(out[t].view(nH, hd), attn_ref(q, K, V, G, scale, window, p)))
            finite = bool(torch.isfinite(out.float()).all())
            cache_same = torch.equal(kvc.view(torch.int16), kvo.view(torch.int16))
            ctr_zero = int(ctr.abs().sum()) == 0
            same_as_first = True
            if first is None:
                first = out.clone()
            else:
                same_as_first = torch.equal(first.view(torch.int16), out.view(torch.int16))
            ok = finite and worst < 1e-2 and cache_same and ctr_zero and same_as_first
            record(f"decode_attention_sk {label}", ok,
                   f"nH={nH} nKV={nKV} hd={hd} tpb={tpb} pos={lens if len(lens) <= 4 else str(lens[:4]) + '...'} win={window} TS={target} Z={Z} nz={[nz_of(sp, target, mink) for sp in spans][:4]}: "
                   f"rel={worst:.2e} finite={finite} cache-bits={cache_same} counters-0={ctr_zero} Z-invariant={same_as_first}")
        first = None


def check_invariance(nH, nKV, hd, tpb, gen, defines, target):
    """Sequence 0 (a long span) alone and inside batches of 2 .. 8 with other spans, every Z: bitwise equal rows."""
    G = nH // nKV
    mink = mink_of(defines)
    invf = rope_tables(hd)
    scale = 1 / math.sqrt(hd)
    base = [4099, 37, 1500, 260, 9000, 700, 3, 2049]
    cache = Cache(base, nKV, hd, tpb, gen, poison=True)
    qkv = bf(torch.randn(8, (nH + 2 * nKV) * hd, device="cuda", generator=gen))
    rows = {}
    for T in (1, 2, 3, 8):
        lens = base[:T]
        positions = torch.tensor(lens, dtype=torch.int32, device="cuda")
        seqStarts = torch.arange(T + 1, dtype=torch.int32, device="cuda")
        zmax = max(nz_of(p + 1, target, mink) for p in lens)
        for Z in sorted({1, 2, zmax, target}):
            kvc = cache.data[0].clone()
            out = torch.full((T, nH * hd), float("nan"), device="cuda", dtype=torch.bfloat16)
            pO = torch.zeros((T, nH, MAXZ, hd), device="cuda")
            pML = torch.zeros((T, nH, MAXZ, 2), device="cuda")
            ctr = torch.zeros(T * nKV * math.ceil(G / 8), dtype=torch.int32, device="cuda")
            run_sk(qkv[:T].contiguous(), out, kvc, positions, seqStarts, cache.table[:T].contiguous(), invf, pO, pML, ctr, T, T, nH, nKV, hd, tpb,
                   cache.maxBlocks, scale, 0, target, Z, defines)
            torch.cuda.synchronize()
            for t in range(T):
                rows.setdefault(t, []).append(((T, Z), out[t].clone()))
    allok = True
    for t, lst in rows.items():
        ref = lst[0][1]
        same = all(torch.equal(ref.view(torch.int16), o.view(torch.int16)) for _, o in lst)
        allok &= same
        record("decode_attention_sk batch-invariant", same, f"nH={nH} nKV={nKV} hd={hd} TS={target} defines={defines} seq {t} (span {base[t] + 1}): {len(lst)} launches (T, Z) = {[k for k, _ in lst]} bitwise equal={same}")
    return allok


def checks(quick, define_sets=None):
    log("== decode_attention_sk vs float64, rope_kv_write bits, batch invariance")
    gen = torch.Generator(device="cuda").manual_seed(5)
    shapes = [(32, 8, 64), (32, 8, 128), (14, 2, 64), (16, 1, 128), (32, 2, 64), (8, 8, 128)]
    cases = [([0], 0), ([5], 0), ([127], 0), ([511], 0), ([512], 0), ([1000], 0), ([3000, 7, 300], 0), ([500, 64], 100), ([4100], 0), ([2100, 90], 1000)]
    if define_sets is None:
        define_sets = ((), ("DS_MINK=64",)) if quick else ((), ("DS_MINK=64",), ("DS_NS=2", "DS_MINK=64"), ("DS_NS=4",))
    for defines in define_sets:
        for (nH, nKV, hd) in shapes:
            G = nH // nKV
            ts = split_target(nKV, G)
            for tpb in (16, 32, 64):
                for lens, window in cases:
                    if quick and tpb != 32:
                        continue
                    if tpb != 32 and len(lens) == 1 and lens[0] not in (5, 1000, 4100):
                        continue
                    if defines and defines[0] == "DS_NS=4" and (nH, nKV, hd) not in ((32, 8, 128), (32, 8, 64)):
                        continue
                    targets = sorted({ts, 7}) if defines == ("DS_MINK=64",) else [ts]
                    check_case(nH, nKV, hd, tpb, lens, window, targets, lambda zmax: (zmax, 1, 3, zmax + 2), defines, gen, "+".join(defines) or "default")
        for (nH, nKV, hd) in shapes[:3]:
            check_invariance(nH, nKV, hd, 32, gen, defines, split_target(nKV, nH // nKV))
            check_invariance(nH, nKV, hd, 32, gen, defines, 7)


def parse_variants(spec):
    """'label:DEF1+DEF2[:TS];...' -> [(defines, label, TS or None)]."""
    out = []
    for item in spec.split(";"):
        if not item:
            continue
        parts = item.split(":")
        defs = tuple(d for d in parts[1].split("+") if d) if len(parts) > 1 else ()
        out.append((defs, parts[0], int(parts[2]) if len(parts) > 2 and parts[2] else None))
    return out


def time_attention(quick, bw, out, ctxs=None, variants=None, models=None):
    log("== timing: one layer's decode attention at batch 1 (graph replay over layer copies; % = KV bytes' time at the copy bandwidth)")
    res = []
    maxSeq = 32832
    ctxs = ctxs or [128, 512, 2048, 8192, 32768]
    shapes = [s for s in (("llama-3.2-1b", 32, 8, 64), ("llama-3.1-8b", 32, 8, 128)) if not models or any(m in s[0] for m in models)]
    for (name, nH, nKV, hd) in shapes:
        G = nH // nKV
        invf = rope_tables(hd)
        scale = 1 / math.sqrt(hd)
        gen = torch.Generator(device="cuda").manual_seed(3)
        tpb = 32
        for c in ctxs:
            pos = c - 1
            kvb = c * nKV * hd * 2 * 2
            NL = max(1, min(32, math.ceil(300e6 / kvb)))
            cache = Cache([pos], nKV, hd, tpb, gen, layers=NL, poison=False)
            positions = torch.tensor([pos], dtype=torch.int32, device="cuda")
            seqStarts = torch.tensor([0, 1], dtype=torch.int32, device="cuda")
            qkv = bf(torch.randn(1, (nH + 2 * nKV) * hd, device="cuda", generator=gen))
            out_ = torch.empty(1, nH * hd, device="cuda", dtype=torch.bfloat16)
            pO = torch.empty(1, nH, MAXZ, hd, device="cuda")
            pML = torch.empty(1, nH, MAXZ, 2, device="cuda")
            ctr = torch.zeros(nKV * math.ceil(G / 8), dtype=torch.int32, device="cuda")
            layers = [cache.data[i] for i in range(NL)]
            # decode_attention (engine today): bucket-1 graph geometry for maxSeqLen 32832 (graphDecodeSplit)
            blocks = nKV * math.ceil(G / 8)
            splits = min(max(1, math.ceil(4 * SMS / blocks)), 64)
            ss = max(128, math.ceil(math.ceil(maxSeq / splits) / 64) * 64)
            ns_old = math.ceil(maxSeq / ss)

            def old():
                for kvl in layers:
                    ds.decode_fused(qkv, out_, kvl, positions, seqStarts, cache.table, invf, 1.0, pO, pML, ctr, 1, 1, nH, nKV, hd, tpb, cache.maxBlocks, scale, 0,
                                    min(ss, 128), ns_old, g4=G <= 4)
            its = max(1, 32 // NL)
            t_old = graph_time(old, iters=its, reps=7) / NL if WITH_OLD else float("nan")
            row = {"model": name, "ctx": c, "kv_bytes": kvb, "old_us": t_old * 1e3, "layers": NL}
            if variants is not None:
                pass
            elif quick:
                variants = [((), "default", None), (("DS_MINK=256",), "MINK256", None)]
            else:
                variants = [((), "default", None), (("DS_NS=2",), "NS2", None), (("DS_NS=4",), "NS4", None), (("DS_MINK=256",), "MINK256", None),
                             (("DS_MINK=1024",), "MINK1024", None), (("DS_NS=5",), "NS5_TS17", math.ceil(SMS / (nKV * math.ceil(G / 8)))),
                             ((), "TS64", 64)]
            for defines, label, tsv in variants:
                mink = mink_of(defines)
                ts = tsv or split_target(nKV, G)
                Zg = grid_z(maxSeq, ts, mink)

                def new():
                    for kvl in layers:
                        run_sk(qkv, out_, kvl, positions, seqStarts, cache.table, invf, pO, pML, ctr, 1, 1, nH, nKV, hd, tpb, cache.maxBlocks, scale, 0, ts, Zg, defines)
                tc = time.time()
                sk_fn(hd, defines)
                tc = time.time() - tc
                t = graph_time(new, iters=its, reps=7) / NL
                row[f"{label}_us"] = t * 1e3
                if tc > 0.5:
                    log(f"    ({label}: compiled in {tc:.1f} s)")
            ceil_us = kvb / bw * 1e6
            row["ceiling_us"] = ceil_us
            res.append(row)
            extra = " | ".join(f"{k[:-3]} {v:6.2f} ({ceil_us / v * 100:4.1f}%)" for k, v in row.items() if k.endswith("_us") and k not in ("old_us", "ceiling_us"))
            log(f"  {name} ctx {c:6d}: KV {kvb / 1e6:7.2f} MB ceil {ceil_us:6.2f} us | decode_attention {t_old * 1e3:6.2f} ({ceil_us / (t_old * 1e3) * 100:4.1f}%) | {extra}")
            del cache, layers
            torch.cuda.empty_cache()
    out["timing"] = res


# ------------------------------------------------------------------------------------------------
# gemv_fused_ks (split-row fused GEMV) vs float64, vs gemv_fused (KS 1: same bits), batch invariance, timing
# ------------------------------------------------------------------------------------------------
def gemv_ks(x, W, y, m, n, k, mode, ks, normW=None, bias=None, eps=1e-5):
    """ks 0: the engine's gemv_fused; 1/2/4: gemv_fused_ks with that many warps per row."""
    if ks == 0:
        ds.gemv_fused(x, W, y, m, n, k, mode, normW, bias, eps)
        return
    M = 1 if m <= 1 else 2 if m <= 2 else 4 if m <= 4 else 8
    rpb = 8 // ks
    grid = math.ceil(n / 2 / (rpb // 2)) if mode == 2 else math.ceil(n / rpb)
    ds.launch("gemv", f"gemv_fused{'_norm' if normW is not None else ''}_ks_bf16_m{M}", (grid,), 256,
              (P(x), P(W), P(bias), P(y), P(normW), F(eps), I(m), I(n), I(k), I(mode | (ks << 4)), P(None), L(0)))


def check_gemv_ks():
    log("== gemv_fused_ks vs float64, vs gemv_fused, batch invariance")
    g = torch.Generator(device="cuda").manual_seed(9)
    for (n, k) in [(3072, 2048), (2048, 8192), (2048, 2048), (16384, 2048), (1000, 2048), (64, 4096), (4096, 14336)]:
        W = bf(torch.randn(n, k, device="cuda", generator=g) * 0.02)
        for m in (1, 3, 8):
            x = bf(torch.randn(m, k, device="cuda", generator=g))
            nw = bf(1 + 0.1 * torch.randn(k, device="cuda", generator=g))
            bias = bf(torch.randn(n, device="cuda", generator=g) * 0.1)
            for mode in (0, 1, 2, 3):
                if mode == 2 and n % 2:
                    continue
                for use_norm in ((False, True) if m * k <= 8192 else (False,)):
                    use_bias = mode in (0, 2) and m == 3
                    xin = ds.rms_ref(x, nw, 1e-5) if use_norm else x.double()
                    lin = xin @ W.double().T + (bias.double() if use_bias else 0)
                    y0 = bf(torch.randn(m, n, device="cuda", generator=g))
                    outs = {}
                    for ks in (0, 1, 2, 4):
                        if (k // 8) % ks if ks else False:
                            continue
                        if mode == 0:
                            ref, y = lin, torch.full((m, n), float("nan"), device="cuda", dtype=torch.bfloat16)
                        elif mode == 1:
                            y = y0.clone()
                            ref = bf(lin).double() + y0.double()
                        elif mode == 2:
                            gt, up = bf(lin[:, : n // 2]).double(), bf(lin[:, n // 2:]).double()
                            ref = gt / (1 + torch.exp(-gt)) * up
                            y = torch.full((m, n // 2), float("nan"), device="cuda", dtype=torch.bfloat16)
                        else:
                            ref, y = lin, torch.full((m, n), float("nan"), device="cuda", dtype=torch.float32)
                        gemv_ks(x, W, y, m, n, k, mode, ks, nw if use_norm else None, bias if use_bias else None)
                        torch.cuda.synchronize()
                        outs[ks] = y
                        if ks == 0:
                            continue
                        e = relerr(y, ref)
                        # mode 3 + norm: one bf16 rounding of the normed x differing from the float64 reference's moves
                        # the f32 sums by ~1e-4 (gemv_fused's own error there, the same bits at KS 1)
                        tol = (1e-3 if use_norm else 2e-5) if mode == 3 else 1e-2
                        same1 = ks != 1 or torch.equal(y.view(torch.int32 if mode == 3 else torch.int16), outs[0].view(torch.int32 if mode == 3 else torch.int16))
                        record("gemv_fused_ks", e < tol and same1, f"n={n} k={k} m={m} mode={mode} norm={int(use_norm)} bias={int(use_bias)} KS={ks} rel={e:.2e}" + (f" ==gemv_fused {same1}" if ks == 1 else ""))
        for ks in (2, 4):
            m = 8
            x = bf(torch.randn(m, k, device="cuda", generator=g))
            yb = torch.empty(m, n, device="cuda", dtype=torch.bfloat16)
            gemv_ks(x, W, yb, m, n, k, 0, ks)
            same = True
            for r in range(m):
                y1 = torch.empty(1, n, device="cuda", dtype=torch.bfloat16)
                gemv_ks(x[r:r + 1].contiguous(), W, y1, 1, n, k, 0, ks)
                torch.cuda.synchronize()
                same &= bool(torch.equal(y1[0], yb[r]))
            record("gemv_fused_ks batch-invariance", same, f"n={n} k={k} KS={ks}: 8-row call == 8 one-row calls bitwise: {same}")


def time_gemv_ks(bw, out):
    log("== timing: fused GEMVs at m = 1 (graph replay over weight copies; % of the copy bandwidth)")
    res = []
    shapes = [("1b qkv+norm", 3072, 2048, 0, True), ("1b o_proj+res", 2048, 2048, 1, False), ("1b gate_up+norm+silu", 16384, 2048, 2, True),
              ("1b down+res", 2048, 8192, 1, False), ("8b qkv+norm", 6144, 4096, 0, True), ("8b o_proj+res", 4096, 4096, 1, False),
              ("8b gate_up+norm+silu", 28672, 4096, 2, True), ("8b down+res", 4096, 14336, 1, False)]
    g = torch.Generator(device="cuda").manual_seed(4)
    for (name, n, k, mode, norm) in shapes:
        wb = n * k * 2
        NW = max(2, min(16, math.ceil(400e6 / wb)))
        Ws = [bf(torch.randn(n, k, device="cuda", generator=g) * 0.02) for _ in range(NW)]
        x = bf(torch.randn(1, k, device="cuda", generator=g))
        nw = bf(1 + 0.1 * torch.randn(k, device="cuda", generator=g)) if norm else None
        y = torch.zeros(1, n // 2 if mode == 2 else n, device="cuda", dtype=torch.bfloat16)
        row = {"shape": name, "n": n, "k": k, "bytes": wb}
        for ks in (0, 1, 2, 4):
            def fn():
                for W in Ws:
                    gemv_ks(x, W, y, 1, n, k, mode, ks, nw)
            t = graph_time(fn, iters=max(1, 32 // NW), reps=7) / NW
            row[f"ks{ks}_us"] = t * 1e3
        res.append(row)
        ceil_us = wb / bw * 1e6
        log(f"  {name:22s} {wb / 1e6:7.1f} MB ceiling {ceil_us:6.2f} us | gemv_fused {row['ks0_us']:6.2f} ({ceil_us / row['ks0_us'] * 100:5.1f}%) | "
            + " | ".join(f"KS{ks} {row[f'ks{ks}_us']:6.2f} ({ceil_us / row[f'ks{ks}_us'] * 100:5.1f}%)" for ks in (1, 2, 4)))
        del Ws
        torch.cuda.empty_cache()
    out["gemv"] = res


def main():
    global SMS, WITH_OLD
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.environ.get("OUT", ""))
    ap.add_argument("--only", default="checks,time")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--ctx", default="", help="timing contexts, e.g. 512,2048,32768")
    ap.add_argument("--variants", default="", help="timing variants 'label:DEF1+DEF2[:TS];...' (default: the built-in list)")
    ap.add_argument("--check-defines", default="", help="checks: define sets 'D1+D2;D3;...' ('' in the list = the defaults)")
    ap.add_argument("--no-old", action="store_true", help="timing: leave decode_attention out")
    ap.add_argument("--models", default="", help="timing shapes: 1b, 8b (default both)")
    a = ap.parse_args()
    WITH_OLD = not a.no_old
    props = torch.cuda.get_device_properties(0)
    SMS = props.multi_processor_count
    ds.SMS = SMS
    log(f"GPU {props.name}, {SMS} SMs, torch {torch.__version__}")
    t0 = time.time()
    out = {}
    if "checks" in a.only:
        try:
            checks(a.quick, [tuple(d for d in ds_.split("+") if d) for ds_ in a.check_defines.split(";")] if a.check_defines else None)
        except Exception as e:  # noqa: BLE001
            import traceback
            traceback.print_exc()
            record("checks", False, f"{type(e).__name__}: {e}")
    if "gemvcheck" in a.only:
        try:
            check_gemv_ks()
        except Exception as e:  # noqa: BLE001
            import traceback
            traceback.print_exc()
            record("gemvcheck", False, f"{type(e).__name__}: {e}")
    if "time" in a.only or "gemvtime" in a.only:
        try:
            bws = [ds.copy_bandwidth() for _ in range(5)]
            bw = float(np.median(bws))
            out["copy_bw"] = bws
            log(f"copy bandwidth (median of 5 x median of 10 1-GiB copies): {bw / 1e12:.3f} TB/s (all {[round(b / 1e12, 3) for b in bws]})")
            if "time" in a.only.split(","):
                time_attention(a.quick, bw, out, [int(c) for c in a.ctx.split(",") if c] or None,
                               parse_variants(a.variants) if a.variants else None, [m for m in a.models.split(",") if m] or None)
            if "gemvtime" in a.only:
                time_gemv_ks(bw, out)
        except Exception as e:  # noqa: BLE001
            import traceback
            traceback.print_exc()
            record("time", False, f"{type(e).__name__}: {e}")
    bad = [r for r in RESULTS if not r[1]]
    out["checks"] = {"n": len(RESULTS), "failed": [r for r in bad[:50]]}
    if a.out:
        os.makedirs(a.out, exist_ok=True)
        json.dump(out, open(os.path.join(a.out, "decode_attention_sk.json"), "w"), indent=1)
    log(f"== SUMMARY: {len(RESULTS)} checks, {len(bad)} failed ({time.time() - t0:.0f} s)")
    for r in bad[:30]:
        log(f"  FAIL {r[0]}: {r[2]}")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
