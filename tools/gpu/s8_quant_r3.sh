#!/usr/bin/env bash
# NOT RUN (session 8 device budget spent): a ready experiment for QG_NW 4 / 16 and QG_LOOP.
# Session 8 quant r3 (issue 12): warps per tile of quant_gemv_fused* (QG_NW: 4 / 8 / 16, blocks of 128 / 256 / 512)
# and the persistent grid (QG_LOOP) on llama-3.1-8b's layer linears, µs and % of the copy measured in the same
# process; every variant's outputs checked against the default's (same bits or within one bf16 unit).
set -uo pipefail
OUT=${OUT:-/tmp/llmrt-out}
mkdir -p "$OUT"
export NO_COLOR=1 FORCE_COLOR=0
t0=$SECONDS
stamp() { echo "== [$((SECONDS - t0)) s] $*"; }
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv,noheader
stamp tune
timeout "${TUNE_S:-50}" bun bench/quant_gemv_tune.ts --only 8b --m8 \
  --variants "${VARIANTS:-FASTNORM=0;NW=16,MINB=2;NW=4,MINB=6;NW=4,MINB=8;LOOP=1}" \
  --json "$OUT/tune.json" > "$OUT/tune.log" 2>&1
echo "rc $?"
grep -E "same bits|close|DIFFERENT|rror|ceiling|lm_head|layer" "$OUT/tune.log" | cut -c1-330 | head -120
stamp done
