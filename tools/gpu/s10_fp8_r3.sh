#!/usr/bin/env bash
# Session 10, helper fp8 (issue 14), round 3 (the last) on one H200 (queue job, budget 45 s; llama-3.1-8b-fp8).
# r1: the _vec prefill quantizers no faster (dropped). r2: decode_attention_sk_fp8kv hd64 (G 4 / 8) correct vs float64.
# This job decides the switches fp8DecodeSk, fp8GemvSmem, fp8ShadowRope (all off by default):
#   test — fp8_gemv1s = fp8_gemv1's bits (tests/gpu/fp8_fused.test.ts); rope_kv_write_shadow + kv_dequant_prefix = rope_kv_write
#          + kv_dequant (FP8 / INT8); decode_attention_sk_fp8kv hd128 G 4 (the 8B) vs float64 + the cache bytes; kjv-llama
#          FP8 KV sessions vs the CPU engine with the three switches on (environment)
#   e2e  — 8B FP8 + FP8 KV batch 1 in one process: default vs s10 (all three) vs sk (fp8DecodeSk only): decode tok/s, TTFT 2048
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
P8=/tmp/hfmodels/llama-3.1-8b-fp8
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader
stamp "GPU tests: gemv1s, shadow rope, sk fp8 hd128"
timeout 11 bun test --timeout 120000 tests/gpu/fp8_fused.test.ts tests/gpu/fp8_decode_attention.test.ts -t "fp8_gemv_fused|fp8ShadowRope|decode_attention_g4_fp8kv_bf16_hd128 \(DA_QFOLD=1" > "$OUT/test.log" 2>&1; echo "rc $?"
grep -E "^\(pass|^\(fail|AssertionError|rror:|^decode_attention_sk|rounding away" "$OUT/test.log" | head -16 | cut -c1-420
stamp "kjv-llama FP8 KV sessions vs CPU with LLMRT_FP8_DECODE_SK / GEMV_SMEM / SHADOW_ROPE = 1"
LLMRT_FP8_DECODE_SK=1 LLMRT_FP8_GEMV_SMEM=1 LLMRT_FP8_SHADOW_ROPE=1 timeout 7 bun test --timeout 120000 tests/gpu/fp8_kv.test.ts -t "kjv-llama with an FP8" > "$OUT/test_kjv.log" 2>&1; echo "rc $?"
grep -E "^\(pass|^\(fail|AssertionError|rror:|^kjv" "$OUT/test_kjv.log" | head -6 | cut -c1-420
ls "$P8"/*.safetensors > /dev/null 2>&1 || echo "no FP8 checkpoint at $P8"
left=$((44 - (SECONDS - _t0)))
stamp "8B FP8 + FP8 KV batch 1: default vs s10 vs sk ($left s left)"
timeout "$left" bun bench/fp8_e2e.ts --model $M8 --algos none --packed $P8 --variants default,s10,sk --decode 128 --ttft 2048 --skip-bf16 --profile-decode > "$OUT/e2e8b.log" 2>&1
echo "rc $?"; grep -E "copy bandwidth|^\| |^  |rror" "$OUT/e2e8b.log" | cut -c1-900
stamp done
