#!/usr/bin/env bash
# Session 17, issue 16 item 5 (helper inv), round 1 (budget 150 s): the prefill batch-invariance hole.
#   tests  — tests/gpu/fixed_gemm.test.ts (new: the fixed-order GEMM vs float64; rows at every M 1..2048 = M 2048) and
#            tests/gpu/prefill_batch_invariance.test.ts, ungated (down 256x8192 routed to the fixed-order GEMM).
#   survey — bench/invariant_stability.ts: per shape, every non-split-K cuBLASLt algorithm (heuristic for M 256 / 1024 /
#            2048 + custom options) M-stable or not at M 16/64/300/1200/2048, the engine's route, and µs a call at
#            M 300 / 2048 (engine / fixed-order / per-M heuristic); then down's tile / stage / cluster re-configurations.
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
stamp "GPU tests fixed_gemm, prefill_batch_invariance"
timeout 75 bun test --timeout 600000 tests/gpu/fixed_gemm.test.ts tests/gpu/prefill_batch_invariance.test.ts > "$OUT/tests.log" 2>&1
echo "rc $?"
grep -E "^\(pass|^\(fail|differ|max abs|routed|bucket checks|^ *[0-9]+ (pass|fail|skip)$|rror" "$OUT/tests.log" | cut -c1-220 | head -40
left=$((140 - (SECONDS - _t0)))
stamp "stability survey + routes + timings ($left s left)"
[ "$left" -gt 10 ] && timeout $((left < 45 ? left : 45)) bun bench/invariant_stability.ts --shapes down,qkv,o_proj,gate_up,down1b,qkv1b,n128k8192,n512k8192,n256k4096 \
  --time 300,2048 --max-checked 120 > "$OUT/survey.log" 2>&1
echo "rc $?"
grep -E "^==|^   M|rror" "$OUT/survey.log" | cut -c1-220
grep -c STABLE "$OUT/survey.log"
left=$((140 - (SECONDS - _t0)))
stamp "down 256x8192: re-configurations ($left s left)"
[ "$left" -gt 8 ] && timeout "$left" bun bench/invariant_stability.ts --shapes down --variants --max-checked 300 > "$OUT/variants.log" 2>&1
echo "rc $?"
grep -E "^==|rror" "$OUT/variants.log" | cut -c1-220
grep STABLE "$OUT/variants.log" | head -5
stamp done
