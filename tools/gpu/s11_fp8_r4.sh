#!/usr/bin/env bash
# Session 11, helper fp8 (issue 14), round 4 (budget 45 s; llama-3.1-8b-fp8 = FP8 per-tensor + FP8 KV, random weights).
# Item 2 of the task (FP8 batch-1 decode at 66.5% of its bytes, target 80%): where the decode step goes inside its CUDA
# graph, by role (bench/decode_breakdown.ts, now opening the packed FP8 checkpoint and counting e4m3 weights at 1 byte):
# each role's marginal cost in the graph, the role alone, its bytes and share of the copy ceiling; at 265 keys (the
# fp8_e2e decode context) and 1024.
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
P8=/tmp/hfmodels/llama-3.1-8b-fp8
stamp "8B FP8 + FP8 KV batch-1 decode breakdown"
timeout 42 bun bench/decode_breakdown.ts --model $P8 --ctx 265,1024 > "$OUT/breakdown.log" 2>&1
echo "rc $?"; grep -v -i "warn" "$OUT/breakdown.log" | head -60 | cut -c1-200
stamp done
