#!/usr/bin/env bash
# Session 14, issue 16 (helper prefill), round 1 (budget 45 s):
#   8b — the decision run for prefillPdl (off since session 11 for one 8B measurement, session 11 r4: device step +2.9%,
#        median of 2; session 12's closing 8B side was lost): llama-3.1-8b TTFT 2048, default vs pdl, one process, median
#        of 9, device step, logits bitwise.
#   1b — llama-3.2-1b TTFT 128 / 2048, median of 9, one process: default / pdl / rq (prefillRopeQ: q's RoPE in the
#        flash_prefill_wg Q load, RoPE writes k / v and cos / sin rows only) / pdl+rq / pcache (prefillPlanCache: a step
#        reuses the launch list of an earlier step of its shape); logits vs default (bitwise expected for all), 1 re-run.
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
stamp "8b TTFT 2048: default vs pdl"
LLMRT_BENCH_JSON=$OUT/ttft_8b.json timeout 25 bun bench/prefill_ttft.ts --model "$M8" --prompt-lens 2048 --reps 9 \
  --variants default,pdl > "$OUT/ttft_8b.log" 2>&1
echo "rc $?"
grep -E "engine \+|ceiling|prompt 2048: [a-z+]+ +TTFT|logits|SUMMARY|rror" "$OUT/ttft_8b.log" | cut -c1-230
left=$((43 - (SECONDS - _t0)))
stamp "1b TTFT 128 / 2048: default / pdl / rq / pdl+rq / pcache ($left s left)"
[ "$left" -gt 6 ] && LLMRT_BENCH_JSON=$OUT/ttft_1b.json timeout "$left" bun bench/prefill_ttft.ts --model "$M1" \
  --prompt-lens 128,2048 --reps 9 --variants default,pdl,rq,pdl+rq,pcache --check-runs 1 > "$OUT/ttft_1b.log" 2>&1
echo "rc $?"
grep -E "engine \+|prompt (128|2048): [a-z+]+ +TTFT|runs|differ|SUMMARY|rror" "$OUT/ttft_1b.log" | cut -c1-230
stamp done
