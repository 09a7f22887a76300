#!/usr/bin/env bash
# Session 11, helper fp8 (issue 14), round 2 (budget 45 s; llama-3.1-8b-fp8 = FP8 per-tensor + FP8 KV, random weights).
# r1 (one process): TTFT 2048 default 30.56 ms, fp8resid+fresh 30.11, + fp8flat 29.97 (medians of 9), logits bitwise equal;
# the FP8 engine ran unpruned (planLastLayerRows refused FP8 linears). Here, one process, sessions taking turns:
#   default | a = fp8resid+fresh+fp8flat+fp8warp (fp8NormWarp: the no-add norm quantize one warp a row, same bytes)
#   | b = a + fp8attn (flash_prefill_wg writes o_proj's e4m3 input: must be a's bits)
#   | c = b + fp8prune (the last layer over the logits row only: must be b's bits) | d = c + fastsilu (fp8FastSilu: the
#   SiLU·mul with the hardware exp / division, not bitwise); profiles of c and d.
# Then the GPU test of the flat quantize / warp norm entry points (bytes = the row kernels').
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
P8=/tmp/hfmodels/llama-3.1-8b-fp8
A=fp8resid+fresh+fp8flat+fp8warp
C=$A+fp8attn+fp8prune
stamp "8B FP8 + FP8 KV TTFT 2048: default | a | b | c | d"
timeout 36 bun bench/prefill_ttft.ts --model $P8 --prompt-lens 2048 --reps 9 --variants default,$A,$A+fp8attn,$C,$C+fastsilu \
  --profile $C,$C+fastsilu > "$OUT/ttft.log" 2>&1
echo "rc $?"; grep -E "^prompt|^profile|^  |SUMMARY|rror|sessions in|ceiling" "$OUT/ttft.log" | grep -v "first run" | cut -c1-300 | head -75
left=$((44 - (SECONDS - _t0)))
[ "$left" -gt 4 ] || { stamp "no time left"; exit 0; }
stamp "GPU test: flat FP8 quantize / warp norm entry points ($left s left)"
timeout "$left" bun test --timeout 600000 tests/gpu/fp8_fused_quant.test.ts -t "fp8NormWarp|fp8FastSilu" > "$OUT/test_flat.log" 2>&1; echo "rc $?"
grep -E "^\(pass|^\(fail|AssertionError|rror:|bytes differ" "$OUT/test_flat.log" | head -8 | cut -c1-300
stamp done
