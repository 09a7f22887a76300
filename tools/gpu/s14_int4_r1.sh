#!/usr/bin/env bash
# Session 14 (issue 12), helper int4, round 1 (60 s). One llama-3.1-8b int4 g128 layer as the quantTailNorm plan runs
# it (_rs / _addnorm), same process, % of copy; CONTIG=1 (= quant_gemv_fast, the default) first (the bit checks'
# reference). Never-timed combinations of session 12's bench knobs: the f16 dequantization without FMAs (F16 + HZ:
# one shift + four lop3 a word, zero points / magic offsets off through per-block (P, S) sums) and the persistent grid
# (LOOP: min(tiles, RB·SMs) blocks, the prologue — x staged as f16, (P, S) — paid once a block, not once a tile),
# with fewer, longer-lived blocks carrying more loads (RB 1 / 2, U 3 / 4). NOMATH rows = load-only ceilings.
#   tune — the sweep above
#   e2e  — llama-3.1-8b bf16 vs W4A16_AWQ g128 (synthetic codes) in one process, default flags (+ the A/B of the new
#          switch, when this job has one)
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
nvidia-smi --query-gpu=name,clocks.max.sm --format=csv,noheader
stamp "tune 8b int4 layer"
V="CONTIG=1;CONTIG=1,F16=1,HZ=1;CONTIG=1,F16=1,HZ=1,LOOP=1;CONTIG=1,F16=1,HZ=1,LOOP=1,RB=2,MINB=2,U=3"
V="$V;CONTIG=1,F16=1,HZ=1,LOOP=1,RB=1,MINB=1,U=4;CONTIG=1,LOOP=1,RB=2,MINB=2,U=3;CONTIG=1,LOOP=1,RB=1,MINB=1,U=4"
V="$V;CONTIG=1,F16=1,LOOP=1;CONTIG=1,NOMATH=1;CONTIG=1,LOOP=1,RB=2,MINB=2,U=3,NOMATH=1"
timeout 28 bun bench/quant_gemv_tune.ts --variants "$V" --only 8b --bits 4 --ms "1 tail" --json "$OUT/tune.json" > "$OUT/tune.log" 2>&1
echo "rc $?"
grep -E "rror|ceiling|layer|K=(4096|14336) CONTIG" "$OUT/tune.log" | grep -v "^u4 g256" | cut -c1-330 | head -40
left=$((56 - (SECONDS - _t0)))
stamp "e2e 8B bf16 vs W4A16_AWQ g128 synthetic ($left s)"
[ "$left" -gt 20 ] && timeout "$left" bun bench/quant_e2e.ts --model "$M8" --algos "" --synthetic-w4 --no-ref > "$OUT/e2e8b.log" 2>&1
echo "rc $?"
grep -E "^\| |copy ceiling|rror" "$OUT/e2e8b.log" | cut -c1-300 | head -12
stamp done
