#!/usr/bin/env bash
# Session 16, helper fp8dec (issue 14), round 2 (budget 150 s; llama-3.1-8b-fp8 = FP8 per-tensor + FP8 KV, random weights).
# r1: fp8_gemvr = fp8_gemv1 bitwise; end to end rowall 355.5 / 353.6 vs default 359.6 / 364.5 tok/s (slower: qkv on gemvr
# 308 -> 421 us alone, its per-block RMSNorm prologue 768 times), row (o_proj only) 365.2 (noise); the sk FP8 attention
# alone at 265 keys 5.85 us a layer with splits of >= 128 keys, slower with fewer splits (256: 8.24, 512: 8.71).
# New switch (off): fp8DecodeSkSmall — decode_attention_sk_fp8kv splits of >= 64 keys (the split argument's bits 16+):
# at 265 keys 5 splits of one 16-key chunk a warp instead of 3 of two (other decode bits; batch invariance kept).
#   test  — tests/gpu/fp8_decode_attention.test.ts: the sk fp8 kernel with target 64 | 1 << 16 vs float64 (hd 64 / 128,
#           G 4 / 8, windows, grid z 8 / 3), and the session test (fp8DecodeSkSmall + fp8GemvRow + fp8GemvRowNorm vs the
#           default session and the float32 CPU engine).
#   attn  — bench/decode_attn_q8.ts: sk fp8 alone at 265 / 1024 keys, DS_MINK 128 (default) / 64 / 32.
#   e2e   — bench/fp8_e2e.ts one process: default / small / default / small / smallrow / row.
#   split — bench/decode_breakdown.ts at 265 keys: default / small / row (per-role marginals).
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
P8=/tmp/hfmodels/llama-3.1-8b-fp8
stamp "GPU tests: sk fp8 with splits of >= 64 keys; session test"
timeout 34 bun test --timeout 600000 tests/gpu/fp8_decode_attention.test.ts \
  -t "fp8kv_bf16_hd(64|128) \(DA_QFOLD=1\)|fp8DecodeSkSmall" > "$OUT/test.log" 2>&1
echo "rc $?"; grep -E "^\(fail|^\(pass|^ *[0-9]+ (pass|fail|skip)$|rror|^decode_attention_sk|^session 16" "$OUT/test.log" | cut -c1-400 | head -16
stamp "sk fp8 attention alone: DS_MINK 128 / 64 / 32"
timeout 14 bun bench/decode_attn_q8.ts --ctx 265,1024 --batch 1 --min-keys 128 --max-seq-len 2080 \
  --sk-defines "DS_MINK=64;DS_MINK=32" > "$OUT/attn.log" 2>&1
echo "rc $?"; grep -E "^\| |rror" "$OUT/attn.log" | cut -c1-260 | head -6
stamp "e2e: default / small / default / small / smallrow / row"
timeout 50 bun bench/fp8_e2e.ts --model $M8 --algos none --packed $P8 --decode 128 --ttft 2048 --skip-bf16 \
  --variants default,small,default,small,smallrow,row > "$OUT/e2e.log" 2>&1
echo "rc $?"; grep -E "copy ceiling|^\| llama|rror" "$OUT/e2e.log" | cut -c1-330 | head -10
left=$((146 - (SECONDS - _t0)))
stamp "breakdown at 265 keys: default / small / row ($left s left)"
[ "$left" -gt 15 ] && timeout "$left" bun bench/decode_breakdown.ts --model $P8 --ctx 265 --opts '{}' \
  --opts2 '{"fp8DecodeSkSmall":true}' --opts3 '{"fp8GemvRow":true}' > "$OUT/split.log" 2>&1
echo "rc $?"; grep -E "^== |graph replay|^  (qkv|paged_att|o_proj|gate_up|down|lm_head|sum of)|rror" "$OUT/split.log" | cut -c1-160 | head -30
stamp done
