#!/usr/bin/env bash
# Session 10 (issues 16 / 14), helper batchattn, round 2: where decode_attention_batch3's time goes (r1: bitwise equal to
# batch2 in 720 checks, but 236 vs 160 us a layer at 8B 512 seqs, 48 vs 25 at 64: ~4 us per 16-key tile per warp).
#   timing — 8B 512 / 64 seqs (ctx 128..256, 512 also 32..64), bf16 and FP8: batch2 default and (2,1,8) / (4,1);
#            batch3 default, DB3_TMA=1 (rows by cp.async.bulk + mbarriers), DB3_MATH=0 (stream only), DB3_LOAD=0 (math
#            only), at 6 / 8 warps per SM
#   check  — batch3 (split-major item order, L1 prefetch) and its DB3_TMA=1 variant vs batch2 bitwise and float64
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
stamp "timing, then check (one process)"
timeout 52 python3 tools/cuda-kernel-check/decode_attention_batch3.py --only timing,check --quick --grids 6,8 \
  --defs ",DB3_TMA=1,DB3_MATH=0,DB3_LOAD=0" --b2cfgs "2,1,8;4,1" --check-defs ",DB3_TMA=1" \
  --cases 8b:512:128-256,8b:64:128-256,8b:512:32-64 > "$OUT/b3.log" 2>&1; echo "rc $?"
grep -E "copy|seqs ctx|FAIL|SUMMARY|Error|error|done at" "$OUT/b3.log" | cut -c1-700 | head -40; grep -c "^  ok" "$OUT/b3.log"
grep -o "rel=[0-9.e+-]*" "$OUT/b3.log" | sort -t= -k2 -g | tail -1
stamp done
