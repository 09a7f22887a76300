#!/usr/bin/env bash
# Session 10, helper nvfp4, round 3 (the last; budget 35 s; model llama-3.2-1b): whether CudaFlags.nvfp4Mma can be on.
#   e2e  — bench/quant_e2e.ts --synthetic-nvfp4 --ab nvfp4Mma --ab-reps 1 on llama-3.2-1b: bf16, NVFP4 off (lowbit.cu),
#          NVFP4 on (nvfp4_mma.cu) in one process; each NVFP4 row also compares its decode step with its own GEMM path
#   kjv  — tests/gpu/lowbit_cuda.test.ts "kjv-llama NVFP4" with LLMRT_NVFP4_MMA=1: prefill, 6-token step and graph decode
#          on nvfp4_mma.cu (producers, tiled upload) vs the CPU emulation of the same quantized weights
#   test — tests/gpu/nvfp4_mma.test.ts (NV_ZC 1 now the default: mma from zero accumulators; the 16-warp GEMV the
#          launcher picks for at most one block per SM): correctness, then timing of 4p2 (8 warps, persistent), 4w
#          (16 warps), 2 and the device copy
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
stamp "e2e: llama-3.2-1b synthetic NVFP4, nvfp4Mma off/on vs bf16"
timeout 21 bun bench/quant_e2e.ts --model "$M1" --algos "" --synthetic-nvfp4 --decode 32 --no-ref --ab nvfp4Mma --ab-reps 1 > "$OUT/e2e_1b.log" 2>&1
echo "rc $?"
grep -E "^\||copy bandwidth|nvfp4Mma|Error|error" "$OUT/e2e_1b.log" | cut -c1-700 | head -10
stamp "kjv-llama NVFP4 on CUDA with LLMRT_NVFP4_MMA=1 vs the CPU emulation"
LLMRT_NVFP4_MMA=1 timeout 7 bun test --timeout 600000 tests/gpu/lowbit_cuda.test.ts -t "kjv-llama NVFP4" > "$OUT/kjv_mma.log" 2>&1
echo "rc $?"
grep -E "^\(pass|^\(fail|^ *[0-9]+ (pass|fail|skip)$|CUDA vs CPU|error|Error" "$OUT/kjv_mma.log" | cut -c1-700 | head -8
left=$((34 - (SECONDS - _t0)))
stamp "test: tests/gpu/nvfp4_mma.test.ts ($left s)"
LLMRT_NVFP4_VARIANTS=4p2,4w,2 timeout "$left" bun test --timeout 600000 tests/gpu/nvfp4_mma.test.ts > "$OUT/nvfp4_mma.log" 2>&1
echo "rc $?"
grep -E "^\(pass|^\(fail|^ *[0-9]+ (pass|fail|skip)$|copy|us \(|ms \(|error|Error|differ" "$OUT/nvfp4_mma.log" | cut -c1-700 | head -30
stamp done
