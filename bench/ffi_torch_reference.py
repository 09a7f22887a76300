"""Reference numbers for bench/ffi.bench.ts from PyTorch on the same GPU, in the same run:
bf16 matmul TFLOP/s (x @ w.T, w stored [n, k] like the llmrt GEMM) and a 1 GiB device copy.
Usage: python3 bench/ffi_torch_reference.py [out.json]"""
import json
import sys

import torch


def time_ms(fn, iters, warmup=5):
    for _ in range(warmup):
        fn()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(iters):
        fn()
    end.record()
    end.synchronize()
    return start.elapsed_time(end) / iters


out = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__, "cuda": torch.version.cuda, "gemm": []}
for m, n, k in [(4096, 4096, 4096), (8192, 8192, 8192), (16, 4096, 4096), (2048, 14336, 4096)]:
    x = torch.full((m, k), 2.0**-6, device="cuda", dtype=torch.bfloat16)
    w = torch.full((n, k), 2.0**-6, device="cuda", dtype=torch.bfloat16)
    y = torch.empty((m, n), device="cuda", dtype=torch.bfloat16)
    ms = time_ms(lambda: torch.matmul(x, w.t(), out=y), 20 if m * n * k >= 2**36 else 50)
    assert float(y[0, 0]) == k * 2.0**-12
    out["gemm"].append({"shape": f"{m}x{n}x{k}", "ms": ms, "tflops": 2 * m * n * k / (ms * 1e-3) / 1e12})
src = torch.empty(1 << 30, dtype=torch.uint8, device="cuda").fill_(7)
dst = torch.empty_like(src)
ms = time_ms(lambda: dst.copy_(src), 20)
out["copy"] = {"bytes": 1 << 30, "ms": ms, "tbpsReadPlusWrite": 2 * (1 << 30) / (ms * 1e-3) / 1e12}
print(json.dumps(out, indent=2))
if len(sys.argv) > 1:
    with open(sys.argv[1], "w") as f:
        json.dump(out, f, indent=2)
