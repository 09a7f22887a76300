#!/usr/bin/env bash
# Session 11 (issue 16 item 1), helper decode, round 4. r3 (gemv_tune, one process): GF_XPRE (a chunk's x vectors loaded
# with its weights) took the 8B GEMV chain 3885 -> 3651 us (o_proj -15%, down -9%) and the 1B's 647 -> 594 us at the
# same registers; now the engine switch gemvXPre (gemv_fused*_xpre entry points for 1-2 rows, the same sums).
#   tune — bench/gemv_tune.ts: default (first and last) vs GF_XPRE, GF_PIPE (two chunk buffers in turn, the second
#          issued before the wait; fixed since r3), both, GF_XPRE with o_proj on 2 warps a row
#   ab8b / ab1b — bench/decode_pdl.ts --ab '{"gemvXPre":true}': tok/s, graph replay, logits bit for bit vs the default
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,clocks.max.mem --format=csv,noheader
stamp "gemv_tune variants"
timeout 12 bun bench/gemv_tune.ts --models 8b,1b --kinds step,qkv,o,gu,down \
  --variants "default;-DGF_XPRE=1;-DGF_PIPE=1;-DGF_PIPE=1 -DGF_XPRE=1;ks:o=2 -DGF_XPRE=1;default" > "$OUT/tune.log" 2>&1; echo "rc $?"
grep -E "^\||registers|ceiling|rror" "$OUT/tune.log" | grep -v -e "---" | cut -c1-160
stamp "8B A default / B gemvXPre"
timeout 20 bun bench/decode_pdl.ts --model $M8 --ab '{"gemvXPre":true}' --ctx 128,2048 --decode 64 --check 2 > "$OUT/ab8b.log" 2>&1; echo "rc $?"
grep -E "ceiling|tok|vs|rror" "$OUT/ab8b.log" | cut -c1-420 | head -8
left=$((43 - (SECONDS - _t0)))
[ "$left" -gt 5 ] || { stamp "no time left for 1B"; exit 0; }
stamp "1B A default / B gemvXPre ($left s)"
timeout "$left" bun bench/decode_pdl.ts --model $M1 --ab '{"gemvXPre":true}' --ctx 128,1024 --decode 128 --check 4 > "$OUT/ab1b.log" 2>&1; echo "rc $?"
grep -E "ceiling|tok|vs|rror" "$OUT/ab1b.log" | cut -c1-420 | head -8
stamp done
