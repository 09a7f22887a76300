#!/usr/bin/env bash
# Session 14, helper fp8, round 2 (llama-3.1-8b-fp8 = FP8 per-tensor + FP8 KV, random weights). Budget 90 s.
#   0. GPU test: batchAttention4Occupancy (its kernels now with the block-table prefetch PF) bitwise the default
#   1. kernel harness, the bench graph's geometry (split 256 of maxSeqLen 288), cfg = warps,stages,subtiles,minBlocks,tma,
#      SER,fast,PF: default / MINB 10 + PF (batchAttention4Occupancy's kernel) / MINB 10 / PF / serial / serial + MINB 10 +
#      PF, at 512 sequences (all at 192 keys; 128..256) and 64; per-block traces of the first two (16 stamps: the prologue
#      and epilogue split into their parts)
#   2. 512 × (128,128) output tok/s, one process each: A default, B batchAttention4Occupancy, C + batchAttention4Serial;
#      greedy ids compared
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
P8=/tmp/hfmodels/llama-3.1-8b-fp8
stamp "GPU test"
timeout 14 bun test tests/gpu/batch_attention4_occupancy.test.ts > "$OUT/test_occ.log" 2>&1
echo "rc $?"
grep -E "pass|fail|rror" "$OUT/test_occ.log" | head -6
stamp "decode attention harness"
timeout 16 python3 tools/cuda-kernel-check/decode_attention_batch4.py --only timing --fp8 1 --no-batch2 --split 256 --trace 2 \
  --cases 8b:512:192-193,8b:512:128-256,8b:64:192-193 --fcfgs "d;2,2,1,10,0,1,1,1;2,2,1,10;2,2,1,8,0,1,1,1;s;s:2,2,1,10,0,1,1,1" > "$OUT/b4.log" 2>&1
echo "rc $?"
grep -E "copy|seqs ctx|trace|FAIL|Error|error|Traceback" "$OUT/b4.log" | sed 's/batch2 1000000000.0 ( 0.0%) | //' | cut -c1-900 | head -20
t1=$SECONDS
thr a512 $P8 512 23
LLMRT_BATCH_ATTENTION4_OCCUPANCY=1 thr b512 $P8 512 23
rem=$((87 - (SECONDS - _t0)))
[ "$rem" -gt 12 ] && LLMRT_BATCH_ATTENTION4_SERIAL=1 LLMRT_BATCH_ATTENTION4_OCCUPANCY=1 thr c512 $P8 512 "$rem"
thr_summary a512 b512 c512
same_ids a512 b512
same_ids a512 c512
stamp done
