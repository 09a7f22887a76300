#!/usr/bin/env bash
# Session 16, helper fp8dec (issue 14): the capped fp8DecodeSkSmall (budget 90 s; llama-3.1-8b-fp8, random weights). After r3
# (64-key splits slower at 1,536 / 2,048 keys, where the graph's 17-split grid gives a block two of them) the kernel takes
# 64-key splits only while a span needs at most (target + 1) / 2 = 17 of them (<= 1,088 keys here); longer spans keep the
# 128-key partition, bit for bit.
#   test — tests/gpu/fp8_decode_attention.test.ts (hd 128 sk fp8 with the 64-key argument vs float64; the session test).
#   attn — bench/decode_attn_q8.ts: sk fp8 alone, 128-key splits vs the engine's fp8DecodeSkSmall launch, 265…2048 keys.
#   e2e  — bench/fp8_e2e.ts one process: default (small) / nosmall / default / nosmall.
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
P8=/tmp/hfmodels/llama-3.1-8b-fp8
stamp "GPU tests (hd 128 sk fp8 kernel; session test)"
timeout 24 bun test --timeout 600000 tests/gpu/fp8_decode_attention.test.ts \
  -t "fp8kv_bf16_hd128 \(DA_QFOLD=1\)|fp8DecodeSkSmall" > "$OUT/test.log" 2>&1
echo "rc $?"; grep -E "^\(fail|^\(pass|^ *[0-9]+ (pass|fail|skip)$|rror|^session 16" "$OUT/test.log" | cut -c1-300 | head -10
stamp "sk fp8 alone: 128-key splits vs fp8DecodeSkSmall as launched"
timeout 12 bun bench/decode_attn_q8.ts --ctx 265,1024,1536,2048 --batch 1 --min-keys 128 --max-seq-len 2080 --sk-small \
  > "$OUT/attn.log" 2>&1
echo "rc $?"; grep -E "^\| |rror" "$OUT/attn.log" | cut -c1-220 | head -8
left=$((86 - (SECONDS - _t0)))
stamp "e2e: default (small) / nosmall / default / nosmall ($left s left)"
[ "$left" -gt 20 ] && timeout "$left" bun bench/fp8_e2e.ts --model $M8 --algos none --packed $P8 --decode 128 --ttft 2048 \
  --skip-bf16 --variants default,nosmall,default,nosmall > "$OUT/e2e.log" 2>&1
echo "rc $?"; grep -E "copy ceiling|^\| llama|rror" "$OUT/e2e.log" | cut -c1-220 | head -8
stamp done
