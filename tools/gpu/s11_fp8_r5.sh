#!/usr/bin/env bash
# Session 11, helper fp8 (issue 14), round 5 (budget 45 s; llama-3.1-8b-fp8 = FP8 per-tensor + FP8 KV, random weights).
# The task's own metric (bench/fp8_e2e.ts: TTFT 2048 best of 3 after a warm-up, batch-1 decode tok/s over 128 graph steps)
# for default | s11 (fp8GemmResidual, fp8FreshPrompt, fp8FlatQuant, fp8AttnQuant, fp8PruneLastLayer) | s11fast (+ fp8FastSilu),
# one process; then the flash_prefill_wg_q8 GPU check (q8 bytes = flash_prefill_wg + fp8_quantize_bf16) with the time left.
# Not run in session 11 (no device time left after r4).
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
P8=/tmp/hfmodels/llama-3.1-8b-fp8
stamp "8B FP8 + FP8 KV batch 1 + TTFT 2048: default | s11 | s11fast"
timeout 31 bun bench/fp8_e2e.ts --model $M8 --algos none --packed $P8 --variants default,s11,s11fast --decode 128 --ttft 2048 --skip-bf16 > "$OUT/e2e8b.log" 2>&1
echo "rc $?"; grep -E "copy ceiling|^\| |^  |rror" "$OUT/e2e8b.log" | cut -c1-700
left=$((43 - (SECONDS - _t0)))
[ "$left" -gt 4 ] || { stamp "no time left"; exit 0; }
stamp "GPU test: flash_prefill_wg_q8 ($left s left)"
timeout "$left" bun test --timeout 600000 tests/gpu/flash_prefill.test.ts -t "hd128" > "$OUT/test_q8.log" 2>&1; echo "rc $?"
grep -E "^\(pass|^\(fail|AssertionError|rror:|flash_prefill_wg hd128" "$OUT/test_q8.log" | head -8 | cut -c1-300
stamp done
