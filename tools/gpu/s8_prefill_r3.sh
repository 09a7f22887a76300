#!/usr/bin/env bash
# Session 8, issue 16 item 2 (helper prefill), round 3 (budget 90 s; if a round runs): the final defaults in one process each.
#   1b — bench/prefill_ttft.ts 2048 tokens, 15 reps: default / noprune / notune (same-process A/B; r2's latency.ts ran
#        after the 8B job and measured 8.47 ms across processes against r1's same-process 8.33).
#   8b — 32,000-token TTFT: default (wgmma for hd128, pruning, per-bucket tuned GEMMs) / flash, 2 reps.
set -uo pipefail
OUT=${OUT:-/tmp/prefill-out}
mkdir -p "$OUT"
s() { echo "== [$SECONDS s] $*"; }
s "1b 2048 A/B"
timeout 30 bun bench/prefill_ttft.ts --model /tmp/hfmodels/llama-3.2-1b --prompt-lens 128,2048 --reps 15 --variants default,noprune,notune \
  > "$OUT/ttft_1b.log" 2>&1
echo "rc=$?"
grep -E "ceiling|prompt (128|2048)|first run|SUMMARY|rror" "$OUT/ttft_1b.log" | cut -c1-230
left=$((87 - SECONDS))
s "8b 32k default / flash (timeout $left s)"
timeout "$left" bun bench/prefill_ttft.ts --model /tmp/hfmodels/llama-3.1-8b --prompt-lens 32000 --reps 2 --variants default,flash \
  > "$OUT/ttft_8b.log" 2>&1
echo "rc=$?"
grep -E "ceiling|prompt 32000|first run|SUMMARY|rror" "$OUT/ttft_8b.log" | cut -c1-230
s done
