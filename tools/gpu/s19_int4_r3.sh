#!/usr/bin/env bash
# Session 19 (issue 12), helper int4, round 3 (<= 150 s). r2 (same job): quantGemvPairX (quant_gemv_fastx pairs: xw in the
# mma's pair order, _rs without x permutes, packed zero points) 8B W4A16_AWQ 436.6 / 442.5 -> 457.5 / 457.5 tok/s, 1B
# +1.0%, bitwise: now on. Nsight: the ALU pipe is the busiest (48.8% at 49% of the DRAM peak). New knob MH: the u4
# dequantization's 3 shifts a word as IMAD.HI (FMA pipe) instead of SHF (ALU pipe); the same bits (emu 1134/1134).
#   e2e8b — llama-3.1-8b, one process: bf16, then W4A16_AWQ g128 (synthetic; quantGemvPairX on) with quant_gemv.cu built
#           plain vs with MH in every u4 entry point the plan runs (harness defines: QG_FAST / QG_FASTX_RS / _ADDNORM |= MH)
#   tune  — one 8B int4 layer: CONTIG=1 first, MH, XPK + ZPK (fastx_rs), + MH, XALL (no x zeroing) forms
#   sass  — opcode counts of quant_gemv_fast_rs_u4 / fastx_rs_u4 / fastx_rs_u4 with MH (nvcc sm_90 + cuobjdump)
#   e2e8x — the same A/B for XALL (lanes past m load x row 0 instead of zeros) if time is left
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
nvidia-smi --query-gpu=name,clocks.max.sm --format=csv,noheader
MHD="quant_gemv.cu:-DQG_FAST=16385,-DQG_FASTX_RS=25089,-DQG_FASTX_ADDNORM=24577"
stamp "e2e 8B: W4A16_AWQ g128 (synthetic) plain vs MH (harness defines) off/on/off/on"
timeout 45 bun bench/quant_e2e.ts --model "$M8" --algos "" --synthetic-w4 --no-ref --ab defines --ab-defines "$MHD" > "$OUT/e2e8b_mh.log" 2>&1
echo "rc $?"
grep -E "^\| |copy ceiling|defines|rror" "$OUT/e2e8b_mh.log" | cut -c1-420 | head -14
stamp "tune 8b int4 layer"
V="CONTIG=1;CONTIG=1,MH=1;CONTIG=1,XPK=1,ZPK=1;CONTIG=1,XPK=1,ZPK=1,MH=1;CONTIG=1,XPK=1,ZPK=1,XALL=1;CONTIG=1,XPK=1,ZPK=1,MH=1,XALL=1"
timeout 35 bun bench/quant_gemv_tune.ts --variants "$V" --only 8b --bits 4 --ms "1 tail" --json "$OUT/tune.json" > "$OUT/tune.log" 2>&1
echo "rc $?"
grep -E "rror|ceiling|layer|DIFFERENT" "$OUT/tune.log" | grep -v NOMATH | cut -c1-300 | head -12
stamp "sass opcode counts"
( cd lib/backends/cuda/kernels && for v in "fast_rs:" "fastx_rs:" "fastx_rs:-DQG_FASTX_RS=25089"; do
  k=${v%%:*}; o=${v#*:}; f=$k${o:+_mh}
  # shellcheck disable=SC2086
  nvcc -cubin -arch=sm_90 -std=c++17 -I . -DLLMRT_SELECT -DLLMRT_K_quant_gemv_${k}_u4=1 $o quant_gemv.cu -o /tmp/s19_$f.cubin 2>&1 | tail -2
  cuobjdump -sass /tmp/s19_$f.cubin > "$OUT/$f.sass" 2>&1
  echo "$f: $(grep -cE '^ +/\*[0-9a-f]{4}\*/' "$OUT/$f.sass") instr; $(grep -oE '^ +/\*[0-9a-f]{4}\*/ +(@!?U?P[0-9T] +)?[A-Z0-9]+(\.[A-Z0-9]+)?' "$OUT/$f.sass" | awk '{print $NF}' | sort | uniq -c | sort -rn | head -20 | awk '{printf "%s %s, ", $2, $1}')"
done ) 2>&1 | cut -c1-420
left=$((145 - (SECONDS - _t0)))
stamp "e2e 8B: plain vs XALL off/on ($left s)"
[ "$left" -gt 25 ] && timeout "$left" bun bench/quant_e2e.ts --model "$M8" --algos "" --synthetic-w4 --no-ref --skip-bf16 --ab defines --ab-reps 1 \
  --ab-defines "quant_gemv.cu:-DQG_XALL=1" > "$OUT/e2e8b_xall.log" 2>&1
echo "rc $?"
grep -E "defines|rror" "$OUT/e2e8b_xall.log" | cut -c1-300 | head -6
stamp done
