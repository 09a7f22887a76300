#!/usr/bin/env python3
"""Session 10 (issue 16): prefill attention tilings, checked then timed, each compiled alone and in parallel.

  python3 tools/cuda-kernel-check/flash_tile_time.py --kinds flash,wg,wgv_g3n64s4o,... --shapes 64:2048,128:32000,128:32768:128
                                                     [--ref-dir DIR] [--no-check] [--no-sdpa] [--out DIR]

Kinds: flash (flash_prefill_bf16_hd*, mma.sync), wg (flash_prefill_wg_bf16_hd*, the entry point), wgv_<tag>
(flash_prefill_wgv_hd*_<tag> of the LLMRT_FLASH_VARIANTS build: g<warpgroups>n<keys per tile>s<stages>[o][b<blocks>][t]);
wgt and t-suffixed kinds: the block-wide tile lookup (prefillTileScan), launched on the engine's bounded grid. A shape
hd:T:n times T / n causal prompts of n tokens packed in one step (the 8B 512-request run's prefill: 128:32768:128);
ref_flash / ref_wg: flash / wg compiled from the copies in --ref-dir (before / after A/B of a kernel change; their
outputs are compared bitwise with the first kind's). A kind whose variant does not exist for a head dim is skipped. Every kind of a head dim is compiled as its own
LLMRT_SELECT unit by NVRTC in a process pool (the build of all variants at once took ~25 s), then checked against a
float64 reference on two packed layouts (a chunk past a cached prefix, GQA 4, tokensPerBlock 32 / 16) and timed on a
causal single sequence (32 q / 8 kv heads, tokensPerBlock 32, shuffled blocks) as CUDA-graph replays, beside torch
SDPA (cuDNN, enable_gqa; --sdpa-all: each of SDPA's FLASH / EFFICIENT / CUDNN backends, with enable_gqa and with K / V
repeated to every head). TFLOP/s of the causal half (4 T^2 / 2 hd nH).
"""
import argparse
import json
import math
import os
import re
import sys
import tempfile
import multiprocessing
from concurrent.futures import ProcessPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
KDIR = os.path.abspath(os.path.join(HERE, "..", "..", "lib", "backends", "cuda", "kernels"))


REF_DIR = None  # --ref-dir: other copies of flash_prefill.cu / flash_prefill_wg.cu (e.g. main's): kinds ref_flash, ref_wg


def geom(kind, hd):
    """(source path, kernel, BM, threads, dynamic shared bytes, arch suffix) of a kind, or None."""
    if kind.startswith("ref_"):
        if REF_DIR is None:
            return None
        g = geom(kind[4:], hd)
        return g and (os.path.join(REF_DIR, os.path.basename(g[0])),) + g[1:]
    if kind == "flash":
        bm, nt = {64: (256, 256), 128: (128, 128)}[hd]
        return os.path.join(KDIR, "flash_prefill.cu"), f"flash_prefill_bf16_hd{hd}", bm, nt, 0, ""
    if kind == "wg":
        g, n, s = {64: (2, 64, 3), 128: (3, 64, 3)}[hd]
        return os.path.join(KDIR, "flash_prefill_wg.cu"), f"flash_prefill_wg_bf16_hd{hd}", 64 * g, 128 * g, (64 * g + 2 * s * n) * hd * 2 + 1024, "a"
    if kind == "wgt":  # prefillTileScan's entry point (the block-wide tile lookup)
        g, n, s = {64: (2, 64, 3), 128: (3, 64, 3)}[hd]
        return os.path.join(KDIR, "flash_prefill_wg.cu"), f"flash_prefill_wgt_bf16_hd{hd}", 64 * g, 128 * g, (64 * g + 2 * s * n) * hd * 2 + 1024, "a"
    m = re.fullmatch(r"wgv_g(\d)n(\d+)s(\d)(o?)(b\d)?(t?)", kind)
    if not m:
        raise SystemExit(f"unknown kind {kind}")
    g, n, s = int(m.group(1)), int(m.group(2)), int(m.group(3))
    name = f"flash_prefill_wgv_hd{hd}_{kind[4:]}"
    src = open(os.path.join(KDIR, "flash_prefill_wg.cu")).read()
    if f"LLMRT_KERNEL({name})" not in src:
        return None
    return os.path.join(KDIR, "flash_prefill_wg.cu"), name, 64 * g, 128 * g, (64 * g + 2 * s * n) * hd * 2 + 1024, "a"


def compile_unit(args):
    """NVRTC cubin of one entry point (runs in a worker process); returns ((source, kernel), cubin path or "ERROR ...")."""
    path, kern, arch, cc = args
    try:
        from cupy_backends.cuda.libs import nvrtc
    except ImportError:
        from cupy.cuda import nvrtc
    defs = ["LLMRT_SELECT", f"LLMRT_K_{kern}=1"] + (["LLMRT_FLASH_VARIANTS"] if "wgv" in kern else [])
    opts = ("-std=c++17", f"--gpu-architecture=sm_{cc}{arch}", f"--include-path={KDIR}") + tuple(f"-D{d}" for d in defs)
    prog = nvrtc.createProgram(open(path).read(), os.path.basename(path), (), ())
    try:
        try:
            nvrtc.compileProgram(prog, opts)
        except Exception as e:  # noqa: BLE001
            return (path, kern), f"ERROR {e}: {nvrtc.getProgramLog(prog)[:2000]}"
        cubin = nvrtc.getCUBIN(prog)
    finally:
        nvrtc.destroyProgram(prog)
    out = os.path.join(tempfile.gettempdir(), f"llmrt_ftt_{'ref_' if not path.startswith(KDIR) else ''}{kern}.cubin")
    with open(out, "wb") as f:
        f.write(cubin)
    return (path, kern), out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kinds", default="flash,wg")
    ap.add_argument("--shapes", default="64:2048,128:32768")
    ap.add_argument("--no-check", action="store_true")
    ap.add_argument("--no-sdpa", action="store_true")
    ap.add_argument("--sdpa-all", action="store_true", help="also time torch SDPA's FLASH, EFFICIENT and CUDNN backends one by one")
    ap.add_argument("--out", default=None)
    ap.add_argument("--ref-dir", default=None, help="a folder with other copies of the kernel files: kinds ref_flash, ref_wg")
    a = ap.parse_args()
    global REF_DIR
    REF_DIR = os.path.abspath(a.ref_dir) if a.ref_dir else None
    kinds = a.kinds.split(",")
    shapes = [tuple(int(x) for x in s.split(":")) for s in a.shapes.split(",")]
    shapes = [sh if len(sh) == 3 else sh + (sh[1],) for sh in shapes]  # (hd, T, tokens a prompt)
    hds = sorted({sh[0] for sh in shapes})
    units = {}
    for hd in hds:
        for k in kinds:
            g = geom(k, hd)
            if g:
                units[(k, hd)] = g

    import torch
    cc = "".join(str(x) for x in torch.cuda.get_device_capability())
    with ProcessPoolExecutor(max_workers=min(16, len(units)), mp_context=multiprocessing.get_context("spawn")) as ex:
        built = dict(ex.map(compile_unit, [(g[0], g[1], g[5], cc) for g in units.values()]))

    import cupy as cp
    sys.path.insert(0, HERE)
    from decode_step import F, I, P, _ext_stream, bf, graph_time, log, relerr  # noqa: E402
    from flash_prefill import PagedCache, reference  # noqa: E402

    log(f"device: {torch.cuda.get_device_name()}  torch {torch.__version__}; {len(units)} units compiled")
    funcs = {}
    for key, g in units.items():
        r = built[(g[0], g[1])]
        if r.startswith("ERROR"):
            log(f"  {key[0]} hd{key[1]}: compile failed: {r[:600]}")
            continue
        f = cp.RawModule(path=r).get_function(g[1])
        if g[4] > 48 * 1024:
            f.max_dynamic_shared_size_bytes = g[4]
        funcs[key] = (f, g)
        log(f"  {key[0]} hd{key[1]}: {g[1]} BM {g[2]} threads {g[3]} smem {g[4]} B, {f.num_regs} regs, {f.local_size_bytes} B local")

    def run(key, q, out, cache, positions, seqStarts, T, S, nH, nKV, scale, window, maxSeq=0):
        f, g = funcs[key]
        ft = "wgt" in g[1] or g[1].endswith("t")
        grid = (nH, min(math.ceil(T / g[2]) + S, S * math.ceil(maxSeq / g[2]) if ft and maxSeq else 1 << 30), 1)
        args = (P(q), P(out), P(cache.data), P(positions), P(seqStarts), P(cache.table), I(T), I(S), I(nH), I(nKV), I(cache.tpb),
                I(cache.maxBlocks), F(scale), I(window))
        stream = _ext_stream()  # torch's current stream: the graph's capture stream while graph_time captures
        if g[4]:
            f(grid, (g[3], 1, 1), args, stream=stream, shared_mem=g[4])
        else:
            f(grid, (g[3], 1, 1), args, stream=stream)

    bad = []
    if not a.no_check:
        gen = torch.Generator(device="cuda").manual_seed(5)
        for hd in hds:
            for (nH, nKV), seqs, tpb in [((32, 8), [(0, 700), (300, 129), (5, 1)], 32), ((16, 4), [(0, 257), (1000, 200)], 16)]:
                T, S = sum(n for _, n in seqs), len(seqs)
                cache = PagedCache([p0 + n for p0, n in seqs], nKV, hd, tpb, gen)
                positions = torch.tensor([p0 + i for p0, n in seqs for i in range(n)], dtype=torch.int32, device="cuda")
                starts = [0]
                for _, n in seqs:
                    starts.append(starts[-1] + n)
                seqStarts = torch.tensor(starts, dtype=torch.int32, device="cuda")
                q = bf(torch.randn(T, nH * hd, device="cuda", generator=gen))
                scale = 1 / math.sqrt(hd)
                ref = reference(q, cache, seqs, nH, nKV, hd, scale, 0)
                for key in [k for k in funcs if k[1] == hd]:
                    o = torch.full((T, nH * hd), float("nan"), device="cuda", dtype=torch.bfloat16)
                    run(key, q, o, cache, positions, seqStarts, T, S, nH, nKV, scale, 0)
                    torch.cuda.synchronize()
                    e = relerr(o.view(T, nH, hd), ref)
                    ok = e < 1e-2
                    if not ok:
                        bad.append(key)
                    log(f"  {'ok  ' if ok else 'FAIL'} {key[0]} hd{hd} nH={nH} nKV={nKV} seqs={seqs} tpb={tpb}: rel {e:.2e}")
    times = {}
    gen = torch.Generator(device="cuda").manual_seed(6)
    nH, nKV = 32, 8
    for hd, T, n in shapes:
        S = T // n
        cache = PagedCache([n] * S, nKV, hd, 32, gen)
        positions = torch.arange(n, dtype=torch.int32, device="cuda").repeat(S)
        seqStarts = torch.arange(0, S * n + 1, n, dtype=torch.int32, device="cuda")
        q = bf(torch.randn(T, nH * hd, device="cuda", generator=gen))
        o = torch.empty(T, nH * hd, device="cuda", dtype=torch.bfloat16)
        flops = 4 * n * n / 2 * hd * nH * S
        iters = max(1, min(20, int(4e10 / flops * 10)))
        scale = 1 / math.sqrt(hd)
        res, first, same, outs = {}, None, [], {}
        for key in [k for k in funcs if k[1] == hd and k not in bad]:
            run(key, q, o, cache, positions, seqStarts, T, S, nH, nKV, scale, 0, n)
            torch.cuda.synchronize()
            outs[key[0]] = o.clone()
            ref = outs.get("ref_" + key[0])
            if ref is not None:
                log(f"  hd{hd} T={T}/{n}: {key[0]} vs ref_{key[0]}: {'bitwise equal' if torch.equal(o.view(torch.int16), ref.view(torch.int16)) else f'DIFFERS (rel {relerr(o, ref.double()):.2e})'}")
            if first is None:
                first = o.clone()
            elif torch.equal(o.view(torch.int16), first.view(torch.int16)):
                same.append(key[0])
            elif relerr(o, first.double()) > 2e-2:
                log(f"  {key[0]} hd{hd} T={T}/{n}: output differs from {next(iter(res))} ({relerr(o, first.double()):.2e}); not timed")
                continue
            res[key[0]] = graph_time(lambda: run(key, q, o, cache, positions, seqStarts, T, S, nH, nKV, scale, 0, n), iters=iters, reps=3)
            log(f"  .. hd{hd} T={T}/{n}: {key[0]} {res[key[0]] * 1e3:.1f} us")
        if not a.no_sdpa:
            K, V = cache.kv(0, T)
            qq = q.view(1, T, nH, hd).transpose(1, 2)
            Kc, Vc = K.transpose(0, 1)[None].contiguous(), V.transpose(0, 1)[None].contiguous()
            try:
                res["sdpa_gqa"] = graph_time(lambda: torch.nn.functional.scaled_dot_product_attention(qq, Kc, Vc, is_causal=True, enable_gqa=True),
                                             iters=iters, reps=3)
            except Exception as ex:  # noqa: BLE001
                log(f"  sdpa failed: {ex}")
            if a.sdpa_all:
                from torch.nn.attention import SDPBackend, sdpa_kernel
                Kr, Vr = Kc.repeat_interleave(nH // nKV, dim=1), Vc.repeat_interleave(nH // nKV, dim=1)
                for bname, be in (("flash", SDPBackend.FLASH_ATTENTION), ("efficient", SDPBackend.EFFICIENT_ATTENTION), ("cudnn", SDPBackend.CUDNN_ATTENTION)):
                    for tag, kk, vv, gqa in (("gqa", Kc, Vc, True), ("rep", Kr, Vr, False)):
                        def f(be=be, kk=kk, vv=vv, gqa=gqa):
                            with sdpa_kernel([be]):
                                return torch.nn.functional.scaled_dot_product_attention(qq, kk, vv, is_causal=True, enable_gqa=gqa)
                        try:
                            ref_o = f()
                            torch.cuda.synchronize()
                            res[f"sdpa_{bname}_{tag}"] = graph_time(f, iters=iters, reps=3)
                            if outs:  # against the first kernel's output (the same inputs)
                                e = relerr(next(iter(outs.values())).view(T, nH, hd), ref_o[0].transpose(0, 1))
                                log(f"  sdpa_{bname}_{tag} vs {next(iter(outs))}: rel {e:.2e}")
                        except Exception as ex:  # noqa: BLE001
                            log(f"  sdpa {bname} {tag}: {str(ex)[:200]}")
        for k_, ms in res.items():
            log(f"  hd{hd} T={T:6d}/{n}: {k_:22s} {ms * 1e3:9.1f} us = {flops / (ms * 1e-3) / 1e12:6.1f} TFLOP/s")
        log(f"  hd{hd} T={T:6d}/{n}: outputs bitwise equal to {next(iter(res), '-')}'s: {', '.join(same) or 'none'}")
        times[f"hd{hd}_T{T}" + (f"x{n}" if n != T else "")] = {k_: ms * 1e3 for k_, ms in res.items()}
        del cache, outs
        torch.cuda.empty_cache()
    log(f"SUMMARY flash_tile_time: {len(funcs)} kernels, {len(bad)} failed checks {bad}; " +
        "; ".join(f"{s}: " + ", ".join(f"{k} {v:.1f}" for k, v in sorted(t.items(), key=lambda x: x[1])) for s, t in times.items()) + " (us)")
    if a.out:
        os.makedirs(a.out, exist_ok=True)
        with open(os.path.join(a.out, "flash_tile_time.json"), "w") as f:
            json.dump({"device": torch.cuda.get_device_name(), "times": times, "failed": [list(b) for b in bad]}, f, indent=1)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
