#!/usr/bin/env python3
"""Session 11 (issues 16 / 14, helper batchattn): decode_attention_batch4_{bf16,fp8kv_bf16}_hd* (S^T = K · Q^T: 16 keys
on the mma rows, the kv group's <= 8 query heads on the n8 columns; kernels/decode_attention_batch4.cu) checked and
timed beside decode_attention_batch2 (its default configuration) and batch2w.

Checks (NaN-poisoned outputs / partials / unused cache blocks, shuffled block tables, windows, 1..3000 keys, several
splits, G 4 / 7 / 16 / 24): outputs vs float64 attention (batch2's error printed beside), the written cache bit for bit
batch2's, counters back to zero, and batch invariance: a token's output row alone in a 1-token launch is bitwise its
row in the whole step. Timing: CUDA graphs of one launch per layer over 8 layers' caches (the K/V bytes come from HBM),
the copy ceiling measured in the same process.

  python3 tools/cuda-kernel-check/decode_attention_batch4.py [--only check,timing] [--cfgs 'NW,ST,KT,MINB;...']
"""
import argparse
import math
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import decode_step as ds  # noqa: E402
from decode_attention_batch2 import batch2, cases_of, fp8_kv_of, to_e4m3_bytes, to_fp8  # noqa: E402
from decode_attention_setup import MODELS, batch2w, setup  # noqa: E402
from decode_step import F, I, L, P, attn_ref, bf, launch, log, record, relerr  # noqa: E402


def name4(hd, fp8):
    return f"decode_attention_batch4_{'q8_' if fp8 and Q8OUT else ''}{'fp8kv_' if fp8 else ''}bf16_hd{hd}"


def nums(cfg):
    """The numeric part of a configuration (its '+NAME' knobs dropped)."""
    return tuple(x for x in cfg if isinstance(x, int)) if cfg else cfg


def b4defines(hd, fp8, cfg, trace=False):
    """(kernel name, NVRTC defines, warps, items a block takes in turn) of a configuration (see batch4)."""
    nm = name4(hd, fp8)
    f = "F" if fp8 else ""
    defines = ("LLMRT_SELECT", f"LLMRT_K_{nm}=1") + (("DB4_TRACE",) if trace else ())
    nw, ser = 2, 1
    if cfg:
        defines += tuple(f"DB4_{x}=1" if "=" not in x else f"DB4_{x}" for x in cfg if isinstance(x, str))
        cfg = nums(cfg)
    if cfg:
        nw = cfg[0]
        defines += tuple(f"DB4_{f}{k}{hd}={v}" for k, v in zip(("NW", "ST", "KT", "MINB", "TMA", "SER"), cfg))
        if len(cfg) > 6:
            defines += (f"DB4_FAST={cfg[6]}",)
        if len(cfg) > 7:
            defines += (f"DB4_PF={cfg[7]}",)
        if len(cfg) > 5:
            ser = cfg[5]
    return nm, defines, nw, ser


def batch4(qkv, out, kvc, positions, seqStarts, table, invf, pO, pML, ctr, T, S, nH, nKV, hd, tpb, maxB, scale, window, splitSize,
           numSplits, fp8=False, kvScales=None, cfg=None, trace=False):
    """cfg (warps, stages, 16-key sub-tiles a warp tile, min blocks per SM[, cp.async.bulk rows[, items a block takes in
    turn[, fast issue[, block-table prefetch (PF)]]]]) or None: the .cu defaults. trace: the DB4_TRACE build (db4Trace stamps)."""
    G = nH // nKV
    nm, defines, nw, ser = b4defines(hd, fp8, cfg, trace)
    nBx = nKV * math.ceil(G / 8)
    if ser > 1:
        ser = max(d for d in range(1, ser + 1) if nBx % d == 0)
    args = (P(qkv), P(out), P(kvc), P(positions), P(seqStarts), P(table), P(invf), F(1.0), P(pO), P(pML), P(ctr),
            I(T), I(S), I(nH), I(nKV), I(tpb), I(maxB), F(scale), I(window), I(splitSize), P(None), L(0))
    if fp8:
        args = args + (P(kvScales),)
    if fp8 and Q8OUT:
        args = args + (P(Q8ROW[0]), F(0.05))
    launch("decode_attention_batch4", nm, (nBx // ser, T, numSplits), nw * 32, args, defines)


def occupancy(hd, fp8, cfg):
    """'R regs, L B local, S B smem, B blocks/SM' of a configuration's kernel (the driver's occupancy query)."""
    import cupy as cp
    from decode_step import module
    nm, defines, nw, _ = b4defines(hd, fp8, cfg)
    f = module("decode_attention_batch4", defines).get_function(nm)
    try:
        nb = cp.cuda.driver.occupancyMaxActiveBlocksPerMultiprocessor(f.ptr, nw * 32, 0)
    except Exception as e:  # noqa: BLE001
        nb = f"? ({type(e).__name__})"
    return f"{f.num_regs} regs, {f.local_size_bytes} B local, {f.shared_size_bytes} B smem, {nb} blocks/SM"


def trace_stats(hd, fp8, cfg, nblocks):
    """Reads db4Trace of the last DB4_TRACE launch: block time, its phases (clock64), waves, the kernel's span."""
    import numpy as np
    from decode_step import module
    nm, defines, _, _ = b4defines(hd, fp8, cfg, trace=True)
    mod = module("decode_attention_batch4", defines)
    import cupy as cp
    g = cp.ndarray((16384 * 16,), dtype=cp.uint64, memptr=mod.get_global("db4Trace"))
    n = min(nblocks, 16384)
    tr = cp.asnumpy(g).reshape(-1, 16)[:n].astype(np.int64)
    empty = (tr[:, 7] >> 32) & 1 == 1
    full = tr[~empty]
    gt0, gt1 = tr[:, 0], tr[:, 1]
    t0 = gt0.min()
    span = (gt1.max() - t0) / 1e3
    dur = (full[:, 1] - full[:, 0]) / 1e3
    cyc = (full[:, 6] - full[:, 2]).astype(float)
    ghz = cyc.sum() / max(1, (full[:, 1] - full[:, 0]).sum())
    ph = lambda a, b: np.median((full[:, b] - full[:, a]) / ghz / 1e3)  # noqa: E731
    starts = np.sort((full[:, 0] - t0) / 1e3)
    # Wave starts: the first block, then the start times at each 1056-block boundary-ish: quantiles of the start times.
    q = np.quantile(starts, [0.0, 0.25, 0.5, 0.75, 1.0])
    sm = full[:, 7] & 0xFFFFFFFF
    per_sm = np.bincount(sm.astype(np.int64))
    # Concurrency: blocks of an SM alive at the same time (max over SMs, sampled at each block start).
    conc = 0
    for smi in range(min(len(per_sm), 132)):
        sel = full[sm == smi]
        if len(sel):
            st, en = sel[:, 0], sel[:, 1]
            conc = max(conc, int(max(((st <= x) & (en > x)).sum() for x in st)))
    log(f"    trace {cfg}: span {span:.1f} us, {len(full)} blocks (+{int(empty.sum())} empty, those end by "
        f"{(gt1[empty].max() - t0) / 1e3 if empty.any() else 0:.1f} us); block time median {np.median(dur):.2f} p10 {np.quantile(dur, 0.1):.2f} "
        f"p90 {np.quantile(dur, 0.9):.2f} us at {ghz:.2f} GHz; phases (median us): prologue {ph(2, 3):.2f} [issue {ph(2, 8):.2f}, rope table "
        f"{ph(8, 9):.2f}, barrier {ph(9, 10):.2f}, q {ph(10, 11):.2f}, own k/v {ph(11, 3):.2f}], to first tile {ph(3, 4):.2f}, "
        f"tiles {ph(4, 5):.2f}, merge+write {ph(5, 6):.2f} [last tile {ph(5, 12):.2f}, park barrier {ph(12, 13):.2f}, merge+out {ph(13, 14):.2f}, "
        f"end {ph(14, 6):.2f}]; start quantiles {', '.join(f'{x:.1f}' for x in q)} us; blocks/SM "
        f"{per_sm.min()}..{per_sm.max()}, max alive on an SM {conc}")


SHAPES = [(32, 8, 128), (32, 8, 64), (14, 2, 64), (16, 1, 128), (48, 2, 64), (28, 4, 128)]
SHAPE_SEL = []  # --shapes: only these (nH, nKV, hd)


def check(fp8, cfgs, quick):
    what = "fp8kv" if fp8 else "bf16"
    log(f"== decode_attention_batch4 {what} vs float64 (batch2 beside), cache vs batch2, batch invariance")
    gen = torch.Generator(device="cuda").manual_seed(21 + fp8)
    for (nH, nKV, hd) in [x for x in SHAPES if not SHAPE_SEL or x in SHAPE_SEL]:
        G = nH // nKV
        invf = ds.rope_tables(hd)
        for tpb in (16, 32):
            for ci, (lens, window) in enumerate(cases_of()):
                lens = [int(x) for x in lens]
                if tpb == 16 and ci not in (4, 6):
                    continue
                if quick and (ci in (0, 2) or (nH, nKV) in ((14, 2), (48, 2)) and ci != 6):
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

                        def run(fn, cfg, sel=None):
                            idx = list(range(T)) if sel is None else sel
                            n = len(idx)
                            ii = torch.tensor(idx, device="cuda")
                            kvc = (c8 if fp8 else cache.data[0]).clone()
                            out = torch.full((n, nH * hd), float("nan"), device="cuda", dtype=torch.bfloat16)
                            pO = torch.full((n, nH, ns, hd), float("nan"), device="cuda")
                            pML = torch.full((n, nH, ns, 2), float("nan"), device="cuda")
                            ctr = torch.zeros(n * nKV * math.ceil(G / 8), dtype=torch.int32, device="cuda")
                            sargs = (qkv[ii].contiguous(), out, kvc, positions[ii].contiguous(), torch.arange(n + 1, dtype=torch.int32, device="cuda"),
                                     cache.table[ii].contiguous(), invf, pO, pML, ctr, n, n, nH, nKV, hd, tpb, cache.maxBlocks, scale, window, splitSize, ns)
                            if fn is batch2:
                                batch2(*sargs, fp8=fp8, kvScales=sc if fp8 else None)
                            else:
                                batch4(*sargs, fp8=fp8, kvScales=sc if fp8 else None, cfg=cfg)
                            torch.cuda.synchronize()
                            return out, kvc, int(ctr.abs().sum()) == 0

                        o2, k2, _ = run(batch2, None)
                        if refs is None:
                            refs = []
                            for t, p in enumerate(lens):
                                q = ds.rope_ref(qkv[t].double()[: nH * hd].view(nH, hd), p, invf)
                                if fp8:
                                    K, V = fp8_kv_of(k2, sc, cache.table, tpb, t, p + 1)
                                else:
                                    K, V = ds.Cache.kv(type("c", (), {"table": cache.table, "tpb": tpb, "data": k2.unsqueeze(0)})(), t, p + 1)
                                refs.append(attn_ref(q, K, V, G, scale, window, p))
                        w2 = max(relerr(o2[t].view(nH, hd), refs[t]) for t in range(T))
                        first = {}  # (warps, sub-tiles) -> the first such configuration's output: the others must match it bitwise
                        for cfg in cfgs:
                            o4, k4, ctr0 = run(batch4, cfg)
                            key = (nums(cfg) or (2,))[0], (nums(cfg)[2] if nums(cfg) and len(nums(cfg)) > 2 else 1)
                            same = torch.equal(o4.view(torch.int16), first.setdefault(key, o4).view(torch.int16))
                            worst = max(relerr(o4[t].view(nH, hd), refs[t]) for t in range(T))
                            csame = torch.equal(k4.view(torch.uint8), k2.view(torch.uint8))
                            inv = True
                            if T > 3:  # batch invariance: tokens 0 and T-1 alone, and 1..3 together
                                for sel in ([0], [T - 1], [1, 2, 3]):
                                    os_, _, _ = run(batch4, cfg, sel)
                                    inv = inv and torch.equal(os_.view(torch.int16), o4[sel].view(torch.int16))
                            lab = f"{len(lens)} seqs pos {lens[0]}..{max(lens)}" if len(lens) > 3 else f"pos={lens}"
                            ok = worst < (2.5e-2 if fp8 else 1e-2) and worst <= 1.5 * w2 + 2e-3 and csame and ctr0 and inv and same
                            record(f"batch4_{what}", ok, f"cfg={cfg} nH={nH} nKV={nKV} hd={hd} tpb={tpb} {lab} win={window} split={splitSize}x{ns}: "
                                   f"rel={worst:.2e} (batch2 {w2:.2e}) cache==batch2 {csame} counters-reset={ctr0} invariant={inv} same-bits-as-first-cfg {same}")


def timing(bw, cases, cfgsOf, fp8s):
    log("== timing: us per layer, one launch per layer over 8 layers' caches (CUDA graph), tokensPerBlock 32")
    layers = 8
    for case in cases:
        mk, T, ctx = case.split(":")
        nm, nH, nKV, hd = MODELS[mk]
        T = int(T)
        Q8ROW[0] = torch.zeros(T, device="cuda")
        lo, hi = (int(x) for x in ctx.split("-"))
        d = setup(T, nH, nKV, hd, lo, hi, max(288, hi + 32), split=SPLIT)
        scale = 1 / math.sqrt(hd)
        kv8 = None
        for fp8 in fp8s:
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

            def tm(fn):
                return min(ds.graph_time(lambda: [fn(li) for li in range(layers)], iters=1, reps=7) for _ in range(2)) / layers * 1e3
            t2 = 1e9 if NO_B2 else tm(lambda li: batch2(*args(li), fp8=fp8, kvScales=sc[li] if fp8 else None))
            line = f"  {nm} {T} seqs ctx {lo}..{hi} {'fp8' if fp8 else 'bf16'} split {d['ns']}x{d['ss']}: ceiling {ceil_us:6.1f} | batch2 {t2:6.1f} ({ceil_us / t2 * 100:4.1f}%)"
            ref = t2
            if not fp8 and hd == 128 and not NO_B2:
                tw = tm(lambda li: batch2w(*args(li)))
                line += f" | batch2w {tw:6.1f}"
                ref = min(ref, tw)
            best = (1e9, "")
            first, diff = None, []
            for ci, cfg in enumerate(cfgsOf[fp8]):
                b4 = lambda li, cfg=cfg, trace=False: batch4(*args(li), fp8=fp8, kvScales=sc[li] if fp8 else None, cfg=cfg, trace=trace)  # noqa: E731
                t4 = tm(b4)
                lab = "b4 " + ("dflt" if cfg is None else ",".join(str(x) for x in cfg))
                b4(0)
                torch.cuda.synchronize()
                o = d["out"].clone()
                if first is None:
                    first = o
                elif not torch.equal(o.view(torch.int16), first.view(torch.int16)):
                    diff.append(lab)
                line += f" | {lab} {t4:6.1f}"
                best = min(best, (t4, lab))
                if INFO:
                    log(f"    {lab}: {occupancy(hd, fp8, cfg)}")
                if ci < TRACE:
                    b4(0, trace=True)
                    torch.cuda.synchronize()
                    b4(0, trace=True)
                    torch.cuda.synchronize()
                    trace_stats(hd, fp8, cfg, nKV * math.ceil(nH // nKV / 8) * T * d["ns"])
            line += f" || best {best[1]} {best[0]:.1f} ({ceil_us / best[0] * 100:4.1f}%, {best[0] / ref:.3f}x best batch2)"
            line += f"; outputs bitwise the first's: {'all' if not diff else 'NOT ' + ', '.join(diff)}"
            log(line)
        del kv8
        d.clear()
        torch.cuda.empty_cache()


INVF = {}
SPLIT = 0  # --split: the split size (0: the harness's own choice; the 512-row graph of the bench engine: 256)
INFO = False  # --info: registers, shared memory and the driver's blocks / SM of each configuration
TRACE = 0  # --trace N: the DB4_TRACE build's stamps of the first N e4m3 configurations (one launch, layer 0)
NO_B2 = False  # --no-batch2: skip the batch2 / batch2w baselines
Q8OUT = False  # --q8: time the e4m3 cache's q8 entry points (the engine's fp8DecodeAttnQuant form: o_proj's e4m3 rows, actScale 0.05)
Q8ROW = [None]  # its row-scale buffer


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", default="check,timing")
    ap.add_argument("--cfgs", default="", help="bf16 configurations 'warps,stages,subtiles,minBlocks;...' ('' = the .cu defaults)")
    ap.add_argument("--fcfgs", default="", help="e4m3 configurations, as --cfgs")
    ap.add_argument("--check-cfgs", default="", help="configurations to check (both caches), as --cfgs")
    ap.add_argument("--cases", default="8b:512:128-256,8b:256:128-256,8b:128:128-256,8b:64:128-256,8b:512:32-64,8b:512:480-544,1b:64:128-256")
    ap.add_argument("--fp8", default="0,1")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--shapes", default="", help="check only these 'nH,nKV,hd;...'")
    ap.add_argument("--split", type=int, default=0, help="split size (the bench engine's 512-row graph: 256, 2 splits of maxSeqLen 288)")
    ap.add_argument("--info", action="store_true", help="registers, shared memory, blocks / SM of each configuration")
    ap.add_argument("--trace", type=int, default=0, help="per-block stamps of the first N e4m3 configurations (DB4_TRACE build)")
    ap.add_argument("--no-batch2", action="store_true")
    ap.add_argument("--q8", action="store_true", help="timing: e4m3 caches through the q8 entry points (fp8DecodeAttnQuant's form)")
    a = ap.parse_args()
    global SPLIT, INFO, TRACE, NO_B2, Q8OUT
    SPLIT, INFO, TRACE, NO_B2, Q8OUT = a.split, a.info, a.trace, a.no_batch2, a.q8
    SHAPE_SEL.extend(tuple(int(x) for x in c.split(",")) for c in a.shapes.split(";") if c)
    props = torch.cuda.get_device_properties(0)
    log(f"GPU {props.name}, {props.multi_processor_count} SMs, torch {torch.__version__}")
    for hd in (64, 128):
        INVF[hd] = ds.rope_tables(hd)
    t0 = time.time()
    # A configuration: 'd' (the .cu defaults) or 'W,ST,KT,MINB[,...]', then '+NAME' knobs (-D DB4_NAME=1, or +NAME=V).
    def pc(s):
        out = []
        for c in (s.split(";") if s else ["d"]):
            head, *knobs = c.split("+")
            if head != "d" and not head[:1].isdigit():  # 'NAME[+NAME...]': knobs on the defaults
                head, knobs = "d", [head] + knobs
            base = () if head == "d" else tuple(int(x) for x in head.split(","))
            out.append(None if not base and not knobs else base + tuple(knobs))
        return out
    for step in a.only.split(","):
        try:
            if step == "check":
                for fp8 in [x == "1" for x in a.fp8.split(",")]:  # --fp8 0,1 (both by default)
                    check(fp8, pc(a.check_cfgs), a.quick)
                    log(f"-- check {'fp8' if fp8 else 'bf16'} done at {time.time() - t0:.0f} s")
            elif step == "timing":
                bw = max(ds.copy_bandwidth(), ds.copy_bandwidth())
                log(f"copy bandwidth {bw / 1e12:.3f} TB/s (best of two)")
                # Timing configurations: 'd' (the .cu defaults) or 'W,ST,KT,MINB[,...]'.
                timing(bw, a.cases.split(","), {False: pc(a.cfgs), True: pc(a.fcfgs)}, [x == "1" for x in a.fp8.split(",")])
                log(f"-- timing done at {time.time() - t0:.0f} s")
        except Exception as e:  # noqa: BLE001
            import traceback
            traceback.print_exc()
            record(step, False, f"{type(e).__name__}: {e}")
    bad = [r for r in ds.RESULTS if not r[1]]
    log(f"SUMMARY batch4: {len(ds.RESULTS)} checks, {len(bad)} failed ({time.time() - t0:.0f} s)")
    for r in bad[:20]:
        log(f"  FAIL {r[0]}: {r[2]}")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
