#!/usr/bin/env bash
# Session 11 (issue 16 item 1), helper decode, round 1: where the llama-3.1-8b batch-1 step goes.
#   brk8b — bench/decode_breakdown.ts llama-3.1-8b, default session: graph replay by role (marginal / alone / % copy)
#           at 128 and 1024 keys, PDL cleared, eager launches one by one
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,clocks.max.mem --format=csv,noheader
stamp "8B breakdown (default)"
timeout 38 bun bench/decode_breakdown.ts --model $M8 --ctx 128,1024 > "$OUT/brk8b.log" 2>&1; echo "rc $?"
grep -v "^  #" "$OUT/brk8b.log" | grep -v -i warn | cut -c1-200 | head -40
grep "^  #" "$OUT/brk8b.log" | cut -c1-120
stamp done
