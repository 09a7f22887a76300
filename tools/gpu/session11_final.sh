#!/usr/bin/env bash
# Session 11 closing validation on merged main, run first in the last batched device call (models: hfrefs llama-3.1-8b
# llama-3.1-8b-fp8). The switches proposed for flipping on are set through their environment variables (the same
# resolution as a default of true): batchAttention4, gemvXPre, decodeLogitsTuned and the FP8 prefill set
# (fp8GemmResidual, fp8FreshPrompt, fp8FlatQuant, fp8AttnQuant, fp8PruneLastLayer, fp8FastSilu).
#   GPU suite in 3 concurrent processes + cuda_session vs transformers beside it · 8B batch 1 + TTFT 2048 · 1B batch 1 +
#   TTFT 128 / 2048 · 8B bf16 512 × (128,128) --defer-decodes 1 · 8B FP8 + FP8 KV 512 × (128,128) --defer-decodes 1 ·
#   FP8 batch 1 + TTFT 2048 (default vs s11fast in one process) · 1B 64 × (128,128)
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
P8=/tmp/hfmodels/llama-3.1-8b-fp8
export LLMRT_BATCH_ATTENTION4=1 LLMRT_GEMV_XPRE=1 LLMRT_DECODE_LOGITS_TUNED=1
export LLMRT_FP8_GEMM_RESIDUAL=1 LLMRT_FP8_FRESH_PROMPT=1 LLMRT_FP8_FLAT_QUANT=1 LLMRT_FP8_ATTN_QUANT=1 LLMRT_FP8_PRUNE_LAST_LAYER=1 LLMRT_FP8_FAST_SILU=1
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader
(timeout 60 bun test --timeout 600000 tests/gpu/cuda_session.test.ts > "$OUT/session.log" 2>&1; echo "rc $?" >> "$OUT/session.log") &
ps=$!
gpu_suite_par gputests 100 3
wait $ps
stamp "cuda_session vs transformers"
grep -E "^\(fail|^ *[0-9]+ (pass|fail|skip)$|^rc" "$OUT/session.log" | cut -c1-300 | head -12
stamp "latency 8B"
timeout 35 bun bench/latency.ts --model $M8 --prompt-lens 2048 --decode 128 > "$OUT/latency_8b.log" 2>&1
grep -E "copy|TTFT|decode batch 1" "$OUT/latency_8b.log" | cut -c1-300 | head -6
stamp "latency 1B"
timeout 25 bun bench/latency.ts --model $M1 --prompt-lens 128,2048 > "$OUT/latency_1b.log" 2>&1
grep -E "copy|TTFT|decode batch 1" "$OUT/latency_1b.log" | cut -c1-300 | head -8
thr 8b_512_defer $M8 512 32 --defer-decodes 1
thr 8b_512_fp8kv_defer $P8 512 36 --defer-decodes 1
stamp "8B FP8 + FP8 KV batch 1 and TTFT 2048: default vs s11fast, one process"
env -u LLMRT_FP8_GEMM_RESIDUAL -u LLMRT_FP8_FRESH_PROMPT -u LLMRT_FP8_FLAT_QUANT -u LLMRT_FP8_ATTN_QUANT -u LLMRT_FP8_PRUNE_LAST_LAYER -u LLMRT_FP8_FAST_SILU \
  timeout 40 bun bench/fp8_e2e.ts --model $M8 --algos none --packed $P8 --variants default,s11fast --decode 128 --ttft 2048 --skip-bf16 > "$OUT/fp8_b1.log" 2>&1
echo "rc $?"; grep -E "copy bandwidth|^\| " "$OUT/fp8_b1.log" | head -8 | cut -c1-300
thr 1b_64 $M1 64 18
thr_summary 8b_512_defer 8b_512_fp8kv_defer 1b_64
stamp done
