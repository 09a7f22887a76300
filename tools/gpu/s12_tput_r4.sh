#!/usr/bin/env bash
# Session 12 (issue 16 item 3), helper tput, closing call (budget 30 s, merged main). llama-3.2-1b bf16 64 x (128,128).
# r1-r3: every LLM run with decodeNormFold died in its first folded GEMM (the folded weights' DeviceBuffer was not kept
# referenced: collected and freed); fixed since. Session-level graph at 64 rows: fold 1,217.5 vs 1,219.0 us.
#   probe — the fold through the LLM; A/B — default / fold / batchAttention4Deep alternating, --reps 3 each, twice
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader
stamp "probe: fold"
LLMRT_DECODE_NORM_FOLD=1 timeout 8 bun tools/gpu/s12_tput_probe.ts $M1 > "$OUT/probe.log" 2>&1
echo "rc $?"
grep -v -i warn "$OUT/probe.log" | head -6 | cut -c1-300
thr def1 $M1 64 4 --reps 3
(export LLMRT_DECODE_NORM_FOLD=1; thr fold1 $M1 64 5 --reps 3)
(export LLMRT_BATCH_ATTENTION4_DEEP=1; thr deep1 $M1 64 4 --reps 3)
thr def2 $M1 64 4 --reps 3
(export LLMRT_DECODE_NORM_FOLD=1; thr fold2 $M1 64 4 --reps 3)
(export LLMRT_BATCH_ATTENTION4_DEEP=1; thr deep2 $M1 64 4 --reps 3)
grep -h "runs:" "$OUT"/t_*.log
thr_summary def1 fold1 deep1 def2 fold2 deep2
same_ids def1 fold1
same_ids fold1 fold2
stamp done
