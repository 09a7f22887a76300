#!/usr/bin/env python3
"""Session 10 (issues 16 / 14, helper batchattn): decode_attention_batch3_{bf16,fp8kv_bf16}_hd* (persistent warps,
kernels/decode_attention_batch.cu) against decode_attention_batch2 in its default configuration — outputs, the
written cache and the counters bit for bit (the same key partition, sums and merges), and vs float64 attention —
then timed beside batch2 (CUDA graphs of one launch per layer over 8 layers' caches, so the KV bytes come from HBM)
with the device-copy ceiling measured in the same process.

  python3 tools/cuda-kernel-check/decode_attention_batch3.py [--only check,timing,ctx] [--grids 4,5,6,8] [--st ...]
"""
import argparse
import math
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import decode_step as ds  # noqa: E402
from decode_attention_batch2 import batch2, cases_of, fp8_kv_of, to_e4m3_bytes, to_fp8  # noqa: E402
from decode_step import F, I, L, P, attn_ref, bf, launch, log, record, relerr  # noqa: E402

SMS = torch.cuda.get_device_properties(0).multi_processor_count


def name3(hd, fp8):
    return f"decode_attention_batch3_{'fp8kv_' if fp8 else ''}bf16_hd{hd}"


def batch3(qkv, out, kvc, positions, seqStarts, table, invf, pO, pML, ctr, T, S, nH, nKV, hd, tpb, maxB, scale, window, splitSize,
           numSplits, fp8=False, kvScales=None, grid=None, defines=()):
    nm = name3(hd, fp8)
    args = (P(qkv), P(out), P(kvc), P(positions), P(seqStarts), P(table), P(invf), F(1.0), P(pO), P(pML), P(ctr),
            I(T), I(S), I(nH), I(nKV), I(tpb), I(maxB), F(scale), I(window), I(splitSize), P(None), L(0))
    if fp8:
        args = args + (P(kvScales),)
    args = args + (I(numSplits),)
    launch("decode_attention_batch", nm, (grid or SMS * 6,), 32, args, ("LLMRT_SELECT", f"LLMRT_K_{nm}=1") + tuple(defines))


SHAPES = [(32, 8, 128), (32, 8, 64), (14, 2, 64), (16, 1, 128), (48, 2, 64)]


def check(fp8, quick, cdefs=("",)):
    what = "fp8kv" if fp8 else "bf16"
    log(f"== decode_attention_batch3 {what} vs batch2 (bitwise) and float64")
    gen = torch.Generator(device="cuda").manual_seed(11 + fp8)
    for (nH, nKV, hd) in SHAPES:
        if quick and (nH, nKV) in ((14, 2), (16, 1)):
            continue
        G = nH // nKV
        invf = ds.rope_tables(hd)
        for tpb in (16, 32):
            for ci, (lens, window) in enumerate(cases_of()):
                lens = [int(x) for x in lens]
                if tpb == 16 and ci not in (4, 6):
                    continue
                if quick and ci in (0, 2, 3):
                    continue
                T = S = len(lens)
                cache = ds.Cache(lens, nKV, hd, tpb, gen)
                if fp8:
                    c8, sc = to_fp8(cache.data)
                    c8, sc = c8[0], sc[0]
                positions = torch.tensor(lens, dtype=torch.int32, device="cuda")
                seqStarts = torch.arange(S + 1, dtype=torch.int32, device="cuda")
                qkv = bf(torch.randn(T, (nH + 2 * nKV) * hd, device="cuda", generator=gen))
                scale = 1 / math.sqrt(hd)
                maxLen = max(min(l + 1, window) if window else l + 1 for l in lens)
                refs = None
                for splitSize in sorted({64, 256, maxLen}):
                    numSplits = math.ceil(maxLen / splitSize)
                    for extra in ((0, 2) if numSplits > 1 else (0,)):
                        ns = numSplits + extra
                        if ns > 64:
                            continue
                        res = []
                        runs = [(None, ())] + [(g, tuple(x for x in dv.split("+") if x)) for dv in cdefs for g in ((1, 7, SMS * 6) if quick else (1, 3, 7, SMS * 6))]
                        for grid, dfs in runs:
                            kvc = (c8 if fp8 else cache.data[0]).clone()
                            out = torch.full((T, nH * hd), float("nan"), device="cuda", dtype=torch.bfloat16)
                            pO = torch.full((T, nH, ns, hd), float("nan"), device="cuda")
                            pML = torch.full((T, nH, ns, 2), float("nan"), device="cuda")
                            ctr = torch.zeros(T * nKV * math.ceil(G / 8), dtype=torch.int32, device="cuda")
                            args = (qkv, out, kvc, positions, seqStarts, cache.table, invf, pO, pML, ctr, T, S, nH, nKV, hd, tpb, cache.maxBlocks,
                                    scale, window, splitSize, ns)
                            if grid is None:
                                batch2(*args, fp8=fp8, kvScales=sc if fp8 else None)
                            else:
                                batch3(*args, fp8=fp8, kvScales=sc if fp8 else None, grid=grid, defines=dfs)
                            torch.cuda.synchronize()
                            res.append((f"{grid}{' ' + '+'.join(dfs) if dfs else ''}", out, kvc, int(ctr.abs().sum()) == 0))
                        if refs is None:
                            refs = []
                            kv2 = res[0][2]
                            for t, p in enumerate(lens):
                                q = ds.rope_ref(qkv[t].double()[: nH * hd].view(nH, hd), p, invf)
                                if fp8:
                                    K, V = fp8_kv_of(kv2, sc, cache.table, tpb, t, p + 1)
                                else:
                                    K, V = ds.Cache.kv(type("c", (), {"table": cache.table, "tpb": tpb, "data": kv2.unsqueeze(0)})(), t, p + 1)
                                refs.append(attn_ref(q, K, V, G, scale, window, p))
                        _, o2, k2, _ = res[0]
                        for grid, out, kvc, ctr0 in res[1:]:
                            worst = max(relerr(out[t].view(nH, hd), refs[t]) for t in range(T))
                            same = torch.equal(out.view(torch.int16), o2.view(torch.int16))
                            csame = torch.equal(kvc.view(torch.uint8), k2.view(torch.uint8))
                            lab = f"{len(lens)} seqs pos {lens[0]}..{max(lens)}" if len(lens) > 3 else f"pos={lens}"
                            record(f"batch3_{what}", worst < 1e-2 and same and csame and ctr0,
                                   f"grid={grid} nH={nH} nKV={nKV} hd={hd} tpb={tpb} {lab} win={window} split={splitSize}x{ns}: rel={worst:.2e} "
                                   f"out==batch2 {same} cache==batch2 {csame} counters-reset={ctr0}")


def setup(T, nH, nKV, hd, lo, hi, maxSeqLen, layers=8, tpb=32):
    gen = torch.Generator(device="cuda").manual_seed(T + lo)
    S = T
    maxB = math.ceil(maxSeqLen / tpb)
    nb = S * maxB + 1
    table = torch.randperm(nb - 1, generator=torch.Generator().manual_seed(1)).to(torch.int32).view(S, maxB).cuda()
    kv = torch.randn(layers, nb, 2, tpb, nKV, hd, device="cuda", generator=gen, dtype=torch.bfloat16)
    positions = torch.tensor(np.random.default_rng(T + lo).integers(lo, hi, T), dtype=torch.int32, device="cuda")
    seqStarts = torch.arange(S + 1, dtype=torch.int32, device="cuda")
    qkv = bf(torch.randn(T, (nH + 2 * nKV) * hd, device="cuda", generator=gen))
    G = nH // nKV
    d = dict(kv=kv, table=table, positions=positions, seqStarts=seqStarts, qkv=qkv, maxB=maxB, S=S, tpb=tpb,
             out=torch.empty(T, nH * hd, device="cuda", dtype=torch.bfloat16), pO=torch.empty(T, nH, 64, hd, device="cuda"),
             pML=torch.empty(T, nH, 64, 2, device="cuda"), ctr=torch.zeros(T * nKV * math.ceil(G / 8), dtype=torch.int32, device="cuda"))
    d["kvBytes"] = int(((positions + 1).sum()).item()) * nKV * hd * 2 * 2
    blocks = T * nKV * math.ceil(G / 16)
    splits = min(max(1, math.ceil(2 * SMS / blocks)), 64)
    ss = max(256, math.ceil(math.ceil(maxSeqLen / splits) / 64) * 64)
    d["ss"], d["ns"] = ss, math.ceil(maxSeqLen / ss)
    return d


def batch2w(qkv, out, kvc, positions, seqStarts, table, invf, pO, pML, ctr, T, S, nH, nKV, hd, tpb, maxB, scale, window, splitSize, numSplits):
    nm = "decode_attention_batch2w_bf16_hd128"
    G = nH // nKV
    args = (P(qkv), P(out), P(kvc), P(positions), P(seqStarts), P(table), P(invf), F(1.0), P(pO), P(pML), P(ctr),
            I(T), I(S), I(nH), I(nKV), I(tpb), I(maxB), F(scale), I(window), I(splitSize), P(None), L(0))
    launch("decode_attention_batch", nm, (nKV * math.ceil(G / 16), T, numSplits), 64, args, ("LLMRT_SELECT", f"LLMRT_K_{nm}=1"))


def wide_check():
    """decode_attention_batch2w_bf16_hd128 vs batch2's default entry point: outputs, cache and counters bit for bit."""
    log("== decode_attention_batch2w (hd128 bf16) vs batch2 (bitwise)")
    gen = torch.Generator(device="cuda").manual_seed(17)
    for (nH, nKV) in ((32, 8), (16, 1), (8, 2)):
        hd, G = 128, nH // nKV
        invf = INVF[hd]
        for tpb in (16, 32):
            for ci, (lens, window) in enumerate(cases_of()):
                lens = [int(x) for x in lens]
                if tpb == 16 and ci not in (4, 6):
                    continue
                T = S = len(lens)
                cache = ds.Cache(lens, nKV, hd, tpb, gen)
                positions = torch.tensor(lens, dtype=torch.int32, device="cuda")
                seqStarts = torch.arange(S + 1, dtype=torch.int32, device="cuda")
                qkv = bf(torch.randn(T, (nH + 2 * nKV) * hd, device="cuda", generator=gen))
                maxLen = max(min(l + 1, window) if window else l + 1 for l in lens)
                for splitSize in sorted({64, 256, maxLen}):
                    ns = math.ceil(maxLen / splitSize)
                    if ns > 64:
                        continue
                    res = []
                    for fn in (batch2, batch2w):
                        kvc = cache.data[0].clone()
                        out = torch.full((T, nH * hd), float("nan"), device="cuda", dtype=torch.bfloat16)
                        pO = torch.full((T, nH, ns, hd), float("nan"), device="cuda")
                        pML = torch.full((T, nH, ns, 2), float("nan"), device="cuda")
                        ctr = torch.zeros(T * nKV * math.ceil(G / 8), dtype=torch.int32, device="cuda")
                        fn(qkv, out, kvc, positions, seqStarts, cache.table, invf, pO, pML, ctr, T, S, nH, nKV, hd, tpb, cache.maxBlocks, 1 / math.sqrt(hd),
                           window, splitSize, ns)
                        torch.cuda.synchronize()
                        res.append((out, kvc, int(ctr.abs().sum()) == 0))
                    same = torch.equal(res[0][0].view(torch.int16), res[1][0].view(torch.int16))
                    csame = torch.equal(res[0][1].view(torch.int16), res[1][1].view(torch.int16))
                    fin = not torch.isnan(res[1][0].float()).any().item()
                    lab = f"{len(lens)} seqs pos {lens[0]}..{max(lens)}" if len(lens) > 3 else f"pos={lens}"
                    record("batch2w", same and csame and res[1][2] and fin,
                           f"nH={nH} nKV={nKV} tpb={tpb} {lab} win={window} split={splitSize}x{ns}: out==batch2 {same} cache==batch2 {csame} "
                           f"counters-reset={res[1][2]} finite={fin}")


def wide_timing(bw, cases):
    log("== timing batch2w vs batch2 (us per layer, 8 layers' caches, CUDA graph), bf16 cache, tokensPerBlock 32")
    layers = 8
    for case in cases:
        mk, T, ctx = case.split(":")
        nm, nH, nKV, hd = MODELS[mk]
        T = int(T)
        lo, hi = (int(x) for x in ctx.split("-"))
        d = setup(T, nH, nKV, hd, lo, hi, max(288, hi + 32))
        scale = 1 / math.sqrt(hd)
        ceil_us = d["kvBytes"] / bw * 1e6

        def args(li):
            return (d["qkv"], d["out"], d["kv"][li], d["positions"], d["seqStarts"], d["table"], INVF[hd], d["pO"], d["pML"], d["ctr"], T,
                    d["S"], nH, nKV, hd, d["tpb"], d["maxB"], scale, 0, d["ss"], d["ns"])
        ts = []
        for rep in range(2):
            t2 = ds.graph_time(lambda: [batch2(*args(li)) for li in range(layers)], iters=1, reps=7) / layers * 1e3
            tw = ds.graph_time(lambda: [batch2w(*args(li)) for li in range(layers)], iters=1, reps=7) / layers * 1e3
            ts.append((t2, tw))
        t2, tw = min(x[0] for x in ts), min(x[1] for x in ts)
        log(f"  {nm} {T} seqs ctx {lo}..{hi} bf16: ceiling {ceil_us:6.1f} | batch2 {t2:6.1f} ({ceil_us / t2 * 100:4.1f}%) | batch2w {tw:6.1f} "
            f"({ceil_us / tw * 100:4.1f}%) | batch2w / batch2 {tw / t2:.3f}")
        d.clear()
        torch.cuda.empty_cache()


MODELS = {"8b": ("llama-3.1-8b", 32, 8, 128), "1b": ("llama-3.2-1b", 32, 8, 64)}


def timing(bw, grids, sts, cases, variants, b2cfgs=()):
    log("== timing: us per layer, one launch per layer over 8 layers' caches (CUDA graph), tokensPerBlock 32")
    layers = 8
    for case in cases:
        mk, T, ctx = case.split(":")
        nm, nH, nKV, hd = MODELS[mk]
        T = int(T)
        lo, hi = (int(x) for x in ctx.split("-"))
        d = setup(T, nH, nKV, hd, lo, hi, max(288, hi + 32))
        scale = 1 / math.sqrt(hd)
        kv8 = None
        for fp8 in (False, True):
            if fp8:
                kv8 = to_e4m3_bytes(d["kv"])
                del d["kv"]
                torch.cuda.empty_cache()
            cache = kv8 if fp8 else d["kv"]
            sc = torch.full((layers, 2, nKV), 0.125, device="cuda")
            ceil_us = d["kvBytes"] / bw * 1e6 / (2 if fp8 else 1)

            def args(li):
                return (d["qkv"], d["out"], cache[li], d["positions"], d["seqStarts"], d["table"], INVF[hd], d["pO"], d["pML"], d["ctr"], T,
                        d["S"], nH, nKV, hd, d["tpb"], d["maxB"], scale, 0, d["ss"], d["ns"])
            t2 = ds.graph_time(lambda: [batch2(*args(li), fp8=fp8, kvScales=sc[li] if fp8 else None) for li in range(layers)], iters=1, reps=7) / layers * 1e3
            line = f"  {nm} {T} seqs ctx {lo}..{hi} {'fp8' if fp8 else 'bf16'} split {d['ns']}x{d['ss']}: ceiling {ceil_us:6.1f} | batch2 {t2:6.1f} ({ceil_us / t2 * 100:4.1f}%)"
            best = (1e9, "")
            for cfg in b2cfgs:
                if fp8 and len(cfg) > 2:
                    continue
                tb = ds.graph_time(lambda: [batch2(*args(li), fp8=fp8, kvScales=sc[li] if fp8 else None, cfg=cfg) for li in range(layers)],
                                   iters=1, reps=7) / layers * 1e3
                line += f" | b2 {cfg} {tb:6.1f}"
            for st in sts:
                for dv in variants:
                    defs = ((f"DB3_{'F' if fp8 else ''}ST{hd}={st}",) if st else ()) + tuple(x for x in dv.split("+") if x)
                    for gm in grids:
                        t3 = ds.graph_time(lambda: [batch3(*args(li), fp8=fp8, kvScales=sc[li] if fp8 else None, grid=SMS * gm, defines=defs)
                                                    for li in range(layers)], iters=1, reps=7) / layers * 1e3
                        lab = f"st{st or 'd'}{(' ' + dv) if dv else ''} x{gm}"
                        line += f" | {lab} {t3:6.1f}"
                        best = min(best, (t3, lab))
            line += f" || best {best[1]} {best[0]:.1f} ({ceil_us / best[0] * 100:4.1f}%, {t2 / best[0]:.2f}x batch2)"
            log(line)
        del kv8
        d.clear()
        torch.cuda.empty_cache()


INVF = {}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", default="check,timing")
    ap.add_argument("--grids", default="4,5,6")
    ap.add_argument("--st", default="0")
    ap.add_argument("--b2cfgs", default="", help="batch2 configurations to time too: 'warps,stages[,minBlocks];...'")
    ap.add_argument("--defs", default="", help="comma-separated variants, each '+'-joined defines ('' = default)")
    ap.add_argument("--cases", default="8b:512:128-256,8b:64:128-256,1b:64:128-256,8b:256:128-256,8b:512:32-64,8b:512:256-320,8b:512:480-544,1b:512:128-256")
    ap.add_argument("--quick", action="store_true", help="fewer check cases")
    ap.add_argument("--wide-cases", default="8b:512:128-256,8b:256:128-256,8b:128:128-256,8b:64:128-256,8b:512:32-64,8b:512:480-544")
    ap.add_argument("--check-defs", default="", help="batch3 variants to check (comma-separated, '+'-joined defines)")
    a = ap.parse_args()
    props = torch.cuda.get_device_properties(0)
    log(f"GPU {props.name}, {props.multi_processor_count} SMs, torch {torch.__version__}")
    for hd in (64, 128):
        INVF[hd] = ds.rope_tables(hd)
    t0 = time.time()
    only = a.only.split(",")
    def do_check():
        for fp8 in (False, True):
            try:
                check(fp8, a.quick, a.check_defs.split(","))
            except Exception as e:  # noqa: BLE001
                import traceback
                traceback.print_exc()
                record("check", False, f"{type(e).__name__}: {e}")
            log(f"-- check {'fp8' if fp8 else 'bf16'} done at {time.time() - t0:.0f} s")

    def do_timing():
        bw = max(ds.copy_bandwidth(), ds.copy_bandwidth())
        log(f"copy bandwidth {bw / 1e12:.3f} TB/s (best of two)")
        try:
            timing(bw, [int(x) for x in a.grids.split(",")], [int(x) for x in a.st.split(",")], a.cases.split(","), a.defs.split(","),
                   [tuple(int(x) for x in c.split(",")) for c in a.b2cfgs.split(";") if c])
        except Exception as e:  # noqa: BLE001
            import traceback
            traceback.print_exc()
            record("timing", False, f"{type(e).__name__}: {e}")
        log(f"-- timing done at {time.time() - t0:.0f} s")

    def do_wide():
        bw = max(ds.copy_bandwidth(), ds.copy_bandwidth())
        log(f"copy bandwidth {bw / 1e12:.3f} TB/s (best of two)")
        for fn in (lambda: wide_timing(bw, a.wide_cases.split(",")), wide_check):
            try:
                fn()
            except Exception as e:  # noqa: BLE001
                import traceback
                traceback.print_exc()
                record("wide", False, f"{type(e).__name__}: {e}")
        log(f"-- wide done at {time.time() - t0:.0f} s")

    for step in only:  # in the order given
        {"check": do_check, "timing": do_timing, "wide": do_wide}[step]()
    bad = [r for r in ds.RESULTS if not r[1]]
    log(f"SUMMARY batch3: {len(ds.RESULTS)} checks, {len(bad)} failed ({time.time() - t0:.0f} s)")
    for r in bad[:20]:
        log(f"  FAIL {r[0]}: {r[2]}")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
