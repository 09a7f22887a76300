#!/usr/bin/env bash
# Session 10 (issue 16 item 3), helper tput1b, round 1 (budget 40 s): batch_gemm (bf16 GEMM of 9..64-row decode steps)
#   check — batch_gemm.py vs float64 on llama-3.2-1b's five linears at m 9/16/17/33/64, rows bitwise equal across m;
#           time: m 16/32/64 vs torch.matmul (cuBLASLt) vs the copy ceiling in one process
#   e2e   — llama-3.2-1b bf16 64 × (128,128): default vs LLMRT_BATCH_GEMM=1 (--profile-steps --profile-gpu)
#   vars  — what time is left: kernel variants BG_NS 6, BG_WT 2
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader
stamp "batch_gemm check + time"
timeout 15 python3 tools/cuda-kernel-check/batch_gemm.py --out "$OUT" --budget 12 > "$OUT/bg.log" 2>&1
echo "rc $?"
grep -E "FAIL|SUMMARY|Error|error|copy ceiling|decode-step|compile" "$OUT/bg.log" | head -20 | cut -c1-260
grep -E "default +(qkv|o|gate_up|down|lm_head) +m64" "$OUT/bg.log" | cut -c1-200
phases() { sed -n '/steps of the timed run/,$p' "$OUT/t_$1.log" | grep -E "^\| (prefill|decode)|graph|top:|llmrt:" | cut -c1-300; }
thr base $M1 64 10 --profile-steps --profile-gpu
phases base
LLMRT_BATCH_GEMM=1 thr bg $M1 64 10 --profile-steps --profile-gpu
phases bg
thr_summary base bg
left=$((38 - (SECONDS - _t0)))
if [ "$left" -gt 6 ]; then
  stamp "variants ($left s)"
  timeout "$left" python3 tools/cuda-kernel-check/batch_gemm.py --only time --time-ms 64 --variants "BG_NS=6;BG_WT=2" --budget $((left - 4)) > "$OUT/bgvar.log" 2>&1
  grep -E "decode-step|compile|Error" "$OUT/bgvar.log" | cut -c1-200
fi
stamp done
