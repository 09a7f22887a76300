#!/usr/bin/env bash
# Session 14 (issue 16 item 1), helper decode, round 2 (~48 s). r1 (gemv_tune, 8B GEMV chain, same bits): the qkv on two
# weight rows a warp (GF_RPW=2) 3,680 -> 3,613 us (qkv 524 -> 469); o_proj on it too 3,685; U 8 on qkv + o 3,654; qkv MINB 6
# U 2 3,635; down capped at 4 blocks a SM 3,910 (the 1B part died on a bpsm launch, fixed).
#   tune1b — the 1B chain: default / qkv RPW 2 / qkv + o RPW 2 / default
#   ab8b / ab1b — the engine switch gemvTwoRows (LLMRT_GEMV_TWO_ROWS, off: the qkv of 1-2 row decode steps on
#          gemv_fused_norm_r2_xpre) end to end, one process each model: A default / B gemvTwoRows — graph replay at 128 /
#          2048 keys, decode tok/s, logits of the checked steps bit for bit, greedy ids.
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,clocks.max.mem --format=csv,noheader
AB=${AB:-'{"gemvTwoRows":true}'}
X="-DGF_XPRE=1"
stamp "1B gemv_tune"
timeout 8 bun bench/gemv_tune.ts --models 1b --kinds step,qkv --reps 5 "--variants=$X;$X qkv:-DGF_RPW=2;$X qkv:-DGF_RPW=2 o:-DGF_RPW=2;$X" > "$OUT/tune.log" 2>&1
echo "rc $?"
grep -E "^\||check|ceiling|rror" "$OUT/tune.log" | grep -v -e "---" | cut -c1-200
stamp "8B A default / B $AB"
timeout 22 bun bench/decode_pdl.ts --model $M8 --ab "$AB" --ctx 128,2048 --decode 32 --check 2 > "$OUT/ab8b.log" 2>&1; echo "rc $?"
grep -E "ceiling|tok|vs|rror" "$OUT/ab8b.log" | cut -c1-420 | head -8
left=$((46 - (SECONDS - _t0)))
[ "$left" -gt 6 ] || { stamp "no time left for 1B"; exit 0; }
stamp "1B A default / B $AB ($left s)"
timeout "$left" bun bench/decode_pdl.ts --model $M1 --ab "$AB" --ctx 128,1024 --decode 128 --check 4 > "$OUT/ab1b.log" 2>&1; echo "rc $?"
grep -E "ceiling|tok|vs|rror" "$OUT/ab1b.log" | cut -c1-420 | head -8
stamp done
