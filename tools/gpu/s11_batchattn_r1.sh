#!/usr/bin/env bash
# Session 11 (issues 16 / 14), helper batchattn, round 1: decode_attention_batch4 (S^T = K · Q^T: keys on the mma rows,
# the <= 8 query heads of a kv group on the n8 columns; kernels/decode_attention_batch4.cu) in one layer:
#   timing — vs batch2 (default) and batch2w at 8B 512 / 256 / 128 / 64 seqs ctx 128..256, 512 at 32..64 / 480..544,
#            bf16 and e4m3 caches, a few (warps, stages, sub-tiles, min blocks[, cp.async.bulk]) configurations each
#   check  — outputs vs float64 (batch2's error beside), cache bits vs batch2, counters, batch invariance (quick set)
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
stamp "kernel: batch4 timing, then check"
timeout 64 python3 tools/cuda-kernel-check/decode_attention_batch4.py --only timing,check --quick \
  --cases 8b:512:128-256,8b:256:128-256,8b:128:128-256,8b:64:128-256,8b:512:32-64,8b:512:480-544 \
  --cfgs "d;2,1,1,8;2,1,2,6;2,2,1,6,1;2,1,1,8,1;1,2,1,12" --fcfgs "d;2,3,1,8;2,2,2,6;2,2,1,8,1;4,2,1,4;1,4,1,16" --check-cfgs "d;2,2,1,6,1" > "$OUT/b4.log" 2>&1; echo "rc $?"
grep -E "copy|seqs ctx|FAIL|SUMMARY|Error|error|done at|Traceback" "$OUT/b4.log" | cut -c1-420 | head -40; grep -c "^  ok" "$OUT/b4.log"
stamp done
