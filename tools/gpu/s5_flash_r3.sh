#!/usr/bin/env bash
# Session 5, issue 16 item 2 (helper flash), round 3: the shipped flash_prefill tilings — checks vs float64, timing vs
# the previous mma kernel and torch SDPA (2048 / 8192, hd 64 / 128; 32k hd128); TTFT 128 / 2048 on llama-3.2-1b
# (batch-invariant default, and LLMRT_BATCH_INVARIANT=0: cuBLASLt's per-M heuristic for the prefill GEMMs);
# GPU tests flash_prefill + cuda_session (vs transformers).
set -uo pipefail
OUT=${OUT:-/tmp/flash-out}
mkdir -p "$OUT"
M=/tmp/hfmodels/llama-3.2-1b
s() { echo "== [$SECONDS s] $*"; }
s kernels
timeout 50 python3 tools/cuda-kernel-check/flash_prefill.py --long 32768 --out "$OUT" > "$OUT/flash_prefill.log" 2>&1
grep -E "FAIL|SUMMARY|TFLOP|failed|rror" "$OUT/flash_prefill.log" | head -40
s ttft
LLMRT_BENCH_JSON=$OUT/latency.json timeout 40 bun bench/latency.ts --model $M --prompt-lens 128,2048 --decode 16 > "$OUT/latency.log" 2>&1
grep -E "TTFT|GPU|rror" "$OUT/latency.log"
s ttft not batch-invariant
LLMRT_BATCH_INVARIANT=0 timeout 40 bun bench/latency.ts --model $M --prompt-lens 128,2048 --decode 16 > "$OUT/latency_noninv.log" 2>&1
grep -E "TTFT|rror" "$OUT/latency_noninv.log"
s tests
timeout 60 bun test tests/gpu/flash_prefill.test.ts tests/gpu/cuda_session.test.ts > "$OUT/gpu_tests.log" 2>&1
grep -E "pass|fail|worst|flash_prefill|rror" "$OUT/gpu_tests.log" | tail -20
s done
