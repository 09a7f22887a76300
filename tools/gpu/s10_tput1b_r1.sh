#!/usr/bin/env bash
# Session 10 (issue 16 item 3), helper tput1b, round 1 (budget 40 s): batch_gemm (bf16 GEMM of 9..64-row decode steps)
#   check — batch_gemm.py vs float64 on llama-3.2-1b's five linears at m 9/16/17/33/64, rows bitwise equal across m,
#           the SiLU·mul epilogue (mode 2) vs mode 0 + silu·mul; time: m 16/32/64 vs torch.matmul (cuBLASLt) vs the
#           copy ceiling in one process
#   e2e   — llama-3.2-1b bf16 64 × (128,128): default vs LLMRT_BATCH_GEMM=1 (--profile-steps --profile-gpu), then
#           with LLMRT_BATCH_GEMM_PDL=1 too if time is left
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader
stamp "batch_gemm check + time"
timeout 14 python3 tools/cuda-kernel-check/batch_gemm.py --out "$OUT" > "$OUT/bg.log" 2>&1
echo "rc $?"
grep -E "FAIL|SUMMARY|Error|error|copy ceiling|decode-step|compile" "$OUT/bg.log" | head -20 | cut -c1-260
grep -E "default +(qkv|o|gate_up|down|lm_head) +m64" "$OUT/bg.log" | cut -c1-200
phases() { sed -n '/steps of the timed run/,$p' "$OUT/t_$1.log" | grep -E "^\| (prefill|decode)|graph|top:" | cut -c1-400; }
thr base $M1 64 9 --profile-steps --profile-gpu
phases base
LLMRT_BATCH_GEMM=1 thr bg $M1 64 9 --profile-steps --profile-gpu
phases bg
left=$((38 - (SECONDS - _t0)))
[ "$left" -gt 5 ] && LLMRT_BATCH_GEMM=1 LLMRT_BATCH_GEMM_PDL=1 thr bgpdl $M1 64 "$left" --profile-steps && phases bgpdl
thr_summary base bg bgpdl
stamp done
