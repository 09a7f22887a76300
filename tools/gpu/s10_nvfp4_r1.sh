#!/usr/bin/env bash
# Session 10, helper nvfp4, round 1 (budget 35 s; model llama-3.2-1b): kernels/nvfp4_mma.cu never ran on a GPU.
#   test — tests/gpu/nvfp4_mma.test.ts: act codes bit for bit vs the CPU, tiled dequant exact, GEMV m = 1/3/8 vs
#          lowbitLinear; then per-GEMV time on 1B / 8B shapes: lowbit_gemv_nvfp4 (today) vs nvfp4_gemv_mma NV_U 4/8/2,
#          each with its act launch, against the device copy measured in the same process
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader
stamp "test: tests/gpu/nvfp4_mma.test.ts (NV_U 4,8,2)"
LLMRT_NVFP4_VARIANTS=4,8,2 timeout 30 bun test --timeout 600000 tests/gpu/nvfp4_mma.test.ts > "$OUT/nvfp4_mma.log" 2>&1
echo "rc $?"
grep -E "^\(pass|^\(fail|^ *[0-9]+ (pass|fail|skip)$|rel error|copy|us \(|ms \(|error|Error" "$OUT/nvfp4_mma.log" | cut -c1-600 | head -40
stamp done
