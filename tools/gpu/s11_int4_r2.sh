#!/usr/bin/env bash
# Session 11 (issue 12), helper int4, round 2 (45 s). r1: without its math (NOMATH) the int4 layer streams at 69.5% of
# copy (gate_up 83%) against 48.6%; without the scale / zero-point loads 53.9%; contiguous superchunk runs 51.2%.
#   tune — one llama-3.1-8b int4 g128 layer (the quantTailNorm plan): default vs the zero-point fold (ZFOLD: u4 as
#          128 + q, (128 + z)·Σx off each superchunk) with contiguous runs, and that with 4 superchunks in flight at 2
#          blocks / SM, at 4 blocks / SM
#   pack — llama-3.1-8b AWQ g128 checkpoint
#   brk  — bench/decode_breakdown.ts on it, ctx 128: quantGemvFast on (quant_gemv_fast*: CONTIG + ZFOLD), off, on with
#          quantGemvDeep (o_proj / down_proj on quant_gemv_fastd*: 4 superchunks in flight, 2 blocks / SM)
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
stamp "pack 8b awq"
[ -f $H/llama-3.1-8b-awq/config.json ] || timeout 12 python3 tools/quant-packers/pack_awq_torch.py --model $M8 --out $H/llama-3.1-8b-awq --format awq > "$OUT/pack8b.log" 2>&1
echo "pack rc $?"
left=$((44 - (SECONDS - _t0)))
stamp "int4 8b breakdown ctx 128, quantGemvFast on / off / on + deep ($left s)"
[ "$left" -gt 5 ] && timeout "$left" bun bench/decode_breakdown.ts --model $H/llama-3.1-8b-awq --ctx 128 --opts '{"quantGemvFast":true}' --opts2 '{}' --opts3 '{"quantGemvFast":true,"quantGemvDeep":true}' > "$OUT/brk8b.log" 2>&1
echo "rc $?"
grep -E "^==|graph replay|^  [a-z_]+ +[0-9]|sum of" "$OUT/brk8b.log" | cut -c1-200 | head -50
stamp done
