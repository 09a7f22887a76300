#!/usr/bin/env bash
# Session 14 (issue 12), helper int4, round 2 (60 s). r1 (same job, 8B): bf16 234.0 tok/s, W4A16_AWQ g128 422.1 / 423.1
# (1.81x); quantGemvRing (per-warp cp.async ring, persistent grid) 293.9 / 294.0 (-30.5%, logits bitwise equal): dropped,
# knob QG_RING_SC only (layer 55.1 -> 78.3 us). F16 + HZ 83.6 us, + LOOP 69.2; LOOP 56.0; NOMATH ceiling 40.1 (68.5%).
# New: quantGemvZfold (quant_gemv_fastz*_u4, QG_V_ZS): u4 weights enter the mma as 128 + q (one lop3 a pair, no bf16x2
# FMA: -32 instructions a superchunk), (128 + z)·Σx off each superchunk, Σx of x's 128-column chunks once a block (no
# shared-memory loads in the mma chain, unlike F16 / XSTAGE / the ring). Within fp32 rounding of quant_gemv_fast.
#   e2e  — llama-3.1-8b, one process: bf16, then W4A16_AWQ g128 (synthetic codes) quantGemvZfold off/on/off/on
#   tune — one 8B int4 layer (quantTailNorm plan), CONTIG=1 first: ZS, ZS + LOOP (Σx once a block of 3 / SM), ZS at
#          U=3 MINB=2, ZS + XSTAGE
#   test — tests/quant_cuda.test.ts -t quant_gemv_fastz (float64 bounds, batch invariance, addnorm / rs) if time is left
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
nvidia-smi --query-gpu=name,clocks.max.sm --format=csv,noheader
stamp "e2e 8B: bf16 vs W4A16_AWQ g128 (synthetic), quantGemvZfold off/on/off/on"
timeout 32 bun bench/quant_e2e.ts --model "$M8" --algos "" --synthetic-w4 --no-ref --ab quantGemvZfold > "$OUT/e2e8b.log" 2>&1
echo "rc $?"
grep -E "^\| |copy ceiling|quantGemvZfold|rror" "$OUT/e2e8b.log" | cut -c1-420 | head -16
left=$((44 - (SECONDS - _t0)))
stamp "tune 8b int4 layer ($left s)"
V="CONTIG=1;CONTIG=1,ZS=1;CONTIG=1,ZS=1,LOOP=1;CONTIG=1,ZS=1,U=3,MINB=2;CONTIG=1,ZS=1,XSTAGE=1"
[ "$left" -gt 8 ] && timeout "$left" bun bench/quant_gemv_tune.ts --variants "$V" --only 8b --bits 4 --ms "1 tail" --json "$OUT/tune.json" > "$OUT/tune.log" 2>&1
echo "rc $?"
grep -E "rror|ceiling|layer|K=(4096|14336) CONTIG" "$OUT/tune.log" | grep -v "^u4 g256" | cut -c1-330 | head -20
left=$((57 - (SECONDS - _t0)))
stamp "GPU test quant_gemv_fastz ($left s)"
[ "$left" -gt 6 ] && timeout "$left" bun test --timeout 600000 tests/quant_cuda.test.ts -t "quant_gemv_fastz" > "$OUT/gputest.log" 2>&1
echo "rc $?"
grep -E "^\(fail|^\(pass|^ *[0-9]+ (pass|fail|skip)|rror" "$OUT/gputest.log" | cut -c1-300 | head -12
stamp done
