#!/usr/bin/env bash
# Session 9 (issue 16), helper sk, round 4: GPU tests that decode with LLMRT_DECODE_SK=1 (as if decodeSplitK were on),
# then one-layer timings of tuning knobs: DS_MINB 3 (3 blocks per SM), split target 48, DS_MB 32.
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader
LLMRT_DECODE_SK=1 gpu_suite suite_sk 40 tests/gpu/graph.test.ts tests/gpu/pdl.test.ts tests/gpu/speculative.test.ts tests/gpu/overlap.test.ts tests/gpu/guided.test.ts
left=$((66 - (SECONDS - _t0)))
[ "$left" -gt 6 ] || { stamp "no time left for the timing"; exit 0; }
stamp "kernel timing ($left s left)"
timeout "$left" python3 tools/cuda-kernel-check/decode_attention_sk.py --only time --no-old --ctx 512,2048,32768 --models 8b,1b \
  --variants "new:;ts48::48;minb3:DS_MINB=3;minb3ts48:DS_MINB=3:48;mb32:DS_MB=32" \
  --out "$OUT/time" > "$OUT/time.log" 2>&1; echo "rc $?"
grep -E "copy bandwidth|ctx|compiled|FAIL|Error" "$OUT/time.log" | head -24 | cut -c1-360
stamp done
