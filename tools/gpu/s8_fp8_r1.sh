#!/usr/bin/env bash
# Session 8, FP8 batch-1 decode GEMV (issue 14), round r1 on one H200 (queue job, budget 150 s; models llama-3.2-1b
# llama-3.1-8b). Decisive first:
#  1. bench/fp8_gemv1_check.ts: the new fp8_gemv1 (persistent grid, contiguous rows per warp, 16-deep load ring) vs
#     float64 and vs the 16-row kernel on 8B / 1B shapes; one layer's linears timed per kind (16row default, 16row_pdl,
#     gemv1old = session 7's, gemv1 = new) against the copy measured in the same process.
#  2. tests/gpu/fp8_fused.test.ts (fused forms, gemv1 on three grids, vs the unfused launches / CPU emulation) and
#     tests/gpu/fp8_kv.test.ts (FP8 / INT8 KV decode over kjv-llama vs the CPU; its rope / attention / merge now PDL).
#  3. 8B FP8 + FP8 KV batch 1 end to end (packed on the device while 1-2 run): default vs fp8Gemv1, decode-step profile
#     (both with this branch's PDL for the FP8-KV rope / attention / merge launches).
#  4. 32-layer GEMV chains (bench/fp8_gemv_tune.ts) and compile-time variants of the new kernel.
# As run in r1 (commit 329f7f1); its gemv1old kind (-DFG1_OLD=1: session 7's fp8_gemv1) was removed after r1.
set -uo pipefail
OUT=${OUT:-/tmp/llmrt-out}
mkdir -p "$OUT"
export NO_COLOR=1 FORCE_COLOR=0 PYTHONUNBUFFERED=1
t0=$SECONDS
stamp() { echo "== [$((SECONDS - t0)) s] $*"; }
H=/tmp/hfmodels
M8=$H/llama-3.1-8b
P=/tmp/fp8pack
# The packed checkpoint in memory when /dev/shm has room (writing 8.5 GB to disk took 10.9 s in session 7).
[ "$(df --output=avail -B1G /dev/shm 2> /dev/null | tail -1 | tr -d ' ')" -gt 24 ] 2> /dev/null && P=/dev/shm/fp8pack
P8=$P/l8b
mkdir -p $P
stamp "pack 8B in the background ($P8)"
(timeout 60 python3 tools/quant-packers/pack_fp8_torch.py --model $M8 --out $P8 --calib-seqs 2 --calib-len 128 > "$OUT/pack8b.log" 2>&1; echo "pack8b rc $?" >> "$OUT/pack8b.log") &
pk8=$!
stamp "fp8_gemv1 correctness (8B, 1B shapes) + one layer's linears timed per kind"
timeout 35 bun bench/fp8_gemv1_check.ts --models 8b,1b > "$OUT/check.log" 2>&1
echo "rc $?"; grep -E "^GPU|^check|^\| [18]b|rror|FAIL" "$OUT/check.log" | cut -c1-330
stamp "GPU tests: fused FP8 GEMVs (gemv1 on three grids); FP8 / INT8 KV (decode launches now PDL) vs the CPU"
timeout 40 bun test tests/gpu/fp8_fused.test.ts tests/gpu/fp8_kv.test.ts > "$OUT/gpu_tests.log" 2>&1
echo "rc $?"; grep -E "^\(pass|^\(fail|AssertionError|rror:|gemv1|rel L2" "$OUT/gpu_tests.log" | head -24 | cut -c1-300
wait $pk8
tail -2 "$OUT/pack8b.log" | cut -c1-300
stamp "8B FP8 + FP8 KV batch 1: default vs fp8Gemv1 (decode-step profile)"
timeout 45 bun bench/fp8_e2e.ts --model $M8 --algos none --packed $P8 --variants default,gemv1 --decode 128 --ttft 2048 --skip-bf16 --profile-decode > "$OUT/e2e8b.log" 2>&1
echo "rc $?"; grep -E "copy bandwidth|^\| |^  |rror" "$OUT/e2e8b.log" | cut -c1-900
stamp "32-layer GEMV chains: plain / pdl / gemv1old / gemv1 (+ variants of gemv1)"
timeout 15 bun bench/fp8_gemv_tune.ts --models 8b,1b --variants "default;-DFG1_D=24 -DFG1_MINB=1" --kinds plain,pdl,gemv1old,gemv1 > "$OUT/chain.log" 2>&1
echo "rc $?"; grep -E "copy|^\| [18]b|rror" "$OUT/chain.log" | grep -v -E "D=24.*\| (plain|pdl|gemv1old) " | cut -c1-200
stamp "gemv1 compile-time variants, one layer (timing only)"
timeout 15 bun bench/fp8_gemv1_check.ts --models 8b --no-check --variants "default;-DFG1_D=12;-DFG1_D=24 -DFG1_MINB=1;-DFG1_D=32 -DFG1_MINB=1" > "$OUT/variants.log" 2>&1
echo "rc $?"; grep -E "^\| [18]b .*gemv1 \||rror" "$OUT/variants.log" | cut -c1-200
stamp done
