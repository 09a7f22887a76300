#!/usr/bin/env python3
"""Issue 12 deliverable 4: checks and times quant_gemm_u{4,8}_m{16,32,64} (lib/backends/cuda/kernels/quant_gemm.cu),
the tensor-core quantized GEMM of batched decode steps, against a float64 reference of dequantize-then-matmul, and
times it beside the path it replaces (quant_dequant_* into a bf16 scratch + a bf16 GEMM; torch.matmul stands in for
cuBLASLt), a bf16 GEMM of the same shape and the device-copy ceiling, all in one process.

  python3 tools/cuda-kernel-check/quant_gemm.py [--out DIR] [--only check,time] [--models 1b,8b] [--defines QM_U=1,...]

Launches go through decode_step.py's NVRTC helpers on torch's stream (CUDA-graph timing). The split count
(grid.z) of each launch is quantGemmSplits below, the same rule as lib/backends/cuda/quant_launch.ts.
"""
import argparse
import json
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import decode_step as ds  # noqa: E402
from decode_step import I, P, graph_time, launch, log, record, relerr  # noqa: E402

SHAPES = {  # (name, k, n): fused qkv, o, fused gate/up, down
    "1b": [("qkv", 2048, 3072), ("o", 2048, 2048), ("gate_up", 2048, 16384), ("down", 8192, 2048)],
    "8b": [("qkv", 4096, 6144), ("o", 4096, 4096), ("gate_up", 4096, 28672), ("down", 14336, 4096)],
}
FORMATS = [  # (label, bits, group (0 = per channel), zero points)
    ("u4_g128_zp", 4, 128, True),
    ("u4_g64", 4, 64, False),
    ("u8_pc", 8, 0, False),
    ("u8_g32_zp", 8, 32, True),
]
SMS = 132
TARGET = SMS  # blocks a launch aims at (quant_gemm_plan.ts QUANT_GEMM_TARGET_BLOCKS); variant "QM_TARGET=N" (harness only)
DEFINES = ()
WTS = (1, 2)  # QM_WT, QM_WT64 (weight tiles per warp: m16 / m32, m64; quant_gemm.cu defaults)
NWN = 8
NWK = 1


def bn_of(mt):
    """Weight rows per block: QM_NWN·16·WT (quant_gemm_plan.ts quantGemmBN)."""
    return NWN * 16 * (WTS[1] if mt == 64 else WTS[0])


MAXMT = 64  # largest row tile the launches use (variant "QM_MT=32": 64-row steps as two m32 tiles; harness only)


def mt_of(m):
    return min(MAXMT, 16 if m <= 16 else 32 if m <= 32 else 64)


def quant_gemm_splits(m, n, k, bits, target=None):
    """grid.z: enough blocks for the SMs (target), each k-warp at least one superchunk, ws within k·n·2 bytes."""
    target = target or TARGET
    mt = mt_of(m)
    blocks = -(-m // mt) * -(-n // bn_of(mt))
    sk = k // (128 if bits == 4 else 64)
    s = max(1, -(-target // blocks))
    s = min(s, max(1, sk // NWK), max(1, k // (2 * m)))
    return s


def make(bits, group, zp, n, k, gen):
    g = group or k
    ng = k // g
    q = torch.randint(0, 16 if bits == 4 else 255, (n, k), dtype=torch.uint8, device="cuda", generator=gen)
    if bits == 4:
        packed = (q[:, 0::2] | (q[:, 1::2] << 4)).contiguous()
    else:
        packed = q.contiguous()
    scales = (torch.rand(n, ng, device="cuda", generator=gen) * 0.01 + 1e-3).half().float().contiguous()
    zeros = None
    if zp:
        lo, hi = (0, 16) if bits == 4 else (96, 160)
        zeros = torch.randint(lo, hi, (n, ng), dtype=torch.uint8, device="cuda", generator=gen).contiguous()
    return q, packed, scales, zeros


def dequant_ref(q, scales, zeros, bits, group, k):
    g = group or k
    z = zeros.double() if zeros is not None else torch.full_like(scales, float(1 << (bits - 1)), dtype=torch.float64)
    zz = z.repeat_interleave(g, dim=1)
    ss = scales.double().repeat_interleave(g, dim=1)
    return (q.double() - zz) * ss


def run_gemm(x, packed, scales, zeros, bias, y, ws, m, n, k, bits, group, splits):
    u = "u4" if bits == 4 else "u8"
    mt = mt_of(m)
    grid = (-(-m // mt), -(-n // bn_of(mt)), splits)
    launch("quant_gemm", f"quant_gemm_{u}_m{mt}", grid, 256,
           [P(x), P(packed), P(scales), P(zeros), P(bias), P(y), P(ws), I(m), I(n), I(k), I(group or k)], defines=DEFINES)
    if splits > 1:
        launch("quant_gemm", "quant_gemm_reduce", (-(-(m * n // 4) // 256),), 256, [P(ws), P(bias), P(y), I(m), I(n), I(splits)], defines=DEFINES)


QGV = ("LLMRT_SELECT", "LLMRT_K_quant_dequant_u4_bf16=1", "LLMRT_K_quant_dequant_u8_bf16=1")


def run_dequant(packed, scales, zeros, scratch, n, k, bits, group):
    u = "u4" if bits == 4 else "u8"
    launch("quant_gemv", f"quant_dequant_{u}_bf16", (-(-(n * k // 8) // 256),), 256, [P(packed), P(scales), P(zeros), P(scratch), I(n), I(k), I(group or k)],
           defines=QGV)


def main():
    global DEFINES, WTS, NWN, NWK, TARGET, MAXMT
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=None)
    ap.add_argument("--only", default="check,time")
    ap.add_argument("--models", default="1b,8b")
    ap.add_argument("--ms", default="9,16,33,64,128")
    ap.add_argument("--time-ms", default="16,32,64,128")
    ap.add_argument("--defines", default="")
    ap.add_argument("--sweep", action="store_true", help="time every split count too")
    ap.add_argument("--variants", default="", help="';'-separated define sets (',' inside) to time too (u4_g128_zp, u8_pc)")
    ap.add_argument("--budget", type=float, default=1e9, help="seconds; later steps are skipped past it")
    a = ap.parse_args()
    t0 = time.time()
    DEFINES = tuple(d for d in a.defines.split(",") if d)
    dd = dict((d.split("=") + ["1"])[:2] for d in DEFINES)
    WTS, NWN = (int(dd.get("QM_WT", 1)), int(dd.get("QM_WT64", 2))), int(dd.get("QM_NWN", 8))
    NWK = 8 // NWN
    only = set(a.only.split(","))
    gen = torch.Generator(device="cuda")
    gen.manual_seed(1234)
    name = torch.cuda.get_device_name()
    log(f"device {name}; defines {DEFINES or '(defaults)'}; BN {bn_of(16)} / m64 {bn_of(64)}")
    tc = time.time()
    ds.module("quant_gemm", DEFINES)
    ds.module("quant_gemv", QGV)
    log(f"compile {time.time() - tc:.1f} s")
    out = {"device": name, "defines": list(DEFINES), "check": [], "time": []}
    ms = [int(v) for v in a.ms.split(",")]
    models = a.models.split(",")
    maxmk = max(k for mdl in models for _, k, _n in SHAPES[mdl])
    maxn = max(n for mdl in models for _, _k, n in SHAPES[mdl])
    maxnk = max(n * k for mdl in models for _, k, n in SHAPES[mdl])
    ws = torch.empty(maxnk // 2, dtype=torch.float32, device="cuda")  # k·n·2 bytes, as the session's scratch
    scratch = torch.empty(maxnk, dtype=torch.bfloat16, device="cuda")
    xall = (torch.randn(128, maxmk, device="cuda", generator=gen)).bfloat16()
    if "check" in only:
        for mdl in models:
            for sname, k, n in SHAPES[mdl]:
                for label, bits, group, zp in FORMATS:
                    if time.time() - t0 > a.budget * 0.5:
                        break
                    q, packed, scales, zeros = make(bits, group, zp, n, k, gen)
                    wref = dequant_ref(q, scales, zeros, bits, group, k)
                    bias = (torch.randn(n, device="cuda", generator=gen) * 0.1).bfloat16() if sname == "qkv" else None
                    wbf = wref.bfloat16()
                    for m in ms:
                        if mdl == "8b" and m not in (9, 64, 128) and sname != "o":
                            continue
                        x = xall[:m, :k].contiguous()
                        ref = x.double() @ wref.T
                        if bias is not None:
                            ref += bias.double()
                        y = torch.full((m, n), float("nan"), dtype=torch.bfloat16, device="cuda")
                        sp = quant_gemm_splits(m, n, k, bits)
                        run_gemm(x, packed, scales, zeros, bias, y, ws, m, n, k, bits, group, sp)
                        torch.cuda.synchronize()
                        e = relerr(y, ref)
                        base = relerr((x @ wbf.T + (bias if bias is not None else 0)).bfloat16(), ref)
                        ok = e == e and e < max(3e-3, 2 * base)
                        out["check"].append(dict(model=mdl, shape=sname, fmt=label, m=m, splits=sp, relerr=e, dequant_path_relerr=base, ok=ok))
                        record(f"{mdl} {sname} {label} m{m} S{sp}", ok, f"relerr {e:.2e} (dequant+bf16 GEMM path {base:.2e})")
                    del q, packed, scales, zeros, wref, wbf
        log(f"check done {time.time() - t0:.1f} s")
    if "time" in only:
        ceil = ds.copy_bandwidth()
        out["copy_bw"] = ceil
        log(f"copy ceiling {ceil / 1e12:.2f} TB/s")
        tms = [int(v) for v in a.time_ms.split(",")]
        for mdl in models:
            for sname, k, n in SHAPES[mdl]:
                for label, bits, group, zp in FORMATS[:3]:
                    if time.time() - t0 > a.budget:
                        log("budget: timing stopped")
                        break
                    q, packed, scales, zeros = make(bits, group, zp, n, k, gen)
                    del q
                    wbf = torch.randn(n, k, device="cuda", generator=gen).bfloat16()
                    wbytes = packed.numel() + scales.numel() * 4 + (zeros.numel() if zeros is not None else 0)
                    for m in tms:
                        x = xall[:m, :k].contiguous()
                        y = torch.empty(m, n, dtype=torch.bfloat16, device="cuda")
                        sp = quant_gemm_splits(m, n, k, bits)
                        t_q = graph_time(lambda: run_gemm(x, packed, scales, zeros, None, y, ws, m, n, k, bits, group, sp))
                        sweep = {}
                        if a.sweep:
                            for s2 in (1, 2, 4, 8, 16):
                                if s2 <= (k // (128 if bits == 4 else 64)) and s2 * m * n * 4 <= ws.numel() * 4:
                                    sweep[s2] = graph_time(lambda: run_gemm(x, packed, scales, zeros, None, y, ws, m, n, k, bits, group, s2))
                        sc = scratch[: n * k].view(n, k)
                        t_d = graph_time(lambda: (run_dequant(packed, scales, zeros, sc, n, k, bits, group), torch.matmul(x, sc.T, out=y)))
                        t_b = graph_time(lambda: torch.matmul(x, wbf.T, out=y))
                        pct = wbytes / (t_q * 1e-3) / ceil * 100
                        r = dict(model=mdl, shape=sname, fmt=label, m=m, n=n, k=k, splits=sp, ours_us=t_q * 1e3, dequant_path_us=t_d * 1e3,
                                 bf16_gemm_us=t_b * 1e3, pct_copy_ceiling=pct, sweep_us={s: v * 1e3 for s, v in sweep.items()})
                        out["time"].append(r)
                        sw = " ".join(f"S{s}:{v * 1e3:.1f}" for s, v in sweep.items())
                        log(f"  {mdl} {sname:7s} {label:10s} m{m:<3d} S{sp:<2d} ours {t_q * 1e3:7.1f} us ({pct:4.1f}% ceil)  dequant+gemm {t_d * 1e3:7.1f}  bf16 gemm {t_b * 1e3:7.1f}  "
                            f"x{t_d / t_q:.2f} vs dequant, x{t_b / t_q:.2f} vs bf16  {sw}")
                    del packed, scales, zeros, wbf
    if a.variants and ("variants" in only or "time" in only):
        base_defs = DEFINES
        out["variants"] = []
        for vs in a.variants.split(";"):
            if time.time() - t0 > a.budget:
                log("budget: variants stopped")
                break
            allv = tuple(d for d in vs.split(",") if d)
            vd = dict((d.split("=") + ["1"])[:2] for d in allv)
            DEFINES = tuple(d for d in allv if d.split("=")[0] not in ("QM_TARGET", "QM_MT"))  # harness-only knobs: not compiled
            WTS, NWN = (int(vd.get("QM_WT", 1)), int(vd.get("QM_WT64", 2))), int(vd.get("QM_NWN", 8))
            NWK = 8 // NWN
            TARGET, MAXMT = int(vd.get("QM_TARGET", SMS)), int(vd.get("QM_MT", 64))
            tc = time.time()
            ds.module("quant_gemm", DEFINES)
            log(f"variant {DEFINES or '(defaults)'} (BN {bn_of(16)} / m64 {bn_of(64)}): compile {time.time() - tc:.1f} s")
            for mdl in models:
                for label, bits, group, zp in (FORMATS[0], FORMATS[2]):
                    tot = {}
                    for sname, k, n in SHAPES[mdl]:
                        q, packed, scales, zeros = make(bits, group, zp, n, k, gen)
                        del q
                        for m in [int(v) for v in a.time_ms.split(",")]:
                            x = xall[:m, :k].contiguous()
                            y = torch.empty(m, n, dtype=torch.bfloat16, device="cuda")
                            sp = quant_gemm_splits(m, n, k, bits)
                            t = graph_time(lambda: run_gemm(x, packed, scales, zeros, None, y, ws, m, n, k, bits, group, sp)) * 1e3
                            tot[m] = tot.get(m, 0) + t
                            out["variants"].append(dict(defines=list(allv), model=mdl, shape=sname, fmt=label, m=m, splits=sp, us=t))
                        del packed, scales, zeros
                    log(f"  variant {','.join(allv) or 'defaults'} {mdl} {label}: layer " + "  ".join(f"m{m} {v:.1f} us" for m, v in tot.items()))
        DEFINES, TARGET, MAXMT = base_defs, SMS, 64
    fails = [r for r in ds.RESULTS if not r[1]]
    log(f"SUMMARY {len(ds.RESULTS) - len(fails)}/{len(ds.RESULTS)} checks ok; {time.time() - t0:.1f} s")
    for f in fails[:20]:
        log("  FAIL", f[0], f[2])
    if out["time"]:
        for mdl in models:
            for label, _b, _g, _z in FORMATS[:3]:
                for m in sorted({r["m"] for r in out["time"]}):
                    rs = [r for r in out["time"] if r["model"] == mdl and r["fmt"] == label and r["m"] == m]
                    if rs:
                        tq = sum(r["ours_us"] for r in rs)
                        td = sum(r["dequant_path_us"] for r in rs)
                        tb = sum(r["bf16_gemm_us"] for r in rs)
                        log(f"  layer {mdl} {label} m{m}: ours {tq:.1f} us, dequant path {td:.1f} (x{td / tq:.2f}), bf16 {tb:.1f} (x{tb / tq:.2f})")
    if a.out:
        os.makedirs(a.out, exist_ok=True)
        with open(os.path.join(a.out, "quant_gemm" + ("_" + "_".join(DEFINES) if DEFINES else "") + ".json"), "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
