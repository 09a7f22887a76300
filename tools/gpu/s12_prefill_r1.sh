#!/usr/bin/env bash
# Session 12, issue 16 (helper prefill), round 1 (budget 45 s):
#   tests — tests/gpu/prefill_rows.test.ts (the new kernels bitwise against the ones they replace).
#   ttft  — llama-3.2-1b, prompts 128 / 2048, one process, sessions taking turns: default vs prefillNormWarp (normw) vs
#           prefillSiluRev (silurev) vs prefillRopeTable (ropetab) vs the three (s12): TTFT (median of 11), device step,
#           logits bitwise; eager profiles of default and s12 (the new kernels' times).
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
stamp "GPU test prefill_rows"
timeout 12 bun test --timeout 600000 tests/gpu/prefill_rows.test.ts > "$OUT/rows_test.log" 2>&1
echo "rc $?"
grep -E "^\(pass|^\(fail|^ *[0-9]+ (pass|fail|skip)$|rror" "$OUT/rows_test.log" | cut -c1-220 | head -10
left=$((43 - (SECONDS - _t0)))
stamp "1b TTFT 128 / 2048: default / normw / silurev / ropetab / s12 ($left s left)"
LLMRT_BENCH_JSON=$OUT/ttft_1b.json timeout "$left" bun bench/prefill_ttft.ts --model "$M1" --prompt-lens 128,2048 --reps 11 \
  --variants default,normw,silurev,ropetab,s12 --profile default,s12 > "$OUT/ttft_1b.log" 2>&1
echo "rc $?"
grep -E "ceiling|prompt (128|2048): [a-z0-9+]+ +TTFT|logits|SUMMARY|rror|^profile|flash|rmsnorm|rope|silu" "$OUT/ttft_1b.log" | cut -c1-230
stamp done
