#!/usr/bin/env bash
# Session 16 (lead), round 2 (budget 150 s), as it ran (the switch was then reshaped into decodeSkOneSplit: one split up
# to 256 keys, the default partition above; FP8 KV caches excluded; fp8_e2e's 'wide' variant removed): decodeSkWideSplits (decode_attention_sk splits of >= 256 keys instead of 128,
# so batch-1 decode after a 128-token prompt — spans 129..256 — attends in one block per kv group with no split merge).
# Round 1 showed the 8B graph at 128 keys 4,030 µs vs latency.ts's graph at ~257 keys 4,173 µs (1B 766 vs 835): the
# step from 1 to 2 splits costs ~4.4 µs a layer.
#   test — tests/gpu/decode_sk.test.ts -t decodeSkWideSplits (alone / bucket 8 / eager bitwise; vs 128-key splits)
#   8b / 1b — bench/decode_pdl.ts --ab: graph replay at 128..1024 keys, decode tok/s (128 steps after a 128-token prompt)
#   fp8 — bench/fp8_e2e.ts variants default / wide / default / wide (FP8 + FP8 KV batch 1: the same kernel, Q8)
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
P8=/tmp/hfmodels/llama-3.1-8b-fp8
stamp "GPU test"
timeout 40 bun test --timeout 600000 tests/gpu/decode_sk.test.ts -t decodeSkWideSplits > "$OUT/test.log" 2>&1
echo "rc $?"; grep -E "^\(pass|^\(fail|head dim|^ *[0-9]+ (pass|fail|skip)$|rror" "$OUT/test.log" | cut -c1-250 | head -8
stamp "8B A/B"
timeout 45 bun bench/decode_pdl.ts --model "$M8" --ab '{"decodeSkWideSplits":true}' --ctx 128,192,256,320,512,1024 --decode 128 --check 8 > "$OUT/ab_8b.log" 2>&1
echo "rc $?"; grep -vE "^\s*$" "$OUT/ab_8b.log" | tail -14 | cut -c1-250
stamp "1B A/B"
timeout 25 bun bench/decode_pdl.ts --model "$M1" --ab '{"decodeSkWideSplits":true}' --ctx 128,192,256,320,512,1024 --decode 128 --check 8 > "$OUT/ab_1b.log" 2>&1
echo "rc $?"; grep -vE "^\s*$" "$OUT/ab_1b.log" | tail -14 | cut -c1-250
left=$((146 - (SECONDS - _t0)))
stamp "FP8 batch 1: default / wide / default / wide ($left s left)"
[ "$left" -gt 20 ] && timeout "$left" bun bench/fp8_e2e.ts --model "$M8" --algos none --packed "$P8" --decode 128 --skip-bf16 --variants default,wide,default,wide > "$OUT/fp8.log" 2>&1
echo "rc $?"; grep -E "copy bandwidth|^\| " "$OUT/fp8.log" | head -8 | cut -c1-250
stamp done
