#!/usr/bin/env bash
# Session 5, issue 16 item 2 (helper flash), round 2: flash_prefill tiling sweep incl. two-stage variants (checks vs
# float64 first), 32k hd128; pinned-GEMM reference-M sweep; TTFT 2048 on llama-3.2-1b with flash_prefill; the GPU tests
# (flash_prefill, cuda_session vs transformers); transformers eager TTFT; TTFT with the previous kernel (tree copy).
set -uo pipefail
OUT=${OUT:-/tmp/flash-out}
mkdir -p "$OUT"
M=/tmp/hfmodels/llama-3.2-1b
s() { echo "== [$SECONDS s] $*"; }
nvidia-smi --query-gpu=name,clocks.max.sm --format=csv,noheader
s kernels
timeout 70 python3 tools/cuda-kernel-check/flash_prefill.py --variants --long 32768 --out "$OUT" > "$OUT/flash_prefill.log" 2>&1
grep -E "FAIL|SUMMARY|TFLOP|failed|rror" "$OUT/flash_prefill.log" | head -60
s gemm
LLMRT_BENCH_JSON=$OUT/prefill_gemm.json timeout 30 bun bench/prefill_gemm.ts --models 1b,8b --ms 128,256,2048,8192 --refs 256,512,1024,2048 > "$OUT/prefill_gemm.log" 2>&1
tail -40 "$OUT/prefill_gemm.log"
s ttft flash
LLMRT_BENCH_JSON=$OUT/latency.json timeout 45 bun bench/latency.ts --model $M --prompt-lens 128,2048 --decode 16 > "$OUT/latency.log" 2>&1
grep -E "TTFT|GPU|rror|paged_attention|flash" "$OUT/latency.log"
s tests
timeout 100 bun test tests/gpu/flash_prefill.test.ts tests/gpu/cuda_session.test.ts > "$OUT/gpu_tests.log" 2>&1
grep -E "pass|fail|rel L2|flash_prefill|rror" "$OUT/gpu_tests.log" | tail -30
s transformers
timeout 40 python3 bench/hf_bench.py latency --model $M --prompt-lens 128,2048 --decode 2 > "$OUT/hf_latency.log" 2>&1
grep -v -i warn "$OUT/hf_latency.log" | tail -3
s ttft previous kernel
rm -rf /tmp/flash-old && mkdir /tmp/flash-old && cp -a . /tmp/flash-old/ 2>/dev/null
sed -i 's/^  if (headDim === 64) return { rows/  if (headDim < 0) return { rows/; s/^  if (headDim === 128) return { rows/  if (headDim < 0) return { rows/' /tmp/flash-old/lib/backends/cuda/attention_choice.ts
(cd /tmp/flash-old && timeout 40 bun bench/latency.ts --model $M --prompt-lens 128,2048 --decode 16 > "$OUT/latency_old.log" 2>&1)
grep -E "TTFT|rror" "$OUT/latency_old.log"
s done
