#!/usr/bin/env bash
# Session 12 closing validation on merged main, run first in the last batched device call (models: hfrefs llama-3.1-8b
# llama-3.1-8b-fp8). Defaults as committed (no switch set through the environment unless named below).
#   GPU suite in 3 concurrent processes + cuda_session vs transformers beside it · 8B batch 1 + TTFT 2048 · 1B batch 1 +
#   TTFT 128 / 2048 · 8B bf16 512 × (128,128) · 8B FP8 + FP8 KV 512 × (128,128) (twice) · FP8 batch 1 + TTFT 2048 ·
#   1B 64 × (128,128)
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
P8=/tmp/hfmodels/llama-3.1-8b-fp8
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader
(timeout 60 bun test --timeout 600000 tests/gpu/cuda_session.test.ts > "$OUT/session.log" 2>&1; echo "rc $?" >> "$OUT/session.log") &
ps=$!
gpu_suite_par gputests 110 3
wait $ps
stamp "cuda_session vs transformers"
grep -E "^\(fail|^ *[0-9]+ (pass|fail|skip)$|^rc" "$OUT/session.log" | cut -c1-300 | head -12
stamp "latency 8B"
timeout 35 bun bench/latency.ts --model $M8 --prompt-lens 2048 --decode 128 > "$OUT/latency_8b.log" 2>&1
grep -E "copy|TTFT|decode batch 1" "$OUT/latency_8b.log" | cut -c1-300 | head -6
stamp "latency 1B"
timeout 25 bun bench/latency.ts --model $M1 --prompt-lens 128,2048 > "$OUT/latency_1b.log" 2>&1
grep -E "copy|TTFT|decode batch 1" "$OUT/latency_1b.log" | cut -c1-300 | head -8
thr 8b_512 $M8 512 32
thr 8b_512_fp8kv $P8 512 36
thr 8b_512_fp8kv_b $P8 512 36
stamp "8B FP8 + FP8 KV batch 1 and TTFT 2048"
timeout 40 bun bench/fp8_e2e.ts --model $M8 --algos none --packed $P8 --decode 128 --ttft 2048 --skip-bf16 > "$OUT/fp8_b1.log" 2>&1
echo "rc $?"; grep -E "copy bandwidth|^\| " "$OUT/fp8_b1.log" | head -8 | cut -c1-300
thr 1b_64 $M1 64 18
thr_summary 8b_512 8b_512_fp8kv 8b_512_fp8kv_b 1b_64
stamp done
