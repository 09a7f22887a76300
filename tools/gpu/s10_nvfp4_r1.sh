#!/usr/bin/env bash
# Session 10, helper nvfp4, round 1 (budget 35 s; model llama-3.2-1b): kernels/nvfp4_mma.cu never ran on a GPU.
#   test — tests/gpu/nvfp4_mma.test.ts: act codes bit for bit vs the CPU, tiled dequant exact, GEMV m = 1/3/8 vs
#          lowbitLinear; then per-GEMV time on 1B / 8B shapes: lowbit_gemv_nvfp4 (today) vs nvfp4_gemv_mma NV_U 4/8; producers vs norm + act bit for bit,
#          each with its act launch, against the device copy measured in the same process
#   e2e  — (time left) bench/quant_e2e.ts --synthetic-nvfp4 on llama-3.2-1b, --ab nvfp4Mma: bf16, NVFP4 off, NVFP4 on
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader
stamp "test: tests/gpu/nvfp4_mma.test.ts (NV_U 4,8)"
LLMRT_NVFP4_VARIANTS=4,8 timeout 22 bun test --timeout 600000 tests/gpu/nvfp4_mma.test.ts > "$OUT/nvfp4_mma.log" 2>&1
echo "rc $?"
grep -E "^\(pass|^\(fail|^ *[0-9]+ (pass|fail|skip)$|rel error|copy|us \(|ms \(|error|Error" "$OUT/nvfp4_mma.log" | cut -c1-600 | head -40
left=$((33 - (SECONDS - _t0)))
if [ "$left" -gt 8 ]; then
  stamp "e2e: llama-3.2-1b synthetic NVFP4, nvfp4Mma off/on ($left s)"
  timeout "$left" bun bench/quant_e2e.ts --model "$M1" --algos "" --synthetic-nvfp4 --decode 32 --no-ref --ab nvfp4Mma --ab-reps 1 > "$OUT/e2e_1b.log" 2>&1
  echo "rc $?"
  grep -E "^\||copy bandwidth|nvfp4Mma|Error|error" "$OUT/e2e_1b.log" | cut -c1-500 | head -10
fi
stamp done
