#!/usr/bin/env bash
# Session 19 (issue 12), helper int4, round 2 (<= 150 s). r1 (same job): quantGemvDeep4 (4 superchunks a warp in flight)
# -12% / -18% end to end on 8B W4A16_AWQ: dropped. The layer bench's winners at 2 in flight: XPK (the tailNorm pair's x
# in the mma's pair order: _rs without x permutes) 55.1 -> 53.5 us, ZPK (packed zero points) gate_up 26.2 -> 25.0 but down
# 14.6 -> 16.0. New: quantGemvPairX = quant_gemv_fastx_addnorm_u4 (XP) + quant_gemv_fastx_rs_u4 (XP + ZPK) for the tailNorm
# pairs of two uint4 linears (qkv and gate_up read xw in pair order; o and down write it); the same sums as quant_gemv_fast.
#   e2e8b — llama-3.1-8b in one process: bf16, then W4A16_AWQ g128 (synthetic) quantGemvPairX off/on/off/on (bitwise)
#   tune  — one 8B int4 layer (quantTailNorm plan): CONTIG=1 (default) first, XPK, ZPK, XPK + ZPK; MH (the dequantization's
#           3 shifts a word as IMAD.HI: FMA-pipe work instead of ALU-pipe work, Nsight's busiest pipe), XALL (no x zeroing)
#   sass  — opcode counts of quant_gemv_fast_rs_u4 / fastx_rs_u4 / the MH form (nvcc sm_90 + cuobjdump on the device)
#   test  — tests/gpu/quant_gemv_pairx.test.ts (the fastx pair vs the fast pair, bitwise)
#   e2e1b — llama-3.2-1b W4A16_AWQ g128 quantGemvPairX off/on/off/on
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
nvidia-smi --query-gpu=name,clocks.max.sm --format=csv,noheader
stamp "e2e 8B: bf16 vs W4A16_AWQ g128 (synthetic), quantGemvPairX off/on/off/on"
timeout 45 bun bench/quant_e2e.ts --model "$M8" --algos "" --synthetic-w4 --no-ref --ab quantGemvPairX > "$OUT/e2e8b.log" 2>&1
echo "rc $?"
grep -E "^\| |copy ceiling|quantGemvPairX|rror" "$OUT/e2e8b.log" | cut -c1-420 | head -16
stamp "tune 8b int4 layer"
V="CONTIG=1;CONTIG=1,XPK=1;CONTIG=1,ZPK=1;CONTIG=1,XPK=1,ZPK=1;CONTIG=1,MH=1;CONTIG=1,XPK=1,ZPK=1,MH=1;CONTIG=1,XPK=1,XALL=1"
V="$V;CONTIG=1,XPK=1,ZPK=1,MH=1,XALL=1"
timeout 40 bun bench/quant_gemv_tune.ts --variants "$V" --only 8b --bits 4 --ms "1 tail" \
  --json "$OUT/tune.json" > "$OUT/tune.log" 2>&1
echo "rc $?"
grep -E "rror|ceiling|layer|DIFFERENT" "$OUT/tune.log" | cut -c1-300 | head -12
stamp "sass opcode counts"
( cd lib/backends/cuda/kernels && for v in "fast_rs:" "fastx_rs:" "fused_rs:-DQG_CONTIG=1 -DQG_MH=1 -DQG_XPK=1 -DQG_ZPK=1"; do
  k=${v%%:*}; o=${v#*:}
  # shellcheck disable=SC2086
  nvcc -cubin -arch=sm_90 -std=c++17 -I . -DLLMRT_SELECT -DLLMRT_K_quant_gemv_${k}_u4=1 $o quant_gemv.cu -o /tmp/s19_$k.cubin 2>&1 | tail -2
  cuobjdump -sass /tmp/s19_$k.cubin > "$OUT/$k.sass" 2>&1
  echo "$k ${o:-default}: $(grep -cE '^ +/\*[0-9a-f]{4}\*/' "$OUT/$k.sass") instr; $(grep -oE '^ +/\*[0-9a-f]{4}\*/ +(@!?U?P[0-9T] +)?[A-Z0-9]+(\.[A-Z0-9]+)?' "$OUT/$k.sass" | awk '{print $NF}' | sort | uniq -c | sort -rn | head -20 | awk '{printf "%s %s, ", $2, $1}')"
done ) 2>&1 | cut -c1-400
stamp "GPU test pairx"
timeout 25 bun test --timeout 600000 tests/gpu/quant_gemv_pairx.test.ts > "$OUT/gputest_pairx.log" 2>&1
echo "rc $?"
grep -E "^\(fail|^\(pass|^ *[0-9]+ (pass|fail|skip)|rror" "$OUT/gputest_pairx.log" | cut -c1-220 | head -10
left=$((145 - (SECONDS - _t0)))
stamp "e2e 1B W4A16_AWQ quantGemvPairX off/on/off/on ($left s)"
[ "$left" -gt 10 ] && timeout "$left" bun bench/quant_e2e.ts --model "$M1" --algos "" --synthetic-w4 --no-ref --ab quantGemvPairX > "$OUT/e2e1b.log" 2>&1
echo "rc $?"
grep -E "^\| |copy ceiling|quantGemvPairX|rror" "$OUT/e2e1b.log" | cut -c1-420 | head -12
stamp done
