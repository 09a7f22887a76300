#!/usr/bin/env bash
# Session 6, issue 16 item 2 (helper flash), round 2: batch-invariant prefill GEMMs with M buckets (gemm.ts
# invariantBuckets): the GPU test (rows bitwise equal to the single pinned algorithm up to M 4096), the prefill
# GEMM table (pinned@256 vs bucketed vs cuBLASLt's per-M heuristic, 1B/8B, ceiling in the same process), TTFT
# 128/2048 on llama-3.2-1b (bucketed default, then LLMRT_BATCH_INVARIANT=0) with the prefill step's launch
# profile, transformers eager TTFT beside.
set -uo pipefail
OUT=${OUT:-/tmp/flash-out}
mkdir -p "$OUT"
M=/tmp/hfmodels/llama-3.2-1b
s() { echo "== [$SECONDS s] $*"; }
s gemm test
timeout 40 bun test tests/gpu/gemm.test.ts > "$OUT/gemm_test.log" 2>&1
grep -E "pass|fail|differ|bucket|rror" "$OUT/gemm_test.log" | grep -v "^invariant\|^heuristic" | tail -14
s prefill gemm
LLMRT_BENCH_JSON=$OUT/prefill_gemm.json timeout 40 bun bench/prefill_gemm.ts --models 1b,8b --ms 128,512,2048,8192 --refs 256 > "$OUT/prefill_gemm.log" 2>&1
grep -E "ceiling|M=|bucketed|rror" "$OUT/prefill_gemm.log"
s ttft bucketed
LLMRT_BENCH_JSON=$OUT/latency.json timeout 40 bun bench/latency.ts --model $M --prompt-lens 128,2048 --decode 8 > "$OUT/latency.log" 2>&1
grep -E "TTFT|rror" "$OUT/latency.log"
sed -n '/^prefill of/,/^llmrt decode/p' "$OUT/latency.log" | head -24
s ttft not batch-invariant
LLMRT_BATCH_INVARIANT=0 timeout 30 bun bench/latency.ts --model $M --prompt-lens 128,2048 --decode 8 > "$OUT/latency_noninv.log" 2>&1
grep -E "TTFT|rror|gemm" "$OUT/latency_noninv.log" | head -12
s transformers
timeout 40 python3 bench/hf_bench.py latency --model $M --prompt-lens 128,2048 --decode 2 > "$OUT/hf_latency.log" 2>&1
grep -v -i warn "$OUT/hf_latency.log" | tail -3
s done
