#!/usr/bin/env bash
# Session 16, helper fp8dec (issue 14), round 1 (budget 150 s; llama-3.1-8b-fp8 = FP8 per-tensor + FP8 KV, random weights).
# New switches (off): fp8GemvRow / fp8GemvRowNorm — the one-token FP8 GEMVs of <= 4096 in-features (o_proj + residual;
# qkv with its RMSNorm prologue) on fp8_gemvr_fused{,_norm}_bf16: one weight row a warp on short-lived blocks (<= 85
# registers, 3 a SM), the whole 4 KB row issued before pdlWait, fp8_gemv1's bits — the bf16 decode GEMVs' form, so the
# decode attention / the next GEMV can start beside the last blocks (fp8_gemv1's persistent grid fills the register file).
#   test   — tests/gpu/fp8_gemvr.test.ts: fp8_gemvr = fp8_gemv1 bit for bit (8B qkv / o_proj shapes, modes 0 / 1 / 3, static
#            and per-token scales), mode 3 vs the CPU emulation (float64 sums of the same e4m3 bytes).
#   e2e    — bench/fp8_e2e.ts (the closing call's command), one process: default / rowall / rownorm / row / default / rowall
#            (decode tok/s, % of the bytes-allowed bandwidth; logits vs the first: bitwise expected).
#   split  — bench/decode_breakdown.ts at 265 keys: default vs rowall (graph step, per-role marginal / alone µs).
#   attn   — bench/decode_attn_q8.ts: decode_attention_sk_fp8kv alone (32 layers a graph, the engine's graph geometry at
#            maxSeqLen 2080) with splits of >= 128 (default) / 256 / 512 keys: is the 265-key step's 3-split merge its fixed cost?
#   tune   — bench/fp8_gemv_tune.ts 8B chain without attention: gemv1 vs gemvr (qkv + o_proj), FGR_MINB 3 / 4 / 2, registers.
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
P8=/tmp/hfmodels/llama-3.1-8b-fp8
stamp "fp8_gemvr GPU test"
timeout 30 bun test --timeout 600000 tests/gpu/fp8_gemvr.test.ts > "$OUT/test.log" 2>&1
echo "rc $?"; grep -E "^\(fail|^\(pass|^ *[0-9]+ (pass|fail|skip)$|error|max relative" "$OUT/test.log" | cut -c1-220 | head -16
stamp "e2e: default / rowall / rownorm / row / default / rowall"
timeout 52 bun bench/fp8_e2e.ts --model $M8 --algos none --packed $P8 --decode 128 --ttft 2048 --skip-bf16 \
  --variants default,rowall,rownorm,row,default,rowall > "$OUT/e2e.log" 2>&1
echo "rc $?"; grep -E "copy ceiling|^\| llama|rror" "$OUT/e2e.log" | cut -c1-330 | head -10
left=$((140 - (SECONDS - _t0)))
stamp "breakdown at 265 keys: default vs rowall ($left s left)"
[ "$left" -gt 15 ] && timeout $((left > 40 ? 40 : left)) bun bench/decode_breakdown.ts --model $P8 --ctx 265 --opts '{}' \
  --opts2 '{"fp8GemvRow":true,"fp8GemvRowNorm":true}' > "$OUT/split.log" 2>&1
echo "rc $?"; grep -E "^== |graph replay|^  (qkv|paged_att|o_proj|gate_up|down|lm_head|sum of)|rror" "$OUT/split.log" | cut -c1-160 | head -24
left=$((136 - (SECONDS - _t0)))
stamp "FP8-KV attention alone at 265 / 1024 keys: sk fp8 with splits of >= 128 / 256 / 512 keys ($left s left)"
[ "$left" -gt 8 ] && timeout $((left > 16 ? 16 : left)) bun bench/decode_attn_q8.ts --ctx 265,1024 --batch 1 --min-keys 128 \
  --max-seq-len 2080 --sk-defines "DS_MINK=256;DS_MINK=512" > "$OUT/attn.log" 2>&1
echo "rc $?"; grep -E "^\| |rror" "$OUT/attn.log" | cut -c1-260 | head -6
left=$((146 - (SECONDS - _t0)))
stamp "8B GEMV chain: gemv1 vs gemvr ($left s left)"
[ "$left" -gt 8 ] && timeout "$left" bun bench/fp8_gemv_tune.ts --models 8b --kinds gemv1,gemvr \
  --variants "default;-DFGR_MINB=4;-DFGR_MINB=2" > "$OUT/tune.log" 2>&1
echo "rc $?"; grep -E "registers|^\| 8b|rror" "$OUT/tune.log" | cut -c1-200 | head -12
stamp done
