#!/usr/bin/env bash
# Session 12 (issue 16 item 1), helper decode, the closing call (<= 30 s). decodeArgmax (off): r2's one-process A/B gave the
# 1B graph 767.1 -> 771.9 us at 128 keys (no gain), its synced loop 1,120.8 -> 1,181.4 tok/s (A is the process's first
# session). Since r2 each row's keys are spread over 64 slots by block (r2: one address took the atomics of all 16,032
# lm_head blocks), so this measures the new form. C = the default again, to see the spread between sessions of one process.
#   test — tests/gpu/decode_argmax.test.ts: the _amax lm_head + sample_amax_f32 ids vs sample_f32's (tie, NaN rows, all NaN)
#   ab1b — bench/decode_pdl.ts --ab '{"decodeArgmax":true}' --c '{}'
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,clocks.max.mem --format=csv,noheader
gpu_suite argmax_test 12 tests/gpu/decode_argmax.test.ts
left=$((29 - (SECONDS - _t0)))
[ "$left" -gt 6 ] || { stamp "no time left for the 1B A/B"; exit 0; }
stamp "1B A default / B decodeArgmax / C default ($left s)"
timeout "$left" bun bench/decode_pdl.ts --model $M1 --ab '{"decodeArgmax":true}' --c '{}' --ctx 128,1024 --decode 128 --check 4 > "$OUT/ab1b.log" 2>&1; echo "rc $?"
grep -E "ceiling|tok|vs|rror" "$OUT/ab1b.log" | cut -c1-420 | head -9
stamp done
