#!/usr/bin/env bash
# Session 10, after the closing run: llama-3.1-8b FP8 + FP8 KV on final main, whose defaults now include fp8DecodeSk
# and fp8ShadowRope (flipped from the fp8 helper's one-process A/B): batch 1 + TTFT 2048, then the FP8 decode-attention
# GPU tests (the sk kernel vs float64, the shadow equality, the session test).
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
P8=/tmp/hfmodels/llama-3.1-8b-fp8
stamp "8B FP8 + FP8 KV batch 1 and TTFT 2048 (final defaults)"
timeout 35 bun bench/fp8_e2e.ts --model $M8 --algos none --packed $P8 --variants default --decode 128 --ttft 2048 --skip-bf16 > "$OUT/fp8_b1.log" 2>&1
echo "rc $?"; grep -E "copy|^\| |decode step" "$OUT/fp8_b1.log" | head -8 | cut -c1-400
gpu_suite fp8attn 38 tests/gpu/fp8_decode_attention.test.ts
stamp done
