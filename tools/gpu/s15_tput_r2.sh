#!/usr/bin/env bash
# Session 15 (issues 14 / 16), helper tput, round 2 (budget 90 s; models: llama-3.2-1b llama-3.1-8b-fp8).
# r1 (tools/gpu/s15_tput_r1.sh): with the host weights released (session 14's default) the JS heap drops from 2.4 GB (1B) /
# 21.7 GB (8B FP8) to ~20 MB once collected, so JSC collects 1-2x per 1B timed run (29 MB eden budget; 2.6-4.6 ms of
# pauses) and 9-10x per 8B run (49 MB; 22-27 ms) instead of 0 / 2x with the weights kept. This tree's executor makes
# less garbage a step (stub session: GC cycles 3 -> 1 / 24 -> 14 in 10 runs of 64 / 512 sequences); this job counts the
# GC cycles per timed run again with the closing call's invocation (same flags as r1: BUN_JSC_logGC=1, --mem,
# --profile-steps), and A/Bs graphSplits once more (r1: 1B decode step medians 1.225-1.251 ms vs 1.239-1.270 default, 8B
# no change; ids identical): three alternating 1B pairs, the 64-row graph replayed by a session with and without it
# (timeDecodeLaunches now replays the split variant a step picks), 8B default, then the 8B 512-row graph A/B.
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
P8=/tmp/hfmodels/llama-3.1-8b-fp8
export BUN_JSC_logGC=1
F=(--mem --profile-steps)
AB='{"default":{"graphSplits":false},"gs":{"graphSplits":true}}'
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader
for i in 1 2 3; do
  thr 1b_a$i $M1 64 12 --reps 5 "${F[@]}"
  (export LLMRT_GRAPH_SPLITS=1; thr 1b_g$i $M1 64 12 --reps 5 "${F[@]}")
done
thr 1b_ab $M1 64 14 --ab-rows 64 --ab-opts "$AB"
grep -E "^A/B|^  default|^  gs|rror" "$OUT/t_1b_ab.log" | cut -c1-300
thr 8b_a $P8 512 34 --reps 3 "${F[@]}"
left=$((86 - (SECONDS - _t0)))
echo "left $left s"
if [ "$left" -gt 24 ]; then
  thr 8b_gab $P8 512 $((left - 1)) --ab-rows 512 --ab-opts "$AB"
  grep -E "^A/B|^  default|^  gs|rror" "$OUT/t_8b_gab.log" | cut -c1-300
fi
stamp "summary"
R=(1b_a1 1b_g1 1b_a2 1b_g2 1b_a3 1b_g3 8b_a)
python3 tools/gpu/s15_tput_gc.py "$OUT" "${R[@]}" | grep -v "mem after load\|mem after warm"
thr_summary "${R[@]}" 8b_gab
same_ids 1b_a1 1b_g1
same_ids 1b_a1 1b_a3
same_ids 8b_a 8b_gab
stamp done
