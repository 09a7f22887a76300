#!/usr/bin/env bash
# Session 10, helper fp8 (issue 14), round 3 (the last) on one H200 (queue job, budget 45 s; llama-3.1-8b-fp8).
# r1: the _vec prefill quantizers no faster (dropped). r2: decode_attention_sk_fp8kv hd64 (G 4 / 8) correct vs float64,
# fp8_gemv1s = fp8_gemv1's bits. This job decides the switches fp8DecodeSk, fp8GemvSmem, fp8ShadowRope (all off):
#   e2e  — 8B FP8 + FP8 KV batch 1 in one process: default vs s10 (all three on): decode tok/s, TTFT 2048, decode-step
#          profiles (one by one: the sk / gemv1s kernels against the g4 / gemv1 ones), logits vs default
#   test — a random FP8 + FP8 KV Llama (hd 128, G 4, k % 512) session with the three switches vs the default session and
#          the CPU engine (prompt and a chunk over its cached prefix bitwise equal to the default; graph decode steps);
#          rope_kv_write_shadow + kv_dequant_prefix = rope_kv_write + kv_dequant (FP8 / INT8);
#          decode_attention_sk_fp8kv hd128 G 4 (the 8B) vs float64 + the cache bytes
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
P8=/tmp/hfmodels/llama-3.1-8b-fp8
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader
ls "$P8"/*.safetensors > /dev/null 2>&1 || echo "no FP8 checkpoint at $P8"
stamp "8B FP8 + FP8 KV batch 1: default vs s10"
timeout 28 bun bench/fp8_e2e.ts --model $M8 --algos none --packed $P8 --variants default,s10 --decode 128 --ttft 2048 --skip-bf16 --profile-decode > "$OUT/e2e8b.log" 2>&1
echo "rc $?"; grep -E "copy bandwidth|^\| |^  |rror" "$OUT/e2e8b.log" | cut -c1-900
stamp "session: the three switches vs default vs CPU (FP8 + FP8 KV, hd 128, G 4)"
timeout 8 bun test --timeout 120000 tests/gpu/fp8_decode_attention.test.ts -t "session: fp8DecodeSk" > "$OUT/test_session.log" 2>&1; echo "rc $?"
grep -E "^\(pass|^\(fail|AssertionError|rror:|^session 10" "$OUT/test_session.log" | head -6 | cut -c1-700
left=$((44 - (SECONDS - _t0)))
[ "$left" -gt 2 ] || { stamp "no time left"; exit 0; }
stamp "GPU tests: shadow rope, sk fp8 hd128 ($left s left)"
timeout "$left" bun test --timeout 120000 tests/gpu/fp8_decode_attention.test.ts -t "fp8ShadowRope|decode_attention_g4_fp8kv_bf16_hd128 \(DA_QFOLD=1" > "$OUT/test.log" 2>&1; echo "rc $?"
grep -E "^\(pass|^\(fail|AssertionError|rror:|^decode_attention_sk" "$OUT/test.log" | head -12 | cut -c1-420
stamp done
