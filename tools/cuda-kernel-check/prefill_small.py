#!/usr/bin/env python3
"""Session 7 (issue 16 item 2): rope_kv_write_bf16's 16-byte path (the default) against its scalar path (compiled with
-DLLMRT_ROPE_SCALAR, the code before, which check_kernels.py checks against float64): outputs must be bitwise equal
(same arithmetic, same order), including the untouched cache slots. Then both timed (CUDA-graph replays) on
llama-3.2-1b / llama-3.1-8b prefill shapes beside the device-copy bandwidth of the same run. (Session 7 r1 also timed an
add_rmsnorm that kept the row in registers: bitwise equal but 0.86-0.90x, so it was dropped.)

  python3 tools/cuda-kernel-check/prefill_small.py [--out DIR]
"""
import argparse
import json
import math
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from decode_step import F, I, P, bf, graph_time, launch, log, record, RESULTS  # noqa: E402


def copy_bw():
    n = 1 << 29
    a = torch.empty(n, dtype=torch.uint8, device="cuda")
    b = torch.empty_like(a)
    ms = graph_time(lambda: b.copy_(a), iters=10, reps=5)
    return 2 * n / (ms * 1e-3)


def same(a, b):
    return torch.equal(a.view(torch.int16), b.view(torch.int16))


def rope_case(nH, nKV, hd, seqs, tpb, gen, scaling=1.0):
    T = sum(n for _, n in seqs)
    S = len(seqs)
    W = (nH + 2 * nKV) * hd
    maxBlocks = max(math.ceil((p0 + n) / tpb) for p0, n in seqs) + 1
    nb = S * maxBlocks + 1
    perm = torch.randperm(nb - 1, generator=torch.Generator().manual_seed(3))
    table = perm[: S * maxBlocks].view(S, maxBlocks).to(torch.int32).cuda()
    positions = torch.tensor([p0 + i for p0, n in seqs for i in range(n)], dtype=torch.int32, device="cuda")
    starts = [0]
    for _, n in seqs:
        starts.append(starts[-1] + n)
    seqStarts = torch.tensor(starts, dtype=torch.int32, device="cuda")
    inv = (1.0 / 500000.0 ** (torch.arange(hd // 2, dtype=torch.float64) * 2.0 / hd)).cuda()
    qkv = bf(torch.randn(T, W, device="cuda", generator=gen))
    outs = {}
    for label, defs in (("new", ()), ("old", ("LLMRT_ROPE_SCALAR",))):
        q = torch.full((T, nH * hd), float("nan"), device="cuda", dtype=torch.bfloat16)
        cache = torch.full((nb, 2, tpb, nKV, hd), float("nan"), device="cuda", dtype=torch.bfloat16)

        def go(q=q, cache=cache, defs=defs):
            launch("rope_kv_write", "rope_kv_write_bf16", (T,), 128, (P(qkv), P(q), P(cache), P(positions), P(seqStarts), P(table), P(inv), F(scaling),
                                                                          I(T), I(S), I(nH), I(nKV), I(hd), I(tpb), I(maxBlocks)), defs)
        go()
        torch.cuda.synchronize()
        outs[label] = (q, cache, go)
    ok = same(outs["new"][0], outs["old"][0]) and same(outs["new"][1], outs["old"][1])
    written = int((~torch.isnan(outs["new"][1].float())).sum())
    record("rope_kv_write_bf16 16-byte path", ok and written == T * 2 * nKV * hd, f"{nH}/{nKV}x{hd} seqs={seqs[:3]} tpb={tpb}: bitwise {'equal' if ok else 'DIFFERENT'} to the scalar path, cache values written {written} of {T * 2 * nKV * hd}")
    return outs, T * (W + nH * hd + 2 * nKV * hd) * 2


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    log(f"device: {torch.cuda.get_device_name()}")
    gen = torch.Generator(device="cuda").manual_seed(7)
    log("== bitwise checks vs the previous code")
    for nH, nKV, hd in ((32, 8, 64), (32, 8, 128), (14, 2, 64), (24, 8, 128), (8, 1, 256)):
        for seqs, tpb in (([(0, 1)], 16), ([(0, 300)], 32), ([(37, 60), (0, 1), (500, 69)], 16), ([(65530, 3), (3000, 1)], 32)):
            rope_case(nH, nKV, hd, seqs, tpb, gen)
    rope_case(32, 8, 64, [(0, 100)], 32, gen, scaling=1.25)
    bw = copy_bw()
    log(f"== timing (CUDA-graph replays); device copy {bw / 1e12:.3f} TB/s")
    times = {"copy_TBps": bw / 1e12}
    for name, fn in (("1b rope_kv_write T=2048", lambda: rope_case(32, 8, 64, [(0, 2048)], 32, gen)),
                     ("8b rope_kv_write T=2048", lambda: rope_case(32, 8, 128, [(0, 2048)], 32, gen)),
                     ("8b rope_kv_write T=32000", lambda: rope_case(32, 8, 128, [(0, 32000)], 32, gen))):
        outs, nbytes = fn()
        r = {}
        for label in ("old", "new"):
            r[label] = graph_time(outs[label][2], iters=20, reps=5) * 1e3
        times[name] = r
        log(f"  {name:28s}: old {r['old']:7.1f} us, new {r['new']:7.1f} us ({r['old'] / r['new']:.2f}x); bytes {nbytes / 1e6:.1f} MB = {nbytes / (r['new'] * 1e-6) / bw * 100:.0f}% of copy bandwidth")
    bad = [x for x in RESULTS if not x[1]]
    log(f"SUMMARY prefill_small: {len(RESULTS)} checks, {len(bad)} failed")
    for x in bad:
        log(f"  FAIL {x[0]}: {x[2]}")
    if a.out:
        os.makedirs(a.out, exist_ok=True)
        with open(os.path.join(a.out, "prefill_small.json"), "w") as f:
            json.dump({"checks": RESULTS, "times": times}, f, indent=1)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
