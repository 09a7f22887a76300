#!/usr/bin/env bash
# Session 10 closing validation on final main: one job of the batched queue (models: hfrefs llama-3.1-8b
# llama-3.1-8b-fp8), most important first, every step under its own timeout.
#   GPU suite in 3 concurrent processes + cuda_session vs transformers beside it · 8B batch-1 decode + TTFT 2048 ·
#   1B the same with transformers' TTFT (--hf) · 8B bf16 512 × (128,128) · 8B FP8 + FP8 KV 512 × (128,128) and with
#   --defer-decodes 1 · FP8 batch 1 + TTFT 2048 · 8B 32,000-token TTFT · first run · 1B 64 × (128,128)
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
P8=/tmp/hfmodels/llama-3.1-8b-fp8
(timeout 60 bun test --timeout 600000 tests/gpu/cuda_session.test.ts > "$OUT/session.log" 2>&1; echo "rc $?" >> "$OUT/session.log") &
ps=$!
gpu_suite_par gputests 110 3
wait $ps
stamp "cuda_session vs transformers"
grep -E "^\(fail|^ *[0-9]+ (pass|fail|skip)$|^rc" "$OUT/session.log" | cut -c1-300 | head -12
stamp "latency 8B"
timeout 40 bun bench/latency.ts --model $M8 --prompt-lens 2048 --decode 128 > "$OUT/latency_8b.log" 2>&1
grep -E "copy|TTFT|decode batch 1" "$OUT/latency_8b.log" | cut -c1-300 | head -6
stamp "latency 1B with transformers (eager) beside it"
timeout 60 bun bench/latency.ts --model $M1 --prompt-lens 128,2048 --hf > "$OUT/latency_1b.log" 2>&1
grep -E "copy|TTFT|decode batch 1|faster" "$OUT/latency_1b.log" | cut -c1-300 | head -10
thr 8b_512 $M8 512 35
thr 8b_512_fp8kv $P8 512 40
thr 8b_512_fp8kv_defer $P8 512 40 --defer-decodes 1
stamp "8B FP8 + FP8 KV batch 1 and TTFT 2048"
timeout 35 bun bench/fp8_e2e.ts --model $M8 --algos none --packed $P8 --variants default --decode 128 --ttft 2048 --skip-bf16 > "$OUT/fp8_b1.log" 2>&1
echo "rc $?"; grep -E "copy bandwidth|^\| " "$OUT/fp8_b1.log" | head -6 | cut -c1-300
stamp "8B TTFT 32,000 tokens"
timeout 40 bun bench/prefill_ttft.ts --model $M8 --prompt-lens 32000 --reps 1 --variants default > "$OUT/ttft32k.log" 2>&1
echo "rc $?"; grep -E "SUMMARY|TTFT|ms" "$OUT/ttft32k.log" | head -4 | cut -c1-250
first_run
thr 1b_64 $M1 64 20
thr_summary 8b_512 8b_512_fp8kv 8b_512_fp8kv_defer 1b_64
stamp done
