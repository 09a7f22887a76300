#!/usr/bin/env bash
# Session 11 (issue 16 item 3), helper tput, round 4 (budget 45 s): existing switches at the 64-row 1B step, and the
# batch attention's same-warp configurations.
#   A/B       — 1B 64 x (128,128) --reps 5: default, LLMRT_SAMPLE_SPLIT=1 (the argmax of each 128K-logit row over 16
#               blocks), LLMRT_GRAPH_SPLITS=1 (the graph's attention grid sized for the step's longest span), default again
#   attention — batch2_occupancy.py 1B hd64 at 64 sequences: (4 warps, 1 stage, 8 blocks/SM) and (4, 2, 6) against the
#               default (4, 2, 5): the same warps, so the same bits
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader
thr def1 $M1 64 6 --reps 5
(export LLMRT_SAMPLE_SPLIT=1; thr ssplit $M1 64 5 --reps 5)
(export LLMRT_GRAPH_SPLITS=1; thr gsplit $M1 64 5 --reps 5)
thr def2 $M1 64 5 --reps 5
grep -h "runs:" "$OUT"/t_def1.log "$OUT"/t_ssplit.log "$OUT"/t_gsplit.log "$OUT"/t_def2.log
thr_summary def1 ssplit gsplit def2
same_ids def1 ssplit
same_ids def1 gsplit
left=$((44 - (SECONDS - _t0)))
echo "left $left s"
if [ "$left" -gt 6 ]; then
  stamp "batch2 hd64 configurations (same warps)"
  timeout "$((left - 1))" python3 tools/cuda-kernel-check/batch2_occupancy.py --shapes 1b --rows 64 --no-fp8 --hd64-configs "4,1,8;4,2,6" > "$OUT/b2occ.log" 2>&1
  echo "rc $?"
  grep -a -E "us/layer|SUMMARY|ptxas error" "$OUT/b2occ.log" | cut -c1-200 | head -8
fi
stamp done
