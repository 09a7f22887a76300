#!/usr/bin/env bash
# Session 12 (issue 16 item 1), helper decode, round 3. r2 (same jobs): every TMA form (whole slice, 1- or 2-chunk head in
# shared memory), the L2 prefetch of the rest of the row, LLMRT_PDL_EARLY and the normW L1 prefetch were slower or equal
# on both GEMV chains; gemvTma end to end 8B 4,032 -> 4,613 us, 1B 767 -> 831 us (same bits); decodeArgmax 1B 767 -> 772 us.
# Now the waves: the 8B qkv's 768 blocks at 5 blocks a SM (48-52 registers) run as 1.2 waves. gemvOccupancy: the _xpre
# code at __launch_bounds__(256, 6) (40 registers, a few bytes spilled) for one-row GEMVs.
#   tune — bench/gemv_tune.ts: engine default (-DGF_XPRE=1, first and last) vs GF_MINB 6, GF_MINB 6 + GF_U 2 (no spills),
#          qkv on 2 warps a row (other bits), both
#   ab8b / ab1b — bench/decode_pdl.ts --ab '{"gemvOccupancy":true}': tok/s, graph replay, logits vs the default
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,clocks.max.mem --format=csv,noheader
stamp "gemv_tune variants"
X="-DGF_XPRE=1"
timeout 12 bun bench/gemv_tune.ts --models 8b,1b --kinds step,qkv,o,gu,down --reps 5 \
  "--variants=$X;$X -DGF_MINB=6;$X -DGF_MINB=6 -DGF_U=2;ks:qkv=2 $X;ks:qkv=2 $X -DGF_MINB=6;$X" > "$OUT/tune.log" 2>&1
echo "rc $?"
grep -E "^\||registers|check|ceiling|rror" "$OUT/tune.log" | grep -v -e "---" | cut -c1-200
stamp "8B A default / B gemvOccupancy"
timeout 21 bun bench/decode_pdl.ts --model $M8 --ab '{"gemvOccupancy":true}' --ctx 128,2048 --decode 32 --check 2 > "$OUT/ab8b.log" 2>&1; echo "rc $?"
grep -E "ceiling|tok|vs|rror" "$OUT/ab8b.log" | cut -c1-420 | head -8
left=$((44 - (SECONDS - _t0)))
[ "$left" -gt 6 ] || { stamp "no time left for 1B"; exit 0; }
stamp "1B A default / B gemvOccupancy ($left s)"
timeout "$left" bun bench/decode_pdl.ts --model $M1 --ab '{"gemvOccupancy":true}' --ctx 128,1024 --decode 128 --check 4 > "$OUT/ab1b.log" 2>&1; echo "rc $?"
grep -E "ceiling|tok|vs|rror" "$OUT/ab1b.log" | cut -c1-420 | head -8
stamp done
