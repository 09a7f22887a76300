#!/usr/bin/env bash
# Session 11, issue 16 item 2 (helper prefill), round 3 (budget 45 s): the decision run.
#   ttft  — llama-3.2-1b, prompts 128 / 2048, one process, sessions taking turns: default vs prefillPdl vs rowKernels
#           (rmsnorm_r / silu_mul_r) vs both: TTFT (median of 13), every variant's device step (5 steps back to back,
#           median of 5 rounds), logits bitwise; eager profiles of default and rows (the new kernels' times).
#   tests — tests/gpu/flash_prefill.test.ts (flash_prefill_wg now waits at its entry for a PDL launch), with what is left.
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
stamp "1b TTFT 128 / 2048: default / pdl / rows / pdl+rows"
LLMRT_BENCH_JSON=$OUT/ttft_1b.json timeout 28 bun bench/prefill_ttft.ts --model "$M1" --prompt-lens 128,2048 --reps 13 \
  --variants default,pdl,rows,pdl+rows --profile default,rows > "$OUT/ttft_1b.log" 2>&1
echo "rc $?"
grep -E "ceiling|prompt (128|2048): [a-z+]+ +TTFT|back to back|GEMMs|SUMMARY|rror|^profile|gemm 2048|flash|rmsnorm|rope|silu" "$OUT/ttft_1b.log" | cut -c1-230
left=$((43 - (SECONDS - _t0)))
stamp "GPU test flash_prefill ($left s left)"
timeout "$left" bun test --timeout 600000 tests/gpu/flash_prefill.test.ts > "$OUT/flash_test.log" 2>&1
echo "rc $?"
grep -E "^\(pass|^\(fail|^ *[0-9]+ (pass|fail|skip)$|rel|rror" "$OUT/flash_test.log" | cut -c1-220 | head -20
stamp done
