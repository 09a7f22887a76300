#!/usr/bin/env bash
# Session 16 (issue 16 item 1), helper dec8b, round 2 (budget 150 s). Round 1's stamps (bench/decode_gaps.ts, LLMRT_STAMP)
# showed the 8B qkv running as a second wave (768 blocks, 5 an SM: its last ~100 blocks start after the first wave ends,
# ~5–7 µs of a ~16 µs launch), PDL releasing the next kernel ~0.75 µs after the previous one's last block, the attention
# 5–6.5 µs a layer at 128 keys with only o_proj's first chunk streaming. Candidates (new switches, off; the same sums):
#   gemvNorm6    — qkv on gemv_fused_norm6 (gemv_fused_norm without _xpre at __launch_bounds__(256, 6): ~39 registers, 6
#                  blocks an SM: 792 slots for 768 blocks)
#   gemvNorm6Mlp — gate_up and the lm_head on it too
#   gemvKs6      — down on gemv_fused_ks6 (the split-row GEMV without _xpre at 6 blocks an SM instead of 4)
#   gemvOprojL2  — o_proj on gemv_fused_pf_xpre (each lane prefetch.global.L2 of the rest of its row before pdlWait: ~25 MB
#                  into L2 while the attention, reading little, runs; o_proj now takes ~8.5 µs after its release)
# One process a model, sessions alive at once and timed in turn (5 rounds): A default, Q gemvNorm6, N gemvNorm6 +
# gemvNorm6Mlp, K gemvKs6, P gemvOprojL2, QP gemvNorm6 + gemvOprojL2, SQP stamps + QP (its transitions, raw stamps of the
# first 300 µs in $OUT); graph µs at 128 / 1,024 keys, synced decode tok/s, logits vs A bit for bit. Then the GPU test.
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,clocks.max.mem --format=csv,noheader
V='[{"label":"A default"},{"label":"Q gemvNorm6","opts":{"gemvNorm6":true}},{"label":"N norm6+mlp","opts":{"gemvNorm6":true,"gemvNorm6Mlp":true}},{"label":"K gemvKs6","opts":{"gemvKs6":true}},{"label":"P gemvOprojL2","opts":{"gemvOprojL2":true}},{"label":"QP norm6+oprojL2","opts":{"gemvNorm6":true,"gemvOprojL2":true}},{"label":"SQP stamps+QP","stamp":true,"opts":{"gemvNorm6":true,"gemvOprojL2":true}}]'
stamp "8B: $V"
LLMRT_BENCH_JSON=$OUT/gaps_8b.json timeout 88 bun bench/decode_gaps.ts --model "$M8" --ctx 128,1024 --stamp-reps 12 --rounds 5 \
  --decode 64 --dump "$OUT" --variants "$V" > "$OUT/gaps_8b.log" 2>&1
echo "rc $?"
grep -E "ready in|ceiling|graph ctx|transition| → |first stamped|globaltimer|rror" "$OUT/gaps_8b.log" | cut -c1-300 | head -40
stamp "GPU test: gemv_fused_norm6 / ks6 / pf_xpre vs the _xpre forms"
timeout 22 bun test --timeout 600000 tests/gpu/gemv_norm6.test.ts > "$OUT/test.log" 2>&1
echo "rc $?"
grep -E "pass|fail|registers|rror" "$OUT/test.log" | cut -c1-300 | head -8
left=$((144 - (SECONDS - _t0)))
stamp "1B ($left s left)"
[ "$left" -gt 12 ] && LLMRT_BENCH_JSON=$OUT/gaps_1b.json timeout "$left" bun bench/decode_gaps.ts --model "$M1" --ctx 128,1024 --stamp-reps 8 \
  --rounds 5 --decode 128 --variants "$V" > "$OUT/gaps_1b.log" 2>&1
echo "rc $?"
grep -E "graph ctx| → |rror" "$OUT/gaps_1b.log" | cut -c1-300 | head -16
stamp done
