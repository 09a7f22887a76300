#!/usr/bin/env bash
# Session 12 (issue 16 item 3), helper tput, round 1 (budget 45 s). llama-3.2-1b bf16 64 x (128,128):
#   A/B — default vs decodeNormFold (LLMRT_DECODE_NORM_FOLD=1: the 32 layer norms of > 8-sequence decode steps folded
#         into qkv / gate_up, adds in the o_proj / down GEMMs), alternating, --reps 5 each; the first pair with
#         --profile-steps (the run's split: prefill step, decode steps, host)
#   test — tests/gpu/norm_fold.test.ts (folded logits vs the CPU session and the default session, graphs = eager)
#   deep — decodeNormFold + batchAttention4Deep (hd64 batch attention on 4 warps), one run, if time is left
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader
phases() { sed -n '/steps of the timed run/,$p' "$OUT/t_$1.log" | grep -E "^\| (prefill|mixed|decode|collect)|runs:|steps span" | cut -c1-300; }
thr def1 $M1 64 6 --reps 5 --profile-steps
phases def1
(export LLMRT_DECODE_NORM_FOLD=1; thr fold1 $M1 64 14 --reps 5 --profile-steps)
phases fold1
thr def2 $M1 64 5 --reps 5
(export LLMRT_DECODE_NORM_FOLD=1; thr fold2 $M1 64 5 --reps 5)
grep -h "runs:" "$OUT"/t_def2.log "$OUT"/t_fold2.log
thr_summary def1 fold1 def2 fold2
same_ids def1 fold1
same_ids def1 def2
gpu_suite normfold_test 16 tests/gpu/norm_fold.test.ts
grep -E "decodeNormFold hd" "$OUT/normfold_test.log" | cut -c1-900
left=$((44 - (SECONDS - _t0)))
echo "left $left s"
if [ "$left" -gt 6 ]; then
  # batchAttention4Deep with the fold: the hd64 batch attention on 4 warps a block
  (export LLMRT_DECODE_NORM_FOLD=1 LLMRT_BATCH_ATTENTION4_DEEP=1; thr deep1 $M1 64 "$((left - 1))" --reps 5)
  grep -h "runs:" "$OUT"/t_deep1.log
  thr_summary deep1
fi
stamp done
