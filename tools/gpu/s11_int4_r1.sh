#!/usr/bin/env bash
# Session 11 (issue 12), helper int4, round 1 (45 s): where the int4 decode GEMV and the int4 8B step lose time.
#   tune — one llama-3.1-8b int4 g128 layer as the default plan runs it (quantTailNorm: _rs / _addnorm), quant_gemv_fused
#          as is vs its ceilings: NOSCALE=1 (no scale / zero-point loads), NOMATH=1 (no dequantization / x / mma: loads
#          only), LDNC=1 (weights through ld.global.nc.L1::no_allocate), CONTIG=1 (contiguous superchunks a warp, paired
#          scale loads), ZFOLD=1 (u4 as 128 + q, zero points off through Σx); same process, % of copy
#   pack — llama-3.1-8b AWQ g128 checkpoint (tools/quant-packers/pack_awq_torch.py)
#   brk  — bench/decode_breakdown.ts on that checkpoint, ctx 128: the int4 step's graph time by role
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
H=/tmp/hfmodels
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader
for t in ncu nsys compute-sanitizer cuobjdump nvdisasm; do command -v $t > /dev/null && echo "have $t"; done; ls -d /usr/local/cuda*/bin 2> /dev/null | head -3
stamp "tune 8b int4 layer: default / NOSCALE / NOMATH / LDNC / CONTIG / ZFOLD"
timeout 17 bun bench/quant_gemv_tune.ts --variants ";NOSCALE=1;NOMATH=1;LDNC=1;CONTIG=1;ZFOLD=1;ZFOLD=1,CONTIG=1" --only 8b --bits 4 --ms "1 tail" --json "$OUT/tune.json" > "$OUT/tune.log" 2>&1
echo "rc $?"
grep -E "rror|ceiling|layer|K=4096 (LDNC|CONTIG|ZFOLD)|K=14336 (CONTIG|ZFOLD)" "$OUT/tune.log" | cut -c1-330 | head -24
stamp "pack 8b awq"
[ -f $H/llama-3.1-8b-awq/config.json ] || timeout 13 python3 tools/quant-packers/pack_awq_torch.py --model $M8 --out $H/llama-3.1-8b-awq --format awq > "$OUT/pack8b.log" 2>&1
echo "pack rc $?"
left=$((44 - (SECONDS - _t0)))
stamp "int4 8b breakdown ctx 128 ($left s)"
[ "$left" -gt 5 ] && timeout "$left" bun bench/decode_breakdown.ts --model $H/llama-3.1-8b-awq --ctx 128 > "$OUT/brk8b.log" 2>&1
echo "rc $?"
grep -v -i warn "$OUT/brk8b.log" | cut -c1-200 | head -40
stamp done
