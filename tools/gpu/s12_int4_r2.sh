#!/usr/bin/env bash
# Session 12 (issue 12), helper int4, round 2 (45 s): the f16 dequantization (QG_V_F16 = quantGemvF16's quant_gemv_h*)
# and 16-warp tiles (the down / o grid limit) at the layer level, and their correctness on the device.
#   tune — one llama-3.1-8b int4 g128 layer as the quantTailNorm plan runs it (_rs / _addnorm), same process, % of copy:
#          CONTIG (= quant_gemv_fast, the reference of the bit checks), CONTIG + F16 (= quant_gemv_h), each with 16 warps a
#          tile at 2 blocks / SM (NW=16, MINB=2: 512 threads, 32 warps / SM on down's 256 tiles)
#   tune8 — the same for int8 per channel: CONTIG vs CONTIG + F16 (u8: two byte permutes + two f16x2 FMAs a word)
#   test — tests/quant_cuda.test.ts -t quant_gemv_h: quant_gemv_h* vs float64 (modes 0-3, m 1..8, batch invariance) and
#          vs quant_gemv_fast* bit for bit (x, x·2^20, x·2^-40)
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
nvidia-smi --query-gpu=name,clocks.max.sm --format=csv,noheader
stamp "tune 8b int4 layer"
timeout 18 bun bench/quant_gemv_tune.ts --variants "CONTIG=1;CONTIG=1,F16=1;CONTIG=1,F16=1,HZ=1;CONTIG=1,NW=16,MINB=2;CONTIG=1,F16=1,NW=16,MINB=2;CONTIG=1,F16=1,NW=14,MINB=2" \
  --only 8b --bits 4 --ms "1 tail" --json "$OUT/tune.json" > "$OUT/tune.log" 2>&1
echo "rc $?"
grep -E "rror|ceiling|layer|K=(4096|14336) CONTIG|residual|rs " "$OUT/tune.log" | cut -c1-330 | head -24
stamp "tune 8b int8 layer"
timeout 9 bun bench/quant_gemv_tune.ts --variants "CONTIG=1;CONTIG=1,F16=1" --only 8b --bits 8 --ms "1 tail" --json "$OUT/tune8.json" > "$OUT/tune8.log" 2>&1
echo "rc $?"
grep -E "rror|layer|K=(4096|14336) CONTIG" "$OUT/tune8.log" | cut -c1-330 | head -12
left=$((43 - (SECONDS - _t0)))
stamp "GPU test quant_gemv_h ($left s)"
[ "$left" -gt 5 ] && timeout "$left" bun test --timeout 600000 tests/quant_cuda.test.ts -t "quant_gemv_h" > "$OUT/gputest.log" 2>&1
echo "rc $?"
grep -E "^\(fail|^\(pass|^ *[0-9]+ (pass|fail|skip)|rror|quant_gemv_h vs" "$OUT/gputest.log" | cut -c1-600 | head -40
stamp done
