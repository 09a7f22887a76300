#!/usr/bin/env python3
"""Issue 16 item 3: checks and times decode_attention_batch_bf16_hd* (tensor-core decode attention for many
sequences) beside decode_attention_bf16_hd* (the fused scalar kernel the engine used for every decode step)
and the device-copy ceiling, in one process on one GPU.

  python3 tools/cuda-kernel-check/decode_attention_batch.py [--out DIR] [--quick]

Checks (float64 references, NaN-poisoned outputs and unused cache blocks, shuffled block tables): outputs vs
attention over the cache the kernel leaves, cache bits equal to decode_attention's (RoPE + KV write), split
counters back to zero; shapes G = 4 / 7 / 16 / 24 (two row chunks), hd 64 / 128, tokensPerBlock 16 / 32,
windows, 1 split, many splits, empty splits. Timing: CUDA graphs of one launch per layer over 16 layers'
caches (so the KV bytes come from HBM, not L2), batches 16 … 512, both kernels in the geometry the session
gives them. Uses decode_step.py's NVRTC/launch helpers.
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
from decode_step import F, I, L, P, bf, launch, log, record, relerr  # noqa: E402


def batch_attn(qkv, out, kvc, positions, seqStarts, table, invf, pO, pML, ctr, T, S, nH, nKV, hd, tpb, maxB, scale, window, splitSize, numSplits):
    G = nH // nKV
    launch("decode_attention_batch", f"decode_attention_batch_bf16_hd{hd}", (nKV * math.ceil(G / 16), T, numSplits), 128 if hd == 64 else 64,
           (P(qkv), P(out), P(kvc), P(positions), P(seqStarts), P(table), P(invf), F(1.0), P(pO), P(pML), P(ctr),
            I(T), I(S), I(nH), I(nKV), I(tpb), I(maxB), F(scale), I(window), I(splitSize), P(None), L(0)))


def attn_ref(q, K, V, G, scale, window, pos):
    """q [nH, hd], K/V [pos+1, nKV, hd] float64 -> [nH, hd] (all heads at once)."""
    lo = max(0, pos + 1 - window) if window > 0 else 0
    k = K[lo:pos + 1].repeat_interleave(G, dim=1)
    v = V[lo:pos + 1].repeat_interleave(G, dim=1)
    p = torch.softmax(torch.einsum("lhd,hd->hl", k, q) * scale, -1)
    return torch.einsum("hl,lhd->hd", p, v)


def check():
    log("== decode_attention_batch vs float64, cache bits vs decode_attention")
    gen = torch.Generator(device="cuda").manual_seed(5)
    rng = np.random.default_rng(5)
    shapes = [(32, 8, 64), (32, 8, 128), (14, 2, 64), (16, 1, 128), (48, 2, 64)]
    cases = [([0], 0), ([5], 0), ([127], 0), ([1000], 0), ([3000, 7, 300], 0), ([500, 64], 100),
             (list(rng.integers(0, 400, 40)), 0), (list(rng.integers(0, 200, 24)), 50)]
    for (nH, nKV, hd) in shapes:
        G = nH // nKV
        invf = ds.rope_tables(hd)
        for tpb in (16, 32):
            for lens, window in cases:
                lens = [int(x) for x in lens]
                if tpb == 16 and len(lens) < 3 and lens[0] not in (5, 1000):
                    continue
                T = S = len(lens)
                cache = ds.Cache(lens, nKV, hd, tpb, gen)
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
                        kvc = cache.data[0].clone()
                        kvo = cache.data[0].clone()
                        out = torch.full((T, nH * hd), float("nan"), device="cuda", dtype=torch.bfloat16)
                        pO = torch.full((T, nH, ns, hd), float("nan"), device="cuda")
                        pML = torch.full((T, nH, ns, 2), float("nan"), device="cuda")
                        ctr = torch.zeros(T * nKV * math.ceil(G / 8), dtype=torch.int32, device="cuda")
                        batch_attn(qkv, out, kvc, positions, seqStarts, cache.table, invf, pO, pML, ctr, T, S, nH, nKV, hd, tpb, cache.maxBlocks, scale, window, splitSize, ns)
                        out2 = torch.full((T, nH * hd), float("nan"), device="cuda", dtype=torch.bfloat16)
                        ss2 = max(64, math.ceil(maxLen / 64) * 64)
                        ctr2 = torch.zeros_like(ctr)
                        ds.decode_fused(qkv, out2, kvo, positions, seqStarts, cache.table, invf, 1.0, pO.clone(), pML.clone(), ctr2, T, S, nH, nKV, hd, tpb, cache.maxBlocks, scale, window, ss2, 1)
                        torch.cuda.synchronize()
                        if refs is None:  # the cache after the step is the same for every geometry (checked below)
                            refs = []
                            for t, p in enumerate(lens):
                                row = qkv[t].double()
                                q = ds.rope_ref(row[: nH * hd].view(nH, hd), p, invf)
                                K, V = ds.Cache.kv(type("c", (), {"table": cache.table, "tpb": tpb, "data": kvc.unsqueeze(0)})(), t, p + 1)
                                refs.append(attn_ref(q, K, V, G, scale, window, p))
                        worst = max(relerr(out[t].view(nH, hd), refs[t]) for t in range(T))
                        same = torch.equal(kvc.view(torch.int16), kvo.view(torch.int16))
                        ctr0 = int(ctr.abs().sum()) == 0
                        e_old = relerr(out, out2)
                        ok = worst < 1e-2 and same and ctr0
                        lab = f"{len(lens)} seqs pos {lens[0]}..{max(lens)}" if len(lens) > 3 else f"pos={lens}"
                        record("decode_attention_batch", ok, f"nH={nH} nKV={nKV} hd={hd} tpb={tpb} {lab} win={window} split={splitSize}x{ns}: rel={worst:.2e} vs-decode_attention={e_old:.2e} cache-bits-equal={same} counters-reset={ctr0}")


def timing(quick):
    log("== timing: one launch per layer over 8 layers' caches (CUDA graph), positions 128..255")
    bw = ds.copy_bandwidth()
    log(f"copy bandwidth {bw / 1e12:.3f} TB/s")
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
            kv = torch.randn(layers, nb, 2, tpb, nKV, hd, device="cuda", generator=gen, dtype=torch.bfloat16)
            positions = torch.tensor(np.random.default_rng(T).integers(128, 256, T), dtype=torch.int32, device="cuda")
            seqStarts = torch.arange(S + 1, dtype=torch.int32, device="cuda")
            qkv = bf(torch.randn(T, (nH + 2 * nKV) * hd, device="cuda", generator=gen))
            out = torch.empty(T, nH * hd, device="cuda", dtype=torch.bfloat16)
            pO = torch.empty(T, nH, 64, hd, device="cuda")
            pML = torch.empty(T, nH, 64, 2, device="cuda")
            ctr = torch.zeros(T * nKV * math.ceil(G / 8), dtype=torch.int32, device="cuda")
            scale = 1 / math.sqrt(hd)
            kvBytes = int(((positions + 1).sum()).item()) * nKV * hd * 2 * 2
            # decode_attention in the session's batch-invariant geometry (bucket 1's: 128-key splits over maxSeqLen)
            ss_old = 128
            ns_old = math.ceil(maxSeqLen / ss_old)
            # the batch kernel's geometry (attention_choice.ts batchDecodeSplit)
            blocks = T * nKV * math.ceil(G / 16)
            splits = min(max(1, math.ceil(2 * SMS / blocks)), 64)
            ss_new = max(256, math.ceil(math.ceil(maxSeqLen / splits) / 64) * 64)
            ns_new = math.ceil(maxSeqLen / ss_new)

            def run_old():
                for li in range(layers):
                    ds.decode_fused(qkv, out, kv[li], positions, seqStarts, table, invf, 1.0, pO, pML, ctr, T, S, nH, nKV, hd, tpb, maxB, scale, 0, ss_old, ns_old, g4=G <= 4)

            def run_new():
                for li in range(layers):
                    batch_attn(qkv, out, kv[li], positions, seqStarts, table, invf, pO, pML, ctr, T, S, nH, nKV, hd, tpb, maxB, scale, 0, ss_new, ns_new)
            t_old = ds.graph_time(run_old, iters=1, reps=7) / layers
            t_new = ds.graph_time(run_new, iters=1, reps=7) / layers
            ceil_us = kvBytes / bw * 1e6
            row = dict(model=nm, batch=T, kv_bytes=kvBytes, ceiling_us=ceil_us, decode_attention_us=t_old * 1e3, batch_us=t_new * 1e3,
                       old_geometry=[ns_old, ss_old], new_geometry=[ns_new, ss_new])
            res["rows"].append(row)
            log(f"  {nm} hd{hd} batch {T}: KV {kvBytes / 1e6:.1f} MB/layer (ceiling {ceil_us:.1f} us) | decode_attention {t_old * 1e3:.1f} us "
                f"({ceil_us / (t_old * 1e3) * 100:.0f}%, {ns_old}x{ss_old}) | decode_attention_batch {t_new * 1e3:.1f} us ({ceil_us / (t_new * 1e3) * 100:.0f}%, {ns_new}x{ss_new})")
            del kv
            torch.cuda.empty_cache()
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.environ.get("OUT", ""))
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", default="check,timing")
    a = ap.parse_args()
    props = torch.cuda.get_device_properties(0)
    log(f"GPU {props.name}, {props.multi_processor_count} SMs, torch {torch.__version__}")
    t0 = time.time()
    res = {}
    for nm, fn in (("check", check), ("timing", lambda: res.update(timing(a.quick)))):
        if nm in a.only:
            try:
                fn()
            except Exception as e:  # noqa: BLE001
                import traceback
                traceback.print_exc()
                record(nm, False, f"{type(e).__name__}: {e}")
    bad = [r for r in ds.RESULTS if not r[1]]
    log(f"== SUMMARY: {len(ds.RESULTS)} checks, {len(bad)} failed ({time.time() - t0:.0f} s)")
    for r in bad[:30]:
        log(f"  FAIL {r[0]}: {r[2]}")
    if a.out:
        with open(os.path.join(a.out, "decode_attention_batch.json"), "w") as f:
            json.dump(res, f, indent=1)
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
