#!/usr/bin/env bash
# Session 11 (issue 16 item 3), helper tput, round 3 (the last; budget 45 s). r1/r2: the 64-row 1B step's graph by role
# (GEMMs 70%, attention 18%, small kernels 11%); decodeLogitsTuned: the lm_head at 64 rows 148 -> 134 us.
#   8B  — llama-3.1-8b bf16 512 x (128,128): default and --defer-decodes 1, one run each (--profile-steps: the step
#         times behind the streaming-latency effect)
#   1B  — decodeLogitsTuned vs default in alternating runs (--reps 5 each, twice), and the 64-row step's graph by role
#         with and without it in one process
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader
phases() { sed -n '/steps of the timed run/,$p' "$OUT/t_$1.log" | grep -E "^\| (prefill|mixed|decode|collect)|runs:|^  step [0-5]:" | cut -c1-300; }
thr 8b $M8 512 16 --profile-steps
phases 8b
thr 8b_defer $M8 512 15 --profile-steps --defer-decodes 1
phases 8b_defer
thr_summary 8b 8b_defer
thr def1 $M1 64 4 --reps 5
(export LLMRT_DECODE_LOGITS_TUNED=1; thr log1 $M1 64 4 --reps 5)
thr def2 $M1 64 4 --reps 5
(export LLMRT_DECODE_LOGITS_TUNED=1; thr log2 $M1 64 4 --reps 5)
grep -h "runs:" "$OUT"/t_def1.log "$OUT"/t_log1.log "$OUT"/t_def2.log "$OUT"/t_log2.log
thr_summary def1 log1 def2 log2
left=$((44 - (SECONDS - _t0)))
echo "left $left s"
if [ "$left" -gt 5 ]; then
  stamp "decode_breakdown 64 rows ctx 192: default vs decodeLogitsTuned"
  timeout "$((left - 1))" bun bench/decode_breakdown.ts --model $M1 --rows 64 --ctx 192 --opts '{}' --opts2 '{"decodeLogitsTuned":true}' > "$OUT/breakdown.log" 2>&1
  echo "rc $?"
  grep -E "== |graph replay|lm_head|sum of" "$OUT/breakdown.log" | cut -c1-170
fi
stamp done
