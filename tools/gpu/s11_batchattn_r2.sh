#!/usr/bin/env bash
# Session 11 (issues 16 / 14), helper batchattn, round 2: end to end, same job, A default / B LLMRT_BATCH_ATTENTION4=1
# (decode_attention_batch4 for every decode step of more than 8 sequences):
#   FP8 weights + FP8 KV (llama-3.1-8b-fp8) 512 × (128,128) --defer-decodes 1, then llama-3.1-8b bf16 the same (bf16 steps
#   of >= 128 sequences on decode_attention_batch4w: r1's (2 warps, 1 stage, 8 blocks / SM) configuration, 112.4 us a layer at 512).
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
P8=/tmp/hfmodels/llama-3.1-8b-fp8
phases() { sed -n '/steps of the timed run/,/^  step 3:/p' "$OUT/t_$1.log" | grep -v "^| ---" | grep -iE "^\| (decode|prefill)" | cut -c1-200 | head -3; }
thr af $P8 512 17 --profile-steps --defer-decodes 1
phases af
LLMRT_BATCH_ATTENTION4=1 thr bf $P8 512 17 --profile-steps --defer-decodes 1
phases bf
thr a8 $M8 512 17 --profile-steps --defer-decodes 1
phases a8
LLMRT_BATCH_ATTENTION4=1 thr b8 $M8 512 17 --profile-steps --defer-decodes 1
phases b8
thr_summary af bf a8 b8
same_ids af bf
same_ids a8 b8
stamp done
