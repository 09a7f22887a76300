#!/usr/bin/env bash
# Session 10, helper fp8 (issue 14), round 2 on one H200 (queue job, budget 45 s; llama-3.1-8b-fp8 packed by the batch).
# r1 (the first job): the _vec prefill quantizers were no faster (add_rmsnorm 21.09 vs 20.69 µs; in the prefill silu
# 1.98 vs 1.71 ms): dropped. Here:
#   test — tests/gpu/fp8_fused.test.ts (fp8_gemv1s = fp8_gemv1's bits), tests/gpu/fp8_decode_attention.test.ts FP8 DA_QFOLD=1
#          cases (+ decode_attention_sk_fp8kv vs float64, cache bytes, counters, z invariance) and rope_kv_write_shadow +
#          kv_dequant_prefix = rope_kv_write + kv_dequant (FP8 / INT8)
#   e2e  — 8B FP8 + FP8 KV batch 1: default vs s10 (all three) vs sk (fp8DecodeSk) vs smem (fp8GemvSmem) vs shadow
#          (fp8ShadowRope); TTFT 2048, decode, decode-step profiles
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
P8=/tmp/hfmodels/llama-3.1-8b-fp8
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader
stamp "GPU tests: fp8_fused (gemv1s), fp8_decode_attention (FP8 QFOLD + sk fp8, shadow rope)"
timeout 13 bun test --timeout 120000 tests/gpu/fp8_fused.test.ts tests/gpu/fp8_decode_attention.test.ts -t "fp8_gemv_fused|fp8kv_bf16_hd.*DA_QFOLD=1|fp8ShadowRope" > "$OUT/test.log" 2>&1; echo "rc $?"
grep -E "^\(pass|^\(fail|AssertionError|rror:|^decode_attention|rounding away" "$OUT/test.log" | head -24 | cut -c1-420
ls "$P8"/*.safetensors > /dev/null 2>&1 || echo "no FP8 checkpoint at $P8"
left=$((44 - (SECONDS - _t0)))
stamp "8B FP8 + FP8 KV batch 1: default, s10, sk, smem, shadow ($left s left)"
timeout "$left" bun bench/fp8_e2e.ts --model $M8 --algos none --packed $P8 --variants default,s10,sk,smem,shadow --decode 128 --ttft 2048 --skip-bf16 --profile-decode > "$OUT/e2e8b.log" 2>&1
echo "rc $?"; grep -E "copy bandwidth|^\| |^  |rror" "$OUT/e2e8b.log" | cut -c1-900
stamp done
