#!/usr/bin/env bash
# Session 12, helper fp8 (issue 14), round 1 (budget 45 s; llama-3.1-8b-fp8 = FP8 per-tensor + FP8 KV, random weights).
# Where the time goes, one process: 512 × (128,128) (the default, decodeDeferSteps 1; a CPU run of the real Scheduler
# shows --defer-decodes 2 / 3 give the same 129 steps: 2 prefill-only steps of 32,768 tokens, 127 decode steps of 512),
# --profile-steps (phases), --profile-gpu (the 32,768-token prefill step and the 512-row decode step launch by launch),
# then bench/decode_breakdown.ts's breakdown (new --breakdown-rows: the same engine) of the batch-1 step and of the
# 512-row step at context 192: each role's marginal cost in the graph, alone, and the eager launches by kernel.
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
P8=/tmp/hfmodels/llama-3.1-8b-fp8
phases() { sed -n '/steps of the timed run/,/^  step 3:/p' "$OUT/t_$1.log" | grep -v "^| ---" | grep -iE "^\| (decode|prefill|mixed)" | cut -c1-200 | head -4; }
thr f512 $P8 512 43 --profile-steps --profile-gpu --breakdown-rows 1,512 --breakdown-ctx 192
phases f512
grep -E "^GPU time|^prefill |^decode |^  top|^  GEMMs|^ctx |sum of marginals|^== " "$OUT/t_f512.log" | cut -c1-900
thr_summary f512
stamp done
