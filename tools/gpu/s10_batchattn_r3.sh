#!/usr/bin/env bash
# Session 10 (issues 16 / 14), helper batchattn, round 3 (the last): decode_attention_batch2w (`batchAttention2Wide`:
# batch2's 2 warps with 1 cp.async stage each and registers capped for 8 blocks per SM, steps of >= 256 sequences,
# bf16 cache, head dim 128; r2's one-layer timing of that configuration: 135.7 vs 158.7 us at 8B 512 seqs).
#   kernel — batch2w vs batch2 at 8B 512 / 256 / 128 / 64 seqs (ctx 128..256) and 512 at 32..64 / 480..544; then
#            outputs, cache and counters bitwise vs batch2 (hd128 G 4 / 16 / 4, windows, 1..3000 keys, several splits)
#   e2e    — llama-3.1-8b bf16 512 × (128,128) --defer-decodes 1: A default / B LLMRT_BATCH_ATTENTION2_WIDE=1, same job
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
stamp "kernel: batch2w timing, then bitwise check"
timeout 15 python3 tools/cuda-kernel-check/decode_attention_batch3.py --only wide > "$OUT/wide.log" 2>&1; echo "rc $?"
grep -E "copy|seqs ctx|FAIL|SUMMARY|Error|error|done at" "$OUT/wide.log" | cut -c1-300 | head -20; grep -c "^  ok" "$OUT/wide.log"
phases() { sed -n '/steps of the timed run/,/^  step 3:/p' "$OUT/t_$1.log" | grep -v "^| ---" | grep -iE "decode|total|prefill" | cut -c1-200 | head -5; }
thr a8 $M8 512 19 --profile-steps --defer-decodes 1
phases a8
LLMRT_BATCH_ATTENTION2_WIDE=1 thr b8 $M8 512 19 --profile-steps --defer-decodes 1
phases b8
thr_summary a8 b8
same_ids a8 b8
stamp done
