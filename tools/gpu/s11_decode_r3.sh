#!/usr/bin/env bash
# Session 11 (issue 16 item 1), helper decode, round 3. r2: gemv1 (persistent one-token GEMV, one 16-byte refill at a
# time) streams at ~50% of copy (the weight requests of 2112 warps spread over the whole matrix, 512 B at a time) — far
# slower; o_proj on 2 warps a row −2% (8B) / −20% (1B) per o_proj chain.
#   tune — bench/gemv_tune.ts, one process: the default (first and last) vs gemv_fused with GF_PIPE (next chunk issued
#          before the current is summed) / GF_XPRE (x loaded with the weights) / both; gemv1 refilling 4 slots at once
#          (GV1_G 4: 2 KB bursts a warp as gemv_fused) at 2 / 3 blocks a SM; o_proj split 2
#   ab8b — bench/decode_pdl.ts llama-3.1-8b: A default / B gemvPipe (the same bits) / C gemvSplitSquare (o_proj split 2)
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,clocks.max.mem --format=csv,noheader
stamp "gemv_tune variants"
timeout 15 bun bench/gemv_tune.ts --models 8b,1b --kinds step,qkv,o,gu,down \
  --variants "default;-DGF_PIPE=1;-DGF_XPRE=1;-DGF_PIPE=1 -DGF_XPRE=1;gemv1 -DGV1_G=4;gemv1 -DGV1_G=4 g1b=3;ks:o=2;default" > "$OUT/tune.log" 2>&1; echo "rc $?"
grep -E "^\||registers|ceiling|rror" "$OUT/tune.log" | grep -v -e "---" | cut -c1-160
left=$((43 - (SECONDS - _t0)))
stamp "8B A default / B gemvPipe / C gemvSplitSquare ($left s)"
timeout "$left" bun bench/decode_pdl.ts --model $M8 --ab '{"gemvPipe":true}' --c '{"gemvSplitSquare":true}' --ctx 128,2048 --decode 64 --check 2 > "$OUT/ab8b.log" 2>&1; echo "rc $?"
grep -E "ceiling|tok|vs|rror" "$OUT/ab8b.log" | cut -c1-420 | head -8
stamp done
