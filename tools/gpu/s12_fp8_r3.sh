#!/usr/bin/env bash
# Session 12, helper fp8 (issue 14), round 3 (budget 45 s; llama-3.1-8b-fp8 = FP8 per-tensor + FP8 KV, random weights).
# The end-to-end A/B of the two new same-bits switches, same job, one process each: 512 × (128,128) (decodeDeferSteps 1,
# the default) A: defaults / B: LLMRT_FP8_DECODE_ATTN_QUANT=1 LLMRT_PREFILL_TILE_SCAN=1; the greedy ids of A and B compared
# (the same bits: 512/512 identical expected, the decode GEMMs' tuned picks shared through the batch's timing cache).
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
P8=/tmp/hfmodels/llama-3.1-8b-fp8
phases() { sed -n '/steps of the timed run/,/^  step 3:/p' "$OUT/t_$1.log" | grep -v "^| ---" | grep -iE "^\| (decode|prefill|mixed)" | cut -c1-200 | head -4; }
thr a512 $P8 512 24 --profile-steps
phases a512
left=$((44 - (SECONDS - _t0)))
LLMRT_FP8_DECODE_ATTN_QUANT=1 LLMRT_PREFILL_TILE_SCAN=1 thr b512 $P8 512 "$left" --profile-steps
phases b512
thr_summary a512 b512
same_ids a512 b512
stamp done
