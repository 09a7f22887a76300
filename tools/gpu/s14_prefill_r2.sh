#!/usr/bin/env bash
# Session 14, issue 16 (helper prefill), round 2 (budget 45 s), the last helper round:
#   1b — llama-3.2-1b TTFT 128 / 2048, median of 11, one process: default / pdl / rq (prefillRopeQ, now with the hd 64 _rq
#        entry points bounded to 2 blocks an SM: r1's ran one block an SM at 129 registers, +7.7%) / pdl+rq / pcache
#        (prefillPlanCache; r1: TTFT 128 1.99 -> 1.65, 2048 7.85 -> 7.64 ms) / pdl+pcache; logits vs default (bitwise
#        expected), 1 re-run; eager profiles of default and rq (attention and RoPE kernels).
#   8b — llama-3.1-8b TTFT 2048, median of 11: default / pdl (r1: TTFT 49.03 -> 48.42, device step 48.62 -> 49.22) / rq.
#   test — tests/gpu/prefill_rope_q.test.ts (the _rq / _tab kernels vs the launches they replace, bitwise), if time is left.
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
stamp "1b TTFT 128 / 2048: default / pdl / rq / pdl+rq / pcache / pdl+pcache"
LLMRT_BENCH_JSON=$OUT/ttft_1b.json timeout 17 bun bench/prefill_ttft.ts --model "$M1" --prompt-lens 128,2048 --reps 11 \
  --variants default,pdl,rq,pdl+rq,pcache,pdl+pcache --check-runs 1 --profile default,rq > "$OUT/ttft_1b.log" 2>&1
echo "rc $?"
grep -E "prompt (128|2048): [a-z+]+ +TTFT|runs|differ|SUMMARY|rror|^profile|flash_prefill|rope_kv" "$OUT/ttft_1b.log" | cut -c1-200
left=$((42 - (SECONDS - _t0)))
stamp "8b TTFT 2048: default / pdl / rq ($left s left)"
[ "$left" -gt 8 ] && LLMRT_BENCH_JSON=$OUT/ttft_8b.json timeout "$left" bun bench/prefill_ttft.ts --model "$M8" --prompt-lens 2048 \
  --reps 11 --variants default,pdl,rq > "$OUT/ttft_8b.log" 2>&1
echo "rc $?"
grep -E "engine \+|prompt 2048: [a-z+]+ +TTFT|SUMMARY|rror" "$OUT/ttft_8b.log" | cut -c1-200
left=$((43 - (SECONDS - _t0)))
stamp "GPU test prefill_rope_q ($left s left)"
[ "$left" -gt 4 ] && timeout "$left" bun test --timeout 600000 tests/gpu/prefill_rope_q.test.ts > "$OUT/rq_test.log" 2>&1
grep -E "^\(pass|^\(fail|bitwise|differs|^ *[0-9]+ (pass|fail|skip)$|rror" "$OUT/rq_test.log" | cut -c1-200 | head -8
stamp done
