#!/usr/bin/env bash
# Session 17 (issue 16 item 1), helper dec, round 1 (budget 150 s): llama-3.2-1b batch-1 decode, two latency trims that keep
# every sum (bitwise expected), as harness -D knobs (default 0; the default CUBINs are main's, same_cubin.sh):
#   Y  gemv.cu -DGF_YPRE=1: a mode-1 (residual) fused GEMV (o_proj, down) reads the residual value its lane adds to right
#      after pdlWait, in flight while the row is summed, instead of after the sum (one L2 round trip off each warp's end)
#   Q  decode_attention_sk.cu -DDS_QPRE=1: the attention reads the step's q / k / v values (qkv's output) in one round trip
#      after pdlWait, instead of q, then k, then v (after the cache stores of k) loop by loop
# bench/decode_gaps.ts, one process a model, sessions alive at once and timed in turn: A default, Y, Q, YQ, SA / SYQ (the
# LLMRT_STAMP builds of A / YQ: per-kernel block entry / wait / end, per transition of the layer), A2 default again (an A/A
# check of the session order); graph µs at 128 / 256 keys (latency.ts decodes at 129-256), synced decode tok/s, logits vs A
# bit for bit; the 1B's decode_breakdown role table. Then the 8B (A / YQ / A2) in the time left.
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,clocks.max.mem --format=csv,noheader
Y='"gemv.cu":["-DGF_YPRE=1"]'
Q='"decode_attention_sk.cu":["-DDS_QPRE=1"]'
V='[{"label":"A default"},{"label":"Y resPre","defines":{'$Y'}},{"label":"Q qkvPre","defines":{'$Q'}},{"label":"YQ both","defines":{'$Y','$Q'}},{"label":"SA stamps","stamp":true},{"label":"SYQ stamps+YQ","stamp":true,"defines":{'$Y','$Q'}},{"label":"A2 default"}]'
stamp "1B: $V"
LLMRT_BENCH_JSON=$OUT/gaps_1b.json timeout 60 bun bench/decode_gaps.ts --model "$M1" --ctx 128,256 --stamp-reps 12 --rounds 7 \
  --decode 128 --breakdown --variants "$V" > "$OUT/gaps_1b.log" 2>&1
echo "rc $?"
grep -E "ready in|ceiling|graph ctx|transition| → |first stamped|ctx [0-9]+: graph|sum of marg|rror" "$OUT/gaps_1b.log" | cut -c1-300 | head -44
left=$((144 - (SECONDS - _t0)))
stamp "8B: A / YQ / A2 ($left s left)"
V8='[{"label":"A default"},{"label":"YQ both","defines":{'$Y','$Q'}},{"label":"A2 default"}]'
[ "$left" -gt 30 ] && LLMRT_BENCH_JSON=$OUT/gaps_8b.json timeout "$left" bun bench/decode_gaps.ts --model "$M8" --ctx 128,256 --rounds 5 \
  --decode 32 --variants "$V8" > "$OUT/gaps_8b.log" 2>&1
echo "rc $?"
grep -E "ceiling|graph ctx|rror" "$OUT/gaps_8b.log" | cut -c1-300 | head -8
stamp done
