#!/usr/bin/env bash
# Session 9, issue 16 item 3 (helper tput), round 1 (budget 80 s): where the wall time of the three offline throughput
# runs goes (bench/throughput.ts --profile-steps: executor clocks by phase, time outside the steps, the GPU time of the
# run's prefill and decode steps launch by launch on a second session).
#   8b   — llama-3.1-8b bf16 512 × (128,128)
#   1b   — llama-3.2-1b bf16 64 × (128,128)
#   fp8  — llama-3.1-8b FP8 + FP8 KV 512 × (128,128) (checkpoint packed on the device in the background from the start)
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
P8=/tmp/hfmodels/llama-3.1-8b-fp8
[ -f $P8/config.json ] || (timeout 60 python3 tools/quant-packers/pack_fp8_torch.py --model $M8 --out $P8 --calib-seqs 2 --calib-len 128 > "$OUT/pack8b.log" 2>&1) &
pk=$!
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
thr 8b $M8 512 28 --profile-steps
sed -n '/steps of the timed run/,$p' "$OUT/t_8b.log" | cut -c1-400
thr 1b $M1 64 10 --profile-steps
sed -n '/steps of the timed run/,$p' "$OUT/t_1b.log" | cut -c1-400
wait $pk
tail -1 "$OUT/pack8b.log" 2> /dev/null | cut -c1-200
left=$((77 - SECONDS)); [ "$left" -lt 5 ] && left=5
thr fp8 $P8 512 $left --profile-steps
sed -n '/steps of the timed run/,$p' "$OUT/t_fp8.log" | cut -c1-400
thr_summary 8b 1b fp8
stamp done
