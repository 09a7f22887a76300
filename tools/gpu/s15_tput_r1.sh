#!/usr/bin/env bash
# Session 15 (issues 14 / 16), helper tput, round 1 (budget 200 s; models: llama-3.2-1b llama-3.1-8b-fp8).
# The closing call's throughput invocations (tools/gpu/session14_closing.sh: `thr NAME MODEL N LIMIT`), every run with
# BUN_JSC_logGC=1 (JSC's GC log: cycles, pauses, heap after) and the new bench flags --mem (rss / heap by phase, timed-run
# markers on stderr) and --profile-steps (the last timed run by phase), so A and B differ only in the setting named.
#   1. host weights (session 14's release after the upload, never measured on a GPU): keepHostWeights false (default) vs
#      true (--keep-host-weights); 1B 64 x (128,128) --reps 5 twice each, 8B FP8 + FP8 KV 512 x (128,128) --reps 3.
#   2. schedule / graph knobs (greedy ids compared with the default's):
#      --max-seq-len 256 (the bench's default is 288 = in + out + 32: batch-invariant decode graphs then launch a second
#        attention split of 256 keys whose blocks all return at once — 4,096 empty blocks a layer at 512 rows, 512 at 64);
#      --max-num-tokens 65536 (8B: one prefill step of 512 prompts instead of two of 256).
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
P8=/tmp/hfmodels/llama-3.1-8b-fp8
export BUN_JSC_logGC=1
F=(--mem --profile-steps)
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader
thr 1b_a1 $M1 64 15 --reps 5 "${F[@]}"
thr 1b_k1 $M1 64 15 --reps 5 "${F[@]}" --keep-host-weights
thr 1b_s1 $M1 64 15 --reps 5 "${F[@]}" --max-seq-len 256
thr 1b_a2 $M1 64 15 --reps 5 "${F[@]}"
thr 1b_k2 $M1 64 15 --reps 5 "${F[@]}" --keep-host-weights
thr 1b_s2 $M1 64 15 --reps 5 "${F[@]}" --max-seq-len 256
thr 8b_a1 $P8 512 38 --reps 3 "${F[@]}"
thr 8b_k1 $P8 512 38 --reps 3 "${F[@]}" --keep-host-weights
thr 8b_s1 $P8 512 38 --reps 3 "${F[@]}" --max-seq-len 256
thr 8b_t1 $P8 512 40 --reps 3 "${F[@]}" --max-num-tokens 65536
left=$((192 - (SECONDS - _t0)))
echo "left $left s"
[ "$left" -gt 30 ] && thr 8b_a2 $P8 512 $((left - 2)) --reps 3 "${F[@]}"
stamp "summary"
python3 tools/gpu/s15_tput_gc.py "$OUT" 1b_a1 1b_k1 1b_s1 1b_a2 1b_k2 1b_s2 8b_a1 8b_k1 8b_s1 8b_t1 8b_a2
thr_summary 1b_a1 1b_k1 1b_s1 1b_a2 1b_k2 1b_s2 8b_a1 8b_k1 8b_s1 8b_t1 8b_a2
same_ids 1b_a1 1b_k1
same_ids 1b_a1 1b_s1
same_ids 1b_a1 1b_a2
same_ids 8b_a1 8b_k1
same_ids 8b_a1 8b_s1
same_ids 8b_a1 8b_t1
stamp done
