#!/usr/bin/env bash
# Session 17, issue 16 item 5 (helper inv), round 2 (budget 150 s, llama-3.2-1b): the hole closed, real shapes untouched.
# Round 1 showed the cause: down 256x8192 had no pinned reference at all (none of the heuristic's first 24 candidates is
# non-split-K), so it took the per-M heuristic; every non-split-K candidate the longer lists hold is M-stable.
#   tests  — tests/gpu/fixed_gemm.test.ts; tests/gpu/prefill_batch_invariance.test.ts (ungated; the prompt before and
#            after another; "nowide": the short search, down on the fixed-order GEMM); tests/gpu/gemm.test.ts (the 1B / 8B
#            shapes' bucket test also asserts no shape on the fixed-order GEMM).
#   survey — bench/invariant_stability.ts: routes and µs a call (engine / fixed-order / per-M heuristic) of the skinny
#            shapes now (wide search), down's candidates with their sources.
#   ttft   — bench/prefill_ttft.ts on llama-3.2-1b, one process: default / nofixed+nowide (session 16's GEMM routing) /
#            default, TTFT 128 / 2048, logits bitwise against the first variant.
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
stamp "GPU tests fixed_gemm, prefill_batch_invariance, gemm"
timeout 90 bun test --timeout 600000 tests/gpu/fixed_gemm.test.ts tests/gpu/prefill_batch_invariance.test.ts tests/gpu/gemm.test.ts > "$OUT/tests.log" 2>&1
echo "rc $?"
grep -E "^\(fail|^\(pass|differ from alone|on the fixed-order|bucket checks|fixed-order GEMM \(no|row counts|shifted|^ *[0-9]+ (pass|fail|skip)$|rror" "$OUT/tests.log" \
  | grep -v " 0 of 512 logits" | cut -c1-240 | head -40
grep -c " 0 of 512 logits differ" "$OUT/tests.log"
left=$((140 - (SECONDS - _t0)))
stamp "1B TTFT 128 / 2048: default / nofixed+nowide / default ($left s left)"
[ "$left" -gt 10 ] && LLMRT_BENCH_JSON=$OUT/ttft_1b.json timeout $((left < 50 ? left : 50)) bun bench/prefill_ttft.ts --model "$M1" --prompt-lens 128,2048 \
  --reps 7 --variants default,nofixed+nowide,default > "$OUT/ttft_1b.log" 2>&1
echo "rc $?"
grep -E "TTFT|logits|rror" "$OUT/ttft_1b.log" | cut -c1-190
left=$((140 - (SECONDS - _t0)))
stamp "survey: routes and timings of the skinny shapes ($left s left)"
[ "$left" -gt 8 ] && timeout "$left" bun bench/invariant_stability.ts --shapes down,n128k8192,n512k8192,n256k4096 --time 300,2048 --max-checked 40 --all \
  > "$OUT/survey.log" 2>&1
echo "rc $?"
grep -E "^==|^   M|rror" "$OUT/survey.log" | cut -c1-220
grep -E "STABLE|unstable" "$OUT/survey.log" | head -6
stamp done
