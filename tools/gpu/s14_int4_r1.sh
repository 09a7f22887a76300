#!/usr/bin/env bash
# Session 14 (issue 12), helper int4, round 1 (60 s). New: quantGemvRing (quant_gemv_ring*: quant_gemv_fast's sums —
# the same bits — with each warp's superchunks streamed through a per-warp cp.async ring of 4 in shared memory, filled
# across tile boundaries on a persistent grid of 3 blocks an SM; the first 4 items requested before the PDL wait).
#   e2e  — llama-3.1-8b in one process: bf16 engine, then W4A16_AWQ g128 (synthetic codes) quantGemvRing off/on/off/on
#          (ids / logits must be the same bits)
#   tune — one 8B int4 g128 layer as the quantTailNorm plan runs it (_rs / _addnorm), same process, % of copy; CONTIG=1
#          (= quant_gemv_fast, the default) first (the bit checks' reference): the ring uncapped / RB 3 (as wired) / RB 2 /
#          RD 3; never-timed session-12 knobs: F16 + HZ (one shift + four lop3 a word, zero points off through per-block
#          (P, S)) with and without the persistent grid LOOP; LOOP alone; the NOMATH load-only ceiling
set -uo pipefail
# shellcheck disable=SC1091
source tools/gpu/jobs_lib.sh
nvidia-smi --query-gpu=name,clocks.max.sm --format=csv,noheader
stamp "e2e 8B: bf16 vs W4A16_AWQ g128 (synthetic), quantGemvRing off/on/off/on"
timeout 32 bun bench/quant_e2e.ts --model "$M8" --algos "" --synthetic-w4 --no-ref --ab quantGemvRing > "$OUT/e2e8b.log" 2>&1
echo "rc $?"
grep -E "^\| |copy ceiling|quantGemvRing|rror" "$OUT/e2e8b.log" | cut -c1-400 | head -16
left=$((57 - (SECONDS - _t0)))
stamp "tune 8b int4 layer ($left s)"
V="CONTIG=1;CONTIG=1,RING_SC=1;CONTIG=1,RING_SC=1,RB=3;CONTIG=1,RING_SC=1,RB=2;CONTIG=1,RING_SC=1,RD=3,RB=3"
V="$V;CONTIG=1,F16=1,HZ=1;CONTIG=1,F16=1,HZ=1,LOOP=1;CONTIG=1,LOOP=1;CONTIG=1,NOMATH=1"
[ "$left" -gt 8 ] && timeout "$left" bun bench/quant_gemv_tune.ts --variants "$V" --only 8b --bits 4 --ms "1 tail" --json "$OUT/tune.json" > "$OUT/tune.log" 2>&1
echo "rc $?"
grep -E "rror|ceiling|layer|K=(4096|14336) CONTIG" "$OUT/tune.log" | grep -v "^u4 g256" | cut -c1-330 | head -32
stamp done
