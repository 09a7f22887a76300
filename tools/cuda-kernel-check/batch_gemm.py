#!/usr/bin/env python3
"""Issue 16 item 3: checks and times batch_gemm_s{S}_m{16,32,64} (lib/backends/cuda/kernels/batch_gemm.cu), the bf16
GEMM of decode steps of 9..64 rows, against a float64 reference, checks that a row's outputs are bitwise the same in
steps of any row count (batch invariance), and times it beside torch.matmul (cuBLASLt) and the device-copy ceiling in
one process. Weights are cycled through enough copies that no timed launch finds its weight in L2.

  python3 tools/cuda-kernel-check/batch_gemm.py [--out DIR] [--only check,time] [--variants "BG_NS=3;BG_WT=2"]

Launch geometry: batchGemmSplits below = lib/backends/cuda/batch_gemm_plan.ts.
"""
import argparse
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import decode_step as ds  # noqa: E402
from decode_step import I, P, graph_time, launch, log, record, relerr  # noqa: E402

SHAPES_1B = [("qkv", 2048, 3072), ("o", 2048, 2048), ("gate_up", 2048, 16384), ("down", 8192, 2048), ("lm_head", 2048, 128256)]
SMS = 132
DEFINES = ()


def wt():
    return int(dict((d.split("=") + ["1"])[:2] for d in DEFINES).get("BG_WT", 1))


def ns():
    return int(dict((d.split("=") + ["1"])[:2] for d in DEFINES).get("BG_NS", 4))


def kc():
    return int(dict((d.split("=") + ["1"])[:2] for d in DEFINES).get("BG_KC", 64))


def arch():
    """sm_90a (wgmma) unless the variant turns BG_WGMMA off."""
    return "" if dict((d.split("=") + ["1"])[:2] for d in DEFINES).get("BG_WGMMA", "1") == "0" else "a"


def bn():
    return 128 * wt()


def mt_of(m):
    return 16 if m <= 16 else 32 if m <= 32 else 64


def splits(n, k):
    """Cluster split-K count: as many blocks as SMs at most, up to 8 (the portable cluster size), >= 2 chunks a split."""
    blocks = -(-n // bn())
    s = max(1, min(8, SMS // blocks, (k // kc()) // 2))
    return s


def select():
    """LLMRT_SELECT defines: only the entry points the 1B shapes launch (first compile in seconds)."""
    ss = sorted({splits(n, k) for _s, k, n in SHAPES_1B})
    return ("LLMRT_SELECT",) + tuple(f"LLMRT_K_batch_gemm_s{s}_m{mt}=1" for s in ss for mt in (16, 32, 64))


def smem(mt):
    return max(ns() * (bn() + mt) * kc() * 2, mt * (bn() + 4) * 4) + 1024


def run(x, W, bias, y, m, n, k, f32, mode=None):
    mt, s = mt_of(m), splits(n, k)
    mode = (1 if f32 else 0) if mode is None else mode
    gx = -(-(n // 2) // (bn() // 2)) if mode == 2 else -(-n // bn())
    launch("batch_gemm", f"batch_gemm_s{s}_m{mt}", (gx, s, 1), 256, [P(x), P(W), P(bias), P(y), I(m), I(n), I(k), I(mode)],
           defines=DEFINES + select(), shared_mem=smem(mt), arch_suffix=arch())


def lm_head_f32(x, W, yf):
    """bf16 × bf16 → fp32 logits on cuBLASLt where this torch has mm(out_dtype=) (else bf16 out, said in the log)."""
    try:
        torch.mm(x, W.T, out_dtype=torch.float32, out=yf)
    except Exception:  # noqa: BLE001 (no out_dtype in this torch)
        global LM_BF16
        LM_BF16 = True
        torch.matmul(x, W.T)


LM_BF16 = False


def main():
    global DEFINES
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=None)
    ap.add_argument("--only", default="check,time")
    ap.add_argument("--ms", default="9,16,17,33,64")
    ap.add_argument("--time-ms", default="16,32,64")
    ap.add_argument("--variants", default="")
    ap.add_argument("--budget", type=float, default=1e9)
    a = ap.parse_args()
    t0 = time.time()
    only = set(a.only.split(","))
    gen = torch.Generator(device="cuda")
    gen.manual_seed(1234)
    name = torch.cuda.get_device_name()
    log(f"device {name}, {torch.cuda.get_device_properties(0).multi_processor_count} SMs")
    tc = time.time()
    ds.module("batch_gemm", DEFINES + select(), arch())
    log(f"compile {time.time() - tc:.1f} s")
    out = {"device": name, "check": [], "time": [], "variants": []}
    xall = torch.randn(64, 8192, device="cuda", generator=gen).bfloat16()
    if "check" in only:
        for sname, k, n in SHAPES_1B:
            W = (torch.randn(n, k, device="cuda", generator=gen) * 0.02).bfloat16()
            bias = (torch.randn(n, device="cuda", generator=gen) * 0.1).bfloat16() if sname == "qkv" else None
            f32 = sname == "lm_head"
            full = None
            for m in sorted([int(v) for v in a.ms.split(",")], reverse=True):
                x = xall[:m, :k].contiguous()
                ref = x.double() @ W.double().T
                if bias is not None:
                    ref += bias.double()
                y = torch.full((m, n), float("nan"), dtype=torch.float32 if f32 else torch.bfloat16, device="cuda")
                run(x, W, bias, y, m, n, k, f32)
                torch.cuda.synchronize()
                e = relerr(y, ref)
                tb = x @ W.T
                if bias is not None:
                    tb = tb + bias
                base = relerr(tb if not f32 else (x.float() @ W.float().T), ref)
                ok = e == e and e < max(2e-3, 2 * base)
                if full is None:
                    full = y
                    inv = "reference rows"
                else:
                    same = torch.equal(y.view(torch.int16 if not f32 else torch.int32), full[:m].view(torch.int16 if not f32 else torch.int32))
                    inv = "bitwise = the 64-row step's rows" if same else "DIFFERS from the 64-row step's rows"
                    ok = ok and same
                out["check"].append(dict(shape=sname, m=m, splits=splits(n, k), relerr=e, torch_relerr=base, ok=bool(ok), invariant=inv))
                record(f"{sname} m{m} S{splits(n, k)}", ok, f"relerr {e:.2e} (torch {base:.2e}); {inv}")
            if sname == "gate_up":  # mode 2: silu(g)·u epilogue == mode 0 then silu_mul (silu_mul.cu's math), bitwise
                half = n // 2
                for m in (9, 40, 64):
                    x = xall[:m, :k].contiguous()
                    y0 = torch.empty(m, n, dtype=torch.bfloat16, device="cuda")
                    run(x, W, None, y0, m, n, k, False)
                    y2 = torch.full((m, half), float("nan"), dtype=torch.bfloat16, device="cuda")
                    run(x, W, None, y2, m, n, k, False, mode=2)
                    torch.cuda.synchronize()
                    g, u = y0[:, :half].float(), y0[:, half:].float()
                    want = (g / (1 + torch.exp(-g)) * u).bfloat16()
                    nd = int((y2.view(torch.int16) != want.view(torch.int16)).sum())
                    e = relerr(y2, (g.double() / (1 + torch.exp(-g.double())) * u.double()))
                    record(f"gate_up silu m{m}", nd <= m * half // 1000 and e < 5e-3, f"{nd} of {m * half} differ from mode 0 + silu·mul in torch (expf ulps), relerr {e:.2e}")
            del W
        log(f"check done {time.time() - t0:.1f} s")
    if "time" in only:
        ceil = ds.copy_bandwidth()
        out["copy_bw"] = ceil
        log(f"copy ceiling {ceil / 1e12:.2f} TB/s")

        def time_set(label, keep):
            tot = {}
            for sname, k, n in SHAPES_1B:
                wbytes = n * k * 2
                copies = max(1, -(-(200 << 20) // wbytes))  # > L2 (50 MB) between two reads of one copy
                Ws = [torch.randn(n, k, device="cuda", generator=gen).bfloat16() for _ in range(copies)]
                f32 = sname == "lm_head"
                for m in [int(v) for v in a.time_ms.split(",")]:
                    x = xall[:m, :k].contiguous()
                    y = torch.empty(m, n, dtype=torch.float32 if f32 else torch.bfloat16, device="cuda")
                    yf = torch.empty(m, n, dtype=torch.float32, device="cuda")

                    def ours():
                        for W in Ws:
                            run(x, W, None, y, m, n, k, f32)

                    def cublas():
                        for W in Ws:
                            if f32:
                                lm_head_f32(x, W, yf)
                            else:
                                torch.matmul(x, W.T, out=y)
                    if m == 64 and sname != "lm_head":  # a variant is timed only where it computes the product
                        run(x, Ws[0], None, y, m, n, k, f32)
                        torch.cuda.synchronize()
                        e = relerr(y, x.double() @ Ws[0].double().T)
                        if not e < 1e-2:
                            record(f"{label} {sname} m{m}", False, f"relerr {e:.2e}")
                    t_o = graph_time(ours, iters=4) / copies
                    t_c = graph_time(cublas, iters=4) / copies if keep else float("nan")
                    pct = wbytes / (t_o * 1e-3) / ceil * 100
                    pc = wbytes / (t_c * 1e-3) / ceil * 100 if keep else float("nan")
                    tot.setdefault(m, [0.0, 0.0])
                    mult = 1 if sname == "lm_head" else 16
                    tot[m][0] += mult * t_o
                    tot[m][1] += mult * t_c
                    rec = dict(variant=label, shape=sname, m=m, n=n, k=k, splits=splits(n, k), ours_us=t_o * 1e3, cublas_us=t_c * 1e3, ours_pct_copy=pct, cublas_pct_copy=pc)
                    (out["time"] if keep else out["variants"]).append(rec)
                    log(f"  {label:12s} {sname:8s} m{m:<3d} S{splits(n, k)} ours {t_o * 1e3:7.2f} us ({pct:4.1f}% of copy)" +
                        (f"  cuBLASLt {t_c * 1e3:7.2f} us ({pc:4.1f}%)  x{t_c / t_o:.2f}" if keep else ""))
                del Ws
            if LM_BF16:
                log("  (torch has no mm(out_dtype=): the cuBLASLt lm_head wrote bf16, not fp32)")
            for m, (o, c) in tot.items():
                gb = 16 * (3072 + 2048 + 16384 + 2048 * 4) * 2048 * 2 + 128256 * 2048 * 2
                log(f"  {label}: 1B decode-step GEMMs m{m}: ours {o:.3f} ms ({gb / (o * 1e-3) / ceil * 100:.1f}% of copy)" +
                    (f", cuBLASLt {c:.3f} ms ({gb / (c * 1e-3) / ceil * 100:.1f}%)" if keep else ""))
        time_set("default", True)
        for vs in [v for v in a.variants.split(";") if v]:
            if time.time() - t0 > a.budget:
                log("budget: variants stopped")
                break
            DEFINES = tuple(d for d in vs.split(",") if d)
            tc = time.time()
            ds.module("batch_gemm", DEFINES + select(), arch())
            log(f"variant {vs}: compile {time.time() - tc:.1f} s")
            time_set(vs, False)
        DEFINES = ()
    fails = [r for r in ds.RESULTS if not r[1]]
    log(f"SUMMARY {len(ds.RESULTS) - len(fails)}/{len(ds.RESULTS)} checks ok; {time.time() - t0:.1f} s")
    for f in fails[:20]:
        log("  FAIL", f[0], f[2])
    if a.out:
        os.makedirs(a.out, exist_ok=True)
        with open(os.path.join(a.out, "batch_gemm.json"), "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
