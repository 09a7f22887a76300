#!/usr/bin/env bash
# Session 10 (issue 16 item 1), helper decode1b, round 1:
#   copy   — bench/copy_bandwidth.ts: every copy method (cuMemcpyDtoD 1 / 2 GiB, 16-byte copy kernels over 2 GiB) + read-only
#   brk    — bench/decode_breakdown.ts llama-3.2-1b: the decode graph's time by role (marginal / alone), default vs persistentDecode
#   lat1b  — bench/latency.ts llama-3.2-1b: the new ceiling vs sessions 7–9's, synced vs overlapped decode, per-launch profile
#   l2pf   — bench/decode_pdl.ts --ab decodeL2Prefetch (o_proj pulls 16 MB of gate_up into L2 during the attention)
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,clocks.max.mem --format=csv,noheader
stamp "copy ceiling methods"
timeout 7 bun bench/copy_bandwidth.ts > "$OUT/copy.log" 2>&1; echo "rc $?"
cut -c1-200 "$OUT/copy.log" | head -14
stamp "1B breakdown: default vs persistent"
timeout 12 bun bench/decode_breakdown.ts --model $M1 --ctx 128,1024 --opts2 '{"persistentDecode":true,"batchInvariant":false}' > "$OUT/brk1b.log" 2>&1; echo "rc $?"
grep -v "^  #" "$OUT/brk1b.log" | grep -v -i warn | cut -c1-200 | head -50
stamp "1B default vs decodeL2Prefetch (16 MB)"
timeout 9 bun bench/decode_pdl.ts --model $M1 --ab '{"decodeL2Prefetch":true}' --ctx 128,512,2048 --decode 128 --check 4 > "$OUT/l2pf1b.log" 2>&1; echo "rc $?"
grep -E "ceiling|tok|vs|rror" "$OUT/l2pf1b.log" | cut -c1-400 | head -8
left=$((39 - (SECONDS - _t0)))
[ "$left" -gt 6 ] || { stamp "no time left for latency 1B"; exit 0; }
stamp "latency 1B ($left s)"
timeout "$left" bun bench/latency.ts --model $M1 --prompt-lens 128 --decode 256 > "$OUT/lat1b.log" 2>&1; echo "rc $?"
grep -E "copy|ceiling|decode batch 1|graph replay|rror" "$OUT/lat1b.log" | cut -c1-260 | head -10
stamp done
