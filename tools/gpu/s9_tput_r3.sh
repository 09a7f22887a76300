#!/usr/bin/env bash
# Session 9, issue 16 item 3 (helper tput), round 3 (the last; budget 60 s):
#   test — tests/gpu/graph_splits.test.ts: decode graphs per split count (graphSplits) bitwise equal to the full graph
#          (bf16 and e4m3 caches, 1 and 2 of 4 splits)
#   8b   — llama-3.1-8b bf16 512 × (128,128) with decodeDeferSteps 1 (r2: 16,362 → 17,116 tok/s) plus LLMRT_GRAPH_SPLITS=1
#          and LLMRT_WGMMA_PREFILL=0 (flash_prefill's 128-row tiles for the 128-token prompts; r2's wg kernel: 82 ms
#          of a 739 ms prefill step): the phase table separates the prefill steps from the decode steps
#   fp8  — llama-3.1-8b FP8 + FP8 KV 512 × (128,128) with decodeDeferSteps 1 and graphSplits (r1 / r2 default: 2.667 /
#          2.660 s; r2's run with deferral alone did not finish in its 24 s slot)
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
P8=/tmp/hfmodels/llama-3.1-8b-fp8
[ -f $P8/config.json ] || (timeout 45 python3 tools/quant-packers/pack_fp8_torch.py --model $M8 --out $P8 --calib-seqs 2 --calib-len 128 > "$OUT/pack8b.log" 2>&1) &
pk=$!
phases() { sed -n '/steps of the timed run/,/^  step 3:/p' "$OUT/t_$1.log" | grep -v "^| ---" | cut -c1-200; }
gpu_suite graphsplits 12 tests/gpu/graph_splits.test.ts
grep -E "logits differ|graphs:|AssertionError" "$OUT/graphsplits.log" | head -4 | cut -c1-200
LLMRT_GRAPH_SPLITS=1 LLMRT_WGMMA_PREFILL=0 thr 8b $M8 512 16 --profile-steps --defer-decodes 1
phases 8b
wait $pk
tail -1 "$OUT/pack8b.log" 2> /dev/null | cut -c1-160
left=$((58 - SECONDS))
[ "$left" -lt 5 ] && left=5
LLMRT_GRAPH_SPLITS=1 thr fp8 $P8 512 "$left" --profile-steps --defer-decodes 1
phases fp8
thr_summary 8b fp8
stamp done
