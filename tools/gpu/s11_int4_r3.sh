#!/usr/bin/env bash
# Session 11 (issue 12), helper int4, round 3 (45 s). r2 (Nsight Compute at base clock): the 8B gate_up GEMV issues an
# instruction every 9.1 cycles per warp with 21 warps / SM (SM throughput 57%: instruction-bound), and the zero-point
# fold (ZFOLD, +8 mma a superchunk) was slower. Now quant_gemv_fast* = contiguous superchunk runs (CONTIG) + x staged
# once per block in the mma's pair order (XSTAGE: no x permutes in the loop); fastd = that with 4 superchunks in flight.
#   tune — one llama-3.1-8b int4 g128 layer (quantTailNorm plan): default, CONTIG + XSTAGE, + U=4 at 2 blocks / SM
#   ncu  — gate_up (_rs) / down (_addnorm): fused, fast, fastd at the boost clock: pipes, instruction mix, warp states
#   test — tests/quant_cuda.test.ts -t quant_gemv_fast: the fast / fastd entry points vs float64, batch invariance,
#          the residual's bits (fastd and fast* run the same checks as quant_gemv_fused*)
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
nvidia-smi --query-gpu=name,clocks.max.sm --format=csv,noheader
stamp "tune 8b int4 layer"
timeout 15 bun bench/quant_gemv_tune.ts --variants ";CONTIG=1,XSTAGE=1;CONTIG=1,XSTAGE=1,U=4,MINB=2" \
  --only 8b --bits 4 --ms "1 tail" --json "$OUT/tune.json" > "$OUT/tune.log" 2>&1
echo "rc $?"
grep -E "rror|ceiling|layer|K=4096 CONTIG|K=14336" "$OUT/tune.log" | cut -c1-330 | head -24
stamp "ncu gate_up / down"
timeout 11 ncu --clock-control none --section SpeedOfLight --section ComputeWorkloadAnalysis --section InstructionStats --section WarpStateStats \
  -k regex:quant_gemv_f bun bench/quant_gemv_profile.ts --reps 1 > "$OUT/ncu.log" 2>&1
echo "rc $?"
grep -E "^  quant_gemv|Duration|DRAM Throughput|Compute \(SM\) Throughput|Executed Ipc Active|Issue Slots Busy|Warp Cycles Per Issued|Executed Instructions  |Pipe|pipe|stall|ERR" "$OUT/ncu.log" | cut -c1-180 | head -70
left=$((44 - (SECONDS - _t0)))
stamp "GPU test quant_gemv_fast ($left s)"
[ "$left" -gt 5 ] && timeout "$left" bun test --timeout 600000 tests/quant_cuda.test.ts -t "quant_gemv_fast" > "$OUT/gputest.log" 2>&1
echo "rc $?"
grep -E "^\(fail|^\(pass|^ *[0-9]+ (pass|fail|skip)|rror" "$OUT/gputest.log" | cut -c1-200 | head -40
stamp done
