#!/usr/bin/env bash
# Session 16 (lead), closing ride (budget 50 s): decodeSkOneSplit as merged (on by default) against off, one process a
# model: bench/decode_pdl.ts --ab (A = the defaults, B = decodeSkOneSplit false): graph replay at 128 / 192 / 256 / 320
# keys (320: the same partition either way) and decode tok/s over 128 steps after a 128-token prompt. Then the prefill
# batch-invariance hole test with LLMRT_INVARIANCE_HOLES=1 (gemm.ts now requires the reference to round rows alike by M).
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
for m in "$M1" "$M8"; do
  n=$(basename "$m")
  stamp "$n: A default (decodeSkOneSplit on) / B off"
  timeout $([ "$m" = "$M8" ] && echo 30 || echo 16) bun bench/decode_pdl.ts --model "$m" --ab '{"decodeSkOneSplit":false}' --ctx 128,192,256,320 --decode 128 --check 8 > "$OUT/ab_$n.log" 2>&1
  echo "rc $?"; grep -E "decode .* tokens/s|logits" "$OUT/ab_$n.log" | cut -c1-330
done
stamp "prefill batch invariance (the session-16 hole)"
LLMRT_INVARIANCE_HOLES=1 timeout 60 bun test --timeout 600000 tests/gpu/prefill_batch_invariance.test.ts > "$OUT/invariance.log" 2>&1
echo "rc $?"; grep -E "^\(pass|^\(fail|differ|^ *[0-9]+ (pass|fail|skip)$|rror" "$OUT/invariance.log" | cut -c1-250 | head -24
stamp done
