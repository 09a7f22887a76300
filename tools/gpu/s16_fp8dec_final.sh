#!/usr/bin/env bash
# Session 16, helper fp8dec (issue 14): the A/B riding with the lead's closing call (budget 90 s; llama-3.1-8b-fp8 = FP8
# per-tensor + FP8 KV, random weights). On the branch fp8DecodeSkSmall is on by default (decode_attention_sk_fp8kv splits of
# >= 64 keys; r2: 365.3 / 358.7 -> 371.4 / 371.7 tok/s in one process); fp8GemvRow (o_proj on fp8_gemvr, fp8_gemv1's bits)
# stays off (r1 / r2: within the noise, graph -40 us in r2's breakdown).
#   e2e   — bench/fp8_e2e.ts (the closing call's command), one process: default / nosmall / default / nosmall / row / default /
#           row / nosmall (decode tok/s, % of the bytes-allowed bandwidth; nosmall's decode logits differ, row's identical).
#   attn  — bench/decode_attn_q8.ts: sk fp8 alone at 1536 / 2048 keys, batch 1 / 4 (the graph's z 17: with 64-key splits
#           a block takes two), splits of >= 128 (the sk fp8 column) vs >= 64 keys (DS_MINK=64, fp8DecodeSkSmall's partition).
#   split — bench/decode_breakdown.ts at 265 keys: default vs nosmall, as time allows.
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
P8=/tmp/hfmodels/llama-3.1-8b-fp8
stamp "e2e: default (small) / nosmall / default / nosmall / row / default / row / nosmall"
timeout 56 bun bench/fp8_e2e.ts --model $M8 --algos none --packed $P8 --decode 128 --ttft 2048 --skip-bf16 \
  --variants default,nosmall,default,nosmall,row,default,row,nosmall > "$OUT/e2e.log" 2>&1
echo "rc $?"; grep -E "copy ceiling|^\| llama|rror" "$OUT/e2e.log" | cut -c1-250 | head -12
stamp "sk fp8 attention alone at 1536 / 2048 keys (blocks take 2 splits each with >= 64-key splits and the graph's z 17)"
timeout 12 bun bench/decode_attn_q8.ts --ctx 1536,2048 --batch 1,4 --min-keys 128 --max-seq-len 2080 \
  --sk-defines "DS_MINK=64" > "$OUT/attn.log" 2>&1
echo "rc $?"; grep -E "^\| |rror" "$OUT/attn.log" | cut -c1-200 | head -8
left=$((86 - (SECONDS - _t0)))
stamp "breakdown at 265 keys: default vs nosmall ($left s left)"
[ "$left" -gt 15 ] && timeout "$left" bun bench/decode_breakdown.ts --model $P8 --ctx 265 --opts '{}' \
  --opts2 '{"fp8DecodeSkSmall":false}' > "$OUT/split.log" 2>&1
echo "rc $?"; grep -E "^== |graph replay|^  (qkv|paged_att|o_proj|gate_up|down|lm_head)|rror" "$OUT/split.log" | cut -c1-120 | head -20
stamp done
