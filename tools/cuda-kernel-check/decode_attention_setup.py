#!/usr/bin/env python3
"""Shared set-up of the batched decode attention harnesses (decode_attention_batch4.py): one step's paged caches over
8 layers, shuffled block tables, positions uniform in [lo, hi), and batch2w's launch (session 10's batch3 harness kept
these when batch3 was removed in session 11)."""
import math
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from decode_step import F, I, L, P, bf, launch  # noqa: E402

SMS = torch.cuda.get_device_properties(0).multi_processor_count
MODELS = {"8b": ("llama-3.1-8b", 32, 8, 128), "1b": ("llama-3.2-1b", 32, 8, 64)}

def setup(T, nH, nKV, hd, lo, hi, maxSeqLen, layers=8, tpb=32, split=0):
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
    if split:  # a given split size (the engine's batch-invariant one: 256 for the 8B bench graph of maxSeqLen 288)
        ss = split
    d["ss"], d["ns"] = ss, math.ceil(maxSeqLen / ss)
    return d


def batch2w(qkv, out, kvc, positions, seqStarts, table, invf, pO, pML, ctr, T, S, nH, nKV, hd, tpb, maxB, scale, window, splitSize, numSplits):
    nm = "decode_attention_batch2w_bf16_hd128"
    G = nH // nKV
    args = (P(qkv), P(out), P(kvc), P(positions), P(seqStarts), P(table), P(invf), F(1.0), P(pO), P(pML), P(ctr),
            I(T), I(S), I(nH), I(nKV), I(tpb), I(maxB), F(scale), I(window), I(splitSize), P(None), L(0))
    launch("decode_attention_batch", nm, (nKV * math.ceil(G / 16), T, numSplits), 64, args, ("LLMRT_SELECT", f"LLMRT_K_{nm}=1"))

