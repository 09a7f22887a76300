#!/usr/bin/env bash
# Session 10 (issue 16 item 3), helper tput1b, round 2 (budget 40 s). r1: batch_gemm ran at ~55% of copy (S = 1) and far
# below on the cluster-split shapes (1B decode step 1.38 -> 1.81 ms). Now: fragments of 64 columns loaded before their
# mmas, split tiles' DSMEM loads before their sums; kernel variants of the stage width (BG_KC 128 / 256: longer runs of
# each weight row a stage), BG_WT 2 and BG_EVICT 0 timed beside the default in one process.
#   check — batch_gemm.py vs float64 (1B shapes, m 9/16/17/33/64, bitwise equal rows across m, the SiLU·mul epilogue)
#   time  — m 16/64 vs torch.matmul (cuBLASLt) vs the copy ceiling; variants at m 64
#   e2e   — llama-3.2-1b bf16 64 × (128,128) with LLMRT_BATCH_GEMM=1 (--profile-gpu), then the default if time is left
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader
stamp "batch_gemm check + time + variants"
timeout 25 python3 tools/cuda-kernel-check/batch_gemm.py --out "$OUT" --time-ms 16,64 --budget 20 \
  --variants "BG_KC=128;BG_KC=256,BG_NS=2;BG_KC=128,BG_NS=3,BG_WT=2;BG_EVICT=0" > "$OUT/bg.log" 2>&1
echo "rc $?"
grep -E "FAIL|SUMMARY|Error|error|copy ceiling|decode-step|compile" "$OUT/bg.log" | head -24 | cut -c1-260
grep -E "default +(qkv|o|gate_up|down|lm_head) +m64" "$OUT/bg.log" | cut -c1-200
phases() { sed -n '/steps of the timed run/,$p' "$OUT/t_$1.log" | grep -E "^\| (prefill|decode)|graph|top:" | cut -c1-400; }
LLMRT_BATCH_GEMM=1 thr bg $M1 64 9 --profile-steps --profile-gpu
phases bg
left=$((38 - (SECONDS - _t0)))
[ "$left" -gt 5 ] && thr base $M1 64 "$left" --profile-steps && phases base
thr_summary bg base
stamp done
