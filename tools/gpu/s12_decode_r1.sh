#!/usr/bin/env bash
# Session 12 (issue 16 item 1), helper decode, round 1. New: gemv.cu GF_TMA (each warp's whole weight row slice bulk-copied
# into dynamic shared memory by cp.async.bulk before pdlWait, summed from there: the whole slice in flight instead of one
# 2 KB chunk a warp, no registers holding bytes in flight; same sums) as the engine switch gemvTma (gemv_fused*_tma), and
# GF_PFL2 (the rest of each row prefetched into L2 before pdlWait), LLMRT_PDL_EARLY (dependents triggered before the wait).
#   tune — bench/gemv_tune.ts, 8B and 1B GEMV chains: the engine default (-DGF_XPRE=1, first and last) vs the knobs above;
#          each variant's layer-0 outputs bit for bit vs the first
#   ab1b / ab8b — bench/decode_pdl.ts --ab '{"gemvTma":true}': tok/s, graph replay, logits vs the default; the 1B also
#          C = decodeArgmax (the lm_head GEMV folds the greedy argmax into u64 keys, sample_amax_f32 reads them)
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,clocks.max.mem --format=csv,noheader
stamp "gemv_tune variants"
X="-DGF_XPRE=1"
timeout 14 bun bench/gemv_tune.ts --models 8b,1b --kinds step,qkv,o,gu,down --reps 5 \
  --variants "$X;$X -DGF_TMA=1;$X -DGF_TMA=1 nocarve;$X -DGF_PFL2=1;$X -DLLMRT_PDL_EARLY=1;$X -DGF_TMA=1 -DLLMRT_PDL_EARLY=1;$X" > "$OUT/tune.log" 2>&1
echo "rc $?"
grep -E "^\||registers|check|ceiling|rror" "$OUT/tune.log" | grep -v -e "---" | cut -c1-200
stamp "1B A default / B gemvTma / C decodeArgmax"
timeout 12 bun bench/decode_pdl.ts --model $M1 --ab '{"gemvTma":true}' --c '{"decodeArgmax":true}' --ctx 128,1024 --decode 128 --check 4 > "$OUT/ab1b.log" 2>&1; echo "rc $?"
grep -E "ceiling|tok|vs|rror" "$OUT/ab1b.log" | cut -c1-420 | head -9
left=$((44 - (SECONDS - _t0)))
[ "$left" -gt 8 ] || { stamp "no time left for 8B"; exit 0; }
stamp "8B A default / B gemvTma ($left s)"
timeout "$left" bun bench/decode_pdl.ts --model $M8 --ab '{"gemvTma":true}' --ctx 128,2048 --decode 48 --check 2 > "$OUT/ab8b.log" 2>&1; echo "rc $?"
grep -E "ceiling|tok|vs|rror" "$OUT/ab8b.log" | cut -c1-420 | head -8
stamp done
