#!/usr/bin/env bash
# Session 12 (issue 12), helper int4, round 3 (45 s). r2 (one 8B layer, same process, % of copy): quant_gemv_fast 54.1 us
# (51.2%); 4 warps a tile (NW=4, 6 blocks / SM) gate_up 25.6 -> 23.7 us (int8 40.0 -> 38.3); 16 warps a tile (NW=16)
# int8 o 9.2 -> 8.3, down 26.1 -> 23.4 (int4 o / down unchanged); f16 dequantization slower everywhere (dropped).
#   e2e — llama-3.1-8b, one process: bf16 engine, then W4A16_AWQ g128 (synthetic codes, the AWQ-loaded layout) with
#         quantGemvFast on: quantGemvNarrow off / on (gate_up on quant_gemv_fast4*), then + quantGemvWide (o / down on
#         quant_gemv_fast16*); the step by role for each
#   test — tests/quant_cuda.test.ts -t "quant_gemv_fast(4|16)": the new entry points vs float64, batch invariance, tails
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
nvidia-smi --query-gpu=name,clocks.max.sm --format=csv,noheader
stamp "e2e 8B: bf16 vs W4A16_AWQ g128 (synthetic), quantGemvFast on; quantGemvNarrow off/on, then + quantGemvWide"
timeout 30 bun bench/quant_e2e.ts --model "$M8" --algos "" --synthetic-w4 --no-ref --profile-decode --set quantGemvFast=1 \
  --ab quantGemvNarrow --ab-reps 1 --ab-then quantGemvWide > "$OUT/e2e8b.log" 2>&1
echo "rc $?"
grep -E "^\| |^  (decode|linears|  )|copy ceiling|quantGemvNarrow|rror" "$OUT/e2e8b.log" | cut -c1-420 | head -40
left=$((43 - (SECONDS - _t0)))
stamp "GPU test quant_gemv_fast4 / fast16 ($left s)"
[ "$left" -gt 6 ] && timeout "$left" bun test --timeout 600000 tests/quant_cuda.test.ts -t "quant_gemv_fast(4|16)" > "$OUT/gputest.log" 2>&1
echo "rc $?"
grep -E "^\(fail|^ *[0-9]+ (pass|fail|skip)|rror" "$OUT/gputest.log" | cut -c1-300 | head -20
stamp done
