#!/usr/bin/env bash
# Session 5, issue 16 item 2 (helper flash), end to end: flash_prefill checks + timing (default tilings vs the
# previous mma kernel and torch SDPA), TTFT 2048 on llama-3.2-1b with flash_prefill and (same run, a tree copy
# whose flashPrefillGeometry returns undefined) with the previous kernel, transformers eager TTFT beside it,
# the prefill GEMMs at large M vs a measured GEMM ceiling, and tests/gpu/cuda_session.test.ts (vs transformers).
set -uo pipefail
OUT=${OUT:-/tmp/flash-out}
mkdir -p "$OUT"
M=/tmp/hfmodels/llama-3.2-1b
s() { echo "== [$SECONDS s] $*"; }
s kernels
timeout 60 python3 tools/cuda-kernel-check/flash_prefill.py --out "$OUT" --long "${FLASH_LONG:-32768}" > "$OUT/flash_prefill.log" 2>&1
grep -E "FAIL|SUMMARY|TFLOP|failed|rror" "$OUT/flash_prefill.log" | head -40
s ttft flash
LLMRT_BENCH_JSON=$OUT/latency.json timeout 60 bun bench/latency.ts --model $M --prompt-lens 2048 --decode 16 > "$OUT/latency.log" 2>&1
grep -E "TTFT|GPU|rror" "$OUT/latency.log"
s ttft previous kernel
rm -rf /tmp/flash-old && mkdir /tmp/flash-old && cp -a . /tmp/flash-old/ 2>/dev/null
sed -i 's/^  if (headDim === 64) return { rows/  if (headDim < 0) return { rows/; s/^  if (headDim === 128) return { rows/  if (headDim < 0) return { rows/' /tmp/flash-old/lib/backends/cuda/attention_choice.ts
grep -c "headDim < 0" /tmp/flash-old/lib/backends/cuda/attention_choice.ts
(cd /tmp/flash-old && timeout 60 bun bench/latency.ts --model $M --prompt-lens 2048 --decode 16 > "$OUT/latency_old.log" 2>&1)
grep -E "TTFT|rror" "$OUT/latency_old.log"
s transformers
timeout 60 python3 bench/hf_bench.py latency --model $M --prompt-lens 2048 --decode 2 > "$OUT/hf_latency.log" 2>&1
grep -v -i warn "$OUT/hf_latency.log" | tail -3
s gemm
LLMRT_BENCH_JSON=$OUT/prefill_gemm.json timeout 60 bun bench/prefill_gemm.ts --models 1b,8b --ms 256,2048,8192,32768 > "$OUT/prefill_gemm.log" 2>&1
cat "$OUT/prefill_gemm.log" | tail -40
s tests
timeout 120 bun test tests/gpu/flash_prefill.test.ts tests/gpu/cuda_session.test.ts > "$OUT/cuda_session.log" 2>&1
grep -E "pass|fail|rel L2|flash_prefill" "$OUT/cuda_session.log" | tail -30
s done
