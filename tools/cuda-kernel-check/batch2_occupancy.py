#!/usr/bin/env python3
"""Session 9 (issue 16 item 3, helper tput): decode_attention_batch2 at the offline-throughput shapes with more blocks per
SM (stages and the __launch_bounds__ register cap, the DB2_* defines of kernels/decode_attention_batch.cu) — timed like
decode_attention_batch2.py's timing (one launch per layer over 8 layers' caches in a CUDA graph, positions 128..255,
tokensPerBlock 32, the graph geometry of maxSeqLen 288), each configuration's outputs and cache compared bit for bit
with the default configuration's (same warps: the same keys per warp and merge order).

  python3 tools/cuda-kernel-check/batch2_occupancy.py [--shapes 8b,1b] [--configs "2,2;2,1,8;2,2,6"] [--fp8-configs ...]
"""
import argparse
import math
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import decode_step as ds  # noqa: E402
from decode_attention_batch2 import DEFAULT, batch2, to_e4m3_bytes  # noqa: E402
from decode_step import bf, log  # noqa: E402

SHAPES = {"8b": ("llama-3.1-8b", 32, 8, 128, 512), "1b": ("llama-3.2-1b", 32, 8, 64, 64)}


def cfgs(s):
    return [tuple(int(x) for x in c.split(",")) for c in s.split(";") if c]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shapes", default="8b,1b")
    ap.add_argument("--configs", default="")
    ap.add_argument("--fp8-configs", default="")
    ap.add_argument("--hd64-configs", default="")
    ap.add_argument("--rows", default="", help="sequences of each shape's step instead of its default (comma list: one pass each)")
    ap.add_argument("--no-fp8", action="store_true", help="the bf16 cache only")
    a = ap.parse_args()
    log(f"GPU {torch.cuda.get_device_properties(0).name}")
    bw = max(ds.copy_bandwidth(), ds.copy_bandwidth())
    log(f"copy bandwidth {bw / 1e12:.3f} TB/s (best of two)")
    SMS = torch.cuda.get_device_properties(0).multi_processor_count
    bad = 0
    passes = [(key, int(r)) for key in a.shapes.split(",") for r in (a.rows.split(",") if a.rows else [SHAPES[key][4]])]
    for key, T in passes:
        nm, nH, nKV, hd, _ = SHAPES[key]
        G = nH // nKV
        layers, tpb, maxSeqLen = 8, 32, 288
        invf = ds.rope_tables(hd)
        gen = torch.Generator(device="cuda").manual_seed(T)
        S = T
        maxB = math.ceil(maxSeqLen / tpb)
        nb = S * maxB + 1
        table = torch.randperm(nb - 1, generator=torch.Generator().manual_seed(1)).to(torch.int32).view(S, maxB).cuda()
        kv = torch.randn(layers, nb, 2, tpb, nKV, hd, device="cuda", generator=gen, dtype=torch.bfloat16)
        positions = torch.tensor(np.random.default_rng(T).integers(128, 256, T), dtype=torch.int32, device="cuda")
        seqStarts = torch.arange(S + 1, dtype=torch.int32, device="cuda")
        qkv = bf(torch.randn(T, (nH + 2 * nKV) * hd, device="cuda", generator=gen))
        pO = torch.empty(T, nH, 64, hd, device="cuda")
        pML = torch.empty(T, nH, 64, 2, device="cuda")
        ctr = torch.zeros(T * nKV * math.ceil(G / 8), dtype=torch.int32, device="cuda")
        scale = 1 / math.sqrt(hd)
        kvBytes = int(((positions + 1).sum()).item()) * nKV * hd * 2 * 2
        blocks = T * nKV * math.ceil(G / 16)
        splits = min(max(1, math.ceil(2 * SMS / blocks)), 64)
        ss = max(256, math.ceil(math.ceil(maxSeqLen / splits) / 64) * 64)
        ns = math.ceil(maxSeqLen / ss)
        kv8 = to_e4m3_bytes(kv)
        sc = torch.full((layers, 2, nKV), 0.125, device="cuda")
        for fp8 in (False,) if a.no_fp8 else (False, True):
            ceil_us = kvBytes / bw * 1e6 / (2 if fp8 else 1)
            user = a.fp8_configs if fp8 else (a.configs if hd == 128 else a.hd64_configs)
            lst = [DEFAULT[(hd, fp8)]] + [c for c in cfgs(user) if c != DEFAULT[(hd, fp8)]]
            ref = None
            for cfg in lst:
                cache = (kv8 if fp8 else kv).clone()
                out = torch.full((layers, T, nH * hd), float("nan"), device="cuda", dtype=torch.bfloat16)
                # Correctness: every layer once from the same cache; outputs and the written cache vs the default config.
                for li in range(layers):
                    batch2(qkv, out[li], cache[li], positions, seqStarts, table, invf, pO, pML, ctr, T, S, nH, nKV, hd, tpb, maxB, scale, 0, ss, ns,
                           fp8=fp8, kvScales=sc[li] if fp8 else None, cfg=cfg)
                torch.cuda.synchronize()
                same = "ref"
                if ref is None:
                    ref = (out.clone(), cache.clone())
                else:
                    eq = torch.equal(out.view(torch.int16), ref[0].view(torch.int16)) and torch.equal(cache.view(torch.uint8), ref[1].view(torch.uint8))
                    same = "bitwise equal" if eq else "DIFFERS"
                    bad += 0 if eq else 1
                t = ds.graph_time(lambda: [batch2(qkv, out[li], cache[li], positions, seqStarts, table, invf, pO, pML, ctr, T, S, nH, nKV, hd, tpb, maxB,
                                                  scale, 0, ss, ns, fp8=fp8, kvScales=sc[li] if fp8 else None, cfg=cfg) for li in range(layers)],
                                  iters=1, reps=7) / layers * 1e3
                log(f"  {nm} hd{hd} batch {T} {'fp8' if fp8 else 'bf16'} cfg {cfg}: {t:7.1f} us/layer = {ceil_us / t * 100:5.1f}% of {ceil_us:.1f} us "
                    f"(split {ns}x{ss}); vs default: {same}")
        del kv, kv8
        torch.cuda.empty_cache()
    log(f"SUMMARY batch2_occupancy: {bad} configurations differ from the default")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
