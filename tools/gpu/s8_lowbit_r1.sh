#!/usr/bin/env bash
# Session 8, lowbit r1 (helper "lowbit"; budget 60 s; model llama-3.2-1b): W8A8_SQ_PER_CHANNEL / W4A8_AWQ / NVFP4 on CUDA
# (kernels/lowbit.cu, lib/backends/cuda/lowbit_launch.ts), never run on a GPU before this job. Most decisive first:
#   gpu   — tests/gpu/lowbit_cuda.test.ts: the kernels vs the CPU emulation (act quantizers bit for bit, dequant, GEMV
#           m = 1/3/8), the NVFP4 GEMV's bandwidth (m = 1) on 1B / 8B shapes vs a device copy, then kjv-llama SQ / W4A8 /
#           NVFP4 CUDA sessions (prefill, 6-token step, graph decode) vs the CPU session
#   e2e   — bun bench/quant_e2e.ts --synthetic-nvfp4 on llama-3.2-1b: batch-1 decode tok/s of an NVFP4 engine (random
#           e2m1 codes / e4m3 block scales: no TypeScript quantize() of 1B, which takes tens of seconds) vs bf16, and the
#           share of its bytes' bandwidth, if time is left
# A job of the batched queue; logs in $OUT.
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
stamp "gpu: tests/gpu/lowbit_cuda.test.ts"
timeout 40 bun test --timeout 600000 tests/gpu/lowbit_cuda.test.ts > "$OUT/lowbit_cuda.log" 2>&1
echo "rc $?"
grep -E "^\(pass|^\(fail|^ *[0-9]+ (pass|fail|skip)$|rel L2|GB/s|argmax|error|Error" "$OUT/lowbit_cuda.log" | cut -c1-400 | head -40
left=$((57 - (SECONDS - _t0)))
if [ "$left" -gt 12 ]; then
  stamp "e2e: NVFP4 (synthetic) llama-3.2-1b batch 1 vs bf16 (timeout $left s)"
  timeout "$left" bun bench/quant_e2e.ts --model "$M1" --algos "" --synthetic-nvfp4 --decode 64 --no-ref > "$OUT/e2e_nvfp4_1b.log" 2>&1
  echo "rc $?"
  grep -E "^\||copy bandwidth|Error|error" "$OUT/e2e_nvfp4_1b.log" | cut -c1-400 | head -8
else
  stamp "e2e skipped: $left s left"
fi
stamp "done"
