#!/usr/bin/env bash
# Session 12 (issue 12), helper int4, closing call (30 s): llama-3.1-8b W8A16 per channel end to end beside bf16 (no 8B
# int8 e2e yet this session), quantGemvFast on, quantGemvWide off / on (r2's layer: int8 o 9.2 -> 8.3 us, down 26.1 ->
# 23.4 with 16 warps a tile). W8A16 engine of synthetic codes (--synthetic-w8: per channel, symmetric: the same kernels
# and bytes as a GPTQ 8-bit / W8A16 checkpoint).
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
stamp "e2e 8B: bf16 vs W8A16 (synthetic), quantGemvFast on; quantGemvWide off/on"
timeout 28 bun bench/quant_e2e.ts --model "$M8" --algos "" --synthetic-w8 --no-ref --set quantGemvFast=1 --ab quantGemvWide --ab-reps 1 \
  > "$OUT/e2e8b_w8.log" 2>&1
echo "rc $?"
grep -E "^\| |copy ceiling|quantGemvWide|rror" "$OUT/e2e8b_w8.log" | cut -c1-420 | head -12
stamp done
