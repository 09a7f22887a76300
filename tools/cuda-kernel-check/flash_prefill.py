#!/usr/bin/env python3
"""Issue 16 item 2: checks and times flash_prefill_bf16_hd{64,128} (kernels/flash_prefill.cu) beside the
previous tensor-core prefill kernel (paged_attention_prefill_mma_bf16_hd*) and torch SDPA, in one process
on one GPU.

  python3 tools/cuda-kernel-check/flash_prefill.py [--out DIR] [--only checks,time] [--lens 2048,8192]
                                                   [--variants] [--long 32768]

checks: every kernel (and with --variants every tiling in the LLMRT_FLASH_VARIANTS build) against a float64
  reference on fresh random inputs: several head layouts (G = 1, 4, 7, 16), head dims 64 and 128, packed
  sequences with a cached prefix (chunked prefill: the chunk's queries start at position p0 > 0), single
  decode-like tokens in a prefill batch, windows, tokensPerBlock 16 / 32, shuffled block tables whose
  unused blocks hold NaN, outputs poisoned with NaN; rel L2 < 1e-2 and no NaN.
time: causal single-sequence prefill, 32 q / 8 kv heads, hd 64 and 128, at each --lens (and --long for
  hd 128 only): median of CUDA-graph replays; TFLOP/s of the causal half (4 T^2/2 hd nH); torch SDPA
  (enable_gqa, and the flash backend on K/V repeated to nH heads) on contiguous K/V in the same run.
Prints a summary; writes flash_prefill.json into --out.
"""
import argparse
import json
import math
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from decode_step import F, I, P, bf, graph_time, launch, log, module, record, relerr, RESULTS  # noqa: E402

VARIANTS = {64: ["w8m1n64", "w4m2n64", "w8m2n64", "w4m2n64s2", "w4m1n64s2", "w8m2n64s2", "w4m2n32s2"],
            128: ["w4m1n64", "w8m1n64", "w8m1n32s2", "w4m1n32s2", "w4m2n32s2"]}
DEFAULT = {64: (256, 256), 128: (128, 128)}  # (BM, threads) of flash_prefill_bf16_hd*
# flash_prefill_wg.cu (wgmma, sm_90a): the entry points' (warpgroups, keys per tile, stages), and the variants.
WG_DEFAULT = {64: (2, 64, 3), 128: (3, 64, 3)}
# flash_prefill_ws (warp-specialized: NC consumer warpgroups + a producer one): the entry points' (consumers, keys,
# stages) and the variants; each compiles alone (LLMRT_SELECT) to keep NVRTC time down.
WS_DEFAULT = {64: (2, 128, 4), 128: (2, 128, 3)}
WS_VARIANTS = {64: ["wsv_c3n128s3", "wsv_c2n64s4", "wsv_c2n128s4p"], 128: ["wsv_c2n128s2", "wsv_c2n64s5", "wsv_c3n64s4", "wsv_c2n128s3p", "wsv_c2n128s2p"]}
WG_VARIANTS = {64: ["wgv_g2n64s3", "wgv_g3n128s2", "wgv_g2n128s3", "wgv_g2n128s3o", "wgv_g2n64s4o", "wgv_g3n64s3o"],
               128: ["wgv_g2n64s3", "wgv_g3n64s2", "wgv_g2n128s3", "wgv_g2n64s3o", "wgv_g2n64s4o", "wgv_g3n64s3o"]}


def geom(name, hd):
    """(kernel, file, defines, BM, threads, dynamic shared bytes, arch suffix) of a kernel label."""
    if name == "mma":
        return f"paged_attention_prefill_mma_bf16_hd{hd}", "paged_attention", (), 64, 128, 0, ""
    if name == "flash":
        bm, nt = DEFAULT[hd]
        return f"flash_prefill_bf16_hd{hd}", "flash_prefill", (), bm, nt, 0, ""
    if name.startswith("ws"):
        if name == "ws":
            c, n, st = WS_DEFAULT[hd]
            kern = f"flash_prefill_ws_bf16_hd{hd}"
        else:
            c, n, st = (int(x) for x in name[5:].rstrip("p").replace("n", " ").replace("s", " ").split())
            kern = f"flash_prefill_wsv_hd{hd}_{name[4:]}"
        smem = (64 * c + 2 * st * n) * hd * 2 + 1024 + 256  # FWS_SMEM
        return kern, "flash_prefill_wg", ("LLMRT_SELECT", "LLMRT_FLASH_VARIANTS", f"LLMRT_K_{kern}=1"), 64 * c, 128 * (c + 1), smem, "a"
    if name.startswith("wg"):
        if name == "wg":
            g, n, st = WG_DEFAULT[hd]
            kern, defs = f"flash_prefill_wg_bf16_hd{hd}", ("LLMRT_SELECT", f"LLMRT_K_flash_prefill_wg_bf16_hd{hd}=1")
        else:
            g, n, st = (int(x) for x in name[5:].rstrip("xo").replace("n", " ").replace("s", " ").split())
            kern, defs = f"flash_prefill_wgv_hd{hd}_{name[4:]}", ("LLMRT_FLASH_VARIANTS",)
        smem = (64 * g + 2 * st * n) * hd * 2 + 1024  # FW_SMEM
        return kern, "flash_prefill_wg", defs, 64 * g, 128 * g, smem, "a"
    w, mm, n = (int(x) for x in name[1:].split("s")[0].replace("m", " ").replace("n", " ").split())
    return f"flash_prefill_v_hd{hd}_{name}", "flash_prefill", ("LLMRT_FLASH_VARIANTS",), 16 * w * mm, 32 * w, 0, ""


class PagedCache:
    """[numBlocks, 2, tpb, nKV, hd] bf16, shuffled blocks; the tail of each sequence's last block and every
    unused block hold NaN."""

    def __init__(self, lens, nKV, hd, tpb, gen):
        self.tpb, self.nKV, self.hd = tpb, nKV, hd
        need = [math.ceil(n / tpb) + 1 for n in lens]  # one spare block each: table slots past the end
        self.maxBlocks = max(need)
        nb = sum(need) + 1
        perm = torch.randperm(nb, generator=torch.Generator().manual_seed(11))
        table = torch.empty(len(lens), self.maxBlocks, dtype=torch.int32)
        k = 0
        for s, n in enumerate(need):
            table[s, :n] = perm[k:k + n]
            table[s, n:] = perm[k + n - 1]
            k += n
        self.table = table.cuda()
        self.data = bf(torch.randn(nb, 2, tpb, nKV, hd, device="cuda", generator=gen))
        used = torch.zeros(nb * tpb, dtype=torch.bool, device="cuda")
        for s, n in enumerate(lens):
            idx = torch.arange(n, device="cuda")
            used[self.table[s, idx // tpb].long() * tpb + idx % tpb] = True
        unused = ~used.view(nb, tpb)
        flat = self.data.view(nb, 2, tpb, nKV * hd)
        for w in range(2):
            flat[:, w][unused] = float("nan")

    def kv(self, s, upto):
        idx = torch.arange(upto, device="cuda")
        blk = self.table[s, idx // self.tpb].long()
        off = idx % self.tpb
        return self.data[blk, 0, off], self.data[blk, 1, off]  # bf16 [upto, nKV, hd]


def run(name, hd, q, out, cache, positions, seqStarts, T, S, nH, nKV, scale, window):
    kern, f, defs, bm, nt, smem, arch = geom(name, hd)
    grid = (math.ceil(T / bm) + S, nH) if name == "mma" else (nH, math.ceil(T / bm) + S)
    launch(f, kern, grid, nt, (P(q), P(out), P(cache.data), P(positions), P(seqStarts), P(cache.table), I(T), I(S), I(nH), I(nKV),
                               I(cache.tpb), I(cache.maxBlocks), F(scale), I(window)), defs, shared_mem=smem, arch_suffix=arch)


def reference(q, cache, seqs, nH, nKV, hd, scale, window):
    G = nH // nKV
    outs, t = [], 0
    for s, (p0, n) in enumerate(seqs):
        K, V = cache.kv(s, p0 + n)
        qq = q[t:t + n].double().view(n, nH, hd).transpose(0, 1)
        Kh = K.double().transpose(0, 1).repeat_interleave(G, 0)
        Vh = V.double().transpose(0, 1).repeat_interleave(G, 0)
        sc = qq @ Kh.transpose(1, 2) * scale
        pos = torch.arange(p0, p0 + n, device="cuda")[:, None]
        key = torch.arange(p0 + n, device="cuda")[None, :]
        ok = key <= pos
        if window > 0:
            ok &= key >= pos + 1 - window
        sc = sc.masked_fill(~ok[None], float("-inf"))
        outs.append((torch.softmax(sc, -1) @ Vh).transpose(0, 1))
        t += n
    return torch.cat(outs, 0)


def checks(kinds, quick=False, mma=True):
    log("== flash prefill: vs float64 (and the mma kernel)")
    gen = torch.Generator(device="cuda").manual_seed(5)
    cases = [((32, 8, 64), [(0, 300)], 0, 32), ((32, 8, 64), [(0, 100), (40, 1), (7, 257)], 0, 16),
             ((32, 8, 64), [(0, 1), (0, 129), (1000, 200)], 0, 32), ((32, 8, 64), [(300, 64), (0, 65), (5, 3)], 0, 16),
             ((16, 2, 128), [(0, 130), (64, 65)], 0, 32), ((14, 2, 64), [(0, 90), (3, 33)], 0, 16),
             ((32, 8, 64), [(0, 200), (50, 70)], 100, 32), ((32, 8, 128), [(0, 333), (700, 129)], 77, 16),
             ((16, 1, 128), [(0, 64)], 0, 16), ((32, 8, 128), [(0, 1024)], 0, 32), ((8, 8, 64), [(2000, 257)], 0, 32),
             ((24, 8, 128), [(129, 1), (0, 2), (17, 127)], 0, 16)]
    if quick:  # packed with a cached prefix (hd 64, 128), hd 64 window, hd 128 window, hd 128 GQA 1024 keys, one-token rows
        cases = [cases[i] for i in (1, 4, 6, 7, 9, 11)]
    for (nH, nKV, hd), seqs, window, tpb in cases:
        if not kinds[hd]:
            continue
        T, S = sum(n for _, n in seqs), len(seqs)
        cache = PagedCache([p0 + n for p0, n in seqs], nKV, hd, tpb, gen)
        positions = torch.tensor([p0 + i for p0, n in seqs for i in range(n)], dtype=torch.int32, device="cuda")
        starts = [0]
        for _, n in seqs:
            starts.append(starts[-1] + n)
        seqStarts = torch.tensor(starts, dtype=torch.int32, device="cuda")
        q = bf(torch.randn(T, nH * hd, device="cuda", generator=gen))
        scale = 1 / math.sqrt(hd)
        ref = reference(q, cache, seqs, nH, nKV, hd, scale, window)
        outs = {}
        for kind in (["mma"] if mma else []) + kinds[hd]:
            o = torch.full((T, nH * hd), float("nan"), device="cuda", dtype=torch.bfloat16)
            try:
                run(kind, hd, q, o, cache, positions, seqStarts, T, S, nH, nKV, scale, window)
                torch.cuda.synchronize()
            except Exception as ex:  # noqa: BLE001
                record(f"flash_{kind}_hd{hd}", False, f"nH={nH} nKV={nKV} seqs={seqs}: launch failed: {str(ex)[:300]}")
                if "illegal" in str(ex) or "misaligned" in str(ex) or "launch failure" in str(ex):
                    raise
            outs[kind] = o
        em = relerr(outs["mma"].view(T, nH, hd), ref) if mma else float("nan")
        for kind in kinds[hd]:
            if kind not in outs:
                continue
            e = relerr(outs[kind].view(T, nH, hd), ref)
            d = relerr(outs[kind].view(T, nH, hd), outs["mma"].view(T, nH, hd).double()) if mma else float("nan")
            record(f"flash_{kind}_hd{hd}", e < 1e-2, f"nH={nH} nKV={nKV} seqs={seqs} win={window} tpb={tpb}: rel={e:.2e} (mma {em:.2e}; vs mma {d:.2e})")


def sdpa_times(q, K, V, nH, nKV, hd, T, iters):
    from torch.nn.attention import SDPBackend, sdpa_kernel
    qq = q.view(1, T, nH, hd).transpose(1, 2)
    Kc = K.transpose(0, 1)[None].contiguous()
    Vc = V.transpose(0, 1)[None].contiguous()
    res = {}
    try:
        res["sdpa_gqa"] = graph_time(lambda: torch.nn.functional.scaled_dot_product_attention(qq, Kc, Vc, is_causal=True, enable_gqa=True), iters=iters)
    except Exception as ex:  # noqa: BLE001
        log(f"  sdpa gqa failed: {ex}")
    try:
        G = nH // nKV
        Kr, Vr = Kc.repeat_interleave(G, 1), Vc.repeat_interleave(G, 1)
        qc = qq.contiguous()
        with sdpa_kernel([SDPBackend.FLASH_ATTENTION]):
            res["sdpa_flash"] = graph_time(lambda: torch.nn.functional.scaled_dot_product_attention(qc, Kr, Vr, is_causal=True), iters=iters)
    except Exception as ex:  # noqa: BLE001
        log(f"  sdpa flash failed: {ex}")
    return res


def timing(kinds, lens, long_len, skip_slow=False):
    log("== causal prefill timing, one sequence, 32 q / 8 kv heads")
    gen = torch.Generator(device="cuda").manual_seed(6)
    nH, nKV = 32, 8
    out = {}
    shapes = [(hd, T) for hd in (64, 128) for T in lens] + ([(128, long_len)] if long_len else [])
    for hd, T in shapes:
        if not kinds[hd]:
            continue
        cache = PagedCache([T], nKV, hd, 32, gen)
        positions = torch.arange(T, dtype=torch.int32, device="cuda")
        seqStarts = torch.tensor([0, T], dtype=torch.int32, device="cuda")
        q = bf(torch.randn(T, nH * hd, device="cuda", generator=gen))
        o = torch.empty(T, nH * hd, device="cuda", dtype=torch.bfloat16)
        flops = 4 * T * T / 2 * hd * nH
        iters = max(1, min(10, int(2e10 / flops * 10)))
        scale = 1 / math.sqrt(hd)
        res = {}
        K, V = cache.kv(0, T)
        ks = ["mma", "flash"] + [k for k in kinds[hd] if k != "flash" and (T <= 8192 or k.startswith("w"))]
        if T > 8192 and skip_slow:
            ks = [k for k in ks if k.startswith("w")]
        ref_o = None
        for kind in ks:
            try:
                run(kind, hd, q, o, cache, positions, seqStarts, T, 1, nH, nKV, scale, 0)
                torch.cuda.synchronize()
                if ref_o is None:
                    ref_o = o.clone()
                elif relerr(o, ref_o.double()) > 2e-2:
                    log(f"  {kind}: output differs from mma ({relerr(o, ref_o.double()):.2e}); not timed")
                    continue
                res[kind] = graph_time(lambda: run(kind, hd, q, o, cache, positions, seqStarts, T, 1, nH, nKV, scale, 0), iters=iters, reps=3)
                log(f"  .. hd{hd} T={T}: {kind} {res[kind] * 1e3:.1f} us = {flops / (res[kind] * 1e-3) / 1e12:.1f} TFLOP/s")
            except Exception as ex:  # noqa: BLE001
                log(f"  {kind} failed: {ex}")
        res.update(sdpa_times(q, K, V, nH, nKV, hd, T, iters))
        for k_, ms in res.items():
            regs = ""
            if k_.startswith("w") or k_ == "flash":
                try:
                    kern, f_, defs, *_rest = geom(k_, hd)
                    fn = module(f_, defs, _rest[-1]).get_function(kern)
                    regs = f"  ({fn.num_regs} regs, {fn.local_size_bytes} B local)"
                except Exception:  # noqa: BLE001
                    pass
            log(f"  hd{hd} T={T:6d}: {k_:16s} {ms * 1e3:9.1f} us = {flops / (ms * 1e-3) / 1e12:6.1f} TFLOP/s{regs}")
        out[f"hd{hd}_T{T}"] = {k_: {"us": ms * 1e3, "tflops": flops / (ms * 1e-3) / 1e12} for k_, ms in res.items()}
        del cache
        torch.cuda.empty_cache()
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=None)
    ap.add_argument("--only", default="checks,time")
    ap.add_argument("--lens", default="2048,8192")
    ap.add_argument("--long", type=int, default=0)
    ap.add_argument("--variants", action="store_true")
    ap.add_argument("--wg", default="auto", help="flash_prefill_wg (sm_90a wgmma): auto (on sm_90), on, off, variants")
    ap.add_argument("--ws", default="off", help="flash_prefill_ws (warp-specialized, sm_90a): off, on, variants")
    ap.add_argument("--hds", default="64,128", help="head dims to check and time")
    ap.add_argument("--mma", default="on", help="checks: also run paged_attention_prefill_mma (on / off: float64 only)")
    ap.add_argument("--ws-kinds", default="", help="instead of --ws: these ws kinds only, e.g. ws,wsv_c2n128s3p")
    ap.add_argument("--no-flash", action="store_true", help="leave flash_prefill out (checks and timing)")
    ap.add_argument("--quick", action="store_true", help="checks: 5 of the layouts")
    ap.add_argument("--skip-slow", action="store_true", help="at --long, time only the wgmma kernels (and SDPA)")
    a = ap.parse_args()
    log(f"device: {torch.cuda.get_device_name()}  torch {torch.__version__}")
    kinds = {hd: ["flash"] + (VARIANTS[hd] if a.variants else []) for hd in (64, 128)}
    wg = a.wg in ("on", "variants") or (a.wg == "auto" and torch.cuda.get_device_capability() == (9, 0))
    if wg:
        for hd in (64, 128):
            kinds[hd] += ["wg"] + (WG_VARIANTS[hd] if a.wg == "variants" else [])
    if a.ws in ("on", "variants"):
        for hd in (64, 128):
            kinds[hd] += ["ws"] + (WS_VARIANTS[hd] if a.ws == "variants" else [])
    if a.ws_kinds:
        for hd in (64, 128):
            kinds[hd] += a.ws_kinds.split(",")
    if a.no_flash:
        for hd in (64, 128):
            kinds[hd] = [k for k in kinds[hd] if k != "flash"]
    hds = [int(x) for x in a.hds.split(",")]
    for hd in (64, 128):
        if hd not in hds:
            kinds[hd] = []
    only = a.only.split(",")
    times = {}
    if "checks" in only:
        checks(kinds, a.quick, a.mma == "on")
    if "time" in only:
        times = timing(kinds, [int(x) for x in a.lens.split(",") if x], a.long, a.skip_slow)
    bad = [r for r in RESULTS if not r[1]]
    log(f"SUMMARY flash_prefill: {len(RESULTS)} checks, {len(bad)} failed")
    for r in bad:
        log(f"  FAIL {r[0]}: {r[2]}")
    if a.out:
        os.makedirs(a.out, exist_ok=True)
        with open(os.path.join(a.out, "flash_prefill.json"), "w") as f:
            json.dump({"device": torch.cuda.get_device_name(), "checks": RESULTS, "times": times}, f, indent=1)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
