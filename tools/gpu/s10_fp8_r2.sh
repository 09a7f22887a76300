#!/usr/bin/env bash
# Session 10, helper fp8 (issue 14), round 2 (the third version of the round-1 script, queued 13:02, ran as r2) on one H200 (queue job, budget 45 s; llama-3.1-8b-fp8 packed by the batch).
#   test   — tests/gpu/fp8_fused_quant.test.ts (the _vec quantizers = the loops = the unfused kernels, bit for bit),
#            tests/gpu/fp8_fused.test.ts (fp8_gemv1s = fp8_gemv1's bits), tests/gpu/fp8_decode_attention.test.ts FP8 QFOLD
#            cases (decode_attention_sk_fp8kv vs float64, cache bytes, counters, z invariance)
#   quant  — bench/fp8_quant_vec.ts: loops vs _vec at the 8B 2048-token prefill shapes (µs, % of copy, same bytes)
#   e2e    — 8B FP8 + FP8 KV batch 1: default vs vq (fp8VecQuant) vs smem (fp8GemvSmem) vs sk (fp8DecodeSk), TTFT 2048, decode
#   attn   — decode attention per layer at 265 / 1024 keys, batch 1: fused fp8 (least keys 64…256), bf16 sk, sk fp8
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
P8=/tmp/hfmodels/llama-3.1-8b-fp8
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader
stamp "GPU tests: fp8_fused_quant, fp8_fused, fp8_decode_attention (FP8, DA_QFOLD=1 + sk fp8)"
timeout 14 bun test --timeout 120000 tests/gpu/fp8_fused_quant.test.ts tests/gpu/fp8_fused.test.ts > "$OUT/test.log" 2>&1; echo "rc $?"
grep -E "^\(pass|^\(fail|AssertionError|rror:|rounding away" "$OUT/test.log" | head -10 | cut -c1-400
timeout 10 bun test --timeout 120000 tests/gpu/fp8_decode_attention.test.ts -t "fp8kv_bf16_hd.*DA_QFOLD=1" > "$OUT/test_attn.log" 2>&1; echo "rc $?"
grep -E "^\(pass|^\(fail|AssertionError|rror:|^decode_attention" "$OUT/test_attn.log" | head -12 | cut -c1-500
stamp "quantizers: loops vs _vec (2048 rows)"
timeout 6 bun bench/fp8_quant_vec.ts --rows 2048 > "$OUT/quant.log" 2>&1; echo "rc $?"
grep -E "^GPU|^\||rror" "$OUT/quant.log" | cut -c1-300
ls "$P8"/*.safetensors > /dev/null 2>&1 || echo "no FP8 checkpoint at $P8"
left=$((43 - (SECONDS - _t0)))
stamp "8B FP8 + FP8 KV batch 1: default vs vq vs smem vs sk ($left s left)"
timeout "$left" bun bench/fp8_e2e.ts --model $M8 --algos none --packed $P8 --variants default,vq,smem,sk --decode 128 --ttft 2048 --skip-bf16 --profile-decode > "$OUT/e2e8b.log" 2>&1
echo "rc $?"; grep -E "copy bandwidth|^\| |^  |rror" "$OUT/e2e8b.log" | cut -c1-900
left=$((44 - (SECONDS - _t0)))
[ "$left" -gt 3 ] || { stamp "no time left"; exit 0; }
stamp "decode attention per layer, batch 1 ($left s left)"
timeout "$left" bun bench/decode_attn_q8.ts --ctx 265,1024 --batch 1 --min-keys 64,128,256 > "$OUT/attn.log" 2>&1; echo "rc $?"
grep -E "^GPU|^\||rror" "$OUT/attn.log" | cut -c1-300
stamp done
