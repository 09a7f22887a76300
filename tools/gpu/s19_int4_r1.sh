#!/usr/bin/env bash
# Session 19 (issue 12), helper int4, round 1 (<= 170 s). New: quantGemvDeep4 (quant_gemv_deep4*_u4, QG_DEEP4 =
# CONTIG | U4 | SD | PR): 4 superchunks a warp in flight at 3 blocks an SM (a k = 4096 slice in one round trip, all
# requested before the PDL wait), each lane of a quad loading one slot's scales / zero points (shuffled at use: 80
# registers, no spills), slot pairs refilled as soon as summed (down). The same sums as quant_gemv_fast (emu: same bits).
#   e2e   — llama-3.1-8b in one process: bf16, then W4A16_AWQ g128 (synthetic) quantGemvDeep4 off/on/off/on, then with
#           quantGemvPairX too (quant_gemv_deep4x_addnorm writes xw in the mma's pair order, deep4x_rs reads it: no x permutes)
#   tune  — one 8B int4 layer (quantTailNorm plan), same process, CONTIG=1 first (the default): U=4 with SD / ZPK (packed
#           zero points, spills) / without PR, SD at U=2, ZPK, CH2 (two mma chains a superchunk), MINB 2 / 4, LDNC,
#           XPK (x of _rs in the mma's pair order, as an XP _addnorm writes it: no x permutes; timing only here),
#           NOMATH ceilings at U=2 / U=4
#   test  — tests/gpu/quant_gemv_deep4.test.ts (deep4 vs fast bitwise; the deep4x pair vs the fast pair bitwise),
#           tests/quant_cuda.test.ts -t deep4 (float64)
#   ncu   — gate_up _rs / down _addnorm: fused, fast, deep4 (occupancy, warp states, pipes)
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
nvidia-smi --query-gpu=name,clocks.max.sm --format=csv,noheader
stamp "e2e 8B: bf16 vs W4A16_AWQ g128 (synthetic), quantGemvDeep4 off/on/off/on, then + quantGemvPairX"
timeout 48 bun bench/quant_e2e.ts --model "$M8" --algos "" --synthetic-w4 --no-ref --ab quantGemvDeep4 --ab-then quantGemvPairX > "$OUT/e2e8b.log" 2>&1
echo "rc $?"
grep -E "^\| |copy ceiling|quantGemvDeep4|quantGemvPairX|rror" "$OUT/e2e8b.log" | cut -c1-420 | head -18
stamp "tune 8b int4 layer"
V="CONTIG=1;CONTIG=1,U=4,SD=1,PR=1;CONTIG=1,U=4,ZPK=1,PR=1;CONTIG=1,U=4,SD=1;CONTIG=1,SD=1;CONTIG=1,ZPK=1;CONTIG=1,CH2=1"
V="$V;CONTIG=1,U=4,SD=1,PR=1,CH2=1;CONTIG=1,U=4,SD=1,PR=1,MINB=2;CONTIG=1,ZPK=1,MINB=4;CONTIG=1,U=4,SD=1,PR=1,LDNC=1"
V="$V;CONTIG=1,U=4,SD=1,PR=1,XPK=1;CONTIG=1,XPK=1;CONTIG=1,U=4,SD=1,NOMATH=1;CONTIG=1,NOMATH=1"
timeout 70 bun bench/quant_gemv_tune.ts --variants "$V" --only 8b --bits 4 --ms "1 tail" --json "$OUT/tune.json" > "$OUT/tune.log" 2>&1
echo "rc $?"
grep -E "rror|ceiling|layer|K=(4096|14336) CONTIG" "$OUT/tune.log" | grep -v "^u4 g256" | cut -c1-300 | head -40
left=$((150 - (SECONDS - _t0)))
stamp "GPU tests deep4 ($left s)"
[ "$left" -gt 8 ] && timeout "$left" bun test --timeout 600000 tests/gpu/quant_gemv_deep4.test.ts > "$OUT/gputest_deep4.log" 2>&1
echo "rc $?"
grep -E "^\(fail|^\(pass|^ *[0-9]+ (pass|fail|skip)|rror" "$OUT/gputest_deep4.log" | cut -c1-220 | head -12
left=$((158 - (SECONDS - _t0)))
[ "$left" -gt 6 ] && timeout "$left" bun test --timeout 600000 tests/quant_cuda.test.ts -t "quant_gemv_deep4" > "$OUT/gputest_f64.log" 2>&1
echo "rc $?"
grep -E "^\(fail|^\(pass|^ *[0-9]+ (pass|fail|skip)|rror" "$OUT/gputest_f64.log" | cut -c1-220 | head -12
left=$((166 - (SECONDS - _t0)))
stamp "ncu gate_up / down ($left s)"
[ "$left" -gt 5 ] && timeout "$left" ncu --clock-control none --section SpeedOfLight --section Occupancy --section WarpStateStats --section ComputeWorkloadAnalysis \
  -k regex:quant_gemv_ bun bench/quant_gemv_profile.ts --reps 1 > "$OUT/ncu.log" 2>&1
echo "rc $?"
grep -E "^  quant_gemv|Duration|DRAM Throughput|Executed Ipc Active|Issue Slots Busy|Achieved Occupancy|Registers Per|Block Limit Reg|Warp Cycles Per Issued|ERR" "$OUT/ncu.log" | cut -c1-160 | head -60
stamp done
