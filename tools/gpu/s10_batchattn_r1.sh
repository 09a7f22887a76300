#!/usr/bin/env bash
# Session 10 (issues 16 / 14), helper batchattn, round 1: decode_attention_batch3 (persistent warps, one cp.async ring
# per warp running across items) in isolation.
#   timing — one layer, 8 layers' caches in a CUDA graph: batch2 default vs batch3 at 5 / 6 / 8 warps per SM (6 fit at hd128, 7 / 8 at hd64),
#            bf16 and FP8 KV, 8B 512 / 64 / 256 seqs and 1B 64 / 512, ctx 128..256 (8B 512 also 32..64, 256..320)
#   check  — batch3 vs batch2 (bitwise: outputs, cache, counters) and vs float64, grids 1 / 3 / 7 / 5 per SM
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader
stamp "timing, then check (one process: NVRTC compiles once)"
timeout 50 python3 tools/cuda-kernel-check/decode_attention_batch3.py --only timing,check --quick --grids 5,6,8 \
  --cases 8b:512:128-256,8b:64:128-256,1b:64:128-256,8b:256:128-256,8b:512:32-64 > "$OUT/b3.log" 2>&1; echo "rc $?"
grep -E "copy|seqs ctx|FAIL|SUMMARY|Error|error|done at" "$OUT/b3.log" | cut -c1-420 | head -40; grep -c "^  ok" "$OUT/b3.log"
grep -o "rel=[0-9.e+-]*" "$OUT/b3.log" | sort -t= -k2 -g | tail -1
stamp done
