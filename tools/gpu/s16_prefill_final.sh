#!/usr/bin/env bash
# Session 16, issue 16 (helper prefill), closing ride (budget 90 s): llama-3.2-1b.
#   ttft  — TTFT 128 / 2048, one process, sessions taking turns (median of 21; max = the rep that captured the graph):
#           default / graphs (prefillGraphs) / default / graphs; logits vs default (bitwise expected), 1 re-run.
#   tests — tests/gpu/prefill_batch_invariance.test.ts (round 2's session mismatch at 1200 rows, and the test model's
#           GEMMs alone at M 300 / 400 / 1200: which linear, bucket pick or reference) and tests/gpu/prefill_graphs.test.ts.
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
stamp "1b TTFT 128 / 2048: default / graphs / default / graphs"
LLMRT_BENCH_JSON=$OUT/ttft_1b.json timeout 45 bun bench/prefill_ttft.ts --model "$M1" --prompt-lens 128,2048 --reps 21 \
  --variants default,graphs,default,graphs --check-runs 1 > "$OUT/ttft_1b.log" 2>&1
echo "rc $?"
grep -E "prompt (128|2048): [a-z0-9+]+ +TTFT|runs|differ|SUMMARY|rror" "$OUT/ttft_1b.log" | cut -c1-200
left=$((85 - (SECONDS - _t0)))
stamp "GPU tests prefill_batch_invariance, prefill_graphs ($left s left)"
[ "$left" -gt 8 ] && timeout "$left" bun test --timeout 600000 tests/gpu/prefill_batch_invariance.test.ts tests/gpu/prefill_graphs.test.ts \
  > "$OUT/tests.log" 2>&1
grep -E "^\(pass|^\(fail|differ|beside|^ *[0-9]+ (pass|fail|skip)$|rror" "$OUT/tests.log" | cut -c1-220 | head -24
stamp done
