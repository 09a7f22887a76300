#!/usr/bin/env bash
# Session 10 (issue 16 item 1), helper decode1b, last round: the two same-bits switches against the defaults, same process.
#   B = gemvDeepLoads (qkv / o_proj / down GEMVs with 8 loads a lane in flight instead of 4)
#   C = gemvDeepLoads + sampleSplit (the sampler's argmax over 16 blocks a row)
#   ab1b  — bench/decode_pdl.ts llama-3.2-1b: A / B / C tok/s, graph replay, logits bit for bit
#   test  — tests/gpu/decode_deep_split.test.ts (logits bitwise + sampled ids, graphs / eager, greedy / temperature, 1-2 seqs)
#   ab8b  — bench/decode_pdl.ts llama-3.1-8b: A / C
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,clocks.max.mem --format=csv,noheader
stamp "1B A default / B gemvDeepLoads / C + sampleSplit"
timeout 11 bun bench/decode_pdl.ts --model $M1 --ab '{"gemvDeepLoads":true}' --c '{"gemvDeepLoads":true,"sampleSplit":true}' --ctx 128,512,2048 --decode 128 --check 4 > "$OUT/ab1b.log" 2>&1; echo "rc $?"
grep -E "ceiling|tok|vs|rror" "$OUT/ab1b.log" | cut -c1-420 | head -8
stamp "GPU test decode_deep_split"
timeout 9 bun test --timeout 300000 tests/gpu/decode_deep_split.test.ts > "$OUT/gputest.log" 2>&1; echo "rc $?"
grep -E "seq,|pass|fail|rror" "$OUT/gputest.log" | cut -c1-200 | head -14
left=$((39 - (SECONDS - _t0)))
[ "$left" -gt 8 ] || { stamp "no time left for 8B"; exit 0; }
stamp "8B A default / B gemvDeepLoads + sampleSplit ($left s)"
timeout "$left" bun bench/decode_pdl.ts --model $M8 --ab '{"gemvDeepLoads":true,"sampleSplit":true}' --ctx 128,2048 --decode 64 --check 2 > "$OUT/ab8b.log" 2>&1; echo "rc $?"
grep -E "ceiling|tok|vs|rror" "$OUT/ab8b.log" | cut -c1-420 | head -8
stamp done
