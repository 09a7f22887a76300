#!/usr/bin/env bash
# Session 12, issue 16 (helper prefill), the closing call (budget 30 s, after the lead's validation, merged main):
# prefillPdl is the one prefill switch with a repeatable 1B gain (sessions 11-12: TTFT 2048 -0.8 .. -1.8%, device step
# -2.0 .. -3.1%, bitwise equal); it stayed off for one 8B measurement (session 11 r4: device step +2.9%, median of 2).
#   8b — llama-3.1-8b TTFT 2048, default vs prefillPdl, one process, median of 7, device step, logits bitwise.
#   1b — llama-3.2-1b TTFT 128 / 2048, default vs prefillPdl, with what is left.
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
stamp "8b TTFT 2048: default vs pdl"
timeout 19 bun bench/prefill_ttft.ts --model "$M8" --prompt-lens 2048 --reps 7 --variants default,pdl > "$OUT/ttft_8b.log" 2>&1
echo "rc $?"
grep -E "ceiling|prompt 2048: [a-z]+ +TTFT|logits|SUMMARY|rror" "$OUT/ttft_8b.log" | cut -c1-230
left=$((29 - (SECONDS - _t0)))
stamp "1b TTFT 128 / 2048: default vs pdl ($left s left)"
[ "$left" -gt 6 ] && timeout "$left" bun bench/prefill_ttft.ts --model "$M1" --prompt-lens 128,2048 --reps 9 --variants default,pdl > "$OUT/ttft_1b.log" 2>&1
grep -E "prompt (128|2048): [a-z]+ +TTFT|SUMMARY|rror" "$OUT/ttft_1b.log" | cut -c1-230
stamp done
