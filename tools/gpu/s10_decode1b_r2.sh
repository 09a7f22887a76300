#!/usr/bin/env bash
# Session 10 (issue 16 item 1), helper decode1b, round 2: gemvDeepLoads (qkv / o_proj / down GEMVs with 8 loads a lane
# in flight instead of 4; the same bits) against the defaults, same process:
#   ab1b  — bench/decode_pdl.ts --ab llama-3.2-1b (tok/s, graph replay, logits bitwise)
#   brk   — bench/decode_breakdown.ts llama-3.2-1b, default vs gemvDeepLoads (time by role)
#   ab8b  — bench/decode_pdl.ts --ab llama-3.1-8b
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,clocks.max.mem --format=csv,noheader
stamp "1B default vs gemvDeepLoads"
timeout 10 bun bench/decode_pdl.ts --model $M1 --ab '{"gemvDeepLoads":true}' --ctx 128,512,2048 --decode 128 --check 4 > "$OUT/ab1b.log" 2>&1; echo "rc $?"
grep -E "ceiling|tok|vs|rror" "$OUT/ab1b.log" | cut -c1-400 | head -8
stamp "1B breakdown default vs gemvDeepLoads"
timeout 9 bun bench/decode_breakdown.ts --model $M1 --ctx 128 --opts2 '{"gemvDeepLoads":true}' > "$OUT/brk1b.log" 2>&1; echo "rc $?"
grep -v "^  #" "$OUT/brk1b.log" | grep -v -i -e warn -e "copy ceiling" | cut -c1-200 | head -30
left=$((39 - (SECONDS - _t0)))
[ "$left" -gt 8 ] || { stamp "no time left for 8B"; exit 0; }
stamp "8B default vs gemvDeepLoads ($left s)"
timeout "$left" bun bench/decode_pdl.ts --model $M8 --ab '{"gemvDeepLoads":true}' --ctx 128,2048 --decode 64 --check 2 > "$OUT/ab8b.log" 2>&1; echo "rc $?"
grep -E "ceiling|tok|vs|rror" "$OUT/ab8b.log" | cut -c1-400 | head -8
stamp done
