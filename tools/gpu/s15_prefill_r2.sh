#!/usr/bin/env bash
# Session 15, issue 16 (helper prefill), round 2 (budget 60 s), the last helper round.
# R1 (tools/gpu/s15_prefill_r1.sh): prefillExpPoly and prefillHeadPack no faster (kernel alone: wgtx 75.8 / wgth 69.1 vs wgt
# 66.9 µs; TTFT 2048 7.78 / 7.78 vs 7.72 ms); cuDNN SDPA 57.5 µs. This round: the secondary lever, prefillFastSilu (new,
# off: SiLU·mul with __expf / __fdividef; the accurate math makes silu_mul_bf16 ALU-bound), and the new kernels on the GPU.
#   tests — tests/gpu/silu_mul_fast.test.ts (within one bf16 step of silu_mul_bf16) and tests/gpu/flash_prefill.test.ts
#           (now with wgtx / wgth / wgthx: vs float64, wgth bitwise equal to flash_prefill_wg without a window), in parallel.
#   ttft  — llama-3.2-1b TTFT 128 / 2048, one process, sessions taking turns: default / fsilu / default again (the
#           noise between identical sessions), median of 15; logits vs default; eager profiles of default and fsilu.
# Result: silu_mul_fast 0 of 529,293 outputs differ from silu_mul_bf16; 1B logits bitwise equal; TTFT 2048 7.666 vs
# 7.729 / 7.741 ms (default twice), device step 7.575 vs 7.562 / 7.653; the flash_prefill test did not finish compiling
# in its 22 s (no output). prefillFastSilu stays off.
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
stamp "GPU tests: silu_mul_fast, flash_prefill (parallel)"
timeout 22 bun test --timeout 600000 tests/gpu/silu_mul_fast.test.ts > "$OUT/test_silu.log" 2>&1 &
p1=$!
timeout 22 bun test --timeout 600000 tests/gpu/flash_prefill.test.ts > "$OUT/test_flash.log" 2>&1 &
p2=$!
wait $p1; echo "silu rc $?"
wait $p2; echo "flash rc $?"
grep -hE "^\(pass|^\(fail|outputs differ|wgt|rror|^ *[0-9]+ (pass|fail|skip)$" "$OUT/test_silu.log" "$OUT/test_flash.log" | cut -c1-200 | head -24
left=$((57 - (SECONDS - _t0)))
stamp "1b TTFT 128 / 2048: default / fsilu / default ($left s left)"
[ "$left" -gt 8 ] && LLMRT_BENCH_JSON=$OUT/ttft_1b.json timeout "$left" bun bench/prefill_ttft.ts --model "$M1" --prompt-lens 128,2048 \
  --reps 15 --variants default,fsilu,default --profile default,fsilu > "$OUT/ttft_1b.log" 2>&1
echo "rc $?"
grep -E "prompt (128|2048): [a-z0-9+]+ +TTFT|SUMMARY|rror|^profile|silu|flash_prefill" "$OUT/ttft_1b.log" | cut -c1-200
stamp done
