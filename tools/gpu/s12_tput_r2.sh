#!/usr/bin/env bash
# Session 12 (issue 16 item 3), helper tput, round 2 (budget 45 s). llama-3.2-1b bf16 64 x (128,128).
# r1: decodeNormFold passed its GPU test (small Llamas) but the 1B throughput runs with it failed (a bare SuppressedError).
# Since: per-M cuBLASLt GEMMs that add into C in place plan apart (no split-K reducing in the output buffer, tuned with
# beta 1), and a probe prints the first error of an LLM run.
#   probe — tools/gpu/s12_tput_probe.ts with the fold (64 x (128, 8))
#   A/B   — default vs decodeNormFold alternating, --reps 5 each (first pair --profile-steps)
#   deep  — fold + batchAttention4Deep (hd64 batch attention on 4 warps); pf — fold + decodeL2Prefetch (same bits as fold)
#   test  — the in-place per-M GEMM test (tests/gpu/gemm.test.ts), tests/gpu/norm_fold.test.ts's batch4d case; breakdown — the 64-row step by role, default vs fold
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader
phases() { sed -n '/steps of the timed run/,$p' "$OUT/t_$1.log" | grep -E "^\| (prefill|mixed|decode|collect)|runs:|steps span" | cut -c1-300; }
stamp "probe: fold"
LLMRT_DECODE_NORM_FOLD=1 timeout 12 bun tools/gpu/s12_tput_probe.ts $M1 > "$OUT/probe.log" 2>&1
echo "rc $?"
grep -v -i warn "$OUT/probe.log" | head -30 | cut -c1-300
thr def1 $M1 64 6 --reps 5 --profile-steps
phases def1
(export LLMRT_DECODE_NORM_FOLD=1; thr fold1 $M1 64 6 --reps 5 --profile-steps)
phases fold1
thr def2 $M1 64 5 --reps 5
(export LLMRT_DECODE_NORM_FOLD=1; thr fold2 $M1 64 5 --reps 5)
(export LLMRT_DECODE_NORM_FOLD=1 LLMRT_BATCH_ATTENTION4_DEEP=1; thr deep $M1 64 6 --reps 5)
(export LLMRT_DECODE_NORM_FOLD=1 LLMRT_DECODE_L2_PREFETCH=1; thr pf $M1 64 5 --reps 5)
grep -h "runs:" "$OUT"/t_def1.log "$OUT"/t_fold1.log "$OUT"/t_def2.log "$OUT"/t_fold2.log "$OUT"/t_deep.log "$OUT"/t_pf.log
thr_summary def1 fold1 def2 fold2 deep pf
same_ids def1 fold1
same_ids fold1 fold2
same_ids fold1 pf
same_ids fold1 deep
stamp "bun test: in-place per-M GEMM"
timeout 6 bun test --timeout 600000 tests/gpu/gemm.test.ts -t "per-M tuned GEMM adding" > "$OUT/test_gemm.log" 2>&1
echo "rc $?"
grep -E "^\(fail|^\(pass|worst" "$OUT/test_gemm.log" | cut -c1-900
left=$((44 - (SECONDS - _t0)))
echo "left $left s"
if [ "$left" -gt 8 ]; then
  stamp "bun test: norm_fold batch4d"
  timeout 8 bun test --timeout 600000 tests/gpu/norm_fold.test.ts -t "batch4d" > "$OUT/test_deep.log" 2>&1
  echo "rc $?"
  grep -E "^\(fail|^\(pass|decodeNormFold hd" "$OUT/test_deep.log" | cut -c1-700
fi
left=$((44 - (SECONDS - _t0)))
if [ "$left" -gt 5 ]; then
  stamp "decode_breakdown 64 rows ctx 192: default vs fold"
  timeout "$((left - 1))" bun bench/decode_breakdown.ts --model $M1 --rows 64 --ctx 192 --opts '{}' --opts2 '{"decodeNormFold":true}' > "$OUT/breakdown.log" 2>&1
  echo "rc $?"
  grep -E "== |graph replay|^  [a-z_ ]+ +[0-9]+ |sum of" "$OUT/breakdown.log" | cut -c1-170
fi
stamp done
