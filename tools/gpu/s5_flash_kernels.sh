#!/usr/bin/env bash
# Session 5, issue 16 item 2 (helper flash): flash_prefill kernel checks vs float64 + the tiling sweep vs the
# previous mma kernel and torch SDPA (tools/cuda-kernel-check/flash_prefill.py). Writes $OUT/flash_prefill.{log,json}.
set -uo pipefail
OUT=${OUT:-/tmp/flash-out}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,clocks.max.sm,driver_version --format=csv,noheader
timeout 150 python3 tools/cuda-kernel-check/flash_prefill.py --variants --out "$OUT" ${FLASH_ARGS:-} > "$OUT/flash_prefill.log" 2>&1
echo "rc=$?"
grep -E "FAIL|SUMMARY|TFLOP|failed|Error|error" "$OUT/flash_prefill.log" | head -80
if [ -n "${FLASH_GEMM:-1}" ]; then
  LLMRT_BENCH_JSON=$OUT/prefill_gemm.json timeout 60 bun bench/prefill_gemm.ts --models 1b,8b --ms 256,2048,8192,32768 > "$OUT/prefill_gemm.log" 2>&1
  echo "gemm rc=$?"
  tail -40 "$OUT/prefill_gemm.log"
fi
