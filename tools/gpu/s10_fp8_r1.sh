#!/usr/bin/env bash
# Session 10, helper fp8 (issue 14), round 1 on one H200 (queue job, budget 45 s; llama-3.1-8b-fp8 packed by the batch).
#   test   — tests/gpu/fp8_fused_quant.test.ts: the _vec quantizers (fp8VecQuant) = the loops = the unfused kernels, bit for bit
#   quant  — bench/fp8_quant_vec.ts: loops vs _vec at the 8B 2048-token prefill shapes (µs, % of copy, same bytes)
#   e2e    — 8B FP8 + FP8 KV batch 1: default vs vq (fp8VecQuant), TTFT 2048 and decode, prefill + decode-step profiles
#   attn   — fused FP8-KV decode attention per layer at 265 / 1024 keys, batch 1, least keys per split 64…512 (DA_QFOLD 1)
#   gemv1  — fp8_gemv1 per 8B linear + a 1 MB probe (the per-launch fixed cost), default vs FG1_L2PF=32768
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
P8=/tmp/hfmodels/llama-3.1-8b-fp8
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader
stamp "GPU test: fp8_fused_quant (loops / _vec / unfused, bit for bit)"
timeout 12 bun test --timeout 120000 tests/gpu/fp8_fused_quant.test.ts > "$OUT/test.log" 2>&1; echo "rc $?"
grep -E "^\(pass|^\(fail|AssertionError|rror:" "$OUT/test.log" | head -6 | cut -c1-400
stamp "quantizers: loops vs _vec (2048 rows)"
timeout 10 bun bench/fp8_quant_vec.ts --rows 2048 > "$OUT/quant.log" 2>&1; echo "rc $?"
grep -E "^GPU|^\||rror" "$OUT/quant.log" | cut -c1-300
ls "$P8"/*.safetensors > /dev/null 2>&1 || echo "no FP8 checkpoint at $P8"
stamp "8B FP8 + FP8 KV batch 1: default vs vq, profiles"
timeout 25 bun bench/fp8_e2e.ts --model $M8 --algos none --packed $P8 --variants default,vq --decode 128 --ttft 2048 --skip-bf16 --profile-decode --profile > "$OUT/e2e8b.log" 2>&1
echo "rc $?"; grep -E "copy bandwidth|^\| |^  |rror" "$OUT/e2e8b.log" | cut -c1-1500
left=$((44 - (SECONDS - _t0)))
[ "$left" -gt 4 ] || { stamp "no time left"; exit 0; }
stamp "decode attention per layer, batch 1 ($left s left)"
timeout "$((left < 7 ? left : 7))" bun bench/decode_attn_q8.ts --ctx 265,1024 --batch 1 --min-keys 64,128,256,512 > "$OUT/attn.log" 2>&1; echo "rc $?"
grep -E "^GPU|^\||rror" "$OUT/attn.log" | cut -c1-300
left=$((44 - (SECONDS - _t0)))
[ "$left" -gt 4 ] || { stamp "no time left"; exit 0; }
stamp "fp8_gemv1 per linear + probe: default vs FG1_L2PF=32768 ($left s left)"
timeout "$left" bun bench/fp8_gemv1_check.ts --models 8b --no-check --probe --variants "default;-DFG1_L2PF=32768" > "$OUT/gemv1.log" 2>&1; echo "rc $?"
grep -E "^GPU|gemv1 \||rror" "$OUT/gemv1.log" | cut -c1-300
stamp done
