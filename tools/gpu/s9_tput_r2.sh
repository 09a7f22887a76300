#!/usr/bin/env bash
# Session 9, issue 16 item 3 (helper tput), round 2 (budget 80 s): decodeDeferSteps (SchedulerConfig: decode tokens sit
# out one step so that the second 256-prompt batch prefills alone: no mixed 32,768-token step, no 766-token step whose
# 510 decode tokens ran on the prefill attention kernel; r1: 853 + 142 ms of 4.03 s) — before / after in this job.
#   8b   — llama-3.1-8b bf16 512 × (128,128): default, then --defer-decodes 1 (greedy ids compared)
#   fp8  — llama-3.1-8b FP8 + FP8 KV 512 × (128,128): --defer-decodes 1, then default
#   msl  — 8B bf16 --defer-decodes 1 --max-seq-len 256 (decode graphs with one 256-key attention split instead of two,
#          the second empty at these contexts): what the empty split blocks cost (if time is left)
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
P8=/tmp/hfmodels/llama-3.1-8b-fp8
[ -f $P8/config.json ] || (timeout 60 python3 tools/quant-packers/pack_fp8_torch.py --model $M8 --out $P8 --calib-seqs 2 --calib-len 128 > "$OUT/pack8b.log" 2>&1) &
pk=$!
phases() { sed -n '/steps of the timed run/,/^  step 3:/p' "$OUT/t_$1.log" | grep -v "^| ---" | cut -c1-200; }
thr base $M8 512 20 --profile-steps
phases base
thr defer $M8 512 20 --profile-steps --defer-decodes 1
phases defer
same_ids base defer
wait $pk
tail -1 "$OUT/pack8b.log" 2> /dev/null | cut -c1-200
thr fp8defer $P8 512 24 --profile-steps --defer-decodes 1
phases fp8defer
left=$((77 - SECONDS))
if [ "$left" -ge 12 ]; then
  thr fp8base $P8 512 "$left" --profile-steps
  phases fp8base
  same_ids fp8base fp8defer
fi
left=$((78 - SECONDS))
[ "$left" -ge 12 ] && thr msl $M8 512 "$left" --profile-steps --defer-decodes 1 --max-seq-len 256 && phases msl
thr_summary base defer fp8base fp8defer msl
stamp done
