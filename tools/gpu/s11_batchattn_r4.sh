#!/usr/bin/env bash
# Session 11 (issues 16 / 14), helper batchattn, round 4: end to end, FP8 weights + FP8 KV (llama-3.1-8b-fp8) 512 × (128,128)
# --defer-decodes 1, same job: A default (decode_attention_batch2_fp8kv) / B LLMRT_BATCH_ATTENTION4=1 (decode_attention_batch4_fp8kv
# with r3's fast cp.async issue). r2's FP8 pair ran out of its 17 s slots (the FP8 checkpoint's load is ~20 s). Then llama-3.1-8b
# bf16 with batchAttention4 once more (c8): r3's kernel (register merge, fast issue) must give r2's b8 ids bit for bit.
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
P8=/tmp/hfmodels/llama-3.1-8b-fp8
phases() { sed -n '/steps of the timed run/,/^  step 3:/p' "$OUT/t_$1.log" | grep -v "^| ---" | grep -iE "^\| (decode|prefill|mixed)" | cut -c1-200 | head -4; }
thr af $P8 512 26 --profile-steps --defer-decodes 1
phases af
LLMRT_BATCH_ATTENTION4=1 thr bf $P8 512 26 --profile-steps --defer-decodes 1
phases bf
LLMRT_BATCH_ATTENTION4=1 thr c8 $M8 512 15 --profile-steps --defer-decodes 1
phases c8
thr_summary af bf c8
same_ids af bf
grep -m1 -i "^model " "$OUT/t_af.log" | cut -c1-250
stamp done
