#!/usr/bin/env bash
# Session 5, issue 16 item 2 (helper flash): TTFT of a 32,000-token prompt on llama-3.1-8b (random bf16 weights) with
# flash_prefill (bench/latency.ts: one prefill step + greedy sample + the id on the host, median of 5).
set -uo pipefail
OUT=${OUT:-/tmp/flash-out}
mkdir -p "$OUT"
echo "== [$SECONDS s] 8b ttft 32000"
LLMRT_BENCH_JSON=$OUT/latency_8b.json timeout 100 bun bench/latency.ts --model /tmp/hfmodels/llama-3.1-8b --prompt-lens 32000 --decode 4 > "$OUT/latency_8b.log" 2>&1
echo "rc=$?"
grep -E "TTFT|GPU|rror|build" "$OUT/latency_8b.log"
echo "== [$SECONDS s] done"
