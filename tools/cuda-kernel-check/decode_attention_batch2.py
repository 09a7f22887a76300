#!/usr/bin/env python3
"""Session 7, issue 16 item 3: checks and times decode_attention_batch2_{bf16,fp8kv_bf16}_hd* (per-warp K/V streams,
kernels/decode_attention_batch.cu) beside decode_attention_batch_bf16_hd* (session 6) and, for an e4m3 KV cache,
the unfused path FP8-KV engines run today (rope_kv_write_fp8kv_bf16 + paged_attention_decode_fp8kv_bf16 + reduce),
with the device-copy ceiling measured in the same process.

  python3 tools/cuda-kernel-check/decode_attention_batch2.py [--out DIR] [--only check,fp8,timing,ctx,sweep] [--quick]

Checks (float64 references over the cache each kernel leaves, NaN-poisoned outputs and unused cache blocks, shuffled
block tables): bf16 outputs, cache bits equal to decode_attention's, counters back to zero; fp8: the cache bytes
equal rope_kv_write_fp8kv_bf16's, outputs vs attention in float64 over decode(bytes) * scale. Every (warps, stages)
configuration that is timed is checked first. Timing: CUDA graphs of one launch per layer over 8 layers' caches.
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
from decode_attention_batch import attn_ref, batch_attn  # noqa: E402
from decode_step import F, I, L, P, bf, launch, log, record, relerr  # noqa: E402

# (warps, stages) the engine compiles (the DB2_* defaults of the .cu file)
DEFAULT = {(64, False): (4, 2), (128, False): (2, 2), (64, True): (4, 2), (128, True): (2, 2)}
SWEEP = {  # (warps, stages[, min blocks per SM: __launch_bounds__, caps the registers; the .cu's DB2_MINB* otherwise])
    (64, False): [(4, 2), (2, 3), (2, 2), (4, 1), (2, 2, 12)],
    (128, False): [(2, 2), (4, 1), (2, 1), (2, 1, 8)],
    (64, True): [(4, 2), (4, 3), (2, 4)],
    (128, True): [(2, 2), (2, 3), (1, 4)],
}


def name2(hd, fp8):
    return f"decode_attention_batch2_{'fp8kv_' if fp8 else ''}bf16_hd{hd}"


def batch2(qkv, out, kvc, positions, seqStarts, table, invf, pO, pML, ctr, T, S, nH, nKV, hd, tpb, maxB, scale, window, splitSize,
           numSplits, fp8=False, kvScales=None, cfg=None):
    G = nH // nKV
    cfg = tuple(cfg or DEFAULT[(hd, fp8)])
    nw, st = cfg[:2]
    nm = name2(hd, fp8)
    f = "F" if fp8 else ""
    defines = ("LLMRT_SELECT", f"LLMRT_K_{nm}=1", f"DB2_{f}NW{hd}={nw}", f"DB2_{f}ST{hd}={st}") + ((f"DB2_MINB{hd}={cfg[2]}",) if len(cfg) > 2 else ())
    args = (P(qkv), P(out), P(kvc), P(positions), P(seqStarts), P(table), P(invf), F(1.0), P(pO), P(pML), P(ctr),
            I(T), I(S), I(nH), I(nKV), I(tpb), I(maxB), F(scale), I(window), I(splitSize), P(None), L(0))
    if fp8:
        args = args + (P(kvScales),)
    launch("decode_attention_batch", nm, (nKV * math.ceil(G / 16), T, numSplits), nw * 32, args, defines)


def fp8_unfused(qkv, qbuf, out, kvc, positions, seqStarts, table, invf, pO, pML, T, S, nH, nKV, hd, tpb, maxB, scale, window, splitSize,
                numSplits, kvScales):
    """What FP8-KV engines run for decode steps today: rope_kv_write_fp8kv + paged_attention_decode_fp8kv (+ reduce)."""
    G = nH // nKV
    sel = lambda *names: ("LLMRT_SELECT",) + tuple(f"LLMRT_K_{n}=1" for n in names)  # noqa: E731
    launch("rope_kv_write", "rope_kv_write_fp8kv_bf16", (T,), 128,
           (P(qkv), P(qbuf), P(kvc), P(positions), P(seqStarts), P(table), P(invf), F(1.0), I(T), I(S), I(nH), I(nKV), I(hd), I(tpb), I(maxB),
            P(kvScales)), sel("rope_kv_write_fp8kv_bf16"))
    launch("paged_attention", f"paged_attention_decode_fp8kv_bf16_hd{hd}", (nKV * math.ceil(G / 8), T, numSplits), 128,
           (P(qbuf), P(out), P(kvc), P(positions), P(seqStarts), P(table), P(pO), P(pML), I(T), I(S), I(nH), I(nKV), I(tpb), I(maxB),
            F(scale), I(window), I(splitSize), P(kvScales)), sel(f"paged_attention_decode_fp8kv_bf16_hd{hd}"))
    if numSplits > 1:
        launch("paged_attention", "paged_attention_decode_reduce_bf16", (nH, T), hd,
               (P(pO), P(pML), P(out), I(T), I(nH), I(hd), I(numSplits)), sel("paged_attention_decode_reduce_bf16"))


def to_e4m3_bytes(kv):
    """e4m3 bytes of 8 · kv, one layer at a time (no float32 copy of the whole cache)."""
    out = torch.empty(kv.shape, dtype=torch.uint8, device=kv.device)
    for i in range(kv.shape[0]):
        out[i] = (kv[i].float() * 8).to(torch.float8_e4m3fn).view(torch.uint8)
    return out


def to_fp8(data):
    """bf16 cache [L, nb, 2, tpb, nKV, hd] (NaN = unused) -> (uint8 e4m3 bytes, scales f32 [L, 2, nKV] = amax / 448)."""
    x = data.float()
    fin = torch.nan_to_num(x.abs(), nan=0.0)
    amax = fin.amax(dim=(1, 3, 5)).clamp_min(1e-6)  # [L, 2, nKV]
    s = (amax / 448.0).contiguous()
    q = (x / s[:, None, :, None, :, None]).to(torch.float8_e4m3fn).view(torch.uint8)
    return q.contiguous(), s


def fp8_kv_of(cache8, s, table, tpb, seq, upto):
    """float64 K, V [upto, nKV, hd] = decode(bytes) * scale of sequence seq (one layer)."""
    idx = torch.arange(upto)
    blk = table[seq, (idx // tpb).cuda()].long()
    off = (idx % tpb).cuda()
    raw = cache8.view(torch.float8_e4m3fn)
    K = raw[blk, 0, off].double() * s[0].double()[None, :, None]
    V = raw[blk, 1, off].double() * s[1].double()[None, :, None]
    return K, V


SHAPES = [(32, 8, 64), (32, 8, 128), (14, 2, 64), (16, 1, 128), (48, 2, 64)]


def cases_of():
    rng = np.random.default_rng(5)
    return [([0], 0), ([5], 0), ([127], 0), ([1000], 0), ([3000, 7, 300], 0), ([500, 64], 100),
            (list(rng.integers(0, 400, 40)), 0), (list(rng.integers(0, 200, 24)), 50)]


def check(fp8=False, sweep=False):
    what = "fp8kv" if fp8 else "bf16"
    log(f"== decode_attention_batch2 {what}{' (sweep configurations)' if sweep else ''} vs float64")
    gen = torch.Generator(device="cuda").manual_seed(5 + fp8)
    for (nH, nKV, hd) in SHAPES:
        if sweep and (nH, nKV, hd) == (14, 2, 64):
            continue
        G = nH // nKV
        invf = ds.rope_tables(hd)
        cfgs = SWEEP[(hd, fp8)] if sweep else [DEFAULT[(hd, fp8)]]
        for tpb in (16, 32):
            for ci, (lens, window) in enumerate(cases_of()):
                lens = [int(x) for x in lens]
                if tpb == 16 and len(lens) < 3 and lens[0] not in (5, 1000):
                    continue
                if sweep and ci not in (1, 6):
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
                        for cfg in cfgs:
                            kvc = (c8 if fp8 else cache.data[0]).clone()
                            kvo = (c8 if fp8 else cache.data[0]).clone()
                            out = torch.full((T, nH * hd), float("nan"), device="cuda", dtype=torch.bfloat16)
                            pO = torch.full((T, nH, ns, hd), float("nan"), device="cuda")
                            pML = torch.full((T, nH, ns, 2), float("nan"), device="cuda")
                            ctr = torch.zeros(T * nKV * math.ceil(G / 8), dtype=torch.int32, device="cuda")
                            batch2(qkv, out, kvc, positions, seqStarts, cache.table, invf, pO, pML, ctr, T, S, nH, nKV, hd, tpb, cache.maxBlocks,
                                   scale, window, splitSize, ns, fp8=fp8, kvScales=sc if fp8 else None, cfg=cfg)
                            out2 = torch.full((T, nH * hd), float("nan"), device="cuda", dtype=torch.bfloat16)
                            if fp8:  # the unfused path: its cache bytes and its output
                                qbuf = torch.empty(T, nH * hd, device="cuda", dtype=torch.bfloat16)
                                fp8_unfused(qkv, qbuf, out2, kvo, positions, seqStarts, cache.table, invf, pO.clone(), pML.clone(), T, S, nH, nKV, hd,
                                            tpb, cache.maxBlocks, scale, window, max(64, math.ceil(maxLen / 64) * 64), 1, sc)
                            else:
                                ss2 = max(64, math.ceil(maxLen / 64) * 64)
                                ds.decode_fused(qkv, out2, kvo, positions, seqStarts, cache.table, invf, 1.0, pO.clone(), pML.clone(),
                                                torch.zeros_like(ctr), T, S, nH, nKV, hd, tpb, cache.maxBlocks, scale, window, ss2, 1)
                            torch.cuda.synchronize()
                            if refs is None:
                                refs = []
                                for t, p in enumerate(lens):
                                    q = ds.rope_ref(qkv[t].double()[: nH * hd].view(nH, hd), p, invf)
                                    if fp8:
                                        K, V = fp8_kv_of(kvc, sc, cache.table, tpb, t, p + 1)
                                    else:
                                        K, V = ds.Cache.kv(type("c", (), {"table": cache.table, "tpb": tpb, "data": kvc.unsqueeze(0)})(), t, p + 1)
                                    refs.append(attn_ref(q, K, V, G, scale, window, p))
                            worst = max(relerr(out[t].view(nH, hd), refs[t]) for t in range(T))
                            same = torch.equal(kvc.view(torch.uint8), kvo.view(torch.uint8))
                            ctr0 = int(ctr.abs().sum()) == 0
                            e_old = relerr(out, out2)
                            ok = worst < 1e-2 and same and ctr0
                            lab = f"{len(lens)} seqs pos {lens[0]}..{max(lens)}" if len(lens) > 3 else f"pos={lens}"
                            record(f"batch2_{what}", ok, f"cfg={cfg} nH={nH} nKV={nKV} hd={hd} tpb={tpb} {lab} win={window} split={splitSize}x{ns}: "
                                   f"rel={worst:.2e} vs-{'unfused' if fp8 else 'decode_attention'}={e_old:.2e} cache-equal={same} counters-reset={ctr0}")


def timing(quick):
    log("== timing: one launch per layer over 8 layers' caches (CUDA graph), positions 128..255, tokensPerBlock 32")
    bw = ds.copy_bandwidth()
    bw2 = ds.copy_bandwidth()
    bw = max(bw, bw2)
    log(f"copy bandwidth {bw / 1e12:.3f} TB/s (best of two)")
    res = dict(copy_Bps=bw, rows=[])
    SMS = torch.cuda.get_device_properties(0).multi_processor_count
    layers, tpb, maxSeqLen = 8, 32, 288
    shapes = [("llama-3.2-1b", 32, 8, 64), ("llama-3.1-8b", 32, 8, 128)]
    batches = (64, 512) if quick else (16, 64, 256, 512)
    for (nm, nH, nKV, hd) in shapes:
        G = nH // nKV
        invf = ds.rope_tables(hd)
        for T in batches:
            gen = torch.Generator(device="cuda").manual_seed(T)
            S = T
            maxB = math.ceil(maxSeqLen / tpb)
            nb = S * maxB + 1
            perm = torch.randperm(nb - 1, generator=torch.Generator().manual_seed(1)).to(torch.int32)
            table = perm.view(S, maxB).cuda()
            table_seq = torch.arange(nb - 1, dtype=torch.int32).view(S, maxB).cuda()
            kv = torch.randn(layers, nb, 2, tpb, nKV, hd, device="cuda", generator=gen, dtype=torch.bfloat16)
            positions = torch.tensor(np.random.default_rng(T).integers(128, 256, T), dtype=torch.int32, device="cuda")
            seqStarts = torch.arange(S + 1, dtype=torch.int32, device="cuda")
            qkv = bf(torch.randn(T, (nH + 2 * nKV) * hd, device="cuda", generator=gen))
            out = torch.empty(T, nH * hd, device="cuda", dtype=torch.bfloat16)
            qbuf = torch.empty(T, nH * hd, device="cuda", dtype=torch.bfloat16)
            pO = torch.empty(T, nH, 64, hd, device="cuda")
            pML = torch.empty(T, nH, 64, 2, device="cuda")
            ctr = torch.zeros(T * nKV * math.ceil(G / 8), dtype=torch.int32, device="cuda")
            scale = 1 / math.sqrt(hd)
            kvBytes = int(((positions + 1).sum()).item()) * nKV * hd * 2 * 2
            blocks = T * nKV * math.ceil(G / 16)
            splits = min(max(1, math.ceil(2 * SMS / blocks)), 64)
            ss = max(256, math.ceil(math.ceil(maxSeqLen / splits) / 64) * 64)
            ns = math.ceil(maxSeqLen / ss)
            ceil_us = kvBytes / bw * 1e6
            row = dict(model=nm, batch=T, kv_bytes=kvBytes, ceiling_us=ceil_us, geometry=[ns, ss], us={})

            def tm(label, fn, ceil=ceil_us):
                t = ds.graph_time(fn, iters=1, reps=7) / layers * 1e3
                row["us"][label] = t
                log(f"  {nm} hd{hd} batch {T}: {label:<34} {t:7.1f} us  {ceil / t * 100:5.1f}% of {ceil:.1f} us")

            tm("batch (s6)", lambda: [batch_attn(qkv, out, kv[li], positions, seqStarts, table, invf, pO, pML, ctr, T, S, nH, nKV, hd, tpb, maxB,
                                                 scale, 0, ss, ns) for li in range(layers)])
            for cfg in SWEEP[(hd, False)]:
                tm(f"batch2 {cfg}", lambda cfg=cfg: [batch2(qkv, out, kv[li], positions, seqStarts, table, invf, pO, pML, ctr, T, S, nH, nKV, hd, tpb,
                                                            maxB, scale, 0, ss, ns, cfg=cfg) for li in range(layers)])
            for ss2 in (128, 64):  # more, shorter splits (more blocks)
                ns2 = math.ceil(maxSeqLen / ss2)
                tm(f"batch2 default split {ss2}x{ns2}", lambda ss2=ss2, ns2=ns2: [batch2(qkv, out, kv[li], positions, seqStarts, table, invf, pO, pML, ctr, T,
                                                                                         S, nH, nKV, hd, tpb, maxB, scale, 0, ss2, ns2) for li in range(layers)])
            tm("batch (s6) sequential blocks", lambda: [batch_attn(qkv, out, kv[li], positions, seqStarts, table_seq, invf, pO, pML, ctr, T, S, nH, nKV,
                                                                   hd, tpb, maxB, scale, 0, ss, ns) for li in range(layers)])
            tm("batch2 default sequential blocks", lambda: [batch2(qkv, out, kv[li], positions, seqStarts, table_seq, invf, pO, pML, ctr, T, S, nH, nKV,
                                                                   hd, tpb, maxB, scale, 0, ss, ns) for li in range(layers)])
            # fp8 cache: half the bytes
            kv8 = to_e4m3_bytes(kv)
            del kv
            torch.cuda.empty_cache()
            sc = torch.full((layers, 2, nKV), 0.125, device="cuda")
            c8 = ceil_us / 2
            row["ceiling_fp8_us"] = c8
            for cfg in SWEEP[(hd, True)]:
                tm(f"batch2 fp8 {cfg}", lambda cfg=cfg: [batch2(qkv, out, kv8[li], positions, seqStarts, table, invf, pO, pML, ctr, T, S, nH, nKV, hd,
                                                                tpb, maxB, scale, 0, ss, ns, fp8=True, kvScales=sc[li], cfg=cfg) for li in range(layers)], c8)
            # the unfused fp8 path in the session's eager geometry (decodeSplit: 64-key tiles, ~4 blocks per SM)
            blocks_u = T * nKV * math.ceil(G / 8)
            sp_u = min(max(1, math.ceil(4 * SMS / blocks_u)), math.ceil(256 / 64), 64)
            ss_u = math.ceil(math.ceil(256 / sp_u) / 64) * 64
            ns_u = math.ceil(256 / ss_u)
            tm(f"unfused fp8 (rope+decode{'+reduce' if ns_u > 1 else ''})", lambda: [fp8_unfused(qkv, qbuf, out, kv8[li], positions, seqStarts, table, invf,
                                                                                              pO, pML, T, S, nH, nKV, hd, tpb, maxB, scale, 0, ss_u, ns_u,
                                                                                              sc[li]) for li in range(layers)], c8)
            res["rows"].append(row)
            del kv8
            torch.cuda.empty_cache()
    return res


def ctx_sweep(bw):
    """s6 kernel vs batch2 (default configuration, bf16 and fp8) at several context lengths: the intercept is the fixed cost."""
    log("== context sweep: us per layer (8 layers' caches), tokensPerBlock 32, the session's non-invariant geometry")
    SMS = torch.cuda.get_device_properties(0).multi_processor_count
    layers, tpb = 8, 32
    rows = []
    for (nm, nH, nKV, hd, T) in (("llama-3.2-1b", 32, 8, 64, 64), ("llama-3.1-8b", 32, 8, 128, 512)):
        G = nH // nKV
        invf = ds.rope_tables(hd)
        for (lo, hi) in ((0, 2), (32, 64), (128, 256), (480, 544), (960, 1088)):
            maxSeqLen = hi + 32
            gen = torch.Generator(device="cuda").manual_seed(T + lo)
            S = T
            maxB = math.ceil(maxSeqLen / tpb)
            nb = S * maxB + 1
            table = torch.randperm(nb - 1, generator=torch.Generator().manual_seed(1)).to(torch.int32).view(S, maxB).cuda()
            kv = torch.randn(layers, nb, 2, tpb, nKV, hd, device="cuda", generator=gen, dtype=torch.bfloat16)
            positions = torch.tensor(np.random.default_rng(T).integers(lo, hi, T), dtype=torch.int32, device="cuda")
            seqStarts = torch.arange(S + 1, dtype=torch.int32, device="cuda")
            qkv = bf(torch.randn(T, (nH + 2 * nKV) * hd, device="cuda", generator=gen))
            out = torch.empty(T, nH * hd, device="cuda", dtype=torch.bfloat16)
            pO = torch.empty(T, nH, 64, hd, device="cuda")
            pML = torch.empty(T, nH, 64, 2, device="cuda")
            ctr = torch.zeros(T * nKV * math.ceil(G / 8), dtype=torch.int32, device="cuda")
            scale = 1 / math.sqrt(hd)
            kvBytes = int(((positions + 1).sum()).item()) * nKV * hd * 2 * 2
            blocks = T * nKV * math.ceil(G / 16)
            splits = min(max(1, math.ceil(2 * SMS / blocks)), 64)
            ss = max(256, math.ceil(math.ceil(maxSeqLen / splits) / 64) * 64)
            ns = math.ceil(maxSeqLen / ss)
            t6 = ds.graph_time(lambda: [batch_attn(qkv, out, kv[li], positions, seqStarts, table, invf, pO, pML, ctr, T, S, nH, nKV, hd, tpb, maxB, scale, 0,
                                                   ss, ns) for li in range(layers)], iters=1, reps=7) / layers * 1e3
            t2 = ds.graph_time(lambda: [batch2(qkv, out, kv[li], positions, seqStarts, table, invf, pO, pML, ctr, T, S, nH, nKV, hd, tpb, maxB, scale, 0,
                                               ss, ns) for li in range(layers)], iters=1, reps=7) / layers * 1e3
            kv8 = to_e4m3_bytes(kv)
            del kv
            sc = torch.full((layers, 2, nKV), 0.125, device="cuda")
            t8 = ds.graph_time(lambda: [batch2(qkv, out, kv8[li], positions, seqStarts, table, invf, pO, pML, ctr, T, S, nH, nKV, hd, tpb, maxB, scale, 0,
                                               ss, ns, fp8=True, kvScales=sc[li]) for li in range(layers)], iters=1, reps=7) / layers * 1e3
            del kv8
            torch.cuda.empty_cache()
            c = kvBytes / bw * 1e6
            rows.append(dict(model=nm, batch=T, ctx=[lo, hi], kv_bytes=kvBytes, ceiling_us=c, s6_us=t6, batch2_us=t2, batch2_fp8_us=t8, geometry=[ns, ss]))
            log(f"  {nm} batch {T} ctx {lo}..{hi}: ceiling {c:6.1f} us | s6 {t6:6.1f} ({c / t6 * 100:4.1f}%) | batch2 {t2:6.1f} ({c / t2 * 100:4.1f}%) | "
                f"batch2 fp8 {t8:6.1f} ({c / 2 / t8 * 100:4.1f}% of {c / 2:.1f}) | split {ns}x{ss}")
    return rows


def timing_summary(res):
    log("== timing summary (us per layer; % of the KV-read ceiling at the copy bandwidth)")
    for row in res["rows"]:
        us = row["us"]
        best = min((v, k) for k, v in us.items() if "fp8" not in k and "sequential" not in k)
        best8 = min(((v, k) for k, v in us.items() if k.startswith("batch2 fp8")), default=(float("nan"), "-"))
        log(f"  {row['model']} batch {row['batch']}: ceiling {row['ceiling_us']:.1f} | s6 {us['batch (s6)']:.1f} | best bf16 {best[1]} "
            f"{best[0]:.1f} ({row['ceiling_us'] / best[0] * 100:.0f}%) | fp8: ceiling {row.get('ceiling_fp8_us', float('nan')):.1f} best {best8[1]} "
            f"{best8[0]:.1f} unfused {next((v for k, v in us.items() if k.startswith('unfused')), float('nan')):.1f}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.environ.get("OUT", ""))
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", default="check,fp8,timing,ctx,sweep")
    a = ap.parse_args()
    props = torch.cuda.get_device_properties(0)
    log(f"GPU {props.name}, {props.multi_processor_count} SMs, torch {torch.__version__}")
    t0 = time.time()
    res = {}
    # The timed configurations that are not the defaults are checked after the timing (a round's time limit).
    steps = (("check", lambda: check(False)), ("fp8", lambda: check(True)), ("timing", lambda: res.update(timing(a.quick))),
             ("ctx", lambda: res.update(ctx=ctx_sweep(res.get("copy_Bps") or ds.copy_bandwidth()))),
             ("sweep", lambda: (check(False, True), check(True, True))))
    for nm, fn in steps:
        if nm in a.only.split(","):
            try:
                fn()
            except Exception as e:  # noqa: BLE001
                import traceback
                traceback.print_exc()
                record(nm, False, f"{type(e).__name__}: {e}")
            log(f"-- {nm} done at {time.time() - t0:.0f} s")
            if nm == "timing" and res:
                timing_summary(res)
    bad = [r for r in ds.RESULTS if not r[1]]
    log(f"== SUMMARY: {len(ds.RESULTS)} checks, {len(bad)} failed ({time.time() - t0:.0f} s)")
    for r in bad[:30]:
        log(f"  FAIL {r[0]}: {r[2]}")
    if a.out:
        with open(os.path.join(a.out, "decode_attention_batch2.json"), "w") as f:
            json.dump(dict(res=res, checks=[list(r) for r in ds.RESULTS]), f, indent=1)
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
