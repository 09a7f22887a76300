#!/usr/bin/env bash
# Session 10 (issue 16 item 1), helper decode1b, round 1:
#   copy   — bench/copy_bandwidth.ts: every copy method (cuMemcpyDtoD 1 / 2 GiB, 16-byte copy kernels over 2 GiB) + read-only
#   lat1b  — bench/latency.ts llama-3.2-1b: the new ceiling vs sessions 7–9's, synced vs overlapped decode, per-launch profile
#   pers   — bench/decode_pdl.ts --persistent llama-3.2-1b: default graph (decode_attention_sk) vs persistentDecode, same job
#   lat8b  — bench/latency.ts llama-3.1-8b with what time is left
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,clocks.max.mem --format=csv,noheader
stamp "copy ceiling methods"
timeout 8 bun bench/copy_bandwidth.ts > "$OUT/copy.log" 2>&1; echo "rc $?"
cat "$OUT/copy.log" | cut -c1-200 | head -14
stamp "latency 1B"
timeout 10 bun bench/latency.ts --model $M1 --prompt-lens 128 --decode 256 > "$OUT/lat1b.log" 2>&1; echo "rc $?"
grep -E "copy|ceiling|decode batch 1|graph replay|#|rror" "$OUT/lat1b.log" | cut -c1-260 | head -30
stamp "1B default vs persistent"
timeout 10 bun bench/decode_pdl.ts --model $M1 --persistent --ctx 128,512,1024,2048,4096 --decode 128 --check 4 > "$OUT/pers1b.log" 2>&1; echo "rc $?"
grep -E "ceiling|tok|vs|rror" "$OUT/pers1b.log" | cut -c1-400 | head -8
left=$((38 - (SECONDS - _t0)))
[ "$left" -gt 8 ] || { stamp "no time left for 8B"; exit 0; }
stamp "latency 8B ($left s)"
timeout "$left" bun bench/latency.ts --model $M8 --prompt-lens 128 --decode 64 > "$OUT/lat8b.log" 2>&1; echo "rc $?"
grep -E "copy|ceiling|decode batch 1|graph replay|#|rror" "$OUT/lat8b.log" | cut -c1-260 | head -30
stamp done
