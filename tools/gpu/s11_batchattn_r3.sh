#!/usr/bin/env bash
# Session 11 (issues 16 / 14), helper batchattn, round 3: decode_attention_batch4 variants in one layer.
#   check  — the .cu defaults (r2's end-to-end kernel), batch4w + the fast cp.async issue (DB4_FAST), and batch4m (each
#            block takes 4 / 2 of a token's items in turn, same per-item sums): vs float64, cache vs batch2, counters, batch
#            invariance, and bitwise equality across the configurations (same warps and tiles -> same bits)
#   timing — 8B 512 / 128 / 64 seqs at 128..256 keys, 512 at 32..64 / 480..544; cfg = warps,stages,subtiles,minBlocks,tma,SER,fast
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
stamp "kernel: batch4 check, then timing"
timeout 64 python3 tools/cuda-kernel-check/decode_attention_batch4.py --only check,timing --quick \
  --shapes "32,8,128;28,4,128;16,1,128;32,8,64;48,2,64" --check-cfgs "d;2,1,1,8,0,1,1;2,1,1,6,0,4,1" \
  --cases 8b:512:128-256,8b:128:128-256,8b:64:128-256,8b:512:32-64,8b:512:480-544 \
  --cfgs "2,1,1,8;2,1,1,8,0,1,1;2,1,1,6,0,4,1;2,1,1,6,0,4,0;2,1,1,6,0,2,1" \
  --fcfgs "d;2,2,1,8,0,1,1;2,2,1,6,0,4,1;2,2,1,6,0,4,0;2,2,1,6,0,2,1;2,1,1,8,0,4,1" > "$OUT/b4.log" 2>&1; echo "rc $?"
grep -E "copy|seqs ctx|FAIL|SUMMARY|Error|error|done at|Traceback" "$OUT/b4.log" | cut -c1-460 | head -40; grep -c "^  ok" "$OUT/b4.log"
stamp done
