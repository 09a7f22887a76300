#!/usr/bin/env bash
# NOT RUN: the session's device time was spent before this round (lead, 15:30 UTC); kept for the next session.
# Session 19 (issue 12), helper int4, round 4 (final, <= 120 s). r3 (same job): MH (shifts as IMAD.HI) -7.6% end to end
# (layer +5 us), XALL -1.2%: both dropped. quantGemvPairX is on by default on this branch (r2: 8B +3.4%, 1B +1.0%, bitwise).
#   test  — tests/gpu/quant_gemv_pairx.test.ts (the fastx pair vs the fast pair bitwise; a W4A16 session with / without
#           quantGemvPairX: prefill and decode logits bitwise), tests/gpu/quant_gemm.test.ts (W4A16 / W8A16 sessions, now with
#           quantGemvPairX on by default), tests/quant_cuda.test.ts -t quant_gemv_fast (the default kernels vs float64)
#   e2e8b — llama-3.1-8b, one process: bf16, then W4A16_AWQ g128 (synthetic) quantGemvPairX off/on/off/on (next session:
#           also --set quantGemvPairX=1 --ab quantGemvPairDown)
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
nvidia-smi --query-gpu=name,clocks.max.sm --format=csv,noheader
stamp "GPU tests"
timeout 50 bun test --timeout 600000 tests/gpu/quant_gemv_pairx.test.ts tests/gpu/quant_gemm.test.ts > "$OUT/gputest.log" 2>&1
echo "rc $?"
grep -E "^\(fail|^\(pass|^ *[0-9]+ (pass|fail|skip)|rror" "$OUT/gputest.log" | cut -c1-200 | head -14
timeout 20 bun test --timeout 600000 tests/quant_cuda.test.ts -t "quant_gemv_fast" > "$OUT/gputest_fast.log" 2>&1
echo "rc $?"
grep -E "^\(fail|^ *[0-9]+ (pass|fail|skip)|rror" "$OUT/gputest_fast.log" | cut -c1-200 | head -6
left=$((115 - (SECONDS - _t0)))
stamp "e2e 8B: bf16 vs W4A16_AWQ g128 (synthetic), quantGemvPairX off/on/off/on ($left s)"
[ "$left" -gt 20 ] && timeout "$left" bun bench/quant_e2e.ts --model "$M8" --algos "" --synthetic-w4 --no-ref --ab quantGemvPairX > "$OUT/e2e8b.log" 2>&1
echo "rc $?"
grep -E "^\| |copy ceiling|quantGemvPairX|rror" "$OUT/e2e8b.log" | cut -c1-420 | head -14
stamp done
