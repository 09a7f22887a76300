#!/usr/bin/env bash
# Session 12 (issue 12), helper int4, round 2 (45 s). r1 (same job, 8B): bf16 234.7 tok/s, W4A16_AWQ g128 419.8 (1.79x),
# quantGemvFast 436.0 (1.86x), + quantGemvF16 375.9 (the f16 stage costs ~1-1.5 us a block wave: gate_up 28.5 -> 35.3 us).
# SASS of quant_gemv_fast_rs_u4: a superchunk is ~135 instructions in the loop (88 dequantization, 28 for x: 8 CS2R
# zeroing + 4 predicated LDG + 16 PRMT), while Nsight counted ~211 a superchunk: for K = 4096 each warp streams only 4
# superchunks, so the block's fixed work (prologue, reduction, epilogue) is a third of it. This round: blocks of fewer
# warps (more superchunks a warp), more warps for the 256-tile launches, the x loads unpredicated (XALL), at the layer.
#   tune  — one llama-3.1-8b int4 g128 layer as the quantTailNorm plan runs it (_rs / _addnorm), same process, % of copy,
#           CONTIG (= quant_gemv_fast) first (the bit checks' reference): XALL; NW=4 (128-thread blocks, 6 / SM, 8
#           superchunks a warp at K 4096), NW=4 U=4 at 4 / SM; NW=16 / NW=12 at 2 / SM (down / o: 256 tiles);
#           F16 staged (quant_gemv_h) and not staged (F16NS); the NOMATH ceilings of NW=4 and NW=16
#   tune8 — int8 per channel: CONTIG, XALL, F16, NW=4, NW=16
#   test  — (time left) tests/quant_cuda.test.ts -t quant_gemv_h: quant_gemv_h / h16 vs float64, vs quant_gemv_fast bits
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
nvidia-smi --query-gpu=name,clocks.max.sm --format=csv,noheader
stamp "tune 8b int4 layer"
V="CONTIG=1;CONTIG=1,XALL=1;CONTIG=1,XALL=1,NW=4,MINB=6;CONTIG=1,XALL=1,NW=4,MINB=4,U=4;CONTIG=1,XALL=1,NW=16,MINB=2"
V="$V;CONTIG=1,XALL=1,NW=12,MINB=2;CONTIG=1,F16=1;CONTIG=1,F16=1,F16NS=1;CONTIG=1,NW=4,MINB=6,NOMATH=1;CONTIG=1,NW=16,MINB=2,NOMATH=1"
timeout 20 bun bench/quant_gemv_tune.ts --variants "$V" --only 8b --bits 4 --ms "1 tail" --json "$OUT/tune.json" > "$OUT/tune.log" 2>&1
echo "rc $?"
grep -E "rror|ceiling|layer|K=(4096|14336) CONTIG" "$OUT/tune.log" | grep -v NOMATH=1: | cut -c1-330 | head -36
stamp "tune 8b int8 layer"
timeout 10 bun bench/quant_gemv_tune.ts --variants "CONTIG=1;CONTIG=1,XALL=1;CONTIG=1,F16=1;CONTIG=1,XALL=1,NW=4,MINB=6;CONTIG=1,XALL=1,NW=16,MINB=2" \
  --only 8b --bits 8 --ms "1 tail" --json "$OUT/tune8.json" > "$OUT/tune8.log" 2>&1
echo "rc $?"
grep -E "rror|layer|K=(4096|14336) CONTIG" "$OUT/tune8.log" | cut -c1-330 | head -16
left=$((43 - (SECONDS - _t0)))
stamp "GPU test quant_gemv_h ($left s)"
[ "$left" -gt 6 ] && timeout "$left" bun test --timeout 600000 tests/quant_cuda.test.ts -t "quant_gemv_h" > "$OUT/gputest.log" 2>&1
echo "rc $?"
grep -E "^\(fail|^ *[0-9]+ (pass|fail|skip)|rror|quant_gemv_h vs" "$OUT/gputest.log" | cut -c1-400 | head -20
stamp done
