#!/usr/bin/env bash
# Session 12 (issue 16 item 3), helper tput, round 3 (budget 45 s). llama-3.2-1b bf16 64 x (128,128).
# r2: LLM runs with decodeNormFold hit CUDA_ERROR_ILLEGAL_ADDRESS (Session-level breakdown fine: 1232.7 vs 1218.8 us, the
# rms in the attention / silu_mul and the in-place o_proj / down GEMMs ate the 31 norms). Since: folded weights made after
# the kernels load, the adds out of place into a second residual buffer, the residual row's loads issued earlier.
#   probe — the fold through the LLM (graphs; then eager + CUDA_LAUNCH_BLOCKING=1 if it fails: the launch is named)
#   A/B   — default vs decodeNormFold alternating, --reps 5 (first pair --profile-steps); deep / pf (batchAttention4Deep,
#           decodeL2Prefetch) alone vs default; breakdown default vs fold; the GPU test if time is left
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader
phases() { sed -n '/steps of the timed run/,$p' "$OUT/t_$1.log" | grep -E "^\| (prefill|mixed|decode|collect)|runs:|steps span" | cut -c1-300; }
stamp "probe: fold"
LLMRT_DECODE_NORM_FOLD=1 timeout 10 bun tools/gpu/s12_tput_probe.ts $M1 > "$OUT/probe.log" 2>&1
echo "rc $?"
grep -v -i warn "$OUT/probe.log" | head -12 | cut -c1-300
if ! grep -q "probe ok" "$OUT/probe.log"; then
  stamp "probe: fold, eager, CUDA_LAUNCH_BLOCKING=1"
  LLMRT_DECODE_NORM_FOLD=1 LLMRT_CUDA_GRAPHS=0 CUDA_LAUNCH_BLOCKING=1 timeout 10 bun tools/gpu/s12_tput_probe.ts $M1 > "$OUT/probe2.log" 2>&1
  echo "rc $?"
  grep -v -i warn "$OUT/probe2.log" | head -12 | cut -c1-300
fi
thr def1 $M1 64 6 --reps 5 --profile-steps
phases def1
(export LLMRT_DECODE_NORM_FOLD=1; thr fold1 $M1 64 6 --reps 5 --profile-steps)
phases fold1
thr def2 $M1 64 5 --reps 5
(export LLMRT_DECODE_NORM_FOLD=1; thr fold2 $M1 64 5 --reps 5)
(export LLMRT_BATCH_ATTENTION4_DEEP=1; thr deep $M1 64 5 --reps 5)
(export LLMRT_DECODE_L2_PREFETCH=1; thr pf $M1 64 5 --reps 5)
grep -h "runs:" "$OUT"/t_def1.log "$OUT"/t_fold1.log "$OUT"/t_def2.log "$OUT"/t_fold2.log "$OUT"/t_deep.log "$OUT"/t_pf.log
thr_summary def1 fold1 def2 fold2 deep pf
same_ids def1 def2
same_ids def1 fold1
same_ids fold1 fold2
same_ids def1 pf
same_ids def1 deep
left=$((44 - (SECONDS - _t0)))
echo "left $left s"
if [ "$left" -gt 6 ]; then
  stamp "decode_breakdown 64 rows ctx 192: default vs fold"
  timeout "$((left > 14 ? 8 : left - 1))" bun bench/decode_breakdown.ts --model $M1 --rows 64 --ctx 192 --opts '{}' --opts2 '{"decodeNormFold":true}' > "$OUT/breakdown.log" 2>&1
  echo "rc $?"
  grep -E "== |graph replay|^  [a-z_ ]+ +[0-9]+ |sum of" "$OUT/breakdown.log" | cut -c1-170
fi
left=$((44 - (SECONDS - _t0)))
if [ "$left" -gt 5 ]; then
  stamp "bun test: norm_fold hd64"
  timeout "$((left - 1))" bun test --timeout 600000 tests/gpu/norm_fold.test.ts -t "hd64 G4\\)" > "$OUT/test_fold.log" 2>&1
  echo "rc $?"
  grep -E "^\(fail|^\(pass|decodeNormFold hd" "$OUT/test_fold.log" | cut -c1-700
fi
stamp done
