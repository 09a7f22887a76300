#!/usr/bin/env python3
"""CPU desk check of the pair-order entry points of kernels/quant_gemv.cu (quantGemvPairX / quantGemvPairDown, session 19)
through the CUDA emulation (quant_gemv_emu.py's build): quant_gemv_fastx_rs_u4 / fastxx_rs_u4 / fastxx_u4 on x in the
mma's pair order (each 8-element chunk as x0, x4, x1, x5, x2, x6, x3, x7) against quant_gemv_fast_{rs,}_u4 on x, and
fastx_addnorm_u4 / fastxx_addnorm_u4 against fast_addnorm_u4: the same bits (y, the sums of squares), xw and fastxx_rs's
mode-2 output the same values in pair order. u4 g128 with and without zero points, K 1024 / 2176 / 384, m 1 / 3 / 8. No GPU.

  python3 tools/cuda-kernel-check/quant_gemv_pairx_emu.py
"""
import ctypes
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from quant_gemv_emu import bf16_round, build  # noqa: E402


def perm(a):
    """Each 8-element chunk of the last axis in the mma's pair order: element e at (e & 3) * 2 + e // 4."""
    out = np.empty_like(a)
    e = np.arange(a.shape[-1])
    out[..., (e & ~7) | ((e & 3) << 1) | ((e >> 2) & 1)] = a
    return out


def main():
    lib = ctypes.CDLL(build((), f"/tmp/qgemv-pairx-emu-{os.getpid()}"))
    lib.emu_launch.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_uint64), ctypes.POINTER(ctypes.c_float)] + [ctypes.c_int] * 6
    rng = np.random.default_rng(19)
    bad = n = 0

    def launch(name, x, packed, scales, zeros, y, nw, m, N, K, mode, xw=None, ssq=None):
        ints = [x.ctypes.data, packed.ctypes.data, scales.ctypes.data, zeros.ctypes.data if zeros is not None else 0, 0, y.ctypes.data, nw, m, N, K, 128,
                mode]
        if xw is not None:
            ints += [xw.ctypes.data, ssq.ctypes.data]
        iv = (ctypes.c_uint64 * 20)(*ints + [0] * (20 - len(ints)))
        fv = (ctypes.c_float * 8)(*([1e-5] + [0.0] * 7))
        lib.emu_launch(ctypes.cast(getattr(lib, name), ctypes.c_void_p).value, iv, fv, N // 16, 1, 1, 256, 1, 1)

    for zp, K in [(True, 1024), (True, 2176), (False, 384)]:
        N = 32
        q = rng.integers(0, 16, (N, K), dtype=np.uint8)
        packed = np.ascontiguousarray((q[:, 0::2] | (q[:, 1::2] << 4)).astype(np.uint8))
        scales = (rng.random((N, K // 128)) * 0.02 + 1e-3).astype(np.float32)
        zeros = rng.integers(0, 16, (N, K // 128), dtype=np.uint8) if zp else None
        for m in (1, 3, 8):
            x = bf16_round(rng.standard_normal((m, K)).astype(np.float32))
            xp = np.ascontiguousarray(perm(x))
            y0 = bf16_round(rng.standard_normal((m, N)))
            nwN = bf16_round(1 + 0.1 * rng.standard_normal(N))
            ssqIn = (rng.random((m, K // 16)) * 2).astype(np.float32)
            checks = []
            for mode in (0, 1, 2, 3):
                shape, dt = ((m, N // 2), np.uint16) if mode == 2 else ((m, N), np.float32 if mode == 3 else np.uint16)
                ys = []
                for name, xin in [("quant_gemv_fast_rs_u4", x), ("quant_gemv_fastx_rs_u4", xp), ("quant_gemv_fastxx_rs_u4", xp)]:
                    y = y0.copy() if mode == 1 else np.zeros(shape, dt)
                    launch(name, xin, packed, scales, zeros, y, ssqIn.ctypes.data, m, N, K, mode)
                    ys.append(y)
                checks.append((f"rs mode {mode}: fastx", np.array_equal(ys[0].view(np.uint8), ys[1].view(np.uint8))))
                want = perm(ys[0]) if mode == 2 else ys[0]  # fastxx_rs: mode 2's output in pair order
                checks.append((f"rs mode {mode}: fastxx", np.array_equal(want.view(np.uint8), ys[2].view(np.uint8))))
                if mode != 2:
                    yp = []
                    for name, xin in [("quant_gemv_fast_u4", x), ("quant_gemv_fastxx_u4", xp)]:
                        y = y0.copy() if mode == 1 else np.zeros(shape, dt)
                        launch(name, xin, packed, scales, zeros, y, 0, m, N, K, mode)
                        yp.append(y)
                    checks.append((f"plain mode {mode}: fastxx", np.array_equal(yp[0].view(np.uint8), yp[1].view(np.uint8))))
            outs = []
            for name, xin in [("quant_gemv_fast_addnorm_u4", x), ("quant_gemv_fastx_addnorm_u4", x), ("quant_gemv_fastxx_addnorm_u4", xp)]:
                y, xw, ssq = y0.copy(), np.zeros((m, N), np.uint16), np.zeros((m, N // 16), np.float32)
                launch(name, xin, packed, scales, zeros, y, nwN.ctypes.data, m, N, K, 1, xw, ssq)
                outs.append((y, xw, ssq))
            for i, label in [(1, "fastx"), (2, "fastxx")]:
                same = np.array_equal(outs[0][0], outs[i][0]) and np.array_equal(outs[0][2], outs[i][2]) and np.array_equal(perm(outs[0][1]), outs[i][1])
                checks.append((f"addnorm: {label} (y, ssq, xw in pair order)", same))
            for label, ok in checks:
                n += 1
                bad += not ok
                print(f"{'ok  ' if ok else 'FAIL'} u4 g128{' zp' if zp else ''} K={K} m={m} {label}")
    print(f"{n - bad}/{n} ok")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
