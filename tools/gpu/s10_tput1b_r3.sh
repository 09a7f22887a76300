#!/usr/bin/env bash
# Session 10 (issue 16 item 3), helper tput1b, round 3 (the last; budget 40 s). r2: the mma.sync kernel checked
# (float64, bitwise across row tiles, SiLU·mul epilogue) but slower than cuBLASLt at 64 rows (1B GEMM set 1.312 vs
# 0.903 ms; compute-bound on ldmatrix + mma.sync at M 64). Now the products on Hopper warpgroup MMAs (wgmma from the
# ring's 128-byte-swizzled tiles, sm_90a; BG_WGMMA 1, the default here), mma.sync as a variant in the same process.
#   check — batch_gemm.py vs float64 (1B shapes, m 9/16/17/33/64, bitwise across m, SiLU·mul epilogue); time m 64 vs
#           cuBLASLt and copy; variants BG_WGMMA=0 (mma.sync), BG_NS=6
#   e2e   — llama-3.2-1b bf16 64 × (128,128): LLMRT_BATCH_GEMM=1 LLMRT_BATCH_GEMM_PDL=1 (--profile-gpu) vs default,
#           same job (r1: the PDL switch took the mma.sync path's median decode step 1.628 -> 1.583 ms)
#   test  — tests/gpu/batch_gemm.test.ts (in the engine: logits of 12 / 20 / 52-sequence steps bitwise equal; near cuBLASLt)
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader
stamp "batch_gemm check + time + variants"
timeout 16 python3 tools/cuda-kernel-check/batch_gemm.py --out "$OUT" --time-ms 64 --budget 11 --variants "BG_WGMMA=0;BG_NS=6" > "$OUT/bg.log" 2>&1
echo "rc $?"
grep -E "FAIL|SUMMARY|Error|error|copy ceiling|decode-step|compile" "$OUT/bg.log" | head -16 | cut -c1-260
grep -E "default +(qkv|o|gate_up|down|lm_head) +m64" "$OUT/bg.log" | cut -c1-200
phases() { sed -n '/steps of the timed run/,$p' "$OUT/t_$1.log" | grep -E "^\| (prefill|decode)|graph|top:" | cut -c1-400; }
LLMRT_BATCH_GEMM=1 LLMRT_BATCH_GEMM_PDL=1 thr bg $M1 64 9 --profile-steps --profile-gpu
phases bg
thr base $M1 64 7 --profile-steps
phases base
thr_summary bg base
left=$((39 - (SECONDS - _t0)))
if [ "$left" -gt 3 ]; then
  gpu_suite bgtest "$left" tests/gpu/batch_gemm.test.ts
  grep -E "batchGemm|logits differ|relative|AssertionError|error" "$OUT/bgtest.log" | head -6 | cut -c1-240
fi
stamp done
