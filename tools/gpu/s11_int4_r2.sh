#!/usr/bin/env bash
# Session 11 (issue 12), helper int4, round 2 (45 s). r1: without its math (NOMATH) the int4 layer streams at 69.5% of
# copy (gate_up 83%) against 48.6%; without the scale / zero-point loads 53.9%; contiguous superchunk runs 51.2%.
#   tune — one llama-3.1-8b int4 g128 layer (the quantTailNorm plan): default vs the zero-point fold (ZFOLD: u4 as
#          128 + q, (128 + z)·Σx off each superchunk) with contiguous runs (= quant_gemv_fast*), that with 4 superchunks
#          in flight at 2 blocks / SM (= quant_gemv_fastd*), and at 4 blocks / SM
#   ncu  — Nsight Compute on the 8B gate_up (_rs) and down (_addnorm) launches: fused, fast, fastd (speed of light,
#          warp states: where the math phase stalls)
#   pack — llama-3.1-8b AWQ g128 checkpoint
#   brk  — bench/decode_breakdown.ts on it, ctx 128, quantGemvFast + quantGemvDeep (r1 has the default's)
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
H=/tmp/hfmodels
nvidia-smi --query-gpu=name,clocks.max.sm --format=csv,noheader
stamp "tune 8b int4 layer"
timeout 11 bun bench/quant_gemv_tune.ts --variants ";CONTIG=1,ZFOLD=1;CONTIG=1,ZFOLD=1,U=4,MINB=2;CONTIG=1,ZFOLD=1,MINB=4" \
  --only 8b --bits 4 --ms "1 tail" --json "$OUT/tune.json" > "$OUT/tune.log" 2>&1
echo "rc $?"
grep -E "rror|ceiling|layer|K=4096 CONTIG=1,ZFOLD=1:|K=14336" "$OUT/tune.log" | cut -c1-330 | head -24
stamp "ncu gate_up / down"
timeout 13 ncu --section SpeedOfLight --section WarpStateStats --section Occupancy -k regex:quant_gemv_f bun bench/quant_gemv_profile.ts --reps 1 > "$OUT/ncu.log" 2>&1
echo "rc $?"
grep -E "^  quant_gemv|Duration|Memory Throughput|DRAM Throughput|Compute \(SM\) Throughput|Warp Cycles Per Issued|Achieved Occupancy|Theoretical Occupancy|Registers Per|Stall|stall|ERR|rror" "$OUT/ncu.log" | cut -c1-200 | head -60
stamp "pack 8b awq"
[ -f $H/llama-3.1-8b-awq/config.json ] || timeout 11 python3 tools/quant-packers/pack_awq_torch.py --model $M8 --out $H/llama-3.1-8b-awq --format awq > "$OUT/pack8b.log" 2>&1
echo "pack rc $?"
left=$((44 - (SECONDS - _t0)))
stamp "int4 8b breakdown ctx 128, quantGemvFast + quantGemvDeep ($left s)"
[ "$left" -gt 5 ] && timeout "$left" bun bench/decode_breakdown.ts --model $H/llama-3.1-8b-awq --ctx 128 --opts '{"quantGemvFast":true,"quantGemvDeep":true}' > "$OUT/brk8b.log" 2>&1
echo "rc $?"
grep -E "^==|graph replay|^  [a-z_]+ +[0-9]|sum of" "$OUT/brk8b.log" | cut -c1-200 | head -20
stamp done
