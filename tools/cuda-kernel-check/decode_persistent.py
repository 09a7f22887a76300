#!/usr/bin/env python3
"""Issue 16 item 1 (session 9): the persistent decode-layer kernel (kernels/decode_persistent.cu, one launch for
a chain of llama-3.2-1b-shaped bf16 layers at batch 1) against the engine's per-layer kernels (gemv_fused norm+qkv,
decode_attention_g4, gemv_fused o_proj+residual, gemv_fused norm+gate_up+silu, gemv_fused_ks down+residual (ks 2),
as linear_launch.ts / attention_launch.ts launch them, without PDL here) on the same random weights and KV cache.

  python3 tools/cuda-kernel-check/decode_persistent.py [--out DIR] [--ctx 128,1000] [--defines DP_NSLOT=3,...]

Checks first (residual stream after 1 and 16 layers, the cache rows written, the qkv buffer bitwise after layer 1),
then CUDA-graph timings of 1 layer (weights rotated over the 16 layers) and of the 16-layer chain, with the copy
bandwidth measured in the same process. Uses decode_step.py's NVRTC / launch helpers (CuPy on torch's stream).
"""
import argparse
import json
import math
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import decode_step as ds  # noqa: E402
from decode_step import I, F, L, P, launch, log, record, relerr, graph_time, copy_bandwidth  # noqa: E402

H, IW, NH, NKV, HD = 2048, 8192, 32, 8, 64
NQ = (NH + 2 * NKV) * HD
EPS = 1e-5
# compile only the entry points used (NVRTC time counts against the job)
SEL_GEMV = ("LLMRT_SELECT", "LLMRT_K_gemv_fused_bf16_m1=1", "LLMRT_K_gemv_fused_norm_bf16_m1=1", "LLMRT_K_gemv_fused_ks_bf16_m1=1")
SEL_ATT = ("LLMRT_SELECT", "LLMRT_K_decode_attention_g4_bf16_hd64=1")


def gemv(x, W, y, n, k, mode, normW=None, ks=1):
    grid = math.ceil(n / 2 / (4 // ks)) if mode == 2 else math.ceil(n / (8 // ks))
    name = f"gemv_fused{'_norm' if normW is not None else ''}{'_ks' if ks > 1 else ''}_bf16_m1"
    launch("gemv", name, (grid,), 256, (P(x), P(W), P(None), P(y), P(normW), F(EPS), I(1), I(n), I(k), I(mode | (ks << 4 if ks > 1 else 0)), P(None), L(0)),
           SEL_GEMV)


def dp_smem(nslot, defines=()):
    """DP_SMEM of the kernel compiled with `defines` (DP_NSLOT x 32 KB + max(4 DP_MAXCTX, 2 H))."""
    maxctx = next((int(d.split("=")[1]) for d in defines if d.startswith("DP_MAXCTX=")), 4096)
    return nslot * 32768 + max(4 * maxctx, 2 * H)


class Rig:
    def __init__(self, ctx_max, sms):
        gen = torch.Generator(device="cuda").manual_seed(3)
        cfg = dict(hidden=H, inter=IW, heads=NH, kv=NKV, hd=HD, vocab=1024, layers=16)
        self.m = ds.Model(cfg, ctx_max, gen)
        self.sms = sms
        m = self.m
        self.hist0 = m.cache.data.clone()
        self.res0 = ds.bf(torch.randn(1, H, device="cuda", generator=gen))
        self.ctrs = torch.zeros(16 * 5 + 1 + 16 * NKV, dtype=torch.int32, device="cuda")  # (+ DP_ATT_KV's per-kv-head counters)
        desc = []
        for li, l in enumerate(m.layers):
            desc.append([l["ln1"].data_ptr(), l["qkv"].data_ptr(), l["o"].data_ptr(), l["ln2"].data_ptr(), l["gu"].data_ptr(),
                         l["down"].data_ptr()])
        self.desc = torch.tensor(desc, dtype=torch.int64, device="cuda")
        self.gub = torch.zeros(1, 2 * IW, dtype=torch.bfloat16, device="cuda")
        self.part = torch.zeros(NH * 16 * (HD + 2), dtype=torch.float32, device="cuda")  # attention split partials (DP_MAXS 4; DP_MAXS2 16)

    def set_pos(self, pos):
        self.m.positions.fill_(pos)

    # ---- the engine's per-layer launches
    def layer_kernels(self, li, down_ks=2):
        m = self.m
        l = m.layers[li]
        ns, ss = m.split_geometry(128)
        gemv(m.res, l["qkv"], m.qkvb, NQ, H, 0, normW=l["ln1"])
        launch("decode_attention", "decode_attention_g4_bf16_hd64", (NKV, 1, ns), 128,
               (P(m.qkvb), P(m.attn), P(m.cache.data[li]), P(m.positions), P(m.seqStarts), P(m.cache.table), P(m.invf), F(1.0), P(m.pO), P(m.pML),
                P(m.ctr), I(1), I(1), I(NH), I(NKV), I(m.tpb), I(m.cache.maxBlocks), F(1 / math.sqrt(HD)), I(0), I(ss), P(None), L(0)), SEL_ATT)
        gemv(m.attn, l["o"], m.res, H, NH * HD, 1)
        gemv(m.res, l["gu"], m.act, 2 * IW, H, 2, normW=l["ln2"])
        gemv(m.act, l["down"], m.res, H, IW, 1, ks=down_ks)

    def chain_kernels(self, n=16, first=0, down_ks=2):
        for li in range(first, first + n):
            self.layer_kernels(li % 16, down_ks)

    # ---- the persistent kernel
    def persistent(self, n=16, first=0, nslot=5, defines=(), grid=None):
        m = self.m
        launch("decode_persistent", "decode_persistent_bf16", (grid or self.sms,), 288,
               (np_u64(self.desc.data_ptr() + first * 6 * 8), I(n), np_u64(m.cache.data[first].data_ptr()), L(m.cache.data[0].numel() * 2), P(m.res), P(m.qkvb), P(m.attn), P(m.act), P(m.positions),
                P(m.cache.table), P(m.invf), F(1.0), F(EPS), F(1 / math.sqrt(HD)), I(m.tpb), P(self.ctrs), P(self.part)),
               defines=tuple(defines) + (f"DP_NSLOT={nslot}",), shared_mem=dp_smem(nslot, defines))

    def reset(self):
        self.m.cache.data.copy_(self.hist0)
        self.m.res.copy_(self.res0)


def np_u64(v):
    import numpy as np
    return np.uint64(v)


def check(rig, pos, nslot, defines, layers=(1, 16)):
    m = rig.m
    rig.set_pos(pos)
    for n in layers:
        rig.reset()
        rig.chain_kernels(n, down_ks=4)
        torch.cuda.synchronize()
        ref, refq = m.res.clone(), m.qkvb.clone()
        blk, off = int(m.cache.table[0, pos // m.tpb]), pos % m.tpb
        refkv = m.cache.data[:n, blk, :, off].clone()
        rig.reset()
        rig.persistent(n, nslot=nslot, defines=defines)
        torch.cuda.synchronize()
        out, outq = m.res.clone(), m.qkvb.clone()
        e = relerr(out.float()[0], ref.float()[0])
        chg = relerr(ref.float()[0], rig.res0.float()[0])  # how far the layers moved the residual (the check is not vacuous)
        ndiff = int((out != ref).sum())
        ekv = relerr(m.cache.data[:n, blk, :, off].float(), refkv.float())
        okc = int(rig.ctrs.abs().sum()) == 0  # the kernel zeroes its counters on the way out
        extra = ""
        if n == 1:
            extra = f", qkv buffer bitwise {bool(torch.equal(outq, refq))}"
        ok = e < 2e-2 and ekv < 1e-2 and okc and not torch.isnan(out).any() and chg > 1e-2
        record(f"persistent vs kernels, {n} layer(s), pos {pos}, NSLOT {nslot} {' '.join(defines)}", ok,
               f"residual rel L2 {e:.2e} ({ndiff}/{out.numel()} elements differ; the layers moved it by rel {chg:.2e}), cache rel L2 {ekv:.2e}, counters left zero {okc}{extra}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.environ.get("OUT", ""))
    ap.add_argument("--ctx", default="128,1000")
    ap.add_argument("--nslot", default="5,3")
    ap.add_argument("--defines", default="")
    ap.add_argument("--budget", type=float, default=60)
    ap.add_argument("--no-diag", action="store_true", help="leave out the no-wait / no-math diagnostics")
    ap.add_argument("--check-variant", default="", help="defines of a variant also checked (1 layer) at every context, e.g. DP_ATT_KV=1")
    ap.add_argument("--variants", default="", help="extra timed variants at the first context: 'label:DEF=1,DEF2=2;label2:...'")
    a = ap.parse_args()
    t0 = time.time()
    props = torch.cuda.get_device_properties(0)
    sms = props.multi_processor_count
    ds.SMS = sms
    log(f"GPU {props.name}, {sms} SMs, torch {torch.__version__}")
    ctxs = [int(c) for c in a.ctx.split(",")]
    nslots = [int(c) for c in a.nslot.split(",")]
    defines = tuple(d for d in a.defines.split(",") if d)
    rig = Rig(max(ctxs) + 8, sms)
    log(f"setup {time.time() - t0:.1f} s")
    out = dict(gpu=props.name, sms=sms, checks={}, times={})
    try:
        for pos in ctxs:
            check(rig, pos, nslots[0], defines)
        # the chunked online softmax (keys past DP_MAXCTX in one split): 1024-key chunks at the longest context
        check(rig, ctxs[-1], nslots[0], defines + ("DP_MAXCTX=1024",), layers=(1,))
    except Exception as e:  # noqa: BLE001
        import traceback
        traceback.print_exc()
        record("persistent check", False, f"{type(e).__name__}: {e}")
    log(f"checks done {time.time() - t0:.1f} s")
    bw = copy_bandwidth()
    layer_bytes = (NQ * H + H * NH * HD + 2 * IW * H + H * IW) * 2
    log(f"copy bandwidth {bw / 1e12:.3f} TB/s; one layer's weights {layer_bytes / 1e6:.1f} MB -> {layer_bytes / bw * 1e6:.1f} us at copy speed")
    out["copy_Bps"] = bw
    rot = [0]

    def nxt():
        rot[0] = (rot[0] + 1) % 16
        return rot[0]
    reset_ms = graph_time(lambda: rig.m.res.copy_(rig.res0), iters=16)
    kern = ("kernels (engine's 5 launches/layer, no PDL)", lambda n: (rig.m.res.copy_(rig.res0), rig.chain_kernels(n, first=nxt())))

    def pers(ns, extra=()):
        return lambda n: (rig.m.res.copy_(rig.res0), rig.persistent(n, first=nxt() if n == 1 else 0, nslot=ns, defines=defines + tuple(extra)))
    # most important first (the budget may cut the tail)
    plan = []
    for pos in ctxs:
        plan += [(pos, kern), (pos, (f"persistent NSLOT {nslots[0]}", pers(nslots[0])))]
    if not a.no_diag:
        plan += [(ctxs[0], (f"persistent NSLOT {nslots[0]} no waits (diag, wrong results)", pers(nslots[0], ("DP_NOWAIT",)))),
                 (ctxs[0], (f"persistent NSLOT {nslots[0]} no waits, no math (diag)", pers(nslots[0], ("DP_NOWAIT", "DP_NOMATH"))))]
    for v in [v for v in a.variants.split(";") if v]:
        label, _, defs = v.partition(":")
        for pos in ctxs:
            plan.append((pos, (f"persistent NSLOT {nslots[0]} {label}", pers(nslots[0], tuple(d for d in defs.split(",") if d)), (16,))))
    for ns in nslots[1:]:
        plan += [(pos, (f"persistent NSLOT {ns}", pers(ns))) for pos in ctxs]
    for (pos, entry) in plan:
        nm, fn = entry[0], entry[1]
        rig.set_pos(pos)
        rig.reset()
        for n in (entry[2] if len(entry) > 2 else (1, 16)):
            if time.time() - t0 > a.budget:
                log("  (budget: stopping timings)")
                break
            try:
                rig.ctrs.zero_()  # (the no-wait diagnostic leaves them dirty)
                ms = graph_time(lambda: fn(n), iters=16 if n == 1 else 4, reps=5) - reset_ms
                b = layer_bytes * n
                out["times"][f"{nm} | {n} | {pos}"] = ms
                log(f"  pos {pos:5d} {nm:52s} {n:2d} layer(s): {ms * 1e3:8.1f} us = {ms * 1e3 / n:6.2f} us/layer = {100 * b / bw / (ms * 1e-3):5.1f}% of copy")
            except Exception as e:  # noqa: BLE001
                log(f"  {nm} {n}: failed {type(e).__name__}: {e}")
    if a.check_variant:  # last: a variant that traps takes the CUDA context with it
        try:
            for pos in ctxs:
                check(rig, pos, nslots[0], defines + tuple(a.check_variant.split(",")), layers=(1, 16))
        except Exception as e:  # noqa: BLE001
            record(f"variant {a.check_variant} check", False, f"{type(e).__name__}: {e}")
    out["reset_ms"] = reset_ms
    out["checks"] = [list(r) for r in ds.RESULTS]
    bad = [r for r in ds.RESULTS if not r[1]]
    log(f"== SUMMARY: {len(ds.RESULTS)} checks, {len(bad)} failed ({time.time() - t0:.0f} s)")
    if a.out:
        json.dump(out, open(os.path.join(a.out, "decode_persistent.json"), "w"), indent=1)
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
