#!/usr/bin/env bash
# Session 12 (issue 16 item 3), helper tput, round 1 (budget 45 s): where the 1B 64 x (128,128) run goes on main now
# (batchAttention4 and decodeLogitsTuned on since session 11's closing run).
#   split — default run, --profile-steps --profile-gpu --reps 3 (prefill vs decode steps vs host; GPU launches of each)
#   defer — --defer-decodes 2 vs default (1), alternating, --reps 5 each
#   roles — the 64-row step's graph by role at ctx 192 (bench/decode_breakdown.ts)
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader
phases() { sed -n '/steps of the timed run/,$p' "$OUT/t_$1.log" | grep -E "^\| (prefill|mixed|decode|collect)|runs:|steps span|^  (top|GEMMs)|graph " | cut -c1-400; }
thr split $M1 64 8 --profile-steps --profile-gpu --reps 3
phases split
thr def1 $M1 64 5 --reps 5
thr d2a $M1 64 5 --reps 5 --defer-decodes 2
thr def2 $M1 64 5 --reps 5
thr d2b $M1 64 5 --reps 5 --defer-decodes 2
grep -h "runs:" "$OUT"/t_def1.log "$OUT"/t_d2a.log "$OUT"/t_def2.log "$OUT"/t_d2b.log
thr_summary split def1 d2a def2 d2b
left=$((44 - (SECONDS - _t0)))
echo "left $left s"
if [ "$left" -gt 5 ]; then
  stamp "decode_breakdown 64 rows ctx 192: default"
  timeout "$((left - 1))" bun bench/decode_breakdown.ts --model $M1 --rows 64 --ctx 192 > "$OUT/breakdown.log" 2>&1
  echo "rc $?"
  grep -E "== |graph replay|^  [a-z_ ]+ +[0-9]+ |sum of" "$OUT/breakdown.log" | cut -c1-170
fi
stamp done
