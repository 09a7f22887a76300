#!/usr/bin/env bash
# Session 16 (issue 16 item 1), helper dec8b, closing-call A/B (budget 90 s): gemvNorm6 (off) as it now stands — the qkv
# GEMV on gemv_fused_norm6 (6 blocks an SM, the same sums) only where its grid needs a second wave at 5 blocks an SM but
# fits 6 (llama-3.1-8b: 768 blocks on 132 SMs; llama-3.2-1b's 384-block qkv keeps the default kernel). Round 2 measured the
# ungated form: 8B graph 4,070.0 -> 4,051.3 us at 128 keys, 4,229.1 -> 4,213.5 at 1,024; 1B 771.4 -> 789.4 (slower).
# One process a model, sessions alive at once and timed in turn (7 rounds): A default, Q gemvNorm6, SQ its LLMRT_STAMP build
# (the qkv -> attention transition without round 2's o_proj change mixed in); graph us at 128 / 1,024 keys, synced decode
# tok/s (128 steps), logits vs A bit for bit. The 1B: A / Q only (its launches should not change).
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
V='[{"label":"A default"},{"label":"Q gemvNorm6","opts":{"gemvNorm6":true}},{"label":"SQ stamps+norm6","stamp":true,"opts":{"gemvNorm6":true}}]'
stamp "8B: A / Q / SQ"
LLMRT_BENCH_JSON=$OUT/gaps_8b.json timeout 55 bun bench/decode_gaps.ts --model "$M8" --ctx 128,1024 --stamp-reps 8 --rounds 7 \
  --decode 128 --variants "$V" > "$OUT/gaps_8b.log" 2>&1
echo "rc $?"
grep -E "ceiling|graph ctx|transition| → |rror" "$OUT/gaps_8b.log" | cut -c1-300 | head -24
left=$((86 - (SECONDS - _t0)))
stamp "1B: A / Q ($left s left)"
[ "$left" -gt 10 ] && timeout "$left" bun bench/decode_gaps.ts --model "$M1" --ctx 128,1024 --rounds 7 --decode 128 \
  --variants '[{"label":"A default"},{"label":"Q gemvNorm6","opts":{"gemvNorm6":true}}]' > "$OUT/gaps_1b.log" 2>&1
echo "rc $?"
grep -E "graph ctx|rror" "$OUT/gaps_1b.log" | cut -c1-300
stamp done
