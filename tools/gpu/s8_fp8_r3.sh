#!/usr/bin/env bash
# Session 8, FP8 batch-1 decode GEMV (issue 14), round r3 on one H200 (queue job, budget 90 s; model llama-3.1-8b):
# the final defaults: fp8Gemv1 on, its ring 8 loads deep (r2's best). Decisive first: correctness vs float64 / the
# 16-row kernel and per-linear timings; the fused-GEMV GPU test; after the device-side pack, the 32-layer chains (2 and 1
# blocks per SM) and 8B FP8 + FP8 KV batch 1 default (fp8Gemv1) vs gemv16 (fp8Gemv1 off); ring-depth variants last.
set -uo pipefail
OUT=${OUT:-/tmp/llmrt-out}
mkdir -p "$OUT"
export NO_COLOR=1 FORCE_COLOR=0 PYTHONUNBUFFERED=1
t0=$SECONDS
stamp() { echo "== [$((SECONDS - t0)) s] $*"; }
M8=/tmp/hfmodels/llama-3.1-8b
P=/tmp/fp8pack
[ "$(df --output=avail -B1G /dev/shm 2> /dev/null | tail -1 | tr -d ' ')" -gt 24 ] 2> /dev/null && P=/dev/shm/fp8pack
P8=$P/l8b
mkdir -p $P
stamp "pack 8B in the background ($P8)"
(timeout 50 python3 tools/quant-packers/pack_fp8_torch.py --model $M8 --out $P8 --calib-seqs 2 --calib-len 128 > "$OUT/pack8b.log" 2>&1; echo "pack8b rc $?" >> "$OUT/pack8b.log") &
pk8=$!
stamp "fp8_gemv1 correctness (8B, 1B shapes) + one layer's linears timed per kind"
timeout 25 bun bench/fp8_gemv1_check.ts --models 8b,1b > "$OUT/check.log" 2>&1
echo "rc $?"; grep -E "^GPU|^check|^\| [18]b|rror|FAIL" "$OUT/check.log" | cut -c1-330
stamp "GPU test: fused FP8 GEMVs (gemv1 on three grids)"
timeout 15 bun test tests/gpu/fp8_fused.test.ts > "$OUT/gpu_tests.log" 2>&1
echo "rc $?"; grep -E "^\(pass|^\(fail|AssertionError|rror:|gemv1" "$OUT/gpu_tests.log" | head -12 | cut -c1-300
wait $pk8
tail -2 "$OUT/pack8b.log" | cut -c1-300
stamp "32-layer GEMV chains: plain / gemv1 (2 blocks per SM; 1 block per SM: room for the next launch's block)"
timeout 14 bun bench/fp8_gemv_tune.ts --models 8b,1b --variants "default;-DFG1_BPS=1" --kinds plain,gemv1 > "$OUT/chain.log" 2>&1
echo "rc $?"; grep -E "copy|^\| [18]b|rror" "$OUT/chain.log" | grep -v -E "BPS=1 \| plain" | cut -c1-200
stamp "8B FP8 + FP8 KV batch 1: default (fp8Gemv1) vs gemv16 (decode-step profile)"
timeout 35 bun bench/fp8_e2e.ts --model $M8 --algos none --packed $P8 --variants default,gemv16 --decode 128 --ttft 2048 --skip-bf16 --profile-decode > "$OUT/e2e8b.log" 2>&1
echo "rc $?"; grep -E "copy bandwidth|^\| |^  |rror" "$OUT/e2e8b.log" | cut -c1-900
left=$((86 - (SECONDS - t0)))
stamp "gemv1 compile-time variants, one 8B layer (timing only; ${left} s left)"
[ "$left" -gt 5 ] && timeout "$left" bun bench/fp8_gemv1_check.ts --models 8b --no-check --variants "default;-DFG1_BPS=1;-DFG1_D=4;-DFG1_D=12;-DFG1_BPS=1 -DFG1_D=12" > "$OUT/variants.log" 2>&1
echo "rc $?"; grep -E "^\| [18]b .*gemv1 \||rror" "$OUT/variants.log" | cut -c1-200
stamp done
