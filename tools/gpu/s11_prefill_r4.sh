#!/usr/bin/env bash
# Session 11, issue 16 item 2 (helper prefill), round 4 (budget 45 s): prefillPdl before its default flips.
#   1b — llama-3.2-1b, prompts 128 / 2048, default vs prefillPdl, one process: TTFT (median of 9), device step, and the
#        logits of 20 more runs of each against the default's first (bitwise: a kernel that read its input before its
#        predecessor finished would show as differing bits).
#   8b — llama-3.1-8b (head dim 128: flash_prefill_wg's OVL entry), prompts 2048 / 32000, default vs prefillPdl: TTFT,
#        logits bitwise.
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
stamp "1b: default vs pdl, 20 check runs"
timeout 11 bun bench/prefill_ttft.ts --model "$M1" --prompt-lens 128,2048 --reps 9 --variants default,pdl --check-runs 20 > "$OUT/ttft_1b.log" 2>&1
echo "rc $?"
grep -E "ceiling|prompt (128|2048): |SUMMARY|rror" "$OUT/ttft_1b.log" | grep -v "first run" | cut -c1-230
left=$((43 - (SECONDS - _t0)))
stamp "8b: default vs pdl at 2048 / 32000 ($left s left)"
timeout "$left" bun bench/prefill_ttft.ts --model "$M8" --prompt-lens 2048,32000 --reps 2 --variants default,pdl > "$OUT/ttft_8b.log" 2>&1
echo "rc $?"
grep -E "ceiling|engine|prompt (2048|32000): |SUMMARY|rror" "$OUT/ttft_8b.log" | cut -c1-230
stamp done
