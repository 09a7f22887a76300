#!/usr/bin/env python3
"""CPU desk check (emu/): rope_kv_write_{fp8kv,int8kv}_bf16 vectorized path (ropeKvWriteVecQuant) vs the scalar one
(-DLLMRT_ROPE_QUANT_SCALAR): q and cache bytes equal. No GPU.

  python3 tools/cuda-kernel-check/rope_quant_emu.py
"""
import ctypes, os, re, subprocess, sys, numpy as np
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import decode_qkv_emu as dq
KDIR, EMU = dq.KDIR, dq.EMU
def build(out, defines):
    os.makedirs(out, exist_ok=True)
    kv = open(os.path.join(KDIR, "kv_fp8.cuh")).read()
    kv = re.sub(r'asm\("cvt\.rn\.satfinite\.e4m3x2\.f32 %0, %1, %2;" : "=h"\(p\) : "f"\(0\.f\), "f"\(x / s\)\);', 'p = (unsigned short)emuE4m3(x / s);', kv)
    kv = re.sub(r'  u32 h2;\n  asm\("cvt\.rn\.f16x2\.e4m3x2[^\n]*\n  asm\("cvt\.f32\.f16[^\n]*\n  asm\("cvt\.f32\.f16[^\n]*\n', '  lo = emuE4m3ToF(w & 0xffu);\n  hi = emuE4m3ToF(w >> 8);\n', kv)
    kv = re.sub(r'asm\("cvt\.rni\.s32\.f32 %0, %1;" : "=r"\(r\) : "f"\(x / s\)\);', 'r = emuRni(x / s);', kv)
    open(os.path.join(out, "kv_fp8.cuh"), "w").write(kv)
    src = open(os.path.join(KDIR, "rope_kv_write.cu")).read().replace('asm volatile("trap;");', "abort();")
    open(os.path.join(out, "rk.cpp"), "w").write(dq.SHIM + src)
    open(os.path.join(out, "launch.cpp"), "w").write(dq.LAUNCH)
    flags = ["g++", "-std=c++20", "-O1", "-fPIC", "-pthread", "-w", f"-I{KDIR}", f"-I{EMU}"] + [f"-D{d}" for d in defines]
    subprocess.check_call(flags + ["-c", os.path.join(out, "rk.cpp"), "-o", os.path.join(out, "rk.o")])
    subprocess.check_call(flags + ["-c", os.path.join(out, "launch.cpp"), "-o", os.path.join(out, "l.o")])
    so = os.path.join(out, "rk.so")
    subprocess.check_call(["g++", "-shared", "-pthread", "-o", so, os.path.join(out, "rk.o"), os.path.join(out, "l.o")])
    return so
libs = [ctypes.CDLL(build("/tmp/ropeemu/vec", [])), ctypes.CDLL(build("/tmp/ropeemu/sca", ["LLMRT_ROPE_QUANT_SCALAR"]))]
rng = np.random.default_rng(3)
bad = 0
for tag in ["fp8kv", "int8kv"]:
  for hd in [64, 128]:
    nH, nKV, T, bs = 8, 2, 5, 16
    W = (nH + 2*nKV)*hd
    qkv = dq.bf16_round(rng.uniform(-3, 3, (T, W)).astype(np.float32))
    pos = np.array([0, 5, 17, 33, 40], np.int32); starts = np.array([0, T], np.int32)
    tab = np.array([3, 1, 0, 2], np.int32)
    inv = 1.0 / (10000.0 ** (np.arange(0, hd, 2) / hd))
    sc = np.array(rng.uniform(0.01, 0.05, 2*nKV), np.float32)
    outs = []
    for lib in libs:
        q = np.zeros((T, nH*hd), np.uint16); kv = np.zeros((4, 2, bs, nKV, hd), np.uint8)
        fn = ctypes.cast(getattr(lib, f"rope_kv_write_{tag}_bf16"), ctypes.c_void_p).value
        ints = [qkv.ctypes.data, q.ctypes.data, kv.ctypes.data, pos.ctypes.data, starts.ctypes.data, tab.ctypes.data, inv.ctypes.data,
                T, 1, nH, nKV, hd, bs, 4, sc.ctypes.data] + [0]*9
        iv = (ctypes.c_uint64*24)(*[int(v) & 0xFFFFFFFFFFFFFFFF for v in ints]); fv = (ctypes.c_float*8)(1.0,0,0,0,0,0,0,0)
        lib.emu_launch24.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_uint64), ctypes.POINTER(ctypes.c_float)] + [ctypes.c_int]*4
        lib.emu_launch24(ctypes.c_void_p(fn), iv, fv, T, 1, 1, 128)
        outs.append((q, kv))
    d = int((outs[0][0] != outs[1][0]).sum()) + int((outs[0][1] != outs[1][1]).sum())
    nz = int((outs[0][1] != 0).sum())
    print(tag, hd, "differences vec vs scalar:", d, "nonzero cache bytes", nz)
    bad += d
print("FAIL" if bad else "ok")
