#!/usr/bin/env bash
# Session 16 (issue 16 item 1), helper dec8b, round 1 (budget 150 s): where the batch-1 decode graph's time beyond its bytes
# goes, measured inside the graph. bench/decode_gaps.ts builds one engine and four sessions, alive at once and timed in
# turn: A default, S the LLMRT_STAMP build of gemv.cu + decode_attention_sk.cu (each block of each fused GEMV / attention
# launch writes globaltimer stamps at entry, when it passed pdlWait, and at its end to a device buffer), E the default
# with LLMRT_PDL_EARLY (dependents triggered before the wait) in those two files, T the new switch gemvOprojTma (o_proj on
# gemv_fused_tma_xpre: 2 of its 4 chunks a warp bulk-copied into static shared memory before pdlWait and a third in
# registers, so ~75% of o_proj's weights can land while the attention runs); E and T keep the sums: bitwise expected.
# Graph replay at 128 / 1,024 keys (3 rounds in turn), synced decode tok/s, logits vs A; S's per-transition table
# (qkv → attn → o_proj → gate_up → down → qkv: span, launch lag, PDL release, tails); then (8B) decode_breakdown's role
# table of the default session. 8B first, then the 1B (no breakdown).
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,clocks.max.mem --format=csv,noheader
stamp "8B gaps: A default / S stamps / E pdl-early / T o_proj TMA head, then the breakdown"
LLMRT_BENCH_JSON=$OUT/gaps_8b.json timeout 112 bun bench/decode_gaps.ts --model "$M8" --ctx 128,1024 --stamp-reps 12 --rounds 3 \
  --decode 32 --breakdown > "$OUT/gaps_8b.log" 2>&1
echo "rc $?"
grep -E "ready in|engine built|ceiling|graph ctx|transition| → |first stamped|globaltimer|ctx [0-9]+: graph|sum of marg|rror" "$OUT/gaps_8b.log" | cut -c1-330 | head -60
left=$((144 - (SECONDS - _t0)))
stamp "1B gaps: A / S / E / T ($left s left)"
[ "$left" -gt 12 ] && LLMRT_BENCH_JSON=$OUT/gaps_1b.json timeout "$left" bun bench/decode_gaps.ts --model "$M1" --ctx 128,1024 --stamp-reps 12 \
  --rounds 3 --decode 64 > "$OUT/gaps_1b.log" 2>&1
echo "rc $?"
grep -E "graph ctx| → |first stamped|rror" "$OUT/gaps_1b.log" | cut -c1-330 | head -24
stamp done
